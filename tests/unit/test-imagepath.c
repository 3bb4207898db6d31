/* SPDX-License-Identifier: MIT */
/* Image paths are judged as the kernel resolves them, not by their text. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "imagepath.h"

static char root[] = "/tmp/warden-test-imagepath-XXXXXX";

/* root/PATH */
static const char *at(const char *path) {
	static char buf[4][PATH_MAX];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], "%s%s", root, path);
	return buf[i];
}

static int setup(void **state) {
	FILE *f;
	(void)state;
	if (!mkdtemp(root) || mkdir(at("/img"), 0755) < 0 || mkdir(at("/img2"), 0755) < 0 ||
	    !(f = fopen(at("/img/a.bin"), "w")))
		return -1;
	fclose(f);
	if (!(f = fopen(at("/secret"), "w")))
		return -1;
	fclose(f);
	if (symlink(at("/secret"), at("/img/to-secret")) < 0 || symlink(at("/nowhere"), at("/img/dangling")) < 0 ||
	    symlink(at("/img"), at("/alias")) < 0)
		return -1;
	return 0;
}

static int teardown(void **state) {
	char cmd[PATH_MAX + 16];
	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_resolve(void **state) {
	char p[PATH_MAX];
	(void)state;
	assert_int_equal(image_path_resolve("/", p, sizeof p), 0);
	assert_string_equal(p, "/");
	assert_int_equal(image_path_resolve("rel/a.bin", p, sizeof p), -EINVAL);
	/* existing: realpath(); not there yet: appended, empty parts dropped */
	assert_int_equal(image_path_resolve(at("/alias/a.bin"), p, sizeof p), 0);
	assert_string_equal(p, at("/img/a.bin"));
	assert_int_equal(image_path_resolve(at("/alias//new/b.bin/"), p, sizeof p), 0);
	assert_string_equal(p, at("/img/new/b.bin"));
	assert_int_equal(image_path_resolve(at("/img/../secret"), p, sizeof p), 0);
	assert_string_equal(p, at("/secret"));
	/* ".." beyond what exists, and a symlink to nothing: no answer */
	assert_int_equal(image_path_resolve(at("/img/new/../../secret"), p, sizeof p), -EINVAL);
	assert_int_equal(image_path_resolve(at("/img/dangling"), p, sizeof p), -ENOENT);
	assert_int_equal(image_path_resolve(at("/img/a.bin/x"), p, sizeof p), -ENOTDIR);
	assert_int_equal(image_path_resolve(at("/img/a.bin"), p, 4), -ENAMETOOLONG);
}

static void test_check(void **state) {
	/* at() reuses its buffers: the directory gets its own copy */
	char *dirs[] = { NULL, (char *)"/nonexistent/warden" };
	char *everything[] = { (char *)"/" };
	char p[PATH_MAX];
	(void)state;
	dirs[0] = strdup(at("/alias"));
	assert_int_equal(image_path_check(at("/img/a.bin"), dirs, 2, p, sizeof p), 0);
	assert_string_equal(p, at("/img/a.bin"));
	assert_int_equal(image_path_check(at("/img/later.bin"), dirs, 2, p, sizeof p), 0);
	assert_int_equal(image_path_check(at("/img/to-secret"), dirs, 2, p, sizeof p), -EPERM);
	assert_string_equal(p, at("/secret"));
	assert_int_equal(image_path_check(at("/alias/../secret"), dirs, 2, p, sizeof p), -EPERM);
	/* a sibling whose name starts the same is not inside */
	assert_int_equal(image_path_check(at("/img2/a.bin"), dirs, 2, p, sizeof p), -EPERM);
	assert_int_equal(image_path_check(at("/img"), dirs, 2, p, sizeof p), -EPERM);
	assert_int_equal(image_path_check("/etc/passwd", dirs, 2, p, sizeof p), -EPERM);
	assert_int_equal(image_path_check("/etc/passwd", dirs, 0, p, sizeof p), -EPERM);
	/* a directory that does not exist yet holds what will be put there */
	assert_int_equal(image_path_check("/nonexistent/warden/x.bin", dirs, 2, p, sizeof p), 0);
	assert_int_equal(image_path_check("/etc/passwd", everything, 1, p, sizeof p), 0);
	free(dirs[0]);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_check),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
