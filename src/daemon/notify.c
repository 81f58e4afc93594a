/* notify.c - systemd's notifications for vcpud (notify.h).
 *
 * libsystemd says whether and how often the watchdog wants a ping
 * (sd_watchdog_enabled). The messages themselves are not sent with
 * sd_notify(3): it sends on a blocking socket, so a PID 1 that does not
 * read its queue for a while (a long daemon-reload) would hold up vcpud's
 * loop, and nothing on it may wait on another process. They go as
 * sd_notify(3) documents the protocol, one datagram to $NOTIFY_SOCKET (a
 * path, or '@' for an abstract name), from a kept non-blocking socket: a
 * full queue loses that message (a STATUS comes again next tick; a
 * watchdog ping is retried at the next turn of the loop). */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "daemon/notify.h"
#include "vcpud/log.h"
#include "vcpud/util.h"

void notify_init(struct notify *n)
{
	memset(n, 0, sizeof(*n));
	n->fd = -1;
	const char *e = getenv("NOTIFY_SOCKET");
	size_t len = e ? strlen(e) : 0;
	if (len > 0 && len < sizeof(n->addr.sun_path) && (e[0] == '/' || e[0] == '@')) {
		n->addr.sun_family = AF_UNIX;
		memcpy(n->addr.sun_path, e, len);
		if (e[0] == '@')
			n->addr.sun_path[0] = '\0'; /* abstract: its length tells its end */
		n->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
		n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (n->fd < 0)
			log_warn("NOTIFY_SOCKET %s: cannot make a socket: %s", e, strerror(errno));
	} else if (len > 0) {
		log_warn("NOTIFY_SOCKET '%s' is not a path or an abstract name: systemd is "
			 "not told of vcpud's state", e);
	}
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

/* One message; false when it could not go now (the queue is full). */
static bool send_state(struct notify *n, const char *state)
{
	if (n->fd < 0)
		return true;
	if (sendto(n->fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT,
		   (const struct sockaddr *)&n->addr, n->addr_len) >= 0)
		return true;
	log_debug("notify (%s): %s", state, strerror(errno));
	return false;
}

void notify_ready(struct notify *n, const char *status)
{
	free(n->status);
	n->status = xstrdup(status);
	_cleanup_free_ char *s = xasprintf("READY=1\nSTATUS=%s", status);
	send_state(n, s);
}

void notify_status(struct notify *n, const char *status)
{
	if (n->status && strcmp(n->status, status) == 0)
		return;
	free(n->status);
	n->status = xstrdup(status);
	_cleanup_free_ char *s = xasprintf("STATUS=%s", status);
	send_state(n, s);
}

void notify_reloading(struct notify *n)
{
	send_state(n, "RELOADING=1\nSTATUS=reloading the policy, the tokens and the TLS "
		      "certificate");
}

void notify_stopping(struct notify *n)
{
	send_state(n, "STOPPING=1\nSTATUS=stopping");
}

void notify_watchdog(struct notify *n)
{
	if (!n->watchdog_usec)
		return;
	int64_t now = now_mono_ns();
	if (now < n->watchdog_next_ns)
		return;
	if (!send_state(n, "WATCHDOG=1"))
		return; /* again at the next turn of the loop */
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
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
	free(n->status);
	n->status = NULL;
}
