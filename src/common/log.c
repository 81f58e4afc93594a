/* log.c - levelled logging to stderr: "2026-11-27T22:40:01.123Z warn: ...".
 * The daemon sets the level from --log-level (before any thread starts);
 * tools leave it at warn. A line is written whole, in one write(), from any
 * thread. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vcpud/log.h"
#include "vcpud/util.h"

static enum log_level current = LOG_LVL_INFO;
static const char *const names[LOG_LVL_LAST] = { "error", "warn", "info", "debug" };

void log_set_level(enum log_level lvl) { current = lvl; }
enum log_level log_get_level(void) { return current; }

int log_level_from_string(const char *s, enum log_level *out, struct error **err)
{
	for (int i = 0; i < LOG_LVL_LAST; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return error_set(err, EINVAL, "unknown log level '%s' (error, warn, info, debug)", s);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	if (lvl > current)
		return;
	int saved = errno;
	struct timespec ts;
	struct tm tm;
	char when[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);

	/* the whole line in one buffer, then one write(): stderr is
	 * unbuffered, and fprintf + vfprintf + fputc on it were three */
	char stack[512];
	char *line = stack;
	int head = snprintf(stack, sizeof(stack), "%s.%03ldZ %s: ", when, ts.tv_nsec / 1000000,
			    names[lvl]);
	va_list ap;
	va_start(ap, fmt);
	int body = vsnprintf(stack + head, sizeof(stack) - (size_t)head, fmt, ap);
	va_end(ap);
	if (body < 0)
		body = 0;
	size_t len = (size_t)head + (size_t)body + 1;
	if (len + 1 > sizeof(stack)) {
		line = xmalloc(len + 1);
		memcpy(line, stack, (size_t)head);
		va_start(ap, fmt);
		vsnprintf(line + head, len + 1 - (size_t)head, fmt, ap);
		va_end(ap);
	}
	line[len - 1] = '\n';
	line[len] = '\0';

	/* one line at a time: the libvirt worker thread logs too, and other
	 * stdio writers of stderr take the same lock */
	flockfile(stderr);
	for (size_t off = 0; off < len;) {
		ssize_t w = write(STDERR_FILENO, line + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	funlockfile(stderr);
	if (line != stack)
		free(line);
	errno = saved;
}
