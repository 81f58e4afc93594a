/* libvirt.c - VM discovery through libvirt (see vcpud/libvirt.h).
 *
 * Three parts: pure parsers (tenant metadata, QMP query-cpus-fast, the Tgid
 * of /proc/<tid>/status); a process-wide event thread running libvirt's
 * default event loop, whose callbacks only note what changed and write an
 * eventfd; and the backend the daemon's loop drives: a cache of the active
 * domains keyed by (UUID, domain id), refreshed from libvirt only where an
 * event or the /proc view of the vCPU threads says something changed, and
 * kept (flagged stale) while libvirtd is away. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#include <jansson.h>
#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

#include "vcpud/discover.h"
#include "vcpud/libvirt.h"
#include "vcpud/log.h"
#include "vcpud/util.h"

/* libvirt is not linked: it is loaded (dlopen) the first time a backend
 * needs it, so that a vcpud run with --no-libvirt (a host of Firecracker,
 * cloud-hypervisor or plain QEMU VMs) maps none of libvirt's libraries
 * (glib, gnutls, ICU, libxml2, libssh, Kerberos, ...: about 7 MiB of
 * pages). The functions used, looked up by name; their types are the
 * headers'. */
#define LV_FUNCS(X) \
	X(virConnectClose) \
	X(virConnectDomainEventDeregisterAny) \
	X(virConnectDomainEventRegisterAny) \
	X(virConnectIsAlive) \
	X(virConnectListAllDomains) \
	X(virConnectOpen) \
	X(virConnectRegisterCloseCallback) \
	X(virConnectSetKeepAlive) \
	X(virConnectUnregisterCloseCallback) \
	X(virDomainFree) \
	X(virDomainGetID) \
	X(virDomainGetInfo) \
	X(virDomainGetMetadata) \
	X(virDomainGetName) \
	X(virDomainGetState) \
	X(virDomainGetUUIDString) \
	X(virDomainListGetStats) \
	X(virDomainLookupByName) \
	X(virDomainStatsRecordListFree) \
	X(virEventAddTimeout) \
	X(virEventRegisterDefaultImpl) \
	X(virEventRemoveTimeout) \
	X(virEventRunDefaultImpl) \
	X(virEventUpdateTimeout) \
	X(virGetLastErrorCode) \
	X(virGetLastErrorMessage) \
	X(virInitialize) \
	X(virSetErrorFunc)
#define LV_QEMU_FUNCS(X) \
	X(virDomainQemuMonitorCommand)
#define LV_PTR(f) __typeof__(f) *f;
static struct lv_api {
	LV_FUNCS(LV_PTR)
	LV_QEMU_FUNCS(LV_PTR)
} lv;
static char lv_load_error[256];

#define LV_SYM(f) \
	if (!(lv.f = (__typeof__(f) *)dlsym(h, #f))) { \
		snprintf(lv_load_error, sizeof(lv_load_error), "%s: no %s", lib, #f); \
		return -1; \
	}

static void *lv_open(const char *lib)
{
	void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		snprintf(lv_load_error, sizeof(lv_load_error), "cannot load %s: %s (Debian "
			 "package libvirt0)", lib, dlerror());
	return h;
}

/* dlopen() libvirt and libvirt-qemu, every function or none (once, from
 * lv_init()). */
static int lv_load(void)
{
	const char *lib = "libvirt.so.0";
	void *h = lv_open(lib);
	if (!h)
		return -1;
	LV_FUNCS(LV_SYM)
	lib = "libvirt-qemu.so.0";
	if (!(h = lv_open(lib)))
		return -1;
	LV_QEMU_FUNCS(LV_SYM)
	return 0;
}

/* --- the domain model ------------------------------------------------------ */

void libvirt_domain_list_free(struct libvirt_domain *doms, size_t n)
{
	if (!doms)
		return;
	for (size_t i = 0; i < n; i++)
		free(doms[i].threads);
	free(doms);
}

static void domain_copy(struct libvirt_domain *dst, const struct libvirt_domain *src)
{
	*dst = *src;
	dst->threads = NULL;
	if (src->n_threads) {
		dst->threads = xmalloc(src->n_threads * sizeof(*src->threads));
		memcpy(dst->threads, src->threads, src->n_threads * sizeof(*src->threads));
	}
}

void libvirt_domain_to_vm(const struct libvirt_domain *d, struct vm *v)
{
	memset(v, 0, sizeof(*v));
	snprintf(v->name, sizeof(v->name), "%s", d->name);
	snprintf(v->tenant, sizeof(v->tenant), "%s", d->tenant);
	snprintf(v->uuid, sizeof(v->uuid), "%s", d->uuid);
	v->pid = d->pid;
	v->vcpus = d->vcpus;
	v->memory_set = d->memory_bytes > 0;
	v->memory_bytes = d->memory_bytes > 0 ? d->memory_bytes : 0;
	v->state = d->state;
	v->source = VM_SOURCE_LIBVIRT;
	if (d->n_threads) {
		v->threads = xmalloc(d->n_threads * sizeof(*d->threads));
		memcpy(v->threads, d->threads, d->n_threads * sizeof(*d->threads));
		v->n_threads = d->n_threads;
	}
}

/* --- pure parsers ------------------------------------------------------------ */

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_name_start(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_name_char(char c)
{
	return is_name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == ':';
}

static const char *skip_space(const char *p)
{
	while (is_space(*p))
		p++;
	return p;
}

/* An XML name at p; its length (0: none). */
static size_t xml_name(const char *p)
{
	if (!is_name_start(*p))
		return 0;
	size_t n = 1;
	while (is_name_char(p[n]))
		n++;
	return n;
}

int libvirt_tenant_parse(const char *xml, char *tenant, struct error **err)
{
	if (!xml)
		return error_set(err, EINVAL, "no tenant metadata");
	const char *p = skip_space(xml);
	if (*p != '<')
		return error_set(err, EINVAL, "tenant metadata is not an XML element");
	p++;
	size_t qlen = xml_name(p);
	if (qlen == 0)
		return error_set(err, EINVAL, "tenant metadata is not an XML element");
	const char *qname = p;
	const char *local = memrchr(qname, ':', qlen);
	local = local ? local + 1 : qname;
	size_t llen = qlen - (size_t)(local - qname);
	if (llen != 6 || memcmp(local, "tenant", 6) != 0)
		return error_set(err, EINVAL, "metadata element <%.*s> is not <tenant>", (int)qlen,
				 qname);
	p += qlen;
	/* attributes: name="value" or name='value' */
	for (;;) {
		const char *q = skip_space(p);
		if (*q == '>' || (q[0] == '/' && q[1] == '>')) {
			p = q;
			break;
		}
		if (q == p)
			return error_set(err, EINVAL, "malformed <tenant> element");
		size_t alen = xml_name(q);
		if (alen == 0)
			return error_set(err, EINVAL, "malformed attribute in <tenant>");
		q = skip_space(q + alen);
		if (*q != '=')
			return error_set(err, EINVAL, "malformed attribute in <tenant>");
		q = skip_space(q + 1);
		char quote = *q;
		if (quote != '"' && quote != '\'')
			return error_set(err, EINVAL, "malformed attribute in <tenant>");
		const char *end = strchr(q + 1, quote);
		if (!end || memchr(q + 1, '<', (size_t)(end - q - 1)))
			return error_set(err, EINVAL, "malformed attribute in <tenant>");
		p = end + 1;
	}
	if (*p == '/')
		return error_set(err, EINVAL, "the tenant element is empty");
	p++; /* '>' */
	const char *text = p;
	const char *lt = strchr(text, '<');
	if (!lt)
		return error_set(err, EINVAL, "the tenant element is not closed");
	if (lt[1] != '/')
		return error_set(err, EINVAL, "the tenant element has child elements");
	if (memchr(text, '&', (size_t)(lt - text)))
		return error_set(err, EINVAL, "the tenant name holds an XML entity");
	const char *t0 = text, *t1 = lt;
	while (t0 < t1 && is_space(*t0))
		t0++;
	while (t1 > t0 && is_space(t1[-1]))
		t1--;
	p = lt + 2;
	if (strncmp(p, qname, qlen) != 0 || is_name_char(p[qlen]))
		return error_set(err, EINVAL, "the tenant element is not closed");
	p = skip_space(p + qlen);
	if (*p != '>')
		return error_set(err, EINVAL, "the tenant element is not closed");
	p = skip_space(p + 1);
	if (*p)
		return error_set(err, EINVAL, "text after the tenant element");
	size_t len = (size_t)(t1 - t0);
	if (len == 0)
		return error_set(err, EINVAL, "the tenant element is empty");
	char name[NAME_MAX_LEN + 1];
	if (len > NAME_MAX_LEN)
		return error_set(err, EINVAL, "the tenant name is longer than %d characters",
				 NAME_MAX_LEN);
	memcpy(name, t0, len);
	name[len] = '\0';
	if (!name_valid(name)) {
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] >= 0x7f)
				return error_set(err, EINVAL, "the tenant name has characters "
						 "outside [A-Za-z0-9_.-]");
		return error_set(err, EINVAL, "'%s' is not a valid tenant name "
				 "([A-Za-z0-9_.-]{1,64}, not . or ..)", name);
	}
	memcpy(tenant, name, len + 1);
	return 0;
}

static int cmp_vcpu_index(const void *a, const void *b)
{
	const struct vm_vcpu *x = a, *y = b;
	return (x->index > y->index) - (x->index < y->index);
}

int libvirt_qmp_cpus_parse(const char *reply, struct vm_vcpu **out, size_t *n,
			   struct error **err)
{
	if (!reply)
		return error_set(err, EINVAL, "no QMP reply");
	json_error_t je;
	json_t *root = json_loads(reply, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return error_set(err, EINVAL, "QMP reply is not JSON: %s", je.text);
	int rc = -1;
	struct vm_vcpu *v = NULL;
	json_t *qerr = json_object_get(root, "error");
	if (qerr) {
		const char *desc = json_string_value(json_object_get(qerr, "desc"));
		error_set(err, EIO, "QMP error: %s", desc ? desc : "(no description)");
		goto out;
	}
	json_t *ret = json_object_get(root, "return");
	if (!json_is_array(ret)) {
		error_set(err, EINVAL, "QMP reply has no \"return\" array");
		goto out;
	}
	size_t cnt = json_array_size(ret);
	if (cnt == 0) {
		error_set(err, EINVAL, "QMP reply lists no vCPUs");
		goto out;
	}
	if (cnt > VM_VCPUS_MAX) {
		error_set(err, EINVAL, "QMP reply lists %zu vCPUs (at most %d)", cnt, VM_VCPUS_MAX);
		goto out;
	}
	v = xcalloc(cnt, sizeof(*v));
	for (size_t i = 0; i < cnt; i++) {
		json_t *cpu = json_array_get(ret, i);
		json_t *ji = json_object_get(cpu, "cpu-index");
		json_t *jt = json_object_get(cpu, "thread-id");
		if (!json_is_integer(ji) || !json_is_integer(jt)) {
			error_set(err, EINVAL, "QMP vCPU entry %zu lacks an integer cpu-index or "
				  "thread-id", i);
			goto out;
		}
		json_int_t idx = json_integer_value(ji), tid = json_integer_value(jt);
		if (idx < 0 || idx >= VM_VCPUS_MAX) {
			error_set(err, EINVAL, "QMP cpu-index %" JSON_INTEGER_FORMAT
				  " is out of range (0..%d)", idx, VM_VCPUS_MAX - 1);
			goto out;
		}
		if (tid < 1 || tid > INT_MAX) {
			error_set(err, EINVAL, "QMP thread-id %" JSON_INTEGER_FORMAT
				  " of vCPU %" JSON_INTEGER_FORMAT " is invalid", tid, idx);
			goto out;
		}
		v[i].index = (unsigned)idx;
		v[i].tid = (pid_t)tid;
	}
	qsort(v, cnt, sizeof(*v), cmp_vcpu_index);
	for (size_t i = 1; i < cnt; i++)
		if (v[i].index == v[i - 1].index) {
			error_set(err, EINVAL, "QMP reply lists vCPU %u twice", v[i].index);
			goto out;
		}
	*out = steal_ptr(&v);
	*n = cnt;
	rc = 0;
out:
	free(v);
	json_decref(root);
	return rc;
}

int libvirt_status_tgid_parse(const char *status, pid_t *tgid, struct error **err)
{
	const char *p = status;
	while (p && *p) {
		if (strncmp(p, "Tgid:", 5) == 0) {
			p += 5;
			while (*p == ' ' || *p == '\t')
				p++;
			const char *e = p;
			while (*e >= '0' && *e <= '9')
				e++;
			if (e == p || (*e && *e != '\n') || e - p > 10)
				break;
			char buf[16];
			memcpy(buf, p, (size_t)(e - p));
			buf[e - p] = '\0';
			uint64_t v;
			if (parse_u64(buf, 1, INT_MAX, &v, NULL) < 0)
				break;
			*tgid = (pid_t)v;
			return 0;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return error_set(err, EINVAL, "no valid Tgid: line in the thread's status");
}

/* --- the process-wide event loop --------------------------------------------- */

/* libvirt allows one event implementation per process, registered before
 * the first connection; the default one is run by one thread. */
static pthread_once_t lv_once = PTHREAD_ONCE_INIT;
static int lv_init_rc = -1;
static pthread_mutex_t lv_loop_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned lv_loop_users;
static pthread_t lv_loop_thread;
static int lv_wake_timer = -1;
static atomic_bool lv_loop_quit;

/* libvirt prints every error to stderr by default; vcpud reports the ones
 * that matter itself (virGetLastErrorMessage, per thread). */
static void lv_silent_error(void *opaque, virErrorPtr e)
{
	(void)opaque;
	(void)e;
}

static bool lv_loaded;

static void lv_init(void)
{
	if (lv_load() < 0)
		return;
	lv_loaded = true;
	if (lv.virInitialize() < 0)
		return;
	lv.virSetErrorFunc(NULL, lv_silent_error);
	lv_init_rc = lv.virEventRegisterDefaultImpl();
}

static void *lv_loop_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&lv_loop_quit))
		if (lv.virEventRunDefaultImpl() < 0)
			usleep(100000); /* never spin on a broken loop */
	return NULL;
}

static void lv_wake_cb(int timer, void *opaque)
{
	(void)opaque;
	lv.virEventUpdateTimeout(timer, -1);
}

static int lv_loop_acquire(struct error **err)
{
	pthread_once(&lv_once, lv_init);
	if (!lv_loaded)
		return error_set(err, ENOENT, "%s", lv_load_error);
	if (lv_init_rc < 0)
		return error_set(err, EIO, "cannot initialise libvirt's event loop: %s",
				 lv.virGetLastErrorMessage());
	pthread_mutex_lock(&lv_loop_lock);
	if (lv_loop_users == 0) {
		atomic_store(&lv_loop_quit, false);
		lv_wake_timer = lv.virEventAddTimeout(-1, lv_wake_cb, NULL, NULL);
		if (lv_wake_timer < 0) {
			pthread_mutex_unlock(&lv_loop_lock);
			return error_set(err, EIO, "cannot add a libvirt event timer: %s",
					 lv.virGetLastErrorMessage());
		}
		/* the thread takes no signals: the daemon's loop handles them */
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		int rc = pthread_create(&lv_loop_thread, NULL, lv_loop_main, NULL);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (rc != 0) {
			lv.virEventRemoveTimeout(lv_wake_timer);
			lv_wake_timer = -1;
			pthread_mutex_unlock(&lv_loop_lock);
			return error_set_errno(err, rc, "cannot start the libvirt event thread");
		}
	}
	lv_loop_users++;
	pthread_mutex_unlock(&lv_loop_lock);
	return 0;
}

static void lv_loop_release(void)
{
	pthread_mutex_lock(&lv_loop_lock);
	if (lv_loop_users > 0 && --lv_loop_users == 0) {
		atomic_store(&lv_loop_quit, true);
		lv.virEventUpdateTimeout(lv_wake_timer, 0); /* wakes the thread */
		pthread_join(lv_loop_thread, NULL);
		lv.virEventRemoveTimeout(lv_wake_timer);
		lv_wake_timer = -1;
	}
	pthread_mutex_unlock(&lv_loop_lock);
}

/* --- what the event thread hands to the main thread ------------------------- */

#define LV_DIRTY_MAX 64

/* Shared by the backend and libvirt's callbacks (which may be freed after
 * the backend: libvirt calls their free function when it is done). */
struct lv_notify {
	atomic_int refs;
	int efd;
	atomic_bool closed;       /* the connection closed under us */
	atomic_uint_fast64_t events;
	pthread_mutex_t lock;     /* guards the dirty set */
	char dirty[LV_DIRTY_MAX][VIR_UUID_STRING_BUFLEN];
	size_t n_dirty;
	bool all_dirty;           /* the set overflowed */
};

static struct lv_notify *notify_new(struct error **err)
{
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (efd < 0)
		return error_set_errno(err, errno, "cannot create an eventfd"), NULL;
	struct lv_notify *nf = xcalloc(1, sizeof(*nf));
	atomic_init(&nf->refs, 1);
	nf->efd = efd;
	pthread_mutex_init(&nf->lock, NULL);
	return nf;
}

static struct lv_notify *notify_ref(struct lv_notify *nf)
{
	atomic_fetch_add(&nf->refs, 1);
	return nf;
}

static void notify_unref(void *opaque)
{
	struct lv_notify *nf = opaque;
	if (atomic_fetch_sub(&nf->refs, 1) != 1)
		return;
	close(nf->efd);
	pthread_mutex_destroy(&nf->lock);
	free(nf);
}

static void notify_kick(struct lv_notify *nf)
{
	atomic_fetch_add(&nf->events, 1);
	uint64_t one = 1;
	ssize_t r = write(nf->efd, &one, sizeof(one));
	(void)r; /* EAGAIN: the counter is saturated, still readable */
}

/* Event thread: domain `dom` changed. */
static void notify_domain(struct lv_notify *nf, virDomainPtr dom)
{
	char uuid[VIR_UUID_STRING_BUFLEN];
	pthread_mutex_lock(&nf->lock);
	if (lv.virDomainGetUUIDString(dom, uuid) < 0 || nf->n_dirty == LV_DIRTY_MAX) {
		nf->all_dirty = true;
	} else {
		bool found = false;
		for (size_t i = 0; i < nf->n_dirty && !found; i++)
			found = strcmp(nf->dirty[i], uuid) == 0;
		if (!found)
			memcpy(nf->dirty[nf->n_dirty++], uuid, sizeof(uuid));
	}
	pthread_mutex_unlock(&nf->lock);
	notify_kick(nf);
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail,
			void *opaque)
{
	(void)conn;
	(void)event;
	(void)detail;
	notify_domain(opaque, dom);
	return 0;
}

static void on_metadata(virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri,
			void *opaque)
{
	(void)conn;
	if (type == VIR_DOMAIN_METADATA_ELEMENT && nsuri && strcmp(nsuri, LIBVIRT_METADATA_NS))
		return; /* someone else's namespace */
	notify_domain(opaque, dom);
}

static void on_device(virConnectPtr conn, virDomainPtr dom, const char *alias, void *opaque)
{
	(void)conn;
	(void)alias;
	notify_domain(opaque, dom);
}

static void on_close(virConnectPtr conn, int reason, void *opaque)
{
	(void)conn;
	(void)reason;
	struct lv_notify *nf = opaque;
	atomic_store(&nf->closed, true);
	notify_kick(nf);
}

/* GCC warns on casts between function types unless through void (*)(void). */
#define LV_CALLBACK(f) ((virConnectDomainEventGenericCallback)(void (*)(void))(f))

static const struct {
	int id;
	virConnectDomainEventGenericCallback cb;
	const char *what;
} lv_events[] = {
	{ VIR_DOMAIN_EVENT_ID_LIFECYCLE, LV_CALLBACK(on_lifecycle), "lifecycle" },
	{ VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, LV_CALLBACK(on_metadata), "metadata-change" },
	{ VIR_DOMAIN_EVENT_ID_DEVICE_ADDED, LV_CALLBACK(on_device), "device-added" },
	{ VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, LV_CALLBACK(on_device), "device-removed" },
};
#define LV_N_EVENTS ARRAY_SIZE(lv_events)

/* --- the backend --------------------------------------------------------------- */

/* One active domain as last seen. */
struct lv_entry {
	struct libvirt_domain d;  /* what scans report */
	bool skip;                /* invalid name: never reported */
	bool seen;                /* in this scan's listing */
	bool info_ok;             /* state, vCPU count, memory are current */
	bool meta_ok;             /* tenant is current */
	bool meta_seen;           /* tenant read at least once */
	bool vcpus_ok;            /* pid and threads are current */
	bool starting;            /* paused by libvirt while it starts QEMU */
	bool warned_qmp, warned_meta, warned_info, warned_pid;
	/* the /proc view of the vCPU threads when QMP was last asked: a change
	 * (hot-plug, unplug) makes the next scan ask again */
	struct vm_vcpu *proc_sig;
	size_t n_proc_sig;
	bool proc_ok;             /* proc_sig could be read */
};

struct libvirt_backend {
	char *uri;
	char *host_root;
	virConnectPtr conn;
	struct lv_notify *notify;
	bool loop_held;
	int cb_ids[LV_N_EVENTS];
	bool close_registered;
	bool events_ok;           /* lifecycle events arrive: caching is safe */
	bool no_qmp;              /* the driver has no QEMU monitor (test) */
	/* reconnection */
	bool ever_connected;
	bool down_logged;
	int64_t down_since_ns;
	int64_t next_try_ns;
	unsigned backoff_ms, backoff_min_ms, backoff_max_ms;
	char *last_list_error;
	char *error;              /* why libvirt is not answering; NULL while it is */
	/* defined, shut-off domains with valid names, as of the last fresh scan */
	char **inactive;
	size_t n_inactive;
	/* the libvirt call in progress, readable from any thread (a watcher
	 * decides from it that libvirtd hangs): its name and monotonic start,
	 * 0 when none */
	_Atomic(const char *) call_name;
	_Atomic int64_t call_ns;
	libvirt_call_hook hook;   /* tests: runs before every call */
	void *hook_data;
	/* the cache, in no particular order */
	struct lv_entry *ents;
	size_t n_ents;
	struct libvirt_backend_stats st;
};

static void entry_clear(struct lv_entry *e)
{
	free(e->d.threads);
	free(e->proc_sig);
	memset(e, 0, sizeof(*e));
}

static void entries_invalidate(struct libvirt_backend *b)
{
	for (size_t i = 0; i < b->n_ents; i++) {
		b->ents[i].info_ok = false;
		b->ents[i].meta_ok = false;
		b->ents[i].vcpus_ok = false;
	}
}

/* Around every libvirt call: what is being waited for, since when (read by
 * libvirt_backend_call() from another thread); the test hook runs after the
 * mark, so a hook that blocks looks like a libvirtd that does not answer. */
static void lv_call(struct libvirt_backend *b, const char *call)
{
	atomic_store(&b->call_name, call);
	atomic_store(&b->call_ns, now_mono_ns());
	if (b->hook)
		b->hook(b->hook_data, call);
}

static void lv_done(struct libvirt_backend *b)
{
	atomic_store(&b->call_ns, 0);
}

static void lv_set_error(struct libvirt_backend *b, char *msg)
{
	free(b->error);
	b->error = msg;
}

int libvirt_backend_new(const char *uri, struct libvirt_backend **out, struct error **err)
{
	if (!uri)
		uri = LIBVIRT_DEFAULT_URI;
	if (!*uri)
		return error_set(err, EINVAL, "the libvirt URI is empty");
	struct lv_notify *nf = notify_new(err);
	if (!nf)
		return -1;
	struct libvirt_backend *b = xcalloc(1, sizeof(*b));
	b->uri = xstrdup(uri);
	b->host_root = xstrdup("/");
	b->notify = nf;
	for (size_t i = 0; i < LV_N_EVENTS; i++)
		b->cb_ids[i] = -1;
	b->backoff_min_ms = 1000;
	b->backoff_max_ms = 30000;
	b->backoff_ms = b->backoff_min_ms;
	*out = b;
	return 0;
}

void libvirt_backend_set_host_root(struct libvirt_backend *b, const char *root)
{
	free(b->host_root);
	b->host_root = xstrdup(root && *root ? root : "/");
}

void libvirt_backend_set_backoff(struct libvirt_backend *b, unsigned min_ms, unsigned max_ms)
{
	b->backoff_min_ms = min_ms ? min_ms : 1;
	b->backoff_max_ms = max_ms > b->backoff_min_ms ? max_ms : b->backoff_min_ms;
	b->backoff_ms = b->backoff_min_ms;
}

int libvirt_backend_fd(const struct libvirt_backend *b)
{
	return b->notify->efd;
}

bool libvirt_backend_dispatch(struct libvirt_backend *b)
{
	uint64_t v = 0;
	return read(b->notify->efd, &v, sizeof(v)) == (ssize_t)sizeof(v) && v > 0;
}

bool libvirt_backend_connected(const struct libvirt_backend *b)
{
	return b->conn != NULL;
}

const char *libvirt_backend_uri(const struct libvirt_backend *b)
{
	return b->uri;
}

void libvirt_backend_get_stats(const struct libvirt_backend *b, struct libvirt_backend_stats *st)
{
	*st = b->st;
	st->events = atomic_load(&b->notify->events);
}

void libvirt_backend_set_call_hook(struct libvirt_backend *b, libvirt_call_hook hook, void *data)
{
	b->hook = hook;
	b->hook_data = data;
}

const char *libvirt_backend_call(const struct libvirt_backend *b, int64_t *since_ns)
{
	/* the name first: a call that ends meanwhile reads as 0 below */
	const char *name = atomic_load(&b->call_name);
	int64_t ns = atomic_load(&b->call_ns);
	*since_ns = ns;
	return ns ? name : NULL;
}

const char *libvirt_backend_error(const struct libvirt_backend *b)
{
	return b->error;
}

const char *const *libvirt_backend_inactive(const struct libvirt_backend *b, size_t *n)
{
	*n = b->n_inactive;
	return (const char *const *)b->inactive;
}

/* Drop the connection (events first, then the close callback, then the
 * connection itself). */
static void lv_teardown(struct libvirt_backend *b)
{
	if (!b->conn)
		return;
	for (size_t i = 0; i < LV_N_EVENTS; i++) {
		if (b->cb_ids[i] >= 0) {
			lv_call(b, "virConnectDomainEventDeregisterAny");
			lv.virConnectDomainEventDeregisterAny(b->conn, b->cb_ids[i]);
			lv_done(b);
		}
		b->cb_ids[i] = -1;
	}
	if (b->close_registered) {
		lv_call(b, "virConnectUnregisterCloseCallback");
		lv.virConnectUnregisterCloseCallback(b->conn, on_close);
		lv_done(b);
		b->close_registered = false;
		notify_unref(b->notify); /* the close callback's reference */
	}
	lv_call(b, "virConnectClose");
	lv.virConnectClose(b->conn);
	lv_done(b);
	b->conn = NULL;
	b->events_ok = false;
}

void libvirt_backend_disconnect(struct libvirt_backend *b)
{
	if (!b)
		return;
	lv_teardown(b);
	if (b->loop_held)
		lv_loop_release();
	b->loop_held = false;
}

static void inactive_clear(struct libvirt_backend *b)
{
	for (size_t i = 0; i < b->n_inactive; i++)
		free(b->inactive[i]);
	free(b->inactive);
	b->inactive = NULL;
	b->n_inactive = 0;
}

void libvirt_backend_free(struct libvirt_backend *b)
{
	if (!b)
		return;
	libvirt_backend_disconnect(b);
	for (size_t i = 0; i < b->n_ents; i++)
		entry_clear(&b->ents[i]);
	free(b->ents);
	inactive_clear(b);
	free(b->error);
	free(b->last_list_error);
	free(b->uri);
	free(b->host_root);
	notify_unref(b->notify);
	free(b);
}

/* The connection is gone: say so once, keep the cache, retry at once and
 * then with back-off. */
static void lv_lost(struct libvirt_backend *b, const char *why)
{
	b->st.disconnects++;
	log_warn("libvirt: lost the connection to %s (%s); keeping the %zu known domains as "
		 "they are and reconnecting with back-off", b->uri, why, b->n_ents);
	b->down_logged = true;
	b->down_since_ns = now_mono_ns();
	lv_set_error(b, xasprintf("lost the connection to %s: %s", b->uri, why));
	lv_teardown(b);
	entries_invalidate(b);
	b->backoff_ms = b->backoff_min_ms;
	b->next_try_ns = 0;
}

static void lv_register(struct libvirt_backend *b)
{
	/* keepalive makes a hung libvirtd look like a closed connection (after
	 * about interval x (count + 1) s); local drivers do not support it */
	lv_call(b, "virConnectSetKeepAlive");
	lv.virConnectSetKeepAlive(b->conn, 5, 3);
	lv_done(b);
	notify_ref(b->notify);
	lv_call(b, "virConnectRegisterCloseCallback");
	if (lv.virConnectRegisterCloseCallback(b->conn, on_close, b->notify, NULL) == 0)
		b->close_registered = true;
	else
		notify_unref(b->notify);
	lv_done(b);
	b->events_ok = true;
	for (size_t i = 0; i < LV_N_EVENTS; i++) {
		notify_ref(b->notify);
		lv_call(b, "virConnectDomainEventRegisterAny");
		b->cb_ids[i] = lv.virConnectDomainEventRegisterAny(b->conn, NULL, lv_events[i].id,
								lv_events[i].cb, b->notify,
								notify_unref);
		lv_done(b);
		if (b->cb_ids[i] < 0) {
			/* libvirt does not call the free function on failure */
			notify_unref(b->notify);
			log_debug("libvirt: no %s events from %s: %s", lv_events[i].what, b->uri,
				  lv.virGetLastErrorMessage());
			if (lv_events[i].id == VIR_DOMAIN_EVENT_ID_LIFECYCLE)
				b->events_ok = false;
		}
	}
	if (!b->events_ok)
		log_warn("libvirt: %s sends no domain events; re-reading every domain at each "
			 "scan", b->uri);
}

/* Try to (re)connect when the back-off allows. 0 connected, -1 not. */
static int lv_connect(struct libvirt_backend *b)
{
	if (b->conn)
		return 0;
	int64_t now = now_mono_ns();
	if (now < b->next_try_ns)
		return -1;
	if (!b->loop_held) {
		_cleanup_error_ struct error *e = NULL;
		if (lv_loop_acquire(&e) < 0) {
			log_error("libvirt: %s", e->msg);
			b->next_try_ns = now + (int64_t)b->backoff_max_ms * 1000000;
			return -1;
		}
		b->loop_held = true;
	}
	b->st.connect_attempts++;
	atomic_store(&b->notify->closed, false);
	lv_call(b, "virConnectOpen");
	b->conn = lv.virConnectOpen(b->uri);
	lv_done(b);
	if (!b->conn) {
		const char *msg = lv.virGetLastErrorMessage();
		lv_set_error(b, xasprintf("cannot connect to %s: %s", b->uri, msg));
		if (!b->down_logged) {
			log_warn("libvirt: cannot connect to %s: %s; VMs already placed stay "
				 "placed, retrying with back-off (%u ms .. %u ms)", b->uri, msg,
				 b->backoff_min_ms, b->backoff_max_ms);
			b->down_logged = true;
			b->down_since_ns = now;
		} else {
			log_debug("libvirt: still cannot connect to %s: %s (next try in %u ms)",
				  b->uri, msg, b->backoff_ms);
		}
		b->next_try_ns = now + (int64_t)b->backoff_ms * 1000000;
		b->backoff_ms = b->backoff_ms > b->backoff_max_ms / 2 ? b->backoff_max_ms
								      : b->backoff_ms * 2;
		return -1;
	}
	lv_register(b);
	b->st.connects++;
	b->no_qmp = false;
	if (b->down_logged && b->ever_connected)
		log_info("libvirt: reconnected to %s after %.1f s", b->uri,
			 (double)(now_mono_ns() - b->down_since_ns) / 1e9);
	else
		log_info("libvirt: connected to %s", b->uri);
	b->down_logged = false;
	b->ever_connected = true;
	b->backoff_ms = b->backoff_min_ms;
	free(b->last_list_error);
	b->last_list_error = NULL;
	entries_invalidate(b);
	return 0;
}

static struct lv_entry *entry_find(struct libvirt_backend *b, const char *uuid)
{
	for (size_t i = 0; i < b->n_ents; i++)
		if (strcmp(b->ents[i].d.uuid, uuid) == 0)
			return &b->ents[i];
	return NULL;
}

/* Apply the event thread's notes: the named domains are re-read. */
static void lv_take_dirty(struct libvirt_backend *b)
{
	struct lv_notify *nf = b->notify;
	pthread_mutex_lock(&nf->lock);
	if (nf->all_dirty) {
		entries_invalidate(b);
	} else {
		for (size_t i = 0; i < nf->n_dirty; i++) {
			struct lv_entry *e = entry_find(b, nf->dirty[i]);
			if (e)
				e->info_ok = e->meta_ok = e->vcpus_ok = false;
		}
	}
	nf->n_dirty = 0;
	nf->all_dirty = false;
	pthread_mutex_unlock(&nf->lock);
}

static enum vm_state map_state(int st)
{
	switch (st) {
	case VIR_DOMAIN_RUNNING:
	case VIR_DOMAIN_BLOCKED:
	case VIR_DOMAIN_SHUTDOWN: /* shutting down: still running */
		return VM_STATE_RUNNING;
	case VIR_DOMAIN_PAUSED:
	case VIR_DOMAIN_PMSUSPENDED:
		return VM_STATE_PAUSED;
	case VIR_DOMAIN_SHUTOFF:
		return VM_STATE_STOPPED;
	case VIR_DOMAIN_CRASHED:
		return VM_STATE_CRASHED;
	default:
		return VM_STATE_UNKNOWN;
	}
}

static void lv_read_info(struct libvirt_backend *b, struct lv_entry *e, virDomainPtr dom)
{
	int st = 0, reason = 0;
	virDomainInfo info;
	lv_call(b, "virDomainGetState");
	int rc = lv.virDomainGetState(dom, &st, &reason, 0);
	lv_done(b);
	if (rc == 0) {
		lv_call(b, "virDomainGetInfo");
		rc = lv.virDomainGetInfo(dom, &info);
		lv_done(b);
	}
	if (rc < 0) {
		if (!e->warned_info)
			log_warn("libvirt: domain %s: cannot read its state: %s", e->d.name,
				 lv.virGetLastErrorMessage());
		e->warned_info = true;
		return;
	}
	e->d.state = map_state(st);
	e->starting = st == VIR_DOMAIN_PAUSED && reason == VIR_DOMAIN_PAUSED_STARTING_UP;
	e->d.vcpus = info.nrVirtCpu;
	e->d.memory_bytes = info.maxMem > 0 && info.maxMem < (unsigned long)(INT64_MAX / 1024)
				    ? (int64_t)info.maxMem * 1024 : 0;
	/* re-read while starting: QMP waits for the start job otherwise */
	e->info_ok = !e->starting;
}

static void lv_read_tenant(struct libvirt_backend *b, struct lv_entry *e, virDomainPtr dom)
{
	b->st.metadata_reads++;
	lv_call(b, "virDomainGetMetadata");
	_cleanup_free_ char *xml = lv.virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
							 LIBVIRT_METADATA_NS,
							 VIR_DOMAIN_AFFECT_LIVE);
	lv_done(b);
	if (!xml) {
		if (lv.virGetLastErrorCode() == VIR_ERR_NO_DOMAIN_METADATA) {
			if (!e->meta_seen || e->d.tenant[0])
				log_info("libvirt: domain %s: no vcpud tenant, unmanaged", e->d.name);
			e->d.tenant[0] = '\0';
			e->meta_ok = true;
			e->meta_seen = true;
			return;
		}
		/* keep what we knew; try again at the next scan */
		if (!e->warned_meta)
			log_warn("libvirt: domain %s: cannot read its %s metadata: %s", e->d.name,
				 LIBVIRT_METADATA_NS, lv.virGetLastErrorMessage());
		e->warned_meta = true;
		return;
	}
	_cleanup_error_ struct error *err = NULL;
	char tenant[NAME_MAX_LEN + 1];
	if (libvirt_tenant_parse(xml, tenant, &err) < 0) {
		if (!e->warned_meta)
			log_warn("libvirt: domain %s: %s; leaving it unmanaged", e->d.name,
				 err->msg);
		e->warned_meta = true;
		tenant[0] = '\0';
	} else {
		e->warned_meta = false;
	}
	if ((!e->meta_seen || strcmp(tenant, e->d.tenant) != 0) && !(e->warned_meta && !tenant[0])) {
		if (tenant[0])
			log_info("libvirt: domain %s: tenant %s", e->d.name, tenant);
		else
			log_info("libvirt: domain %s: no vcpud tenant, unmanaged", e->d.name);
	}
	memcpy(e->d.tenant, tenant, sizeof(tenant));
	e->meta_ok = true;
	e->meta_seen = true;
}

/* Read a small file under the host root; -1 with errno. */
static int read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t r = read(fd, buf, size - 1);
	int e = errno;
	close(fd);
	if (r < 0) {
		errno = e;
		return -1;
	}
	buf[r] = '\0';
	return 0;
}

static int tid_tgid(const char *root, pid_t tid, pid_t *tgid, struct error **err)
{
	char tidbuf[16];
	snprintf(tidbuf, sizeof(tidbuf), "%d", (int)tid);
	_cleanup_free_ char *path = path_join(root, "proc", tidbuf, "status", NULL);
	char buf[4096];
	if (read_small(path, buf, sizeof(buf)) < 0)
		return error_set_errno(err, errno, "cannot read %s", path);
	if (libvirt_status_tgid_parse(buf, tgid, err) < 0)
		return error_wrap(err, "%s", path);
	return 0;
}

/* The /proc view of pid's vCPU threads; ENOENT (none named) is an empty
 * list, other failures -1. */
static int proc_view(const struct libvirt_backend *b, pid_t pid, struct vm_vcpu **out,
		     size_t *n, struct error **err)
{
	*out = NULL;
	*n = 0;
	_cleanup_error_ struct error *e = NULL;
	if (proc_vm_vcpus(b->host_root, pid, out, n, &e) == 0)
		return 0;
	if (e->code == ENOENT)
		return 0;
	*err = steal_ptr(&e);
	return -1;
}

/* Ask QEMU (through libvirt) for the vCPU thread ids; the process is their
 * Tgid; cross-check the names in /proc ("CPU n/KVM") and prefer QMP. */
static void lv_read_vcpus(struct libvirt_backend *b, struct lv_entry *e, virDomainPtr dom)
{
	char *reply = NULL;
	b->st.qmp_calls++;
	lv_call(b, "virDomainQemuMonitorCommand");
	int qrc = lv.virDomainQemuMonitorCommand(dom, "{\"execute\":\"query-cpus-fast\"}", &reply, 0);
	lv_done(b);
	if (qrc < 0) {
		if (lv.virGetLastErrorCode() == VIR_ERR_NO_SUPPORT) {
			log_info("libvirt: %s has no QEMU monitor; domains are listed without "
				 "PID and vCPU threads", b->uri);
			b->no_qmp = true;
			e->vcpus_ok = true;
			return;
		}
		/* keep what we knew (a libvirtd restart, a busy monitor, a
		 * domain shutting down: its list entry goes at a later scan) */
		if (lv.virGetLastErrorCode() == VIR_ERR_OPERATION_INVALID) {
			log_debug("libvirt: domain %s: query-cpus-fast: %s", e->d.name,
				  lv.virGetLastErrorMessage());
			return;
		}
		if (!e->warned_qmp)
			log_warn("libvirt: domain %s: query-cpus-fast failed: %s; trying again "
				 "at the next scan", e->d.name, lv.virGetLastErrorMessage());
		e->warned_qmp = true;
		return;
	}
	_cleanup_free_ struct vm_vcpu *v = NULL;
	size_t nv = 0;
	_cleanup_error_ struct error *err = NULL;
	int rc = libvirt_qmp_cpus_parse(reply, &v, &nv, &err);
	free(reply);
	e->vcpus_ok = true; /* a bad reply will not get better by asking again */
	if (rc < 0) {
		if (!e->warned_qmp)
			log_warn("libvirt: domain %s: %s", e->d.name, err->msg);
		e->warned_qmp = true;
		return;
	}
	e->warned_qmp = false;

	/* the QEMU process: the Tgid of the first thread, which every other
	 * vCPU thread must share */
	pid_t pid = 0;
	if (tid_tgid(b->host_root, v[0].tid, &pid, &err) < 0) {
		if (!e->warned_pid)
			log_warn("libvirt: domain %s: vCPU 0 is thread %d by QMP, but %s (is vcpud "
				 "in another PID namespace?)", e->d.name, (int)v[0].tid, err->msg);
		e->warned_pid = true;
		free(e->d.threads);
		e->d.threads = NULL;
		e->d.n_threads = 0;
		e->d.pid = 0;
		return;
	}
	size_t kept = 0;
	for (size_t i = 0; i < nv; i++) {
		pid_t tg = 0;
		_cleanup_error_ struct error *e2 = NULL;
		if (i > 0 && (tid_tgid(b->host_root, v[i].tid, &tg, &e2) < 0 || tg != pid)) {
			log_warn("libvirt: domain %s: vCPU %u thread %d is not a thread of process "
				 "%d; ignoring it", e->d.name, v[i].index, (int)v[i].tid, (int)pid);
			continue;
		}
		/* TCG without MTTCG runs every vCPU on one thread: keep it once */
		for (size_t j = 0; j < kept; j++)
			if (v[j].tid == v[i].tid) {
				log_debug("libvirt: domain %s: vCPU %u shares thread %d with vCPU %u",
					  e->d.name, v[i].index, (int)v[i].tid, v[j].index);
				v[i].tid = 0;
				break;
			}
		v[kept++] = v[i];
	}

	/* cross-check with the thread names */
	_cleanup_free_ struct vm_vcpu *pv = NULL;
	size_t npv = 0;
	_cleanup_error_ struct error *e3 = NULL;
	e->proc_ok = proc_view(b, pid, &pv, &npv, &e3) == 0;
	if (!e->proc_ok) {
		/* hot-plug is then seen only through events */
		log_warn("libvirt: domain %s: %s; cannot cross-check its vCPU threads", e->d.name,
			 e3->msg);
	} else if (!vm_threads_equal(v, kept, pv, npv)) {
		for (size_t i = 0; i < kept; i++) {
			pid_t named = 0;
			for (size_t j = 0; j < npv; j++)
				if (pv[j].index == v[i].index)
					named = pv[j].tid;
			if (named != v[i].tid && v[i].tid)
				log_warn("libvirt: domain %s: QMP says vCPU %u is thread %d, /proc "
					 "names thread %d 'CPU %u/KVM'; using QMP's", e->d.name,
					 v[i].index, (int)v[i].tid, (int)named, v[i].index);
		}
	}
	free(e->proc_sig);
	e->proc_sig = steal_ptr(&pv);
	e->n_proc_sig = npv;

	if (e->d.pid != pid)
		log_info("libvirt: domain %s: QEMU process %d, %zu vCPU threads", e->d.name,
			 (int)pid, kept);
	else if (!vm_threads_equal(e->d.threads, e->d.n_threads, v, kept))
		log_info("libvirt: domain %s: vCPU threads changed (%zu -> %zu)", e->d.name,
			 e->d.n_threads, kept);
	free(e->d.threads);
	e->d.threads = kept ? steal_ptr(&v) : NULL;
	e->d.n_threads = kept;
	e->d.pid = pid;
	/* a hot-plugged vCPU QMP already shows counts even if GetInfo lagged */
	for (size_t i = 0; i < kept; i++)
		if (e->d.threads[i].index + 1 > e->d.vcpus)
			e->d.vcpus = e->d.threads[i].index + 1;
}

/* Bring one listed domain up to date. */
static void lv_refresh(struct libvirt_backend *b, struct lv_entry *e, virDomainPtr dom)
{
	if (!b->events_ok)
		e->info_ok = e->meta_ok = false;
	if (!e->info_ok)
		lv_read_info(b, e, dom);
	if (!e->meta_ok)
		lv_read_tenant(b, e, dom);
	if (b->no_qmp) {
		e->vcpus_ok = true;
		return;
	}
	/* hot-plug: the thread names under /proc changed since QMP was asked */
	if (e->vcpus_ok && e->d.pid > 0 && e->proc_ok) {
		_cleanup_free_ struct vm_vcpu *pv = NULL;
		size_t npv = 0;
		_cleanup_error_ struct error *err = NULL;
		if (proc_view(b, e->d.pid, &pv, &npv, &err) < 0 ||
		    !vm_threads_equal(pv, npv, e->proc_sig, e->n_proc_sig)) {
			e->vcpus_ok = false;
			e->info_ok = false;
			lv_read_info(b, e, dom);
		}
	}
	if (!e->vcpus_ok && !e->starting)
		lv_read_vcpus(b, e, dom);
}

static int cmp_domain_name(const void *a, const void *b)
{
	const struct libvirt_domain *x = a, *y = b;
	return strcmp(x->name, y->name);
}

/* The cache as a list for the caller. */
static void lv_export(const struct libvirt_backend *b, bool stale, struct libvirt_domain **out,
		      size_t *n)
{
	size_t cnt = 0;
	for (size_t i = 0; i < b->n_ents; i++)
		cnt += !b->ents[i].skip;
	*out = NULL;
	*n = 0;
	if (cnt == 0)
		return;
	struct libvirt_domain *v = xcalloc(cnt, sizeof(*v));
	size_t k = 0;
	for (size_t i = 0; i < b->n_ents; i++) {
		if (b->ents[i].skip)
			continue;
		domain_copy(&v[k], &b->ents[i].d);
		v[k].stale = stale;
		k++;
	}
	qsort(v, cnt, sizeof(*v), cmp_domain_name);
	*out = v;
	*n = cnt;
}

static int lv_stale(struct libvirt_backend *b, struct libvirt_domain **out, size_t *n)
{
	b->st.stale_scans++;
	lv_export(b, true, out, n);
	return LIBVIRT_SCAN_STALE;
}

int libvirt_backend_scan(struct libvirt_backend *b, struct libvirt_domain **out, size_t *n,
			 struct error **err)
{
	if (!b || !out || !n)
		return error_set(err, EINVAL, "libvirt_backend_scan: missing argument");
	*out = NULL;
	*n = 0;
	b->st.scans++;
	if (b->conn && atomic_load(&b->notify->closed))
		lv_lost(b, "libvirtd closed it");
	if (lv_connect(b) < 0)
		return lv_stale(b, out, n);
	lv_take_dirty(b);

	/* active and defined-inactive domains in one RPC: a domain's id (part
	 * of every listed domain, no further call) is -1 while it is shut off */
	virDomainPtr *doms = NULL;
	const unsigned int flags = VIR_CONNECT_LIST_DOMAINS_ACTIVE |
				   VIR_CONNECT_LIST_DOMAINS_INACTIVE;
	lv_call(b, "virConnectListAllDomains");
	int nd = lv.virConnectListAllDomains(b->conn, &doms, flags);
	lv_done(b);
	if (nd < 0) {
		_cleanup_free_ char *msg = xstrdup(lv.virGetLastErrorMessage());
		lv_call(b, "virConnectIsAlive");
		int alive = lv.virConnectIsAlive(b->conn);
		lv_done(b);
		if (alive != 1) {
			lv_lost(b, msg);
			/* libvirtd may be back already (a quick restart) */
			if (lv_connect(b) < 0)
				return lv_stale(b, out, n);
			lv_call(b, "virConnectListAllDomains");
			nd = lv.virConnectListAllDomains(b->conn, &doms, flags);
			lv_done(b);
		}
		if (nd < 0) {
			if (!b->last_list_error || strcmp(b->last_list_error, msg) != 0)
				log_warn("libvirt: cannot list the domains of %s: %s; keeping the "
					 "last known list", b->uri, msg);
			lv_set_error(b, xasprintf("cannot list the domains of %s: %s", b->uri, msg));
			free(b->last_list_error);
			b->last_list_error = steal_ptr(&msg);
			return lv_stale(b, out, n);
		}
	}
	free(b->last_list_error);
	b->last_list_error = NULL;
	lv_set_error(b, NULL);

	inactive_clear(b);
	for (size_t i = 0; i < b->n_ents; i++)
		b->ents[i].seen = false;
	for (int i = 0; i < nd; i++) {
		virDomainPtr dom = doms[i];
		char uuid[VIR_UUID_STRING_BUFLEN];
		const char *name = lv.virDomainGetName(dom);
		unsigned int uid = lv.virDomainGetID(dom);
		int id = (int)uid;
		if (!name || lv.virDomainGetUUIDString(dom, uuid) < 0)
			continue;
		if (uid == (unsigned int)-1) {
			/* shut off, still defined: a name for the registry only */
			if (name_valid(name)) {
				b->inactive = xrealloc(b->inactive,
						       (b->n_inactive + 1) * sizeof(*b->inactive));
				b->inactive[b->n_inactive++] = xstrdup(name);
			}
			continue;
		}
		struct lv_entry *e = entry_find(b, uuid);
		if (e && (e->d.id != id || (!e->skip && strcmp(e->d.name, name) != 0))) {
			/* restarted (new id) or renamed: a new VM as far as we know */
			entry_clear(e);
			*e = b->ents[--b->n_ents];
			e = NULL;
		}
		if (!e) {
			b->ents = xrealloc(b->ents, (b->n_ents + 1) * sizeof(*b->ents));
			e = &b->ents[b->n_ents++];
			memset(e, 0, sizeof(*e));
			snprintf(e->d.uuid, sizeof(e->d.uuid), "%s", uuid);
			e->d.id = id;
			if (!name_valid(name)) {
				e->skip = true;
				b->st.skipped_names++;
				log_warn("libvirt: skipping domain '%s' (%s): its name is not "
					 "[A-Za-z0-9_.-]{1,64}", name, uuid);
			} else {
				snprintf(e->d.name, sizeof(e->d.name), "%s", name);
			}
		}
		e->seen = true;
		if (!e->skip)
			lv_refresh(b, e, dom);
	}
	for (int i = 0; i < nd; i++)
		lv.virDomainFree(doms[i]);
	free(doms);
	for (size_t i = 0; i < b->n_ents;) {
		if (b->ents[i].seen) {
			i++;
			continue;
		}
		if (!b->ents[i].skip)
			log_info("libvirt: domain %s is no longer running", b->ents[i].d.name);
		entry_clear(&b->ents[i]);
		b->ents[i] = b->ents[--b->n_ents];
	}
	lv_export(b, false, out, n);
	return 0;
}

int libvirt_backend_vcpu_delays(struct libvirt_backend *b, const char *domain,
				uint64_t *delay_ns, size_t max, size_t *n, struct error **err)
{
	if (!b || !domain || !n || (max && !delay_ns))
		return error_set(err, EINVAL, "libvirt_backend_vcpu_delays: missing argument");
	*n = 0;
	if (!b->conn)
		return error_set(err, ENOTCONN, "not connected to %s", b->uri);
	virDomainPtr dom = lv.virDomainLookupByName(b->conn, domain);
	if (!dom) {
		int code = lv.virGetLastErrorCode();
		return error_set(err, code == VIR_ERR_NO_DOMAIN ? ENOENT : EIO,
				 "domain %s: %s", domain, lv.virGetLastErrorMessage());
	}
	virDomainPtr list[2] = { dom, NULL };
	virDomainStatsRecordPtr *recs = NULL;
	int nr = lv.virDomainListGetStats(list, VIR_DOMAIN_STATS_VCPU, &recs, 0);
	lv.virDomainFree(dom);
	if (nr < 0)
		return error_set(err, EIO, "domain %s: cannot read vCPU statistics: %s", domain,
				 lv.virGetLastErrorMessage());
	for (size_t i = 0; i < max; i++)
		delay_ns[i] = UINT64_MAX;
	size_t top = 0;
	bool any = false;
	for (int r = 0; r < nr; r++) {
		for (int i = 0; i < recs[r]->nparams; i++) {
			const virTypedParameter *p = &recs[r]->params[i];
			unsigned idx;
			int used = 0;
			if (sscanf(p->field, "vcpu.%u.delay%n", &idx, &used) != 1 ||
			    p->field[used] != '\0' || p->type != VIR_TYPED_PARAM_ULLONG)
				continue;
			any = true;
			if (idx >= max)
				continue;
			delay_ns[idx] = p->value.ul;
			if (idx + 1 > top)
				top = idx + 1;
		}
	}
	lv.virDomainStatsRecordListFree(recs);
	if (!any)
		return error_set(err, ENOTSUP, "domain %s: %s reports no vcpu.N.delay", domain,
				 b->uri);
	*n = top;
	return 0;
}
