/* fakeproc_test_util.h - what the tests that point a module's root at a fake
 * /proc tree (test_discover.c, test_discover_scan.c, test_sample.c) share:
 * making and removing the temp root, and writing the directories and files
 * of the tree below it.
 *
 * Each test file is its own binary (the Makefile builds one .c per test),
 * so this is header-only: static inline functions, unused ones costing
 * nothing. */
#ifndef VCPUD_TESTS_FAKEPROC_TEST_UTIL_H
#define VCPUD_TESTS_FAKEPROC_TEST_UTIL_H

#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

/* --- the temp root ----------------------------------------------------------- */

/* Make a temp directory from TEMPLATE (a mkdtemp() template) into ROOT, of
 * SIZE bytes; 0, or -1 with errno set. */
static inline int fake_root_make(char *root, size_t size, const char *template)
{
	snprintf(root, size, "%s", template);
	return mkdtemp(root) ? 0 : -1;
}

static inline int fake_rm_entry(const char *path, const struct stat *sb, int flag,
				struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Remove PATH and everything below it; nftw()'s result. */
static inline int fake_tree_remove(const char *path)
{
	return nftw(path, fake_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* --- writing the tree ---------------------------------------------------------- */

/* mkdir -p PATH (absolute, under 512 bytes), failing the test on error. */
static inline void mkdir_p(const char *path)
{
	char buf[512];
	assert_true(strlen(path) < sizeof(buf));
	strcpy(buf, path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			fail_msg("mkdir %s: %s", buf, strerror(errno));
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		fail_msg("mkdir %s: %s", buf, strerror(errno));
}

/* Write LEN bytes of DATA to PATH, created or truncated in place (the same
 * inode, so an fd kept open on it reads the new text, as from the kernel). */
static inline void put_bytes(const char *path, const char *data, size_t len)
{
	FILE *fp = fopen(path, "w");
	if (!fp)
		fail_msg("create %s: %s", path, strerror(errno));
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

/* put_bytes() of a string. */
static inline void put_file(const char *path, const char *content)
{
	put_bytes(path, content, strlen(content));
}

#endif
