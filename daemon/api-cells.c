/* SPDX-License-Identifier: MIT */
/*
 * /cells and /cells/NAME: the list, create, get, replace (If-Match on the
 * revision) and delete of a spec, the lifecycle verbs, fault injection and
 * the console; /cells/NAME/images hands over to api-images.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "cell.h"
#include "events.h"
#include "http.h"
#include "imagepath.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "operation.h"
#include "store.h"


void route_cells(Manager *m, HttpRequest *r) {
	json_t *a = json_array();
	size_t n_cells;
	Cell *const *all = manager_cells(m, &n_cells);
	for (size_t i = 0; i < n_cells; i++)
		json_array_append_new(a, cell_to_json(all[i], false));
	http_reply_json(r, 200, a);
}

static void route_console(Cell *c, HttpRequest *r) {
	long want = query_console_bytes(r);
	char *buf;
	ssize_t n;

	if (want < 0)
		return;
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

/* Parses and checks a spec against the other cells; replies on error. */
static CellSpec *accept_spec(Manager *m, HttpRequest *r, json_t *j, const char *replacing) {
	CellSpec *spec = NULL, *others[CONFIG_MAX_CELLS];
	const Config *cfg = manager_config(m);
	char err[CONFIG_ERROR_MAX];
	ConfigEnv env;
	size_t n;
	int k;

	config_env_for(cfg, &env);
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
		const char *why = manager_container_unavailable(m, cell_latest_spec(c));
		if (why) {
			http_reply_problem(r, 409, "Conflict", "cell \"%s\" cannot start: %s", cell_name(c), why);
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

void route_create(Manager *m, HttpRequest *r) {
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

static bool is_action(const char *sub) {
	return strcmp(sub, "start") == 0 || strcmp(sub, "stop") == 0 || strcmp(sub, "restart") == 0 ||
	       strcmp(sub, "shutdown") == 0;
}

void route_cell(Manager *m, HttpRequest *r, const char *rest) {
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
		if (check_method(r, M_GET) && console_wants_stream(r))
			route_console_stream(m, c, r);
		else if (!http_request_replied(r))
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
