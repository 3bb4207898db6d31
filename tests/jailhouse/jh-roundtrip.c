/* SPDX-License-Identifier: MIT */
/*
 * The codec alone, for the oracle test (test_configs.py): decodes each
 * FILE and encodes it again; prints "same FILE" or "differs FILE: why".
 * Exit 0 when every file came back byte for byte.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cell-config.h"

static int slurp(const char *file, uint8_t **ret, size_t *ret_size) {
	FILE *f = fopen(file, "re");
	uint8_t *b = NULL;
	size_t n = 0, cap = 0, got;

	if (!f)
		return -errno;
	do {
		if (n == cap) {
			uint8_t *nb = realloc(b, cap = cap ? cap * 2 : 65536);
			if (!nb) {
				free(b);
				fclose(f);
				return -ENOMEM;
			}
			b = nb;
		}
		got = fread(b + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	fclose(f);
	*ret = b;
	*ret_size = n;
	return 0;
}

static int roundtrip(const char *file, char *why, size_t why_size) {
	uint8_t *in = NULL, *out = NULL;
	size_t n = 0, m = 0;
	JhConfigKind kind;
	unsigned rev;
	int r;

	if ((r = slurp(file, &in, &n)) < 0) {
		snprintf(why, why_size, "%s", strerror(-r));
		return r;
	}
	r = jh_config_identify(in, n, &kind, &rev, why, why_size);
	if (r >= 0 && kind == JH_CONFIG_CELL) {
		JhCellConfig *c = NULL;
		r = jh_cell_config_decode(in, n, JH_ARCH_UNSPEC, &c, why, why_size);
		if (r >= 0)
			r = jh_cell_config_encode(c, &out, &m, why, why_size);
		jh_cell_config_free(c);
	} else if (r >= 0) {
		JhSystemConfig *s = NULL;
		r = jh_system_config_decode(in, n, JH_ARCH_UNSPEC, &s, why, why_size);
		if (r >= 0)
			r = jh_system_config_encode(s, &out, &m, why, why_size);
		jh_system_config_free(s);
	}
	if (r >= 0 && (m != n || memcmp(in, out, n) != 0)) {
		size_t i = 0;
		while (i < n && i < m && in[i] == out[i])
			i++;
		snprintf(why, why_size, "%zu bytes in, %zu out, first difference at 0x%zx", n, m, i);
		r = -EBADMSG;
	}
	free(in);
	free(out);
	return r;
}

int main(int argc, char **argv) {
	int failed = 0;

	for (int i = 1; i < argc; i++) {
		char why[512] = "";
		if (roundtrip(argv[i], why, sizeof why) < 0) {
			printf("differs %s: %s\n", argv[i], why);
			failed++;
		} else {
			printf("same %s\n", argv[i]);
		}
	}
	return failed ? 1 : 0;
}
