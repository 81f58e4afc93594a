/* util.h - small helpers every module uses: aborting allocators,
 * __attribute__((cleanup)) helpers, ownership transfer and strict number
 * parsing. Allocation failure aborts the process (no ENOMEM plumbing). */
#ifndef VCPUD_UTIL_H
#define VCPUD_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "vcpud/error.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* A malloc'd copy of n bytes (n may be 0: a 1-byte block). */
void *xmemdup(const void *p, size_t n);
char *xstrndup(const char *s, size_t n);
/* Formatted, allocated string; the caller frees it. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
/* "2026-12-07T21:12:09Z" (UTC), or the number when it cannot be one. */
char *utc_time_str(int64_t unix_s);

static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd) { if (*fd >= 0) close(*fd); }
static inline void fclosep(FILE **f) { if (*f) fclose(*f); }
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)
#define _cleanup_error_ _cleanup_(error_free)

/* Take ownership of *pp: returns it and sets *pp to NULL. */
static inline void *steal_ptr_(void *pp)
{
	void **p = (void **)pp;
	void *r = *p;
	*p = NULL;
	return r;
}
#define steal_ptr(pp) steal_ptr_(pp)

/* Strict decimal parsing of the whole string: no sign for unsigned, no
 * trailing garbage, no overflow, within [min, max]. 0 or -1 (EINVAL/ERANGE). */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out, struct error **err);
int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out, struct error **err);
/* A finite double in [min, max]. */
int parse_double(const char *s, double min, double max, double *out, struct error **err);

/* A size in bytes: digits with an optional K, M, G or T suffix (powers of
 * 1024, case-insensitive, an optional trailing 'B' or 'iB' allowed). */
int parse_size(const char *s, int64_t *out_bytes, struct error **err);

/* Human form of a byte count: "512M", "2G", "1536K", exact when possible. */
char *format_size(int64_t bytes);

/* Trim whitespace at both ends, in place; returns s. */
char *strstrip(char *s);

bool str_has_prefix(const char *s, const char *prefix);

/* Read the whole file at `path` (`what` names it in messages: "policy
 * file"): 0 with *out (NUL after *len bytes, the caller frees it), or -1:
 * errno of open/read, EFBIG when it has more than `max` bytes (read no
 * further than one byte past the limit: works for pipes too). */
int read_file_max(const char *path, const char *what, size_t max, char **out, size_t *len,
		  struct error **err);

/* Nanoseconds of CLOCK_MONOTONIC / CLOCK_REALTIME. */
/* An index by name over an array of structs that hold their name as a
 * char array at `offset` (offsetof(struct x, name)), `stride` bytes apart
 * (sizeof(struct x)): open addressing on the names' hashes, slots holding
 * index + 1. The index does not own the array; rebuild it (or add to it)
 * when the array changes. Zero-initialised is an empty index. */
struct name_index {
	size_t *slots;
	size_t cap;   /* a power of two, or 0 */
	size_t n;
	size_t stride, offset;
};
/* On a zeroed or cleared index (it does not free what one holds). */
void name_index_init(struct name_index *ix, size_t stride, size_t offset);
/* Index items [0, n) of base (drops what it held). */
void name_index_build(struct name_index *ix, const void *base, size_t n);
/* Add item i of base, appended after the items indexed so far (whose name
 * is not in the index yet; base may have moved: realloc). */
void name_index_add(struct name_index *ix, const void *base, size_t i);
/* The index of the item named `name`, or SIZE_MAX. */
size_t name_index_find(const struct name_index *ix, const void *base, const char *name);
void name_index_clear(struct name_index *ix);

/* FNV-1a of s folded into h (start with HASH_SEED), then a separator so
 * that ("ab", "c") and ("a", "bc") hash apart. Not for untrusted keys of a
 * table an attacker can fill: only vcpud's own paths and values. */
#define HASH_SEED 14695981039346656037ULL
uint64_t hash_str(uint64_t h, const char *s);
uint64_t hash_u64(uint64_t h, uint64_t v);

/* When something checked at count `now` (a reconcile, a pass) is due for
 * its next check, about every `every` counts: between every/2 + 1 and
 * 3/2 x every, spread by `key` so that things checked together are not
 * all due together. */
uint32_t recheck_due(uint32_t now, unsigned every, uint64_t key);

int64_t now_mono_ns(void);
int64_t now_real_ns(void);

/* A hook that a long computation calls back at most once every so often
 * (the daemon answers its API's reads there within a long tick stage). */
struct yield_hook {
	void (*fn)(void *data);  /* NULL: never */
	void *data;
	int64_t every_ns;
	int64_t last_ns;         /* monotonic: the last call, or the start */
};
void yield_hook_set(struct yield_hook *h, void (*fn)(void *data), void *data, unsigned every_us);
/* The computation begins: the interval counts from now. */
void yield_hook_start(struct yield_hook *h);
/* fn(data) when the interval has passed since the start or the last
 * call; returns how long the call took (0: no call). */
int64_t yield_hook_maybe(struct yield_hook *h);

#endif
