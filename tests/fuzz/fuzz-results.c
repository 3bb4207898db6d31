/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the daemon's reader of an inmate's results area
 * (daemon/results.c). The input is whatever an inmate wrote to its comm
 * page; the reader copies and sanitises it and renders its JSON and
 * Prometheus lines, which must stay printable and bounded whatever the
 * bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "results.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static _Alignas(8) uint8_t comm[WARDEN_COMM_SIZE];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	struct warden_results out;
	char *buf = NULL, *s;
	size_t n = 0;
	FILE *f;
	json_t *j;

	memset(comm, 0, sizeof comm);
	memcpy(comm + WARDEN_RESULTS_OFFSET, data, size < WARDEN_RESULTS_SIZE ? size : WARDEN_RESULTS_SIZE);
	if (results_read(comm, &out) < 0)
		return 0;
	for (unsigned i = 0; i < WARDEN_RESULTS_VALUES; i++)
		if (strlen(out.values[i].name) >= WARDEN_RESULTS_NAME_LEN || strpbrk(out.values[i].name, "\"\\\n"))
			abort();
	j = results_to_json(&out);
	if (!j)
		abort();
	s = json_dumps(j, 0);
	if (!s)
		abort();
	free(s);
	json_decref(j);
	f = open_memstream(&buf, &n);
	if (!f)
		abort();
	results_prom_values(f, "cell", &out);
	results_prom_histogram(f, "cell", &out);
	fclose(f);
	if (strlen(buf) != n)
		abort();
	free(buf);
	return 0;
}
