/* main.c - vcpud's entry point: parse options, detach unless --foreground
 * (the parent waits until the socket is listening and exits with the
 * daemon's start-up result), then run the loop in daemon.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "daemon/daemon.h"
#include "daemon/heap.h"
#include "vcpud/util.h"

#ifndef VCPUD_VERSION
#define VCPUD_VERSION "0.1.0"
#endif

static int redirect_logs(const char *log_file)
{
	int fd = open(log_file ? log_file : "/dev/null",
		      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0) {
		fprintf(stderr, "vcpud: cannot open log file %s: %s\n", log_file,
			strerror(errno));
		return -1;
	}
	dup2(fd, STDERR_FILENO);
	close(fd);
	return 0;
}

/* Fork; the parent waits for the child's "ok" (or error) line. */
static int detach(int *ready_fd)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		close(p[1]);
		char buf[1024];
		ssize_t n = read(p[0], buf, sizeof(buf) - 1);
		close(p[0]);
		if (n > 0) {
			buf[n] = '\0';
			if (strcmp(buf, "ok\n") == 0)
				_exit(0);
			fprintf(stderr, "vcpud: %s", buf);
		} else {
			int st;
			waitpid(pid, &st, 0);
			fprintf(stderr, "vcpud: the daemon exited during start-up\n");
		}
		_exit(1);
	}
	close(p[0]);
	setsid();
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		close(null);
	}
	*ready_fd = p[1];
	return 0;
}

int main(int argc, char **argv)
{
	struct daemon_options o;
	_cleanup_error_ struct error *err = NULL;
	if (daemon_options_parse(argc, argv, &o, &err) < 0) {
		fprintf(stderr, "vcpud: %s\nTry 'vcpud --help'.\n", err->msg);
		return 2;
	}
	if (o.help) {
		daemon_usage(stdout);
		return 0;
	}
	if (o.version) {
		printf("vcpud %s\n", VCPUD_VERSION);
		return 0;
	}
	log_set_level(o.log_level);
	int ready_fd = -1;
	if (!o.foreground) {
		if (detach(&ready_fd) < 0) {
			fprintf(stderr, "vcpud: cannot detach: %s\n", strerror(errno));
			return 1;
		}
		if (redirect_logs(o.log_file) < 0)
			return 1;
	} else if (o.log_file && redirect_logs(o.log_file) < 0) {
		return 1;
	}
	heap_setup();
	return daemon_run(&o, ready_fd);
}
