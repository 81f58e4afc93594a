/* procfs.h - pure parsers of /proc files that more than one module reads.
 *
 * The discovery backend (src/discover/scan.c) reads /proc/PID/stat to
 * classify processes and notice reused PIDs; the cgroup engine reads it to
 * check, before it moves a VM's process, that the PID still names the
 * process that was registered (its start time). Both parse it here; the
 * I/O (and the root prefix) stays with the caller. */
#ifndef VCPUD_PROCFS_H
#define VCPUD_PROCFS_H

#include <stdint.h>
#include <sys/types.h>

#include "vcpud/error.h"

/* The fields of /proc/PID/stat vcpud uses. */
struct proc_stat {
	pid_t pid;
	char comm[16];          /* between the first '(' and the last ')' */
	char state;             /* 'R', 'S', 'Z'... */
	unsigned flags;         /* field 9: PF_* (PF_KTHREAD 0x00200000) */
	unsigned num_threads;   /* field 20 */
	uint64_t start_time;    /* field 22, clock ticks after boot */
};

#define PROC_PF_KTHREAD 0x00200000u

/* Parse the text of /proc/PID/stat (a comm may hold spaces and ')').
 * 0, or -1 (EINVAL, "malformed /proc stat: ...") when it is malformed;
 * *out is written only on success. */
int proc_stat_parse(const char *buf, struct proc_stat *out, struct error **err);

#endif
