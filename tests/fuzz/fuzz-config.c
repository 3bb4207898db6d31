/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: daemon/config.c, what the API and the config file feed it.
 * The input is JSON bytes, parsed as a cell spec and as a whole config.
 * An accepted spec must place beside a couple of fixed specs without
 * crashing, and must survive its stored form (cell_spec_to_json, parsed
 * again): what the API acknowledges is what a restart loads.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ConfigEnv env = { .n_cpus = 8 };
static const unsigned root_cpus[] = { 0 };
static CellSpec *fixed[2];

static const char *const fixed_json[] = {
	"{\"name\": \"fixed-a\", \"backend\": \"kvm\", \"cpus\": [1],"
	" \"memory\": [{\"name\": \"ram\", \"phys_start\": \"0x40000000\", \"virt_start\": \"0x0\","
	" \"size\": \"0x400000\", \"flags\": [\"read\", \"write\", \"execute\", \"loadable\"]}],"
	" \"comm\": {\"phys_start\": \"0x7f000000\", \"virt_start\": \"0x80000000\", \"size\": 4096},"
	" \"images\": [{\"file\": \"heartbeat.bin\", \"address\": \"0x100000\"}]}",
	"{\"name\": \"fixed-b\", \"backend\": \"qemu\", \"cpus\": [2, 3],"
	" \"memory\": [{\"name\": \"ram\", \"phys_start\": \"0x50000000\", \"virt_start\": \"0x0\","
	" \"size\": \"0x1000000\", \"flags\": [\"read\", \"write\", \"execute\", \"loadable\"]}],"
	" \"comm\": {\"phys_start\": \"0x7f001000\", \"virt_start\": \"0x80000000\", \"size\": 4096},"
	" \"images\": [{\"file\": \"faulty.bin\", \"address\": \"0x100000\"}]}",
};

static void setup(void) {
	char err[CONFIG_ERROR_MAX];

	for (size_t i = 0; i < 2; i++) {
		json_t *j = json_loads(fixed_json[i], 0, NULL);
		if (!j || cell_spec_parse(j, "$fixed", &env, &fixed[i], err) < 0) {
			fprintf(stderr, "fixed spec %zu: %s\n", i, err);
			abort();
		}
		json_decref(j);
	}
}

/* What the store keeps of an accepted spec loads again, as the same spec. */
static void check_accepted(const CellSpec *s) {
	char err[CONFIG_ERROR_MAX];
	const char *refs[SPEC_MAX_IMAGE_REFS];
	BackendCellConfig bc;
	BackendRegion regions[BACKEND_MAX_REGIONS + 1];
	BackendImage images[BACKEND_MAX_IMAGES];
	CellSpec *again = NULL;
	json_t *j, *k;

	for (int sharing = 0; sharing < 2; sharing++)
		(void)cell_spec_check_partition(s, "$", fixed, 2, root_cpus, 1, sharing, err);
	(void)cell_spec_image_refs(s, refs);
	cell_spec_to_backend(s, &bc, regions, images);

	j = cell_spec_to_json(s);
	if (!j)
		abort();
	if (cell_spec_parse(j, "$stored", &env, &again, err) < 0) {
		char *dump = json_dumps(j, JSON_COMPACT);
		fprintf(stderr, "an accepted spec does not load from its stored form: %s\n%s\n", err, dump);
		abort();
	}
	k = cell_spec_to_json(again);
	if (!k || !json_equal(j, k)) {
		fprintf(stderr, "the stored form of an accepted spec changes when loaded\n");
		abort();
	}
	json_decref(k);
	json_decref(j);
	cell_spec_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	char err[CONFIG_ERROR_MAX];
	CellSpec *spec = NULL;
	Config *cfg = NULL;
	json_t *j;

	if (!fixed[0])
		setup();
	j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
	if (!j)
		return 0;

	if (cell_spec_parse(j, "$", &env, &spec, err) >= 0) {
		check_accepted(spec);
		cell_spec_free(spec);
	} else if (memchr(err, 0, sizeof err) == NULL)
		abort();

	if (config_parse(j, &env, &cfg, err) >= 0) {
		for (size_t i = 0; i < cfg->n_cells; i++)
			check_accepted(cfg->cells[i]);
		config_free(cfg);
	} else if (memchr(err, 0, sizeof err) == NULL)
		abort();

	json_decref(j);
	return 0;
}
