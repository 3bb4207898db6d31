/* SPDX-License-Identifier: MIT */
/*
 * Routes of the HTTP API (api/README.md, api/openapi.yaml). Paths as
 * operators type them:
 *   GET  /health  /metrics  /hypervisor  /cells  /operations  /events
 *   POST /hypervisor/enable|disable|restart
 *   POST /cells                      create from a spec
 *   GET|PUT|DELETE /cells/NAME       spec with revision (ETag, If-Match)
 *   POST /cells/NAME/start|stop|restart|shutdown   operations (?wait=S)
 *   POST /cells/NAME/inject          {"fault": "..."}
 *   GET  /cells/NAME/console         console tail (?bytes=N)
 *   GET  /hypervisor/console         the hypervisor's own console (?bytes=N)
 *   GET  /cells/NAME/images          uploaded images
 *   PUT|DELETE /cells/NAME/images/FILE   raw upload with Content-Digest
 *   GET  /operations/ID              (?wait=S)
 *
 * This file dispatches them to api-RESOURCE.c and holds what those share:
 * method checks, request parsing, operation replies.
 *
 * api_begin() runs on the headers alone: access control, Idempotency-Key
 * replays and upload sinks, so nothing is read (or written to disk) for a
 * request that will be refused. Every mutation is audit-logged.
 */
#include "api.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "auth.h"
#include "http.h"
#include "idempotency.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "operation.h"
#include "store.h"

#define WAIT_MAX_S 300

unsigned method_bit(const char *m) {
	if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
		return M_GET;
	if (strcmp(m, "POST") == 0)
		return M_POST;
	if (strcmp(m, "PUT") == 0)
		return M_PUT;
	if (strcmp(m, "DELETE") == 0)
		return M_DELETE;
	return 0;
}

static bool is_mutation(const HttpRequest *r) {
	return method_bit(http_request_method(r)) & (M_POST | M_PUT | M_DELETE);
}

/* 405 with Allow naming what the resource does accept. */
static void reply_405(HttpRequest *r, unsigned allowed) {
	static const char *const names[] = { "GET, HEAD", "POST", "PUT", "DELETE" };
	char allow[48] = "";
	for (unsigned i = 0; i < ELEMENTSOF(names); i++)
		if (allowed & (1u << i)) {
			if (allow[0])
				strcat(allow, ", ");
			strcat(allow, names[i]);
		}
	http_reply_header(r, "Allow", allow);
	http_reply_problem(r, 405, "Method Not Allowed", "%s is not allowed on %s; allowed: %s",
	                   http_request_method(r), http_request_path(r), allow);
}

bool check_method(HttpRequest *r, unsigned allowed) {
	if (method_bit(http_request_method(r)) & allowed)
		return true;
	reply_405(r, allowed);
	return false;
}

/* --- helpers ------------------------------------------------------------ */

/* ?wait=S: -1 when malformed (a 400 is sent), 0 when absent. */
long query_console_bytes(HttpRequest *r) {
	const char *q = http_request_query(r, "bytes");
	long want = 4096;
	char *end;

	if (q) {
		want = strtol(q, &end, 10);
		if (*q == 0 || *end != 0 || want <= 0 || want > CONSOLE_MAX_BYTES) {
			http_reply_problem(r, 400, NULL, "bytes must be an integer between 1 and %d", CONSOLE_MAX_BYTES);
			return -1;
		}
	}
	return want;
}

double query_wait(HttpRequest *r) {
	const char *q = http_request_query(r, "wait");
	char *end;
	double w;

	if (!q)
		return 0;
	if (*q == 0)
		return 60;
	w = strtod(q, &end);
	if (*end != 0 || !(w >= 0 && w <= WAIT_MAX_S)) {
		http_reply_problem(r, 400, NULL, "wait must be a number of seconds between 0 and %d", WAIT_MAX_S);
		return -1;
	}
	return w;
}

json_t *parse_body(HttpRequest *r) {
	size_t n;
	const char *body = http_request_body(r, &n);
	json_error_t je;
	json_t *j;

	if (n == 0) {
		http_reply_problem(r, 400, NULL, "the request needs a JSON body");
		return NULL;
	}
	/* Any JSON value parses; what is not an object is refused later as
	 * well-formed but wrong (422), not as malformed (400). */
	j = json_loadb(body, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (!j)
		http_reply_problem(r, 400, NULL, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
	return j;
}

/* The answer to a request that started an operation: 202 (or, with
 * ?wait=, 200 once it finished). */
void reply_operation(Manager *m, HttpRequest *r, Operation *op, double wait) {
	http_request_set_tag(r, op->id);
	operation_reply(manager_operations(m), op, r, wait, wait > 0 ? 200 : 202, 202);
}

Operation *new_operation(Manager *m, HttpRequest *r, const char *kind, Cell *c, OperationTarget target,
                         uint64_t deadline_ns) {
	Operation *op = operation_new(manager_operations(m), kind, c ? cell_name(c) : NULL, target, deadline_ns);
	if (!op)
		http_reply_problem(r, 503, "Service Unavailable", "too many operations in flight; retry later");
	return op;
}

/* The operation fails, and the request that started it answers with the
 * same problem. */
void fail_operation(Manager *m, HttpRequest *r, Operation *op, unsigned status, const char *title,
                    const char *fmt, ...) {
	char detail[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	operation_fail(manager_operations(m), op, status, title, "%s", detail);
	http_reply_problem(r, status, title, "%s", detail);
}

/* How long a cell may take to come up, or to go down, before its
 * operation fails. */
uint64_t boot_deadline(const Cell *c) {
	const CellSpec *s = cell_latest_spec(c);
	return ((uint64_t)s->health.boot_timeout_ms + 5000) * NSEC_PER_MSEC;
}

uint64_t stop_deadline(const Cell *c) {
	return ((uint64_t)cell_spec(c)->recovery.shutdown_timeout_ms + 5000) * NSEC_PER_MSEC;
}

/* --- dispatch ----------------------------------------------------------- */

/* "/cells/NAME[/SUB[/FILE]]" */
void split_cell_path(const char *rest, CellPath *p) {
	const char *slash = strchr(rest, '/');
	size_t len = slash ? (size_t)(slash - rest) : strlen(rest);

	*p = (CellPath){ 0 };
	if (len == 0 || len > CELL_NAME_MAX) {
		p->bad = true;
		return;
	}
	memcpy(p->name, rest, len);
	if (!slash)
		return;
	rest = slash + 1;
	slash = strchr(rest, '/');
	len = slash ? (size_t)(slash - rest) : strlen(rest);
	if (len == 0 || len >= sizeof p->sub) {
		p->bad = true;
		return;
	}
	memcpy(p->sub, rest, len);
	if (!slash)
		return;
	rest = slash + 1;
	if (strlen(rest) == 0 || strlen(rest) >= sizeof p->file || strchr(rest, '/')) {
		p->bad = true;
		return;
	}
	strcpy(p->file, rest);
}

static void dispatch(Manager *m, HttpRequest *r) {
	const char *path = http_request_path(r);
	/* Looked for up front: GCC's -Wstringop-overread, with the sanitizers
	 * on, took path + 12 inside the chain below for a region of size 0. */
	const char *op_id = strncmp(path, "/operations/", 12) == 0 ? path + 12 : NULL;

	if (strcmp(path, "/health") == 0) {
		if (check_method(r, M_GET))
			route_health(m, r);
	} else if (strcmp(path, "/cells") == 0 || strcmp(path, "/cells/") == 0) {
		if (!check_method(r, M_GET | M_POST))
			return;
		if (method_bit(http_request_method(r)) == M_GET)
			route_cells(m, r);
		else
			route_create(m, r);
	} else if (strncmp(path, "/cells/", 7) == 0) {
		route_cell(m, r, path + 7);
	} else if (strcmp(path, "/metrics") == 0) {
		if (check_method(r, M_GET))
			route_metrics(m, r);
	} else if (strcmp(path, "/hypervisor") == 0) {
		if (check_method(r, M_GET))
			route_hypervisor(m, r);
	} else if (strcmp(path, "/hypervisor/console") == 0) {
		if (check_method(r, M_GET))
			route_hypervisor_console(m, r);
	} else if (strcmp(path, "/hypervisor/enable") == 0 || strcmp(path, "/hypervisor/disable") == 0 ||
	           strcmp(path, "/hypervisor/restart") == 0) {
		if (check_method(r, M_POST))
			route_hypervisor_action(m, path + strlen("/hypervisor/"), r);
	} else if (strcmp(path, "/operations") == 0) {
		if (check_method(r, M_GET))
			http_reply_json(r, 200, operations_to_json(manager_operations(m)));
	} else if (op_id && op_id[0] && !strchr(op_id, '/')) {
		if (check_method(r, M_GET))
			route_operation(m, r, op_id);
	} else if (strcmp(path, "/events") == 0) {
		if (check_method(r, M_GET))
			route_events(m, r);
	} else
		http_reply_problem(r, 404, "Not Found", "no resource at %s", path);
}

/* --- access, replays, uploads: before the body ---------------------------- */

static bool is_anonymous_route(Manager *m, HttpRequest *r) {
	const char *p = http_request_path(r);
	return manager_config(m)->api.anonymous_metrics && method_bit(http_request_method(r)) == M_GET &&
	       (strcmp(p, "/health") == 0 || strcmp(p, "/metrics") == 0);
}

static void audit(HttpRequest *r, const char *cell, const char *outcome) {
	log_cell(LOG_NOTICE, cell, MSGID_AUDIT, "API %s %s by %s (%s): %s", http_request_method(r),
	         http_request_path(r), http_request_principal(r), http_request_is_unix(r) ? "unix socket" : "tcp",
	         outcome);
}

static const char *cell_of_path(const char *path, char buf[CELL_NAME_MAX + 1]) {
	size_t n;
	if (strncmp(path, "/cells/", 7) != 0)
		return NULL;
	path += 7;
	n = strcspn(path, "/");
	if (n == 0 || n > CELL_NAME_MAX)
		return NULL;
	memcpy(buf, path, n);
	buf[n] = 0;
	return buf;
}

static void replay(Manager *m, HttpRequest *r, const IdemRecord *rec) {
	Operation *op = rec->operation[0] ? operation_find(manager_operations(m), rec->operation) : NULL;
	char *body;

	http_reply_header(r, "Idempotent-Replayed", "true");
	if (rec->location[0])
		http_reply_header(r, "Location", rec->location);
	if (rec->etag[0])
		http_reply_header(r, "ETag", rec->etag);
	if (op) {
		/* the operation's state now, not as it was then; answered as
		 * the first request was: 200 once done if it waited */
		http_reply_json(r, rec->waited && op->phase != OP_RUNNING ? 200 : rec->status == 200 ? 200 : 202,
		                operation_to_json(op));
		return;
	}
	body = malloc(rec->body_len + 1);
	if (!body) {
		http_reply_problem(r, 500, NULL, "out of memory");
		return;
	}
	memcpy(body, rec->body, rec->body_len + 1);
	http_reply_text(r, rec->status, rec->content_type, body, rec->body_len);
}

/* A replay is answered once the body has been read (and dropped): a
 * server that answers and closes while the client still sends may have
 * its answer lost to a reset, and the client would retry for ever. */
static int discard_write(void *userdata, const void *data, size_t n) {
	(void)userdata;
	(void)data;
	(void)n;
	return 0;
}

static void discard_abort(void *userdata) {
	IdemRecord *rec = userdata;
	idem_record_clear(rec);
	free(rec);
}

/* Idempotency-Keys of requests being received or handled, so that a
 * retry racing its original is refused rather than run twice. Keys are
 * the principal's own, here as on disk. */
struct Api {
	struct {
		const void *request;
		char principal[64];
		char key[129];
	} inflight[64];
};

int api_new(Api **ret) {
	Api *a = calloc(1, sizeof *a);
	if (!a)
		return -ENOMEM;
	*ret = a;
	return 0;
}

Api *api_free(Api *a) {
	free(a);
	return NULL;
}

static bool inflight_add(Api *a, HttpRequest *r, const char *key) {
	const char *principal = http_request_principal(r);
	size_t free_slot = ELEMENTSOF(a->inflight);
	for (size_t i = 0; i < ELEMENTSOF(a->inflight); i++) {
		if (a->inflight[i].request && strcmp(a->inflight[i].key, key) == 0 &&
		    strcmp(a->inflight[i].principal, principal) == 0) {
			http_reply_problem(r, 409, "Conflict",
			                   "a request with Idempotency-Key \"%s\" is still in progress; retry when it has "
			                   "been answered", key);
			return false;
		}
		if (!a->inflight[i].request && free_slot == ELEMENTSOF(a->inflight))
			free_slot = i;
	}
	if (free_slot == ELEMENTSOF(a->inflight)) {
		http_reply_problem(r, 503, "Service Unavailable", "too many requests with Idempotency-Keys in progress");
		return false;
	}
	a->inflight[free_slot].request = r;
	snprintf(a->inflight[free_slot].principal, sizeof a->inflight[free_slot].principal, "%s", principal);
	snprintf(a->inflight[free_slot].key, sizeof a->inflight[free_slot].key, "%s", key);
	return true;
}

static void inflight_remove(Api *a, const HttpRequest *r) {
	for (size_t i = 0; i < ELEMENTSOF(a->inflight); i++)
		if (a->inflight[i].request == r)
			a->inflight[i].request = NULL;
}

void api_end(Manager *m, HttpRequest *r) {
	inflight_remove(manager_api(m), r);
	operations_forget_request(manager_operations(m), r);
}

void api_begin(Manager *m, HttpRequest *r) {
	const char *key = http_request_header(r, "Idempotency-Key");
	const char *path = http_request_path(r);
	char cbuf[CELL_NAME_MAX + 1];
	IdemRecord rec;

	if (!http_request_is_unix(r) && http_request_role(r) == HTTP_ROLE_NONE && !is_anonymous_route(m, r)) {
		http_reply_header(r, "WWW-Authenticate", "Bearer realm=\"warden\"");
		http_reply_problem(r, 401, "Unauthorized",
		                   http_request_has_credentials(r) ?
		                           "the bearer token is not valid" :
		                           "this listener needs Authorization: Bearer TOKEN");
		if (is_mutation(r))
			audit(r, cell_of_path(path, cbuf), "401 refused: no valid token");
		return;
	}
	if (!is_mutation(r))
		return;
	if (http_request_role(r) != HTTP_ROLE_OPERATOR) {
		http_reply_problem(r, 403, "Forbidden", "token \"%s\" has the %s role; changes need an operator token",
		                   http_request_principal(r), http_role_to_string(http_request_role(r)));
		audit(r, cell_of_path(path, cbuf), "403 refused: not an operator");
		return;
	}
	http_request_capture(r);
	if (key) {
		if (!idempotency_key_is_valid(key)) {
			http_reply_problem(r, 400, NULL, "Idempotency-Key must be " IDEMPOTENCY_KEY_RULE);
			return;
		}
		/* Before a byte of the body: a retry is told from another
		 * request by its body too (see api_handle). */
		if (http_request_hash_body(r) < 0) {
			http_reply_problem(r, 500, NULL, "cannot hash the request body");
			return;
		}
		if (idempotency_lookup(m, http_request_principal(r), key, &rec) == 0) {
			IdemRecord *keep;
			if (strcmp(rec.method, http_request_method(r)) != 0 || strcmp(rec.path, path) != 0) {
				http_reply_problem(r, 422, NULL,
				                   "Idempotency-Key \"%s\" was used for %s %s; use a new key for a new request",
				                   key, rec.method, rec.path);
				audit(r, cell_of_path(path, cbuf), "422 refused: Idempotency-Key reused for another request");
				idem_record_clear(&rec);
				return;
			}
			keep = malloc(sizeof *keep);
			if (!keep) {
				idem_record_clear(&rec);
				http_reply_problem(r, 500, NULL, "out of memory");
				return;
			}
			*keep = rec;
			http_request_set_tag(r, "replay");
			http_request_set_sink(r, &(HttpSink){ .write = discard_write, .abort = discard_abort,
			                                      .max_bytes = manager_config(m)->api.max_image_bytes,
			                                      .userdata = keep });
			return;
		}
		if (!inflight_add(manager_api(m), r, key))
			return;
	}

	/* Uploads stream to a temp file; refuse before reading a byte. */
	if (strcmp(http_request_method(r), "PUT") == 0 && strncmp(path, "/cells/", 7) == 0) {
		CellPath p;
		uint8_t dg[SHA256_LEN];
		const char *cd = http_request_header(r, "Content-Digest");
		Upload *u;
		int k;

		split_cell_path(path + 7, &p);
		if (p.bad || strcmp(p.sub, "images") != 0 || !p.file[0])
			return;
		if (!manager_find_cell(m, p.name)) {
			http_reply_problem(r, 404, "Not Found", "no cell named \"%s\"", p.name);
			return;
		}
		if (!image_name_is_valid(p.file)) {
			http_reply_problem(r, 400, NULL, "\"%s\" is not an image name: " IMAGE_NAME_RULE, p.file);
			return;
		}
		if (!cd || content_digest_parse(cd, dg) < 0) {
			http_reply_problem(r, 400, NULL,
			                   "an image upload needs Content-Digest: sha-256=:BASE64: (RFC 9530) for the body");
			return;
		}
		k = upload_begin(m, p.name, p.file, &u);
		if (k < 0) {
			http_reply_problem(r, 500, NULL, "cannot store an upload: %s", strerror(-k));
			return;
		}
		http_request_set_sink(r, &(HttpSink){ .write = upload_write, .abort = upload_abort,
		                                      .max_bytes = manager_config(m)->api.max_image_bytes,
		                                      .userdata = u });
	}
}

/* A mutation was answered (or parked on its operation): audit it and keep
 * its Idempotency-Key record. */
void api_answered(Manager *m, HttpRequest *r) {
	const char *key = http_request_header(r, "Idempotency-Key");
	char cbuf[CELL_NAME_MAX + 1], outcome[96];
	const char *body, *type;
	unsigned status;
	size_t len;

	_cleanup_free_ char *parked = NULL;

	if (!is_mutation(r))
		return;
	body = http_request_captured(r, &status, &type, &len);
	if (!body) {
		/* Parked on an operation: it answers later. A retry gets the
		 * operation as it is then. */
		Operation *op = operation_find(manager_operations(m), http_request_tag(r));
		if (!op)
			return;
		json_t *oj = operation_to_json(op);
		parked = json_dumps(oj, JSON_COMPACT);
		json_decref(oj);
		body = parked;
		status = 202;
		type = "application/json";
		len = parked ? strlen(parked) : 0;
		snprintf(outcome, sizeof outcome, "202 %s, waiting on it", op->id);
	} else
		snprintf(outcome, sizeof outcome, "%u%s%s", status, http_request_tag(r)[0] ? " " : "",
		         http_request_tag(r));
	audit(r, cell_of_path(http_request_path(r), cbuf), outcome);
	if (!body)
		return;
	/* Store the first answer before it leaves, unless the server failed:
	 * a 5xx is worth retrying. */
	if (key && status < 500) {
		IdemRecord rec = { .status = status, .body = (char *)body, .body_len = len, .has_request_sha256 = true };
		const char *loc = http_reply_header_get(r, "Location"), *etag = http_reply_header_get(r, "ETag");
		int k;

		if ((k = http_request_body_sha256(r, rec.request_sha256)) < 0) {
			log_warning_errno(k, "Failed to hash the body of %s %s for its Idempotency-Key record: %m",
			                  http_request_method(r), http_request_path(r));
			goto done;
		}
		snprintf(rec.method, sizeof rec.method, "%s", http_request_method(r));
		snprintf(rec.path, sizeof rec.path, "%s", http_request_path(r));
		snprintf(rec.content_type, sizeof rec.content_type, "%s", type);
		if (loc)
			snprintf(rec.location, sizeof rec.location, "%s", loc);
		else if (http_request_tag(r)[0])
			snprintf(rec.location, sizeof rec.location, "/operations/%s", http_request_tag(r));
		snprintf(rec.etag, sizeof rec.etag, "%s", etag ? etag : "");
		snprintf(rec.operation, sizeof rec.operation, "%s", http_request_tag(r));
		rec.waited = http_request_query(r, "wait") != NULL;
		k = idempotency_store(m, http_request_principal(r), key, &rec);
		if (k < 0)
			log_warning_errno(k, "Failed to store the Idempotency-Key record for %s %s: %m",
			                  http_request_method(r), http_request_path(r));
	}
done:
	/* Answered (or stored): a retry now gets the record, not a 409. */
	inflight_remove(manager_api(m), r);
}

void api_handle(Manager *m, HttpRequest *r) {
	char cbuf[CELL_NAME_MAX + 1];

	if (strcmp(http_request_tag(r), "replay") == 0) {
		IdemRecord *rec = http_request_sink_userdata(r);
		uint8_t h[SHA256_LEN];
		http_request_clear_sink(r);
		http_request_set_tag(r, "");
		/* The IETF Idempotency-Key draft: the same key with another
		 * payload is a client error, not a retry. A version 1 record has
		 * no body hash and matches on method and path alone. */
		if (rec->has_request_sha256 &&
		    (http_request_body_sha256(r, h) < 0 || memcmp(h, rec->request_sha256, sizeof h) != 0)) {
			http_reply_problem(r, 422, NULL,
			                   "Idempotency-Key \"%s\" was used for %s %s with another body; use a new key "
			                   "for a new request", http_request_header(r, "Idempotency-Key"), rec->method,
			                   rec->path);
			audit(r, cell_of_path(http_request_path(r), cbuf),
			      "422 refused: Idempotency-Key reused with another body");
		} else {
			replay(m, r, rec);
			audit(r, cell_of_path(http_request_path(r), cbuf),
			      "replayed the stored response (Idempotency-Key)");
		}
		discard_abort(rec);
		return;
	}
	dispatch(m, r);
	api_answered(m, r);
}
