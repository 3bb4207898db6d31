/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "buffer.h"
#include "client.h"
#include "cmd-cell.h"
#include "cmd-events.h"
#include "exit-code.h"
#include "macro.h"
#include "mutation.h"
#include "output.h"

#define SPEC_MAX_BYTES (16 * 1024 * 1024)

/* Reads a cell spec: EXIT_OK with the text in buf and the parsed spec. */
static int read_spec(const char *file, Buffer *buf, json_t **ret) {
	json_error_t e;
	json_t *j;
	int r = buffer_read_file(file, SPEC_MAX_BYTES, buf);

	if (r < 0) {
		fprintf(stderr, "wardenctl: %s: %s\n", file, strerror(-r));
		return EXIT_USAGE;
	}
	j = json_loadb(buf->data, buf->size, JSON_REJECT_DUPLICATES, &e);
	if (!j) {
		fprintf(stderr, "wardenctl: %s: not JSON: %s (line %d, column %d)\n", file, e.text, e.line, e.column);
		return EXIT_USAGE;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		fprintf(stderr, "wardenctl: %s: a cell spec is a JSON object\n", file);
		return EXIT_USAGE;
	}
	*ret = j;
	return EXIT_OK;
}

/* How long ago an RFC 3339 UTC timestamp was, in ms; NAN when unparsable. */
static double age_ms(const char *at) {
	struct tm tm = { 0 };
	struct timespec now;
	const char *rest = at ? strptime(at, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	double frac = 0;

	if (!rest)
		return NAN;
	if (*rest == '.')
		frac = strtod(rest, NULL);
	clock_gettime(CLOCK_REALTIME, &now);
	return ((double)now.tv_sec + (double)now.tv_nsec / 1e9 - ((double)timegm(&tm) + frac)) * 1000.0;
}

static int cells_table(const Options *o, json_t *j, Table *tp) {
	json_t *list = json_list(j, "cells"), *c;
	bool wide = o->format == FORMAT_WIDE;
	Table t = { .n_cols = wide ? 11 : 7 };
	size_t i;

	table_cell(&t, "NAME");
	table_cell(&t, "STATE");
	table_cell(&t, "BACKEND");
	table_cell(&t, "CPUS");
	table_cell(&t, "RESTARTS");
	table_cell(&t, "UPTIME");
	table_cell(&t, "LAST-FAILURE");
	if (wide) {
		table_cell(&t, "REVISION");
		table_cell(&t, "HEARTBEAT");
		table_cell(&t, "DETECTION");
		table_cell(&t, "RECOVERY");
	}
	json_array_foreach(list, i, c) {
		json_t *cpus = json_object_get(c, "cpus") ?: json_object_get(json_object_get(c, "spec"), "cpus");
		json_t *hb = json_object_get(c, "heartbeat"), *lf = json_object_get(c, "last_failure");
		json_t *uptime = json_object_get(c, "uptime_ms") ?: json_object_get(hb, "uptime_ms");
		const char *state = jstr(c, "state");
		bool up = streq(state, "running") || streq(state, "degraded");
		char b1[128], b2[32], b3[32];

		table_cell(&t, "%s", dash(jstr(c, "name")));
		table_cell(&t, "%s", dash(state));
		table_cell(&t, "%s", dash(jstr(c, "backend")));
		table_cell(&t, "%s", format_list(cpus, NULL, ",", b1, sizeof b1));
		table_cell(&t, "%lld", (long long)json_integer_value(json_object_get(c, "restarts")));
		table_cell(&t, "%s", up ? format_json_ms(uptime, b2, sizeof b2) : "-");
		if (json_is_object(lf) && isfinite(age_ms(jstr(lf, "at"))))
			table_cell(&t, "%s %s ago", dash(jstr(lf, "kind")), format_ms(age_ms(jstr(lf, "at")), b3, sizeof b3));
		else
			table_cell(&t, "%s", json_is_object(lf) ? dash(jstr(lf, "kind")) : "-");
		if (wide) {
			json_t *tm = json_object_get(c, "timings");
			char b4[32], b5[32], b6[32];
			table_cell(&t, "%lld", (long long)json_integer_value(json_object_get(c, "revision")));
			if (json_is_number(json_object_get(hb, "age_ms")))
				table_cell(&t, "#%lld %s ago", (long long)json_integer_value(json_object_get(hb, "seq")),
				           format_json_ms(json_object_get(hb, "age_ms"), b4, sizeof b4));
			else
				table_cell(&t, "-");
			table_cell(&t, "%s", format_json_ms(json_object_get(tm, "detection_ms"), b5, sizeof b5));
			table_cell(&t, "%s", format_json_ms(json_object_get(tm, "recovery_ms"), b6, sizeof b6));
		}
	}
	*tp = t;
	return EXIT_OK;
}

static int show_cells(const Options *o, const Response *resp, json_t *j) {
	Table t;
	int r;

	(void)resp;
	r = cells_table(o, j, &t);
	if (r == EXIT_OK)
		r = table_print(&t, o) < 0 ? oom() : EXIT_OK;
	table_done(&t);
	return r;
}

static void show_cell_spec(json_t *spec) {
	json_t *mem = json_object_get(spec, "memory"), *images = json_object_get(spec, "images");
	json_t *linux_ = json_object_get(spec, "linux"), *health = json_object_get(spec, "health"), *v;
	char buf[512], d1[32], d2[32], d3[32];
	size_t i;

	kv("backend", "%s", dash(jstr(spec, "backend")));
	kv("cpus", "%s", format_list(json_object_get(spec, "cpus"), NULL, ",", buf, sizeof buf));
	json_array_foreach(mem, i, v) kv(i ? "" : "memory", "%s %s at %s", dash(jstr(v, "name")),
	                                   format_size(json_object_get(v, "size"), d1, sizeof d1),
	                                   dash(jstr(v, "phys_start")));
	json_array_foreach(images, i, v) kv(i ? "" : "images", "%s at %s", dash(jstr(v, "file")), dash(jstr(v, "address")));
	if (json_is_object(linux_))
		kv("linux", "kernel %s, initrd %s, cmdline \"%s\"", dash(jstr(linux_, "kernel")), dash(jstr(linux_, "initrd")),
		   jstr(linux_, "cmdline") ? jstr(linux_, "cmdline") : "");
	if (jstr(spec, "args"))
		kv("args", "%s", jstr(spec, "args"));
	if (json_is_boolean(json_object_get(spec, "autostart")))
		kv("autostart", "%s", json_is_true(json_object_get(spec, "autostart")) ? "yes" : "no");
	if (json_is_true(json_object_get(spec, "allow_inject")))
		kv("allow inject", "yes");
	if (json_is_object(health))
		kv("health check", "every %s, timeout %s, boot timeout %s",
		   format_json_ms(json_object_get(health, "period_ms"), d1, sizeof d1),
		   format_json_ms(json_object_get(health, "timeout_ms"), d2, sizeof d2),
		   format_json_ms(json_object_get(health, "boot_timeout_ms"), d3, sizeof d3));
}

/* A cell network's one line (docs/networks.md): the root-side interface,
 * the addresses, the link as the daemon's monitor sees it. */
static void show_cell_network(json_t *n) {
	json_t *rx = json_object_get(n, "rx"), *tx = json_object_get(n, "tx"), *nat = json_object_get(n, "nat");

	if (!json_is_object(n))
		return;
	kv("network", "%s%s%s, %s -> %s%s%s, %s, rx %lld B %lld pkts, tx %lld B %lld pkts",
	   dash(jstr(n, "interface")), jstr(n, "bridge") ? " on " : "", jstr(n, "bridge") ? jstr(n, "bridge") : "",
	   dash(jstr(n, "address")), dash(jstr(n, "cell_address")), json_is_object(nat) ? ", NAT via " : "",
	   json_is_object(nat) ? dash(jstr(nat, "uplink")) : "",
	   !json_is_true(json_object_get(n, "present")) ? "interface missing" :
	   !json_is_true(json_object_get(n, "up"))      ? "link down" :
	   !json_is_true(json_object_get(n, "carrier")) ? "no carrier" :
	                                                  "carrier up",
	   (long long)json_integer_value(json_object_get(rx, "bytes")),
	   (long long)json_integer_value(json_object_get(rx, "packets")),
	   (long long)json_integer_value(json_object_get(tx, "bytes")),
	   (long long)json_integer_value(json_object_get(tx, "packets")));
}

/* The applications the inmate watches (a Linux cell's /dev/warden users),
 * one line each: "applications   payload late (1 miss), steady on-time". */
static void show_cell_applications(json_t *apps) {
	json_t *a;
	size_t i;

	if (!json_is_array(apps) || json_array_size(apps) == 0)
		return;
	json_array_foreach(apps, i, a) {
		long long misses = (long long)json_integer_value(json_object_get(a, "misses"));
		kv(i == 0 ? "applications" : "", "%s %s, period %lld ms, %lld beats, %lld miss%s%s", dash(jstr(a, "name")),
		   dash(jstr(a, "state")), (long long)json_integer_value(json_object_get(a, "period_ms")),
		   (long long)json_integer_value(json_object_get(a, "beats")), misses, misses == 1 ? "" : "es",
		   json_is_true(json_object_get(a, "closed")) ? ", closed" : "");
	}
}

static void show_cell_health(json_t *c) {
	json_t *hb = json_object_get(c, "heartbeat"), *lf = json_object_get(c, "last_failure");
	json_t *t = json_object_get(c, "timings"), *f = json_object_get(c, "failures"), *hv = json_object_get(c, "hypervisor");
	json_t *v;
	const char *k;
	char buf[256], d1[32], d2[32];
	size_t off = 0;

	kv("restarts", "%lld", (long long)json_integer_value(json_object_get(c, "restarts")));
	if (json_is_object(hb) && json_integer_value(json_object_get(hb, "seq")) == 0)
		kv("heartbeat", "none yet");
	else if (json_is_object(hb))
		kv("heartbeat", "#%lld, %s ago, inmate %s, up %s", (long long)json_integer_value(json_object_get(hb, "seq")),
		   format_json_ms(json_object_get(hb, "age_ms"), d1, sizeof d1), dash(jstr(hb, "inmate_state")),
		   format_json_ms(json_object_get(hb, "uptime_ms"), d2, sizeof d2));
	if (json_is_object(t))
		kv("boot", "%s", format_json_ms(json_object_get(t, "boot_ms"), d1, sizeof d1));
	buf[0] = 0;
	json_object_foreach(f, k, v) {
		int w;
		if (json_integer_value(v) == 0)
			continue;
		w = snprintf(buf + off, sizeof buf - off, "%s%s %lld", off ? ", " : "", k, (long long)json_integer_value(v));
		if (w < 0 || (size_t)w >= sizeof buf - off)
			break;
		off += (size_t)w;
	}
	if (json_is_object(f))
		kv("failures", "%s", off ? buf : "none");
	if (json_is_object(lf))
		kv("last failure", "%s at %s: %s", dash(jstr(lf, "kind")), dash(jstr(lf, "at")), dash(jstr(lf, "reason")));
	else
		kv("last failure", "none");
	show_cell_network(json_object_get(c, "network"));
	show_cell_applications(json_object_get(c, "applications"));
	if (json_is_object(hv))
		kv("hypervisor", "%s, pid %lld, %lld boots, %lld exits", dash(jstr(hv, "state")),
		   (long long)json_integer_value(json_object_get(hv, "pid")),
		   (long long)json_integer_value(json_object_get(hv, "boots")),
		   (long long)json_integer_value(json_object_get(json_object_get(hv, "exits"), "total")));
}

static int show_cell(const Options *o, const Response *resp, json_t *c) {
	json_t *events = json_object_get(c, "events"), *e;
	json_t *spec = json_object_get(c, "spec");
	char rev[32];
	size_t i, n = json_array_size(events);

	(void)o;
	kv("name", "%s", dash(jstr(c, "name")));
	kv("state", "%s", dash(jstr(c, "state")));
	kv("revision", "%s", dash(revision_of(resp, c, rev, sizeof rev)));
	if (json_is_object(spec))
		show_cell_spec(spec);
	else
		kv("backend", "%s", dash(jstr(c, "backend")));
	show_cell_health(c);
	if (n == 0)
		return EXIT_OK;
	printf("recent events:\n");
	/* The newest ten; the daemon keeps more (--json). */
	for (i = n > 10 ? n - 10 : 0; i < n; i++) {
		e = json_array_get(events, i);
		printf("  #%-5lld %s  %-9s %-9s %s\n", (long long)json_integer_value(json_object_get(e, "id")),
		       dash(jstr(e, "at")), dash(jstr(e, "type")), dash(jstr(e, "state")), dash(jstr(e, "reason")));
	}
	return EXIT_OK;
}

int cmd_cells(const Options *o, const char *verb, char **args) {
	(void)verb, (void)args;
	if (o->watch)
		return watch_list(o, "/cells", cells_table);
	return get_and_show(o, "/cells", show_cells);
}

int cmd_cell_show(const Options *o, const char *verb, char **args) {
	_cleanup_free_ char *path = path_make("/cells/", args[0], NULL);

	(void)verb;
	return path ? get_and_show(o, path, show_cell) : oom();
}

int cmd_cell_console(const Options *o, const char *verb, char **args) {
	_cleanup_free_ char *path = path_make("/cells/", args[0], "/console");
	char n[24];

	(void)verb;
	if (!path)
		return oom();
	if (o->seen & OPT_BYTES) {
		snprintf(n, sizeof n, "%ld", o->bytes);
		if (path_add_query(&path, "bytes", n) < 0)
			return oom();
	}
	return get_text(o, path);
}

/* start of a cell that is up, stop of one that is stopped: nothing to do,
 * and that is success, as systemctl has it. NULL: something to do. */
static const char *nothing_to_do(const Options *o, const char *verb, const char *name) {
	_cleanup_free_ char *path = path_make("/cells/", name, NULL);
	_cleanup_(response_done) Response resp = { 0 };
	_cleanup_(json_decrefp) json_t *j = NULL;
	Request q = { .method = "GET", .path = path };
	const char *state;

	if (!path || (!streq(verb, "start") && !streq(verb, "stop")) || request_once(o, &q, &resp) < 0 ||
	    resp.status != 200 || !(j = json_loadb(resp.body.data, resp.body.size, 0, NULL)))
		return NULL; /* the POST will say what is wrong */
	state = jstr(j, "state");
	if (streq(verb, "start") && (streq(state, "running") || streq(state, "degraded")))
		return streq(state, "running") ? "running" : "degraded";
	if (streq(verb, "stop") && streq(state, "stopped"))
		return "stopped";
	return NULL;
}

int cmd_cell_action(const Options *o, const char *verb, char **args) {
	_cleanup_free_ char *path = NULL;
	char label[160], suffix[16];
	Request q = { .method = "POST" };
	const char *already = nothing_to_do(o, verb, args[0]);

	if (already) {
		if (o->json) {
			_cleanup_(json_decrefp) json_t *j = json_pack("{s:s, s:s, s:b}", "cell", args[0], "state", already,
			                                              "changed", 0);
			_cleanup_free_ char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
			if (text)
				print_doc(o, text, strlen(text));
		} else
			printf("%s %s: already %s, nothing to do\n", verb, args[0], already);
		return EXIT_OK;
	}
	snprintf(suffix, sizeof suffix, "/%s", verb);
	path = path_make("/cells/", args[0], suffix);
	if (!path)
		return oom();
	snprintf(label, sizeof label, "%s %s", verb, args[0]);
	q.path = path;
	return run_mutation(o, &q, label, print_accepted, NULL);
}

static int print_injected(const Options *o, const Response *resp, json_t *j, const char *label, void *userdata) {
	(void)userdata;
	(void)label;
	if (o->json)
		print_doc(o, resp->body.data, resp->body.size);
	else
		printf("injected %s into cell %s\n", dash(jstr(j, "fault")), dash(jstr(j, "cell")));
	return EXIT_OK;
}

int cmd_cell_inject(const Options *o, const char *verb, char **args) {
	_cleanup_free_ char *path = path_make("/cells/", args[0], "/inject");
	_cleanup_(json_decrefp) json_t *body = json_pack("{s:s}", "fault", args[1]);
	_cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	char label[160];
	Request q = { .method = "POST", .content_type = "application/json" };

	(void)verb;
	if (!path || !text)
		return oom();
	snprintf(label, sizeof label, "inject %s %s", args[1], args[0]);
	q.path = path;
	q.body = text;
	q.body_size = strlen(text);
	return run_mutation(o, &q, label, print_injected, NULL);
}

static int print_spec_answer(const Options *o, const Response *resp, json_t *j, const char *label, void *userdata) {
	char rev[32];

	(void)userdata;
	if (o->json) {
		print_doc(o, resp->body.data, resp->body.size);
		return EXIT_OK;
	}
	printf("%s: %s (revision %s)%s\n", label, resp->status == 201 ? "created" : "replaced",
	       dash(revision_of(resp, j, rev, sizeof rev)),
	       resp->status == 201 ? "; it is stopped" : "; it takes effect at the next start");
	return EXIT_OK;
}

int cmd_cell_create(const Options *o, const char *verb, char **args) {
	_cleanup_(buffer_done) Buffer text = { 0 };
	_cleanup_(json_decrefp) json_t *spec = NULL;
	char label[160];
	Request q = { .method = "POST", .path = "/cells", .content_type = "application/json" };
	int r = read_spec(args[0], &text, &spec);

	(void)verb;
	if (r != EXIT_OK)
		return r;
	snprintf(label, sizeof label, "cell %s", jstr(spec, "name") ? jstr(spec, "name") : args[0]);
	q.body = text.data;
	q.body_size = text.size;
	return run_mutation(o, &q, label, print_spec_answer, NULL);
}

int cmd_cell_replace(const Options *o, const char *verb, char **args) {
	_cleanup_(buffer_done) Buffer text = { 0 };
	_cleanup_(json_decrefp) json_t *spec = NULL;
	_cleanup_free_ char *path = NULL;
	char label[160];
	Request q = { .method = "PUT", .content_type = "application/json", .if_match = o->if_match };
	const char *name;
	int r;

	(void)verb;
	if ((o->seen & OPT_WAIT) && !o->apply) {
		fprintf(stderr, "wardenctl: cell replace: --wait needs --apply (without it nothing runs)\n");
		return EXIT_USAGE;
	}
	r = read_spec(args[0], &text, &spec);
	if (r != EXIT_OK)
		return r;
	name = jstr(spec, "name");
	if (!name || !*name) {
		fprintf(stderr, "wardenctl: %s: the spec has no \"name\"; it names the cell to replace\n", args[0]);
		return EXIT_USAGE;
	}
	path = path_make("/cells/", name, NULL);
	if (!path || (o->apply && path_add_query(&path, "apply", "restart") < 0))
		return oom();
	snprintf(label, sizeof label, o->apply ? "apply %s" : "cell %s", name);
	q.path = path;
	q.body = text.data;
	q.body_size = text.size;
	return run_mutation(o, &q, label, print_spec_answer, NULL);
}

int cmd_cell_delete(const Options *o, const char *verb, char **args) {
	_cleanup_free_ char *path = path_make("/cells/", args[0], NULL);
	char label[160];
	Request q = { .method = "DELETE", .if_match = o->if_match };

	(void)verb;
	if (!path)
		return oom();
	snprintf(label, sizeof label, "delete %s", args[0]);
	q.path = path;
	return run_mutation(o, &q, label, print_accepted, NULL);
}

/* --- logs: the console, and with -f what the cell prints next ------------ */

typedef struct LogFollow {
	const Options *o;
	uint64_t started_ns;
	bool timed_out;
} LogFollow;

static size_t on_log_data(const char *p, size_t n, void *userdata) {
	(void)userdata;
	if (fwrite(p, 1, n, stdout) != n)
		return 0;
	fflush(stdout);
	return n;
}

static bool tick_logs(CURL *e, void *userdata) {
	LogFollow *lf = userdata;
	long status = 0;

	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	if (status != 0)
		return true; /* streaming: until the daemon ends it or we are interrupted */
	lf->timed_out = now_ns(CLOCK_MONOTONIC) - lf->started_ns > (uint64_t)(lf->o->timeout_s * 1e9);
	return !lf->timed_out;
}

int cmd_logs(const Options *o, const char *verb, char **args) {
	_cleanup_free_ char *path = path_make("/cells/", args[0], "/console");
	_cleanup_(response_done) Response resp = { 0 };
	LogFollow lf = { .o = o, .started_ns = now_ns(CLOCK_MONOTONIC) };
	Request q = { .method = "GET", .accept = "text/plain, application/problem+json", .stream = true,
		      .on_data = on_log_data, .tick = tick_logs, .tick_userdata = &lf };
	char n[24];
	int r;

	(void)verb;
	if (!path)
		return oom();
	snprintf(n, sizeof n, "%ld", o->tail >= 0 && o->tail != LONG_MAX ? o->tail : 100000L);
	if (path_add_query(&path, "lines", n) < 0 || (o->follow && path_add_query(&path, "follow", "1") < 0))
		return oom();
	if (!o->follow)
		return get_text(o, path);
	q.path = path;
	r = request_once(o, &q, &resp);
	if (r == -EIO && lf.timed_out)
		snprintf(resp.error, sizeof resp.error, "no answer within %.0f s", o->timeout_s);
	if (r == -EIO)
		return report_unreachable(o, &q, &resp);
	if (r < 0)
		return oom();
	if (resp.status < 200 || resp.status > 299)
		return report_http_error(o, &resp);
	/* the daemon ended the stream: the cell was deleted */
	fprintf(stderr, "wardenctl: the console of %s ended (the cell is gone)\n", args[0]);
	return EXIT_OK;
}
