/* main.c - vcpuctl, the command-line client of vcpud. Everything lives in
 * libvcpuctl (cli.c holds the global options and the dispatch table) so
 * that the unit tests can drive the whole program in-process. */
#include <stdio.h>

#include "cli/cli.h"

int main(int argc, char **argv)
{
	int rc = cli_main(argc, argv, stdout, stderr);
	if (fflush(stdout) != 0 && rc == CLI_EXIT_OK) {
		perror("vcpuctl: cannot write output");
		rc = CLI_EXIT_ERROR;
	}
	return rc;
}
