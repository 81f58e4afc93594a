/* discovery.h - the discover stage of vcpud's tick: the registered VMs'
 * processes in /proc, libvirt domains (with lifecycle events) and
 * QEMU/Firecracker/cloud-hypervisor processes found in /proc. What the
 * sources see goes to the registry (src/registry/), which owns the VM
 * lifecycle and its precedence rule; VMs without a tenant are listed as
 * unmanaged and left alone. */
#ifndef VCPUD_DAEMON_DISCOVERY_H
#define VCPUD_DAEMON_DISCOVERY_H

#include <jansson.h>
#include <stdbool.h>

#include "vcpud/error.h"
#include "vcpud/policy.h"
#include "vcpud/registry.h"

struct discovery;

/* libvirt_uri NULL: no libvirt backend (--no-libvirt). The /proc backend
 * follows the policy (discovery.proc). */
int discovery_new(const char *host_root, const char *libvirt_uri, const struct policy *p,
		  struct discovery **out, struct error **err);
void discovery_free(struct discovery *disc);

/* A policy reload: switch the /proc backend on or off, mapping rules. */
void discovery_configure(struct discovery *disc, const struct policy *p);

/* An fd to poll (libvirt's events), or -1. */
int discovery_fd(const struct discovery *disc);
/* Consume what made discovery_fd() readable; true when a domain changed
 * (the daemon then runs a tick at once). */
bool discovery_dispatch(struct discovery *disc);

/* One pass: the registered VMs' processes, libvirt, /proc, merged into
 * `inv` through the registry; rebuilds the unmanaged list (a JSON array
 * owned by the discovery, valid until the next pass). */
void discovery_run(struct discovery *disc, struct registry *reg, struct inventory *inv);
json_t *discovery_unmanaged(const struct discovery *disc);

/* libvirt's state for /v1/health: "disabled", "connecting", "connected" or
 * "unreachable", since when (unix ms, 0 unknown) and the last error (or
 * NULL); strings borrowed until the next pass. */
struct discovery_libvirt_state {
	const char *state;
	int64_t since_ms;
	const char *error;
};
void discovery_libvirt_state(const struct discovery *disc, struct discovery_libvirt_state *out);

#endif
