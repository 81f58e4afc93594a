/* error.h - the one error contract of vcpud (after crun's libcrun_error_t).
 *
 * A function that can fail takes `struct error **err` last, returns a
 * negative value on failure and fills *err with an errno value and a whole,
 * allocated message. Callers add context with error_wrap() and hand the
 * error up, or report it and free it with error_free(). */
#ifndef VCPUD_ERROR_H
#define VCPUD_ERROR_H

#include <stdarg.h>

struct error {
	int code;  /* errno value: EINVAL bad input, ENOENT not found,
		      EEXIST/EBUSY conflict, EFBIG too large, EACCES ... */
	char *msg; /* whole message, owned by the error */
};

/* Set *err (if err is non-NULL and *err is NULL) to a new error with errno
 * `code` and the formatted message. Returns -1 always, so that callers can
 * write `return error_set(err, EINVAL, "...")`. */
int error_set(struct error **err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* As error_set(), with ": strerror(code)" appended to the message. */
int error_set_errno(struct error **err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix the message of *err with "context: ". Returns -1. A NULL err or
 * *err is left alone. */
int error_wrap(struct error **err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Free an error and set the pointer to NULL. */
void error_free(struct error **err);

/* The code of *err, or 0 when there is none. */
int error_code(const struct error *err);

#endif
