/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the readers of what wardend keeps on disk, fed what a torn
 * or tampered disk can hold. The first input byte picks the file, the rest
 * is its content:
 *
 *   0  an Idempotency-Key record (daemon/idempotency.c)
 *   1  a stored spec, STATE_DIR/cells/NAME/spec.json (daemon/store.c, and
 *      the parse manager.c's start-up gives it)
 *   2  a cell's supervision state, STATE_DIR/cells/NAME/supervision.json
 *      (daemon/persist.c, cell_supervision_from_json() in daemon/cell.c)
 *
 * Invariants: nothing crashes; a stored spec either loads as a cell or is
 * listed, with a reason, by store_broken_specs() (nothing acknowledged
 * disappears silently); a cell restored from any supervision state still
 * renders as JSON, and what it saves again loads to the same state.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cell.h"
#include "config.h"
#include "fuzz-manager.h"
#include "idempotency.h"
#include "persist.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static Manager *m;

static const char spec_json[] =
	"{\"name\": \"%s\", \"backend\": \"kvm\", \"cpus\": [1], \"autostart\": false,"
	" \"memory\": [{\"name\": \"ram\", \"phys_start\": \"0x40000000\", \"virt_start\": \"0x0\","
	" \"size\": \"0x400000\", \"flags\": [\"read\", \"write\", \"execute\", \"loadable\"]}],"
	" \"comm\": {\"phys_start\": \"0x7f000000\", \"virt_start\": \"0x80000000\", \"size\": 4096},"
	" \"images\": [{\"file\": \"heartbeat.bin\", \"address\": \"0x100000\"}]}";

static CellSpec *make_spec(const char *name) {
	char buf[sizeof spec_json + 64], err[CONFIG_ERROR_MAX];
	ConfigEnv env;
	CellSpec *s = NULL;
	json_t *j;

	config_env_host(&env);
	snprintf(buf, sizeof buf, spec_json, name);
	j = json_loads(buf, 0, NULL);
	if (!j || cell_spec_parse(j, "$", &env, &s, err) < 0)
		abort();
	json_decref(j);
	return s;
}

static void write_file(const char *path, const uint8_t *data, size_t size) {
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size) || close(fd) < 0)
		abort();
}

static void cell_dir(const char *name, const char *leaf, char *buf, size_t n) {
	snprintf(buf, n, "%s/cells/%s", manager_state_dir(m), name);
	if (mkdir_p(buf, 0755) < 0)
		abort();
	snprintf(buf, n, "%s/cells/%s/%s", manager_state_dir(m), name, leaf);
}

static void fuzz_idempotency(const uint8_t *data, size_t size) {
	IdemRecord rec;
	json_t *j = json_loadb((const char *)data, size, 0, NULL);

	if (!j)
		return;
	/* both kinds of record: a principal's (version 2) and an old one */
	if (idem_record_from_json(j, size & 1 ? "op" : NULL, "fuzz-key-1", 1700000000, 86400, &rec) == 0) {
		if (!memchr(rec.method, 0, sizeof rec.method) || !memchr(rec.path, 0, sizeof rec.path) ||
		    !memchr(rec.content_type, 0, sizeof rec.content_type) || !memchr(rec.etag, 0, sizeof rec.etag) ||
		    !memchr(rec.location, 0, sizeof rec.location) || !memchr(rec.operation, 0, sizeof rec.operation) ||
		    strlen(rec.body) != rec.body_len)
			abort();
		idem_record_clear(&rec);
	}
	json_decref(j);
}

/* manager.c's load_cells(), for the one file */
static void fuzz_spec(const uint8_t *data, size_t size) {
	char p[4096], err[CONFIG_ERROR_MAX];
	json_t *stored = NULL, *e, *broken;
	size_t i, loaded = 0, n_broken;
	ConfigEnv env;

	config_env_host(&env);
	cell_dir("stored", "spec.json", p, sizeof p);
	write_file(p, data, size);
	if (store_load_specs(m, &stored) < 0)
		abort();
	json_array_foreach(stored, i, e) {
		CellSpec *others[CONFIG_MAX_CELLS], *spec = NULL;
		json_int_t rev = json_integer_value(json_object_get(e, "revision"));
		const Config *cfg = manager_config(m);
		Cell *c;
		int r;

		r = cell_spec_parse(json_object_get(e, "spec"), "$stored[0]", &env, &spec, err);
		if (r >= 0) {
			size_t n = manager_other_specs(m, spec->name, others);
			r = cell_spec_check_partition(spec, "$stored[0]", others, n, cfg->root_cpus, cfg->n_root_cpus,
			                              cfg->cpu_sharing, err);
		}
		if (r < 0 || strcmp(spec->name, "stored") != 0) {
			cell_spec_free(spec);
			continue;
		}
		if (manager_add_cell(m, spec, rev > 0 ? (uint64_t)rev : 1, &c) < 0)
			abort();
		loaded++;
		json_decref(cell_to_json(c, true));
		manager_remove_cell(m, c);
	}
	json_decref(stored);

	/* not loaded: listed with a reason, in a body that serialises */
	if (!loaded) {
		broken = store_broken_specs(m);
		n_broken = json_array_size(broken);
		if (n_broken != 1) {
			fprintf(stderr, "a stored spec that did not load is not listed as broken (%zu listed)\n", n_broken);
			abort();
		}
		char *s = json_dumps(broken, JSON_COMPACT);
		if (!s)
			abort();
		free(s);
		json_decref(broken);
	}
	unlink(p);
}

static void fuzz_supervision(const uint8_t *data, size_t size) {
	char p[4096];
	json_t *saved, *again, *shown;
	Cell *c, *c2;
	char *s;

	cell_dir("sup", "supervision.json", p, sizeof p);
	write_file(p, data, size);
	if (manager_add_cell(m, make_spec("sup"), 1, &c) < 0)
		abort();
	shown = cell_to_json(c, true);
	s = shown ? json_dumps(shown, JSON_COMPACT) : NULL;
	if (!s) {
		fprintf(stderr, "a cell restored from this supervision state does not render as JSON\n");
		abort();
	}
	free(s);
	json_decref(shown);

	/* saved again and loaded: the same state */
	saved = cell_supervision_to_json(c);
	if (!saved)
		abort();
	s = json_dumps(saved, JSON_COMPACT);
	if (!s)
		abort();
	manager_remove_cell(m, c);
	write_file(p, (const uint8_t *)s, strlen(s));
	free(s);
	if (manager_add_cell(m, make_spec("sup"), 1, &c2) < 0)
		abort();
	again = cell_supervision_to_json(c2);
	if (!again || !json_equal(saved, again)) {
		char *a = json_dumps(saved, JSON_COMPACT), *b = again ? json_dumps(again, JSON_COMPACT) : NULL;
		fprintf(stderr, "supervision state changes when saved and loaded:\n%s\n%s\n", a, b);
		abort();
	}
	json_decref(saved);
	json_decref(again);
	manager_remove_cell(m, c2);
	unlink(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	if (!m)
		m = fuzz_manager_new("[]");
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		fuzz_idempotency(data + 1, size - 1);
		break;
	case 1:
		fuzz_spec(data + 1, size - 1);
		break;
	default:
		fuzz_supervision(data + 1, size - 1);
		break;
	}
	fuzz_manager_settle(m);
	return 0;
}
