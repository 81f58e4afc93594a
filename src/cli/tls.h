/* tls.h - vcpuctl's TLS client for --url https://..., GnuTLS loaded with
 * dlopen() the first time it is needed: a vcpuctl on the local socket (what
 * scripts run once per VM) maps none of GnuTLS's libraries.
 *
 * The server's certificate is verified against --cacert (a PEM file of CA
 * certificates, or the server's own self-signed certificate), else the
 * system's trust store, and must name the host of the URL (a DNS name, or
 * an IP address in its subjectAltName). */
#ifndef VCPUD_CLI_TLS_H
#define VCPUD_CLI_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vcpud/error.h"

struct client_tls;

/* Shake hands on the connected non-blocking socket fd, waiting until the
 * monotonic deadline (ms, as client.c's now_ms()). `where` names the
 * server in messages. 0 and *out, or -1: EPROTO (the handshake or the
 * certificate failed: said), ETIMEDOUT, ENOENT (no GnuTLS library),
 * EINVAL (a bad --cacert). */
int client_tls_open(int fd, const char *host, const char *cacert, int64_t deadline_ms,
		    const char *where, struct client_tls **out, struct error **err);

/* As send() and read() on a non-blocking socket: bytes, 0 at the end (a
 * peer that closed without TLS's close_notify included: HTTP's own
 * framing tells a whole reply), or -1 with errno (EAGAIN: wait for
 * client_tls_events(), EPROTO: a TLS error). */
ssize_t client_tls_send(struct client_tls *t, const void *buf, size_t n);
ssize_t client_tls_recv(struct client_tls *t, void *buf, size_t n);

/* The poll() events the last EAGAIN waits for (TLS may write to read). */
short client_tls_events(const struct client_tls *t);

void client_tls_close(struct client_tls *t);

#endif
