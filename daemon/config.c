/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imagepath.h"
#include "macro.h"

static const char *const failure_kind_table[_FAILURE_KIND_MAX] = {
	[FAILURE_PANIC] = "panic",
	[FAILURE_STUCK] = "stuck",
	[FAILURE_BOOT_TIMEOUT] = "boot-timeout",
	[FAILURE_CRASH] = "crash",
	[FAILURE_EXIT] = "exit",
};

static const char *const recovery_action_table[_ACTION_MAX] = {
	[ACTION_RESTART] = "restart",
	[ACTION_STOP] = "stop",
	[ACTION_PRESERVE] = "preserve",
	[ACTION_NONE] = "none",
};

static const char *const exhausted_action_table[_EXHAUSTED_MAX] = {
	[EXHAUSTED_STOP] = "stop",
	[EXHAUSTED_HYPERVISOR_RESTART] = "hypervisor-restart",
};

static int table_lookup(const char *const *table, int n, const char *s) {
	if (!s)
		return -1;
	for (int i = 0; i < n; i++)
		if (table[i] && strcmp(table[i], s) == 0)
			return i;
	return -1;
}

static const char *table_name(const char *const *table, int n, int i) {
	return i >= 0 && i < n ? table[i] : NULL;
}

const char *failure_kind_to_string(FailureKind k) {
	return table_name(failure_kind_table, _FAILURE_KIND_MAX, k);
}
FailureKind failure_kind_from_string(const char *s) {
	return table_lookup(failure_kind_table, _FAILURE_KIND_MAX, s);
}
const char *recovery_action_to_string(RecoveryAction a) {
	return table_name(recovery_action_table, _ACTION_MAX, a);
}
RecoveryAction recovery_action_from_string(const char *s) {
	return table_lookup(recovery_action_table, _ACTION_MAX, s);
}
const char *exhausted_action_to_string(ExhaustedAction a) {
	return table_name(exhausted_action_table, _EXHAUSTED_MAX, a);
}
ExhaustedAction exhausted_action_from_string(const char *s) {
	return table_lookup(exhausted_action_table, _EXHAUSTED_MAX, s);
}

void config_env_host(ConfigEnv *ret) {
	long n = sysconf(_SC_NPROCESSORS_CONF);
	ret->n_cpus = n > 0 ? (unsigned)n : 1;
	ret->jh_revision = 0;
	ret->jh_arch = -1;
}

void config_env_for(const Config *c, ConfigEnv *ret) {
	config_env_host(ret);
	ret->jh_revision = c->jh_revision;
	ret->jh_arch = c->jh_arch;
}

int config_error(char *err, const char *path, const char *fmt, ...) {
	va_list ap;
	int n;

	n = snprintf(err, CONFIG_ERROR_MAX, "%s: ", path);
	if (n < 0 || n >= (int)CONFIG_ERROR_MAX)
		n = 0;
	va_start(ap, fmt);
	vsnprintf(err + n, CONFIG_ERROR_MAX - n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static const char *json_type_name(const json_t *v) {
	/* a key that is not there at all, e.g. a stored spec.json torn or
	 * edited without its "spec" */
	if (!v)
		return "missing";
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "unknown";
}

/* Refuses keys not in `allowed`: a typo in a config must not silently turn
 * into a default. */
static int check_keys(json_t *obj, const char *path, const char *const *allowed, char *err) {
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		bool ok = false;
		for (const char *const *a = allowed; *a; a++)
			if (strcmp(*a, key) == 0) {
				ok = true;
				break;
			}
		if (!ok)
			return config_error(err, path, "unknown key \"%s\"", key);
	}
	return 0;
}

static int get_object(json_t *parent, const char *key, const char *path, json_t **ret, char *err) {
	json_t *v = json_object_get(parent, key);
	*ret = NULL;
	if (!v)
		return 0;
	if (!json_is_object(v))
		return config_error(err, path, "\"%s\" must be an object, not %s", key, json_type_name(v));
	*ret = v;
	return 0;
}

static int get_bool(json_t *parent, const char *key, const char *path, bool *ret, char *err) {
	json_t *v = json_object_get(parent, key);
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return config_error(err, path, "\"%s\" must be a boolean, not %s", key, json_type_name(v));
	*ret = json_is_true(v);
	return 0;
}

static int get_string(json_t *parent, const char *key, const char *path, const char **ret, char *err) {
	json_t *v = json_object_get(parent, key);
	if (!v)
		return 0;
	if (!json_is_string(v))
		return config_error(err, path, "\"%s\" must be a string, not %s", key, json_type_name(v));
	*ret = json_string_value(v);
	return 0;
}

static int get_strdup(json_t *parent, const char *key, const char *path, char **ret, char *err) {
	const char *s = NULL;
	int r = get_string(parent, key, path, &s, err);
	if (r < 0 || !s)
		return r;
	if (strlen(s) == 0)
		return config_error(err, path, "\"%s\" must not be empty", key);
	free(*ret);
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

/* Addresses and sizes: a JSON integer or a string in C notation ("0x100000"),
 * since hex is how people write them. Below 2^63 either way: the stored spec
 * (cell_spec_to_json) writes sizes as JSON integers, which jansson holds in
 * a signed 64-bit json_int_t, and a value that did not come back from the
 * store would lose an acknowledged cell at the next start. */
static int parse_u64(json_t *v, const char *path, const char *key, uint64_t *ret, char *err) {
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);
		if (i < 0)
			return config_error(err, path, "\"%s\" must not be negative", key);
		*ret = (uint64_t)i;
		return 0;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		errno = 0;
		unsigned long long u = strtoull(s, &end, 0);
		if (errno != 0 || end == s || *end != 0 || s[0] == '-')
			return config_error(err, path, "\"%s\" is not a number: \"%s\"", key, s);
		if (u > (unsigned long long)INT64_MAX)
			return config_error(err, path, "\"%s\" must be below 2^63 (0x8000000000000000), not \"%s\"", key, s);
		*ret = u;
		return 0;
	}
	return config_error(err, path, "\"%s\" must be an integer or a numeric string, not %s", key, json_type_name(v));
}

static int get_u64(json_t *parent, const char *key, const char *path, uint64_t *ret, char *err) {
	json_t *v = json_object_get(parent, key);
	if (!v)
		return 0;
	return parse_u64(v, path, key, ret, err);
}

static int get_u32(json_t *parent, const char *key, const char *path, uint32_t min, uint32_t max,
                   uint32_t *ret, char *err) {
	json_t *v = json_object_get(parent, key);
	if (!v)
		return 0;
	if (!json_is_integer(v))
		return config_error(err, path, "\"%s\" must be an integer, not %s", key, json_type_name(v));
	json_int_t i = json_integer_value(v);
	if (i < (json_int_t)min || i > (json_int_t)max)
		return config_error(err, path, "\"%s\" must be between %" PRIu32 " and %" PRIu32 ", not %lld", key, min,
		            max, (long long)i);
	*ret = (uint32_t)i;
	return 0;
}

static int get_double(json_t *parent, const char *key, const char *path, double min, double max, double *ret,
                      char *err) {
	json_t *v = json_object_get(parent, key);
	if (!v)
		return 0;
	if (!json_is_number(v))
		return config_error(err, path, "\"%s\" must be a number, not %s", key, json_type_name(v));
	double d = json_number_value(v);
	if (!(d >= min && d <= max))
		return config_error(err, path, "\"%s\" must be between %g and %g, not %g", key, min, max, d);
	*ret = d;
	return 0;
}

static int parse_cpu_list(json_t *parent, const char *key, const char *path, const ConfigEnv *env,
                          unsigned *cpus, size_t *n, char *err) {
	json_t *arr = json_object_get(parent, key), *v;
	char p[256];
	size_t i;

	*n = 0;
	if (!arr)
		return 0;
	snprintf(p, sizeof p, "%s.%s", path, key);
	if (!json_is_array(arr))
		return config_error(err, p, "must be an array of CPU numbers, not %s", json_type_name(arr));
	if (json_array_size(arr) > BACKEND_MAX_CPUS)
		return config_error(err, p, "more than %d CPUs", BACKEND_MAX_CPUS);
	json_array_foreach(arr, i, v) {
		char pi[272];
		snprintf(pi, sizeof pi, "%s[%zu]", p, i);
		if (!json_is_integer(v))
			return config_error(err, pi, "must be a CPU number, not %s", json_type_name(v));
		json_int_t c = json_integer_value(v);
		if (c < 0 || c >= (json_int_t)env->n_cpus)
			return config_error(err, pi, "CPU %lld does not exist on this machine (it has CPUs 0-%u)",
			            (long long)c, env->n_cpus - 1);
		for (size_t j = 0; j < *n; j++)
			if (cpus[j] == (unsigned)c)
				return config_error(err, pi, "CPU %lld is listed twice", (long long)c);
		cpus[(*n)++] = (unsigned)c;
	}
	return 0;
}

static const char *const flag_names[] = { "read", "write", "execute", "loadable", "shared" };

/* of_cell: a region a spec with a .cell lists, which must be one of that
 * .cell's (cell_spec_jailhouse_reconcile) rather than page-aligned:
 * Jailhouse maps device registers below a page (the Raspberry Pi 4's mini
 * UART is 0x40 bytes at 0xfe215040), and the stored spec lists them. */
static int parse_region(json_t *obj, const char *path, bool is_comm, bool of_cell, MemRegion *m, char *err) {
	static const char *const keys[] = { "name", "phys_start", "virt_start", "size", "flags", NULL };
	static const char *const comm_keys[] = { "phys_start", "virt_start", "size", NULL };
	const char *name = NULL;
	json_t *flags, *v;
	size_t i;
	int r;

	if (!json_is_object(obj))
		return config_error(err, path, "must be an object, not %s", json_type_name(obj));
	r = check_keys(obj, path, is_comm ? comm_keys : keys, err);
	if (r < 0)
		return r;
	if ((r = get_string(obj, "name", path, &name, err)) < 0)
		return r;
	snprintf(m->name, sizeof m->name, "%s", is_comm ? "comm" : name ? name : "");
	if (!json_object_get(obj, "virt_start"))
		return config_error(err, path, "\"virt_start\" is required");
	if (!json_object_get(obj, "size"))
		return config_error(err, path, "\"size\" is required");
	if ((r = get_u64(obj, "virt_start", path, &m->virt_start, err)) < 0 ||
	    (r = get_u64(obj, "size", path, &m->size, err)) < 0)
		return r;
	/* Without a partition address the region is private to the cell and
	 * only its guest-physical range matters. */
	m->phys_start = UINT64_MAX;
	if (json_object_get(obj, "phys_start") &&
	    (r = get_u64(obj, "phys_start", path, &m->phys_start, err)) < 0)
		return r;
	if (of_cell && !is_comm) {
		if (m->size == 0)
			return config_error(err, path, "size must be non-zero");
	} else if (m->size == 0 || (m->size & 0xfff) || (m->virt_start & 0xfff) ||
	           (m->phys_start != UINT64_MAX && (m->phys_start & 0xfff)))
		return config_error(err, path, "addresses and size must be non-zero multiples of 4096");
	if (m->virt_start + m->size < m->virt_start ||
	    (m->phys_start != UINT64_MAX && m->phys_start + m->size < m->phys_start))
		return config_error(err, path, "region wraps around the address space");
	if (is_comm) {
		if (m->size < WARDEN_COMM_SIZE)
			return config_error(err, path, "comm region must be at least %u bytes", WARDEN_COMM_SIZE);
		m->flags = BACKEND_MEM_READ | BACKEND_MEM_WRITE;
		return 0;
	}
	flags = json_object_get(obj, "flags");
	m->flags = 0;
	if (!flags)
		return config_error(err, path, "\"flags\" is required");
	if (!json_is_array(flags))
		return config_error(err, path, "\"flags\" must be an array, not %s", json_type_name(flags));
	json_array_foreach(flags, i, v) {
		int f;
		if (!json_is_string(v))
			return config_error(err, path, "\"flags\"[%zu] must be a string", i);
		f = table_lookup(flag_names, ELEMENTSOF(flag_names), json_string_value(v));
		if (f < 0)
			return config_error(err, path, "\"flags\"[%zu]: unknown flag \"%s\" (read, write, execute, loadable, shared)",
			            i, json_string_value(v));
		m->flags |= 1u << f;
	}
	return 0;
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) {
	return a < b + blen && b < a + alen;
}

bool cell_name_is_valid(const char *name) {
	return names_cell_valid(name);
}

static void recovery_defaults(RecoverySpec *r) {
	r->on[FAILURE_PANIC] = ACTION_RESTART;
	r->on[FAILURE_STUCK] = ACTION_RESTART;
	r->on[FAILURE_BOOT_TIMEOUT] = ACTION_RESTART;
	r->on[FAILURE_CRASH] = ACTION_RESTART;
	r->on[FAILURE_EXIT] = ACTION_STOP;
	r->max_restarts = 5;
	r->window_s = 60;
	r->backoff_initial_ms = 100;
	r->backoff_max_ms = 30000;
	r->backoff_factor = 2.0;
	r->reset_after_s = 60;
	r->on_exhausted = EXHAUSTED_STOP;
	r->shutdown_timeout_ms = 5000;
}

static int parse_recovery(json_t *obj, const char *path, RecoverySpec *rs, char *err) {
	static const char *const keys[] = { "on_panic", "on_stuck", "on_boot_timeout", "on_crash", "on_exit",
		                            "max_restarts", "window_s", "backoff", "on_exhausted",
		                            "shutdown_timeout_ms", NULL };
	static const char *const bkeys[] = { "initial_ms", "max_ms", "factor", "reset_after_s", NULL };
	static const char *const on_keys[_FAILURE_KIND_MAX] = {
		[FAILURE_PANIC] = "on_panic",       [FAILURE_STUCK] = "on_stuck",
		[FAILURE_BOOT_TIMEOUT] = "on_boot_timeout", [FAILURE_CRASH] = "on_crash",
		[FAILURE_EXIT] = "on_exit",
	};
	char p[300];
	json_t *b;
	int r;

	if ((r = check_keys(obj, path, keys, err)) < 0)
		return r;
	for (int k = 0; k < _FAILURE_KIND_MAX; k++) {
		const char *s = NULL;
		if ((r = get_string(obj, on_keys[k], path, &s, err)) < 0)
			return r;
		if (!s)
			continue;
		RecoveryAction a = recovery_action_from_string(s);
		if (a < 0)
			return config_error(err, path, "\"%s\": unknown action \"%s\" (restart, stop, preserve, none)",
			            on_keys[k], s);
		rs->on[k] = a;
	}
	const char *ex = NULL;
	if ((r = get_string(obj, "on_exhausted", path, &ex, err)) < 0)
		return r;
	if (ex) {
		rs->on_exhausted = exhausted_action_from_string(ex);
		if (rs->on_exhausted < 0)
			return config_error(err, path, "\"on_exhausted\": unknown action \"%s\" (stop, hypervisor-restart)", ex);
	}
	if ((r = get_u32(obj, "max_restarts", path, 0, 1024, &rs->max_restarts, err)) < 0 ||
	    (r = get_u32(obj, "window_s", path, 1, 86400 * 365, &rs->window_s, err)) < 0 ||
	    (r = get_u32(obj, "shutdown_timeout_ms", path, 1, 3600000, &rs->shutdown_timeout_ms, err)) < 0 ||
	    (r = get_object(obj, "backoff", path, &b, err)) < 0)
		return r;
	if (b) {
		snprintf(p, sizeof p, "%s.backoff", path);
		if ((r = check_keys(b, p, bkeys, err)) < 0 ||
		    (r = get_u32(b, "initial_ms", p, 0, 3600000, &rs->backoff_initial_ms, err)) < 0 ||
		    (r = get_u32(b, "max_ms", p, 0, 86400000, &rs->backoff_max_ms, err)) < 0 ||
		    (r = get_double(b, "factor", p, 1.0, 100.0, &rs->backoff_factor, err)) < 0 ||
		    (r = get_u32(b, "reset_after_s", p, 0, 86400 * 365, &rs->reset_after_s, err)) < 0)
			return r;
		if (rs->backoff_max_ms < rs->backoff_initial_ms)
			return config_error(err, p, "\"max_ms\" must not be below \"initial_ms\"");
	}
	return 0;
}

/* A relative path with a slash names no uploaded image, and the cell could
 * never start: refused here rather than acknowledged. Absolute paths are
 * held to api.image_dirs by image_path_check_spec(). */
static int check_image_ref(const char *file, const char *path, const char *key, char *err) {
	if (file[0] == '/' || image_name_is_valid(file))
		return 0;
	return config_error(err, path,
	            "\"%s\": \"%s\" is neither an uploaded image's bare name (1 to 64 of A-Z a-z 0-9 . _ -, "
	            "not starting with \".\") nor an absolute path",
	            key, file);
}

/* "realtime": {"priority": 1..99, "mlock": bool}, kvm cells only. */
static int parse_realtime(json_t *obj, const char *path, CellSpec *s, char *err) {
	static const char *const keys[] = { "priority", "mlock", NULL };
	json_t *o;
	char p[300];
	int r;

	if ((r = get_object(obj, "realtime", path, &o, err)) < 0 || !o)
		return r;
	snprintf(p, sizeof p, "%s.realtime", path);
	s->rt_mlock = false;
	if ((r = check_keys(o, p, keys, err)) < 0 ||
	    (r = get_u32(o, "priority", p, 1, 99, &s->rt_priority, err)) < 0 ||
	    (r = get_bool(o, "mlock", p, &s->rt_mlock, err)) < 0)
		return r;
	if (!s->rt_priority)
		return config_error(err, p, "\"priority\" (1..99, SCHED_FIFO) is required");
	if (strcmp(s->backend, "kvm") != 0)
		return config_error(err, p, "only kvm cells run real-time vCPU threads, not \"%s\"", s->backend);
	return 0;
}

int cell_spec_parse(json_t *obj, const char *path, const ConfigEnv *env, CellSpec **ret, char *err) {
	static const char *const keys[] = { "name", "backend", "cpus", "memory", "comm", "images", "entry",
		                            "args", "linux", "jailhouse", "autostart", "allow_inject", "health",
		                            "recovery", "network", "container", "realtime", NULL };
	static const char *const hkeys[] = { "period_ms", "timeout_ms", "boot_timeout_ms", NULL };
	_cleanup_(cell_spec_freep) CellSpec *s = NULL;
	const char *name = NULL, *backend = "kvm";
	json_t *arr, *v, *o;
	char p[300];
	size_t i;
	int r;

	if (!json_is_object(obj))
		return config_error(err, path, "a cell must be an object, not %s", json_type_name(obj));
	if ((r = check_keys(obj, path, keys, err)) < 0)
		return r;
	s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;

	if ((r = get_string(obj, "name", path, &name, err)) < 0)
		return r;
	if (!name)
		return config_error(err, path, "\"name\" is required");
	if (!cell_name_is_valid(name))
		return config_error(err, path, "\"name\": \"%s\" is not a valid cell name ([a-z0-9][a-z0-9_-]{0,30})", name);
	snprintf(s->name, sizeof s->name, "%s", name);

	if ((r = get_string(obj, "backend", path, &backend, err)) < 0)
		return r;
	if (strcmp(backend, "kvm") != 0 && strcmp(backend, "qemu") != 0 && strcmp(backend, "jailhouse") != 0 &&
	    strcmp(backend, "container") != 0)
		return config_error(err, path, "\"backend\": unknown backend \"%s\" (kvm, qemu, jailhouse, container)",
		            backend);
	snprintf(s->backend, sizeof s->backend, "%s", backend);
	if ((r = cell_spec_container_parse(s, obj, path, err)) < 0)
		return r;

	if ((r = get_object(obj, "jailhouse", path, &o, err)) < 0)
		return r;
	if (o) {
		static const char *const jkeys[] = { "cell_config", "cell", NULL };
		json_t *doc = json_object_get(o, "cell");
		snprintf(p, sizeof p, "%s.jailhouse", path);
		if (strcmp(s->backend, "jailhouse") != 0)
			return config_error(err, path, "\"jailhouse\" is for \"backend\": \"jailhouse\" cells");
		if ((r = check_keys(o, p, jkeys, err)) < 0 || (r = get_strdup(o, "cell_config", p, &s->cell_config, err)) < 0)
			return r;
		if (s->cell_config && s->cell_config[0] != '/')
			return config_error(err, p, "\"cell_config\": \"%s\" is not an absolute path", s->cell_config);
		if (doc && s->cell_config)
			return config_error(err, p, "\"cell\" and \"cell_config\" exclude each other");
		if (doc && (r = cell_spec_jailhouse_generate(s, doc, p, err)) < 0)
			return r;
	}
	if (strcmp(s->backend, "jailhouse") == 0 && !s->cell_config && !s->cell_doc)
		return config_error(err, path,
		            "a jailhouse cell needs \"jailhouse\": {\"cell_config\": \"/PATH/TO/CELL.cell\"} or "
		            "{\"cell\": {...}} (warden's JSON form of a .cell, as wardenctl jailhouse import prints it)");

	/* A .cell says which CPUs and regions the cell has: the spec may
	 * leave them out, and what it states must agree. */
	if (!json_object_get(obj, "cpus") && !cell_spec_has_cell(s))
		return config_error(err, path, "\"cpus\" is required");
	if ((r = parse_cpu_list(obj, "cpus", path, env, s->cpus, &s->n_cpus, err)) < 0)
		return r;
	if (s->n_cpus == 0 && json_object_get(obj, "cpus"))
		return config_error(err, path, "\"cpus\" must name at least one CPU");

	arr = json_object_get(obj, "memory");
	if (!arr && !cell_spec_has_cell(s) && !s->container)
		return config_error(err, path, "\"memory\" is required");
	if (arr && !json_is_array(arr))
		return config_error(err, path, "\"memory\" must be an array, not %s", json_type_name(arr));
	if (json_array_size(arr) > BACKEND_MAX_REGIONS)
		return config_error(err, path, "\"memory\" has more than %d regions", BACKEND_MAX_REGIONS);
	json_array_foreach(arr, i, v) {
		snprintf(p, sizeof p, "%s.memory[%zu]", path, i);
		if ((r = parse_region(v, p, false, cell_spec_has_cell(s), &s->memory[i], err)) < 0)
			return r;
		s->n_memory++;
	}

	o = json_object_get(obj, "comm");
	if (!o && !s->container)
		return config_error(err, path, "\"comm\" is required");
	snprintf(p, sizeof p, "%s.comm", path);
	if (o && (r = parse_region(o, p, true, cell_spec_has_cell(s), &s->comm, err)) < 0)
		return r;
	if (cell_spec_has_cell(s) && (r = cell_spec_jailhouse_reconcile(s, path, env, json_object_get(obj, "cpus") != NULL,
	                                                         arr != NULL, err)) < 0)
		return r;

	/* Regions of one cell must not overlap each other, on either side. */
	for (size_t a = 0; a <= s->n_memory; a++)
		for (size_t b = a + 1; b <= s->n_memory; b++) {
			const MemRegion *ra = a < s->n_memory ? &s->memory[a] : &s->comm;
			const MemRegion *rb = b < s->n_memory ? &s->memory[b] : &s->comm;
			if (ranges_overlap(ra->virt_start, ra->size, rb->virt_start, rb->size) ||
			    (ra->phys_start != UINT64_MAX && rb->phys_start != UINT64_MAX &&
			     ranges_overlap(ra->phys_start, ra->size, rb->phys_start, rb->size)))
				return config_error(err, path, "memory regions \"%s\" and \"%s\" overlap", ra->name, rb->name);
		}

	arr = json_object_get(obj, "images");
	if (arr && !json_is_array(arr))
		return config_error(err, path, "\"images\" must be an array, not %s", json_type_name(arr));
	if (arr && json_array_size(arr) > BACKEND_MAX_IMAGES)
		return config_error(err, path, "\"images\" has more than %d entries", BACKEND_MAX_IMAGES);
	json_array_foreach(arr, i, v) {
		static const char *const ikeys[] = { "file", "address", NULL };
		ImageSpec *img = &s->images[i];
		bool inside = false;

		snprintf(p, sizeof p, "%s.images[%zu]", path, i);
		if (!json_is_object(v))
			return config_error(err, p, "must be an object, not %s", json_type_name(v));
		if ((r = check_keys(v, p, ikeys, err)) < 0 || (r = get_strdup(v, "file", p, &img->file, err)) < 0)
			return r;
		s->n_images++;
		if (!img->file)
			return config_error(err, p, "\"file\" is required");
		if ((r = check_image_ref(img->file, p, "file", err)) < 0)
			return r;
		if (!json_object_get(v, "address"))
			return config_error(err, p, "\"address\" is required");
		if ((r = get_u64(v, "address", p, &img->address, err)) < 0)
			return r;
		for (size_t m = 0; m < s->n_memory; m++)
			if ((s->memory[m].flags & BACKEND_MEM_LOADABLE) && img->address >= s->memory[m].virt_start &&
			    img->address < s->memory[m].virt_start + s->memory[m].size)
				inside = true;
		if (!inside)
			return config_error(err, p, "address 0x%" PRIx64 " is not inside a loadable memory region",
			            img->address);
	}
	if ((r = get_object(obj, "linux", path, &o, err)) < 0)
		return r;
	if (o) {
		static const char *const lkeys[] = { "kernel", "initrd", "cmdline", "dtb", NULL };
		snprintf(p, sizeof p, "%s.linux", path);
		if ((r = check_keys(o, p, lkeys, err)) < 0 || (r = get_strdup(o, "kernel", p, &s->kernel, err)) < 0 ||
		    (r = get_strdup(o, "initrd", p, &s->initrd, err)) < 0 ||
		    (r = get_strdup(o, "cmdline", p, &s->cmdline, err)) < 0 ||
		    (r = get_strdup(o, "dtb", p, &s->dtb, err)) < 0)
			return r;
		if (!s->kernel)
			return config_error(err, p, "\"kernel\" is required");
		if ((r = check_image_ref(s->kernel, p, "kernel", err)) < 0 ||
		    (s->initrd && (r = check_image_ref(s->initrd, p, "initrd", err)) < 0) ||
		    (s->dtb && (r = check_image_ref(s->dtb, p, "dtb", err)) < 0))
			return r;
		if (strcmp(s->backend, "jailhouse") == 0 && !s->dtb)
			return config_error(err, p, "\"dtb\" is required: a Linux cell on Jailhouse boots with a device tree "
			                            "(Jailhouse's configs/arm64/dts/inmate-*.dts)");
		if (s->dtb && strcmp(s->backend, "jailhouse") != 0)
			return config_error(err, p, "\"dtb\" is for jailhouse cells; the %s backend makes its own", s->backend);
		if (s->n_images > 0)
			return config_error(err, path, "\"images\" and \"linux\" exclude each other: a Linux cell boots its kernel");
		if (s->cmdline && strlen(s->cmdline) >= 2048)
			return config_error(err, p, "\"cmdline\" is longer than 2047 bytes");
		if (strcmp(s->backend, "kvm") == 0)
			return config_error(err, path, "the kvm backend runs bare-metal images, not Linux; use \"backend\": \"qemu\"");
	}
	if (s->n_images == 0 && !s->kernel && !s->container)
		return config_error(err, path, "\"images\" must name at least one image (or \"linux\" a kernel)");
	s->entry = s->n_images ? s->images[0].address : 0;
	if ((r = get_u64(obj, "entry", path, &s->entry, err)) < 0)
		return r;

	if ((r = get_strdup(obj, "args", path, &s->args, err)) < 0)
		return r;
	if (s->args && strlen(s->args) >= WARDEN_COMM_REASON_LEN)
		return config_error(err, path, "\"args\" is longer than %u bytes", WARDEN_COMM_REASON_LEN - 1);
	s->autostart = true;
	if ((r = get_bool(obj, "autostart", path, &s->autostart, err)) < 0 ||
	    (r = get_bool(obj, "allow_inject", path, &s->allow_inject, err)) < 0)
		return r;

	if ((r = parse_realtime(obj, path, s, err)) < 0)
		return r;

	s->health = (HealthSpec){ .period_ms = 10, .timeout_ms = 100, .boot_timeout_ms = 5000 };
	if ((r = get_object(obj, "health", path, &o, err)) < 0)
		return r;
	if (o) {
		snprintf(p, sizeof p, "%s.health", path);
		if ((r = check_keys(o, p, hkeys, err)) < 0 ||
		    (r = get_u32(o, "period_ms", p, 1, 60000, &s->health.period_ms, err)) < 0 ||
		    (r = get_u32(o, "timeout_ms", p, 1, 3600000, &s->health.timeout_ms, err)) < 0 ||
		    (r = get_u32(o, "boot_timeout_ms", p, 1, 3600000, &s->health.boot_timeout_ms, err)) < 0)
			return r;
	}
	if (s->health.timeout_ms <= s->health.period_ms)
		return config_error(err, path, "health: \"timeout_ms\" (%u) must be longer than \"period_ms\" (%u)",
		            s->health.timeout_ms, s->health.period_ms);

	recovery_defaults(&s->recovery);
	if ((r = get_object(obj, "recovery", path, &o, err)) < 0)
		return r;
	if (o) {
		snprintf(p, sizeof p, "%s.recovery", path);
		if ((r = parse_recovery(o, p, &s->recovery, err)) < 0)
			return r;
	}

	if ((o = json_object_get(obj, "network")) && !json_is_null(o)) {
		snprintf(p, sizeof p, "%s.network", path);
		if ((r = network_spec_parse(o, p, s->name, s->backend, &s->network, err)) < 0)
			return r;
	}

	*ret = TAKE_PTR(s);
	return 0;
}

CellSpec *cell_spec_free(CellSpec *s) {
	if (!s)
		return NULL;
	for (size_t i = 0; i < s->n_images; i++)
		free(s->images[i].file);
	free(s->args);
	free(s->kernel);
	free(s->initrd);
	free(s->cmdline);
	free(s->dtb);
	free(s->cell_config);
	json_decref(s->cell_doc);
	free(s->cell_bytes);
	network_spec_free(s->network);
	container_spec_free(s->container);
	free(s);
	return NULL;
}

static bool region_is_same_shared(const MemRegion *a, const MemRegion *b) {
	return (a->flags & BACKEND_MEM_SHARED) && (b->flags & BACKEND_MEM_SHARED) &&
	       a->phys_start == b->phys_start && a->size == b->size;
}

int cell_spec_check_partition(const CellSpec *s, const char *path, CellSpec *const *others, size_t n_others,
                              const unsigned *root_cpus, size_t n_root_cpus, bool sharing, char *err) {
	for (size_t o = 0; o < n_others; o++) {
		const CellSpec *t = others[o];
		if (t == s)
			continue;
		if (strcmp(t->name, s->name) == 0) {
			config_error(err, path, "a cell named \"%s\" already exists", s->name);
			return -EEXIST;
		}
		if (!sharing)
			for (size_t i = 0; i < s->n_cpus; i++)
				for (size_t j = 0; j < t->n_cpus; j++)
					if (s->cpus[i] == t->cpus[j]) {
						config_error(err, path, "CPU %u of cell \"%s\" is already assigned to cell \"%s\"",
						     s->cpus[i], s->name, t->name);
						return -EBUSY;
					}
		for (size_t a = 0; a <= s->n_memory; a++)
			for (size_t b = 0; b <= t->n_memory; b++) {
				const MemRegion *ra = a < s->n_memory ? &s->memory[a] : &s->comm;
				const MemRegion *rb = b < t->n_memory ? &t->memory[b] : &t->comm;
				if (ra->phys_start == UINT64_MAX || rb->phys_start == UINT64_MAX)
					continue;
				if (!ranges_overlap(ra->phys_start, ra->size, rb->phys_start, rb->size) ||
				    region_is_same_shared(ra, rb))
					continue;
				config_error(err, path,
				     "memory region \"%s\" of cell \"%s\" [0x%" PRIx64 "-0x%" PRIx64
				     ") overlaps region \"%s\" of cell \"%s\" [0x%" PRIx64 "-0x%" PRIx64 ")",
				     ra->name, s->name, ra->phys_start, ra->phys_start + ra->size, rb->name, t->name,
				     rb->phys_start, rb->phys_start + rb->size);
				return -EBUSY;
			}
		if (s->network && t->network) {
			int r = network_spec_check_pair(s->network, s->name, t->network, t->name, path, err);
			if (r < 0)
				return r;
		}
	}
	if (!sharing)
		for (size_t i = 0; i < s->n_cpus; i++)
			for (size_t j = 0; j < n_root_cpus; j++)
				if (s->cpus[i] == root_cpus[j]) {
					config_error(err, path, "CPU %u of cell \"%s\" belongs to the root set", s->cpus[i],
					     s->name);
					return -EBUSY;
				}
	return 0;
}

static json_t *hex(uint64_t v) {
	char b[24];
	snprintf(b, sizeof b, "0x%" PRIx64, v);
	return json_string(b);
}

static json_t *region_to_json(const MemRegion *m, bool is_comm) {
	json_t *o = json_object();
	if (!is_comm)
		json_object_set_new(o, "name", json_string(m->name));
	if (m->phys_start != UINT64_MAX)
		json_object_set_new(o, "phys_start", hex(m->phys_start));
	json_object_set_new(o, "virt_start", hex(m->virt_start));
	json_object_set_new(o, "size", json_integer((json_int_t)m->size));
	if (!is_comm) {
		json_t *f = json_array();
		for (size_t i = 0; i < ELEMENTSOF(flag_names); i++)
			if (m->flags & (1u << i))
				json_array_append_new(f, json_string(flag_names[i]));
		json_object_set_new(o, "flags", f);
	}
	return o;
}

json_t *cell_spec_to_json(const CellSpec *s) {
	json_t *o = json_object(), *a, *h, *r, *b;

	json_object_set_new(o, "name", json_string(s->name));
	json_object_set_new(o, "backend", json_string(s->backend));
	a = json_array();
	for (size_t i = 0; i < s->n_cpus; i++)
		json_array_append_new(a, json_integer(s->cpus[i]));
	json_object_set_new(o, "cpus", a);
	a = json_array();
	for (size_t i = 0; i < s->n_memory; i++)
		json_array_append_new(a, region_to_json(&s->memory[i], false));
	json_object_set_new(o, "memory", a);
	json_object_set_new(o, "comm", region_to_json(&s->comm, true));
	a = json_array();
	for (size_t i = 0; i < s->n_images; i++)
		json_array_append_new(a, json_pack("{s:s, s:o}", "file", s->images[i].file, "address",
		                                   hex(s->images[i].address)));
	if (s->kernel) {
		json_t *l = json_pack("{s:s}", "kernel", s->kernel);
		if (s->initrd)
			json_object_set_new(l, "initrd", json_string(s->initrd));
		if (s->cmdline)
			json_object_set_new(l, "cmdline", json_string(s->cmdline));
		if (s->dtb)
			json_object_set_new(l, "dtb", json_string(s->dtb));
		json_object_set_new(o, "linux", l);
		json_decref(a);
	} else {
		json_object_set_new(o, "images", a);
		json_object_set_new(o, "entry", hex(s->entry));
	}
	if (s->args)
		json_object_set_new(o, "args", json_string(s->args));
	if (s->cell_config)
		json_object_set_new(o, "jailhouse", json_pack("{s:s}", "cell_config", s->cell_config));
	else if (s->cell_doc)
		json_object_set_new(o, "jailhouse", json_pack("{s:O}", "cell", s->cell_doc));
	if (s->container) {
		json_object_set_new(o, "container", container_spec_to_json(s->container));
		json_object_del(o, "images");
		json_object_del(o, "entry");
		json_object_del(o, "memory");
	}
	json_object_set_new(o, "autostart", json_boolean(s->autostart));
	json_object_set_new(o, "allow_inject", json_boolean(s->allow_inject));
	if (s->rt_priority)
		json_object_set_new(o, "realtime", json_pack("{s:i, s:b}", "priority", (int)s->rt_priority, "mlock",
		                                             s->rt_mlock));
	h = json_pack("{s:i, s:i, s:i}", "period_ms", (int)s->health.period_ms, "timeout_ms",
	              (int)s->health.timeout_ms, "boot_timeout_ms", (int)s->health.boot_timeout_ms);
	json_object_set_new(o, "health", h);
	b = json_pack("{s:i, s:i, s:f, s:i}", "initial_ms", (int)s->recovery.backoff_initial_ms, "max_ms",
	              (int)s->recovery.backoff_max_ms, "factor", s->recovery.backoff_factor, "reset_after_s",
	              (int)s->recovery.reset_after_s);
	r = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:o, s:s, s:i}",
	              "on_panic", recovery_action_to_string(s->recovery.on[FAILURE_PANIC]),
	              "on_stuck", recovery_action_to_string(s->recovery.on[FAILURE_STUCK]),
	              "on_boot_timeout", recovery_action_to_string(s->recovery.on[FAILURE_BOOT_TIMEOUT]),
	              "on_crash", recovery_action_to_string(s->recovery.on[FAILURE_CRASH]),
	              "on_exit", recovery_action_to_string(s->recovery.on[FAILURE_EXIT]),
	              "max_restarts", (int)s->recovery.max_restarts,
	              "window_s", (int)s->recovery.window_s,
	              "backoff", b,
	              "on_exhausted", exhausted_action_to_string(s->recovery.on_exhausted),
	              "shutdown_timeout_ms", (int)s->recovery.shutdown_timeout_ms);
	json_object_set_new(o, "recovery", r);
	if (s->network)
		json_object_set_new(o, "network", network_spec_to_json(s->network));
	return o;
}

size_t cell_spec_image_refs(const CellSpec *s, const char *refs[SPEC_MAX_IMAGE_REFS]) {
	size_t n = 0;

	for (size_t i = 0; i < s->n_images; i++)
		refs[n++] = s->images[i].file;
	if (s->kernel)
		refs[n++] = s->kernel;
	if (s->initrd)
		refs[n++] = s->initrd;
	if (s->dtb)
		refs[n++] = s->dtb;
	if (s->container)
		refs[n++] = s->container->rootfs;
	return n;
}

void cell_spec_to_backend(const CellSpec *s, BackendCellConfig *ret, BackendRegion *regions, BackendImage *images) {
	for (size_t i = 0; i < s->n_memory; i++)
		regions[i] = (BackendRegion){
			.phys_start = s->memory[i].phys_start,
			.virt_start = s->memory[i].virt_start,
			.size = s->memory[i].size,
			.flags = s->memory[i].flags,
		};
	for (size_t i = 0; i < s->n_images; i++)
		images[i] = (BackendImage){ .path = s->images[i].file, .addr = s->images[i].address };
	*ret = (BackendCellConfig){
		.name = s->name,
		.cpus = s->cpus,
		.n_cpus = s->n_cpus,
		.regions = regions,
		.n_regions = s->n_memory,
		.images = images,
		.n_images = s->n_images,
		.entry = s->entry,
		.comm_addr = s->comm.virt_start,
		.comm_size = s->comm.size,
		.period_ms = s->health.period_ms,
		.allow_inject = s->allow_inject,
		.rt_priority = s->rt_priority,
		.rt_mlock = s->rt_mlock,
		.args = s->args,
		.kernel = s->kernel,
		.initrd = s->initrd,
		.cmdline = s->cmdline,
		.dtb = s->dtb,
		.cell_config = s->cell_config,
		.cell_data = s->cell_bytes,
		.cell_size = s->cell_size,
		.rootfs = s->container ? s->container->rootfs : NULL,
		.rootfs_digest = s->container ? s->container->digest : NULL,
		.rootfs_writable = s->container && s->container->writable,
		.memory_limit = s->container ? s->container->memory_limit : 0,
	};
}

static int parse_listen(const char *s, const char *path, char *err) {
	if (strncmp(s, "unix:", 5) == 0 && s[5] == '/')
		return 0;
	if (strncmp(s, "tcp:", 4) == 0 && strrchr(s + 4, ':'))
		return 0;
	return config_error(err, path, "\"%s\" is not a listener (unix:/ABSOLUTE/PATH or tcp:HOST:PORT)", s);
}

/* An empty list is allowed: uploaded images only. */
static int parse_image_dirs(json_t *api, ApiConfig *a, char *err) {
	json_t *arr = json_object_get(api, "image_dirs"), *v;
	char p[64];
	size_t i;

	if (!arr)
		return 0;
	if (!json_is_array(arr))
		return config_error(err, "$.api.image_dirs", "must be an array of absolute directories, not %s",
		            json_type_name(arr));
	if (json_array_size(arr) > CONFIG_MAX_IMAGE_DIRS)
		return config_error(err, "$.api.image_dirs", "more than %d directories", CONFIG_MAX_IMAGE_DIRS);
	json_array_foreach(arr, i, v) {
		snprintf(p, sizeof p, "$.api.image_dirs[%zu]", i);
		if (!json_is_string(v))
			return config_error(err, p, "must be a string, not %s", json_type_name(v));
		if (json_string_value(v)[0] != '/')
			return config_error(err, p, "\"%s\" is not an absolute path", json_string_value(v));
		a->image_dirs[a->n_image_dirs] = strdup(json_string_value(v));
		if (!a->image_dirs[a->n_image_dirs++])
			return -ENOMEM;
	}
	return 0;
}

int config_parse(json_t *root, const ConfigEnv *env, Config **ret, char *err) {
	static const char *const keys[] = { "listen", "state_dir", "runtime_dir", "cpu_sharing", "root_cpus",
		                            "limits", "backends", "api", "cells", NULL };
	static const char *const akeys[] = { "tokens_file", "anonymous_metrics", "socket_mode", "socket_group", "tls",
		                             "idempotency_ttl_s", "max_image_bytes", "image_dirs", NULL };
	static const char *const tkeys[] = { "cert", "key", NULL };
	static const char *const lkeys[] = { "max_body_bytes", "max_header_bytes", "max_connections", NULL };
	static const char *const bkeys[] = { "kvm", "qemu", "jailhouse", "container", NULL };
	static const char *const jkeys[] = { "system_config", "helper", "sysfs", "device", "mem", "linux_loader", NULL };
	static const char *const kkeys[] = { "runner", NULL };
	static const char *const qkeys[] = { "binary", "accel", "machine", "restart", NULL };
	_cleanup_(config_freep) Config *c = NULL;
	json_t *arr, *v, *o;
	char p[300];
	size_t i;
	int r;

	if (!json_is_object(root))
		return config_error(err, "$", "the configuration must be an object, not %s", json_type_name(root));
	if ((r = check_keys(root, "$", keys, err)) < 0)
		return r;
	c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->max_body_bytes = 1 << 20;
	c->max_header_bytes = 16 << 10;
	c->max_connections = 64;
	c->api.socket_mode = 0660;
	c->qemu_restart_in_place = -1;
	c->api.idempotency_ttl_s = 86400;
	c->api.max_image_bytes = 256ull << 20;
	c->jh_arch = -1;

	arr = json_object_get(root, "listen");
	if (arr && !json_is_array(arr))
		return config_error(err, "$.listen", "must be an array of strings, not %s", json_type_name(arr));
	if (arr && json_array_size(arr) > CONFIG_MAX_LISTEN)
		return config_error(err, "$.listen", "more than %d listeners", CONFIG_MAX_LISTEN);
	json_array_foreach(arr, i, v) {
		snprintf(p, sizeof p, "$.listen[%zu]", i);
		if (!json_is_string(v))
			return config_error(err, p, "must be a string, not %s", json_type_name(v));
		if ((r = parse_listen(json_string_value(v), p, err)) < 0)
			return r;
		c->listen[c->n_listen] = strdup(json_string_value(v));
		if (!c->listen[c->n_listen++])
			return -ENOMEM;
	}
	if ((r = get_strdup(root, "state_dir", "$", &c->state_dir, err)) < 0 ||
	    (r = get_strdup(root, "runtime_dir", "$", &c->runtime_dir, err)) < 0 ||
	    (r = get_bool(root, "cpu_sharing", "$", &c->cpu_sharing, err)) < 0 ||
	    (r = parse_cpu_list(root, "root_cpus", "$", env, c->root_cpus, &c->n_root_cpus, err)) < 0)
		return r;

	if ((r = get_object(root, "limits", "$", &o, err)) < 0)
		return r;
	if (o) {
		uint32_t body = (uint32_t)c->max_body_bytes, hdr = (uint32_t)c->max_header_bytes;
		if ((r = check_keys(o, "$.limits", lkeys, err)) < 0 ||
		    (r = get_u32(o, "max_body_bytes", "$.limits", 1024, 1u << 30, &body, err)) < 0 ||
		    (r = get_u32(o, "max_header_bytes", "$.limits", 1024, 1u << 20, &hdr, err)) < 0 ||
		    (r = get_u32(o, "max_connections", "$.limits", 1, 4096, &c->max_connections, err)) < 0)
			return r;
		c->max_body_bytes = body;
		c->max_header_bytes = hdr;
	}

	if ((r = get_object(root, "backends", "$", &o, err)) < 0)
		return r;
	if (o) {
		json_t *k;
		if ((r = check_keys(o, "$.backends", bkeys, err)) < 0 ||
		    (r = get_object(o, "kvm", "$.backends", &k, err)) < 0)
			return r;
		if (k && ((r = check_keys(k, "$.backends.kvm", kkeys, err)) < 0 ||
		          (r = get_strdup(k, "runner", "$.backends.kvm", &c->kvm_runner, err)) < 0))
			return r;
		if ((r = get_object(o, "qemu", "$.backends", &k, err)) < 0)
			return r;
		if (k && ((r = check_keys(k, "$.backends.qemu", qkeys, err)) < 0 ||
		          (r = get_strdup(k, "binary", "$.backends.qemu", &c->qemu_binary, err)) < 0 ||
		          (r = get_strdup(k, "accel", "$.backends.qemu", &c->qemu_accel, err)) < 0 ||
		          (r = get_strdup(k, "machine", "$.backends.qemu", &c->qemu_machine, err)) < 0))
			return r;
		if (k) {
			const char *restart = NULL;
			if ((r = get_string(k, "restart", "$.backends.qemu", &restart, err)) < 0)
				return r;
			if (restart && strcmp(restart, "fresh") != 0 && strcmp(restart, "in-place") != 0)
				return config_error(err, "$.backends.qemu", "\"restart\": \"%s\" is neither \"fresh\" nor \"in-place\"",
				            restart);
			if (restart)
				c->qemu_restart_in_place = strcmp(restart, "in-place") == 0;
		}
		if ((r = config_parse_container_backend(o, c, err)) < 0)
			return r;
		if ((r = get_object(o, "jailhouse", "$.backends", &k, err)) < 0)
			return r;
		if (k) {
			const char *jp = "$.backends.jailhouse";
			char **paths[] = { &c->jh_system_config, &c->jh_helper, &c->jh_sysfs, &c->jh_device, &c->jh_mem,
					  &c->jh_linux_loader };
			c->jailhouse = true;
			if ((r = check_keys(k, jp, jkeys, err)) < 0)
				return r;
			for (size_t j = 0; j < ELEMENTSOF(paths); j++) {
				if ((r = get_strdup(k, jkeys[j], jp, paths[j], err)) < 0)
					return r;
				if (*paths[j] && (*paths[j])[0] != '/')
					return config_error(err, jp, "\"%s\": \"%s\" is not an absolute path", jkeys[j], *paths[j]);
			}
		}
		if (c->jh_system_config)
			config_jailhouse_system_identity(c->jh_system_config, &c->jh_revision, &c->jh_arch);
		if (c->qemu_accel && strcmp(c->qemu_accel, "tcg") != 0 && strcmp(c->qemu_accel, "kvm") != 0)
			return config_error(err, "$.backends.qemu", "\"accel\": \"%s\" is neither \"tcg\" nor \"kvm\"",
			            c->qemu_accel);
	}

	if ((r = get_object(root, "api", "$", &o, err)) < 0)
		return r;
	if (o) {
		json_t *t;
		const char *mode = NULL;
		if ((r = check_keys(o, "$.api", akeys, err)) < 0 ||
		    (r = get_strdup(o, "tokens_file", "$.api", &c->api.tokens_file, err)) < 0 ||
		    (r = get_bool(o, "anonymous_metrics", "$.api", &c->api.anonymous_metrics, err)) < 0 ||
		    (r = get_string(o, "socket_mode", "$.api", &mode, err)) < 0 ||
		    (r = get_strdup(o, "socket_group", "$.api", &c->api.socket_group, err)) < 0 ||
		    (r = get_u32(o, "idempotency_ttl_s", "$.api", 1, 365u * 86400, &c->api.idempotency_ttl_s, err)) < 0 ||
		    (r = get_u64(o, "max_image_bytes", "$.api", &c->api.max_image_bytes, err)) < 0 ||
		    (r = get_object(o, "tls", "$.api", &t, err)) < 0)
			return r;
		if (mode) {
			char *end;
			unsigned long m = strtoul(mode, &end, 8);
			if (*mode == 0 || *end != 0 || m > 0777 || (m & 0600) != 0600)
				return config_error(err, "$.api", "\"socket_mode\": \"%s\" is not an octal mode that lets the owner read and write", mode);
			c->api.socket_mode = (unsigned)m;
		}
		if (c->api.max_image_bytes < 4096 || c->api.max_image_bytes > (16ull << 30))
			return config_error(err, "$.api", "\"max_image_bytes\" must be between 4096 and 16 GiB");
		if (t && ((r = check_keys(t, "$.api.tls", tkeys, err)) < 0 ||
		          (r = get_strdup(t, "cert", "$.api.tls", &c->api.tls_cert, err)) < 0 ||
		          (r = get_strdup(t, "key", "$.api.tls", &c->api.tls_key, err)) < 0))
			return r;
		if (!c->api.tls_cert != !c->api.tls_key)
			return config_error(err, "$.api.tls", "\"cert\" and \"key\" go together");
		if ((r = parse_image_dirs(o, &c->api, err)) < 0)
			return r;
	}
	if (!json_object_get(o, "image_dirs")) {
		static const char *const defaults[] = { WARDEN_IMAGE_DIRS };

		for (size_t k = 0; k < ELEMENTSOF(defaults); k++) {
			c->api.image_dirs[k] = strdup(defaults[k]);
			if (!c->api.image_dirs[k])
				return -ENOMEM;
			c->api.n_image_dirs = k + 1;
		}
	}

	/* A .cell must be of the hypervisor's revision and architecture. */
	ConfigEnv cell_env = *env;
	cell_env.jh_revision = c->jh_revision;
	cell_env.jh_arch = c->jh_arch;
	arr = json_object_get(root, "cells");
	if (arr && !json_is_array(arr))
		return config_error(err, "$.cells", "must be an array, not %s", json_type_name(arr));
	if (arr && json_array_size(arr) > CONFIG_MAX_CELLS)
		return config_error(err, "$.cells", "more than %d cells", CONFIG_MAX_CELLS);
	json_array_foreach(arr, i, v) {
		snprintf(p, sizeof p, "$.cells[%zu]", i);
		if ((r = cell_spec_parse(v, p, &cell_env, &c->cells[c->n_cells], err)) < 0)
			return r;
		/* Counted at once, so that config_free() frees it on every
		 * refusal below too. */
		c->n_cells++;
		if ((r = cell_spec_check_partition(c->cells[c->n_cells - 1], p, c->cells, c->n_cells - 1, c->root_cpus,
		                                   c->n_root_cpus, c->cpu_sharing, err)) < 0)
			return -EINVAL;
		/* The operator's own file is held to the same rule as the API:
		 * one rule is simpler to state, and store_image_path() checks
		 * it again at every start, where a spec's origin is not known. */
		if ((r = image_path_check_spec(c->cells[c->n_cells - 1], p, c->api.image_dirs, c->api.n_image_dirs,
		                                 err)) < 0)
			return r == -ENOMEM ? r : -EINVAL;
	}

	*ret = TAKE_PTR(c);
	return 0;
}

int config_load_file(const char *path, const ConfigEnv *env, Config **ret, char *err) {
	json_error_t je;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	int r;

	if (!root) {
		/* no line and column when the file could not be read at all */
		if (je.line < 1)
			snprintf(err, CONFIG_ERROR_MAX, "%s: %s", path, je.text);
		else
			snprintf(err, CONFIG_ERROR_MAX, "%s:%d:%d: %s", path, je.line, je.column, je.text);
		return -EINVAL;
	}
	r = config_parse(root, env, ret, err);
	json_decref(root);
	return r;
}

Config *config_free(Config *c) {
	if (!c)
		return NULL;
	for (size_t i = 0; i < c->n_listen; i++)
		free(c->listen[i]);
	for (size_t i = 0; i < c->n_cells; i++)
		cell_spec_free(c->cells[i]);
	free(c->state_dir);
	free(c->runtime_dir);
	free(c->kvm_runner);
	free(c->qemu_binary);
	free(c->container_runtime);
	free(c->container_binary);
	free(c->qemu_accel);
	free(c->qemu_machine);
	free(c->jh_system_config);
	free(c->jh_helper);
	free(c->jh_sysfs);
	free(c->jh_linux_loader);
	free(c->jh_device);
	free(c->jh_mem);
	free(c->api.tokens_file);
	free(c->api.socket_group);
	free(c->api.tls_cert);
	free(c->api.tls_key);
	for (size_t i = 0; i < c->api.n_image_dirs; i++)
		free(c->api.image_dirs[i]);
	free(c);
	return NULL;
}
