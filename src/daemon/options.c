/* options.c - vcpud's command line, parsed without side effects so that it
 * can be unit-tested; daemon_options_check() adds the checks that look at
 * the file system (still without changing anything). */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/daemon.h"
#include "vcpud/api.h"
#include "vcpud/libvirt.h"
#include "vcpud/util.h"

enum { OPT_DB = 0x100, OPT_SOCKET, OPT_POLICY, OPT_CGROUP_ROOT, OPT_HOST_ROOT,
       OPT_SOCKET_GROUP, OPT_LOG_LEVEL, OPT_LOG_FILE, OPT_DRY_RUN, OPT_LIBVIRT_URI,
       OPT_NO_LIBVIRT, OPT_SAMPLER, OPT_LISTEN, OPT_TLS_CERT, OPT_TLS_KEY, OPT_TOKEN_FILE,
       OPT_INSECURE_HTTP, OPT_FLEET, OPT_HOST_ID, OPT_FLEET_CACERT, OPT_FLEET_CERT,
       OPT_FLEET_KEY };

static const struct option long_opts[] = {
	{ "db", required_argument, NULL, OPT_DB },
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "policy", required_argument, NULL, OPT_POLICY },
	{ "cgroup-root", required_argument, NULL, OPT_CGROUP_ROOT },
	{ "host-root", required_argument, NULL, OPT_HOST_ROOT },
	{ "libvirt-uri", required_argument, NULL, OPT_LIBVIRT_URI },
	{ "no-libvirt", no_argument, NULL, OPT_NO_LIBVIRT },
	{ "socket-group", required_argument, NULL, OPT_SOCKET_GROUP },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "log-file", required_argument, NULL, OPT_LOG_FILE },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "sampler", required_argument, NULL, OPT_SAMPLER },
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
	{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
	{ "token-file", required_argument, NULL, OPT_TOKEN_FILE },
	{ "insecure-http", no_argument, NULL, OPT_INSECURE_HTTP },
	{ "fleet", required_argument, NULL, OPT_FLEET },
	{ "host-id", required_argument, NULL, OPT_HOST_ID },
	{ "fleet-cacert", required_argument, NULL, OPT_FLEET_CACERT },
	{ "fleet-cert", required_argument, NULL, OPT_FLEET_CERT },
	{ "fleet-key", required_argument, NULL, OPT_FLEET_KEY },
	{ "foreground", no_argument, NULL, 'f' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

void daemon_usage(FILE *f)
{
	fprintf(f,
		"Usage: vcpud [OPTION]...\n"
		"cgroup-v2 multi-tenant vCPU resource manager (daemon).\n\n"
		"  --db PATH             SQLite database (default %s)\n"
		"  --socket PATH         API socket (default %s)\n"
		"  --policy FILE         policy YAML (default %s; without --policy\n"
		"                        and without that file: the built-in defaults,\n"
		"                        the values of policies/default.yaml)\n"
		"  --cgroup-root DIR     cgroup v2 directory vcpud owns (default: the\n"
		"                        cgroup2 mount + /vcpud.slice)\n"
		"  --host-root DIR       read /proc and /sys under DIR (default /; tests\n"
		"                        point it at a fixture topology)\n"
		"  --libvirt-uri URI     find VMs through libvirt (default %s); a\n"
		"                        domain's <vcpud:tenant> metadata names its tenant\n"
		"  --no-libvirt          do not ask libvirt (VMs come from /proc and\n"
		"                        registrations only)\n"
		"  --socket-group NAME   also serve members of this group (SO_PEERCRED)\n"
		"  --listen ADDR:PORT    also serve the API over HTTPS on this address\n"
		"                        (A.B.C.D:PORT or [IPV6]:PORT; off by default);\n"
		"                        every request needs a bearer token\n"
		"  --tls-cert FILE       PEM certificate chain for --listen\n"
		"  --tls-key FILE        its PEM private key (not readable by others)\n"
		"  --token-file FILE     tokens of --listen: NAME ROLE SHA256HEX per line,\n"
		"                        ROLE read (GET only) or admin\n"
		"  --insecure-http       --listen without TLS: loopback addresses only\n"
		"  --fleet URL[,URL...]  keep tenants and their quotas in this etcd\n"
		"                        cluster (its client URLs, http:// or https://),\n"
		"                        shared by every vcpud of the fleet\n"
		"  --host-id NAME        this host's name in the fleet (default: the\n"
		"                        hostname)\n"
		"  --fleet-cacert FILE   PEM CA that signed etcd's certificates (https)\n"
		"  --fleet-cert FILE     PEM client certificate for etcd, and its\n"
		"  --fleet-key FILE      PEM private key\n"
		"  --dry-run             log every intended cgroup write, change nothing\n"
		"  --sampler KIND        how vCPU threads are read each tick: bpf (one\n"
		"                        BPF task iterator walk for all VMs; needs root,\n"
		"                        kernel BTF, Linux 6.1+), pread (one kept\n"
		"                        schedstat file per thread), or auto (default:\n"
		"                        bpf where it works, else pread, said at start)\n"
		"  -f, --foreground      stay in the foreground, log to stderr\n"
		"  --log-level LEVEL     error, warn, info (default) or debug\n"
		"  --log-file PATH       log here (append) instead of stderr\n"
		"  -h, --help            this text\n"
		"  -V, --version         print the version\n\n"
		"Signals: SIGTERM/SIGINT stop cleanly; SIGHUP reloads the policy, the\n"
		"token file and the TLS certificate (one that does not validate is\n"
		"refused and the old one stays).\n",
		DAEMON_DEFAULT_DB, DAEMON_DEFAULT_SOCKET, DAEMON_DEFAULT_POLICY,
		LIBVIRT_DEFAULT_URI);
}

static int need_value(const char *opt, const char *v, struct error **err)
{
	if (!v || !*v)
		return error_set(err, EINVAL, "option --%s needs a non-empty value", opt);
	return 0;
}

/* The field an option with a string value sets, or NULL. */
static const char **string_option(struct daemon_options *o, int c)
{
	switch (c) {
	case OPT_DB: return &o->db_path;
	case OPT_SOCKET: return &o->socket_path;
	case OPT_POLICY: return &o->policy_path;
	case OPT_CGROUP_ROOT: return &o->cgroup_root;
	case OPT_HOST_ROOT: return &o->host_root;
	case OPT_LIBVIRT_URI: return &o->libvirt_uri;
	case OPT_SOCKET_GROUP: return &o->socket_group;
	case OPT_LOG_FILE: return &o->log_file;
	case OPT_LISTEN: return &o->listen;
	case OPT_TLS_CERT: return &o->tls_cert;
	case OPT_TLS_KEY: return &o->tls_key;
	case OPT_TOKEN_FILE: return &o->token_file;
	case OPT_FLEET: return &o->fleet;
	case OPT_HOST_ID: return &o->host_id;
	case OPT_FLEET_CACERT: return &o->fleet_cacert;
	case OPT_FLEET_CERT: return &o->fleet_cert;
	case OPT_FLEET_KEY: return &o->fleet_key;
	default: return NULL;
	}
}

int daemon_options_parse(int argc, char **argv, struct daemon_options *out,
			 struct error **err)
{
	struct daemon_options o = {
		.db_path = DAEMON_DEFAULT_DB,
		.socket_path = DAEMON_DEFAULT_SOCKET,
		.policy_path = DAEMON_DEFAULT_POLICY,
		.log_level = LOG_LVL_INFO,
		.host_root = "/",
		.libvirt_uri = LIBVIRT_DEFAULT_URI,
	};
	optind = 0; /* full re-initialisation (GNU), so tests can parse twice */
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":fhV", long_opts, NULL)) != -1) {
		const char *name = NULL;
		for (const struct option *lo = long_opts; lo->name; lo++)
			if (lo->val == c)
				name = lo->name;
		const char **dst = string_option(&o, c);
		if (dst) {
			if (need_value(name, optarg, err) < 0)
				return -1;
			*dst = optarg;
			o.policy_given |= c == OPT_POLICY;
			continue;
		}
		switch (c) {
		case OPT_LOG_LEVEL:
			if (log_level_from_string(optarg, &o.log_level, err) < 0)
				return error_wrap(err, "--log-level");
			break;
		case OPT_DRY_RUN: o.dry_run = true; break;
		case OPT_INSECURE_HTTP: o.insecure_http = true; break;
		case OPT_SAMPLER:
			if (optarg && strcmp(optarg, "auto") == 0)
				o.sampler = DAEMON_SAMPLER_AUTO;
			else if (optarg && strcmp(optarg, "bpf") == 0)
				o.sampler = DAEMON_SAMPLER_BPF;
			else if (optarg && strcmp(optarg, "pread") == 0)
				o.sampler = DAEMON_SAMPLER_PREAD;
			else
				return error_set(err, EINVAL, "--sampler: '%s' is not auto, bpf or "
						 "pread", optarg ? optarg : "");
			break;
		case OPT_NO_LIBVIRT: o.libvirt_uri = NULL; break;
		case 'f': o.foreground = true; break;
		case 'h': o.help = true; break;
		case 'V': o.version = true; break;
		case ':':
			return error_set(err, EINVAL, "option %s needs a value", argv[optind - 1]);
		default:
			return error_set(err, EINVAL, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return error_set(err, EINVAL, "unexpected argument '%s'", argv[optind]);
	if (!o.listen && (o.tls_cert || o.tls_key || o.token_file || o.insecure_http))
		return error_set(err, EINVAL, "--%s is an option of --listen, which is not given",
				 o.tls_cert ? "tls-cert" : o.tls_key ? "tls-key" :
				 o.token_file ? "token-file" : "insecure-http");
	if (o.listen && o.insecure_http && (o.tls_cert || o.tls_key))
		return error_set(err, EINVAL, "--insecure-http and --%s: plain HTTP or TLS, "
				 "not both", o.tls_cert ? "tls-cert" : "tls-key");
	if (o.listen && !o.insecure_http && (!o.tls_cert || !o.tls_key))
		return error_set(err, EINVAL, "--listen needs --tls-cert and --tls-key (or "
				 "--insecure-http on a loopback address, for tests)");
	if (!o.fleet && (o.host_id || o.fleet_cacert || o.fleet_cert || o.fleet_key))
		return error_set(err, EINVAL, "--%s is an option of --fleet, which is not given",
				 o.host_id ? "host-id" : o.fleet_cacert ? "fleet-cacert" :
				 o.fleet_cert ? "fleet-cert" : "fleet-key");
	if (!o.fleet_cert != !o.fleet_key)
		return error_set(err, EINVAL, "--fleet-cert and --fleet-key go together");
	if (o.listen && !o.token_file)
		return error_set(err, EINVAL, "--listen needs --token-file: every request over "
				 "TCP is authenticated");
	*out = o;
	return 0;
}

/* An absolute path with no empty, "." or ".." components. */
static int check_clean_abs(const char *what, const char *p, struct error **err)
{
	if (p[0] != '/')
		return error_set(err, EINVAL, "%s '%s' must be an absolute path", what, p);
	_cleanup_free_ char *copy = xstrdup(p);
	char *save = NULL;
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save))
		if (strcmp(c, ".") == 0 || strcmp(c, "..") == 0)
			return error_set(err, EINVAL, "%s '%s' must not contain '.' or '..'",
					 what, p);
	return 0;
}

int daemon_options_check(const struct daemon_options *o, gid_t *group_out,
			 struct error **err)
{
	if (o->cgroup_root) {
		if (check_clean_abs("--cgroup-root", o->cgroup_root, err) < 0)
			return -1;
		struct stat st;
		if (stat(o->cgroup_root, &st) == 0) {
			if (!S_ISDIR(st.st_mode))
				return error_set(err, ENOTDIR, "--cgroup-root %s is not a directory",
						 o->cgroup_root);
		} else {
			/* vcpud creates the last component itself; its parent must exist */
			_cleanup_free_ char *parent = xstrdup(o->cgroup_root);
			char *slash = strrchr(parent, '/');
			if (slash == parent)
				slash[1] = '\0';
			else
				*slash = '\0';
			if (stat(parent, &st) < 0 || !S_ISDIR(st.st_mode))
				return error_set(err, ENOENT,
						 "--cgroup-root %s: parent directory %s does not exist",
						 o->cgroup_root, parent);
		}
	}
	if (check_clean_abs("--host-root", o->host_root, err) < 0)
		return -1;
	struct stat hst;
	if (stat(o->host_root, &hst) < 0 || !S_ISDIR(hst.st_mode))
		return error_set(err, ENOENT, "--host-root %s is not a directory", o->host_root);
	if (o->listen) {
		struct sockaddr_storage ss;
		socklen_t sl;
		if (api_listen_parse(o->listen, &ss, &sl, err) < 0)
			return error_wrap(err, "--listen");
		if (o->insecure_http && !api_addr_loopback(&ss))
			return error_set(err, EINVAL, "--insecure-http serves plain HTTP on loopback "
					 "addresses only, not on %s (tokens would cross the "
					 "network in the clear)", o->listen);
	}
	if (o->socket_group) {
		struct group gr, *res = NULL;
		char buf[4096];
		if (getgrnam_r(o->socket_group, &gr, buf, sizeof(buf), &res) != 0 || !res)
			return error_set(err, EINVAL, "--socket-group: no group named '%s'",
					 o->socket_group);
		*group_out = gr.gr_gid;
	}
	return 0;
}
