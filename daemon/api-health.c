/* SPDX-License-Identifier: MIT */
/* GET /health and GET /metrics: what monitors poll, the two routes
 * api.anonymous_metrics may open to anyone. */
#include <stdlib.h>
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

/* The snapshot is taken on the loop; its formatting runs on a worker
 * while the request waits, so 32 scrapers of 64 cells never hold the loop. */
typedef struct MetricsJob {
	HttpRequest *request;
	MetricsSnapshot *snapshot;
	char *text;
	size_t size;
	int result;
	bool done;
} MetricsJob;

static int metrics_job_run(void *arg) {
	MetricsJob *j = arg;
	j->result = metrics_format(j->snapshot, &j->text, &j->size);
	return j->result;
}

static void metrics_job_done(const BackendCompletion *d, void *userdata) {
	MetricsJob *j = userdata;
	(void)d;
	j->done = true;
	http_request_resume(j->request);
}

static void metrics_job_free(void *userdata) {
	MetricsJob *j = userdata;
	free(j->text);
	metrics_snapshot_free(j->snapshot);
	free(j);
}

static void metrics_job_reply(HttpRequest *r, void *userdata) {
	MetricsJob *j = userdata;

	if (!j->done)
		http_reply_problem(r, 503, "Service Unavailable", "wardend is shutting down");
	else if (j->result < 0)
		http_reply_problem(r, 500, NULL, "rendering metrics failed: %s", strerror(-j->result));
	else
		http_reply_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", TAKE_PTR(j->text), j->size);
	metrics_job_free(j);
}

void route_metrics(Manager *m, HttpRequest *r) {
	MetricsJob *j = calloc(1, sizeof *j);
	int k;

	if (j)
		j->snapshot = metrics_snapshot(m);
	if (!j || !j->snapshot) {
		free(j);
		http_reply_problem(r, 500, NULL, "rendering metrics failed: out of memory");
		return;
	}
	j->request = r;
	k = backend_call_async(manager_queue(m), NULL, metrics_job_run, j, metrics_job_done, j, NULL);
	if (k < 0) {
		metrics_snapshot_free(j->snapshot);
		free(j);
		http_reply_problem(r, 500, NULL, "rendering metrics failed: %s", strerror(-k));
		return;
	}
	http_request_suspend(r, metrics_job_reply, metrics_job_free, j);
}
