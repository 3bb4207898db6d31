/* SPDX-License-Identifier: MIT */
/* GET /hypervisor and POST /hypervisor/enable|disable|restart. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "cell.h"
#include "http.h"
#include "manager.h"
#include "operation.h"

void route_hypervisor(Manager *m, HttpRequest *r) {
	json_t *root = json_array(), *cells = json_array(), *backends;
	size_t n_cells;
	Cell *const *all = manager_cells(m, &n_cells);
	const Config *cfg = manager_config(m);
	for (size_t i = 0; i < cfg->n_root_cpus; i++)
		json_array_append_new(root, json_integer(cfg->root_cpus[i]));
	for (size_t i = 0; i < n_cells; i++)
		json_array_append_new(cells, json_string(cell_name(all[i])));
	/* Available: present, and its last enable did not fail. */
	backends = json_array();
	static const char *const kinds[] = { "kvm", "qemu", "jailhouse", "container" };
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		BackendStat st[BACKEND_MAX_STATS];
		json_t *b = json_pack("{s:s, s:b}", "kind", kinds[i], "available", manager_backend_available(m, kinds[i]));
		/* The backend's own figures (jailhouse: its memory and remap
		 * pools, from sysfs: reads that do not wait). */
		int n = manager_backend_stats(m, kinds[i], st, BACKEND_MAX_STATS);
		if (n > 0) {
			json_t *o = json_object();
			for (int k = 0; k < n; k++)
				json_object_set_new(o, st[k].name, json_integer((json_int_t)st[k].value));
			json_object_set_new(b, "stats", o);
		}
		json_array_append_new(backends, b);
	}
	http_reply_json(r, 200,
	                json_pack("{s:s, s:o, s:b, s:o, s:o, s:s}", "state",
	                          manager_hypervisor_enabled(m) ? "enabled" : "disabled", "backends", backends,
	                          "cpu_sharing", cfg->cpu_sharing, "root_cpus", root, "cells", cells, "runtime_dir",
	                          manager_runtime_dir(m)));
}

/* What the hypervisor itself printed (Jailhouse: its console ring, the
 * messages of enable, cell creation, failed CPUs). */
void route_hypervisor_console(Manager *m, HttpRequest *r) {
	long want = query_console_bytes(r);
	char *buf;
	ssize_t n;

	if (want < 0)
		return;
	buf = malloc((size_t)want + 1);
	if (!buf) {
		http_reply_problem(r, 500, NULL, "out of memory");
		return;
	}
	n = manager_hypervisor_console(m, buf, (size_t)want);
	/* kvm and qemu print nothing of their own: empty, as a quiet console */
	if (n == -ENODEV)
		n = 0;
	if (n < 0) {
		free(buf);
		http_reply_problem(r, 500, NULL, "reading the hypervisor console failed: %s", strerror((int)-n));
		return;
	}
	http_reply_text(r, 200, "text/plain; charset=utf-8", buf, (size_t)n);
}

void route_hypervisor_action(Manager *m, const char *verb, HttpRequest *r) {
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
