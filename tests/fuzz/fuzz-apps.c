/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the daemon's reader of an inmate's applications table
 * (daemon/apps.c). The input is whatever an inmate wrote to the table's
 * bytes of its comm page; the reader copies and sanitises it and renders
 * its JSON and Prometheus lines, which must stay printable and bounded
 * whatever the bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static _Alignas(8) uint8_t comm[WARDEN_COMM_SIZE];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	struct warden_apps out;
	char *buf = NULL, *s;
	size_t n = 0;
	unsigned used = 0;
	FILE *f;
	json_t *j;

	memset(comm, 0, sizeof comm);
	memcpy(comm + WARDEN_APPS_OFFSET, data, size < WARDEN_APPS_SIZE ? size : WARDEN_APPS_SIZE);
	if (apps_read(comm, &out) < 0)
		return 0;
	if (out.n_slots > WARDEN_APPS_MAX)
		abort();
	for (unsigned i = 0; i < WARDEN_APPS_MAX; i++) {
		const struct warden_app_slot *a = &out.app[i];
		if (strlen(a->name) >= WARDEN_APPS_NAME_LEN || strpbrk(a->name, "\"\\\n{}") || a->state >= WARDEN_APP_STATE_MAX)
			abort();
		used += i < out.n_slots && a->state != WARDEN_APP_FREE;
	}
	j = apps_to_json(&out);
	if (!j || json_array_size(j) != used)
		abort();
	s = json_dumps(j, 0);
	if (!s)
		abort();
	free(s);
	json_decref(j);
	f = open_memstream(&buf, &n);
	if (!f)
		abort();
	apps_prom(f, "cell", &out, 0);
	apps_prom(f, "cell", &out, 1);
	fclose(f);
	if (strlen(buf) != n)
		abort();
	free(buf);
	return 0;
}
