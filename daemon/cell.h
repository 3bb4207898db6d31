/* SPDX-License-Identifier: MIT */
/*
 * A supervised cell: its spec, its backend handle, its state machine
 * (cell-machine.h decides every transition; this module carries them out),
 * its events and timings.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "cell-machine.h"
#include "config.h"
#include "hypervisor/backend.h"
#include "policy.h"

typedef struct Manager Manager;

typedef struct CellEvent {
	uint64_t id;
	uint64_t mono_ns;
	uint64_t realtime_ns;
	char type[16]; /* "state", "failure", "action", "recovered" */
	CellState state;
	CellState previous; /* for "state": the state left */
	char reason[CELL_REASON_MAX];
} CellEvent;

/* The executor around a CellMachine (cell-machine.h): it feeds the machine
 * what the loop sees (samples, timers, process exits, completed backend
 * requests, operator requests) and carries out the actions it returns.
 * Opaque: only cell.c touches its fields; everyone else uses the verbs and
 * accessors below. */
typedef struct Cell Cell;

/* spec (consumed) is at `revision`. */
int cell_new(Manager *m, CellSpec *spec, uint64_t revision, Cell **ret);
Cell *cell_free(Cell *c);

/* Stop it (a backend request in flight is left to destroy what it
 * makes) and free it: the cell was deleted. */
void cell_delete(Cell *c);

/* Re-attach to a backend cell that survived a daemon restart (start-up
 * only: adoption is a blocking backend call). 0 if adopted, -ENOENT if
 * there was none; the cell is then stopped. */
int cell_adopt(Cell *c);
/* The lifecycle verbs return at once; the backend work they start
 * completes on the loop. -EALREADY / -EBUSY: refused, see cell_step(). */
int cell_start(Cell *c);
/* Tear the backend cell down. by_operator: the cell stays stopped across
 * daemon restarts until started again (autostart notwithstanding). */
int cell_stop(Cell *c, const char *reason, bool by_operator);
/* In place when the backend allows it, a fresh boot otherwise. */
int cell_restart(Cell *c, const char *reason);
/* Graceful: mailbox request, deadline, then destroy. */
int cell_shutdown(Cell *c);
int cell_inject(Cell *c, const char *fault);

/* Read the comm region now and act on what it says. */
void cell_sample(Cell *c);

/* Between doorbells and backend completions (SD_EVENT_PRIORITY_IMPORTANT)
 * and HTTP (normal): the cells' timers, the manager's wheel among them. */
#define CELL_PRIORITY_TIMERS (SD_EVENT_PRIORITY_IMPORTANT / 2)
/* The wheel's slot: routine samples due within it share one wake-up. */
#define CELL_WHEEL_ACCURACY_USEC 500
/* Routine samples (the once-a-period looks) of every cell share one timer
 * of the manager, a timer wheel: one wake-up and one dispatch serve every
 * cell due in the same slot, where a timer per cell would cost sd-event a
 * loop iteration (and an epoll_wait) each. The cell asks for its slot with
 * manager_wheel_arm(); the manager's timer runs cell_wheel_run() on the
 * cells, which samples those due by then (0 from cell_wheel_due(): none on
 * the wheel), in one pass. Deadlines keep the cell's own, exact timer. */
uint64_t cell_wheel_due(const Cell *c);
/* True if it sampled the cell (its routine look was due by `now`). */
bool cell_wheel_run(Cell *c, uint64_t now);

const char *cell_name(const Cell *c);
Manager *cell_manager(const Cell *c);
/* What the cell runs (or will run at its next start); see also
 * cell_latest_spec(). */
const CellSpec *cell_spec(const Cell *c);
/* Of the newest accepted spec. */
uint64_t cell_revision(const Cell *c);
CellState cell_state(const Cell *c);
/* Why it is in its state (the reason of the last transition). */
const char *cell_state_reason(const Cell *c);
const CellMachine *cell_machine(const Cell *c);
/* A backend request is in flight. */
bool cell_busy(const Cell *c);
/* The daemon holds a backend cell: console and hypervisor view exist. */
bool cell_has_backend(const Cell *c);
/* The backend's status of the cell (a loop call); -ENODEV without one. */
int cell_backend_status(Cell *c, BackendCellStatus *ret);
/* Stopped by the operator (see cell_stop()). */
bool cell_held(const Cell *c);
ssize_t cell_console_read(Cell *c, char *buf, size_t n);

/* What persist.c keeps of the supervision state, and reads back. */
json_t *cell_supervision_to_json(const Cell *c);
void cell_supervision_from_json(Cell *c, json_t *j);

json_t *cell_to_json(Cell *c, bool full);
/* A sanitised copy of the inmate's results area (daemon/results.h):
 * 0, -ENODATA (no backend, comm or area) or -EAGAIN (torn read). */
struct warden_results;
int cell_results(Cell *c, struct warden_results *out);
/* The same for the inmate's applications table (daemon/apps.h). */
struct warden_apps;
int cell_apps(Cell *c, struct warden_apps *out);
/* The newest accepted spec: next_spec if one waits, else spec. */
const CellSpec *cell_latest_spec(const Cell *c);
/* Accept a new spec (consumed): at once if the cell has no backend,
 * at its next boot otherwise. */
void cell_replace_spec(Cell *c, CellSpec *spec, uint64_t revision);
/* Image references of the latest spec that are not uploaded yet:
 * a JSON array of names. */
json_t *cell_missing_images(Cell *c);
