/* SPDX-License-Identifier: MIT */
/*
 * The results area (api/warden/results.h) and the daemon's reader of it
 * (daemon/results.c): the layout, the writer's seqcount, the reader's
 * retries and give-up, sanitising what a hostile inmate writes, the JSON
 * and the Prometheus lines.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "results.h"

static _Alignas(8) uint8_t comm[WARDEN_COMM_SIZE];

static volatile struct warden_results *area(void) {
	memset(comm, 0, sizeof comm);
	return warden_results_of(comm);
}

static void test_layout(void **state) {
	(void)state;
	assert_int_equal(sizeof(struct warden_results), 1536);
	assert_int_equal(offsetof(struct warden_results, seq), 8);
	assert_int_equal(offsetof(struct warden_results, values), 16);
	assert_int_equal(sizeof(struct warden_result_value), 24);
	assert_int_equal(offsetof(struct warden_results, hist), 208);
	assert_int_equal(offsetof(struct warden_results_hist, bucket), 64);
	assert_int_equal(WARDEN_RESULTS_OFFSET, 512);
	/* inside inmate_reserved, after everything revision 1 defines */
	assert_true(WARDEN_RESULTS_OFFSET >= offsetof(struct warden_comm, inmate_reserved));
	assert_true(WARDEN_RESULTS_OFFSET + WARDEN_RESULTS_SIZE <= WARDEN_COMM_MAILBOX_OFFSET);
}

static void test_empty_region_has_no_results(void **state) {
	struct warden_results out;
	(void)state;
	area();
	assert_int_equal(results_read(comm, &out), -ENODATA);
}

static void test_values_and_histogram(void **state) {
	volatile struct warden_results *r = area();
	struct warden_results out;
	(void)state;

	warden_results_init(r, "latency", 1000, 400);
	assert_int_equal(r->hist.n_buckets, WARDEN_RESULTS_BUCKETS); /* clamped */
	assert_int_equal(r->seq % 2, 0);
	assert_int_equal(warden_results_put(r, "solutions", WARDEN_RESULT_COUNTER, 14200), 0);
	assert_int_equal(warden_results_put(r, "iter_ns", WARDEN_RESULT_NS, 5), 0);
	assert_int_equal(warden_results_put(r, "iter_ns", WARDEN_RESULT_NS, 7), 0); /* same slot */
	assert_int_equal(r->n_values, 2);
	for (int i = 0; i < 6; i++)
		assert_int_equal(warden_results_put(r, (const char[]){ (char)('a' + i), 0 }, WARDEN_RESULT_GAUGE, 1), 0);
	assert_int_equal(warden_results_put(r, "full", WARDEN_RESULT_GAUGE, 1), -1);
	warden_results_sample(r, 1500);   /* bucket 1 */
	warden_results_sample(r, 999);    /* bucket 0 */
	warden_results_sample(r, 1000000); /* overflow */
	assert_int_equal(r->seq % 2, 0);

	assert_int_equal(results_read(comm, &out), 0);
	assert_int_equal(out.n_values, 8);
	assert_string_equal(out.values[0].name, "solutions");
	assert_int_equal(out.values[0].value, 14200);
	assert_int_equal(out.values[1].value, 7);
	assert_int_equal(out.hist.count, 3);
	assert_int_equal(out.hist.min_ns, 999);
	assert_int_equal(out.hist.max_ns, 1000000);
	assert_int_equal(out.hist.overflow, 1);
	assert_int_equal(out.hist.bucket[0], 1);
	assert_int_equal(out.hist.bucket[1], 1);

	json_t *j = results_to_json(&out);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "values"), "solutions")), 14200);
	json_t *h = json_object_get(j, "histogram");
	assert_int_equal(json_integer_value(json_object_get(h, "avg_ns")), (1500 + 999 + 1000000) / 3);
	assert_int_equal(json_array_size(json_object_get(h, "buckets")), 2); /* trailing zeros dropped */
	json_decref(j);

	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	results_prom_values(f, "c", &out);
	results_prom_histogram(f, "c", &out);
	fclose(f);
	assert_non_null(strstr(buf, "warden_cell_result{cell=\"c\",name=\"solutions\",kind=\"counter\"} 14200\n"));
	assert_non_null(strstr(buf, "warden_cell_result_latency_seconds_bucket{cell=\"c\",name=\"latency\",le=\"2e-06\"} 2\n"));
	assert_non_null(strstr(buf, "warden_cell_result_latency_seconds_bucket{cell=\"c\",name=\"latency\",le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(buf, "warden_cell_result_latency_seconds_count{cell=\"c\",name=\"latency\"} 3\n"));
	free(buf);

	/* re-initialising keeps seq growing: a reader never sees it go back */
	uint32_t seq = r->seq;
	warden_results_init(r, "", 1, 1);
	assert_true(r->seq > seq);
	assert_int_equal(r->seq % 2, 0);
}

static void test_torn_read_gives_up(void **state) {
	volatile struct warden_results *r = area();
	struct warden_results out;
	(void)state;

	warden_results_init(r, "x", 1000, 10);
	warden_results_begin(r); /* a writer stuck mid-write */
	assert_int_equal(results_read(comm, &out), -EAGAIN);
	warden_results_end(r);
	assert_int_equal(results_read(comm, &out), 0);
}

static void test_wrong_version_is_no_results(void **state) {
	volatile struct warden_results *r = area();
	struct warden_results out;
	(void)state;

	warden_results_init(r, "x", 1000, 10);
	r->version = 2;
	assert_int_equal(results_read(comm, &out), -ENODATA);
}

static void test_hostile_area_is_sanitised(void **state) {
	volatile struct warden_results *r = area();
	struct warden_results out;
	(void)state;

	memset(comm + WARDEN_RESULTS_OFFSET, 0xff, WARDEN_RESULTS_SIZE);
	r->magic = WARDEN_RESULTS_MAGIC;
	r->version = WARDEN_RESULTS_VERSION;
	r->seq = 4;
	assert_int_equal(results_read(comm, &out), 0);
	assert_int_equal(out.n_values, WARDEN_RESULTS_VALUES);
	assert_int_equal(out.hist.n_buckets, WARDEN_RESULTS_BUCKETS);
	for (unsigned i = 0; i < WARDEN_RESULTS_VALUES; i++) {
		assert_int_equal(strlen(out.values[i].name), WARDEN_RESULTS_NAME_LEN - 1);
		assert_null(strpbrk(out.values[i].name, "\"\\\n{}"));
		assert_int_equal(out.values[i].name[0], '_');
	}
	json_t *j = results_to_json(&out);
	assert_non_null(j);
	char *s = json_dumps(j, 0);
	assert_non_null(s);
	free(s);
	json_decref(j);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_empty_region_has_no_results),
		cmocka_unit_test(test_values_and_histogram),
		cmocka_unit_test(test_torn_read_gives_up),
		cmocka_unit_test(test_wrong_version_is_no_results),
		cmocka_unit_test(test_hostile_area_is_sanitised),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests_name("results", tests, NULL, NULL);
}
