/* inventory.c - libvirt and /proc discovery merged into the store (see
 * inventory.h). Rules:
 *  - a VM of the store is matched by name (libvirt) or by pid (/proc);
 *  - a VM that the API registered is never taken over by discovery;
 *  - libvirt is authoritative for its domains: a fresh list without a
 *    domain marks its VM stopped (pid 0: its cgroups go at this tick's
 *    reconcile); a stale list (libvirtd away) changes nothing, so placed
 *    VMs stay placed;
 *  - a refusal (unknown tenant, over quota) is logged once per VM and the
 *    VM is listed as unmanaged. */
#include <errno.h>
#include <string.h>

#include "daemon/inventory.h"
#include "vcpud/discover.h"
#include "vcpud/libvirt.h"
#include "vcpud/log.h"
#include "vcpud/store.h"
#include "vcpud/util.h"

struct inventory {
	char *host_root;
	struct libvirt_backend *lv;
	struct discover_backend *proc;
	bool proc_on;
	struct discover_proc_config proc_cfg;
	json_t *unmanaged;
	/* names already warned about (refused registrations), to say it once */
	char **warned;
	size_t n_warned;
};

int inventory_new(const char *host_root, const char *libvirt_uri, const struct policy *p,
		  struct inventory **out, struct error **err)
{
	struct inventory *inv = xcalloc(1, sizeof(*inv));
	inv->host_root = xstrdup(host_root ? host_root : "/");
	inv->unmanaged = json_array();
	if (libvirt_uri) {
		if (libvirt_backend_new(libvirt_uri, &inv->lv, err) < 0) {
			inventory_free(inv);
			return -1;
		}
		libvirt_backend_set_host_root(inv->lv, inv->host_root);
	}
	inventory_configure(inv, p);
	*out = inv;
	return 0;
}

void inventory_free(struct inventory *inv)
{
	if (!inv)
		return;
	if (inv->lv)
		libvirt_backend_free(inv->lv);
	if (inv->proc)
		discover_backend_free(inv->proc);
	json_decref(inv->unmanaged);
	for (size_t i = 0; i < inv->n_warned; i++)
		free(inv->warned[i]);
	free(inv->warned);
	free(inv->host_root);
	free(inv);
}

void inventory_configure(struct inventory *inv, const struct policy *p)
{
	inv->proc_on = p->discovery_proc;
	inv->proc_cfg = (struct discover_proc_config){ .tenant_from_name =
							       p->discovery_tenant_from_name };
	_cleanup_error_ struct error *err = NULL;
	if (inv->proc_on && !inv->proc &&
	    discover_proc_new(inv->host_root, &inv->proc_cfg, &inv->proc, &err) < 0) {
		log_error("/proc discovery: %s", err->msg);
		inv->proc_on = false;
	} else if (inv->proc && discover_proc_configure(inv->proc, &inv->proc_cfg, &err) < 0) {
		log_error("/proc discovery: %s", err->msg);
	}
}

int inventory_fd(const struct inventory *inv)
{
	return inv->lv ? libvirt_backend_fd(inv->lv) : -1;
}

bool inventory_dispatch(struct inventory *inv)
{
	return inv->lv ? libvirt_backend_dispatch(inv->lv) : false;
}

json_t *inventory_unmanaged(const struct inventory *inv)
{
	return inv->unmanaged;
}

/* true the first time `name` is passed (for log-once) */
static bool first_warning(struct inventory *inv, const char *name)
{
	for (size_t i = 0; i < inv->n_warned; i++)
		if (strcmp(inv->warned[i], name) == 0)
			return false;
	inv->warned = xrealloc(inv->warned, (inv->n_warned + 1) * sizeof(*inv->warned));
	inv->warned[inv->n_warned++] = xstrdup(name);
	return true;
}

static const struct vm *find_by_name(const struct vm *vms, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(vms[i].name, name) == 0)
			return &vms[i];
	return NULL;
}

static const struct vm *find_by_pid(const struct vm *vms, size_t n, pid_t pid)
{
	for (size_t i = 0; pid > 0 && i < n; i++)
		if (vms[i].pid == pid && vms[i].state != VM_STATE_GONE)
			return &vms[i];
	return NULL;
}

static void unmanaged_add(struct inventory *inv, const struct vm *v)
{
	json_array_append_new(inv->unmanaged, api_vm_to_json(v));
}

/* A managed VM discovery found: register it, or bring the stored one up to
 * date when discovery owns it. */
static void merge_managed(struct inventory *inv, struct api_ctx *api, struct vm *v,
			  const struct vm *known, const char *actor)
{
	_cleanup_error_ struct error *err = NULL;
	if (!known) {
		if (api_vm_admit_and_store(api, v, actor, &err) < 0) {
			if (first_warning(inv, v->name))
				log_warn("%s: VM %s (pid %d) not placed: %s", actor, v->name,
					 (int)v->pid, err->msg);
			unmanaged_add(inv, v);
		}
		return;
	}
	if (known->source != v->source)
		return; /* registered by the API (or the other backend): theirs */
	if (known->state == VM_STATE_GONE && known->pid == v->pid)
		return; /* /proc found that process exited (or without vCPU
			   threads) this tick; libvirt's view of it is older (a
			   domain being destroyed): do not bring it back */
	if (store_vm_update_runtime(api->store, v->name, v->state, v->pid, v->threads,
				    v->n_threads, &err) < 0)
		log_warn("%s: VM %s: %s", actor, v->name, err->msg);
}

static void scan_libvirt(struct inventory *inv, struct api_ctx *api, struct vm *vms, size_t nv,
			 pid_t **seen_pids, size_t *n_seen)
{
	_cleanup_error_ struct error *err = NULL;
	struct libvirt_domain *doms = NULL;
	size_t nd = 0;
	int rc = libvirt_backend_scan(inv->lv, &doms, &nd, &err);
	if (rc < 0) {
		log_debug("libvirt: %s", err->msg);
		return;
	}
	bool fresh = rc == 0;
	for (size_t i = 0; i < nd; i++) {
		const struct libvirt_domain *d = &doms[i];
		if (d->pid > 0) {
			*seen_pids = xrealloc(*seen_pids, (*n_seen + 1) * sizeof(**seen_pids));
			(*seen_pids)[(*n_seen)++] = d->pid;
		}
		if (d->pid <= 0 || d->vcpus == 0)
			continue; /* not placeable yet: next tick */
		struct vm v;
		libvirt_domain_to_vm(d, &v);
		if (!d->tenant[0])
			unmanaged_add(inv, &v);
		else if (!d->stale)
			merge_managed(inv, api, &v, find_by_name(vms, nv, d->name), "libvirt");
		vm_clear(&v);
	}
	/* a fresh list is the truth: libvirt VMs missing from it have stopped */
	for (size_t i = 0; fresh && i < nv; i++) {
		if (vms[i].source != VM_SOURCE_LIBVIRT || vms[i].pid == 0)
			continue;
		bool listed = false;
		for (size_t j = 0; j < nd; j++)
			if (strcmp(doms[j].name, vms[i].name) == 0 && doms[j].pid > 0)
				listed = true;
		if (listed)
			continue;
		_cleanup_error_ struct error *e = NULL;
		log_info("libvirt: domain %s stopped: removing its cgroups", vms[i].name);
		if (store_vm_update_runtime(api->store, vms[i].name, VM_STATE_STOPPED, 0, NULL, 0,
					    &e) < 0)
			log_warn("libvirt: VM %s: %s", vms[i].name, e->msg);
	}
	libvirt_domain_list_free(doms, nd);
}

static void scan_proc(struct inventory *inv, struct api_ctx *api, struct vm *vms, size_t nv,
		      const pid_t *lv_pids, size_t n_lv)
{
	_cleanup_error_ struct error *err = NULL;
	struct discover_result r = { 0 };
	if (discover_scan(inv->proc, &r, &err) < 0) {
		log_debug("/proc discovery: %s", err->msg);
		return;
	}
	for (size_t i = 0; i < r.n; i++) {
		const struct discover_vm *d = &r.vms[i];
		bool libvirt_owned = false;
		for (size_t j = 0; j < n_lv; j++)
			if (lv_pids[j] == d->pid)
				libvirt_owned = true;
		const struct vm *by_pid = find_by_pid(vms, nv, d->pid);
		if (libvirt_owned || (by_pid && by_pid->source != VM_SOURCE_PROC))
			continue; /* registered or libvirt's: not ours to list */
		struct vm v = { .pid = d->pid, .state = VM_STATE_RUNNING, .source = VM_SOURCE_PROC };
		snprintf(v.name, sizeof(v.name), "%s", d->name);
		snprintf(v.tenant, sizeof(v.tenant), "%s", d->tenant);
		snprintf(v.uuid, sizeof(v.uuid), "%s", d->uuid);
		v.threads = d->vcpus;
		v.n_threads = d->n_vcpus;
		v.vcpus = d->n_vcpus ? d->vcpus[d->n_vcpus - 1].index + 1 : 0;
		if (!d->tenant[0] || !d->name_given)
			unmanaged_add(inv, &v);
		else
			merge_managed(inv, api, &v, by_pid ? by_pid : find_by_name(vms, nv, d->name),
				      "proc");
		/* the threads belong to r */
	}
	discover_result_clear(&r);
}

void inventory_scan(struct inventory *inv, struct api_ctx *api)
{
	json_array_clear(inv->unmanaged);
	if (!inv->lv && !(inv->proc_on && inv->proc))
		return;
	_cleanup_error_ struct error *err = NULL;
	struct vm *vms = NULL;
	size_t nv = 0;
	if (store_vm_list(api->store, &vms, &nv, &err) < 0) {
		log_warn("discovery: %s", err->msg);
		return;
	}
	_cleanup_free_ pid_t *lv_pids = NULL;
	size_t n_lv = 0;
	if (inv->lv)
		scan_libvirt(inv, api, vms, nv, &lv_pids, &n_lv);
	if (inv->proc_on && inv->proc)
		scan_proc(inv, api, vms, nv, lv_pids, n_lv);
	vm_list_free(vms, nv);
}
