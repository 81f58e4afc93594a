/* wire.c - the JSON shapes of the API, shared by vcpud (server) and vcpuctl
 * (client) so both sides agree on field names, types and ranges. Parsing is
 * strict on the server side (unknown keys and wrong types are errors) and
 * lenient on the client side (extra keys from a newer server are ignored). */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "vcpud/admit.h"
#include "vcpud/api.h"
#include "vcpud/registry.h"
#include "vcpud/util.h"

json_t *api_tenant_to_json(const struct tenant *t)
{
	json_t *o = json_object();
	json_object_set_new(o, "name", json_string(t->name));
	json_object_set_new(o, "vcpus", json_integer(t->vcpus));
	json_object_set_new(o, "weight", json_integer(t->weight));
	json_object_set_new(o, "cpu_max_cores",
			    t->cpu_max_set ? json_real(t->cpu_max_cores) : json_null());
	json_object_set_new(o, "memory_bytes",
			    t->memory_set ? json_integer(t->memory_bytes) : json_null());
	json_object_set_new(o, "class", json_string(tenant_class_to_string(t->class_)));
	json_object_set_new(o, "vcpus_used", json_integer(t->vcpus_used));
	json_object_set_new(o, "vm_count", json_integer(t->vm_count));
	json_object_set_new(o, "created_at", json_integer(t->created_at));
	json_object_set_new(o, "updated_at", json_integer(t->updated_at));
	return o;
}

static int get_uint(const json_t *v, const char *key, json_int_t min, json_int_t max,
		    uint32_t *out, struct error **err)
{
	if (!json_is_integer(v))
		return error_set(err, EINVAL, "%s must be an integer", key);
	json_int_t i = json_integer_value(v);
	if (i < min || i > max)
		return error_set(err, EINVAL, "%s %lld is out of range (%lld..%lld)", key,
				 (long long)i, (long long)min, (long long)max);
	*out = (uint32_t)i;
	return 0;
}

/* cpu_max_cores: a number or null (no cap) */
static int get_cpu_max(const json_t *v, bool *set, double *cores, struct error **err)
{
	if (json_is_null(v)) {
		*set = false;
		*cores = 0;
		return 0;
	}
	if (!json_is_number(v))
		return error_set(err, EINVAL, "cpu_max_cores must be a number or null");
	double d = json_number_value(v);
	if (!isfinite(d) || d < TENANT_CPU_MAX_CORES_MIN || d > TENANT_CPU_MAX_CORES_MAX)
		return error_set(err, EINVAL, "cpu_max_cores %g is out of range (%g..%g)", d,
				 TENANT_CPU_MAX_CORES_MIN, TENANT_CPU_MAX_CORES_MAX);
	*set = true;
	*cores = d;
	return 0;
}

static int get_memory(const json_t *v, bool *set, int64_t *bytes, struct error **err)
{
	if (json_is_null(v)) {
		*set = false;
		*bytes = 0;
		return 0;
	}
	if (!json_is_integer(v))
		return error_set(err, EINVAL, "memory_bytes must be an integer or null");
	json_int_t i = json_integer_value(v);
	if (i < TENANT_MEMORY_MIN || i > TENANT_MEMORY_MAX)
		return error_set(err, EINVAL, "memory_bytes %lld is out of range (%lld..%lld)",
				 (long long)i, (long long)TENANT_MEMORY_MIN,
				 (long long)TENANT_MEMORY_MAX);
	*set = true;
	*bytes = i;
	return 0;
}

static int get_class(const json_t *v, enum tenant_class *out, struct error **err)
{
	if (!json_is_string(v))
		return error_set(err, EINVAL, "class must be a string");
	return tenant_class_from_string(json_string_value(v), out, err);
}

int api_tenant_create_from_json(const json_t *obj, struct tenant *out, struct error **err)
{
	if (!json_is_object(obj))
		return error_set(err, EINVAL, "request body must be a JSON object");
	struct tenant t;
	tenant_init(&t);
	bool have_name = false, have_vcpus = false;
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)obj, key, v) {
		if (strcmp(key, "name") == 0) {
			if (!json_is_string(v))
				return error_set(err, EINVAL, "name must be a string");
			const char *s = json_string_value(v);
			if (name_check("tenant name", s, err) < 0)
				return -1;
			strcpy(t.name, s);
			have_name = true;
		} else if (strcmp(key, "vcpus") == 0) {
			if (get_uint(v, key, 0, TENANT_VCPUS_MAX, &t.vcpus, err) < 0)
				return -1;
			have_vcpus = true;
		} else if (strcmp(key, "weight") == 0) {
			if (get_uint(v, key, TENANT_WEIGHT_MIN, TENANT_WEIGHT_MAX, &t.weight, err) < 0)
				return -1;
		} else if (strcmp(key, "cpu_max_cores") == 0) {
			if (get_cpu_max(v, &t.cpu_max_set, &t.cpu_max_cores, err) < 0)
				return -1;
		} else if (strcmp(key, "memory_bytes") == 0) {
			if (get_memory(v, &t.memory_set, &t.memory_bytes, err) < 0)
				return -1;
		} else if (strcmp(key, "class") == 0) {
			if (get_class(v, &t.class_, err) < 0)
				return -1;
		} else {
			return error_set(err, EINVAL, "unknown field '%s'", key);
		}
	}
	if (!have_name)
		return error_set(err, EINVAL, "missing field 'name'");
	if (!have_vcpus)
		return error_set(err, EINVAL, "missing field 'vcpus'");
	if (tenant_validate(&t, err) < 0)
		return -1;
	*out = t;
	return 0;
}

int api_tenant_patch_from_json(const json_t *obj, struct tenant_patch *out, struct error **err)
{
	if (!json_is_object(obj))
		return error_set(err, EINVAL, "request body must be a JSON object");
	struct tenant_patch p;
	memset(&p, 0, sizeof(p));
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)obj, key, v) {
		if (strcmp(key, "vcpus") == 0) {
			if (get_uint(v, key, 0, TENANT_VCPUS_MAX, &p.vcpus, err) < 0)
				return -1;
			p.set_vcpus = true;
		} else if (strcmp(key, "weight") == 0) {
			if (get_uint(v, key, TENANT_WEIGHT_MIN, TENANT_WEIGHT_MAX, &p.weight, err) < 0)
				return -1;
			p.set_weight = true;
		} else if (strcmp(key, "cpu_max_cores") == 0) {
			if (get_cpu_max(v, &p.cpu_max_set, &p.cpu_max_cores, err) < 0)
				return -1;
			p.set_cpu_max = true;
		} else if (strcmp(key, "memory_bytes") == 0) {
			if (get_memory(v, &p.memory_set, &p.memory_bytes, err) < 0)
				return -1;
			p.set_memory = true;
		} else if (strcmp(key, "class") == 0) {
			if (get_class(v, &p.class_, err) < 0)
				return -1;
			p.set_class = true;
		} else if (strcmp(key, "name") == 0) {
			return error_set(err, EINVAL, "a tenant cannot be renamed");
		} else {
			return error_set(err, EINVAL, "unknown field '%s'", key);
		}
	}
	if (!p.set_vcpus && !p.set_weight && !p.set_cpu_max && !p.set_memory && !p.set_class)
		return error_set(err, EINVAL, "nothing to change: give at least one of vcpus, "
				 "weight, cpu_max_cores, memory_bytes, class");
	*out = p;
	return 0;
}

int api_vm_patch_from_json(const json_t *obj, uint32_t *weight, struct error **err)
{
	if (!json_is_object(obj))
		return error_set(err, EINVAL, "request body must be a JSON object");
	bool have = false;
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)obj, key, v) {
		if (strcmp(key, "weight") == 0) {
			*weight = 0;
			if (!json_is_null(v) &&
			    get_uint(v, key, TENANT_WEIGHT_MIN, TENANT_WEIGHT_MAX, weight, err) < 0)
				return error_wrap(err, "weight (null: by vCPUs)");
			have = true;
		} else if (strcmp(key, "name") == 0 || strcmp(key, "tenant") == 0 ||
			   strcmp(key, "vcpus") == 0) {
			return error_set(err, EINVAL, "a VM's %s cannot be changed (release it and "
					 "admit or register it again)", key);
		} else {
			return error_set(err, EINVAL, "unknown field '%s'", key);
		}
	}
	if (!have)
		return error_set(err, EINVAL, "nothing to change: give weight");
	return 0;
}

int api_tenant_from_reply(const json_t *obj, struct tenant *out, struct error **err)
{
	if (!json_is_object(obj))
		return error_set(err, EPROTO, "tenant reply is not a JSON object");
	struct tenant t;
	tenant_init(&t);
	const char *name = json_string_value(json_object_get(obj, "name"));
	if (!name || strlen(name) > NAME_MAX_LEN)
		return error_set(err, EPROTO, "tenant reply has no valid name");
	strcpy(t.name, name);
	t.vcpus = (uint32_t)json_integer_value(json_object_get(obj, "vcpus"));
	t.weight = (uint32_t)json_integer_value(json_object_get(obj, "weight"));
	json_t *v = json_object_get(obj, "cpu_max_cores");
	t.cpu_max_set = json_is_number(v);
	t.cpu_max_cores = t.cpu_max_set ? json_number_value(v) : 0;
	v = json_object_get(obj, "memory_bytes");
	t.memory_set = json_is_integer(v);
	t.memory_bytes = t.memory_set ? json_integer_value(v) : 0;
	const char *cls = json_string_value(json_object_get(obj, "class"));
	if (cls && tenant_class_from_string(cls, &t.class_, NULL) < 0)
		return error_set(err, EPROTO, "tenant reply has unknown class '%s'", cls);
	t.vcpus_used = (uint32_t)json_integer_value(json_object_get(obj, "vcpus_used"));
	t.vm_count = (uint32_t)json_integer_value(json_object_get(obj, "vm_count"));
	t.created_at = json_integer_value(json_object_get(obj, "created_at"));
	t.updated_at = json_integer_value(json_object_get(obj, "updated_at"));
	*out = t;
	return 0;
}

json_t *api_tenant_patch_to_json(const struct tenant_patch *p)
{
	json_t *o = json_object();
	if (p->set_vcpus)
		json_object_set_new(o, "vcpus", json_integer(p->vcpus));
	if (p->set_weight)
		json_object_set_new(o, "weight", json_integer(p->weight));
	if (p->set_cpu_max)
		json_object_set_new(o, "cpu_max_cores",
				    p->cpu_max_set ? json_real(p->cpu_max_cores) : json_null());
	if (p->set_memory)
		json_object_set_new(o, "memory_bytes",
				    p->memory_set ? json_integer(p->memory_bytes) : json_null());
	if (p->set_class)
		json_object_set_new(o, "class", json_string(tenant_class_to_string(p->class_)));
	return o;
}

int api_status_for_errno(int e)
{
	switch (e) {
	case EINVAL:
	case ERANGE:
		return 400;
	case EACCES:
	case EPERM:
		return 403;
	case ENOENT:
		return 404;
	case EEXIST:
	case EBUSY:
		return 409;
	case EFBIG:
		return 413;
	case EDQUOT:
		return 409;
	case ETIMEDOUT:
	case ECONNREFUSED:
	case ECANCELED:
		return 503;
	default:
		return 500;
	}
}

const char *api_code_for_status(int status)
{
	switch (status) {
	case 400: return "invalid";
	case 401: return "unauthorized";
	case 403: return "forbidden";
	case 404: return "not_found";
	case 405: return "method_not_allowed";
	case 409: return "conflict";
	case 413: return "too_large";
	case 415: return "unsupported_media_type";
	case 503: return "unavailable";
	default: return "internal";
	}
}

json_t *api_error_json(int status, const char *message)
{
	return json_pack("{s:{s:s,s:s}}", "error", "code", api_code_for_status(status),
			 "message", message ? message : "");
}

json_t *api_vm_to_json(const struct vm *v)
{
	json_t *o = json_object();
	json_object_set_new(o, "name", json_string(v->name));
	json_object_set_new(o, "tenant", v->tenant[0] ? json_string(v->tenant) : json_null());
	json_object_set_new(o, "managed", json_boolean(v->tenant[0] != '\0'));
	json_object_set_new(o, "pid", json_integer(v->pid));
	json_object_set_new(o, "start_time", v->pid > 0 && v->start_time
						     ? json_integer((json_int_t)v->start_time)
						     : json_null());
	json_object_set_new(o, "state", json_string(vm_state_to_string(v->state)));
	json_object_set_new(o, "source", json_string(vm_source_to_string(v->source)));
	json_object_set_new(o, "uuid", v->uuid[0] ? json_string(v->uuid) : json_null());
	json_object_set_new(o, "vcpus", json_integer(v->vcpus));
	json_object_set_new(o, "memory_bytes",
			    v->memory_set ? json_integer(v->memory_bytes) : json_null());
	json_object_set_new(o, "origin_cgroup",
			    v->origin_cgroup[0] ? json_string(v->origin_cgroup) : json_null());
	json_object_set_new(o, "weight", v->weight ? json_integer(v->weight) : json_null());
	json_t *arr = json_array();
	for (size_t i = 0; i < v->n_threads; i++) {
		/* an unmanaged VM has no cgroup of vcpud's */
		char *cg = v->tenant[0] ? xasprintf("tenant-%s/vm-%s/vcpu%u", v->tenant, v->name,
						    v->threads[i].index)
					: NULL;
		json_array_append_new(arr, json_pack("{s:i,s:i,s:o}", "index",
						     (int)v->threads[i].index, "tid",
						     (int)v->threads[i].tid, "cgroup",
						     cg ? json_string(cg) : json_null()));
		free(cg);
	}
	json_object_set_new(o, "vcpu_threads", arr);
	json_object_set_new(o, "created_at", json_integer(v->created_at));
	json_object_set_new(o, "updated_at", json_integer(v->updated_at));
	json_object_set_new(o, "state_since_ms",
			    v->state_since_ms ? json_integer(v->state_since_ms) : json_null());
	return o;
}

json_t *api_vm_view_to_json(const struct registry_vm_view *v, const struct admit_host *host)
{
	json_t *o = api_vm_to_json(&v->vm);
	json_t *pl = json_null();
	if (v->admitted) {
		const struct admit_reservation *r = &v->res;
		struct cpuset cpus, mems;
		cpuset_zero(&cpus);
		cpuset_zero(&mems);
		if (host && host->topo && host->pools)
			admit_pin(host, r, &cpus, &mems);
		_cleanup_free_ char *c = cpulist_format(&cpus);
		_cleanup_free_ char *m = cpulist_format(&mems);
		_cleanup_free_ char *p = cpulist_format(&r->pcpus);
		json_t *nodes = json_array();
		for (size_t i = 0; i < r->n_shares; i++)
			json_array_append_new(nodes, json_integer(r->shares[i].node));
		bool dedicated = r->cpu_policy == ADMIT_CPU_DEDICATED;
		pl = json_pack("{s:s,s:s,s:s,s:o,s:s,s:s,s:s}", "pool",
			       dedicated ? "dedicated" : "shared", "cpu_policy",
			       admit_cpu_policy_name(r->cpu_policy), "thread_policy",
			       admit_thread_policy_name(r->thread_policy), "nodes", nodes, "pcpus", p,
			       "cpus", c, "mems", m);
	}
	json_object_set_new(o, "placement", pl);
	json_object_set_new(o, "fault",
			    v->fault ? json_pack("{s:s,s:s,s:I}", "kind",
						 registry_fault_kind_name(v->fault_kind), "reason",
						 v->fault, "since_ms", (json_int_t)v->fault_since_ms)
				     : json_null());
	return o;
}

static int get_name(const json_t *v, const char *what, char *out, struct error **err)
{
	if (!json_is_string(v))
		return error_set(err, EINVAL, "%s must be a string", what);
	if (name_check(what, json_string_value(v), err) < 0)
		return -1;
	strcpy(out, json_string_value(v));
	return 0;
}

int api_vm_register_from_json(const json_t *obj, struct vm *out, struct error **err)
{
	if (!json_is_object(obj))
		return error_set(err, EINVAL, "request body must be a JSON object");
	struct vm v;
	memset(&v, 0, sizeof(v));
	v.source = VM_SOURCE_REGISTERED;
	v.state = VM_STATE_RUNNING;
	bool have_name = false, have_tenant = false, have_pid = false;
	const char *key;
	json_t *val;
	json_object_foreach((json_t *)obj, key, val) {
		if (strcmp(key, "name") == 0) {
			if (get_name(val, "VM name", v.name, err) < 0)
				return -1;
			have_name = true;
		} else if (strcmp(key, "tenant") == 0) {
			if (get_name(val, "tenant name", v.tenant, err) < 0)
				return -1;
			have_tenant = true;
		} else if (strcmp(key, "pid") == 0) {
			if (!json_is_integer(val) || json_integer_value(val) < 1 ||
			    json_integer_value(val) > 4194304)
				return error_set(err, EINVAL, "pid must be an integer 1..4194304");
			v.pid = (pid_t)json_integer_value(val);
			have_pid = true;
		} else if (strcmp(key, "memory_bytes") == 0) {
			if (get_memory(val, &v.memory_set, &v.memory_bytes, err) < 0)
				return -1;
		} else {
			return error_set(err, EINVAL, "unknown field '%s'", key);
		}
	}
	if (!have_name)
		return error_set(err, EINVAL, "missing field 'name'");
	if (!have_tenant)
		return error_set(err, EINVAL, "missing field 'tenant'");
	if (!have_pid)
		return error_set(err, EINVAL, "missing field 'pid'");
	*out = v;
	return 0;
}

int api_vm_from_reply(const json_t *obj, struct vm *out, struct error **err)
{
	if (!json_is_object(obj))
		return error_set(err, EPROTO, "VM reply is not a JSON object");
	struct vm v;
	memset(&v, 0, sizeof(v));
	const char *name = json_string_value(json_object_get(obj, "name"));
	json_t *tj = json_object_get(obj, "tenant");
	const char *tenant = json_is_null(tj) ? "" : json_string_value(tj); /* "": unmanaged */
	if (!name || strlen(name) > NAME_MAX_LEN || !tenant || strlen(tenant) > NAME_MAX_LEN)
		return error_set(err, EPROTO, "VM reply has no valid name or tenant");
	strcpy(v.name, name);
	strcpy(v.tenant, tenant);
	v.pid = (pid_t)json_integer_value(json_object_get(obj, "pid"));
	v.vcpus = (uint32_t)json_integer_value(json_object_get(obj, "vcpus"));
	json_t *m = json_object_get(obj, "memory_bytes");
	v.memory_set = json_is_integer(m);
	v.memory_bytes = v.memory_set ? json_integer_value(m) : 0;
	json_int_t w = json_integer_value(json_object_get(obj, "weight")); /* null: 0 */
	v.weight = w >= TENANT_WEIGHT_MIN && w <= TENANT_WEIGHT_MAX ? (uint32_t)w : 0;
	vm_state_from_string(json_string_value(json_object_get(obj, "state")), &v.state, NULL);
	vm_source_from_string(json_string_value(json_object_get(obj, "source")), &v.source, NULL);
	const char *uuid = json_string_value(json_object_get(obj, "uuid"));
	if (uuid && strlen(uuid) == VM_UUID_LEN)
		strcpy(v.uuid, uuid);
	json_t *arr = json_object_get(obj, "vcpu_threads");
	size_t n = json_array_size(arr);
	v.threads = n ? xcalloc(n, sizeof(*v.threads)) : NULL;
	for (size_t i = 0; i < n; i++) {
		json_t *t = json_array_get(arr, i);
		v.threads[i].index = (unsigned)json_integer_value(json_object_get(t, "index"));
		v.threads[i].tid = (pid_t)json_integer_value(json_object_get(t, "tid"));
	}
	v.n_threads = n;
	v.created_at = json_integer_value(json_object_get(obj, "created_at"));
	v.updated_at = json_integer_value(json_object_get(obj, "updated_at"));
	*out = v;
	return 0;
}

int api_admit_from_json(const json_t *obj, struct admit_request *out, bool *dry_run,
			struct error **err)
{
	if (!json_is_object(obj))
		return error_set(err, EINVAL, "request body must be a JSON object");
	struct admit_request r = { .cpu_policy = ADMIT_CPU_SHARED,
				   .thread_policy = ADMIT_THREAD_PREFER };
	bool dry = false, have_vcpus = false;
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)obj, key, v) {
		if (strcmp(key, "name") == 0 || strcmp(key, "tenant") == 0) {
			const char *what = key[0] == 'n' ? "VM name" : "tenant name";
			if (!json_is_string(v))
				return error_set(err, EINVAL, "%s must be a string", key);
			if (name_check(what, json_string_value(v), err) < 0)
				return -1;
			if (key[0] == 'n')
				r.vm = json_string_value(v);
			else
				r.tenant = json_string_value(v);
		} else if (strcmp(key, "vcpus") == 0) {
			if (get_uint(v, key, 1, VM_VCPUS_MAX, &r.vcpus, err) < 0)
				return -1;
			have_vcpus = true;
		} else if (strcmp(key, "memory_bytes") == 0) {
			if (get_memory(v, &r.memory_set, &r.memory_bytes, err) < 0)
				return -1;
		} else if (strcmp(key, "cpu_policy") == 0) {
			if (!json_is_string(v) ||
			    admit_cpu_policy_from_string(json_string_value(v), &r.cpu_policy, err) < 0)
				return error_set(err, EINVAL, "cpu_policy must be \"shared\" or \"dedicated\"");
		} else if (strcmp(key, "thread_policy") == 0) {
			if (!json_is_string(v) ||
			    admit_thread_policy_from_string(json_string_value(v), &r.thread_policy,
							    err) < 0)
				return error_set(err, EINVAL, "thread_policy must be \"prefer\", "
						 "\"isolate\" or \"require\"");
		} else if (strcmp(key, "dry_run") == 0) {
			if (!json_is_boolean(v))
				return error_set(err, EINVAL, "dry_run must be true or false");
			dry = json_is_true(v);
		} else {
			return error_set(err, EINVAL, "unknown field '%s'", key);
		}
	}
	if (!r.vm)
		return error_set(err, EINVAL, "missing field 'name'");
	if (!r.tenant)
		return error_set(err, EINVAL, "missing field 'tenant'");
	if (!have_vcpus)
		return error_set(err, EINVAL, "missing field 'vcpus'");
	*out = r;
	*dry_run = dry;
	return 0;
}
