/* SPDX-License-Identifier: MIT */
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <strings.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <microhttpd.h>
#include <systemd/sd-event.h>

#include "api.h"
#include "log.h"
#include "macro.h"
#include "manager.h"

#define HTTP_MAX_LISTENERS 16
#define HTTP_MAX_EXTRA_HEADERS 8

/* The kernel's accept queue: as deep as it allows (net.core.somaxconn),
 * so that a burst of connects waits there for the loop instead of having
 * its SYNs dropped and resent a second later; whatever is past
 * max_connections is then answered 503 (the soak's floods, with a fixed
 * 64, saw 1 s connects). */
#define HTTP_LISTEN_BACKLOG SOMAXCONN

/* Connections past max_connections are still accepted, up to this many
 * more, so that they can be told 503 instead of waiting in the backlog;
 * idle ones are dropped after OVERFLOW_TIMEOUT_S. */
#define HTTP_OVERFLOW_CONNECTIONS 16
#define HTTP_OVERFLOW_TIMEOUT_S 1
#define HTTP_CONNECTION_TIMEOUT_S 60
#define HTTP_SNDBUF_BYTES (128 * 1024)

/* Stored in a connection's socket context when it came in over the limit. */
static char overflow_mark;

static void on_ready_resumed(HttpRequest *r, void *userdata);

typedef struct Listener {
	Http *http;
	struct MHD_Daemon *mhd;
	sd_event_source *io;
	sd_event_source *timer;
	/* MHD's next run, asked for outside MHD's own timeout: a resumed
	 * connection, a closed one (which may re-arm a listener at its
	 * limit), pending data. A source of its own so that rearming the
	 * timer after MHD_run() can never cancel it. */
	sd_event_source *kick;
	unsigned n_connections;
	bool is_unix;
	bool tls;
	char name[128];
} Listener;

/* What a request made by http_request_new_for_test() has instead of a
 * connection: its own listener, and the headers and query arguments
 * libmicrohttpd would have parsed. */
#define HTTP_TEST_MAX_FIELDS 32
typedef struct HttpTestFields {
	Listener listener;
	char *header[HTTP_TEST_MAX_FIELDS][2];
	size_t n_header;
	char *query[HTTP_TEST_MAX_FIELDS][2];
	size_t n_query;
} HttpTestFields;

typedef struct HttpStream HttpStream;
struct HttpStream {
	Listener *listener;
	struct MHD_Connection *connection;
	HttpStreamRead read;
	void (*free_fn)(void *);
	void *userdata;
	bool parked;
	bool closing;
	/* While parked, libmicrohttpd watches nothing on the socket: this
	 * watches a dup of it for the client's hangup, so a stream that was
	 * closed gives its connection slot back at once rather than at the
	 * keepalive write that fails (15-30 s later). */
	int hup_fd;
	sd_event_source *hup;
	HttpStream *prev, *next;
};
static void stream_unpark(HttpStream *st);

struct Http {
	Manager *manager;
	HttpLimits limits;
	HttpSocketOptions so;
	char *tls_cert, *tls_key;
	HttpAuthFn auth;
	void *auth_userdata;
	Listener listeners[HTTP_MAX_LISTENERS];
	size_t n_listeners;
	HttpStream *streams;
	HttpRequest *parked; /* suspended requests, for shutdown */
	/* Complete requests waiting for their turn (one per loop iteration,
	 * see on_dispatch), oldest first. */
	HttpRequest *ready_head, *ready_tail;
	sd_event_source *dispatch;
	HttpRequest *uploads; /* requests streaming into a sink */
	sd_event_source *upload_sweep;
	bool closing;
};

struct HttpRequest {
	Listener *listener;
	struct MHD_Connection *connection;
	const char *method;
	char *path;
	char *body;
	size_t body_size;
	bool body_too_large;
	bool replied;
	bool has_credentials;
	HttpRole role;
	char principal[64];
	/* streamed upload */
	bool has_sink;
	HttpSink sink;
	size_t sink_size;
	int sink_error;
	uint64_t sink_progress_ns;
	HttpRequest *up_prev, *up_next;
	/* parked while waiting */
	bool suspended;
	bool resumed;
	void (*on_resume)(HttpRequest *r, void *userdata);
	void (*resume_free)(void *userdata);
	void *resume_userdata;
	HttpRequest *park_prev, *park_next;
	HttpRequest *ready_next;
	char tag[64]; /* the API's note on the request (an operation id) */
	/* the SHA-256 of the body as it arrives, for Idempotency-Key
	 * records: whatever the body's way (buffered, a sink, dropped) */
	gnutls_hash_hd_t body_hash;
	bool hashing, body_hashed;
	uint8_t body_sha256[32];
	/* a copy of the reply, for Idempotency-Key records */
	bool capture;
	unsigned cap_status;
	char cap_type[64];
	char *cap_body;
	size_t cap_len;
	char *extra[HTTP_MAX_EXTRA_HEADERS][2];
	size_t n_extra;
	HttpTestFields *test; /* no connection: a test seam's request */
};

/* A resumed connection is only served on MHD's next run, and in
 * external-epoll mode nothing but our loop makes that run happen. */
static void listener_kick(Listener *l) {
	if (l->kick)
		sd_event_source_set_enabled(l->kick, SD_EVENT_ONESHOT);
}

static void listener_update_timer(Listener *l) {
	MHD_UNSIGNED_LONG_LONG ms;

	if (MHD_get_timeout(l->mhd, &ms) != MHD_YES) {
		sd_event_source_set_enabled(l->timer, SD_EVENT_OFF);
		return;
	}
	/* Data already buffered (an upload chunk, a pipelined request): run
	 * again on the next iteration rather than at the timer's accuracy. */
	if (ms == 0) {
		sd_event_source_set_enabled(l->timer, SD_EVENT_OFF);
		listener_kick(l);
		return;
	}
	sd_event_source_set_time(l->timer, now_ns(CLOCK_MONOTONIC) / NSEC_PER_USEC + ms * 1000);
	sd_event_source_set_enabled(l->timer, SD_EVENT_ONESHOT);
}

static void listener_run(Listener *l) {
	MHD_run(l->mhd);
	listener_update_timer(l);
}

static int on_listener_kick(sd_event_source *s, void *userdata) {
	(void)s;
	listener_run(userdata);
	return 0;
}

/* libmicrohttpd takes its listening socket out of epoll when it reaches
 * its connection limit, and puts it back only at the start of a later
 * run: a closed connection asks for that run, or the listener would stay
 * deaf once the last connection is gone. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
	Listener *l = cls;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		/* libmicrohttpd writes to every writable connection in one run,
		 * as much as each socket takes: 32 scrapes of 650 KB were 20 MB
		 * of copying in one go on loopback's autotuned buffers. A fixed
		 * send buffer bounds what one run may copy per connection. */
		if (ci) {
			int sz = HTTP_SNDBUF_BYTES;
			(void)setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
		}
		l->n_connections++;
		if (l->n_connections > l->http->limits.max_connections) {
			*socket_context = &overflow_mark;
			/* An idle one must not hold an overflow slot for long. */
			MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)HTTP_OVERFLOW_TIMEOUT_S);
		}
		return;
	}
	if (l->n_connections > 0)
		l->n_connections--;
	listener_kick(l);
}

static bool connection_is_overflow(struct MHD_Connection *c) {
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci && ci->socket_context == &overflow_mark;
}

static int on_listener_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	(void)s;
	(void)fd;
	(void)revents;
	listener_run(userdata);
	return 0;
}

static int on_listener_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	(void)s;
	(void)usec;
	listener_run(userdata);
	return 0;
}

static void upload_unlink(HttpRequest *r) {
	Http *h = r->listener->http;
	if (!r->up_prev && h->uploads != r)
		return;
	if (r->up_prev)
		r->up_prev->up_next = r->up_next;
	else
		h->uploads = r->up_next;
	if (r->up_next)
		r->up_next->up_prev = r->up_prev;
	r->up_prev = r->up_next = NULL;
}

static void request_free(HttpRequest *r) {
	if (!r)
		return;
	upload_unlink(r);
	api_end(r->listener->http->manager, r);
	/* Parked, then resumed for a client that had gone: libmicrohttpd
	 * closes such a connection without calling us again, so on_resume
	 * never took its userdata over. */
	if (r->on_resume && r->resume_free)
		r->resume_free(r->resume_userdata);
	if (r->has_sink && r->sink.abort)
		r->sink.abort(r->sink.userdata);
	if (r->hashing)
		gnutls_hash_deinit(r->body_hash, NULL);
	free(r->path);
	free(r->body);
	free(r->cap_body);
	for (size_t i = 0; i < r->n_extra; i++) {
		free(r->extra[i][0]);
		free(r->extra[i][1]);
	}
	if (r->test) {
		for (size_t i = 0; i < r->test->n_header; i++) {
			free(r->test->header[i][0]);
			free(r->test->header[i][1]);
		}
		for (size_t i = 0; i < r->test->n_query; i++) {
			free(r->test->query[i][0]);
			free(r->test->query[i][1]);
		}
		free(r->test);
	}
	free(r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
	(void)cls;
	(void)c;
	(void)toe;
	request_free(*con_cls);
	*con_cls = NULL;
}

/* MHD hands us the path already percent-decoded; refuse what would be
 * ambiguous once decoded. */
static bool path_is_sane(const char *p) {
	if (p[0] != '/')
		return false;
	for (const char *c = p; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return false;
	return strstr(p, "//") == NULL && strstr(p, "/../") == NULL && strstr(p, "/./") == NULL;
}

/* What libmicrohttpd lets through and RFC 9112 does not, counted over
 * every header line (MHD_lookup_connection_value() sees the first only). */
typedef struct HeaderCheck {
	unsigned n_host, n_te;
	bool has_length, length_conflict;
	unsigned long long length;
} HeaderCheck;

static enum MHD_Result on_header_check(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
	HeaderCheck *hc = cls;

	(void)kind;
	if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0)
		hc->n_host++;
	else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
		hc->n_te++;
	else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
		/* RFC 9110, 8.6: the same value repeated (in lines or as a
		 * list) is one length; anything else cannot frame a body. */
		const char *p = value ? value : "";
		for (;;) {
			char *end;
			unsigned long long v;
			while (*p == ' ' || *p == '	')
				p++;
			if (*p < '0' || *p > '9') {
				hc->length_conflict = true;
				break;
			}
			errno = 0;
			v = strtoull(p, &end, 10);
			if (errno != 0 || (hc->has_length && v != hc->length))
				hc->length_conflict = true;
			hc->has_length = true;
			hc->length = v;
			p = end;
			while (*p == ' ' || *p == '	')
				p++;
			if (*p == 0)
				break;
			if (*p != ',') {
				hc->length_conflict = true;
				break;
			}
			p++;
		}
	}
	return MHD_YES;
}

/* The request's framing and header, checked before anything else reads
 * them: false when a problem was sent. The connection is closed after it,
 * as a body that cannot be framed cannot be skipped. */
static bool request_framing_is_sane(HttpRequest *r, const char *version) {
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->connection, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
	size_t limit = r->listener->http->limits.max_header_bytes;
	HeaderCheck hc = { 0 };

	/* libmicrohttpd bounds the header only by its memory pool, which
	 * also holds what it parses and the response: the documented limit is
	 * ours, and the pool (four times the limit) leaves room to say so. A
	 * header past the pool gets libmicrohttpd's own 431. */
	if (ci && ci->header_size > limit) {
		http_reply_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
		http_reply_problem(r, 431, NULL, "the request header is %zu bytes; the limit is %zu (limits.max_header_bytes)",
		                   ci->header_size, limit);
		return false;
	}
	MHD_get_connection_values(r->connection, MHD_HEADER_KIND, on_header_check, &hc);
	if (hc.length_conflict) {
		http_reply_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
		http_reply_problem(r, 400, NULL, "conflicting or malformed Content-Length headers");
		return false;
	}
	if (hc.has_length && hc.n_te > 0) {
		http_reply_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
		http_reply_problem(r, 400, NULL, "a request with both Transfer-Encoding and Content-Length");
		return false;
	}
	/* RFC 9112, 3.2: a 400 for HTTP/1.1 without exactly one Host. */
	if (hc.n_host > 1 || (hc.n_host == 0 && version && strcmp(version, MHD_HTTP_VERSION_1_1) == 0)) {
		http_reply_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
		http_reply_problem(r, 400, NULL, "an HTTP/1.1 request needs exactly one Host header (RFC 9112, 3.2)");
		return false;
	}
	return true;
}

/* Who is asking: the peer's uid on the unix socket, a token's name on TCP. */
static void request_identify(HttpRequest *r) {
	Http *h = r->listener->http;
	const char *auth = http_request_header(r, MHD_HTTP_HEADER_AUTHORIZATION);

	r->has_credentials = auth != NULL;
	snprintf(r->principal, sizeof r->principal, "anonymous");
	r->role = HTTP_ROLE_NONE;
	if (r->listener->is_unix) {
		const union MHD_ConnectionInfo *ci =
			r->connection ? MHD_get_connection_info(r->connection, MHD_CONNECTION_INFO_CONNECTION_FD) : NULL;
		struct ucred cred;
		socklen_t len = sizeof cred;
		if (ci && getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
			snprintf(r->principal, sizeof r->principal, "unix:uid=%u", (unsigned)cred.uid);
		else
			snprintf(r->principal, sizeof r->principal, "unix");
		r->role = HTTP_ROLE_OPERATOR;
		return;
	}
	if (auth && h->auth && strncasecmp(auth, "Bearer ", 7) == 0) {
		const char *tok = auth + 7;
		char name[sizeof r->principal];
		HttpRole role;
		while (*tok == ' ')
			tok++;
		if (*tok && h->auth(h->auth_userdata, tok, name, sizeof name, &role) == 0) {
			snprintf(r->principal, sizeof r->principal, "%s", name);
			r->role = role;
		}
	}
}

/* The headers are in: who is asking, and whether the API refuses the
 * request before its body is read. */
static void request_begin(HttpRequest *r, const char *version) {
	Http *h = r->listener->http;
	const char *cl;
	size_t limit;

	/* A test seam's request has no connection to read the framing of. */
	if (!r->test && !request_framing_is_sane(r, version))
		return;
	request_identify(r);
	if (!path_is_sane(r->path)) {
		http_reply_problem(r, 400, "Bad Request", "malformed request path");
		return;
	}
	api_begin(h->manager, r);
	if (r->replied)
		return;
	/* Refuse an announced oversized body before reading it. */
	cl = http_request_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
	limit = r->has_sink ? r->sink.max_bytes : h->limits.max_body_bytes;
	if (cl && strtoull(cl, NULL, 10) > limit) {
		r->body_too_large = true;
		http_reply_problem(r, 413, "Payload Too Large", "request body of %s bytes exceeds the limit of %zu", cl,
		                   limit);
	}
}

/* A chunk of the body, into the sink or the buffer; -ENOMEM. */
static int request_take_body(HttpRequest *r, const char *data, size_t n) {
	Http *h = r->listener->http;

	if (r->hashing)
		(void)gnutls_hash(r->body_hash, data, n);
	if (r->has_sink) {
		if (!r->replied && !r->body_too_large && r->sink_error == 0) {
			if (r->sink_size + n > r->sink.max_bytes)
				r->body_too_large = true;
			else {
				int k = r->sink.write(r->sink.userdata, data, n);
				if (k < 0)
					r->sink_error = -k;
				else
					r->sink_size += n;
				r->sink_progress_ns = now_ns(CLOCK_MONOTONIC);
			}
		}
		return 0;
	}
	if (r->replied || r->body_too_large)
		return 0;
	if (r->body_size + n > h->limits.max_body_bytes) {
		r->body_too_large = true;
		free(r->body);
		r->body = NULL;
		return 0;
	}
	char *nb = realloc(r->body, r->body_size + n + 1);
	if (!nb)
		return -ENOMEM;
	memcpy(nb + r->body_size, data, n);
	r->body = nb;
	r->body_size += n;
	r->body[r->body_size] = 0;
	return 0;
}

/* The body is complete: 1 when the API is to handle the request, 0 when
 * it is answered already, < 0 when even the answer failed. */
static int request_complete(HttpRequest *r) {
	Http *h = r->listener->http;

	if (r->replied)
		return 0;
	if (r->body_too_large)
		return http_reply_problem(r, 413, "Payload Too Large", "request body exceeds the limit of %zu bytes",
		                          r->has_sink ? r->sink.max_bytes : h->limits.max_body_bytes);
	return 1;
}

/* Resumed: the waiter replies now, and owns its userdata again (it may
 * park the request anew). */
static int request_resumed(HttpRequest *r) {
	void (*resume)(HttpRequest *, void *) = r->on_resume;
	void *userdata = r->resume_userdata;

	r->suspended = false;
	r->on_resume = NULL;
	r->resume_free = NULL;
	r->resume_userdata = NULL;
	/* Also when wardend is going down: the waiter answers with what
	 * it has (an operation still running is a 202). */
	if (resume)
		resume(r, userdata);
	else if (r->listener->http->closing)
		http_reply_problem(r, 503, "Service Unavailable", "wardend is shutting down");
	/* The handler may have parked it again (a ?wait request). */
	if (!r->replied && !r->suspended)
		return http_reply_problem(r, 500, "Internal Server Error", "the request was not answered");
	return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
	Listener *l = cls;
	HttpRequest *r = *con_cls;
	int k;

	if (!r) {
		r = calloc(1, sizeof *r);
		if (!r)
			return MHD_NO;
		r->listener = l;
		r->connection = connection;
		r->method = method;
		r->path = strdup(url);
		if (!r->path) {
			free(r);
			return MHD_NO;
		}
		*con_cls = r;
		if (connection_is_overflow(connection)) {
			/* Before any access check or API work: the answer is the
			 * same for everyone, and the connection goes. */
			http_reply_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
			http_reply_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
			http_reply_problem(r, 503, "Service Unavailable",
			                   "this listener is at its limit of %u connections; retry later",
			                   l->http->limits.max_connections);
			return MHD_YES;
		}
		request_begin(r, version);
		return MHD_YES;
	}

	if (r->suspended)
		return request_resumed(r) < 0 ? MHD_NO : MHD_YES;

	if (*upload_data_size > 0) {
		k = request_take_body(r, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return k < 0 ? MHD_NO : MHD_YES;
	}

	k = request_complete(r);
	if (k <= 0)
		return k < 0 ? MHD_NO : MHD_YES;

	/* Not handled here: one MHD_run() may complete many requests at once
	 * (32 /metrics scrapes are 100 ms of work), and a doorbell or a
	 * heartbeat deadline must not wait for the whole batch. Each complete
	 * request waits, parked, for its own turn of the loop. */
	http_request_suspend(r, on_ready_resumed, NULL, NULL);
	if (l->http->ready_tail)
		l->http->ready_tail->ready_next = r;
	else
		l->http->ready_head = r;
	l->http->ready_tail = r;
	sd_event_source_set_enabled(l->http->dispatch, SD_EVENT_ON);
	return MHD_YES;
}

/* Its turn came (or wardend is stopping): handle it, inside MHD_run(). */
static void on_ready_resumed(HttpRequest *r, void *userdata) {
	Http *h = r->listener->http;

	(void)userdata;
	if (h->closing) {
		http_reply_problem(r, 503, "Service Unavailable", "wardend is shutting down");
		return;
	}
	api_handle(h->manager, r);
	/* Without an answer libmicrohttpd would hold the connection until it
	 * times out: the caller closes it as the answer of last resort. */
}

/* One request per loop iteration: higher-priority sources (doorbells,
 * heartbeat samples, backend completions) run between any two. */
static int on_dispatch(sd_event_source *s, void *userdata) {
	Http *h = userdata;
	HttpRequest *r = h->ready_head;

	if (!r)
		return sd_event_source_set_enabled(s, SD_EVENT_OFF);
	h->ready_head = r->ready_next;
	if (!h->ready_head)
		h->ready_tail = NULL;
	r->ready_next = NULL;
	http_request_resume(r);
	if (!h->ready_head)
		sd_event_source_set_enabled(s, SD_EVENT_OFF);
	return 0;
}

/* Percent-decoding that cannot hide a NUL: "%00" would cut the path short
 * silently, so it becomes DEL, which path_is_sane() refuses. */
static size_t on_unescape(void *cls, struct MHD_Connection *c, char *s) {
	char *w = s;
	(void)cls;
	(void)c;
	for (const char *p = s; *p; p++) {
		int hi, lo;
		if (*p == '%' && (hi = hex_digit(p[1])) >= 0 && (lo = hex_digit(p[2])) >= 0) {
			char v = (char)(hi * 16 + lo);
			*w++ = v ? v : 0x7f;
			p += 2;
		} else
			*w++ = *p;
	}
	*w = 0;
	return (size_t)(w - s);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
	char buf[512];
	(void)cls;
	vsnprintf(buf, sizeof buf, fmt, ap);
	buf[strcspn(buf, "\n")] = 0;
	log_debug("libmicrohttpd: %s", buf);
}

int http_new(Manager *m, const HttpLimits *limits, const HttpSocketOptions *so, Http **ret) {
	Http *h = calloc(1, sizeof *h);
	int r;

	if (!h)
		return -ENOMEM;
	h->manager = m;
	h->limits = *limits;
	h->so = *so;
	if (so->tls_cert && so->tls_key) {
		h->tls_cert = strdup(so->tls_cert);
		h->tls_key = strdup(so->tls_key);
		if (!h->tls_cert || !h->tls_key) {
			http_free(h);
			return -ENOMEM;
		}
	}
	h->so.tls_cert = h->tls_cert;
	h->so.tls_key = h->tls_key;
	r = sd_event_add_defer(manager_event(m), &h->dispatch, on_dispatch, h);
	if (r < 0) {
		http_free(h);
		return r;
	}
	sd_event_source_set_enabled(h->dispatch, SD_EVENT_OFF);
	*ret = h;
	return 0;
}

void http_set_auth(Http *h, HttpAuthFn fn, void *userdata) {
	h->auth = fn;
	h->auth_userdata = userdata;
}

Http *http_free(Http *h) {
	if (!h)
		return NULL;
	/* Parked requests and streams get their answer (or their end) before
	 * the daemons go: libmicrohttpd does not close suspended connections. */
	h->closing = true;
	h->ready_head = h->ready_tail = NULL; /* they are parked too */
	h->dispatch = sd_event_source_disable_unref(h->dispatch);
	while (h->parked)
		http_request_resume(h->parked);
	for (HttpStream *st = h->streams; st; st = st->next) {
		st->closing = true;
		stream_unpark(st);
	}
	for (size_t i = 0; i < h->n_listeners; i++)
		if (h->listeners[i].mhd)
			MHD_run(h->listeners[i].mhd);
	for (size_t i = 0; i < h->n_listeners; i++) {
		Listener *l = &h->listeners[i];
		l->io = sd_event_source_disable_unref(l->io);
		l->timer = sd_event_source_disable_unref(l->timer);
		/* MHD_stop_daemon() still reports closed connections */
		l->kick = sd_event_source_disable_unref(l->kick);
		if (l->mhd)
			MHD_stop_daemon(l->mhd);
	}
	sd_event_source_disable_unref(h->upload_sweep);
	free(h->tls_cert);
	free(h->tls_key);
	free(h);
	return NULL;
}

int http_listen_fd(Http *h, int fd) {
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	const union MHD_DaemonInfo *info;
	Listener *l;
	int r;

	if (h->n_listeners >= HTTP_MAX_LISTENERS)
		return -E2BIG;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	/* MHD runs inside our loop: an accept() must never block it, and a
	 * socket passed by systemd may come blocking. */
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	l = &h->listeners[h->n_listeners];
	*l = (Listener){ .http = h, .is_unix = ss.ss_family == AF_UNIX };
	l->tls = !l->is_unix && h->tls_cert && h->tls_key;
	if (l->is_unix)
		snprintf(l->name, sizeof l->name, "unix:%s", ((struct sockaddr_un *)&ss)->sun_path);
	else {
		char host[64], port[16];
		if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, port, sizeof port,
		                NI_NUMERICHOST | NI_NUMERICSERV) == 0)
			snprintf(l->name, sizeof l->name, "%s:%s:%s", l->tls ? "tls" : "tcp", host, port);
	}

	/* External epoll, no threads: MHD's epoll fd becomes one of our
	 * event sources. Suspend/resume is for requests that wait.
	 *
	 * What libmicrohttpd refuses before on_request() (a header past its
	 * memory pool, a malformed request line or Content-Length, an HTTP
	 * version it does not speak, broken chunking) it answers with fixed
	 * HTML bodies of its own, or by closing: 0.9.x has no option or
	 * callback for those responses, so they cannot be problem+json. What
	 * it lets through is checked in request_framing_is_sane() instead. */
	struct MHD_OptionItem tls_opts[] = {
		{ MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert },
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key },
		{ MHD_OPTION_END, 0, NULL },
	};
	l->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
	                                  (l->tls ? MHD_USE_TLS : 0),
	                          0, NULL, NULL, on_request, l,
	                          MHD_OPTION_ARRAY, l->tls ? tls_opts : tls_opts + 2,
	                          MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
	                          MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)h->limits.max_header_bytes * 4,
	                          MHD_OPTION_CONNECTION_LIMIT,
	                          (unsigned)h->limits.max_connections + HTTP_OVERFLOW_CONNECTIONS,
	                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_CONNECTION_TIMEOUT_S,
	                          MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
	                          MHD_OPTION_NOTIFY_CONNECTION, on_connection, l,
	                          MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
	                          MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, NULL,
	                          MHD_OPTION_END);
	if (!l->mhd)
		return -EIO;
	info = MHD_get_daemon_info(l->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info) {
		MHD_stop_daemon(l->mhd);
		return -EIO;
	}
	r = sd_event_add_io(manager_event(h->manager), &l->io, info->epoll_fd, EPOLLIN, on_listener_io, l);
	if (r >= 0)
		r = sd_event_add_time(manager_event(h->manager), &l->timer, CLOCK_MONOTONIC, UINT64_MAX, 1000,
		                      on_listener_timer, l);
	if (r >= 0)
		r = sd_event_add_defer(manager_event(h->manager), &l->kick, on_listener_kick, l);
	if (r < 0) {
		sd_event_source_disable_unref(l->io);
		sd_event_source_disable_unref(l->timer);
		MHD_stop_daemon(l->mhd);
		return r;
	}
	sd_event_source_set_enabled(l->timer, SD_EVENT_OFF);
	sd_event_source_set_enabled(l->kick, SD_EVENT_OFF);
	h->n_listeners++;
	return 0;
}

static int listen_unix(const char *path, const HttpSocketOptions *so) {
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;
	int r;

	if (strlen(path) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	(void)unlink(path);
	/* Trusted by its permissions: owner and group only, by default. The
	 * socket is born with its mode (a chmod() after bind() would leave a
	 * moment in which anyone may connect); wardend has no other threads
	 * that could create files meanwhile. */
	mode_t mode = so->unix_mode ? so->unix_mode : 0660;
	mode_t old_umask = umask(~mode & 0777);
	r = bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ? -errno : 0;
	umask(old_umask);
	if (r < 0)
		return r;
	/* Until the chown() the group is wardend's own: narrower, not wider. */
	if (so->unix_gid >= 0 && chown(path, (uid_t)-1, (gid_t)so->unix_gid) < 0)
		return -errno;
	if (listen(fd, HTTP_LISTEN_BACKLOG) < 0)
		return -errno;
	return TAKE_FD(fd);
}

static int listen_tcp(const char *hostport) {
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *ai = NULL;
	char host[256];
	const char *colon = strrchr(hostport, ':');
	int fd = -1, r, one = 1;

	if (!colon || (size_t)(colon - hostport) >= sizeof host)
		return -EINVAL;
	memcpy(host, hostport, colon - hostport);
	host[colon - hostport] = 0;
	/* [::1]:8080 */
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = 0;
	}
	r = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai);
	if (r != 0)
		return -EADDRNOTAVAIL;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, HTTP_LISTEN_BACKLOG) < 0) {
		r = -errno;
		close(fd);
		goto out;
	}
	r = fd;
out:
	freeaddrinfo(ai);
	return r;
}

int http_listen(Http *h, const char *spec) {
	int fd, r;

	if (strncmp(spec, "unix:", 5) == 0)
		fd = listen_unix(spec + 5, &h->so);
	else if (strncmp(spec, "tcp:", 4) == 0)
		fd = listen_tcp(spec + 4);
	else
		return -EINVAL;
	if (fd < 0)
		return fd;
	r = http_listen_fd(h, fd);
	if (r < 0)
		close(fd);
	return r;
}

size_t http_n_listeners(const Http *h) {
	return h->n_listeners;
}

const char *http_listener_name(const Http *h, size_t i) {
	return i < h->n_listeners ? h->listeners[i].name : NULL;
}

const char *http_request_method(const HttpRequest *r) {
	return r->method;
}
const char *http_request_path(const HttpRequest *r) {
	return r->path;
}
static const char *test_field(char *const (*f)[2], size_t n, const char *name) {
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(f[i][0], name) == 0)
			return f[i][1];
	return NULL;
}
const char *http_request_header(const HttpRequest *r, const char *name) {
	if (r->test)
		return test_field(r->test->header, r->test->n_header, name);
	return MHD_lookup_connection_value(r->connection, MHD_HEADER_KIND, name);
}
const char *http_request_query(const HttpRequest *r, const char *name) {
	if (r->test)
		return test_field(r->test->query, r->test->n_query, name);
	return MHD_lookup_connection_value(r->connection, MHD_GET_ARGUMENT_KIND, name);
}
const char *http_request_body(const HttpRequest *r, size_t *ret_size) {
	if (ret_size)
		*ret_size = r->body_size;
	return r->body ? r->body : "";
}
bool http_request_is_unix(const HttpRequest *r) {
	return r->listener->is_unix;
}
const char *http_request_principal(const HttpRequest *r) {
	return r->principal;
}
HttpRole http_request_role(const HttpRequest *r) {
	return r->role;
}
bool http_request_has_credentials(const HttpRequest *r) {
	return r->has_credentials;
}

void *http_request_sink_userdata(const HttpRequest *r) {
	return r->has_sink ? r->sink.userdata : NULL;
}

bool http_request_replied(const HttpRequest *r) {
	return r->replied;
}

void http_request_set_tag(HttpRequest *r, const char *tag) {
	snprintf(r->tag, sizeof r->tag, "%s", tag);
}

const char *http_request_tag(const HttpRequest *r) {
	return r->tag;
}

void http_request_capture(HttpRequest *r) {
	r->capture = true;
}

int http_request_hash_body(HttpRequest *r) {
	if (r->hashing || r->body_hashed)
		return 0;
	if (gnutls_hash_init(&r->body_hash, GNUTLS_DIG_SHA256) < 0)
		return -EIO;
	r->hashing = true;
	return 0;
}

int http_request_body_sha256(HttpRequest *r, uint8_t ret[32]) {
	if (r->hashing) {
		gnutls_hash_deinit(r->body_hash, r->body_sha256);
		r->hashing = false;
		r->body_hashed = true;
	}
	if (!r->body_hashed)
		return -ENODATA;
	memcpy(ret, r->body_sha256, sizeof r->body_sha256);
	return 0;
}

const char *http_request_captured(const HttpRequest *r, unsigned *ret_status, const char **ret_type, size_t *ret_len) {
	if (!r->cap_body)
		return NULL;
	*ret_status = r->cap_status;
	*ret_type = r->cap_type;
	*ret_len = r->cap_len;
	return r->cap_body;
}

const char *http_reply_header_get(const HttpRequest *r, const char *name) {
	for (size_t i = 0; i < r->n_extra; i++)
		if (strcasecmp(r->extra[i][0], name) == 0)
			return r->extra[i][1];
	return NULL;
}

/* A client that closes in the middle of an upload whose data arrived with
 * its FIN is not noticed by libmicrohttpd in external-epoll mode until the
 * connection times out (the end of stream is never read once the data is).
 * Once a second, uploads that made no progress for a second are checked:
 * a peer at end of stream cannot complete its body, so the socket is shut
 * down, which libmicrohttpd does notice, and the upload is dropped. */
#define UPLOAD_STALL_NS NSEC_PER_SEC
static int on_upload_sweep(sd_event_source *s, uint64_t usec, void *userdata) {
	Http *h = userdata;
	uint64_t now = now_ns(CLOCK_MONOTONIC);
	bool any = false;

	for (HttpRequest *r = h->uploads; r; r = r->up_next) {
		const union MHD_ConnectionInfo *ci;
		char b;
		any = true;
		if (r->replied || now - r->sink_progress_ns < UPLOAD_STALL_NS)
			continue;
		ci = MHD_get_connection_info(r->connection, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (ci && recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
			log_debug("Upload to %s: the client left after %zu bytes; dropping it", r->path, r->sink_size);
			shutdown(ci->connect_fd, SHUT_RDWR);
			listener_kick(r->listener);
		}
	}
	if (!any)
		return sd_event_source_set_enabled(s, SD_EVENT_OFF);
	sd_event_source_set_time(s, usec + USEC_PER_SEC);
	return 0;
}

void http_request_set_sink(HttpRequest *r, const HttpSink *sink) {
	Http *h = r->listener->http;
	r->sink = *sink;
	r->has_sink = true;
	r->sink_progress_ns = now_ns(CLOCK_MONOTONIC);
	r->up_prev = NULL;
	r->up_next = h->uploads;
	if (h->uploads)
		h->uploads->up_prev = r;
	h->uploads = r;
	if (!h->upload_sweep &&
	    sd_event_add_time_relative(manager_event(h->manager), &h->upload_sweep, CLOCK_MONOTONIC, USEC_PER_SEC,
	                               USEC_PER_SEC / 10, on_upload_sweep, h) < 0)
		return;
	sd_event_source_set_time_relative(h->upload_sweep, USEC_PER_SEC);
	sd_event_source_set_enabled(h->upload_sweep, SD_EVENT_ON);
}
void http_request_clear_sink(HttpRequest *r) {
	r->has_sink = false;
	upload_unlink(r);
}
size_t http_request_sink_size(const HttpRequest *r, bool *ret_too_large, int *ret_error) {
	if (ret_too_large)
		*ret_too_large = r->body_too_large;
	if (ret_error)
		*ret_error = r->sink_error;
	return r->sink_size;
}

void http_request_suspend(HttpRequest *r, void (*on_resume)(HttpRequest *r, void *userdata),
                          void (*free_userdata)(void *userdata), void *userdata) {
	Http *h = r->listener->http;
	r->on_resume = on_resume;
	r->resume_free = free_userdata;
	r->resume_userdata = userdata;
	r->suspended = true;
	r->resumed = false;
	r->park_next = h->parked;
	r->park_prev = NULL;
	if (h->parked)
		h->parked->park_prev = r;
	h->parked = r;
	if (r->connection)
		MHD_suspend_connection(r->connection);
}

void http_request_resume(HttpRequest *r) {
	Http *h = r->listener->http;
	if (!r->suspended || r->resumed)
		return;
	r->resumed = true;
	if (r->park_prev)
		r->park_prev->park_next = r->park_next;
	else
		h->parked = r->park_next;
	if (r->park_next)
		r->park_next->park_prev = r->park_prev;
	r->park_next = r->park_prev = NULL;
	if (r->connection)
		MHD_resume_connection(r->connection);
	listener_kick(r->listener);
}

static void stream_unwatch(HttpStream *st) {
	st->hup = sd_event_source_disable_unref(st->hup);
	if (st->hup_fd >= 0)
		close(st->hup_fd);
	st->hup_fd = -1;
}

static void stream_unpark(HttpStream *st) {
	stream_unwatch(st);
	if (!st->parked)
		return;
	st->parked = false;
	MHD_resume_connection(st->connection);
	listener_kick(st->listener);
}

static int on_stream_hangup(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	HttpStream *st = userdata;
	(void)s;
	(void)fd;
	(void)revents;
	/* Resumed, the stream's next read ends it and libmicrohttpd closes
	 * the connection. */
	st->closing = true;
	stream_unpark(st);
	return 0;
}

/* Best effort: without the watch the hangup is noticed at the next write. */
static void stream_watch(HttpStream *st) {
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(st->connection, MHD_CONNECTION_INFO_CONNECTION_FD);

	if (st->hup || !ci || (st->hup_fd = fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 3)) < 0)
		return;
	if (sd_event_add_io(manager_event(st->listener->http->manager), &st->hup, st->hup_fd, EPOLLRDHUP,
	                    on_stream_hangup, st) < 0) {
		close(st->hup_fd);
		st->hup_fd = -1;
		return;
	}
	(void)sd_event_source_set_description(st->hup, "http-stream-hangup");
}

static ssize_t on_stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
	HttpStream *st = cls;
	ssize_t n;

	(void)pos;
	if (st->closing)
		return MHD_CONTENT_READER_END_OF_STREAM;
	n = st->read(st->userdata, buf, max);
	if (n < 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n == 0) {
		/* Nothing yet: park instead of letting MHD poll us in a loop. */
		st->parked = true;
		MHD_suspend_connection(st->connection);
		stream_watch(st);
	}
	return n;
}

static void on_stream_free(void *cls) {
	HttpStream *st = cls;
	Http *h = st->listener->http;

	if (st->prev)
		st->prev->next = st->next;
	else
		h->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	stream_unwatch(st);
	if (st->free_fn)
		st->free_fn(st->userdata);
	free(st);
}

/* A test request's stream: what it has to say at once, then its end. */
static int test_reply_stream(HttpRequest *r, const char *content_type, HttpStreamRead read, void (*free_fn)(void *),
                             void *userdata) {
	char buf[4096];
	ssize_t n = read(userdata, buf, sizeof buf);
	char *body = malloc(n > 0 ? (size_t)n : 1);

	free_fn(userdata);
	if (!body)
		return -ENOMEM;
	if (n > 0)
		memcpy(body, buf, (size_t)n);
	return http_reply_text(r, 200, content_type, body, n > 0 ? (size_t)n : 0);
}

int http_reply_stream(HttpRequest *r, const char *content_type, HttpStreamRead read, void (*free_fn)(void *),
                      void *userdata) {
	Http *h = r->listener->http;
	struct MHD_Response *resp;
	HttpStream *st;
	enum MHD_Result ok;

	if (r->test)
		return test_reply_stream(r, content_type, read, free_fn, userdata);
	st = calloc(1, sizeof *st);
	if (!st) {
		free_fn(userdata);
		return -ENOMEM;
	}
	*st = (HttpStream){ .listener = r->listener, .connection = r->connection, .read = read, .free_fn = free_fn,
		            .userdata = userdata, .hup_fd = -1 };
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, on_stream_read, st, on_stream_free);
	if (!resp) {
		free_fn(userdata);
		free(st);
		return -ENOMEM;
	}
	st->next = h->streams;
	if (h->streams)
		h->streams->prev = st;
	h->streams = st;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	for (size_t i = 0; i < r->n_extra; i++)
		MHD_add_response_header(resp, r->extra[i][0], r->extra[i][1]);
	ok = MHD_queue_response(r->connection, 200, resp);
	MHD_destroy_response(resp);
	r->replied = true;
	return ok == MHD_YES ? 0 : -EIO;
}

void http_streams_wake(Http *h) {
	for (HttpStream *st = h->streams; st; st = st->next)
		stream_unpark(st);
}

int http_reply_header(HttpRequest *r, const char *name, const char *value) {
	if (r->n_extra >= HTTP_MAX_EXTRA_HEADERS)
		return -E2BIG;
	r->extra[r->n_extra][0] = strdup(name);
	r->extra[r->n_extra][1] = strdup(value);
	if (!r->extra[r->n_extra][0] || !r->extra[r->n_extra][1])
		return -ENOMEM;
	r->n_extra++;
	return 0;
}

int http_reply_text(HttpRequest *r, unsigned status, const char *content_type, char *body, size_t size) {
	struct MHD_Response *resp;
	enum MHD_Result ok;

	if (r->replied) {
		free(body);
		return -EALREADY;
	}
	if (r->capture || r->test) {
		free(r->cap_body);
		r->cap_body = malloc(size + 1);
		if (r->cap_body) {
			if (size) /* a 204 has no body at all: memcpy(NULL) is UB */
				memcpy(r->cap_body, body, size);
			r->cap_body[size] = 0;
			r->cap_len = size;
			r->cap_status = status;
			snprintf(r->cap_type, sizeof r->cap_type, "%s", content_type);
		}
	}
	if (r->test) {
		/* kept above, as the test's reply */
		free(body);
		r->replied = true;
		return r->cap_body ? 0 : -ENOMEM;
	}
	resp = MHD_create_response_from_buffer(size, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return -ENOMEM;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	for (size_t i = 0; i < r->n_extra; i++)
		MHD_add_response_header(resp, r->extra[i][0], r->extra[i][1]);
	ok = MHD_queue_response(r->connection, status, resp);
	MHD_destroy_response(resp);
	r->replied = true;
	return ok == MHD_YES ? 0 : -EIO;
}

/* Serialises and sends `body` (consumed); a trailing newline keeps curl
 * output readable. */
static int reply_json_as(HttpRequest *r, unsigned status, const char *content_type, json_t *body) {
	char *s = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15));
	char *t;
	size_t n;

	json_decref(body);
	if (!s)
		return -ENOMEM;
	n = strlen(s);
	t = realloc(s, n + 2);
	if (!t) {
		free(s);
		return -ENOMEM;
	}
	t[n] = '\n';
	t[n + 1] = 0;
	return http_reply_text(r, status, content_type, t, n + 1);
}

int http_reply_json(HttpRequest *r, unsigned status, json_t *body) {
	return reply_json_as(r, status, "application/json", body);
}

static const char *status_title(unsigned status) {
	switch (status) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 412: return "Precondition Failed";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF), or 0. */
static size_t utf8_sequence_len(const unsigned char *s) {
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		if (s[0] == 0xe0)
			lo = 0xa0;
		else if (s[0] == 0xed)
			hi = 0x9f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		if (s[0] == 0xf0)
			lo = 0x90;
		else if (s[0] == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/* Client bytes (a path, a header) go into problem details, and jansson
 * refuses a string that is not UTF-8: the reply would then be lost and
 * the client left waiting. Each byte that does not begin a well-formed
 * sequence becomes '?', in place; this also mends a sequence cut short
 * by a truncating snprintf(). */
static void utf8_scrub(char *s) {
	unsigned char *p = (unsigned char *)s;

	while (*p) {
		size_t n = utf8_sequence_len(p);
		if (n == 0) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
}

int http_reply_problem(HttpRequest *r, unsigned status, const char *title, const char *detail_fmt, ...) {
	_cleanup_free_ char *instance = NULL;
	char detail[1024], type[64];
	json_t *j;
	va_list ap;

	va_start(ap, detail_fmt);
	vsnprintf(detail, sizeof detail, detail_fmt, ap);
	va_end(ap);
	utf8_scrub(detail);
	instance = strdup(r->path ? r->path : "");
	if (!instance)
		return -ENOMEM;
	utf8_scrub(instance);
	snprintf(type, sizeof type, "https://warden.invalid/problems/%u", status);
	j = json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", type, "title", title ? title : status_title(status),
	              "status", (int)status, "detail", detail, "instance", instance);
	if (!j)
		return -ENOMEM;
	return reply_json_as(r, status, "application/problem+json", j);
}

/* ---- test seam ------------------------------------------------------ */

HttpRequest *http_request_new_for_test(Http *h, bool is_unix, const char *method, const char *target) {
	HttpRequest *r = calloc(1, sizeof *r);
	const char *q;
	char *args = NULL;

	if (!r || !(r->test = calloc(1, sizeof *r->test)))
		goto fail;
	r->test->listener = (Listener){ .http = h, .is_unix = is_unix };
	snprintf(r->test->listener.name, sizeof r->test->listener.name, "%s", is_unix ? "unix:test" : "tcp:test");
	r->listener = &r->test->listener;
	r->method = method;
	q = strchr(target, '?');
	r->path = q ? strndup(target, (size_t)(q - target)) : strdup(target);
	if (!r->path)
		goto fail;
	/* libmicrohttpd's parse: KEY[=VALUE] separated by '&', both
	 * percent-decoded; a key without '=' has no value. */
	if (q && !(args = strdup(q + 1)))
		goto fail;
	for (char *save = NULL, *kv = args ? strtok_r(args, "&", &save) : NULL; kv; kv = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(kv, '=');
		size_t i = r->test->n_query;
		if (i >= HTTP_TEST_MAX_FIELDS)
			break;
		if (eq)
			*eq = 0;
		r->test->query[i][0] = strdup(kv);
		r->test->query[i][1] = eq ? strdup(eq + 1) : NULL;
		if (!r->test->query[i][0] || (eq && !r->test->query[i][1])) {
			free(r->test->query[i][0]);
			free(r->test->query[i][1]);
			goto fail;
		}
		on_unescape(NULL, NULL, r->test->query[i][0]);
		if (eq)
			on_unescape(NULL, NULL, r->test->query[i][1]);
		r->test->n_query++;
	}
	free(args);
	on_unescape(NULL, NULL, r->path);
	return r;
fail:
	free(args);
	if (r && r->test)
		request_free(r);
	else
		free(r);
	return NULL;
}

int http_request_add_header_for_test(HttpRequest *r, const char *name, const char *value) {
	size_t i = r->test->n_header;

	if (i >= HTTP_TEST_MAX_FIELDS)
		return -E2BIG;
	r->test->header[i][0] = strdup(name);
	r->test->header[i][1] = strdup(value);
	if (!r->test->header[i][0] || !r->test->header[i][1]) {
		free(r->test->header[i][0]);
		free(r->test->header[i][1]);
		return -ENOMEM;
	}
	r->test->n_header++;
	return 0;
}

void http_request_run_for_test(HttpRequest *r, const void *body, size_t size, size_t chunk) {
	request_begin(r, MHD_HTTP_VERSION_1_1);
	for (size_t off = 0; off < size; off += chunk ? chunk : size)
		if (request_take_body(r, (const char *)body + off, chunk && size - off > chunk ? chunk : size - off) < 0)
			return;
	if (request_complete(r) > 0)
		api_handle(r->listener->http->manager, r);
}

bool http_request_parked_for_test(HttpRequest *r) {
	if (r->suspended && r->resumed)
		(void)request_resumed(r);
	return r->suspended && !r->resumed;
}

void http_request_finish_for_test(HttpRequest *r) {
	/* as at shutdown: a parked request is resumed and answers with what
	 * it has */
	for (int i = 0; i < 4 && r->suspended; i++) {
		http_request_resume(r);
		(void)request_resumed(r);
	}
}

unsigned http_request_reply_for_test(const HttpRequest *r, const char **ret_type, const char **ret_body,
                                     size_t *ret_len) {
	if (!r->replied || !r->cap_body)
		return 0;
	*ret_type = r->cap_type;
	*ret_body = r->cap_body;
	*ret_len = r->cap_len;
	return r->cap_status;
}

void http_request_free_for_test(HttpRequest *r) {
	Http *h;

	if (!r)
		return;
	h = r->listener->http;
	if (r->suspended) {
		if (r->park_prev)
			r->park_prev->park_next = r->park_next;
		else if (h->parked == r)
			h->parked = r->park_next;
		if (r->park_next)
			r->park_next->park_prev = r->park_prev;
	}
	request_free(r);
}
