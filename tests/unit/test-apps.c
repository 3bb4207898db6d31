/* SPDX-License-Identifier: MIT */
/*
 * The applications table (api/warden/apps.h) and the daemon's reader of it
 * (daemon/apps.c): the layout, the clearing before a boot, the reader's
 * retries and give-up, sanitising what a hostile inmate writes, the JSON
 * and the Prometheus lines.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "apps.h"

static _Alignas(8) uint8_t comm[WARDEN_COMM_SIZE];

static volatile struct warden_apps *table(void) {
	memset(comm, 0, sizeof comm);
	return warden_apps_of(comm);
}

static void slot_set(volatile struct warden_apps *t, unsigned i, const char *name, uint32_t state, uint32_t period,
                     uint32_t misses, uint32_t flags, uint64_t beats) {
	warden_apps_begin(t);
	for (unsigned k = 0; k < WARDEN_APPS_NAME_LEN; k++)
		t->app[i].name[k] = k < strlen(name) ? name[k] : 0;
	t->app[i].state = state;
	t->app[i].period_ms = period;
	t->app[i].misses = misses;
	t->app[i].flags = flags;
	t->app[i].beats = beats;
	warden_apps_end(t);
}

static void test_layout(void **state) {
	(void)state;
	assert_int_equal(WARDEN_APPS_OFFSET, 3072);
	assert_int_equal(sizeof(struct warden_apps), 1024);
	assert_int_equal(offsetof(struct warden_apps, seq), 8);
	assert_int_equal(offsetof(struct warden_apps, n_slots), 12);
	assert_int_equal(offsetof(struct warden_apps, app), 16);
	assert_int_equal(sizeof(struct warden_app_slot), 56);
	assert_int_equal(offsetof(struct warden_app_slot, state), 32);
	assert_int_equal(offsetof(struct warden_app_slot, period_ms), 36);
	assert_int_equal(offsetof(struct warden_app_slot, misses), 40);
	assert_int_equal(offsetof(struct warden_app_slot, flags), 44);
	assert_int_equal(offsetof(struct warden_app_slot, beats), 48);
	/* above the daemon's mailbox fields, inside the page */
	assert_true(WARDEN_APPS_OFFSET >= offsetof(struct warden_comm, region_size) + 4);
	assert_true(WARDEN_APPS_OFFSET + WARDEN_APPS_SIZE <= WARDEN_COMM_SIZE);
	assert_int_equal(WARDEN_APPS_NAME_LEN, WARDEN_COMM_APP_LEN);
}

static void test_empty_region_has_no_table(void **state) {
	struct warden_apps out;
	(void)state;
	table();
	assert_int_equal(apps_read(comm, &out), -ENODATA);
}

static void test_slots_json_and_metrics(void **state) {
	volatile struct warden_apps *t = table();
	struct warden_apps out;
	(void)state;

	warden_apps_init(t, 40);
	assert_int_equal(t->n_slots, WARDEN_APPS_MAX); /* clamped */
	assert_int_equal(t->seq % 2, 0);
	slot_set(t, 0, "payload", WARDEN_APP_LATE, 100, 2, WARDEN_APP_CLOSED, 31);
	slot_set(t, 3, "steady.1", WARDEN_APP_ON_TIME, 250, 0, 0, 7);
	assert_int_equal(apps_read(comm, &out), 0);

	json_t *j = apps_to_json(&out);
	assert_non_null(j);
	assert_int_equal(json_array_size(j), 2);
	json_t *a = json_array_get(j, 0), *b = json_array_get(j, 1);
	assert_string_equal(json_string_value(json_object_get(a, "name")), "payload");
	assert_string_equal(json_string_value(json_object_get(a, "state")), "late");
	assert_true(json_is_true(json_object_get(a, "closed")));
	assert_int_equal(json_integer_value(json_object_get(a, "period_ms")), 100);
	assert_int_equal(json_integer_value(json_object_get(a, "misses")), 2);
	assert_int_equal(json_integer_value(json_object_get(a, "beats")), 31);
	assert_string_equal(json_string_value(json_object_get(b, "name")), "steady.1");
	assert_string_equal(json_string_value(json_object_get(b, "state")), "on-time");
	assert_true(json_is_false(json_object_get(b, "closed")));
	json_decref(j);

	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	apps_prom(f, "linux", &out, 0);
	apps_prom(f, "linux", &out, 1);
	fclose(f);
	assert_string_equal(buf, "warden_cell_application_late{cell=\"linux\",app=\"payload\"} 1\n"
	                         "warden_cell_application_late{cell=\"linux\",app=\"steady.1\"} 0\n"
	                         "warden_cell_application_misses_total{cell=\"linux\",app=\"payload\"} 2\n"
	                         "warden_cell_application_misses_total{cell=\"linux\",app=\"steady.1\"} 0\n");
	free(buf);

	/* a freed slot disappears */
	slot_set(t, 0, "", WARDEN_APP_FREE, 0, 0, 0, 0);
	assert_int_equal(apps_read(comm, &out), 0);
	j = apps_to_json(&out);
	assert_int_equal(json_array_size(j), 1);
	json_decref(j);
}

static void test_torn_read_gives_up(void **state) {
	volatile struct warden_apps *t = table();
	struct warden_apps out;
	(void)state;

	warden_apps_init(t, WARDEN_APPS_MAX);
	warden_apps_begin(t); /* a writer that never finishes */
	assert_int_equal(apps_read(comm, &out), -EAGAIN);
	warden_apps_end(t);
	assert_int_equal(apps_read(comm, &out), 0);
	/* another version is no table at all */
	t->version = 2;
	assert_int_equal(apps_read(comm, &out), -ENODATA);
}

static void test_hostile_table_is_sanitised(void **state) {
	volatile struct warden_apps *t = table();
	struct warden_apps out;
	(void)state;

	warden_apps_init(t, WARDEN_APPS_MAX);
	t->n_slots = 1000;
	for (unsigned i = 0; i < WARDEN_APPS_MAX; i++) {
		for (unsigned k = 0; k < WARDEN_APPS_NAME_LEN; k++)
			t->app[i].name[k] = (char)(k % 2 ? '"' : 0xc3); /* unterminated, not the alphabet */
		t->app[i].state = i % 2 ? 77 : WARDEN_APP_LATE;
		t->app[i].flags = 0xffffffffu;
	}
	t->seq += 2;
	assert_int_equal(apps_read(comm, &out), 0);
	assert_int_equal(out.n_slots, WARDEN_APPS_MAX);
	unsigned used = 0;
	for (unsigned i = 0; i < WARDEN_APPS_MAX; i++) {
		assert_int_equal(strlen(out.app[i].name), WARDEN_APPS_NAME_LEN - 1);
		assert_null(strpbrk(out.app[i].name, "\"\\\n{}"));
		assert_int_equal(out.app[i].flags, WARDEN_APP_CLOSED);
		assert_true(out.app[i].state < WARDEN_APP_STATE_MAX);
		used += out.app[i].state != WARDEN_APP_FREE;
	}
	assert_int_equal(used, WARDEN_APPS_MAX / 2); /* unknown states are free */
	json_t *j = apps_to_json(&out);
	assert_int_equal(json_array_size(j), WARDEN_APPS_MAX / 2);
	char *s = json_dumps(j, 0);
	assert_non_null(s); /* valid UTF-8 throughout, or jansson would refuse */
	free(s);
	json_decref(j);
}

static void test_clear_before_boot_keeps_the_mailbox(void **state) {
	volatile struct warden_comm *c = (volatile struct warden_comm *)comm;
	volatile struct warden_apps *t = table();
	struct warden_apps out;
	(void)state;

	memset(comm, 0xa5, sizeof comm);
	warden_apps_init(t, WARDEN_APPS_MAX);
	warden_comm_clear_inmate(comm);
	assert_int_equal(apps_read(comm, &out), -ENODATA);
	for (size_t i = 0; i < WARDEN_COMM_MAILBOX_OFFSET; i++)
		assert_int_equal(comm[i], 0);
	/* the daemon's own bytes stay */
	assert_int_equal(c->cmd_seq, 0xa5a5a5a5a5a5a5a5ull);
	assert_int_equal(comm[WARDEN_APPS_OFFSET - 1], 0xa5);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_empty_region_has_no_table),
		cmocka_unit_test(test_slots_json_and_metrics),
		cmocka_unit_test(test_torn_read_gives_up),
		cmocka_unit_test(test_hostile_table_is_sanitised),
		cmocka_unit_test(test_clear_before_boot_keeps_the_mailbox),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests_name("apps", tests, NULL, NULL);
}
