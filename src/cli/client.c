/* client.c - one HTTP/JSON exchange with vcpud over its UNIX socket or, for
 * --url, over TCP (HTTPS through tls.c, or plain HTTP to loopback): an
 * HTTP/1.1 request with "Connection: close" on a non-blocking socket, every
 * step under one deadline, and the reply parsed by client_parse_head() and
 * client_parse_reply() (pure functions: tests/unit/test_cli_http.c and the
 * fuzz target fuzz_http take them apart).
 *
 * Why not libcurl (DESIGN.md named it for this side of the socket):
 * linking it made every vcpuctl run load 30 more shared libraries (TLS,
 * Kerberos, LDAP, SSH, HTTP/2...), 3.8 ms of CPU before main() against
 * 0.4 ms now, which bounded a script registering VMs one vcpuctl run at a
 * time at about 200 a second on 2 cores (issue 10's bench-scale). All this
 * side needs is one request and one reply from vcpud, on a local socket.
 * Failures to connect are classified so that vcpuctl can tell "daemon not
 * running" from "permission denied" and from a daemon that answered with
 * an error. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/tls.h"
#include "vcpud/util.h"

/* --- the reply's parser -------------------------------------------------- */

/* The end of the line starting at p (its '\n'), or NULL when the buffer
 * ends first; *next is the start of the line after it. A line ends with
 * CRLF or a bare LF. */
static const char *line_end(const char *p, const char *end, const char **next)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	if (!nl)
		return NULL;
	*next = nl + 1;
	return nl > p && nl[-1] == '\r' ? nl - 1 : nl;
}

static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* `value` (of vlen bytes, spaces trimmed) as a decimal count <= max. */
static bool parse_count(const char *value, size_t vlen, uint64_t max, uint64_t *out)
{
	if (vlen == 0 || vlen > 20)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < vlen; i++) {
		if (value[i] < '0' || value[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(value[i] - '0');
		if (v > max)
			return false;
	}
	*out = v;
	return true;
}

/* The head of one response: its status line and header fields. */
static int parse_one_head(const char *buf, size_t len, struct client_head *h,
			  struct error **err)
{
	const char *p = buf, *end = buf + len, *next;
	const char *le = line_end(p, end, &next);
	if (!le)
		return len > CLIENT_MAX_HEAD_BYTES ? error_set(err, EPROTO, "status line too long") : 1;
	/* HTTP/1.x SP 3DIGIT [SP reason] */
	if (le - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9' ||
	    p[8] != ' ' || (le - p > 12 && p[12] != ' '))
		return error_set(err, EPROTO, "not an HTTP/1.x status line: '%.*s'",
				 (int)(le - p > 40 ? 40 : le - p), p);
	int status = 0;
	for (int i = 9; i < 12; i++) {
		if (p[i] < '0' || p[i] > '9')
			return error_set(err, EPROTO, "bad status code '%.3s'", p + 9);
		status = status * 10 + (p[i] - '0');
	}
	if (status < 100)
		return error_set(err, EPROTO, "bad status code %d", status);
	memset(h, 0, sizeof(*h));
	h->status = status;
	for (p = next;; p = next) {
		le = line_end(p, end, &next);
		if (!le)
			return (size_t)(end - buf) > CLIENT_MAX_HEAD_BYTES ?
				       error_set(err, EPROTO, "reply header larger than %d bytes",
						 CLIENT_MAX_HEAD_BYTES) : 1;
		if ((size_t)(next - buf) > CLIENT_MAX_HEAD_BYTES)
			return error_set(err, EPROTO, "reply header larger than %d bytes",
					 CLIENT_MAX_HEAD_BYTES);
		if (le == p)
			break; /* the empty line: the head ends */
		const char *colon = memchr(p, ':', (size_t)(le - p));
		if (!colon || colon == p)
			return error_set(err, EPROTO, "bad header line '%.*s'",
					 (int)(le - p > 40 ? 40 : le - p), p);
		for (const char *q = p; q < colon; q++)
			if (!is_tchar((unsigned char)*q))
				return error_set(err, EPROTO, "bad header name '%.*s'",
						 (int)(colon - p > 40 ? 40 : colon - p), p);
		const char *v = colon + 1, *ve = le;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		size_t nlen = (size_t)(colon - p), vlen = (size_t)(ve - v);
		if (nlen == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
			uint64_t n;
			if (!parse_count(v, vlen, CLIENT_MAX_REPLY_BYTES, &n))
				return error_set(err, EPROTO, "bad or too large Content-Length '%.*s'",
						 (int)(vlen > 40 ? 40 : vlen), v);
			if (h->has_length && h->length != n)
				return error_set(err, EPROTO, "two different Content-Length fields");
			h->has_length = true;
			h->length = n;
		} else if (nlen == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
			/* the last coding must be chunked; vcpud sends no other */
			if (vlen != 7 || strncasecmp(v, "chunked", 7) != 0)
				return error_set(err, EPROTO, "unsupported Transfer-Encoding '%.*s'",
						 (int)(vlen > 40 ? 40 : vlen), v);
			h->chunked = true;
		}
	}
	if (h->chunked && h->has_length)
		return error_set(err, EPROTO, "both Content-Length and chunked Transfer-Encoding");
	/* no body whatever the fields say (RFC 9112 6.3) */
	if (status / 100 == 1 || status == 204 || status == 304) {
		h->has_length = true;
		h->length = 0;
		h->chunked = false;
	}
	h->head_len = (size_t)(next - buf);
	return 0;
}

int client_parse_head(const char *buf, size_t len, struct client_head *h, struct error **err)
{
	size_t off = 0;
	/* interim 1xx responses (vcpud sends none: nothing asks for them) */
	for (int i = 0; i < 8; i++) {
		int r = parse_one_head(buf + off, len - off, h, err);
		if (r != 0)
			return r;
		h->head_len += off;
		if (h->status / 100 != 1)
			return 0;
		off = h->head_len;
	}
	return error_set(err, EPROTO, "too many interim (1xx) replies");
}

/* A chunked body from p to end, decoded into out: 0, 1 (more to come), -1. */
static int dechunk(const char *p, const char *end, char **out, size_t *out_len,
		   struct error **err)
{
	size_t cap = 0, n = 0;
	char *o = NULL;
	for (;;) {
		const char *next, *le = line_end(p, end, &next);
		if (!le) {
			free(o);
			return 1;
		}
		uint64_t size = 0;
		const char *q = p;
		for (; q < le && *q != ';' && *q != ' ' && *q != '\t'; q++) {
			int d = *q >= '0' && *q <= '9' ? *q - '0' :
				*q >= 'a' && *q <= 'f' ? *q - 'a' + 10 :
				*q >= 'A' && *q <= 'F' ? *q - 'A' + 10 : -1;
			if (d < 0 || size > (CLIENT_MAX_REPLY_BYTES >> 4)) {
				free(o);
				return error_set(err, EPROTO, "bad chunk size line '%.*s'",
						 (int)(le - p > 40 ? 40 : le - p), p);
			}
			size = size * 16 + (uint64_t)d;
		}
		if (q == p || size > CLIENT_MAX_REPLY_BYTES - n) {
			free(o);
			return error_set(err, EPROTO, "bad chunk size line '%.*s'",
					 (int)(le - p > 40 ? 40 : le - p), p);
		}
		p = next;
		if (size == 0) {
			/* trailer fields, then the empty line */
			for (;;) {
				le = line_end(p, end, &next);
				if (!le) {
					free(o);
					return 1;
				}
				if (le == p)
					break;
				p = next;
			}
			*out = o ? o : xstrdup("");
			*out_len = n;
			return 0;
		}
		if ((uint64_t)(end - p) < size + 1) {
			free(o);
			return 1;
		}
		if (n + size + 1 > cap) {
			cap = (n + size + 1) * 2;
			o = xrealloc(o, cap);
		}
		memcpy(o + n, p, size);
		n += size;
		o[n] = '\0';
		p += size;
		/* the chunk's CRLF (or LF) */
		if (*p == '\r')
			p++;
		if (p >= end) {
			free(o);
			return 1;
		}
		if (*p != '\n') {
			free(o);
			return error_set(err, EPROTO, "chunk of %" PRIu64 " bytes not followed by a line end",
					 size);
		}
		p++;
	}
}

/* n bytes (NULs too) and a NUL after them */
static char *memdup_nul(const char *p, size_t n)
{
	char *d = xmalloc(n + 1);
	memcpy(d, p, n);
	d[n] = '\0';
	return d;
}

int client_parse_reply(const char *buf, size_t len, bool at_eof, long *status, char **body,
		       size_t *body_len, struct error **err)
{
	*body = NULL;
	*body_len = 0;
	struct client_head h;
	int r = client_parse_head(buf, len, &h, err);
	if (r < 0)
		return -1;
	if (r > 0) {
		if (!at_eof)
			return 1;
		return error_set(err, EPROTO, len ? "reply ends within its header" :
					       "closed the connection without a reply");
	}
	const char *p = buf + h.head_len, *end = buf + len;
	if (h.chunked) {
		r = dechunk(p, end, body, body_len, err);
		if (r > 0 && at_eof)
			return error_set(err, EPROTO, "reply ends within its chunked body");
		if (r != 0)
			return r;
	} else if (h.has_length) {
		if ((uint64_t)(end - p) < h.length) {
			if (!at_eof)
				return 1;
			return error_set(err, EPROTO, "reply ends after %zu of its %" PRIu64 " bytes",
					 (size_t)(end - p), h.length);
		}
		*body = memdup_nul(p, (size_t)h.length);
		*body_len = (size_t)h.length;
	} else {
		/* the body runs to the end of the connection */
		if (!at_eof)
			return 1;
		if ((uint64_t)(end - p) > CLIENT_MAX_REPLY_BYTES)
			return error_set(err, EFBIG, "reply larger than %ld bytes",
					 CLIENT_MAX_REPLY_BYTES);
		*body = memdup_nul(p, (size_t)(end - p));
		*body_len = (size_t)(end - p);
	}
	*status = h.status;
	return 0;
}

/* --- the target ---------------------------------------------------------- */

static bool host_loopback(const char *h)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (strcmp(h, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, h, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, h, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

int client_url_parse(const char *url, struct client_url *out, struct error **err)
{
	memset(out, 0, sizeof(*out));
	const char *p;
	if (strncmp(url, "https://", 8) == 0) {
		out->tls = true;
		p = url + 8;
	} else if (strncmp(url, "http://", 7) == 0) {
		p = url + 7;
	} else {
		return error_set(err, EINVAL, "URL '%s' is not https://HOST[:PORT] (or "
				 "http:// to a loopback address)", url);
	}
	size_t auth = strcspn(p, "/?#");
	if (p[auth] == '?' || p[auth] == '#' || strchr(p + auth, '?') || strchr(p + auth, '#'))
		return error_set(err, EINVAL, "URL '%s': a query or fragment has no place in "
				 "vcpud's address", url);
	if (memchr(p, '@', auth))
		return error_set(err, EINVAL, "URL '%s': credentials go in --token-file, not in "
				 "the URL", url);
	const char *hs = p, *he, *port = NULL;
	if (*p == '[') {
		he = memchr(p, ']', auth);
		if (!he)
			return error_set(err, EINVAL, "URL '%s': an IPv6 address without ']'", url);
		hs = p + 1;
		if (he + 1 < p + auth) {
			if (he[1] != ':')
				return error_set(err, EINVAL, "URL '%s': ':' must follow ']'", url);
			port = he + 2;
		}
	} else {
		const char *c = memchr(p, ':', auth);
		he = c ? c : p + auth;
		port = c ? c + 1 : NULL;
	}
	size_t hl = (size_t)(he - hs);
	if (hl == 0 || hl >= sizeof(out->host))
		return error_set(err, EINVAL, "URL '%s' has %s host", url, hl ? "too long a" : "no");
	for (size_t i = 0; i < hl; i++)
		if (!(hs[i] == '.' || hs[i] == '-' || hs[i] == ':' || hs[i] == '_' ||
		      (hs[i] >= '0' && hs[i] <= '9') || (hs[i] >= 'a' && hs[i] <= 'z') ||
		      (hs[i] >= 'A' && hs[i] <= 'Z')))
			return error_set(err, EINVAL, "URL '%s': host '%.*s' has a character that "
					 "no host name has", url, (int)hl, hs);
	memcpy(out->host, hs, hl);
	if (*p != '[' && strchr(out->host, ':'))
		return error_set(err, EINVAL, "URL '%s': an IPv6 address is written [ADDR]", url);
	uint64_t pn = out->tls ? 443 : 80;
	if (port) {
		size_t pl = (size_t)(p + auth - port);
		char pb[8];
		if (pl == 0 || pl >= sizeof(pb))
			return error_set(err, EINVAL, "URL '%s': port is not 1..65535", url);
		memcpy(pb, port, pl);
		pb[pl] = '\0';
		if (parse_u64(pb, 1, 65535, &pn, NULL) < 0)
			return error_set(err, EINVAL, "URL '%s': port '%s' is not 1..65535", url, pb);
	}
	snprintf(out->port, sizeof(out->port), "%u", (unsigned)pn);
	/* a path is a prefix (a proxy's): without its trailing slashes */
	const char *ps = p + auth;
	size_t pl = strlen(ps);
	while (pl > 0 && ps[pl - 1] == '/')
		pl--;
	if (pl >= sizeof(out->prefix))
		return error_set(err, EINVAL, "URL '%s': its path is too long", url);
	for (size_t i = 0; i < pl; i++)
		if ((unsigned char)ps[i] <= ' ' || ps[i] == 0x7f)
			return error_set(err, EINVAL, "URL '%s': its path has a space or a control "
					 "character", url);
	memcpy(out->prefix, ps, pl);
	if (!out->tls && !host_loopback(out->host))
		return error_set(err, EINVAL, "URL '%s': plain http only to a loopback address "
				 "(the token would cross the network in the clear): use https", url);
	return 0;
}

/* --- the exchange -------------------------------------------------------- */

/* One connection: the socket, and TLS on it for https. */
struct conn {
	int fd;
	struct client_tls *tls;
	const char *where;              /* the socket path or the URL */
	bool url;
};

static const char socket_hint[] = "is vcpud running? use --socket or " CLI_SOCKET_ENV;
static const char url_hint[] = "is vcpud listening there (vcpud --listen)? use --url or "
			       CLI_URL_ENV;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for `events` on fd until the deadline: 1 ready, 0 timed out, -1. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd pfd = { .fd = fd, .events = events };
		int r = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

static int timed_out(const char *where, long timeout_ms, struct error **err)
{
	return error_set(err, ETIMEDOUT,
			 "vcpud at %s did not answer within %ld s "
			 "(a change may or may not have been applied)",
			 where, (timeout_ms + 999) / 1000);
}

static int connect_error(int code, const char *where, bool url, struct error **err)
{
	if (!url && (code == EACCES || code == EPERM))
		return error_set(err, EACCES,
				 "permission denied connecting to vcpud at %s "
				 "(run as root or as a member of the socket's group)",
				 where);
	return error_set(err, ECONNREFUSED, "cannot reach vcpud at %s: %s (%s)", where,
			 strerror(code), url ? url_hint : socket_hint);
}

/* connect() a non-blocking socket s to sa, under the deadline: 0, or -1
 * with *code (ETIMEDOUT for the deadline). */
static int connect_by(int s, const struct sockaddr *sa, socklen_t sl, int64_t deadline,
		      int *code)
{
	for (;;) {
		if (connect(s, sa, sl) == 0)
			return 0;
		int e = errno;
		if (e == EINTR)
			continue;
		if (e == EAGAIN && sa->sa_family == AF_UNIX) {
			/* the listen backlog is full: a busy daemon, not a dead one */
			if (now_ms() >= deadline) {
				*code = ETIMEDOUT;
				return -1;
			}
			struct timespec ts = { 0, 5 * 1000 * 1000 };
			nanosleep(&ts, NULL);
			continue;
		}
		if (e == EINPROGRESS) {
			int r = wait_fd(s, POLLOUT, deadline);
			int so = 0;
			socklen_t len = sizeof(so);
			if (r == 0) {
				*code = ETIMEDOUT;
				return -1;
			}
			if (r < 0 || getsockopt(s, SOL_SOCKET, SO_ERROR, &so, &len) < 0 || so) {
				*code = so ? so : errno;
				return -1;
			}
			return 0;
		}
		*code = e;
		return -1;
	}
}

static int dial_unix(const char *socket_path, int64_t deadline, long timeout_ms, int *fd,
		     struct error **err)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	memcpy(sun.sun_path, socket_path, strlen(socket_path) + 1);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return error_set_errno(err, errno, "cannot make a socket");
	int code;
	if (connect_by(s, (struct sockaddr *)&sun, sizeof(sun), deadline, &code) < 0) {
		close(s);
		return code == ETIMEDOUT ? timed_out(socket_path, timeout_ms, err) :
					   connect_error(code, socket_path, false, err);
	}
	*fd = s;
	return 0;
}

/* Every address of the URL's host in turn, until one connects. */
static int dial_tcp(const struct client_url *u, const char *where, int64_t deadline,
		    long timeout_ms, int *fd, struct error **err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG };
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(u->host, u->port, &hints, &res);
	if (rc != 0)
		return error_set(err, ECONNREFUSED, "cannot reach vcpud at %s: %s: %s", where,
				 u->host, rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
	int code = ECONNREFUSED;
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		int s = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (s < 0) {
			code = errno;
			continue;
		}
		if (connect_by(s, a->ai_addr, a->ai_addrlen, deadline, &code) == 0) {
			/* the handshake's and the request's small writes go out
			 * at once, not after the peer's delayed ACK (40 ms) */
			int one = 1;
			setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			freeaddrinfo(res);
			*fd = s;
			return 0;
		}
		close(s);
		if (code == ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	return code == ETIMEDOUT ? timed_out(where, timeout_ms, err) :
				   connect_error(code, where, true, err);
}

static ssize_t conn_send(struct conn *c, const char *buf, size_t n)
{
	return c->tls ? client_tls_send(c->tls, buf, n) : send(c->fd, buf, n, MSG_NOSIGNAL);
}

static ssize_t conn_recv(struct conn *c, char *buf, size_t n)
{
	return c->tls ? client_tls_recv(c->tls, buf, n) : read(c->fd, buf, n);
}

static short conn_events(const struct conn *c, short plain)
{
	return c->tls ? client_tls_events(c->tls) : plain;
}

static char *request_text(const char *method, const char *path, const char *payload,
			  const char *host, const char *token, size_t *len)
{
	_cleanup_free_ char *auth = token ? xasprintf("Authorization: Bearer %s\r\n", token) :
					    xstrdup("");
	char *t;
	if (payload)
		t = xasprintf("%s %s HTTP/1.1\r\nHost: %s\r\n%sUser-Agent: vcpuctl/%s\r\n"
			      "Accept: application/json\r\nConnection: close\r\n"
			      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
			      method, path, host, auth, VCPUD_VERSION, strlen(payload), payload);
	else
		t = xasprintf("%s %s HTTP/1.1\r\nHost: %s\r\n%sUser-Agent: vcpuctl/%s\r\n"
			      "Accept: application/json\r\nConnection: close\r\n%s\r\n",
			      method, path, host, auth, VCPUD_VERSION,
			      strcmp(method, "GET") == 0 ? "" : "Content-Length: 0\r\n");
	if (auth[0])
		explicit_bzero(auth, strlen(auth));
	*len = strlen(t);
	return t;
}

/* Send it all; a peer that closes first is not an error here (it may have
 * answered already: the reply tells). 0, or -1 with *err. */
static int send_all(struct conn *c, const char *t, size_t len, int64_t deadline,
		    long timeout_ms, struct error **err)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = conn_send(c, t + off, len - off);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			int r = wait_fd(c->fd, conn_events(c, POLLOUT), deadline);
			if (r == 0)
				return timed_out(c->where, timeout_ms, err);
			if (r < 0)
				return error_set_errno(err, errno, "cannot send to vcpud at %s",
						       c->where);
			continue;
		}
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			return 0;
		return error_set_errno(err, n < 0 ? errno : EIO, "cannot send to vcpud at %s",
				       c->where);
	}
	return 0;
}

/* Read the reply until it is whole (by its length) or the peer closes. */
static int receive(struct conn *c, int64_t deadline, long timeout_ms, long *status,
		   char **body, size_t *body_len, struct error **err)
{
	size_t cap = 16384, len = 0;
	_cleanup_free_ char *buf = xmalloc(cap);
	struct client_head h;
	bool head = false;
	for (;;) {
		if (len == cap) {
			if (cap >= (size_t)CLIENT_MAX_REPLY_BYTES + CLIENT_MAX_HEAD_BYTES)
				return error_set(err, EFBIG, "reply from vcpud at %s is larger than %ld bytes",
						 c->where, CLIENT_MAX_REPLY_BYTES);
			cap *= 2;
			if (cap > (size_t)CLIENT_MAX_REPLY_BYTES + CLIENT_MAX_HEAD_BYTES)
				cap = (size_t)CLIENT_MAX_REPLY_BYTES + CLIENT_MAX_HEAD_BYTES;
			buf = xrealloc(buf, cap);
		}
		ssize_t n = conn_recv(c, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			int r = wait_fd(c->fd, conn_events(c, POLLIN), deadline);
			if (r == 0)
				return timed_out(c->where, timeout_ms, err);
			if (r < 0)
				return error_set_errno(err, errno, "cannot read from vcpud at %s",
						       c->where);
			continue;
		}
		bool eof = n == 0 || (n < 0 && errno == ECONNRESET);
		if (n < 0 && !eof)
			return error_set_errno(err, errno, "cannot read from vcpud at %s", c->where);
		if (n > 0)
			len += (size_t)n;
		/* the whole reply is here when its head and its length say so
		 * (a chunked or unsized body: at the end of the connection) */
		if (!eof) {
			if (!head) {
				_cleanup_error_ struct error *e = NULL;
				int r = client_parse_head(buf, len, &h, &e);
				if (r < 0)
					eof = true; /* bad: said below, with the whole text */
				head = r == 0;
			}
			if (head && h.has_length && len - h.head_len >= h.length)
				eof = true;
			if (!eof)
				continue;
		}
		_cleanup_error_ struct error *e = NULL;
		if (client_parse_reply(buf, len, true, status, body, body_len, &e) < 0) {
			if (len == 0)
				return error_set(err, EPROTO,
						 "vcpud at %s closed the connection without a reply",
						 c->where);
			return error_set(err, e->code, "unexpected reply from vcpud at %s: %s",
					 c->where, e->msg);
		}
		return 0;
	}
}

const char *client_target_name(const struct client_target *t)
{
	return t->url ? t->url : t->socket_path;
}

int client_request(const struct client_target *t, const char *method, const char *path,
		   const json_t *body, long timeout_ms, struct client_reply *out,
		   struct error **err)
{
	memset(out, 0, sizeof(*out));
	long status = 0;
	_cleanup_free_ char *reply = NULL;
	size_t rlen = 0;
	if (client_request_raw(t, method, path, body, timeout_ms, &status, &reply, &rlen,
			       err) < 0)
		return -1;
	json_t *json = NULL;
	if (rlen > 0) {
		json_error_t jerr;
		json = json_loadb(reply, rlen, JSON_DECODE_ANY, &jerr);
		if (!json)
			return error_set(err, EPROTO,
					 "unexpected reply from vcpud at %s (HTTP %ld): not JSON: %s",
					 client_target_name(t), status, jerr.text);
	}
	out->status = status;
	out->json = json;
	return 0;
}

int client_request_raw(const struct client_target *t, const char *method, const char *path,
		       const json_t *body, long timeout_ms, long *status, char **reply,
		       size_t *reply_len, struct error **err)
{
	*status = 0;
	*reply = NULL;
	*reply_len = 0;
	struct sockaddr_un sun;
	struct client_url u;
	if (t->url) {
		if (client_url_parse(t->url, &u, err) < 0)
			return -1;
	} else {
		if (!t->socket_path || !*t->socket_path)
			return error_set(err, EINVAL, "no socket path given");
		if (strlen(t->socket_path) >= sizeof(sun.sun_path))
			return error_set(err, EINVAL, "socket path %s is too long (at most %zu bytes)",
					 t->socket_path, sizeof(sun.sun_path) - 1);
	}
	if (!path || path[0] != '/')
		return error_set(err, EINVAL, "request path '%s' does not start with '/'",
				 path ? path : "");
	for (const char *q = path; *q; q++)
		if ((unsigned char)*q <= ' ' || *q == 0x7f)
			return error_set(err, EINVAL, "request path '%s' has a space or a control "
					 "character", path);
	for (const char *q = method; *q; q++)
		if (!is_tchar((unsigned char)*q))
			return error_set(err, EINVAL, "bad request method '%s'", method);
	if (t->token)
		for (const char *q = t->token; *q; q++)
			if ((unsigned char)*q <= ' ' || *q == 0x7f)
				return error_set(err, EINVAL, "the token has a space or a "
						 "control character");
	if (timeout_ms <= 0)
		timeout_ms = CLI_DEFAULT_TIMEOUT_MS;
	int64_t deadline = now_ms() + timeout_ms;

	_cleanup_free_ char *payload = NULL;
	if (body) {
		payload = json_dumps(body, JSON_COMPACT);
		if (!payload)
			return error_set(err, EINVAL, "cannot encode the request body as JSON");
	}
	_cleanup_free_ char *host = NULL, *full = NULL;
	if (t->url) {
		host = strchr(u.host, ':') ? xasprintf("[%s]:%s", u.host, u.port) :
					     xasprintf("%s:%s", u.host, u.port);
		full = xasprintf("%s%s", u.prefix, path);
	}
	size_t tlen;
	_cleanup_free_ char *text = request_text(method, t->url ? full : path, payload,
						 t->url ? host : "localhost",
						 t->url ? t->token : NULL, &tlen);

	struct conn c = { .fd = -1, .where = client_target_name(t), .url = t->url != NULL };
	int rc = -1;
	if (t->url) {
		if (dial_tcp(&u, c.where, deadline, timeout_ms, &c.fd, err) < 0)
			goto out;
		if (u.tls && client_tls_open(c.fd, u.host, t->cacert, deadline, c.where, &c.tls,
					     err) < 0)
			goto out;
	} else if (dial_unix(t->socket_path, deadline, timeout_ms, &c.fd, err) < 0) {
		goto out;
	}
	if (send_all(&c, text, tlen, deadline, timeout_ms, err) < 0)
		goto out;
	rc = receive(&c, deadline, timeout_ms, status, reply, reply_len, err);
out:
	explicit_bzero(text, tlen);
	client_tls_close(c.tls);
	if (c.fd >= 0)
		close(c.fd);
	return rc;
}

void client_reply_clear(struct client_reply *r)
{
	if (r->json)
		json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

const char *client_error_message(const json_t *reply)
{
	const json_t *e = json_object_get(reply, "error");
	return json_string_value(json_object_get(e, "message"));
}
