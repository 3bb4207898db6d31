/* SPDX-License-Identifier: MIT */
/*
 * The recovery policy engine: given a failure and the time, decide what to
 * do. Pure logic with the clock passed in, so that tests can walk it through
 * budget windows and backoff sequences without waiting.
 *
 * Vocabulary (see README, "Failure handling"):
 *   action per failure kind    Xen's on_crash/on_watchdog, ARINC 653 HM tables
 *   max_restarts in window_s   systemd StartLimitBurst/StartLimitIntervalSec
 *   backoff initial/max/factor systemd RestartSec/RestartMaxDelaySec/RestartSteps
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

#define POLICY_HISTORY 1024 /* == the largest max_restarts accepted */

typedef struct Policy {
	/* CLOCK_MONOTONIC ns of recent restarts, oldest first (ring). */
	uint64_t restarts_ns[POLICY_HISTORY];
	unsigned n_restarts;
	unsigned head;
	/* Restarts since the cell last ran healthily for reset_after_s. */
	unsigned consecutive;
} Policy;

typedef struct PolicyDecision {
	RecoveryAction action; /* what to do with the failed cell */
	bool exhausted;        /* the budget is spent: apply on_exhausted */
	uint64_t delay_ns;     /* for ACTION_RESTART: backoff before it */
} PolicyDecision;

void policy_init(Policy *p);
/* Decide on a failure of `kind` at `now`; a restart decision is counted
 * against the budget at once. */
PolicyDecision policy_on_failure(Policy *p, const RecoverySpec *spec, FailureKind kind, uint64_t now_ns);
/* The cell has been healthy since `since_ns`; clears the backoff once that
 * stretch reaches reset_after_s. */
void policy_on_healthy(Policy *p, const RecoverySpec *spec, uint64_t since_ns, uint64_t now_ns);
/* Remembers a restart at t (the ring forgets the oldest when full). */
void policy_record_restart(Policy *p, uint64_t t);
/* The i-th remembered restart, oldest first (i < n_restarts). */
uint64_t policy_restart_ns(const Policy *p, unsigned i);
/* Restarts counted in the budget window ending at now. */
unsigned policy_restarts_in_window(const Policy *p, const RecoverySpec *spec, uint64_t now_ns);
/* The backoff the n-th consecutive restart waits (n >= 1). */
uint64_t policy_backoff_ns(const RecoverySpec *spec, unsigned n);
