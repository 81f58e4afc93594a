/* test_auth.c - the TCP API's bearer tokens (auth.h): the token file's
 * parser, the lookup, the Authorization header; --listen's address. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "vcpud/api.h"
#include "vcpud/auth.h"
#include "vcpud/util.h"

static void hex_of(const char *token, char out[65])
{
	uint8_t h[32];
	auth_sha256(token, strlen(token), h);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* SHA-256 is SHA-256: the value sha256sum prints for "abc" */
static void test_sha256(void **state)
{
	(void)state;
	char hex[65];
	hex_of("abc", hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* `line` with {H} replaced by hex, {H63} by its first 63 digits */
static char *subst(const char *line, const char *hex)
{
	const char *p = strchr(line, '{');
	if (!p)
		return xstrdup(line);
	bool short_ = strncmp(p, "{H63}", 5) == 0;
	const char *rest = strchr(p, '}') + 1;
	return xasprintf("%.*s%.*s%s", (int)(p - line), line, short_ ? 63 : 64, hex, rest);
}

static void test_parse(void **state)
{
	(void)state;
	char a[65], r[65];
	hex_of("tok-a", a);
	hex_of("tok-r", r);
	/* comments, blank lines, CRLF, tabs, upper-case hex, no final newline */
	char up[65];
	for (int i = 0; i < 65; i++)
		up[i] = (char)(r[i] >= 'a' && r[i] <= 'f' ? r[i] - 32 : r[i]);
	_cleanup_free_ char *text = xasprintf("# the control plane\r\n\r\n  ops.cp-1\tadmin  %s\r\n"
					      "grafana read %s", a, up);
	struct auth_tokens t;
	struct error *err = NULL;
	assert_int_equal(auth_tokens_parse(text, strlen(text), "t", &t, &err), 0);
	assert_int_equal(t.n, 2);
	assert_string_equal(t.v[0].name, "ops.cp-1");
	assert_int_equal(t.v[0].role, AUTH_ROLE_ADMIN);
	assert_string_equal(t.v[1].name, "grafana");
	assert_int_equal(t.v[1].role, AUTH_ROLE_READ);
	assert_ptr_equal(auth_tokens_find(&t, "tok-a", 5), &t.v[0]);
	assert_ptr_equal(auth_tokens_find(&t, "tok-r", 5), &t.v[1]);
	assert_null(auth_tokens_find(&t, "tok-b", 5));
	assert_null(auth_tokens_find(&t, "tok-a", 4)); /* a prefix is not the token */
	assert_null(auth_tokens_find(&t, "", 0));
	_cleanup_free_ char *huge = xmalloc(AUTH_TOKEN_MAX + 2);
	memset(huge, 'x', AUTH_TOKEN_MAX + 1);
	assert_null(auth_tokens_find(&t, huge, AUTH_TOKEN_MAX + 1));
	auth_tokens_clear(&t);
	/* empty: valid, no token */
	assert_int_equal(auth_tokens_parse("", 0, "t", &t, &err), 0);
	assert_int_equal(t.n, 0);
	assert_null(auth_tokens_find(&t, "tok-a", 5));
	auth_tokens_clear(&t);

	const struct {
		const char *line, *msg;
	} bad[] = {
		{ "ops admin", "t:1: a token line is NAME ROLE SHA256HEX (three fields), this one has fewer" },
		{ "ops admin {H} extra", "this one has more" },
		{ "ops root {H}", "t:1: role 'root' of token ops is not read or admin" },
		{ "ops Admin {H}", "role 'Admin'" },
		{ "ops admin abc", "the hash of token ops is 3 characters, not the 64 hex digits" },
		{ "ops admin {H63}g", "the hash of token ops is not hex" },
		{ "o/ps admin {H}", "token name 'o/ps' has a character other than" },
		{ "a123456789012345678901234567890123456789012345678901234567890123456789 admin {H}",
		  "token name is longer than 64 characters" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		_cleanup_free_ char *l = subst(bad[i].line, a);
		assert_int_equal(auth_tokens_parse(l, strlen(l), "t", &t, &err), -1);
		assert_int_equal(err->code, EINVAL);
		if (!strstr(err->msg, bad[i].msg))
			fail_msg("'%s': %s", bad[i].line, err->msg);
		error_free(&err);
	}
	/* duplicates: a name, a hash; the line is named */
	_cleanup_free_ char *dn = xasprintf("ops admin %s\nops read %s\n", a, r);
	assert_int_equal(auth_tokens_parse(dn, strlen(dn), "t", &t, &err), -1);
	assert_non_null(strstr(err->msg, "t:2: token ops has the same name as token ops"));
	error_free(&err);
	_cleanup_free_ char *dh = xasprintf("ops admin %s\n# x\nmon read %s\n", a, a);
	assert_int_equal(auth_tokens_parse(dh, strlen(dh), "t", &t, &err), -1);
	assert_non_null(strstr(err->msg, "t:3: token mon has the same hash as token ops"));
	error_free(&err);
	/* a NUL byte */
	assert_int_equal(auth_tokens_parse("ops\0admin", 9, "t", &t, &err), -1);
	assert_non_null(strstr(err->msg, "t:1: a NUL byte"));
	error_free(&err);
}

static void test_load(void **state)
{
	(void)state;
	char dir[] = "/tmp/vcpud-test-auth-XXXXXX";
	assert_non_null(mkdtemp(dir));
	_cleanup_free_ char *path = xasprintf("%s/tokens", dir);
	char a[65];
	hex_of("tok-a", a);
	FILE *f = fopen(path, "w");
	fprintf(f, "ops admin %s\n", a);
	fclose(f);
	struct auth_tokens t;
	struct error *err = NULL;
	chmod(path, 0640);
	assert_int_equal(auth_tokens_load(path, &t, &err), 0);
	assert_int_equal(t.n, 1);
	auth_tokens_clear(&t);
	chmod(path, 0646);
	assert_int_equal(auth_tokens_load(path, &t, &err), -1);
	assert_int_equal(err->code, EACCES);
	assert_non_null(strstr(err->msg, "may be written by anyone (mode 0646)"));
	error_free(&err);
	assert_int_equal(auth_tokens_load(dir, &t, &err), -1);
	assert_non_null(strstr(err->msg, "is not a regular file"));
	error_free(&err);
	unlink(path);
	assert_int_equal(auth_tokens_load(path, &t, &err), -1);
	assert_int_equal(err->code, ENOENT);
	error_free(&err);
	rmdir(dir);
}

static void test_bearer(void **state)
{
	(void)state;
	const char *tok;
	size_t len;
	assert_int_equal(auth_bearer("Bearer abc.DEF-_~+/123==", &tok, &len), 0);
	assert_int_equal(len, strlen("abc.DEF-_~+/123=="));
	assert_memory_equal(tok, "abc.DEF-_~+/123==", len);
	assert_int_equal(auth_bearer("bearer   x  ", &tok, &len), 0);
	assert_int_equal(len, 1);
	assert_int_equal(auth_bearer("BEARER\tx", &tok, &len), 0);
	const char *bad[] = { NULL, "", "Bearer", "Bearer ", "Basic dXNlcjpwdw==", "Bearerx y",
			      "Bearer a b", "Bearer a\"b", "Bearer ==", "Bearer a=b", "Bearer a,b" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (auth_bearer(bad[i], &tok, &len) != -1)
			fail_msg("'%s' was taken", bad[i] ? bad[i] : "(null)");
	_cleanup_free_ char *huge = xmalloc(AUTH_TOKEN_MAX + 16);
	strcpy(huge, "Bearer ");
	memset(huge + 7, 'x', AUTH_TOKEN_MAX + 1);
	huge[7 + AUTH_TOKEN_MAX + 1] = '\0';
	assert_int_equal(auth_bearer(huge, &tok, &len), -1);
}

static void test_listen_parse(void **state)
{
	(void)state;
	struct sockaddr_storage ss;
	socklen_t sl;
	struct error *err = NULL;
	assert_int_equal(api_listen_parse("127.0.0.1:8443", &ss, &sl, &err), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8443);
	assert_true(api_addr_loopback(&ss));
	assert_int_equal(api_listen_parse("127.9.9.9:1", &ss, &sl, &err), 0);
	assert_true(api_addr_loopback(&ss));
	assert_int_equal(api_listen_parse("0.0.0.0:65535", &ss, &sl, &err), 0);
	assert_false(api_addr_loopback(&ss));
	assert_int_equal(api_listen_parse("[::1]:8443", &ss, &sl, &err), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(sl, sizeof(struct sockaddr_in6));
	assert_true(api_addr_loopback(&ss));
	assert_int_equal(api_listen_parse("[::]:8443", &ss, &sl, &err), 0);
	assert_false(api_addr_loopback(&ss));
	assert_int_equal(api_listen_parse("[fe80::1]:8443", &ss, &sl, &err), 0);
	const struct {
		const char *in, *msg;
	} bad[] = {
		{ "8443", "is not ADDR:PORT" },
		{ ":8443", "is not ADDR:PORT" },
		{ "127.0.0.1:0", "port '0' is not 1..65535" },
		{ "127.0.0.1:65536", "is not 1..65535" },
		{ "127.0.0.1:", "port '' is not" },
		{ "127.0.0.1:84x", "port '84x'" },
		{ "localhost:8443", "'localhost' is not an IPv4 address (names are not looked up" },
		{ "::1:8443", "is not an IPv4 address" },
		{ "[::1:8443", "an IPv6 address is written [ADDR]:PORT" },
		{ "[nope]:8443", "'nope' is not an IPv6 address" },
		{ "[]:8443", "an IPv6 address is written" },
		{ "1.2.3.4.5:80", "is not an IPv4 address" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(api_listen_parse(bad[i].in, &ss, &sl, &err), -1);
		if (!strstr(err->msg, bad[i].msg))
			fail_msg("'%s': %s", bad[i].in, err->msg);
		error_free(&err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_bearer),
		cmocka_unit_test(test_listen_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
