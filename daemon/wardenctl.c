/* SPDX-License-Identifier: MIT */
/*
 * wardenctl: the operator's CLI for wardend's HTTP API.
 *
 *   wardenctl [--socket PATH | --url URL] [--json] COMMAND
 *     health
 *     cells
 *     cell show NAME
 *     cell start|stop|restart|shutdown NAME
 *     cell inject NAME FAULT
 *     cell console NAME [BYTES]
 *     metrics
 *
 * Exit codes: 0 success, 1 the daemon refused (4xx/5xx), 2 usage,
 * 3 the daemon could not be reached.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#define DEFAULT_SOCKET "/run/warden/wardend.sock"

enum { EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

typedef struct Buffer {
	char *data;
	size_t size;
} Buffer;

static const char *arg_socket = NULL;
static const char *arg_url = NULL;
static int arg_json = 0;

static size_t on_data(char *p, size_t size, size_t n, void *userdata) {
	Buffer *b = userdata;
	size_t len = size * n;
	char *d = realloc(b->data, b->size + len + 1);
	if (!d)
		return 0;
	memcpy(d + b->size, p, len);
	b->data = d;
	b->size += len;
	d[b->size] = 0;
	return len;
}

/* Returns the HTTP status, or -1 when the daemon was unreachable. */
static long request(const char *method, const char *path, const char *body, Buffer *out) {
	char url[1024];
	CURL *c = curl_easy_init();
	struct curl_slist *hdr = NULL;
	long status = -1;
	CURLcode rc;

	if (!c)
		return -1;
	if (arg_url)
		snprintf(url, sizeof url, "%s%s", arg_url, path);
	else {
		snprintf(url, sizeof url, "http://localhost%s", path);
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, arg_socket ? arg_socket : DEFAULT_SOCKET);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	if (body) {
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	}
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	else
		fprintf(stderr, "wardenctl: cannot reach wardend at %s: %s\n",
		        arg_url ? arg_url : arg_socket ? arg_socket : DEFAULT_SOCKET, curl_easy_strerror(rc));
	curl_slist_free_all(hdr);
	curl_easy_cleanup(c);
	return status;
}

static int report_problem(long status, const Buffer *b) {
	json_t *j = b->data ? json_loads(b->data, 0, NULL) : NULL;
	const char *detail = j ? json_string_value(json_object_get(j, "detail")) : NULL;
	if (arg_json && b->data)
		fputs(b->data, stdout);
	fprintf(stderr, "wardenctl: %ld: %s\n", status, detail ? detail : (b->data ? b->data : "no detail"));
	json_decref(j);
	return EXIT_REFUSED;
}

static const char *str(json_t *o, const char *k) {
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "-";
}

static void print_cell_row(json_t *c) {
	json_t *hb = json_object_get(c, "heartbeat"), *t = json_object_get(c, "timings");
	json_t *age = json_object_get(hb, "age_ms"), *boot = json_object_get(t, "boot_ms");
	json_t *lf = json_object_get(c, "last_failure");
	char agebuf[32] = "-", bootbuf[32] = "-";

	if (json_is_number(age))
		snprintf(agebuf, sizeof agebuf, "%.1f", json_number_value(age));
	if (json_is_number(boot))
		snprintf(bootbuf, sizeof bootbuf, "%.2f", json_number_value(boot));
	printf("%-16s %-9s %-8s %10lld %8s %9s %8lld  %s\n", str(c, "name"), str(c, "state"),
	       str(hb, "inmate_state"), (long long)json_integer_value(json_object_get(hb, "seq")), agebuf, bootbuf,
	       (long long)json_integer_value(json_object_get(c, "restarts")),
	       json_is_object(lf) ? str(lf, "kind") : "-");
}

static void print_header(void) {
	printf("%-16s %-9s %-8s %10s %8s %9s %8s  %s\n", "NAME", "STATE", "INMATE", "SEQ", "AGE_MS", "BOOT_MS",
	       "RESTARTS", "LAST_FAILURE");
}

static int do_get(const char *path, int table) {
	Buffer b = { 0 };
	long status = request("GET", path, NULL, &b);
	int ret = 0;

	if (status < 0)
		return EXIT_UNREACHABLE;
	if (status >= 400)
		ret = report_problem(status, &b);
	else if (arg_json || !table) {
		fputs(b.data ? b.data : "", stdout);
	} else {
		json_t *j = json_loads(b.data, 0, NULL);
		if (json_is_array(j)) {
			size_t i;
			json_t *c;
			print_header();
			json_array_foreach(j, i, c) print_cell_row(c);
		} else if (json_is_object(j)) {
			json_t *lf = json_object_get(j, "last_failure"), *ev = json_object_get(j, "events"), *e;
			size_t i;
			print_header();
			print_cell_row(j);
			if (json_is_object(lf))
				printf("\nlast failure: %s: %s\n", str(lf, "kind"), str(lf, "reason"));
			if (json_is_array(ev) && json_array_size(ev)) {
				printf("\nrecent events:\n");
				json_array_foreach(ev, i, e) printf("  #%-6lld %-9s %-9s %s\n",
				                                    (long long)json_integer_value(json_object_get(e, "id")),
				                                    str(e, "type"), str(e, "state"), str(e, "reason"));
			}
		}
		json_decref(j);
	}
	free(b.data);
	return ret;
}

static int do_post(const char *path, const char *body) {
	Buffer b = { 0 };
	long status = request("POST", path, body, &b);
	int ret = 0;

	if (status < 0)
		return EXIT_UNREACHABLE;
	if (status >= 400)
		ret = report_problem(status, &b);
	else if (arg_json)
		fputs(b.data ? b.data : "", stdout);
	else {
		json_t *j = json_loads(b.data, 0, NULL);
		printf("%s: %s\n", str(j, "name") [0] != '-' ? str(j, "name") : str(j, "cell"),
		       json_object_get(j, "state") ? str(j, "state") : "accepted");
		json_decref(j);
	}
	free(b.data);
	return ret;
}

static void usage(FILE *f) {
	fprintf(f, "Usage: wardenctl [--socket PATH | --url URL] [--json] COMMAND\n\n"
	           "Commands:\n"
	           "  health                               daemon liveness and summary\n"
	           "  cells                                list cells\n"
	           "  cell show NAME                       one cell in detail\n"
	           "  cell start|stop|restart|shutdown NAME\n"
	           "  cell inject NAME hang|panic|crash|exit|stall\n"
	           "  cell console NAME [BYTES]            console tail\n"
	           "  metrics                              Prometheus metrics\n\n"
	           "Exit codes: 0 ok, 1 refused by wardend, 2 usage, 3 wardend unreachable.\n");
}

int main(int argc, char **argv) {
	static const struct option options[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "url", required_argument, NULL, 'u' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	char path[512];
	int c, r;

	while ((c = getopt_long(argc, argv, "s:u:jh", options, NULL)) >= 0) {
		switch (c) {
		case 's': arg_socket = optarg; break;
		case 'u': arg_url = optarg; break;
		case 'j': arg_json = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	r = EXIT_USAGE;
	if (strcmp(argv[0], "health") == 0 && argc == 1)
		r = do_get("/health", 0);
	else if (strcmp(argv[0], "metrics") == 0 && argc == 1)
		r = do_get("/metrics", 0);
	else if (strcmp(argv[0], "cells") == 0 && argc == 1)
		r = do_get("/cells", 1);
	else if (strcmp(argv[0], "cell") == 0 && argc >= 3) {
		const char *verb = argv[1], *name = argv[2];
		if (strcmp(verb, "show") == 0 && argc == 3) {
			snprintf(path, sizeof path, "/cells/%s", name);
			r = do_get(path, 1);
		} else if ((strcmp(verb, "start") == 0 || strcmp(verb, "stop") == 0 || strcmp(verb, "restart") == 0 ||
		            strcmp(verb, "shutdown") == 0) && argc == 3) {
			snprintf(path, sizeof path, "/cells/%s/%s", name, verb);
			r = do_post(path, NULL);
		} else if (strcmp(verb, "inject") == 0 && argc == 4) {
			char body[128];
			snprintf(path, sizeof path, "/cells/%s/inject", name);
			snprintf(body, sizeof body, "{\"fault\":\"%s\"}", argv[3]);
			r = do_post(path, body);
		} else if (strcmp(verb, "console") == 0 && (argc == 3 || argc == 4)) {
			snprintf(path, sizeof path, "/cells/%s/console?bytes=%s", name, argc == 4 ? argv[3] : "4096");
			r = do_get(path, 0);
		} else
			usage(stderr);
	} else
		usage(stderr);
	curl_global_cleanup();
	return r;
}
