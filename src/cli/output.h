/* output.h - vcpuctl's human output: column-aligned tables and the small
 * formatters (times, limits) the subcommands share. Tables are built in
 * memory and printed at once so column widths fit the widest cell. */
#ifndef VCPUD_CLI_OUTPUT_H
#define VCPUD_CLI_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct table;

/* A table with `ncols` columns and these headers (copied). Free with
 * table_free(). */
struct table *table_new(size_t ncols, const char *const *headers);
void table_free(struct table *t);
static inline void table_freep(struct table **t) { if (*t) table_free(*t); }

/* Start a new row; then fill it left to right with table_cell(). Cells not
 * filled print empty; cells beyond ncols are ignored. */
void table_row(struct table *t);
void table_cell(struct table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

size_t table_rows(const struct table *t);

/* Print the header and the rows: columns left-aligned, two spaces apart,
 * no trailing blanks. */
void table_print(const struct table *t, FILE *f);

/* Unix seconds as "2024-05-01T12:00:00Z" (UTC); "-" for 0. Caller frees. */
char *output_time(int64_t unix_s);

#endif
