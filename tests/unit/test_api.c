/* test_api.c - the API router and wire format, end to end below HTTP: each
 * request goes through api_handle() against a real SQLite store in a temp
 * directory, and each refused request must leave the database as it was. */
#include "store_test_util.h"
#include "registry_test_util.h"

#include <math.h>
#include <pthread.h>
#include <poll.h>
#include <arpa/inet.h>
#include <sys/stat.h>

#include "cli/client.h"
#include "vcpud/auth.h"
#include "vcpud/api.h"

/* The API over a registry on a fake host (registry_test_util.h): a fixture
 * topology of 16 CPUs in 2 nodes, a fake /proc. */
struct fixture {
	struct reg_fx rf;
	struct tmp_store ts;     /* rf.ts, for the tests written against it */
	struct api_ctx ctx;
};


/* the daemon's /v1/top hook, answering with the object in data */
static json_t *top_of(void *data)
{
	return data;
}
static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	if (reg_fx_open(&f->rf, "2n-4c-smt2", "0-1", 60) < 0)
		return -1;
	store_set_clock(f->rf.ts.st, NULL);
	registry_set_clock(f->rf.reg, NULL);
	f->ts = f->rf.ts;
	f->ctx.store = f->rf.ts.st;
	f->ctx.reg = f->rf.reg;
	f->ctx.topo = f->rf.topo;
	f->ctx.pools = &f->rf.pools;
	f->ctx.host_root = f->rf.ts.dir;
	f->ctx.policy_path = "policies/default.yaml";
	f->ctx.started_mono_ns = now_mono_ns();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	reg_fx_close(&f->rf);
	free(f);
	return 0;
}

/* Run one request; returns the status, *out the parsed body (or NULL). */
static int call(struct fixture *f, const char *method, const char *path, const char *body,
		json_t **out)
{
	struct api_request req = {
		.method = method, .path = path, .body = body,
		.body_len = body ? strlen(body) : 0, .actor = "uid:0",
	};
	const char *q = strchr(path, '?');
	char *p = NULL;
	if (q) {
		p = xstrndup(path, (size_t)(q - path));
		req.path = p;
		req.query = q + 1;
	}
	struct api_response resp;
	api_handle(&f->ctx, &req, &resp);
	free(p);
	if (out)
		*out = resp.body ? json_loads(resp.body, 0, NULL) : NULL;
	if (resp.body) {
		/* every body is valid JSON; errors have the documented shape */
		json_t *j = json_loads(resp.body, 0, NULL);
		assert_non_null(j);
		if (resp.status >= 400) {
			json_t *e = json_object_get(j, "error");
			assert_true(json_is_string(json_object_get(e, "code")));
			assert_true(json_is_string(json_object_get(e, "message")));
		}
		json_decref(j);
	}
	free(resp.body);
	return resp.status;
}

static const char *err_code(json_t *j)
{
	return json_string_value(json_object_get(json_object_get(j, "error"), "code"));
}

static const char *err_msg(json_t *j)
{
	return json_string_value(json_object_get(json_object_get(j, "error"), "message"));
}

static size_t tenant_count(struct fixture *f)
{
	struct tenant *ts = NULL;
	size_t n = 0;
	assert_int_equal(store_tenant_list(f->ts.st, &ts, &n, NULL), 0);
	free(ts);
	return n;
}

static size_t listed_event_count(struct fixture *f)
{
	struct store_event *ev = NULL;
	size_t n = 0;
	assert_int_equal(store_event_list(f->ts.st, 0, 0, 0, &ev, &n, NULL), 0);
	store_events_free(ev, n);
	return n;
}

static void test_health(void **state)
{
	struct fixture *f = *state;
	json_t *j;
	assert_int_equal(call(f, "GET", "/v1/health", NULL, &j), 200);
	assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
	assert_int_equal(json_integer_value(json_object_get(j, "schema_version")),
			 (json_int_t)store_migrations_count);
	json_decref(j);
}

static void test_tenant_lifecycle(void **state)
{
	struct fixture *f = *state;
	json_t *j;
	assert_int_equal(call(f, "POST", "/v1/tenants",
			      "{\"name\":\"acme\",\"vcpus\":8,\"weight\":200,"
			      "\"cpu_max_cores\":2.5,\"memory_bytes\":1073741824,"
			      "\"class\":\"guaranteed\"}", &j), 201);
	assert_string_equal(json_string_value(json_object_get(j, "name")), "acme");
	assert_int_equal(json_integer_value(json_object_get(j, "vcpus")), 8);
	assert_int_equal(json_integer_value(json_object_get(j, "weight")), 200);
	assert_true(json_real_value(json_object_get(j, "cpu_max_cores")) == 2.5);
	assert_int_equal(json_integer_value(json_object_get(j, "memory_bytes")), 1073741824);
	assert_string_equal(json_string_value(json_object_get(j, "class")), "guaranteed");
	assert_int_equal(json_integer_value(json_object_get(j, "vcpus_used")), 0);
	json_decref(j);

	/* defaults */
	assert_int_equal(call(f, "POST", "/v1/tenants", "{\"name\":\"beta\",\"vcpus\":2}", &j), 201);
	assert_int_equal(json_integer_value(json_object_get(j, "weight")), 100);
	assert_true(json_is_null(json_object_get(j, "cpu_max_cores")));
	assert_true(json_is_null(json_object_get(j, "memory_bytes")));
	assert_string_equal(json_string_value(json_object_get(j, "class")), "burstable");
	json_decref(j);

	assert_int_equal(call(f, "GET", "/v1/tenants", NULL, &j), 200);
	json_t *arr = json_object_get(j, "tenants");
	assert_int_equal(json_array_size(arr), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "name")), "acme");
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 1), "name")), "beta");
	json_decref(j);

	assert_int_equal(call(f, "PATCH", "/v1/tenants/acme",
			      "{\"weight\":300,\"cpu_max_cores\":null,\"class\":\"best-effort\"}",
			      &j), 200);
	assert_int_equal(json_integer_value(json_object_get(j, "weight")), 300);
	assert_true(json_is_null(json_object_get(j, "cpu_max_cores")));
	assert_int_equal(json_integer_value(json_object_get(j, "memory_bytes")), 1073741824);
	assert_string_equal(json_string_value(json_object_get(j, "class")), "best-effort");
	json_decref(j);

	assert_int_equal(call(f, "GET", "/v1/tenants/acme", NULL, &j), 200);
	assert_int_equal(json_integer_value(json_object_get(j, "weight")), 300);
	json_decref(j);

	assert_int_equal(call(f, "DELETE", "/v1/tenants/acme", NULL, &j), 204);
	assert_null(j);
	assert_int_equal(call(f, "GET", "/v1/tenants/acme", NULL, &j), 404);
	assert_string_equal(err_code(j), "not_found");
	json_decref(j);
	assert_int_equal(tenant_count(f), 1);

	/* the audit log has create, create, update, delete */
	assert_int_equal(call(f, "GET", "/v1/events", NULL, &j), 200);
	json_t *ev = json_object_get(j, "events");
	assert_int_equal(json_array_size(ev), 4);
	assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 2), "action")),
			    "tenant.update");
	assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 2), "actor")),
			    "uid:0");
	json_int_t id2 = json_integer_value(json_object_get(json_array_get(ev, 1), "id"));
	json_decref(j);
	char *path = xasprintf("/v1/events?after=%lld&limit=1", (long long)id2);
	assert_int_equal(call(f, "GET", path, NULL, &j), 200);
	free(path);
	ev = json_object_get(j, "events");
	assert_int_equal(json_array_size(ev), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 0), "action")),
			    "tenant.update");
	json_decref(j);
	assert_int_equal(call(f, "GET", "/v1/events?limit=0", NULL, &j), 400);
	json_decref(j);
	assert_int_equal(call(f, "GET", "/v1/events?after=x", NULL, &j), 400);
	json_decref(j);
}

/* GET /v1/events?after=ID: "pruned" in the reply whenever pruned == true */
static json_t *events_get(struct fixture *f, const char *query, int64_t oldest, bool pruned)
{
	_cleanup_free_ char *path = xasprintf("/v1/events%s", query);
	json_t *j;
	assert_int_equal(call(f, "GET", path, NULL, &j), 200);
	json_t *o = json_object_get(j, "oldest_id");
	if (oldest)
		assert_int_equal(json_integer_value(o), oldest);
	else
		assert_true(json_is_null(o));
	if (!json_is_boolean(json_object_get(j, "pruned")) ||
	    json_boolean_value(json_object_get(j, "pruned")) != pruned)
		fail_msg("GET %s: \"pruned\" is not %s", path, pruned ? "true" : "false");
	return j;
}

/* The reply says which is the oldest event kept, and whether the client's
 * cursor points before it: events it had not read were pruned. */
static void test_events_pruned(void **state)
{
	struct fixture *f = *state;
	json_t *j = events_get(f, "", 0, false); /* an empty log */
	assert_int_equal(json_array_size(json_object_get(j, "events")), 0);
	json_decref(j);
	j = events_get(f, "?after=0", 0, false);
	json_decref(j);

	assert_int_equal(call(f, "POST", "/v1/tenants", "{\"name\":\"acme\",\"vcpus\":4}",
			      NULL), 201);
	j = events_get(f, "?after=0", 1, false);
	assert_int_equal(json_array_size(json_object_get(j, "events")), 1);
	json_decref(j);

	/* 1500 more, then the oldest beyond 1000 go */
	assert_int_equal(st_exec(f->ts.st, "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL "
				 "SELECT i + 1 FROM c WHERE i < 1500) INSERT INTO events "
				 "(ts_ms, actor, action, target) SELECT 1700000000000 + i, "
				 "'test', 'test.event', 't' FROM c"), SQLITE_OK);
	uint64_t deleted = 0;
	assert_int_equal(store_event_prune(f->ts.st, now_real_ns() / 1000000, 30, 1000,
					   &deleted, NULL), 0);
	assert_int_equal(deleted, 501);
	/* ids 502..1501 are left */
	j = events_get(f, "?after=0&limit=2", 502, true);
	json_t *ev = json_object_get(j, "events");
	assert_int_equal(json_array_size(ev), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(ev, 0), "id")), 502);
	json_decref(j);
	json_decref(events_get(f, "?after=500&limit=1", 502, true));
	json_decref(events_get(f, "?after=501&limit=1", 502, false)); /* missed nothing */
	json_decref(events_get(f, "?after=1000&limit=1", 502, false));
	json_decref(events_get(f, "?after=1501", 502, false));        /* at the end */
	json_decref(events_get(f, "?after=9999", 502, false));
	json_decref(events_get(f, "?limit=1", 502, false));            /* no cursor */
	json_decref(events_get(f, "?since_ms=0&limit=1", 502, false));
	json_decref(events_get(f, "?after=1&since_ms=1700000001000", 502, true));
}

/* Each bad request: the status, the error code, a message fragment, and no
 * change to tenants or events. */
static void test_bad_requests(void **state)
{
	struct fixture *f = *state;
	json_t *j;
	assert_int_equal(call(f, "POST", "/v1/tenants", "{\"name\":\"acme\",\"vcpus\":4}", NULL), 201);
	size_t tenants = tenant_count(f), events = listed_event_count(f);
	struct {
		const char *method, *path, *body;
		int status;
		const char *code, *msg;
	} cases[] = {
		{ "POST", "/v1/tenants", "{\"name\":\"acme\",\"vcpus\":4}", 409, "conflict", "already exists" },
		{ "POST", "/v1/tenants", "{\"name\":\"../x\",\"vcpus\":4}", 400, "invalid", "invalid tenant name" },
		{ "POST", "/v1/tenants", "{\"name\":\"a/b\",\"vcpus\":4}", 400, "invalid", "invalid tenant name" },
		{ "POST", "/v1/tenants", "{\"name\":\"..\",\"vcpus\":4}", 400, "invalid", "invalid tenant name" },
		{ "POST", "/v1/tenants", "{\"name\":\"\",\"vcpus\":4}", 400, "invalid", "empty" },
		{ "POST", "/v1/tenants", "{\"name\":\"w0\",\"vcpus\":4,\"weight\":0}", 400, "invalid", "weight 0 is out of range" },
		{ "POST", "/v1/tenants", "{\"name\":\"w1\",\"vcpus\":4,\"weight\":10001}", 400, "invalid", "weight 10001" },
		{ "POST", "/v1/tenants", "{\"name\":\"w2\",\"vcpus\":4,\"weight\":\"100\"}", 400, "invalid", "weight must be an integer" },
		{ "POST", "/v1/tenants", "{\"name\":\"w3\",\"vcpus\":-1}", 400, "invalid", "vcpus -1" },
		{ "POST", "/v1/tenants", "{\"name\":\"w4\",\"vcpus\":4,\"cpu_max_cores\":0}", 400, "invalid", "cpu_max_cores" },
		{ "POST", "/v1/tenants", "{\"name\":\"w5\",\"vcpus\":4,\"memory_bytes\":12}", 400, "invalid", "memory_bytes" },
		{ "POST", "/v1/tenants", "{\"name\":\"w6\",\"vcpus\":4,\"class\":\"gold\"}", 400, "invalid", "invalid class 'gold'" },
		{ "POST", "/v1/tenants", "{\"name\":\"w7\",\"vcpus\":4,\"colour\":1}", 400, "invalid", "unknown field 'colour'" },
		{ "POST", "/v1/tenants", "{\"name\":\"w8\"}", 400, "invalid", "missing field 'vcpus'" },
		{ "POST", "/v1/tenants", "{\"vcpus\":1}", 400, "invalid", "missing field 'name'" },
		{ "POST", "/v1/tenants", "{\"name\":\"w9\",\"vcpus\":1,\"name\":\"x\"}", 400, "invalid", "malformed JSON" },
		{ "POST", "/v1/tenants", "{\"name\":", 400, "invalid", "malformed JSON at line 1" },
		{ "POST", "/v1/tenants", "[1,2]", 400, "invalid", "must be a JSON object" },
		{ "POST", "/v1/tenants", "", 400, "invalid", "empty" },
		{ "POST", "/v1/tenants", NULL, 400, "invalid", "empty" },
		{ "PATCH", "/v1/tenants/acme", "{}", 400, "invalid", "nothing to change" },
		{ "PATCH", "/v1/tenants/acme", "{\"name\":\"b\"}", 400, "invalid", "cannot be renamed" },
		{ "PATCH", "/v1/tenants/acme", "{\"weight\":0}", 400, "invalid", "weight 0" },
		{ "PATCH", "/v1/tenants/nope", "{\"weight\":5}", 404, "not_found", "nope" },
		{ "PATCH", "/v1/tenants/..", "{\"weight\":5}", 400, "invalid", "invalid tenant name" },
		{ "DELETE", "/v1/tenants/nope", NULL, 404, "not_found", "nope" },
		{ "GET", "/v1/tenants/a%2Fb", NULL, 400, "invalid", "invalid tenant name" },
		{ "GET", "/v1/tenants/a/b", NULL, 400, "invalid", "invalid tenant name" },
		{ "GET", "/v1/nothing", NULL, 404, "not_found", "no such endpoint" },
		{ "PUT", "/v1/tenants/acme", "{}", 405, "method_not_allowed", "PUT" },
		{ "DELETE", "/v1/tenants", NULL, 405, "method_not_allowed", "DELETE" },
		{ "POST", "/v1/health", NULL, 405, "method_not_allowed", "POST" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int st = call(f, cases[i].method, cases[i].path, cases[i].body, &j);
		if (st != cases[i].status || strcmp(err_code(j), cases[i].code) != 0 ||
		    !strstr(err_msg(j), cases[i].msg))
			fail_msg("case %zu %s %s: got %d %s '%s'", i, cases[i].method,
				 cases[i].path, st, err_code(j), err_msg(j));
		json_decref(j);
		assert_int_equal(tenant_count(f), tenants);
		assert_int_equal(listed_event_count(f), events);
	}
	struct tenant t;
	assert_int_equal(store_tenant_get(f->ts.st, "acme", &t, NULL), 0);
	assert_int_equal(t.vcpus, 4);
	assert_int_equal(t.weight, 100);
}

static void test_body_limit(void **state)
{
	struct fixture *f = *state;
	size_t n = API_MAX_BODY_BYTES + 10;
	char *big = xmalloc(n + 1);
	memset(big, ' ', n);
	big[n] = '\0';
	memcpy(big, "{\"name\":\"big\",\"vcpus\":1}", 24);
	json_t *j;
	assert_int_equal(call(f, "POST", "/v1/tenants", big, &j), 413);
	assert_string_equal(err_code(j), "too_large");
	json_decref(j);
	free(big);
	assert_int_equal(tenant_count(f), 0);
}

static void test_delete_with_vms_refused(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(call(f, "POST", "/v1/tenants", "{\"name\":\"acme\",\"vcpus\":4}", NULL), 201);
	/* a VM row, as VM registration will write it */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->ts.db, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO vms(name, tenant, pid, vcpus, state, source,"
				      " created_at, updated_at) VALUES ('vm1','acme',1,2,'running',"
				      "'registered',0,0); INSERT INTO reservations (vm, tenant, vcpus, "
				      "cpu_policy, thread_policy, shares, created_at) VALUES ('vm1', "
				      "'acme', 2, 'shared', 'prefer', '0:2', 0)", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	json_t *j;
	assert_int_equal(call(f, "DELETE", "/v1/tenants/acme", NULL, &j), 409);
	assert_string_equal(err_code(j), "conflict");
	json_decref(j);
	assert_int_equal(call(f, "PATCH", "/v1/tenants/acme", "{\"vcpus\":1}", &j), 409);
	json_decref(j);
	assert_int_equal(call(f, "GET", "/v1/tenants/acme", NULL, &j), 200);
	assert_int_equal(json_integer_value(json_object_get(j, "vcpus_used")), 2);
	assert_int_equal(json_integer_value(json_object_get(j, "vm_count")), 1);
	json_decref(j);
}

/* admitted -> running -> quarantined -> released, as a control plane and
 * vcpuctl see it */
static void test_vm_lifecycle(void **state)
{
	struct fixture *f = *state;
	json_t *j;
	assert_int_equal(call(f, "POST", "/v1/tenants", "{\"name\":\"acme\",\"vcpus\":8}", NULL),
			 201);
	assert_int_equal(call(f, "POST", "/v1/vms/admit", "{\"name\":\"db-1\",\"tenant\":"
			      "\"acme\",\"vcpus\":2}", &j), 201);
	char *first = json_dumps(j, JSON_SORT_KEYS);
	json_decref(j);
	/* a retry (the control plane timed out): 200, the same answer, no
	 * new event; another request for the name: 409 naming the difference */
	size_t events0 = listed_event_count(f);
	assert_int_equal(call(f, "POST", "/v1/vms/admit", "{\"name\":\"db-1\",\"tenant\":"
			      "\"acme\",\"vcpus\":2}", &j), 200);
	char *again = json_dumps(j, JSON_SORT_KEYS);
	assert_string_equal(again, first);
	free(again);
	free(first);
	json_decref(j);
	assert_int_equal(listed_event_count(f), events0);
	assert_int_equal(call(f, "POST", "/v1/vms/admit", "{\"name\":\"db-1\",\"tenant\":"
			      "\"acme\",\"vcpus\":4}", &j), 409);
	assert_non_null(strstr(err_msg(j), "this request differs: vcpus 4 (admitted with 2)"));
	json_decref(j);
	/* admitted, not started: vm show and vm list know it, with placement */
	assert_int_equal(call(f, "GET", "/v1/vms/db-1", NULL, &j), 200);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "admitted");
	json_t *pl = json_object_get(j, "placement");
	assert_true(json_is_object(pl));
	assert_string_equal(json_string_value(json_object_get(pl, "pool")), "shared");
	assert_int_equal(json_array_size(json_object_get(pl, "nodes")), 1);
	assert_true(strlen(json_string_value(json_object_get(pl, "cpus"))) > 0);
	assert_true(json_is_null(json_object_get(j, "fault")));
	assert_int_equal(json_integer_value(json_object_get(j, "pid")), 0);
	json_decref(j);
	assert_int_equal(call(f, "GET", "/v1/vms", NULL, &j), 200);
	json_t *vms = json_object_get(j, "vms");
	assert_int_equal(json_array_size(vms), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(vms, 0), "state")),
			    "admitted");
	json_decref(j);

	/* its process starts and is registered: bound to the admission */
	fake_vmm(&f->rf, 4100, 777, 2, 4100);
	assert_int_equal(call(f, "POST", "/v1/vms", "{\"name\":\"db-1\",\"tenant\":\"acme\","
			      "\"pid\":4100}", &j), 201);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "running");
	assert_int_equal(json_integer_value(json_object_get(j, "start_time")), 777);
	assert_true(json_is_object(json_object_get(j, "placement")));
	assert_int_equal(json_array_size(json_object_get(j, "vcpu_threads")), 2);
	json_decref(j);
	/* the same process again under another name: 409, nothing changed */
	size_t events = listed_event_count(f);
	assert_int_equal(call(f, "POST", "/v1/vms", "{\"name\":\"db-2\",\"tenant\":\"acme\","
			      "\"pid\":4100}", &j), 409);
	assert_non_null(strstr(err_msg(j), "already registered as VM 'db-1'"));
	json_decref(j);
	assert_int_equal(listed_event_count(f), events);

	/* health tells the truth: a quarantined VM makes it degraded */
	assert_int_equal(call(f, "GET", "/v1/health", NULL, &j), 200);
	assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
	assert_int_equal(json_integer_value(json_object_get(j, "quarantined")), 0);
	json_decref(j);
	registry_fault_set(f->rf.reg, "db-1", REGISTRY_FAULT_CGROUP,
			   "cannot write cpu.max of tenant-acme/vm-db-1: Invalid argument");
	assert_int_equal(call(f, "GET", "/v1/health", NULL, &j), 200);
	assert_string_equal(json_string_value(json_object_get(j, "status")), "degraded");
	assert_int_equal(json_integer_value(json_object_get(j, "quarantined")), 1);
	json_t *q = json_array_get(json_object_get(j, "quarantined_vms"), 0);
	assert_string_equal(json_string_value(json_object_get(q, "name")), "db-1");
	assert_string_equal(json_string_value(json_object_get(q, "kind")), "cgroup");
	json_decref(j);
	assert_int_equal(call(f, "GET", "/v1/vms/db-1", NULL, &j), 200);
	json_t *fl = json_object_get(j, "fault");
	assert_string_equal(json_string_value(json_object_get(fl, "kind")), "cgroup");
	assert_non_null(strstr(json_string_value(json_object_get(fl, "reason")), "cpu.max"));
	json_decref(j);
	/* so do tick errors */
	registry_faults_begin(f->rf.reg, REGISTRY_FAULT_CGROUP);
	registry_faults_end(f->rf.reg, REGISTRY_FAULT_CGROUP);
	f->ctx.last_errors = 2;
	f->ctx.last_error = xstrdup("cannot read the inventory: disk I/O error");
	assert_int_equal(call(f, "GET", "/v1/health", NULL, &j), 200);
	assert_string_equal(json_string_value(json_object_get(j, "status")), "degraded");
	assert_int_equal(json_integer_value(json_object_get(j, "last_tick_errors")), 2);
	assert_string_equal(json_string_value(json_object_get(j, "last_error")),
			    "cannot read the inventory: disk I/O error");
	json_decref(j);
	free(f->ctx.last_error);
	f->ctx.last_error = NULL;
	f->ctx.last_errors = 0;

	/* its own cpu.weight: set, shown, audited; null goes back to the default */
	assert_int_equal(call(f, "GET", "/v1/vms/db-1", NULL, &j), 200);
	assert_true(json_is_null(json_object_get(j, "weight")));
	json_decref(j);
	assert_int_equal(call(f, "PATCH", "/v1/vms/db-1", "{\"weight\":250}", &j), 200);
	assert_int_equal(json_integer_value(json_object_get(j, "weight")), 250);
	json_decref(j);
	assert_int_equal(call(f, "GET", "/v1/vms/db-1", NULL, &j), 200);
	assert_int_equal(json_integer_value(json_object_get(j, "weight")), 250);
	json_decref(j);
	assert_int_equal(st_int(f->rf.ts.st, "SELECT count(*) FROM events WHERE action = "
				"'vm.set' AND target = 'vm/db-1' AND json_extract(details, "
				"'$.weight') = 250"), 1);
	/* the same again writes nothing */
	assert_int_equal(call(f, "PATCH", "/v1/vms/db-1", "{\"weight\":250}", NULL), 200);
	assert_int_equal(st_int(f->rf.ts.st, "SELECT count(*) FROM events WHERE action = "
				"'vm.set'"), 1);
	assert_int_equal(call(f, "PATCH", "/v1/vms/db-1", "{\"weight\":null}", &j), 200);
	assert_true(json_is_null(json_object_get(j, "weight")));
	json_decref(j);
	static const struct { const char *body; int status; const char *msg; } bad[] = {
		{ "{\"weight\":0}", 400, "weight" },
		{ "{\"weight\":10001}", 400, "weight" },
		{ "{\"weight\":\"5\"}", 400, "weight" },
		{ "{}", 400, "nothing to change" },
		{ "{\"vcpus\":4}", 400, "cannot be changed" },
		{ "{\"colour\":1}", 400, "unknown field 'colour'" },
		{ "[1]", 400, "JSON object" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int st = call(f, "PATCH", "/v1/vms/db-1", bad[i].body, &j);
		if (st != bad[i].status || !strstr(err_msg(j), bad[i].msg))
			fail_msg("PATCH %s: %d '%s'", bad[i].body, st, err_msg(j));
		json_decref(j);
	}
	assert_int_equal(call(f, "PATCH", "/v1/vms/nope", "{\"weight\":5}", &j), 404);
	json_decref(j);
	assert_int_equal(st_int(f->rf.ts.st, "SELECT count(*) FROM events WHERE action = "
				"'vm.set'"), 2);

	/* release: the VM and its admission */
	assert_int_equal(call(f, "DELETE", "/v1/vms/db-1", NULL, NULL), 204);
	assert_int_equal(call(f, "GET", "/v1/vms/db-1", NULL, &j), 404);
	json_decref(j);
	assert_int_equal(call(f, "GET", "/v1/tenants/acme", NULL, &j), 200);
	assert_int_equal(json_integer_value(json_object_get(j, "vcpus_used")), 0);
	json_decref(j);
	assert_int_equal(call(f, "DELETE", "/v1/vms/db-1", NULL, &j), 404);
	json_decref(j);
	/* a client retrying its release asks that a missing VM be no error */
	size_t events1 = listed_event_count(f);
	assert_int_equal(call(f, "DELETE", "/v1/vms/db-1?missing_ok=1", NULL, NULL), 204);
	assert_int_equal(call(f, "DELETE", "/v1/vms/admit?missing_ok=1", NULL, NULL), 204);
	assert_int_equal(listed_event_count(f), events1);
	assert_int_equal(call(f, "DELETE", "/v1/vms/db-1?missing_ok=0", NULL, &j), 404);
	json_decref(j);
	assert_int_equal(call(f, "DELETE", "/v1/vms/db-1?missing_ok=yes", NULL, &j), 400);
	assert_non_null(strstr(err_msg(j), "missing_ok"));
	json_decref(j);
}

/* The daemon's rows not yet written: 2000 (written meanwhile, so also in
 * the store), 3000 and 4000, filtered by since_ms as the daemon does. */
static void fake_pending(void *data, const char *vm, int64_t since_ms,
			 struct store_sample **out, size_t *n)
{
	(void)data;
	assert_string_equal(vm, "web");
	*out = xcalloc(3, sizeof(**out));
	*n = 0;
	for (int64_t ts = 2000; ts <= 4000; ts += 1000)
		if (ts >= since_ms)
			(*out)[(*n)++] = (struct store_sample){ NULL, ts, 100, 1, NAN };
}

/* A throttler that caps "noisy" for "db-1" (the daemon's control_explain()
 * makes these objects; test_control checks them). */
static json_t *fake_explain(void *data, const char *vm)
{
	(void)data;
	if (strcmp(vm, "noisy") == 0)
		return json_pack("{s:s,s:f,s:f,s:f,s:b,s:n,s:{s:f,s:s,s:b,s:n,s:b,s:f,s:f,s:f,"
				 "s:f,s:f,s:s,s:[s]}}",
				 "status", "hold", "usage_pct", 24.9, "steal_pct", 70.1,
				 "self_throttled_pct", 60.0, "dry_run", false, "victim",
				 "cap", "cap_pct", 25.0, "cpu_max", "25000 100000", "dry_run", false,
				 "last_good_pct", "probing", false, "hold_s", 10.0, "hold_left_s", 7.5,
				 "calm_s", 0.0, "clear_need_s", 5.0, "idle_pct", 50.0, "last_action",
				 "cap", "victims", "db-1");
	if (strcmp(vm, "db-1") == 0)
		return json_pack("{s:s,s:f,s:f,s:f,s:b,s:{s:b,s:b,s:f,s:f,s:f,s:f,s:n,s:f,s:f,"
				 "s:f,s:[{s:s,s:f,s:b}]},s:n}",
				 "status", "victim", "usage_pct", 150.0, "steal_pct", 40.0,
				 "self_throttled_pct", 0.0, "dry_run", false, "victim", "engaged", true,
				 "pressing", true, "steal_pct", 40.0, "high_pct", 30.0, "low_pct", 15.0,
				 "clear_level_pct", 15.0, "resid_pct", "breach_s", 3.0,
				 "breach_need_s", 3.0, "clear_s", 0.0, "capped_for_it", "vm", "noisy",
				 "cap_pct", 25.0, "dry_run", false, "cap");
	return NULL;
}

static void test_explain(void **state)
{
	struct fixture *f = *state;
	json_t *j;
	assert_int_equal(call(f, "POST", "/v1/tenants", "{\"name\":\"acme\",\"vcpus\":8,"
			      "\"class\":\"guaranteed\"}", NULL), 201);
	assert_int_equal(call(f, "POST", "/v1/tenants", "{\"name\":\"scrap\",\"vcpus\":8,"
			      "\"class\":\"best-effort\"}", NULL), 201);
	assert_int_equal(call(f, "POST", "/v1/vms/admit", "{\"name\":\"db-1\",\"tenant\":"
			      "\"acme\",\"vcpus\":2}", NULL), 201);
	assert_int_equal(call(f, "POST", "/v1/vms/admit", "{\"name\":\"noisy\",\"tenant\":"
			      "\"scrap\",\"vcpus\":2}", NULL), 201);
	/* no throttler (or no tick yet): placement, and that it is not judged */
	assert_int_equal(call(f, "GET", "/v1/vms/db-1/explain", NULL, &j), 200);
	assert_string_equal(json_string_value(json_object_get(j, "class")), "guaranteed");
	assert_true(json_is_null(json_object_get(j, "throttle")));
	_cleanup_free_ char *all = json_dumps(json_object_get(j, "explanation"), 0);
	assert_non_null(strstr(all, "belongs to tenant acme (guaranteed"));
	assert_non_null(strstr(all, "admitted to the shared pool and pinned to CPUs"));
	assert_non_null(strstr(all, "shared vCPUs admitted"));
	assert_non_null(strstr(all, "no figures of it from its last tick"));
	json_decref(j);

	f->ctx.explain = fake_explain;
	/* the cap, the event that set it, what lifts it */
	assert_int_equal(st_exec(f->rf.ts.st, "INSERT INTO events (ts_ms, actor, action, target, "
				 "details) VALUES (1700000000000, 'vcpud', 'throttle.cap', 'vm/noisy', "
				 "'{\"victim\":\"db-1\",\"victim_steal_pct\":48.5,\"cap_pct\":25.0,"
				 "\"reason\":\"steal\",\"usage_pct\":50.0,\"floor_pct\":10.0}')"),
			 SQLITE_OK);
	assert_int_equal(call(f, "GET", "/v1/vms/noisy/explain", NULL, &j), 200);
	free(all);
	all = json_dumps(json_object_get(j, "explanation"), 0);
	assert_non_null(strstr(all, "capped at 25.0% of a pCPU (cpu.max 25000 100000) as an "
			       "antagonist of db-1"));
	assert_non_null(strstr(all, "throttle.cap of vm/noisy to 25.0% (reason steal; victim db-1 "
			       "at 48.5% steal"));
	assert_non_null(strstr(all, "What lifts it"));
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "event"),
							      "action")), "throttle.cap");
	json_decref(j);
	/* its victim: the caps on its account, the same event naming it */
	assert_int_equal(call(f, "GET", "/v1/vms/db-1/explain", NULL, &j), 200);
	free(all);
	all = json_dumps(json_object_get(j, "explanation"), 0);
	assert_non_null(strstr(all, "It is a confirmed victim: steal 40.0%"));
	assert_non_null(strstr(all, "Capped on its account: noisy (cap 25.0%)"));
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "victim_event"),
							      "target")), "vm/noisy");
	json_decref(j);
	/* unknown and bad names */
	assert_int_equal(call(f, "GET", "/v1/vms/nope/explain", NULL, &j), 404);
	assert_non_null(strstr(err_msg(j), "no VM 'nope'"));
	json_decref(j);
	assert_int_equal(call(f, "GET", "/v1/vms/../explain", NULL, &j), 400);
	json_decref(j);
	assert_int_equal(call(f, "POST", "/v1/vms/db-1/explain", "{}", &j), 405);
	json_decref(j);
	f->ctx.explain = NULL;
}

static void test_top_and_stats(void **state)
{
	struct fixture *f = *state;
	json_t *j;
	/* before the first tick: an empty list */
	assert_int_equal(call(f, "GET", "/v1/top", NULL, &j), 200);
	assert_int_equal(json_array_size(json_object_get(j, "vms")), 0);
	json_decref(j);
	/* after a tick the daemon's snapshot is served as it is */
	json_t *top = json_pack("{s:I,s:[{s:s}]}", "tick", (json_int_t)7, "vms", "name", "web");
	f->ctx.top = top_of;
	f->ctx.top_data = top;
	assert_int_equal(call(f, "GET", "/v1/top", NULL, &j), 200);
	assert_int_equal(json_integer_value(json_object_get(j, "tick")), 7);
	json_decref(j);
	json_decref(top);
	f->ctx.top = NULL;

	assert_int_equal(call(f, "GET", "/v1/vms/web/stats", NULL, &j), 404);
	json_decref(j);
	assert_int_equal(call(f, "GET", "/v1/vms/../stats", NULL, &j), 400);
	json_decref(j);
	assert_int_equal(call(f, "POST", "/v1/tenants", "{\"name\":\"acme\",\"vcpus\":4}", NULL), 201);
	struct vm v = { .vcpus = 2, .pid = 1, .state = VM_STATE_RUNNING };
	strcpy(v.name, "web");
	strcpy(v.tenant, "acme");
	assert_int_equal(store_vm_create(f->ts.st, &v, "test", NULL), 0);
	struct store_sample rows[] = { { "web", 1000, 150, 12.5, NAN },
				       { "web", 2000, 160, 40, 25.0 } };
	assert_int_equal(store_samples_add(f->ts.st, rows, 2, NULL, 0, 0, NULL), 2);
	assert_int_equal(call(f, "GET", "/v1/vms/web/stats?since_ms=1500", NULL, &j), 200);
	json_t *smp = json_object_get(j, "samples");
	assert_int_equal(json_array_size(smp), 1);
	/* the throttle's cap at that tick (null: none) */
	assert_true(json_real_value(json_object_get(json_array_get(smp, 0), "cap_pct")) == 25.0);
	assert_true(json_real_value(json_object_get(json_array_get(smp, 0), "steal_pct")) == 40.0);
	json_decref(j);
	/* the rows still waiting in the daemon's history follow the stored
	 * ones (one that is in both counts once), and a limit keeps the
	 * newest of all */
	f->ctx.samples_pending = fake_pending;
	assert_int_equal(call(f, "GET", "/v1/vms/web/stats", NULL, &j), 200);
	smp = json_object_get(j, "samples");
	assert_int_equal(json_array_size(smp), 4);
	for (int64_t i = 0; i < 4; i++)
		assert_int_equal(json_integer_value(json_object_get(json_array_get(smp, (size_t)i),
								    "ts_ms")), 1000 * (i + 1));
	json_decref(j);
	assert_int_equal(call(f, "GET", "/v1/vms/web/stats?limit=3&since_ms=1500", NULL, &j), 200);
	smp = json_object_get(j, "samples");
	assert_int_equal(json_array_size(smp), 3);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(smp, 0), "ts_ms")), 2000);
	json_decref(j);
	assert_int_equal(call(f, "GET", "/v1/vms/web/stats?limit=2", NULL, &j), 200);
	smp = json_object_get(j, "samples");
	assert_int_equal(json_array_size(smp), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(smp, 0), "ts_ms")), 3000);
	json_decref(j);
	f->ctx.samples_pending = NULL;
	assert_int_equal(call(f, "GET", "/v1/vms/web/stats?limit=0", NULL, &j), 400);
	json_decref(j);
	assert_int_equal(call(f, "DELETE", "/v1/vms/web/stats", NULL, &j), 405);
	json_decref(j);
}

static void test_wire_roundtrip(void **state)
{
	(void)state;
	struct tenant t, back;
	tenant_init(&t);
	strcpy(t.name, "x");
	t.vcpus = 3;
	t.cpu_max_set = true;
	t.cpu_max_cores = 1.5;
	t.class_ = TENANT_CLASS_BEST_EFFORT;
	json_t *j = api_tenant_to_json(&t);
	assert_int_equal(api_tenant_from_reply(j, &back, NULL), 0);
	json_decref(j);
	assert_string_equal(back.name, "x");
	assert_int_equal(back.vcpus, 3);
	assert_true(back.cpu_max_set && back.cpu_max_cores == 1.5);
	assert_false(back.memory_set);
	assert_int_equal(back.class_, TENANT_CLASS_BEST_EFFORT);

	struct tenant_patch p = { .set_memory = true, .set_weight = true, .weight = 7 };
	j = api_tenant_patch_to_json(&p);
	struct tenant_patch q;
	assert_int_equal(api_tenant_patch_from_json(j, &q, NULL), 0);
	json_decref(j);
	assert_true(q.set_memory && !q.memory_set && q.set_weight && q.weight == 7);
	assert_false(q.set_vcpus || q.set_cpu_max || q.set_class);

	assert_int_equal(api_status_for_errno(EEXIST), 409);
	assert_int_equal(api_status_for_errno(EBUSY), 409);
	assert_int_equal(api_status_for_errno(ENOENT), 404);
	assert_int_equal(api_status_for_errno(EFBIG), 413);
	assert_int_equal(api_status_for_errno(EIO), 500);
}

/* Listings come in pages by name: limit, after, next. */
static void test_pages(void **state)
{
	struct fixture *f = *state;
	json_t *j;
	assert_int_equal(call(f, "POST", "/v1/tenants", "{\"name\":\"acme\",\"vcpus\":16}", NULL),
			 201);
	const char *names[] = { "e", "a", "d", "c", "b" };
	for (size_t i = 0; i < 5; i++) {
		char body[96];
		snprintf(body, sizeof(body), "{\"name\":\"%s\",\"tenant\":\"acme\",\"vcpus\":1}",
			 names[i]);
		assert_int_equal(call(f, "POST", "/v1/vms/admit", body, &j), 201);
		json_decref(j);
	}
	/* walk the pages two by two */
	char seen[16] = "";
	char path[64] = "/v1/vms?limit=2";
	int pages = 0;
	for (;;) {
		assert_int_equal(call(f, "GET", path, NULL, &j), 200);
		pages++;
		json_t *vms = json_object_get(j, "vms"), *v;
		size_t i;
		assert_true(json_array_size(vms) <= 2);
		json_array_foreach(vms, i, v)
			strcat(seen, json_string_value(json_object_get(v, "name")));
		const char *next = json_string_value(json_object_get(j, "next"));
		if (!next) {
			assert_true(json_is_null(json_object_get(j, "next")));
			json_decref(j);
			break;
		}
		snprintf(path, sizeof(path), "/v1/vms?limit=2&after=%s", next);
		json_decref(j);
	}
	assert_string_equal(seen, "abcde");
	assert_int_equal(pages, 3);
	/* the default page holds them all; after the last one: empty */
	assert_int_equal(call(f, "GET", "/v1/vms", NULL, &j), 200);
	assert_int_equal(json_array_size(json_object_get(j, "vms")), 5);
	json_decref(j);
	assert_int_equal(call(f, "GET", "/v1/vms?after=e", NULL, &j), 200);
	assert_int_equal(json_array_size(json_object_get(j, "vms")), 0);
	json_decref(j);
	/* bad cursors and limits are 400 */
	assert_int_equal(call(f, "GET", "/v1/vms?after=../x", NULL, NULL), 400);
	assert_int_equal(call(f, "GET", "/v1/vms?limit=0", NULL, NULL), 400);
	assert_int_equal(call(f, "GET", "/v1/vms?limit=5001", NULL, NULL), 400);

	/* /v1/host: its reservations by name, the rest whole */
	assert_int_equal(call(f, "GET", "/v1/host?limit=3", NULL, &j), 200);
	assert_int_equal(json_array_size(json_object_get(j, "reservations")), 3);
	assert_string_equal(json_string_value(json_object_get(j, "next")), "c");
	assert_true(json_is_object(json_object_get(j, "topology")));
	json_decref(j);
	assert_int_equal(call(f, "GET", "/v1/host?after=c", NULL, &j), 200);
	assert_int_equal(json_array_size(json_object_get(j, "reservations")), 2);
	assert_true(json_is_null(json_object_get(j, "next")));
	json_decref(j);

	/* /v1/top: its vms by name, the rest of the object kept */
	json_t *top = json_pack("{s:I,s:[{s:s},{s:s},{s:s}]}", "tick", (json_int_t)7, "vms",
				"name", "z", "name", "x", "name", "y");
	f->ctx.top = top_of;
	f->ctx.top_data = top;
	assert_int_equal(call(f, "GET", "/v1/top?limit=2", NULL, &j), 200);
	assert_int_equal(json_integer_value(json_object_get(j, "tick")), 7);
	json_t *vms = json_object_get(j, "vms");
	assert_int_equal(json_array_size(vms), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(vms, 0), "name")), "x");
	assert_string_equal(json_string_value(json_object_get(j, "next")), "y");
	json_decref(j);
	assert_int_equal(call(f, "GET", "/v1/top?after=y", NULL, &j), 200);
	assert_int_equal(json_array_size(json_object_get(j, "vms")), 1);
	assert_true(json_is_null(json_object_get(j, "next")));
	json_decref(j);
	/* the daemon's own object is not changed by a page */
	assert_int_equal(json_array_size(json_object_get(top, "vms")), 3);
	json_decref(top);
	f->ctx.top = NULL;
}

/* --- the HTTP server in the middle of a tick ------------------------------ */

struct client_call {
	const char *sock, *method, *path, *body;
	long status;
	bool done;
	const char *url, *token;       /* over TCP instead of sock */
};

static void *client_thread(void *arg)
{
	struct client_call *c = arg;
	json_t *body = c->body ? json_loads(c->body, 0, NULL) : NULL;
	struct error *err = NULL;
	struct client_target t = { .socket_path = c->sock, .url = c->url, .token = c->token };
	char *reply = NULL;
	size_t len;
	long status;
	/* raw: /metrics answers text */
	if (client_request_raw(&t, c->method, c->path, body, 5000, &status, &reply, &len,
			       &err) == 0)
		c->status = status;
	else
		error_free(&err);
	free(reply);
	if (body)
		json_decref(body);
	__atomic_store_n(&c->done, true, __ATOMIC_SEQ_CST);
	return NULL;
}

/* Serve with `serve` until *done or ms pass. */
static void serve_for(struct api_server *srv, void (*serve)(struct api_server *), bool *done,
		      int ms)
{
	int64_t end = now_mono_ns() + (int64_t)ms * 1000000;
	while (now_mono_ns() < end && !(done && __atomic_load_n(done, __ATOMIC_SEQ_CST))) {
		struct pollfd p = { .fd = api_server_fd(srv), .events = POLLIN };
		poll(&p, 1, 10);
		serve(srv);
	}
}

/* In the middle of a tick a read is answered and a change waits for the
 * tick's end: it never lands between two stages of a tick. */
static void test_server_mid_tick(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *sock = path_join(f->rf.ts.dir, "api.sock", NULL);
	struct api_server_config cfg = { .socket_path = sock };
	struct api_server *srv = NULL;
	struct error *err = NULL;
	assert_int_equal(api_server_start(&f->ctx, &cfg, &srv, &err), 0);

	struct client_call post = { .sock = sock, .method = "POST", .path = "/v1/tenants",
				    .body = "{\"name\":\"acme\",\"vcpus\":4}" };
	struct client_call get = { .sock = sock, .method = "GET", .path = "/v1/health" };
	pthread_t tp, tg;
	assert_int_equal(pthread_create(&tp, NULL, client_thread, &post), 0);
	/* "a tick" serving reads only: the POST is held */
	serve_for(srv, api_server_serve_reads, NULL, 300);
	assert_false(__atomic_load_n(&post.done, __ATOMIC_SEQ_CST));
	assert_int_equal(st_int(f->rf.ts.st, "SELECT count(*) FROM tenants"), 0);
	/* while a GET is answered at once */
	assert_int_equal(pthread_create(&tg, NULL, client_thread, &get), 0);
	serve_for(srv, api_server_serve_reads, &get.done, 3000);
	pthread_join(tg, NULL);
	assert_int_equal(get.status, 200);
	assert_false(__atomic_load_n(&post.done, __ATOMIC_SEQ_CST));
	/* the tick ends: the change goes through */
	api_server_resume(srv);
	serve_for(srv, api_server_run, &post.done, 3000);
	pthread_join(tp, NULL);
	assert_int_equal(post.status, 201);
	assert_int_equal(st_int(f->rf.ts.st, "SELECT count(*) FROM tenants"), 1);

	/* a change held when the server stops is answered or dropped, never
	 * left hanging */
	struct client_call post2 = { .sock = sock, .method = "POST", .path = "/v1/tenants",
				     .body = "{\"name\":\"b\",\"vcpus\":4}" };
	assert_int_equal(pthread_create(&tp, NULL, client_thread, &post2), 0);
	serve_for(srv, api_server_serve_reads, NULL, 200);
	api_server_stop(srv);
	pthread_join(tp, NULL);
	assert_true(post2.done);
}

/* A client call from a thread, served until it is answered: its status. */
static long tcp_call(struct api_server *srv, const char *url, const char *token,
		     const char *method, const char *path, const char *body)
{
	struct client_call c = { .method = method, .path = path, .body = body, .url = url,
				 .token = token };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, client_thread, &c), 0);
	serve_for(srv, api_server_run, &c.done, 5000);
	pthread_join(t, NULL);
	return c.status;
}

/* A free TCP port on loopback (bound, then let go). */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	socklen_t l = sizeof(a);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static void write_tokens(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

/* --listen (plain HTTP on loopback here; e2e/remote.sh does TLS): every
 * request needs a token of the file; read tokens GET only; the audit log
 * names the token; a reload replaces the tokens, a bad file keeps them; a
 * peer holding many idle connections loses its own, not the service. */
static void test_server_tcp_tokens(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *sock = path_join(f->rf.ts.dir, "api.sock", NULL);
	_cleanup_free_ char *tokens = path_join(f->rf.ts.dir, "tokens", NULL);
	uint8_t h[32];
	char admin_hex[65], read_hex[65];
	auth_sha256("admin-secret", 12, h);
	for (int i = 0; i < 32; i++)
		sprintf(admin_hex + 2 * i, "%02x", h[i]);
	auth_sha256("read-secret", 11, h);
	for (int i = 0; i < 32; i++)
		sprintf(read_hex + 2 * i, "%02x", h[i]);
	_cleanup_free_ char *text = xasprintf("# ops\nops admin %s\n\nmon read %s\n", admin_hex,
					      read_hex);
	write_tokens(tokens, text);
	int port = free_port();
	_cleanup_free_ char *listen = xasprintf("127.0.0.1:%d", port);
	_cleanup_free_ char *url = xasprintf("http://127.0.0.1:%d", port);
	struct api_server_config cfg = { .socket_path = sock, .listen = listen,
					 .insecure_http = true, .token_file = tokens };
	struct api_server *srv = NULL;
	struct error *err = NULL;
	assert_int_equal(api_server_start(&f->ctx, &cfg, &srv, &err), 0);

	const char *body = "{\"name\":\"acme\",\"vcpus\":4}";
	assert_int_equal(tcp_call(srv, url, NULL, "GET", "/v1/tenants", NULL), 401);
	assert_int_equal(tcp_call(srv, url, "wrong", "GET", "/v1/tenants", NULL), 401);
	assert_int_equal(tcp_call(srv, url, "read-secret", "GET", "/v1/tenants", NULL), 200);
	assert_int_equal(tcp_call(srv, url, "read-secret", "GET", "/metrics", NULL), 200);
	assert_int_equal(tcp_call(srv, url, "read-secret", "POST", "/v1/tenants", body), 403);
	assert_int_equal(st_int(f->rf.ts.st, "SELECT count(*) FROM tenants"), 0);
	assert_int_equal(tcp_call(srv, url, "admin-secret", "POST", "/v1/tenants", body), 201);
	assert_int_equal(st_int(f->rf.ts.st, "SELECT count(*) FROM events WHERE "
				"actor = 'token:ops' AND action = 'tenant.create'"), 1);
	assert_int_equal(f->ctx.requests[401 - 100], 2);
	assert_int_equal(f->ctx.requests[403 - 100], 1);
	/* the socket needs no token, and takes none */
	struct client_call c = { .sock = sock, .method = "GET", .path = "/v1/tenants" };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, client_thread, &c), 0);
	serve_for(srv, api_server_run, &c.done, 5000);
	pthread_join(t, NULL);
	assert_int_equal(c.status, 200);

	/* reload: ops is gone, mon is admin now */
	_cleanup_free_ char *text2 = xasprintf("mon admin %s\n", read_hex);
	write_tokens(tokens, text2);
	assert_int_equal(api_server_reload_tokens(srv, &err), 1);
	assert_int_equal(tcp_call(srv, url, "admin-secret", "GET", "/v1/tenants", NULL), 401);
	assert_int_equal(tcp_call(srv, url, "read-secret", "DELETE", "/v1/tenants/acme", NULL),
			 204);
	/* a bad file is refused and the tokens stay */
	write_tokens(tokens, "mon admin nothex\n");
	assert_int_equal(api_server_reload_tokens(srv, &err), -1);
	assert_non_null(strstr(err->msg, "tokens:1: the hash of token mon is 6 characters"));
	error_free(&err);
	assert_int_equal(tcp_call(srv, url, "read-secret", "GET", "/v1/health", NULL), 200);

	/* one peer with 150 idle connections: its oldest go, a request from
	 * the same address still gets through */
	int fds[150];
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(0x7f000001) };
	for (int i = 0; i < 150; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		assert_int_equal(connect(fds[i], (struct sockaddr *)&a, sizeof(a)), 0);
		serve_for(srv, api_server_run, NULL, 1);
	}
	serve_for(srv, api_server_run, NULL, 50);
	assert_true(f->ctx.conns_dropped_peer >= 150 - 64);
	assert_int_equal(tcp_call(srv, url, "read-secret", "GET", "/v1/health", NULL), 200);
	for (int i = 0; i < 150; i++)
		close(fds[i]);
	api_server_stop(srv);
}

/* Start-up refusals of --listen: said, nothing left listening. */
static void test_server_tcp_refusals(void **state)
{
	struct fixture *f = *state;
	_cleanup_free_ char *sock = path_join(f->rf.ts.dir, "api.sock", NULL);
	_cleanup_free_ char *tokens = path_join(f->rf.ts.dir, "tokens", NULL);
	write_tokens(tokens, "");
	struct {
		struct api_server_config cfg;
		const char *msg;
	} cases[] = {
		{ { .listen = "10.1.2.3:8443", .insecure_http = true, .token_file = tokens },
		  "plain HTTP on loopback addresses only" },
		{ { .listen = "127.0.0.1:8443", .tls_cert = "/nonexistent/c.pem",
		    .tls_key = "/nonexistent/k.pem", .token_file = tokens },
		  "cannot open TLS certificate /nonexistent/c.pem" },
		{ { .listen = "127.0.0.1:8443", .insecure_http = true,
		    .token_file = "/nonexistent/tokens" }, "cannot read token file" },
		{ { .listen = "127.0.0.1:8443", .insecure_http = true }, "needs --token-file" },
		{ { .listen = "localhost:8443", .insecure_http = true, .token_file = tokens },
		  "'localhost' is not an IPv4 address" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		cases[i].cfg.socket_path = sock;
		struct api_server *srv = NULL;
		struct error *err = NULL;
		assert_int_equal(api_server_start(&f->ctx, &cases[i].cfg, &srv, &err), -1);
		if (!strstr(err->msg, cases[i].msg))
			fail_msg("case %zu: %s", i, err->msg);
		error_free(&err);
		assert_int_equal(access(sock, F_OK), -1);
	}
	/* a token file anyone may write to */
	chmod(tokens, 0666);
	struct api_server_config cfg = { .socket_path = sock, .listen = "127.0.0.1:8443",
					 .insecure_http = true, .token_file = tokens };
	struct api_server *srv = NULL;
	struct error *err = NULL;
	assert_int_equal(api_server_start(&f->ctx, &cfg, &srv, &err), -1);
	assert_non_null(strstr(err->msg, "may be written by anyone"));
	error_free(&err);
}

/* What api_routes() says is what the router does: each route answers
 * something other than "no such endpoint" or 405. */
static void test_routes_served(void **state)
{
	struct fixture *f = *state;
	struct api_route_info served[64];
	size_t n = api_routes(served, ARRAY_SIZE(served));
	for (size_t i = 0; i < n; i++) {
		char path[128];
		const char *brace = strchr(served[i].path, '{');
		if (brace) {
			const char *end = strchr(brace, '}');
			snprintf(path, sizeof(path), "%.*sx%s", (int)(brace - served[i].path),
				 served[i].path, end + 1);
		} else {
			snprintf(path, sizeof(path), "%s", served[i].path);
		}
		struct api_request req = { .method = served[i].method, .path = path,
					   .actor = "uid:0" };
		struct api_response resp;
		api_handle(&f->ctx, &req, &resp);
		/* a served route finds no "x" (404 not_found), or refuses its
		 * empty body (400) */
		if (resp.status == 405 || (resp.status == 404 && resp.body &&
					   strstr(resp.body, "no such endpoint")))
			fail_msg("%s %s: %d %s", served[i].method, path, resp.status,
				 resp.body ? resp.body : "");
		free(resp.body);
	}
	/* and one that is not served is said so */
	struct api_request req = { .method = "GET", .path = "/v1/nothing", .actor = "uid:0" };
	struct api_response resp;
	api_handle(&f->ctx, &req, &resp);
	assert_int_equal(resp.status, 404);
	assert_non_null(strstr(resp.body, "no such endpoint"));
	free(resp.body);
}

static void fake_metrics(void *data, FILE *f)
{
	(*(int *)data)++;
	fputs("# HELP vcpud_fake the daemon's part\n# TYPE vcpud_fake gauge\nvcpud_fake 1\n", f);
}

/* GET /metrics from the router: the text format, the API's families (a
 * tenant's quota and use, requests by code, the tick histogram), then the
 * daemon's; other methods 405 (JSON, like every error). */
static void test_metrics(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(call(f, "POST", "/v1/tenants", "{\"name\":\"acme\",\"vcpus\":8,"
			      "\"memory_bytes\":1073741824}", NULL), 201);
	assert_int_equal(call(f, "GET", "/v1/tenants/nosuch", NULL, NULL), 404);
	int daemon_calls = 0;
	f->ctx.metrics = fake_metrics;
	f->ctx.metrics_data = &daemon_calls;
	api_tick_observe(&f->ctx, 0.004);
	api_tick_observe(&f->ctx, 0.004);
	api_tick_observe(&f->ctx, 7.5);
	struct api_request req = { .method = "GET", .path = "/metrics", .actor = "uid:0" };
	struct api_response resp;
	api_handle(&f->ctx, &req, &resp);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.content_type, "text/plain; version=0.0.4; charset=utf-8");
	assert_int_equal(daemon_calls, 1);
	const char *want[] = {
		"# TYPE vcpud_build_info gauge\nvcpud_build_info{version=\"",
		"\nvcpud_api_requests_total{code=\"201\"} 1\n",
		"\nvcpud_api_requests_total{code=\"404\"} 1\n",
		"\nvcpud_tick_duration_seconds_bucket{le=\"0.0025\"} 0\n",
		"\nvcpud_tick_duration_seconds_bucket{le=\"0.005\"} 2\n",
		"\nvcpud_tick_duration_seconds_bucket{le=\"5\"} 2\n",
		"\nvcpud_tick_duration_seconds_bucket{le=\"+Inf\"} 3\n",
		"\nvcpud_tick_duration_seconds_sum 7.508\n",
		"\nvcpud_tick_duration_seconds_count 3\n",
		"\nvcpud_tenant_vcpus_quota{tenant=\"acme\"} 8\n",
		"\nvcpud_tenant_vcpus_admitted{tenant=\"acme\"} 0\n",
		"\nvcpud_tenant_memory_quota_bytes{tenant=\"acme\"} 1073741824\n",
		"\nvcpud_fake 1\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(want); i++)
		if (!strstr(resp.body, want[i]))
			fail_msg("no '%s' in:\n%s", want[i], resp.body);
	/* no cap set: no sample of it */
	assert_null(strstr(resp.body, "vcpud_tenant_cpu_max_cores{"));
	free(resp.body);
	/* the scrape itself was counted */
	api_handle(&f->ctx, &req, &resp);
	assert_non_null(strstr(resp.body, "vcpud_api_requests_total{code=\"200\"} 1\n"));
	free(resp.body);
	json_t *j;
	assert_int_equal(call(f, "DELETE", "/metrics", NULL, &j), 405);
	assert_non_null(strstr(err_msg(j), "GET only"));
	json_decref(j);
	f->ctx.metrics = NULL;
}

int main(void)
{
	log_set_level(LOG_LVL_WARN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_health, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tenant_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_with_vms_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vm_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_explain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_top_and_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events_pruned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_mid_tick, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_tcp_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_tcp_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_routes_served, setup, teardown),
		cmocka_unit_test(test_wire_roundtrip),
	};
	return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
