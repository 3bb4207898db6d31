/* SPDX-License-Identifier: MIT */
/*
 * daemon/cell-machine.c, walked through every transition with an injected
 * clock and hand-made observations: no backend, no process, no /dev/kvm.
 * The "backend" here is the test itself answering each request with a
 * CELL_INPUT_DONE, which is all the machine ever sees of one.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include <cmocka.h>

#include "cell-machine.h"

#define MS 1000000ULL
#define SEC (1000 * MS)

typedef struct T {
	CellMachine m;
	HealthSpec h;
	RecoverySpec rs;
	CellContext ctx;
	CellActions out;
	uint64_t now;
	uint64_t seq;
	int r;
} T;

static void t_init(T *t) {
	memset(t, 0, sizeof *t);
	cell_machine_init(&t->m);
	t->h = (HealthSpec){ .period_ms = 10, .timeout_ms = 30, .boot_timeout_ms = 500 };
	for (int k = 0; k < _FAILURE_KIND_MAX; k++)
		t->rs.on[k] = ACTION_RESTART;
	t->rs.max_restarts = 3;
	t->rs.window_s = 60;
	t->rs.backoff_initial_ms = 0;
	t->rs.backoff_max_ms = 1000;
	t->rs.backoff_factor = 2.0;
	t->rs.reset_after_s = 10;
	t->rs.on_exhausted = EXHAUSTED_STOP;
	t->rs.shutdown_timeout_ms = 200;
	t->ctx = (CellContext){ .name = "t", .health = &t->h, .recovery = &t->rs, .reuse_backend = true };
	t->now = 1000 * SEC;
}

static int feed(T *t, CellInput in) {
	in.now_ns = t->now;
	in.realtime_ns = 1700000000ULL * SEC;
	t->out.n = 0;
	t->r = cell_step(&t->m, &t->ctx, &in, &t->out);
	return t->r;
}

static const CellAction *find(const T *t, CellActionKind k) {
	for (size_t i = 0; i < t->out.n; i++)
		if (t->out.a[i].kind == k)
			return &t->out.a[i];
	return NULL;
}

static const CellAction *find_state(const T *t, CellState s) {
	for (size_t i = 0; i < t->out.n; i++)
		if (t->out.a[i].kind == CELL_DO_STATE && t->out.a[i].state == s)
			return &t->out.a[i];
	return NULL;
}

static const CellAction *find_emit(const T *t, const char *type) {
	for (size_t i = 0; i < t->out.n; i++)
		if (t->out.a[i].kind == CELL_DO_EMIT && strcmp(t->out.a[i].type, type) == 0)
			return &t->out.a[i];
	return NULL;
}

/* The last SAMPLE_AT of the step (0: disarmed; UINT64_MAX: none). */
static uint64_t sample_at(const T *t) {
	uint64_t at = UINT64_MAX;
	for (size_t i = 0; i < t->out.n; i++)
		if (t->out.a[i].kind == CELL_DO_SAMPLE_AT)
			at = t->out.a[i].at_ns;
	return at;
}

static uint64_t timer_at(const T *t) {
	uint64_t at = UINT64_MAX;
	for (size_t i = 0; i < t->out.n; i++)
		if (t->out.a[i].kind == CELL_DO_TIMER_AT)
			at = t->out.a[i].at_ns;
	return at;
}

static CellObservation obs(T *t, uint32_t istate) {
	return (CellObservation){
		.backend_state = BACKEND_CELL_RUNNING,
		.magic = WARDEN_COMM_MAGIC,
		.abi = WARDEN_COMM_ABI,
		.size = WARDEN_COMM_SIZE,
		.istate = istate,
		.flags = WARDEN_FLAG_HOST_CLOCK,
		.seq = t->seq,
		.beat_ns = t->now,
	};
}

/* A sample of a beat that advanced. */
static void beat(T *t, uint32_t istate) {
	t->seq++;
	CellObservation o = obs(t, istate);
	feed(t, (CellInput){ .kind = CELL_INPUT_SAMPLE, .obs = &o });
}

static void sample(T *t, const CellObservation *o) {
	feed(t, (CellInput){ .kind = CELL_INPUT_SAMPLE, .obs = o });
}

static void done(T *t, int result) {
	feed(t, (CellInput){ .kind = CELL_INPUT_DONE, .result = result });
}

/* started, booted, first beat: running */
static void t_running(T *t) {
	assert_int_equal(feed(t, (CellInput){ .kind = CELL_INPUT_START }), 0);
	t->now += 1 * MS;
	done(t, 0);
	t->now += 1 * MS;
	beat(t, WARDEN_INMATE_RUNNING);
	assert_int_equal(t->m.state, CELL_RUNNING);
}

static void test_tables(void **state) {
	(void)state;
	for (int s = 0; s < _CELL_STATE_MAX; s++) {
		assert_non_null(cell_state_to_string(s));
		assert_int_equal(cell_state_from_string(cell_state_to_string(s)), s);
	}
	assert_null(cell_state_to_string(_CELL_STATE_MAX));
	for (int o = 0; o < _CELL_OP_MAX; o++)
		assert_non_null(cell_op_to_string(o));
	assert_null(cell_op_to_string(_CELL_OP_MAX));
	for (int i = 0; i < _CELL_INPUT_MAX; i++)
		assert_non_null(cell_input_to_string(i));
	assert_null(cell_input_to_string(_CELL_INPUT_MAX));
	for (int a = 0; a < _CELL_DO_MAX; a++)
		assert_non_null(cell_action_to_string(a));
	assert_null(cell_action_to_string(_CELL_DO_MAX));
	assert_string_equal(inmate_state_to_string(WARDEN_INMATE_STATE_MAX), "invalid");
}

static void test_start_boot_running(void **state) {
	T t;
	(void)state;
	t_init(&t);
	assert_int_equal(feed(&t, (CellInput){ .kind = CELL_INPUT_START }), 0);
	assert_int_equal(t.m.state, CELL_STARTING);
	assert_int_equal(t.m.op, CELL_OP_BOOT);
	assert_non_null(find(&t, CELL_DO_BOOT));
	assert_false(find(&t, CELL_DO_BOOT)->reuse); /* nothing to reuse */
	/* nothing is sampled while the boot is in flight */
	CellObservation o = obs(&t, WARDEN_INMATE_RUNNING);
	t.seq = 1;
	o.seq = 1;
	sample(&t, &o);
	assert_int_equal(t.out.n, 0);
	assert_int_equal(feed(&t, (CellInput){ .kind = CELL_INPUT_START }), -EALREADY);

	t.now += 2 * MS;
	done(&t, 0);
	assert_true(t.m.has_backend);
	assert_int_equal(sample_at(&t), t.now + MS);
	assert_non_null(find(&t, CELL_DO_SAVE));
	/* the backend's half of the boot is over: an event dates it */
	assert_non_null(find_emit(&t, "started"));

	t.now += 1 * MS;
	beat(&t, WARDEN_INMATE_BOOTING);
	assert_int_equal(t.m.state, CELL_STARTING);
	assert_true(sample_at(&t) > t.now && sample_at(&t) <= t.now + 10 * MS);
	t.now += 1 * MS;
	beat(&t, WARDEN_INMATE_RUNNING);
	assert_int_equal(t.m.state, CELL_RUNNING);
	assert_non_null(find_state(&t, CELL_RUNNING));
	/* boot time runs from the start request to the beat itself */
	assert_true(t.m.boot_ms > 3.9 && t.m.boot_ms < 4.1);
	assert_int_equal(t.m.h_boot.count, 1);
	assert_int_equal(t.m.healthy_since_ns, t.now);
	/* next look: on the period's grid, shared by every cell of that
	 * period, at most a period away */
	assert_true(sample_at(&t) > t.now && sample_at(&t) <= t.now + 10 * MS);
	assert_int_equal(sample_at(&t) % (10 * MS), 0);
	assert_false(find(&t, CELL_DO_SAMPLE_AT)->precise);
}

static void test_boot_timeout(void **state) {
	T t;
	(void)state;
	t_init(&t);
	feed(&t, (CellInput){ .kind = CELL_INPUT_START });
	done(&t, 0);
	t.now += 100 * MS;
	beat(&t, WARDEN_INMATE_BOOTING);
	assert_int_equal(t.m.state, CELL_STARTING);
	/* the boot deadline caps the next look */
	t.now += 399 * MS;
	beat(&t, WARDEN_INMATE_BOOTING);
	assert_int_equal(sample_at(&t), t.m.start_issued_ns + 500 * MS);
	t.now += 1 * MS;
	CellObservation o = obs(&t, WARDEN_INMATE_BOOTING);
	sample(&t, &o);
	assert_int_equal(t.m.failures[FAILURE_BOOT_TIMEOUT], 1);
	assert_non_null(find_emit(&t, "failure"));
	/* detected at the deadline itself */
	assert_true(t.m.detection_ms < 0.001);
	/* restart at once (no backoff), reusing the backend cell */
	assert_int_equal(t.m.state, CELL_STARTING);
	assert_non_null(find_state(&t, CELL_FAILED));
	assert_true(find(&t, CELL_DO_BOOT)->reuse);
	assert_int_equal(t.m.restarts, 1);
}

static void test_panic_by_inmate_and_recovery(void **state) {
	T t;
	(void)state;
	t_init(&t);
	t_running(&t);
	t.now += 5 * MS;
	CellObservation o = obs(&t, WARDEN_INMATE_PANICKED);
	snprintf(o.reason, sizeof o.reason, "Kernel panic\x01\xff: oops");
	o.event_ns = t.now - 2 * MS;
	sample(&t, &o);
	assert_int_equal(t.m.failures[FAILURE_PANIC], 1);
	/* hostile bytes never reach logs or JSON */
	assert_string_equal(t.m.last_failure_reason, "inmate panicked: Kernel panic??: oops");
	/* timed from the inmate's own panic write */
	assert_true(t.m.detection_ms > 1.9 && t.m.detection_ms < 2.1);
	assert_int_equal(t.m.op, CELL_OP_BOOT);

	t.now += 1 * MS;
	done(&t, 0);
	t.now += 1 * MS;
	beat(&t, WARDEN_INMATE_RUNNING);
	assert_int_equal(t.m.state, CELL_RUNNING);
	assert_non_null(find_emit(&t, "recovered"));
	assert_true(t.m.recovery_ms > 1.9 && t.m.recovery_ms < 2.1);
	assert_int_equal(t.m.failed_ns, 0);
	assert_int_equal(t.m.h_recovery.count, 1);
}

static void test_panic_by_hypervisor(void **state) {
	T t;
	(void)state;
	t_init(&t);
	t_running(&t);
	t.now += 5 * MS;
	CellObservation o = obs(&t, WARDEN_INMATE_RUNNING);
	o.backend_state = BACKEND_CELL_SHUTDOWN;
	o.backend_state_ns = t.now - 1 * MS;
	snprintf(o.backend_reason, sizeof o.backend_reason, "triple fault");
	sample(&t, &o);
	assert_int_equal(t.m.failures[FAILURE_PANIC], 1);
	assert_string_equal(t.m.last_failure_reason, "machine shut down (triple fault)");
	assert_true(t.m.detection_ms > 0.9 && t.m.detection_ms < 1.1);

	t_init(&t);
	t_running(&t);
	o = obs(&t, WARDEN_INMATE_RUNNING);
	o.backend_state = BACKEND_CELL_FAILED;
	sample(&t, &o);
	assert_string_equal(t.m.last_failure_reason, "hypervisor failed the cell (no reason given)");
}

static void test_comm_invalid(void **state) {
	static const struct {
		const char *want;
		uint64_t magic;
		uint32_t abi, size, istate;
		uint64_t seq;
	} cases[] = {
		{ "comm region invalid: bad magic 0x0000000000000001", 1, WARDEN_COMM_ABI, WARDEN_COMM_SIZE, 2, 5 },
		{ "comm region invalid: ABI revision 9, expected 1", WARDEN_COMM_MAGIC, 9, WARDEN_COMM_SIZE, 2, 5 },
		{ "comm region invalid: size 17, expected 4096", WARDEN_COMM_MAGIC, WARDEN_COMM_ABI, 17, 2, 5 },
		{ "comm region invalid: impossible inmate state 77", WARDEN_COMM_MAGIC, WARDEN_COMM_ABI, WARDEN_COMM_SIZE,
		  77, 5 },
		{ "comm region invalid: sequence went backwards (1 -> 0)", WARDEN_COMM_MAGIC, WARDEN_COMM_ABI,
		  WARDEN_COMM_SIZE, 2, 0 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		T t;
		t_init(&t);
		t_running(&t);
		CellObservation o = obs(&t, cases[i].istate);
		o.magic = cases[i].magic;
		o.abi = cases[i].abi;
		o.size = cases[i].size;
		o.seq = cases[i].seq;
		sample(&t, &o);
		assert_int_equal(t.m.failures[FAILURE_PANIC], 1);
		assert_string_equal(t.m.last_failure_reason, cases[i].want);
	}
}

static void test_stuck_and_deadline(void **state) {
	T t;
	(void)state;
	t_init(&t);
	t_running(&t);
	uint64_t last = t.now, deadline = last + 30 * MS + 1000;
	/* the next look never sleeps past the stall deadline: from the last
	 * grid point before it, the next one is beyond it */
	t.now = deadline / (10 * MS) * (10 * MS);
	assert_true(t.now > last);
	CellObservation o = obs(&t, WARDEN_INMATE_RUNNING);
	sample(&t, &o);
	assert_int_equal(t.m.state, CELL_RUNNING);
	assert_int_equal(sample_at(&t), deadline);
	assert_true(find(&t, CELL_DO_SAMPLE_AT)->precise);
	t.now = last + 20 * MS;
	sample(&t, &o);
	assert_false(find(&t, CELL_DO_SAMPLE_AT)->precise); /* a routine look */
	t.now = last + 30 * MS + 1000;
	sample(&t, &o);
	assert_int_equal(t.m.failures[FAILURE_STUCK], 1);
	assert_true(t.m.detection_ms > 30.0 && t.m.detection_ms < 30.01);
	assert_non_null(strstr(t.m.last_failure_reason, "sequence stuck at 1"));
}

static void test_stall_when_host_starved(void **state) {
	T t;
	(void)state;
	t_init(&t);
	t_running(&t);
	uint64_t last = t.now;
	/* our own timer fired 20 ms late: one grace for the inmate, no more */
	t.now = last + 40 * MS;
	CellObservation o = obs(&t, WARDEN_INMATE_RUNNING);
	o.sample_late_ns = 20 * MS;
	sample(&t, &o);
	assert_int_equal(t.m.failures[FAILURE_STUCK], 0);
	assert_int_equal(sample_at(&t), t.now + CELL_STALL_GRACE_NS);
	/* a grace's verdict does not look at CPU times */
	assert_false(cell_machine_wants_cpu_times(&t.m, &t.h, t.now + CELL_STALL_GRACE_NS));
	/* it beat meanwhile: fine */
	t.now += CELL_STALL_GRACE_NS;
	beat(&t, WARDEN_INMATE_RUNNING);
	assert_int_equal(t.m.state, CELL_RUNNING);
	assert_int_equal(t.m.failures[FAILURE_STUCK], 0);
	/* steadily late, and no beat: declared all the same, one grace later */
	last = t.now;
	t.now = last + 40 * MS;
	o = obs(&t, WARDEN_INMATE_RUNNING);
	o.sample_late_ns = 20 * MS;
	sample(&t, &o);
	t.now += CELL_STALL_GRACE_NS;
	sample(&t, &o);
	assert_int_equal(t.m.failures[FAILURE_STUCK], 1);
	assert_int_equal(t.m.starved, 0);

	/* a boot timeout is not forgiven for a late daemon: boot deadlines are long */
	t_init(&t);
	feed(&t, (CellInput){ .kind = CELL_INPUT_START });
	done(&t, 0);
	t.now += 600 * MS;
	o = obs(&t, WARDEN_INMATE_BOOTING);
	o.sample_late_ns = 300 * MS;
	sample(&t, &o);
	assert_int_equal(t.m.failures[FAILURE_BOOT_TIMEOUT], 1);
}

/* With the cell's CPU times: a cell whose threads are runnable at both
 * snapshots and hardly ran is starved; one that ran, or sleeps, is stuck.
 * pre_runnable: its runnable threads at the first snapshot; waiting: those
 * runnable at the deadline that did not sleep by choice in between. */
static void stall_to_deadline_waiting(T *t, uint64_t last, unsigned pre_runnable, unsigned runnable,
                                      unsigned waiting, uint64_t run_add) {
	/* the first look in the stall's second half takes the snapshot */
	t->now = last + 20 * MS;
	CellObservation o = obs(t, WARDEN_INMATE_RUNNING);
	o.cpu_known = true;
	o.cpu_run_ns = 3 * SEC;
	o.cpu_runnable = pre_runnable;
	sample(t, &o);
	assert_int_equal(t->m.pre_from_ns, t->now);
	/* taken: none again until the deadline */
	assert_false(cell_machine_wants_cpu_times(&t->m, &t->h, last + 25 * MS));
	assert_true(cell_machine_wants_cpu_times(&t->m, &t->h, last + 30 * MS + 1000));
	t->now = last + 30 * MS + 1000;
	o.cpu_runnable = runnable;
	o.cpu_waiting = waiting;
	o.cpu_run_ns += run_add;
	sample(t, &o);
}

static void stall_to_deadline_pre(T *t, uint64_t last, unsigned pre_runnable, unsigned runnable, uint64_t run_add) {
	stall_to_deadline_waiting(t, last, pre_runnable, runnable, runnable, run_add);
}

static void stall_to_deadline(T *t, uint64_t last, unsigned runnable, uint64_t run_add) {
	stall_to_deadline_pre(t, last, runnable, runnable, run_add);
}

static void test_stall_cpu_starved_or_stuck(void **state) {
	T t;
	(void)state;
	t_init(&t);
	t_running(&t);
	uint64_t last = t.now;
	/* only once a stall is past half its timeout */
	assert_false(cell_machine_wants_cpu_times(&t.m, &t.h, last + 14 * MS));
	assert_true(cell_machine_wants_cpu_times(&t.m, &t.h, last + 16 * MS));

	/* runnable, 0.1 ms run in 10 ms: starved, at once */
	stall_to_deadline(&t, last, 1, MS / 10);
	assert_int_equal(t.m.failures[FAILURE_STUCK], 0);
	assert_int_equal(t.m.starved, 1);
	assert_int_equal(t.m.hb_changed_ns, t.now);
	assert_non_null(find(&t, CELL_DO_LOG));

	/* back on a CPU, it gets one more timeout to catch up, once */
	stall_to_deadline(&t, t.now, 1, 9 * MS);
	assert_int_equal(t.m.failures[FAILURE_STUCK], 0);
	assert_int_equal(t.m.starved, 1); /* not counted as starvation */
	stall_to_deadline(&t, t.now, 1, 9 * MS);
	assert_int_equal(t.m.failures[FAILURE_STUCK], 1);

	/* a hung vCPU that spins is runnable too, but it runs: stuck */
	t_init(&t);
	t_running(&t);
	stall_to_deadline(&t, t.now, 1, 5 * MS);
	assert_int_equal(t.m.failures[FAILURE_STUCK], 1);
	assert_int_equal(t.m.starved, 0);
	assert_true(t.m.detection_ms > 30.0 && t.m.detection_ms < 30.01); /* no grace */

	/* a stall that sleeps (not runnable, no CPU time): stuck */
	t_init(&t);
	t_running(&t);
	stall_to_deadline(&t, t.now, 0, 0);
	assert_int_equal(t.m.failures[FAILURE_STUCK], 1);

	/* one that sleeps but just woke for its own timer at the verdict
	 * (runnable then only, hardly any CPU time): stuck, not starved */
	t_init(&t);
	t_running(&t);
	stall_to_deadline_pre(&t, t.now, 0, 1, MS / 10);
	assert_int_equal(t.m.failures[FAILURE_STUCK], 1);
	assert_int_equal(t.m.starved, 0);

	/* runnable at both snapshots, woken for its timer each time, but it
	 * slept by choice in between: it ran its loop, stuck */
	t_init(&t);
	t_running(&t);
	stall_to_deadline_waiting(&t, t.now, 1, 1, 0, MS / 10);
	assert_int_equal(t.m.failures[FAILURE_STUCK], 1);
	assert_int_equal(t.m.starved, 0);

	/* starvation is forgiven, but never past 1 s (10 x timeout here is less) of no beat at all */
	t_init(&t);
	t_running(&t);
	uint64_t beat_at = t.now;
	unsigned forgiven = 0;
	while (t.m.failures[FAILURE_STUCK] == 0 && forgiven < 100) {
		stall_to_deadline(&t, t.m.hb_changed_ns, 1, 0);
		forgiven++;
	}
	assert_int_equal(t.m.failures[FAILURE_STUCK], 1);
	assert_true(t.now - beat_at > SEC && t.now - beat_at < SEC + 40 * MS);
	assert_non_null(strstr(t.m.last_failure_reason, "host starvation forgiven before"));
	/* detection counts from the last real beat */
	assert_true(t.m.detection_ms > 1000.0);

	/* a beat ends the stall, and its snapshot */
	t_init(&t);
	t_running(&t);
	last = t.now;
	t.now = last + 20 * MS;
	CellObservation o = obs(&t, WARDEN_INMATE_RUNNING);
	o.cpu_known = true;
	sample(&t, &o);
	assert_true(t.m.pre_from_ns > 0);
	beat(&t, WARDEN_INMATE_RUNNING);
	assert_int_equal(t.m.pre_from_ns, 0);
	assert_int_equal(t.m.state, CELL_RUNNING);
	/* without a snapshot (no look in the second half), no forgiveness */
	last = t.now;
	t.now = last + 30 * MS + 1000;
	o = obs(&t, WARDEN_INMATE_RUNNING);
	o.cpu_known = true;
	o.cpu_runnable = 1;
	o.cpu_waiting = 1;
	sample(&t, &o);
	assert_int_equal(t.m.failures[FAILURE_STUCK], 1);
}

static void test_halt_exit_and_vcpu_stop(void **state) {
	T t;
	(void)state;
	t_init(&t);
	t_running(&t);
	CellObservation o = obs(&t, WARDEN_INMATE_HALTED);
	snprintf(o.reason, sizeof o.reason, "work done");
	o.event_ns = t.now;
	sample(&t, &o);
	assert_int_equal(t.m.failures[FAILURE_EXIT], 1);
	assert_string_equal(t.m.last_failure_reason, "inmate halted: work done");

	t_init(&t);
	t_running(&t);
	o = obs(&t, WARDEN_INMATE_RUNNING);
	o.backend_state = BACKEND_CELL_HALTED;
	snprintf(o.backend_reason, sizeof o.backend_reason, "hlt with interrupts off");
	sample(&t, &o);
	assert_int_equal(t.m.failures[FAILURE_STUCK], 1);
	assert_string_equal(t.m.last_failure_reason, "vCPU stopped: hlt with interrupts off");

	/* a torn reason says so */
	t_init(&t);
	t_running(&t);
	o = obs(&t, WARDEN_INMATE_HALTED);
	o.reason_torn = true;
	sample(&t, &o);
	assert_string_equal(t.m.last_failure_reason, "inmate halted: (reason torn while reading)");
}

static void test_crash_by_exit_and_by_status(void **state) {
	T t;
	(void)state;
	t_init(&t);
	t_running(&t);
	feed(&t, (CellInput){ .kind = CELL_INPUT_EXITED });
	assert_non_null(find(&t, CELL_DO_RELEASE));
	assert_int_equal(t.m.failures[FAILURE_CRASH], 1);
	/* a new backend cell: the dead one is gone */
	assert_false(find(&t, CELL_DO_BOOT)->reuse);

	t_init(&t);
	t_running(&t);
	CellObservation o = obs(&t, WARDEN_INMATE_RUNNING);
	o.backend_state = BACKEND_CELL_GONE;
	snprintf(o.backend_reason, sizeof o.backend_reason, "runner killed by signal 9");
	sample(&t, &o);
	assert_string_equal(t.m.last_failure_reason, "runner killed by signal 9");

	/* a status page that kept changing is looked at again, not a crash */
	t_init(&t);
	t_running(&t);
	o = (CellObservation){ .status_error = -EAGAIN };
	sample(&t, &o);
	assert_int_equal(t.m.failures[FAILURE_CRASH], 0);
	assert_int_equal(sample_at(&t), t.now + MS);
	o.status_error = -EPROTO;
	sample(&t, &o);
	assert_int_equal(t.m.failures[FAILURE_CRASH], 1);
	assert_string_equal(t.m.last_failure_reason, "the cell's process is gone");
}

static void test_actions_stop_preserve_none(void **state) {
	T t;
	(void)state;
	t_init(&t);
	t.rs.on[FAILURE_PANIC] = ACTION_STOP;
	t_running(&t);
	CellObservation o = obs(&t, WARDEN_INMATE_PANICKED);
	sample(&t, &o);
	assert_int_equal(t.m.state, CELL_FAILED);
	assert_non_null(find(&t, CELL_DO_DESTROY));
	done(&t, 0);
	assert_int_equal(t.m.state, CELL_FAILED); /* not "stopped": it failed */
	assert_false(t.m.has_backend);

	t_init(&t);
	t.rs.on[FAILURE_PANIC] = ACTION_PRESERVE;
	t_running(&t);
	sample(&t, &o);
	assert_int_equal(t.m.state, CELL_FAILED);
	assert_non_null(find(&t, CELL_DO_FREEZE));
	done(&t, 0);
	assert_true(t.m.has_backend); /* kept for inspection */
	sample(&t, &o);
	assert_int_equal(t.out.n, 0); /* and no longer watched */
	/* the operator restarts it from there */
	assert_int_equal(feed(&t, (CellInput){ .kind = CELL_INPUT_START }), 0);
	assert_true(find(&t, CELL_DO_BOOT)->reuse);

	t_init(&t);
	t.rs.on[FAILURE_STUCK] = ACTION_NONE;
	t_running(&t);
	t.now += 31 * MS;
	o = obs(&t, WARDEN_INMATE_RUNNING);
	sample(&t, &o);
	assert_int_equal(t.m.state, CELL_FAILED);
	assert_int_equal(sample_at(&t), t.now + 10 * MS); /* still watched */
	assert_null(find(&t, CELL_DO_BOOT));
	t.now += 10 * MS;
	beat(&t, WARDEN_INMATE_RUNNING);
	assert_int_equal(t.m.state, CELL_RUNNING);
	assert_string_equal(t.m.state_reason, "beating again");
}

static void test_degraded(void **state) {
	T t;
	(void)state;
	t_init(&t);
	t_running(&t);
	t.seq++;
	CellObservation o = obs(&t, WARDEN_INMATE_DEGRADED);
	memcpy(o.app, "sensor\x7f\x80", 8);
	sample(&t, &o);
	assert_int_equal(t.m.state, CELL_DEGRADED);
	assert_string_equal(t.m.state_reason, "inmate reports degraded: sensor??");
	beat(&t, WARDEN_INMATE_RUNNING);
	assert_int_equal(t.m.state, CELL_RUNNING);
	assert_string_equal(t.m.state_reason, "inmate reports running");
}

/* The link monitor's verdict (network.c) rides on the observation. */
static void test_link_degraded(void **state) {
	T t;
	(void)state;
	t_init(&t);
	t_running(&t);
	t.seq++;
	CellObservation o = obs(&t, WARDEN_INMATE_RUNNING);
	snprintf(o.link_problem, sizeof o.link_problem, "network link wd-a is down");
	sample(&t, &o);
	assert_int_equal(t.m.state, CELL_DEGRADED);
	assert_string_equal(t.m.state_reason, "network link wd-a is down");
	assert_non_null(find_state(&t, CELL_DEGRADED));
	/* still down: no new transition */
	t.seq++;
	o = obs(&t, WARDEN_INMATE_RUNNING);
	snprintf(o.link_problem, sizeof o.link_problem, "network link wd-a is down");
	sample(&t, &o);
	assert_null(find(&t, CELL_DO_STATE));
	/* back up */
	t.seq++;
	o = obs(&t, WARDEN_INMATE_RUNNING);
	sample(&t, &o);
	assert_int_equal(t.m.state, CELL_RUNNING);
	assert_string_equal(t.m.state_reason, "network link restored");
	/* the inmate's own verdict comes before the link's */
	t.seq++;
	o = obs(&t, WARDEN_INMATE_DEGRADED);
	snprintf(o.link_problem, sizeof o.link_problem, "carrier lost on wd-a");
	sample(&t, &o);
	assert_string_equal(t.m.state_reason, "inmate reports degraded");
	beat(&t, WARDEN_INMATE_RUNNING);
	assert_string_equal(t.m.state_reason, "inmate reports running");
}

static void test_backoff_and_budget_stop(void **state) {
	T t;
	(void)state;
	t_init(&t);
	t.rs.backoff_initial_ms = 100;
	t_running(&t);
	for (unsigned i = 1; i <= 3; i++) {
		CellObservation o = obs(&t, WARDEN_INMATE_PANICKED);
		sample(&t, &o);
		assert_int_equal(t.m.state, CELL_FAILED);
		uint64_t delay = 100 * MS << (i - 1);
		assert_int_equal(timer_at(&t), t.now + delay);
		assert_int_equal(t.m.restart_due_ns, t.now + delay);
		/* an early timer (a coalesced one) does not restart yet */
		feed(&t, (CellInput){ .kind = CELL_INPUT_TIMER });
		assert_int_equal(t.m.state, CELL_FAILED);
		t.now += delay;
		feed(&t, (CellInput){ .kind = CELL_INPUT_TIMER });
		assert_int_equal(t.m.state, CELL_STARTING);
		assert_int_equal(t.m.restarts, i);
		done(&t, 0);
		t.now += MS;
		beat(&t, WARDEN_INMATE_RUNNING);
		assert_int_equal(t.m.state, CELL_RUNNING);
	}
	/* the fourth failure within the window exhausts the budget */
	CellObservation o = obs(&t, WARDEN_INMATE_PANICKED);
	sample(&t, &o);
	assert_int_equal(t.m.state, CELL_FAILED);
	assert_non_null(find(&t, CELL_DO_DESTROY));
	assert_non_null(strstr(t.m.state_reason, "restart budget exhausted (3 restarts in 60 s), stop"));
	assert_non_null(strstr(t.m.last_failure_reason, "; restart budget exhausted"));
	assert_null(find(&t, CELL_DO_HYPERVISOR_RESTART));
}

static void test_backoff_resets_after_healthy_stretch(void **state) {
	T t;
	(void)state;
	t_init(&t);
	t.rs.backoff_initial_ms = 100;
	t.rs.max_restarts = 100;
	t_running(&t);
	CellObservation o = obs(&t, WARDEN_INMATE_PANICKED);
	sample(&t, &o);
	t.now += 100 * MS;
	feed(&t, (CellInput){ .kind = CELL_INPUT_TIMER });
	done(&t, 0);
	beat(&t, WARDEN_INMATE_RUNNING);
	assert_int_equal(t.m.policy.consecutive, 1);
	/* ten healthy seconds later the next failure starts from the first step */
	for (int i = 0; i < 1001; i++) {
		t.now += 10 * MS;
		beat(&t, WARDEN_INMATE_RUNNING);
	}
	assert_int_equal(t.m.policy.consecutive, 0);
	o = obs(&t, WARDEN_INMATE_PANICKED);
	sample(&t, &o);
	assert_int_equal(timer_at(&t), t.now + 100 * MS);
}

static void test_budget_hypervisor_restart(void **state) {
	T t;
	(void)state;
	t_init(&t);
	t.rs.max_restarts = 0;
	t.rs.on_exhausted = EXHAUSTED_HYPERVISOR_RESTART;
	t_running(&t);
	CellObservation o = obs(&t, WARDEN_INMATE_PANICKED);
	sample(&t, &o);
	assert_int_equal(t.m.state, CELL_FAILED);
	const CellAction *a = find(&t, CELL_DO_HYPERVISOR_RESTART);
	assert_non_null(a);
	assert_non_null(strstr(a->text, "hypervisor-restart"));
	/* the manager then stops every cell: this one too */
	feed(&t, (CellInput){ .kind = CELL_INPUT_STOP, .reason = "hypervisor restart" });
	assert_int_equal(t.m.state, CELL_STOPPING);
	done(&t, 0);
	assert_int_equal(t.m.state, CELL_STOPPED);
	assert_false(t.m.held);
	assert_int_equal(feed(&t, (CellInput){ .kind = CELL_INPUT_START }), 0);
}

static void test_failed_restart_goes_through_policy(void **state) {
	T t;
	(void)state;
	t_init(&t);
	t.rs.backoff_initial_ms = 50;
	t_running(&t);
	CellObservation o = obs(&t, WARDEN_INMATE_PANICKED);
	sample(&t, &o);
	t.now += 50 * MS;
	feed(&t, (CellInput){ .kind = CELL_INPUT_TIMER });
	assert_int_equal(t.m.op, CELL_OP_BOOT);
	/* the runner could not be started */
	done(&t, -ENOENT);
	assert_int_equal(t.m.state, CELL_FAILED);
	assert_int_equal(t.m.failures[FAILURE_CRASH], 1);
	assert_non_null(strstr(t.m.last_failure_reason, "restart failed: No such file or directory"));
	/* with backoff, and counted against the budget */
	assert_int_equal(timer_at(&t), t.now + 100 * MS);
	t.now += 100 * MS;
	feed(&t, (CellInput){ .kind = CELL_INPUT_TIMER });
	done(&t, -ENOENT);
	t.now += 200 * MS;
	feed(&t, (CellInput){ .kind = CELL_INPUT_TIMER });
	done(&t, -ENOENT);
	assert_int_equal(t.m.state, CELL_FAILED);
	assert_non_null(strstr(t.m.state_reason, "restart budget exhausted"));
	assert_null(find(&t, CELL_DO_BOOT));
	assert_null(find(&t, CELL_DO_DESTROY)); /* nothing left to destroy */
}

static void test_operator_start_fails(void **state) {
	T t;
	(void)state;
	t_init(&t);
	t.rs.backoff_initial_ms = 10;
	feed(&t, (CellInput){ .kind = CELL_INPUT_START });
	done(&t, -ENOEXEC);
	/* the operator sees it fail, and the policy retries it */
	assert_non_null(find_state(&t, CELL_FAILED));
	assert_string_equal(t.m.last_failure_reason, "start failed: Exec format error");
	assert_int_equal(t.m.failures[FAILURE_CRASH], 1);
	assert_int_equal(timer_at(&t), t.now + 10 * MS);
	t.now += 10 * MS;
	feed(&t, (CellInput){ .kind = CELL_INPUT_TIMER });
	assert_non_null(find(&t, CELL_DO_BOOT));
	done(&t, 0);
	beat(&t, WARDEN_INMATE_RUNNING);
	assert_int_equal(t.m.state, CELL_RUNNING);
	/* with on_crash: stop it just stays failed */
	t_init(&t);
	t.rs.on[FAILURE_CRASH] = ACTION_STOP;
	feed(&t, (CellInput){ .kind = CELL_INPUT_START });
	done(&t, -ENOEXEC);
	assert_int_equal(t.m.state, CELL_FAILED);
	assert_null(find(&t, CELL_DO_BOOT));
	assert_null(find(&t, CELL_DO_DESTROY));
	assert_int_equal(feed(&t, (CellInput){ .kind = CELL_INPUT_START }), 0);
}

static void test_stop(void **state) {
	T t;
	(void)state;
	t_init(&t);
	/* stopping a stopped cell changes nothing */
	assert_int_equal(feed(&t, (CellInput){ .kind = CELL_INPUT_STOP }), 0);
	assert_null(find(&t, CELL_DO_STATE));

	t_running(&t);
	feed(&t, (CellInput){ .kind = CELL_INPUT_STOP, .reason = "stop requested", .by_operator = true });
	assert_int_equal(t.m.state, CELL_STOPPING);
	assert_non_null(find(&t, CELL_DO_DESTROY));
	assert_int_equal(sample_at(&t), 0);
	assert_true(t.m.held);
	assert_non_null(find(&t, CELL_DO_SAVE)); /* the hold outlives the daemon */
	/* the process exit the destroy causes is the request's business */
	feed(&t, (CellInput){ .kind = CELL_INPUT_EXITED });
	assert_int_equal(t.out.n, 0);
	done(&t, 0);
	assert_int_equal(t.m.state, CELL_STOPPED);
	assert_string_equal(t.m.state_reason, "stop requested");
	/* a start clears the operator's hold */
	feed(&t, (CellInput){ .kind = CELL_INPUT_START });
	assert_false(t.m.held);
}

static void test_stop_races_boot(void **state) {
	T t;
	(void)state;
	t_init(&t);
	feed(&t, (CellInput){ .kind = CELL_INPUT_START });
	feed(&t, (CellInput){ .kind = CELL_INPUT_STOP, .reason = "stop requested" });
	assert_int_equal(t.m.state, CELL_STOPPING);
	assert_null(find(&t, CELL_DO_DESTROY)); /* the handle is the boot's */
	done(&t, 0);
	assert_non_null(find(&t, CELL_DO_DESTROY));
	done(&t, 0);
	assert_int_equal(t.m.state, CELL_STOPPED);

	/* the boot failed meanwhile: stopped all the same */
	t_init(&t);
	feed(&t, (CellInput){ .kind = CELL_INPUT_START });
	feed(&t, (CellInput){ .kind = CELL_INPUT_STOP, .reason = "stop requested" });
	done(&t, -EIO);
	assert_int_equal(t.m.state, CELL_STOPPED);
	assert_int_equal(t.m.failures[FAILURE_CRASH], 0);
}

static void test_restart_and_start_race_requests(void **state) {
	T t;
	(void)state;
	/* restart during a boot: boots again once the first is done */
	t_init(&t);
	feed(&t, (CellInput){ .kind = CELL_INPUT_START });
	assert_int_equal(feed(&t, (CellInput){ .kind = CELL_INPUT_RESTART, .reason = "restart requested" }), 0);
	assert_non_null(find_emit(&t, "action"));
	assert_null(find(&t, CELL_DO_BOOT));
	done(&t, 0);
	assert_non_null(find(&t, CELL_DO_BOOT));
	done(&t, 0);
	beat(&t, WARDEN_INMATE_RUNNING);
	assert_int_equal(t.m.state, CELL_RUNNING);

	/* start during a stop: starts once the teardown is done */
	feed(&t, (CellInput){ .kind = CELL_INPUT_STOP, .reason = "stop requested" });
	assert_int_equal(feed(&t, (CellInput){ .kind = CELL_INPUT_START }), 0);
	done(&t, 0);
	assert_int_equal(t.m.state, CELL_STARTING);
	assert_non_null(find(&t, CELL_DO_BOOT));
	assert_false(find(&t, CELL_DO_BOOT)->reuse);

	/* restart while a failure waits for its backoff: the operator wins */
	t_init(&t);
	t.rs.backoff_initial_ms = 1000;
	t_running(&t);
	CellObservation o = obs(&t, WARDEN_INMATE_PANICKED);
	sample(&t, &o);
	assert_true(t.m.restart_due_ns > 0);
	feed(&t, (CellInput){ .kind = CELL_INPUT_RESTART, .reason = "restart requested" });
	assert_int_equal(t.m.restart_due_ns, 0);
	assert_int_equal(timer_at(&t), 0);
	assert_int_equal(t.m.state, CELL_STARTING);
	done(&t, 0);
	beat(&t, WARDEN_INMATE_RUNNING);
	/* and the recovery is measured from the failure */
	assert_non_null(find_emit(&t, "recovered"));
	/* the backoff's deadline, had it fired late, does nothing now */
	feed(&t, (CellInput){ .kind = CELL_INPUT_TIMER });
	assert_int_equal(t.out.n, 0);

	/* a failure while the operator's stop tears down is not one */
	t_init(&t);
	t_running(&t);
	feed(&t, (CellInput){ .kind = CELL_INPUT_STOP, .reason = "stop requested" });
	sample(&t, &o);
	assert_int_equal(t.out.n, 0);
	assert_int_equal(t.m.failures[FAILURE_PANIC], 0);

	/* start during a freeze (preserve), restart during a freeze */
	t_init(&t);
	t.rs.on[FAILURE_PANIC] = ACTION_PRESERVE;
	t_running(&t);
	sample(&t, &o);
	assert_int_equal(t.m.op, CELL_OP_FREEZE);
	assert_int_equal(feed(&t, (CellInput){ .kind = CELL_INPUT_START }), 0);
	done(&t, 0);
	assert_int_equal(t.m.state, CELL_STARTING);
	assert_true(find(&t, CELL_DO_BOOT)->reuse);

	t_init(&t);
	t.rs.on[FAILURE_PANIC] = ACTION_PRESERVE;
	t_running(&t);
	sample(&t, &o);
	feed(&t, (CellInput){ .kind = CELL_INPUT_STOP, .reason = "stop requested" });
	done(&t, 0);
	assert_non_null(find(&t, CELL_DO_DESTROY));
	done(&t, 0);
	assert_int_equal(t.m.state, CELL_STOPPED);
}

static void test_shutdown(void **state) {
	T t;
	(void)state;
	t_init(&t);
	assert_int_equal(feed(&t, (CellInput){ .kind = CELL_INPUT_SHUTDOWN }), -EALREADY);
	feed(&t, (CellInput){ .kind = CELL_INPUT_START });
	assert_int_equal(feed(&t, (CellInput){ .kind = CELL_INPUT_SHUTDOWN }), -EBUSY);
	done(&t, 0);
	beat(&t, WARDEN_INMATE_RUNNING);

	/* graceful: the inmate halts in time */
	assert_int_equal(feed(&t, (CellInput){ .kind = CELL_INPUT_SHUTDOWN }), 0);
	assert_int_equal(find(&t, CELL_DO_MAIL)->mail, WARDEN_CMD_SHUTDOWN);
	assert_int_equal(timer_at(&t), t.now + 200 * MS);
	assert_int_equal(t.m.state, CELL_STOPPING);
	assert_int_equal(feed(&t, (CellInput){ .kind = CELL_INPUT_SHUTDOWN }), 0);
	assert_int_equal(feed(&t, (CellInput){ .kind = CELL_INPUT_START }), -EBUSY);
	/* a stall while stopping is not a failure */
	t.now += 50 * MS;
	CellObservation o = obs(&t, WARDEN_INMATE_STOPPING);
	sample(&t, &o);
	assert_int_equal(t.m.state, CELL_STOPPING);
	o = obs(&t, WARDEN_INMATE_HALTED);
	sample(&t, &o);
	assert_non_null(find(&t, CELL_DO_DESTROY));
	done(&t, 0);
	assert_int_equal(t.m.state, CELL_STOPPED);
	assert_string_equal(t.m.state_reason, "inmate halted after a shutdown request");
	assert_int_equal(t.m.failures[FAILURE_EXIT], 0);

	/* past its deadline: destroyed */
	t_running(&t);
	feed(&t, (CellInput){ .kind = CELL_INPUT_SHUTDOWN });
	t.now += 200 * MS;
	feed(&t, (CellInput){ .kind = CELL_INPUT_TIMER });
	assert_non_null(find(&t, CELL_DO_LOG));
	assert_non_null(find(&t, CELL_DO_DESTROY));
	done(&t, 0);
	assert_int_equal(t.m.state, CELL_STOPPED);
	assert_string_equal(t.m.state_reason, "shutdown deadline of 200 ms passed; cell destroyed");

	/* the process exits during the shutdown */
	t_running(&t);
	feed(&t, (CellInput){ .kind = CELL_INPUT_SHUTDOWN });
	feed(&t, (CellInput){ .kind = CELL_INPUT_EXITED });
	assert_int_equal(t.m.state, CELL_STOPPED);
	assert_int_equal(timer_at(&t), 0);
	assert_int_equal(t.m.failures[FAILURE_CRASH], 0);

	/* or the status page says it is gone */
	t_running(&t);
	feed(&t, (CellInput){ .kind = CELL_INPUT_SHUTDOWN });
	o = (CellObservation){ .backend_state = BACKEND_CELL_GONE };
	sample(&t, &o);
	done(&t, 0);
	assert_int_equal(t.m.state, CELL_STOPPED);
	assert_int_equal(t.m.failures[FAILURE_CRASH], 0);
}

static void test_adoption(void **state) {
	T t;
	(void)state;
	/* a running cell comes back */
	t_init(&t);
	CellObservation o = { .backend_state = BACKEND_CELL_RUNNING };
	feed(&t, (CellInput){ .kind = CELL_INPUT_ADOPTED, .obs = &o });
	assert_int_equal(t.m.state, CELL_STARTING);
	assert_true(t.m.has_backend);
	assert_string_equal(t.m.state_reason, "adopted after a daemon restart");
	assert_int_equal(sample_at(&t), t.now + 1000);
	beat(&t, WARDEN_INMATE_RUNNING);
	assert_int_equal(t.m.state, CELL_RUNNING);

	/* a restart was pending: its deadline is kept, not run twice */
	t_init(&t);
	t.m.restart_due_ns = t.now + 300 * MS;
	feed(&t, (CellInput){ .kind = CELL_INPUT_ADOPTED, .obs = &o });
	assert_int_equal(t.m.state, CELL_FAILED);
	assert_int_equal(timer_at(&t), t.now + 300 * MS);
	assert_null(find(&t, CELL_DO_BOOT));
	t.now += 300 * MS;
	feed(&t, (CellInput){ .kind = CELL_INPUT_TIMER });
	assert_non_null(find(&t, CELL_DO_BOOT));
	assert_int_equal(t.m.restarts, 1);

	/* preserved for inspection stays so */
	t_init(&t);
	t.m.state = CELL_FAILED;
	o.backend_state = BACKEND_CELL_STOPPED;
	feed(&t, (CellInput){ .kind = CELL_INPUT_ADOPTED, .obs = &o });
	assert_int_equal(t.m.state, CELL_FAILED);
	assert_int_equal(t.out.n, 0);

	/* nothing to adopt (after a reboot): pending work is forgotten */
	t_init(&t);
	t.m.state = CELL_FAILED;
	t.m.restart_due_ns = 5;
	t.m.failed_ns = 4;
	feed(&t, (CellInput){ .kind = CELL_INPUT_ORPHANED });
	assert_int_equal(t.m.state, CELL_STOPPED);
	assert_int_equal(t.m.restart_due_ns, 0);
	assert_int_equal(t.m.failed_ns, 0);
	assert_int_equal(t.out.n, 0);
}

static void test_sample_guards(void **state) {
	T t;
	(void)state;
	t_init(&t);
	CellObservation o = obs(&t, WARDEN_INMATE_RUNNING);
	/* no backend cell: nothing to look at */
	sample(&t, &o);
	assert_int_equal(t.out.n, 0);
	sample(&t, NULL);
	assert_int_equal(t.out.n, 0);
	/* an uninitialised comm region is not invalid: booting */
	feed(&t, (CellInput){ .kind = CELL_INPUT_START });
	done(&t, 0);
	o = (CellObservation){ .backend_state = BACKEND_CELL_RUNNING };
	sample(&t, &o);
	assert_int_equal(t.m.state, CELL_STARTING);
	assert_int_equal(t.m.failures[FAILURE_PANIC], 0);
	/* a beat on the inmate's own clock that is implausible is dated now */
	t.seq = 7;
	o = obs(&t, WARDEN_INMATE_RUNNING);
	o.beat_ns = t.now + SEC;
	sample(&t, &o);
	assert_int_equal(t.m.hb_changed_ns, t.now);
	/* an exit with no backend cell is nothing */
	t_init(&t);
	feed(&t, (CellInput){ .kind = CELL_INPUT_EXITED });
	assert_int_equal(t.out.n, 0);
	/* a completion with nothing in flight is nothing */
	done(&t, 0);
	assert_int_equal(t.out.n, 0);
	assert_int_equal(feed(&t, (CellInput){ .kind = _CELL_INPUT_MAX }), -EINVAL);
}

static void test_sanitize(void **state) {
	char buf[8];
	(void)state;
	cell_sanitize_text(buf, sizeof buf, "ab\ncd\xc3\xa9xyz", 64);
	assert_string_equal(buf, "ab?cd??");
	cell_sanitize_text(buf, sizeof buf, "abcdef", 3);
	assert_string_equal(buf, "abc");
	cell_sanitize_text(buf, 1, "abc", 3);
	assert_string_equal(buf, "");
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tables),
		cmocka_unit_test(test_start_boot_running),
		cmocka_unit_test(test_boot_timeout),
		cmocka_unit_test(test_panic_by_inmate_and_recovery),
		cmocka_unit_test(test_panic_by_hypervisor),
		cmocka_unit_test(test_comm_invalid),
		cmocka_unit_test(test_stuck_and_deadline),
		cmocka_unit_test(test_stall_when_host_starved),
		cmocka_unit_test(test_stall_cpu_starved_or_stuck),
		cmocka_unit_test(test_halt_exit_and_vcpu_stop),
		cmocka_unit_test(test_crash_by_exit_and_by_status),
		cmocka_unit_test(test_actions_stop_preserve_none),
		cmocka_unit_test(test_degraded),
		cmocka_unit_test(test_link_degraded),
		cmocka_unit_test(test_backoff_and_budget_stop),
		cmocka_unit_test(test_backoff_resets_after_healthy_stretch),
		cmocka_unit_test(test_budget_hypervisor_restart),
		cmocka_unit_test(test_failed_restart_goes_through_policy),
		cmocka_unit_test(test_operator_start_fails),
		cmocka_unit_test(test_stop),
		cmocka_unit_test(test_stop_races_boot),
		cmocka_unit_test(test_restart_and_start_race_requests),
		cmocka_unit_test(test_shutdown),
		cmocka_unit_test(test_adoption),
		cmocka_unit_test(test_sample_guards),
		cmocka_unit_test(test_sanitize),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
