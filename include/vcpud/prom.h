/* prom.h - writing Prometheus' text exposition format (version 0.0.4) for
 * GET /metrics: a family's HELP and TYPE lines once, then its samples, a
 * label value escaped (backslash, double quote, line feed), a value as
 * Prometheus reads it (NaN, +Inf, -Inf, or the shortest exact decimal).
 * No C client library for Prometheus is kept up (DESIGN.md), and vcpud only
 * writes its own figures at a scrape: this is all it needs. */
#ifndef VCPUD_PROM_H
#define VCPUD_PROM_H

#include <stdbool.h>
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

/* A column of a table of rows written by prom_rows(): one family, and
 * each row's value in it, false when the row has no sample there (a limit
 * not set, no valid figure). */
struct prom_col {
	const char *name, *type, *help;
	bool (*value)(const void *ctx, const void *row, double *v);
};

/* Labels of one row: l gets NULL-terminated pairs, at most PROM_LABELS_MAX
 * strings with the NULL; a number among them may be formatted into buf
 * (PROM_LABEL_BUF bytes). */
#define PROM_LABELS_MAX 9
#define PROM_LABEL_BUF 32
typedef void prom_labels_fn(const void *ctx, const void *row, char *buf, const char **l);

/* Each column's family (HELP and TYPE once), then a sample for each of the
 * n rows that has a value in it; row i is at rows + i * stride. ctx is
 * passed through to value() and labels(). */
void prom_rows(FILE *f, const struct prom_col *cols, size_t n_cols, const void *rows,
	       size_t n, size_t stride, prom_labels_fn *labels, const void *ctx);

/* A histogram's series from its buckets: counts[i] observations <= le[i]
 * (not cumulative; cumulated here), then +Inf, _sum and _count. */
void prom_histogram(FILE *f, const char *name, const double *le, const uint64_t *counts,
		    size_t n, uint64_t over, double sum);

#endif
