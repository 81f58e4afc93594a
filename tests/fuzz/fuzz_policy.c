/* fuzz_policy.c - the policy YAML loader (policy_load_buffer: the daemon's
 * --policy and SIGHUP, `vcpuctl policy check`) on any bytes; a policy it
 * accepts is written out again and must load again (policy_to_yaml). */
#include "fuzz_util.h"

#include "vcpud/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy *p = NULL;
	struct error *err = NULL;
	if (policy_load_buffer((const char *)data, size, "fuzz", &p, &err) < 0) {
		if (!err || !err->msg)
			abort(); /* a failure always says why */
		error_free(&err);
		return 0;
	}
	char *y = policy_to_yaml(p);
	struct policy *q = NULL;
	if (policy_load_buffer(y, strlen(y), "again", &q, &err) < 0)
		abort(); /* what it wrote it must read back */
	policy_free(q);
	free(y);
	policy_free(p);
	return 0;
}
