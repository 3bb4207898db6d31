/* SPDX-License-Identifier: MIT */
/*
 * libwarden-app: the comm ABI (api/warden/comm.h) for a process in a
 * warden container cell. The backend bind-mounts the cell's comm region,
 * a shared file, at WARDEN_APP_COMM_PATH inside the container and names it
 * in the environment variable WARDEN_COMM; the beat period and whether the
 * cell obeys fault injection come as WARDEN_PERIOD_MS and
 * WARDEN_ALLOW_INJECT. A process registers once, then beats at least every
 * period; warden declares it stuck when the beats stop, panicked when it
 * calls warden_app_panic(), exited when it halts (or exits with status 0)
 * and crashed when the container's init dies otherwise.
 *
 * Functions return 0 or a negative errno. Not thread-safe: one thread
 * beats.
 */
#ifndef WARDEN_APP_H
#define WARDEN_APP_H

#include <stdbool.h>
#include <stdint.h>

#include "warden/comm.h"

#define WARDEN_APP_COMM_PATH "/run/warden/comm"
#define WARDEN_APP_ENV_COMM "WARDEN_COMM"
#define WARDEN_APP_ENV_PERIOD "WARDEN_PERIOD_MS"
#define WARDEN_APP_ENV_INJECT "WARDEN_ALLOW_INJECT"

struct warden_app {
	volatile struct warden_comm *comm;
	uint32_t period_ms;
	uint64_t seq;
	uint64_t ack_seq;
	uint64_t start_ns;
	bool inject;
};

/* What warden_app_beat() found in the mailbox. */
enum warden_app_request {
	WARDEN_APP_NONE = 0,
	WARDEN_APP_SHUTDOWN, /* stop work, then warden_app_halt() */
	WARDEN_APP_INJECT,   /* act out the fault (enum warden_fault) in *arg */
};

/* Map the comm file (path NULL: $WARDEN_COMM, else WARDEN_APP_COMM_PATH)
 * and announce the process: magic, ABI, period (0: $WARDEN_PERIOD_MS, else
 * 10 ms), state RUNNING. */
int warden_app_register(struct warden_app *a, const char *path, uint32_t period_ms);
/* One beat; then the mailbox: a ping is answered here, a shutdown or an
 * injection (only where the cell allows it) is returned. */
enum warden_app_request warden_app_beat(struct warden_app *a, uint32_t *arg);
/* An application of the process missed its deadline: state DEGRADED,
 * naming it (up to 31 bytes). warden_app_recover() goes back to RUNNING. */
void warden_app_degrade(struct warden_app *a, const char *app);
void warden_app_recover(struct warden_app *a);
/* State PANICKED with a reason (up to 255 bytes); the caller stops. */
void warden_app_panic(struct warden_app *a, const char *reason, uint32_t code);
/* State HALTED: the work is done, on purpose. */
void warden_app_halt(struct warden_app *a, const char *reason);
/* Unmap. */
void warden_app_close(struct warden_app *a);

#endif /* WARDEN_APP_H */
