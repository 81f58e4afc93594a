/* test_etcd.c - what the fleet ledger reads from etcd and from its
 * operator, without an etcd (the fleet tier, tests/fleet, runs a real
 * cluster): base64 both ways and its refusals, the range end of a prefix,
 * protobuf's string-encoded integers, a range reply's kvs (and one that
 * lies), the watch stream cut at every byte, --fleet's URL list. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vcpud/error.h"
#include "vcpud/etcd.h"
#include "vcpud/ledger.h"
#include "vcpud/util.h"

static void test_base64(void **state)
{
	(void)state;
	static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar",
					     "/vcpud/tenant/acme" };
	static const char *const coded[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
					     "Zm9vYmFy", "L3ZjcHVkL3RlbmFudC9hY21l" };
	for (size_t i = 0; i < ARRAY_SIZE(plain); i++) {
		_cleanup_free_ char *c = etcd_b64(plain[i], strlen(plain[i]));
		assert_string_equal(c, coded[i]);
		size_t n = 99;
		_cleanup_free_ char *p = etcd_unb64(coded[i], &n);
		assert_non_null(p);
		assert_int_equal(n, strlen(plain[i]));
		assert_string_equal(p, plain[i]);
	}
	/* every byte survives the round trip */
	unsigned char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	_cleanup_free_ char *c = etcd_b64(all, sizeof(all));
	size_t n = 0;
	_cleanup_free_ char *p = etcd_unb64(c, &n);
	assert_int_equal(n, 256);
	assert_memory_equal(p, all, 256);
	/* not base64: refused, never half decoded */
	static const char *const bad[] = { "Zg=", "Z===", "Zg==Zg==", "Zm9v!", "Zm=v", "====",
					   "Zm9vYg=a", "Zh==", "Zm9=", "e3l=" /* not canonical */ };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (etcd_unb64(bad[i], NULL))
			fail_msg("'%s' decoded", bad[i]);
}

static void test_prefix_end_and_ints(void **state)
{
	(void)state;
	_cleanup_free_ char *end = etcd_prefix_end_b64("/vcpud/");
	_cleanup_free_ char *want = etcd_b64("/vcpud0", 7); /* '/' + 1 */
	assert_string_equal(end, want);
	json_t *o = json_pack("{s:s,s:I,s:s,s:s,s:b}", "rev", "12345678901234", "n", (json_int_t)7,
			      "neg", "-3", "junk", "12x", "t", 1);
	assert_true(etcd_int(o, "rev") == 12345678901234LL);
	assert_int_equal(etcd_int(o, "n"), 7);
	assert_int_equal(etcd_int(o, "neg"), -3);
	assert_int_equal(etcd_int(o, "junk"), 0);
	assert_int_equal(etcd_int(o, "t"), 0);
	assert_int_equal(etcd_int(o, "absent"), 0);
	json_decref(o);
}

static void test_kvs(void **state)
{
	(void)state;
	json_error_t je;
	json_t *r = json_loads("{\"header\":{\"revision\":\"9\"},\"kvs\":["
			       "{\"key\":\"L3ZjcHVkL3g=\",\"create_revision\":\"2\","
			       "\"mod_revision\":\"5\",\"version\":\"2\",\"value\":\"aGVsbG8=\"},"
			       "{\"key\":\"L3ZjcHVkL3k=\",\"mod_revision\":\"6\",\"version\":\"1\"}],"
			       "\"count\":\"2\"}", 0, &je);
	assert_non_null(r);
	struct etcd_kv *kv = NULL;
	size_t n = 0;
	struct error *err = NULL;
	assert_int_equal(etcd_kvs(r, &kv, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(kv[0].key, "/vcpud/x");
	assert_string_equal(kv[0].value, "hello");
	assert_int_equal(kv[0].mod_revision, 5);
	assert_int_equal(kv[0].version, 2);
	assert_string_equal(kv[1].key, "/vcpud/y");
	assert_string_equal(kv[1].value, ""); /* an empty value is left out */
	etcd_kvs_free(kv, n);
	json_decref(r);
	/* no kvs: none (protobuf leaves an empty list out) */
	r = json_pack("{s:{}}", "header");
	assert_int_equal(etcd_kvs(r, &kv, &n, &err), 0);
	assert_int_equal(n, 0);
	json_decref(r);
	/* a reply that lies: refused with EPROTO, nothing leaked (ASan) */
	static const char *const bad[] = {
		"{\"kvs\":{}}",
		"{\"kvs\":[{\"key\":\"!!\"}]}",
		"{\"kvs\":[{\"value\":\"aGk=\"}]}",
		"{\"kvs\":[{\"key\":\"eA==\"},{\"key\":\"eA==\",\"value\":\"not base64\"}]}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		r = json_loads(bad[i], 0, &je);
		assert_non_null(r);
		assert_int_equal(etcd_kvs(r, &kv, &n, &err), -1);
		assert_int_equal(err->code, EPROTO);
		assert_null(kv);
		error_free(&err);
		json_decref(r);
	}
}

static int64_t last_rev;
static int n_events;
static void on_event(void *data, int64_t rev)
{
	(void)data;
	last_rev = rev;
	n_events++;
}

static void test_stream(void **state)
{
	(void)state;
	static const char msgs[] =
		"{\"result\":{\"header\":{\"revision\":\"3\"},\"created\":true}}\n"
		"{\"result\":{\"header\":{\"revision\":\"4\"},\"events\":[{\"kv\":{}}]}}\n"
		"{\"result\":{\"header\":{\"revision\":\"7\"},\"events\":[{},{}]}}\r\n";
	size_t len = strlen(msgs);
	/* cut at every byte: the same two batches of events */
	for (size_t cut = 0; cut <= len; cut++) {
		last_rev = 0;
		n_events = 0;
		struct etcd_stream *s = etcd_stream_new(on_event, NULL);
		struct error *err = NULL;
		assert_int_equal(etcd_stream_feed(s, msgs, cut, &err), 0);
		assert_int_equal(etcd_stream_feed(s, msgs + cut, len - cut, &err), 0);
		assert_int_equal(n_events, 2);
		assert_int_equal(last_rev, 7);
		etcd_stream_free(s);
	}
	/* the end of a watch: said, with etcd's reason */
	static const struct { const char *in; int code; const char *msg; } ends[] = {
		{ "{\"result\":{\"canceled\":true,\"cancel_reason\":\"compacted\"}}", EIO,
		  "compacted" },
		{ "{\"error\":{\"grpc_code\":14,\"message\":\"etcdserver: no leader\"}}", EIO,
		  "no leader" },
		{ "{\"error\":\"grpc: the client connection is closing\"}", EIO, "closing" },
		{ "[1,2]", EIO, "not an object" },
		{ "{\"result\":}", EPROTO, "not JSON" },
		{ "nonsense", EPROTO, "not JSON" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(ends); i++) {
		struct etcd_stream *s = etcd_stream_new(on_event, NULL);
		struct error *err = NULL;
		if (etcd_stream_feed(s, ends[i].in, strlen(ends[i].in), &err) != -1)
			fail_msg("%s: taken", ends[i].in);
		assert_int_equal(err->code, ends[i].code);
		if (!strstr(err->msg, ends[i].msg))
			fail_msg("'%s': %s", ends[i].in, err->msg);
		error_free(&err);
		etcd_stream_free(s);
	}
}

static void test_fleet_urls(void **state)
{
	(void)state;
	char **u = NULL;
	size_t n = 0;
	struct error *err = NULL;
	assert_int_equal(fleet_urls_parse(" http://127.0.0.1:2379, https://e2:2379/ ,", &u, &n,
					  &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(u[0], "http://127.0.0.1:2379");
	assert_string_equal(u[1], "https://e2:2379/");
	assert_null(u[2]);
	fleet_urls_free(u);
	static const char *const bad[] = { "", ",", "127.0.0.1:2379", "ftp://x:1",
					   "http://", "http://a/b", "http://a b", "unix:///run/x" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (fleet_urls_parse(bad[i], &u, &n, &err) == 0)
			fail_msg("--fleet '%s' taken", bad[i]);
		assert_int_equal(err->code, EINVAL);
		assert_non_null(strstr(err->msg, "--fleet"));
		assert_null(u);
		error_free(&err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_prefix_end_and_ints),
		cmocka_unit_test(test_kvs),
		cmocka_unit_test(test_stream),
		cmocka_unit_test(test_fleet_urls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
