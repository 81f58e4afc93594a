/* fuzz_auth.c - what a stranger controls on the TCP API and what an
 * operator types: the token file's parser (auth_tokens_parse), the
 * Authorization header (auth_bearer), --listen's address
 * (api_listen_parse) and vcpuctl's --url (client_url_parse). Each either
 * takes the input whole and says so consistently, or refuses it with an
 * error. */
#include "fuzz_util.h"

#include <sys/socket.h>

#include "cli/client.h"
#include "vcpud/api.h"
#include "vcpud/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the token file: the bytes as they are (no NUL after them) */
	char *buf = malloc(size ? size : 1);
	memcpy(buf, data, size);
	struct auth_tokens t;
	struct error *err = NULL;
	if (auth_tokens_parse(buf, size, "fuzz", &t, &err) == 0) {
		if (err || t.n > AUTH_MAX_TOKENS)
			abort();
		for (size_t i = 0; i < t.n; i++) {
			size_t nl = strlen(t.v[i].name);
			if (nl == 0 || nl > AUTH_NAME_MAX)
				abort();
			for (size_t k = 0; k < i; k++)
				if (strcmp(t.v[k].name, t.v[i].name) == 0)
					abort();
		}
		/* the input as a token: found only by its own hash */
		const struct auth_token *f = auth_tokens_find(&t, buf, size);
		if (f) {
			uint8_t h[32];
			auth_sha256(buf, size, h);
			if (memcmp(h, f->sha256, 32) != 0)
				abort();
		}
		auth_tokens_clear(&t);
	} else if (!err) {
		abort();
	}
	error_free(&err);
	free(buf);

	/* the strings: up to the first NUL */
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	const char *tok;
	size_t len;
	if (auth_bearer(s, &tok, &len) == 0 &&
	    (tok < s || tok + len > s + strlen(s) || len == 0 || len > AUTH_TOKEN_MAX))
		abort();
	struct sockaddr_storage ss;
	socklen_t sl;
	if (api_listen_parse(s, &ss, &sl, &err) == 0) {
		if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
			abort();
	} else if (!err) {
		abort();
	}
	error_free(&err);
	struct client_url u;
	if (client_url_parse(s, &u, &err) == 0) {
		if (!u.host[0] || !u.port[0] || (!u.tls && strncmp(s, "http://", 7) != 0))
			abort();
	} else if (!err) {
		abort();
	}
	error_free(&err);
	free(s);
	return 0;
}
