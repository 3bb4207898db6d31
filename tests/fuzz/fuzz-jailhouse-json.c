/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the import of the warden JSON form of Jailhouse configs
 * (hypervisor/jailhouse/cell-config-json.c), what `wardenctl jailhouse
 * export` reads from an operator's file. The input is JSON bytes. What
 * imports and encodes must decode again (the decoder accepts what the
 * encoder writes) and encode to the same bytes.
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
		fprintf(stderr, "%s: %zu bytes, then %zu, not the same\n", what, na, nb);
		abort();
	}
}

static void cell(const json_t *doc) {
	char err[256];
	JhCellConfig *c = NULL, *again = NULL;
	uint8_t *out = NULL, *out2 = NULL;
	size_t n = 0, n2 = 0;

	if (jh_cell_config_from_json(doc, &c, err, sizeof err) < 0)
		return;
	if (jh_cell_config_encode(c, &out, &n, err, sizeof err) >= 0) {
		if (jh_cell_config_decode(out, n, c->arch, &again, err, sizeof err) < 0) {
			fprintf(stderr, "an encoded cell config does not decode: %s\n", err);
			abort();
		}
		if (jh_cell_config_encode(again, &out2, &n2, err, sizeof err) < 0)
			abort();
		same(out, n, out2, n2, "cell encode, decode, encode");
	}
	free(out);
	free(out2);
	jh_cell_config_free(again);
	jh_cell_config_free(c);
}

static void sys(const json_t *doc) {
	char err[256];
	JhSystemConfig *s = NULL, *again = NULL;
	uint8_t *out = NULL, *out2 = NULL;
	size_t n = 0, n2 = 0;

	if (jh_system_config_from_json(doc, &s, err, sizeof err) < 0)
		return;
	if (jh_system_config_encode(s, &out, &n, err, sizeof err) >= 0) {
		if (jh_system_config_decode(out, n, s->arch, &again, err, sizeof err) < 0) {
			fprintf(stderr, "an encoded system config does not decode: %s\n", err);
			abort();
		}
		if (jh_system_config_encode(again, &out2, &n2, err, sizeof err) < 0)
			abort();
		same(out, n, out2, n2, "system encode, decode, encode");
	}
	free(out);
	free(out2);
	jh_system_config_free(again);
	jh_system_config_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	char err[256];
	JhConfigKind kind;
	json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);

	if (!doc)
		return 0;
	if (jh_config_json_kind(doc, &kind, err, sizeof err) >= 0) {
		if (kind == JH_CONFIG_CELL)
			cell(doc);
		else
			sys(doc);
	}
	json_decref(doc);
	return 0;
}
