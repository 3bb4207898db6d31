/* SPDX-License-Identifier: MIT */
/*
 * The Manager owns everything wardend has: the event loop, the HTTP
 * listeners, the backends, the cells and the configuration. There is no
 * other mutable global state; tests build their own Manager.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "cell.h"
#include "config.h"
#include "hypervisor/backend.h"

typedef struct Http Http;
typedef struct Tokens Tokens;
typedef struct Operations Operations;
typedef struct Events Events;
typedef struct Api Api;

/* How late the loop ran a periodic high-priority timer: the daemon's own
 * measure of whether anything held its loop. Buckets in seconds. */
#define LOOP_LAG_BUCKETS 14
extern const double loop_lag_bounds[LOOP_LAG_BUCKETS];
extern const char *const loop_lag_le[LOOP_LAG_BUCKETS];
typedef struct LoopLag {
	uint64_t bucket[LOOP_LAG_BUCKETS];
	uint64_t count;
	uint64_t sum_ns, max_ns;
} LoopLag;

typedef struct ManagerOptions {
	const char *config_path;
	const char *listen[CONFIG_MAX_LISTEN]; /* from the command line */
	size_t n_listen;
	const char *state_dir;
	const char *runtime_dir;
	bool reseed; /* forget the stored specs, seed again from the config */
} ManagerOptions;

/* Opaque: only manager.c touches its fields; everyone else uses the verbs
 * and accessors below. */
typedef struct Manager Manager;

int manager_new(const ManagerOptions *o, Manager **ret);
Manager *manager_free(Manager *m);
/* Listeners, backends, cells; READY=1 at the end. */
int manager_startup(Manager *m);
int manager_run(Manager *m);

sd_event *manager_event(Manager *m);
const Config *manager_config(const Manager *m);
const char *manager_state_dir(const Manager *m);
const char *manager_runtime_dir(const Manager *m);
Http *manager_http(Manager *m);
Operations *manager_operations(Manager *m);
Events *manager_events(Manager *m);
Api *manager_api(Manager *m);
/* When wardend started (CLOCK_MONOTONIC). */
uint64_t manager_started_mono_ns(const Manager *m);
const LoopLag *manager_loop_lag(const Manager *m);
/* Have the wheel (cell.h, cell_wheel_run) run by `at_ns` (CLOCK_MONOTONIC). */
void manager_wheel_arm(Manager *m, uint64_t at_ns);
/* Not disabled by POST /hypervisor/disable. */
bool manager_hypervisor_enabled(const Manager *m);
/* The backend of this kind is present and its last enable did not fail. */
bool manager_backend_available(Manager *m, const char *kind);
/* Why a container cell cannot start (its OCI runtime is missing), or NULL
 * (also for every other kind of cell). */
const char *manager_container_unavailable(Manager *m, const CellSpec *spec);
/* backend_stats() of that kind's backend; -ENODEV without one. */
int manager_backend_stats(Manager *m, const char *kind, BackendStat *ret, size_t max);
/* The first backend with a console of its own (jailhouse's): -ENODEV if none. */
ssize_t manager_hypervisor_console(Manager *m, char *buf, size_t n);
/* The id of a new cell event (they increase daemon-wide). */
uint64_t manager_next_event_id(Manager *m);

/* The cells (sorted by name at start-up, new ones appended); valid until
 * a cell is added or removed. */
Cell *const *manager_cells(Manager *m, size_t *ret_n);
size_t manager_n_cells(const Manager *m);
Cell *manager_find_cell(Manager *m, const char *name);
Backend *manager_backend_for(Manager *m, const char *kind);
BackendQueue *manager_queue(Manager *m);
/* Cell networks (network.h); NULL if netlink could not be opened. */
typedef struct Network Network;
Network *manager_network(Manager *m);
/* Restart cells of this backend in place (reset) rather than anew. */
bool manager_restarts_in_place(Manager *m, const char *kind);
/* STATUS= line for systemd, refreshed on every cell state change. */
void manager_update_status(Manager *m);
/* Restart every cell and the backends (policy on_exhausted). */
int manager_restart_hypervisor(Manager *m, const char *reason);
/* Stop every cell and disable the backends / enable the backends the
 * cells use and start the autostart cells the operator has not stopped.
 * Both return once the work is queued; the cells' states tell the rest.
 * Disabled is kept across daemon restarts. */
int manager_disable_hypervisor(Manager *m);
int manager_enable_hypervisor(Manager *m);

/* Every cell event: the event stream and the operations hear of it. */
void manager_cell_event(Manager *m, Cell *c, const CellEvent *e);
/* A new cell from an accepted spec (consumed). */
int manager_add_cell(Manager *m, CellSpec *spec, uint64_t revision, Cell **ret);
/* Stops the cell and forgets it (the store is the caller's). */
void manager_remove_cell(Manager *m, Cell *c);
/* The specs a new or replaced spec must live beside: every cell's latest
 * spec but the one named `except`. Returns the count. */
size_t manager_other_specs(Manager *m, const char *except, CellSpec **out);

static inline void manager_freep(Manager **m) {
	manager_free(*m);
}
