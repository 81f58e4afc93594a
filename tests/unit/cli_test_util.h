/* cli_test_util.h - what the vcpuctl unit tests (test_cli.c, test_cli_vm.c,
 * test_cli_top.c) share: literal argv, the whole program run with its
 * output captured, string and JSON helpers, request and usage-error
 * assertions, the VM fixture `web`, and a fake vcpud: a child process on a
 * UNIX socket answering a script of canned replies and reporting the
 * requests it saw.
 *
 * Each test file is its own binary (the Makefile builds one .c per test),
 * so this is header-only: static inline functions, unused ones costing
 * nothing. A file may define FAKE_DIR_TEMPLATE before including it to name
 * its fake's temp directories. */
#ifndef VCPUD_TESTS_CLI_TEST_UTIL_H
#define VCPUD_TESTS_CLI_TEST_UTIL_H

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "cli/cli.h"
#include "vcpud/path.h"
#include "vcpud/util.h"

/* --- argv and the whole program --------------------------------------- */

#define ARGV(...) ((char *[]){ __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ __VA_ARGS__ }) / sizeof(char *)))

/* What a run of the program printed and returned. */
struct cap {
	char *out;
	char *err;
	int rc;
};

static inline void cap_free(struct cap *c)
{
	free(c->out);
	free(c->err);
	memset(c, 0, sizeof(*c));
}

/* Run the whole program with stdout and stderr captured. */
static inline void run_argv(struct cap *c, int argc, char **argv)
{
	size_t olen, elen;
	memset(c, 0, sizeof(*c));
	FILE *fo = open_memstream(&c->out, &olen);
	FILE *fe = open_memstream(&c->err, &elen);
	assert_non_null(fo);
	assert_non_null(fe);
	c->rc = cli_main(argc, argv, fo, fe);
	fclose(fo);
	fclose(fe);
}
#define RUN(c, ...) run_argv(c, ARGC("vcpuctl", __VA_ARGS__), ARGV("vcpuctl", __VA_ARGS__))

/* --- strings and JSON -------------------------------------------------- */

static inline void assert_contains(const char *hay, const char *needle)
{
	if (!hay || !strstr(hay, needle))
		fail_msg("expected to find \"%s\" in \"%s\"", needle, hay ? hay : "(null)");
}

/* A JSON fixture (any value); a bad one fails the test. Caller decrefs. */
static inline json_t *load(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
	if (!j)
		fail_msg("bad fixture: %s: %s", je.text, text);
	return j;
}

/* --- requests and usage errors ----------------------------------------- */

/* r asks for METHOD PATH without a body, about `subject` (NULL: none). */
static inline void assert_request(const struct cli_request *r, const char *method,
				  const char *path, const char *subject)
{
	assert_string_equal(r->method, method);
	assert_string_equal(r->path, path);
	if (subject)
		assert_string_equal(r->subject, subject);
	else
		assert_null(r->subject);
	assert_null(r->body);
}

/* The length of a NULL-terminated argv. */
static inline int argv_len(char *const *argv)
{
	int n = 0;
	while (argv[n])
		n++;
	return n;
}

/* Case i of a table of bad command lines was refused (rc -1) as a usage
 * error (an errno that maps to exit 2) whose message contains `msg`. */
static inline void assert_usage_error(size_t i, char *const *argv, int rc,
				      const struct error *err, const char *msg)
{
	if (rc != -1 || !err)
		fail_msg("case %zu (%s %s): accepted, expected \"%s\"", i, argv[0],
			 argv[0] && argv[1] ? argv[1] : "", msg);
	if (!strstr(err->msg, msg))
		fail_msg("case %zu: expected \"%s\" in \"%s\"", i, msg, err->msg);
	if (cli_exit_for_errno(err->code) != CLI_EXIT_USAGE)
		fail_msg("case %zu: errno %d does not map to a usage error", i, err->code);
}

/* A command line a request builder must refuse before any I/O, with a
 * message naming the problem and the usage line to show. */
struct bad_case {
	const char *usage;     /* expected in out->usage */
	const char *message;   /* expected in err->msg */
	char *argv[12];
};

/* Case i of a table of bad command lines through `build`: refused as a
 * usage error, nothing of a request built but the usage to show (the
 * caller checks which). The caller frees *err and clears *r. */
static inline void assert_build_refused(int (*build)(int, char **, struct cli_request *,
						     struct error **),
					size_t i, const struct bad_case *c, struct cli_request *r,
					struct error **err)
{
	*err = NULL;
	int rc = build(argv_len(c->argv), (char **)c->argv, r, err);
	assert_usage_error(i, c->argv, rc, *err, c->message);
	assert_null(r->method);
	assert_null(r->path);
	assert_null(r->body);
	assert_null(r->subject);
	assert_false(r->help);
	assert_non_null(r->usage);
}

/* One character too long for a tenant or VM name (64 at most). */
static const char long_name[] =
	"a123456789b123456789c123456789d123456789e123456789f123456789ghijk"; /* 65 */

/* --- fixtures: the VM `web` as vcpud sends it and `vm show` prints it --- */

static const char web_json[] =
	"{\"name\":\"web\",\"tenant\":\"acme\",\"pid\":1234,\"state\":\"running\","
	"\"source\":\"registered\",\"uuid\":null,\"vcpus\":2,\"memory_bytes\":1073741824,"
	"\"vcpu_threads\":[{\"index\":0,\"tid\":1235,\"cgroup\":\"tenant-acme/vm-web/vcpu0\"},"
	"{\"index\":1,\"tid\":1236,\"cgroup\":\"tenant-acme/vm-web/vcpu1\"}],"
	"\"created_at\":1700000000,\"updated_at\":1700003600}";

static const char web_show[] =
	"name:     web\n"
	"tenant:   acme\n"
	"pid:      1234\n"
	"state:    running\n"
	"source:   registered\n"
	"uuid:     -\n"
	"vcpus:    2\n"
	"memory:   1G\n"
	"weight:   by vCPUs\n"
	"created:  2023-11-14T22:13:20Z\n"
	"updated:  2023-11-14T23:13:20Z\n"
	"\n"
	"INDEX  TID   CGROUP\n"
	"0      1235  tenant-acme/vm-web/vcpu0\n"
	"1      1236  tenant-acme/vm-web/vcpu1\n";

/* --- a fake vcpud ------------------------------------------------------ */

#ifndef FAKE_DIR_TEMPLATE
#define FAKE_DIR_TEMPLATE "/tmp/vcpuctl-fake-XXXXXX"
#endif

/* One reply of the script: a status, a body (NULL: none), and whether to
 * send SIGTERM to the test process first (standing in for Ctrl-C). */
struct fake_reply {
	int status;
	const char *body;
	bool term_first;
};

/* A child process serving one connection per scripted reply, in order,
 * then closing its socket (later connections are refused). Each request
 * goes back through a pipe as "METHOD PATH\nBODY" (BODY empty for a GET). */
struct fake {
	char dir[64];
	char *sock;
	pid_t pid;
	int report;               /* read end of the pipe */
	char *requests;           /* what the fake saw, after fake_finish() */
};

/* In the child: one connection, answered with r. */
static inline bool fake_serve_one(int lfd, int wfd, const struct fake_reply *r, bool last)
{
	int cfd = accept(lfd, NULL, NULL);
	if (cfd < 0)
		return false;
	char buf[65536];
	size_t len = 0;
	char *hdr_end = NULL;
	while (!hdr_end && len < sizeof(buf) - 1) {
		ssize_t n = read(cfd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			return false;
		len += (size_t)n;
		buf[len] = '\0';
		hdr_end = strstr(buf, "\r\n\r\n");
	}
	if (!hdr_end)
		return false;
	size_t want = 0;
	for (char *p = buf; p < hdr_end; p = strstr(p, "\r\n") + 2)
		if (strncasecmp(p, "Content-Length:", 15) == 0)
			want = strtoul(p + 15, NULL, 10);
	size_t body_off = (size_t)(hdr_end + 4 - buf);
	while (len - body_off < want && len < sizeof(buf) - 1) {
		ssize_t n = read(cfd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	/* report "METHOD PATH\nBODY" */
	char *sp = memchr(buf, ' ', len);
	char *sp2 = sp ? memchr(sp + 1, ' ', len - (size_t)(sp + 1 - buf)) : NULL;
	if (!sp2 || write(wfd, buf, (size_t)(sp2 - buf)) < 0 || write(wfd, "\n", 1) < 0 ||
	    write(wfd, buf + body_off, len - body_off) < 0)
		return false;
	/* before the last reply goes out: so that the client's next request
	 * is refused, not queued on a socket about to close */
	if (last)
		close(lfd);
	if (r->term_first)
		kill(getppid(), SIGTERM);
	char *resp = r->body ? xasprintf("HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
					 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
					 r->status, strlen(r->body), r->body)
			     : xasprintf("HTTP/1.1 %d X\r\nConnection: close\r\n\r\n", r->status);
	bool ok = write(cfd, resp, strlen(resp)) >= 0;
	free(resp);
	close(cfd);
	return ok;
}

/* Start a fake answering `replies` in order; f->sock is its socket. */
static inline void fake_start_script(struct fake *f, const struct fake_reply *replies, size_t n)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "%s", FAKE_DIR_TEMPLATE);
	assert_non_null(mkdtemp(f->dir));
	f->sock = path_join(f->dir, "vcpud.sock", NULL);
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->sock);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(lfd, 8), 0);
	int p[2];
	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0) {
		close(p[0]);
		alarm(20); /* never outlive a broken test */
		for (size_t i = 0; i < n; i++)
			if (!fake_serve_one(lfd, p[1], &replies[i], i + 1 == n))
				_exit(1);
		_exit(0);
	}
	close(lfd);
	close(p[1]);
	f->report = p[0];
}

/* Start a fake answering one request with status and body (NULL: none). */
static inline void fake_start(struct fake *f, int status, const char *body)
{
	const struct fake_reply r = { status, body, false };
	fake_start_script(f, &r, 1);
}

/* Wait for the fake to end; f->requests (caller frees) is what it saw. */
static inline void fake_finish(struct fake *f)
{
	char buf[65536];
	size_t len = 0;
	ssize_t n;
	while (len < sizeof(buf) - 1 && (n = read(f->report, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(f->report);
	int st;
	assert_int_equal(waitpid(f->pid, &st, 0), f->pid);
	f->requests = xstrdup(buf);
	unlink(f->sock);
	rmdir(f->dir);
	free(f->sock);
	f->sock = NULL;
}

/* `vcpuctl --socket FAKE ARGS...` against the scripted replies; *requests
 * gets what the fake saw (caller frees). */
static inline void run_script(struct cap *c, char **requests, const struct fake_reply *replies,
			      size_t n, char *const *args)
{
	struct fake f;
	fake_start_script(&f, replies, n);
	char *argv[24] = { "vcpuctl", "--socket", f.sock };
	int argc = 3;
	for (; *args; args++) {
		assert_true(argc + 1 < (int)ARRAY_SIZE(argv));
		argv[argc++] = *args;
	}
	run_argv(c, argc, argv);
	fake_finish(&f);
	*requests = f.requests;
}
#define RUN_SCRIPT(c, reqs, replies, ...) \
	run_script(c, reqs, replies, ARRAY_SIZE(replies), ARGV(__VA_ARGS__))

#endif
