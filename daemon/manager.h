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

typedef struct Manager {
	sd_event *event;
	Config *config;
	char *state_dir;
	char *runtime_dir;
	Backend *kvm;
	Backend *qemu; /* NULL when QEMU is not installed */
	bool kvm_enabled, qemu_enabled; /* enabled, or an enable is queued */
	int kvm_error, qemu_error;      /* of the last enable: 0 or -errno */
	BackendQueue *queue; /* runs the blocking backend calls off the loop */
	sd_event_source *queue_source;
	Http *http;
	Tokens *tokens;
	Operations *operations;
	Events *events;
	Cell *cells[CONFIG_MAX_CELLS];
	size_t n_cells;
	bool reseed;
	bool hypervisor_enabled;
	sd_event_source *prune_timer; /* expired Idempotency-Key records */
	/* Idempotency-Keys of requests being received or handled, so that a
	 * retry racing its original is refused rather than run twice. */
	struct {
		const void *request;
		char key[129];
	} inflight[64];

	uint64_t next_event_id;
	uint64_t started_mono_ns;
	uint64_t watchdog_usec;
	sd_event_source *watchdog_timer;
	sd_event_source *lag_timer;
	uint64_t lag_due_ns;
	LoopLag lag;
	bool ready;        /* READY=1 sent: the autostarted cells settled */
	bool started;      /* manager_startup() is done */
} Manager;

int manager_new(const ManagerOptions *o, Manager **ret);
Manager *manager_free(Manager *m);
/* Listeners, backends, cells; READY=1 at the end. */
int manager_startup(Manager *m);
int manager_run(Manager *m);

Cell *manager_find_cell(Manager *m, const char *name);
Backend *manager_backend_for(Manager *m, const char *kind);
BackendQueue *manager_queue(Manager *m);
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
