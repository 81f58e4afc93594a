/* fuzz_util.h - what the libFuzzer targets of tests/fuzz/ share: the input
 * as a NUL-terminated copy (most parsers take C strings), split at its
 * first byte into a selector and the text. Each
 * target is its own binary, so the header defines LLVMFuzzerInitialize()
 * for those that need nothing else (FUZZ_OWN_INIT: the target has its
 * own). */
#ifndef VCPUD_TESTS_FUZZ_UTIL_H
#define VCPUD_TESTS_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vcpud/error.h"
#include "vcpud/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#ifndef FUZZ_OWN_INIT
/* the parsers' targets: only errors logged (a parser logs nothing itself) */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_LVL_ERROR);
	return 0;
}
#endif

/* data[1..size) as a C string (embedded NULs cut it short, as a read
 * into a C buffer would), *sel the first byte (0 for an empty input) */
static inline char *fuzz_text(const uint8_t *data, size_t size, unsigned *sel, size_t *len)
{
	*sel = size ? data[0] : 0;
	size_t n = size ? size - 1 : 0;
	char *s = malloc(n + 1);
	if (n)
		memcpy(s, data + 1, n);
	s[n] = '\0';
	*len = n;
	return s;
}

#endif
