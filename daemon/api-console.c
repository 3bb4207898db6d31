/* SPDX-License-Identifier: MIT */
/*
 * GET /cells/NAME/console?lines=N and ?follow=1: the console's newest
 * lines, and then, following, what the cell prints, streamed on the
 * connection the way GET /events streams (parked between writes, woken by
 * http_streams_wake()).
 *
 * Backends give the console as "its newest bytes" (backend.h), not at an
 * offset, so a follower remembers the window it last read and sends what
 * the next read holds past it: while the console is shorter than the window
 * the old read is a prefix of the new one; once it is longer, the new read
 * is the old one shifted by what was printed since. A console printing the
 * same bytes over and over could make a shift look shorter than it was;
 * text with counters or timestamps cannot. A restart that replaces the
 * console between two reads (a fresh runner) loses what the old one
 * printed after the first of them. Reads are loop calls (a copy
 * from shared memory, a pread of a local file), every FOLLOW_PERIOD_MS,
 * on the loop's own timer: nothing here blocks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "cell.h"
#include "http.h"
#include "macro.h"
#include "manager.h"

#define FOLLOW_WINDOW CONSOLE_MAX_BYTES
#define FOLLOW_PERIOD_MS 100
#define FOLLOW_PENDING_MAX (256 * 1024)
#define LINES_MAX 100000

typedef struct Follower {
	Manager *manager;
	char cell[CELL_NAME_MAX + 1];
	sd_event_source *timer;
	char last[FOLLOW_WINDOW]; /* the window as last read */
	size_t last_len;
	char *pending; /* read, not yet written to the client */
	size_t pending_len, pending_off;
	bool gone; /* the cell was deleted: end once pending is out */
} Follower;

/* What `now` (the new window) holds past `old`. */
static size_t new_bytes_at(const char *old, size_t old_len, const char *now, size_t now_len) {
	if (now_len >= old_len && memcmp(old, now, old_len) == 0 && (old_len < FOLLOW_WINDOW || now_len == old_len))
		return old_len;
	/* shifted by d: old[d..] == now[..old_len - d] */
	for (size_t d = 1; d < old_len; d++)
		if (old_len - d <= now_len && memcmp(old + d, now, old_len - d) == 0)
			return old_len - d;
	return 0; /* lapped, or a new console (a fresh boot): all of it is new */
}

static void follower_push(Follower *f, const char *p, size_t n) {
	char *b;

	if (n == 0)
		return;
	if (f->pending_len - f->pending_off + n > FOLLOW_PENDING_MAX) {
		/* a client that does not read: keep the newest */
		f->pending_off = f->pending_len;
	}
	if (f->pending_off == f->pending_len)
		f->pending_off = f->pending_len = 0;
	b = realloc(f->pending, f->pending_len + n);
	if (!b)
		return;
	memcpy(b + f->pending_len, p, n);
	f->pending = b;
	f->pending_len += n;
}

/* Reads the window; false when the cell is gone. */
static bool follower_read(Follower *f, char *buf, size_t *ret_len) {
	Cell *c = manager_find_cell(f->manager, f->cell);
	ssize_t n;

	*ret_len = 0;
	if (!c)
		return false;
	if (!cell_has_backend(c))
		return true; /* stopped: nothing new until it starts again */
	n = cell_console_read(c, buf, FOLLOW_WINDOW);
	*ret_len = n > 0 ? (size_t)n : 0;
	return true;
}

static int on_follow_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	Follower *f = userdata;
	char now[FOLLOW_WINDOW];
	size_t len, keep;

	if (!follower_read(f, now, &len)) {
		f->gone = true;
		http_streams_wake(manager_http(f->manager));
		return sd_event_source_set_enabled(s, SD_EVENT_OFF);
	}
	if (len > 0 && !(len == f->last_len && memcmp(now, f->last, len) == 0)) {
		keep = new_bytes_at(f->last, f->last_len, now, len);
		follower_push(f, now + keep, len - keep);
		memcpy(f->last, now, len);
		f->last_len = len;
		if (f->pending_len > f->pending_off)
			http_streams_wake(manager_http(f->manager));
	}
	sd_event_source_set_time(s, usec + FOLLOW_PERIOD_MS * 1000ULL);
	return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

static ssize_t follower_stream_read(void *userdata, char *buf, size_t max) {
	Follower *f = userdata;
	size_t take = f->pending_len - f->pending_off;

	if (take == 0)
		return f->gone ? -1 : 0;
	take = take < max ? take : max;
	memcpy(buf, f->pending + f->pending_off, take);
	f->pending_off += take;
	return (ssize_t)take;
}

static void follower_free(void *userdata) {
	Follower *f = userdata;

	sd_event_source_disable_unref(f->timer);
	free(f->pending);
	free(f);
}

/* Where the newest `lines` lines of buf[0..n) start (a last line without
 * its newline counts). */
static size_t tail_lines(const char *buf, size_t n, unsigned long lines) {
	size_t i = n;

	if (lines == 0)
		return n;
	if (i > 0 && buf[i - 1] == '\n')
		i--;
	while (i > 0) {
		if (buf[i - 1] == '\n' && --lines == 0)
			return i;
		i--;
	}
	return 0;
}

/* ?lines=N: ULONG_MAX when absent, -1 after a 400. */
static int query_lines(HttpRequest *r, unsigned long *ret) {
	const char *q = http_request_query(r, "lines");
	char *end;
	long v;

	*ret = (unsigned long)-1;
	if (!q)
		return 0;
	v = strtol(q, &end, 10);
	if (*q == 0 || *end != 0 || v < 0 || v > LINES_MAX) {
		http_reply_problem(r, 400, NULL, "lines must be an integer between 0 and %d", LINES_MAX);
		return -1;
	}
	*ret = (unsigned long)v;
	return 0;
}

bool console_wants_stream(HttpRequest *r) {
	return http_request_query(r, "follow") || http_request_query(r, "lines");
}

void route_console_stream(Manager *m, Cell *c, HttpRequest *r) {
	const char *follow = http_request_query(r, "follow");
	_cleanup_free_ Follower *f = NULL;
	unsigned long lines;
	size_t len, start;
	int k;

	if (query_lines(r, &lines) < 0)
		return;
	if (follow && strcmp(follow, "1") != 0 && strcmp(follow, "true") != 0 && strcmp(follow, "0") != 0 &&
	    strcmp(follow, "false") != 0) {
		http_reply_problem(r, 400, NULL, "follow must be 1 or 0");
		return;
	}
	if (http_request_query(r, "bytes")) {
		http_reply_problem(r, 400, NULL, "bytes does not go with lines or follow");
		return;
	}
	follow = follow && (strcmp(follow, "1") == 0 || strcmp(follow, "true") == 0) ? follow : NULL;
	if (!follow && !cell_has_backend(c)) {
		http_reply_problem(r, 409, "Conflict", "cell \"%s\" has no console: it is %s", cell_name(c),
		                   cell_state_to_string(cell_state(c)));
		return;
	}
	f = calloc(1, sizeof *f);
	if (!f) {
		http_reply_problem(r, 500, NULL, "out of memory");
		return;
	}
	f->manager = m;
	snprintf(f->cell, sizeof f->cell, "%s", cell_name(c));
	(void)follower_read(f, f->last, &len);
	f->last_len = len;
	start = tail_lines(f->last, len, lines);
	if (!follow) {
		char *body = malloc(len - start + 1);
		if (!body) {
			http_reply_problem(r, 500, NULL, "out of memory");
			return;
		}
		memcpy(body, f->last + start, len - start);
		http_reply_text(r, 200, "text/plain; charset=utf-8", body, len - start);
		return;
	}
	follower_push(f, f->last + start, len - start);
	k = sd_event_add_time_relative(manager_event(m), &f->timer, CLOCK_MONOTONIC, FOLLOW_PERIOD_MS * 1000ULL,
	                               10 * 1000ULL, on_follow_timer, f);
	if (k < 0) {
		free(f->pending);
		http_reply_problem(r, 500, NULL, "cannot follow the console: %s", strerror(-k));
		return;
	}
	http_reply_header(r, "X-Accel-Buffering", "no");
	/* the stream owns f from here, also when it fails */
	if (http_reply_stream(r, "text/plain; charset=utf-8", follower_stream_read, follower_free, TAKE_PTR(f)) < 0 &&
	    !http_request_replied(r))
		http_reply_problem(r, 500, NULL, "cannot stream the console");
}
