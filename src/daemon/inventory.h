/* inventory.h - the discover stage of vcpud's tick beyond registered VMs:
 * libvirt domains (with lifecycle events) and QEMU/Firecracker/
 * cloud-hypervisor processes found in /proc. A managed VM found this way
 * (libvirt metadata <vcpud:tenant>, or a /proc name mapping) is registered
 * through the same path as `vm register` (admission included) and kept up
 * to date; VMs without a tenant are listed as unmanaged and left alone. */
#ifndef VCPUD_DAEMON_INVENTORY_H
#define VCPUD_DAEMON_INVENTORY_H

#include <jansson.h>
#include <stdbool.h>

#include "vcpud/api.h"
#include "vcpud/error.h"
#include "vcpud/policy.h"

struct inventory;

/* libvirt_uri NULL: no libvirt backend (--no-libvirt). The /proc backend
 * follows the policy (discovery.proc). */
int inventory_new(const char *host_root, const char *libvirt_uri, const struct policy *p,
		  struct inventory **out, struct error **err);
void inventory_free(struct inventory *inv);

/* A policy reload: switch the /proc backend on or off, mapping rules. */
void inventory_configure(struct inventory *inv, const struct policy *p);

/* An fd to poll (libvirt's events), or -1. */
int inventory_fd(const struct inventory *inv);
/* Consume what made inventory_fd() readable; true when a domain changed
 * (the daemon then runs a tick at once). */
bool inventory_dispatch(struct inventory *inv);

/* One discovery pass: register new managed VMs, update known ones, mark
 * libvirt domains that stopped, and rebuild the unmanaged list (a JSON
 * array owned by the inventory, valid until the next pass). */
void inventory_scan(struct inventory *inv, struct api_ctx *api);
json_t *inventory_unmanaged(const struct inventory *inv);

#endif
