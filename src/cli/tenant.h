/* tenant.h - `vcpuctl tenant ...`: building tenant requests from argv and
 * rendering tenants for people. Both halves are pure (no I/O besides the
 * FILE * they print to), so the unit tests cover them without a daemon. */
#ifndef VCPUD_CLI_TENANT_H
#define VCPUD_CLI_TENANT_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "cli/cli.h"
#include "vcpud/error.h"
#include "vcpud/tenant.h"

/* Build the request for `vcpuctl tenant SUB ...`; argv[0] is SUB ("create",
 * "list", "show", "set", "delete"). Options may come before or after NAME.
 * Values are checked here as the server would (names, ranges, classes,
 * sizes); the server checks again.
 * Returns 0 with *out filled (out->help set means "print help, send
 * nothing"), or -1 with *err (EINVAL or ERANGE: a usage error) and
 * out->usage set to the usage line to show. Either way the caller calls
 * cli_request_clear(out). */
int cli_tenant_build(int argc, char **argv, struct cli_request *out, struct error **err);

/* Parse a --memory value: a size with K/M/G/T suffix within the tenant
 * memory range, or "none" (only when allow_none) which sets *set = false. */
int cli_tenant_parse_memory(const char *s, bool allow_none, bool *set, int64_t *bytes,
			    struct error **err);

/* Parse a --cpu-max value in cores (TENANT_CPU_MAX_CORES_MIN..MAX), or
 * "none" when allow_none. */
int cli_tenant_parse_cpu_max(const char *s, bool allow_none, bool *set, double *cores,
			     struct error **err);

/* `tenant show`: "key: value" lines, limits "none" when unset. */
void cli_tenant_print(FILE *f, const struct tenant *t);

/* `tenant list`: a table NAME VCPUS USED WEIGHT CPU-MAX MEMORY CLASS VMS with
 * "-" for no limit and sizes from format_size(); "no tenants" when n == 0. */
void cli_tenant_print_table(FILE *f, const struct tenant *ts, size_t n);

/* The tenants of a GET /v1/tenants reply ({"tenants":[...]}). *out is an
 * array of *n the caller frees. -1 with *err (EPROTO) on a malformed reply. */
int cli_tenant_list_from_reply(const json_t *reply, struct tenant **out, size_t *n,
			       struct error **err);

#endif
