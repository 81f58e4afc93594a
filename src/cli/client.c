/* client.c - one HTTP/JSON exchange with vcpud over its UNIX socket, on
 * libcurl's easy interface. The URL's host is a placeholder ("localhost");
 * the socket path decides where the request goes. Failures to connect are
 * classified so that vcpuctl can tell "daemon not running" from "permission
 * denied" and from a daemon that answered with an error. */
#include <curl/curl.h>
#include <errno.h>
#include <string.h>
#include <sys/un.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "vcpud/util.h"

struct buf {
	char *data;
	size_t len;
	size_t cap;
	bool too_large;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct buf *b = userdata;
	size_t n = size * nmemb;
	if (b->len + n > (size_t)CLIENT_MAX_REPLY_BYTES) {
		b->too_large = true;
		return 0; /* makes curl fail with CURLE_WRITE_ERROR */
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (b->len + n + 1 > cap)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

static void curl_cleanupp(CURL **h)
{
	if (*h)
		curl_easy_cleanup(*h);
}

static void slist_freep(struct curl_slist **l)
{
	if (*l)
		curl_slist_free_all(*l);
}

static const char hint[] = "is vcpud running? use --socket or " CLI_SOCKET_ENV;

/* A failed curl_easy_perform() as one of the error codes of client.h. */
static int transport_error(CURL *h, CURLcode rc, const char *errbuf,
			   const char *socket_path, const struct buf *b, long timeout_ms,
			   struct error **err)
{
	long os_errno = 0;
	curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);

	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		if (os_errno == EACCES || os_errno == EPERM)
			return error_set(err, EACCES,
					 "permission denied connecting to vcpud at %s "
					 "(run as root or as a member of the socket's group)",
					 socket_path);
		return error_set(err, ECONNREFUSED, "cannot reach vcpud at %s: %s (%s)",
				 socket_path,
				 os_errno ? strerror((int)os_errno) : "connection failed",
				 hint);
	case CURLE_OPERATION_TIMEDOUT:
		return error_set(err, ETIMEDOUT,
				 "vcpud at %s did not answer within %ld s "
				 "(a change may or may not have been applied)",
				 socket_path, (timeout_ms + 999) / 1000);
	case CURLE_WRITE_ERROR:
		if (b->too_large)
			return error_set(err, EFBIG, "reply from vcpud at %s is larger than %ld bytes",
					 socket_path, CLIENT_MAX_REPLY_BYTES);
		break;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
		return error_set(err, EPROTO,
				 "vcpud at %s closed the connection without a reply (%s)",
				 socket_path, curl_easy_strerror(rc));
	default:
		break;
	}
	return error_set(err, EPROTO, "request to vcpud at %s failed: %s", socket_path,
			 errbuf[0] ? errbuf : curl_easy_strerror(rc));
}

int client_request(const char *socket_path, const char *method, const char *path,
		   const json_t *body, long timeout_ms, struct client_reply *out,
		   struct error **err)
{
	memset(out, 0, sizeof(*out));
	struct sockaddr_un sun;
	if (!socket_path || !*socket_path)
		return error_set(err, EINVAL, "no socket path given");
	if (strlen(socket_path) >= sizeof(sun.sun_path))
		return error_set(err, EINVAL, "socket path %s is too long (at most %zu bytes)",
				 socket_path, sizeof(sun.sun_path) - 1);
	if (!path || path[0] != '/')
		return error_set(err, EINVAL, "request path '%s' does not start with '/'",
				 path ? path : "");

	static bool curl_ready;
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return error_set(err, EIO, "cannot initialise libcurl");
		curl_ready = true;
	}

	_cleanup_(curl_cleanupp) CURL *h = curl_easy_init();
	if (!h)
		return error_set(err, EIO, "cannot initialise libcurl");
	_cleanup_(slist_freep) struct curl_slist *headers = NULL;
	_cleanup_free_ char *url = xasprintf("http://localhost%s", path);
	_cleanup_free_ char *payload = NULL;
	_cleanup_free_ char *errbuf = xcalloc(1, CURL_ERROR_SIZE);
	struct buf b = { 0 };

	headers = curl_slist_append(headers, "Accept: application/json");
	/* never wait for a "100 Continue" the server has no reason to send */
	headers = curl_slist_append(headers, "Expect:");
	if (body) {
		payload = json_dumps(body, JSON_COMPACT);
		if (!payload)
			return error_set(err, EINVAL, "cannot encode the request body as JSON");
		headers = curl_slist_append(headers, "Content-Type: application/json");
	}
	if (!headers)
		return error_set(err, EIO, "cannot build request headers");

	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, socket_path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "vcpuctl/" VCPUD_VERSION);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	if (timeout_ms <= 0)
		timeout_ms = CLI_DEFAULT_TIMEOUT_MS;
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 timeout_ms < 5000 ? timeout_ms : 5000L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (payload) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
	} else if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	}

	CURLcode rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		int r = transport_error(h, rc, errbuf, socket_path, &b, timeout_ms, err);
		free(b.data);
		return r;
	}

	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	json_t *json = NULL;
	if (b.len > 0) {
		json_error_t jerr;
		json = json_loadb(b.data, b.len, JSON_DECODE_ANY, &jerr);
		if (!json) {
			error_set(err, EPROTO,
				  "unexpected reply from vcpud at %s (HTTP %ld): not JSON: %s",
				  socket_path, status, jerr.text);
			free(b.data);
			return -1;
		}
	}
	free(b.data);
	out->status = status;
	out->json = json;
	return 0;
}

void client_reply_clear(struct client_reply *r)
{
	if (r->json)
		json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

const char *client_error_message(const json_t *reply)
{
	const json_t *e = json_object_get(reply, "error");
	return json_string_value(json_object_get(e, "message"));
}
