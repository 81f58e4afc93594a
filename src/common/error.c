/* error.c - allocation and wrapping of struct error (see vcpud/error.h).
 * Errors carry an errno value so the API layer can map them to HTTP status
 * codes and the CLI to exit codes without parsing messages. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vcpud/error.h"
#include "vcpud/util.h"

__attribute__((format(printf, 1, 0))) static char *vformat(const char *fmt, va_list ap)
{
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	return s;
}

int error_set(struct error **err, int code, const char *fmt, ...)
{
	if (!err || *err)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	struct error *e = xmalloc(sizeof(*e));
	e->code = code ? code : EIO;
	e->msg = vformat(fmt, ap);
	va_end(ap);
	*err = e;
	return -1;
}

int error_set_errno(struct error **err, int code, const char *fmt, ...)
{
	if (!err || *err)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *m = vformat(fmt, ap);
	va_end(ap);
	return error_set(err, code, "%s: %s", m, strerror(code));
}

int error_wrap(struct error **err, const char *fmt, ...)
{
	if (!err || !*err)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *ctx = vformat(fmt, ap);
	va_end(ap);
	char *m = xasprintf("%s: %s", ctx, (*err)->msg);
	free((*err)->msg);
	(*err)->msg = m;
	return -1;
}

void error_free(struct error **err)
{
	if (!err || !*err)
		return;
	free((*err)->msg);
	free(*err);
	*err = NULL;
}

int error_code(const struct error *err)
{
	return err ? err->code : 0;
}
