/* client.h - vcpuctl's HTTP client: one JSON request to vcpud over its UNIX
 * socket (libcurl, CURLOPT_UNIX_SOCKET_PATH, URL http://localhost/v1/...).
 *
 * Transport failures are errors whose code tells the caller what happened:
 * ECONNREFUSED the daemon is unreachable (no socket, nobody listening),
 * EACCES no permission on the socket, ETIMEDOUT no reply in time, EPROTO a
 * reply that is not HTTP or not JSON. An HTTP error status is not a
 * transport failure: it comes back in the reply. */
#ifndef VCPUD_CLI_CLIENT_H
#define VCPUD_CLI_CLIENT_H

#include <jansson.h>
#include <stddef.h>

#include "vcpud/error.h"

/* Replies larger than this are refused (EFBIG): no reply of vcpud's API
 * comes near it. */
#define CLIENT_MAX_REPLY_BYTES (64L * 1024 * 1024)

struct client_reply {
	long status;               /* HTTP status */
	json_t *json;              /* parsed body (owned reference), NULL if empty */
};

/* Send `method` `path` (starting with "/") with an optional JSON body to the
 * vcpud listening on `socket_path`, waiting at most timeout_ms in total.
 * On success (any HTTP status) fills *out; free it with client_reply_clear().
 * Returns 0 or -1 with *err as described above; messages name the socket. */
int client_request(const char *socket_path, const char *method, const char *path,
		   const json_t *body, long timeout_ms, struct client_reply *out,
		   struct error **err);

void client_reply_clear(struct client_reply *r);

/* The message of an API error body {"error":{"message":..}}, or NULL. The
 * string belongs to `reply`. */
const char *client_error_message(const json_t *reply);

#endif
