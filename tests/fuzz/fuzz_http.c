/* fuzz_http.c - vcpuctl's reply parser (src/cli/client.c): the input as
 * what a server sent, parsed as a whole reply (the connection closed) and
 * as one still arriving, and its head alone. A reply's body, when there is
 * one, must lie within what was sent and end with a NUL. */
#include "fuzz_util.h"

#include "cli/client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the input without a NUL after it: the parser must not need one */
	char *buf = malloc(size ? size : 1);
	memcpy(buf, data, size);
	for (int at_eof = 0; at_eof < 2; at_eof++) {
		long status = 0;
		char *body = NULL;
		size_t blen = 0;
		struct error *err = NULL;
		int r = client_parse_reply(buf, size, at_eof, &status, &body, &blen, &err);
		if (r == 0) {
			if (!body || body[blen] != '\0' || blen > size || status < 100 || status > 999)
				abort();
		} else if (r == 1) {
			if (at_eof || body || err)
				abort();
		} else if (r != -1 || !err || body) {
			abort();
		}
		free(body);
		error_free(&err);
	}
	struct client_head h;
	struct error *err = NULL;
	if (client_parse_head(buf, size, &h, &err) == 0 && h.head_len > size)
		abort();
	error_free(&err);
	free(buf);
	return 0;
}
