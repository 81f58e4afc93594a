/* prom.h - writing Prometheus' text exposition format (version 0.0.4) for
 * GET /metrics: a family's HELP and TYPE lines once, then its samples, a
 * label value escaped (backslash, double quote, line feed), a value as
 * Prometheus reads it (NaN, +Inf, -Inf, or the shortest exact decimal).
 * No C client library for Prometheus is kept up (DESIGN.md), and vcpud only
 * writes its own figures at a scrape: this is all it needs. */
#ifndef VCPUD_PROM_H
#define VCPUD_PROM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* "# HELP name help\n# TYPE name type\n" (type: counter, gauge, histogram) */
void prom_family(FILE *f, const char *name, const char *type, const char *help);

/* One sample: name{k1="v1",k2="v2"} value. `labels` is NULL-terminated
 * pairs (NULL: none). */
void prom_sample(FILE *f, const char *name, const char *const *labels, double value);

/* A value as the format writes it. buf: at least 32 bytes. */
const char *prom_value(double v, char *buf);

/* A histogram's series from its buckets: counts[i] observations <= le[i]
 * (not cumulative; cumulated here), then +Inf, _sum and _count. */
void prom_histogram(FILE *f, const char *name, const double *le, const uint64_t *counts,
		    size_t n, uint64_t over, double sum);

#endif
