/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <jansson.h>

#include "exit-code.h"
#include "macro.h"
#include "mutation.h"
#include "output.h"

/* The longest ?wait= the daemon accepts (api/openapi.yaml). */
#define SERVER_MAX_WAIT_S 300

static int random_key(char ret[static 33]) {
	uint8_t b[16];

	if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
		return -errno ?: -EIO;
	for (size_t i = 0; i < sizeof b; i++)
		snprintf(ret + 2 * i, 3, "%02x", b[i]);
	return 0;
}

/* The user's key, or a fresh one in buf. NULL when there is no randomness. */
static const char *mutation_key(const Options *o, char buf[static 33]) {
	int r;

	if (o->idempotency_key)
		return o->idempotency_key;
	r = random_key(buf);
	if (r < 0) {
		fprintf(stderr, "wardenctl: cannot generate an Idempotency-Key: %s\n", strerror(-r));
		return NULL;
	}
	return buf;
}

/* ETag "7" → 7 for display; NULL when absent. */
const char *revision_of(const Response *resp, json_t *cell, char *buf, size_t n) {
	json_t *rev = json_object_get(cell, "revision");

	if (json_is_integer(rev))
		snprintf(buf, n, "%lld", (long long)json_integer_value(rev));
	else if (resp->etag && resp->etag[0] == '"')
		snprintf(buf, n, "%.*s", (int)strcspn(resp->etag + 1, "\""), resp->etag + 1);
	else
		return NULL;
	return buf;
}

static bool phase_finished(const char *phase) {
	return streq(phase, "succeeded") || streq(phase, "failed");
}

void op_label(json_t *op, const char *fallback, char *buf, size_t n) {
	const char *kind = jstr(op, "kind"), *cell = jstr(op, "cell");

	if (kind)
		snprintf(buf, n, "%s%s%s", kind, cell ? " " : "", cell ? cell : "");
	else
		snprintf(buf, n, "%s", fallback);
}

/* "stop 0.30 ms, boot 2.2 s, total 2.2 s"; empty when there are none. */
static const char *format_timings(json_t *op, char *buf, size_t n) {
	json_t *t = json_object_get(op, "timings_ms"), *v;
	const char *k;
	size_t off = 0;

	buf[0] = 0;
	json_object_foreach(t, k, v) {
		char d[32];
		int w;
		if (streq(k, "queued") || !json_is_number(v))
			continue;
		w = snprintf(buf + off, n - off, "%s%s %s", off ? ", " : "", k, format_ms(json_number_value(v), d, sizeof d));
		if (w < 0 || (size_t)w >= n - off)
			break;
		off += (size_t)w;
	}
	return buf;
}

void op_summary(json_t *op, const char *label, char *buf, size_t n) {
	char t[256];

	format_timings(op, t, sizeof t);
	snprintf(buf, n, "%s: %s%s%s%s", label, dash(jstr(op, "phase")), t[0] ? " (" : "", t, t[0] ? ")" : "");
}

static double elapsed_s(uint64_t since_ns) {
	return (double)(now_ns(CLOCK_MONOTONIC) - since_ns) / 1e9;
}

void progress_begin(Progress *p, const Options *o, const char *label) {
	*p = (Progress){ .on = o->seen & OPT_WAIT, .tty = o->stderr_tty, .start_ns = now_ns(CLOCK_MONOTONIC) };
	snprintf(p->label, sizeof p->label, "%s", label);
	snprintf(p->phase, sizeof p->phase, "running");
	if (p->on && !p->tty)
		fprintf(stderr, "%s: running (waiting up to %.0f s)\n", p->label, o->wait_s);
}

static void progress_update(Progress *p, json_t *op) {
	char label[sizeof p->label];

	op_label(op, p->label, label, sizeof label);
	snprintf(p->label, sizeof p->label, "%s", label);
	snprintf(p->phase, sizeof p->phase, "%s", dash(jstr(op, "phase")));
}

static void progress_draw(Progress *p) {
	if (!p->on || !p->tty)
		return;
	fprintf(stderr, "\r\033[K%s: %s (%.1f s)", p->label, p->phase, elapsed_s(p->start_ns));
	p->drawn = true;
}

bool tick_progress(CURL *e, void *userdata) {
	(void)e;
	progress_draw(userdata);
	return true;
}

/* Ends the progress line with the outcome. On a terminal the line is cleared
 * when stdout shows the outcome anyway. */
static void progress_end(Progress *p, const Options *o, const char *summary) {
	if (!p->on)
		return;
	if (p->tty) {
		fputs("\r\033[K", stderr);
		if (!o->stdout_tty || o->json)
			fprintf(stderr, "%s\n", summary);
	} else
		fprintf(stderr, "%s\n", summary);
	p->on = false;
}

void progress_abort(Progress *p) {
	if (p->on && p->tty && p->drawn)
		fputs("\r\033[K", stderr);
	p->on = false;
}

static void print_op_error(json_t *op) {
	json_t *err = json_object_get(op, "error");
	const char *title = jstr(err, "title"), *detail = jstr(err, "detail");

	if (json_is_string(err))
		detail = json_string_value(err);
	fprintf(stderr, "wardenctl: %s: %s\n", title ? title : "Operation failed", detail ? detail : "(no detail)");
}

/* Polls GET /operations/ID?wait= until the operation finishes or the user's
 * deadline passes. raw and op hold the newest answer. */
static int operation_poll(const Options *o, Progress *p, uint64_t deadline_ns, Buffer *raw, json_t **op) {
	for (;;) {
		_cleanup_(response_done) Response resp = { 0 };
		_cleanup_free_ char *path = NULL;
		uint64_t now = now_ns(CLOCK_MONOTONIC);
		const char *id = jstr(*op, "operation");
		double wait;
		char waitbuf[16];
		Request q = { .method = "GET", .tick = tick_progress, .tick_userdata = p };
		json_t *j = NULL;
		int r;

		if (phase_finished(jstr(*op, "phase")) || !p->on || now >= deadline_ns || !id)
			return EXIT_OK;
		wait = fmin(ceil((double)(deadline_ns - now) / 1e9), SERVER_MAX_WAIT_S);
		snprintf(waitbuf, sizeof waitbuf, "%.0f", wait);
		path = path_make("/operations/", id, NULL);
		if (!path || path_add_query(&path, "wait", waitbuf) < 0)
			return oom();
		q.path = path;
		q.hold_s = wait;
		r = request_run(o, &q, &resp);
		if (r != EXIT_OK) {
			fprintf(stderr, "wardenctl: lost track of operation %s; it may still run: wardenctl operation show %s\n",
			        id, id);
			return r;
		}
		r = parse_json_answer(&resp, &j);
		if (r != EXIT_OK)
			return r;
		json_decref(*op);
		*op = j;
		buffer_done(raw);
		*raw = resp.body;
		resp.body = (Buffer){ 0 };
		progress_update(p, *op);
	}
}

static void show_operation(json_t *op) {
	json_t *err = json_object_get(op, "error"), *result = json_object_get(op, "result");
	json_t *cells = json_object_get(op, "cells");
	char buf[512];

	kv("operation", "%s", dash(jstr(op, "operation")));
	kv("kind", "%s", dash(jstr(op, "kind")));
	kv("cell", "%s", dash(jstr(op, "cell")));
	if (json_array_size(cells) > 1 || (json_array_size(cells) == 1 && !jstr(op, "cell")))
		kv("cells", "%s", format_list(cells, "name", ", ", buf, sizeof buf));
	kv("phase", "%s", dash(jstr(op, "phase")));
	kv("created", "%s", dash(jstr(op, "created")));
	kv("timings", "%s", dash(format_timings(op, buf, sizeof buf)));
	if (json_is_object(err))
		kv("error", "%s: %s", dash(jstr(err, "title")), dash(jstr(err, "detail")));
	if (result && !json_is_null(result)) {
		_cleanup_free_ char *s = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
		kv("result", "%s", s ? s : "-");
	}
}

int operation_finish(const Options *o, Progress *p, uint64_t deadline_ns, Buffer *raw, json_t **op,
                            bool detail) {
	bool waited = o->seen & OPT_WAIT;
	char label[160], summary[512];
	const char *phase, *id;
	int r;

	progress_update(p, *op);
	r = operation_poll(o, p, deadline_ns, raw, op);
	if (r != EXIT_OK) {
		progress_abort(p);
		return r;
	}
	phase = jstr(*op, "phase");
	id = dash(jstr(*op, "operation"));
	op_label(*op, p->label, label, sizeof label);
	if (phase_finished(phase))
		op_summary(*op, label, summary, sizeof summary);
	else
		snprintf(summary, sizeof summary, "%s: %s (operation %s)", label, dash(phase), id);
	progress_end(p, o, summary);
	if (o->json)
		print_doc(o, raw->data, raw->size);
	else if (detail)
		show_operation(*op);
	else
		printf("%s\n", summary);
	if (detail && !waited)
		return EXIT_OK;
	if (streq(phase, "succeeded"))
		return EXIT_OK;
	if (streq(phase, "failed")) {
		print_op_error(*op);
		return EXIT_REFUSED;
	}
	if (!waited)
		return EXIT_OK;
	fprintf(stderr, "wardenctl: %s did not finish within %.1f s; it goes on: wardenctl operation show %s --wait\n",
	        label, o->wait_s, id);
	return EXIT_REFUSED;
}

int print_accepted(const Options *o, const Response *resp, json_t *j, const char *label, void *userdata) {
	(void)userdata;
	if (o->json)
		print_doc(o, resp->body.data, resp->body.size);
	else if (jstr(j, "state"))
		printf("%s: accepted (cell is %s)\n", label, jstr(j, "state"));
	else
		printf("%s: accepted\n", label);
	return EXIT_OK;
}

int path_add_wait(const Options *o, char **path, double *ret_hold_s) {
	char w[16];

	if (!(o->seen & OPT_WAIT))
		return 0;
	*ret_hold_s = fmin(ceil(o->wait_s), SERVER_MAX_WAIT_S);
	snprintf(w, sizeof w, "%.0f", *ret_hold_s);
	return path_add_query(path, "wait", w);
}

/* Every retry must be the same request, so the path with ?wait= is fixed
 * here, before the first. */
int run_mutation(const Options *o, Request *q, const char *label, PrintAnswerFn print, void *userdata) {
	_cleanup_(response_done) Response resp = { 0 };
	_cleanup_(json_decrefp) json_t *j = NULL;
	_cleanup_free_ char *path = strdup(q->path);
	char key[33];
	Progress p;
	uint64_t deadline;
	int r;

	if (!path)
		return oom();
	q->idempotency_key = mutation_key(o, key);
	if (!q->idempotency_key)
		return EXIT_REFUSED;
	if (path_add_wait(o, &path, &q->hold_s) < 0)
		return oom();
	q->path = path;
	progress_begin(&p, o, label);
	deadline = p.start_ns + (uint64_t)(o->wait_s * 1e9);
	if (!q->tick) {
		q->tick = tick_progress;
		q->tick_userdata = &p;
	}
	r = request_run(o, q, &resp);
	if (r == EXIT_OK)
		r = parse_json_answer(&resp, &j);
	if (r != EXIT_OK) {
		progress_abort(&p);
		return r;
	}
	if (!jstr(j, "operation")) {
		progress_abort(&p);
		if (o->seen & OPT_WAIT)
			fprintf(stderr, "wardenctl: the daemon answered without an operation; there is nothing to wait for\n");
		return print(o, &resp, j, label, userdata);
	}
	return operation_finish(o, &p, deadline, &resp.body, &j, false);
}
