/* libvirt.h - discovering VMs through libvirt: the running domains, the
 * tenant each belongs to (domain metadata), the QEMU process and its vCPU
 * threads (QMP query-cpus-fast through libvirt-qemu), kept current by
 * libvirt's domain events and surviving libvirtd restarts.
 *
 * The tenant is the domain's metadata element in the namespace urn:vcpud:1,
 *     <metadata><vcpud:tenant xmlns:vcpud="urn:vcpud:1">acme</vcpud:tenant></metadata>
 * (virsh metadata DOM urn:vcpud:1 --key vcpud --set '<tenant>acme</tenant>'
 * --live --config). A running domain's live definition is what counts.
 * A domain without it is listed with tenant "" (unmanaged: leave it alone).
 *
 * Threads. A backend (libvirt_backend_*) is a synchronous object for one
 * thread at a time: every libvirt call it makes waits for libvirtd. The
 * daemon never calls it from its loop: it hands the backend to a worker
 * (libvirt_worker_*, below), whose thread scans and publishes immutable
 * snapshots; the loop takes the latest one, which never waits for libvirt.
 * libvirt also needs an event loop to deliver domain events and
 * keepalives; virEventRunDefaultImpl() blocks, so the backend runs it in
 * one process-wide thread (started with the first connection, joined when
 * the last backend is freed) whose callbacks only record "domain X
 * changed" / "connection closed" and write an eventfd. Nothing of vcpud's
 * (store, cgroups) is touched from the event thread or the worker; both
 * only log.
 *
 * Costs. A scan is one RPC (list the active and the defined-inactive
 * domains) plus, per active domain, a look
 * at /proc/<pid>/task/<tid>/comm (hot-plug). Metadata, state and the QMP
 * query are repeated only for new domains, domains an event named, or when
 * the /proc view of a VM's vCPU threads changed. Calling a QEMU monitor
 * command through libvirt marks the domain "tainted: custom-monitor" once
 * in libvirt's log; it is read-only here.
 *
 * Blocking. libvirt calls are synchronous RPCs: a scan waits for libvirtd
 * (sub-millisecond when nothing is new, a few ms per new domain). A hung
 * libvirtd is declared gone by keepalive (5 s interval, 3 missed) and a QMP
 * query waits for the domain's job lock, so a scan can stall for that long
 * or, while libvirtd is stopped (SIGSTOP) before keepalive runs, for as
 * long as it is stopped. That is why scans run on the worker's thread, and
 * why the worker's user learns of a stuck call (libvirt_backend_call())
 * from the loop's side after a bound. Daemonise (fork) before the first
 * scan or worker: the event thread starts with the first connection.
 *
 * The QEMU PID. libvirt has no public API for it (its pid file lives in a
 * driver- and URI-dependent directory), so it is the Tgid of the vCPU
 * thread ids QMP reports, read from /proc/<tid>/status: vcpud must share
 * the PID namespace of the QEMU processes. */
#ifndef VCPUD_LIBVIRT_H
#define VCPUD_LIBVIRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vcpud/error.h"
#include "vcpud/path.h"
#include "vcpud/vm.h"

#define LIBVIRT_DEFAULT_URI "qemu:///system"
#define LIBVIRT_METADATA_NS "urn:vcpud:1"
#define LIBVIRT_METADATA_KEY "vcpud"

/* libvirt_backend_scan() return value: libvirt could not be asked, the list
 * is the last one known (every entry has .stale set). */
#define LIBVIRT_SCAN_STALE 1

/* One running (or paused) libvirt domain. */
struct libvirt_domain {
	char name[NAME_MAX_LEN + 1];   /* passed name_valid() */
	char uuid[VM_UUID_LEN + 1];    /* 36 characters */
	char tenant[NAME_MAX_LEN + 1]; /* "" = unmanaged: no (valid) metadata */
	int id;                        /* libvirt's domain id; new at each start */
	enum vm_state state;           /* VM_STATE_RUNNING or VM_STATE_PAUSED
					  (UNKNOWN when libvirt did not say) */
	pid_t pid;                     /* QEMU process; 0 = not known (the test
					  driver, a domain still starting, QMP
					  failing: not placeable yet) */
	uint32_t vcpus;                /* online vCPUs (0 = not known) */
	int64_t memory_bytes;          /* the domain's maximum memory, 0 unknown */
	struct vm_vcpu *threads;       /* owned; sorted by index; from QMP */
	size_t n_threads;
	bool stale;                    /* libvirt unreachable: as last seen */
};

/* Free an array of n domains (and their threads). NULL is fine. */
void libvirt_domain_list_free(struct libvirt_domain *doms, size_t n);

/* Fill *v (cleared first; v->threads is a new copy the caller frees with
 * vm_clear) from a domain: source libvirt, state, pid, vcpus, memory (when
 * known), uuid. Meant for managed domains (tenant set); the result passes
 * vm_validate() when d->vcpus > 0. */
void libvirt_domain_to_vm(const struct libvirt_domain *d, struct vm *v);

/* --- pure parsers (tested on buffers) ----------------------------------- */

/* The tenant from the metadata element libvirt returns for urn:vcpud:1
 * ("<tenant>acme</tenant>", any namespace prefix and attributes, text
 * trimmed). Child elements, entities, an empty or invalid name (see
 * name_valid) are EINVAL. Writes tenant (NAME_MAX_LEN + 1 bytes) on success
 * only. */
int libvirt_tenant_parse(const char *xml, char *tenant, struct error **err);

/* The vCPUs of a QMP query-cpus-fast reply ({"return": [{"cpu-index": N,
 * "thread-id": TID, ...}, ...]}) as (index, tid) sorted by index. A QMP
 * "error" is EIO with its description; malformed replies, indexes out of
 * 0..VM_VCPUS_MAX-1, tids < 1, a duplicate index or no vCPUs are EINVAL.
 * Duplicate thread ids (TCG without MTTCG) are kept. *out: caller frees. */
int libvirt_qmp_cpus_parse(const char *reply, struct vm_vcpu **out, size_t *n,
			   struct error **err);

/* The "Tgid:" of a /proc/<tid>/status buffer. EINVAL when missing or
 * malformed. */
int libvirt_status_tgid_parse(const char *status, pid_t *tgid, struct error **err);

/* --- the backend ---------------------------------------------------------- */

struct libvirt_backend;

/* A backend for `uri` (NULL: LIBVIRT_DEFAULT_URI; "test:///default" and
 * "test:///ABS/PATH/node.xml" work for tests). Connects lazily, at the
 * first scan. EINVAL for an empty URI. *out: free with libvirt_backend_free. */
int libvirt_backend_new(const char *uri, struct libvirt_backend **out, struct error **err);

void libvirt_backend_free(struct libvirt_backend *b);
static inline void libvirt_backend_freep(struct libvirt_backend **b)
{
	if (*b)
		libvirt_backend_free(*b);
}

/* Close the connection (its event registrations first: RPCs that may wait
 * on libvirtd) and give back the event thread; a later scan reconnects.
 * libvirt_backend_free() does this first and then makes no libvirt call. */
void libvirt_backend_disconnect(struct libvirt_backend *b);

/* Root prefix for /proc ("/" by default; copied). Tests point it at a fake
 * tree; the thread ids QMP reports are looked up under it. */
void libvirt_backend_set_host_root(struct libvirt_backend *b, const char *root);

/* Reconnect back-off: first retry after min_ms, doubling up to max_ms
 * (default 1000 .. 30000). Values < 1 are raised to 1. */
void libvirt_backend_set_backoff(struct libvirt_backend *b, unsigned min_ms, unsigned max_ms);

/* The running and paused domains with valid names (others are skipped with
 * one warning each), sorted by name. Returns 0 with a fresh list, or
 * LIBVIRT_SCAN_STALE when libvirt is unreachable: then the list is the last
 * known one, every entry flagged stale, so that VMs already placed stay
 * placed; the loss is logged once, reconnection is tried on later scans with
 * exponential back-off and logged when it succeeds. -1 (EINVAL) only for bad
 * arguments. *out (possibly NULL when *n is 0): libvirt_domain_list_free. */
int libvirt_backend_scan(struct libvirt_backend *b, struct libvirt_domain **out, size_t *n,
			 struct error **err);

/* An eventfd, readable when libvirt reported something since the last
 * libvirt_backend_dispatch(): a domain started, stopped, paused, resumed,
 * had its metadata or devices changed, or the connection closed. The same
 * fd for the backend's whole life (across reconnections). */
int libvirt_backend_fd(const struct libvirt_backend *b);

/* Drain the eventfd; true when there was something (scan now). */
bool libvirt_backend_dispatch(struct libvirt_backend *b);

/* The defined but shut-off domains with valid names as of the last fresh
 * scan (scan lists them in the same RPC; they are not in its list), for
 * "stopped" vs "gone". Borrowed until the next scan. */
const char *const *libvirt_backend_inactive(const struct libvirt_backend *b, size_t *n);

/* Why libvirt is not answering (cannot connect, connection lost, listing
 * failed) as of the last scan; NULL after a fresh one. Borrowed until the
 * next scan. */
const char *libvirt_backend_error(const struct libvirt_backend *b);

/* The libvirt call the backend is waiting in ("virConnectListAllDomains"),
 * with its start in *since_ns (now_mono_ns() clock), or NULL (*since_ns 0)
 * when none. The one backend function safe to call from another thread
 * while a scan runs: it reads two atomics. */
const char *libvirt_backend_call(const struct libvirt_backend *b, int64_t *since_ns);

/* Tests: fn(data, "virConnectListAllDomains") runs in the scanning thread
 * before every libvirt call, after the call was marked as in progress; a
 * hook that blocks simulates a libvirtd that does not answer. NULL clears
 * it. Set it before the backend goes to a worker. */
typedef void (*libvirt_call_hook)(void *data, const char *call);
void libvirt_backend_set_call_hook(struct libvirt_backend *b, libvirt_call_hook fn, void *data);

/* Whether a connection is open (as of the last scan). */
bool libvirt_backend_connected(const struct libvirt_backend *b);

const char *libvirt_backend_uri(const struct libvirt_backend *b);

/* Per-vCPU run_delay of a running domain from libvirt's statistics
 * (virDomainListGetStats VIR_DOMAIN_STATS_VCPU, "vcpu.N.delay", ns; the
 * same value as schedstat's second field). For cross-checking the sampler,
 * not for every tick: libvirt asks QEMU (query-stats), about 1 ms per vCPU.
 * delay_ns[N] for vCPU N < max; vCPUs without a figure read UINT64_MAX;
 * *n = highest N with a figure + 1 (at most max). ENOTCONN when not
 * connected, ENOENT for an unknown domain, ENOTSUP when libvirt reports no
 * vcpu.N.delay (the test driver). Synchronous, for a backend of one's own
 * (tests/libvirt/probe.c), never one a worker owns: the daemon does not
 * call it. */
int libvirt_backend_vcpu_delays(struct libvirt_backend *b, const char *domain,
				uint64_t *delay_ns, size_t max, size_t *n, struct error **err);

/* Counters, for tests and /metrics. */
struct libvirt_backend_stats {
	uint64_t scans;            /* libvirt_backend_scan() calls */
	uint64_t stale_scans;      /* of which returned the last known list */
	uint64_t connect_attempts; /* virConnectOpen() calls */
	uint64_t connects;         /* successful (re)connections */
	uint64_t disconnects;      /* connections found lost */
	uint64_t qmp_calls;        /* query-cpus-fast monitor commands */
	uint64_t metadata_reads;   /* virDomainGetMetadata() calls */
	uint64_t events;           /* domain events and close notices received */
	uint64_t skipped_names;    /* domains skipped for their name (once each
				      time such a domain starts) */
};

void libvirt_backend_get_stats(const struct libvirt_backend *b, struct libvirt_backend_stats *st);

/* --- the worker: libvirt off the caller's thread ------------------------------
 *
 * A thread that owns a backend: it scans at start, every period_ms, and at
 * once when libvirt reports an event, and after each scan publishes an
 * immutable snapshot (the domains, the defined-inactive names, the link
 * state) under a mutex. The caller's thread (the daemon's loop) only takes
 * the latest snapshot: a reference and a few copied fields, never a
 * libvirt call. When a published snapshot differs from the one before (a
 * domain started, stopped, changed; the link changed), the worker writes
 * libvirt_worker_fd() so the loop reacts at once.
 *
 * Stalls. The worker cannot say it is stuck: the taker decides it. When
 * the worker has been in one libvirt call for longer than stall_ms, the
 * snapshot taken says LIBVIRT_LINK_UNREACHABLE since that call began, with
 * "libvirt call X has not returned for N s"; its domains are the last
 * published ones (use them as stale). When the call returns, the next scan
 * publishes the truth again (connected, or lost and reconnecting).
 *
 * Shutdown. libvirt_worker_stop() asks the thread to end (it closes the
 * connection itself, which is an RPC too) and waits at most
 * min(stall_ms, 1 s). A thread still inside libvirt then is left behind,
 * detached: it frees the backend and itself if its call ever returns; the
 * process exiting ends it otherwise. The caller never waits on libvirtd. */

enum libvirt_link {
	LIBVIRT_LINK_CONNECTING,   /* nothing published yet / never connected */
	LIBVIRT_LINK_CONNECTED,    /* the last scan got a fresh list */
	LIBVIRT_LINK_UNREACHABLE,  /* cannot connect, lost, or a call hangs */
	LIBVIRT_LINK_LAST
};
const char *libvirt_link_to_string(enum libvirt_link l);

struct libvirt_worker_config {
	unsigned period_ms;        /* scan at least this often (0: 1000) */
	unsigned stall_ms;         /* a call longer than this is a hang (0: 2000) */
};

/* What libvirt_worker_take() returns. Free with libvirt_snapshot_free(). */
struct libvirt_snapshot {
	enum libvirt_link link;
	bool stalled;              /* link is UNREACHABLE because a call hangs */
	int64_t since_ms;          /* unix ms the link entered this state; 0 unknown */
	char *error;               /* why not connected; NULL when connected */
	uint64_t seq;              /* publications so far (0: none yet) */
	/* shared with the worker and other takers: read only */
	const struct libvirt_domain *doms;  /* sorted by name; fresh only when
					      link is CONNECTED (.stale is not
					      set for a stall: it is decided
					      after publication) */
	size_t n;
	const char *const *inactive;        /* defined, shut-off domain names */
	size_t n_inactive;
	struct lv_published *pub_;          /* private: the shared part */
};
void libvirt_snapshot_free(struct libvirt_snapshot *s);
static inline void libvirt_snapshot_freep(struct libvirt_snapshot **s)
{
	if (*s)
		libvirt_snapshot_free(*s);
}

struct libvirt_worker;

/* Start a worker on b, which it takes in every case (freed on failure).
 * cfg NULL: the defaults. *out: stop with libvirt_worker_stop(). */
int libvirt_worker_start(struct libvirt_backend *b, const struct libvirt_worker_config *cfg,
			 struct libvirt_worker **out, struct error **err);

/* End the worker within the bound above; NULL is fine. */
void libvirt_worker_stop(struct libvirt_worker *w);

/* The latest snapshot, stall applied; never NULL, never waits on libvirt. */
struct libvirt_snapshot *libvirt_worker_take(struct libvirt_worker *w);

/* Readable when a snapshot that differs from the one before was published. */
int libvirt_worker_fd(const struct libvirt_worker *w);
/* Drain it; true when there was something. */
bool libvirt_worker_dispatch(struct libvirt_worker *w);

/* Change the scan period (a policy reload); values < 10 are raised to 10. */
void libvirt_worker_set_period(struct libvirt_worker *w, unsigned period_ms);

/* Worker threads alive in the process (including ones left behind): tests. */
unsigned libvirt_worker_threads(void);

#endif
