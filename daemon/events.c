/* SPDX-License-Identifier: MIT */
#include "events.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "macro.h"
#include "manager.h"

typedef struct Event {
	uint64_t id;
	char type[16];
	char *text; /* the whole SSE record, "id: ..\nevent: ..\ndata: ..\n\n" */
	size_t len;
} Event;

struct Events {
	Manager *manager;
	Event ring[EVENTS_MAX];
	size_t head, n;
	uint64_t next_id;
	uint64_t keepalive_gen;
	sd_event_source *keepalive;
};

/* One client's position in the stream. */
typedef struct Reader {
	Events *events;
	uint64_t after;
	uint64_t keepalive_gen;
	bool greeted;
	/* a record that did not fit into the last buffer */
	char *pending;
	size_t pending_len, pending_off;
} Reader;

static int on_keepalive(sd_event_source *s, uint64_t usec, void *userdata) {
	Events *e = userdata;
	e->keepalive_gen++;
	http_streams_wake(manager_http(e->manager));
	sd_event_source_set_time(s, usec + EVENTS_KEEPALIVE_S * USEC_PER_SEC);
	return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

int events_new(Manager *m, Events **ret) {
	Events *e = calloc(1, sizeof *e);
	int r;

	if (!e)
		return -ENOMEM;
	e->manager = m;
	/* Microseconds of wall clock: above any id an earlier run handed out,
	 * unless the clock went back. */
	e->next_id = now_ns(CLOCK_REALTIME) / NSEC_PER_USEC;
	r = sd_event_add_time_relative(manager_event(m), &e->keepalive, CLOCK_MONOTONIC,
	                               EVENTS_KEEPALIVE_S * USEC_PER_SEC, USEC_PER_SEC, on_keepalive, e);
	if (r < 0) {
		free(e);
		return r;
	}
	sd_event_source_set_enabled(e->keepalive, SD_EVENT_ON);
	*ret = e;
	return 0;
}

Events *events_free(Events *e) {
	if (!e)
		return NULL;
	for (size_t i = 0; i < EVENTS_MAX; i++)
		free(e->ring[i].text);
	sd_event_source_disable_unref(e->keepalive);
	free(e);
	return NULL;
}

uint64_t events_last_id(const Events *e) {
	return e->n ? e->ring[(e->head + e->n - 1) % EVENTS_MAX].id : 0;
}

/* When it happened, RFC 3339 UTC with milliseconds, in every event's data
 * (unless the producer gave its own): a reader of a stream resumed hours
 * later sees when, not only in what order. */
static void stamp(json_t *data) {
	uint64_t ns = now_ns(CLOCK_REALTIME);
	time_t t = (time_t)(ns / NSEC_PER_SEC);
	char buf[40];
	struct tm tm;

	if (!json_is_object(data) || json_object_get(data, "at"))
		return;
	gmtime_r(&t, &tm);
	strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + strlen(buf), sizeof buf - strlen(buf), ".%03uZ", (unsigned)(ns % NSEC_PER_SEC / NSEC_PER_MSEC));
	json_object_set_new(data, "at", json_string(buf));
}

uint64_t events_tail_start(const Events *e, uint64_t n) {
	if (n >= e->n)
		return 0;
	/* the id before the n newest: the stream starts after it */
	return e->ring[(e->head + e->n - n - 1) % EVENTS_MAX].id;
}

void events_emit_json(Manager *m, const char *type, json_t *data) {
	Events *e = manager_events(m);
	Event *ev;
	char *s;
	int n;

	if (!e || !data) {
		json_decref(data);
		return;
	}
	stamp(data);
	s = json_dumps(data, JSON_COMPACT | JSON_REAL_PRECISION(15));
	json_decref(data);
	if (!s)
		return;
	if (e->n == EVENTS_MAX) {
		free(e->ring[e->head].text);
		e->ring[e->head].text = NULL;
		e->head = (e->head + 1) % EVENTS_MAX;
		e->n--;
	}
	ev = &e->ring[(e->head + e->n) % EVENTS_MAX];
	ev->id = ++e->next_id;
	snprintf(ev->type, sizeof ev->type, "%s", type);
	n = asprintf(&ev->text, "id: %" PRIu64 "\nevent: %s\ndata: %s\n\n", ev->id, ev->type, s);
	free(s);
	if (n < 0) {
		ev->text = NULL;
		return;
	}
	ev->len = (size_t)n;
	e->n++;
	if (manager_http(m))
		http_streams_wake(manager_http(m));
}

static const Event *next_after(Events *e, uint64_t after) {
	/* ids grow along the ring: the oldest one newer than `after` */
	for (size_t i = 0; i < e->n; i++) {
		const Event *ev = &e->ring[(e->head + i) % EVENTS_MAX];
		if (ev->id > after)
			return ev;
	}
	return NULL;
}

static size_t put(Reader *rd, char *buf, size_t max, size_t used, const char *text, size_t len) {
	size_t take = len < max - used ? len : max - used;
	memcpy(buf + used, text, take);
	if (take < len) {
		/* keep the rest for the next call */
		free(rd->pending);
		rd->pending = malloc(len - take);
		if (rd->pending) {
			memcpy(rd->pending, text + take, len - take);
			rd->pending_len = len - take;
			rd->pending_off = 0;
		}
	}
	return used + take;
}

static ssize_t reader_read(void *userdata, char *buf, size_t max) {
	Reader *rd = userdata;
	Events *e = rd->events;
	size_t used = 0;
	const Event *ev;

	if (rd->pending) {
		size_t left = rd->pending_len - rd->pending_off;
		size_t take = left < max ? left : max;
		memcpy(buf, rd->pending + rd->pending_off, take);
		rd->pending_off += take;
		if (rd->pending_off == rd->pending_len) {
			free(rd->pending);
			rd->pending = NULL;
		}
		return (ssize_t)take;
	}
	if (!rd->greeted) {
		static const char hello[] = ": warden events\nretry: 2000\n\n";
		rd->greeted = true;
		rd->keepalive_gen = e->keepalive_gen;
		used = put(rd, buf, max, used, hello, sizeof hello - 1);
	}
	while (used < max && !rd->pending && (ev = next_after(e, rd->after))) {
		rd->after = ev->id;
		used = put(rd, buf, max, used, ev->text, ev->len);
	}
	if (used == 0 && rd->keepalive_gen != e->keepalive_gen) {
		static const char ka[] = ": keepalive\n\n";
		rd->keepalive_gen = e->keepalive_gen;
		used = put(rd, buf, max, used, ka, sizeof ka - 1);
	}
	return (ssize_t)used;
}

static void reader_free(void *userdata) {
	Reader *rd = userdata;
	free(rd->pending);
	free(rd);
}

int events_stream(Events *e, HttpRequest *r, uint64_t after) {
	Reader *rd = calloc(1, sizeof *rd);
	if (!rd)
		return -ENOMEM;
	rd->events = e;
	rd->after = after;
	http_reply_header(r, "X-Accel-Buffering", "no");
	return http_reply_stream(r, "text/event-stream", reader_read, reader_free, rd);
}
