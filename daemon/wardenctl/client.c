/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "client.h"
#include "exit-code.h"
#include "macro.h"
#include "output.h"

#define TICK_MS 100

typedef struct Transfer {
	const Request *q;
	Response *resp;
	CURL *easy;
} Transfer;

static void curl_easy_cleanupp(CURL **e) {
	if (*e)
		curl_easy_cleanup(*e);
}

static void curl_slist_free_allp(struct curl_slist **l) {
	curl_slist_free_all(*l);
}

static void curl_freep(char **p) {
	curl_free(*p);
}

void response_done(Response *r) {
	buffer_done(&r->body);
	free(r->content_type);
	free(r->etag);
	*r = (Response){ 0 };
}

void sleep_s(unsigned s) {
	struct timespec ts = { .tv_sec = s };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static const char *endpoint(const Options *o) {
	return o->url ? o->url : o->socket;
}

char *path_make(const char *prefix, const char *component, const char *suffix) {
	_cleanup_(curl_freep) char *esc = NULL;
	char *p;

	if (component) {
		esc = curl_easy_escape(NULL, component, 0);
		if (!esc)
			return NULL;
	}
	if (asprintf(&p, "%s%s%s", prefix, esc ? esc : "", suffix ? suffix : "") < 0)
		return NULL;
	return p;
}

int path_add_query(char **path, const char *key, const char *value) {
	_cleanup_(curl_freep) char *esc = curl_easy_escape(NULL, value, 0);
	char *p;

	if (!esc)
		return -ENOMEM;
	if (asprintf(&p, "%s%c%s=%s", *path, strchr(*path, '?') ? '&' : '?', key, esc) < 0)
		return -ENOMEM;
	free(*path);
	*path = p;
	return 0;
}

static int build_url(const Options *o, const char *path, char **ret) {
	size_t l;

	if (!o->url)
		return asprintf(ret, "http://localhost%s", path) < 0 ? -ENOMEM : 0;
	l = strlen(o->url);
	while (l > 0 && o->url[l - 1] == '/')
		l--;
	return asprintf(ret, "%.*s%s", (int)l, o->url, path) < 0 ? -ENOMEM : 0;
}

static int add_header(struct curl_slist **l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int add_header(struct curl_slist **l, const char *fmt, ...) {
	_cleanup_free_ char *s = NULL;
	struct curl_slist *n;
	va_list ap;
	int k;

	va_start(ap, fmt);
	k = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (k < 0)
		return -ENOMEM;
	n = curl_slist_append(*l, s);
	if (!n)
		return -ENOMEM;
	*l = n;
	return 0;
}

static int build_headers(const Options *o, const Request *q, struct curl_slist **l) {
	int r = 0;

	if (o->authorization) {
		struct curl_slist *n = curl_slist_append(*l, o->authorization);
		if (!n)
			return -ENOMEM;
		*l = n;
	}
	r = r ?: add_header(l, "Accept: %s", q->accept ? q->accept : "application/json, application/problem+json");
	if (q->content_type)
		r = r ?: add_header(l, "Content-Type: %s", q->content_type);
	if (q->idempotency_key)
		r = r ?: add_header(l, "Idempotency-Key: %s", q->idempotency_key);
	if (q->if_match)
		r = r ?: add_header(l, "If-Match: %s", q->if_match);
	if (q->content_digest)
		r = r ?: add_header(l, "Content-Digest: %s", q->content_digest);
	if (q->last_event_id)
		r = r ?: add_header(l, "Last-Event-ID: %s", q->last_event_id);
	return r;
}

static size_t on_body(char *p, size_t size, size_t n, void *userdata) {
	Transfer *t = userdata;
	size_t len = size * n;

	if (t->resp->status == 0)
		curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->resp->status);
	if (t->q->on_data && t->resp->status >= 200 && t->resp->status < 300)
		return t->q->on_data(p, len, t->q->data_userdata);
	return buffer_append(&t->resp->body, p, len) < 0 ? 0 : len;
}

static size_t on_upload_read(char *p, size_t size, size_t n, void *userdata) {
	FILE *f = userdata;
	size_t k = fread(p, size, n, f);

	if (k == 0 && ferror(f))
		return CURL_READFUNC_ABORT;
	return k;
}

static int on_upload_seek(void *userdata, curl_off_t offset, int origin) {
	return fseeko(userdata, (off_t)offset, origin) < 0 ? CURL_SEEKFUNC_CANTSEEK : CURL_SEEKFUNC_OK;
}

static bool handle_setup(const Options *o, const Request *q, CURL *e, const char *url, struct curl_slist *h,
                         Transfer *t) {
	long timeout_ms = lround(o->timeout_s * 1000.0);
	bool bad = false;

	bad |= curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "wardenctl/" WARDEN_VERSION) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, h) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->resp->error) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, t) != CURLE_OK;
	bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms) != CURLE_OK;
	if (!o->url)
		bad |= curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, o->socket) != CURLE_OK;
	if (o->cacert)
		bad |= curl_easy_setopt(e, CURLOPT_CAINFO, o->cacert) != CURLE_OK;
	if (q->upload) {
		/* A large image on a slow link may take long; only a stall fails it. */
		bad |= curl_easy_setopt(e, CURLOPT_UPLOAD, 1L) != CURLE_OK;
		bad |= curl_easy_setopt(e, CURLOPT_READFUNCTION, on_upload_read) != CURLE_OK;
		bad |= curl_easy_setopt(e, CURLOPT_READDATA, q->upload) != CURLE_OK;
		bad |= curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_upload_seek) != CURLE_OK;
		bad |= curl_easy_setopt(e, CURLOPT_SEEKDATA, q->upload) != CURLE_OK;
		bad |= curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, q->upload_size) != CURLE_OK;
		bad |= curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L) != CURLE_OK;
		bad |= curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)ceil(o->timeout_s)) != CURLE_OK;
	} else if (!q->stream) {
		bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms + lround(q->hold_s * 1000.0)) != CURLE_OK;
	}
	if (q->body || (streq(q->method, "POST") && !q->upload)) {
		bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_size) != CURLE_OK;
		bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, q->body ? q->body : "") != CURLE_OK;
	}
	bad |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, q->method) != CURLE_OK;
	return !bad;
}

static char *response_header(CURL *e, const char *name) {
	struct curl_header *h;

	if (curl_easy_header(e, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
		return NULL;
	return strdup(h->value);
}

/* Runs one transfer to its end. curl's multi interface lets the tick function
 * redraw a progress line or end an idle event stream between reads. */
static CURLcode transfer_run(CURL *e, TickFn tick, void *userdata) {
	CURLM *m = curl_multi_init();
	CURLcode rc = CURLE_OK;
	struct CURLMsg *msg;
	int running = 1, left;

	if (!m)
		return CURLE_OUT_OF_MEMORY;
	if (curl_multi_add_handle(m, e) != CURLM_OK) {
		curl_multi_cleanup(m);
		return CURLE_FAILED_INIT;
	}
	for (;;) {
		if (curl_multi_perform(m, &running) != CURLM_OK) {
			rc = CURLE_FAILED_INIT;
			break;
		}
		if (!running)
			break;
		if (tick && !tick(e, userdata)) {
			rc = CURLE_ABORTED_BY_CALLBACK;
			break;
		}
		if (curl_multi_poll(m, NULL, 0, TICK_MS, NULL) != CURLM_OK) {
			rc = CURLE_FAILED_INIT;
			break;
		}
	}
	while (!running && (msg = curl_multi_info_read(m, &left)))
		if (msg->msg == CURLMSG_DONE)
			rc = msg->data.result;
	curl_multi_remove_handle(m, e);
	curl_multi_cleanup(m);
	return rc;
}

int request_once(const Options *o, const Request *q, Response *resp) {
	_cleanup_(curl_easy_cleanupp) CURL *e = curl_easy_init();
	_cleanup_(curl_slist_free_allp) struct curl_slist *h = NULL;
	_cleanup_free_ char *url = NULL;
	Transfer t = { .q = q, .resp = resp, .easy = e };
	int r;

	if (!e)
		return -ENOMEM;
	r = build_url(o, q->path, &url);
	if (r < 0)
		return r;
	r = build_headers(o, q, &h);
	if (r < 0)
		return r;
	if (!handle_setup(o, q, e, url, h, &t))
		return -ENOMEM;
	resp->code = transfer_run(e, q->tick, q->tick_userdata);
	if (resp->code != CURLE_OK && resp->code != CURLE_ABORTED_BY_CALLBACK) {
		long os_errno = 0;
		/* curl's text names "localhost port 80" for a unix socket too */
		if (curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK)
			resp->os_errno = os_errno;
		if (os_errno && !o->url)
			snprintf(resp->error, sizeof resp->error, "%s (%s)", curl_easy_strerror(resp->code),
			         strerror((int)os_errno));
		else if (!resp->error[0])
			snprintf(resp->error, sizeof resp->error, "%s", curl_easy_strerror(resp->code));
		return -EIO;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp->status);
	if (resp->status == 0) {
		snprintf(resp->error, sizeof resp->error, "no answer");
		return -EIO;
	}
	resp->content_type = response_header(e, "Content-Type");
	resp->etag = response_header(e, "ETag");
	{
		_cleanup_free_ char *replayed = response_header(e, "Idempotent-Replayed");
		resp->replayed = streq(replayed, "true");
	}
	return 0;
}

bool request_retryable(CURLcode c) {
	switch (c) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

bool request_hopeless(const Options *o, const Response *resp) {
	return !o->url && resp->code == CURLE_COULDNT_CONNECT &&
	       (resp->os_errno == EACCES || resp->os_errno == EPERM || resp->os_errno == ECONNREFUSED);
}

/* Sends q, retrying transport failures with the same request (and so the
 * same Idempotency-Key). Returns like request_once(). */
static int request_send(const Options *o, const Request *q, Response *resp) {
	bool maybe_sent = false;

	for (unsigned attempt = 1;; attempt++) {
		unsigned delay = 1u << (attempt - 1);
		int r;

		response_done(resp);
		if (q->upload && fseeko(q->upload, 0, SEEK_SET) < 0)
			return -errno;
		r = request_once(o, q, resp);
		maybe_sent |= r == -EIO && resp->code != CURLE_COULDNT_CONNECT && resp->code != CURLE_COULDNT_RESOLVE_HOST;
		resp->maybe_sent = maybe_sent;
		if (r != -EIO || attempt >= REQUEST_MAX_ATTEMPTS || !request_retryable(resp->code) ||
		    request_hopeless(o, resp))
			return r;
		clear_progress_line(o);
		fprintf(stderr, "wardenctl: %s %s: %s; retrying in %u s (attempt %u of %u%s%s)\n", q->method, q->path,
		        resp->error, delay, attempt + 1, REQUEST_MAX_ATTEMPTS, q->idempotency_key ? ", Idempotency-Key " : "",
		        q->idempotency_key ? q->idempotency_key : "");
		sleep_s(delay);
	}
}

/* Prints a problem+json answer as "wardenctl: TITLE: DETAIL"; with --json
 * the document also goes to stdout for scripts. Returns the exit code. */
int report_http_error(const Options *o, const Response *resp) {
	_cleanup_(json_decrefp) json_t *j = NULL;
	const char *title = NULL, *detail = NULL;

	if (resp->body.data)
		j = json_loadb(resp->body.data, resp->body.size, 0, NULL);
	title = jstr(j, "title");
	detail = jstr(j, "detail");
	if (j && o->json)
		print_doc(o, resp->body.data, resp->body.size);
	clear_progress_line(o);
	if (title || detail)
		fprintf(stderr, "wardenctl: %s: %s\n", title ? title : "Error", detail ? detail : "(no detail)");
	else
		fprintf(stderr, "wardenctl: HTTP %ld: %.200s\n", resp->status,
		        resp->body.size ? resp->body.data : "(empty answer)");
	if (resp->status == 401 && !o->authorization)
		fprintf(stderr, "wardenctl: TCP listeners need a bearer token: --token-file or WARDEN_TOKEN_FILE\n");
	return exit_code_for_status(resp->status);
}

int report_unreachable(const Options *o, const Request *q, const Response *resp) {
	clear_progress_line(o);
	fprintf(stderr, "wardenctl: cannot reach wardend at %s: %s\n", endpoint(o), resp->error);
	if (!o->url && (resp->os_errno == EACCES || resp->os_errno == EPERM))
		fprintf(stderr,
		        "wardenctl: the socket's permissions refuse you: it belongs to the group api.socket_group of the "
		        "daemon's config (mode api.socket_mode; SocketGroup= under wardend.socket). Join that group "
		        "(usermod -aG GROUP $USER, then log in again) or run as root.\n");
	else if (!o->url && resp->os_errno == ECONNREFUSED)
		fprintf(stderr, "wardenctl: nothing listens on %s: is wardend running? (systemctl status wardend)\n",
		        o->socket);
	else if (!o->url && resp->os_errno == ENOENT)
		fprintf(stderr, "wardenctl: %s does not exist: is wardend running, and is this its socket "
		        "(--socket, WARDEN_SOCKET)?\n", o->socket);
	if (q->idempotency_key && resp->maybe_sent)
		fprintf(stderr,
		        "wardenctl: %s %s may or may not have been applied; repeat the command with "
		        "--idempotency-key %s to retry it safely\n",
		        q->method, q->path, q->idempotency_key);
	return EXIT_UNREACHABLE;
}

int request_run(const Options *o, const Request *q, Response *resp) {
	int r = request_send(o, q, resp);

	if (r == -EIO)
		return report_unreachable(o, q, resp);
	if (r < 0) {
		fprintf(stderr, "wardenctl: %s %s: %s\n", q->method, q->path, strerror(-r));
		return EXIT_REFUSED;
	}
	if (resp->status < 200 || resp->status > 299)
		return report_http_error(o, resp);
	if (resp->replayed && q->idempotency_key) {
		clear_progress_line(o);
		fprintf(stderr, "wardenctl: the daemon had already handled Idempotency-Key %s; this is its stored answer\n",
		        q->idempotency_key);
	}
	return EXIT_OK;
}

int parse_json_answer(const Response *resp, json_t **ret) {
	json_error_t e;
	json_t *j = json_loadb(resp->body.data ? resp->body.data : "", resp->body.size, 0, &e);

	if (!j) {
		fprintf(stderr, "wardenctl: the daemon sent malformed JSON: %s (line %d)\n", e.text, e.line);
		return EXIT_REFUSED;
	}
	*ret = j;
	return EXIT_OK;
}

/* GET PATH; on success *ret holds the parsed answer and resp the raw one. */
static int get_json(const Options *o, const char *path, Response *resp, json_t **ret) {
	Request q = { .method = "GET", .path = path };
	int r = request_run(o, &q, resp);

	return r != EXIT_OK ? r : parse_json_answer(resp, ret);
}

int get_and_show(const Options *o, const char *path, ShowFn show) {
	_cleanup_(response_done) Response resp = { 0 };
	_cleanup_(json_decrefp) json_t *j = NULL;
	int r = get_json(o, path, &resp, &j);

	if (r != EXIT_OK)
		return r;
	if (o->json) {
		print_doc(o, resp.body.data, resp.body.size);
		return EXIT_OK;
	}
	if (o->format == FORMAT_NAME && json_is_object(j) && jstr(j, "name")) {
		printf("%s\n", jstr(j, "name"));
		return EXIT_OK;
	}
	if (o->format == FORMAT_NAME && json_is_object(j) && !json_is_array(json_list(j, "cells")) &&
	    !json_is_array(json_list(j, "operations")) && !json_is_array(json_list(j, "images"))) {
		fprintf(stderr, "wardenctl: -o name: this answer has no name; it applies to lists and cells\n");
		return EXIT_USAGE;
	}
	return show(o, &resp, j);
}

int get_text(const Options *o, const char *path) {
	_cleanup_(response_done) Response resp = { 0 };
	Request q = { .method = "GET", .path = path, .accept = "text/plain, application/problem+json" };
	int r = request_run(o, &q, &resp);

	if (r == EXIT_OK && resp.body.size)
		fwrite(resp.body.data, 1, resp.body.size, stdout);
	return r;
}
