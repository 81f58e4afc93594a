/* client.h - vcpuctl's HTTP client: one JSON request to vcpud over its UNIX
 * socket, or over TCP to a vcpud --listen (--url: HTTPS, or plain HTTP to
 * a loopback address, with a bearer token); HTTP/1.1, "Connection: close",
 * one deadline for it all.
 *
 * Transport failures are errors whose code tells the caller what happened:
 * ECONNREFUSED the daemon is unreachable (no socket, nobody listening, a
 * host that is not found), EACCES no permission on the socket, ETIMEDOUT
 * no reply in time, EPROTO a reply that is not HTTP or not JSON, or TLS
 * that failed (a certificate not trusted), EINVAL a bad URL or path. An HTTP error status is not a
 * transport failure: it comes back in the reply. */
#ifndef VCPUD_CLI_CLIENT_H
#define VCPUD_CLI_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vcpud/error.h"

/* Replies larger than this are refused (EFBIG): no reply of vcpud's API
 * comes near it. */
#define CLIENT_MAX_REPLY_BYTES (64L * 1024 * 1024)
/* A reply's status line and header fields may take this much at most. */
#define CLIENT_MAX_HEAD_BYTES 65536

/* Where vcpud is. */
struct client_target {
	const char *socket_path;   /* the UNIX socket, when url is NULL */
	const char *url;           /* https://HOST[:PORT][/PREFIX], or http:// to loopback */
	const char *token;         /* bearer token sent over url (never to the socket) */
	const char *cacert;        /* PEM CAs that url's certificate must chain to;
				    * NULL: the system's trust store */
};

/* A --url taken apart. */
struct client_url {
	bool tls;                  /* https */
	char host[256];            /* a name or an address (IPv6 without []) */
	char port[8];              /* 443 or 80 unless given */
	char prefix[256];          /* the path before /v1/...: "" or "/vcpud" */
};

/* Parse a --url: https://HOST[:PORT][/PATH], HOST a name, an IPv4 address
 * or [IPv6]; http:// only to a loopback address (127.0.0.0/8, ::1,
 * localhost): a token must not cross the network in the clear. No
 * user@, query or fragment. 0, or -1 with EINVAL saying what is wrong. */
int client_url_parse(const char *url, struct client_url *out, struct error **err);

/* The socket path or the URL, for messages. */
const char *client_target_name(const struct client_target *t);

struct client_reply {
	long status;               /* HTTP status */
	json_t *json;              /* parsed body (owned reference), NULL if empty */
};

/* Send `method` `path` (starting with "/") with an optional JSON body to the
 * vcpud at `t`, waiting at most timeout_ms in total. On success (any HTTP
 * status) fills *out; free it with client_reply_clear(). Returns 0 or -1
 * with *err as described above; messages name the socket or the URL. */
int client_request(const struct client_target *t, const char *method, const char *path,
		   const json_t *body, long timeout_ms, struct client_reply *out,
		   struct error **err);

void client_reply_clear(struct client_reply *r);

/* The same exchange with the reply's body as it came (GET /metrics is
 * text): *status, and *reply (allocated, NUL after *reply_len bytes; NULL
 * for none) for the caller to free. */
int client_request_raw(const struct client_target *t, const char *method, const char *path,
		       const json_t *body, long timeout_ms, long *status, char **reply,
		       size_t *reply_len, struct error **err);

/* What the head of a reply says: its status and how its body ends. */
struct client_head {
	int status;
	size_t head_len;           /* bytes up to and with the empty line */
	bool has_length;           /* Content-Length (or a status without body) */
	bool chunked;              /* Transfer-Encoding: chunked */
	uint64_t length;
};

/* Parse the head of the reply in buf (len bytes so far; interim 1xx heads
 * are skipped): 0 and *h, 1 when the head is not whole yet, -1 and *err
 * (EPROTO, saying what is wrong) when it is not HTTP/1.x or too large. */
int client_parse_head(const char *buf, size_t len, struct client_head *h, struct error **err);

/* Parse a reply: 0 with *status and its decoded body (allocated, with a
 * NUL after *body_len bytes; the caller frees it); 1 when more must come
 * (never when at_eof: the peer closed, so a short reply is an error); -1
 * and *err (EPROTO, EFBIG) otherwise. */
int client_parse_reply(const char *buf, size_t len, bool at_eof, long *status, char **body,
		       size_t *body_len, struct error **err);

/* The message of an API error body {"error":{"message":..}}, or NULL. The
 * string belongs to `reply`. */
const char *client_error_message(const json_t *reply);

#endif
