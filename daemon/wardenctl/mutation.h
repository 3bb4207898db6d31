/* SPDX-License-Identifier: MIT */
/*
 * Mutations and the operations they start. Every mutation carries an
 * Idempotency-Key, the user's or a random one, so that a retry cannot act
 * twice. With --wait, the operation is followed on /operations/ID?wait=
 * until it ends or the deadline passes, with a progress line on stderr;
 * its phase becomes the exit code.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <jansson.h>

#include "args.h"
#include "buffer.h"
#include "client.h"

/* The "restart linux: running (boot 1.2 s)" line while --wait waits. */
typedef struct Progress {
	bool on;    /* --wait was given */
	bool tty;   /* stderr is a terminal: one line, rewritten */
	bool drawn; /* the terminal line holds our text */
	uint64_t start_ns;
	char label[160];
	char phase[24];
} Progress;

void progress_begin(Progress *p, const Options *o, const char *label);
void progress_abort(Progress *p);
/* A TickFn redrawing the progress line (userdata: the Progress). */
bool tick_progress(CURL *e, void *userdata);

/* "restart linux", or fallback when the operation names no kind. */
void op_label(json_t *op, const char *fallback, char *buf, size_t n);
/* "restart linux: succeeded (stop 0.30 ms, boot 2.2 s, total 2.2 s)" */
void op_summary(json_t *op, const char *label, char *buf, size_t n);

/* With --wait, appends ?wait=S, S being what the daemon may hold the answer
 * for, and sets *ret_hold_s to it. */
int path_add_wait(const Options *o, char **path, double *ret_hold_s);

/* The outcome of an operation: waits for it when --wait asks, prints it and
 * maps it to the exit code. raw and op hold the answer so far, and then the
 * newest. detail: `operation show` prints every field and, without --wait,
 * succeeds whatever the operation's phase. */
int operation_finish(const Options *o, Progress *p, uint64_t deadline_ns, Buffer *raw, json_t **op, bool detail);

/* Prints the answer of a mutation that returned no operation; returns the
 * exit code. */
typedef int (*PrintAnswerFn)(const Options *o, const Response *resp, json_t *j, const char *label, void *userdata);
/* "LABEL: accepted (cell is STATE)" */
int print_accepted(const Options *o, const Response *resp, json_t *j, const char *label, void *userdata);

/* Sends a mutation with its Idempotency-Key (and ?wait= with --wait), then
 * follows the operation it returns, or prints the answer with print. q->path
 * points into this function's copy until it returns. */
int run_mutation(const Options *o, Request *q, const char *label, PrintAnswerFn print, void *userdata);

/* A cell's revision for display, from the answer or its ETag; NULL when
 * there is none. */
const char *revision_of(const Response *resp, json_t *cell, char *buf, size_t n);
