/* SPDX-License-Identifier: MIT */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "client.h"
#include "cmd-daemon.h"
#include "exit-code.h"
#include "macro.h"
#include "mutation.h"
#include "output.h"

static int show_health(const Options *o, const Response *resp, json_t *j) {
	json_t *cells = json_object_get(j, "cells"), *v, *sharing = json_object_get(j, "cpu_sharing");
	json_t *uptime = json_object_get(j, "uptime_s");
	char buf[512], d[32];
	const char *k;
	size_t off;

	(void)o, (void)resp;
	kv("status", "%s", dash(jstr(j, "status")));
	kv("version", "%s", dash(jstr(j, "version")));
	kv("uptime", "%s", json_is_number(uptime) ? format_ms(json_number_value(uptime) * 1000.0, d, sizeof d) : "-");
	snprintf(buf, sizeof buf, "%lld total", (long long)json_integer_value(json_object_get(cells, "total")));
	off = strlen(buf);
	json_object_foreach(cells, k, v) {
		bool first = !strchr(buf, ':');
		int w;
		if (streq(k, "total") || json_integer_value(v) == 0)
			continue;
		w = snprintf(buf + off, sizeof buf - off, "%s%lld %s", first ? ": " : ", ", (long long)json_integer_value(v), k);
		if (w < 0 || (size_t)w >= sizeof buf - off)
			break;
		off += (size_t)w;
	}
	kv("cells", "%s", buf);
	kv("listeners", "%s", format_list(json_object_get(j, "listeners"), "name", ", ", buf, sizeof buf));
	if (json_is_boolean(sharing))
		kv("cpu sharing", "%s", json_is_true(sharing) ? "on (development only)" : "off");
	return EXIT_OK;
}

int cmd_health(const Options *o, const char *verb, char **args) {
	(void)verb, (void)args;
	return get_and_show(o, "/health", show_health);
}

int cmd_metrics(const Options *o, const char *verb, char **args) {
	(void)verb, (void)args;
	return get_text(o, "/metrics");
}

static int show_hypervisor(const Options *o, const Response *resp, json_t *j) {
	json_t *backends = json_object_get(j, "backends"), *b, *sharing = json_object_get(j, "cpu_sharing");
	char buf[512];
	size_t i, off = 0;

	(void)o, (void)resp;
	kv("state", "%s", dash(jstr(j, "state")));
	buf[0] = 0;
	json_array_foreach(backends, i, b) {
		json_t *avail = json_object_get(b, "available");
		int w = snprintf(buf + off, sizeof buf - off, "%s%s%s", i ? ", " : "",
		                 json_is_string(b) ? json_string_value(b) : dash(jstr(b, "kind")),
		                 json_is_boolean(avail) ? (json_is_true(avail) ? " (available)" : " (unavailable)") : "");
		if (w < 0 || (size_t)w >= sizeof buf - off)
			break;
		off += (size_t)w;
	}
	kv("backends", "%s", off ? buf : "-");
	if (json_is_boolean(sharing))
		kv("cpu sharing", "%s", json_is_true(sharing) ? "on (development only)" : "off");
	kv("root cpus", "%s", format_list(json_object_get(j, "root_cpus"), NULL, ",", buf, sizeof buf));
	kv("cells", "%s", format_list(json_object_get(j, "cells"), "name", ", ", buf, sizeof buf));
	return EXIT_OK;
}

int cmd_hypervisor_show(const Options *o, const char *verb, char **args) {
	(void)verb, (void)args;
	return get_and_show(o, "/hypervisor", show_hypervisor);
}

int cmd_hypervisor_action(const Options *o, const char *verb, char **args) {
	_cleanup_free_ char *path = path_make("/hypervisor/", verb, NULL);
	char label[64];
	Request q = { .method = "POST" };

	(void)args;
	if (!path)
		return oom();
	snprintf(label, sizeof label, "hypervisor-%s", verb);
	q.path = path;
	return run_mutation(o, &q, label, print_accepted, NULL);
}
