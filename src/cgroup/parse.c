/* parse.c - pure parsers for the cgroupfs and procfs files the engine reads
 * back: cpu.max, memory.max, cgroup.controllers/subtree_control,
 * cgroup.procs/threads, /proc/PID/cgroup and cpu.stat. They take the file's
 * text, accept at most one trailing newline, and write their output only on
 * success, so a garbled read never turns into a wrong "value differs". */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "vcpud/cgroup.h"
#include "vcpud/util.h"

static const char *const controller_names[CGROUP_CTRL_LAST] = {
	[CGROUP_CTRL_CPU] = "cpu",
	[CGROUP_CTRL_CPUSET] = "cpuset",
	[CGROUP_CTRL_MEMORY] = "memory",
	[CGROUP_CTRL_IO] = "io",
	[CGROUP_CTRL_PIDS] = "pids",
	[CGROUP_CTRL_HUGETLB] = "hugetlb",
	[CGROUP_CTRL_RDMA] = "rdma",
	[CGROUP_CTRL_MISC] = "misc",
};

const char *cgroup_ctrl_name(enum cgroup_ctrl c)
{
	if ((unsigned)c >= CGROUP_CTRL_LAST)
		return NULL;
	return controller_names[c];
}

/* A copy of buf without its one allowed trailing newline, for messages and
 * for tokenising. NULL buf is treated as "". */
static char *chomp_dup(const char *buf)
{
	size_t n = buf ? strlen(buf) : 0;
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	return xstrndup(buf ? buf : "", n);
}

/* A short, printable rendering of file text for error messages. */
static void quote(char *dst, size_t dstsz, const char *s)
{
	size_t j = 0;
	for (size_t i = 0; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];
		char tmp[8];
		if (c == '\n')
			snprintf(tmp, sizeof(tmp), "\\n");
		else if (isprint(c))
			snprintf(tmp, sizeof(tmp), "%c", c);
		else
			snprintf(tmp, sizeof(tmp), "\\x%02x", c);
		size_t k = strlen(tmp);
		if (j + k + 4 > dstsz) {
			memcpy(dst + j, "...", 4);
			return;
		}
		memcpy(dst + j, tmp, k);
		j += k;
	}
	dst[j] = '\0';
}

/* Strict unsigned decimal in [min, max]: digits only. */
static int u64_in(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v;
	struct error *e = NULL;
	if (parse_u64(s, min, max, &v, &e) < 0) {
		int code = e && e->code ? e->code : EINVAL;
		error_free(&e);
		return -code;
	}
	*out = v;
	return 0;
}

/* --- cpu.max ------------------------------------------------------------- */

int cgroup_cpu_max_parse(const char *buf, struct cgroup_cpu_max *out, struct error **err)
{
	_cleanup_free_ char *s = chomp_dup(buf);
	char q[64];
	quote(q, sizeof(q), buf ? buf : "");
	char *sp = strchr(s, ' ');
	if (!sp || strchr(sp + 1, ' ') || strpbrk(s, "\t\n"))
		return error_set(err, EINVAL,
				 "invalid cpu.max '%s': expected 'QUOTA PERIOD' or 'max PERIOD'", q);
	*sp = '\0';
	const char *quota = s, *period = sp + 1;

	struct cgroup_cpu_max v = { .set = true };
	int r = u64_in(period, 0, UINT64_MAX, &v.period_us);
	if (r == -EINVAL)
		return error_set(err, EINVAL, "invalid cpu.max '%s': period '%s' is not a number",
				 q, period);
	if (r < 0 || v.period_us < CGROUP_PERIOD_MIN_US || v.period_us > CGROUP_PERIOD_MAX_US)
		return error_set(err, ERANGE,
				 "invalid cpu.max '%s': period must be %llu..%llu us", q,
				 CGROUP_PERIOD_MIN_US, CGROUP_PERIOD_MAX_US);
	if (strcmp(quota, "max") == 0) {
		v.unlimited = true;
	} else {
		r = u64_in(quota, 0, UINT64_MAX, &v.quota_us);
		if (r == -EINVAL)
			return error_set(err, EINVAL,
					 "invalid cpu.max '%s': quota '%s' is neither 'max' nor a number",
					 q, quota);
		if (r < 0 || v.quota_us < CGROUP_QUOTA_MIN_US || v.quota_us > CGROUP_QUOTA_MAX_US)
			return error_set(err, ERANGE,
					 "invalid cpu.max '%s': quota must be %llu..%llu us", q,
					 CGROUP_QUOTA_MIN_US, CGROUP_QUOTA_MAX_US);
	}
	*out = v;
	return 0;
}

/* --- memory.max ---------------------------------------------------------- */

int cgroup_mem_max_parse(const char *buf, struct cgroup_mem_max *out, struct error **err)
{
	_cleanup_free_ char *s = chomp_dup(buf);
	char q[64];
	quote(q, sizeof(q), buf ? buf : "");
	struct cgroup_mem_max v = { .set = true };
	if (strcmp(s, "max") == 0) {
		v.unlimited = true;
	} else {
		int r = u64_in(s, 0, UINT64_MAX, &v.bytes);
		if (r == -EINVAL)
			return error_set(err, EINVAL,
					 "invalid memory.max '%s': expected 'max' or bytes", q);
		if (r < 0)
			return error_set(err, ERANGE, "invalid memory.max '%s': too large", q);
	}
	*out = v;
	return 0;
}

/* --- cgroup.controllers / cgroup.subtree_control ------------------------- */

int cgroup_controllers_parse(const char *buf, unsigned *mask, struct error **err)
{
	_cleanup_free_ char *s = chomp_dup(buf);
	unsigned m = 0;
	char *save = NULL;
	if (strchr(s, '\n') || strchr(s, '\t')) {
		char q[96];
		quote(q, sizeof(q), buf);
		return error_set(err, EINVAL, "invalid controller list '%s'", q);
	}
	for (char *tok = strtok_r(s, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		for (const char *c = tok; *c; c++) {
			if (!islower((unsigned char)*c) && !isdigit((unsigned char)*c) && *c != '_') {
				char q[96];
				quote(q, sizeof(q), buf);
				return error_set(err, EINVAL,
						 "invalid controller list '%s': bad name '%s'", q, tok);
			}
		}
		for (int i = 0; i < CGROUP_CTRL_LAST; i++)
			if (strcmp(tok, controller_names[i]) == 0)
				m |= CGROUP_CTRL_BIT(i);
	}
	*mask = m;
	return 0;
}

/* --- cgroup.procs / cgroup.threads --------------------------------------- */

int cgroup_pids_parse(const char *buf, pid_t **ids, size_t *n, struct error **err)
{
	const char *p = buf ? buf : "";
	size_t cap = 0, cnt = 0;
	_cleanup_free_ pid_t *v = NULL;
	unsigned line = 0;
	while (*p) {
		line++;
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		_cleanup_free_ char *tok = xstrndup(p, len);
		uint64_t id = 0;
		if (u64_in(tok, 1, INT32_MAX, &id) < 0) {
			char q[48];
			quote(q, sizeof(q), tok);
			return error_set(err, EINVAL, "invalid process list: line %u '%s' is not a PID",
					 line, q);
		}
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[cnt++] = (pid_t)id;
		p += len;
		if (*p == '\n')
			p++;
	}
	*ids = steal_ptr(&v);
	*n = cnt;
	return 0;
}

/* --- /proc/PID/cgroup ---------------------------------------------------- */

int cgroup_proc_cgroup_parse(const char *buf, char **path, struct error **err)
{
	const char *p = buf ? buf : "";
	unsigned line = 0;
	while (*p) {
		line++;
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		/* "HIERARCHY-ID:CONTROLLERS:PATH"; v2 is "0::PATH" */
		const char *c1 = memchr(p, ':', len);
		const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - p)) : NULL;
		if (!c1 || !c2 || c1 == p) {
			_cleanup_free_ char *l = xstrndup(p, len);
			char q[96];
			quote(q, sizeof(q), l);
			return error_set(err, EINVAL, "invalid /proc/PID/cgroup line %u '%s'", line, q);
		}
		if (c1 - p == 1 && p[0] == '0' && c2 == c1 + 1) {
			const char *start = c2 + 1;
			size_t plen = len - (size_t)(start - p);
			if (plen == 0 || start[0] != '/') {
				_cleanup_free_ char *l = xstrndup(p, len);
				char q[96];
				quote(q, sizeof(q), l);
				return error_set(err, EINVAL,
						 "invalid /proc/PID/cgroup line %u '%s': path is not absolute",
						 line, q);
			}
			*path = xstrndup(start, plen);
			return 0;
		}
		p += len;
		if (*p == '\n')
			p++;
	}
	return error_set(err, ENOENT, "no cgroup v2 entry (0::/...) in /proc/PID/cgroup");
}

/* --- cpu.stat ------------------------------------------------------------ */

int cgroup_cpu_stat_parse(const char *buf, struct cgroup_cpu_stat *out, struct error **err)
{
	static const struct {
		const char *key;
		size_t off;
	} keys[] = {
		{ "usage_usec", offsetof(struct cgroup_cpu_stat, usage_usec) },
		{ "user_usec", offsetof(struct cgroup_cpu_stat, user_usec) },
		{ "system_usec", offsetof(struct cgroup_cpu_stat, system_usec) },
		{ "nr_periods", offsetof(struct cgroup_cpu_stat, nr_periods) },
		{ "nr_throttled", offsetof(struct cgroup_cpu_stat, nr_throttled) },
		{ "throttled_usec", offsetof(struct cgroup_cpu_stat, throttled_usec) },
	};
	struct cgroup_cpu_stat v = { 0 };
	const char *p = buf ? buf : "";
	unsigned line = 0;
	while (*p) {
		line++;
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		_cleanup_free_ char *l = xstrndup(p, len);
		p += len;
		if (*p == '\n')
			p++;
		char *sp = strchr(l, ' ');
		if (!sp || sp == l || sp[1] == '\0') {
			char q[96];
			quote(q, sizeof(q), l);
			return error_set(err, EINVAL, "invalid cpu.stat line %u '%s': expected 'KEY VALUE'",
					 line, q);
		}
		*sp = '\0';
		for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
			if (strcmp(l, keys[i].key) != 0)
				continue;
			uint64_t n = 0;
			if (u64_in(sp + 1, 0, UINT64_MAX, &n) < 0) {
				char q[64];
				quote(q, sizeof(q), sp + 1);
				return error_set(err, EINVAL, "invalid cpu.stat line %u: %s '%s' is not a number",
						 line, l, q);
			}
			*(uint64_t *)((char *)&v + keys[i].off) = n;
		}
	}
	*out = v;
	return 0;
}

/* --- /proc/self/mountinfo ------------------------------------------------ */

/* mountinfo escapes ' ', '\t', '\n' and '\\' as \ooo octal. */
static char *unescape_octal(const char *s)
{
	size_t n = strlen(s);
	char *out = xmalloc(n + 1), *o = out;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\' && s[i + 1] >= '0' && s[i + 1] <= '3' &&
		    s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
			*o++ = (char)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
			i += 3;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

void cgroup_mounts_free(struct cgroup_mount *mounts, size_t n)
{
	if (!mounts)
		return;
	for (size_t i = 0; i < n; i++) {
		free(mounts[i].mount_point);
		free(mounts[i].root);
	}
	free(mounts);
}

/* One line: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS */
static int mountinfo_line(char *l, unsigned lineno, struct cgroup_mount *m, bool *keep,
			  struct error **err)
{
	char *f[6];
	char *save = NULL;
	*keep = false;
	for (int i = 0; i < 6; i++) {
		f[i] = strtok_r(i ? NULL : l, " ", &save);
		if (!f[i])
			return error_set(err, EINVAL, "invalid mountinfo line %u: too few fields",
					 lineno);
	}
	char *tok;
	while ((tok = strtok_r(NULL, " ", &save)) && strcmp(tok, "-") != 0)
		;
	if (!tok)
		return error_set(err, EINVAL, "invalid mountinfo line %u: no ' - ' separator", lineno);
	char *fstype = strtok_r(NULL, " ", &save);
	char *source = strtok_r(NULL, " ", &save);
	char *super = strtok_r(NULL, " ", &save);
	if (!fstype || !source || !super)
		return error_set(err, EINVAL,
				 "invalid mountinfo line %u: missing fields after ' - '", lineno);
	bool v2 = strcmp(fstype, "cgroup2") == 0;
	if (!v2 && strcmp(fstype, "cgroup") != 0)
		return 0;
	if (f[4][0] != '/' || f[3][0] != '/')
		return error_set(err, EINVAL, "invalid mountinfo line %u: path is not absolute",
				 lineno);
	*m = (struct cgroup_mount){ .v2 = v2 };
	if (!v2) {
		char *s2 = NULL;
		for (char *o = strtok_r(super, ",", &s2); o; o = strtok_r(NULL, ",", &s2))
			for (int i = 0; i < CGROUP_CTRL_LAST; i++)
				if (strcmp(o, controller_names[i]) == 0)
					m->controllers |= CGROUP_CTRL_BIT(i);
	}
	m->mount_point = unescape_octal(f[4]);
	m->root = unescape_octal(f[3]);
	*keep = true;
	return 0;
}

int cgroup_mountinfo_parse(const char *buf, struct cgroup_mount **mounts, size_t *n,
			   struct error **err)
{
	const char *p = buf ? buf : "";
	struct cgroup_mount *v = NULL;
	size_t cnt = 0, cap = 0;
	unsigned lineno = 0;
	while (*p) {
		lineno++;
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		_cleanup_free_ char *l = xstrndup(p, len);
		p += len;
		if (*p == '\n')
			p++;
		struct cgroup_mount m;
		bool keep;
		if (mountinfo_line(l, lineno, &m, &keep, err) < 0) {
			cgroup_mounts_free(v, cnt);
			return -1;
		}
		if (!keep)
			continue;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 8;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[cnt++] = m;
	}
	*mounts = v;
	*n = cnt;
	return 0;
}
