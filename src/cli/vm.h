/* vm.h - `vcpuctl vm ...`: building VM requests from argv and rendering VMs
 * for people. As with tenant.h, both halves are pure (no I/O besides the
 * FILE * they print to), so the unit tests cover them without a daemon. */
#ifndef VCPUD_CLI_VM_H
#define VCPUD_CLI_VM_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "cli/cli.h"
#include "vcpud/error.h"
#include "vcpud/vm.h"

/* Highest PID accepted by --pid: the kernel's PID_MAX_LIMIT on 64-bit, the
 * same bound the API applies to "pid". */
#define CLI_VM_PID_MAX 4194304

/* Build the request for `vcpuctl vm SUB ...`; argv[0] is SUB ("register",
 * "list", "show", "release"). Options may come before or after NAME. Names
 * (VM and --tenant), --pid and --memory are checked here as the server
 * would; the server checks again.
 * Returns 0 with *out filled (out->help set means "print help, send
 * nothing"), or -1 with *err (EINVAL or ERANGE: a usage error) and
 * out->usage set to the usage line to show. Either way the caller calls
 * cli_request_clear(out). */
int cli_vm_build(int argc, char **argv, struct cli_request *out, struct error **err);

/* `vm show`: "key: value" lines (uuid "-" when unknown, memory "none" when
 * the VM has no memory limit), with `reply` (the API's VM object; NULL: not
 * printed) its admission and fault (cli_vm_print_admission()), a blank
 * line, then cli_vm_print_threads(). */
void cli_vm_print(FILE *f, const struct vm *v, const char *const *cgroups, const json_t *reply);

/* The vCPU threads as a table INDEX TID CGROUP ("-" for an unknown tid or a
 * missing cgroup); "no vCPU threads" when there are none. `cgroups` holds
 * v->n_threads paths, or is NULL. */
void cli_vm_print_threads(FILE *f, const struct vm *v, const char *const *cgroups);

/* `vm list`: a table NAME TENANT PID STATE SOURCE VCPUS MEMORY ("-" for no
 * memory limit, sizes from format_size()); "no VMs" when n == 0. */
void cli_vm_print_table(FILE *f, const struct vm *vms, size_t n);

/* The "placement:" line of a VM reply (its admission, or none) and, when it
 * is quarantined, a "fault:" line with the reason. */
void cli_vm_print_admission(FILE *f, const json_t *reply);

/* One VM of a reply, through api_vm_from_reply(), plus its threads' cgroup
 * paths: *cgroups (when cgroups is non-NULL) becomes an array of
 * out->n_threads pointers into `reply` (NULL where the reply has none), or
 * NULL for no threads; the caller frees the array, not the strings, and
 * vm_clear()s *out. A state or source this client does not know prints as
 * "unknown" (out->source is then VM_SOURCE_LAST). -1 with *err (EPROTO) on
 * a malformed reply. */
int cli_vm_from_reply(const json_t *reply, struct vm *out, const char ***cgroups,
		      struct error **err);

/* The VMs of a GET /v1/vms reply ({"vms":[...]}). Free *out with
 * vm_list_free(*out, *n). -1 with *err (EPROTO) on a malformed reply. */
int cli_vm_list_from_reply(const json_t *reply, struct vm **out, size_t *n,
			   struct error **err);

#endif
