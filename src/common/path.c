/* path.c - path joining and the name rule for anything that becomes a
 * directory name (tenants, VMs). See DESIGN.md: nothing from a user is ever
 * concatenated into a path unchecked. */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "vcpud/path.h"
#include "vcpud/util.h"

bool path_within(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

char *path_join(const char *first, ...)
{
	va_list ap;
	size_t cap = 64, len = 0;
	char *out = xmalloc(cap);
	out[0] = '\0';
	va_start(ap, first);
	for (const char *c = first; c; c = va_arg(ap, const char *)) {
		size_t n = strlen(c);
		/* drop separators at the seam so that "a/" + "/b" = "a/b" */
		if (len > 0) {
			while (n > 0 && *c == '/') {
				c++;
				n--;
			}
			if (n == 0)
				continue;
			if (out[len - 1] != '/')
				out[len++] = '/';
		}
		while (n > 1 && c[n - 1] == '/')
			n--;
		if (len + n + 2 > cap) {
			while (len + n + 2 > cap)
				cap *= 2;
			out = xrealloc(out, cap);
		}
		memcpy(out + len, c, n);
		len += n;
		out[len] = '\0';
	}
	va_end(ap);
	return out;
}

bool name_valid(const char *s)
{
	if (!s)
		return false;
	size_t n = strlen(s);
	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

int name_check(const char *what, const char *s, struct error **err)
{
	if (name_valid(s))
		return 0;
	if (!s || !*s)
		return error_set(err, EINVAL, "%s is empty", what);
	return error_set(err, EINVAL,
			 "invalid %s '%.80s%s': use 1 to %d of A-Z a-z 0-9 _ . - "
			 "(not '.' or '..')",
			 what, s, strlen(s) > 80 ? "..." : "", NAME_MAX_LEN);
}
