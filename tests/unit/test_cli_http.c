/* test_cli_http.c - vcpuctl's own HTTP client (src/cli/client.c): the
 * reply parser on whole and partial buffers (Content-Length, chunked with
 * extensions and trailers, a body to the end of the connection, interim
 * 1xx heads, bodiless statuses) and on malformed and hostile replies
 * (bad status lines and header names, conflicting or oversized lengths,
 * broken chunks, truncation at every byte); then client_request() against
 * a raw server on a UNIX socket that answers with given bytes: the reply
 * dribbled a byte at a time, a server that never answers (the deadline),
 * one that closes without a word, one that answers before reading the
 * request, and the request bytes as the server sees them. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "vcpud/util.h"

#define FAKE_DIR_TEMPLATE "/tmp/vcpuctl-http-XXXXXX"
#include "cli_test_util.h"

/* --- the parser ------------------------------------------------------- */

/* parse `text` as a whole reply (at_eof) and expect it to work */
static void parse_ok(const char *text, long want_status, const char *want_body)
{
	long status = 0;
	char *body = NULL;
	size_t blen = 0;
	struct error *err = NULL;
	int r = client_parse_reply(text, strlen(text), true, &status, &body, &blen, &err);
	if (r != 0)
		fail_msg("'%s': %d %s", text, r, err ? err->msg : "");
	assert_int_equal(status, want_status);
	assert_non_null(body);
	assert_int_equal(blen, strlen(want_body));
	assert_memory_equal(body, want_body, blen);
	assert_int_equal(body[blen], '\0');
	free(body);
}

/* parse `text` as a whole reply and expect the error `code` naming `want` */
static void parse_bad(const char *text, size_t len, int code, const char *want)
{
	long status = 0;
	char *body = NULL;
	size_t blen = 0;
	struct error *err = NULL;
	int r = client_parse_reply(text, len, true, &status, &body, &blen, &err);
	if (r != -1)
		fail_msg("'%.*s': %d, not -1", (int)len, text, r);
	assert_null(body);
	assert_non_null(err);
	assert_int_equal(err->code, code);
	if (!strstr(err->msg, want))
		fail_msg("'%.*s': '%s' has no '%s'", (int)len, text, err->msg, want);
	error_free(&err);
}

static void test_parse_good(void **state)
{
	(void)state;
	parse_ok("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 200, "{}");
	/* a bare LF, no reason phrase, spaces around the value, any case */
	parse_ok("HTTP/1.0 404\ncontent-length:   5  \n\nabcde", 404, "abcde");
	/* extra bytes after the length are not the body */
	parse_ok("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}garbage", 200, "{}");
	/* chunked: extensions, upper-case hex, trailers */
	parse_ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "4;ext=1\r\n[1, \r\nA\r\n2, 3, 4, 5\r\n1\r\n]\r\n0\r\nX-Trailer: y\r\n\r\n",
		 200, "[1, 2, 3, 4, 5]");
	parse_ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n", 200, "");
	/* neither: the body runs to the end of the connection */
	parse_ok("HTTP/1.1 500 Oops\r\nServer: x\r\n\r\n{\"a\":1}\n", 500, "{\"a\":1}\n");
	/* no body whatever the fields say */
	parse_ok("HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", 204, "");
	parse_ok("HTTP/1.1 304 Not Modified\r\n\r\nignored", 304, "");
	/* interim heads first */
	parse_ok("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
		 "HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ntrue", 201, "true");
	/* the same Content-Length twice is one */
	parse_ok("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n1", 200, "1");
	/* a body with a NUL in it keeps its length */
	long status;
	char *body = NULL;
	size_t blen = 0;
	struct error *err = NULL;
	static const char nul[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\na\0b";
	assert_int_equal(client_parse_reply(nul, sizeof(nul) - 1, true, &status, &body, &blen, &err), 0);
	assert_int_equal(blen, 3);
	assert_memory_equal(body, "a\0b", 3);
	free(body);
}

static void test_parse_bad(void **state)
{
	(void)state;
#define BAD(text, code, want) parse_bad(text, sizeof(text) - 1, code, want)
	BAD("", EPROTO, "without a reply");
	BAD("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", EPROTO, "ends within its header");
	BAD("SSH-2.0-OpenSSH_9.2\r\n\r\n", EPROTO, "not an HTTP/1.x status line");
	BAD("HTTP/2 200\r\n\r\n", EPROTO, "not an HTTP/1.x status line");
	BAD("HTTP/1.1 2000 OK\r\n\r\n", EPROTO, "not an HTTP/1.x status line");
	BAD("HTTP/1.1 20x OK\r\n\r\n", EPROTO, "bad status code");
	BAD("HTTP/1.1 099 OK\r\n\r\n", EPROTO, "bad status code 99");
	BAD("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", EPROTO, "bad header line");
	BAD("HTTP/1.1 200 OK\r\n: empty name\r\n\r\n", EPROTO, "bad header line");
	BAD("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", EPROTO, "bad header name");
	BAD("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", EPROTO, "bad or too large Content-Length");
	BAD("HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n", EPROTO, "bad or too large");
	BAD("HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", EPROTO, "bad or too large");
	BAD("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", EPROTO,
	    "bad or too large");
	BAD("HTTP/1.1 200 OK\r\nContent-Length: 67108865\r\n\r\n", EPROTO, "too large");
	BAD("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", EPROTO,
	    "two different Content-Length");
	BAD("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc", EPROTO,
	    "reply ends after 3 of its 5 bytes");
	BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", EPROTO,
	    "unsupported Transfer-Encoding 'gzip'");
	BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", EPROTO,
	    "both Content-Length and chunked");
	BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", EPROTO,
	    "bad chunk size line 'zz'");
	BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n;x\r\n", EPROTO,
	    "bad chunk size line");
	/* a size that would overflow, and one past the reply limit */
	BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", EPROTO,
	    "bad chunk size line");
	BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4000001\r\n", EPROTO,
	    "bad chunk size line");
	BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n0\r\n\r\n", EPROTO,
	    "chunk of 2 bytes not followed by a line end");
	BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n", EPROTO,
	    "ends within its chunked body");
	BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n", EPROTO,
	    "ends within its chunked body");
	BAD("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
	    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
	    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n", EPROTO,
	    "too many interim");
#undef BAD
	/* a head that never ends: refused at the limit, not read forever */
	size_t big = CLIENT_MAX_HEAD_BYTES + 100;
	char *h = xmalloc(big + 1);
	memset(h, 'a', big);
	memcpy(h, "HTTP/1.1 200 OK\r\nX: ", 20);
	h[big] = '\0';
	parse_bad(h, big, EPROTO, "reply header larger than 65536 bytes");
	struct client_head hd;
	struct error *err = NULL;
	assert_int_equal(client_parse_head(h, big, &hd, &err), -1);
	error_free(&err);
	/* the same as one long status line */
	memcpy(h, "HTTP/1.1 200 ", 13);
	memset(h + 13, 'b', big - 13);
	assert_int_equal(client_parse_head(h, big, &hd, &err), -1);
	assert_non_null(strstr(err->msg, "status line too long"));
	error_free(&err);
	free(h);
}

/* Every prefix of a good reply is "more to come" before the end, and an
 * error (never a crash, never a wrong body) at the end; the whole is the
 * reply. */
static void test_parse_prefixes(void **state)
{
	(void)state;
	static const char *const replies[] = {
		"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"o\r\n8;x\r\nk\":true}\r\n0\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n[]",
	};
	for (size_t k = 0; k < sizeof(replies) / sizeof(*replies); k++) {
		const char *t = replies[k];
		size_t len = strlen(t);
		for (size_t i = 0; i < len; i++) {
			long status = 0;
			char *body = NULL;
			size_t blen = 0;
			struct error *err = NULL;
			int r = client_parse_reply(t, i, false, &status, &body, &blen, &err);
			if (r != 1)
				fail_msg("reply %zu cut at %zu: %d (%s), not 1", k, i, r,
					 err ? err->msg : "");
			assert_null(body);
			r = client_parse_reply(t, i, true, &status, &body, &blen, &err);
			if (r != -1)
				fail_msg("reply %zu cut at %zu, at its end: %d, not -1", k, i, r);
			assert_int_equal(err->code, EPROTO);
			error_free(&err);
		}
		long status = 0;
		char *body = NULL;
		size_t blen = 0;
		struct error *err = NULL;
		assert_int_equal(client_parse_reply(t, len, false, &status, &body, &blen, &err), 0);
		assert_true(status == 200 || status == 201);
		free(body);
	}
}

/* --- the exchange, against a raw server ----------------------------------- */

enum raw_mode {
	RAW_ANSWER,     /* read the request, then send the reply */
	RAW_DRIBBLE,    /* the same, a byte at a time */
	RAW_SILENT,     /* read the request, never answer (until killed) */
	RAW_CLOSE,      /* read the request, close without a word */
	RAW_EARLY,      /* send the reply and close before reading anything */
};

struct raw {
	char dir[64];
	char *sock;
	pid_t pid;
	int report;     /* the request bytes the server read */
};

static void raw_start(struct raw *s, enum raw_mode mode, const char *reply, size_t reply_len)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "%s", FAKE_DIR_TEMPLATE);
	assert_non_null(mkdtemp(s->dir));
	s->sock = path_join(s->dir, "vcpud.sock", NULL);
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", s->sock);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	int p[2];
	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (s->pid == 0) {
		close(p[0]);
		alarm(20);
		int c = accept(lfd, NULL, NULL);
		if (c < 0)
			_exit(1);
		if (mode == RAW_EARLY) {
			if (write(c, reply, reply_len) < 0)
				_exit(1);
			shutdown(c, SHUT_WR);
			struct timespec ts = { 0, 200 * 1000 * 1000 };
			nanosleep(&ts, NULL);
			_exit(0);
		}
		/* the request: its head, then Content-Length bytes */
		char buf[65536];
		size_t len = 0;
		char *he = NULL;
		while (!he && len < sizeof(buf) - 1) {
			ssize_t n = read(c, buf + len, sizeof(buf) - 1 - len);
			if (n <= 0)
				_exit(1);
			len += (size_t)n;
			buf[len] = '\0';
			he = strstr(buf, "\r\n\r\n");
		}
		char *cl = strcasestr(buf, "\r\nContent-Length: ");
		size_t want = cl && cl < he ? strtoul(cl + 18, NULL, 10) : 0;
		while (len - (size_t)(he + 4 - buf) < want) {
			ssize_t n = read(c, buf + len, sizeof(buf) - 1 - len);
			if (n <= 0)
				break;
			len += (size_t)n;
		}
		if (write(p[1], buf, len) < 0)
			_exit(1);
		close(p[1]);
		if (mode == RAW_SILENT)
			pause();
		if (mode == RAW_ANSWER && write(c, reply, reply_len) < 0)
			_exit(1);
		for (size_t i = 0; mode == RAW_DRIBBLE && i < reply_len; i++) {
			if (write(c, reply + i, 1) < 0)
				_exit(1);
			struct timespec ts = { 0, 200 * 1000 };
			nanosleep(&ts, NULL);
		}
		close(c);
		_exit(0);
	}
	close(lfd);
	close(p[1]);
	s->report = p[0];
}

/* End the server; its request bytes (caller frees). */
static char *raw_finish(struct raw *s)
{
	kill(s->pid, SIGTERM);
	int st;
	waitpid(s->pid, &st, 0);
	char buf[65536];
	size_t len = 0;
	ssize_t n;
	while ((n = read(s->report, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(s->report);
	unlink(s->sock);
	rmdir(s->dir);
	free(s->sock);
	return xstrdup(buf);
}

static void test_exchange(void **state)
{
	(void)state;
	struct raw s;
	struct client_reply r;
	struct error *err = NULL;
	static const char ok[] = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
				 "Transfer-Encoding: chunked\r\n\r\n6\r\n{\"a\":1\r\n1\r\n}\r\n0\r\n\r\n";

	/* the request as the server reads it: a POST with its JSON body */
	raw_start(&s, RAW_ANSWER, ok, sizeof(ok) - 1);
	json_t *body = json_pack("{s:s}", "name", "web");
	assert_int_equal(client_request(&(struct client_target){ .socket_path = s.sock }, "POST", "/v1/vms", body, 5000, &r, &err), 0);
	json_decref(body);
	assert_int_equal(r.status, 201);
	assert_int_equal(json_integer_value(json_object_get(r.json, "a")), 1);
	client_reply_clear(&r);
	char *req = raw_finish(&s);
	assert_non_null(strstr(req, "POST /v1/vms HTTP/1.1\r\n"));
	assert_non_null(strstr(req, "\r\nHost: localhost\r\n"));
	assert_non_null(strstr(req, "\r\nConnection: close\r\n"));
	assert_non_null(strstr(req, "\r\nContent-Type: application/json\r\n"));
	assert_non_null(strstr(req, "\r\nContent-Length: 14\r\n\r\n{\"name\":\"web\"}"));
	free(req);

	/* a DELETE without a body says so; a GET says nothing of a length */
	static const char gone[] = "HTTP/1.1 204 No Content\r\n\r\n";
	raw_start(&s, RAW_ANSWER, gone, sizeof(gone) - 1);
	assert_int_equal(client_request(&(struct client_target){ .socket_path = s.sock }, "DELETE", "/v1/vms/web", NULL, 5000, &r, &err), 0);
	assert_int_equal(r.status, 204);
	assert_null(r.json);
	req = raw_finish(&s);
	assert_non_null(strstr(req, "DELETE /v1/vms/web HTTP/1.1\r\n"));
	assert_non_null(strstr(req, "\r\nContent-Length: 0\r\n\r\n"));
	free(req);

	/* a byte at a time, with the length known: whole, and no wait for a close */
	static const char drip[] = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{\"b\":[1,2]}\n";
	raw_start(&s, RAW_DRIBBLE, drip, sizeof(drip) - 1);
	assert_int_equal(client_request(&(struct client_target){ .socket_path = s.sock }, "GET", "/v1/health", NULL, 5000, &r, &err), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(json_array_size(json_object_get(r.json, "b")), 2);
	client_reply_clear(&r);
	req = raw_finish(&s);
	assert_non_null(strstr(req, "GET /v1/health HTTP/1.1\r\n"));
	assert_null(strstr(req, "Content-Length"));
	free(req);

	/* an answer sent before the request was read (a server refusing it) */
	static const char early[] = "HTTP/1.1 413 Too Large\r\nContent-Length: 32\r\n\r\n"
				    "{\"error\":{\"message\":\"too big!\"}}";
	raw_start(&s, RAW_EARLY, early, sizeof(early) - 1);
	assert_int_equal(client_request(&(struct client_target){ .socket_path = s.sock }, "GET", "/v1/x", NULL, 5000, &r, &err), 0);
	assert_int_equal(r.status, 413);
	assert_string_equal(client_error_message(r.json), "too big!");
	client_reply_clear(&r);
	free(raw_finish(&s));
}

static void test_exchange_failures(void **state)
{
	(void)state;
	struct raw s;
	struct client_reply r;
	struct error *err = NULL;

	/* no answer: the deadline, with the time in the message */
	raw_start(&s, RAW_SILENT, NULL, 0);
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(client_request(&(struct client_target){ .socket_path = s.sock }, "GET", "/v1/health", NULL, 300, &r, &err), -1);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double took = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	assert_true(took >= 0.29 && took < 5.0);
	assert_int_equal(err->code, ETIMEDOUT);
	assert_non_null(strstr(err->msg, "did not answer within 1 s"));
	error_free(&err);
	free(raw_finish(&s));

	/* closed without a word */
	raw_start(&s, RAW_CLOSE, NULL, 0);
	assert_int_equal(client_request(&(struct client_target){ .socket_path = s.sock }, "GET", "/v1/health", NULL, 5000, &r, &err), -1);
	assert_int_equal(err->code, EPROTO);
	assert_non_null(strstr(err->msg, "closed the connection without a reply"));
	error_free(&err);
	free(raw_finish(&s));

	/* not HTTP */
	static const char ssh[] = "SSH-2.0-OpenSSH_9.2\r\n";
	raw_start(&s, RAW_ANSWER, ssh, sizeof(ssh) - 1);
	assert_int_equal(client_request(&(struct client_target){ .socket_path = s.sock }, "GET", "/v1/health", NULL, 5000, &r, &err), -1);
	assert_int_equal(err->code, EPROTO);
	assert_non_null(strstr(err->msg, "unexpected reply from vcpud at "));
	assert_non_null(strstr(err->msg, "not an HTTP/1.x status line: 'SSH-2.0-OpenSSH_9.2'"));
	error_free(&err);
	free(raw_finish(&s));

	/* cut short */
	static const char cut[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"a\":";
	raw_start(&s, RAW_ANSWER, cut, sizeof(cut) - 1);
	assert_int_equal(client_request(&(struct client_target){ .socket_path = s.sock }, "GET", "/v1/health", NULL, 5000, &r, &err), -1);
	assert_int_equal(err->code, EPROTO);
	assert_non_null(strstr(err->msg, "reply ends after 5 of its 100 bytes"));
	error_free(&err);
	free(raw_finish(&s));

	/* bad input never reaches a socket */
	assert_int_equal(client_request(&(struct client_target){ .socket_path = "/nonexistent/x.sock" }, "GET", "/v1/a b", NULL, 5000, &r, &err), -1);
	assert_int_equal(err->code, EINVAL);
	error_free(&err);
	assert_int_equal(client_request(&(struct client_target){ .socket_path = "/nonexistent/x.sock" }, "GET", "/v1/a\r\nX: y", NULL, 5000, &r,
					&err), -1);
	assert_int_equal(err->code, EINVAL);
	error_free(&err);
	assert_int_equal(client_request(&(struct client_target){ .socket_path = "/nonexistent/x.sock" }, "GE T", "/v1/a", NULL, 5000, &r, &err), -1);
	assert_int_equal(err->code, EINVAL);
	error_free(&err);
	/* a socket file that is not a socket */
	char dir[] = "/tmp/vcpuctl-http-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *f = path_join(dir, "plain", NULL);
	FILE *fp = fopen(f, "w");
	fclose(fp);
	assert_int_equal(client_request(&(struct client_target){ .socket_path = f }, "GET", "/v1/health", NULL, 5000, &r, &err), -1);
	assert_int_equal(err->code, ECONNREFUSED);
	assert_non_null(strstr(err->msg, "cannot reach vcpud at "));
	error_free(&err);
	unlink(f);
	free(f);
	rmdir(dir);
}

static void test_url_parse(void **state)
{
	(void)state;
	struct client_url u;
	struct error *err = NULL;
	assert_int_equal(client_url_parse("https://vcpud.example:8443", &u, &err), 0);
	assert_true(u.tls);
	assert_string_equal(u.host, "vcpud.example");
	assert_string_equal(u.port, "8443");
	assert_string_equal(u.prefix, "");
	assert_int_equal(client_url_parse("https://10.0.0.5/", &u, &err), 0);
	assert_string_equal(u.port, "443");
	assert_string_equal(u.prefix, "");
	assert_int_equal(client_url_parse("https://[2001:db8::7]:9443/vcpud//", &u, &err), 0);
	assert_string_equal(u.host, "2001:db8::7");
	assert_string_equal(u.port, "9443");
	assert_string_equal(u.prefix, "/vcpud");
	assert_int_equal(client_url_parse("http://127.0.0.1:8080", &u, &err), 0);
	assert_false(u.tls);
	assert_int_equal(client_url_parse("http://[::1]", &u, &err), 0);
	assert_string_equal(u.port, "80");
	assert_int_equal(client_url_parse("http://localhost:1", &u, &err), 0);
	const struct {
		const char *url, *msg;
	} bad[] = {
		{ "vcpud:8443", "is not https://HOST[:PORT]" },
		{ "HTTPS://h", "is not https://" },
		{ "https://", "has no host" },
		{ "https://:8443", "has no host" },
		{ "https://h:0", "port '0' is not 1..65535" },
		{ "https://h:99999", "is not 1..65535" },
		{ "https://h:", "port is not 1..65535" },
		{ "https://user:pw@h", "credentials go in --token-file" },
		{ "https://h/v1?x=1", "a query or fragment" },
		{ "https://h#frag", "a query or fragment" },
		{ "https://[::1", "an IPv6 address without ']'" },
		{ "https://[::1]x", "':' must follow ']'" },
		{ "https://h%20x", "has a character that no host name has" },
		{ "https://h/a b", "its path has a space" },
		{ "http://192.0.2.1", "plain http only to a loopback address" },
		{ "http://vcpud.example", "plain http only to a loopback address" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(client_url_parse(bad[i].url, &u, &err), -1);
		if (!strstr(err->msg, bad[i].msg))
			fail_msg("'%s': %s", bad[i].url, err->msg);
		assert_int_equal(err->code, EINVAL);
		error_free(&err);
	}
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_parse_prefixes),
		cmocka_unit_test(test_exchange),
		cmocka_unit_test(test_exchange_failures),
		cmocka_unit_test(test_url_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
