/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the HTTP API in process, no sockets. A real Manager (its
 * config, store, two cells, no listeners; tests/fuzz/fuzz-manager.h) gets
 * requests through the test seam of daemon/http.c, which runs them through
 * the same path checks, api_begin(), body limits and api_handle() as
 * libmicrohttpd's requests. The input is one request or several, separated
 * by a line "%%", each written as on the wire:
 *
 *   METHOD TARGET
 *   Header: value
 *   ...
 *   (empty line)
 *   body
 *
 * Two pseudo-headers steer the harness: "X-Fuzz-Listener: tcp" (default:
 * the unix socket, whose peers are operators; over TCP the demo tokens
 * apply) and "X-Fuzz-Chunk: N" (the body arrives in chunks of N bytes).
 *
 * Invariants: every request is answered (a status is set, also for one
 * that waited); every JSON body is valid JSON, and a problem's is an
 * object whose "status" is the status sent; no 500 "not answered".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz-manager.h"
#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char cells[] =
	"[{\"name\": \"alpha\", \"backend\": \"kvm\", \"cpus\": [1], \"autostart\": false, \"allow_inject\": true,"
	"  \"memory\": [{\"name\": \"ram\", \"phys_start\": \"0x40000000\", \"virt_start\": \"0x0\","
	"  \"size\": \"0x400000\", \"flags\": [\"read\", \"write\", \"execute\", \"loadable\"]}],"
	"  \"comm\": {\"phys_start\": \"0x7f000000\", \"virt_start\": \"0x80000000\", \"size\": 4096},"
	"  \"images\": [{\"file\": \"heartbeat.bin\", \"address\": \"0x100000\"}],"
	"  \"health\": {\"period_ms\": 10, \"timeout_ms\": 50, \"boot_timeout_ms\": 100}},"
	" {\"name\": \"beta\", \"backend\": \"qemu\", \"cpus\": [1], \"autostart\": false,"
	"  \"memory\": [{\"name\": \"ram\", \"phys_start\": \"0x50000000\", \"virt_start\": \"0x0\","
	"  \"size\": \"0x400000\", \"flags\": [\"read\", \"write\", \"execute\", \"loadable\"]}],"
	"  \"comm\": {\"phys_start\": \"0x7f001000\", \"virt_start\": \"0x80000000\", \"size\": 4096},"
	"  \"images\": [{\"file\": \"faulty.bin\", \"address\": \"0x100000\"}],"
	"  \"recovery\": {\"on_crash\": \"stop\"}}]";

static Manager *m;
static unsigned since_fresh;

static bool is_mutation(const char *method) {
	return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 || strcmp(method, "DELETE") == 0;
}

static void check_reply(const char *method, const char *target, unsigned status, const char *type, const char *body,
                        size_t len) {
	json_t *j;

	if (status == 0) {
		fprintf(stderr, "%s %s was not answered\n", method, target);
		abort();
	}
	if (status < 100 || status > 599)
		abort();
	if (strncmp(type, "application/json", 16) != 0 && strcmp(type, "application/problem+json") != 0)
		return;
	j = json_loadb(body, len, JSON_DECODE_ANY, NULL);
	if (!j) {
		fprintf(stderr, "%s %s: %u with a body that is not JSON: %.*s\n", method, target, status, (int)len, body);
		abort();
	}
	if (strcmp(type, "application/problem+json") == 0) {
		json_t *st = json_object_get(j, "status");
		const char *detail = json_string_value(json_object_get(j, "detail"));
		if (!json_is_object(j) || json_integer_value(st) != status ||
		    !json_is_string(json_object_get(j, "title"))) {
			fprintf(stderr, "%s %s: a problem without its status and title: %.*s\n", method, target, (int)len,
			        body);
			abort();
		}
		if (status == 500 && detail && strstr(detail, "not answered")) {
			fprintf(stderr, "%s %s: the API did not answer\n", method, target);
			abort();
		}
	}
	json_decref(j);
}

/* One request: its text is [p, end). Returns whether it changed state. */
static bool one_request(const char *p, const char *end) {
	size_t n = (size_t)(end - p), head_len, body_len, chunk = 0, n_fields = 0, rlen = 0;
	char *head, *line, *save = NULL, *sp, *fields[64][2];
	const char *body, *sep, *type = NULL, *rbody = NULL;
	bool is_unix = true, changed = false;
	HttpRequest *r = NULL;
	unsigned status;

	sep = memmem(p, n, "\n\n", 2);
	head_len = sep ? (size_t)(sep - p) : n;
	body = sep ? sep + 2 : end;
	body_len = (size_t)(end - body);
	head = strndup(p, head_len);
	if (!head)
		return false;

	line = strtok_r(head, "\n", &save);
	if (!line || !(sp = strchr(line, ' ')) || sp == line)
		goto out;
	*sp = 0;
	/* what libmicrohttpd refuses before we would see it */
	if (sp[1] != '/')
		goto out;
	while ((line = strtok_r(NULL, "\n", &save)) && n_fields < 64) {
		char *colon = strchr(line, ':'), *v;
		if (!colon)
			continue;
		*colon = 0;
		for (v = colon + 1; *v == ' '; v++)
			;
		if (strcasecmp(line, "X-Fuzz-Listener") == 0)
			is_unix = strcmp(v, "tcp") != 0;
		else if (strcasecmp(line, "X-Fuzz-Chunk") == 0)
			chunk = strtoul(v, NULL, 10);
		else {
			fields[n_fields][0] = line;
			fields[n_fields++][1] = v;
		}
	}
	r = http_request_new_for_test(manager_http(m), is_unix, head, sp + 1);
	if (!r)
		goto out;
	for (size_t i = 0; i < n_fields; i++)
		(void)http_request_add_header_for_test(r, fields[i][0], fields[i][1]);

	http_request_run_for_test(r, body, body_len, chunk);
	/* A parked request is answered by the loop: a worker's job (metrics),
	 * an operation's end or its wait. 50 ms at most, then it answers
	 * with what it has, as at shutdown. */
	for (int i = 0; i < 50 && http_request_parked_for_test(r); i++)
		(void)sd_event_run(manager_event(m), 1000);
	/* As wardend stops: the workers' jobs run to their end before the
	 * parked requests are resumed (manager_free() frees the queue before
	 * the HTTP side), so a job never outlives the request it serves. */
	for (int i = 0; i < 2000 && backend_queue_pending(manager_queue(m)); i++)
		(void)sd_event_run(manager_event(m), 1000);
	http_request_finish_for_test(r);
	status = http_request_reply_for_test(r, &type, &rbody, &rlen);
	check_reply(head, sp + 1, status, type ? type : "", rbody, rlen);
	changed = is_mutation(head) && status < 300;
out:
	/* before the head: the request points at its method */
	http_request_free_for_test(r);
	free(head);
	return changed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
	const char *p = (const char *)data, *end = p + size;
	bool changed = false;
	int n = 0;

	if (!m)
		m = fuzz_manager_new(cells);
	/* the text is C strings: a NUL ends the input */
	if (memchr(p, 0, size))
		end = memchr(p, 0, size);
	while (p < end && n++ < 8) {
		const char *next = NULL;
		for (const char *q = p; q + 4 <= end; q++)
			if (memcmp(q, "\n%%\n", 4) == 0) {
				next = q;
				break;
			}
		changed |= one_request(p, next ? next : end);
		p = next ? next + 4 : end;
	}
	fuzz_manager_settle(m);
	/* A state that changed is not the next input's: start again from
	 * the config (and now and then anyway: records, events, operations). */
	if (changed || ++since_fresh >= 5000) {
		fuzz_manager_free(m);
		m = NULL;
		since_fresh = 0;
	}
	return 0;
}
