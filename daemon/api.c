/* SPDX-License-Identifier: MIT */
/*
 * Routes of the HTTP API (api/README.md, api/openapi.yaml). Paths as
 * operators type them:
 *   GET  /health  /metrics  /hypervisor  /cells  /operations  /events
 *   POST /hypervisor/enable|disable|restart
 *   POST /cells                      create from a spec
 *   GET|PUT|DELETE /cells/NAME       spec with revision (ETag, If-Match)
 *   POST /cells/NAME/start|stop|restart|shutdown   operations (?wait=S)
 *   POST /cells/NAME/inject          {"fault": "..."}
 *   GET  /cells/NAME/console         console tail (?bytes=N)
 *   GET  /cells/NAME/images          uploaded images
 *   PUT|DELETE /cells/NAME/images/FILE   raw upload with Content-Digest
 *   GET  /operations/ID              (?wait=S)
 *
 * api_begin() runs on the headers alone: access control, Idempotency-Key
 * replays and upload sinks, so nothing is read (or written to disk) for a
 * request that will be refused. Every mutation is audit-logged.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "auth.h"
#include "cell.h"
#include "events.h"
#include "http.h"
#include "idempotency.h"
#include "imagepath.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "metrics.h"
#include "operation.h"
#include "persist.h"
#include "store.h"

#define CONSOLE_MAX_BYTES (64 * 1024)

#define WAIT_MAX_S 300

typedef enum Method {
	M_GET = 1 << 0,
	M_POST = 1 << 1,
	M_PUT = 1 << 2,
	M_DELETE = 1 << 3,
} Method;

static unsigned method_bit(const char *m) {
	if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
		return M_GET;
	if (strcmp(m, "POST") == 0)
		return M_POST;
	if (strcmp(m, "PUT") == 0)
		return M_PUT;
	if (strcmp(m, "DELETE") == 0)
		return M_DELETE;
	return 0;
}

static bool is_mutation(const HttpRequest *r) {
	return method_bit(http_request_method(r)) & (M_POST | M_PUT | M_DELETE);
}

/* 405 with Allow naming what the resource does accept. */
static void reply_405(HttpRequest *r, unsigned allowed) {
	static const char *const names[] = { "GET, HEAD", "POST", "PUT", "DELETE" };
	char allow[48] = "";
	for (unsigned i = 0; i < ELEMENTSOF(names); i++)
		if (allowed & (1u << i)) {
			if (allow[0])
				strcat(allow, ", ");
			strcat(allow, names[i]);
		}
	http_reply_header(r, "Allow", allow);
	http_reply_problem(r, 405, "Method Not Allowed", "%s is not allowed on %s; allowed: %s",
	                   http_request_method(r), http_request_path(r), allow);
}

static bool check_method(HttpRequest *r, unsigned allowed) {
	if (method_bit(http_request_method(r)) & allowed)
		return true;
	reply_405(r, allowed);
	return false;
}

static void route_health(Manager *m, HttpRequest *r) {
	unsigned counts[_CELL_STATE_MAX] = { 0 };
	json_t *cells = json_object(), *listeners = json_array();
	/* A stored spec that no longer loads is a cell the daemon once
	 * acknowledged and now does not run: as loud as a failed cell. */
	json_t *broken = store_broken_specs(m);
	size_t n_cells;
	Cell *const *all = manager_cells(m, &n_cells);
	Http *h = manager_http(m);
	bool degraded;

	for (size_t i = 0; i < n_cells; i++)
		counts[cell_state(all[i])]++;
	for (int s = 0; s < _CELL_STATE_MAX; s++)
		json_object_set_new(cells, cell_state_to_string(s), json_integer(counts[s]));
	json_object_set_new(cells, "total", json_integer((json_int_t)n_cells));
	for (size_t i = 0; i < http_n_listeners(h); i++)
		json_array_append_new(listeners, json_string(http_listener_name(h, i)));
	/* A disabled hypervisor runs no cell at all: never "ok". */
	degraded = counts[CELL_FAILED] || json_array_size(broken) > 0 || !manager_hypervisor_enabled(m);
	http_reply_json(r, 200,
	                json_pack("{s:s, s:s, s:s, s:f, s:o, s:o, s:b, s:o}", "status", degraded ? "degraded" : "ok",
	                          "hypervisor", manager_hypervisor_enabled(m) ? "enabled" : "disabled", "version",
	                          WARDEN_VERSION, "uptime_s",
	                          (double)(now_ns(CLOCK_MONOTONIC) - manager_started_mono_ns(m)) / 1e9, "cells", cells,
	                          "listeners", listeners, "cpu_sharing", manager_config(m)->cpu_sharing, "broken_specs",
	                          broken));
}

static void route_cells(Manager *m, HttpRequest *r) {
	json_t *a = json_array();
	size_t n_cells;
	Cell *const *all = manager_cells(m, &n_cells);
	for (size_t i = 0; i < n_cells; i++)
		json_array_append_new(a, cell_to_json(all[i], false));
	http_reply_json(r, 200, a);
}

static void route_metrics(Manager *m, HttpRequest *r) {
	char *buf;
	size_t n;
	int k = metrics_render(m, &buf, &n);
	if (k < 0) {
		http_reply_problem(r, 500, NULL, "rendering metrics failed: %s", strerror(-k));
		return;
	}
	http_reply_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", buf, n);
}

static void route_hypervisor(Manager *m, HttpRequest *r) {
	json_t *root = json_array(), *cells = json_array(), *backends;
	size_t n_cells;
	Cell *const *all = manager_cells(m, &n_cells);
	const Config *cfg = manager_config(m);
	for (size_t i = 0; i < cfg->n_root_cpus; i++)
		json_array_append_new(root, json_integer(cfg->root_cpus[i]));
	for (size_t i = 0; i < n_cells; i++)
		json_array_append_new(cells, json_string(cell_name(all[i])));
	/* Available: present, and its last enable did not fail. */
	backends = json_pack("[{s:s, s:b}, {s:s, s:b}, {s:s, s:b}]", "kind", "kvm", "available",
	                     manager_backend_available(m, "kvm"), "kind", "qemu", "available",
	                     manager_backend_available(m, "qemu"), "kind", "jailhouse", "available", 0);
	http_reply_json(r, 200,
	                json_pack("{s:s, s:o, s:b, s:o, s:o, s:s}", "state",
	                          manager_hypervisor_enabled(m) ? "enabled" : "disabled", "backends", backends,
	                          "cpu_sharing", cfg->cpu_sharing, "root_cpus", root, "cells", cells, "runtime_dir",
	                          manager_runtime_dir(m)));
}

static void route_console(Cell *c, HttpRequest *r) {
	const char *q = http_request_query(r, "bytes");
	long want = 4096;
	char *buf;
	ssize_t n;

	if (q) {
		char *end;
		want = strtol(q, &end, 10);
		if (*q == 0 || *end != 0 || want <= 0 || want > CONSOLE_MAX_BYTES) {
			http_reply_problem(r, 400, NULL, "bytes must be an integer between 1 and %d", CONSOLE_MAX_BYTES);
			return;
		}
	}
	if (!cell_has_backend(c)) {
		http_reply_problem(r, 409, "Conflict", "cell \"%s\" has no console: it is %s%s", cell_name(c),
		                   cell_state_to_string(cell_state(c)), cell_busy(c) ? " (a backend request is under way)" : "");
		return;
	}
	buf = malloc((size_t)want + 1);
	if (!buf) {
		http_reply_problem(r, 500, NULL, "out of memory");
		return;
	}
	n = cell_console_read(c, buf, (size_t)want);
	if (n < 0) {
		free(buf);
		http_reply_problem(r, 500, NULL, "reading the console failed: %s", strerror((int)-n));
		return;
	}
	http_reply_text(r, 200, "text/plain; charset=utf-8", buf, (size_t)n);
}

static void route_inject(Cell *c, HttpRequest *r) {
	size_t n;
	const char *body = http_request_body(r, &n);
	json_error_t je;
	json_t *j, *f;
	const char *fault;
	int k;

	j = json_loadb(body, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (!j) {
		http_reply_problem(r, 400, NULL, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
		return;
	}
	f = json_object_get(j, "fault");
	if (!json_is_object(j) || json_object_size(j) != 1 || !json_is_string(f)) {
		json_decref(j);
		http_reply_problem(r, 422, NULL, "the body must be {\"fault\": \"hang|panic|crash|exit|stall\"}");
		return;
	}
	fault = json_string_value(f);
	k = cell_inject(c, fault);
	log_cell(LOG_NOTICE, cell_name(c), MSGID_AUDIT, "API: inject \"%s\" into cell \"%s\": %s", fault,
	         cell_name(c), k < 0 ? strerror(-k) : "done");
	if (k == -EPERM)
		http_reply_problem(r, 403, "Forbidden", "cell \"%s\" does not allow fault injection (allow_inject)",
		                   cell_name(c));
	else if (k == -EINVAL)
		http_reply_problem(r, 422, NULL, "unknown fault \"%s\" (hang, panic, crash, exit, stall)", fault);
	else if (k == -ESRCH)
		http_reply_problem(r, 409, "Conflict", "cell \"%s\" is %s; faults go to running cells", cell_name(c),
		                   cell_state_to_string(cell_state(c)));
	else if (k < 0)
		http_reply_problem(r, 500, NULL, "injection failed: %s", strerror(-k));
	else
		http_reply_json(r, 202, json_pack("{s:s, s:s}", "cell", cell_name(c), "fault", fault));
	json_decref(j);
}


/* --- helpers ------------------------------------------------------------ */

static void set_etag(HttpRequest *r, uint64_t revision) {
	char tag[32];
	snprintf(tag, sizeof tag, "\"%llu\"", (unsigned long long)revision);
	http_reply_header(r, "ETag", tag);
}

/* If-Match against a revision: true when the request may go on. */
static bool check_if_match(HttpRequest *r, const Cell *c) {
	const char *im = http_request_header(r, "If-Match");
	char tag[32];

	if (!im || strcmp(im, "*") == 0)
		return true;
	snprintf(tag, sizeof tag, "\"%llu\"", (unsigned long long)cell_revision(c));
	/* a list of entity tags, weak ones compared weakly */
	for (const char *p = im; *p;) {
		size_t n;
		while (*p == ' ' || *p == ',')
			p++;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		n = strcspn(p, ", ");
		if (n == strlen(tag) && strncmp(p, tag, n) == 0)
			return true;
		p += n;
	}
	set_etag(r, cell_revision(c));
	http_reply_problem(r, 412, "Precondition Failed",
	                   "cell \"%s\" is at revision %llu, not %s: fetch it again and retry", cell_name(c),
	                   (unsigned long long)cell_revision(c), im);
	return false;
}

/* ?wait=S: -1 when malformed (a 400 is sent), 0 when absent. */
static double query_wait(HttpRequest *r) {
	const char *q = http_request_query(r, "wait");
	char *end;
	double w;

	if (!q)
		return 0;
	if (*q == 0)
		return 60;
	w = strtod(q, &end);
	if (*end != 0 || !(w >= 0 && w <= WAIT_MAX_S)) {
		http_reply_problem(r, 400, NULL, "wait must be a number of seconds between 0 and %d", WAIT_MAX_S);
		return -1;
	}
	return w;
}

static json_t *parse_body(HttpRequest *r) {
	size_t n;
	const char *body = http_request_body(r, &n);
	json_error_t je;
	json_t *j;

	if (n == 0) {
		http_reply_problem(r, 400, NULL, "the request needs a JSON body");
		return NULL;
	}
	/* Any JSON value parses; what is not an object is refused later as
	 * well-formed but wrong (422), not as malformed (400). */
	j = json_loadb(body, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (!j)
		http_reply_problem(r, 400, NULL, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
	return j;
}

/* Parses and checks a spec against the other cells; replies on error. */
static CellSpec *accept_spec(Manager *m, HttpRequest *r, json_t *j, const char *replacing) {
	CellSpec *spec = NULL, *others[CONFIG_MAX_CELLS];
	const Config *cfg = manager_config(m);
	char err[CONFIG_ERROR_MAX];
	ConfigEnv env;
	size_t n;
	int k;

	config_env_host(&env);
	k = cell_spec_parse(j, "$", &env, &spec, err);
	if (k < 0) {
		http_reply_problem(r, k == -ENOMEM ? 500 : 422, NULL, "invalid cell spec: %s", err);
		return NULL;
	}
	/* The runner reads images as root and the inmate can echo them to
	 * the console a monitor reads: an operator names no file outside the
	 * image directories. */
	k = image_path_check_spec(spec, "$", cfg->api.image_dirs, cfg->api.n_image_dirs, err);
	if (k < 0) {
		http_reply_problem(r, 422, NULL, "invalid cell spec: %s", err);
		cell_spec_free(spec);
		return NULL;
	}
	n = manager_other_specs(m, replacing, others);
	k = cell_spec_check_partition(spec, "$", others, n, cfg->root_cpus, cfg->n_root_cpus, cfg->cpu_sharing, err);
	if (k < 0) {
		http_reply_problem(r, 409, "Conflict", "%s", err);
		cell_spec_free(spec);
		return NULL;
	}
	return spec;
}

static void reply_cell(HttpRequest *r, Cell *c, unsigned status) {
	set_etag(r, cell_revision(c));
	http_reply_json(r, status, cell_to_json(c, true));
}

/* The answer to a request that started an operation: 202 (or, with
 * ?wait=, 200 once it finished). */
static void reply_operation(Manager *m, HttpRequest *r, Operation *op, double wait) {
	http_request_set_tag(r, op->id);
	operation_reply(manager_operations(m), op, r, wait, wait > 0 ? 200 : 202, 202);
}

static Operation *new_operation(Manager *m, HttpRequest *r, const char *kind, Cell *c, OperationTarget target,
                                uint64_t deadline_ns) {
	Operation *op = operation_new(manager_operations(m), kind, c ? cell_name(c) : NULL, target, deadline_ns);
	if (!op)
		http_reply_problem(r, 503, "Service Unavailable", "too many operations in flight; retry later");
	return op;
}

/* The operation fails, and the request that started it answers with the
 * same problem. */
static void fail_operation(Manager *m, HttpRequest *r, Operation *op, unsigned status, const char *title,
                           const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void fail_operation(Manager *m, HttpRequest *r, Operation *op, unsigned status, const char *title,
                           const char *fmt, ...) {
	char detail[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	operation_fail(manager_operations(m), op, status, title, "%s", detail);
	http_reply_problem(r, status, title, "%s", detail);
}

/* How long a cell may take to come up, or to go down, before its
 * operation fails. */
static uint64_t boot_deadline(const Cell *c) {
	const CellSpec *s = cell_latest_spec(c);
	return ((uint64_t)s->health.boot_timeout_ms + 5000) * NSEC_PER_MSEC;
}
static uint64_t stop_deadline(const Cell *c) {
	return ((uint64_t)cell_spec(c)->recovery.shutdown_timeout_ms + 5000) * NSEC_PER_MSEC;
}

/* --- cells -------------------------------------------------------------- */

static void route_action(Manager *m, Cell *c, const char *verb, HttpRequest *r) {
	double wait = query_wait(r);
	bool up = strcmp(verb, "start") == 0 || strcmp(verb, "restart") == 0;
	Operation *op;
	int k;

	if (wait < 0)
		return;
	if (up && !manager_hypervisor_enabled(m)) {
		http_reply_problem(r, 409, "Conflict", "the hypervisor is disabled; POST /hypervisor/enable first");
		return;
	}
	if (up) {
		json_t *missing = cell_missing_images(c);
		if (json_array_size(missing) > 0) {
			http_reply_problem(r, 409, "Conflict", "cell \"%s\" needs image \"%s\", which is not uploaded",
			                   cell_name(c), json_string_value(json_array_get(missing, 0)));
			json_decref(missing);
			return;
		}
		json_decref(missing);
		/* Said here with the JSON path; store_image_path() would refuse
		 * the start anyway, with only an errno for the answer. */
		char err[CONFIG_ERROR_MAX];
		if (image_path_check_spec(cell_latest_spec(c), "$", manager_config(m)->api.image_dirs,
		                          manager_config(m)->api.n_image_dirs, err) < 0) {
			http_reply_problem(r, 409, "Conflict", "cell \"%s\" cannot start: %s", cell_name(c), err);
			return;
		}
	}
	if (strcmp(verb, "start") == 0 && (cell_state(c) == CELL_RUNNING || cell_state(c) == CELL_DEGRADED ||
	                                   cell_state(c) == CELL_STARTING)) {
		http_reply_problem(r, 409, "Conflict", "cell \"%s\" is already %s", cell_name(c),
		                   cell_state_to_string(cell_state(c)));
		return;
	}
	if (strcmp(verb, "stop") == 0 && cell_state(c) == CELL_STOPPED && !cell_has_backend(c) && !cell_busy(c)) {
		http_reply_problem(r, 409, "Conflict", "cell \"%s\" is already stopped", cell_name(c));
		return;
	}
	if (strcmp(verb, "shutdown") == 0 && (cell_state(c) == CELL_STOPPED || !cell_has_backend(c))) {
		http_reply_problem(r, 409, "Conflict", "cell \"%s\" is %s: there is nothing to shut down", cell_name(c),
		                   cell_state_to_string(cell_state(c)));
		return;
	}
	op = new_operation(m, r, verb, c, up ? OP_TARGET_UP : OP_TARGET_STOPPED, up ? boot_deadline(c) : stop_deadline(c));
	if (!op)
		return;
	if (strcmp(verb, "start") == 0)
		k = cell_start(c);
	else if (strcmp(verb, "stop") == 0)
		k = cell_stop(c, "stop requested", true);
	else if (strcmp(verb, "restart") == 0)
		k = cell_restart(c, "restart requested");
	else
		k = cell_shutdown(c);
	if (k == -EALREADY || k == -EBUSY) {
		fail_operation(m, r, op, 409, "Conflict", "cannot %s cell \"%s\": it is %s", verb, cell_name(c),
		               cell_state_to_string(cell_state(c)));
		return;
	}
	if (k < 0) {
		fail_operation(m, r, op, 500, "Internal Server Error", "%s of cell \"%s\" failed: %s", verb,
		               cell_name(c), strerror(-k));
		return;
	}
	operation_issued(manager_operations(m), op);
	reply_operation(m, r, op, wait);
}

static void route_create(Manager *m, HttpRequest *r) {
	_cleanup_(json_decrefp) json_t *j = parse_body(r);
	CellSpec *spec;
	Cell *c;
	char loc[64];
	int k;

	if (!j)
		return;
	spec = accept_spec(m, r, j, NULL);
	if (!spec)
		return;
	if (manager_find_cell(m, spec->name)) {
		http_reply_problem(r, 409, "Conflict", "a cell named \"%s\" already exists", spec->name);
		cell_spec_free(spec);
		return;
	}
	if (manager_n_cells(m) >= CONFIG_MAX_CELLS) {
		http_reply_problem(r, 409, "Conflict", "there are already %d cells", CONFIG_MAX_CELLS);
		cell_spec_free(spec);
		return;
	}
	k = store_save_spec(m, spec, 1);
	if (k < 0) {
		http_reply_problem(r, 500, NULL, "storing the spec failed: %s", strerror(-k));
		cell_spec_free(spec);
		return;
	}
	k = manager_add_cell(m, spec, 1, &c);
	if (k < 0) {
		http_reply_problem(r, 500, NULL, "setting up the cell failed: %s", strerror(-k));
		return;
	}
	events_emit_json(m, "spec", json_pack("{s:s, s:s, s:i}", "cell", cell_name(c), "change", "created",
	                                      "revision", 1));
	snprintf(loc, sizeof loc, "/cells/%s", cell_name(c));
	http_reply_header(r, "Location", loc);
	reply_cell(r, c, 201);
}

static void route_replace(Manager *m, Cell *c, HttpRequest *r) {
	_cleanup_(json_decrefp) json_t *j = NULL;
	const char *apply = http_request_query(r, "apply");
	double wait = query_wait(r);
	json_t *name;
	CellSpec *spec;
	int k;

	if (wait < 0)
		return;
	if (apply && strcmp(apply, "restart") != 0) {
		http_reply_problem(r, 400, NULL, "apply must be \"restart\" (or absent: at the next start)");
		return;
	}
	if (!check_if_match(r, c) || !(j = parse_body(r)))
		return;
	name = json_is_object(j) ? json_object_get(j, "name") : NULL;
	if (name && !(json_is_string(name) && strcmp(json_string_value(name), cell_name(c)) == 0)) {
		http_reply_problem(r, 422, NULL, "the spec's \"name\" must be \"%s\" (the path's); a cell cannot be renamed",
		                   cell_name(c));
		return;
	}
	if (json_is_object(j) && !name)
		json_object_set_new(j, "name", json_string(cell_name(c)));
	spec = accept_spec(m, r, j, cell_name(c));
	if (!spec)
		return;
	k = store_save_spec(m, spec, cell_revision(c) + 1);
	if (k < 0) {
		http_reply_problem(r, 500, NULL, "storing the spec failed: %s", strerror(-k));
		cell_spec_free(spec);
		return;
	}
	cell_replace_spec(c, spec, cell_revision(c) + 1);
	events_emit_json(m, "spec", json_pack("{s:s, s:s, s:I}", "cell", cell_name(c), "change", "replaced",
	                                      "revision", (json_int_t)cell_revision(c)));
	if (apply && cell_state(c) != CELL_STOPPED && cell_state(c) != CELL_STOPPING) {
		Operation *op = new_operation(m, r, "apply", c, OP_TARGET_UP, boot_deadline(c));
		if (!op)
			return;
		k = cell_restart(c, "spec replaced, applied at once");
		if (k < 0) {
			fail_operation(m, r, op, 500, "Internal Server Error",
			               "the spec is stored, but the restart failed: %s", strerror(-k));
			return;
		}
		set_etag(r, cell_revision(c));
		operation_issued(manager_operations(m), op);
		reply_operation(m, r, op, wait);
		return;
	}
	reply_cell(r, c, 200);
}

static void route_delete(Manager *m, Cell *c, HttpRequest *r) {
	char name[CELL_NAME_MAX + 1];
	double wait = query_wait(r);
	uint64_t revision = cell_revision(c);
	Operation *op;
	int k;

	if (wait < 0 || !check_if_match(r, c))
		return;
	snprintf(name, sizeof name, "%s", cell_name(c));
	op = new_operation(m, r, "delete", c, OP_TARGET_NONE, 0);
	if (!op)
		return;
	/* The spec file goes first: once it is gone the cell is gone, even
	 * if the daemon dies before the rest is cleaned up. */
	k = store_remove_cell(m, name);
	if (k < 0) {
		fail_operation(m, r, op, 500, "Internal Server Error", "removing the stored cell failed: %s",
		               strerror(-k));
		return;
	}
	manager_remove_cell(m, c);
	events_emit_json(m, "spec", json_pack("{s:s, s:s, s:I}", "cell", name, "change", "deleted", "revision",
	                                      (json_int_t)revision));
	operation_issued(manager_operations(m), op);
	reply_operation(m, r, op, wait);
}

/* --- images ------------------------------------------------------------- */

static bool image_in_use(const CellSpec *s, const char *file) {
	const char *refs[SPEC_MAX_IMAGE_REFS];
	size_t n = cell_spec_image_refs(s, refs);

	for (size_t i = 0; i < n; i++)
		if (strcmp(refs[i], file) == 0)
			return true;
	return false;
}

static void api_answered(Manager *m, HttpRequest *r);

/* An upload's commit (fsync of up to api.max_image_bytes, rename, fsync
 * of the directory) runs on a worker; the request waits, suspended. */
typedef struct UploadJob {
	Manager *manager;
	HttpRequest *request;
	Upload *upload;
	uint8_t want[SHA256_LEN];
	char cell[CELL_NAME_MAX + 1];
	char file[IMAGE_NAME_MAX + 1];
	bool done, replaced;
	int result;
	size_t size;
	char hex[2 * SHA256_LEN + 1];
} UploadJob;

static int upload_job_run(void *arg) {
	UploadJob *j = arg;
	j->result = upload_commit(TAKE_PTR(j->upload), j->want, &j->replaced, j->hex, &j->size);
	return j->result;
}

static void upload_job_done(const BackendCompletion *d, void *userdata) {
	UploadJob *j = userdata;
	(void)d;
	j->done = true;
	http_request_resume(j->request);
}

static void upload_job_reply(HttpRequest *r, void *userdata) {
	UploadJob *j = userdata;

	if (!j->done)
		/* wardend stopped first; the worker finished, unheard */
		http_reply_problem(r, 503, "Service Unavailable",
		                   "wardend is shutting down; GET the image list to see whether it was stored");
	else if (j->result == -EBADMSG)
		http_reply_problem(r, 422, NULL,
		                   "digest mismatch: the %zu bytes received have SHA-256 %s, not the one in Content-Digest; "
		                   "nothing was stored", j->size, j->hex);
	else if (j->result < 0)
		http_reply_problem(r, 500, NULL, "storing the image failed: %s", strerror(-j->result));
	else {
		events_emit_json(j->manager, "image",
		                 json_pack("{s:s, s:s, s:I, s:s, s:s}", "cell", j->cell, "name", j->file, "size",
		                           (json_int_t)j->size, "sha256", j->hex, "change", "uploaded"));
		http_reply_json(r, j->replaced ? 200 : 201,
		                json_pack("{s:s, s:I, s:s}", "name", j->file, "size", (json_int_t)j->size, "sha256", j->hex));
	}
	api_answered(j->manager, r);
	free(j);
}

static void route_upload(Manager *m, Cell *c, const char *file, HttpRequest *r) {
	Upload *u = NULL;
	bool too_large;
	int error, k;
	UploadJob *j;

	/* api_begin() set the sink; take the upload over from it. */
	(void)http_request_sink_size(r, &too_large, &error);
	u = http_request_sink_userdata(r);
	if (!u) {
		http_reply_problem(r, 500, NULL, "the upload was not set up");
		return;
	}
	http_request_clear_sink(r);
	if (too_large || error) {
		upload_abort(u);
		if (too_large)
			http_reply_problem(r, 413, "Payload Too Large", "image larger than api.max_image_bytes (%llu)",
			                   (unsigned long long)manager_config(m)->api.max_image_bytes);
		else
			http_reply_problem(r, 500, NULL, "writing the image failed: %s", strerror(error));
		return;
	}
	j = calloc(1, sizeof *j);
	if (!j) {
		upload_abort(u);
		http_reply_problem(r, 500, NULL, "out of memory");
		return;
	}
	*j = (UploadJob){ .manager = m, .request = r, .upload = u };
	snprintf(j->cell, sizeof j->cell, "%s", cell_name(c));
	snprintf(j->file, sizeof j->file, "%s", file);
	(void)content_digest_parse(http_request_header(r, "Content-Digest"), j->want);
	/* Unordered with the cell's own requests: its recovery must not wait
	 * for a disk flush. */
	k = backend_call_async(manager_queue(m), NULL, upload_job_run, j, upload_job_done, j, NULL);
	if (k < 0) {
		upload_abort(u);
		free(j);
		http_reply_problem(r, 500, NULL, "storing the image failed: %s", strerror(-k));
		return;
	}
	http_request_suspend(r, upload_job_reply, j);
}

static void route_image_delete(Manager *m, Cell *c, const char *file, HttpRequest *r) {
	int k;

	if (!image_name_is_valid(file) || !store_image_exists(m, cell_name(c), file)) {
		http_reply_problem(r, 404, "Not Found", "cell \"%s\" has no image \"%s\"", cell_name(c), file);
		return;
	}
	if (image_in_use(cell_spec(c), file) || image_in_use(cell_latest_spec(c), file)) {
		http_reply_problem(r, 409, "Conflict", "image \"%s\" is used by the spec of cell \"%s\"", file,
		                   cell_name(c));
		return;
	}
	k = store_remove_image(m, cell_name(c), file);
	if (k < 0) {
		http_reply_problem(r, 500, NULL, "removing the image failed: %s", strerror(-k));
		return;
	}
	events_emit_json(m, "image", json_pack("{s:s, s:s, s:s}", "cell", cell_name(c), "name", file, "change",
	                                       "deleted"));
	http_reply_text(r, 204, "text/plain", NULL, 0);
}

/* --- dispatch ----------------------------------------------------------- */

typedef struct CellPath {
	char name[CELL_NAME_MAX + 1];
	char sub[32];      /* "" for the cell itself */
	char file[IMAGE_NAME_MAX + 2]; /* images/FILE */
	bool bad;
} CellPath;

/* "/cells/NAME[/SUB[/FILE]]" */
static void split_cell_path(const char *rest, CellPath *p) {
	const char *slash = strchr(rest, '/');
	size_t len = slash ? (size_t)(slash - rest) : strlen(rest);

	*p = (CellPath){ 0 };
	if (len == 0 || len > CELL_NAME_MAX) {
		p->bad = true;
		return;
	}
	memcpy(p->name, rest, len);
	if (!slash)
		return;
	rest = slash + 1;
	slash = strchr(rest, '/');
	len = slash ? (size_t)(slash - rest) : strlen(rest);
	if (len == 0 || len >= sizeof p->sub) {
		p->bad = true;
		return;
	}
	memcpy(p->sub, rest, len);
	if (!slash)
		return;
	rest = slash + 1;
	if (strlen(rest) == 0 || strlen(rest) >= sizeof p->file || strchr(rest, '/')) {
		p->bad = true;
		return;
	}
	strcpy(p->file, rest);
}

static bool is_action(const char *sub) {
	return strcmp(sub, "start") == 0 || strcmp(sub, "stop") == 0 || strcmp(sub, "restart") == 0 ||
	       strcmp(sub, "shutdown") == 0;
}

static void route_cell(Manager *m, HttpRequest *r, const char *rest) {
	CellPath p;
	Cell *c;

	split_cell_path(rest, &p);
	if (p.bad || (p.file[0] && strcmp(p.sub, "images") != 0)) {
		http_reply_problem(r, 404, "Not Found", "no resource at %s", http_request_path(r));
		return;
	}
	c = manager_find_cell(m, p.name);
	if (!c) {
		http_reply_problem(r, 404, "Not Found", "no cell named \"%s\"", p.name);
		return;
	}
	if (!p.sub[0]) {
		if (!check_method(r, M_GET | M_PUT | M_DELETE))
			return;
		if (method_bit(http_request_method(r)) == M_GET)
			reply_cell(r, c, 200);
		else if (method_bit(http_request_method(r)) == M_PUT)
			route_replace(m, c, r);
		else
			route_delete(m, c, r);
	} else if (strcmp(p.sub, "console") == 0) {
		if (check_method(r, M_GET))
			route_console(c, r);
	} else if (is_action(p.sub)) {
		if (check_method(r, M_POST))
			route_action(m, c, p.sub, r);
	} else if (strcmp(p.sub, "inject") == 0) {
		if (check_method(r, M_POST))
			route_inject(c, r);
	} else if (strcmp(p.sub, "images") == 0 && !p.file[0]) {
		if (check_method(r, M_GET))
			http_reply_json(r, 200, store_list_images(m, cell_name(c)));
	} else if (strcmp(p.sub, "images") == 0) {
		if (!check_method(r, M_PUT | M_DELETE))
			return;
		if (method_bit(http_request_method(r)) == M_PUT)
			route_upload(m, c, p.file, r);
		else
			route_image_delete(m, c, p.file, r);
	} else
		http_reply_problem(r, 404, "Not Found", "cell \"%s\" has no resource \"%s\"", p.name, p.sub);
}

static void route_hypervisor_action(Manager *m, const char *verb, HttpRequest *r) {
	double wait = query_wait(r);
	char kind[32];
	bool up = strcmp(verb, "disable") != 0;
	uint64_t deadline = 0;
	size_t n_cells;
	Cell *const *all = manager_cells(m, &n_cells);
	Operation *op;
	int k;

	if (wait < 0)
		return;
	snprintf(kind, sizeof kind, "hypervisor-%s", verb);
	op = new_operation(m, r, kind, NULL, up ? OP_TARGET_UP : OP_TARGET_STOPPED, 0);
	if (!op)
		return;
	for (size_t i = 0; i < n_cells; i++) {
		Cell *c = all[i];
		if (up && !cell_spec(c)->autostart)
			continue;
		operation_follow(op, cell_name(c));
		if (up && boot_deadline(c) > deadline)
			deadline = boot_deadline(c);
	}
	op->deadline_mono_ns = deadline ? op->created_mono_ns + deadline : 0;
	if (strcmp(verb, "enable") == 0)
		k = manager_enable_hypervisor(m);
	else if (strcmp(verb, "disable") == 0)
		k = manager_disable_hypervisor(m);
	else {
		k = manager_restart_hypervisor(m, "restart requested through the API");
	}
	if (k < 0) {
		fail_operation(m, r, op, 500, "Internal Server Error", "hypervisor %s failed: %s", verb, strerror(-k));
		return;
	}
	operation_issued(manager_operations(m), op);
	reply_operation(m, r, op, wait);
}

static void route_operation(Manager *m, HttpRequest *r, const char *id) {
	double wait = query_wait(r);
	Operation *op;

	if (wait < 0)
		return;
	op = operation_find(manager_operations(m), id);
	if (!op) {
		http_reply_problem(r, 404, "Not Found", "no operation %s (the newest %d are kept, in memory)", id,
		                   OPERATIONS_MAX);
		return;
	}
	operation_reply(manager_operations(m), op, r, wait, 200, wait > 0 ? 202 : 200);
}

static void route_events(Manager *m, HttpRequest *r) {
	const char *last = http_request_header(r, "Last-Event-ID");
	const char *since = http_request_query(r, "since");
	unsigned long long after = 0;
	const char *v = last ? last : since;

	if (v) {
		char *end;
		after = strtoull(v, &end, 10);
		if (*v == 0 || *end != 0) {
			http_reply_problem(r, 400, NULL, "Last-Event-ID (or since) must be an event id");
			return;
		}
	}
	if (events_stream(manager_events(m), r, after) < 0 && !http_request_replied(r))
		http_reply_problem(r, 500, NULL, "cannot open the event stream");
}

static void dispatch(Manager *m, HttpRequest *r) {
	const char *path = http_request_path(r);

	if (strcmp(path, "/health") == 0) {
		if (check_method(r, M_GET))
			route_health(m, r);
	} else if (strcmp(path, "/cells") == 0 || strcmp(path, "/cells/") == 0) {
		if (!check_method(r, M_GET | M_POST))
			return;
		if (method_bit(http_request_method(r)) == M_GET)
			route_cells(m, r);
		else
			route_create(m, r);
	} else if (strncmp(path, "/cells/", 7) == 0) {
		route_cell(m, r, path + 7);
	} else if (strcmp(path, "/metrics") == 0) {
		if (check_method(r, M_GET))
			route_metrics(m, r);
	} else if (strcmp(path, "/hypervisor") == 0) {
		if (check_method(r, M_GET))
			route_hypervisor(m, r);
	} else if (strcmp(path, "/hypervisor/enable") == 0 || strcmp(path, "/hypervisor/disable") == 0 ||
	           strcmp(path, "/hypervisor/restart") == 0) {
		if (check_method(r, M_POST))
			route_hypervisor_action(m, path + strlen("/hypervisor/"), r);
	} else if (strcmp(path, "/operations") == 0) {
		if (check_method(r, M_GET))
			http_reply_json(r, 200, operations_to_json(manager_operations(m)));
	} else if (strncmp(path, "/operations/", 12) == 0 && path[12] && !strchr(path + 12, '/')) {
		if (check_method(r, M_GET))
			route_operation(m, r, path + 12);
	} else if (strcmp(path, "/events") == 0) {
		if (check_method(r, M_GET))
			route_events(m, r);
	} else
		http_reply_problem(r, 404, "Not Found", "no resource at %s", path);
}

/* --- access, replays, uploads: before the body ---------------------------- */

static bool is_anonymous_route(Manager *m, HttpRequest *r) {
	const char *p = http_request_path(r);
	return manager_config(m)->api.anonymous_metrics && method_bit(http_request_method(r)) == M_GET &&
	       (strcmp(p, "/health") == 0 || strcmp(p, "/metrics") == 0);
}

static void audit(HttpRequest *r, const char *cell, const char *outcome) {
	log_cell(LOG_NOTICE, cell, MSGID_AUDIT, "API %s %s by %s (%s): %s", http_request_method(r),
	         http_request_path(r), http_request_principal(r), http_request_is_unix(r) ? "unix socket" : "tcp",
	         outcome);
}

static const char *cell_of_path(const char *path, char buf[CELL_NAME_MAX + 1]) {
	size_t n;
	if (strncmp(path, "/cells/", 7) != 0)
		return NULL;
	path += 7;
	n = strcspn(path, "/");
	if (n == 0 || n > CELL_NAME_MAX)
		return NULL;
	memcpy(buf, path, n);
	buf[n] = 0;
	return buf;
}

static void replay(Manager *m, HttpRequest *r, const IdemRecord *rec) {
	Operation *op = rec->operation[0] ? operation_find(manager_operations(m), rec->operation) : NULL;
	char *body;

	http_reply_header(r, "Idempotent-Replayed", "true");
	if (rec->location[0])
		http_reply_header(r, "Location", rec->location);
	if (rec->etag[0])
		http_reply_header(r, "ETag", rec->etag);
	if (op) {
		/* the operation's state now, not as it was then; answered as
		 * the first request was: 200 once done if it waited */
		http_reply_json(r, rec->waited && op->phase != OP_RUNNING ? 200 : rec->status == 200 ? 200 : 202,
		                operation_to_json(op));
		return;
	}
	body = malloc(rec->body_len + 1);
	if (!body) {
		http_reply_problem(r, 500, NULL, "out of memory");
		return;
	}
	memcpy(body, rec->body, rec->body_len + 1);
	http_reply_text(r, rec->status, rec->content_type, body, rec->body_len);
}

/* A replay is answered once the body has been read (and dropped): a
 * server that answers and closes while the client still sends may have
 * its answer lost to a reset, and the client would retry for ever. */
static int discard_write(void *userdata, const void *data, size_t n) {
	(void)userdata;
	(void)data;
	(void)n;
	return 0;
}

static void discard_abort(void *userdata) {
	IdemRecord *rec = userdata;
	idem_record_clear(rec);
	free(rec);
}

/* Idempotency-Keys of requests being received or handled, so that a
 * retry racing its original is refused rather than run twice. */
struct Api {
	struct {
		const void *request;
		char key[129];
	} inflight[64];
};

int api_new(Api **ret) {
	Api *a = calloc(1, sizeof *a);
	if (!a)
		return -ENOMEM;
	*ret = a;
	return 0;
}

Api *api_free(Api *a) {
	free(a);
	return NULL;
}

static bool inflight_add(Api *a, HttpRequest *r, const char *key) {
	size_t free_slot = ELEMENTSOF(a->inflight);
	for (size_t i = 0; i < ELEMENTSOF(a->inflight); i++) {
		if (a->inflight[i].request && strcmp(a->inflight[i].key, key) == 0) {
			http_reply_problem(r, 409, "Conflict",
			                   "a request with Idempotency-Key \"%s\" is still in progress; retry when it has "
			                   "been answered", key);
			return false;
		}
		if (!a->inflight[i].request && free_slot == ELEMENTSOF(a->inflight))
			free_slot = i;
	}
	if (free_slot == ELEMENTSOF(a->inflight)) {
		http_reply_problem(r, 503, "Service Unavailable", "too many requests with Idempotency-Keys in progress");
		return false;
	}
	a->inflight[free_slot].request = r;
	snprintf(a->inflight[free_slot].key, sizeof a->inflight[free_slot].key, "%s", key);
	return true;
}

static void inflight_remove(Api *a, const HttpRequest *r) {
	for (size_t i = 0; i < ELEMENTSOF(a->inflight); i++)
		if (a->inflight[i].request == r)
			a->inflight[i].request = NULL;
}

void api_end(Manager *m, HttpRequest *r) {
	inflight_remove(manager_api(m), r);
}

void api_begin(Manager *m, HttpRequest *r) {
	const char *key = http_request_header(r, "Idempotency-Key");
	const char *path = http_request_path(r);
	char cbuf[CELL_NAME_MAX + 1];
	IdemRecord rec;

	if (!http_request_is_unix(r) && http_request_role(r) == HTTP_ROLE_NONE && !is_anonymous_route(m, r)) {
		http_reply_header(r, "WWW-Authenticate", "Bearer realm=\"warden\"");
		http_reply_problem(r, 401, "Unauthorized",
		                   http_request_has_credentials(r) ?
		                           "the bearer token is not valid" :
		                           "this listener needs Authorization: Bearer TOKEN");
		if (is_mutation(r))
			audit(r, cell_of_path(path, cbuf), "401 refused: no valid token");
		return;
	}
	if (!is_mutation(r))
		return;
	if (http_request_role(r) != HTTP_ROLE_OPERATOR) {
		http_reply_problem(r, 403, "Forbidden", "token \"%s\" has the %s role; changes need an operator token",
		                   http_request_principal(r), http_role_to_string(http_request_role(r)));
		audit(r, cell_of_path(path, cbuf), "403 refused: not an operator");
		return;
	}
	http_request_capture(r);
	if (key) {
		if (!idempotency_key_is_valid(key)) {
			http_reply_problem(r, 400, NULL, "Idempotency-Key must be " IDEMPOTENCY_KEY_RULE);
			return;
		}
		if (idempotency_lookup(m, key, &rec) == 0) {
			IdemRecord *keep;
			if (strcmp(rec.method, http_request_method(r)) != 0 || strcmp(rec.path, path) != 0) {
				http_reply_problem(r, 422, NULL,
				                   "Idempotency-Key \"%s\" was used for %s %s; use a new key for a new request",
				                   key, rec.method, rec.path);
				idem_record_clear(&rec);
				return;
			}
			keep = malloc(sizeof *keep);
			if (!keep) {
				idem_record_clear(&rec);
				http_reply_problem(r, 500, NULL, "out of memory");
				return;
			}
			*keep = rec;
			http_request_set_tag(r, "replay");
			http_request_set_sink(r, &(HttpSink){ .write = discard_write, .abort = discard_abort,
			                                      .max_bytes = manager_config(m)->api.max_image_bytes,
			                                      .userdata = keep });
			return;
		}
		if (!inflight_add(manager_api(m), r, key))
			return;
	}

	/* Uploads stream to a temp file; refuse before reading a byte. */
	if (strcmp(http_request_method(r), "PUT") == 0 && strncmp(path, "/cells/", 7) == 0) {
		CellPath p;
		uint8_t dg[SHA256_LEN];
		const char *cd = http_request_header(r, "Content-Digest");
		Upload *u;
		int k;

		split_cell_path(path + 7, &p);
		if (p.bad || strcmp(p.sub, "images") != 0 || !p.file[0])
			return;
		if (!manager_find_cell(m, p.name)) {
			http_reply_problem(r, 404, "Not Found", "no cell named \"%s\"", p.name);
			return;
		}
		if (!image_name_is_valid(p.file)) {
			http_reply_problem(r, 400, NULL, "\"%s\" is not an image name: " IMAGE_NAME_RULE, p.file);
			return;
		}
		if (!cd || content_digest_parse(cd, dg) < 0) {
			http_reply_problem(r, 400, NULL,
			                   "an image upload needs Content-Digest: sha-256=:BASE64: (RFC 9530) for the body");
			return;
		}
		k = upload_begin(m, p.name, p.file, &u);
		if (k < 0) {
			http_reply_problem(r, 500, NULL, "cannot store an upload: %s", strerror(-k));
			return;
		}
		http_request_set_sink(r, &(HttpSink){ .write = upload_write, .abort = upload_abort,
		                                      .max_bytes = manager_config(m)->api.max_image_bytes,
		                                      .userdata = u });
	}
}

/* A mutation was answered (or parked on its operation): audit it and keep
 * its Idempotency-Key record. */
static void api_answered(Manager *m, HttpRequest *r) {
	const char *key = http_request_header(r, "Idempotency-Key");
	char cbuf[CELL_NAME_MAX + 1], outcome[96];
	const char *body, *type;
	unsigned status;
	size_t len;

	_cleanup_free_ char *parked = NULL;

	if (!is_mutation(r))
		return;
	body = http_request_captured(r, &status, &type, &len);
	if (!body) {
		/* Parked on an operation: it answers later. A retry gets the
		 * operation as it is then. */
		Operation *op = operation_find(manager_operations(m), http_request_tag(r));
		if (!op)
			return;
		json_t *oj = operation_to_json(op);
		parked = json_dumps(oj, JSON_COMPACT);
		json_decref(oj);
		body = parked;
		status = 202;
		type = "application/json";
		len = parked ? strlen(parked) : 0;
		snprintf(outcome, sizeof outcome, "202 %s, waiting on it", op->id);
	} else
		snprintf(outcome, sizeof outcome, "%u%s%s", status, http_request_tag(r)[0] ? " " : "",
		         http_request_tag(r));
	audit(r, cell_of_path(http_request_path(r), cbuf), outcome);
	if (!body)
		return;
	/* Store the first answer before it leaves, unless the server failed:
	 * a 5xx is worth retrying. */
	if (key && status < 500) {
		IdemRecord rec = { .status = status, .body = (char *)body, .body_len = len };
		const char *loc = http_reply_header_get(r, "Location"), *etag = http_reply_header_get(r, "ETag");
		int k;

		snprintf(rec.method, sizeof rec.method, "%s", http_request_method(r));
		snprintf(rec.path, sizeof rec.path, "%s", http_request_path(r));
		snprintf(rec.content_type, sizeof rec.content_type, "%s", type);
		if (loc)
			snprintf(rec.location, sizeof rec.location, "%s", loc);
		else if (http_request_tag(r)[0])
			snprintf(rec.location, sizeof rec.location, "/operations/%s", http_request_tag(r));
		snprintf(rec.etag, sizeof rec.etag, "%s", etag ? etag : "");
		snprintf(rec.operation, sizeof rec.operation, "%s", http_request_tag(r));
		rec.waited = http_request_query(r, "wait") != NULL;
		k = idempotency_store(m, key, &rec);
		if (k < 0)
			log_warning_errno(k, "Failed to store the Idempotency-Key record for %s %s: %m",
			                  http_request_method(r), http_request_path(r));
	}
	/* Answered (or stored): a retry now gets the record, not a 409. */
	inflight_remove(manager_api(m), r);
}

void api_handle(Manager *m, HttpRequest *r) {
	char cbuf[CELL_NAME_MAX + 1];

	if (strcmp(http_request_tag(r), "replay") == 0) {
		IdemRecord *rec = http_request_sink_userdata(r);
		http_request_clear_sink(r);
		http_request_set_tag(r, "");
		replay(m, r, rec);
		audit(r, cell_of_path(http_request_path(r), cbuf), "replayed the stored response (Idempotency-Key)");
		discard_abort(rec);
		return;
	}
	dispatch(m, r);
	api_answered(m, r);
}
