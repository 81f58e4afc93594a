/* notify.c - sd_notify for vcpud (notify.h). */
#include <string.h>
#include <systemd/sd-daemon.h>

#include "daemon/notify.h"
#include "vcpud/log.h"
#include "vcpud/util.h"

void notify_init(struct notify *n)
{
	memset(n, 0, sizeof(*n));
	uint64_t usec = 0;
	/* 0 (unset, or for another pid) or 1 with usec; unset_environment 0
	 * keeps it for a re-exec */
	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
		n->watchdog_usec = usec;
		n->watchdog_next_ns = now_mono_ns();
		log_info("systemd watchdog: every %.1f s (WatchdogSec=%.1f)", (double)usec / 2e6,
			 (double)usec / 1e6);
	}
}

static void send_state(const char *state)
{
	int r = sd_notify(0, state);
	if (r < 0)
		log_debug("sd_notify(%s): %s", state, strerror(-r));
}

void notify_ready(struct notify *n, const char *status)
{
	free(n->status);
	n->status = xstrdup(status);
	_cleanup_free_ char *s = xasprintf("READY=1\nSTATUS=%s", status);
	send_state(s);
}

void notify_status(struct notify *n, const char *status)
{
	if (n->status && strcmp(n->status, status) == 0)
		return;
	free(n->status);
	n->status = xstrdup(status);
	_cleanup_free_ char *s = xasprintf("STATUS=%s", status);
	send_state(s);
}

void notify_reloading(struct notify *n)
{
	(void)n;
	send_state("RELOADING=1\nSTATUS=reloading the policy and the tokens");
}

void notify_stopping(struct notify *n)
{
	(void)n;
	send_state("STOPPING=1\nSTATUS=stopping");
}

void notify_watchdog(struct notify *n)
{
	if (!n->watchdog_usec)
		return;
	int64_t now = now_mono_ns();
	if (now < n->watchdog_next_ns)
		return;
	send_state("WATCHDOG=1");
	n->pings++;
	n->watchdog_next_ns = now + (int64_t)(n->watchdog_usec / 2) * 1000;
}

int notify_timeout_ms(const struct notify *n)
{
	if (!n->watchdog_usec)
		return -1;
	int64_t left = (n->watchdog_next_ns - now_mono_ns() + 999999) / 1000000;
	return left > 0 ? (int)(left > 60000 ? 60000 : left) : 0;
}

void notify_free(struct notify *n)
{
	free(n->status);
	n->status = NULL;
}
