/* path.h - building kernel and file paths safely.
 *
 * Every kernel path goes through a root prefix (tests point it at a temp
 * tree). Names supplied by users (tenants, VMs) become directory names only
 * after name_valid() accepts them. */
#ifndef VCPUD_PATH_H
#define VCPUD_PATH_H

#include <stdbool.h>

#include "vcpud/error.h"

#define NAME_MAX_LEN 64

/* Join components with single '/' separators; NULL ends the list. The
 * caller frees the result. path_join("/", "proc", "1") = "/proc/1". */
char *path_join(const char *first, ...) __attribute__((sentinel));

/* True when `path` is `dir` or lies below it ("/a/b" is within "/a", "/ab"
 * is not). Plain text: no normalisation. */
bool path_within(const char *path, const char *dir);

/* True when s matches [A-Za-z0-9_.-]{1,64} and is not "." or "..". */
bool name_valid(const char *s);

/* As name_valid(), with an error that names `what` ("tenant name") and the
 * rule. Returns 0 or -1 (EINVAL). */
int name_check(const char *what, const char *s, struct error **err);

#endif
