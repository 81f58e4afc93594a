/* fleet.c - the fleet ledger (see vcpud/ledger.h): tenants and every host's
 * bookings in etcd, quotas decided by compare-and-swap transactions.
 *
 * Keys (under the prefix, "/vcpud/" by default), values JSON:
 *   tenant/T          {"name","vcpus","weight","class"[,"cpu_max_cores","memory_bytes"]}
 *   use/T             {"vcpus":N,"memory_bytes":M}: the sum of T's bookings
 *   booking/T/H/VM    {"vcpus","memory_bytes"|null,"at"}: VM on host H
 *   host/H            {"host","pid","since"} under H's lease: H is live
 *   hostseen/H        {"host","since"}: H was part of the fleet (no lease)
 * A booking and its tenant's use change in one transaction that compares
 * the mod_revision of the tenant and of its use (and that the booking is
 * absent): two hosts booking the last vCPUs at once both read the same
 * use, one transaction wins, the other sees the new use and retries. So a
 * tenant's use never passes its quota, whatever the concurrency.
 *
 * Threads: the worker runs the operations in order (each within its
 * deadline, fleet.timeout_ms from when it was asked), keeps the lease alive
 * and reads the tenants when the watcher says something changed (and
 * every FLEET_RESYNC_MS); the watcher holds a watch on the prefix. Results
 * go to the daemon's thread through a list and an eventfd: nothing here
 * blocks the daemon. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "vcpud/api.h"
#include "vcpud/etcd.h"
#include "vcpud/ledger.h"
#include "vcpud/log.h"
#include "vcpud/util.h"

/* the tenants are read again this often whatever the watch says */
#define FLEET_RESYNC_MS 2000
/* while etcd is unreachable: how often the worker tries it again, and how
 * long an operation is failed at once with the last error (admissions
 * fail closed without each waiting fleet.timeout_ms) */
#define FLEET_PROBE_MS 1000
#define FLEET_FAIL_FAST_MS 1000
/* a transaction that lost a race is tried again at most this often */
#define FLEET_TXN_TRIES 64
/* bookings dropped in one transaction (2 + 2 of these ops each, under
 * etcd's default --max-txn-ops of 128) */
#define FLEET_TXN_CHUNK 60
/* the watcher's pause before it watches again after a broken stream */
#define FLEET_REWATCH_MS 500
/* how often dead hosts are looked for (fleet.evict_dead_after_s > 0): a
 * quarter of that, within these bounds */
#define FLEET_SWEEP_MS 5000
#define FLEET_SWEEP_MIN_MS 500

enum op_kind {
	OP_BOOK, OP_UNBOOK, OP_SYNC, OP_T_CREATE, OP_T_UPDATE, OP_T_DELETE, OP_HOSTS, OP_EVICT,
	/* worker -> daemon only */
	OP_TENANTS, OP_NOTICE,
};

struct op {
	struct op *next;
	enum op_kind kind;
	int64_t deadline_ns;
	ledger_done_fn done;
	void *data;
	struct ledger_booking b;
	struct ledger_booking *local;   /* OP_SYNC */
	size_t n_local;
	int64_t taken_ns;
	struct tenant t;                /* OP_T_CREATE */
	struct tenant_patch p;          /* OP_T_UPDATE */
	char name[NAME_MAX_LEN + 1];    /* tenant or host */
	/* the result */
	int rc;
	struct error *err;
	json_t *result;
	/* OP_TENANTS */
	struct tenant *tenants;
	size_t n_tenants;
	struct ledger_tenant_use *use;
	size_t n_use;
	/* OP_NOTICE */
	char *action, *target;
};

/* A booking the worker made: the maintenance thread's reconciliation,
 * working from a list of the host's reservations taken before, must not
 * release it while its reservation is being stored. */
struct recent {
	char tenant[NAME_MAX_LEN + 1], vm[NAME_MAX_LEN + 1];
	int64_t at_ns;
	bool released;             /* a release, not a booking */
};
#define FLEET_RECENT_NS (120 * (int64_t)1000000000)

/* The etcd client of the thread that runs (each thread has its own). */
static _Thread_local struct etcd *thread_etcd;

enum link_state { LINK_CONNECTING, LINK_CONNECTED, LINK_UNREACHABLE };
static const char *const link_names[] = { "connecting", "connected", "unreachable" };

struct dead_host {
	char name[NAME_MAX_LEN + 1];
	int64_t since_ms;
	bool seen;
};

struct fleet {
	struct ledger base;
	char **urls;
	size_t n_urls;
	char *host, *prefix;
	unsigned timeout_ms, lease_ttl_s, evict_after_s;
	ledger_sync_fn on_tenants;
	ledger_notice_fn on_notice;
	void *data;
	struct etcd *e;                 /* the worker's */
	struct etcd *eb;                /* the maintenance thread's */
	struct etcd *ew;                /* the watcher's */
	pthread_t worker, bg, watcher;
	bool threads;
	int wake_fd;                    /* -> daemon */
	pthread_mutex_t lock;
	pthread_cond_t cond;            /* the worker's (CLOCK_MONOTONIC) */
	pthread_cond_t bcond;           /* the maintenance thread's */
	/* under lock */
	struct op *q_head, *q_tail;     /* -> worker */
	struct op *b_head, *b_tail;     /* -> maintenance: unbook, sync */
	struct recent *recent;          /* booked by the worker lately */
	size_t n_recent;
	struct op *d_head, *d_tail;     /* -> daemon */
	size_t queued;
	bool quit;
	bool dirty;                     /* the watcher saw a change */
	enum link_state link;
	int64_t link_since_ms;
	char *last_error;
	int64_t synced_ms;              /* the tenants last read */
	int64_t revision;
	int64_t lease;
	bool conflict;                  /* another vcpud holds this host's name */
	size_t n_unbooked;
	atomic_bool stop;
	_Atomic int64_t last_fail_ns;   /* the last call that found etcd out of reach */
	/* the maintenance thread's own */
	int64_t keepalive_due_ns, resync_due_ns, sweep_due_ns;
	struct dead_host *dead;
	size_t n_dead;
	/* the reconciliation last asked for, until it succeeds */
	struct ledger_booking *sync_local;
	size_t n_sync_local;
	int64_t sync_taken_ns;          /* when the daemon took its list */
	bool sync_pending, sync_said;
	char **reported;                /* unbooked VMs already reported */
	size_t n_reported;
	/* the daemon's own: the use last delivered */
	struct ledger_tenant_use *use;
	size_t n_use;
};

static int64_t wall_ms(void)
{
	return now_real_ns() / 1000000;
}

/* --- keys ---------------------------------------------------------------------- */

static char *k_tenant(const struct fleet *f, const char *t)
{
	return xasprintf("%stenant/%s", f->prefix, t);
}
static char *k_use(const struct fleet *f, const char *t)
{
	return xasprintf("%suse/%s", f->prefix, t);
}
static char *k_booking(const struct fleet *f, const char *t, const char *host, const char *vm)
{
	return xasprintf("%sbooking/%s/%s/%s", f->prefix, t, host, vm);
}

/* "PREFIXbooking/T/H/VM" -> its three names (in buf); false: not one */
static bool parse_booking_key(const struct fleet *f, const char *key, char *buf, size_t len,
			      const char **t, const char **h, const char **vm)
{
	_cleanup_free_ char *p = xasprintf("%sbooking/", f->prefix);
	if (!str_has_prefix(key, p) || strlen(key + strlen(p)) >= len)
		return false;
	strcpy(buf, key + strlen(p));
	char *a = strchr(buf, '/');
	char *b = a ? strchr(a + 1, '/') : NULL;
	if (!a || !b || strchr(b + 1, '/'))
		return false;
	*a = *b = '\0';
	*t = buf;
	*h = a + 1;
	*vm = b + 1;
	return name_valid(*t) && name_valid(*h) && name_valid(*vm);
}

/* --- values -------------------------------------------------------------------- */

static char *tenant_value(const struct tenant *t)
{
	json_t *o = json_pack("{s:s,s:I,s:I,s:s}", "name", t->name, "vcpus", (json_int_t)t->vcpus,
			      "weight", (json_int_t)t->weight, "class",
			      tenant_class_to_string(t->class_));
	if (t->cpu_max_set)
		json_object_set_new(o, "cpu_max_cores", json_real(t->cpu_max_cores));
	if (t->memory_set)
		json_object_set_new(o, "memory_bytes", json_integer(t->memory_bytes));
	char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

static int tenant_parse(const char *value, struct tenant *out, struct error **err)
{
	json_error_t je;
	json_t *o = json_loads(value, 0, &je);
	if (!o)
		return error_set(err, EPROTO, "not JSON: %s", je.text);
	int rc = api_tenant_create_from_json(o, out, err);
	json_decref(o);
	return rc;
}

struct use {
	uint64_t vcpus;
	int64_t memory_bytes;
};

static void use_parse(const char *value, struct use *u)
{
	memset(u, 0, sizeof(*u));
	json_t *o = value && *value ? json_loads(value, 0, NULL) : NULL;
	json_int_t v = json_integer_value(json_object_get(o, "vcpus"));
	json_int_t m = json_integer_value(json_object_get(o, "memory_bytes"));
	u->vcpus = v > 0 ? (uint64_t)v : 0;
	u->memory_bytes = m > 0 ? m : 0;
	json_decref(o);
}

static int64_t sat_add(int64_t a, int64_t b)
{
	return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static char *use_value(const struct use *u)
{
	return xasprintf("{\"memory_bytes\":%" PRId64 ",\"vcpus\":%" PRIu64 "}", u->memory_bytes,
			 u->vcpus);
}

static void booking_parse(const char *value, struct ledger_booking *b)
{
	json_t *o = json_loads(value, 0, NULL);
	json_int_t v = json_integer_value(json_object_get(o, "vcpus"));
	const json_t *m = json_object_get(o, "memory_bytes");
	b->vcpus = v > 0 && v <= TENANT_VCPUS_MAX ? (uint32_t)v : 0;
	b->memory_set = json_is_integer(m) && json_integer_value(m) > 0 &&
			json_integer_value(m) <= TENANT_MEMORY_MAX;
	b->memory_bytes = b->memory_set ? json_integer_value(m) : 0;
	json_decref(o);
}

static char *booking_value(const struct ledger_booking *b)
{
	json_t *o = json_pack("{s:I,s:o,s:I}", "vcpus", (json_int_t)b->vcpus, "memory_bytes",
			      b->memory_set ? json_integer(b->memory_bytes) : json_null(), "at",
			      (json_int_t)(wall_ms() / 1000));
	char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

/* --- link state ------------------------------------------------------------------ */

static void set_link(struct fleet *f, enum link_state s, const char *why)
{
	pthread_mutex_lock(&f->lock);
	if (f->link != s) {
		if (s == LINK_UNREACHABLE)
			log_warn("fleet: etcd unreachable: %s", why ? why : "?");
		else if (s == LINK_CONNECTED)
			log_info("fleet: connected to etcd (%s)", f->urls[0]);
		f->link = s;
		f->link_since_ms = wall_ms();
	}
	if (why) {
		free(f->last_error);
		f->last_error = xstrdup(why);
	}
	pthread_mutex_unlock(&f->lock);
}

/* After an etcd call: the link's state from its outcome. */
static int note(struct fleet *f, int rc, struct error **err)
{
	if (rc == 0) {
		atomic_store(&f->last_fail_ns, 0);
		set_link(f, LINK_CONNECTED, NULL);
		return 0;
	}
	int code = err && *err ? (*err)->code : EIO;
	if (code == ETIMEDOUT || code == ECONNREFUSED) {
		atomic_store(&f->last_fail_ns, now_mono_ns());
		set_link(f, LINK_UNREACHABLE, (*err)->msg);
	}
	return -1;
}

/* A transaction: compares, success ops, failure ops (consumed). */
static int txn(struct fleet *f, json_t *compare, json_t *success, json_t *failure,
	       int64_t deadline, json_t **reply, struct error **err)
{
	json_t *body = json_object();
	if (compare)
		json_object_set_new(body, "compare", compare);
	if (success)
		json_object_set_new(body, "success", success);
	if (failure)
		json_object_set_new(body, "failure", failure);
	int rc = etcd_post(thread_etcd, "/v3/kv/txn", body, deadline, reply, err);
	json_decref(body);
	return note(f, rc, err);
}

/* A compare-and-swap: the compares (consumed) all hold, and the ops
 * (consumed) are applied: 1; one does not (someone changed it since it
 * was read): 0, nothing applied; -1 etcd did not answer. */
static int cas(struct fleet *f, json_t *compare, json_t *ops, int64_t deadline,
	       struct error **err)
{
	json_t *reply = NULL;
	if (txn(f, compare, ops, NULL, deadline, &reply, err) < 0)
		return -1;
	int won = json_is_true(json_object_get(reply, "succeeded"));
	json_decref(reply);
	return won;
}

/* The kvs of the txn reply's i-th response_range. */
static int txn_kvs(const json_t *reply, size_t i, struct etcd_kv **kvs, size_t *n,
		   struct error **err)
{
	const json_t *r = json_array_get(json_object_get(reply, "responses"), i);
	const json_t *rr = json_object_get(r, "response_range");
	if (!rr)
		return error_set(err, EPROTO, "etcd: a transaction reply without its range %zu", i);
	return etcd_kvs(rr, kvs, n, err);
}

/* Read several keys in one snapshot: kv[i] (empty when absent). */
static void kvs_clear(struct etcd_kv *kv, size_t n);

static int read_keys(struct fleet *f, char *const *keys, size_t n, int64_t deadline,
		     struct etcd_kv *kv, struct error **err)
{
	memset(kv, 0, n * sizeof(*kv));
	json_t *ops = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(ops, etcd_op_range(keys[i], false));
	json_t *reply = NULL;
	if (txn(f, NULL, ops, NULL, deadline, &reply, err) < 0)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct etcd_kv *kvs = NULL;
		size_t m = 0;
		memset(&kv[i], 0, sizeof(kv[i]));
		rc = txn_kvs(reply, i, &kvs, &m, err);
		if (rc == 0 && m) {
			kv[i] = kvs[0];
			memset(&kvs[0], 0, sizeof(kvs[0]));
		}
		etcd_kvs_free(kvs, m);
	}
	json_decref(reply);
	if (rc < 0)
		kvs_clear(kv, n);
	return rc;
}

static void kvs_clear(struct etcd_kv *kv, size_t n)
{
	for (size_t i = 0; i < n; i++)
		etcd_kv_clear(&kv[i]);
}

static void pause_a_little(unsigned tries)
{
	struct timespec ts = { 0, (long)(1 + (unsigned)rand() % (2 + tries)) * 1000000L };
	nanosleep(&ts, NULL);
}

/* --- operations (the worker's thread) ------------------------------------------ */

static int do_book(struct fleet *f, const struct ledger_booking *b, int64_t deadline,
		   struct error **err)
{
	_cleanup_free_ char *kt = k_tenant(f, b->tenant);
	_cleanup_free_ char *ku = k_use(f, b->tenant);
	_cleanup_free_ char *kb = k_booking(f, b->tenant, f->host, b->vm);
	char *keys[3] = { kt, ku, kb };
	for (unsigned i = 0; i < FLEET_TXN_TRIES; i++) {
		struct etcd_kv kv[3];
		if (read_keys(f, keys, 3, deadline, kv, err) < 0)
			return -1;
		struct tenant t;
		_cleanup_error_ struct error *pe = NULL;
		if (!kv[0].key) {
			kvs_clear(kv, 3);
			return error_set(err, ENOENT, "no tenant '%s' in the fleet", b->tenant);
		}
		if (tenant_parse(kv[0].value, &t, &pe) < 0) {
			kvs_clear(kv, 3);
			return error_set(err, EPROTO, "tenant '%s' in etcd does not parse: %s",
					 b->tenant, pe->msg);
		}
		if (kv[2].key) {
			struct ledger_booking old = { 0 };
			booking_parse(kv[2].value, &old);
			kvs_clear(kv, 3);
			if (old.vcpus == b->vcpus && old.memory_set == b->memory_set &&
			    old.memory_bytes == b->memory_bytes)
				return 0; /* booked already: a retry */
			return error_set(err, EEXIST, "VM '%s' of tenant '%s' is booked on host %s "
					 "with %u vCPUs", b->vm, b->tenant, f->host, old.vcpus);
		}
		struct use u;
		use_parse(kv[1].value, &u);
		int64_t tm = kv[0].mod_revision, um = kv[1].mod_revision;
		kvs_clear(kv, 3);
		if (u.vcpus > t.vcpus || b->vcpus > t.vcpus - u.vcpus)
			return error_set(err, EDQUOT, "tenant %s: %" PRIu64 " of its %u vCPUs are "
					 "booked in the fleet, %u more do not fit", t.name, u.vcpus,
					 t.vcpus, b->vcpus);
		if (t.memory_set && b->memory_set &&
		    (u.memory_bytes > t.memory_bytes || b->memory_bytes > t.memory_bytes - u.memory_bytes))
			return error_set(err, EDQUOT, "tenant %s: %" PRId64 " of its %" PRId64 " bytes "
					 "of memory are booked in the fleet, %" PRId64 " more do "
					 "not fit", t.name, u.memory_bytes, t.memory_bytes,
					 b->memory_bytes);
		u.vcpus += b->vcpus; /* at most the quota (checked above) */
		if (b->memory_set)
			u.memory_bytes = sat_add(u.memory_bytes, b->memory_bytes);
		_cleanup_free_ char *uv = use_value(&u);
		_cleanup_free_ char *bv = booking_value(b);
		int won = cas(f, json_pack("[o,o,o]", etcd_cmp_mod(kt, tm), etcd_cmp_mod(ku, um),
					   etcd_cmp_version(kb, 0)),
			      json_pack("[o,o]", etcd_op_put(ku, uv, 0), etcd_op_put(kb, bv, 0)),
			      deadline, err);
		if (won != 0)
			return won < 0 ? -1 : 0;
		pause_a_little(i);
	}
	return error_set(err, EAGAIN, "tenant %s: the fleet's ledger kept changing: %d tries "
			 "lost the race", b->tenant, FLEET_TXN_TRIES);
}

/* Take bookings of one tenant on `host` (names in vms) out: one
 * transaction with the use. *freed: what they held. */
static int drop_bookings(struct fleet *f, const char *tenant, const char *host,
			 char *const *vms, size_t n, bool host_dead, int64_t deadline,
			 struct use *freed, struct error **err)
{
	memset(freed, 0, sizeof(*freed));
	_cleanup_free_ char *ku = k_use(f, tenant);
	/* evicting (host_dead): in the same transaction, the host has no
	 * lease (it did not come back between the look and the delete) */
	_cleanup_free_ char *kh = xasprintf("%shost/%s", f->prefix, host);
	char **keys = xcalloc(n + 1, sizeof(*keys));
	keys[0] = ku;
	for (size_t i = 0; i < n; i++)
		keys[i + 1] = k_booking(f, tenant, host, vms[i]);
	struct etcd_kv *kv = xcalloc(n + 1, sizeof(*kv));
	int rc = -1;
	for (unsigned tr = 0; tr < FLEET_TXN_TRIES; tr++) {
		if (read_keys(f, keys, n + 1, deadline, kv, err) < 0)
			goto out;
		struct use u, gone = { 0, 0 };
		use_parse(kv[0].value, &u);
		json_t *cmp = json_array(), *ops = json_array();
		json_array_append_new(cmp, etcd_cmp_mod(ku, kv[0].mod_revision));
		if (host_dead)
			json_array_append_new(cmp, etcd_cmp_version(kh, 0));
		for (size_t i = 1; i <= n; i++) {
			if (!kv[i].key)
				continue;
			struct ledger_booking b = { 0 };
			booking_parse(kv[i].value, &b);
			gone.vcpus += b.vcpus; /* each at most TENANT_VCPUS_MAX */
			if (b.memory_set)
				gone.memory_bytes = sat_add(gone.memory_bytes, b.memory_bytes);
			json_array_append_new(cmp, etcd_cmp_mod(keys[i], kv[i].mod_revision));
			json_array_append_new(ops, etcd_op_delete(keys[i]));
		}
		kvs_clear(kv, n + 1);
		if (!json_array_size(ops)) {
			json_decref(cmp);
			json_decref(ops);
			rc = 0;
			goto out;
		}
		u.vcpus = u.vcpus > gone.vcpus ? u.vcpus - gone.vcpus : 0;
		u.memory_bytes = u.memory_bytes > gone.memory_bytes ? u.memory_bytes - gone.memory_bytes
								    : 0;
		_cleanup_free_ char *uv = use_value(&u);
		json_array_append_new(ops, etcd_op_put(ku, uv, 0));
		int won = cas(f, cmp, ops, deadline, err);
		if (won < 0)
			goto out;
		if (won) {
			*freed = gone;
			rc = 0;
			goto out;
		}
		if (host_dead) {
			struct etcd_kv hk;
			char *hkeys[1] = { kh };
			if (read_keys(f, hkeys, 1, deadline, &hk, err) < 0)
				goto out;
			bool back = hk.key != NULL;
			etcd_kv_clear(&hk);
			if (back) {
				error_set(err, EBUSY, "host %s is live again (it took a lease): "
					  "its bookings stay", host);
				goto out;
			}
		}
		pause_a_little(tr);
	}
	error_set(err, EAGAIN, "tenant %s: the fleet's ledger kept changing", tenant);
out:
	kvs_clear(kv, n + 1);
	free(kv);
	for (size_t i = 1; i <= n; i++)
		free(keys[i]);
	free(keys);
	return rc;
}

static int do_unbook(struct fleet *f, const char *tenant, const char *vm, int64_t deadline,
		     struct error **err)
{
	char *vms[1] = { (char *)vm };
	struct use freed;
	return drop_bookings(f, tenant, f->host, vms, 1, false, deadline, &freed, err);
}

/* Every booking: (tenant, host, vm, figures). */
struct bk {
	char tenant[NAME_MAX_LEN + 1], host[NAME_MAX_LEN + 1], vm[NAME_MAX_LEN + 1];
	struct ledger_booking b;
};

static int read_bookings(struct fleet *f, int64_t deadline, struct bk **out, size_t *n,
			 struct error **err)
{
	*out = NULL;
	*n = 0;
	_cleanup_free_ char *p = xasprintf("%sbooking/", f->prefix);
	struct etcd_kv *kvs = NULL;
	size_t m = 0;
	int rc = etcd_range(thread_etcd, p, true, deadline, &kvs, &m, NULL, err);
	if (note(f, rc, err) < 0)
		return -1;
	struct bk *v = xcalloc(m ? m : 1, sizeof(*v));
	size_t k = 0;
	for (size_t i = 0; i < m; i++) {
		char buf[3 * (NAME_MAX_LEN + 1)];
		const char *t, *h, *vm;
		if (!parse_booking_key(f, kvs[i].key, buf, sizeof(buf), &t, &h, &vm))
			continue;
		strcpy(v[k].tenant, t);
		strcpy(v[k].host, h);
		strcpy(v[k].vm, vm);
		booking_parse(kvs[i].value, &v[k].b);
		strcpy(v[k].b.tenant, t);
		strcpy(v[k].b.vm, vm);
		k++;
	}
	etcd_kvs_free(kvs, m);
	*out = v;
	*n = k;
	return 0;
}

static void recent_add(struct fleet *f, const struct ledger_booking *b, bool released)
{
	int64_t now = now_mono_ns();
	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->n_recent;)
		if (now - f->recent[i].at_ns > FLEET_RECENT_NS)
			f->recent[i] = f->recent[--f->n_recent];
		else
			i++;
	f->recent = xrealloc(f->recent, (f->n_recent + 1) * sizeof(*f->recent));
	struct recent *r = &f->recent[f->n_recent++];
	snprintf(r->tenant, sizeof(r->tenant), "%s", b->tenant);
	snprintf(r->vm, sizeof(r->vm), "%s", b->vm);
	r->at_ns = now;
	r->released = released;
	pthread_mutex_unlock(&f->lock);
}

/* Booked (or released) by the worker after `since` (a reconciliation's
 * list was taken then): the list may not say so yet. */
static bool recent_since(struct fleet *f, const char *tenant, const char *vm, int64_t since,
			 bool released)
{
	bool found = false;
	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->n_recent && !found; i++)
		found = f->recent[i].at_ns >= since && f->recent[i].released == released &&
			strcmp(f->recent[i].vm, vm) == 0 && strcmp(f->recent[i].tenant, tenant) == 0;
	pthread_mutex_unlock(&f->lock);
	return found;
}

static bool reported(struct fleet *f, const char *vm)
{
	for (size_t i = 0; i < f->n_reported; i++)
		if (strcmp(f->reported[i], vm) == 0)
			return true;
	return false;
}

static void post_notice(struct fleet *f, const char *action, const char *target, json_t *details);
static void op_free(struct op *o);

static int do_sync(struct fleet *f, const struct ledger_booking *local, size_t n_local,
		   int64_t taken_ns, int64_t deadline, struct error **err)
{
	struct bk *all = NULL;
	size_t n = 0;
	if (read_bookings(f, deadline, &all, &n, err) < 0)
		return -1;
	unsigned released = 0, booked = 0;
	size_t unbooked = 0;
	int rc = 0;
	/* bookings of ours this host no longer has */
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (strcmp(all[i].host, f->host) != 0)
			continue;
		bool have = false;
		for (size_t j = 0; j < n_local && !have; j++)
			have = strcmp(local[j].vm, all[i].vm) == 0 &&
			       strcmp(local[j].tenant, all[i].tenant) == 0;
		if (have || recent_since(f, all[i].tenant, all[i].vm, taken_ns, false))
			continue;
		rc = do_unbook(f, all[i].tenant, all[i].vm, deadline, err);
		if (rc == 0) {
			released++;
			log_info("fleet: VM %s of tenant %s is no longer on this host: its booking "
				 "is released", all[i].vm, all[i].tenant);
		}
	}
	/* reservations of ours the fleet does not count */
	char **still = NULL;
	size_t n_still = 0;
	for (size_t j = 0; j < n_local && rc == 0; j++) {
		bool have = false;
		for (size_t i = 0; i < n && !have; i++)
			have = strcmp(all[i].host, f->host) == 0 &&
			       strcmp(local[j].vm, all[i].vm) == 0 &&
			       strcmp(local[j].tenant, all[i].tenant) == 0;
		/* released since the list was taken: not booked again */
		if (have || recent_since(f, local[j].tenant, local[j].vm, taken_ns, true))
			continue;
		_cleanup_error_ struct error *e = NULL;
		if (do_book(f, &local[j], deadline, &e) == 0) {
			booked++;
			log_info("fleet: VM %s of tenant %s had no booking in the fleet: booked now",
				 local[j].vm, local[j].tenant);
			continue;
		}
		if (e->code == ETIMEDOUT || e->code == ECONNREFUSED) {
			rc = -1;
			*err = steal_ptr(&e);
			break;
		}
		unbooked++;
		still = xrealloc(still, (n_still + 1) * sizeof(*still));
		still[n_still++] = xstrdup(local[j].vm);
		if (!reported(f, local[j].vm)) {
			log_warn("fleet: VM %s of tenant %s runs here without a booking in the fleet: "
				 "%s", local[j].vm, local[j].tenant, e->msg);
			post_notice(f, "fleet.unbooked", local[j].vm,
				    json_pack("{s:s,s:I,s:s}", "tenant", local[j].tenant, "vcpus",
					      (json_int_t)local[j].vcpus, "reason", e->msg));
		}
	}
	if (rc == 0) {
		for (size_t i = 0; i < f->n_reported; i++)
			free(f->reported[i]);
		free(f->reported);
		f->reported = still;
		f->n_reported = n_still;
		pthread_mutex_lock(&f->lock);
		f->n_unbooked = unbooked;
		pthread_mutex_unlock(&f->lock);
	} else {
		for (size_t i = 0; i < n_still; i++)
			free(still[i]);
		free(still);
	}
	if (released || booked)
		log_info("fleet: bookings reconciled with this host's reservations: %u released, "
			 "%u booked, %zu not bookable", released, booked, unbooked);
	free(all);
	return rc;
}

static int do_t_create(struct fleet *f, const struct tenant *t, int64_t deadline,
		       struct error **err)
{
	_cleanup_free_ char *kt = k_tenant(f, t->name);
	_cleanup_free_ char *v = tenant_value(t);
	int won = cas(f, json_pack("[o]", etcd_cmp_version(kt, 0)),
		      json_pack("[o]", etcd_op_put(kt, v, 0)), deadline, err);
	if (won < 0)
		return -1;
	if (!won)
		return error_set(err, EEXIST, "tenant '%s' already exists in the fleet", t->name);
	return 0;
}

static int do_t_update(struct fleet *f, const char *name, const struct tenant_patch *p,
		       int64_t deadline, struct tenant *out, struct error **err)
{
	_cleanup_free_ char *kt = k_tenant(f, name);
	char *keys[1] = { kt };
	for (unsigned i = 0; i < FLEET_TXN_TRIES; i++) {
		struct etcd_kv kv;
		if (read_keys(f, keys, 1, deadline, &kv, err) < 0)
			return -1;
		if (!kv.key)
			return error_set(err, ENOENT, "no tenant '%s' in the fleet", name);
		struct tenant t;
		int rc = tenant_parse(kv.value, &t, err);
		int64_t mod = kv.mod_revision;
		etcd_kv_clear(&kv);
		if (rc < 0 || tenant_apply_patch(&t, p, err) < 0)
			return -1;
		_cleanup_free_ char *v = tenant_value(&t);
		int won = cas(f, json_pack("[o]", etcd_cmp_mod(kt, mod)),
			      json_pack("[o]", etcd_op_put(kt, v, 0)), deadline, err);
		if (won < 0)
			return -1;
		if (won) {
			*out = t;
			return 0;
		}
		pause_a_little(i);
	}
	return error_set(err, EAGAIN, "tenant %s changed in the fleet %d times while this "
			 "change was tried", name, FLEET_TXN_TRIES);
}

static int do_t_delete(struct fleet *f, const char *name, int64_t deadline, struct error **err)
{
	_cleanup_free_ char *kt = k_tenant(f, name);
	_cleanup_free_ char *ku = k_use(f, name);
	char *keys[2] = { kt, ku };
	for (unsigned i = 0; i < FLEET_TXN_TRIES; i++) {
		struct etcd_kv kv[2];
		if (read_keys(f, keys, 2, deadline, kv, err) < 0)
			return -1;
		if (!kv[0].key) {
			kvs_clear(kv, 2);
			return error_set(err, ENOENT, "no tenant '%s' in the fleet", name);
		}
		struct use u;
		use_parse(kv[1].value, &u);
		int64_t tm = kv[0].mod_revision, um = kv[1].mod_revision;
		kvs_clear(kv, 2);
		if (u.vcpus)
			return error_set(err, EBUSY, "tenant '%s' has %" PRIu64 " vCPUs booked in the "
					 "fleet: release its VMs first (vcpuctl fleet hosts)", name,
					 u.vcpus);
		int won = cas(f, json_pack("[o,o]", etcd_cmp_mod(kt, tm), etcd_cmp_mod(ku, um)),
			      json_pack("[o,o]", etcd_op_delete(kt), etcd_op_delete(ku)), deadline,
			      err);
		if (won != 0)
			return won < 0 ? -1 : 0;
		pause_a_little(i);
	}
	return error_set(err, EAGAIN, "tenant %s kept changing in the fleet", name);
}

/* host/ (live) and hostseen/ names */
static int read_hosts(struct fleet *f, int64_t deadline, struct etcd_kv **live, size_t *n_live,
		      struct etcd_kv **seen, size_t *n_seen, struct error **err)
{
	_cleanup_free_ char *pl = xasprintf("%shost/", f->prefix);
	_cleanup_free_ char *ps = xasprintf("%shostseen/", f->prefix);
	*seen = NULL;
	*n_seen = 0;
	if (note(f, etcd_range(thread_etcd, pl, true, deadline, live, n_live, NULL, err), err) < 0)
		return -1;
	if (note(f, etcd_range(thread_etcd, ps, true, deadline, seen, n_seen, NULL, err), err) < 0) {
		etcd_kvs_free(*live, *n_live);
		*live = NULL;
		*n_live = 0;
		return -1;
	}
	return 0;
}

static const char *host_of(const char *key)
{
	const char *s = strrchr(key, '/');
	return s ? s + 1 : key;
}

static bool kvs_has_host(const struct etcd_kv *kv, size_t n, const char *host)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(host_of(kv[i].key), host) == 0)
			return true;
	return false;
}

static json_t *host_entry(json_t *arr, const char *host)
{
	for (size_t i = 0; i < json_array_size(arr); i++) {
		json_t *h = json_array_get(arr, i);
		if (strcmp(json_string_value(json_object_get(h, "host")), host) == 0)
			return h;
	}
	json_t *h = json_pack("{s:s,s:b,s:I,s:I,s:I,s:o}", "host", host, "live", 0, "bookings",
			      (json_int_t)0, "vcpus", (json_int_t)0, "memory_bytes", (json_int_t)0,
			      "tenants", json_object());
	json_array_append_new(arr, h);
	return h;
}

static void add_int(json_t *o, const char *key, json_int_t v)
{
	json_object_set_new(o, key, json_integer(sat_add(json_integer_value(json_object_get(o, key)),
							 v)));
}

static int host_cmp(const void *a, const void *b)
{
	return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "host")),
		      json_string_value(json_object_get(*(json_t *const *)b, "host")));
}

static int do_hosts(struct fleet *f, int64_t deadline, json_t **out, struct error **err)
{
	struct etcd_kv *live = NULL, *seen = NULL;
	size_t n_live = 0, n_seen = 0;
	struct bk *all = NULL;
	size_t n = 0;
	if (read_hosts(f, deadline, &live, &n_live, &seen, &n_seen, err) < 0)
		return -1;
	if (read_bookings(f, deadline, &all, &n, err) < 0) {
		etcd_kvs_free(live, n_live);
		etcd_kvs_free(seen, n_seen);
		return -1;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < n_seen; i++)
		host_entry(arr, host_of(seen[i].key));
	for (size_t i = 0; i < n_live; i++) {
		json_t *h = host_entry(arr, host_of(live[i].key));
		json_object_set_new(h, "live", json_true());
		json_t *v = json_loads(live[i].value, 0, NULL);
		if (json_is_object(v) && json_object_get(v, "since"))
			json_object_set(h, "since", json_object_get(v, "since"));
		json_decref(v);
	}
	for (size_t i = 0; i < n; i++) {
		json_t *h = host_entry(arr, all[i].host);
		add_int(h, "bookings", 1);
		add_int(h, "vcpus", all[i].b.vcpus);
		if (all[i].b.memory_set)
			add_int(h, "memory_bytes", all[i].b.memory_bytes);
		json_t *tn = json_object_get(h, "tenants");
		add_int(tn, all[i].tenant, all[i].b.vcpus);
	}
	size_t m = json_array_size(arr);
	json_t **v = xcalloc(m ? m : 1, sizeof(*v));
	for (size_t i = 0; i < m; i++)
		v[i] = json_incref(json_array_get(arr, i));
	qsort(v, m, sizeof(*v), host_cmp);
	json_array_clear(arr);
	for (size_t i = 0; i < m; i++) {
		json_object_set_new(v[i], "self", json_boolean(strcmp(json_string_value(json_object_get(
								   v[i], "host")), f->host) == 0));
		json_array_append_new(arr, v[i]);
	}
	free(v);
	*out = json_pack("{s:o}", "hosts", arr);
	etcd_kvs_free(live, n_live);
	etcd_kvs_free(seen, n_seen);
	free(all);
	return 0;
}

static int do_evict(struct fleet *f, const char *host, int64_t deadline, json_t **out,
		    struct error **err)
{
	struct etcd_kv *live = NULL, *seen = NULL;
	size_t n_live = 0, n_seen = 0;
	if (read_hosts(f, deadline, &live, &n_live, &seen, &n_seen, err) < 0)
		return -1;
	bool is_live = kvs_has_host(live, n_live, host);
	bool known = is_live || kvs_has_host(seen, n_seen, host);
	etcd_kvs_free(live, n_live);
	etcd_kvs_free(seen, n_seen);
	if (is_live)
		return error_set(err, EBUSY, "host %s is live (it holds its lease): only a dead "
				 "host's bookings are evicted", host);
	struct bk *all = NULL;
	size_t n = 0;
	if (read_bookings(f, deadline, &all, &n, err) < 0)
		return -1;
	struct use total = { 0, 0 };
	size_t count = 0;
	int rc = 0;
	/* one transaction per tenant */
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (strcmp(all[i].host, host) != 0 || !all[i].tenant[0])
			continue;
		char tenant[NAME_MAX_LEN + 1];
		strcpy(tenant, all[i].tenant);
		char **vms = NULL;
		size_t nv = 0;
		for (size_t j = i; j < n; j++)
			if (strcmp(all[j].host, host) == 0 && strcmp(all[j].tenant, tenant) == 0) {
				vms = xrealloc(vms, (nv + 1) * sizeof(*vms));
				vms[nv++] = all[j].vm;
				all[j].tenant[0] = '\0';
			}
		/* etcd takes at most --max-txn-ops (128 by default) in one
		 * transaction: a tenant's bookings go by FLEET_TXN_CHUNK */
		for (size_t at = 0; at < nv && rc == 0; at += FLEET_TXN_CHUNK) {
			size_t k = nv - at < FLEET_TXN_CHUNK ? nv - at : FLEET_TXN_CHUNK;
			struct use freed;
			rc = drop_bookings(f, tenant, host, vms + at, k, true, deadline, &freed, err);
			if (rc == 0) {
				total.vcpus += freed.vcpus;
				total.memory_bytes = sat_add(total.memory_bytes, freed.memory_bytes);
				count += k;
			}
		}
		free(vms);
	}
	free(all);
	if (rc < 0)
		return -1;
	if (!known && !count)
		return error_set(err, ENOENT, "no host '%s' in the fleet", host);
	_cleanup_free_ char *ks = xasprintf("%shostseen/%s", f->prefix, host);
	json_t *reply = NULL;
	if (txn(f, NULL, json_pack("[o]", etcd_op_delete(ks)), NULL, deadline, &reply, err) < 0)
		return -1;
	json_decref(reply);
	*out = json_pack("{s:s,s:I,s:I,s:I}", "host", host, "bookings", (json_int_t)count, "vcpus",
			 (json_int_t)total.vcpus, "memory_bytes", (json_int_t)total.memory_bytes);
	return 0;
}

/* --- the lease, the tenants, dead hosts (the worker) ----------------------------- */

static int lease_take(struct fleet *f, int64_t deadline, struct error **err)
{
	json_t *req = json_pack("{s:I}", "TTL", (json_int_t)f->lease_ttl_s), *reply = NULL;
	int rc = etcd_post(thread_etcd, "/v3/lease/grant", req, deadline, &reply, err);
	json_decref(req);
	if (note(f, rc, err) < 0)
		return -1;
	int64_t id = etcd_int(reply, "ID");
	json_decref(reply);
	if (!id)
		return error_set(err, EPROTO, "etcd granted a lease without an ID");
	_cleanup_free_ char *kh = xasprintf("%shost/%s", f->prefix, f->host);
	_cleanup_free_ char *ks = xasprintf("%shostseen/%s", f->prefix, f->host);
	_cleanup_free_ char *since = utc_time_str(wall_ms() / 1000);
	json_t *v = json_pack("{s:s,s:i,s:s}", "host", f->host, "pid", (int)getpid(), "since", since);
	_cleanup_free_ char *vs = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	/* the host's name is taken only if nobody holds it: two vcpuds with
	 * one --host-id would release each other's bookings */
	int won = cas(f, json_pack("[o]", etcd_cmp_version(kh, 0)),
		      json_pack("[o,o]", etcd_op_put(kh, vs, id), etcd_op_put(ks, vs, 0)), deadline,
		      err);
	if (won <= 0) {
		_cleanup_free_ char *ids = xasprintf("%" PRId64, id);
		json_t *rq = json_pack("{s:s}", "ID", ids);
		_cleanup_error_ struct error *re = NULL;
		if (etcd_post(thread_etcd, "/v3/lease/revoke", rq, deadline, &reply, &re) == 0)
			json_decref(reply);
		json_decref(rq);
	}
	if (won < 0)
		return -1;
	pthread_mutex_lock(&f->lock);
	bool was = f->conflict;
	f->conflict = !won;
	if (won)
		f->lease = id;
	pthread_mutex_unlock(&f->lock);
	if (!won) {
		if (!was)
			log_error("fleet: host name %s is held by another live vcpud (or by this "
				  "host's last run, until its lease runs out in at most %u s): not "
				  "booking anything until it is free (--host-id)", f->host,
				  f->lease_ttl_s);
		return error_set(err, EBUSY, "fleet: host name %s is held by another live vcpud "
				 "(--host-id must differ on each host)", f->host);
	}
	log_info("fleet: host %s joined (lease %" PRId64 ", %u s)", f->host, id, f->lease_ttl_s);
	return 0;
}

static int lease_keep(struct fleet *f, int64_t deadline, struct error **err)
{
	pthread_mutex_lock(&f->lock);
	int64_t id = f->lease;
	pthread_mutex_unlock(&f->lock);
	if (!id)
		return lease_take(f, deadline, err);
	_cleanup_free_ char *ids = xasprintf("%" PRId64, id);
	json_t *req = json_pack("{s:s}", "ID", ids), *reply = NULL;
	int rc = etcd_post(thread_etcd, "/v3/lease/keepalive", req, deadline, &reply, err);
	json_decref(req);
	if (note(f, rc, err) < 0)
		return -1;
	int64_t ttl = etcd_int(json_object_get(reply, "result"), "TTL");
	json_decref(reply);
	if (ttl > 0)
		return 0;
	log_warn("fleet: host %s's lease expired (etcd was out of reach for longer than %u s): "
		 "taking a new one", f->host, f->lease_ttl_s);
	pthread_mutex_lock(&f->lock);
	f->lease = 0;
	pthread_mutex_unlock(&f->lock);
	return lease_take(f, deadline, err);
}

static void post(struct fleet *f, struct op *o)
{
	pthread_mutex_lock(&f->lock);
	if (f->d_tail)
		f->d_tail->next = o;
	else
		f->d_head = o;
	f->d_tail = o;
	o->next = NULL;
	pthread_mutex_unlock(&f->lock);
	uint64_t one = 1;
	ssize_t w = write(f->wake_fd, &one, sizeof(one));
	(void)w;
}

static void post_notice(struct fleet *f, const char *action, const char *target, json_t *details)
{
	struct op *o = xcalloc(1, sizeof(*o));
	o->kind = OP_NOTICE;
	o->action = xstrdup(action);
	o->target = xstrdup(target);
	o->result = details;
	post(f, o);
}

static int read_tenants(struct fleet *f, int64_t deadline, struct error **err)
{
	_cleanup_free_ char *pt = xasprintf("%stenant/", f->prefix);
	_cleanup_free_ char *pu = xasprintf("%suse/", f->prefix);
	json_t *reply = NULL;
	if (txn(f, NULL, json_pack("[o,o]", etcd_op_range(pt, true), etcd_op_range(pu, true)), NULL,
		deadline, &reply, err) < 0)
		return -1;
	struct etcd_kv *tk = NULL, *uk = NULL;
	size_t nt = 0, nu = 0;
	int64_t rev = etcd_int(json_object_get(reply, "header"), "revision");
	int rc = txn_kvs(reply, 0, &tk, &nt, err);
	if (rc == 0)
		rc = txn_kvs(reply, 1, &uk, &nu, err);
	json_decref(reply);
	if (rc < 0) {
		etcd_kvs_free(tk, nt);
		return -1;
	}
	struct op *o = xcalloc(1, sizeof(*o));
	o->kind = OP_TENANTS;
	o->tenants = xcalloc(nt ? nt : 1, sizeof(*o->tenants));
	for (size_t i = 0; i < nt; i++) {
		_cleanup_error_ struct error *pe = NULL;
		if (tenant_parse(tk[i].value, &o->tenants[o->n_tenants], &pe) < 0 ||
		    strcmp(o->tenants[o->n_tenants].name, host_of(tk[i].key)) != 0) {
			log_warn("fleet: %s does not hold a tenant: %s", tk[i].key,
				 pe ? pe->msg : "its name differs");
			continue;
		}
		o->n_tenants++;
	}
	o->use = xcalloc(nu ? nu : 1, sizeof(*o->use));
	for (size_t i = 0; i < nu; i++) {
		const char *t = host_of(uk[i].key);
		if (!name_valid(t))
			continue;
		struct use u;
		use_parse(uk[i].value, &u);
		struct ledger_tenant_use *x = &o->use[o->n_use++];
		strcpy(x->name, t);
		x->vcpus = u.vcpus;
		x->memory_bytes = u.memory_bytes;
	}
	etcd_kvs_free(tk, nt);
	etcd_kvs_free(uk, nu);
	pthread_mutex_lock(&f->lock);
	f->synced_ms = wall_ms();
	f->revision = rev;
	pthread_mutex_unlock(&f->lock);
	post(f, o);
	return 0;
}

/* Hosts dead (no lease) for fleet.evict_dead_after_s: evicted. */
static void sweep_dead(struct fleet *f, int64_t deadline)
{
	_cleanup_error_ struct error *err = NULL;
	struct etcd_kv *live = NULL, *seen = NULL;
	size_t n_live = 0, n_seen = 0;
	struct bk *all = NULL;
	size_t n = 0;
	if (read_hosts(f, deadline, &live, &n_live, &seen, &n_seen, &err) < 0 ||
	    read_bookings(f, deadline, &all, &n, &err) < 0) {
		etcd_kvs_free(live, n_live);
		etcd_kvs_free(seen, n_seen);
		return;
	}
	for (size_t i = 0; i < f->n_dead; i++)
		f->dead[i].seen = false;
	int64_t now = now_mono_ns() / 1000000; /* a wall clock step must not evict */
	for (size_t pass = 0; pass < n_seen + n; pass++) {
		const char *h = pass < n_seen ? host_of(seen[pass].key) : all[pass - n_seen].host;
		if (!name_valid(h) || kvs_has_host(live, n_live, h) || strcmp(h, f->host) == 0)
			continue;
		size_t k = 0;
		while (k < f->n_dead && strcmp(f->dead[k].name, h) != 0)
			k++;
		if (k == f->n_dead) {
			f->dead = xrealloc(f->dead, (f->n_dead + 1) * sizeof(*f->dead));
			memset(&f->dead[k], 0, sizeof(f->dead[k]));
			snprintf(f->dead[k].name, sizeof(f->dead[k].name), "%s", h);
			f->dead[k].since_ms = now;
			f->n_dead++;
		}
		f->dead[k].seen = true;
	}
	etcd_kvs_free(live, n_live);
	etcd_kvs_free(seen, n_seen);
	free(all);
	for (size_t i = 0; i < f->n_dead;) {
		struct dead_host *d = &f->dead[i];
		if (!d->seen) {
			f->dead[i] = f->dead[--f->n_dead];
			continue;
		}
		if (now - d->since_ms >= (int64_t)f->evict_after_s * 1000) {
			json_t *res = NULL;
			_cleanup_error_ struct error *e = NULL;
			if (do_evict(f, d->name, deadline, &res, &e) == 0) {
				log_warn("fleet: host %s dead for %u s (fleet.evict_dead_after_s): "
					 "%" PRId64 " bookings evicted", d->name, f->evict_after_s,
					 (int64_t)json_integer_value(json_object_get(res, "bookings")));
				post_notice(f, "fleet.evict", d->name, res);
				f->dead[i] = f->dead[--f->n_dead];
				continue;
			}
		}
		i++;
	}
}

/* Why an operation was not even tried: its deadline passed while it
 * waited, or etcd failed moments ago (fail fast: admissions are refused at
 * once while etcd is out of reach, not each after fleet.timeout_ms). */
static bool refuse_now(struct fleet *f, struct op *o)
{
	int64_t now = now_mono_ns();
	int64_t last = atomic_load(&f->last_fail_ns);
	bool late = now >= o->deadline_ns;
	pthread_mutex_lock(&f->lock);
	/* down for a whole fleet.timeout_ms, and again just now: not a leader
	 * election (a second or so), which a call rides through */
	bool down = f->link == LINK_UNREACHABLE &&
		    wall_ms() - f->link_since_ms >= (int64_t)f->timeout_ms;
	bool conflict = f->conflict;
	_cleanup_free_ char *why = xstrdup(f->last_error ? f->last_error : "");
	pthread_mutex_unlock(&f->lock);
	if (conflict) {
		o->rc = error_set(&o->err, EBUSY, "fleet: host name %s is held by another live "
				  "vcpud (--host-id must differ on each host): nothing is booked",
				  f->host);
		return true;
	}
	if (!late && !(down && last && now - last < (int64_t)FLEET_FAIL_FAST_MS * 1000000))
		return false;
	if (late)
		o->rc = error_set(&o->err, ETIMEDOUT, "fleet: etcd did not answer within "
				  "fleet.timeout_ms (%u ms; no quorum, or unreachable)%s%s",
				  f->timeout_ms, *why ? ": " : "", why);
	else
		o->rc = error_set(&o->err, ETIMEDOUT, "fleet: %s", why);
	return true;
}

/* The client's operations (the worker). */
static void run_op(struct fleet *f, struct op *o)
{
	if (refuse_now(f, o))
		return;
	struct tenant t;
	switch (o->kind) {
	case OP_BOOK:
		/* before the transaction: a reconciliation that reads the booking
		 * once it is committed must find it here */
		recent_add(f, &o->b, false);
		o->rc = do_book(f, &o->b, o->deadline_ns, &o->err);
		break;
	case OP_UNBOOK:
		recent_add(f, &o->b, true);
		o->rc = do_unbook(f, o->b.tenant, o->b.vm, o->deadline_ns, &o->err);
		break;
	case OP_T_CREATE:
		o->rc = do_t_create(f, &o->t, o->deadline_ns, &o->err);
		if (o->rc == 0)
			o->result = api_tenant_to_json(&o->t);
		break;
	case OP_T_UPDATE:
		o->rc = do_t_update(f, o->name, &o->p, o->deadline_ns, &t, &o->err);
		if (o->rc == 0)
			o->result = api_tenant_to_json(&t);
		break;
	case OP_T_DELETE:
		o->rc = do_t_delete(f, o->name, o->deadline_ns, &o->err);
		break;
	case OP_HOSTS:
		o->rc = do_hosts(f, o->deadline_ns, &o->result, &o->err);
		break;
	case OP_EVICT:
		o->rc = do_evict(f, o->name, o->deadline_ns, &o->result, &o->err);
		break;
	default:
		o->rc = error_set(&o->err, EINVAL, "fleet: unknown operation");
	}
	if (o->rc < 0 && o->err && o->err->code == EPROTO)
		log_warn("fleet: %s", o->err->msg);
}

static struct op *pop(struct op **head, struct op **tail)
{
	struct op *o = *head;
	if (o) {
		*head = o->next;
		if (!*head)
			*tail = NULL;
	}
	return o;
}

static void *worker_main(void *arg)
{
	struct fleet *f = arg;
	thread_etcd = f->e;
	srand((unsigned)(now_mono_ns() ^ getpid()));
	for (;;) {
		pthread_mutex_lock(&f->lock);
		while (!f->quit && !f->q_head)
			pthread_cond_wait(&f->cond, &f->lock);
		if (f->quit) {
			pthread_mutex_unlock(&f->lock);
			break;
		}
		struct op *o = pop(&f->q_head, &f->q_tail);
		f->queued--;
		pthread_mutex_unlock(&f->lock);
		run_op(f, o);
		post(f, o);
	}
	return NULL;
}

/* The reconciliation the daemon asked for last: tried until it succeeds
 * (etcd back), the newest list replacing an older one. */
static void run_sync(struct fleet *f, int64_t deadline)
{
	_cleanup_error_ struct error *e = NULL;
	if (do_sync(f, f->sync_local, f->n_sync_local, f->sync_taken_ns, deadline, &e) == 0) {
		f->sync_pending = false;
		return;
	}
	if (!f->sync_said) {
		log_info("fleet: bookings not reconciled (%s): again when etcd answers", e->msg);
		f->sync_said = true;
	}
}

/* The maintenance (its own thread, so that it never delays an admission):
 * the lease, the tenants, the reconciliation of this host's bookings, the
 * releases, dead hosts. */
static void *bg_main(void *arg)
{
	struct fleet *f = arg;
	thread_etcd = f->eb;
	srand((unsigned)(now_mono_ns() ^ (getpid() << 8)));
	for (;;) {
		int64_t now = now_mono_ns();
		int64_t probe = (int64_t)f->timeout_ms * 1000000;
		if (now >= f->keepalive_due_ns) {
			_cleanup_error_ struct error *e = NULL;
			int rc = lease_keep(f, now + probe, &e);
			f->keepalive_due_ns = now_mono_ns() +
				(rc == 0 ? (int64_t)f->lease_ttl_s * 1000000000 / 3
					 : (int64_t)FLEET_PROBE_MS * 1000000);
		}
		pthread_mutex_lock(&f->lock);
		bool dirty = f->dirty;
		f->dirty = false;
		pthread_mutex_unlock(&f->lock);
		now = now_mono_ns();
		if (dirty || now >= f->resync_due_ns) {
			_cleanup_error_ struct error *e = NULL;
			int rc = read_tenants(f, now + probe, &e);
			/* a failed read is tried again after FLEET_PROBE_MS, not at
			 * once: the watcher's restarts must not spin on it */
			f->resync_due_ns = now_mono_ns() +
				(int64_t)(rc == 0 ? FLEET_RESYNC_MS : FLEET_PROBE_MS) * 1000000;
		}
		/* releases and reconciliations the daemon asked for */
		for (;;) {
			pthread_mutex_lock(&f->lock);
			struct op *o = pop(&f->b_head, &f->b_tail);
			pthread_mutex_unlock(&f->lock);
			if (!o)
				break;
			if (o->kind == OP_UNBOOK) {
				_cleanup_error_ struct error *e = NULL;
				if (do_unbook(f, o->b.tenant, o->b.vm, now_mono_ns() + probe, &e) < 0)
					log_warn("fleet: cannot release the booking of VM %s: %s "
						 "(the next reconciliation does)", o->b.vm, e->msg);
			} else if (o->kind == OP_SYNC) {
				free(f->sync_local);
				f->sync_local = steal_ptr(&o->local);
				f->n_sync_local = o->n_local;
				f->sync_taken_ns = o->taken_ns;
				f->sync_pending = true;
				f->sync_said = false;
			}
			op_free(o);
		}
		/* only as the holder of this host's name (another vcpud with
		 * the same --host-id would lose its bookings to this list) */
		pthread_mutex_lock(&f->lock);
		bool joined = f->lease && !f->conflict;
		pthread_mutex_unlock(&f->lock);
		if (joined && f->sync_pending && !atomic_load(&f->last_fail_ns))
			run_sync(f, now_mono_ns() + 2 * probe);
		if (joined && f->evict_after_s && now_mono_ns() >= f->sweep_due_ns) {
			sweep_dead(f, now_mono_ns() + probe);
			int64_t every = (int64_t)f->evict_after_s * 1000 / 4;
			every = every < FLEET_SWEEP_MIN_MS ? FLEET_SWEEP_MIN_MS
			      : every > FLEET_SWEEP_MS	   ? FLEET_SWEEP_MS
							   : every;
			f->sweep_due_ns = now_mono_ns() + every * 1000000;
		}
		/* until something is due, asked for, or changed */
		pthread_mutex_lock(&f->lock);
		while (!f->quit && !f->b_head && !f->dirty) {
			int64_t due = f->keepalive_due_ns < f->resync_due_ns ? f->keepalive_due_ns
									     : f->resync_due_ns;
			if (f->evict_after_s && f->sweep_due_ns < due)
				due = f->sweep_due_ns;
			if (f->sync_pending && now_mono_ns() + (int64_t)FLEET_PROBE_MS * 1000000 < due)
				due = now_mono_ns() + (int64_t)FLEET_PROBE_MS * 1000000;
			if (due <= now_mono_ns())
				break;
			struct timespec ts = { due / 1000000000, due % 1000000000 };
			pthread_cond_timedwait(&f->bcond, &f->lock, &ts);
		}
		bool quit = f->quit;
		pthread_mutex_unlock(&f->lock);
		if (quit)
			break;
	}
	/* a clean stop: the host is no longer live (its bookings stay) */
	pthread_mutex_lock(&f->lock);
	int64_t id = f->lease;
	pthread_mutex_unlock(&f->lock);
	if (id) {
		_cleanup_free_ char *ids = xasprintf("%" PRId64, id);
		json_t *req = json_pack("{s:s}", "ID", ids), *reply = NULL;
		_cleanup_error_ struct error *e = NULL;
		if (etcd_post(f->eb, "/v3/lease/revoke", req, now_mono_ns() + 500000000, &reply,
			      &e) == 0)
			log_info("fleet: host %s left (lease revoked)", f->host);
		json_decref(req);
		json_decref(reply);
	}
	return NULL;
}

static void on_watch(void *data, int64_t revision)
{
	(void)revision;
	struct fleet *f = data;
	pthread_mutex_lock(&f->lock);
	f->dirty = true;
	pthread_cond_signal(&f->bcond);
	pthread_mutex_unlock(&f->lock);
}

static void *watcher_main(void *arg)
{
	struct fleet *f = arg;
	_cleanup_free_ char *p = xasprintf("%s", f->prefix);
	while (!atomic_load(&f->stop)) {
		/* whatever happened while no watch was held: read again */
		on_watch(f, 0);
		_cleanup_error_ struct error *e = NULL;
		if (etcd_watch(f->ew, p, 0, &f->stop, on_watch, f, &e) == 0)
			break;
		log_debug("fleet: %s", e->msg);
		for (int i = 0; i < FLEET_REWATCH_MS / 50 && !atomic_load(&f->stop); i++) {
			struct timespec ts = { 0, 50000000L };
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

/* --- the daemon's side ---------------------------------------------------------- */

static struct fleet *F(struct ledger *l)
{
	return (struct fleet *)l;
}

static struct op *op_new(struct fleet *f, enum op_kind k, ledger_done_fn done, void *data)
{
	struct op *o = xcalloc(1, sizeof(*o));
	o->kind = k;
	o->done = done;
	o->data = data;
	o->deadline_ns = now_mono_ns() + (int64_t)f->timeout_ms * 1000000;
	return o;
}

static void append(struct op **head, struct op **tail, struct op *o)
{
	o->next = NULL;
	if (*tail)
		(*tail)->next = o;
	else
		*head = o;
	*tail = o;
}

/* To the worker (the client's operations). */
static void submit(struct fleet *f, struct op *o)
{
	pthread_mutex_lock(&f->lock);
	append(&f->q_head, &f->q_tail, o);
	f->queued++;
	pthread_cond_signal(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

/* To the maintenance thread (releases, reconciliations). */
static void submit_bg(struct fleet *f, struct op *o)
{
	pthread_mutex_lock(&f->lock);
	append(&f->b_head, &f->b_tail, o);
	pthread_cond_signal(&f->bcond);
	pthread_mutex_unlock(&f->lock);
}

static void op_free(struct op *o)
{
	error_free(&o->err);
	json_decref(o->result);
	free(o->local);
	free(o->tenants);
	free(o->use);
	free(o->action);
	free(o->target);
	free(o);
}

static void f_book(struct ledger *l, const struct ledger_booking *b, ledger_done_fn done,
		   void *data)
{
	struct op *o = op_new(F(l), OP_BOOK, done, data);
	o->b = *b;
	submit(F(l), o);
}

static void f_unbook(struct ledger *l, const char *tenant, const char *vm, ledger_done_fn done,
		     void *data)
{
	struct op *o = op_new(F(l), OP_UNBOOK, done, data);
	snprintf(o->b.tenant, sizeof(o->b.tenant), "%s", tenant);
	snprintf(o->b.vm, sizeof(o->b.vm), "%s", vm);
	/* a release someone waits for is a client's operation */
	if (done)
		submit(F(l), o);
	else
		submit_bg(F(l), o);
}

static void f_sync(struct ledger *l, const struct ledger_booking *local, size_t n)
{
	struct op *o = op_new(F(l), OP_SYNC, NULL, NULL);
	o->local = xmemdup(local, (n ? n : 1) * sizeof(*local));
	o->n_local = n;
	o->taken_ns = now_mono_ns();
	submit_bg(F(l), o);
}

static void f_t_create(struct ledger *l, const struct tenant *t, ledger_done_fn done, void *data)
{
	struct op *o = op_new(F(l), OP_T_CREATE, done, data);
	o->t = *t;
	submit(F(l), o);
}

static void f_t_update(struct ledger *l, const char *name, const struct tenant_patch *p,
		       ledger_done_fn done, void *data)
{
	struct op *o = op_new(F(l), OP_T_UPDATE, done, data);
	snprintf(o->name, sizeof(o->name), "%s", name);
	o->p = *p;
	submit(F(l), o);
}

static void f_t_delete(struct ledger *l, const char *name, ledger_done_fn done, void *data)
{
	struct op *o = op_new(F(l), OP_T_DELETE, done, data);
	snprintf(o->name, sizeof(o->name), "%s", name);
	submit(F(l), o);
}

static void f_hosts(struct ledger *l, ledger_done_fn done, void *data)
{
	submit(F(l), op_new(F(l), OP_HOSTS, done, data));
}

static void f_evict(struct ledger *l, const char *host, ledger_done_fn done, void *data)
{
	struct op *o = op_new(F(l), OP_EVICT, done, data);
	snprintf(o->name, sizeof(o->name), "%s", host);
	submit(F(l), o);
}

static json_t *f_status(struct ledger *l)
{
	struct fleet *f = F(l);
	json_t *eps = json_array();
	for (size_t i = 0; i < f->n_urls; i++)
		json_array_append_new(eps, json_string(f->urls[i]));
	pthread_mutex_lock(&f->lock);
	json_t *o = json_pack("{s:s,s:s,s:o,s:s,s:o,s:o,s:o,s:o,s:I,s:I,s:I}", "backend", "fleet",
			      "host", f->host, "endpoints", eps, "state",
			      f->conflict ? "host-id-taken" : link_names[f->link],
			      "since_ms", f->link_since_ms ? json_integer(f->link_since_ms)
							   : json_null(),
			      "error", f->last_error && f->link != LINK_CONNECTED
					       ? json_string(f->last_error) : json_null(),
			      "tenants_synced_ms",
			      f->synced_ms ? json_integer(f->synced_ms) : json_null(),
			      "lease", f->lease ? json_integer(f->lease) : json_null(),
			      "revision", (json_int_t)f->revision, "unbooked",
			      (json_int_t)f->n_unbooked, "queued", (json_int_t)f->queued);
	pthread_mutex_unlock(&f->lock);
	return o;
}

static int f_fd(struct ledger *l)
{
	return F(l)->wake_fd;
}

static void f_dispatch(struct ledger *l)
{
	struct fleet *f = F(l);
	uint64_t v;
	ssize_t r = read(f->wake_fd, &v, sizeof(v));
	(void)r;
	pthread_mutex_lock(&f->lock);
	struct op *o = f->d_head;
	f->d_head = f->d_tail = NULL;
	pthread_mutex_unlock(&f->lock);
	while (o) {
		struct op *next = o->next;
		if (o->kind == OP_TENANTS) {
			free(f->use);
			f->use = steal_ptr(&o->use);
			f->n_use = o->n_use;
			if (f->on_tenants)
				f->on_tenants(f->data, o->tenants, o->n_tenants);
		} else if (o->kind == OP_NOTICE) {
			if (f->on_notice)
				f->on_notice(f->data, o->action, o->target, o->result);
		} else if (o->done) {
			o->done(o->data, o->rc, o->err, o->result);
		}
		op_free(o);
		o = next;
	}
}

static bool f_tenant_use(struct ledger *l, const char *tenant, struct ledger_tenant_use *out)
{
	struct fleet *f = F(l);
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", tenant);
	pthread_mutex_lock(&f->lock);
	bool known = f->synced_ms != 0;
	pthread_mutex_unlock(&f->lock);
	for (size_t i = 0; i < f->n_use; i++)
		if (strcmp(f->use[i].name, tenant) == 0)
			*out = f->use[i];
	return known;
}

static void cancel_list(struct op *o)
{
	while (o) {
		struct op *next = o->next;
		if (o->done && o->kind < OP_TENANTS) {
			struct error *e = NULL;
			error_set(&e, ECANCELED, "fleet: vcpud is stopping");
			o->done(o->data, -1, e, NULL);
			error_free(&e);
		}
		op_free(o);
		o = next;
	}
}

/* Stop the first n of the threads (worker, maintenance, watcher): each
 * etcd call is bounded by its deadline, the watch by its progress callback
 * (about a second). */
static void stop_threads(struct fleet *f, int n)
{
	atomic_store(&f->stop, true);
	pthread_mutex_lock(&f->lock);
	f->quit = true;
	pthread_cond_broadcast(&f->cond);
	pthread_cond_broadcast(&f->bcond);
	pthread_mutex_unlock(&f->lock);
	pthread_t *t[3] = { &f->worker, &f->bg, &f->watcher };
	for (int i = 0; i < n; i++)
		pthread_join(*t[i], NULL);
}

static void f_free(struct ledger *l)
{
	struct fleet *f = F(l);
	stop_threads(f, f->threads ? 3 : 0);
	cancel_list(f->q_head);
	cancel_list(f->b_head);
	cancel_list(f->d_head);
	etcd_free(f->e);
	etcd_free(f->eb);
	etcd_free(f->ew);
	if (f->wake_fd >= 0)
		close(f->wake_fd);
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->cond);
	pthread_cond_destroy(&f->bcond);
	free(f->recent);
	free(f->sync_local);
	fleet_urls_free(f->urls);
	free(f->host);
	free(f->prefix);
	free(f->last_error);
	free(f->dead);
	for (size_t i = 0; i < f->n_reported; i++)
		free(f->reported[i]);
	free(f->reported);
	free(f->use);
	free(f);
}

static const struct ledger_ops fleet_ops = {
	.name = "fleet",
	.fleet = true,
	.free = f_free,
	.book = f_book,
	.unbook = f_unbook,
	.sync_bookings = f_sync,
	.tenant_create = f_t_create,
	.tenant_update = f_t_update,
	.tenant_delete = f_t_delete,
	.hosts = f_hosts,
	.evict = f_evict,
	.status = f_status,
	.fd = f_fd,
	.dispatch = f_dispatch,
	.tenant_use = f_tenant_use,
};

void fleet_urls_free(char **urls)
{
	if (!urls)
		return;
	for (char **u = urls; *u; u++)
		free(*u);
	free(urls);
}

int fleet_urls_parse(const char *list, char ***out, size_t *n, struct error **err)
{
	*out = NULL;
	*n = 0;
	char **v = xcalloc(1, sizeof(*v));
	size_t k = 0;
	_cleanup_free_ char *copy = xstrdup(list ? list : "");
	char *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		t = strstrip(t);
		if (!*t)
			continue;
		v = xrealloc(v, (k + 2) * sizeof(*v));
		v[k++] = xstrdup(t);
		v[k] = NULL;
	}
	if (!k) {
		fleet_urls_free(v);
		return error_set(err, EINVAL, "--fleet: no etcd URL given");
	}
	struct etcd *probe = NULL;
	struct etcd_config c = { .urls = (const char *const *)v, .n_urls = k };
	if (etcd_new(&c, &probe, err) < 0) {
		fleet_urls_free(v);
		return error_wrap(err, "--fleet");
	}
	etcd_free(probe);
	*out = v;
	*n = k;
	return 0;
}

int fleet_new(const struct fleet_config *cfg, struct ledger **out, struct error **err)
{
	*out = NULL;
	if (!cfg->host_id || !name_valid(cfg->host_id))
		return error_set(err, EINVAL, "--host-id '%s': a host's name in the fleet is 1..%d "
				 "of [A-Za-z0-9._-], not starting with '.' or '-'",
				 cfg->host_id ? cfg->host_id : "", NAME_MAX_LEN);
	struct fleet *f = xcalloc(1, sizeof(*f));
	f->base.ops = &fleet_ops;
	f->wake_fd = -1;
	pthread_mutex_init(&f->lock, NULL);
	/* the waits' deadlines are CLOCK_MONOTONIC, like every time here */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f->cond, &ca);
	pthread_cond_init(&f->bcond, &ca);
	pthread_condattr_destroy(&ca);
	f->urls = xcalloc(cfg->n_urls + 1, sizeof(*f->urls));
	for (size_t i = 0; i < cfg->n_urls; i++)
		f->urls[i] = xstrdup(cfg->urls[i]);
	f->n_urls = cfg->n_urls;
	f->host = xstrdup(cfg->host_id);
	f->prefix = xstrdup(cfg->prefix && *cfg->prefix ? cfg->prefix : "/vcpud/");
	f->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 2000;
	f->lease_ttl_s = cfg->lease_ttl_s ? cfg->lease_ttl_s : 10;
	f->evict_after_s = cfg->evict_dead_after_s;
	f->on_tenants = cfg->on_tenants;
	f->on_notice = cfg->on_notice;
	f->data = cfg->data;
	struct etcd_config ec = { .urls = cfg->urls, .n_urls = cfg->n_urls, .cacert = cfg->cacert,
				  .cert = cfg->cert, .key = cfg->key };
	if (etcd_new(&ec, &f->e, err) < 0 || etcd_new(&ec, &f->eb, err) < 0 ||
	    etcd_new(&ec, &f->ew, err) < 0) {
		f_free(&f->base);
		return error_wrap(err, "--fleet");
	}
	f->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (f->wake_fd < 0) {
		int e = errno;
		f_free(&f->base);
		return error_set_errno(err, e, "eventfd");
	}
	f->link_since_ms = wall_ms();
	void *(*mains[3])(void *) = { worker_main, bg_main, watcher_main };
	pthread_t *t[3] = { &f->worker, &f->bg, &f->watcher };
	for (int i = 0; i < 3; i++) {
		if (pthread_create(t[i], NULL, mains[i], f) != 0) {
			stop_threads(f, i);
			f_free(&f->base);
			return error_set(err, EAGAIN, "fleet: cannot start its threads");
		}
	}
	f->threads = true;
	*out = &f->base;
	return 0;
}
