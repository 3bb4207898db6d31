/* SPDX-License-Identifier: MIT */
/*
 * What the backend tests (test-kvm-backend.c, test-qemu-backend.c) share:
 * the clock, the beat counter, and waits on a cell's event fd.
 */
#pragma once

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "hypervisor/backend.h"

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t seq_of(BackendCell *c)
{
	return __atomic_load_n(&backend_cell_comm(c)->seq, __ATOMIC_ACQUIRE);
}

/* Wait on the event fd (doorbells, state changes) with a short period so
 * the beat counter is checked often; the caller's deadline bounds the
 * whole wait. */
static inline void wait_event_or(BackendCell *c, int ms)
{
	struct pollfd p = { .fd = backend_cell_event_fd(c), .events = POLLIN };

	if (poll(&p, 1, ms) > 0)
		(void)backend_cell_event_ack(c);
}

/* The counter has not moved for `quiet_ms`; false if it never settles. */
static inline bool wait_seq_stalls(BackendCell *c, int quiet_ms, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
	uint64_t last = seq_of(c), since = now_ns();

	while (now_ns() < deadline) {
		wait_event_or(c, 5);
		uint64_t s = seq_of(c);
		if (s != last) {
			last = s;
			since = now_ns();
		} else if (now_ns() - since >= (uint64_t)quiet_ms * 1000000ull) {
			return true;
		}
	}
	return false;
}
