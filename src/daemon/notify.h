/* notify.h - systemd's service notifications (the sd_notify(3) protocol,
 * sent without blocking: notify.c) for Type=notify: READY=1 once the socket serves and the first tick has
 * run, STATUS= after each tick, RELOADING=1/READY=1 around a SIGHUP,
 * STOPPING=1 on the way out, and WATCHDOG=1 from the main loop every half
 * WatchdogSec= (so a loop that hangs is restarted by systemd; a thread
 * pinging on its own would hide it). Without NOTIFY_SOCKET each is a
 * no-op. */
#ifndef VCPUD_DAEMON_NOTIFY_H
#define VCPUD_DAEMON_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

struct notify {
	int fd;                    /* -1: no NOTIFY_SOCKET */
	struct sockaddr_un addr;
	socklen_t addr_len;
	uint64_t watchdog_usec;    /* WATCHDOG_USEC for this process, 0: none */
	int64_t watchdog_next_ns;  /* monotonic: the next ping is due */
	char *status;              /* the last STATUS= sent */
	uint64_t pings;
};

void notify_init(struct notify *n);
void notify_ready(struct notify *n, const char *status);
/* STATUS=..., sent when it differs from the last one */
void notify_status(struct notify *n, const char *status);
void notify_reloading(struct notify *n);
void notify_stopping(struct notify *n);
/* Ping the watchdog when due. */
void notify_watchdog(struct notify *n);
/* Milliseconds until the next ping is due (0: now), -1 without a watchdog. */
int notify_timeout_ms(const struct notify *n);
void notify_free(struct notify *n);

#endif
