/* SPDX-License-Identifier: MIT */
/*
 * A supervised cell: its spec, its backend handle, its state machine, the
 * heartbeat it keeps, its failures, recoveries, events and timings.
 * All transitions go through cell_set_state(), which logs and emits events.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "hypervisor/backend.h"
#include "policy.h"

typedef struct Manager Manager;

typedef enum CellState {
	CELL_STOPPED,
	CELL_STARTING,
	CELL_RUNNING,
	CELL_DEGRADED,
	CELL_FAILED,
	CELL_STOPPING,
	_CELL_STATE_MAX,
	_CELL_STATE_INVALID = -1,
} CellState;

const char *cell_state_to_string(CellState s);
CellState cell_state_from_string(const char *s);

const char *inmate_state_to_string(uint32_t s);

#define CELL_EVENTS_MAX 64
#define CELL_REASON_MAX 256

typedef struct CellEvent {
	uint64_t id;
	uint64_t mono_ns;
	uint64_t realtime_ns;
	char type[16]; /* "state", "failure", "action", "recovered" */
	CellState state;
	CellState previous; /* for "state": the state left */
	char reason[CELL_REASON_MAX];
} CellEvent;

/* Latency histogram with fixed buckets fine enough for sub-millisecond
 * values (seconds: 50 us .. 10 s). */
#define HIST_BUCKETS 16
extern const double hist_bounds[HIST_BUCKETS];
typedef struct Histogram {
	uint64_t bucket[HIST_BUCKETS]; /* cumulative counts are computed at export */
	uint64_t count;
	double sum;
} Histogram;
void histogram_observe(Histogram *h, double seconds);

typedef struct Cell {
	Manager *manager;
	CellSpec *spec;      /* what the cell runs (or will run at its next start) */
	CellSpec *next_spec; /* accepted while the cell ran: used at the next boot */
	uint64_t revision;   /* of the newest accepted spec */
	uint64_t backend_revision; /* of the spec the backend cell was made from */
	CellState state;
	CellState previous_state; /* before the last transition */
	BackendCell *backend;

	sd_event_source *event_source;  /* doorbell / backend state changes */
	sd_event_source *pidfd_source;  /* the cell's process exited */
	sd_event_source *sample_timer;  /* heartbeat sampling and timeouts */
	sd_event_source *action_timer;  /* backoff, shutdown deadline */
	sd_event_source *save_source;   /* deferred persist_save_cell() */

	/* heartbeat, as last sampled */
	bool hb_valid;
	uint64_t hb_seq;
	uint32_t hb_inmate_state;
	uint64_t hb_changed_ns; /* host CLOCK_MONOTONIC of the last new beat */
	uint64_t hb_uptime_ns;

	/* timestamps (CLOCK_MONOTONIC ns) */
	uint64_t start_issued_ns; /* boot measured from here */
	uint64_t failed_ns;       /* last failure declared (0: none pending) */
	uint64_t healthy_since_ns;
	uint64_t restart_due_ns;  /* backoff deadline, 0 if none */

	unsigned restarts;
	uint64_t failures[_FAILURE_KIND_MAX];
	bool has_failure;
	FailureKind last_failure_kind;
	char last_failure_reason[CELL_REASON_MAX];
	uint64_t last_failure_realtime_ns;
	double boot_ms, detection_ms, recovery_ms; /* last values, < 0: none */
	bool shutdown_requested;

	Policy policy;
	Histogram h_boot, h_recovery, h_detection[_FAILURE_KIND_MAX];

	CellEvent events[CELL_EVENTS_MAX];
	unsigned n_events, events_head;
} Cell;

int cell_new(Manager *m, CellSpec *spec, Cell **ret);
Cell *cell_free(Cell *c);

/* Re-attach to a backend cell that survived a daemon restart. 0 if
 * adopted, -ENOENT if there was none. */
int cell_adopt(Cell *c);
int cell_start(Cell *c);
/* Immediate stop: tears the backend cell down. */
int cell_stop(Cell *c, const char *reason);
/* In place when the backend cell exists, a fresh start otherwise. */
int cell_restart(Cell *c, const char *reason);
/* Graceful: mailbox request, deadline, then destroy. */
int cell_shutdown(Cell *c);
int cell_inject(Cell *c, const char *fault);
/* Release handles without stopping the cell (daemon exit). */
void cell_detach(Cell *c);

/* Read the comm region now and act on what it says. */
void cell_sample(Cell *c);

json_t *cell_to_json(Cell *c, bool full);
/* The newest accepted spec: next_spec if one waits, else spec. */
const CellSpec *cell_latest_spec(const Cell *c);
/* Accept a new spec (consumed): at once if the cell has no backend,
 * at its next boot otherwise. */
void cell_replace_spec(Cell *c, CellSpec *spec, uint64_t revision);
/* Image references of the latest spec that are not uploaded yet:
 * a JSON array of names. */
json_t *cell_missing_images(Cell *c);
void cell_set_state(Cell *c, CellState s, const char *reason);
