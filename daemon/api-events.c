/* SPDX-License-Identifier: MIT */
/* GET /events: the event stream, resumed with Last-Event-ID (or ?since=);
 * ?tail=N starts with the N newest held events; with none of them only
 * new events come, as docker events does (?since=0: all that is held). */
#include <stdlib.h>

#include "api-internal.h"
#include "events.h"
#include "http.h"
#include "manager.h"

void route_events(Manager *m, HttpRequest *r) {
	const char *last = http_request_header(r, "Last-Event-ID");
	const char *since = http_request_query(r, "since");
	const char *tail = http_request_query(r, "tail");
	unsigned long long after = events_last_id(manager_events(m));
	const char *v = last ? last : since;

	if (tail) {
		char *end;
		unsigned long long n = strtoull(tail, &end, 10);
		if (*tail == 0 || *end != 0 || *tail == '-') {
			http_reply_problem(r, 400, NULL, "tail must be a number of events");
			return;
		}
		if (!v)
			after = events_tail_start(manager_events(m), n);
	}
	if (v) {
		char *end;
		after = strtoull(v, &end, 10);
		if (*v == 0 || *end != 0) {
			http_reply_problem(r, 400, NULL, "Last-Event-ID (or since) must be an event id");
			return;
		}
	}
	if (events_stream(manager_events(m), r, after) < 0 && !http_request_replied(r))
		http_reply_problem(r, 500, NULL, "cannot open the event stream");
}
