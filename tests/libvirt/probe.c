/* probe.c - the libvirt backend against a real libvirtd and real QEMU/KVM
 * domains (driven by tests/libvirt/run.sh, which builds it against
 * libvcpud.a and starts a private libvirtd).
 *
 *   probe URI PRIVD_SH PRIVD_DIR
 *
 * It plays the daemon: a tick every second (scan), and a scan as soon as
 * the backend's fd is readable. It defines and starts three no-disk KVM
 * domains (2 vCPUs of at most 3, 128 MiB; two with vcpud tenant metadata),
 * checks what the scans report against its own libvirt connection (QMP
 * query-cpus-fast thread ids, /proc Tgid and thread names), hot-plugs a
 * vCPU, compares libvirt's vcpu.N.delay with schedstat, destroys one
 * domain with virsh, restarts libvirtd (PRIVD_SH stop|start PRIVD_DIR) and
 * checks that the others are kept and found again. Prints "ok - ..." or
 * "FAIL - ..." per check (run.sh counts them) and timings; destroys and
 * undefines its domains before it exits. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

#include "vcpud/libvirt.h"
#include "vcpud/log.h"
#include "vcpud/util.h"
#include "vcpud/vm.h"

#define TICK_MS 1000

static unsigned passed, failed;
static const char *uri, *privd_sh, *privd_dir;

static void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(bool ok, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("%s - ", ok ? "ok" : "FAIL");
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
	va_end(ap);
	if (ok)
		passed++;
	else
		failed++;
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("# ");
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
	va_end(ap);
}

static double ms_since(int64_t t0)
{
	return (double)(now_mono_ns() - t0) / 1e6;
}

/* --- the daemon's view: ticks and the event fd ------------------------------ */

struct view {
	struct libvirt_backend *b;
	struct libvirt_domain *d;
	size_t n;
	int rc;                 /* of the last scan */
	int64_t next_tick_ns;
};

static void view_scan(struct view *v)
{
	libvirt_domain_list_free(v->d, v->n);
	v->d = NULL;
	v->n = 0;
	_cleanup_error_ struct error *err = NULL;
	v->rc = libvirt_backend_scan(v->b, &v->d, &v->n, &err);
	if (v->rc < 0)
		note("scan failed: %s", err->msg);
}

static const struct libvirt_domain *view_find(const struct view *v, const char *name)
{
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->d[i].name, name) == 0)
			return &v->d[i];
	return NULL;
}

typedef bool (*pred_fn)(const struct view *v, const void *arg);

/* Run the loop as the daemon would (scan at each tick, and at once when the
 * fd is readable) until pred holds or max_ticks ticks have passed. Returns
 * the ms it took, or -1. */
static double view_until(struct view *v, pred_fn pred, const void *arg, unsigned max_ticks)
{
	int64_t t0 = now_mono_ns();
	int64_t end = t0 + (int64_t)max_ticks * TICK_MS * 1000000;
	view_scan(v); /* what a scan right now says */
	if (pred(v, arg))
		return ms_since(t0);
	for (;;) {
		int64_t now = now_mono_ns();
		if (now >= end)
			return -1;
		if (now >= v->next_tick_ns)
			v->next_tick_ns = now + (int64_t)TICK_MS * 1000000;
		int64_t wake = v->next_tick_ns < end ? v->next_tick_ns : end;
		struct pollfd p = { .fd = libvirt_backend_fd(v->b), .events = POLLIN };
		int to = (int)((wake - now) / 1000000) + 1;
		if (poll(&p, 1, to) == 1)
			libvirt_backend_dispatch(v->b);
		view_scan(v);
		if (pred(v, arg))
			return ms_since(t0);
	}
}

/* --- what libvirt and /proc say, independently -------------------------------- */

static virConnectPtr conn;

static int qmp_threads(const char *name, struct vm_vcpu **out, size_t *n)
{
	virDomainPtr dom = virDomainLookupByName(conn, name);
	if (!dom)
		return -1;
	char *reply = NULL;
	int rc = virDomainQemuMonitorCommand(dom, "{\"execute\":\"query-cpus-fast\"}", &reply, 0);
	virDomainFree(dom);
	if (rc < 0)
		return -1;
	rc = libvirt_qmp_cpus_parse(reply, out, n, NULL);
	free(reply);
	return rc;
}

static int read_file(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t r = fread(buf, 1, size - 1, f);
	fclose(f);
	buf[r] = '\0';
	return 0;
}

static pid_t proc_tgid(pid_t tid)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	pid_t tg = 0;
	if (read_file(path, buf, sizeof(buf)) < 0 || libvirt_status_tgid_parse(buf, &tg, NULL) < 0)
		return 0;
	return tg;
}

static bool proc_comm_is(pid_t pid, pid_t tid, unsigned index)
{
	char path[96], buf[64], want[32];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)pid, (int)tid);
	snprintf(want, sizeof(want), "CPU %u/KVM\n", index);
	return read_file(path, buf, sizeof(buf)) == 0 && strcmp(buf, want) == 0;
}

static bool cmdline_names(pid_t pid, const char *name)
{
	char path[64], buf[8192];
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t r = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[r] = '\0';
	char want[128];
	snprintf(want, sizeof(want), "guest=%s,", name);
	for (size_t i = 0; i < r; i += strlen(buf + i) + 1)
		if (strncmp(buf + i, want, strlen(want)) == 0)
			return true;
	return false;
}

static uint64_t schedstat_delay(pid_t pid, pid_t tid)
{
	char path[96], buf[128];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", (int)pid, (int)tid);
	unsigned long long run = 0, delay = 0;
	if (read_file(path, buf, sizeof(buf)) < 0 || sscanf(buf, "%llu %llu", &run, &delay) != 2)
		return 0;
	return delay;
}

/* --- domains -------------------------------------------------------------------- */

static const struct {
	const char *name, *tenant;
} doms[] = {
	{ "vcpud-probe-a", "acme" },
	{ "vcpud-probe-b", "globex" },
	{ "vcpud-probe-c", NULL },
};

static int define_domain(const char *name, const char *tenant)
{
	char meta[256] = "";
	if (tenant)
		snprintf(meta, sizeof(meta), "<metadata><vcpud:tenant xmlns:vcpud=\"urn:vcpud:1\">"
			 "%s</vcpud:tenant></metadata>", tenant);
	_cleanup_free_ char *xml = xasprintf(
		"<domain type='kvm'><name>%s</name><memory unit='MiB'>128</memory>"
		"<vcpu placement='static' current='2'>3</vcpu>"
		"<os><type arch='x86_64' machine='pc'>hvm</type></os>%s"
		"<on_poweroff>destroy</on_poweroff><on_crash>destroy</on_crash>"
		"<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>"
		"<memballoon model='none'/></devices></domain>", name, meta);
	virDomainPtr dom = virDomainDefineXML(conn, xml);
	if (!dom) {
		note("define %s: %s", name, virGetLastErrorMessage());
		return -1;
	}
	virDomainFree(dom);
	return 0;
}

static int start_domain(const char *name, double *ms)
{
	virDomainPtr dom = virDomainLookupByName(conn, name);
	if (!dom)
		return -1;
	int64_t t0 = now_mono_ns();
	int rc = virDomainCreate(dom);
	*ms = ms_since(t0);
	if (rc < 0)
		note("start %s: %s", name, virGetLastErrorMessage());
	virDomainFree(dom);
	return rc;
}

static void cleanup_domains(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(doms); i++) {
		virDomainPtr dom = virDomainLookupByName(conn, doms[i].name);
		if (!dom)
			continue;
		if (virDomainIsActive(dom) == 1)
			virDomainDestroy(dom);
		virDomainUndefine(dom);
		virDomainFree(dom);
	}
}

/* The backend's entry for `name` is complete and agrees with QMP and /proc. */
static bool domain_complete(const struct view *v, const void *arg)
{
	const struct libvirt_domain *d = view_find(v, arg);
	return d && !d->stale && d->pid > 0 && d->n_threads > 0;
}

static bool domain_gone(const struct view *v, const void *arg)
{
	return v->rc == 0 && !view_find(v, arg);
}

static bool scan_stale(const struct view *v, const void *arg)
{
	(void)arg;
	return v->rc == LIBVIRT_SCAN_STALE;
}

static bool scan_fresh(const struct view *v, const void *arg)
{
	(void)arg;
	return v->rc == 0;
}

struct nthreads { const char *name; size_t n; };
static bool domain_has_threads(const struct view *v, const void *arg)
{
	const struct nthreads *w = arg;
	const struct libvirt_domain *d = view_find(v, w->name);
	return d && d->n_threads == w->n;
}

/* Everything about one listed domain, against libvirt and /proc. */
static void check_domain(const struct view *v, const char *name, const char *tenant,
			 size_t want_threads)
{
	const struct libvirt_domain *d = view_find(v, name);
	if (!d) {
		check(false, "%s listed", name);
		return;
	}
	check(strcmp(d->tenant, tenant ? tenant : "") == 0, "%s: tenant '%s' (want '%s')", name,
	      d->tenant, tenant ? tenant : "");
	virDomainPtr dom = virDomainLookupByName(conn, name);
	char uuid[VIR_UUID_STRING_BUFLEN] = "";
	if (dom) {
		virDomainGetUUIDString(dom, uuid);
		virDomainFree(dom);
	}
	check(strcmp(d->uuid, uuid) == 0 && strlen(d->uuid) == 36, "%s: uuid %s", name, d->uuid);
	check(d->pid > 0 && cmdline_names(d->pid, name), "%s: pid %d is QEMU with -name guest=%s",
	      name, (int)d->pid, name);
	struct vm_vcpu *q = NULL;
	size_t nq = 0;
	bool qok = qmp_threads(name, &q, &nq) == 0;
	bool same = qok && nq == d->n_threads && nq == want_threads;
	char list[256] = "";
	size_t off = 0;
	for (size_t i = 0; same && i < nq; i++) {
		same = q[i].index == d->threads[i].index && q[i].tid == d->threads[i].tid;
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%u:%d", i ? " " : "",
					d->threads[i].index, (int)d->threads[i].tid);
	}
	check(same, "%s: %zu vCPU threads [%s] equal QMP's thread-ids (%zu)", name,
	      d->n_threads, list, nq);
	bool procok = d->n_threads > 0;
	for (size_t i = 0; i < d->n_threads; i++)
		procok = procok && proc_tgid(d->threads[i].tid) == d->pid &&
			 proc_comm_is(d->pid, d->threads[i].tid, d->threads[i].index);
	check(procok, "%s: every vCPU thread is a thread of %d named 'CPU n/KVM'", name,
	      (int)d->pid);
	check(d->vcpus == want_threads && d->state == VM_STATE_RUNNING && d->memory_bytes ==
	      128LL << 20, "%s: %u vCPUs, %s, %" PRId64 " bytes", name, d->vcpus,
	      vm_state_to_string(d->state), d->memory_bytes);
	free(q);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: probe URI PRIVD_SH PRIVD_DIR\n");
		return 2;
	}
	uri = argv[1];
	privd_sh = argv[2];
	privd_dir = argv[3];
	log_set_level(LOG_LVL_INFO);
	setvbuf(stdout, NULL, _IOLBF, 0);

	struct view v = { 0 };
	_cleanup_error_ struct error *err = NULL;
	if (libvirt_backend_new(uri, &v.b, &err) < 0) {
		check(false, "backend: %s", err->msg);
		goto out;
	}
	view_scan(&v);
	check(v.rc == 0 && v.n == 0, "first scan: connected, no domains (rc %d, %zu)", v.rc, v.n);
	if (v.rc != 0)
		goto out;
	/* the probe's own connection: it must open after the backend's, which
	 * registered the event loop */
	conn = virConnectOpen(uri);
	if (!conn) {
		check(false, "own connection: %s", virGetLastErrorMessage());
		goto out;
	}
	cleanup_domains();

	/* --- three domains start; each is complete in the first scan after ---- */
	for (size_t i = 0; i < ARRAY_SIZE(doms); i++) {
		double start_ms = 0;
		if (define_domain(doms[i].name, doms[i].tenant) < 0 ||
		    start_domain(doms[i].name, &start_ms) < 0) {
			check(false, "%s defined and started", doms[i].name);
			goto out;
		}
		double ms = view_until(&v, domain_complete, doms[i].name, 1);
		check(ms >= 0, "%s (started in %.0f ms) listed with pid and vCPU threads within "
		      "one tick: %.1f ms after virDomainCreate returned", doms[i].name, start_ms,
		      ms);
	}
	view_scan(&v);
	check(v.rc == 0 && v.n == 3, "one scan lists the 3 domains (%zu)", v.n);
	for (size_t i = 0; i < ARRAY_SIZE(doms); i++)
		check_domain(&v, doms[i].name, doms[i].tenant, 2);
	struct libvirt_backend_stats st0;
	libvirt_backend_get_stats(v.b, &st0);
	int64_t t0 = now_mono_ns();
	view_scan(&v);
	note("a scan with nothing new took %.2f ms", ms_since(t0));
	struct libvirt_backend_stats st1;
	libvirt_backend_get_stats(v.b, &st1);
	check(st1.qmp_calls == st0.qmp_calls && st1.metadata_reads == st0.metadata_reads,
	      "a scan with nothing new asks no QMP and reads no metadata (qmp %" PRIu64
	      ", metadata %" PRIu64 " in all)", st1.qmp_calls, st1.metadata_reads);

	/* --- vCPU hot-plug ----------------------------------------------------- */
	{
		virDomainPtr dom = virDomainLookupByName(conn, doms[0].name);
		int rc = dom ? virDomainSetVcpusFlags(dom, 3, VIR_DOMAIN_AFFECT_LIVE) : -1;
		if (rc < 0)
			note("setvcpus: %s", virGetLastErrorMessage());
		if (dom)
			virDomainFree(dom);
		struct nthreads w = { doms[0].name, 3 };
		double ms = rc < 0 ? -1 : view_until(&v, domain_has_threads, &w, 2);
		check(ms >= 0, "%s: a hot-plugged vCPU is picked up within two ticks (%.1f ms)",
		      doms[0].name, ms);
		if (ms >= 0)
			check_domain(&v, doms[0].name, doms[0].tenant, 3);
	}

	/* --- libvirt's vcpu.N.delay is schedstat's run_delay -------------------- */
	{
		const struct libvirt_domain *d = view_find(&v, doms[0].name);
		uint64_t before[8] = { 0 }, after[8] = { 0 }, lv[8];
		size_t n = 0;
		bool ok = d != NULL;
		for (size_t i = 0; ok && i < d->n_threads && i < 8; i++)
			before[i] = schedstat_delay(d->pid, d->threads[i].tid);
		_cleanup_error_ struct error *e = NULL;
		int64_t t1 = now_mono_ns();
		ok = ok && libvirt_backend_vcpu_delays(v.b, doms[0].name, lv, 8, &n, &e) == 0;
		double call_ms = ms_since(t1);
		for (size_t i = 0; ok && i < d->n_threads && i < 8; i++)
			after[i] = schedstat_delay(d->pid, d->threads[i].tid);
		ok = ok && n == d->n_threads;
		for (size_t i = 0; ok && i < n; i++) {
			ok = before[i] <= lv[i] && lv[i] <= after[i];
			note("vCPU %zu: schedstat %" PRIu64 " <= libvirt %" PRIu64 " <= schedstat %"
			     PRIu64, i, before[i], lv[i], after[i]);
		}
		check(ok, "vcpu.N.delay of %zu vCPUs lies between schedstat reads around it "
		      "(the call took %.1f ms)%s%s", n, call_ms, e ? ": " : "", e ? e->msg : "");
	}

	/* --- virsh destroy: gone within two ticks -------------------------------- */
	{
		_cleanup_free_ char *cmd = xasprintf("virsh -q -c '%s' destroy %s >/dev/null", uri,
						     doms[1].name);
		int64_t t1 = now_mono_ns();
		int rc = system(cmd);
		double destroy_ms = ms_since(t1);
		double ms = rc == 0 ? view_until(&v, domain_gone, doms[1].name, 2) : -1;
		check(ms >= 0, "virsh destroy %s (%.0f ms): gone from the list within two ticks, "
		      "%.1f ms after virsh returned", doms[1].name, destroy_ms, ms);
		check(view_find(&v, doms[0].name) && view_find(&v, doms[2].name) && v.n == 2,
		      "the other two are still listed");
	}

	/* --- libvirtd restart ---------------------------------------------------- */
	{
		const struct libvirt_domain *a = view_find(&v, doms[0].name);
		const struct libvirt_domain *c = view_find(&v, doms[2].name);
		if (!a || !c) {
			check(false, "domains to keep across the restart");
			goto out;
		}
		struct libvirt_domain keep[2];
		keep[0] = *a;
		keep[1] = *c;
		keep[0].threads = xmalloc(a->n_threads * sizeof(*a->threads));
		memcpy(keep[0].threads, a->threads, a->n_threads * sizeof(*a->threads));
		keep[1].threads = xmalloc(c->n_threads * sizeof(*c->threads));
		memcpy(keep[1].threads, c->threads, c->n_threads * sizeof(*c->threads));
		struct libvirt_backend_stats s0;
		libvirt_backend_get_stats(v.b, &s0);

		virConnectClose(conn);
		conn = NULL;
		_cleanup_free_ char *stop = xasprintf("sh '%s' stop '%s'", privd_sh, privd_dir);
		_cleanup_free_ char *start = xasprintf("sh '%s' start '%s'", privd_sh, privd_dir);
		int64_t t_down = now_mono_ns();
		int64_t t1 = t_down;
		int rc = system(stop);
		note("libvirtd stopped in %.0f ms (rc %d)", ms_since(t1), rc);
		double ms = view_until(&v, scan_stale, NULL, 2);
		check(ms >= 0, "libvirtd gone: the scan says stale (%.1f ms)", ms);
		/* three more ticks without libvirtd */
		for (int i = 0; i < 3; i++)
			view_until(&v, scan_fresh, NULL, 1);
		bool kept = v.rc == LIBVIRT_SCAN_STALE && v.n == 2;
		for (size_t i = 0; kept && i < 2; i++) {
			const struct libvirt_domain *d = view_find(&v, keep[i].name);
			kept = d && d->stale && d->pid == keep[i].pid &&
			       d->n_threads == keep[i].n_threads &&
			       memcmp(d->threads, keep[i].threads,
				      d->n_threads * sizeof(*d->threads)) == 0 &&
			       strcmp(d->tenant, keep[i].tenant) == 0;
		}
		check(kept, "while libvirtd is away the two domains stay listed as they were, "
		      "flagged stale");
		t1 = now_mono_ns();
		rc = system(start);
		double up_ms = ms_since(t1);
		ms = rc == 0 ? view_until(&v, scan_fresh, NULL, 35) : -1;
		check(ms >= 0, "libvirtd back (started in %.0f ms): reconnected %.1f ms later "
		      "(%.1f s after it went away)", up_ms, ms, ms_since(t_down) / 1000);
		/* after libvirtd reconnects to QEMU, the monitor answers again */
		struct nthreads w0 = { keep[0].name, keep[0].n_threads };
		view_until(&v, domain_has_threads, &w0, 3);
		bool same = v.rc == 0 && v.n == 2;
		for (size_t i = 0; same && i < 2; i++) {
			const struct libvirt_domain *d = view_find(&v, keep[i].name);
			same = d && !d->stale && d->pid == keep[i].pid && d->id == keep[i].id &&
			       d->n_threads == keep[i].n_threads &&
			       memcmp(d->threads, keep[i].threads,
				      d->n_threads * sizeof(*d->threads)) == 0 &&
			       strcmp(d->tenant, keep[i].tenant) == 0;
		}
		check(same, "after the restart: the same two domains, PIDs, vCPU threads, tenants");
		struct libvirt_backend_stats s1;
		libvirt_backend_get_stats(v.b, &s1);
		check(s1.disconnects == s0.disconnects + 1 && s1.connects == s0.connects + 1,
		      "one disconnection, one reconnection (%" PRIu64 " attempts while away)",
		      s1.connect_attempts - s0.connect_attempts);
		free(keep[0].threads);
		free(keep[1].threads);

		conn = virConnectOpen(uri);
		if (!conn) {
			check(false, "own connection after the restart: %s",
			      virGetLastErrorMessage());
			goto out;
		}
		/* events flow on the new connection: a start is seen at once */
		double start_ms = 0;
		if (start_domain(doms[1].name, &start_ms) < 0) {
			check(false, "%s started again", doms[1].name);
			goto out;
		}
		ms = view_until(&v, domain_complete, doms[1].name, 1);
		check(ms >= 0, "after the restart a started domain is listed within one tick "
		      "(%.1f ms)", ms);
		if (ms >= 0)
			check_domain(&v, doms[1].name, doms[1].tenant, 2);
	}

out:
	if (conn) {
		cleanup_domains();
		virConnectClose(conn);
	}
	libvirt_domain_list_free(v.d, v.n);
	libvirt_backend_free(v.b);
	printf("probe: %u ok, %u FAIL\n", passed, failed);
	return failed ? 1 : 0;
}
