/* SPDX-License-Identifier: MIT */
/*
 * The name rules wardend and wardenctl share (daemon/names.c), pinned at
 * their edges. They are the API contract: a change here is a change of
 * api/openapi.yaml (CellName, ImageName, IdempotencyKey).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "idempotency.h"
#include "names.h"
#include "store.h"

/* n copies of c, in a buffer the caller owns */
static const char *repeat(char *buf, char c, size_t n) {
	memset(buf, c, n);
	buf[n] = 0;
	return buf;
}

static void test_cell_name(void **state) {
	char buf[64];

	(void)state;
	assert_true(names_cell_valid("a"));
	assert_true(names_cell_valid("0"));
	assert_true(names_cell_valid("linux"));
	assert_true(names_cell_valid("0linux_1-x"));
	assert_true(names_cell_valid("a-"));
	assert_true(names_cell_valid("a_"));
	assert_true(names_cell_valid(repeat(buf, 'a', CELL_NAME_MAX)));
	assert_false(names_cell_valid(repeat(buf, 'a', CELL_NAME_MAX + 1)));
	assert_false(names_cell_valid(""));
	assert_false(names_cell_valid("-a"));
	assert_false(names_cell_valid("_a"));
	assert_false(names_cell_valid("Linux"));
	assert_false(names_cell_valid("a.b"));
	assert_false(names_cell_valid("a/b"));
	assert_false(names_cell_valid("a b"));
	assert_false(names_cell_valid("."));
	assert_false(names_cell_valid("\xc3\xa9t\xc3\xa9"));
}

static void test_image_name(void **state) {
	char buf[80];

	(void)state;
	assert_true(names_image_valid("a"));
	assert_true(names_image_valid("app.bin"));
	assert_true(names_image_valid("App-1_2.BIN"));
	assert_true(names_image_valid("-x"));
	assert_true(names_image_valid("_x"));
	assert_true(names_image_valid("a."));
	assert_true(names_image_valid("a..b"));
	assert_true(names_image_valid("x.tmp"));
	assert_true(names_image_valid(repeat(buf, 'x', IMAGE_NAME_MAX)));
	assert_false(names_image_valid(repeat(buf, 'x', IMAGE_NAME_MAX + 1)));
	assert_false(names_image_valid(""));
	assert_false(names_image_valid("."));
	assert_false(names_image_valid(".."));
	assert_false(names_image_valid(".hidden"));
	/* the store's temp files: an upload in progress, an atomic replace */
	assert_false(names_image_valid(".upload-x"));
	assert_false(names_image_valid("app.bin.tmp.1234"));
	assert_false(names_image_valid("a.tmp.b"));
	assert_false(names_image_valid("a/b"));
	assert_false(names_image_valid("a b"));
	assert_false(names_image_valid("a%20b"));
	assert_false(names_image_valid("a:b"));
	assert_false(names_image_valid("a\\b"));
	assert_false(names_image_valid("\xc3\xa9"));
}

static void test_idempotency_key(void **state) {
	char buf[160];

	(void)state;
	assert_true(names_idempotency_key_valid("k"));
	assert_true(names_idempotency_key_valid("!"));
	assert_true(names_idempotency_key_valid("~"));
	assert_true(names_idempotency_key_valid("0123456789abcdef0123456789abcdef"));
	assert_true(names_idempotency_key_valid("ground/2024-11-25T10:00:00Z#7"));
	assert_true(names_idempotency_key_valid(repeat(buf, 'k', IDEMPOTENCY_KEY_MAX)));
	assert_false(names_idempotency_key_valid(repeat(buf, 'k', IDEMPOTENCY_KEY_MAX + 1)));
	assert_false(names_idempotency_key_valid(""));
	/* spaces anywhere: the CLI once let inner ones through */
	assert_false(names_idempotency_key_valid("a b"));
	assert_false(names_idempotency_key_valid(" a"));
	assert_false(names_idempotency_key_valid("a "));
	assert_false(names_idempotency_key_valid(" "));
	assert_false(names_idempotency_key_valid("a\tb"));
	assert_false(names_idempotency_key_valid("a\r\nX-Injected: 1"));
	assert_false(names_idempotency_key_valid("a\x7f"));
	assert_false(names_idempotency_key_valid("\xc3\xa9"));
}

/* The daemon's older entry points are the same rule, not a second one. */
static void test_daemon_wrappers(void **state) {
	static const char *const samples[] = {
		"", "a", "A", "-a", ".a", "a.b", "a b", "a.tmp.b", "linux", "Linux", "x_y-z", "a/b", "!",
	};

	(void)state;
	for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
		assert_int_equal(cell_name_is_valid(samples[i]), names_cell_valid(samples[i]));
		assert_int_equal(image_name_is_valid(samples[i]), names_image_valid(samples[i]));
		assert_int_equal(idempotency_key_is_valid(samples[i]), names_idempotency_key_valid(samples[i]));
	}
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cell_name),
		cmocka_unit_test(test_image_name),
		cmocka_unit_test(test_idempotency_key),
		cmocka_unit_test(test_daemon_wrappers),
	};

	return cmocka_run_group_tests_name("names", tests, NULL, NULL);
}
