/* SPDX-License-Identifier: MIT */
/*
 * Routes of the HTTP API. Paths as operators type them:
 *   GET  /health                  liveness and a summary
 *   GET  /cells                   every cell, short form
 *   GET  /cells/NAME              one cell with spec, events, hypervisor view
 *   GET  /cells/NAME/console      console tail (?bytes=N), text/plain
 *   POST /cells/NAME/start|stop|restart|shutdown
 *   POST /cells/NAME/inject       {"fault": "hang|panic|crash|exit|stall"}
 *   GET  /hypervisor              backends and partition summary
 *   GET  /metrics                 Prometheus text format 0.0.4
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cell.h"
#include "http.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "metrics.h"

#define CONSOLE_MAX_BYTES (64 * 1024)

typedef enum Method {
	M_GET = 1 << 0,
	M_POST = 1 << 1,
} Method;

static unsigned method_bit(const char *m) {
	if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
		return M_GET;
	if (strcmp(m, "POST") == 0)
		return M_POST;
	return 0;
}

/* 405 with Allow naming what the resource does accept. */
static void reply_405(HttpRequest *r, unsigned allowed) {
	char allow[32] = "";
	if (allowed & M_GET)
		strcat(allow, "GET, HEAD");
	if (allowed & M_POST)
		strcat(allow, allow[0] ? ", POST" : "POST");
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

	for (size_t i = 0; i < m->n_cells; i++)
		counts[m->cells[i]->state]++;
	for (int s = 0; s < _CELL_STATE_MAX; s++)
		json_object_set_new(cells, cell_state_to_string(s), json_integer(counts[s]));
	json_object_set_new(cells, "total", json_integer((json_int_t)m->n_cells));
	for (size_t i = 0; i < http_n_listeners(m->http); i++)
		json_array_append_new(listeners, json_string(http_listener_name(m->http, i)));
	http_reply_json(r, 200,
	                json_pack("{s:s, s:s, s:f, s:o, s:o, s:b}", "status",
	                          counts[CELL_FAILED] ? "degraded" : "ok", "version", WARDEN_VERSION, "uptime_s",
	                          (double)(now_ns(CLOCK_MONOTONIC) - m->started_mono_ns) / 1e9, "cells", cells,
	                          "listeners", listeners, "cpu_sharing", m->config->cpu_sharing));
}

static void route_cells(Manager *m, HttpRequest *r) {
	json_t *a = json_array();
	for (size_t i = 0; i < m->n_cells; i++)
		json_array_append_new(a, cell_to_json(m->cells[i], false));
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
	json_t *root = json_array(), *cells = json_array();
	for (size_t i = 0; i < m->config->n_root_cpus; i++)
		json_array_append_new(root, json_integer(m->config->root_cpus[i]));
	for (size_t i = 0; i < m->n_cells; i++)
		json_array_append_new(cells, json_string(m->cells[i]->spec->name));
	http_reply_json(r, 200,
	                json_pack("{s:[s], s:b, s:o, s:o, s:s}", "backends", m->kvm ? "kvm" : "none", "cpu_sharing",
	                          m->config->cpu_sharing, "root_cpus", root, "cells", cells, "runtime_dir",
	                          m->runtime_dir));
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
	if (!c->backend) {
		http_reply_problem(r, 409, "Conflict", "cell \"%s\" has no console: it is %s", c->spec->name,
		                   cell_state_to_string(c->state));
		return;
	}
	buf = malloc((size_t)want + 1);
	if (!buf) {
		http_reply_problem(r, 500, NULL, "out of memory");
		return;
	}
	n = backend_cell_console_read(c->backend, buf, (size_t)want);
	if (n < 0) {
		free(buf);
		http_reply_problem(r, 500, NULL, "reading the console failed: %s", strerror((int)-n));
		return;
	}
	http_reply_text(r, 200, "text/plain; charset=utf-8", buf, (size_t)n);
}

static void reply_cell(HttpRequest *r, Cell *c, unsigned status) {
	http_reply_json(r, status, cell_to_json(c, false));
}

static void route_action(Manager *m, Cell *c, const char *verb, HttpRequest *r) {
	int k;

	(void)m;
	log_cell(LOG_NOTICE, c->spec->name, MSGID_AUDIT, "API: %s %s (%s)", http_request_method(r),
	         http_request_path(r), http_request_is_unix(r) ? "unix socket" : "tcp");
	if (strcmp(verb, "start") == 0)
		k = cell_start(c);
	else if (strcmp(verb, "stop") == 0)
		k = cell_stop(c, "stop requested");
	else if (strcmp(verb, "restart") == 0)
		k = cell_restart(c, "restart requested");
	else
		k = cell_shutdown(c);
	if (k == -EALREADY || k == -EBUSY) {
		http_reply_problem(r, 409, "Conflict", "cannot %s cell \"%s\": it is %s", verb, c->spec->name,
		                   cell_state_to_string(c->state));
		return;
	}
	if (k < 0) {
		http_reply_problem(r, 500, NULL, "%s of cell \"%s\" failed: %s", verb, c->spec->name, strerror(-k));
		return;
	}
	reply_cell(r, c, 202);
}

static void route_inject(Cell *c, HttpRequest *r) {
	size_t n;
	const char *body = http_request_body(r, &n);
	json_error_t je;
	json_t *j, *f;
	const char *fault;
	int k;

	j = json_loadb(body, n, JSON_REJECT_DUPLICATES, &je);
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
	log_cell(LOG_NOTICE, c->spec->name, MSGID_AUDIT, "API: inject \"%s\" into cell \"%s\": %s", fault,
	         c->spec->name, k < 0 ? strerror(-k) : "done");
	if (k == -EPERM)
		http_reply_problem(r, 403, "Forbidden", "cell \"%s\" does not allow fault injection (allow_inject)",
		                   c->spec->name);
	else if (k == -EINVAL)
		http_reply_problem(r, 422, NULL, "unknown fault \"%s\" (hang, panic, crash, exit, stall)", fault);
	else if (k == -ESRCH)
		http_reply_problem(r, 409, "Conflict", "cell \"%s\" is %s; faults go to running cells", c->spec->name,
		                   cell_state_to_string(c->state));
	else if (k < 0)
		http_reply_problem(r, 500, NULL, "injection failed: %s", strerror(-k));
	else
		http_reply_json(r, 202, json_pack("{s:s, s:s}", "cell", c->spec->name, "fault", fault));
	json_decref(j);
}

static void route_cell(Manager *m, HttpRequest *r, const char *rest) {
	char name[CELL_NAME_MAX + 2];
	const char *slash = strchr(rest, '/');
	size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
	const char *sub = slash ? slash + 1 : NULL;
	Cell *c;

	if (len == 0 || len > CELL_NAME_MAX) {
		http_reply_problem(r, 404, "Not Found", "no such cell");
		return;
	}
	memcpy(name, rest, len);
	name[len] = 0;
	c = manager_find_cell(m, name);
	if (!c) {
		http_reply_problem(r, 404, "Not Found", "no cell named \"%s\"", name);
		return;
	}
	if (!sub) {
		if (check_method(r, M_GET))
			http_reply_json(r, 200, cell_to_json(c, true));
		return;
	}
	if (strcmp(sub, "console") == 0) {
		if (check_method(r, M_GET))
			route_console(c, r);
		return;
	}
	if (strcmp(sub, "start") == 0 || strcmp(sub, "stop") == 0 || strcmp(sub, "restart") == 0 ||
	    strcmp(sub, "shutdown") == 0) {
		if (check_method(r, M_POST))
			route_action(m, c, sub, r);
		return;
	}
	if (strcmp(sub, "inject") == 0) {
		if (check_method(r, M_POST))
			route_inject(c, r);
		return;
	}
	http_reply_problem(r, 404, "Not Found", "cell \"%s\" has no resource \"%s\"", name, sub);
}

void api_handle(Manager *m, HttpRequest *r) {
	const char *path = http_request_path(r);

	if (strcmp(path, "/health") == 0) {
		if (check_method(r, M_GET))
			route_health(m, r);
	} else if (strcmp(path, "/cells") == 0 || strcmp(path, "/cells/") == 0) {
		if (check_method(r, M_GET))
			route_cells(m, r);
	} else if (strncmp(path, "/cells/", 7) == 0) {
		route_cell(m, r, path + 7);
	} else if (strcmp(path, "/metrics") == 0) {
		if (check_method(r, M_GET))
			route_metrics(m, r);
	} else if (strcmp(path, "/hypervisor") == 0) {
		if (check_method(r, M_GET))
			route_hypervisor(m, r);
	} else
		http_reply_problem(r, 404, "Not Found", "no resource at %s", path);
}
