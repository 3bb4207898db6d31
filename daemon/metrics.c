/* SPDX-License-Identifier: MIT */
/* /metrics in the Prometheus text exposition format, version 0.0.4. */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cell.h"
#include "macro.h"
#include "manager.h"

static void header(FILE *f, const char *name, const char *type, const char *help) {
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The bucket bounds as Prometheus prints them, formatted once: float
 * formatting was a quarter of a scrape's cost. */
static const char *const hist_le[HIST_BUCKETS] = {
	"5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
	"0.025", "0.05",   "0.1",     "0.25",   "0.5",   "1",      "2.5",   "10",
};

static void histogram(FILE *f, const char *name, const char *labels, const Histogram *h) {
	uint64_t cum = 0;
	for (int i = 0; i < HIST_BUCKETS; i++) {
		cum += h->bucket[i];
		fprintf(f, "%s_bucket{%s,le=\"%s\"} %llu\n", name, labels, hist_le[i], (unsigned long long)cum);
	}
	fprintf(f, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels, (unsigned long long)h->count);
	fprintf(f, "%s_sum{%s} %.9f\n", name, labels, h->sum);
	fprintf(f, "%s_count{%s} %llu\n", name, labels, (unsigned long long)h->count);
}

static void process_metrics(FILE *f) {
	struct rusage ru;
	long rss_pages = 0;
	FILE *st;

	st = fopen("/proc/self/statm", "re");
	if (st) {
		long size;
		if (fscanf(st, "%ld %ld", &size, &rss_pages) != 2)
			rss_pages = 0;
		fclose(st);
	}
	header(f, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
	fprintf(f, "process_resident_memory_bytes %ld\n", rss_pages * sysconf(_SC_PAGESIZE));
	getrusage(RUSAGE_SELF, &ru);
	header(f, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
	fprintf(f, "process_cpu_seconds_total %.6f\n",
	        (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	                (double)ru.ru_stime.tv_usec / 1e6);
}

int metrics_render(Manager *m, char **ret, size_t *ret_size) {
	uint64_t now = now_ns(CLOCK_MONOTONIC);
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);
	char labels[128];
	size_t n_cells;
	Cell *const *cells = manager_cells(m, &n_cells);
	const LoopLag *lag = manager_loop_lag(m);

	if (!f)
		return -ENOMEM;

	header(f, "warden_build_info", "gauge", "Build information of wardend; the value is always 1.");
	fprintf(f, "warden_build_info{version=\"%s\"} 1\n", WARDEN_VERSION);
	header(f, "warden_uptime_seconds", "gauge", "Seconds since wardend started.");
	fprintf(f, "warden_uptime_seconds %.3f\n", (double)(now - manager_started_mono_ns(m)) / 1e9);
	header(f, "warden_cells", "gauge", "Number of configured cells.");
	fprintf(f, "warden_cells %zu\n", n_cells);

	header(f, "warden_hypervisor_enabled", "gauge",
	       "1 if the hypervisor is enabled, 0 after POST /hypervisor/disable (no cell starts).");
	fprintf(f, "warden_hypervisor_enabled %d\n", manager_hypervisor_enabled(m));

	header(f, "warden_cell_up", "gauge", "1 if the cell is running or degraded, 0 otherwise.");
	for (size_t i = 0; i < n_cells; i++)
		fprintf(f, "warden_cell_up{cell=\"%s\"} %d\n", cell_name(cells[i]),
		        cell_machine_up(cell_machine(cells[i])));
	header(f, "warden_cell_state", "gauge", "1 for the state the cell is in, 0 for the others.");
	for (size_t i = 0; i < n_cells; i++)
		for (int s = 0; s < _CELL_STATE_MAX; s++)
			fprintf(f, "warden_cell_state{cell=\"%s\",state=\"%s\"} %d\n", cell_name(cells[i]),
			        cell_state_to_string(s), cell_state(cells[i]) == (CellState)s);
	header(f, "warden_cell_heartbeat_age_seconds", "gauge",
	       "Seconds since the cell's heartbeat sequence last advanced (NaN before the first beat).");
	for (size_t i = 0; i < n_cells; i++) {
		const CellMachine *cm = cell_machine(cells[i]);
		if (cm->hb_valid)
			fprintf(f, "warden_cell_heartbeat_age_seconds{cell=\"%s\"} %.6f\n", cell_name(cells[i]),
			        (double)(now - cm->hb_changed_ns) / 1e9);
		else
			fprintf(f, "warden_cell_heartbeat_age_seconds{cell=\"%s\"} NaN\n", cell_name(cells[i]));
	}
	header(f, "warden_cell_heartbeat_sequence", "gauge", "The last heartbeat sequence number read.");
	for (size_t i = 0; i < n_cells; i++)
		fprintf(f, "warden_cell_heartbeat_sequence{cell=\"%s\"} %llu\n", cell_name(cells[i]),
		        (unsigned long long)cell_machine(cells[i])->hb_seq);
	header(f, "warden_cell_restarts_total", "counter", "Automatic restarts of the cell by its recovery policy.");
	for (size_t i = 0; i < n_cells; i++)
		fprintf(f, "warden_cell_restarts_total{cell=\"%s\"} %u\n", cell_name(cells[i]),
		        cell_machine(cells[i])->restarts);
	header(f, "warden_cell_failures_total", "counter", "Failures declared, by kind.");
	for (size_t i = 0; i < n_cells; i++)
		for (int k = 0; k < _FAILURE_KIND_MAX; k++)
			fprintf(f, "warden_cell_failures_total{cell=\"%s\",kind=\"%s\"} %llu\n", cell_name(cells[i]),
			        failure_kind_to_string(k), (unsigned long long)cell_machine(cells[i])->failures[k]);
	header(f, "warden_cell_starved_total", "counter",
	       "Heartbeat stalls not counted against the inmate because wardend itself was starved of CPU.");
	for (size_t i = 0; i < n_cells; i++)
		fprintf(f, "warden_cell_starved_total{cell=\"%s\"} %llu\n", cell_name(cells[i]),
		        (unsigned long long)cell_machine(cells[i])->starved);

	header(f, "warden_cell_boot_seconds", "histogram", "Start issued to first running heartbeat.");
	for (size_t i = 0; i < n_cells; i++) {
		snprintf(labels, sizeof labels, "cell=\"%s\"", cell_name(cells[i]));
		histogram(f, "warden_cell_boot_seconds", labels, &cell_machine(cells[i])->h_boot);
	}
	header(f, "warden_cell_detection_seconds", "histogram",
	       "Last good heartbeat (or the inmate's panic write) to failure declared, by kind.");
	for (size_t i = 0; i < n_cells; i++)
		for (int k = 0; k < _FAILURE_KIND_MAX; k++) {
			snprintf(labels, sizeof labels, "cell=\"%s\",kind=\"%s\"", cell_name(cells[i]),
			         failure_kind_to_string(k));
			histogram(f, "warden_cell_detection_seconds", labels, &cell_machine(cells[i])->h_detection[k]);
		}
	header(f, "warden_cell_recovery_seconds", "histogram", "Failure declared to running again.");
	for (size_t i = 0; i < n_cells; i++) {
		snprintf(labels, sizeof labels, "cell=\"%s\"", cell_name(cells[i]));
		histogram(f, "warden_cell_recovery_seconds", labels, &cell_machine(cells[i])->h_recovery);
	}

	header(f, "warden_loop_lag_seconds", "histogram",
	       "How late wardend's loop ran a high-priority timer (probed 50 times a second).");
	{
		uint64_t cum = 0;
		for (int i = 0; i < LOOP_LAG_BUCKETS; i++) {
			cum += lag->bucket[i];
			fprintf(f, "warden_loop_lag_seconds_bucket{le=\"%s\"} %llu\n", loop_lag_le[i], (unsigned long long)cum);
		}
		fprintf(f, "warden_loop_lag_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)lag->count);
		fprintf(f, "warden_loop_lag_seconds_sum %.9f\n", (double)lag->sum_ns / 1e9);
		fprintf(f, "warden_loop_lag_seconds_count %llu\n", (unsigned long long)lag->count);
	}
	header(f, "warden_loop_lag_max_seconds", "gauge", "The largest loop lag since wardend started.");
	fprintf(f, "warden_loop_lag_max_seconds %.9f\n", (double)lag->max_ns / 1e9);

	process_metrics(f);
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*ret = buf;
	*ret_size = size;
	return 0;
}
