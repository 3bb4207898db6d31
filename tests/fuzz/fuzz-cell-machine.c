/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: daemon/cell-machine.c, driven by what a hostile inmate can
 * write. The input picks a health and recovery spec (within the ranges
 * config.c accepts), then a sequence of steps, each an input kind and a
 * clock advance; a sample also patches bytes of a 4 KiB comm region
 * (cell_observe_comm() reads it as cell.c does) and carries the backend's
 * view (status errors, state, reason bytes, CPU times). After every step:
 * the machine never aborts, its state and request are valid, operator
 * inputs are answered with 0, -EALREADY or -EBUSY, every text it hands
 * out (actions, reasons) is printable ASCII, and deadlines are not in the
 * past.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cell-machine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct Input {
	const uint8_t *p;
	size_t n;
} Input;

static uint8_t u8(Input *in) {
	if (in->n == 0)
		return 0;
	in->n--;
	return *in->p++;
}

static uint16_t u16(Input *in) {
	return (uint16_t)(u8(in) | u8(in) << 8);
}

static uint32_t u32(Input *in) {
	return (uint32_t)u16(in) | (uint32_t)u16(in) << 16;
}

static uint64_t u64(Input *in) {
	return (uint64_t)u32(in) | (uint64_t)u32(in) << 32;
}

static uint32_t range(Input *in, uint32_t lo, uint32_t hi) {
	return lo + u32(in) % (hi - lo + 1);
}

static void check_text(const char *s, size_t size, const char *what) {
	const char *end = memchr(s, 0, size);
	if (!end) {
		fprintf(stderr, "%s is not NUL-terminated\n", what);
		abort();
	}
	for (const char *c = s; c < end; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e) {
			fprintf(stderr, "%s holds byte 0x%02x: \"%s\"\n", what, (unsigned char)*c, s);
			abort();
		}
}

static void check(const CellMachine *m, const CellActions *out, int r, CellInputKind kind, uint64_t now) {
	if (m->state < 0 || m->state >= _CELL_STATE_MAX || m->previous < 0 || m->previous >= _CELL_STATE_MAX ||
	    m->op < 0 || m->op >= _CELL_OP_MAX || m->next >= _CELL_NEXT_MAX || !cell_state_to_string(m->state))
		abort();
	if (m->has_failure && (m->last_failure_kind < 0 || m->last_failure_kind >= _FAILURE_KIND_MAX))
		abort();
	if (r != 0 && !(r == -EALREADY || r == -EBUSY) )
		abort();
	if (r != 0 && kind != CELL_INPUT_START && kind != CELL_INPUT_SHUTDOWN)
		abort();
	check_text(m->state_reason, sizeof m->state_reason, "state_reason");
	check_text(m->next_reason, sizeof m->next_reason, "next_reason");
	check_text(m->last_failure_reason, sizeof m->last_failure_reason, "last_failure_reason");
	if (out->n > CELL_ACTIONS_MAX)
		abort();
	for (size_t i = 0; i < out->n; i++) {
		const CellAction *a = &out->a[i];
		if (!cell_action_to_string(a->kind))
			abort();
		check_text(a->text, sizeof a->text, cell_action_to_string(a->kind));
		if (a->kind == CELL_DO_STATE && (!cell_state_to_string(a->state) || !cell_state_to_string(a->previous)))
			abort();
		if (a->kind == CELL_DO_EMIT && !a->type)
			abort();
		if (a->kind == CELL_DO_SAMPLE_AT && a->at_ns && a->at_ns < now) {
			fprintf(stderr, "a sample due %llu ns in the past\n", (unsigned long long)(now - a->at_ns));
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	static struct warden_comm comm;
	Input in = { data, size };
	HealthSpec health;
	RecoverySpec rec = { 0 };
	CellContext ctx;
	CellMachine m;
	uint64_t now = 1000000000ULL, realtime = 1700000000000000000ULL;
	uint8_t flags;

	health.period_ms = range(&in, 1, 1000);
	health.timeout_ms = range(&in, 1, 10000);
	health.boot_timeout_ms = range(&in, 1, 10000);
	for (int k = 0; k < _FAILURE_KIND_MAX; k++)
		rec.on[k] = (RecoveryAction)(u8(&in) % _ACTION_MAX);
	rec.max_restarts = range(&in, 0, 1024);
	rec.window_s = range(&in, 1, 86400 * 365);
	rec.backoff_initial_ms = range(&in, 0, 3600000);
	rec.backoff_max_ms = rec.backoff_initial_ms + range(&in, 0, 86400000 - rec.backoff_initial_ms);
	rec.backoff_factor = 1.0 + (double)(u8(&in) % 100);
	rec.reset_after_s = range(&in, 0, 86400 * 365);
	rec.on_exhausted = (ExhaustedAction)(u8(&in) % _EXHAUSTED_MAX);
	rec.shutdown_timeout_ms = range(&in, 1, 3600000);
	flags = u8(&in);
	ctx = (CellContext){ .name = "fuzz", .health = &health, .recovery = &rec, .reuse_backend = flags & 1 };

	memset(&comm, 0, sizeof comm);
	cell_machine_init(&m);
	for (int steps = 0; in.n > 0 && steps < 256; steps++) {
		static CellActions out;
		CellObservation obs = { 0 };
		CellInput ci = { 0 };
		uint8_t kind = u8(&in), how = u8(&in);
		int r;

		/* time moves in steps of up to 65 ms, or up to 65 s */
		now += (uint64_t)u16(&in) * (how & 1 ? 1000000ULL : 1000ULL);
		realtime += 1000;
		ci.kind = (CellInputKind)(kind % _CELL_INPUT_MAX);
		ci.now_ns = now;
		ci.realtime_ns = realtime;
		switch (ci.kind) {
		case CELL_INPUT_STOP:
			ci.by_operator = how & 2;
			ci.reason = how & 4 ? "stop requested over the API" : NULL;
			break;
		case CELL_INPUT_RESTART:
			ci.reason = how & 4 ? "restart requested over the API" : NULL;
			break;
		case CELL_INPUT_DONE:
			ci.result = how & 2 ? -(int)(u8(&in) % 134) : 0;
			ci.reused = how & 4;
			break;
		case CELL_INPUT_SAMPLE:
		case CELL_INPUT_ADOPTED: {
			uint8_t b = u8(&in);
			size_t off, len, rlen;

			obs.status_error = b & 1 ? (b & 2 ? -EAGAIN : -(int)(u8(&in) % 134)) : 0;
			obs.backend_state = (BackendCellState)(u8(&in) % (BACKEND_CELL_GONE + 1));
			rlen = u8(&in) % (sizeof obs.backend_reason + 1);
			for (size_t i = 0; i < rlen; i++)
				obs.backend_reason[i] = (char)u8(&in);
			obs.backend_state_ns = b & 4 ? now - (now > 0 ? u16(&in) : 0) : u64(&in);
			obs.sample_late_ns = b & 8 ? (uint64_t)u16(&in) * 1000ULL : 0;
			/* the inmate's write: a well-formed header and a new beat
			 * often, raw bytes anywhere in its half always */
			if (b & 16) {
				comm.magic = WARDEN_COMM_MAGIC;
				comm.abi = WARDEN_COMM_ABI;
				comm.size = WARDEN_COMM_SIZE;
				comm.state = 1 + u8(&in) % (WARDEN_INMATE_STATE_MAX - 1);
			}
			if (b & 32) {
				comm.seq++;
				comm.beat_mono_ns = how & 8 ? now - (u16(&in) * 1000ULL) : u64(&in);
			}
			off = u16(&in) % WARDEN_COMM_MAILBOX_OFFSET;
			len = u8(&in);
			if (len > WARDEN_COMM_MAILBOX_OFFSET - off)
				len = WARDEN_COMM_MAILBOX_OFFSET - off;
			for (size_t i = 0; i < len && in.n > 0; i++)
				((uint8_t *)&comm)[off + i] = u8(&in);
			if (obs.status_error == 0 && obs.backend_state != BACKEND_CELL_GONE)
				cell_observe_comm(&comm, &obs);
			if (cell_machine_wants_cpu_times(&m, &health, now) && (b & 64)) {
				obs.cpu_known = true;
				obs.cpu_run_ns = u64(&in);
				obs.cpu_runnable = u8(&in) & 3;
				obs.cpu_waiting = obs.cpu_runnable & u8(&in);
			}
			ci.obs = ci.kind == CELL_INPUT_ADOPTED && !(b & 128) ? NULL : &obs;
			break;
		}
		default:
			break;
		}
		out.n = 0;
		r = cell_step(&m, &ctx, &ci, &out);
		check(&m, &out, r, ci.kind, now);
	}
	return 0;
}
