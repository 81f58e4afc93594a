/* fuzz_libvirt.c - what libvirt and QEMU hand vcpud: a domain's XML
 * metadata (the tenant) and a QMP query-cpus-fast reply (the vCPU
 * threads). The first byte picks the parser. */
#include "fuzz_util.h"

#include "vcpud/libvirt.h"
#include "vcpud/path.h"
#include "vcpud/vm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned sel;
	size_t len;
	char *s = fuzz_text(data, size, &sel, &len);
	struct error *err = NULL;
	if (sel % 2 == 0) {
		char tenant[NAME_MAX_LEN + 1];
		libvirt_tenant_parse(s, tenant, &err);
	} else {
		struct vm_vcpu *v = NULL;
		size_t n = 0;
		if (libvirt_qmp_cpus_parse(s, &v, &n, &err) == 0)
			free(v);
	}
	error_free(&err);
	free(s);
	return 0;
}
