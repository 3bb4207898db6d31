/* SPDX-License-Identifier: MIT */
/* State name tables of daemon/cell.c and the backend interface. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "cell.h"
#include "hypervisor/backend.h"

static void test_cell_state_table(void **state) {
	static const char *const expected[] = { "stopped", "starting", "running", "degraded", "failed", "stopping" };
	(void)state;
	assert_int_equal(_CELL_STATE_MAX, 6);
	for (int s = 0; s < _CELL_STATE_MAX; s++) {
		assert_string_equal(cell_state_to_string(s), expected[s]);
		assert_int_equal(cell_state_from_string(expected[s]), s);
	}
	assert_null(cell_state_to_string(_CELL_STATE_MAX));
	assert_null(cell_state_to_string(_CELL_STATE_INVALID));
	assert_int_equal(cell_state_from_string("running "), _CELL_STATE_INVALID);
	assert_int_equal(cell_state_from_string(NULL), _CELL_STATE_INVALID);
}

static void test_inmate_state_table(void **state) {
	(void)state;
	for (unsigned s = 0; s < WARDEN_INMATE_STATE_MAX; s++)
		assert_non_null(inmate_state_to_string(s));
	assert_string_equal(inmate_state_to_string(WARDEN_INMATE_PANICKED), "panicked");
	assert_string_equal(inmate_state_to_string(WARDEN_INMATE_STATE_MAX), "invalid");
}

static void test_backend_state_table(void **state) {
	(void)state;
	for (int s = 0; s < _BACKEND_CELL_STATE_MAX; s++) {
		const char *n = backend_cell_state_to_string(s);
		assert_non_null(n);
		assert_int_equal(backend_cell_state_from_string(n), s);
	}
	assert_null(backend_cell_state_to_string(_BACKEND_CELL_STATE_MAX));
}

static void test_histogram(void **state) {
	Histogram h = { 0 };
	(void)state;
	histogram_observe(&h, 0.00004);  /* first bucket */
	histogram_observe(&h, 0.0003);   /* 0.0005 */
	histogram_observe(&h, 100.0);    /* only +Inf */
	assert_int_equal(h.count, 3);
	assert_int_equal(h.bucket[0], 1);
	assert_int_equal(h.bucket[3], 1);
	uint64_t sum = 0;
	for (int i = 0; i < HIST_BUCKETS; i++)
		sum += h.bucket[i];
	assert_int_equal(sum, 2);
	for (int i = 1; i < HIST_BUCKETS; i++)
		assert_true(hist_bounds[i] > hist_bounds[i - 1]);
	assert_true(hist_bounds[0] < 0.001); /* resolves sub-millisecond values */
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cell_state_table),
		cmocka_unit_test(test_inmate_state_table),
		cmocka_unit_test(test_backend_state_table),
		cmocka_unit_test(test_histogram),
	};
	return cmocka_run_group_tests_name("cell", tests, NULL, NULL);
}
