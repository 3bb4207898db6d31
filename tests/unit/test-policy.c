/* SPDX-License-Identifier: MIT */
/* The recovery policy engine, walked through time with an injected clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "policy.h"

#define S(x) ((uint64_t)(x) * 1000000000ULL)
#define MS(x) ((uint64_t)(x) * 1000000ULL)

static RecoverySpec spec(void) {
	RecoverySpec r = {
		.on = { [FAILURE_PANIC] = ACTION_RESTART, [FAILURE_STUCK] = ACTION_RESTART,
		        [FAILURE_BOOT_TIMEOUT] = ACTION_RESTART, [FAILURE_CRASH] = ACTION_PRESERVE,
		        [FAILURE_EXIT] = ACTION_STOP },
		.max_restarts = 3,
		.window_s = 10,
		.backoff_initial_ms = 100,
		.backoff_max_ms = 1000,
		.backoff_factor = 2.0,
		.reset_after_s = 30,
		.on_exhausted = EXHAUSTED_STOP,
	};
	return r;
}

static void test_action_per_kind(void **state) {
	RecoverySpec s = spec();
	Policy p;
	(void)state;
	policy_init(&p);
	assert_int_equal(policy_on_failure(&p, &s, FAILURE_CRASH, S(100)).action, ACTION_PRESERVE);
	assert_int_equal(policy_on_failure(&p, &s, FAILURE_EXIT, S(100)).action, ACTION_STOP);
	/* non-restart actions do not spend the budget */
	assert_int_equal(policy_restarts_in_window(&p, &s, S(100)), 0);
	assert_int_equal(policy_on_failure(&p, &s, FAILURE_PANIC, S(100)).action, ACTION_RESTART);
	assert_int_equal(policy_restarts_in_window(&p, &s, S(100)), 1);
}

static void test_backoff_sequence_and_cap(void **state) {
	RecoverySpec s = spec();
	Policy p;
	uint64_t expect[] = { MS(100), MS(200), MS(400), MS(800), MS(1000), MS(1000) };
	(void)state;
	s.max_restarts = 100;
	policy_init(&p);
	for (unsigned i = 0; i < 6; i++) {
		PolicyDecision d = policy_on_failure(&p, &s, FAILURE_PANIC, S(100) + S(i));
		assert_int_equal(d.action, ACTION_RESTART);
		assert_false(d.exhausted);
		assert_int_equal(d.delay_ns, expect[i]);
	}
	assert_int_equal(policy_backoff_ns(&s, 50), MS(1000));
	s.backoff_initial_ms = 0;
	assert_int_equal(policy_backoff_ns(&s, 1), 0);
	assert_int_equal(policy_backoff_ns(&s, 7), 0);
}

static void test_budget_window_edges(void **state) {
	RecoverySpec s = spec();
	Policy p;
	PolicyDecision d;
	(void)state;
	policy_init(&p);
	/* three restarts at t=100, 101, 102 */
	for (int i = 0; i < 3; i++)
		assert_false(policy_on_failure(&p, &s, FAILURE_STUCK, S(100 + i)).exhausted);
	/* a fourth inside the window is refused */
	d = policy_on_failure(&p, &s, FAILURE_STUCK, S(109));
	assert_true(d.exhausted);
	assert_int_equal(d.action, ACTION_STOP);
	/* one nanosecond before the first leaves the window: still refused */
	assert_true(policy_on_failure(&p, &s, FAILURE_STUCK, S(110) - 1).exhausted);
	/* exactly window_s after the first restart it has left the window */
	d = policy_on_failure(&p, &s, FAILURE_STUCK, S(110));
	assert_false(d.exhausted);
	assert_int_equal(d.action, ACTION_RESTART);
	assert_int_equal(policy_restarts_in_window(&p, &s, S(110)), 3);
}

static void test_exhausted_hypervisor_restart(void **state) {
	RecoverySpec s = spec();
	Policy p;
	PolicyDecision d;
	(void)state;
	s.max_restarts = 1;
	s.on_exhausted = EXHAUSTED_HYPERVISOR_RESTART;
	policy_init(&p);
	assert_false(policy_on_failure(&p, &s, FAILURE_PANIC, S(1)).exhausted);
	d = policy_on_failure(&p, &s, FAILURE_PANIC, S(2));
	assert_true(d.exhausted);
	assert_int_equal(d.action, ACTION_RESTART);
	s.max_restarts = 0;
	policy_init(&p);
	assert_true(policy_on_failure(&p, &s, FAILURE_PANIC, S(1)).exhausted);
}

static void test_reset_after_healthy(void **state) {
	RecoverySpec s = spec();
	Policy p;
	(void)state;
	s.max_restarts = 100;
	policy_init(&p);
	policy_on_failure(&p, &s, FAILURE_PANIC, S(100));
	policy_on_failure(&p, &s, FAILURE_PANIC, S(101));
	assert_int_equal(p.consecutive, 2);
	/* healthy, but not long enough */
	policy_on_healthy(&p, &s, S(102), S(102) + S(30) - 1);
	assert_int_equal(p.consecutive, 2);
	assert_int_equal(policy_on_failure(&p, &s, FAILURE_PANIC, S(140)).delay_ns, MS(400));
	/* a full reset_after_s of healthy running starts the backoff over */
	policy_on_healthy(&p, &s, S(141), S(171));
	assert_int_equal(p.consecutive, 0);
	assert_int_equal(policy_on_failure(&p, &s, FAILURE_PANIC, S(172)).delay_ns, MS(100));
}

static void test_large_budget(void **state) {
	RecoverySpec s = spec();
	Policy p;
	(void)state;
	s.max_restarts = 1000;
	s.window_s = 60;
	s.backoff_initial_ms = 0;
	policy_init(&p);
	for (unsigned i = 0; i < 1000; i++)
		assert_false(policy_on_failure(&p, &s, FAILURE_PANIC, S(1000) + MS(10) * i).exhausted);
	assert_true(policy_on_failure(&p, &s, FAILURE_PANIC, S(1011)).exhausted);
	assert_false(policy_on_failure(&p, &s, FAILURE_PANIC, S(1061)).exhausted);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_action_per_kind),
		cmocka_unit_test(test_backoff_sequence_and_cap),
		cmocka_unit_test(test_budget_window_edges),
		cmocka_unit_test(test_exhausted_hypervisor_restart),
		cmocka_unit_test(test_reset_after_healthy),
		cmocka_unit_test(test_large_budget),
	};
	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
