/* daemon.c - vcpud's main loop.
 *
 * Start-up: open the store (migrating it), load the policy, start the API
 * server, report readiness. Then one poll() loop: signals (TERM/INT stop,
 * HUP reloads the policy), the tick timer (the control loop of DESIGN.md:
 * discover, plan, reconcile, sample, decide, record) and API requests.
 * Nothing here writes SQLite or cgroupfs directly: the store and the cgroup
 * engine do. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>

#include "daemon/daemon.h"
#include "vcpud/api.h"
#include "vcpud/policy.h"
#include "vcpud/store.h"
#include "vcpud/util.h"

struct daemon {
	const struct daemon_options *opt;
	struct store *store;
	struct policy *policy;
	struct api_ctx api;
	struct api_server *server;
	int sig_fd;
	int timer_fd;
	uint64_t ticks;
	bool stop;
};

static void report_ready(int *ready_fd, const char *msg)
{
	if (*ready_fd < 0)
		return;
	_cleanup_free_ char *line = xasprintf("%s\n", msg);
	ssize_t n = write(*ready_fd, line, strlen(line));
	(void)n;
	close(*ready_fd);
	*ready_fd = -1;
}

/* mkdir the last component of dirname(path) when missing (e.g. /run/vcpud) */
static int ensure_parent_dir(const char *path, mode_t mode, struct error **err)
{
	_cleanup_free_ char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, mode) < 0 && errno != EEXIST)
		return error_set_errno(err, errno, "cannot create directory %s", dir);
	return 0;
}

static int arm_timer(struct daemon *d, struct error **err)
{
	uint32_t ms = d->policy->interval_ms;
	struct itimerspec its = {
		.it_interval = { ms / 1000, (long)(ms % 1000) * 1000000L },
		.it_value = { ms / 1000, (long)(ms % 1000) * 1000000L },
	};
	if (timerfd_settime(d->timer_fd, 0, &its, NULL) < 0)
		return error_set_errno(err, errno, "cannot arm the tick timer");
	return 0;
}

static void reload_policy(struct daemon *d)
{
	_cleanup_error_ struct error *err = NULL;
	struct policy *np = NULL;
	if (policy_load_file(d->opt->policy_path, &np, &err) < 0) {
		log_error("SIGHUP: policy not reloaded, keeping the current one: %s", err->msg);
		return;
	}
	bool interval_changed = np->interval_ms != d->policy->interval_ms;
	policy_free(d->policy);
	d->policy = np;
	d->api.policy = np;
	log_info("SIGHUP: policy %s reloaded", d->opt->policy_path);
	_cleanup_error_ struct error *e2 = NULL;
	if (interval_changed && arm_timer(d, &e2) < 0)
		log_error("%s", e2->msg);
	_cleanup_error_ struct error *e3 = NULL;
	if (store_event_add(d->store, "vcpud", "policy.reload", d->opt->policy_path, NULL,
			    &e3) < 0)
		log_warn("cannot record the policy reload: %s", e3->msg);
}

/* One control-loop tick. The stages of DESIGN.md plug in here. */
static void tick(struct daemon *d)
{
	d->ticks++;
	log_debug("tick %llu", (unsigned long long)d->ticks);
}

static void handle_signal(struct daemon *d)
{
	struct signalfd_siginfo si;
	while (read(d->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			log_info("signal %d: shutting down", (int)si.ssi_signo);
			d->stop = true;
			break;
		case SIGHUP:
			reload_policy(d);
			break;
		default:
			break;
		}
	}
}

static int daemon_start(struct daemon *d, struct error **err)
{
	gid_t group = (gid_t)-1;
	if (daemon_options_check(d->opt, &group, err) < 0)
		return -1;
	if (policy_load_file(d->opt->policy_path, &d->policy, err) < 0)
		return error_wrap(err, "cannot load the policy");
	if (ensure_parent_dir(d->opt->db_path, 0750, err) < 0)
		return -1;
	if (store_open(d->opt->db_path, &d->store, err) < 0)
		return -1;

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	d->sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (d->sig_fd < 0)
		return error_set_errno(err, errno, "signalfd");
	d->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (d->timer_fd < 0)
		return error_set_errno(err, errno, "timerfd_create");
	if (arm_timer(d, err) < 0)
		return -1;

	d->api.store = d->store;
	d->api.policy = d->policy;
	d->api.policy_path = d->opt->policy_path;
	d->api.started_mono_ns = now_mono_ns();
	if (ensure_parent_dir(d->opt->socket_path, 0755, err) < 0)
		return -1;
	struct api_server_config cfg = {
		.socket_path = d->opt->socket_path,
		.group = group,
		.group_set = d->opt->socket_group != NULL,
	};
	if (api_server_start(&d->api, &cfg, &d->server, err) < 0)
		return -1;
	return 0;
}

static void daemon_teardown(struct daemon *d)
{
	api_server_stop(d->server);
	if (d->sig_fd >= 0)
		close(d->sig_fd);
	if (d->timer_fd >= 0)
		close(d->timer_fd);
	if (d->store)
		store_close(d->store);
	if (d->policy)
		policy_free(d->policy);
}

int daemon_run(const struct daemon_options *o, int ready_fd)
{
	struct daemon d = { .opt = o, .sig_fd = -1, .timer_fd = -1 };
	_cleanup_error_ struct error *err = NULL;

	if (daemon_start(&d, &err) < 0) {
		log_error("%s", err->msg);
		report_ready(&ready_fd, err->msg);
		daemon_teardown(&d);
		return 1;
	}
	log_info("vcpud ready: socket %s, database %s (schema %d), policy %s, tick %u ms%s",
		 o->socket_path, o->db_path, store_schema_version(d.store), o->policy_path,
		 d.policy->interval_ms, o->dry_run ? ", dry-run" : "");
	report_ready(&ready_fd, "ok");

	while (!d.stop) {
		struct pollfd pfd[3] = {
			{ .fd = d.sig_fd, .events = POLLIN },
			{ .fd = d.timer_fd, .events = POLLIN },
			{ .fd = api_server_fd(d.server), .events = POLLIN },
		};
		int rc = poll(pfd, 3, api_server_timeout_ms(d.server));
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			log_error("poll: %s", strerror(errno));
			break;
		}
		if (pfd[0].revents & POLLIN)
			handle_signal(&d);
		if (pfd[1].revents & POLLIN) {
			uint64_t expirations;
			if (read(d.timer_fd, &expirations, sizeof(expirations)) > 0) {
				if (expirations > 1)
					log_debug("%llu ticks missed",
						  (unsigned long long)(expirations - 1));
				tick(&d);
			}
		}
		/* MHD also needs a call on its own timeouts, so run it every time */
		api_server_run(d.server);
	}
	daemon_teardown(&d);
	log_info("vcpud stopped");
	return 0;
}
