/* util.c - aborting allocators, strict number and size parsing, clocks.
 * Parsers reject anything strtoull() would silently accept: signs on
 * unsigned values, leading spaces, trailing junk, overflow. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vcpud/util.h"

static void oom(void)
{
	fputs("vcpud: out of memory\n", stderr);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (!p)
		oom();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom();
	return q;
}

void *xmemdup(const void *p, size_t n)
{
	void *q = xmalloc(n ? n : 1);
	if (n)
		memcpy(q, p, n);
	return q;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s ? s : "");
	if (!p)
		oom();
	return p;
}

char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (!p)
		oom();
	return p;
}

char *xvasprintf(const char *fmt, va_list ap)
{
	char *s;
	if (vasprintf(&s, fmt, ap) < 0)
		oom();
	return s;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = xvasprintf(fmt, ap);
	va_end(ap);
	return s;
}

char *utc_time_str(int64_t unix_s)
{
	time_t tt = (time_t)unix_s;
	struct tm tm;
	char buf[64];
	if (!gmtime_r(&tt, &tm) || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return xasprintf("%lld", (long long)unix_s);
	return xstrdup(buf);
}

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out, struct error **err)
{
	if (!s || !isdigit((unsigned char)s[0]))
		return error_set(err, EINVAL, "'%s' is not a whole number", s ? s : "");
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end != '\0')
		return error_set(err, EINVAL, "'%s' is not a whole number", s);
	if (errno == ERANGE || v < min || v > max)
		return error_set(err, ERANGE, "%s is out of range (%" PRIu64 "..%" PRIu64 ")",
				 s, min, max);
	*out = v;
	return 0;
}

int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out, struct error **err)
{
	if (!s || !(isdigit((unsigned char)s[0]) ||
		    (s[0] == '-' && isdigit((unsigned char)s[1]))))
		return error_set(err, EINVAL, "'%s' is not a whole number", s ? s : "");
	errno = 0;
	char *end;
	long long v = strtoll(s, &end, 10);
	if (*end != '\0')
		return error_set(err, EINVAL, "'%s' is not a whole number", s);
	if (errno == ERANGE || v < min || v > max)
		return error_set(err, ERANGE, "%s is out of range (%" PRId64 "..%" PRId64 ")",
				 s, min, max);
	*out = v;
	return 0;
}

int parse_double(const char *s, double min, double max, double *out, struct error **err)
{
	if (!s || !(isdigit((unsigned char)s[0]) || s[0] == '.' ||
		    (s[0] == '-' && (isdigit((unsigned char)s[1]) || s[1] == '.'))))
		return error_set(err, EINVAL, "'%s' is not a number", s ? s : "");
	errno = 0;
	char *end;
	double v = strtod(s, &end);
	if (*end != '\0' || end == s)
		return error_set(err, EINVAL, "'%s' is not a number", s);
	if (errno == ERANGE || !isfinite(v) || v < min || v > max)
		return error_set(err, ERANGE, "%s is out of range (%g..%g)", s, min, max);
	*out = v;
	return 0;
}

int parse_size(const char *s, int64_t *out_bytes, struct error **err)
{
	if (!s || !isdigit((unsigned char)s[0]))
		return error_set(err, EINVAL,
				 "invalid size '%s': expected a number with an optional "
				 "K, M, G or T suffix", s ? s : "");
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	int shift = 0;
	switch (toupper((unsigned char)*end)) {
	case '\0':
	case 'B': break;
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	case 'T': shift = 40; end++; break;
	default:
		return error_set(err, EINVAL,
				 "invalid size '%s': unknown suffix '%s' (use K, M, G or T)",
				 s, end);
	}
	/* accept "4G", "4GB", "4GiB", "512B" */
	if (shift && (strcasecmp(end, "iB") == 0 || strcasecmp(end, "B") == 0))
		end += strlen(end);
	else if (!shift && strcasecmp(end, "B") == 0)
		end++;
	if (*end != '\0')
		return error_set(err, EINVAL,
				 "invalid size '%s': unknown suffix (use K, M, G or T)", s);
	if (errno == ERANGE || v > ((unsigned long long)INT64_MAX >> shift))
		return error_set(err, ERANGE, "size '%s' is too large", s);
	*out_bytes = (int64_t)(v << shift);
	return 0;
}

char *format_size(int64_t bytes)
{
	static const char sfx[] = "KMGT";
	int i = -1;
	int64_t v = bytes;
	while (i < 3 && v > 0 && v % 1024 == 0) {
		v /= 1024;
		i++;
	}
	if (i < 0)
		return xasprintf("%" PRId64, bytes);
	return xasprintf("%" PRId64 "%c", v, sfx[i]);
}

char *strstrip(char *s)
{
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	char *b = s;
	while (isspace((unsigned char)*b))
		b++;
	if (b != s)
		memmove(s, b, strlen(b) + 1);
	return s;
}

bool str_has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t now_mono_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
int64_t now_real_ns(void) { return clock_ns(CLOCK_REALTIME); }

uint64_t hash_str(uint64_t h, const char *s)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	h ^= 0xff;
	h *= 1099511628211ULL;
	return h;
}

void yield_hook_set(struct yield_hook *h, void (*fn)(void *data), void *data, unsigned every_us)
{
	h->fn = fn;
	h->data = data;
	h->every_ns = (int64_t)every_us * 1000;
}

void yield_hook_start(struct yield_hook *h)
{
	h->last_ns = now_mono_ns();
}

int64_t yield_hook_maybe(struct yield_hook *h)
{
	if (!h->fn)
		return 0;
	int64_t before = now_mono_ns();
	if (before - h->last_ns < h->every_ns)
		return 0;
	h->fn(h->data);
	h->last_ns = now_mono_ns();
	return h->last_ns - before;
}

uint32_t recheck_due(uint32_t now, unsigned every, uint64_t key)
{
	if (!every)
		every = 1;
	return now + every / 2 + (uint32_t)(key % every) + 1;
}

uint64_t hash_u64(uint64_t h, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8) {
		h ^= v & 0xff;
		h *= 1099511628211ULL;
	}
	return h;
}

/* --- an index by name ---------------------------------------------------- */

void name_index_init(struct name_index *ix, size_t stride, size_t offset)
{
	*ix = (struct name_index){ .stride = stride, .offset = offset };
}

static const char *ix_name(const struct name_index *ix, const void *base, size_t i)
{
	return (const char *)base + i * ix->stride + ix->offset;
}

static void ix_put(struct name_index *ix, const void *base, size_t i)
{
	size_t mask = ix->cap - 1;
	size_t h = (size_t)hash_str(HASH_SEED, ix_name(ix, base, i));
	while (ix->slots[h & mask])
		h++;
	ix->slots[h & mask] = i + 1;
	ix->n++;
}

void name_index_build(struct name_index *ix, const void *base, size_t n)
{
	size_t cap = 16;
	while (cap < n * 2 + 2)
		cap *= 2;
	free(ix->slots);
	ix->slots = xcalloc(cap, sizeof(*ix->slots));
	ix->cap = cap;
	ix->n = 0;
	for (size_t i = 0; i < n; i++)
		ix_put(ix, base, i);
}

void name_index_add(struct name_index *ix, const void *base, size_t i)
{
	if ((ix->n + 1) * 2 + 2 > ix->cap) {
		name_index_build(ix, base, i + 1 > ix->n ? i + 1 : ix->n);
		return;
	}
	ix_put(ix, base, i);
}

size_t name_index_find(const struct name_index *ix, const void *base, const char *name)
{
	if (!ix->cap || !name)
		return SIZE_MAX;
	size_t mask = ix->cap - 1;
	for (size_t h = (size_t)hash_str(HASH_SEED, name);; h++) {
		size_t v = ix->slots[h & mask];
		if (!v)
			return SIZE_MAX;
		if (strcmp(ix_name(ix, base, v - 1), name) == 0)
			return v - 1;
	}
}

void name_index_clear(struct name_index *ix)
{
	free(ix->slots);
	ix->slots = NULL;
	ix->cap = ix->n = 0;
}

int read_file_max(const char *path, const char *what, size_t max, char **out, size_t *len,
		  struct error **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return error_set_errno(err, errno, "cannot open %s %s", what, path);
	size_t cap = 4096, n = 0;
	_cleanup_free_ char *buf = xmalloc(cap);
	for (;;) {
		if (n + 1 >= cap) {
			if (cap > max + 1)
				break;
			cap = cap * 2 > max + 2 ? max + 2 : cap * 2;
			buf = xrealloc(buf, cap);
		}
		ssize_t r = read(fd, buf + n, cap - n - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return error_set_errno(err, errno, "cannot read %s %s", what, path);
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > max)
		return error_set(err, EFBIG, "%s: %s is too large (more than %zu bytes)", path,
				 what, max);
	buf[n] = '\0';
	*len = n;
	*out = steal_ptr(&buf);
	return 0;
}
