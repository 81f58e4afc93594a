/* vmjson.c - read the JSON tests/libvirt/run.sh gets from vcpuctl and virsh
 * on stdin and print what it checks as one line of words (built by run.sh
 * against jansson only: it parses on its own, not with vcpud's code).
 *
 *   vmjson vms NAME...   stdin: `vcpuctl --json vm list`; per NAME a line
 *                        "NAME TENANT MANAGED STATE PID SOURCE TIDS", TENANT
 *                        "null" for a JSON null, TIDS the vCPU thread ids
 *                        ordered by vCPU index ("i:tid,i:tid", "-" for none);
 *                        "NAME absent" when the list lacks it
 *   vmjson qmp           stdin: a QMP query-cpus-fast reply (virsh
 *                        qemu-monitor-command); prints TIDS as above
 *
 * Exit 1 (and a message on stderr) when stdin is not what it should be. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

struct vt {
	long long index, tid;
};

static int cmp_vt(const void *a, const void *b)
{
	const struct vt *x = a, *y = b;
	return (x->index > y->index) - (x->index < y->index);
}

/* "i:tid,..." of an array of objects with integer members ikey and tkey */
static int print_tids(const json_t *arr, const char *ikey, const char *tkey)
{
	if (!json_is_array(arr))
		return -1;
	size_t n = json_array_size(arr);
	if (n == 0) {
		fputs("-", stdout);
		return 0;
	}
	struct vt *v = calloc(n, sizeof(*v));
	if (!v)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const json_t *o = json_array_get(arr, i);
		const json_t *ix = json_object_get(o, ikey), *t = json_object_get(o, tkey);
		if (!json_is_integer(ix) || !json_is_integer(t)) {
			free(v);
			return -1;
		}
		v[i].index = json_integer_value(ix);
		v[i].tid = json_integer_value(t);
	}
	qsort(v, n, sizeof(*v), cmp_vt);
	for (size_t i = 0; i < n; i++)
		printf("%s%lld:%lld", i ? "," : "", v[i].index, v[i].tid);
	free(v);
	return 0;
}

static const char *str_or(const json_t *j, const char *dflt)
{
	return json_is_string(j) ? json_string_value(j) : dflt;
}

int main(int argc, char **argv)
{
	if (argc < 2 || (strcmp(argv[1], "vms") != 0 && strcmp(argv[1], "qmp") != 0)) {
		fprintf(stderr, "usage: vmjson vms NAME... | vmjson qmp\n");
		return 2;
	}
	json_error_t je;
	json_t *root = json_loadf(stdin, 0, &je);
	if (!root) {
		fprintf(stderr, "vmjson: stdin is not JSON: %s (line %d)\n", je.text, je.line);
		return 1;
	}
	int rc = 0;
	if (strcmp(argv[1], "qmp") == 0) {
		if (print_tids(json_object_get(root, "return"), "cpu-index", "thread-id") < 0) {
			fprintf(stderr, "vmjson: no query-cpus-fast \"return\" array\n");
			rc = 1;
		}
		putchar('\n');
		json_decref(root);
		return rc;
	}
	const json_t *vms = json_object_get(root, "vms");
	if (!json_is_array(vms)) {
		fprintf(stderr, "vmjson: no \"vms\" array\n");
		json_decref(root);
		return 1;
	}
	for (int a = 2; a < argc; a++) {
		const json_t *vm = NULL;
		for (size_t i = 0; i < json_array_size(vms) && !vm; i++) {
			const json_t *o = json_array_get(vms, i);
			if (strcmp(str_or(json_object_get(o, "name"), ""), argv[a]) == 0)
				vm = o;
		}
		if (!vm) {
			printf("%s absent\n", argv[a]);
			continue;
		}
		const json_t *t = json_object_get(vm, "tenant"), *m = json_object_get(vm, "managed");
		const json_t *pid = json_object_get(vm, "pid");
		printf("%s %s %s %s %lld %s ", argv[a],
		       json_is_null(t) ? "null" : str_or(t, "?"),
		       json_is_boolean(m) ? (json_is_true(m) ? "true" : "false") : "?",
		       str_or(json_object_get(vm, "state"), "?"),
		       json_is_integer(pid) ? json_integer_value(pid) : -1LL,
		       str_or(json_object_get(vm, "source"), "?"));
		if (print_tids(json_object_get(vm, "vcpu_threads"), "index", "tid") < 0) {
			fputs("?", stdout);
			rc = 1;
		}
		putchar('\n');
	}
	json_decref(root);
	return rc;
}
