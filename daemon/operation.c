/* SPDX-License-Identifier: MIT */
#include "operation.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events.h"
#include "http.h"
#include "macro.h"
#include "manager.h"

typedef struct Waiter {
	HttpRequest *request;
	uint64_t until_ns;
} Waiter;

/* What a parked request needs when it is resumed: the operation may have
 * been recycled by then, so it is found again by id. */
typedef struct WaitTicket {
	Operations *ops;
	char id[48];
	unsigned status_done, status_running;
} WaitTicket;

typedef struct OperationSlot {
	Operation op;
	Waiter waiters[OPERATION_WAITERS_MAX];
} OperationSlot;

struct Operations {
	Manager *manager;
	OperationSlot *slots[OPERATIONS_MAX]; /* ring, oldest at head */
	size_t head, n;
	uint64_t next_seq;
	uint64_t boot_tag;
	sd_event_source *timer;
	OperationCount counts[OPERATION_KINDS_MAX];
	size_t n_counts;
};

static const char *phase_name(OperationPhase p) {
	return p == OP_RUNNING ? "running" : p == OP_SUCCEEDED ? "succeeded" : "failed";
}

static OperationSlot *slot_of(Operation *op) {
	return (OperationSlot *)op;
}

static void rearm(Operations *o);

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	Operations *o = userdata;
	uint64_t now = now_ns(CLOCK_MONOTONIC);

	(void)s;
	(void)usec;
	for (size_t i = 0; i < o->n; i++) {
		OperationSlot *sl = o->slots[(o->head + i) % OPERATIONS_MAX];
		Operation *op = &sl->op;
		if (op->phase == OP_RUNNING && op->deadline_mono_ns && now >= op->deadline_mono_ns) {
			operation_fail(o, op, 504, "Timeout", "%s did not finish within its deadline", op->kind);
			continue;
		}
		for (size_t w = 0; w < op->n_waiters;) {
			if (now >= sl->waiters[w].until_ns) {
				http_request_resume(sl->waiters[w].request);
				sl->waiters[w] = sl->waiters[--op->n_waiters];
			} else
				w++;
		}
	}
	rearm(o);
	return 0;
}

static void rearm(Operations *o) {
	uint64_t next = UINT64_MAX;

	for (size_t i = 0; i < o->n; i++) {
		OperationSlot *sl = o->slots[(o->head + i) % OPERATIONS_MAX];
		if (sl->op.phase == OP_RUNNING && sl->op.deadline_mono_ns && sl->op.deadline_mono_ns < next)
			next = sl->op.deadline_mono_ns;
		for (size_t w = 0; w < sl->op.n_waiters; w++)
			if (sl->waiters[w].until_ns < next)
				next = sl->waiters[w].until_ns;
	}
	if (next == UINT64_MAX) {
		sd_event_source_set_enabled(o->timer, SD_EVENT_OFF);
		return;
	}
	sd_event_source_set_time(o->timer, next / NSEC_PER_USEC);
	sd_event_source_set_enabled(o->timer, SD_EVENT_ONESHOT);
}

int operations_new(Manager *m, Operations **ret) {
	Operations *o = calloc(1, sizeof *o);
	int r;

	if (!o)
		return -ENOMEM;
	o->manager = m;
	/* Ids stay unique across daemon restarts: a retried request that
	 * replays a stored 202 must not name somebody else's operation. */
	o->boot_tag = now_ns(CLOCK_REALTIME) / NSEC_PER_USEC;
	r = sd_event_add_time(manager_event(m), &o->timer, CLOCK_MONOTONIC, UINT64_MAX, 1000, on_timer, o);
	if (r < 0) {
		free(o);
		return r;
	}
	sd_event_source_set_enabled(o->timer, SD_EVENT_OFF);
	*ret = o;
	return 0;
}

Operations *operations_free(Operations *o) {
	if (!o)
		return NULL;
	for (size_t i = 0; i < o->n; i++)
		free(o->slots[(o->head + i) % OPERATIONS_MAX]);
	sd_event_source_disable_unref(o->timer);
	free(o);
	return NULL;
}

Operation *operation_new(Operations *o, const char *kind, const char *cell, OperationTarget target,
                         uint64_t deadline_ns) {
	OperationSlot *sl;

	if (o->n == OPERATIONS_MAX) {
		/* Recycle the oldest finished operation. */
		size_t i;
		for (i = 0; i < o->n; i++) {
			size_t k = (o->head + i) % OPERATIONS_MAX;
			if (o->slots[k]->op.phase != OP_RUNNING && o->slots[k]->op.n_waiters == 0)
				break;
		}
		if (i == o->n)
			return NULL;
		/* close the gap, keeping age order */
		free(o->slots[(o->head + i) % OPERATIONS_MAX]);
		for (; i > 0; i--)
			o->slots[(o->head + i) % OPERATIONS_MAX] = o->slots[(o->head + i - 1) % OPERATIONS_MAX];
		o->head = (o->head + 1) % OPERATIONS_MAX;
		o->n--;
	}
	sl = calloc(1, sizeof *sl);
	if (!sl)
		return NULL;
	sl->op.phase = OP_RUNNING;
	sl->op.target = target;
	sl->op.created_mono_ns = now_ns(CLOCK_MONOTONIC);
	sl->op.created_real_ns = now_ns(CLOCK_REALTIME);
	sl->op.deadline_mono_ns = deadline_ns ? sl->op.created_mono_ns + deadline_ns : 0;
	snprintf(sl->op.id, sizeof sl->op.id, "op-%" PRIx64 "-%" PRIu64, o->boot_tag, ++o->next_seq);
	snprintf(sl->op.kind, sizeof sl->op.kind, "%s", kind);
	snprintf(sl->op.cell, sizeof sl->op.cell, "%s", cell ? cell : "");
	if (cell)
		operation_follow(&sl->op, cell);
	o->slots[(o->head + o->n) % OPERATIONS_MAX] = sl;
	o->n++;
	return &sl->op;
}

void operation_follow(Operation *op, const char *cell) {
	if (op->n_cells < OPERATION_MAX_CELLS)
		snprintf(op->cells[op->n_cells++], CELL_NAME_MAX + 1, "%s", cell);
}

Operation *operation_find(Operations *o, const char *id) {
	for (size_t i = 0; i < o->n; i++) {
		OperationSlot *sl = o->slots[(o->head + i) % OPERATIONS_MAX];
		if (strcmp(sl->op.id, id) == 0)
			return &sl->op;
	}
	return NULL;
}

/* The kinds are the API's own verbs, a handful: a kind past the table's
 * end is not counted rather than evicting one (counters never go back). */
static void count_finished(Operations *o, const Operation *op, OperationPhase phase) {
	OperationCount *c = NULL;

	for (size_t i = 0; i < o->n_counts && !c; i++)
		if (strcmp(o->counts[i].kind, op->kind) == 0)
			c = &o->counts[i];
	if (!c) {
		if (o->n_counts == OPERATION_KINDS_MAX)
			return;
		c = &o->counts[o->n_counts++];
		snprintf(c->kind, sizeof c->kind, "%s", op->kind);
	}
	if (phase == OP_SUCCEEDED)
		c->succeeded++;
	else
		c->failed++;
}

size_t operations_counts(const Operations *o, OperationCount *ret, size_t n) {
	size_t k = n < o->n_counts ? n : o->n_counts;

	memcpy(ret, o->counts, k * sizeof *ret);
	return k;
}

static void finish(Operations *o, Operation *op, OperationPhase phase) {
	OperationSlot *sl = slot_of(op);

	if (op->phase != OP_RUNNING)
		return;
	count_finished(o, op, phase);
	op->phase = phase;
	op->finished_mono_ns = now_ns(CLOCK_MONOTONIC);
	if (!op->issued_mono_ns)
		op->issued_mono_ns = op->finished_mono_ns;
	for (size_t w = 0; w < op->n_waiters; w++)
		http_request_resume(sl->waiters[w].request);
	op->n_waiters = 0;
	events_emit_json(o->manager, "operation", operation_to_json(op));
	rearm(o);
}

void operation_succeed(Operations *o, Operation *op) {
	finish(o, op, OP_SUCCEEDED);
}

void operation_fail(Operations *o, Operation *op, unsigned status, const char *title, const char *detail_fmt, ...) {
	va_list ap;

	if (op->phase != OP_RUNNING)
		return;
	op->error_status = status;
	snprintf(op->error_title, sizeof op->error_title, "%s", title);
	va_start(ap, detail_fmt);
	vsnprintf(op->error_detail, sizeof op->error_detail, detail_fmt, ap);
	va_end(ap);
	finish(o, op, OP_FAILED);
}

/* Where the followed cells stand against the target. */
static void evaluate(Operations *o, Operation *op) {
	bool all = true;

	if (op->phase != OP_RUNNING || !op->issued_mono_ns)
		return;
	if (op->target == OP_TARGET_NONE) {
		operation_succeed(o, op);
		return;
	}
	for (size_t i = 0; i < op->n_cells; i++) {
		Cell *c = manager_find_cell(o->manager, op->cells[i]);
		CellState s = c ? cell_state(c) : CELL_STOPPED;
		if (op->target == OP_TARGET_UP) {
			if (s == CELL_RUNNING || s == CELL_DEGRADED)
				continue;
			if (s == CELL_FAILED || s == CELL_STOPPED) {
				operation_fail(o, op, 409, "Cell Failed", "cell \"%s\" is %s: %s", op->cells[i],
				               cell_state_to_string(s),
				               c ? cell_state_reason(c) : "it did not come up");
				return;
			}
			all = false;
		} else {
			if (s == CELL_STOPPED)
				continue;
			all = false;
		}
	}
	if (op->target == OP_TARGET_STOPPED && all && !op->stopped_mono_ns)
		op->stopped_mono_ns = now_ns(CLOCK_MONOTONIC);
	if (all)
		operation_succeed(o, op);
}

void operation_issued(Operations *o, Operation *op) {
	op->issued_mono_ns = now_ns(CLOCK_MONOTONIC);
	events_emit_json(o->manager, "operation", operation_to_json(op));
	evaluate(o, op);
	rearm(o);
}

void operations_cell_changed(Operations *o, const char *name) {
	for (size_t i = 0; i < o->n; i++) {
		Operation *op = &o->slots[(o->head + i) % OPERATIONS_MAX]->op;
		if (op->phase != OP_RUNNING)
			continue;
		for (size_t k = 0; k < op->n_cells; k++)
			if (strcmp(op->cells[k], name) == 0) {
				evaluate(o, op);
				break;
			}
	}
}

/* Milliseconds, to the microsecond. */
static double ms_between(uint64_t a, uint64_t b) {
	return b > a ? (double)((b - a) / 1000) / 1e3 : 0.0;
}

static void iso8601(uint64_t real_ns, char *buf, size_t n) {
	time_t t = (time_t)(real_ns / NSEC_PER_SEC);
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + k, n - k, ".%03uZ", (unsigned)(real_ns % NSEC_PER_SEC / 1000000));
}

json_t *operation_to_json(const Operation *op) {
	uint64_t end = op->finished_mono_ns ? op->finished_mono_ns : now_ns(CLOCK_MONOTONIC);
	json_t *j, *t, *cells;
	char created[40];

	iso8601(op->created_real_ns, created, sizeof created);
	t = json_object();
	if (op->issued_mono_ns)
		json_object_set_new(t, "accept", json_real(ms_between(op->created_mono_ns, op->issued_mono_ns)));
	if (op->stopped_mono_ns)
		json_object_set_new(t, "stop", json_real(ms_between(op->created_mono_ns, op->stopped_mono_ns)));
	if (op->target == OP_TARGET_UP && op->phase == OP_SUCCEEDED)
		json_object_set_new(t, "boot", json_real(ms_between(op->issued_mono_ns, op->finished_mono_ns)));
	json_object_set_new(t, "total", json_real(ms_between(op->created_mono_ns, end)));

	cells = json_array();
	for (size_t i = 0; i < op->n_cells; i++)
		json_array_append_new(cells, json_string(op->cells[i]));
	j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o, s:o}", "operation", op->id, "kind", op->kind, "phase",
	              phase_name(op->phase), "created", created, "created_mono_ns", (json_int_t)op->created_mono_ns,
	              "cells", cells, "timings_ms", t);
	json_object_set_new(j, "cell", op->cell[0] ? json_string(op->cell) : json_null());
	if (op->phase == OP_FAILED)
		json_object_set_new(j, "error",
		                    json_pack("{s:s, s:i, s:s}", "title", op->error_title, "status",
		                              (int)op->error_status, "detail", op->error_detail));
	else
		json_object_set_new(j, "error", json_null());
	return j;
}

json_t *operations_to_json(Operations *o) {
	json_t *a = json_array();
	for (size_t i = o->n; i > 0; i--)
		json_array_append_new(a, operation_to_json(&o->slots[(o->head + i - 1) % OPERATIONS_MAX]->op));
	return a;
}

static void reply_now(Operations *o, const char *id, HttpRequest *r, unsigned status_done, unsigned status_running) {
	Operation *op = operation_find(o, id);
	char loc[96];

	if (!op) {
		http_reply_problem(r, 404, "Not Found", "operation %s is no longer held", id);
		return;
	}
	snprintf(loc, sizeof loc, "/operations/%s", op->id);
	http_reply_header(r, "Location", loc);
	http_reply_json(r, op->phase == OP_RUNNING ? status_running : status_done, operation_to_json(op));
}

static void on_resume(HttpRequest *r, void *userdata) {
	WaitTicket *t = userdata;
	reply_now(t->ops, t->id, r, t->status_done, t->status_running);
	free(t);
}

void operation_reply(Operations *o, Operation *op, HttpRequest *r, double wait_s, unsigned status_done,
                     unsigned status_running) {
	OperationSlot *sl = slot_of(op);
	WaitTicket *t;

	if (op->phase != OP_RUNNING || wait_s <= 0 || op->n_waiters >= OPERATION_WAITERS_MAX ||
	    !(t = calloc(1, sizeof *t))) {
		reply_now(o, op->id, r, status_done, status_running);
		return;
	}
	*t = (WaitTicket){ .ops = o, .status_done = status_done, .status_running = status_running };
	snprintf(t->id, sizeof t->id, "%s", op->id);
	sl->waiters[op->n_waiters++] = (Waiter){
		.request = r,
		.until_ns = now_ns(CLOCK_MONOTONIC) + (uint64_t)(wait_s * 1e9),
	};
	http_request_suspend(r, on_resume, free, t);
	rearm(o);
}

void operations_forget_request(Operations *o, const HttpRequest *r) {
	if (!o)
		return;
	for (size_t i = 0; i < o->n; i++) {
		OperationSlot *sl = o->slots[(o->head + i) % OPERATIONS_MAX];
		for (size_t w = 0; w < sl->op.n_waiters;) {
			if (sl->waiters[w].request == r)
				sl->waiters[w] = sl->waiters[--sl->op.n_waiters];
			else
				w++;
		}
	}
}
