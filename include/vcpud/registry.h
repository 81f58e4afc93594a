/* registry.h - the VM lifecycle: one module owns a VM from admission to
 * release, whoever reports it (the API's register and admit, libvirt, the
 * /proc scan), and the one inventory each control-loop tick works from.
 *
 * States (enum vm_state):
 *   admitted  a reservation without a VM row: placed on paper, no process
 *             yet (API admit, or a source that found it refused later);
 *   running   (or paused) a process with vCPU threads, identified by its
 *             PID and its start time (/proc/PID/stat field 22), never by a
 *             bare PID: a PID reused by another process is not the VM;
 *   stopped   a libvirt domain shut off but still defined: keeps its
 *             reservation, as a SHUTOFF instance keeps its allocation;
 *   gone      the process exited (or the domain was undefined): the row
 *             stays for history; the reservation is freed after policy
 *             admission.gone_grace_s, with a "vm.unadmit" event;
 *   released  `vm release`: the row and the reservation are deleted.
 *
 * Precedence: a VM's runtime (state, PID, threads) is owned by the source
 * that bound it, and a source never changes a VM owned by a stronger one:
 *     registered (API, an explicit PID) > libvirt > /proc.
 * A stronger source that finds the same VM (same name and tenant) takes it
 * over; a weaker one is ignored. A PID held by a live VM is refused to any
 * other VM on every path (register, libvirt, /proc), with an event and a
 * fault once, not every tick - unless the holder's process is no longer
 * the one it registered (start time changed: PID reuse), in which case the
 * holder is marked gone first.
 *
 * Registration is one SQLite transaction: the reservation (when the VM is
 * not admitted yet), the VM row and their audit events. The tenant's quota
 * and the host's capacity are decided in one place, admit_vm() (pure,
 * src/plan/admit.c), against the reservations: the one ledger.
 *
 * Faults: a VM that cannot be planned, written or identified is marked with
 * its reason (vcpuctl vm show/list, /v1/health) and left out of what fails;
 * every other VM is still reconciled. Everything here runs on the daemon's
 * thread; nothing blocks on another process (the /proc reads are local). */
#ifndef VCPUD_REGISTRY_H
#define VCPUD_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vcpud/admit.h"
#include "vcpud/error.h"
#include "vcpud/store.h"
#include "vcpud/tenant.h"
#include "vcpud/topology.h"
#include "vcpud/util.h"
#include "vcpud/vm.h"

struct registry;

struct registry_config {
	struct store *store;            /* borrowed */
	const char *host_root;          /* prefix for /proc ("/") */
	const struct topology *topo;    /* borrowed; NULL: admission refuses (EAGAIN) */
	const struct pools *pools;      /* borrowed; replaced by registry_configure() */
	double cpu_ratio;               /* policy overcommit.cpu_ratio */
	uint32_t gone_grace_s;          /* policy admission.gone_grace_s */
};

int registry_new(const struct registry_config *cfg, struct registry **out, struct error **err);
void registry_free(struct registry *r);

/* A policy reload: pools, ratio and grace period. */
void registry_configure(struct registry *r, const struct pools *pools, double cpu_ratio,
			uint32_t gone_grace_s);

/* Tests: the clock (unix ms) used for grace periods and fault times. */
void registry_set_clock(struct registry *r, int64_t (*now_ms)(void));

/* --- the inventory of one tick -------------------------------------------- */

/* Everything the tick works from, read from the store once. Owned by the
 * caller; inventory_clear() frees it. The registry's functions below keep
 * it current with what they write, so nothing re-reads the store. */
struct inventory {
	struct tenant *tenants;         /* by name */
	size_t n_tenants;
	struct vm *vms;                 /* VM rows by name (not sorted after
					 * registrations within the tick) */
	size_t n_vms;
	struct admit_reservation *res;  /* the ledger, parsed; rows that do not
					 * parse are left out with a warning */
	size_t n_res;
	/* lookups by name for inventory_vm() and inventory_reservation(),
	 * kept by the registry (rebuilt when the arrays changed) */
	struct name_index vm_ix, res_ix;
	bool vm_ix_ok, res_ix_ok;
};

/* One read transaction. */
int registry_inventory_load(struct registry *r, struct inventory *out, struct error **err);

/* Make the admission ledger the registry keeps in memory the one `inv` read
 * from the store (the store is the truth: a change made behind the
 * registry's back is taken in). The tick calls it once, after its
 * inventory read (`inv` is the one registry_inventory_load() just gave:
 * when that was the unchanged cache, and the ledger has not changed since
 * it was last found to hold it, nothing is compared); between ticks the
 * ledger follows the registry's own writes. */
void registry_ledger_resync(struct registry *r, const struct inventory *inv);
void inventory_clear(struct inventory *inv);

const struct tenant *inventory_tenant(const struct inventory *inv, const char *name);
struct vm *inventory_vm(const struct inventory *inv, const char *name);
const struct admit_reservation *inventory_reservation(const struct inventory *inv,
						       const char *vm);

/* --- what the sources report each tick -------------------------------------- */

/* A VM process one source saw. Strings and threads are borrowed. */
struct registry_sighting {
	enum vm_source source;          /* VM_SOURCE_LIBVIRT or VM_SOURCE_PROC */
	const char *name;
	const char *tenant;             /* "" or NULL: unmanaged (listed, left alone) */
	const char *uuid;               /* "" or NULL: none */
	enum vm_state state;            /* running or paused */
	pid_t pid;
	uint64_t start_time;            /* 0: read from /proc here */
	uint32_t vcpus;                 /* vCPUs the VM has (>= highest thread index + 1) */
	int64_t memory_bytes;           /* 0: not known */
	const struct vm_vcpu *threads;  /* sorted by index */
	size_t n_threads;
};

/* Live VMs that hold the same PID (rows an older vcpud or a hand edit left):
 * each is marked with an identity fault naming the other, so that an
 * operator releases the wrong one; the engine leaves both alone and
 * reconciles everything else. Returns the number of pairs. */
size_t registry_check_pids(struct registry *r, struct inventory *inv);

/* The registered (API) VMs' processes: each live one's vCPU threads and
 * identity from /proc. A process that is gone, or whose PID now belongs to
 * another process (start time changed) or to one without vCPU threads,
 * makes the VM gone. Returns the number of VMs changed. */
size_t registry_refresh_registered(struct registry *r, struct inventory *inv);

/* What a tick's sampling saw of a VM's threads, for thread discovery by
 * exception: a vCPU thread gone (its schedstat read ESRCH, or BPF no
 * longer lists it), and with the BPF sampler the process's thread count
 * and a sum of its thread ids. */
struct registry_thread_news {
	const char *vm;
	bool vcpu_gone;
	int64_t n_threads;             /* -1: not known (the pread sampler) */
	uint64_t tid_sum;
};

/* Take the news in: a registered VM whose vCPU thread went has its task
 * directory read at the next refresh; one whose process's thread count or
 * set of thread ids changed since that directory was last read, at the
 * next refresh at least 10 passes after that read (a QEMU's I/O workers
 * come and go; a hot-plugged vCPU is found within 10 ticks). Once news with
 * thread counts come (BPF), a watched VM's stat is no longer read every 10
 * passes and its task directory is read again every
 * THREADS_RECHECK_PASSES_NEWS passes only (the news say the rest). */
void registry_thread_news(struct registry *r, const struct registry_thread_news *news,
			  size_t n);

/* Apply what one source saw: register new managed VMs (binding them to
 * their reservation, or admitting them: shared, prefer), update the ones it
 * owns, take over weaker sources' VMs, refuse PID conflicts (fault + event
 * once). When `complete` (a fresh libvirt list, a /proc pass), VMs owned by
 * this source that it did not see have stopped: a libvirt VM whose name is
 * in `defined` (shut off, still defined) becomes stopped, any other gone.
 * Unmanaged sightings (no tenant) are skipped: the caller lists them. */
void registry_observe(struct registry *r, struct inventory *inv, enum vm_source source,
		      const struct registry_sighting *seen, size_t n, bool complete,
		      const char *const *defined, size_t n_defined);

/* Live VMs without a reservation (a database from before admission, a
 * reservation row that does not parse): admit them now (shared, prefer);
 * one that does not fit is marked with an admission fault (and still
 * placed as it is, unpinned). Returns how many were admitted. */
size_t registry_admit_missing(struct registry *r, struct inventory *inv);

/* Free the reservations of VMs gone for longer than the grace period
 * (event "vm.unadmit", reason "gone for N s"). Returns how many. */
size_t registry_expire(struct registry *r, struct inventory *inv);

/* --- faults ------------------------------------------------------------------- */

enum registry_fault_kind {
	REGISTRY_FAULT_IDENTITY,        /* a PID conflict, a tenant mismatch: refused */
	REGISTRY_FAULT_ADMISSION,       /* a source found it but it was not admitted */
	REGISTRY_FAULT_PLAN,            /* the planner could not place it */
	REGISTRY_FAULT_CGROUP,          /* the engine skipped it or a write failed */
	REGISTRY_FAULT_LAST
};
const char *registry_fault_kind_name(enum registry_fault_kind k);

/* Mark VM `name` with a fault of `kind` (the message is copied). The first
 * time (or when the message changes) it is logged at warn and, for
 * identity and admission refusals, recorded as an event "vm.refused". */
void registry_fault_set(struct registry *r, const char *name, enum registry_fault_kind kind,
			const char *msg);
/* Faults of `kind` not set again since registry_faults_begin(kind) are
 * cleared (the VM recovered: logged at info). Call begin before a stage
 * that reports faults of that kind, end after it. */
void registry_faults_begin(struct registry *r, enum registry_fault_kind kind);
void registry_faults_end(struct registry *r, enum registry_fault_kind kind);
/* The fault of a VM (borrowed, valid until the next fault change), or NULL. */
const char *registry_fault_of(const struct registry *r, const char *name,
			      int64_t *since_ms, enum registry_fault_kind *kind);
/* How many VMs have a fault. */
size_t registry_fault_count(const struct registry *r);
/* The name and message of fault i < registry_fault_count() (borrowed). */
void registry_fault_get(const struct registry *r, size_t i, const char **name,
			const char **msg, enum registry_fault_kind *kind);

/* --- the API's side ----------------------------------------------------------- */

/* Admit a VM: quota and capacity decided by admit_vm() against the ledger;
 * unless dry_run, the reservation is stored (event vm.admit). A VM already
 * admitted with the same request: 0, out->existing and its reservation,
 * nothing stored (a retry); with another request EEXIST naming what
 * differs. Errors as admit_vm(), ENOENT unknown tenant, EAGAIN no
 * topology. *out is the placement. */
int registry_admit(struct registry *r, const struct admit_request *req, bool dry_run,
		   const char *actor, struct admit_placement *out, struct error **err);

/* With the fleet ledger (vcpud --fleet) a tenant's quota is decided by a
 * booking in etcd, not against this host's reservations: admission here
 * checks the host's capacity only. */
void registry_set_fleet_quotas(struct registry *r, bool on);
/* Whether VM vm holds a reservation here (its tenant in *tenant). */
bool registry_reservation_of(struct registry *r, const char *vm, char tenant[NAME_MAX_LEN + 1]);
/* This host's reservations as bookings (for the fleet's reconciliation);
 * *out freed with free(). -1 when they cannot be read (not "none"). */
struct ledger_booking;
ssize_t registry_bookings(struct registry *r, struct ledger_booking **out);
/* Counts the changes of the reservations held in memory. */
uint64_t registry_ledger_gen(const struct registry *r);

/* Register a running VM (v->pid set; threads found in /proc by the caller
 * or not): its identity (start time) is read from /proc; a PID held by a
 * live VM is refused (EEXIST) unless that VM's process is gone (then it is
 * marked gone first); the VM is bound to its reservation (same tenant, else
 * EBUSY) or admitted (shared, prefer) in the same transaction as its row.
 * Its origin cgroup is recorded for a later release. It reads what it
 * needs (indexed rows: the PID's holder, the tenant, the name; the use from
 * the ledger), so it costs the same with 10 VMs as with 1,000. */
int registry_register(struct registry *r, struct vm *v, const char *actor, struct error **err);

/* Release a VM and/or its reservation in one transaction. A VM whose
 * process still runs is first moved out of vcpud's tree by `move_out`
 * (a failure refuses the release). ENOENT when there is neither. */
int registry_release(struct registry *r, const char *name, const char *actor,
		     int (*move_out)(void *data, const struct vm *v, struct error **err),
		     void *data, struct error **err);

/* A VM as the API shows it: its row, or (state admitted) what its
 * reservation says; its reservation when admitted; its fault. */
struct registry_vm_view {
	struct vm vm;                   /* owned threads: registry_vm_view_clear() */
	bool admitted;
	struct admit_reservation res;   /* when admitted */
	char *fault;                    /* owned, NULL none */
	enum registry_fault_kind fault_kind;
	int64_t fault_since_ms;
};
void registry_vm_view_clear(struct registry_vm_view *v);

/* One VM (ENOENT when there is neither a row nor a reservation). */
int registry_vm_get(struct registry *r, const char *name, struct registry_vm_view *out,
		    struct error **err);
/* Every VM: rows and admitted-only reservations, by name. Free each with
 * registry_vm_view_clear() and the array with free(). */
int registry_vm_list(struct registry *r, struct registry_vm_view **out, size_t *n,
		     struct error **err);

/* The ledger as admit_vm() sees it: every reservation, parsed (rows that
 * do not parse are skipped with a warning). *out freed with free(). */
int registry_ledger_load(struct registry *r, struct admit_reservation **out, size_t *n,
			 struct error **err);

/* Compare the admission ledger the registry keeps in memory (reservations,
 * each tenant's use, the host's use) with a fresh read of the store: 0 in
 * step (or not loaded yet), -1 EIO naming the first difference. For tests
 * and diagnostics: it reads every reservation. */
int registry_ledger_check(struct registry *r, struct error **err);

/* The host as admission sees it, over the given reservations. */
struct admit_host registry_host(const struct registry *r, const struct admit_reservation *res,
				size_t n);

#endif
