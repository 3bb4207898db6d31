/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <limits.h>
#include <math.h>
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

typedef struct EventStream EventStream;
/* One complete event: its id, type, data (NULL if not JSON) and text. */
typedef void (*EventFn)(EventStream *es, const char *id, const char *type, json_t *d, const char *raw);

struct EventStream {
	const Options *o;
	const char *query; /* after /events, for the first connection */
	bool follow;       /* keep the stream open (-f, or a watch) */
	EventFn on_event;
	void *userdata;
	double since_real_s; /* --since AGE: drop events older than this */
	/* --tail N with --filter, listing: the newest N that match, kept
	 * here (id, type, data) and printed when the stream has gone quiet */
	json_t *kept;
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
};

static void event_stream_done(EventStream *es) {
	json_decref(es->kept);
	buffer_done(&es->line);
	buffer_done(&es->data);
}

/* "stuck: heartbeat ..." after a kind that says "stuck" already. */
static const char *without_prefix(const char *reason, const char *kind) {
	size_t l = kind ? strlen(kind) : 0;

	if (reason && l && strncmp(reason, kind, l) == 0 && reason[l] == ':' && reason[l + 1] == ' ')
		return reason + l + 2;
	return reason;
}

/* One line an event: AT TYPE CELL WHAT, as sent, for people. */
static void print_event_human(const Options *o, const char *id, const char *type, json_t *d, const char *raw) {
	char buf[768], label[160];
	const char *cell = jstr(d, "cell"), *kind = jstr(d, "kind");

	if (streq(type, "state")) {
		const char *reason = jstr(d, "reason");
		if (jstr(d, "previous"))
			snprintf(buf, sizeof buf, "%s -> %s", jstr(d, "previous"), dash(jstr(d, "state")));
		else
			snprintf(buf, sizeof buf, "%s", dash(jstr(d, "state")));
		if (reason && *reason)
			snprintf(buf + strlen(buf), sizeof buf - strlen(buf), ": %s", reason);
	} else if (streq(type, "failure"))
		snprintf(buf, sizeof buf, "%s: %s (then %s)", dash(kind), dash(without_prefix(jstr(d, "reason"), kind)),
		         dash(jstr(d, "action")));
	else if (streq(type, "operation")) {
		op_label(d, "-", label, sizeof label);
		op_summary(d, label, buf, sizeof buf);
		snprintf(buf + strlen(buf), sizeof buf - strlen(buf), " [%s]", dash(jstr(d, "operation")));
		if (!cell)
			cell = "(hypervisor)";
	} else if (streq(type, "spec"))
		snprintf(buf, sizeof buf, "spec %s, revision %lld", dash(jstr(d, "change")),
		         (long long)json_integer_value(json_object_get(d, "revision")));
	else if (streq(type, "image"))
		snprintf(buf, sizeof buf, "image %s %s (%lld bytes, sha256 %.16s…)", dash(jstr(d, "name")),
		         dash(jstr(d, "change")), (long long)json_integer_value(json_object_get(d, "size")),
		         dash(jstr(d, "sha256")));
	else if (jstr(d, "reason") && jstr(d, "state"))
		snprintf(buf, sizeof buf, "%s (%s)", jstr(d, "reason"), jstr(d, "state"));
	else
		snprintf(buf, sizeof buf, "%s", raw);
	if (o->format == FORMAT_WIDE)
		printf("%-24s %-8s %-9s %-12s %s\n", dash(jstr(d, "at")), dash(id), type, dash(cell), buf);
	else
		printf("%-24s %-9s %-12s %s\n", dash(jstr(d, "at")), type, dash(cell), buf);
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

static void print_event_yaml(const char *id, const char *type, json_t *d, const char *raw) {
	_cleanup_(json_decrefp) json_t *doc = json_pack("{s:s, s:s, s:O}", "id", id, "event", type, "data",
	                                                d ? d : json_string(raw));
	fputs("---\n", stdout);
	if (doc)
		print_yaml(doc);
}

/* Every --filter must match: cell=NAME (also one of an operation's cells),
 * type=T1[,T2...], kind=KIND (a failure's or an operation's). */
static bool event_matches(const Options *o, const char *type, json_t *d) {
	for (size_t i = 0; i < o->n_filters; i++) {
		const char *f = o->filters[i], *v = strchr(f, '=') + 1;
		bool ok = false;
		if (strncmp(f, "type=", 5) == 0) {
			size_t l = strlen(type);
			for (const char *p = v; p && *p && !ok; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
				ok = strncmp(p, type, l) == 0 && (p[l] == ',' || p[l] == 0);
		} else if (strncmp(f, "cell=", 5) == 0) {
			json_t *cells = json_object_get(d, "cells"), *c;
			size_t k;
			ok = streq(jstr(d, "cell"), v);
			json_array_foreach(cells, k, c) ok = ok || streq(json_string_value(c), v);
		} else if (strncmp(f, "kind=", 5) == 0)
			ok = streq(jstr(d, "kind"), v);
		if (!ok)
			return false;
	}
	return true;
}

/* RFC 3339 UTC ("…Z") in seconds; NAN when unparsable. */
static double rfc3339_s(const char *at) {
	struct tm tm = { 0 };
	const char *rest = at ? strptime(at, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;

	if (!rest)
		return NAN;
	return (double)timegm(&tm) + (*rest == '.' ? strtod(rest, NULL) : 0.0);
}

static void print_event(EventStream *es, const char *id, const char *type, json_t *d, const char *raw) {
	const Options *o = es->o;

	if (!event_matches(o, type, d))
		return;
	if (es->since_real_s > 0 && !(rfc3339_s(jstr(d, "at")) >= es->since_real_s))
		return;
	if (es->kept) {
		json_array_append_new(es->kept, json_pack("[s, s, s]", id, type, raw));
		while ((long)json_array_size(es->kept) > o->tail)
			json_array_remove(es->kept, 0);
		return;
	}
	if (o->format == FORMAT_YAML)
		print_event_yaml(id, type, d, raw);
	else if (o->json)
		print_event_json(id, type, d, raw);
	else
		print_event_human(o, id, type, d, raw);
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
	es->on_event(es, es->id, type, d, es->data.data);
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
	if (!es->follow)
		return now - es->activity_ns < EVENTS_IDLE_NS;
	es->dead = now - es->activity_ns > EVENTS_DEAD_NS;
	return !es->dead;
}

/* One connection. EXIT_OK when it ended (idle, closed, or dead); *why says
 * why when it is worth reconnecting; otherwise an exit code. */
static int events_connect(const Options *o, EventStream *es, Response *resp, const char **why) {
	_cleanup_free_ char *path = NULL;
	Request q = { .method = "GET", .accept = "text/event-stream, application/problem+json",
		      .last_event_id = es->resume, .stream = true, .on_data = on_event_data, .data_userdata = es,
		      .tick = tick_events, .tick_userdata = es };
	int r;

	/* the first connection asks for what it wants; a reconnection resumes */
	if (asprintf(&path, "/events%s", es->resume[0] ? "" : es->query ? es->query : "") < 0)
		return oom();
	q.path = path;
	q.last_event_id = es->resume[0] ? es->resume : NULL;
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
		if (!request_retryable(resp->code) || request_hopeless(o, resp))
			return report_unreachable(o, &q, resp);
		*why = resp->error;
		return EXIT_OK;
	}
	if (r < 0)
		return oom();
	if (resp->status < 200 || resp->status > 299) {
		if (!es->follow || resp->status < 500)
			return report_http_error(o, resp);
		*why = "the daemon is not ready";
		return EXIT_OK;
	}
	if (es->follow)
		*why = es->dead ? "no keepalive for 45 s" : "the daemon closed the stream";
	return EXIT_OK;
}

/* Reads the stream until it ends (or, following, for ever), reconnecting
 * after the last complete event when it breaks. */
static int events_run(EventStream *es) {
	const Options *o = es->o;
	unsigned failures = 0;

	for (;;) {
		_cleanup_(response_done) Response resp = { 0 };
		unsigned received = es->received, delay;
		const char *why;
		int r = events_connect(o, es, &resp, &why);

		if (r != EXIT_OK || !why)
			return r;
		failures = es->received > received ? 1 : failures + 1;
		if (!es->follow && failures >= REQUEST_MAX_ATTEMPTS) {
			Request q = { .method = "GET", .path = "/events" };
			return report_unreachable(o, &q, &resp);
		}
		delay = failures > 5 ? EVENTS_BACKOFF_MAX_S : 1u << (failures - 1);
		delay = delay > EVENTS_BACKOFF_MAX_S ? EVENTS_BACKOFF_MAX_S : delay;
		fprintf(stderr, "wardenctl: event stream: %s; reconnecting in %u s after event %s\n", why, delay,
		        es->resume[0] ? es->resume : "(none yet)");
		sleep_s(delay);
	}
}

int cmd_events(const Options *o, const char *verb, char **args) {
	_cleanup_(event_stream_done) EventStream es = { .o = o, .follow = o->follow, .on_event = print_event };
	char query[64];
	int r;

	(void)verb, (void)args;
	/* A listing shows what the daemon holds; -f only what comes, as
	 * docker events does; --since and --tail say otherwise. */
	if (o->since)
		snprintf(es.resume, sizeof es.resume, "%s", o->since);
	else if (o->tail >= 0 && o->tail != LONG_MAX && !(o->n_filters && !o->follow))
		snprintf(query, sizeof query, "?tail=%ld", o->tail), es.query = query;
	else if (o->tail == LONG_MAX || o->since_age_s > 0 || !o->follow)
		es.query = "?since=0";
	if (o->since_age_s > 0) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		es.since_real_s = (double)now.tv_sec + (double)now.tv_nsec / 1e9 - o->since_age_s;
	}
	/* filtered and listed: the tail is of what matches, so read it all */
	if (o->n_filters && !o->follow && o->tail >= 0 && o->tail != LONG_MAX) {
		es.query = "?since=0";
		if (!(es.kept = json_array()))
			return oom();
	}
	r = events_run(&es);
	if (r == EXIT_OK && es.kept) {
		json_t *kept = es.kept, *e;
		size_t i;
		es.kept = NULL; /* print for real now */
		json_array_foreach(kept, i, e) {
			const char *raw = json_string_value(json_array_get(e, 2));
			_cleanup_(json_decrefp) json_t *d = json_loads(raw, 0, NULL);
			print_event(&es, json_string_value(json_array_get(e, 0)), json_string_value(json_array_get(e, 1)), d,
			            raw);
		}
		json_decref(kept);
	}
	return r;
}

/* --- -w: a list printed again, a line at a time, on every event --------- */

typedef struct Watch {
	const char *path;
	TableFn fill;
	Table shown; /* the rows last printed, header first */
	size_t width[16];
	int status;
	/* the state event that made this refresh: a cell may have passed
	 * through that state (starting) before the list was read again */
	const char *hint_cell, *hint_state;
	char last_hint[160]; /* "CELL STATE" of the last state event: told once */
} Watch;

/* Rows differ in what they say, not in the clock: uptimes, ages and
 * "N s ago" change on every refresh and make no line of their own. */
static bool row_equal(const Table *a, size_t ra, const Table *b, size_t rb) {
	for (size_t c = 0; c < a->n_cols; c++) {
		const char *h = a->cells[c], *x = a->cells[ra * a->n_cols + c], *y = b->cells[rb * b->n_cols + c];
		size_t lx = strcspn(x, " "), ly = strcspn(y, " ");
		if (streq(h, "UPTIME") || streq(h, "HEARTBEAT") || streq(h, "TOTAL"))
			continue;
		if (streq(h, "LAST-FAILURE") ? lx != ly || strncmp(x, y, lx) != 0 : !streq(x, y))
			return false;
	}
	return true;
}

static void print_row(const Table *t, size_t row, const size_t *width) {
	for (size_t c = 0; c < t->n_cols; c++) {
		const char *v = t->cells[row * t->n_cols + c];
		if (c == t->n_cols - 1)
			printf("%s\n", v);
		else
			printf("%-*s  ", (int)width[c], v);
	}
}

/* The row as it was in the state the event named, when the list read
 * after it already shows another one. */
static bool print_passed_state(const Options *o, Watch *w, Table *t, size_t row) {
	bool printed = false;

	for (size_t c = 0; c < t->n_cols; c++) {
		char **cell = &t->cells[row * t->n_cols + c], *keep;
		if (!streq(t->cells[c], "STATE") || streq(*cell, w->hint_state))
			continue;
		keep = *cell;
		*cell = (char *)w->hint_state;
		if (o->format == FORMAT_NAME)
			printf("%s\n", t->cells[row * t->n_cols]);
		else
			print_row(t, row, w->width);
		*cell = keep;
		printed = true;
	}
	return printed;
}

/* GETs the list; prints the rows that are new or changed since the last
 * time (all of them, with the header, the first time). */
static int watch_refresh(const Options *o, Watch *w, bool first) {
	_cleanup_(response_done) Response resp = { 0 };
	_cleanup_(json_decrefp) json_t *j = NULL;
	Request q = { .method = "GET", .path = w->path };
	Table t = { 0 };
	size_t rows;
	int r = request_run(o, &q, &resp);

	if (r == EXIT_OK)
		r = parse_json_answer(&resp, &j);
	if (r != EXIT_OK)
		return r;
	r = w->fill(o, j, &t);
	if (r != EXIT_OK || t.failed) {
		table_done(&t);
		return r != EXIT_OK ? r : oom();
	}
	rows = t.n_cells / t.n_cols;
	if (first) {
		for (size_t i = 0; i < t.n_cells; i++) {
			size_t l = strlen(t.cells[i]);
			w->width[i % t.n_cols] = l > w->width[i % t.n_cols] ? l : w->width[i % t.n_cols];
		}
		/* room for the states and phases still to come ("starting") */
		for (size_t c = 0; c < t.n_cols; c++)
			if ((streq(t.cells[c], "STATE") || streq(t.cells[c], "PHASE")) && w->width[c] < 9)
				w->width[c] = 9;
		if (o->format == FORMAT_NAME) {
			for (size_t i = 1; i < rows; i++)
				printf("%s\n", t.cells[i * t.n_cols]);
		} else
			for (size_t i = o->no_headers ? 1 : 0; i < rows; i++)
				print_row(&t, i, w->width);
	} else {
		size_t shown_rows = w->shown.n_cells / w->shown.n_cols;
		for (size_t i = 1; i < rows; i++) {
			bool same = false, passed = false;
			if (w->hint_cell && streq(t.cells[i * t.n_cols], w->hint_cell))
				passed = print_passed_state(o, w, &t, i);
			/* after a passed state, the state it is in now, changed or not */
			for (size_t k = 1; k < shown_rows && !same && !passed; k++)
				same = row_equal(&t, i, &w->shown, k);
			if (same)
				continue;
			if (o->format == FORMAT_NAME)
				printf("%s\n", t.cells[i * t.n_cols]);
			else
				print_row(&t, i, w->width);
		}
	}
	fflush(stdout);
	table_done(&w->shown);
	w->shown = t;
	return EXIT_OK;
}

static void on_watch_event(EventStream *es, const char *id, const char *type, json_t *d, const char *raw) {
	Watch *w = es->userdata;

	(void)id, (void)d, (void)raw;
	if (w->status != EXIT_OK)
		return;
	/* every event may change a line: states, specs, operations */
	if (streq(type, "state") || streq(type, "spec") || streq(type, "operation") || streq(type, "failure") ||
	    streq(type, "recovered") || streq(type, "action") || streq(type, "started")) {
		bool hint = streq(type, "state") && jstr(d, "cell") && jstr(d, "state");
		char now[160];
		if (hint) {
			/* a second event into the same state (two reasons) adds no line */
			snprintf(now, sizeof now, "%s %s", jstr(d, "cell"), jstr(d, "state"));
			hint = !streq(now, w->last_hint);
			snprintf(w->last_hint, sizeof w->last_hint, "%s", now);
		}
		w->hint_cell = hint ? jstr(d, "cell") : NULL;
		w->hint_state = hint ? jstr(d, "state") : NULL;
		w->status = watch_refresh(es->o, w, false);
		w->hint_cell = w->hint_state = NULL;
	}
}

int watch_list(const Options *o, const char *path, TableFn fill) {
	Watch w = { .path = path, .fill = fill };
	_cleanup_(event_stream_done) EventStream es = { .o = o, .follow = true, .on_event = on_watch_event,
		                                        .userdata = &w, .query = "?tail=0" };
	int r;

	if (o->json) {
		fprintf(stderr, "wardenctl: -w prints tables (or -o name, wide); for JSON follow \"wardenctl events -f -o json\"\n");
		return EXIT_USAGE;
	}
	r = watch_refresh(o, &w, true);
	if (r == EXIT_OK)
		r = events_run(&es);
	table_done(&w.shown);
	return r != EXIT_OK ? r : w.status;
}
