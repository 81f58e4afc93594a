/* cpulist.h - the kernel's CPU list format ("0-3,8,10-11") as a bitmap.
 *
 * Used for policy pools, cpuset.cpus/.mems and sysfs topology files. The
 * parser is strict: it takes a buffer, allows one trailing newline, and
 * rejects reversed ranges, junk, duplicates are allowed (merged). */
#ifndef VCPUD_CPULIST_H
#define VCPUD_CPULIST_H

#include <stdbool.h>
#include <stddef.h>

#include "vcpud/error.h"

/* CPU numbers 0..2047. A set is a plain bitmap, and sets are kept per VM
 * (its reservation, its effective CPUs, the throttler's view): at 8,192
 * (the kernel's NR_CPUS on Debian) each was 1 KiB, several MiB at 1,000
 * VMs, and every count or scan went over 128 words. The largest x86 hosts
 * have under 2,048 logical CPUs; a number past the limit is refused with
 * ERANGE, never truncated. */
#define CPULIST_MAX_CPUS 2048

struct cpuset {
	unsigned long bits[CPULIST_MAX_CPUS / (8 * sizeof(unsigned long))];
};

void cpuset_zero(struct cpuset *s);
void cpuset_set(struct cpuset *s, unsigned cpu);
void cpuset_clear(struct cpuset *s, unsigned cpu);
bool cpuset_isset(const struct cpuset *s, unsigned cpu);
unsigned cpuset_count(const struct cpuset *s);
bool cpuset_empty(const struct cpuset *s);
bool cpuset_equal(const struct cpuset *a, const struct cpuset *b);
bool cpuset_intersects(const struct cpuset *a, const struct cpuset *b);
void cpuset_and(struct cpuset *dst, const struct cpuset *a, const struct cpuset *b);
void cpuset_or(struct cpuset *dst, const struct cpuset *a, const struct cpuset *b);
/* dst = a & ~b */
void cpuset_andnot(struct cpuset *dst, const struct cpuset *a, const struct cpuset *b);

/* Parse "0-3,8" (empty string or "\n" = empty set). 0 or -1 (EINVAL) with
 * the offending text in the message. CPUs >= CPULIST_MAX_CPUS are ERANGE. */
int cpulist_parse(const char *buf, struct cpuset *out, struct error **err);

/* Canonical form "0-3,8"; "" for the empty set. Caller frees. */
char *cpulist_format(const struct cpuset *s);

#endif
