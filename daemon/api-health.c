/* SPDX-License-Identifier: MIT */
/* GET /health and GET /metrics: what monitors poll, the two routes
 * api.anonymous_metrics may open to anyone. */
#include <string.h>

#include "api-internal.h"
#include "cell.h"
#include "http.h"
#include "macro.h"
#include "manager.h"
#include "metrics.h"
#include "store.h"

void route_health(Manager *m, HttpRequest *r) {
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

void route_metrics(Manager *m, HttpRequest *r) {
	char *buf;
	size_t n;
	int k = metrics_render(m, &buf, &n);
	if (k < 0) {
		http_reply_problem(r, 500, NULL, "rendering metrics failed: %s", strerror(-k));
		return;
	}
	http_reply_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", buf, n);
}
