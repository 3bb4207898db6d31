/* SPDX-License-Identifier: MIT */
/* /metrics in the Prometheus text exposition format, version 0.0.4. */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "apps.h"
#include "cell.h"
#include "macro.h"
#include "manager.h"
#include "network.h"
#include "operation.h"
#include "results.h"

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

/* As Prometheus' client libraries do: the kernel's start time of the
 * process (ticks after boot, /proc/self/stat field 22) plus the boot time
 * (/proc/stat btime), so that it does not move between scrapes. */
static void process_start_time(FILE *f) {
	char buf[1024], line[256];
	unsigned long long start_ticks = 0, btime = 0;
	const char *p;
	size_t n;
	FILE *st;

	st = fopen("/proc/self/stat", "re");
	if (!st)
		return;
	n = fread(buf, 1, sizeof buf - 1, st);
	fclose(st);
	buf[n] = 0;
	/* after the command, which may hold spaces and parentheses */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
	                 &start_ticks) != 1)
		return;
	st = fopen("/proc/stat", "re");
	if (!st)
		return;
	while (fgets(line, sizeof line, st))
		if (sscanf(line, "btime %llu", &btime) == 1)
			break;
	fclose(st);
	if (!btime)
		return;
	header(f, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
	fprintf(f, "process_start_time_seconds %.2f\n", (double)btime + (double)start_ticks / (double)sysconf(_SC_CLK_TCK));
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
	process_start_time(f);
	getrusage(RUSAGE_SELF, &ru);
	header(f, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
	fprintf(f, "process_cpu_seconds_total %.6f\n",
	        (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	                (double)ru.ru_stime.tv_usec / 1e6);
}

typedef struct CellFigures {
	char name[CELL_NAME_MAX + 1];
	CellState state;
	bool up, hb_valid;
	uint64_t hb_age_ns, hb_seq, starved;
	unsigned restarts;
	uint64_t failures[_FAILURE_KIND_MAX];
	Histogram h_boot, h_recovery, h_detection[_FAILURE_KIND_MAX];
	/* the hypervisor's view (jailhouse: cell id, sysfs state, vmexits) */
	bool has_hv_id;
	int hv_id;
	char hv_state[24];
	BackendStat stats[BACKEND_MAX_STATS];
	size_t n_stats;
	bool has_status;
	uint64_t exits, exits_io, exits_mmio, exits_hlt, exits_sleep;
	char backend[16];
	uint64_t revision;
	uint64_t budget_exhausted;
	uint32_t hb_timeout_ms;
	/* the inmate's results area (daemon/results.h) */
	bool has_results;
	struct warden_results results;
	/* the inmate's applications table (daemon/apps.h) */
	bool has_apps;
	struct warden_apps apps;
} CellFigures;

struct MetricsSnapshot {
	uint64_t uptime_ns;
	bool hypervisor_enabled;
	LoopLag lag;
	NetLinkState net[CONFIG_MAX_CELLS]; /* cell networks' links */
	size_t n_net;
	OperationCount ops[OPERATION_KINDS_MAX];
	size_t n_ops;
	size_t n_cells;
	CellFigures cells[];
};

MetricsSnapshot *metrics_snapshot(Manager *m) {
	uint64_t now = now_ns(CLOCK_MONOTONIC);
	size_t n_cells;
	Cell *const *cells = manager_cells(m, &n_cells);
	MetricsSnapshot *s = calloc(1, sizeof(*s) + n_cells * sizeof(s->cells[0]));

	if (!s)
		return NULL;
	s->uptime_ns = now - manager_started_mono_ns(m);
	s->hypervisor_enabled = manager_hypervisor_enabled(m);
	s->lag = *manager_loop_lag(m);
	s->n_net = network_snapshot(manager_network(m), s->net, CONFIG_MAX_CELLS);
	s->n_ops = operations_counts(manager_operations(m), s->ops, OPERATION_KINDS_MAX);
	s->n_cells = n_cells;
	for (size_t i = 0; i < n_cells; i++) {
		const CellMachine *cm = cell_machine(cells[i]);
		CellFigures *f = &s->cells[i];
		snprintf(f->name, sizeof f->name, "%s", cell_name(cells[i]));
		f->state = cm->state;
		f->up = cell_machine_up(cm);
		f->hb_valid = cm->hb_valid;
		f->hb_age_ns = now - cm->hb_changed_ns;
		f->hb_seq = cm->hb_seq;
		f->starved = cm->starved;
		f->restarts = cm->restarts;
		memcpy(f->failures, cm->failures, sizeof f->failures);
		snprintf(f->backend, sizeof f->backend, "%s", cell_spec(cells[i])->backend);
		f->revision = cell_revision(cells[i]);
		f->budget_exhausted = cm->budget_exhausted;
		f->hb_timeout_ms = cell_spec(cells[i])->health.timeout_ms;
		f->h_boot = cm->h_boot;
		f->h_recovery = cm->h_recovery;
		memcpy(f->h_detection, cm->h_detection, sizeof f->h_detection);
		f->has_results = cell_results(cells[i], &f->results) >= 0;
		f->has_apps = cell_apps(cells[i], &f->apps) >= 0;
		BackendCellStatus st;
		if (cell_backend_status(cells[i], &st) >= 0) {
			f->has_hv_id = st.has_hv_id;
			f->hv_id = st.hv_id;
			memcpy(f->hv_state, st.hv_state, sizeof f->hv_state);
			memcpy(f->stats, st.stats, sizeof f->stats);
			f->n_stats = st.n_stats;
			f->has_status = true;
			f->exits = st.exits;
			f->exits_io = st.exits_io;
			f->exits_mmio = st.exits_mmio;
			f->exits_hlt = st.exits_hlt;
			f->exits_sleep = st.exits_sleep;
		}
	}
	return s;
}

MetricsSnapshot *metrics_snapshot_free(MetricsSnapshot *s) {
	free(s);
	return NULL;
}

/* The hypervisor's vmexits_KIND counters, but for its vmexits_total: that
 * one is the rest (kind "other", exits of no kind of their own), so that
 * a sum over kind is the cell's total and counts nothing twice. */
static void vmexits(FILE *f, const CellFigures *c) {
	uint64_t total = 0, kinds = 0;
	bool has_total = false;

	for (size_t k = 0; k < c->n_stats; k++) {
		const char *kind = c->stats[k].name;
		if (strncmp(kind, "vmexits_", 8) != 0)
			continue;
		if (strcmp(kind + 8, "total") == 0) {
			total = c->stats[k].value;
			has_total = true;
			continue;
		}
		kinds += c->stats[k].value;
		fprintf(f, "warden_cell_vmexits_total{cell=\"%s\",kind=\"%s\"} %llu\n", c->name, kind + 8,
		        (unsigned long long)c->stats[k].value);
	}
	if (has_total)
		fprintf(f, "warden_cell_vmexits_total{cell=\"%s\",kind=\"other\"} %llu\n", c->name,
		        (unsigned long long)(total > kinds ? total - kinds : 0));
	if (has_total || !c->has_status || kinds)
		return;
	/* no counters of the hypervisor's own (kvm, qemu): the backend's
	 * common ones, the rest of the total again as "other" */
	{
		const struct {
			const char *kind;
			uint64_t n;
		} k[] = { { "io", c->exits_io }, { "mmio", c->exits_mmio }, { "hlt", c->exits_hlt },
			  { "sleep", c->exits_sleep } };
		uint64_t sum = 0;
		for (size_t i = 0; i < ELEMENTSOF(k); i++) {
			sum += k[i].n;
			fprintf(f, "warden_cell_vmexits_total{cell=\"%s\",kind=\"%s\"} %llu\n", c->name, k[i].kind,
			        (unsigned long long)k[i].n);
		}
		fprintf(f, "warden_cell_vmexits_total{cell=\"%s\",kind=\"other\"} %llu\n", c->name,
		        (unsigned long long)(c->exits > sum ? c->exits - sum : 0));
	}
}

/* The figures that alerts and dashboards join on, or count because the
 * states they stand for pass too quickly for a gauge to show. */
static void operator_metrics(FILE *f, const MetricsSnapshot *s) {
	const CellFigures *c = s->cells;
	size_t n = s->n_cells;

	header(f, "warden_cell_info", "gauge", "Static facts of the cell in labels; the value is always 1.");
	for (size_t i = 0; i < n; i++)
		fprintf(f, "warden_cell_info{cell=\"%s\",backend=\"%s\",revision=\"%llu\"} 1\n", c[i].name,
		        c[i].backend, (unsigned long long)c[i].revision);
	header(f, "warden_cell_heartbeat_timeout_seconds", "gauge",
	       "The heartbeat age past which the cell is declared stuck (health.timeout_ms).");
	for (size_t i = 0; i < n; i++)
		fprintf(f, "warden_cell_heartbeat_timeout_seconds{cell=\"%s\"} %.3f\n", c[i].name,
		        (double)c[i].hb_timeout_ms / 1e3);
	header(f, "warden_cell_restart_budget_exhausted_total", "counter",
	       "Failures that found the cell's restart budget spent (then recovery.on_exhausted applies).");
	for (size_t i = 0; i < n; i++)
		fprintf(f, "warden_cell_restart_budget_exhausted_total{cell=\"%s\"} %llu\n", c[i].name,
		        (unsigned long long)c[i].budget_exhausted);
	header(f, "warden_operations_total", "counter", "Finished API operations, by kind and outcome.");
	for (size_t i = 0; i < s->n_ops; i++) {
		fprintf(f, "warden_operations_total{kind=\"%s\",outcome=\"succeeded\"} %llu\n", s->ops[i].kind,
		        (unsigned long long)s->ops[i].succeeded);
		fprintf(f, "warden_operations_total{kind=\"%s\",outcome=\"failed\"} %llu\n", s->ops[i].kind,
		        (unsigned long long)s->ops[i].failed);
	}
}

int metrics_format(const MetricsSnapshot *s, char **ret, size_t *ret_size) {
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);
	char labels[128];
	const CellFigures *c = s->cells;
	size_t n = s->n_cells;

	if (!f)
		return -ENOMEM;

	header(f, "warden_build_info", "gauge", "Build information of wardend; the value is always 1.");
	fprintf(f, "warden_build_info{version=\"%s\"} 1\n", WARDEN_VERSION);
	header(f, "warden_uptime_seconds", "gauge", "Seconds since wardend started.");
	fprintf(f, "warden_uptime_seconds %.3f\n", (double)s->uptime_ns / 1e9);
	header(f, "warden_cells", "gauge", "Number of configured cells.");
	fprintf(f, "warden_cells %zu\n", n);

	header(f, "warden_hypervisor_enabled", "gauge",
	       "1 if the hypervisor is enabled, 0 after POST /hypervisor/disable (no cell starts).");
	fprintf(f, "warden_hypervisor_enabled %d\n", s->hypervisor_enabled);

	header(f, "warden_cell_up", "gauge", "1 if the cell is running or degraded, 0 otherwise.");
	for (size_t i = 0; i < n; i++)
		fprintf(f, "warden_cell_up{cell=\"%s\"} %d\n", c[i].name, c[i].up);
	header(f, "warden_cell_state", "gauge", "1 for the state the cell is in, 0 for the others.");
	for (size_t i = 0; i < n; i++)
		for (int st = 0; st < _CELL_STATE_MAX; st++)
			fprintf(f, "warden_cell_state{cell=\"%s\",state=\"%s\"} %d\n", c[i].name, cell_state_to_string(st),
			        c[i].state == (CellState)st);
	header(f, "warden_cell_heartbeat_age_seconds", "gauge",
	       "Seconds since the cell's heartbeat sequence last advanced (NaN before the first beat).");
	for (size_t i = 0; i < n; i++) {
		if (c[i].hb_valid)
			fprintf(f, "warden_cell_heartbeat_age_seconds{cell=\"%s\"} %.6f\n", c[i].name,
			        (double)c[i].hb_age_ns / 1e9);
		else
			fprintf(f, "warden_cell_heartbeat_age_seconds{cell=\"%s\"} NaN\n", c[i].name);
	}
	header(f, "warden_cell_heartbeat_sequence", "gauge", "The last heartbeat sequence number read.");
	for (size_t i = 0; i < n; i++)
		fprintf(f, "warden_cell_heartbeat_sequence{cell=\"%s\"} %llu\n", c[i].name,
		        (unsigned long long)c[i].hb_seq);
	header(f, "warden_cell_restarts_total", "counter", "Automatic restarts of the cell by its recovery policy.");
	for (size_t i = 0; i < n; i++)
		fprintf(f, "warden_cell_restarts_total{cell=\"%s\"} %u\n", c[i].name, c[i].restarts);
	header(f, "warden_cell_failures_total", "counter", "Failures declared, by kind.");
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < _FAILURE_KIND_MAX; k++)
			fprintf(f, "warden_cell_failures_total{cell=\"%s\",kind=\"%s\"} %llu\n", c[i].name,
			        failure_kind_to_string(k), (unsigned long long)c[i].failures[k]);
	header(f, "warden_cell_starved_total", "counter",
	       "Heartbeat stalls not counted against the inmate because the host starved it of CPU.");
	for (size_t i = 0; i < n; i++)
		fprintf(f, "warden_cell_starved_total{cell=\"%s\"} %llu\n", c[i].name, (unsigned long long)c[i].starved);

	header(f, "warden_cell_hypervisor_state", "gauge",
	       "1 per cell the hypervisor knows, labelled with its own id and state word (Jailhouse: cells/ID/state).");
	for (size_t i = 0; i < n; i++)
		if (c[i].has_hv_id)
			fprintf(f, "warden_cell_hypervisor_state{cell=\"%s\",id=\"%d\",state=\"%s\"} 1\n", c[i].name,
			        c[i].hv_id, c[i].hv_state);
	header(f, "warden_cell_vmexits_total", "counter",
	       "Exits of the cell's CPUs to the hypervisor since the cell was created, by the hypervisor's own kind.");
	for (size_t i = 0; i < n; i++)
		vmexits(f, &c[i]);

	operator_metrics(f, s);

	header(f, "warden_cell_boot_seconds", "histogram", "Start issued to first running heartbeat.");
	for (size_t i = 0; i < n; i++) {
		snprintf(labels, sizeof labels, "cell=\"%s\"", c[i].name);
		histogram(f, "warden_cell_boot_seconds", labels, &c[i].h_boot);
	}
	header(f, "warden_cell_detection_seconds", "histogram",
	       "Last good heartbeat (or the inmate's panic write) to failure declared, by kind.");
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < _FAILURE_KIND_MAX; k++) {
			snprintf(labels, sizeof labels, "cell=\"%s\",kind=\"%s\"", c[i].name, failure_kind_to_string(k));
			histogram(f, "warden_cell_detection_seconds", labels, &c[i].h_detection[k]);
		}
	header(f, "warden_cell_recovery_seconds", "histogram", "Failure declared to running again.");
	for (size_t i = 0; i < n; i++) {
		snprintf(labels, sizeof labels, "cell=\"%s\"", c[i].name);
		histogram(f, "warden_cell_recovery_seconds", labels, &c[i].h_recovery);
	}

	header(f, "warden_cell_result", "gauge",
	       "Values the inmate reports in its results area, by name (kind: counter, gauge or ns).");
	for (size_t i = 0; i < n; i++)
		if (c[i].has_results)
			results_prom_values(f, c[i].name, &c[i].results);
	header(f, "warden_cell_result_latency_seconds", "histogram",
	       "The histogram of the inmate's results area (jitter: wakeup latency in 1 us buckets).");
	for (size_t i = 0; i < n; i++)
		if (c[i].has_results)
			results_prom_histogram(f, c[i].name, &c[i].results);
	header(f, "warden_cell_application_late", "gauge",
	       "1 while an application the inmate watches (/dev/warden) is past its deadline.");
	for (size_t i = 0; i < n; i++)
		if (c[i].has_apps)
			apps_prom(f, c[i].name, &c[i].apps, 0);
	header(f, "warden_cell_application_misses_total", "counter",
	       "Times an application the inmate watches went past its deadline since it registered.");
	for (size_t i = 0; i < n; i++)
		if (c[i].has_apps)
			apps_prom(f, c[i].name, &c[i].apps, 1);

	header(f, "warden_loop_lag_seconds", "histogram",
	       "How late wardend's loop ran a high-priority timer (probed 20 times a second).");
	{
		uint64_t cum = 0;
		for (int i = 0; i < LOOP_LAG_BUCKETS; i++) {
			cum += s->lag.bucket[i];
			fprintf(f, "warden_loop_lag_seconds_bucket{le=\"%s\"} %llu\n", loop_lag_le[i], (unsigned long long)cum);
		}
		fprintf(f, "warden_loop_lag_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)s->lag.count);
		fprintf(f, "warden_loop_lag_seconds_sum %.9f\n", (double)s->lag.sum_ns / 1e9);
		fprintf(f, "warden_loop_lag_seconds_count %llu\n", (unsigned long long)s->lag.count);
	}
	header(f, "warden_loop_lag_max_seconds", "gauge", "The largest loop lag since wardend started.");
	fprintf(f, "warden_loop_lag_max_seconds %.9f\n", (double)s->lag.max_ns / 1e9);

	network_metrics_format(s->net, s->n_net, f);
	process_metrics(f);
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*ret = buf;
	*ret_size = size;
	return 0;
}

int metrics_render(Manager *m, char **ret, size_t *ret_size) {
	MetricsSnapshot *s = metrics_snapshot(m);
	int r;

	if (!s)
		return -ENOMEM;
	r = metrics_format(s, ret, ret_size);
	metrics_snapshot_free(s);
	return r;
}
