/* SPDX-License-Identifier: MIT */
/* GET /events: the event stream, resumed with Last-Event-ID (or ?since=). */
#include <stdlib.h>

#include "api-internal.h"
#include "events.h"
#include "http.h"
#include "manager.h"

void route_events(Manager *m, HttpRequest *r) {
	const char *last = http_request_header(r, "Last-Event-ID");
	const char *since = http_request_query(r, "since");
	unsigned long long after = 0;
	const char *v = last ? last : since;

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
