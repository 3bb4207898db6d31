/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "buffer.h"
#include "client.h"
#include "cmd-events.h"
#include "exit-code.h"
#include "macro.h"
#include "mutation.h"
#include "output.h"

#define EVENTS_IDLE_NS (500 * NSEC_PER_MSEC)
/* The daemon sends a keepalive every 15 s; three missed ones mean the link is gone. */
#define EVENTS_DEAD_NS (45 * NSEC_PER_SEC)
#define EVENTS_BACKOFF_MAX_S 30
#define SSE_LINE_MAX (1024 * 1024)

typedef struct EventStream {
	const Options *o;
	Buffer line;
	Buffer data;
	char event[64];
	char id[64];      /* the SSE "last event ID" while reading */
	char resume[64];  /* id of the last complete event: where to resume */
	uint64_t started_ns;
	uint64_t activity_ns; /* 0 until the answer's headers arrived */
	unsigned received;
	bool dead;        /* connected, but silent for too long */
	bool timed_out;   /* no answer at all */
	bool broken;      /* out of memory or an overlong line */
} EventStream;

static void event_stream_done(EventStream *es) {
	buffer_done(&es->line);
	buffer_done(&es->data);
}

static void print_event_human(const char *id, const char *type, json_t *d, const char *raw) {
	char buf[512], label[160];

	if (streq(type, "state") && jstr(d, "previous"))
		snprintf(buf, sizeof buf, "%s: %s -> %s: %s", dash(jstr(d, "cell")), jstr(d, "previous"),
		         dash(jstr(d, "state")), dash(jstr(d, "reason")));
	else if (streq(type, "state"))
		snprintf(buf, sizeof buf, "%s: %s: %s", dash(jstr(d, "cell")), dash(jstr(d, "state")), dash(jstr(d, "reason")));
	else if (streq(type, "failure"))
		snprintf(buf, sizeof buf, "%s: %s: %s (action %s)", dash(jstr(d, "cell")), dash(jstr(d, "kind")),
		         dash(jstr(d, "reason")), dash(jstr(d, "action")));
	else if (streq(type, "operation")) {
		op_label(d, "-", label, sizeof label);
		op_summary(d, label, buf, sizeof buf);
		snprintf(buf + strlen(buf), sizeof buf - strlen(buf), " [%s]", dash(jstr(d, "operation")));
	} else if (streq(type, "spec"))
		snprintf(buf, sizeof buf, "%s: spec %s, revision %lld", dash(jstr(d, "cell")), dash(jstr(d, "change")),
		         (long long)json_integer_value(json_object_get(d, "revision")));
	else if (streq(type, "image"))
		snprintf(buf, sizeof buf, "%s: image %s %s (%lld bytes, sha256 %.16s…)", dash(jstr(d, "cell")),
		         dash(jstr(d, "name")), dash(jstr(d, "change")),
		         (long long)json_integer_value(json_object_get(d, "size")), dash(jstr(d, "sha256")));
	else
		snprintf(buf, sizeof buf, "%s", raw);
	printf("%-6s %-9s %s\n", dash(id), type, buf);
}

/* One JSON document a line: {"id": …, "event": "…", "data": <as sent>}. */
static void print_event_json(const char *id, const char *type, json_t *d, const char *raw) {
	_cleanup_(json_decrefp) json_t *jid = NULL, *jtype = json_string(type);
	_cleanup_free_ char *sid = NULL, *stype = NULL, *sdata = NULL;
	size_t l = strlen(id);

	jid = l && l < 19 && strspn(id, "0123456789") == l ? json_integer(strtoll(id, NULL, 10)) : json_string(id);
	sid = jid ? json_dumps(jid, JSON_ENCODE_ANY) : NULL;
	stype = jtype ? json_dumps(jtype, JSON_ENCODE_ANY) : NULL;
	if (!d) {
		_cleanup_(json_decrefp) json_t *s = json_string(raw);
		sdata = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
	}
	printf("{\"id\": %s, \"event\": %s, \"data\": %s}\n", sid ? sid : "null", stype ? stype : "null",
	       d ? raw : sdata ? sdata : "null");
}

static void event_dispatch(EventStream *es) {
	_cleanup_(json_decrefp) json_t *d = NULL;
	const char *type = es->event[0] ? es->event : "message";

	if (es->data.size == 0) {
		es->event[0] = 0;
		return;
	}
	es->data.data[--es->data.size] = 0; /* the last "\n" */
	d = json_loadb(es->data.data, es->data.size, 0, NULL);
	if (es->o->json)
		print_event_json(es->id, type, d, es->data.data);
	else
		print_event_human(es->id, type, d, es->data.data);
	fflush(stdout);
	snprintf(es->resume, sizeof es->resume, "%s", es->id);
	es->received++;
	es->event[0] = 0;
	buffer_done(&es->data);
}

static void event_line(EventStream *es, char *line) {
	char *colon = strchr(line, ':'), *value = "";

	if (line[0] == 0) {
		event_dispatch(es);
		return;
	}
	if (colon == line) /* a comment: the keepalive */
		return;
	if (colon) {
		*colon = 0;
		value = colon[1] == ' ' ? colon + 2 : colon + 1;
	}
	if (streq(line, "event"))
		snprintf(es->event, sizeof es->event, "%s", value);
	else if (streq(line, "id"))
		snprintf(es->id, sizeof es->id, "%s", value);
	else if (streq(line, "data")) {
		if (buffer_append(&es->data, value, strlen(value)) < 0 || buffer_append(&es->data, "\n", 1) < 0)
			es->broken = true;
	}
}

static size_t on_event_data(const char *p, size_t n, void *userdata) {
	EventStream *es = userdata;

	es->activity_ns = now_ns(CLOCK_MONOTONIC);
	for (size_t i = 0; i < n && !es->broken; i++) {
		if (p[i] != '\n') {
			if (es->line.size >= SSE_LINE_MAX || buffer_append(&es->line, &p[i], 1) < 0)
				es->broken = true;
			continue;
		}
		if (es->line.size && es->line.data[es->line.size - 1] == '\r')
			es->line.data[--es->line.size] = 0;
		event_line(es, es->line.data ? es->line.data : (char[]){ 0 });
		es->line.size = 0;
		if (es->line.data)
			es->line.data[0] = 0;
	}
	return es->broken ? 0 : n;
}

static bool tick_events(CURL *e, void *userdata) {
	EventStream *es = userdata;
	uint64_t now = now_ns(CLOCK_MONOTONIC);
	long status = 0;

	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	if (status == 0) {
		es->timed_out = now - es->started_ns > (uint64_t)(es->o->timeout_s * 1e9);
		return !es->timed_out;
	}
	if (status < 200 || status > 299)
		return true;
	if (!es->activity_ns)
		es->activity_ns = now;
	if (!es->o->follow)
		return now - es->activity_ns < EVENTS_IDLE_NS;
	es->dead = now - es->activity_ns > EVENTS_DEAD_NS;
	return !es->dead;
}

/* One connection. EXIT_OK when it ended (idle, closed, or dead); *why says
 * why when it is worth reconnecting; otherwise an exit code. */
static int events_connect(const Options *o, EventStream *es, Response *resp, const char **why) {
	Request q = { .method = "GET", .path = "/events", .accept = "text/event-stream, application/problem+json",
		      .last_event_id = es->resume, .stream = true, .on_data = on_event_data, .data_userdata = es,
		      .tick = tick_events, .tick_userdata = es };
	int r;

	es->line.size = 0;
	buffer_done(&es->data);
	es->event[0] = 0;
	es->started_ns = now_ns(CLOCK_MONOTONIC);
	es->activity_ns = 0;
	es->dead = es->timed_out = false;
	*why = NULL;
	r = request_once(o, &q, resp);
	if (es->broken) {
		fprintf(stderr, "wardenctl: event stream: a line longer than %d bytes, or out of memory\n", SSE_LINE_MAX);
		return EXIT_REFUSED;
	}
	if (r == -EIO && es->timed_out) {
		resp->code = CURLE_OPERATION_TIMEDOUT;
		snprintf(resp->error, sizeof resp->error, "no answer within %.0f s", o->timeout_s);
	}
	if (r == -EIO) {
		if (!request_retryable(resp->code))
			return report_unreachable(o, &q, resp);
		*why = resp->error;
		return EXIT_OK;
	}
	if (r < 0)
		return oom();
	if (resp->status < 200 || resp->status > 299) {
		if (!o->follow || resp->status < 500)
			return report_http_error(o, resp);
		*why = "the daemon is not ready";
		return EXIT_OK;
	}
	if (o->follow)
		*why = es->dead ? "no keepalive for 45 s" : "the daemon closed the stream";
	return EXIT_OK;
}

int cmd_events(const Options *o, const char *verb, char **args) {
	_cleanup_(event_stream_done) EventStream es = { .o = o };
	unsigned failures = 0;

	(void)verb, (void)args;
	/* Without --since, everything the daemon still holds, like tail(1). */
	snprintf(es.resume, sizeof es.resume, "%s", o->since ? o->since : "0");
	for (;;) {
		_cleanup_(response_done) Response resp = { 0 };
		unsigned received = es.received, delay;
		const char *why;
		int r = events_connect(o, &es, &resp, &why);

		if (r != EXIT_OK || !why)
			return r;
		failures = es.received > received ? 1 : failures + 1;
		if (!o->follow && failures >= REQUEST_MAX_ATTEMPTS) {
			Request q = { .method = "GET", .path = "/events" };
			return report_unreachable(o, &q, &resp);
		}
		delay = failures > 5 ? EVENTS_BACKOFF_MAX_S : 1u << (failures - 1);
		delay = delay > EVENTS_BACKOFF_MAX_S ? EVENTS_BACKOFF_MAX_S : delay;
		fprintf(stderr, "wardenctl: event stream: %s; reconnecting in %u s after event %s\n", why, delay,
		        es.resume);
		sleep_s(delay);
	}
}
