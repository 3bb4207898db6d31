/* SPDX-License-Identifier: MIT */
/*
 * HTTP front end: libmicrohttpd daemons in external-epoll mode, one per
 * listener, each driven as an sd-event source (its epoll fd plus its
 * timeout). Requests are read whole (bounded) and handed to the API layer.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

typedef struct Manager Manager;
typedef struct Http Http;
typedef struct HttpRequest HttpRequest;

typedef struct HttpLimits {
	size_t max_body_bytes;
	size_t max_header_bytes;
	unsigned max_connections;
} HttpLimits;

/* Who may do what; unix-socket peers are trusted as operators (the socket's
 * permissions decide who gets in). */
typedef enum HttpRole {
	HTTP_ROLE_NONE,
	HTTP_ROLE_MONITOR,
	HTTP_ROLE_OPERATOR,
} HttpRole;

typedef struct HttpSocketOptions {
	unsigned unix_mode;     /* e.g. 0660 */
	long unix_gid;          /* -1: leave the group alone */
	const char *tls_cert;   /* PEM text; both set: TLS on TCP listeners */
	const char *tls_key;
} HttpSocketOptions;

/* Receives a request body chunk by chunk instead of buffering it. */
typedef struct HttpSink {
	/* < 0: stop accepting (the error is kept for the final call) */
	int (*write)(void *userdata, const void *data, size_t n);
	/* the request ended before the final call, or was refused */
	void (*abort)(void *userdata);
	size_t max_bytes;
	void *userdata;
} HttpSink;

/* A streamed response (server-sent events). read() returns the bytes it
 * put into buf, 0 when it has nothing yet (the connection is parked until
 * http_streams_wake()), or -1 to end the stream. */
typedef ssize_t (*HttpStreamRead)(void *userdata, char *buf, size_t max);

int http_new(Manager *m, const HttpLimits *limits, const HttpSocketOptions *so, Http **ret);
Http *http_free(Http *h);
/* "unix:/path" or "tcp:HOST:PORT" */
int http_listen(Http *h, const char *spec);
/* A listening socket handed over by systemd. */
int http_listen_fd(Http *h, int fd);
size_t http_n_listeners(const Http *h);
/* A human description of the listeners, e.g. for STATUS=. */
const char *http_listener_name(const Http *h, size_t i);

/* --- request side, for the API layer --- */
const char *http_request_method(const HttpRequest *r);
const char *http_request_path(const HttpRequest *r);
const char *http_request_header(const HttpRequest *r, const char *name);
const char *http_request_query(const HttpRequest *r, const char *name);
const char *http_request_body(const HttpRequest *r, size_t *ret_size);
bool http_request_is_unix(const HttpRequest *r);
/* "unix:uid=N", a token's name, or "anonymous" */
const char *http_request_principal(const HttpRequest *r);
HttpRole http_request_role(const HttpRequest *r);
/* Whether the request carried an Authorization header at all. */
bool http_request_has_credentials(const HttpRequest *r);
/* The upload so far: size taken by the sink, and whether it overflowed
 * max_bytes or failed to write (errno in *ret_error). */
size_t http_request_sink_size(const HttpRequest *r, bool *ret_too_large, int *ret_error);
/* Detaches the sink (the API has taken over its data): no abort call. */
void http_request_clear_sink(HttpRequest *r);
void http_request_set_sink(HttpRequest *r, const HttpSink *sink);
void *http_request_sink_userdata(const HttpRequest *r);
bool http_request_replied(const HttpRequest *r);
/* A note the API keeps on the request (the operation it started). */
void http_request_set_tag(HttpRequest *r, const char *tag);
const char *http_request_tag(const HttpRequest *r);
/* Keep a copy of the reply to come (status, type, body). */
void http_request_capture(HttpRequest *r);
const char *http_request_captured(const HttpRequest *r, unsigned *ret_status, const char **ret_type, size_t *ret_len);
/* Hash the body as it arrives (called before any of it is read), and
 * its SHA-256 once it has all arrived: -ENODATA when it was not hashed. */
int http_request_hash_body(HttpRequest *r);
int http_request_body_sha256(HttpRequest *r, uint8_t ret[32]);
/* A header added with http_reply_header(), or NULL. */
const char *http_reply_header_get(const HttpRequest *r, const char *name);

/* Park a request that waits (?wait=): the loop goes on. After
 * http_request_resume(), on_resume runs inside libmicrohttpd's handler,
 * must reply, and takes userdata over. When the client has gone by then,
 * on_resume is not called and free_userdata(userdata) is, if not NULL. */
void http_request_suspend(HttpRequest *r, void (*on_resume)(HttpRequest *r, void *userdata),
                          void (*free_userdata)(void *userdata), void *userdata);
void http_request_resume(HttpRequest *r);

/* Token table: check a bearer token, filling name and role. */
typedef int (*HttpAuthFn)(void *userdata, const char *token, char *name, size_t name_size, HttpRole *role);
void http_set_auth(Http *h, HttpAuthFn fn, void *userdata);

/* --- replies; each takes ownership of what it is given --- */
int http_reply_json(HttpRequest *r, unsigned status, json_t *body);
int http_reply_text(HttpRequest *r, unsigned status, const char *content_type, char *body, size_t size);
/* application/problem+json with type, title, status, detail */
int http_reply_problem(HttpRequest *r, unsigned status, const char *title, const char *detail_fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Extra header on the reply being built (Allow, Location, ETag). */
int http_reply_header(HttpRequest *r, const char *name, const char *value);

/* Sends a streamed response; free_fn(userdata) runs when it ends. */
int http_reply_stream(HttpRequest *r, const char *content_type, HttpStreamRead read, void (*free_fn)(void *),
                      void *userdata);
/* New data for every parked stream. */
void http_streams_wake(Http *h);

/* --- test seam (tests/fuzz) ---
 * A request that never saw a socket, run through the same checks and API
 * entry points as one from libmicrohttpd: request_begin (identity, path,
 * api_begin, Content-Length), the body in chunks (0: one), request_complete
 * and api_handle. `target` is the path with an optional ?query, both
 * percent-encoded as on the wire. Replies are kept instead of sent; a
 * stream answers with its first read and ends. Not used by wardend. */
HttpRequest *http_request_new_for_test(Http *h, bool is_unix, const char *method, const char *target);
int http_request_add_header_for_test(HttpRequest *r, const char *name, const char *value);
void http_request_run_for_test(HttpRequest *r, const void *body, size_t size, size_t chunk);
/* Parked (?wait=, or waiting for its turn): the loop may answer it.
 * Serves a request that the loop resumed, as libmicrohttpd's next run
 * would (its handler may park it anew), then says whether it still
 * waits. */
bool http_request_parked_for_test(HttpRequest *r);
/* Resumes a request still parked, as wardend's shutdown does. */
void http_request_finish_for_test(HttpRequest *r);
/* The status sent (0: none yet), its type and body. */
unsigned http_request_reply_for_test(const HttpRequest *r, const char **ret_type, const char **ret_body,
                                     size_t *ret_len);
void http_request_free_for_test(HttpRequest *r);
