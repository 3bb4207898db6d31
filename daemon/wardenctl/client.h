/* SPDX-License-Identifier: MIT */
/*
 * wardenctl's HTTP client (libcurl) for the daemon's unix socket or a TCP
 * listener. A transport failure is retried with the same request, and so
 * the same Idempotency-Key: the daemon then replays its stored answer
 * instead of acting twice, which makes retries safe on a flaky ground link.
 * request_run() reports failures itself and returns an exit code.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <curl/curl.h>
#include <jansson.h>

#include "args.h"
#include "buffer.h"

/* The first try and three retries, all with the same Idempotency-Key. */
#define REQUEST_MAX_ATTEMPTS 4

/* Called every 100 ms while a transfer runs; false ends the transfer. */
typedef bool (*TickFn)(CURL *easy, void *userdata);
/* Receives a successful (2xx) body as it arrives; returns n, or 0 to abort. */
typedef size_t (*DataFn)(const char *p, size_t n, void *userdata);

typedef struct Request {
	const char *method;
	const char *path; /* escaped, with the query */
	const char *accept;
	const char *content_type;
	const char *body; /* in-memory body */
	size_t body_size;
	FILE *upload; /* streamed body, rewound before every attempt */
	curl_off_t upload_size;
	const char *idempotency_key;
	const char *if_match;
	const char *content_digest;
	const char *last_event_id;
	double hold_s; /* the daemon may hold the answer this long (?wait=) */
	bool stream;   /* no overall timeout: the tick function decides */
	DataFn on_data;
	void *data_userdata;
	TickFn tick;
	void *tick_userdata;
} Request;

typedef struct Response {
	long status; /* 0: no HTTP answer */
	Buffer body;
	char *content_type;
	char *etag;
	bool replayed;
	CURLcode code;
	char error[CURL_ERROR_SIZE];
	bool maybe_sent; /* an attempt failed after the request may have left */
	long os_errno;   /* of a failed connect, when curl knows it */
} Response;

void response_done(Response *r);

/* PREFIX + escaped COMPONENT + SUFFIX; NULL when out of memory. */
char *path_make(const char *prefix, const char *component, const char *suffix);
/* Appends "?KEY=VALUE" or "&KEY=VALUE" to *path. */
int path_add_query(char **path, const char *key, const char *value);

/* One attempt, no retry. 0 when the daemon answered (any status); -EIO when
 * the transfer failed (resp->code and resp->error say why). */
int request_once(const Options *o, const Request *q, Response *resp);
/* Sends q, with retries, and reports failures. Returns EXIT_OK with a 2xx
 * answer in resp. */
int request_run(const Options *o, const Request *q, Response *resp);
/* The request may not have reached the daemon, or its answer did not reach
 * us: worth the same request again. */
bool request_retryable(CURLcode c);
/* The local socket refused us, or its permissions did: no retry changes
 * that, so the command fails at once (with a hint). */
bool request_hopeless(const Options *o, const Response *resp);

/* Print the failure and return the exit code. */
int report_http_error(const Options *o, const Response *resp);
int report_unreachable(const Options *o, const Request *q, const Response *resp);

int parse_json_answer(const Response *resp, json_t **ret);

/* Prints a GET answer for people; --json prints the daemon's text instead. */
typedef int (*ShowFn)(const Options *o, const Response *resp, json_t *j);
int get_and_show(const Options *o, const char *path, ShowFn show);
/* GET PATH as text, to stdout as it is. */
int get_text(const Options *o, const char *path);

/* Between retries and reconnections; one command, one process: nothing
 * else waits meanwhile. */
void sleep_s(unsigned s);
