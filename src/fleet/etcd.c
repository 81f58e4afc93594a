/* etcd.c - a client of etcd's v3 JSON gateway (see vcpud/etcd.h). */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vcpud/etcd.h"
#include "vcpud/util.h"

/* A reply larger than this is refused (a range of every booking of a big
 * fleet is some MB; a runaway reply must not eat the host's memory). */
#define ETCD_REPLY_MAX (64u << 20)
/* A member that hangs gets at least this much of the time left. */
#define ETCD_ATTEMPT_MIN_MS 250
/* Between rounds of members that all failed (not refused): a leader
 * election takes about one election timeout. */
#define ETCD_ROUND_PAUSE_MS 100

struct member {
	char *url;                 /* "http://127.0.0.1:2379", no trailing / */
	CURL *h;
};

struct etcd {
	struct member *m;
	size_t n;
	size_t good;               /* the member that answered last */
	char *cacert, *cert, *key;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

int etcd_new(const struct etcd_config *cfg, struct etcd **out, struct error **err)
{
	*out = NULL;
	if (!cfg->n_urls)
		return error_set(err, EINVAL, "no etcd endpoint given");
	for (size_t i = 0; i < cfg->n_urls; i++) {
		const char *u = cfg->urls[i];
		const char *h = str_has_prefix(u, "http://")    ? u + 7
			      : str_has_prefix(u, "https://") ? u + 8
								: NULL;
		if (!h || !*h || strchr(h, '/') != strrchr(h, '/') ||
		    (strchr(h, '/') && strchr(h, '/')[1] != '\0') || strpbrk(u, " \t\r\n"))
			return error_set(err, EINVAL, "etcd endpoint '%.200s': want http://HOST:PORT "
					 "or https://HOST:PORT", u);
	}
	pthread_once(&curl_once, curl_init_once);
	struct etcd *e = xcalloc(1, sizeof(*e));
	e->n = cfg->n_urls;
	e->m = xcalloc(e->n, sizeof(*e->m));
	for (size_t i = 0; i < e->n; i++) {
		e->m[i].url = xstrdup(cfg->urls[i]);
		size_t l = strlen(e->m[i].url);
		if (l && e->m[i].url[l - 1] == '/')
			e->m[i].url[l - 1] = '\0';
	}
	e->cacert = cfg->cacert ? xstrdup(cfg->cacert) : NULL;
	e->cert = cfg->cert ? xstrdup(cfg->cert) : NULL;
	e->key = cfg->key ? xstrdup(cfg->key) : NULL;
	*out = e;
	return 0;
}

void etcd_free(struct etcd *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n; i++) {
		if (e->m[i].h)
			curl_easy_cleanup(e->m[i].h);
		free(e->m[i].url);
	}
	free(e->m);
	free(e->cacert);
	free(e->cert);
	free(e->key);
	free(e);
}

struct buf {
	char *p;
	size_t len, cap;
	bool too_big;
};

static size_t on_data(char *p, size_t size, size_t nmemb, void *data)
{
	struct buf *b = data;
	size_t n = size * nmemb;
	if (b->len + n + 1 > ETCD_REPLY_MAX) {
		b->too_big = true;
		return 0;
	}
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

static CURL *handle(struct etcd *e, struct member *m)
{
	if (!m->h) {
		m->h = curl_easy_init();
		if (!m->h)
			return NULL;
	} else {
		curl_easy_reset(m->h);
	}
	CURL *h = m->h;
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 5L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 2L);
	if (e->cacert)
		curl_easy_setopt(h, CURLOPT_CAINFO, e->cacert);
	if (e->cert)
		curl_easy_setopt(h, CURLOPT_SSLCERT, e->cert);
	if (e->key)
		curl_easy_setopt(h, CURLOPT_SSLKEY, e->key);
	return h;
}

/* A POST of JSON `body` to member m's `path`, what comes back to fn(data):
 * the header list to free once it is done. */
static struct curl_slist *post_setup(CURL *h, const struct member *m, const char *path,
				     const char *body, curl_write_callback fn, void *data)
{
	_cleanup_free_ char *url = xasprintf("%s%s", m->url, path);
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_URL, url); /* libcurl keeps a copy */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fn);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, data);
	return hdr;
}

enum outcome { OK, REFUSED, TIMEDOUT, FAILED };

/* One attempt on member m within ms. */
static enum outcome attempt(struct etcd *e, struct member *m, const char *path, const char *body,
			    long ms, json_t **reply, char **why)
{
	CURL *h = handle(e, m);
	if (!h) {
		*why = xstrdup("cannot make a curl handle");
		return FAILED;
	}
	struct buf b = { 0 };
	struct curl_slist *hdr = post_setup(h, m, path, body, on_data, &b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ms);
	CURLcode rc = curl_easy_perform(h);
	curl_slist_free_all(hdr);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	enum outcome o = OK;
	if (rc != CURLE_OK) {
		o = rc == CURLE_OPERATION_TIMEDOUT ? TIMEDOUT
		  : rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ? REFUSED
										    : FAILED;
		*why = xasprintf("%s", b.too_big ? "reply too large" : curl_easy_strerror(rc));
		free(b.p);
		return o;
	}
	json_error_t je;
	json_t *j = b.p ? json_loadb(b.p, b.len, 0, &je) : NULL;
	if (!j || !json_is_object(j)) {
		/* what came, printable ASCII only (it ends up in JSON) */
		char shown[121] = "";
		for (size_t i = 0; b.p && i < b.len && i < sizeof(shown) - 1; i++)
			shown[i] = b.p[i] >= 0x20 && b.p[i] < 0x7f ? b.p[i] : '?';
		*why = xasprintf("HTTP %ld, a reply that is not a JSON object: %s", status, shown);
		json_decref(j);
		free(b.p);
		return FAILED;
	}
	free(b.p);
	const json_t *ej = json_object_get(j, "error");
	if (status != 200 || ej) {
		const char *msg = json_string_value(json_object_get(j, "message"));
		if (!msg)
			msg = json_string_value(ej);
		*why = xasprintf("HTTP %ld: %s", status, msg ? msg : "an error without a message");
		/* a member without a leader, or one that could not commit in
		 * time: the cluster has no quorum (now); tried again, and said
		 * so when the deadline passes */
		bool no_quorum = status == 503 || (msg && (strstr(msg, "leader") ||
							   strstr(msg, "timed out") ||
							   strstr(msg, "unavailable")));
		json_decref(j);
		return no_quorum ? TIMEDOUT : FAILED;
	}
	*reply = j;
	return OK;
}

int etcd_post(struct etcd *e, const char *path, const json_t *body, int64_t deadline_ns,
	      json_t **reply, struct error **err)
{
	*reply = NULL;
	_cleanup_free_ char *text = json_dumps(body, JSON_COMPACT);
	if (!text)
		return error_set(err, EINVAL, "etcd: cannot encode the request");
	_cleanup_free_ char *last = NULL;
	bool any_timeout = false, any_failed = false;
	unsigned tries = 0;
	for (;;) {
		bool all_refused = true;
		for (size_t i = 0; i < e->n; i++) {
			int64_t left_ms = (deadline_ns - now_mono_ns()) / 1000000;
			if (left_ms <= 0)
				goto out;
			size_t idx = (e->good + i) % e->n;
			long share = (long)(left_ms / (int64_t)(e->n - i));
			if (share < ETCD_ATTEMPT_MIN_MS)
				share = (long)(left_ms < ETCD_ATTEMPT_MIN_MS ? left_ms : ETCD_ATTEMPT_MIN_MS);
			char *why = NULL;
			tries++;
			enum outcome o = attempt(e, &e->m[idx], path, text, share, reply, &why);
			if (o == OK) {
				e->good = idx;
				return 0;
			}
			free(last);
			last = xasprintf("%s: %s", e->m[idx].url, why);
			free(why);
			any_timeout |= o == TIMEDOUT;
			any_failed |= o == FAILED;
			all_refused &= o == REFUSED;
		}
		if (all_refused)
			return error_set(err, ECONNREFUSED, "etcd unreachable: none of its %zu "
					 "members takes a connection (last: %s)", e->n, last);
		int64_t left_ms = (deadline_ns - now_mono_ns()) / 1000000;
		if (left_ms <= 0)
			break;
		struct timespec ts = { 0, (left_ms < ETCD_ROUND_PAUSE_MS ? left_ms
								    : ETCD_ROUND_PAUSE_MS) * 1000000L };
		nanosleep(&ts, NULL);
	}
out:
	if (any_timeout || !any_failed)
		return error_set(err, ETIMEDOUT, "etcd did not answer in time (no quorum, or "
				 "unreachable): %u tries on %zu members, last: %s", tries, e->n,
				 last ? last : "none");
	return error_set(err, EIO, "etcd refused the request: %s", last ? last : "?");
}

/* --- base64 ------------------------------------------------------------------ */

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *etcd_b64(const void *p, size_t n)
{
	const unsigned char *s = p;
	char *out = xmalloc((n + 2) / 3 * 4 + 1), *o = out;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)s[i + 1] << 8;
		if (i + 2 < n)
			v |= s[i + 2];
		*o++ = b64chars[(v >> 18) & 63];
		*o++ = b64chars[(v >> 12) & 63];
		*o++ = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
		*o++ = i + 2 < n ? b64chars[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

static int b64val(char c)
{
	const char *p = c ? strchr(b64chars, c) : NULL;
	return p ? (int)(p - b64chars) : -1;
}

char *etcd_unb64(const char *s, size_t *n)
{
	size_t len = strlen(s);
	if (len % 4)
		return NULL;
	char *out = xmalloc(len / 4 * 3 + 1);
	size_t k = 0;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		for (int j = 0; j < 4; j++) {
			v[j] = s[i + j] == '=' && i + 4 == len && j >= 2 ? 0 : b64val(s[i + j]);
			if (v[j] < 0) {
				free(out);
				return NULL;
			}
		}
		/* '=' only at the end: xx==, xxx=; and the bits past the last
		 * byte zero (one text for each value: the canonical one) */
		if ((s[i + 2] == '=' && s[i + 3] != '=') ||
		    (s[i + 2] == '=' && (v[1] & 0xf)) || (s[i + 3] == '=' && (v[2] & 0x3))) {
			free(out);
			return NULL;
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
			     (uint32_t)v[3];
		out[k++] = (char)(w >> 16);
		if (s[i + 2] != '=')
			out[k++] = (char)(w >> 8 & 0xff);
		if (s[i + 3] != '=')
			out[k++] = (char)(w & 0xff);
	}
	out[k] = '\0';
	if (n)
		*n = k;
	return out;
}

char *etcd_prefix_end_b64(const char *prefix)
{
	size_t n = strlen(prefix);
	_cleanup_free_ char *end = xstrdup(prefix);
	/* our prefixes end in '/', never 0xff */
	if (n)
		end[n - 1] = (char)(end[n - 1] + 1);
	return etcd_b64(end, n);
}

int64_t etcd_int(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);
	if (json_is_integer(v))
		return json_integer_value(v);
	int64_t x = 0;
	if (json_is_string(v) && parse_i64(json_string_value(v), INT64_MIN, INT64_MAX, &x, NULL) == 0)
		return x;
	return 0;
}

/* --- kvs, ops ------------------------------------------------------------------ */

void etcd_kv_clear(struct etcd_kv *kv)
{
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

void etcd_kvs_free(struct etcd_kv *kvs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		etcd_kv_clear(&kvs[i]);
	free(kvs);
}

int etcd_kvs(const json_t *range_reply, struct etcd_kv **out, size_t *n, struct error **err)
{
	*out = NULL;
	*n = 0;
	const json_t *kvs = json_object_get(range_reply, "kvs");
	if (!kvs)
		return 0; /* none: protobuf leaves an empty list out */
	if (!json_is_array(kvs))
		return error_set(err, EPROTO, "etcd: a range reply whose kvs is not a list");
	size_t m = json_array_size(kvs);
	struct etcd_kv *v = xcalloc(m ? m : 1, sizeof(*v));
	for (size_t i = 0; i < m; i++) {
		const json_t *o = json_array_get(kvs, i);
		const char *k = json_string_value(json_object_get(o, "key"));
		const char *val = json_string_value(json_object_get(o, "value"));
		v[i].key = k ? etcd_unb64(k, NULL) : NULL;
		v[i].value = val ? etcd_unb64(val, NULL) : xstrdup("");
		if (!v[i].key || !v[i].value) {
			etcd_kvs_free(v, i + 1);
			return error_set(err, EPROTO, "etcd: a key or value that is not base64");
		}
		v[i].mod_revision = etcd_int(o, "mod_revision");
		v[i].version = etcd_int(o, "version");
	}
	*out = v;
	*n = m;
	return 0;
}

static json_t *key_obj(const char *key, bool prefix)
{
	_cleanup_free_ char *k = etcd_b64(key, strlen(key));
	json_t *o = json_pack("{s:s}", "key", k);
	if (prefix) {
		_cleanup_free_ char *end = etcd_prefix_end_b64(key);
		json_object_set_new(o, "range_end", json_string(end));
	}
	return o;
}

json_t *etcd_op_range(const char *key, bool prefix)
{
	return json_pack("{s:o}", "request_range", key_obj(key, prefix));
}

json_t *etcd_op_put(const char *key, const char *value, int64_t lease)
{
	json_t *o = key_obj(key, false);
	_cleanup_free_ char *v = etcd_b64(value, strlen(value));
	json_object_set_new(o, "value", json_string(v));
	if (lease) {
		_cleanup_free_ char *l = xasprintf("%lld", (long long)lease);
		json_object_set_new(o, "lease", json_string(l));
	}
	return json_pack("{s:o}", "request_put", o);
}

json_t *etcd_op_delete(const char *key)
{
	return json_pack("{s:o}", "request_delete_range", key_obj(key, false));
}

static json_t *cmp(const char *key, const char *target, const char *field, int64_t v)
{
	json_t *o = key_obj(key, false);
	_cleanup_free_ char *s = xasprintf("%lld", (long long)v);
	json_object_set_new(o, "target", json_string(target));
	json_object_set_new(o, "result", json_string("EQUAL"));
	json_object_set_new(o, field, json_string(s));
	return o;
}

json_t *etcd_cmp_mod(const char *key, int64_t rev)
{
	return cmp(key, "MOD", "mod_revision", rev);
}

json_t *etcd_cmp_version(const char *key, int64_t version)
{
	return cmp(key, "VERSION", "version", version);
}

int etcd_range(struct etcd *e, const char *key, bool prefix, int64_t deadline_ns,
	       struct etcd_kv **kvs, size_t *n, int64_t *revision, struct error **err)
{
	*kvs = NULL;
	*n = 0;
	json_t *body = key_obj(key, prefix);
	json_t *reply = NULL;
	int rc = etcd_post(e, "/v3/kv/range", body, deadline_ns, &reply, err);
	json_decref(body);
	if (rc < 0)
		return -1;
	if (revision)
		*revision = etcd_int(json_object_get(reply, "header"), "revision");
	rc = etcd_kvs(reply, kvs, n, err);
	json_decref(reply);
	return rc;
}

/* --- watch -------------------------------------------------------------------- */

struct etcd_stream {
	struct buf b;
	void (*on_event)(void *data, int64_t revision);
	void *data;
};

struct etcd_stream *etcd_stream_new(void (*on_event)(void *data, int64_t revision), void *data)
{
	struct etcd_stream *s = xcalloc(1, sizeof(*s));
	s->on_event = on_event;
	s->data = data;
	return s;
}

void etcd_stream_free(struct etcd_stream *s)
{
	if (!s)
		return;
	free(s->b.p);
	free(s);
}

int etcd_stream_feed(struct etcd_stream *s, const char *p, size_t n, struct error **err)
{
	if (on_data((char *)p, 1, n, &s->b) != n)
		return error_set(err, EFBIG, "a watch message larger than %u bytes", ETCD_REPLY_MAX);
	size_t off = 0;
	int rc = 0;
	for (;;) {
		while (off < s->b.len && strchr(" \t\r\n", s->b.p[off]))
			off++;
		if (off == s->b.len)
			break;
		if (s->b.p[off] != '{' && s->b.p[off] != '[') {
			rc = error_set(err, EPROTO, "a watch message that is not JSON: %.40s",
				       s->b.p + off);
			break;
		}
		json_error_t je;
		json_t *j = json_loadb(s->b.p + off, s->b.len - off, JSON_DISABLE_EOF_CHECK, &je);
		if (!j) {
			/* an object cut short, between tokens or in one (a "tr"
			 * of true, a "\\" of an escape, ending what it has): the
			 * rest is coming */
			if (strstr(je.text, "end of file") || strstr(je.text, "end of input") ||
			    ((size_t)je.position + off >= s->b.len && str_has_prefix(je.text, "invalid")))
				break;
			rc = error_set(err, EPROTO, "a watch message that is not JSON: %s", je.text);
			break;
		}
		off += je.position;
		const json_t *res = json_object_get(j, "result");
		const json_t *ej = json_object_get(j, "error");
		if (!json_is_object(j) || ej ||
		    (res && json_is_true(json_object_get(res, "canceled")))) {
			const json_t *src = ej ? ej : res;
			const char *why = json_string_value(json_object_get(src, "message"));
			if (!why)
				why = json_string_value(json_object_get(res, "cancel_reason"));
			if (!why && json_is_string(ej))
				why = json_string_value(ej);
			rc = error_set(err, EIO, "the watch ended: %s",
				       !json_is_object(j) ? "a message that is not an object"
				       : why		  ? why
							  : "canceled");
			json_decref(j);
			break;
		}
		if (res && json_array_size(json_object_get(res, "events")) > 0)
			s->on_event(s->data, etcd_int(json_object_get(res, "header"), "revision"));
		json_decref(j);
	}
	memmove(s->b.p, s->b.p + off, s->b.len - off);
	s->b.len -= off;
	if (s->b.p)
		s->b.p[s->b.len] = '\0';
	return rc;
}

struct watch_ctx {
	struct etcd_stream *s;
	atomic_bool *stop;
	char *error;               /* why the stream ended, NULL: stopped */
};

static size_t on_watch_data(char *p, size_t size, size_t nmemb, void *data)
{
	struct watch_ctx *w = data;
	size_t n = size * nmemb;
	_cleanup_error_ struct error *e = NULL;
	if (etcd_stream_feed(w->s, p, n, &e) < 0) {
		w->error = xstrdup(e->msg);
		return 0;
	}
	return n;
}

static int on_watch_progress(void *data, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	(void)a; (void)b; (void)c; (void)d;
	struct watch_ctx *w = data;
	return atomic_load(w->stop) ? 1 : 0;
}

int etcd_watch(struct etcd *e, const char *prefix, int64_t from, atomic_bool *stop,
	       void (*on_event)(void *data, int64_t revision), void *data, struct error **err)
{
	struct member *m = &e->m[e->good % e->n];
	CURL *h = handle(e, m);
	if (!h)
		return error_set(err, ENOMEM, "etcd watch: cannot make a curl handle");
	json_t *req = key_obj(prefix, true);
	if (from > 0) {
		_cleanup_free_ char *s = xasprintf("%lld", (long long)from);
		json_object_set_new(req, "start_revision", json_string(s));
	}
	json_t *body = json_pack("{s:o}", "create_request", req);
	_cleanup_free_ char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	struct watch_ctx w = { .s = etcd_stream_new(on_event, data), .stop = stop };
	struct curl_slist *hdr = post_setup(h, m, "/v3/watch", text, on_watch_data, &w);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_watch_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &w);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	CURLcode rc = curl_easy_perform(h);
	curl_slist_free_all(hdr);
	etcd_stream_free(w.s);
	if (atomic_load(stop)) {
		free(w.error);
		return 0;
	}
	/* the member is not the one to start with next time */
	e->good = (e->good + 1) % e->n;
	int r = error_set(err, EIO, "etcd watch on %s: %s", m->url,
			  w.error ? w.error : rc == CURLE_OK ? "the stream ended"
							     : curl_easy_strerror(rc));
	free(w.error);
	return r;
}
