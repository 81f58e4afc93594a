/* etcd.h - a small client of etcd's v3 JSON gateway (etcd 3.4: POST
 * /v3/kv/range, /v3/kv/txn, /v3/lease/grant|keepalive|revoke, /v3/watch),
 * over libcurl with jansson. Keys and values travel base64-encoded; the
 * replies' 64-bit integers are strings ("revision":"12"), as protobuf's
 * JSON mapping writes them, and fields at their zero value are left out
 * ("succeeded": false is absent).
 *
 * Every call has a deadline (CLOCK_MONOTONIC ns) and never waits past it:
 * the members are tried in turn, starting with the last one that answered,
 * each for a share of the time left, so a member that refuses costs nothing
 * and one that hangs (no quorum: it cannot commit) costs its share. A
 * struct etcd is used by one thread at a time (its curl handles and its
 * last good member are its own). */
#ifndef VCPUD_ETCD_H
#define VCPUD_ETCD_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vcpud/error.h"

struct etcd;

struct etcd_config {
	const char *const *urls;       /* "http://127.0.0.1:2379", https:// with TLS */
	size_t n_urls;
	const char *cacert, *cert, *key; /* PEM files for https (NULL: system CAs,
					  * no client certificate) */
};

/* 0, or -1 EINVAL for a URL that is not http:// or https://HOST:PORT. */
int etcd_new(const struct etcd_config *cfg, struct etcd **out, struct error **err);
void etcd_free(struct etcd *e);

/* POST `body` (not consumed) to `path` on a member: its reply object in
 * *reply (a new reference). Errors: ETIMEDOUT (no member answered by the
 * deadline: without quorum a member cannot answer a linearizable request),
 * ECONNREFUSED (every member refused or could not be reached), EPROTO (a
 * reply that is not JSON), EIO (etcd's own error, its message: "etcdserver:
 * no leader", ...). The message names the members tried. */
int etcd_post(struct etcd *e, const char *path, const json_t *body, int64_t deadline_ns,
	      json_t **reply, struct error **err);

/* --- keys, values ------------------------------------------------------------- */

/* base64 of n bytes (a new string) / the bytes of base64 text (a new
 * NUL-terminated buffer, *n its length; NULL for text that is not base64). */
char *etcd_b64(const void *p, size_t n);
char *etcd_unb64(const char *s, size_t *n);

/* The end of the range of keys that start with `prefix` (etcd's range_end:
 * the prefix with its last byte + 1), base64. */
char *etcd_prefix_end_b64(const char *prefix);

/* A decimal int64 that protobuf's JSON mapping writes as a string (or a
 * number); 0 when absent. */
int64_t etcd_int(const json_t *obj, const char *key);

/* A key-value of a range reply: key and value as text (owned by the
 * caller), its mod_revision and version. */
struct etcd_kv {
	char *key, *value;
	int64_t mod_revision, version;
};
void etcd_kv_clear(struct etcd_kv *kv);
/* The kvs of a range reply (or of a txn's response_range); *out freed
 * with etcd_kvs_free(). */
int etcd_kvs(const json_t *range_reply, struct etcd_kv **out, size_t *n, struct error **err);
void etcd_kvs_free(struct etcd_kv *kvs, size_t n);

/* JSON of one request inside a txn: {"request_range": {...}} etc. (new
 * references). value may be NULL for a range or a delete. */
json_t *etcd_op_range(const char *key, bool prefix);
json_t *etcd_op_put(const char *key, const char *value, int64_t lease);
json_t *etcd_op_delete(const char *key);
/* A compare: key's mod_revision (or version, with `version`) == rev. */
json_t *etcd_cmp_mod(const char *key, int64_t rev);
json_t *etcd_cmp_version(const char *key, int64_t version);

/* Range a key or a prefix: the kvs and the store's revision. */
int etcd_range(struct etcd *e, const char *key, bool prefix, int64_t deadline_ns,
	       struct etcd_kv **kvs, size_t *n, int64_t *revision, struct error **err);

/* --- watch -------------------------------------------------------------------- */

/* A watch's stream: JSON objects one after another, cut anywhere by the
 * transport. Fed what arrives, it calls on_event(data, revision) for each
 * message with events; -1 (EPROTO, EIO, EFBIG) when the stream cannot go
 * on: not JSON, etcd's error or cancellation, or a message too large. */
struct etcd_stream;
struct etcd_stream *etcd_stream_new(void (*on_event)(void *data, int64_t revision), void *data);
void etcd_stream_free(struct etcd_stream *s);
int etcd_stream_feed(struct etcd_stream *s, const char *p, size_t n, struct error **err);

/* Watch keys under `prefix` from revision `from` (0: now) until *stop is
 * set or the stream breaks: on_event(data, revision) once per batch of
 * events. Returns 0 when stopped, -1 when the stream broke or could not
 * start (the caller waits and watches again, from a fresh range). Blocks:
 * a thread of its own. */
int etcd_watch(struct etcd *e, const char *prefix, int64_t from, atomic_bool *stop,
	       void (*on_event)(void *data, int64_t revision), void *data, struct error **err);

#endif
