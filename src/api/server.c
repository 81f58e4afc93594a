/* server.c - the API's HTTP/1.1 transport: libmicrohttpd on a UNIX socket
 * and, with --listen, on a TCP address (HTTPS through MHD's GnuTLS, or
 * plain HTTP on loopback for tests), all run from the daemon's
 * single-threaded loop (each listener one MHD daemon in external epoll
 * mode, their epoll fds under one of ours: handlers and the store are
 * never touched from two threads).
 *
 * Access control. The UNIX socket: peers are identified with SO_PEERCRED
 * and only root, the daemon's own uid and members of the configured group
 * (the peer's own groups, SO_PEERGROUPS) are served; the audit log names
 * them "uid:N". TCP: every request needs "Authorization: Bearer TOKEN" of
 * the token file (auth.h; reloaded by api_server_reload_tokens() on
 * SIGHUP), else 401; a "read" token may GET and HEAD only, else 403; the
 * audit log names it "token:NAME". Bodies are limited to
 * API_MAX_BODY_BYTES: a declared Content-Length above it is refused before
 * the body is read; a chunked body that grows past it is drained and
 * refused.
 *
 * Slow clients, per listener: up to API_CONN_LIMIT connections; while more
 * than API_CONN_LIMIT - API_CONN_RESERVE are open, the connections that
 * have been sending their request's headers (or, kept alive, waiting to
 * send the next; or, TLS, not done with the handshake) for
 * API_SLOW_HEADERS_MS or more are dropped, the oldest first, down to that
 * many. And per peer (a uid on the socket, an IP address on TCP): a peer
 * with more than API_PEER_LIMIT connections open loses its own oldest
 * connection that is not in the middle of a request, so one client holding
 * half-open connections locks out neither root nor anybody else, and a
 * client behind the same address (NAT, loopback) still gets through. A
 * client that sends a whole request is never dropped for it. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "vcpud/api.h"
#include "vcpud/auth.h"
#include "vcpud/log.h"
#include "vcpud/util.h"

#define API_CONN_LIMIT 1024
#define API_CONN_RESERVE 256
#define API_SLOW_HEADERS_MS 1000
#define API_PEER_LIMIT 64
/* a listener a TLS reload replaced serves its open connections this long */
#define API_DRAIN_S 30
/* TLS 1.2 and 1.3 only */
#define API_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
/* the private key or certificate file is not larger than this */
#define API_PEM_MAX (256 * 1024)

/* Who a connection belongs to, for the per-peer limit. */
struct peer_key {
	int family;                /* AF_UNIX: uid; AF_INET/AF_INET6: addr */
	uint32_t uid;
	uint8_t addr[16];
};

/* An open connection: since when it has been without a whole request. */
struct conn_track {
	struct MHD_Connection *c;
	int fd;
	int64_t since_ns;
	bool in_request;   /* its headers are in: a request is being served */
	struct peer_key peer;
};

struct api_server;

/* One MHD daemon: the UNIX socket, or the TCP address of --listen. */
struct listener {
	struct api_server *s;
	struct MHD_Daemon *mhd;
	bool tcp;
	char *name;                     /* for messages: the path, or the URL */
	char *cert_pem, *key_pem;       /* TLS: what MHD was given */
	struct conn_track *conns;       /* every open connection */
	size_t n_conns, cap_conns;
	int64_t drain_until_ns;         /* replaced (a TLS reload): serves its open
					 * connections until then, accepts none */
};

/* The socket is slot 0; --listen is slot 1 or 2, the other one holding the
 * listener a TLS reload replaced while it drains. Slots never move: MHD's
 * callbacks hold their address. */
#define L_SLOTS 3

struct api_server {
	struct api_ctx *ctx;
	struct listener l[L_SLOTS];
	int tcp;                        /* --listen's slot, 0: none */
	char *tls_cert, *tls_key;       /* for a reload */
	int epfd;                       /* the listeners' epoll fds */
	char *socket_path;
	bool group_set;
	gid_t group;
	uid_t self_uid;
	bool reads_only;                /* inside api_server_serve_reads() */
	struct MHD_Connection **held;   /* suspended until api_server_resume() */
	size_t n_held;
	struct pending *pending;        /* suspended until their answer comes */
	size_t n_pending;
	struct pending *early;          /* answers given before the request waited */
	size_t n_early;
	bool stopping;                  /* api_server_stop() runs */
	char *token_file;
	struct auth_tokens tokens;
	int64_t auth_log_ns;            /* refusals are logged once a second */
	unsigned auth_unlogged;
};

static struct conn_track *conn_find(struct listener *l, struct MHD_Connection *c)
{
	for (size_t i = 0; i < l->n_conns; i++)
		if (l->conns[i].c == c)
			return &l->conns[i];
	return NULL;
}

static int cmp_since(const void *a, const void *b)
{
	const struct conn_track *x = *(struct conn_track *const *)a, *y = *(struct conn_track *const *)b;
	return (x->since_ns > y->since_ns) - (x->since_ns < y->since_ns);
}

static bool conn_idle(const struct conn_track *t)
{
	return !t->in_request && t->fd >= 0;
}

static void conn_drop(struct conn_track *t)
{
	shutdown(t->fd, SHUT_RDWR); /* MHD closes it as a client that left */
	t->fd = -1;                 /* once */
}

/* While more than API_CONN_LIMIT - API_CONN_RESERVE connections are open:
 * shut down the oldest that have been without a whole request for
 * API_SLOW_HEADERS_MS. */
static void drop_slow(struct listener *l)
{
	size_t open = 0;
	for (size_t i = 0; i < l->n_conns; i++)
		open += l->conns[i].fd >= 0;
	if (open <= API_CONN_LIMIT - API_CONN_RESERVE)
		return;
	int64_t now = now_mono_ns();
	struct conn_track **v = xcalloc(l->n_conns, sizeof(*v));
	size_t n = 0;
	for (size_t i = 0; i < l->n_conns; i++) {
		struct conn_track *t = &l->conns[i];
		if (conn_idle(t) && now - t->since_ns >= (int64_t)API_SLOW_HEADERS_MS * 1000000)
			v[n++] = t;
	}
	qsort(v, n, sizeof(*v), cmp_since);
	size_t dropped = 0;
	for (size_t i = 0; i < n && open > API_CONN_LIMIT - API_CONN_RESERVE; i++, open--) {
		conn_drop(v[i]);
		dropped++;
	}
	free(v);
	if (dropped) {
		l->s->ctx->conns_dropped_slow += dropped;
		log_warn("API %s: %zu connections open: dropped %zu that sent no whole request in "
			 "%d ms (%llu so far)", l->name, l->n_conns, dropped, API_SLOW_HEADERS_MS,
			 (unsigned long long)l->s->ctx->conns_dropped_slow);
	}
}

static void peer_name(const struct peer_key *k, char *out, size_t sz)
{
	if (k->family == AF_UNIX)
		snprintf(out, sz, "uid %u", (unsigned)k->uid);
	else if (!inet_ntop(k->family, k->addr, out, (socklen_t)sz))
		snprintf(out, sz, "?");
}

/* A new connection of a peer that has more than API_PEER_LIMIT open: drop
 * its oldest one that is not in a request (the new one if all are). */
static void limit_peer(struct listener *l, struct conn_track *nc)
{
	size_t n = 0;
	struct conn_track *oldest = NULL;
	for (size_t i = 0; i < l->n_conns; i++) {
		struct conn_track *t = &l->conns[i];
		if (t->fd < 0 || memcmp(&t->peer, &nc->peer, sizeof(nc->peer)) != 0)
			continue;
		n++;
		if (conn_idle(t) && (!oldest || t->since_ns < oldest->since_ns))
			oldest = t;
	}
	if (n <= API_PEER_LIMIT)
		return;
	conn_drop(oldest ? oldest : nc);
	uint64_t d = ++l->s->ctx->conns_dropped_peer;
	if (d == 1 || (d & (d - 1)) == 0) { /* the 1st, 2nd, 4th, 8th... */
		char who[INET6_ADDRSTRLEN + 8];
		peer_name(&nc->peer, who, sizeof(who));
		log_warn("API %s: %s has more than %d connections open: dropped its oldest "
			 "idle one (%llu dropped for this so far)", l->name, who, API_PEER_LIMIT,
			 (unsigned long long)d);
	}
}

static void peer_of(struct listener *l, struct MHD_Connection *c, int fd, struct peer_key *k)
{
	memset(k, 0, sizeof(*k));
	if (!l->tcp) {
		struct ucred cred;
		socklen_t len = sizeof(cred);
		k->family = AF_UNIX;
		k->uid = fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ?
				 (uint32_t)cred.uid : UINT32_MAX;
		return;
	}
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;
	if (sa && sa->sa_family == AF_INET) {
		k->family = AF_INET;
		memcpy(k->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa && sa->sa_family == AF_INET6) {
		k->family = AF_INET6;
		memcpy(k->addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	}
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	(void)socket_context;
	struct listener *l = cls;
	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		struct conn_track *t = conn_find(l, c);
		if (t)
			*t = l->conns[--l->n_conns];
		return;
	}
	if (l->n_conns == l->cap_conns) {
		l->cap_conns = l->cap_conns ? 2 * l->cap_conns : 64;
		l->conns = xrealloc(l->conns, l->cap_conns * sizeof(*l->conns));
	}
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct conn_track *t = &l->conns[l->n_conns++];
	*t = (struct conn_track){ c, ci ? ci->connect_fd : -1, now_mono_ns(), false, { 0 } };
	peer_of(l, c, t->fd, &t->peer);
	if (t->fd >= 0)
		limit_peer(l, t);
}

/* Per-request state kept in MHD's con_cls between calls. */
struct req_state {
	char *buf;
	size_t len, cap;
	bool too_large;
	bool denied;
	char actor[AUTH_NAME_MAX + 8];
	/* an answer that comes later (API_STATUS_PENDING): its ticket, and
	 * the answer once api_server's deliver() has it */
	uint64_t ticket;
	bool answered;
	int answer_status;
	char *answer_body;
};

/* A request waiting for its answer (suspended), or an answer that came
 * before its request was suspended (conn NULL: the ledger answered at once). */
struct pending {
	uint64_t ticket;
	struct MHD_Connection *conn;
	struct req_state *st;
	int status;
	char *body;
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

/* The UNIX socket: who is on the other end, and may they talk to us? */
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

/* Queue the answer: body (freed here; NULL: none), its Content-Type
 * (NULL: JSON), and a WWW-Authenticate challenge (NULL: none). */
static enum MHD_Result send_body(struct MHD_Connection *conn, int status, char *body,
				 const char *content_type, const char *www_auth)
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
	if (www_auth)
		MHD_add_response_header(r, "WWW-Authenticate", www_auth);
	enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
	MHD_destroy_response(r);
	return ret;
}

/* An answer that came later, counted as the router counts its own. */
static void count_status(struct api_server *s, int status)
{
	if (status >= 100 && status < 600)
		s->ctx->requests[status - 100]++;
}

/* Keep a request waiting: it runs again when api_server_resume() is called
 * (MHD calls us again with the same state). */
static enum MHD_Result hold(struct api_server *s, struct MHD_Connection *conn)
{
	s->held = xrealloc(s->held, (s->n_held + 1) * sizeof(*s->held));
	s->held[s->n_held++] = conn;
	MHD_suspend_connection(conn);
	return MHD_YES;
}

/* ctx->deliver: the answer to a request that was told API_STATUS_PENDING
 * (body: JSON text, owned from here). */
static void deliver(void *data, uint64_t ticket, int status, char *body)
{
	struct api_server *s = data;
	for (size_t i = 0; i < s->n_pending; i++) {
		struct pending *p = &s->pending[i];
		if (p->ticket != ticket)
			continue;
		p->st->answered = true;
		p->st->answer_status = status;
		free(p->st->answer_body);
		p->st->answer_body = body;
		MHD_resume_connection(p->conn);
		s->pending[i] = s->pending[--s->n_pending];
		return;
	}
	/* the request has not been suspended yet: the handler that made the
	 * ticket is still running (a ledger that answers at once) */
	s->early = xrealloc(s->early, (s->n_early + 1) * sizeof(*s->early));
	s->early[s->n_early++] = (struct pending){ ticket, NULL, NULL, status, body };
}

static void wake_held(void *data)
{
	api_server_resume(data);
}

/* An error the server answers itself (the router never saw the request):
 * counted with the router's answers for vcpud_api_requests_total. */
static enum MHD_Result send_error_h(struct api_server *s, struct MHD_Connection *conn,
				   int status, const char *msg, const char *www_auth)
{
	json_t *j = api_error_json(status, msg);
	char *body = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	s->ctx->requests[status - 100]++;
	return send_body(conn, status, body, NULL, www_auth);
}

static enum MHD_Result send_error(struct api_server *s, struct MHD_Connection *conn, int status,
				  const char *msg)
{
	return send_error_h(s, conn, status, msg, NULL);
}

static bool is_read(const char *method)
{
	return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

/* A TCP request: its bearer token, and what the token's role allows. An
 * answer queued (401, 403) when refused, else MHD_YES with st->actor set
 * and *ok. */
static enum MHD_Result token_check(struct listener *l, struct MHD_Connection *conn,
				   const char *method, struct req_state *st, bool *ok)
{
	struct api_server *s = l->s;
	*ok = false;
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_AUTHORIZATION);
	const char *tok;
	size_t len;
	const struct auth_token *t = NULL;
	if (h && auth_bearer(h, &tok, &len) == 0)
		t = auth_tokens_find(&s->tokens, tok, len);
	if (!t) {
		s->auth_unlogged++;
		int64_t now = now_mono_ns();
		if (now - s->auth_log_ns >= 1000000000LL) {
			char who[INET6_ADDRSTRLEN + 8] = "?";
			struct conn_track *ct = conn_find(l, conn);
			if (ct)
				peer_name(&ct->peer, who, sizeof(who));
			log_warn("API %s: refused %u request(s) without a valid token, the last "
				 "from %s", l->name, s->auth_unlogged, who);
			s->auth_log_ns = now;
			s->auth_unlogged = 0;
		}
		if (!h)
			return send_error_h(s, conn, 401, "this API needs a bearer token "
					    "(Authorization: Bearer TOKEN)", "Bearer realm=\"vcpud\"");
		return send_error_h(s, conn, 401, "the bearer token is not valid",
				    "Bearer realm=\"vcpud\", error=\"invalid_token\"");
	}
	snprintf(st->actor, sizeof(st->actor), "token:%s", t->name);
	if (t->role == AUTH_ROLE_READ && !is_read(method)) {
		_cleanup_free_ char *msg = xasprintf("token %s has the role read: it may GET, not "
						     "%s", t->name, method);
		return send_error(s, conn, 403, msg);
	}
	*ok = true;
	return MHD_YES;
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
	struct listener *l = cls;
	struct api_server *s = l->s;
	struct req_state *st = *con_cls;

	if (!st) {
		st = xcalloc(1, sizeof(*st));
		*con_cls = st;
		struct conn_track *t = conn_find(l, conn);
		if (t)
			t->in_request = true;
		if (l->tcp) {
			bool ok;
			enum MHD_Result r = token_check(l, conn, method, st, &ok);
			if (!ok)
				return r; /* answered before any body is read */
		} else {
			peer_check(s, conn, st);
			if (st->denied)
				return send_error(s, conn, 403, "permission denied: the vcpud socket "
						  "accepts root and members of its group only");
		}
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		uint64_t n;
		if (cl && parse_u64(cl, 0, UINT64_MAX, &n, NULL) == 0 &&
		    n > API_MAX_BODY_BYTES) {
			_cleanup_free_ char *msg = xasprintf(
				"request body of %llu bytes is larger than the limit of %d bytes",
				(unsigned long long)n, API_MAX_BODY_BYTES);
			/* answered before the body is read; MHD closes the connection */
			return send_error(s, conn, 413, msg);
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
		return send_error(s, conn, 413, msg);
	}

	if (st->answered) {
		/* resumed by deliver(): the answer came */
		st->answered = false;
		st->ticket = 0;
		log_debug("%s %s %s -> %d (after waiting)", st->actor, method, url,
			  st->answer_status);
		count_status(s, st->answer_status);
		return send_body(conn, st->answer_status, steal_ptr(&st->answer_body), NULL, NULL);
	}

	if (s->stopping)
		/* a held request resumed by api_server_stop(): the ledger and
		 * the rest are going away */
		return send_error(s, conn, 503, "vcpud is stopping");

	if (s->reads_only && !is_read(method))
		/* a change, in the middle of a tick: after it (MHD calls us
		 * again with the same state once resumed) */
		return hold(s, conn);

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
	free(q.buf);
	if (resp.status == API_STATUS_HOLD) {
		free(resp.body);
		return hold(s, conn);
	}
	if (resp.status == API_STATUS_PENDING) {
		free(resp.body);
		for (size_t i = 0; i < s->n_early; i++) {
			if (s->early[i].ticket != resp.ticket)
				continue;
			int status = s->early[i].status;
			char *body = s->early[i].body;
			s->early[i] = s->early[--s->n_early];
			log_debug("%s %s %s -> %d", st->actor, method, url, status);
			count_status(s, status);
			return send_body(conn, status, body, NULL, NULL);
		}
		st->ticket = resp.ticket;
		s->pending = xrealloc(s->pending, (s->n_pending + 1) * sizeof(*s->pending));
		s->pending[s->n_pending++] = (struct pending){ resp.ticket, conn, st, 0, NULL };
		MHD_suspend_connection(conn);
		return MHD_YES;
	}
	log_debug("%s %s %s -> %d", st->actor, method, url, resp.status);
	return send_body(conn, resp.status, resp.body, resp.content_type, NULL);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)toe;
	struct listener *l = cls;
	/* kept alive: waiting for its next request's headers from now */
	struct conn_track *t = conn_find(l, conn);
	if (t) {
		t->in_request = false;
		t->since_ns = now_mono_ns();
	}
	struct req_state *st = *con_cls;
	if (st) {
		struct api_server *s = l->s;
		for (size_t i = 0; i < s->n_pending; i++)
			if (s->pending[i].st == st)
				s->pending[i] = s->pending[--s->n_pending];
		free(st->answer_body);
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

int api_listen_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len,
		     struct error **err)
{
	memset(ss, 0, sizeof(*ss));
	const char *colon = text ? strrchr(text, ':') : NULL;
	if (!colon || colon == text)
		return error_set(err, EINVAL, "listen address '%s' is not ADDR:PORT or "
				 "[IPV6]:PORT", text ? text : "");
	uint64_t port;
	if (parse_u64(colon + 1, 1, 65535, &port, NULL) < 0)
		return error_set(err, EINVAL, "listen address '%s': port '%s' is not 1..65535",
				 text, colon + 1);
	char host[INET6_ADDRSTRLEN + 2];
	size_t hl = (size_t)(colon - text);
	if (hl >= sizeof(host))
		return error_set(err, EINVAL, "listen address '%s': '%.*s' is not an IP address",
				 text, (int)hl, text);
	memcpy(host, text, hl);
	host[hl] = '\0';
	if (host[0] == '[') {
		if (hl < 3 || host[hl - 1] != ']')
			return error_set(err, EINVAL, "listen address '%s': an IPv6 address is "
					 "written [ADDR]:PORT", text);
		host[hl - 1] = '\0';
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
			return error_set(err, EINVAL, "listen address '%s': '%s' is not an IPv6 "
					 "address", text, host + 1);
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a);
		return 0;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
		return error_set(err, EINVAL, "listen address '%s': '%s' is not an IPv4 address "
				 "(names are not looked up; IPv6 is [ADDR]:PORT)", text, host);
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	*len = sizeof(*a);
	return 0;
}

bool api_addr_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
	return false;
}

static int make_tcp_socket(const struct sockaddr_storage *ss, socklen_t sl, const char *text,
			   struct error **err)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return error_set_errno(err, errno, "cannot create a socket for %s", text);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss->ss_family == AF_INET6) /* [::] means IPv6 only, as written */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)ss, sl) < 0 || listen(fd, SOMAXCONN) < 0) {
		int e = errno;
		close(fd);
		return error_set_errno(err, e, "cannot listen on %s", text);
	}
	return fd;
}

/* Read the certificate chain and its key, and check them with GnuTLS
 * first, so that a wrong file is said as such (MHD would only fail). */
static int tls_material(const char *cert, const char *key, char **cert_pem, char **key_pem,
			struct error **err)
{
	struct stat st;
	if (stat(key, &st) == 0 && (st.st_mode & S_IROTH))
		return error_set(err, EACCES, "TLS key %s may be read by anyone (mode %04o): "
				 "chmod o-r it", key, (unsigned)(st.st_mode & 07777));
	size_t cl, kl;
	_cleanup_free_ char *c = NULL, *k = NULL;
	if (read_file_max(cert, "TLS certificate", API_PEM_MAX, &c, &cl, err) < 0 ||
	    read_file_max(key, "TLS key", API_PEM_MAX, &k, &kl, err) < 0)
		return -1;
	gnutls_certificate_credentials_t cred;
	if (gnutls_certificate_allocate_credentials(&cred) < 0)
		return error_set(err, ENOMEM, "GnuTLS: cannot allocate credentials");
	gnutls_datum_t cd = { (unsigned char *)c, (unsigned)cl };
	gnutls_datum_t kd = { (unsigned char *)k, (unsigned)kl };
	int rc = gnutls_certificate_set_x509_key_mem2(cred, &cd, &kd, GNUTLS_X509_FMT_PEM,
						      NULL, 0);
	gnutls_certificate_free_credentials(cred);
	if (rc < 0) {
		explicit_bzero(k, kl);
		return error_set(err, EINVAL, "TLS certificate %s with key %s: %s", cert, key,
				 gnutls_strerror(rc));
	}
	gnutls_x509_crt_t crt;
	if (gnutls_x509_crt_init(&crt) == 0) {
		if (gnutls_x509_crt_import(crt, &cd, GNUTLS_X509_FMT_PEM) == 0) {
			time_t exp = gnutls_x509_crt_get_expiration_time(crt);
			if (exp != (time_t)-1 && exp < time(NULL))
				log_warn("TLS certificate %s has expired: clients will refuse it",
					 cert);
		}
		gnutls_x509_crt_deinit(crt);
	}
	*cert_pem = steal_ptr(&c);
	*key_pem = steal_ptr(&k);
	return 0;
}

static void listener_free(struct listener *l)
{
	if (l->mhd) {
		const union MHD_DaemonInfo *di =
			MHD_get_daemon_info(l->mhd, MHD_DAEMON_INFO_EPOLL_FD);
		if (di && l->s)
			epoll_ctl(l->s->epfd, EPOLL_CTL_DEL, di->epoll_fd, NULL);
		MHD_stop_daemon(l->mhd); /* closes the listen socket it was given,
					  * unless quiesced */
	}
	free(l->name);
	free(l->cert_pem);
	if (l->key_pem) {
		explicit_bzero(l->key_pem, strlen(l->key_pem));
		free(l->key_pem);
	}
	free(l->conns);
	memset(l, 0, sizeof(*l));
}

static int listener_start(struct api_server *s, struct listener *l, int fd, bool tls,
			  struct error **err)
{
	l->s = s;
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | (tls ? MHD_USE_TLS : 0);
	struct MHD_OptionItem tls_opts[] = {
		{ MHD_OPTION_HTTPS_MEM_CERT, 0, l->cert_pem },
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, l->key_pem },
		{ MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)API_TLS_PRIORITIES },
		{ MHD_OPTION_END, 0, NULL },
	};
	l->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, l,
				  MHD_OPTION_LISTEN_SOCKET, fd,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, l,
				  MHD_OPTION_NOTIFY_CONNECTION, on_connection, l,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)30,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned int)API_CONN_LIMIT,
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024),
				  MHD_OPTION_ARRAY, tls ? tls_opts : &tls_opts[3],
				  MHD_OPTION_END);
	if (!l->mhd) {
		close(fd);
		return error_set(err, EIO, "cannot start the HTTP%s server on %s",
				 tls ? "S" : "", l->name);
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(l->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	struct epoll_event ev = { .events = EPOLLIN };
	if (!di || epoll_ctl(s->epfd, EPOLL_CTL_ADD, di->epoll_fd, &ev) < 0)
		return error_set_errno(err, errno, "cannot watch the HTTP server on %s", l->name);
	return 0;
}

static int tcp_start(struct api_server *s, const struct api_server_config *cfg,
		     struct error **err)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	if (api_listen_parse(cfg->listen, &ss, &sl, err) < 0)
		return -1;
	bool tls = !cfg->insecure_http;
	if (!tls && !api_addr_loopback(&ss))
		return error_set(err, EINVAL, "--insecure-http serves plain HTTP on loopback "
				 "addresses only, not on %s (tokens would cross the network "
				 "in the clear)", cfg->listen);
	if (tls && (!cfg->tls_cert || !cfg->tls_key))
		return error_set(err, EINVAL, "--listen %s needs --tls-cert and --tls-key "
				 "(or --insecure-http on loopback)", cfg->listen);
	if (!cfg->token_file)
		return error_set(err, EINVAL, "--listen %s needs --token-file: every request "
				 "over TCP is authenticated", cfg->listen);
	if (auth_tokens_load(cfg->token_file, &s->tokens, err) < 0)
		return -1;
	if (s->tokens.n == 0)
		log_warn("token file %s has no token: every request on %s will be refused",
			 cfg->token_file, cfg->listen);
	s->token_file = xstrdup(cfg->token_file);
	s->tcp = 1;
	struct listener *l = &s->l[1];
	l->tcp = true;
	l->name = xasprintf("%s://%s", tls ? "https" : "http", cfg->listen);
	if (tls && tls_material(cfg->tls_cert, cfg->tls_key, &l->cert_pem, &l->key_pem, err) < 0)
		return -1;
	if (tls) {
		s->tls_cert = xstrdup(cfg->tls_cert);
		s->tls_key = xstrdup(cfg->tls_key);
	}
	int fd = make_tcp_socket(&ss, sl, cfg->listen, err);
	if (fd < 0)
		return -1;
	return listener_start(s, l, fd, tls, err);
}

int api_server_start(struct api_ctx *ctx, const struct api_server_config *cfg,
		     struct api_server **out, struct error **err)
{
	struct api_server *s = xcalloc(1, sizeof(*s));
	s->ctx = ctx;
	ctx->deliver = deliver;
	ctx->deliver_data = s;
	ctx->wake_held = wake_held;
	ctx->wake_held_data = s;
	s->group_set = cfg->group_set;
	s->group = cfg->group;
	s->self_uid = geteuid();
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0) {
		free(s);
		return error_set_errno(err, errno, "epoll_create1");
	}
	/* TCP first: its mistakes (a file, an address) are said before the
	 * socket is made */
	if (cfg->listen && tcp_start(s, cfg, err) < 0)
		goto fail;
	int fd = make_listen_socket(cfg, err);
	if (fd < 0)
		goto fail;
	s->socket_path = xstrdup(cfg->socket_path);
	struct listener *l = &s->l[0];
	l->name = xstrdup(cfg->socket_path);
	if (listener_start(s, l, fd, false, err) < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	api_server_stop(s);
	return -1;
}

int api_server_reload_tokens(struct api_server *s, struct error **err)
{
	if (!s || !s->token_file)
		return 0;
	struct auth_tokens t;
	if (auth_tokens_load(s->token_file, &t, err) < 0)
		return -1;
	auth_tokens_clear(&s->tokens);
	s->tokens = t;
	return (int)t.n;
}

int api_server_reload_tls(struct api_server *s, struct error **err)
{
	if (!s || !s->tls_cert)
		return 0;
	struct listener *old = &s->l[s->tcp];
	struct listener *nl = &s->l[s->tcp == 1 ? 2 : 1];
	char *cert = NULL, *key = NULL;
	if (tls_material(s->tls_cert, s->tls_key, &cert, &key, err) < 0)
		return -1;
	if (nl->mhd)
		listener_free(nl); /* the listener of an earlier reload, still draining */
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(old->mhd, MHD_DAEMON_INFO_LISTEN_FD);
	int fd = di ? fcntl(di->listen_fd, F_DUPFD_CLOEXEC, 0) : -1;
	if (fd < 0) {
		free(cert);
		explicit_bzero(key, strlen(key));
		free(key);
		return error_set_errno(err, errno, "TLS reload: cannot share the listening socket");
	}
	/* the new listener accepts on the same socket before the old one
	 * stops accepting: no connection is refused in between */
	nl->tcp = true;
	nl->name = xstrdup(old->name);
	nl->cert_pem = cert;
	nl->key_pem = key;
	if (listener_start(s, nl, fd, true, err) < 0) {
		listener_free(nl);
		return error_wrap(err, "TLS reload: the old certificate stays");
	}
	MHD_socket q = MHD_quiesce_daemon(old->mhd);
	if (q != MHD_INVALID_SOCKET)
		close(q);
	old->drain_until_ns = now_mono_ns() + (int64_t)API_DRAIN_S * 1000000000;
	s->tcp = (int)(nl - s->l);
	return 1;
}

int api_server_fd(const struct api_server *s)
{
	return s->epfd;
}

int api_server_timeout_ms(const struct api_server *s)
{
	int best = -1;
	for (size_t i = 0; i < L_SLOTS; i++) {
		MHD_UNSIGNED_LONG_LONG t;
		if (!s->l[i].mhd)
			continue;
		if (s->l[i].drain_until_ns)
			best = best < 0 || best > 1000 ? 1000 : best; /* to end the drain */
		if (MHD_get_timeout(s->l[i].mhd, &t) != MHD_YES)
			continue;
		int ms = t > 60000 ? 60000 : (int)t;
		if (best < 0 || ms < best)
			best = ms;
	}
	return best;
}

/* Whether a request of listener l is suspended (held or pending). */
static bool waits_on(struct api_server *s, struct listener *l)
{
	for (size_t i = 0; i < s->n_held; i++)
		if (conn_find(l, s->held[i]))
			return true;
	for (size_t i = 0; i < s->n_pending; i++)
		if (conn_find(l, s->pending[i].conn))
			return true;
	return false;
}

void api_server_run(struct api_server *s)
{
	for (size_t i = 0; i < L_SLOTS; i++) {
		struct listener *l = &s->l[i];
		if (!l->mhd)
			continue;
		drop_slow(l);
		MHD_run(l->mhd);
		/* a replaced listener goes once its connections have, or after
		 * API_DRAIN_S; not while one of its requests is suspended (MHD
		 * refuses to stop with one: it waits for the ledger, or for the
		 * admission before it, both bounded) */
		if (l->drain_until_ns && (l->n_conns == 0 || now_mono_ns() >= l->drain_until_ns) &&
		    !waits_on(s, l))
			listener_free(l);
	}
}

void api_server_serve_reads(struct api_server *s)
{
	if (!s)
		return;
	s->reads_only = true;
	for (size_t i = 0; i < L_SLOTS; i++)
		if (s->l[i].mhd)
			MHD_run(s->l[i].mhd);
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
	s->stopping = true;
	api_server_resume(s);
	/* requests still waiting for the ledger: answered, not dropped */
	while (s->n_pending) {
		json_t *j = api_error_json(503, "vcpud is stopping");
		deliver(s, s->pending[0].ticket, 503, json_dumps(j, JSON_COMPACT));
		json_decref(j);
	}
	/* MHD stops a daemon only once no connection is suspended: the ones
	 * just resumed are taken up by a last run */
	for (size_t i = 0; i < L_SLOTS; i++)
		if (s->l[i].mhd)
			MHD_run(s->l[i].mhd);
	for (size_t i = 0; i < L_SLOTS; i++)
		listener_free(&s->l[i]);
	for (size_t i = 0; i < s->n_early; i++)
		free(s->early[i].body);
	free(s->early);
	free(s->pending);
	s->ctx->deliver = NULL;
	s->ctx->wake_held = NULL;
	if (s->socket_path)
		unlink(s->socket_path);
	if (s->epfd >= 0)
		close(s->epfd);
	auth_tokens_clear(&s->tokens);
	free(s->token_file);
	free(s->tls_cert);
	free(s->tls_key);
	free(s->socket_path);
	free(s->held);
	free(s);
}
