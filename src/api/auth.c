/* auth.c - the TCP API's bearer tokens (auth.h): the token file's parser,
 * SHA-256 through GnuTLS (which libmicrohttpd's TLS already maps) and the
 * constant-time lookup. */
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "vcpud/auth.h"
#include "vcpud/util.h"

/* a token file bigger than this is not a token file */
#define AUTH_FILE_MAX (1024 * 1024)

const char *auth_role_name(enum auth_role r)
{
	return r == AUTH_ROLE_ADMIN ? "admin" : "read";
}

void auth_sha256(const void *data, size_t len, uint8_t out[32])
{
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, out) < 0)
		abort(); /* SHA-256 is always there: an unusable GnuTLS */
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* The next whitespace-separated field of [*p, end): its start and length,
 * 0 when none is left. */
static size_t field(const char **p, const char *end, const char **start)
{
	while (*p < end && (**p == ' ' || **p == '\t'))
		(*p)++;
	*start = *p;
	while (*p < end && **p != ' ' && **p != '\t')
		(*p)++;
	return (size_t)(*p - *start);
}

static int parse_line(const char *p, const char *end, const char *what, unsigned lineno,
		      struct auth_token *t, struct error **err)
{
	const char *f[4];
	size_t fl[4];
	for (int i = 0; i < 4; i++)
		fl[i] = field(&p, end, &f[i]);
	if (!fl[2] || fl[3])
		return error_set(err, EINVAL, "%s:%u: a token line is NAME ROLE SHA256HEX "
				 "(three fields), this one has %s", what, lineno,
				 fl[3] ? "more" : "fewer");
	if (fl[0] > AUTH_NAME_MAX)
		return error_set(err, EINVAL, "%s:%u: token name is longer than %d characters",
				 what, lineno, AUTH_NAME_MAX);
	for (size_t i = 0; i < fl[0]; i++)
		if (!name_char(f[0][i]))
			return error_set(err, EINVAL, "%s:%u: token name '%.*s' has a character "
					 "other than A-Z a-z 0-9 . _ -", what, lineno, (int)fl[0],
					 f[0]);
	memcpy(t->name, f[0], fl[0]);
	t->name[fl[0]] = '\0';
	if (fl[1] == 4 && memcmp(f[1], "read", 4) == 0)
		t->role = AUTH_ROLE_READ;
	else if (fl[1] == 5 && memcmp(f[1], "admin", 5) == 0)
		t->role = AUTH_ROLE_ADMIN;
	else
		return error_set(err, EINVAL, "%s:%u: role '%.*s' of token %s is not read or admin",
				 what, lineno, (int)fl[1], f[1], t->name);
	if (fl[2] != 64)
		return error_set(err, EINVAL, "%s:%u: the hash of token %s is %zu characters, not "
				 "the 64 hex digits of a SHA-256", what, lineno, t->name, fl[2]);
	for (int i = 0; i < 32; i++) {
		int hi = hexval(f[2][2 * i]), lo = hexval(f[2][2 * i + 1]);
		if (hi < 0 || lo < 0)
			return error_set(err, EINVAL, "%s:%u: the hash of token %s is not hex",
					 what, lineno, t->name);
		t->sha256[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int auth_tokens_parse(const char *text, size_t len, const char *what, struct auth_tokens *out,
		      struct error **err)
{
	struct auth_tokens r = { NULL, 0 };
	size_t cap = 0;
	const char *p = text, *end = text + len;
	unsigned lineno = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		lineno++;
		const char *q = p;
		while (q < le && (*q == ' ' || *q == '\t' || *q == '\r'))
			q++;
		const char *e = le;
		while (e > q && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (memchr(q, '\0', (size_t)(e - q))) {
			auth_tokens_clear(&r);
			return error_set(err, EINVAL, "%s:%u: a NUL byte: not a token file", what,
					 lineno);
		}
		if (q < e && *q != '#') {
			if (r.n == AUTH_MAX_TOKENS) {
				auth_tokens_clear(&r);
				return error_set(err, EINVAL, "%s: more than %d tokens", what,
						 AUTH_MAX_TOKENS);
			}
			if (r.n == cap) {
				cap = cap ? 2 * cap : 8;
				r.v = xrealloc(r.v, cap * sizeof(*r.v));
			}
			struct auth_token *t = &r.v[r.n];
			memset(t, 0, sizeof(*t));
			if (parse_line(q, e, what, lineno, t, err) < 0) {
				auth_tokens_clear(&r);
				return -1;
			}
			for (size_t i = 0; i < r.n; i++) {
				const char *dup = strcmp(r.v[i].name, t->name) == 0 ? "name" :
						  memcmp(r.v[i].sha256, t->sha256, 32) == 0 ? "hash" :
											      NULL;
				if (dup) {
					int rc = error_set(err, EINVAL, "%s:%u: token %s has the same "
							   "%s as token %s", what, lineno, t->name,
							   dup, r.v[i].name);
					auth_tokens_clear(&r);
					return rc;
				}
			}
			r.n++;
		}
		p = nl ? nl + 1 : end;
	}
	*out = r;
	return 0;
}

int auth_tokens_load(const char *path, struct auth_tokens *out, struct error **err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return error_set_errno(err, errno, "cannot read token file %s", path);
	if (!S_ISREG(st.st_mode))
		return error_set(err, EINVAL, "token file %s is not a regular file", path);
	if (st.st_mode & S_IWOTH)
		return error_set(err, EACCES, "token file %s may be written by anyone (mode %04o): "
				 "anyone could add an admin token; chmod o-w it", path,
				 (unsigned)(st.st_mode & 07777));
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	if (read_file_max(path, "token file", AUTH_FILE_MAX, &buf, &len, err) < 0)
		return -1;
	return auth_tokens_parse(buf, len, path, out, err);
}

void auth_tokens_clear(struct auth_tokens *t)
{
	if (t->v)
		explicit_bzero(t->v, t->n * sizeof(*t->v));
	free(t->v);
	t->v = NULL;
	t->n = 0;
}

const struct auth_token *auth_tokens_find(const struct auth_tokens *t, const char *token,
					  size_t len)
{
	if (len == 0 || len > AUTH_TOKEN_MAX)
		return NULL;
	uint8_t h[32];
	auth_sha256(token, len, h);
	/* every entry, every byte: which one matched (if any) is picked
	 * without a branch on the secret */
	size_t found = SIZE_MAX;
	for (size_t i = 0; i < t->n; i++) {
		uint8_t diff = 0;
		for (int k = 0; k < 32; k++)
			diff |= (uint8_t)(h[k] ^ t->v[i].sha256[k]);
		/* mask: all ones when diff == 0 */
		size_t m = (size_t)0 - (size_t)(((unsigned)diff - 1u) >> 8 & 1u);
		found = (found & ~m) | (i & m);
	}
	explicit_bzero(h, sizeof(h));
	return found == SIZE_MAX ? NULL : &t->v[found];
}

static bool b64token_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

int auth_bearer(const char *header, const char **tok, size_t *len)
{
	if (!header || strncasecmp(header, "Bearer", 6) != 0 ||
	    (header[6] != ' ' && header[6] != '\t'))
		return -1;
	const char *p = header + 6;
	while (*p == ' ' || *p == '\t')
		p++;
	const char *s = p;
	while (b64token_char(*p))
		p++;
	if (p == s)
		return -1; /* 1*b64token-char, then *"=" (RFC 6750) */
	while (*p == '=')
		p++;
	const char *e = p;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p || e == s || (size_t)(e - s) > AUTH_TOKEN_MAX)
		return -1;
	*tok = s;
	*len = (size_t)(e - s);
	return 0;
}
