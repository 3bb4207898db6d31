/* SPDX-License-Identifier: MIT */
/* wardenctl's exit codes. Stable: scripts depend on them (docs/wardenctl.md). */
#pragma once

#include <stdio.h>

enum {
	EXIT_OK = 0,
	EXIT_REFUSED = 1,
	EXIT_USAGE = 2,
	EXIT_UNREACHABLE = 3,
	EXIT_NOT_FOUND = 4,
	EXIT_CONFLICT = 5,
	EXIT_AUTH = 6,
};

static inline int exit_code_for_status(long status) {
	if (status == 401 || status == 403)
		return EXIT_AUTH;
	if (status == 404)
		return EXIT_NOT_FOUND;
	if (status == 409 || status == 412)
		return EXIT_CONFLICT;
	return EXIT_REFUSED;
}

/* Says so and returns the exit code: out of memory ends any command. */
static inline int oom(void) {
	fprintf(stderr, "wardenctl: out of memory\n");
	return EXIT_REFUSED;
}
