/* SPDX-License-Identifier: MIT */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "client.h"
#include "cmd-operation.h"
#include "exit-code.h"
#include "macro.h"
#include "mutation.h"
#include "output.h"
#include "cmd-events.h"

static int operations_table(const Options *o, json_t *j, Table *tp) {
	json_t *list = json_list(j, "operations"), *v;
	Table t = { .n_cols = 5 };
	size_t i;

	(void)o;
	table_cell(&t, "ID");
	table_cell(&t, "KIND");
	table_cell(&t, "CELL");
	table_cell(&t, "PHASE");
	table_cell(&t, "TOTAL");
	json_array_foreach(list, i, v) {
		char d[32];
		table_cell(&t, "%s", dash(jstr(v, "operation")));
		table_cell(&t, "%s", dash(jstr(v, "kind")));
		table_cell(&t, "%s", dash(jstr(v, "cell")));
		table_cell(&t, "%s", dash(jstr(v, "phase")));
		table_cell(&t, "%s", format_json_ms(json_object_get(json_object_get(v, "timings_ms"), "total"), d, sizeof d));
	}
	*tp = t;
	return EXIT_OK;
}

static int show_operations(const Options *o, const Response *resp, json_t *j) {
	Table t;
	int r;

	(void)resp;
	r = operations_table(o, j, &t);
	if (r == EXIT_OK)
		r = table_print(&t, o) < 0 ? oom() : EXIT_OK;
	table_done(&t);
	return r;
}

int cmd_operations(const Options *o, const char *verb, char **args) {
	(void)verb, (void)args;
	if (o->watch)
		return watch_list(o, "/operations", operations_table);
	return get_and_show(o, "/operations", show_operations);
}

int cmd_operation_show(const Options *o, const char *verb, char **args) {
	_cleanup_(response_done) Response resp = { 0 };
	_cleanup_(json_decrefp) json_t *j = NULL;
	_cleanup_free_ char *path = path_make("/operations/", args[0], NULL);
	char label[160];
	Progress p;
	Request q = { .method = "GET" };
	int r;

	(void)verb;
	if (!path)
		return oom();
	if (path_add_wait(o, &path, &q.hold_s) < 0)
		return oom();
	snprintf(label, sizeof label, "operation %s", args[0]);
	progress_begin(&p, o, label);
	q.path = path;
	q.tick = tick_progress;
	q.tick_userdata = &p;
	r = request_run(o, &q, &resp);
	if (r == EXIT_OK)
		r = parse_json_answer(&resp, &j);
	if (r != EXIT_OK) {
		progress_abort(&p);
		return r;
	}
	return operation_finish(o, &p, p.start_ns + (uint64_t)(o->wait_s * 1e9), &resp.body, &j, true);
}
