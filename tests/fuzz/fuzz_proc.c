/* fuzz_proc.c - what vcpud reads from /proc of processes it does not own:
 * /proc/PID/stat, /proc/uptime, schedstat, /proc/PID/status (the Tgid
 * line), cmdline (a VMM's name and uuid), a thread's comm (a vCPU's
 * name). The first byte picks the parser; FUZZ_ONLY=N in the environment
 * pins it to parser N (for a long run of one: 0 stat, 2 schedstat,
 * 3 status). */
#include "fuzz_util.h"

#include "vcpud/discover.h"
#include "vcpud/libvirt.h"
#include "vcpud/procfs.h"
#include "vcpud/sample.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned sel;
	size_t len;
	char *s = fuzz_text(data, size, &sel, &len);
	struct error *err = NULL;
	static int only = -2;
	if (only == -2)
		only = getenv("FUZZ_ONLY") ? atoi(getenv("FUZZ_ONLY")) : -1;
	if (only >= 0)
		sel = (unsigned)only;
	switch (sel % 6) {
	case 0: {
		struct proc_stat st;
		proc_stat_parse(s, &st, &err);
		break;
	}
	case 1: {
		double up;
		proc_uptime_parse(s, &up, &err);
		break;
	}
	case 2: {
		uint64_t cpu, delay;
		/* the raw bytes, not NUL-terminated: the parser takes a length */
		schedstat_parse((const char *)data + (size ? 1 : 0), len, &cpu, &delay, &err);
		break;
	}
	case 3: {
		pid_t tgid;
		libvirt_status_tgid_parse(s, &tgid, &err);
		break;
	}
	case 4: {
		struct vmm_identity id;
		/* a cmdline is NUL-separated: the raw bytes */
		for (int k = 0; k < 3; k++) {
			memset(&id, 0, sizeof(id));
			vmm_cmdline_identify((enum vmm_kind)(k + 1), (const char *)data + (size ? 1 : 0),
					     len, &id);
		}
		break;
	}
	default: {
		unsigned idx;
		char comm[17];
		snprintf(comm, sizeof(comm), "%s", s);
		vcpu_thread_name_parse(comm, &idx);
		vcpu_thread_name_parse(s, &idx);
		break;
	}
	}
	error_free(&err);
	free(s);
	return 0;
}
