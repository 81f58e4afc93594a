/* fuzz_api.c - every API request body, path and query string through the
 * router (api_handle) against a real SQLite store in a temp directory, the
 * registry and a fixture host (2 NUMA nodes x 4 cores x 2 threads), as the
 * socket server would hand them on. The first byte picks the method and
 * route; the text up to the first newline is the path's name (or the
 * whole path) and the query string, the rest is the body. A reply must be
 * JSON (GET /metrics: Prometheus text) with a status from 200 to 599; the
 * store must stay consistent. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <unistd.h>

#define FUZZ_OWN_INIT
#include "fuzz_util.h"

#include <jansson.h>

#include "vcpud/api.h"
#include "vcpud/cpulist.h"
#include "vcpud/path.h"
#include "vcpud/registry.h"
#include "vcpud/store.h"
#include "vcpud/topology.h"
#include "vcpud/util.h"

#ifndef FUZZ_SRC_DIR
#define FUZZ_SRC_DIR "."
#endif

static struct api_ctx ctx;
static struct store *st;
static struct registry *reg;
static struct topology *topo;
static struct pools pools;
static char dir[] = "/tmp/vcpud-fuzz-api-XXXXXX";
static unsigned long runs;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

static void close_all(void)
{
	registry_free(reg);
	reg = NULL;
	store_close(st);
	st = NULL;
}

static void cleanup(void)
{
	close_all();
	topology_free(topo);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* a fresh database and registry (at the start, and now and then so that
 * the store does not grow over millions of inputs) */
static void open_all(void)
{
	struct error *err = NULL;
	char *db = path_join(dir, "vcpud.db", NULL);
	char *wal = xasprintf("%s-wal", db), *shm = xasprintf("%s-shm", db);
	unlink(db);
	unlink(wal);
	unlink(shm);
	if (store_open(db, &st, &err) < 0) {
		fprintf(stderr, "fuzz_api: %s\n", err->msg);
		abort();
	}
	struct registry_config cfg = { .store = st, .host_root = dir, .topo = topo,
				       .pools = &pools, .cpu_ratio = 4.0, .gone_grace_s = 60 };
	if (registry_new(&cfg, &reg, &err) < 0) {
		fprintf(stderr, "fuzz_api: %s\n", err->msg);
		abort();
	}
	ctx.store = st;
	ctx.reg = reg;
	free(db);
	free(wal);
	free(shm);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc; (void)argv;
	log_set_level(LOG_LVL_ERROR);
	struct error *err = NULL;
	if (!mkdtemp(dir))
		abort();
	char *sys = path_join(FUZZ_SRC_DIR, "tests/fixtures/topology/2n-4c-smt2/sys", NULL);
	char *link = path_join(dir, "sys", NULL);
	char *proc = path_join(dir, "proc", NULL);
	struct cpuset hk, ded;
	cpuset_zero(&ded);
	if (symlink(sys, link) < 0 || mkdir(proc, 0755) < 0 || cpulist_parse("0-1", &hk, &err) < 0 ||
	    topology_load(dir, &topo, &err) < 0 || topology_pools(topo, &hk, &ded, &pools, &err) < 0) {
		fprintf(stderr, "fuzz_api: set-up: %s\n", err ? err->msg : strerror(errno));
		abort();
	}
	open_all();
	ctx.topo = topo;
	ctx.pools = &pools;
	ctx.host_root = dir;
	ctx.policy_path = "fuzz";
	ctx.started_mono_ns = now_mono_ns();
	free(sys);
	free(link);
	free(proc);
	atexit(cleanup);
	return 0;
}

static const struct { const char *method, *prefix; bool named; } routes[] = {
	{ "GET", "/v1/health", false },      { "GET", "/v1/tenants", false },
	{ "POST", "/v1/tenants", false },    { "GET", "/v1/tenants/", true },
	{ "PATCH", "/v1/tenants/", true },   { "DELETE", "/v1/tenants/", true },
	{ "GET", "/v1/vms", false },         { "POST", "/v1/vms", false },
	{ "GET", "/v1/vms/", true },         { "DELETE", "/v1/vms/", true },
	{ "POST", "/v1/vms/admit", false },  { "GET", "/v1/host", false },
	{ "GET", "/v1/events", false },      { "GET", "/v1/top", false },
	{ "PUT", "", true },                 { "GET", "", true },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned sel;
	size_t len;
	char *s = fuzz_text(data, size, &sel, &len);
	/* "NAME?QUERY\nBODY": name and query up to the newline */
	char *body = strchr(s, '\n');
	if (body)
		*body++ = '\0';
	char *query = strchr(s, '?');
	if (query)
		*query++ = '\0';
	unsigned r = sel % ARRAY_SIZE(routes);
	char *path = xasprintf("%s%s%s", routes[r].prefix, routes[r].named ? s : "",
			       routes[r].named && sel >= 128 ? "/stats" : "");
	struct api_request req = { .method = routes[r].method, .path = path, .query = query,
				   .body = body, .body_len = body ? strlen(body) : 0,
				   .actor = "uid:0" };
	struct api_response resp = { 0 };
	api_handle(&ctx, &req, &resp);
	if (resp.status < 200 || resp.status > 599)
		abort();
	if (resp.content_type) {
		/* the one text reply: GET /metrics, lines ending in a newline */
		if (strcmp(path, "/metrics") != 0 || strcmp(req.method, "GET") != 0 ||
		    resp.status != 200 || !resp.body || !*resp.body ||
		    resp.body[strlen(resp.body) - 1] != '\n')
			abort();
	} else if (resp.body) {
		json_t *j = json_loads(resp.body, 0, NULL);
		if (!j)
			abort(); /* every other reply is JSON */
		json_decref(j);
	}
	free(resp.body);
	free(path);
	free(s);
	/* now and then: the store is still whole; then a fresh one, so that
	 * it does not grow over millions of inputs */
	if (++runs % 20000 == 0) {
		struct error *err = NULL;
		if (store_integrity_check(st, &err) < 0) {
			fprintf(stderr, "fuzz_api: %s\n", err->msg);
			abort();
		}
		close_all();
		open_all();
	}
	return 0;
}
