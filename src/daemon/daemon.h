/* daemon.h - the vcpud daemon: command-line options and the main loop.
 *
 * The loop is single-threaded: one poll() over a signalfd (TERM, INT, HUP),
 * a timerfd that paces the control-loop ticks (sampling.interval_ms) and the
 * HTTP server's epoll fd. Everything the daemon owns (store, policy, server)
 * is touched from that one thread. */
#ifndef VCPUD_DAEMON_H
#define VCPUD_DAEMON_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "vcpud/error.h"
#include "vcpud/log.h"

#define DAEMON_DEFAULT_DB "/var/lib/vcpud/vcpud.db"
#define DAEMON_DEFAULT_SOCKET "/run/vcpud/vcpud.sock"
#define DAEMON_DEFAULT_POLICY "/etc/vcpud/policy.yaml"

/* --sampler: how vCPU threads are read (sampler_use_bpf()) */
enum daemon_sampler { DAEMON_SAMPLER_AUTO, DAEMON_SAMPLER_BPF, DAEMON_SAMPLER_PREAD };

struct daemon_options {
	const char *db_path;
	const char *socket_path;
	const char *policy_path;
	bool policy_given;         /* --policy: a missing file is an error; else
				    * a missing default file means the built-in
				    * defaults */
	const char *cgroup_root;   /* NULL: discover the cgroup2 mount */
	const char *host_root;     /* prefix for /proc and /sys reads ("/") */
	const char *libvirt_uri;   /* NULL with --no-libvirt */
	const char *socket_group;  /* NULL: root and our own uid only */
	const char *listen;        /* --listen ADDR:PORT, NULL: none */
	const char *tls_cert, *tls_key, *token_file;
	bool insecure_http;
	const char *fleet;         /* --fleet URL[,URL...], NULL: the local ledger */
	const char *host_id;       /* NULL: the hostname */
	const char *fleet_cacert, *fleet_cert, *fleet_key;
	const char *log_file;      /* NULL: stderr */
	enum log_level log_level;
	enum daemon_sampler sampler;
	bool foreground;
	bool dry_run;
	bool help;
	bool version;
};

/* Parse argv into *out (strings point into argv). 0, or -1 with EINVAL and a
 * message naming the bad option. --help/--version set the flags and return 0. */
int daemon_options_parse(int argc, char **argv, struct daemon_options *out,
			 struct error **err);

/* Check option values that need no I/O beyond stat(): absolute cgroup root
 * without "." or ".." components whose parent exists, an existing host
 * root directory, a known group. */
int daemon_options_check(const struct daemon_options *o, gid_t *group_out,
			 struct error **err);

void daemon_usage(FILE *f);

/* Run the daemon until SIGTERM/SIGINT. `ready_fd`, when >= 0, receives one
 * line ("ok" or the start-up error) once the socket is listening, so a
 * parent that forked us can report the result; it is closed afterwards.
 * Returns the process exit status. */
int daemon_run(const struct daemon_options *o, int ready_fd);

#endif
