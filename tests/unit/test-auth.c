/* SPDX-License-Identifier: MIT */
/* Bearer tokens (hashed at rest) and RFC 9530 Content-Digest parsing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth.h"

/* printf %s warden-demo-operator | sha256sum */
#define OP_HASH "b354c7fd4d95a267238a3eb9bf47ab9771e7b8297d51fcfc8dfe42db8700d8a9"
#define MON_HASH "31ef164da0efecf46117c5255c3f3e2c1cb998afec405c221d5394940b60de72"

static char *write_tmp(const char *text) {
	char *path = strdup("/tmp/warden-test-tokens-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static int load(const char *text, Tokens **t, char *err) {
	char *p = write_tmp(text);
	int r = tokens_load(p, t, err, 256);
	unlink(p);
	free(p);
	return r;
}

static void test_tokens_check(void **state) {
	char err[256] = "", name[AUTH_NAME_MAX];
	Tokens *t = NULL;
	HttpRole role = HTTP_ROLE_NONE;
	(void)state;

	assert_int_equal(load("# comment\n\nground operator " OP_HASH "\ngrafana  monitor  " MON_HASH "  # trailing\n", &t, err), 0);
	assert_int_equal(tokens_count(t), 2);
	assert_int_equal(tokens_check(t, "warden-demo-operator", name, sizeof name, &role), 0);
	assert_string_equal(name, "ground");
	assert_int_equal(role, HTTP_ROLE_OPERATOR);
	assert_int_equal(tokens_check(t, "warden-demo-monitor", name, sizeof name, &role), 0);
	assert_string_equal(name, "grafana");
	assert_int_equal(role, HTTP_ROLE_MONITOR);
	/* the hash itself is not a token, nor is a near miss */
	assert_int_equal(tokens_check(t, OP_HASH, name, sizeof name, &role), -EACCES);
	assert_int_equal(tokens_check(t, "warden-demo-operato", name, sizeof name, &role), -EACCES);
	assert_int_equal(tokens_check(t, "", name, sizeof name, &role), -EACCES);
	tokens_free(t);
	/* no table: nobody gets in */
	assert_int_equal(tokens_check(NULL, "warden-demo-operator", name, sizeof name, &role), -EACCES);
}

static void test_tokens_reject(void **state) {
	char err[256];
	Tokens *t = NULL;
	(void)state;

	assert_int_equal(load("ground admin " OP_HASH "\n", &t, err), -EINVAL);
	assert_non_null(strstr(err, ":1: role \"admin\""));
	assert_int_equal(load("ok monitor " MON_HASH "\nground operator warden-demo-operator\n", &t, err), -EINVAL);
	assert_non_null(strstr(err, ":2: the third field must be a SHA-256"));
	assert_int_equal(load("ground operator\n", &t, err), -EINVAL);
	assert_non_null(strstr(err, "expected \"NAME ROLE SHA256HEX\""));
	assert_int_equal(load("a operator " OP_HASH " extra\n", &t, err), -EINVAL);
	assert_int_equal(tokens_load("/nonexistent/tokens", &t, err, sizeof err), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/tokens"));
}

static void test_content_digest(void **state) {
	uint8_t d[SHA256_LEN];
	char hex[2 * SHA256_LEN + 1];
	(void)state;

	/* SHA-256 of "hello image" */
	assert_int_equal(content_digest_parse("sha-256=:hNj9UoClFiqvXF2a6wabJmBQDqvu2ljOK7EFlYJ+CK0=:", d), 0);
	sha256_hex(d, hex);
	assert_string_equal(hex, "84d8fd5280a5162aaf5c5d9aeb069b2660500eabeeda58ce2bb10595827e08ad");
	/* among other algorithms, case-insensitive name */
	assert_int_equal(content_digest_parse("sha-512=:AAAA:, SHA-256=:hNj9UoClFiqvXF2a6wabJmBQDqvu2ljOK7EFlYJ+CK0=:", d), 0);
	assert_int_equal(content_digest_parse("sha-512=:AAAA:", d), -ENOENT);
	assert_int_equal(content_digest_parse("", d), -ENOENT);
	/* too short, too long, bad alphabet, unterminated */
	assert_int_equal(content_digest_parse("sha-256=:hNj9:", d), -EINVAL);
	assert_int_equal(content_digest_parse("sha-256=:AAAAhNj9UoClFiqvXF2a6wabJmBQDqvu2ljOK7EFlYJ+CK0=:", d), -EINVAL);
	assert_int_equal(content_digest_parse("sha-256=:hNj9UoClFiqvXF2a6wabJmBQDqvu2ljOK7EFlYJ+CK!=:", d), -EINVAL);
	assert_int_equal(content_digest_parse("sha-256=:hNj9UoClFiqvXF2a6wabJmBQDqvu2ljOK7EFlYJ+CK0=", d), -EINVAL);
}

static void test_hex(void **state) {
	uint8_t d[SHA256_LEN];
	char hex[2 * SHA256_LEN + 1];
	(void)state;
	assert_int_equal(sha256_from_hex(OP_HASH, d), 0);
	sha256_hex(d, hex);
	assert_string_equal(hex, OP_HASH);
	assert_int_equal(sha256_from_hex("b354", d), -EINVAL);
	assert_int_equal(sha256_from_hex("x354c7fd4d95a267238a3eb9bf47ab9771e7b8297d51fcfc8dfe42db8700d8a9", d), -EINVAL);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tokens_check),
		cmocka_unit_test(test_tokens_reject),
		cmocka_unit_test(test_content_digest),
		cmocka_unit_test(test_hex),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
