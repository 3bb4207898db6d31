/* SPDX-License-Identifier: MIT */
/*
 * The daemon-wide event stream behind GET /events: cell state changes,
 * failures, recoveries, operations, spec and image changes. The newest
 * EVENTS_MAX are held in memory; ids increase, across daemon restarts too
 * (they start from the wall clock), so a client resumes with Last-Event-ID.
 */
#pragma once

#include <stdint.h>

#include <jansson.h>

typedef struct Manager Manager;
typedef struct HttpRequest HttpRequest;
typedef struct Events Events;

#define EVENTS_MAX 1024
#define EVENTS_KEEPALIVE_S 15

int events_new(Manager *m, Events **ret);
Events *events_free(Events *e);
/* Publishes `data` (consumed) as an event of `type`. */
void events_emit_json(Manager *m, const char *type, json_t *data);
uint64_t events_last_id(const Events *e);
/* Where a stream of the n newest held events starts: the id to give
 * events_stream() as `after` (0: all of them). */
uint64_t events_tail_start(const Events *e, uint64_t n);
/* Answers GET /events on r: held events after `after`, then live ones. */
int events_stream(Events *e, HttpRequest *r, uint64_t after);
