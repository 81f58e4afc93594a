/* prom.c - Prometheus' text exposition format (see prom.h). */
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "vcpud/prom.h"

void prom_family(FILE *f, const char *name, const char *type, const char *help)
{
	/* HELP text: backslash and line feed escaped */
	fprintf(f, "# HELP %s ", name);
	for (const char *p = help; *p; p++) {
		if (*p == '\\')
			fputs("\\\\", f);
		else if (*p == '\n')
			fputs("\\n", f);
		else
			fputc(*p, f);
	}
	fprintf(f, "\n# TYPE %s %s\n", name, type);
}

const char *prom_value(double v, char *buf)
{
	if (isnan(v))
		return "NaN";
	if (isinf(v))
		return v > 0 ? "+Inf" : "-Inf";
	/* integers as integers; the rest in the fewest digits that read back */
	if (v == floor(v) && fabs(v) < 1e15) {
		snprintf(buf, 32, "%.0f", v);
		return buf;
	}
	for (int prec = 6; prec <= 17; prec++) {
		snprintf(buf, 32, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	return buf;
}

void prom_sample(FILE *f, const char *name, const char *const *labels, double value)
{
	fputs(name, f);
	if (labels && labels[0]) {
		fputc('{', f);
		for (size_t i = 0; labels[i]; i += 2) {
			fprintf(f, "%s%s=\"", i ? "," : "", labels[i]);
			for (const char *p = labels[i + 1] ? labels[i + 1] : ""; *p; p++) {
				if (*p == '\\' || *p == '"')
					fputc('\\', f);
				if (*p == '\n')
					fputs("\\n", f);
				else
					fputc(*p, f);
			}
			fputc('"', f);
		}
		fputc('}', f);
	}
	char buf[32];
	fprintf(f, " %s\n", prom_value(value, buf));
}

void prom_histogram(FILE *f, const char *name, const double *le, const uint64_t *counts,
		    size_t n, uint64_t over, double sum)
{
	char bucket[128], b[32];
	snprintf(bucket, sizeof(bucket), "%s_bucket", name);
	uint64_t cum = 0;
	for (size_t i = 0; i < n; i++) {
		cum += counts[i];
		const char *labels[] = { "le", prom_value(le[i], b), NULL };
		prom_sample(f, bucket, labels, (double)cum);
	}
	cum += over;
	const char *inf[] = { "le", "+Inf", NULL };
	prom_sample(f, bucket, inf, (double)cum);
	char s[128];
	snprintf(s, sizeof(s), "%s_sum", name);
	prom_sample(f, s, NULL, sum);
	snprintf(s, sizeof(s), "%s_count", name);
	prom_sample(f, s, NULL, (double)cum);
}

void prom_rows(FILE *f, const struct prom_col *cols, size_t n_cols, const void *rows,
	       size_t n, size_t stride, prom_labels_fn *labels, const void *ctx)
{
	for (size_t k = 0; k < n_cols; k++) {
		prom_family(f, cols[k].name, cols[k].type, cols[k].help);
		for (size_t i = 0; i < n; i++) {
			const void *row = (const char *)rows + i * stride;
			double v;
			if (!cols[k].value(ctx, row, &v))
				continue;
			char buf[PROM_LABEL_BUF];
			const char *l[PROM_LABELS_MAX] = { NULL };
			labels(ctx, row, buf, l);
			prom_sample(f, cols[k].name, l, v);
		}
	}
}
