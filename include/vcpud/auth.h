/* auth.h - bearer tokens of the TCP API (vcpud --listen --token-file).
 *
 * The token file has one token per line: NAME ROLE SHA256HEX, where NAME
 * ([A-Za-z0-9._-], 1..64 characters) is what the audit log names
 * ("token:NAME"), ROLE is "read" (GET and HEAD only, /metrics included) or
 * "admin" (everything), and SHA256HEX the SHA-256 of the token, in 64 hex
 * digits (as `printf %s "$TOKEN" | sha256sum` prints it). Blank lines and
 * lines starting with '#' are ignored. The file holds no secret: a token is
 * random (32 bytes or more: `openssl rand -hex 32`) and only its hash is
 * kept, so a file that leaks gives nobody a token. A file anyone may write
 * to is refused (anyone could add an admin).
 *
 * A presented token is hashed and compared with every entry's hash in
 * constant time (no early exit, no comparison that stops at the first
 * differing byte), so the time of a refusal says nothing about how close a
 * guess was. */
#ifndef VCPUD_AUTH_H
#define VCPUD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vcpud/error.h"

#define AUTH_NAME_MAX 64
/* a presented token longer than this is refused before hashing */
#define AUTH_TOKEN_MAX 4096
#define AUTH_MAX_TOKENS 4096

enum auth_role { AUTH_ROLE_READ, AUTH_ROLE_ADMIN };

struct auth_token {
	char name[AUTH_NAME_MAX + 1];
	enum auth_role role;
	uint8_t sha256[32];
};

struct auth_tokens {
	struct auth_token *v;
	size_t n;
};

/* Parse a token file's text (`len` bytes; `what` names it in messages):
 * 0 and *out (free with auth_tokens_clear()), or -1 with EINVAL naming the
 * line and what is wrong with it. Duplicate names and duplicate hashes are
 * refused. An empty file is valid (no token: every TCP request is 401). */
int auth_tokens_parse(const char *text, size_t len, const char *what, struct auth_tokens *out,
		      struct error **err);

/* Read and parse `path`: refused when anyone may write to it (mode o+w),
 * or when it is not a regular file. */
int auth_tokens_load(const char *path, struct auth_tokens *out, struct error **err);

void auth_tokens_clear(struct auth_tokens *t);

/* The token whose hash is SHA-256(token[0..len)), or NULL. Every entry is
 * compared, in constant time. */
const struct auth_token *auth_tokens_find(const struct auth_tokens *t, const char *token,
					  size_t len);

/* The token of an Authorization header value ("Bearer TOKEN", the scheme
 * in any case, RFC 6750 b64token characters): 0 with *tok and *len pointing
 * into `header`, or -1 (missing, another scheme, bad characters, too long). */
int auth_bearer(const char *header, const char **tok, size_t *len);

/* SHA-256 of data into out (GnuTLS). */
void auth_sha256(const void *data, size_t len, uint8_t out[32]);

const char *auth_role_name(enum auth_role r);

#endif
