/* SPDX-License-Identifier: MIT */
/*
 * Operations: what a lifecycle request (start, restart, delete, a
 * hypervisor restart, ...) turned into. An operation is created when the
 * request is accepted, follows the cells it acts on through their state
 * changes, and finishes when they reach the target state, fail, or pass
 * their deadline. Requests with ?wait= are parked on it and answered when
 * it finishes. Operations live in memory (the newest OPERATIONS_MAX).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "cell.h"

typedef struct Manager Manager;
typedef struct HttpRequest HttpRequest;

#define OPERATIONS_MAX 256
#define OPERATION_MAX_CELLS CONFIG_MAX_CELLS
#define OPERATION_WAITERS_MAX 16

typedef enum OperationPhase {
	OP_RUNNING,
	OP_SUCCEEDED,
	OP_FAILED,
} OperationPhase;

/* What the cells must reach for the operation to succeed. */
typedef enum OperationTarget {
	OP_TARGET_UP,      /* running or degraded */
	OP_TARGET_STOPPED, /* stopped */
	OP_TARGET_NONE,    /* finished when created */
} OperationTarget;

typedef struct Operation {
	char id[48];
	char kind[24];
	char cell[CELL_NAME_MAX + 1]; /* "" for the whole hypervisor */
	OperationPhase phase;
	OperationTarget target;
	uint64_t created_mono_ns, created_real_ns;
	uint64_t issued_mono_ns;   /* the action was carried out */
	uint64_t stopped_mono_ns;  /* the cells reached stopped (0: not yet) */
	uint64_t finished_mono_ns;
	uint64_t deadline_mono_ns;
	char cells[OPERATION_MAX_CELLS][CELL_NAME_MAX + 1]; /* cells followed */
	size_t n_cells;
	unsigned error_status;
	char error_title[64];
	char error_detail[320];
	HttpRequest *waiters[OPERATION_WAITERS_MAX];
	size_t n_waiters;
} Operation;

typedef struct Operations Operations;

int operations_new(Manager *m, Operations **ret);
Operations *operations_free(Operations *o);

/* A new running operation on `cell` (NULL: the hypervisor). Fails only
 * for lack of memory. */
Operation *operation_new(Operations *o, const char *kind, const char *cell, OperationTarget target,
                         uint64_t deadline_ns);
/* Follow one more cell (hypervisor operations follow several). */
void operation_follow(Operation *op, const char *cell);
/* The action was carried out; check the target at once. */
void operation_issued(Operations *o, Operation *op);
void operation_fail(Operations *o, Operation *op, unsigned status, const char *title, const char *detail_fmt, ...)
	__attribute__((format(printf, 5, 6)));
void operation_succeed(Operations *o, Operation *op);

Operation *operation_find(Operations *o, const char *id);
/* Called on every event of the cell `name`, and when it is deleted (then
 * it counts as stopped); finishes what the change settles. */
void operations_cell_changed(Operations *o, const char *name);

/* Finished operations by kind since the daemon started (/metrics). */
#define OPERATION_KINDS_MAX 16
typedef struct OperationCount {
	char kind[24];
	uint64_t succeeded, failed;
} OperationCount;
/* Copies up to n kinds into ret (in the order first seen); returns how many. */
size_t operations_counts(const Operations *o, OperationCount *ret, size_t n);

json_t *operation_to_json(const Operation *op);
/* Newest first. */
json_t *operations_to_json(Operations *o);

/* Park `r` until op finishes or wait_s pass, then reply with the
 * operation: status_done if it finished, status_running if not. Replies
 * at once when wait_s is 0, the operation has finished, or it cannot take
 * another waiter. */
void operation_reply(Operations *o, Operation *op, HttpRequest *r, double wait_s, unsigned status_done,
                     unsigned status_running);
/* The request is gone (answered some other way, or its client left):
 * no waiter may point at it any more. */
void operations_forget_request(Operations *o, const HttpRequest *r);
