/* SPDX-License-Identifier: MIT */
/*
 * The HTTP API (api/README.md, api/openapi.yaml): the routes behind the
 * listeners of http.c. Its own state is an Api object, which the Manager
 * owns: the Idempotency-Keys of the requests in flight.
 */
#pragma once

typedef struct Manager Manager;
typedef struct HttpRequest HttpRequest;
typedef struct Api Api;

int api_new(Api **ret);
Api *api_free(Api *a);

/* The API layer's entry points: api_begin() sees the headers before any
 * body is read (access checks, upload sinks) and may reply at once;
 * api_handle() sees the complete request. */
void api_begin(Manager *m, HttpRequest *r);
void api_handle(Manager *m, HttpRequest *r);
/* The request is gone (answered and sent, or its client left). */
void api_end(Manager *m, HttpRequest *r);
