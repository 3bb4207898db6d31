/* SPDX-License-Identifier: MIT */
/*
 * HTTP front end: libmicrohttpd daemons in external-epoll mode, one per
 * listener, each driven as an sd-event source (its epoll fd plus its
 * timeout). Requests are read whole (bounded) and handed to the API layer.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

typedef struct Manager Manager;
typedef struct Http Http;
typedef struct HttpRequest HttpRequest;

typedef struct HttpLimits {
	size_t max_body_bytes;
	size_t max_header_bytes;
	unsigned max_connections;
} HttpLimits;

int http_new(Manager *m, const HttpLimits *limits, Http **ret);
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

/* --- replies; each takes ownership of what it is given --- */
int http_reply_json(HttpRequest *r, unsigned status, json_t *body);
int http_reply_text(HttpRequest *r, unsigned status, const char *content_type, char *body, size_t size);
/* application/problem+json with type, title, status, detail */
int http_reply_problem(HttpRequest *r, unsigned status, const char *title, const char *detail_fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Extra header on the reply being built (Allow, Location, ETag). */
int http_reply_header(HttpRequest *r, const char *name, const char *value);

/* The API layer's entry point (daemon/api.c). */
void api_handle(Manager *m, HttpRequest *r);
