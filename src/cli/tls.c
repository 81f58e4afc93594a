/* tls.c - GnuTLS for vcpuctl --url https://..., by dlopen() (tls.h). The
 * functions are declared by GnuTLS's own header, so each pointer has the
 * real prototype; only their addresses come from dlsym(). */
#include <dlfcn.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "cli/tls.h"
#include "vcpud/util.h"

#define GNUTLS_SONAME "libgnutls.so.30"

#define GNUTLS_FUNCS(X)                                  \
	X(gnutls_certificate_allocate_credentials)       \
	X(gnutls_certificate_free_credentials)           \
	X(gnutls_certificate_set_x509_trust_file)        \
	X(gnutls_certificate_set_x509_system_trust)      \
	X(gnutls_certificate_verification_status_print)  \
	X(gnutls_init)                                   \
	X(gnutls_deinit)                                 \
	X(gnutls_set_default_priority)                   \
	X(gnutls_credentials_set)                        \
	X(gnutls_server_name_set)                        \
	X(gnutls_session_set_verify_cert)                \
	X(gnutls_session_get_verify_cert_status)         \
	X(gnutls_certificate_type_get2)                  \
	X(gnutls_transport_set_int2)                     \
	X(gnutls_handshake)                              \
	X(gnutls_record_send)                            \
	X(gnutls_record_recv)                            \
	X(gnutls_record_get_direction)                   \
	X(gnutls_error_is_fatal)                         \
	X(gnutls_strerror)

static struct {
	bool tried, ok;
	char why[256];
#define X(f) __typeof__(f) *f;
	GNUTLS_FUNCS(X)
#undef X
	gnutls_free_function *free_fn;
} g;

static bool load(void)
{
	if (g.tried)
		return g.ok;
	g.tried = true;
	void *h = dlopen(GNUTLS_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(g.why, sizeof(g.why), "%s", dlerror());
		return false;
	}
#define X(f)                                                                      \
	if (!(g.f = (__typeof__(f) *)dlsym(h, #f))) {                             \
		snprintf(g.why, sizeof(g.why), "%s has no %s", GNUTLS_SONAME, #f); \
		return false;                                                     \
	}
	GNUTLS_FUNCS(X)
#undef X
	g.free_fn = (gnutls_free_function *)dlsym(h, "gnutls_free");
	g.ok = true;
	return true;
}

struct client_tls {
	gnutls_session_t session;
	gnutls_certificate_credentials_t cred;
	int fd;
};

void client_tls_close(struct client_tls *t)
{
	if (!t)
		return;
	if (t->session)
		g.gnutls_deinit(t->session);
	if (t->cred)
		g.gnutls_certificate_free_credentials(t->cred);
	free(t);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

short client_tls_events(const struct client_tls *t)
{
	return g.gnutls_record_get_direction(t->session) ? POLLOUT : POLLIN;
}

/* Why the server's certificate was refused, in GnuTLS's words. */
static int verify_failed(struct client_tls *t, const char *where, struct error **err)
{
	unsigned status = g.gnutls_session_get_verify_cert_status(t->session);
	gnutls_datum_t out = { NULL, 0 };
	int rc;
	if (g.gnutls_certificate_verification_status_print(
		    status, g.gnutls_certificate_type_get2(t->session, GNUTLS_CTYPE_SERVER), &out,
		    0) == 0 && out.data) {
		char *m = (char *)out.data;
		size_t n = strlen(m);
		while (n > 0 && (m[n - 1] == ' ' || m[n - 1] == '.'))
			m[--n] = '\0';
		rc = error_set(err, EPROTO, "TLS with vcpud at %s: its certificate is refused: %s "
			       "(--cacert names the CA or the server's own certificate)", where,
			       (const char *)out.data);
		if (g.free_fn && *g.free_fn)
			(*g.free_fn)(out.data);
	} else {
		rc = error_set(err, EPROTO, "TLS with vcpud at %s: its certificate is refused",
			       where);
	}
	return rc;
}

int client_tls_open(int fd, const char *host, const char *cacert, int64_t deadline_ms,
		    const char *where, struct client_tls **out, struct error **err)
{
	if (!load())
		return error_set(err, ENOENT, "https needs GnuTLS (Debian: libgnutls30): %s",
				 g.why);
	struct client_tls *t = xcalloc(1, sizeof(*t));
	t->fd = fd;
	int rc = g.gnutls_certificate_allocate_credentials(&t->cred);
	if (rc < 0)
		goto tls_error;
	if (cacert) {
		rc = g.gnutls_certificate_set_x509_trust_file(t->cred, cacert, GNUTLS_X509_FMT_PEM);
		if (rc <= 0) {
			int r = error_set(err, EINVAL, "--cacert %s: %s", cacert,
					  rc == 0 ? "no certificate in it" : g.gnutls_strerror(rc));
			client_tls_close(t);
			return r;
		}
	} else if ((rc = g.gnutls_certificate_set_x509_system_trust(t->cred)) < 0) {
		goto tls_error;
	}
	rc = g.gnutls_init(&t->session, GNUTLS_CLIENT | GNUTLS_NONBLOCK);
	if (rc < 0)
		goto tls_error;
	if ((rc = g.gnutls_set_default_priority(t->session)) < 0 ||
	    (rc = g.gnutls_credentials_set(t->session, GNUTLS_CRD_CERTIFICATE, t->cred)) < 0)
		goto tls_error;
	/* SNI is for names; an address is checked against the certificate's
	 * IP subjectAltName by the verification below */
	if (!strchr(host, ':') && strspn(host, "0123456789.") != strlen(host))
		g.gnutls_server_name_set(t->session, GNUTLS_NAME_DNS, host, strlen(host));
	g.gnutls_session_set_verify_cert(t->session, host, 0);
	g.gnutls_transport_set_int2(t->session, fd, fd);
	for (;;) {
		rc = g.gnutls_handshake(t->session);
		if (rc == 0)
			break;
		if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
			int r = verify_failed(t, where, err);
			client_tls_close(t);
			return r;
		}
		if (rc != GNUTLS_E_AGAIN && rc != GNUTLS_E_INTERRUPTED &&
		    g.gnutls_error_is_fatal(rc))
			goto tls_error;
		int64_t left = deadline_ms - mono_ms();
		if (left <= 0) {
			client_tls_close(t);
			return error_set(err, ETIMEDOUT, "vcpud at %s did not finish the TLS "
					 "handshake in time", where);
		}
		struct pollfd p = { .fd = fd, .events = client_tls_events(t) };
		if (poll(&p, 1, (int)(left > 60000 ? 60000 : left)) < 0 && errno != EINTR) {
			int e = errno;
			client_tls_close(t);
			return error_set_errno(err, e, "TLS with vcpud at %s", where);
		}
	}
	*out = t;
	return 0;

tls_error:;
	int r = error_set(err, EPROTO, "TLS with vcpud at %s: %s", where, g.gnutls_strerror(rc));
	client_tls_close(t);
	return r;
}

static ssize_t io_result(ssize_t rc)
{
	if (rc >= 0)
		return rc;
	if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
		errno = EAGAIN;
		return -1;
	}
	/* the peer closed without close_notify: an end, as for TCP */
	if (rc == GNUTLS_E_PREMATURE_TERMINATION)
		return 0;
	errno = EPROTO;
	return -1;
}

ssize_t client_tls_send(struct client_tls *t, const void *buf, size_t n)
{
	return io_result(g.gnutls_record_send(t->session, buf, n));
}

ssize_t client_tls_recv(struct client_tls *t, void *buf, size_t n)
{
	return io_result(g.gnutls_record_recv(t->session, buf, n));
}
