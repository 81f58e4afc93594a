/* procfs.c - pure parsers of /proc files shared by discovery and the cgroup
 * engine (include/vcpud/procfs.h). They take the file's text; reading it,
 * through a root prefix, is the caller's job. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "vcpud/procfs.h"

/* An unsigned decimal token of at most 20 digits ending at a space, a
 * newline or the end; advances *p past it. */
static bool stat_u64(const char **p, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	int digits = 0;
	while (isdigit((unsigned char)*s)) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
		s++;
		digits++;
	}
	if (!digits || (*s && *s != ' ' && *s != '\n'))
		return false;
	*p = s;
	*out = v;
	return true;
}

int proc_stat_parse(const char *buf, struct proc_stat *out, struct error **err)
{
	if (!buf)
		return error_set(err, EINVAL, "malformed /proc stat: no text");
	/* "PID (COMM) S PPID ...": the comm may hold anything, ')' included,
	 * so it ends at the last ')' */
	const char *open = strchr(buf, '(');
	const char *close = strrchr(buf, ')');
	if (!open || !close || close < open || open == buf || open[-1] != ' ')
		return error_set(err, EINVAL, "malformed /proc stat: no \"PID (COMM)\"");
	char *end;
	errno = 0;
	long pid = strtol(buf, &end, 10);
	if (!isdigit((unsigned char)buf[0]) || end != open - 1 || errno || pid <= 0 ||
	    pid > INT_MAX)
		return error_set(err, EINVAL, "malformed /proc stat: bad pid");
	struct proc_stat st = { .pid = (pid_t)pid };
	size_t clen = (size_t)(close - open - 1);
	/* kernel worker threads show more than 15 characters here */
	if (clen > sizeof(st.comm) - 1)
		clen = sizeof(st.comm) - 1;
	memcpy(st.comm, open + 1, clen);
	st.comm[clen] = '\0';

	const char *p = close + 1;
	for (int field = 3; field <= 22; field++) {
		if (*p != ' ')
			return error_set(err, EINVAL, "malformed /proc stat: field %d missing",
					 field);
		p++;
		uint64_t v;
		switch (field) {
		case 3:
			if (!*p || *p == ' ' || *p == '\n' || (p[1] != ' ' && p[1] != '\n'))
				return error_set(err, EINVAL, "malformed /proc stat: bad state");
			st.state = *p++;
			break;
		case 9:
		case 20:
		case 22:
			if (!stat_u64(&p, &v) || (field != 22 && v > UINT_MAX))
				return error_set(err, EINVAL,
						 "malformed /proc stat: bad field %d", field);
			if (field == 9)
				st.flags = (unsigned)v;
			else if (field == 20)
				st.num_threads = (unsigned)v;
			else
				st.start_time = v;
			break;
		default: /* a field we skip: any token */
			if (!*p || *p == ' ' || *p == '\n')
				return error_set(err, EINVAL,
						 "malformed /proc stat: field %d empty", field);
			while (*p && *p != ' ' && *p != '\n')
				p++;
			break;
		}
	}
	*out = st;
	return 0;
}
