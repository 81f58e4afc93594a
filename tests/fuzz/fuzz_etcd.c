/* fuzz_etcd.c - what an etcd cluster (or whoever answers on its port)
 * sends the fleet ledger: a watch stream cut anywhere (etcd_stream_feed),
 * a range reply's kvs (etcd_kvs) and base64 keys and values (etcd_unb64,
 * whose every success must encode back to the same text). The input's
 * first byte picks where the stream is cut. */
#include "fuzz_util.h"

#include <jansson.h>

#include "vcpud/etcd.h"

static void on_event(void *data, int64_t rev)
{
	(void)rev;
	(*(int *)data)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	size_t cut = n ? data[0] % (n + 1) : 0;
	int events = 0;
	struct etcd_stream *s = etcd_stream_new(on_event, &events);
	struct error *err = NULL;
	if (etcd_stream_feed(s, p, cut, &err) == 0)
		etcd_stream_feed(s, p + cut, n - cut, &err);
	if (err && !err->msg[0])
		abort();
	error_free(&err);
	etcd_stream_free(s);

	json_t *j = json_loadb(p, n, 0, NULL);
	if (j) {
		struct etcd_kv *kv = NULL;
		size_t m = 0;
		if (etcd_kvs(j, &kv, &m, &err) == 0) {
			for (size_t i = 0; i < m; i++)
				if (!kv[i].key || !kv[i].value)
					abort();
			etcd_kvs_free(kv, m);
		} else if (!err || kv) {
			abort();
		}
		error_free(&err);
		(void)etcd_int(j, "revision");
		json_decref(j);
	}

	char *text = malloc(n + 1);
	memcpy(text, p, n);
	text[n] = '\0';
	size_t len = 0;
	char *plain = etcd_unb64(text, &len);
	if (plain) {
		char *again = etcd_b64(plain, len);
		if (strcmp(again, text) != 0)
			abort();
		free(again);
		free(plain);
	}
	free(text);
	return 0;
}
