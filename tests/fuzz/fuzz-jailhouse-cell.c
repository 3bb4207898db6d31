/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the Jailhouse binary config codec (hypervisor/jailhouse/
 * cell-config.c) and its JSON form. The input is a file, a .cell or a
 * system config. What decodes must encode again to the same bytes, and
 * its JSON form (cell-config-json.c) must come back to the same bytes too:
 * both are documented as lossless for every file the decoder accepts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cell-config-json.h"
#include "cell-config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same(const uint8_t *a, size_t na, const uint8_t *b, size_t nb, const char *what) {
	if (na != nb || memcmp(a, b, na) != 0) {
		fprintf(stderr, "%s: %zu bytes in, %zu out, not the same\n", what, na, nb);
		abort();
	}
}

static void cell(const uint8_t *data, size_t size) {
	char err[256];
	JhCellConfig *c = NULL, *back = NULL;
	uint8_t *out = NULL, *out2 = NULL;
	size_t n = 0, n2 = 0;
	json_t *j = NULL;

	if (jh_cell_config_decode(data, size, JH_ARCH_UNSPEC, &c, err, sizeof err) < 0)
		return;
	if (jh_cell_config_encode(c, &out, &n, err, sizeof err) < 0) {
		fprintf(stderr, "a decoded cell config does not encode: %s\n", err);
		abort();
	}
	same(data, size, out, n, "cell decode, encode");
	if (jh_cell_config_to_json(c, &j, err, sizeof err) < 0) {
		fprintf(stderr, "a decoded cell config has no JSON form: %s\n", err);
		abort();
	}
	if (jh_cell_config_from_json(j, &back, err, sizeof err) < 0 ||
	    jh_cell_config_encode(back, &out2, &n2, err, sizeof err) < 0) {
		fprintf(stderr, "the JSON form of a cell config does not come back: %s\n", err);
		abort();
	}
	same(data, size, out2, n2, "cell to JSON, from JSON, encode");
	json_decref(j);
	free(out);
	free(out2);
	jh_cell_config_free(back);
	jh_cell_config_free(c);
}

static void sys(const uint8_t *data, size_t size) {
	char err[256];
	JhSystemConfig *s = NULL, *back = NULL;
	uint8_t *out = NULL, *out2 = NULL;
	size_t n = 0, n2 = 0;
	json_t *j = NULL;

	if (jh_system_config_decode(data, size, JH_ARCH_UNSPEC, &s, err, sizeof err) < 0)
		return;
	if (jh_system_config_encode(s, &out, &n, err, sizeof err) < 0) {
		fprintf(stderr, "a decoded system config does not encode: %s\n", err);
		abort();
	}
	same(data, size, out, n, "system decode, encode");
	if (jh_system_config_to_json(s, &j, err, sizeof err) < 0) {
		fprintf(stderr, "a decoded system config has no JSON form: %s\n", err);
		abort();
	}
	if (jh_system_config_from_json(j, &back, err, sizeof err) < 0 ||
	    jh_system_config_encode(back, &out2, &n2, err, sizeof err) < 0) {
		fprintf(stderr, "the JSON form of a system config does not come back: %s\n", err);
		abort();
	}
	same(data, size, out2, n2, "system to JSON, from JSON, encode");
	json_decref(j);
	free(out);
	free(out2);
	jh_system_config_free(back);
	jh_system_config_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	char err[256];
	JhConfigKind kind;
	unsigned rev;

	if (jh_config_identify(data, size, &kind, &rev, err, sizeof err) < 0) {
		/* the decoders check the header themselves, too */
		cell(data, size);
		return 0;
	}
	if (kind == JH_CONFIG_CELL)
		cell(data, size);
	else
		sys(data, size);
	return 0;
}
