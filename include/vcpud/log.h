/* log.h - levelled logging to stderr with a timestamp, as the daemon and the
 * tools use it. Not thread-aware by design: vcpud's loop is single-threaded. */
#ifndef VCPUD_LOG_H
#define VCPUD_LOG_H

#include "vcpud/error.h"

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG, LOG_LVL_LAST };

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* "error", "warn", "info", "debug" -> level; -1 with *err when unknown. */
int log_level_from_string(const char *s, enum log_level *out, struct error **err);

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
