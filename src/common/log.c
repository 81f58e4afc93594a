/* log.c - levelled logging to stderr: "2026-11-27T22:40:01.123Z warn: ...".
 * The daemon sets the level from --log-level (before any thread starts);
 * tools leave it at warn. A line is written whole from any thread. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "vcpud/log.h"

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
	struct timespec ts;
	struct tm tm;
	char when[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	/* one line at a time: the libvirt worker thread logs too */
	flockfile(stderr);
	fprintf(stderr, "%s.%03ldZ %s: ", when, ts.tv_nsec / 1000000, names[lvl]);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	funlockfile(stderr);
	va_end(ap);
	errno = saved;
}
