/* discovery.c - the sources of the discover stage (see discovery.h) turned
 * into registry sightings:
 *  - registered VMs: the registry reads their processes in /proc itself;
 *  - libvirt: the latest snapshot of its worker thread (never a libvirt
 *    call here): a fresh list is complete (a domain missing from it
 *    stopped when it is still defined, is gone otherwise); a stale one
 *    (libvirtd away, or stuck in a call) changes nothing, so placed VMs
 *    stay placed;
 *  - /proc: VMM processes by vCPU thread names; a process libvirt lists is
 *    libvirt's to report; a complete pass ends the /proc VMs it misses.
 * Ownership, PID conflicts and admission are the registry's. */
#include <errno.h>
#include <string.h>

#include "daemon/discovery.h"
#include "vcpud/api.h"
#include "vcpud/discover.h"
#include "vcpud/libvirt.h"
#include "vcpud/log.h"
#include "vcpud/util.h"

struct discovery {
	char *host_root;
	struct libvirt_worker *lv;
	struct discover_backend *proc;
	bool proc_on;
	struct discover_proc_config proc_cfg;
	json_t *unmanaged;
	/* libvirt, for /v1/health: as of the last pass */
	enum libvirt_link lv_link;
	bool lv_stalled;           /* a libvirt call has been hanging */
	int64_t lv_since_ms;
	char *lv_error;
};

int discovery_new(const char *host_root, const char *libvirt_uri, const struct policy *p,
		  struct discovery **out, struct error **err)
{
	struct discovery *disc = xcalloc(1, sizeof(*disc));
	disc->host_root = xstrdup(host_root ? host_root : "/");
	disc->unmanaged = json_array();
	disc->lv_since_ms = now_real_ns() / 1000000;
	if (libvirt_uri) {
		struct libvirt_backend *b = NULL;
		struct libvirt_worker_config cfg = { .period_ms = p->interval_ms };
		if (libvirt_backend_new(libvirt_uri, &b, err) < 0) {
			discovery_free(disc);
			return -1;
		}
		libvirt_backend_set_host_root(b, disc->host_root);
		if (libvirt_worker_start(b, &cfg, &disc->lv, err) < 0) {
			discovery_free(disc);
			return -1;
		}
	}
	discovery_configure(disc, p);
	*out = disc;
	return 0;
}

void discovery_free(struct discovery *disc)
{
	if (!disc)
		return;
	libvirt_worker_stop(disc->lv);
	free(disc->lv_error);
	if (disc->proc)
		discover_backend_free(disc->proc);
	json_decref(disc->unmanaged);
	free(disc->host_root);
	free(disc);
}

void discovery_configure(struct discovery *disc, const struct policy *p)
{
	disc->proc_on = p->discovery_proc;
	if (disc->lv)
		libvirt_worker_set_period(disc->lv, p->interval_ms);
	disc->proc_cfg = (struct discover_proc_config){ .tenant_from_name =
								p->discovery_tenant_from_name };
	_cleanup_error_ struct error *err = NULL;
	if (disc->proc_on && !disc->proc &&
	    discover_proc_new(disc->host_root, &disc->proc_cfg, &disc->proc, &err) < 0) {
		log_error("/proc discovery: %s", err->msg);
		disc->proc_on = false;
	} else if (disc->proc && discover_proc_configure(disc->proc, &disc->proc_cfg, &err) < 0) {
		log_error("/proc discovery: %s", err->msg);
	}
}

int discovery_fd(const struct discovery *disc)
{
	return disc->lv ? libvirt_worker_fd(disc->lv) : -1;
}

bool discovery_dispatch(struct discovery *disc)
{
	return disc->lv ? libvirt_worker_dispatch(disc->lv) : false;
}

json_t *discovery_unmanaged(const struct discovery *disc)
{
	return disc->unmanaged;
}

void discovery_libvirt_state(const struct discovery *disc, struct discovery_libvirt_state *out)
{
	*out = (struct discovery_libvirt_state){ .state = "disabled" };
	if (!disc->lv)
		return;
	out->state = libvirt_link_to_string(disc->lv_link);
	out->since_ms = disc->lv_since_ms;
	out->error = disc->lv_error;
}

static void unmanaged_add(struct discovery *disc, const struct vm *v)
{
	json_array_append_new(disc->unmanaged, api_vm_to_json(v));
}

static void scan_libvirt(struct discovery *disc, struct registry *reg, struct inventory *inv,
			 pid_t **lv_pids, size_t *n_lv)
{
	_cleanup_(libvirt_snapshot_freep) struct libvirt_snapshot *snap =
		libvirt_worker_take(disc->lv);
	const struct libvirt_domain *doms = snap->doms;
	size_t nd = snap->n;
	bool fresh = snap->link == LIBVIRT_LINK_CONNECTED;
	if (snap->stalled && !disc->lv_stalled)
		log_warn("libvirt: %s; VMs already placed stay placed", snap->error);
	else if (!snap->stalled && disc->lv_stalled)
		log_info("libvirt: the hanging call returned (%s)",
			 libvirt_link_to_string(snap->link));
	disc->lv_stalled = snap->stalled;
	disc->lv_link = snap->link;
	disc->lv_since_ms = snap->since_ms;
	free(disc->lv_error);
	disc->lv_error = snap->error ? xstrdup(snap->error) : NULL;
	struct registry_sighting *seen = xcalloc(nd ? nd : 1, sizeof(*seen));
	size_t ns = 0;
	for (size_t i = 0; i < nd; i++) {
		const struct libvirt_domain *d = &doms[i];
		if (d->pid > 0) {
			*lv_pids = xrealloc(*lv_pids, (*n_lv + 1) * sizeof(**lv_pids));
			(*lv_pids)[(*n_lv)++] = d->pid;
		}
		if (!d->tenant[0]) {
			struct vm v;
			libvirt_domain_to_vm(d, &v);
			unmanaged_add(disc, &v);
			vm_clear(&v);
			continue;
		}
		seen[ns++] = (struct registry_sighting){
			.source = VM_SOURCE_LIBVIRT, .name = d->name, .tenant = d->tenant,
			.uuid = d->uuid,
			.state = d->state == VM_STATE_PAUSED ? VM_STATE_PAUSED : VM_STATE_RUNNING,
			.pid = d->pid, .vcpus = d->vcpus, .memory_bytes = d->memory_bytes,
			.threads = d->threads, .n_threads = d->n_threads,
		};
	}
	/* a stale list changes nothing: the VMs it last saw stay as they are.
	 * A fresh one ends the libvirt VMs it misses: stopped while their
	 * domain is still defined (shut off, or listed but not placeable yet,
	 * e.g. starting), gone once undefined. */
	if (fresh) {
		size_t nn = snap->n_inactive;
		const char **defined = xcalloc(nn + nd + 1, sizeof(*defined));
		for (size_t i = 0; i < nn; i++)
			defined[i] = snap->inactive[i];
		for (size_t i = 0; i < nd; i++)
			defined[nn + i] = doms[i].name;
		registry_observe(reg, inv, VM_SOURCE_LIBVIRT, seen, ns, true, defined, nn + nd);
		free(defined);
	}
	free(seen);
}

static void scan_proc(struct discovery *disc, struct registry *reg, struct inventory *inv,
		      const pid_t *lv_pids, size_t n_lv)
{
	_cleanup_error_ struct error *err = NULL;
	struct discover_result r = { 0 };
	if (discover_scan(disc->proc, &r, &err) < 0) {
		log_debug("/proc discovery: %s", err->msg);
		return;
	}
	struct registry_sighting *seen = xcalloc(r.n ? r.n : 1, sizeof(*seen));
	size_t ns = 0;
	for (size_t i = 0; i < r.n; i++) {
		const struct discover_vm *d = &r.vms[i];
		bool libvirt_owned = false;
		for (size_t j = 0; j < n_lv && !libvirt_owned; j++)
			libvirt_owned = lv_pids[j] == d->pid;
		if (libvirt_owned)
			continue; /* libvirt's to report, managed or not */
		uint32_t vcpus = d->n_vcpus ? d->vcpus[d->n_vcpus - 1].index + 1 : 0;
		bool managed = d->tenant[0] && d->name_given;
		if (!managed) {
			/* listed unless a VM of the registry is this process */
			bool known = false;
			for (size_t j = 0; j < inv->n_vms && !known; j++)
				known = inv->vms[j].pid == d->pid &&
					inv->vms[j].state != VM_STATE_GONE &&
					(!inv->vms[j].start_time ||
					 inv->vms[j].start_time == d->start_time);
			if (!known) {
				struct vm v = { .pid = d->pid, .state = VM_STATE_RUNNING,
						.source = VM_SOURCE_PROC, .vcpus = vcpus,
						.start_time = d->start_time,
						.threads = d->vcpus, .n_threads = d->n_vcpus };
				snprintf(v.name, sizeof(v.name), "%s", d->name);
				snprintf(v.uuid, sizeof(v.uuid), "%s", d->uuid);
				unmanaged_add(disc, &v);
			}
			continue;
		}
		seen[ns++] = (struct registry_sighting){
			.source = VM_SOURCE_PROC, .name = d->name, .tenant = d->tenant,
			.uuid = d->uuid, .state = VM_STATE_RUNNING, .pid = d->pid,
			.start_time = d->start_time, .vcpus = vcpus,
			.threads = d->vcpus, .n_threads = d->n_vcpus,
		};
	}
	registry_observe(reg, inv, VM_SOURCE_PROC, seen, ns, true, NULL, 0);
	free(seen);
	discover_result_clear(&r);
}

void discovery_run(struct discovery *disc, struct registry *reg, struct inventory *inv)
{
	json_array_clear(disc->unmanaged);
	registry_refresh_registered(reg, inv);
	_cleanup_free_ pid_t *lv_pids = NULL;
	size_t n_lv = 0;
	if (disc->lv)
		scan_libvirt(disc, reg, inv, &lv_pids, &n_lv);
	if (disc->proc_on && disc->proc)
		scan_proc(disc, reg, inv, lv_pids, n_lv);
}
