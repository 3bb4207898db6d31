/* SPDX-License-Identifier: MIT */
#include "policy.h"

#include <string.h>

#include "macro.h"

void policy_init(Policy *p) {
	memset(p, 0, sizeof *p);
}

void policy_record_restart(Policy *p, uint64_t t) {
	p->restarts_ns[p->head] = t;
	p->head = (p->head + 1) % POLICY_HISTORY;
	if (p->n_restarts < POLICY_HISTORY)
		p->n_restarts++;
}

uint64_t policy_restart_ns(const Policy *p, unsigned i) {
	return p->restarts_ns[(p->head + POLICY_HISTORY - p->n_restarts + i) % POLICY_HISTORY];
}

unsigned policy_restarts_in_window(const Policy *p, const RecoverySpec *spec, uint64_t now_ns) {
	uint64_t window = (uint64_t)spec->window_s * NSEC_PER_SEC;
	unsigned n = 0;

	/* newest first: stop at the first one outside the window */
	for (unsigned i = p->n_restarts; i > 0; i--) {
		uint64_t t = policy_restart_ns(p, i - 1);
		/* A restart exactly window_s ago has left the window. */
		if (now_ns - t >= window)
			break;
		n++;
	}
	return n;
}

uint64_t policy_backoff_ns(const RecoverySpec *spec, unsigned n) {
	double ms = spec->backoff_initial_ms;

	for (unsigned i = 1; i < n && ms < spec->backoff_max_ms; i++)
		ms *= spec->backoff_factor;
	if (ms > spec->backoff_max_ms)
		ms = spec->backoff_max_ms;
	return (uint64_t)(ms * (double)NSEC_PER_MSEC);
}

PolicyDecision policy_on_failure(Policy *p, const RecoverySpec *spec, FailureKind kind, uint64_t now_ns) {
	PolicyDecision d = { .action = spec->on[kind] };

	if (d.action != ACTION_RESTART)
		return d;
	/* max_restarts is capped at POLICY_HISTORY by the config parser, so
	 * the ring always remembers every restart inside the window. */
	if (policy_restarts_in_window(p, spec, now_ns) >= spec->max_restarts) {
		d.exhausted = true;
		d.action = spec->on_exhausted == EXHAUSTED_STOP ? ACTION_STOP : ACTION_RESTART;
		return d;
	}
	p->consecutive++;
	d.delay_ns = policy_backoff_ns(spec, p->consecutive);
	policy_record_restart(p, now_ns);
	return d;
}

void policy_on_healthy(Policy *p, const RecoverySpec *spec, uint64_t since_ns, uint64_t now_ns) {
	if (now_ns >= since_ns && now_ns - since_ns >= (uint64_t)spec->reset_after_s * NSEC_PER_SEC)
		p->consecutive = 0;
}
