/* SPDX-License-Identifier: MIT */
#include "cell-machine.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "log.h"

#define NS_PER_MS 1000000ULL
#define NS_PER_US 1000ULL

static const char *const cell_state_table[_CELL_STATE_MAX] = {
	[CELL_STOPPED] = "stopped",   [CELL_STARTING] = "starting", [CELL_RUNNING] = "running",
	[CELL_DEGRADED] = "degraded", [CELL_FAILED] = "failed",     [CELL_STOPPING] = "stopping",
};

const char *cell_state_to_string(CellState s) {
	return s >= 0 && s < _CELL_STATE_MAX ? cell_state_table[s] : NULL;
}

CellState cell_state_from_string(const char *s) {
	for (int i = 0; s && i < _CELL_STATE_MAX; i++)
		if (strcmp(cell_state_table[i], s) == 0)
			return i;
	return _CELL_STATE_INVALID;
}

static const char *const inmate_state_table[WARDEN_INMATE_STATE_MAX] = {
	[WARDEN_INMATE_NONE] = "none",         [WARDEN_INMATE_BOOTING] = "booting",
	[WARDEN_INMATE_RUNNING] = "running",   [WARDEN_INMATE_DEGRADED] = "degraded",
	[WARDEN_INMATE_STOPPING] = "stopping", [WARDEN_INMATE_PANICKED] = "panicked",
	[WARDEN_INMATE_HALTED] = "halted",
};

const char *inmate_state_to_string(uint32_t s) {
	return s < WARDEN_INMATE_STATE_MAX ? inmate_state_table[s] : "invalid";
}

static const char *const op_table[_CELL_OP_MAX] = {
	[CELL_OP_NONE] = "none",
	[CELL_OP_BOOT] = "boot",
	[CELL_OP_FREEZE] = "freeze",
	[CELL_OP_DESTROY] = "destroy",
};

const char *cell_op_to_string(CellOp o) {
	return o >= 0 && o < _CELL_OP_MAX ? op_table[o] : NULL;
}

static const char *const input_table[_CELL_INPUT_MAX] = {
	[CELL_INPUT_START] = "start",       [CELL_INPUT_STOP] = "stop",       [CELL_INPUT_RESTART] = "restart",
	[CELL_INPUT_SHUTDOWN] = "shutdown", [CELL_INPUT_SAMPLE] = "sample",   [CELL_INPUT_EXITED] = "exited",
	[CELL_INPUT_TIMER] = "timer",       [CELL_INPUT_DONE] = "done",       [CELL_INPUT_ADOPTED] = "adopted",
	[CELL_INPUT_ORPHANED] = "orphaned",
};

const char *cell_input_to_string(CellInputKind k) {
	return k >= 0 && k < _CELL_INPUT_MAX ? input_table[k] : NULL;
}

static const char *const action_table[_CELL_DO_MAX] = {
	[CELL_DO_STATE] = "state",         [CELL_DO_EMIT] = "emit",           [CELL_DO_LOG] = "log",
	[CELL_DO_BOOT] = "boot",           [CELL_DO_FREEZE] = "freeze",       [CELL_DO_DESTROY] = "destroy",
	[CELL_DO_RELEASE] = "release",     [CELL_DO_MAIL] = "mail",           [CELL_DO_SAMPLE_AT] = "sample-at",
	[CELL_DO_TIMER_AT] = "timer-at",   [CELL_DO_SAVE] = "save",
	[CELL_DO_HYPERVISOR_RESTART] = "hypervisor-restart",
};

const char *cell_action_to_string(CellActionKind k) {
	return k >= 0 && k < _CELL_DO_MAX ? action_table[k] : NULL;
}

const double hist_bounds[HIST_BUCKETS] = { 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	                                   0.025,   0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   10.0 };

void histogram_observe(Histogram *h, double seconds) {
	for (int i = 0; i < HIST_BUCKETS; i++)
		if (seconds <= hist_bounds[i]) {
			h->bucket[i]++;
			break;
		}
	h->count++;
	h->sum += seconds;
}

void cell_sanitize_text(char *dst, size_t dst_size, const char *src, size_t n) {
	size_t i;

	for (i = 0; i + 1 < dst_size && i < n && src[i]; i++)
		dst[i] = (unsigned char)src[i] < 0x20 || (unsigned char)src[i] > 0x7e ? '?' : src[i];
	dst[i] = 0;
}

void cell_machine_init(CellMachine *m) {
	*m = (CellMachine){
		.state = CELL_STOPPED,
		.previous = CELL_STOPPED,
		.boot_ms = -1,
		.detection_ms = -1,
		.recovery_ms = -1,
	};
	policy_init(&m->policy);
}

bool cell_machine_wants_cpu_times(const CellMachine *m, const HealthSpec *h, uint64_t now) {
	uint64_t quiet = now - m->hb_changed_ns, timeout = (uint64_t)h->timeout_ms * NS_PER_MS;

	/* Once a stall is past half its timeout (a healthy cell beats every
	 * period, far sooner): a snapshot then, and one at the deadline,
	 * none between (reading procfs is most of a sample's cost) and none
	 * in a grace, whose verdict does not look at them. */
	if ((m->state != CELL_RUNNING && m->state != CELL_DEGRADED) || m->op != CELL_OP_NONE || m->grace_at_ns)
		return false;
	return quiet > timeout / 2 && (!m->pre_from_ns || quiet > timeout);
}

bool cell_machine_up(const CellMachine *m) {
	return m->state == CELL_RUNNING || m->state == CELL_DEGRADED;
}

/* ---- one step's context -------------------------------------------- */

typedef struct Step {
	CellMachine *m;
	const CellContext *ctx;
	const CellInput *in;
	CellActions *out;
	uint64_t now;
} Step;

static CellAction *act(Step *s, CellActionKind kind) {
	CellAction *a;

	/* A step emits a bounded number of actions by construction. */
	if (s->out->n >= CELL_ACTIONS_MAX)
		abort();
	a = &s->out->a[s->out->n++];
	*a = (CellAction){ .kind = kind };
	return a;
}

static void act_at(Step *s, CellActionKind kind, uint64_t at) {
	act(s, kind)->at_ns = at;
}

static void set_state(Step *s, CellState st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_state(Step *s, CellState st, const char *fmt, ...) {
	CellMachine *m = s->m;
	CellAction *a;
	va_list ap;

	if (m->state == st)
		return;
	m->previous = m->state;
	m->state = st;
	if (st == CELL_RUNNING)
		m->healthy_since_ns = s->now;
	a = act(s, CELL_DO_STATE);
	a->state = st;
	a->previous = m->previous;
	va_start(ap, fmt);
	vsnprintf(a->text, sizeof a->text, fmt, ap);
	va_end(ap);
	snprintf(m->state_reason, sizeof m->state_reason, "%s", a->text);
}

static void emit(Step *s, const char *type, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void emit(Step *s, const char *type, const char *fmt, ...) {
	CellAction *a = act(s, CELL_DO_EMIT);
	va_list ap;

	a->type = type;
	va_start(ap, fmt);
	vsnprintf(a->text, sizeof a->text, fmt, ap);
	va_end(ap);
}

static void say(Step *s, int level, const char *msgid, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void say(Step *s, int level, const char *msgid, const char *fmt, ...) {
	CellAction *a = act(s, CELL_DO_LOG);
	va_list ap;

	a->level = level;
	a->msgid = msgid;
	va_start(ap, fmt);
	vsnprintf(a->text, sizeof a->text, fmt, ap);
	va_end(ap);
}

static uint64_t ms_ns(uint32_t ms) {
	return (uint64_t)ms * NS_PER_MS;
}

/* ---- requests ------------------------------------------------------- */

static void hb_reset(CellMachine *m, uint64_t now) {
	m->grace_at_ns = 0;
	m->pre_from_ns = 0;
	m->starving = false;
	m->hb_beat_ns = now;
	m->hb_valid = false;
	m->hb_seq = 0;
	m->hb_inmate_state = WARDEN_INMATE_NONE;
	m->hb_changed_ns = now;
	m->hb_uptime_ns = 0;
}

/* The handle goes with the request; the completion brings one back. */
static void request_boot(Step *s, bool restart) {
	CellMachine *m = s->m;

	act(s, CELL_DO_BOOT)->reuse = m->has_backend && s->ctx->reuse_backend;
	act_at(s, CELL_DO_SAMPLE_AT, 0);
	act_at(s, CELL_DO_TIMER_AT, 0);
	m->op = CELL_OP_BOOT;
	m->has_backend = false;
	m->boot_is_restart = restart;
	m->shutdown_requested = false;
	m->shutdown_due_ns = 0;
	m->start_issued_ns = s->now;
	hb_reset(m, s->now);
}

static void request_destroy(Step *s) {
	CellMachine *m = s->m;

	act_at(s, CELL_DO_SAMPLE_AT, 0);
	act(s, CELL_DO_DESTROY);
	m->op = CELL_OP_DESTROY;
	m->has_backend = false;
}

static void request_freeze(Step *s) {
	act_at(s, CELL_DO_SAMPLE_AT, 0);
	act(s, CELL_DO_FREEZE);
	s->m->op = CELL_OP_FREEZE;
	s->m->has_backend = false;
}

/* Tear down now, or once the request in flight is done; stopped after. */
static void stop_cell(Step *s, const char *reason) {
	CellMachine *m = s->m;

	act_at(s, CELL_DO_SAMPLE_AT, 0);
	act_at(s, CELL_DO_TIMER_AT, 0);
	m->restart_due_ns = 0;
	m->failed_ns = 0;
	m->shutdown_requested = false;
	m->shutdown_due_ns = 0;
	snprintf(m->next_reason, sizeof m->next_reason, "%s", reason);
	switch (m->op) {
	case CELL_OP_NONE:
		m->next = CELL_NEXT_NONE;
		if (m->has_backend) {
			request_destroy(s);
			set_state(s, CELL_STOPPING, "%s", reason);
		} else
			set_state(s, CELL_STOPPED, "%s", reason);
		break;
	case CELL_OP_DESTROY:
		m->next = CELL_NEXT_NONE;
		set_state(s, CELL_STOPPING, "%s", reason);
		break;
	default:
		m->next = CELL_NEXT_DESTROY;
		set_state(s, CELL_STOPPING, "%s", reason);
		break;
	}
}

/* ---- failures ------------------------------------------------------- */

static void restart_now(Step *s) {
	CellMachine *m = s->m;

	m->restart_due_ns = 0;
	m->restarts++;
	request_boot(s, true);
	set_state(s, CELL_STARTING, "restart %u after %s", m->restarts, failure_kind_to_string(m->last_failure_kind));
	act(s, CELL_DO_SAVE);
}

/* The policy's answer to a failure, carried out. */
static void fail(Step *s, FailureKind kind, const char *reason, uint64_t since_ns) {
	CellMachine *m = s->m;
	const RecoverySpec *rs = s->ctx->recovery;
	char why[CELL_REASON_MAX + 64], budget[160];
	PolicyDecision d;
	double det;

	act_at(s, CELL_DO_SAMPLE_AT, 0);
	m->failures[kind]++;
	m->has_failure = true;
	m->last_failure_kind = kind;
	snprintf(m->last_failure_reason, sizeof m->last_failure_reason, "%s", reason);
	m->last_failure_realtime_ns = s->in->realtime_ns;
	det = since_ns && since_ns <= s->now ? (double)(s->now - since_ns) / 1e6 : 0.0;
	m->detection_ms = det;
	histogram_observe(&m->h_detection[kind], det / 1e3);
	m->failed_ns = s->now;

	say(s, LOG_ERR, MSGID_CELL_FAILED, "Cell \"%s\" failed (%s) after %.3f ms: %s", s->ctx->name,
	    failure_kind_to_string(kind), det, reason);
	snprintf(why, sizeof why, "%s: %s", failure_kind_to_string(kind), reason);
	emit(s, "failure", "%s", why);

	d = policy_on_failure(&m->policy, rs, kind, s->now);
	if (d.exhausted) {
		m->budget_exhausted++;
		snprintf(budget, sizeof budget, "restart budget exhausted (%u restarts in %u s), %s", rs->max_restarts,
		         rs->window_s, exhausted_action_to_string(rs->on_exhausted));
		say(s, LOG_ERR, MSGID_CELL_FAILED, "Cell \"%s\": %s", s->ctx->name, budget);
		snprintf(m->last_failure_reason, sizeof m->last_failure_reason, "%s; %s", reason, budget);
		if (rs->on_exhausted == EXHAUSTED_HYPERVISOR_RESTART) {
			set_state(s, CELL_FAILED, "%s", budget);
			act(s, CELL_DO_SAVE);
			snprintf(act(s, CELL_DO_HYPERVISOR_RESTART)->text, sizeof(s->out->a[0].text), "%s", budget);
			return;
		}
		if (m->has_backend && m->op == CELL_OP_NONE)
			request_destroy(s);
		m->failed_ns = 0;
		set_state(s, CELL_FAILED, "%s", budget);
		act(s, CELL_DO_SAVE);
		return;
	}

	switch (d.action) {
	case ACTION_RESTART:
		set_state(s, CELL_FAILED, "%s", why);
		m->restart_due_ns = s->now + d.delay_ns;
		if (d.delay_ns == 0) {
			restart_now(s);
			return;
		}
		say(s, LOG_INFO, MSGID_CELL_HEALTH, "Cell \"%s\" restarts in %.1f ms (backoff)", s->ctx->name,
		    (double)d.delay_ns / 1e6);
		act_at(s, CELL_DO_TIMER_AT, m->restart_due_ns);
		break;
	case ACTION_STOP:
		if (m->has_backend && m->op == CELL_OP_NONE)
			request_destroy(s);
		m->failed_ns = 0;
		set_state(s, CELL_FAILED, "%s", why);
		break;
	case ACTION_PRESERVE:
		/* Keep memory, comm region and console for inspection. */
		if (m->has_backend && m->op == CELL_OP_NONE)
			request_freeze(s);
		m->failed_ns = 0;
		set_state(s, CELL_FAILED, "%s", why);
		break;
	case ACTION_NONE:
	default:
		/* Report only; keep watching in case it comes back. */
		set_state(s, CELL_FAILED, "%s", why);
		if (m->has_backend)
			act_at(s, CELL_DO_SAMPLE_AT, s->now + ms_ns(s->ctx->health->period_ms));
		break;
	}
	act(s, CELL_DO_SAVE);
}

/* ---- operator and backend inputs ------------------------------------ */

static int on_start(Step *s) {
	CellMachine *m = s->m;

	if (m->state == CELL_RUNNING || m->state == CELL_DEGRADED || m->state == CELL_STARTING)
		return -EALREADY;
	if (m->op != CELL_OP_NONE) {
		/* A stop or a freeze is under way: start once it is done. */
		m->next = CELL_NEXT_BOOT;
		snprintf(m->next_reason, sizeof m->next_reason, "start requested");
		return 0;
	}
	if (m->state == CELL_STOPPING)
		return -EBUSY; /* a graceful shutdown has its own deadline */
	m->restart_due_ns = 0;
	m->failed_ns = 0;
	request_boot(s, false);
	set_state(s, CELL_STARTING, "start requested");
	return 0;
}

static int on_restart(Step *s) {
	CellMachine *m = s->m;
	const char *reason = s->in->reason ? s->in->reason : "restart requested";

	/* Recorded even when the state itself does not change. */
	if (m->op != CELL_OP_NONE) {
		m->next = CELL_NEXT_BOOT;
		snprintf(m->next_reason, sizeof m->next_reason, "%s", reason);
		emit(s, "action", "%s", reason);
		return 0;
	}
	m->restart_due_ns = 0;
	request_boot(s, false);
	emit(s, "action", "%s", reason);
	set_state(s, CELL_STARTING, "%s", reason);
	return 0;
}

static int on_shutdown(Step *s) {
	CellMachine *m = s->m;

	if (m->state == CELL_STOPPED)
		return -EALREADY;
	if (m->state == CELL_STOPPING)
		return 0;
	if (m->op != CELL_OP_NONE)
		return -EBUSY;
	if (!m->has_backend)
		return -EALREADY;
	act(s, CELL_DO_MAIL)->mail = WARDEN_CMD_SHUTDOWN;
	m->shutdown_requested = true;
	m->restart_due_ns = 0;
	m->shutdown_due_ns = s->now + ms_ns(s->ctx->recovery->shutdown_timeout_ms);
	act_at(s, CELL_DO_TIMER_AT, m->shutdown_due_ns);
	set_state(s, CELL_STOPPING, "shutdown requested through the mailbox");
	return 0;
}

static void on_timer(Step *s) {
	CellMachine *m = s->m;

	if (m->op != CELL_OP_NONE)
		return;
	if (m->shutdown_requested && m->state == CELL_STOPPING) {
		char msg[128];
		snprintf(msg, sizeof msg, "shutdown deadline of %u ms passed; cell destroyed",
		         s->ctx->recovery->shutdown_timeout_ms);
		say(s, LOG_WARNING, MSGID_CELL_STOPPED, "Cell \"%s\": %s", s->ctx->name, msg);
		stop_cell(s, msg);
		return;
	}
	if (m->restart_due_ns && s->now >= m->restart_due_ns)
		restart_now(s);
	else if (m->restart_due_ns)
		act_at(s, CELL_DO_TIMER_AT, m->restart_due_ns);
}

static void on_exited(Step *s) {
	CellMachine *m = s->m;

	/* A request in flight sees the exit itself and reports it. */
	if (m->op != CELL_OP_NONE || !m->has_backend)
		return;
	act(s, CELL_DO_RELEASE);
	m->has_backend = false;
	if (m->state == CELL_STOPPED)
		return;
	if (m->state == CELL_STOPPING) {
		act_at(s, CELL_DO_TIMER_AT, 0);
		m->shutdown_requested = false;
		set_state(s, CELL_STOPPED, "the cell's process exited during shutdown");
		return;
	}
	fail(s, FAILURE_CRASH, "the cell's process died", s->now);
}

static void on_done(Step *s) {
	CellMachine *m = s->m;
	CellOp op = m->op;
	CellNext next = m->next;
	int r = s->in->result;

	if (op == CELL_OP_NONE)
		return;
	m->op = CELL_OP_NONE;
	m->next = CELL_NEXT_NONE;
	switch (op) {
	case CELL_OP_BOOT:
		m->has_backend = r >= 0;
		if (next == CELL_NEXT_DESTROY) {
			if (m->has_backend)
				request_destroy(s);
			else
				set_state(s, CELL_STOPPED, "%s", m->next_reason);
			return;
		}
		if (r < 0) {
			/* A cell that cannot be brought up has crashed as far as
			 * its policy goes (systemd counts failed starts the same
			 * way): retried with backoff, within the budget. */
			char why[CELL_REASON_MAX];
			snprintf(why, sizeof why, "%s failed: %s", m->boot_is_restart ? "restart" : "start", strerror(-r));
			fail(s, FAILURE_CRASH, why, s->now);
			return;
		}
		if (next == CELL_NEXT_BOOT) {
			/* Restarted while it booted: boot again, as asked. */
			request_boot(s, false);
			return;
		}
		/* The hypervisor's part of a boot is done (Jailhouse: CELL_START
		 * returned); the inmate's begins, up to its first beat. */
		emit(s, "started", "the backend started the cell; waiting for its first beat");
		act_at(s, CELL_DO_SAMPLE_AT, s->now + NS_PER_MS);
		act(s, CELL_DO_SAVE);
		return;
	case CELL_OP_FREEZE:
		/* The request hands the handle back, stopped or not. */
		m->has_backend = true;
		if (next == CELL_NEXT_DESTROY)
			request_destroy(s);
		else if (next == CELL_NEXT_BOOT) {
			request_boot(s, false);
			set_state(s, CELL_STARTING, "%s", m->next_reason);
		}
		return;
	case CELL_OP_DESTROY:
		m->has_backend = false;
		if (next == CELL_NEXT_BOOT) {
			m->restart_due_ns = 0;
			m->failed_ns = 0;
			request_boot(s, false);
			set_state(s, CELL_STARTING, "%s", m->next_reason);
		} else if (m->state == CELL_STOPPING)
			set_state(s, CELL_STOPPED, "%s", m->next_reason[0] ? m->next_reason : "stopped");
		return;
	default:
		return;
	}
}

static void on_adopted(Step *s) {
	CellMachine *m = s->m;

	m->has_backend = true;
	m->op = CELL_OP_NONE;
	hb_reset(m, s->now);
	m->start_issued_ns = s->now;
	if (m->restart_due_ns) {
		/* A restart was pending when the previous daemon died: keep its
		 * deadline, never restart twice. */
		m->state = CELL_FAILED;
		act_at(s, CELL_DO_TIMER_AT, m->restart_due_ns > s->now ? m->restart_due_ns : s->now);
		return;
	}
	if (s->in->obs && s->in->obs->backend_state == BACKEND_CELL_STOPPED && m->state == CELL_FAILED)
		return; /* preserved for inspection */
	set_state(s, CELL_STARTING, "adopted after a daemon restart");
	act_at(s, CELL_DO_SAMPLE_AT, s->now + NS_PER_US);
}

static void on_orphaned(Step *s) {
	CellMachine *m = s->m;

	/* No live cell to come back to (after a reboot: the runtime
	 * directory is gone and monotonic times restarted): a pending
	 * backoff has nothing left to restart. */
	m->has_backend = false;
	m->op = CELL_OP_NONE;
	m->restart_due_ns = 0;
	m->failed_ns = 0;
	if (m->state != CELL_STOPPED) {
		m->previous = m->state;
		m->state = CELL_STOPPED;
		snprintf(m->state_reason, sizeof m->state_reason, "nothing to adopt after a daemon restart");
	}
}

/* ---- reading the comm region ---------------------------------------- */

/* Copies the reason under the seqcount; false if it kept changing. */
static bool comm_read_reason(volatile const struct warden_comm *cm, CellObservation *o) {
	for (int tries = 0; tries < 16; tries++) {
		uint32_t s1 = __atomic_load_n(&cm->reason_seq, __ATOMIC_ACQUIRE);
		if (s1 & 1)
			continue;
		for (size_t i = 0; i < WARDEN_COMM_REASON_LEN; i++)
			o->reason[i] = cm->reason[i];
		o->event_ns = cm->event_mono_ns;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&cm->reason_seq, __ATOMIC_RELAXED) == s1)
			return true;
	}
	return false;
}

void cell_observe_comm(volatile const struct warden_comm *cm, CellObservation *o) {
	o->seq = __atomic_load_n(&cm->seq, __ATOMIC_ACQUIRE);
	o->magic = cm->magic;
	o->abi = cm->abi;
	o->size = cm->size;
	o->istate = cm->state;
	o->flags = cm->flags;
	o->beat_ns = cm->beat_mono_ns;
	o->uptime_ns = cm->uptime_ns;
	if (o->istate == WARDEN_INMATE_PANICKED || o->istate == WARDEN_INMATE_HALTED)
		o->reason_torn = !comm_read_reason(cm, o);
	else if (o->istate == WARDEN_INMATE_DEGRADED)
		for (size_t i = 0; i < WARDEN_COMM_APP_LEN; i++)
			o->app[i] = cm->degraded_app[i];
}

/* ---- a heartbeat sample --------------------------------------------- */

static uint64_t sample_grid_ns(const HealthSpec *h) {
	uint64_t g = ms_ns(h->period_ms);
	return g < NS_PER_MS ? NS_PER_MS : g;
}

static uint64_t grid_up(uint64_t t, uint64_t g) {
	return (t + g - 1) / g * g;
}

static void next_sample(Step *s) {
	CellMachine *m = s->m;
	const HealthSpec *h = s->ctx->health;
	uint64_t next, deadline = UINT64_MAX;
	CellAction *a;

	/* A routine look once a period: a new beat (dated by the inmate's own
	 * clock where it shares ours) is seen within a period, and the stall
	 * and boot deadlines have timers of their own below; doorbells and
	 * backend events wake us at once. Never sleep past the next deadline. */
	if (m->state == CELL_RUNNING || m->state == CELL_DEGRADED)
		deadline = m->hb_changed_ns + ms_ns(h->timeout_ms) + NS_PER_US;
	else if (m->state == CELL_STARTING)
		deadline = m->start_issued_ns + ms_ns(h->boot_timeout_ms);
	/* Routine looks sit on a grid of the period itself (1 ms at least),
	 * the same for every cell of that period whenever it started: one
	 * wake-up of the loop serves them all (a timer wheel), and the next
	 * look is at most a period away. A look off the grid (a doorbell, a
	 * start) does not move the cell's later ones. A deadline is never
	 * moved. */
	next = grid_up(s->now + NS_PER_US, sample_grid_ns(h));
	a = act(s, CELL_DO_SAMPLE_AT);
	a->precise = deadline <= next;
	if (a->precise)
		next = deadline;
	a->at_ns = next > s->now ? next : s->now + NS_PER_US;
	/* The first look in a stall's second half keeps the cell's CPU
	 * times, for the verdict at the deadline (stall_verdict). */
	if (!m->pre_from_ns && s->in->obs && s->in->obs->cpu_known &&
	    cell_machine_wants_cpu_times(m, h, s->now)) {
		m->pre_from_ns = s->now;
		m->pre_run_ns = s->in->obs->cpu_run_ns;
		m->pre_runnable = s->in->obs->cpu_runnable;
	}
}

/* The comm region says something impossible: NULL if it does not. */
static const char *comm_invalid(const CellMachine *m, const CellObservation *o, char *buf, size_t n) {
	if (o->magic == 0 && o->seq == 0)
		return NULL; /* not initialised yet */
	if (o->magic != WARDEN_COMM_MAGIC)
		snprintf(buf, n, "bad magic 0x%016" PRIx64, o->magic);
	else if (o->abi != WARDEN_COMM_ABI)
		snprintf(buf, n, "ABI revision %u, expected %u", o->abi, WARDEN_COMM_ABI);
	else if (o->size != WARDEN_COMM_SIZE)
		snprintf(buf, n, "size %u, expected %u", o->size, WARDEN_COMM_SIZE);
	else if (o->istate == WARDEN_INMATE_NONE || o->istate >= WARDEN_INMATE_STATE_MAX)
		snprintf(buf, n, "impossible inmate state %u", o->istate);
	else if (m->hb_valid && o->seq < m->hb_seq)
		snprintf(buf, n, "sequence went backwards (%" PRIu64 " -> %" PRIu64 ")", m->hb_seq, o->seq);
	else
		return NULL;
	return buf;
}

/* When the inmate's own event time is on our clock and plausible. */
static uint64_t event_time(const CellObservation *o, uint64_t now, uint64_t fallback) {
	if ((o->flags & WARDEN_FLAG_HOST_CLOCK) && o->event_ns && o->event_ns <= now)
		return o->event_ns;
	return fallback;
}

static void on_running_beat(Step *s, const CellObservation *o) {
	CellMachine *m = s->m;
	/* Measured to the beat itself when the inmate shares our clock, so
	 * our own sampling delay does not count. */
	uint64_t at = m->hb_changed_ns >= m->start_issued_ns ? m->hb_changed_ns : s->now;

	m->boot_ms = (double)(at - m->start_issued_ns) / 1e6;
	histogram_observe(&m->h_boot, m->boot_ms / 1e3);
	if (m->failed_ns) {
		m->recovery_ms = (double)(at - (at > m->failed_ns ? m->failed_ns : at)) / 1e6;
		histogram_observe(&m->h_recovery, m->recovery_ms / 1e3);
		say(s, LOG_NOTICE, MSGID_CELL_RECOVERED, "Cell \"%s\" recovered in %.3f ms", s->ctx->name,
		    m->recovery_ms);
		emit(s, "recovered", "recovered in %.3f ms", m->recovery_ms);
		m->failed_ns = 0;
	} else
		say(s, LOG_INFO, MSGID_CELL_STARTED, "Cell \"%s\" booted in %.3f ms", s->ctx->name, m->boot_ms);
	set_state(s, o->istate == WARDEN_INMATE_DEGRADED ? CELL_DEGRADED : CELL_RUNNING, "first beat after %.3f ms",
	          m->boot_ms);
	act(s, CELL_DO_SAVE);
}

typedef enum Verdict {
	VERDICT_STUCK,
	VERDICT_WAIT,    /* look again at grace_at_ns */
	VERDICT_STARVED, /* the stall clock starts again */
} Verdict;

/* Two things at a stall deadline are the host's and not the inmate's.
 * The cell's threads are runnable but, since the first look in the stall's
 * second half, hardly ran (starved_since, from procfs): the host
 * starved it, the stall is forgiven and its clock starts again, but never
 * past starve_cap_ns() of no beat at all. Or wardend itself ran its sample
 * late (more than a quarter of the timeout, at least 2 ms): the inmate gets
 * one short grace to beat, then the verdict stands, so an overloaded
 * daemon still declares. */
static bool daemon_late(const Step *s, const CellObservation *o) {
	uint64_t limit = ms_ns(s->ctx->health->timeout_ms) / 4;
	return o->sample_late_ns > (limit > 2 * NS_PER_MS ? limit : 2 * NS_PER_MS);
}

static uint64_t starve_cap_ns(const Step *s) {
	uint64_t cap = 10 * ms_ns(s->ctx->health->timeout_ms);
	return cap > 1000 * NS_PER_MS ? cap : 1000 * NS_PER_MS;
}

/* Starved: a thread of the cell wanted a CPU at both snapshots (runnable
 * then, and now without a sleep of its own choosing in between), and
 * since from_ns the cell ran less than a quarter of the
 * time. A hung vCPU that spins is runnable too, but it runs (half its CPU
 * beside one busy neighbour); one that sleeps is runnable only for the
 * moments it wakes, and the verdict at "last beat + timeout" falls on such
 * a moment whenever the timeout is a multiple of its period: one runnable
 * snapshot alone took a stalled, sleeping inmate for a starved one, and
 * so, now and then, did two (hence the sleeps in the count). Not
 * "did not run at all": an inmate's ring-0 beat is emulated on these hosts
 * and takes milliseconds of CPU, so a vCPU coming back from starvation runs
 * a while before its next beat. */
static bool starved_since(const Step *s, const CellObservation *o, uint64_t from_ns, uint64_t run0,
                          uint64_t *ret_ran) {
	uint64_t elapsed = s->now - from_ns;
	uint64_t ran = o->cpu_run_ns >= run0 ? o->cpu_run_ns - run0 : 0;
	*ret_ran = ran;
	return elapsed > 0 && s->m->pre_runnable > 0 && o->cpu_waiting > 0 && ran * 4 < elapsed;
}

static Verdict starved(Step *s, uint64_t ran, uint64_t elapsed) {
	CellMachine *m = s->m;
	m->starved++;
	say(s, LOG_WARNING, MSGID_CELL_HEALTH,
	    "Cell \"%s\": no beat for %.1f ms, but its threads are runnable and ran %.2f of the last %.1f ms: host "
	    "starved, not counted against the inmate",
	    s->ctx->name, (double)(s->now - m->hb_changed_ns) / 1e6, (double)ran / 1e6, (double)elapsed / 1e6);
	m->hb_changed_ns = s->now;
	m->pre_from_ns = 0;
	return VERDICT_STARVED;
}

static Verdict stall_verdict(Step *s, const CellObservation *o) {
	CellMachine *m = s->m;
	uint64_t ran, from = m->pre_from_ns;

	/* The snapshot from the stall's second half spans milliseconds, long
	 * enough for schedstat, whose counters move at scheduler ticks. */
	m->pre_from_ns = 0;
	if (from && o->cpu_known && !m->grace_at_ns && !daemon_late(s, o)) {
		bool after = m->starving;
		m->starving = false;
		if (s->now - m->hb_beat_ns > starve_cap_ns(s))
			return VERDICT_STUCK;
		if (starved_since(s, o, from, m->pre_run_ns, &ran)) {
			m->starving = true;
			return starved(s, ran, s->now - from);
		}
		/* Back on a CPU after a starvation, the inmate catches up (its
		 * ring-0 code is emulated here) before it beats again: one more
		 * timeout, once. */
		if (after) {
			say(s, LOG_INFO, MSGID_CELL_HEALTH,
			    "Cell \"%s\": no beat yet after host starvation; one more timeout to catch up", s->ctx->name);
			m->hb_changed_ns = s->now;
			return VERDICT_STARVED;
		}
		return VERDICT_STUCK;
	}
	/* wardend itself was late: the inmate gets one grace to beat. */
	if (!m->grace_at_ns) {
		if (!daemon_late(s, o))
			return VERDICT_STUCK;
		m->grace_at_ns = s->now + CELL_STALL_GRACE_NS;
		return VERDICT_WAIT;
	}
	if (s->now < m->grace_at_ns)
		return VERDICT_WAIT;
	m->grace_at_ns = 0;
	return VERDICT_STUCK;
}

static void on_sample(Step *s) {
	CellMachine *m = s->m;
	const HealthSpec *h = s->ctx->health;
	const CellObservation *o = s->in->obs;
	char reason[CELL_REASON_MAX], why[WARDEN_COMM_REASON_LEN], tmp[96];
	const char *bad;
	uint64_t now = s->now;

	if (!o || !m->has_backend || m->op != CELL_OP_NONE || m->state == CELL_STOPPED)
		return;
	if (m->restart_due_ns)
		return;
	if (m->state == CELL_FAILED && s->ctx->recovery->on[m->last_failure_kind] != ACTION_NONE)
		return;
	m->last_sample_ns = now;

	if (o->status_error == -EAGAIN) {
		/* The status page kept changing under us: look again soon,
		 * never take it for a dead process. */
		act_at(s, CELL_DO_SAMPLE_AT, now + NS_PER_MS);
		return;
	}
	if (o->status_error < 0 || o->backend_state == BACKEND_CELL_GONE) {
		if (m->state == CELL_STOPPING) {
			stop_cell(s, "the cell's process exited during shutdown");
			return;
		}
		cell_sanitize_text(reason, sizeof reason, o->backend_reason, sizeof o->backend_reason);
		fail(s, FAILURE_CRASH, o->status_error < 0 || !reason[0] ? "the cell's process is gone" : reason, now);
		return;
	}

	/* The inmate's own panic reason beats the hypervisor's view of the
	 * same event (a Linux panic also stops a QEMU board). */
	if ((o->backend_state == BACKEND_CELL_SHUTDOWN || o->backend_state == BACKEND_CELL_FAILED) &&
	    !(o->magic == WARDEN_COMM_MAGIC && o->istate == WARDEN_INMATE_PANICKED)) {
		cell_sanitize_text(tmp, sizeof tmp, o->backend_reason, sizeof o->backend_reason);
		snprintf(reason, sizeof reason, "%s (%s)",
		         o->backend_state == BACKEND_CELL_SHUTDOWN ? "machine shut down" : "hypervisor failed the cell",
		         tmp[0] ? tmp : "no reason given");
		fail(s, FAILURE_PANIC, reason, o->backend_state_ns);
		return;
	}

	bad = comm_invalid(m, o, tmp, sizeof tmp);
	if (bad && m->state != CELL_STOPPING) {
		snprintf(reason, sizeof reason, "comm region invalid: %s", bad);
		fail(s, FAILURE_PANIC, reason, m->hb_changed_ns);
		return;
	}

	if (o->istate == WARDEN_INMATE_PANICKED) {
		/* Without the host's clock in the comm region, the hypervisor's
		 * own report of the panic (QEMU's pvpanic event) is the best
		 * time we have; the last beat otherwise. */
		uint64_t fallback = (o->backend_state == BACKEND_CELL_FAILED || o->backend_state == BACKEND_CELL_SHUTDOWN) &&
		                                    o->backend_state_ns && o->backend_state_ns <= now ?
		                            o->backend_state_ns :
		                            m->hb_changed_ns;
		if (o->reason_torn)
			snprintf(why, sizeof why, "(reason torn while reading)");
		else
			cell_sanitize_text(why, sizeof why, o->reason, sizeof o->reason);
		snprintf(reason, sizeof reason, "inmate panicked: %s", why);
		fail(s, FAILURE_PANIC, reason, event_time(o, now, fallback));
		return;
	}

	if (o->istate == WARDEN_INMATE_HALTED || o->backend_state == BACKEND_CELL_HALTED) {
		if (m->state == CELL_STOPPING) {
			stop_cell(s, "inmate halted after a shutdown request");
			return;
		}
		if (o->istate == WARDEN_INMATE_HALTED) {
			if (o->reason_torn)
				snprintf(why, sizeof why, "(reason torn while reading)");
			else
				cell_sanitize_text(why, sizeof why, o->reason, sizeof o->reason);
			snprintf(reason, sizeof reason, "inmate halted: %s", why[0] ? why : "no reason given");
			fail(s, FAILURE_EXIT, reason,
			     event_time(o, now, o->backend_state_ns ? o->backend_state_ns : now));
		} else {
			/* A vCPU that stopped for good without saying so is hung. */
			cell_sanitize_text(tmp, sizeof tmp, o->backend_reason, sizeof o->backend_reason);
			snprintf(reason, sizeof reason, "vCPU stopped: %s", tmp[0] ? tmp : "halted");
			fail(s, FAILURE_STUCK, reason, o->backend_state_ns ? o->backend_state_ns : now);
		}
		return;
	}

	if (o->magic == WARDEN_COMM_MAGIC && (o->seq != m->hb_seq || !m->hb_valid) && o->seq != 0) {
		/* Prefer the inmate's own beat time when it shares our clock:
		 * timeouts then run from the beat, not from our sample. */
		m->hb_changed_ns = (o->flags & WARDEN_FLAG_HOST_CLOCK) && o->beat_ns <= now && now - o->beat_ns < 1000 * NS_PER_MS ?
		                           o->beat_ns :
		                           now;
		m->hb_seq = o->seq;
		m->hb_valid = true;
		m->hb_uptime_ns = o->uptime_ns;
		m->hb_beat_ns = m->hb_changed_ns;
		m->grace_at_ns = 0;
		m->pre_from_ns = 0;
		m->starving = false;
	}
	m->hb_inmate_state = o->istate;

	switch (m->state) {
	case CELL_STARTING:
		if (m->hb_valid && (o->istate == WARDEN_INMATE_RUNNING || o->istate == WARDEN_INMATE_DEGRADED))
			on_running_beat(s, o);
		else if (now - m->start_issued_ns >= ms_ns(h->boot_timeout_ms)) {
			snprintf(reason, sizeof reason, "no running beat %u ms after start (inmate %s)", h->boot_timeout_ms,
			         inmate_state_to_string(o->istate));
			fail(s, FAILURE_BOOT_TIMEOUT, reason, m->start_issued_ns + ms_ns(h->boot_timeout_ms));
			return;
		}
		break;
	case CELL_RUNNING:
	case CELL_DEGRADED:
	case CELL_FAILED: /* action "none": watch for a comeback */
		if (now - m->hb_changed_ns > ms_ns(h->timeout_ms)) {
			if (m->state == CELL_FAILED)
				break;
			switch (stall_verdict(s, o)) {
			case VERDICT_WAIT: {
				CellAction *a = act(s, CELL_DO_SAMPLE_AT);
				a->at_ns = m->grace_at_ns;
				a->precise = true;
				return;
			}
			case VERDICT_STARVED:
				next_sample(s);
				return;
			case VERDICT_STUCK:
			default:
				break;
			}
			snprintf(reason, sizeof reason,
			         "no beat for %.1f ms (timeout %u ms), sequence stuck at %" PRIu64 ", inmate %s%s",
			         (double)(now - m->hb_beat_ns) / 1e6, h->timeout_ms, m->hb_seq,
			         inmate_state_to_string(o->istate),
			         m->hb_changed_ns != m->hb_beat_ns ? " (host starvation forgiven before)" : "");
			fail(s, FAILURE_STUCK, reason, m->hb_beat_ns);
			return;
		}
		if (o->istate == WARDEN_INMATE_DEGRADED && m->state != CELL_DEGRADED) {
			char app[WARDEN_COMM_APP_LEN + 1];
			cell_sanitize_text(app, sizeof app, o->app, WARDEN_COMM_APP_LEN);
			m->link_degraded = false;
			set_state(s, CELL_DEGRADED, "inmate reports degraded%s%s", app[0] ? ": " : "", app);
		} else if (o->istate == WARDEN_INMATE_RUNNING && o->link_problem[0] && m->state != CELL_FAILED) {
			if (m->state != CELL_DEGRADED) {
				m->link_degraded = true;
				set_state(s, CELL_DEGRADED, "%s", o->link_problem);
			}
		} else if (o->istate == WARDEN_INMATE_RUNNING && m->state != CELL_RUNNING) {
			set_state(s, CELL_RUNNING, "%s",
			          m->state == CELL_FAILED ? "beating again" :
			          m->link_degraded        ? "network link restored" :
			                                    "inmate reports running");
			m->link_degraded = false;
		}
		if (m->state == CELL_RUNNING)
			policy_on_healthy(&m->policy, s->ctx->recovery, m->healthy_since_ns, now);
		break;
	case CELL_STOPPING:
	default:
		break;
	}
	next_sample(s);
}

int cell_step(CellMachine *m, const CellContext *ctx, const CellInput *in, CellActions *out) {
	Step s = { .m = m, .ctx = ctx, .in = in, .out = out, .now = in->now_ns };

	switch (in->kind) {
	case CELL_INPUT_START:
		m->held = false;
		return on_start(&s);
	case CELL_INPUT_STOP:
		if (in->by_operator)
			m->held = true;
		stop_cell(&s, in->reason ? in->reason : "stop requested");
		act(&s, CELL_DO_SAVE); /* the hold, across daemon restarts */
		return 0;
	case CELL_INPUT_RESTART:
		m->held = false;
		return on_restart(&s);
	case CELL_INPUT_SHUTDOWN:
		return on_shutdown(&s);
	case CELL_INPUT_SAMPLE:
		on_sample(&s);
		return 0;
	case CELL_INPUT_EXITED:
		on_exited(&s);
		return 0;
	case CELL_INPUT_TIMER:
		on_timer(&s);
		return 0;
	case CELL_INPUT_DONE:
		on_done(&s);
		return 0;
	case CELL_INPUT_ADOPTED:
		on_adopted(&s);
		return 0;
	case CELL_INPUT_ORPHANED:
		on_orphaned(&s);
		return 0;
	default:
		return -EINVAL;
	}
}
