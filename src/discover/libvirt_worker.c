/* libvirt_worker.c - the libvirt backend on a thread of its own (see
 * vcpud/libvirt.h, "the worker"). The thread scans (at start, every period,
 * at once on a libvirt event) and publishes an immutable, refcounted
 * snapshot under a mutex; the taker (the daemon's loop) copies a reference
 * and decides from the backend's call marker whether libvirtd hangs. No
 * function here that the taker calls waits for libvirt. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "vcpud/libvirt.h"
#include "vcpud/log.h"
#include "vcpud/util.h"

#define WORKER_PERIOD_MS 1000
#define WORKER_STALL_MS 2000
#define WORKER_STOP_MAX_MS 1000

/* One publication: read only once published. */
struct lv_published {
	atomic_int refs;
	uint64_t seq;
	enum libvirt_link link;
	int64_t since_ms;
	char *error;
	struct libvirt_domain *doms;
	size_t n;
	char **inactive;
	size_t n_inactive;
};

struct libvirt_worker {
	struct libvirt_backend *b;  /* the thread's; the taker reads only its
				       call marker (atomics) */
	pthread_t thread;
	int wake_fd;                /* worker -> taker: a changed snapshot */
	int ctl_fd;                 /* taker -> worker: stop, new period */
	unsigned stall_ms;
	atomic_uint period_ms;
	pthread_mutex_t lock;
	pthread_cond_t cond;        /* signalled when the thread is done */
	/* under lock */
	struct lv_published *pub;
	bool quit;
	bool exited;                /* done with libvirt: joinable */
	bool abandoned;             /* the taker gave up waiting: the thread
				       frees everything itself */
};

static atomic_uint worker_threads;

static const char *const link_names[LIBVIRT_LINK_LAST] = {
	[LIBVIRT_LINK_CONNECTING] = "connecting",
	[LIBVIRT_LINK_CONNECTED] = "connected",
	[LIBVIRT_LINK_UNREACHABLE] = "unreachable",
};

const char *libvirt_link_to_string(enum libvirt_link l)
{
	return (unsigned)l < LIBVIRT_LINK_LAST ? link_names[l] : "unknown";
}

unsigned libvirt_worker_threads(void)
{
	return atomic_load(&worker_threads);
}

static int64_t now_real_ms(void)
{
	return now_real_ns() / 1000000;
}

/* --- publications ------------------------------------------------------------ */

static struct lv_published *pub_ref(struct lv_published *p)
{
	atomic_fetch_add(&p->refs, 1);
	return p;
}

static void pub_unref(struct lv_published *p)
{
	if (!p || atomic_fetch_sub(&p->refs, 1) != 1)
		return;
	libvirt_domain_list_free(p->doms, p->n);
	for (size_t i = 0; i < p->n_inactive; i++)
		free(p->inactive[i]);
	free(p->inactive);
	free(p->error);
	free(p);
}

static bool domain_same(const struct libvirt_domain *a, const struct libvirt_domain *b)
{
	return strcmp(a->name, b->name) == 0 && strcmp(a->uuid, b->uuid) == 0 &&
	       strcmp(a->tenant, b->tenant) == 0 && a->id == b->id && a->state == b->state &&
	       a->pid == b->pid && a->vcpus == b->vcpus && a->memory_bytes == b->memory_bytes &&
	       a->n_threads == b->n_threads &&
	       (a->n_threads == 0 ||
		memcmp(a->threads, b->threads, a->n_threads * sizeof(*a->threads)) == 0);
}

/* Whether the taker should hear of p at once: the link or what it lists
 * changed (not the error text, nor the stale flags that follow the link). */
static bool pub_differs(const struct lv_published *old, const struct lv_published *p)
{
	if (old->link != p->link || old->n != p->n || old->n_inactive != p->n_inactive)
		return true;
	for (size_t i = 0; i < p->n; i++)
		if (!domain_same(&old->doms[i], &p->doms[i]))
			return true;
	for (size_t i = 0; i < p->n_inactive; i++)
		if (strcmp(old->inactive[i], p->inactive[i]) != 0)
			return true;
	return false;
}

/* Publish p (the worker's reference moves to w); old one released. */
static void publish(struct libvirt_worker *w, struct lv_published *p)
{
	pthread_mutex_lock(&w->lock);
	struct lv_published *old = w->pub;
	p->seq = old->seq + 1;
	bool changed = pub_differs(old, p);
	w->pub = p;
	pthread_mutex_unlock(&w->lock);
	pub_unref(old);
	if (changed) {
		uint64_t one = 1;
		ssize_t r = write(w->wake_fd, &one, sizeof(one));
		(void)r; /* EAGAIN: saturated, still readable */
	}
}

/* --- the thread ---------------------------------------------------------------- */

static bool worker_quitting(struct libvirt_worker *w)
{
	pthread_mutex_lock(&w->lock);
	bool q = w->quit;
	pthread_mutex_unlock(&w->lock);
	return q;
}

static void drain(int fd)
{
	uint64_t v;
	while (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		;
}

static void worker_free(struct libvirt_worker *w)
{
	libvirt_backend_free(w->b);
	pub_unref(w->pub);
	close(w->wake_fd);
	close(w->ctl_fd);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

/* One scan, published. */
static void worker_scan(struct libvirt_worker *w, enum libvirt_link *link, int64_t *since_ms)
{
	_cleanup_error_ struct error *err = NULL;
	struct lv_published *p = xcalloc(1, sizeof(*p));
	atomic_init(&p->refs, 1);
	int rc = libvirt_backend_scan(w->b, &p->doms, &p->n, &err);
	enum libvirt_link now = rc == 0 ? LIBVIRT_LINK_CONNECTED : LIBVIRT_LINK_UNREACHABLE;
	if (now != *link) {
		*link = now;
		*since_ms = now_real_ms();
	}
	p->link = now;
	p->since_ms = *since_ms;
	if (rc == 0) {
		size_t ni = 0;
		const char *const *in = libvirt_backend_inactive(w->b, &ni);
		p->inactive = ni ? xcalloc(ni, sizeof(*p->inactive)) : NULL;
		for (size_t i = 0; i < ni; i++)
			p->inactive[i] = xstrdup(in[i]);
		p->n_inactive = ni;
	} else {
		const char *e = err ? err->msg : libvirt_backend_error(w->b);
		p->error = xstrdup(e ? e : "libvirt is not answering");
	}
	publish(w, p);
}

static void *worker_main(void *arg)
{
	struct libvirt_worker *w = arg;
	enum libvirt_link link = LIBVIRT_LINK_CONNECTING;
	int64_t since_ms;
	pthread_mutex_lock(&w->lock);
	since_ms = w->pub->since_ms;
	pthread_mutex_unlock(&w->lock);
	int efd = libvirt_backend_fd(w->b);
	bool scan = true;
	while (!worker_quitting(w)) {
		if (scan) {
			worker_scan(w, &link, &since_ms);
			scan = false;
			continue; /* a stop asked meanwhile comes first */
		}
		struct pollfd pfd[2] = {
			{ .fd = efd, .events = POLLIN },
			{ .fd = w->ctl_fd, .events = POLLIN },
		};
		int rc = poll(pfd, 2, (int)atomic_load(&w->period_ms));
		if (rc < 0 && errno != EINTR) {
			log_error("libvirt worker: poll: %s", strerror(errno));
			usleep(100000);
		}
		if (rc == 0)
			scan = true; /* the period */
		if (pfd[1].revents & POLLIN)
			drain(w->ctl_fd); /* stop (seen above) or a new period */
		if ((pfd[0].revents & POLLIN) && libvirt_backend_dispatch(w->b))
			scan = true; /* a domain event */
	}

	/* the connection's end is an RPC too: within the taker's bound, or
	 * the thread is left behind and cleans up after itself */
	libvirt_backend_disconnect(w->b);
	pthread_mutex_lock(&w->lock);
	w->exited = true;
	bool abandoned = w->abandoned;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	if (abandoned) {
		log_info("libvirt worker: the call it was left in returned; it is done");
		worker_free(w);
	}
	atomic_fetch_sub(&worker_threads, 1);
	return NULL;
}

/* --- the taker's side ------------------------------------------------------------ */

int libvirt_worker_start(struct libvirt_backend *b, const struct libvirt_worker_config *cfg,
			 struct libvirt_worker **out, struct error **err)
{
	if (!b || !out) {
		libvirt_backend_free(b);
		return error_set(err, EINVAL, "libvirt_worker_start: missing argument");
	}
	int wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int ctl = wake >= 0 ? eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) : -1;
	if (ctl < 0) {
		int e = errno;
		if (wake >= 0)
			close(wake);
		libvirt_backend_free(b);
		return error_set_errno(err, e, "cannot create an eventfd");
	}
	struct libvirt_worker *w = xcalloc(1, sizeof(*w));
	w->b = b;
	w->wake_fd = wake;
	w->ctl_fd = ctl;
	w->stall_ms = cfg && cfg->stall_ms ? cfg->stall_ms : WORKER_STALL_MS;
	atomic_init(&w->period_ms, cfg && cfg->period_ms ? cfg->period_ms : WORKER_PERIOD_MS);
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);
	w->pub = xcalloc(1, sizeof(*w->pub));
	atomic_init(&w->pub->refs, 1);
	w->pub->link = LIBVIRT_LINK_CONNECTING;
	w->pub->since_ms = now_real_ms();

	/* the thread takes no signals: the daemon's loop handles them */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	atomic_fetch_add(&worker_threads, 1);
	int rc = pthread_create(&w->thread, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		atomic_fetch_sub(&worker_threads, 1);
		worker_free(w);
		return error_set_errno(err, rc, "cannot start the libvirt worker thread");
	}
	*out = w;
	return 0;
}

void libvirt_worker_stop(struct libvirt_worker *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->quit = true;
	pthread_mutex_unlock(&w->lock);
	uint64_t one = 1;
	ssize_t r = write(w->ctl_fd, &one, sizeof(one));
	(void)r;

	unsigned wait_ms = w->stall_ms < WORKER_STOP_MAX_MS ? w->stall_ms : WORKER_STOP_MAX_MS;
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += wait_ms / 1000;
	deadline.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->lock);
	while (!w->exited)
		if (pthread_cond_timedwait(&w->cond, &w->lock, &deadline) == ETIMEDOUT)
			break;
	if (w->exited) {
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
		worker_free(w);
		return;
	}
	/* stuck in libvirt: leave it (it frees w if its call returns) */
	int64_t since = 0;
	const char *call = libvirt_backend_call(w->b, &since);
	log_warn("libvirt: the worker is still in %s after %u ms; leaving it behind",
		 call ? call : "a libvirt call", wait_ms);
	w->abandoned = true;
	pthread_detach(w->thread);
	pthread_mutex_unlock(&w->lock);
}

struct libvirt_snapshot *libvirt_worker_take(struct libvirt_worker *w)
{
	struct libvirt_snapshot *s = xcalloc(1, sizeof(*s));
	pthread_mutex_lock(&w->lock);
	struct lv_published *p = pub_ref(w->pub);
	pthread_mutex_unlock(&w->lock);
	s->pub_ = p;
	s->link = p->link;
	s->since_ms = p->since_ms;
	s->error = p->error ? xstrdup(p->error) : NULL;
	s->seq = p->seq;
	s->doms = p->doms;
	s->n = p->n;
	s->inactive = (const char *const *)p->inactive;
	s->n_inactive = p->n_inactive;

	/* a call that has not returned for longer than the bound: libvirtd
	 * hangs, whatever the last publication said */
	int64_t since_ns = 0;
	const char *call = libvirt_backend_call(w->b, &since_ns);
	int64_t now = now_mono_ns();
	if (call && since_ns && now - since_ns > (int64_t)w->stall_ms * 1000000) {
		double secs = (double)(now - since_ns) / 1e9;
		s->link = LIBVIRT_LINK_UNREACHABLE;
		s->stalled = true;
		s->since_ms = now_real_ms() - (now - since_ns) / 1000000;
		free(s->error);
		s->error = xasprintf("libvirt call %s has not returned for %.1f s", call, secs);
	}
	return s;
}

void libvirt_snapshot_free(struct libvirt_snapshot *s)
{
	if (!s)
		return;
	pub_unref(s->pub_);
	free(s->error);
	free(s);
}

int libvirt_worker_fd(const struct libvirt_worker *w)
{
	return w->wake_fd;
}

bool libvirt_worker_dispatch(struct libvirt_worker *w)
{
	uint64_t v = 0;
	return read(w->wake_fd, &v, sizeof(v)) == (ssize_t)sizeof(v) && v > 0;
}

void libvirt_worker_set_period(struct libvirt_worker *w, unsigned period_ms)
{
	atomic_store(&w->period_ms, period_ms < 10 ? 10 : period_ms);
	uint64_t one = 1;
	ssize_t r = write(w->ctl_fd, &one, sizeof(one));
	(void)r;
}
