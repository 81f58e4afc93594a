/* output.c - tables and formatters for vcpuctl's human output (see
 * output.h). Everything prints to a FILE * so tests render into memory. */
#include <stdarg.h>
#include <string.h>

#include "cli/output.h"
#include "vcpud/util.h"

struct table {
	size_t ncols;
	size_t nrows;              /* rows started, header excluded */
	size_t cur;                /* next cell of the current row */
	char **cells;              /* (nrows + 1) * ncols; row 0 = headers */
	size_t cap_rows;
};

struct table *table_new(size_t ncols, const char *const *headers)
{
	struct table *t = xcalloc(1, sizeof(*t));
	t->ncols = ncols ? ncols : 1;
	t->cap_rows = 8;
	t->cells = xcalloc(t->cap_rows * t->ncols, sizeof(char *));
	for (size_t c = 0; c < ncols; c++)
		t->cells[c] = xstrdup(headers[c]);
	return t;
}

void table_free(struct table *t)
{
	for (size_t i = 0; i < (t->nrows + 1) * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

void table_row(struct table *t)
{
	if (t->nrows + 2 > t->cap_rows) {
		size_t old = t->cap_rows;
		t->cap_rows *= 2;
		t->cells = xrealloc(t->cells, t->cap_rows * t->ncols * sizeof(char *));
		memset(t->cells + old * t->ncols, 0, (t->cap_rows - old) * t->ncols * sizeof(char *));
	}
	t->nrows++;
	t->cur = 0;
}

void table_cell(struct table *t, const char *fmt, ...)
{
	if (t->nrows == 0 || t->cur >= t->ncols)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *s;
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	char **slot = &t->cells[t->nrows * t->ncols + t->cur++];
	free(*slot);
	*slot = s;
}

size_t table_rows(const struct table *t)
{
	return t->nrows;
}

void table_print(const struct table *t, FILE *f)
{
	_cleanup_free_ size_t *width = xcalloc(t->ncols, sizeof(size_t));
	for (size_t r = 0; r <= t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			size_t n = s ? strlen(s) : 0;
			if (n > width[c])
				width[c] = n;
		}
	for (size_t r = 0; r <= t->nrows; r++) {
		char **row = &t->cells[r * t->ncols];
		/* pad up to the last non-empty cell only: no trailing blanks */
		size_t last = t->ncols;
		while (last > 0 && (!row[last - 1] || !row[last - 1][0]))
			last--;
		for (size_t c = 0; c < last; c++) {
			const char *s = row[c] ? row[c] : "";
			if (c + 1 == last)
				fputs(s, f);
			else
				fprintf(f, "%-*s  ", (int)width[c], s);
		}
		fputc('\n', f);
	}
}

char *output_time(int64_t unix_s)
{
	return unix_s == 0 ? xstrdup("-") : utc_time_str(unix_s);
}
