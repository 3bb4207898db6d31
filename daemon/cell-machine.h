/* SPDX-License-Identifier: MIT */
/*
 * The supervision of one cell as a pure state machine:
 *
 *     cell_step(machine, context, input) -> machine', actions
 *
 * Every decision wardend takes about a cell is made here, in one place:
 * when it boots, what a heartbeat sample means, which failure it is, what
 * the policy does about it, when the next look is due. Nothing here does
 * I/O, reads a clock or logs: the input carries the time and what was
 * observed, and the caller (cell.c) carries out the actions in order. So
 * the unit tests walk every transition with no backend, no process and
 * no /dev/kvm.
 *
 * Backend work is asynchronous: an action that needs the backend (boot,
 * stop, destroy) puts a request in flight, and its completion comes back
 * as a CELL_INPUT_DONE. While one is in flight the machine samples
 * nothing and remembers what the operator asked for meanwhile.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../api/warden/comm.h"
#include "config.h"
#include "hypervisor/backend.h"
#include "policy.h"

#define CELL_REASON_MAX 256

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

/* The backend request in flight. */
typedef enum CellOp {
	CELL_OP_NONE,
	CELL_OP_BOOT,    /* reset in place, or create + load + start */
	CELL_OP_FREEZE,  /* stop the vCPUs, keep memory (preserve) */
	CELL_OP_DESTROY, /* tear down */
	_CELL_OP_MAX,
	_CELL_OP_INVALID = -1,
} CellOp;

const char *cell_op_to_string(CellOp o);

/* What to do once the request in flight completes. */
typedef enum CellNext {
	CELL_NEXT_NONE,
	CELL_NEXT_BOOT,    /* the operator asked for a (re)start meanwhile */
	CELL_NEXT_DESTROY, /* ... for a stop */
	_CELL_NEXT_MAX,
} CellNext;

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

typedef struct CellMachine {
	CellState state;
	CellState previous; /* before the last transition */
	char state_reason[CELL_REASON_MAX]; /* why it is in `state` */
	CellOp op;
	CellNext next;
	char next_reason[CELL_REASON_MAX]; /* why `next` was asked for */
	bool has_backend;     /* the caller holds a backend cell for it */
	bool boot_is_restart; /* the boot in flight is the policy's restart */
	bool shutdown_requested;
	/* The operator stopped it: it stays stopped across daemon restarts
	 * whatever `autostart` says, until the operator starts it
	 * (Docker's unless-stopped). */
	bool held;
	/* DEGRADED because of the observation's link_problem */
	bool link_degraded;

	/* heartbeat, as last sampled */
	bool hb_valid;
	uint64_t hb_seq;
	uint32_t hb_inmate_state;
	uint64_t hb_changed_ns; /* the stall clock: the last new beat, or the
	                         * end of a stall forgiven as host starvation */
	uint64_t hb_beat_ns;    /* CLOCK_MONOTONIC of the last new beat */
	uint64_t hb_uptime_ns;

	/* timestamps (CLOCK_MONOTONIC ns; 0: none) */
	uint64_t start_issued_ns; /* boot measured from here */
	uint64_t failed_ns;       /* failure awaiting recovery */
	uint64_t healthy_since_ns;
	uint64_t restart_due_ns; /* backoff deadline */
	uint64_t shutdown_due_ns;

	unsigned restarts; /* automatic restarts, ever */
	uint64_t failures[_FAILURE_KIND_MAX];
	bool has_failure;
	FailureKind last_failure_kind;
	char last_failure_reason[CELL_REASON_MAX];
	uint64_t last_failure_realtime_ns;
	double boot_ms, detection_ms, recovery_ms; /* last values, < 0: none */

	/* starvation: stalls the host caused, not the inmate */
	uint64_t starved;
	uint64_t last_sample_ns;
	/* A stall past half its timeout: the cell's CPU times then, to tell
	 * a starved cell from a stuck one at the deadline; and the grace a
	 * late daemon gives the inmate. */
	uint64_t pre_from_ns, pre_run_ns;
	unsigned pre_runnable; /* runnable threads at that snapshot */
	bool starving; /* the last verdict of this stall was "starved" */
	uint64_t grace_at_ns;

	Policy policy;
	Histogram h_boot, h_recovery, h_detection[_FAILURE_KIND_MAX];
	/* Failures that found the restart budget spent (since the daemon
	 * started): what an alert counts, the state flips too fast to see. */
	uint64_t budget_exhausted;
} CellMachine;

/* What the machine needs of the spec. */
typedef struct CellContext {
	const char *name; /* for messages */
	const HealthSpec *health;
	const RecoverySpec *recovery;
	/* A boot may reset the existing backend cell in place (the backend
	 * prefers it, and it was made from the current spec). */
	bool reuse_backend;
} CellContext;

/* One look at the backend's view and at the comm region, as read. The
 * strings are raw inmate bytes: the machine sanitises what it keeps. */
typedef struct CellObservation {
	int status_error; /* backend_cell_status() failed: its errno; 0: ok */
	BackendCellState backend_state;
	char backend_reason[BACKEND_REASON_LEN];
	uint64_t backend_state_ns;

	uint64_t magic;
	uint32_t abi, size, istate, flags;
	uint64_t seq, beat_ns, uptime_ns;
	/* under the seqcount; read when istate is panicked or halted */
	char reason[WARDEN_COMM_REASON_LEN];
	bool reason_torn;
	uint64_t event_ns;
	char app[WARDEN_COMM_APP_LEN + 1];

	/* how late the daemon's own sampling ran: a measure of starvation */
	uint64_t sample_late_ns;
	/* the cell's threads: CPU time so far, how many are runnable, and
	 * how many of those have not slept by choice since the last read
	 * (read only when cell_machine_wants_cpu_times() says so) */
	bool cpu_known;
	uint64_t cpu_run_ns;
	unsigned cpu_runnable, cpu_waiting;
	/* the cell's network link is in trouble (network.h), with the
	 * spec's degrade_on_carrier_loss: why; "" when it is fine */
	char link_problem[128];
} CellObservation;

/* Fills the comm region's part of `o` from the region as the inmate left
 * it: every inmate-owned field the machine looks at, the reason under its
 * seqcount. No check: cell_step() judges what it reads. */
void cell_observe_comm(volatile const struct warden_comm *cm, CellObservation *o);

typedef enum CellInputKind {
	CELL_INPUT_START,    /* operator or autostart */
	CELL_INPUT_STOP,     /* immediate: tear the cell down */
	CELL_INPUT_RESTART,  /* operator restart */
	CELL_INPUT_SHUTDOWN, /* graceful, through the mailbox */
	CELL_INPUT_SAMPLE,   /* an observation */
	CELL_INPUT_EXITED,   /* the cell's process exited */
	CELL_INPUT_TIMER,    /* the action deadline (backoff, shutdown) passed */
	CELL_INPUT_DONE,     /* the request in flight completed */
	CELL_INPUT_ADOPTED,  /* re-attached after a daemon restart */
	CELL_INPUT_ORPHANED, /* nothing to re-attach to after a daemon restart */
	_CELL_INPUT_MAX,
} CellInputKind;

const char *cell_input_to_string(CellInputKind k);

typedef struct CellInput {
	CellInputKind kind;
	uint64_t now_ns;      /* CLOCK_MONOTONIC */
	uint64_t realtime_ns; /* for failure timestamps */
	const char *reason;   /* STOP, RESTART: why */
	bool by_operator;     /* STOP: the operator's own (see `held`) */
	const CellObservation *obs; /* SAMPLE, ADOPTED */
	int result;           /* DONE: 0 or negative errno */
	bool reused;          /* DONE of a boot: reset in place */
} CellInput;

typedef enum CellActionKind {
	CELL_DO_STATE,   /* the state changed (previous -> state): log, emit */
	CELL_DO_EMIT,    /* emit an event of `type` with `text` */
	CELL_DO_LOG,     /* log `text` at `level` with `msgid` */
	CELL_DO_BOOT,    /* submit a boot; `reuse`: reset the cell in place */
	CELL_DO_FREEZE,  /* submit a stop of the vCPUs */
	CELL_DO_DESTROY, /* submit a teardown of the backend cell */
	CELL_DO_RELEASE, /* drop the dead handle, no request */
	CELL_DO_MAIL,    /* post `mail` to the mailbox */
	CELL_DO_SAMPLE_AT, /* next sample at `at_ns`; 0: none */
	CELL_DO_TIMER_AT,  /* action deadline at `at_ns`; 0: none */
	CELL_DO_SAVE,      /* persist the supervision state */
	CELL_DO_HYPERVISOR_RESTART, /* the budget says: restart everything */
	_CELL_DO_MAX,
} CellActionKind;

const char *cell_action_to_string(CellActionKind k);

typedef struct CellAction {
	CellActionKind kind;
	CellState state, previous; /* STATE */
	const char *type;          /* EMIT: "failure", "action", "recovered" */
	int level;                 /* LOG: syslog level */
	const char *msgid;         /* LOG: MESSAGE_ID, may be NULL */
	bool reuse;                /* BOOT */
	bool precise;              /* SAMPLE_AT: a deadline, not a routine look */
	uint32_t mail;             /* MAIL: WARDEN_CMD_* */
	uint64_t at_ns;            /* SAMPLE_AT, TIMER_AT */
	char text[CELL_REASON_MAX + 128];
} CellAction;

#define CELL_ACTIONS_MAX 24
typedef struct CellActions {
	CellAction a[CELL_ACTIONS_MAX];
	size_t n;
} CellActions;

void cell_machine_init(CellMachine *m);
/* Feed one input; appends the actions to carry out, in order, to *out
 * (which the caller empties). Returns 0, or for operator inputs a
 * negative errno that refuses them: -EALREADY (already there), -EBUSY
 * (another transition is under way). */
int cell_step(CellMachine *m, const CellContext *ctx, const CellInput *in, CellActions *out);

/* The next sample may end in a stall verdict: read the cell's CPU times
 * for it (a few procfs reads, too many for every sample). */
bool cell_machine_wants_cpu_times(const CellMachine *m, const HealthSpec *h, uint64_t now_ns);

/* The grace a stall verdict waits when wardend itself ran late. */
#define CELL_STALL_GRACE_NS 1000000ULL

/* The cell counts as up for the API and the metrics. */
bool cell_machine_up(const CellMachine *m);

/* Replace bytes that are not printable ASCII with '?', up to n bytes or
 * the first NUL, into dst (dst_size >= 1). Inmate text is hostile. */
void cell_sanitize_text(char *dst, size_t dst_size, const char *src, size_t n);
