/* server.c - the API's HTTP/1.1 transport: libmicrohttpd on a UNIX socket,
 * run from the daemon's single-threaded loop (MHD in external epoll mode, so
 * handlers and the store are never touched from two threads).
 *
 * Access control is the socket: peers are identified with SO_PEERCRED and
 * only root, the daemon's own uid and members of the configured group (the
 * peer's own groups, SO_PEERGROUPS) are served. Bodies are limited to
 * API_MAX_BODY_BYTES: a declared Content-Length above it is refused before
 * the body is read; a chunked body that grows past it is drained and
 * refused.
 *
 * Slow clients: up to API_CONN_LIMIT connections; while more than
 * API_CONN_LIMIT - API_CONN_RESERVE are open, the connections that have
 * been sending their request's headers (or, kept alive, waiting to send
 * the next) for API_SLOW_HEADERS_MS or more are dropped, the oldest first,
 * down to that many. A client trickling headers a byte at a time cannot so
 * hold every slot, and one that sends a whole request is never dropped for
 * it. */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "vcpud/api.h"
#include "vcpud/log.h"
#include "vcpud/util.h"

#define API_CONN_LIMIT 1024
#define API_CONN_RESERVE 256
#define API_SLOW_HEADERS_MS 1000

/* An open connection: since when it has been without a whole request. */
struct conn_track {
	struct MHD_Connection *c;
	int fd;
	int64_t since_ns;
	bool in_request;   /* its headers are in: a request is being served */
};

struct api_server {
	struct api_ctx *ctx;
	struct MHD_Daemon *mhd;
	char *socket_path;
	int listen_fd;
	bool group_set;
	gid_t group;
	uid_t self_uid;
	bool reads_only;                /* inside api_server_serve_reads() */
	struct MHD_Connection **held;   /* suspended until api_server_resume() */
	size_t n_held;
	struct conn_track *conns;       /* every open connection */
	size_t n_conns, cap_conns;
	uint64_t dropped_slow;          /* connections dropped for slowness */
};

static struct conn_track *conn_find(struct api_server *s, struct MHD_Connection *c)
{
	for (size_t i = 0; i < s->n_conns; i++)
		if (s->conns[i].c == c)
			return &s->conns[i];
	return NULL;
}

static int cmp_since(const void *a, const void *b)
{
	const struct conn_track *x = *(struct conn_track *const *)a, *y = *(struct conn_track *const *)b;
	return (x->since_ns > y->since_ns) - (x->since_ns < y->since_ns);
}

/* While more than API_CONN_LIMIT - API_CONN_RESERVE connections are open:
 * shut down the oldest that have been without a whole request for
 * API_SLOW_HEADERS_MS (MHD then closes them as clients that left). */
static void drop_slow(struct api_server *s)
{
	size_t open = 0;
	for (size_t i = 0; i < s->n_conns; i++)
		open += s->conns[i].fd >= 0;
	if (open <= API_CONN_LIMIT - API_CONN_RESERVE)
		return;
	int64_t now = now_mono_ns();
	struct conn_track **v = xcalloc(s->n_conns, sizeof(*v));
	size_t n = 0;
	for (size_t i = 0; i < s->n_conns; i++) {
		struct conn_track *t = &s->conns[i];
		if (!t->in_request && t->fd >= 0 &&
		    now - t->since_ns >= (int64_t)API_SLOW_HEADERS_MS * 1000000)
			v[n++] = t;
	}
	qsort(v, n, sizeof(*v), cmp_since);
	size_t dropped = 0;
	for (size_t i = 0; i < n && open > API_CONN_LIMIT - API_CONN_RESERVE; i++, open--) {
		shutdown(v[i]->fd, SHUT_RDWR);
		v[i]->fd = -1; /* once */
		dropped++;
	}
	free(v);
	if (dropped) {
		s->dropped_slow += dropped;
		log_warn("API: %zu connections open: dropped %zu that sent no whole request in "
			 "%d ms (%llu so far)", s->n_conns, dropped, API_SLOW_HEADERS_MS,
			 (unsigned long long)s->dropped_slow);
	}
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	(void)socket_context;
	struct api_server *s = cls;
	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		struct conn_track *t = conn_find(s, c);
		if (t)
			*t = s->conns[--s->n_conns];
		return;
	}
	if (s->n_conns == s->cap_conns) {
		s->cap_conns = s->cap_conns ? 2 * s->cap_conns : 64;
		s->conns = xrealloc(s->conns, s->cap_conns * sizeof(*s->conns));
	}
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	s->conns[s->n_conns++] = (struct conn_track){ c, ci ? ci->connect_fd : -1,
						      now_mono_ns(), false };
}

/* Per-request state kept in MHD's con_cls between calls. */
struct req_state {
	char *buf;
	size_t len, cap;
	bool too_large;
	bool denied;
	char actor[48];
};

/* Whether the peer on `fd` has `group`: its primary group, or one of the
 * supplementary groups the kernel recorded at connect() (SO_PEERGROUPS,
 * Linux 4.13+). No NSS lookup (getpwuid, getgrouplist): that may wait on
 * LDAP or sssd, and would ask the database, not the process, which groups
 * it has. */
static bool peer_in_group(int fd, gid_t primary, gid_t group)
{
	if (primary == group)
		return true;
	gid_t small[64];
	gid_t *groups = small;
	socklen_t len = sizeof(small);
	_cleanup_free_ gid_t *big = NULL;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
		if (errno != ERANGE || len == 0 || len > 65536 * sizeof(gid_t))
			return false;
		big = xmalloc(len);
		groups = big;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
			return false;
	}
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == group)
			return true;
	return false;
}

/* Who is on the other end, and may they talk to us? */
static void peer_check(struct api_server *s, struct MHD_Connection *conn, struct req_state *st)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (!ci || getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		st->denied = true;
		snprintf(st->actor, sizeof(st->actor), "unknown");
		return;
	}
	snprintf(st->actor, sizeof(st->actor), "uid:%u", (unsigned)cred.uid);
	if (cred.uid == 0 || cred.uid == s->self_uid)
		return;
	if (s->group_set && peer_in_group(ci->connect_fd, cred.gid, s->group))
		return;
	st->denied = true;
	log_warn("refused API request from uid %u pid %d: not root and not in the socket group",
		 (unsigned)cred.uid, (int)cred.pid);
}

static enum MHD_Result send_body(struct MHD_Connection *conn, int status, char *body,
				 const char *content_type)
{
	struct MHD_Response *r;
	if (body)
		r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	else
		r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	if (body)
		MHD_add_response_header(r, "Content-Type",
					content_type ? content_type : "application/json");
	enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *conn, int status, char *body)
{
	return send_body(conn, status, body, NULL);
}

static enum MHD_Result send_error(struct MHD_Connection *conn, int status, const char *msg)
{
	json_t *j = api_error_json(status, msg);
	char *body = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return send_json(conn, status, body);
}

struct query_builder {
	char *buf;
	size_t len;
};

static enum MHD_Result add_query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				     const char *value)
{
	(void)kind;
	struct query_builder *q = cls;
	char *n = xasprintf("%s%s%s=%s", q->buf ? q->buf : "", q->buf ? "&" : "", key,
			    value ? value : "");
	free(q->buf);
	q->buf = n;
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	(void)version;
	struct api_server *s = cls;
	struct req_state *st = *con_cls;

	if (!st) {
		st = xcalloc(1, sizeof(*st));
		*con_cls = st;
		struct conn_track *t = conn_find(s, conn);
		if (t)
			t->in_request = true;
		peer_check(s, conn, st);
		if (st->denied)
			return send_error(conn, 403, "permission denied: the vcpud socket "
					  "accepts root and members of its group only");
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		uint64_t n;
		if (cl && parse_u64(cl, 0, UINT64_MAX, &n, NULL) == 0 &&
		    n > API_MAX_BODY_BYTES) {
			_cleanup_free_ char *msg = xasprintf(
				"request body of %llu bytes is larger than the limit of %d bytes",
				(unsigned long long)n, API_MAX_BODY_BYTES);
			/* answered before the body is read; MHD closes the connection */
			return send_error(conn, 413, msg);
		}
		return MHD_YES;
	}

	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (st->too_large)
			return MHD_YES; /* drain */
		if (st->len + n > API_MAX_BODY_BYTES) {
			st->too_large = true;
			free(st->buf);
			st->buf = NULL;
			st->len = st->cap = 0;
			return MHD_YES;
		}
		if (st->len + n + 1 > st->cap) {
			st->cap = (st->len + n + 1) * 2;
			st->buf = xrealloc(st->buf, st->cap);
		}
		memcpy(st->buf + st->len, upload_data, n);
		st->len += n;
		st->buf[st->len] = '\0';
		return MHD_YES;
	}

	if (st->too_large) {
		_cleanup_free_ char *msg =
			xasprintf("request body is larger than the limit of %d bytes",
				  API_MAX_BODY_BYTES);
		return send_error(conn, 413, msg);
	}

	if (s->reads_only && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		/* a change, in the middle of a tick: after it (MHD calls us
		 * again with the same state once resumed) */
		s->held = xrealloc(s->held, (s->n_held + 1) * sizeof(*s->held));
		s->held[s->n_held++] = conn;
		MHD_suspend_connection(conn);
		return MHD_YES;
	}

	struct query_builder q = { NULL, 0 };
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_query_arg, &q);
	struct api_request req = {
		.method = method,
		.path = url,
		.query = q.buf,
		.body = st->buf,
		.body_len = st->len,
		.actor = st->actor,
	};
	struct api_response resp;
	api_handle(s->ctx, &req, &resp);
	log_debug("%s %s %s -> %d", st->actor, method, url, resp.status);
	free(q.buf);
	return send_body(conn, resp.status, resp.body, resp.content_type);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)toe;
	struct api_server *s = cls;
	/* kept alive: waiting for its next request's headers from now */
	struct conn_track *t = conn_find(s, conn);
	if (t) {
		t->in_request = false;
		t->since_ns = now_mono_ns();
	}
	struct req_state *st = *con_cls;
	if (st) {
		free(st->buf);
		free(st);
		*con_cls = NULL;
	}
}

/* Is something already answering on this socket path? */
static bool socket_alive(const struct sockaddr_un *sa)
{
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	return connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
}

static int make_listen_socket(const struct api_server_config *cfg, struct error **err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(cfg->socket_path) >= sizeof(sa.sun_path))
		return error_set(err, EINVAL, "socket path %s is longer than %zu bytes",
				 cfg->socket_path, sizeof(sa.sun_path) - 1);
	strcpy(sa.sun_path, cfg->socket_path);

	struct stat stb;
	if (lstat(cfg->socket_path, &stb) == 0) {
		if (!S_ISSOCK(stb.st_mode))
			return error_set(err, EEXIST, "%s exists and is not a socket: refusing "
					 "to replace it", cfg->socket_path);
		if (socket_alive(&sa))
			return error_set(err, EADDRINUSE, "another vcpud is already listening "
					 "on %s", cfg->socket_path);
		/* stale socket left behind by a crash */
		if (unlink(cfg->socket_path) < 0)
			return error_set_errno(err, errno, "cannot remove stale socket %s",
					       cfg->socket_path);
	}

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return error_set_errno(err, errno, "cannot create socket");
	mode_t old = umask(0117); /* socket file 0660 from the start */
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	umask(old);
	if (rc < 0) {
		close(fd);
		return error_set_errno(err, e, "cannot bind %s", cfg->socket_path);
	}
	if (cfg->group_set && chown(cfg->socket_path, (uid_t)-1, cfg->group) < 0) {
		e = errno;
		close(fd);
		unlink(cfg->socket_path);
		return error_set_errno(err, e, "cannot give %s to group %u", cfg->socket_path,
				       (unsigned)cfg->group);
	}
	if (listen(fd, SOMAXCONN) < 0) {
		e = errno;
		close(fd);
		unlink(cfg->socket_path);
		return error_set_errno(err, e, "cannot listen on %s", cfg->socket_path);
	}
	return fd;
}

int api_server_start(struct api_ctx *ctx, const struct api_server_config *cfg,
		     struct api_server **out, struct error **err)
{
	int fd = make_listen_socket(cfg, err);
	if (fd < 0)
		return -1;
	struct api_server *s = xcalloc(1, sizeof(*s));
	s->ctx = ctx;
	s->listen_fd = fd;
	s->socket_path = xstrdup(cfg->socket_path);
	s->group_set = cfg->group_set;
	s->group = cfg->group;
	s->self_uid = geteuid();
	s->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
				  on_request, s, MHD_OPTION_LISTEN_SOCKET, fd,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				  MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)30,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned int)API_CONN_LIMIT,
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024),
				  MHD_OPTION_END);
	if (!s->mhd) {
		close(fd);
		unlink(s->socket_path);
		free(s->socket_path);
		free(s);
		return error_set(err, EIO, "cannot start the HTTP server on %s",
				 cfg->socket_path);
	}
	*out = s;
	return 0;
}

int api_server_fd(const struct api_server *s)
{
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	return di ? di->epoll_fd : -1;
}

int api_server_timeout_ms(const struct api_server *s)
{
	MHD_UNSIGNED_LONG_LONG t;
	if (MHD_get_timeout(s->mhd, &t) != MHD_YES)
		return -1;
	return t > 60000 ? 60000 : (int)t;
}

void api_server_run(struct api_server *s)
{
	drop_slow(s);
	MHD_run(s->mhd);
}

void api_server_serve_reads(struct api_server *s)
{
	if (!s)
		return;
	s->reads_only = true;
	MHD_run(s->mhd);
	s->reads_only = false;
}

void api_server_resume(struct api_server *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_held; i++)
		MHD_resume_connection(s->held[i]);
	s->n_held = 0;
}

void api_server_stop(struct api_server *s)
{
	if (!s)
		return;
	api_server_resume(s);
	/* MHD closes the listen socket it was given */
	MHD_stop_daemon(s->mhd);
	unlink(s->socket_path);
	free(s->socket_path);
	free(s->held);
	free(s->conns);
	free(s);
}
