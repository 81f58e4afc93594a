/* fuzz_cli.c - vcpuctl's option parsing: the input split at its NUL bytes
 * into arguments (at most 32) after "vcpuctl --socket DIR/none", through
 * cli_main() with its output to /dev/null. The socket does not exist, so a
 * command that parses reaches the request and fails to connect, quickly.
 * Arguments that name a path (a '/') or another socket are left out: the
 * fuzzer must not read files or reach a daemon of the host. */
#include <stdio.h>

#include "fuzz_util.h"

#include "cli/cli.h"

static FILE *devnull;

#define FUZZ_MAX_ARGS 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!devnull) {
		log_set_level(LOG_LVL_ERROR);
		devnull = fopen("/dev/null", "w");
		if (!devnull)
			abort();
	}
	char *buf = malloc(size + 1);
	memcpy(buf, data, size);
	buf[size] = '\0';
	char *argv[FUZZ_MAX_ARGS + 4] = { "vcpuctl", "--socket", "/nonexistent-vcpud/none.sock" };
	int argc = 3;
	for (size_t i = 0; i < size && argc < FUZZ_MAX_ARGS + 3;) {
		char *a = buf + i;
		size_t n = strlen(a);
		if (!strchr(a, '/') && strncmp(a, "--socket", 8) != 0 && strncmp(a, "-s", 2) != 0)
			argv[argc++] = a;
		i += n + 1;
	}
	argv[argc] = NULL;
	cli_main(argc, argv, devnull, devnull);
	free(buf);
	return 0;
}
