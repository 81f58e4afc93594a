/* cpulist.c - CPU sets as fixed-size bitmaps and the kernel's CPU list
 * format ("0-3,8,10-11") that cpuset.cpus, cpuset.mems, sysfs topology files
 * and the policy's CPU pools use. The parser is strict and never writes its
 * output on failure; the formatter prints the canonical form the kernel
 * itself prints, so parse(format(s)) == s for every set. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "vcpud/cpulist.h"
#include "vcpud/util.h"

#define BITS_PER_WORD (8 * sizeof(unsigned long))
#define NWORDS ARRAY_SIZE(((struct cpuset *)0)->bits)

_Static_assert(CPULIST_MAX_CPUS % (8 * sizeof(unsigned long)) == 0,
	       "CPULIST_MAX_CPUS must be a multiple of the word size");

void cpuset_zero(struct cpuset *s)
{
	memset(s, 0, sizeof(*s));
}

/* CPUs outside the bitmap are ignored by set/clear and never reported as set:
 * callers that take CPU numbers from outside go through cpulist_parse(),
 * which refuses them with ERANGE. */
void cpuset_set(struct cpuset *s, unsigned cpu)
{
	if (cpu < CPULIST_MAX_CPUS)
		s->bits[cpu / BITS_PER_WORD] |= 1UL << (cpu % BITS_PER_WORD);
}

void cpuset_clear(struct cpuset *s, unsigned cpu)
{
	if (cpu < CPULIST_MAX_CPUS)
		s->bits[cpu / BITS_PER_WORD] &= ~(1UL << (cpu % BITS_PER_WORD));
}

bool cpuset_isset(const struct cpuset *s, unsigned cpu)
{
	if (cpu >= CPULIST_MAX_CPUS)
		return false;
	return (s->bits[cpu / BITS_PER_WORD] >> (cpu % BITS_PER_WORD)) & 1UL;
}

unsigned cpuset_count(const struct cpuset *s)
{
	unsigned n = 0;
	for (size_t i = 0; i < NWORDS; i++)
		n += (unsigned)__builtin_popcountl(s->bits[i]);
	return n;
}

bool cpuset_empty(const struct cpuset *s)
{
	for (size_t i = 0; i < NWORDS; i++)
		if (s->bits[i])
			return false;
	return true;
}

bool cpuset_equal(const struct cpuset *a, const struct cpuset *b)
{
	return memcmp(a->bits, b->bits, sizeof(a->bits)) == 0;
}

bool cpuset_intersects(const struct cpuset *a, const struct cpuset *b)
{
	for (size_t i = 0; i < NWORDS; i++)
		if (a->bits[i] & b->bits[i])
			return true;
	return false;
}

/* dst may alias a or b in the three operations below. */
void cpuset_and(struct cpuset *dst, const struct cpuset *a, const struct cpuset *b)
{
	for (size_t i = 0; i < NWORDS; i++)
		dst->bits[i] = a->bits[i] & b->bits[i];
}

void cpuset_or(struct cpuset *dst, const struct cpuset *a, const struct cpuset *b)
{
	for (size_t i = 0; i < NWORDS; i++)
		dst->bits[i] = a->bits[i] | b->bits[i];
}

void cpuset_andnot(struct cpuset *dst, const struct cpuset *a, const struct cpuset *b)
{
	for (size_t i = 0; i < NWORDS; i++)
		dst->bits[i] = a->bits[i] & ~b->bits[i];
}

/* --- parsing ---------------------------------------------------------- */

/* How much of a bad input goes into a message, and how: non-printable
 * bytes become '?', so a corrupt file cannot garble a log line. */
#define QUOTE_MAX 64

static void quote_input(char *dst, size_t dstsz, const char *s, size_t len)
{
	size_t n = len < QUOTE_MAX ? len : QUOTE_MAX;
	size_t j = 0;
	for (size_t i = 0; i < n && j + 4 < dstsz; i++) {
		unsigned char c = (unsigned char)s[i];
		dst[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (n < len && j + 4 < dstsz) {
		memcpy(dst + j, "...", 3);
		j += 3;
	}
	dst[j] = '\0';
}

static int parse_error(struct error **err, int code, const char *buf, size_t len,
		       size_t off, const char *what)
{
	char q[QUOTE_MAX + 8];
	quote_input(q, sizeof(q), buf, len);
	return error_set(err, code, "invalid CPU list '%s': %s at offset %zu", q, what, off);
}

/* A decimal CPU number at buf[*pos]. Digits past CPULIST_MAX_CPUS are still
 * consumed (so the message points at the whole number) but never overflow. */
static int parse_cpu(const char *buf, size_t len, size_t *pos, unsigned *out,
		     struct error **err)
{
	size_t start = *pos, i = *pos;
	unsigned long v = 0;
	bool big = false;

	if (i >= len || !isdigit((unsigned char)buf[i]))
		return parse_error(err, EINVAL, buf, len, i,
				   i >= len ? "expected a CPU number, found the end"
					    : "expected a CPU number");
	for (; i < len && isdigit((unsigned char)buf[i]); i++) {
		if (!big) {
			v = v * 10 + (unsigned long)(buf[i] - '0');
			if (v >= CPULIST_MAX_CPUS)
				big = true;
		}
	}
	if (big) {
		char q[QUOTE_MAX + 8];
		quote_input(q, sizeof(q), buf + start, i - start);
		char what[QUOTE_MAX + 64];
		snprintf(what, sizeof(what), "CPU %s is out of range (0..%d)", q,
			 CPULIST_MAX_CPUS - 1);
		return parse_error(err, ERANGE, buf, len, start, what);
	}
	*pos = i;
	*out = (unsigned)v;
	return 0;
}

/* Grammar, after trimming ASCII whitespace at both ends (sysfs files end in
 * a newline; a hand-written policy may carry blanks):
 *	list  := "" | item ("," item)*
 *	item  := cpu | cpu "-" cpu		(first <= last)
 *	cpu   := [0-9]+				(< CPULIST_MAX_CPUS)
 * No spaces inside, no signs, no empty items. The kernel's stride syntax
 * ("0-15:2/4") is not used by any file vcpud reads and is refused. */
int cpulist_parse(const char *buf, struct cpuset *out, struct error **err)
{
	if (!buf)
		return error_set(err, EINVAL, "invalid CPU list: no text");

	size_t len = strlen(buf), b = 0;
	while (b < len && isspace((unsigned char)buf[b]))
		b++;
	while (len > b && isspace((unsigned char)buf[len - 1]))
		len--;

	struct cpuset tmp;
	cpuset_zero(&tmp);
	size_t pos = b;
	while (pos < len) {
		unsigned first, last;
		if (parse_cpu(buf, len, &pos, &first, err) < 0)
			return -1;
		last = first;
		if (pos < len && buf[pos] == '-') {
			size_t dash = pos++;
			if (parse_cpu(buf, len, &pos, &last, err) < 0)
				return -1;
			if (last < first) {
				char what[96];
				snprintf(what, sizeof(what), "range %u-%u is reversed", first, last);
				return parse_error(err, EINVAL, buf, len, dash, what);
			}
		}
		if (pos < len && buf[pos] == ':')
			return parse_error(err, EINVAL, buf, len, pos,
					   "stride ranges (a-b:n/m) are not supported");
		if (pos < len && buf[pos] != ',')
			return parse_error(err, EINVAL, buf, len, pos,
					   "expected ',' or '-'");
		for (unsigned c = first; c <= last; c++)
			cpuset_set(&tmp, c);
		if (pos < len) {
			pos++; /* ',' */
			if (pos >= len)
				return parse_error(err, EINVAL, buf, len, pos,
						   "trailing ','");
		}
	}
	*out = tmp;
	return 0;
}

/* --- formatting ------------------------------------------------------- */

char *cpulist_format(const struct cpuset *s)
{
	/* worst case "0,2,4,...": at most 5 chars per CPU ("8190,") */
	size_t cap = 16, n = 0;
	char *out = xmalloc(cap);
	out[0] = '\0';

	unsigned cpu = 0;
	while (cpu < CPULIST_MAX_CPUS) {
		if (!cpuset_isset(s, cpu)) {
			/* skip empty words quickly */
			if (cpu % BITS_PER_WORD == 0 && s->bits[cpu / BITS_PER_WORD] == 0)
				cpu += BITS_PER_WORD;
			else
				cpu++;
			continue;
		}
		unsigned first = cpu;
		while (cpu + 1 < CPULIST_MAX_CPUS && cpuset_isset(s, cpu + 1))
			cpu++;
		unsigned last = cpu++;

		char item[32];
		int k = first == last
			? snprintf(item, sizeof(item), "%s%u", n ? "," : "", first)
			: snprintf(item, sizeof(item), "%s%u-%u", n ? "," : "", first, last);
		if (n + (size_t)k + 1 > cap) {
			while (n + (size_t)k + 1 > cap)
				cap *= 2;
			out = xrealloc(out, cap);
		}
		memcpy(out + n, item, (size_t)k + 1);
		n += (size_t)k;
	}
	return out;
}
