/* SPDX-License-Identifier: MIT */
/*
 * What the pieces of the HTTP API share, and nothing outside daemon/api*.c
 * includes: api.c dispatches to the routes of api-RESOURCE.c and provides
 * the helpers below. Routes reply on every path, errors included.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "cell.h"
#include "names.h"
#include "operation.h"

typedef struct Manager Manager;
typedef struct HttpRequest HttpRequest;

typedef enum Method {
	M_GET = 1 << 0,
	M_POST = 1 << 1,
	M_PUT = 1 << 2,
	M_DELETE = 1 << 3,
} Method;

unsigned method_bit(const char *m);
/* false (and a 405 with Allow is sent) unless the method is allowed. */
bool check_method(HttpRequest *r, unsigned allowed);

/* ?wait=S: -1 when malformed (a 400 is sent), 0 when absent. */
double query_wait(HttpRequest *r);
/* ?bytes=N of a console read: 1..64 KiB, 4096 if absent; -1 after a 400. */
#define CONSOLE_MAX_BYTES (64 * 1024)
long query_console_bytes(HttpRequest *r);
/* GET /cells/NAME/console with ?lines= or ?follow= (api-console.c). */
bool console_wants_stream(HttpRequest *r);
void route_console_stream(Manager *m, Cell *c, HttpRequest *r);
/* The JSON body; NULL when absent or malformed (a 400 is sent). */
json_t *parse_body(HttpRequest *r);

/* The answer to a request that started an operation: 202 (or, with
 * ?wait=, 200 once it finished). */
void reply_operation(Manager *m, HttpRequest *r, Operation *op, double wait);
/* NULL (and a 503 is sent) when too many are in flight. */
Operation *new_operation(Manager *m, HttpRequest *r, const char *kind, Cell *c, OperationTarget target,
                         uint64_t deadline_ns);
/* The operation fails, and the request that started it answers with the
 * same problem. */
void fail_operation(Manager *m, HttpRequest *r, Operation *op, unsigned status, const char *title,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* How long a cell may take to come up, or to go down, before its
 * operation fails. */
uint64_t boot_deadline(const Cell *c);
uint64_t stop_deadline(const Cell *c);

typedef struct CellPath {
	char name[CELL_NAME_MAX + 1];
	char sub[32];      /* "" for the cell itself */
	char file[IMAGE_NAME_MAX + 2]; /* images/FILE */
	bool bad;
} CellPath;

/* "/cells/NAME[/SUB[/FILE]]", NAME[/SUB[/FILE]] given. */
void split_cell_path(const char *rest, CellPath *p);

/* A mutation was answered (or parked on its operation): audit it and keep
 * its Idempotency-Key record. Called for requests answered later, too. */
void api_answered(Manager *m, HttpRequest *r);

/* api-health.c */
void route_health(Manager *m, HttpRequest *r);
void route_metrics(Manager *m, HttpRequest *r);

/* api-cells.c: GET|POST /cells; /cells/NAME and what is below it. */
void route_cells(Manager *m, HttpRequest *r);
void route_create(Manager *m, HttpRequest *r);
void route_cell(Manager *m, HttpRequest *r, const char *rest);

/* api-images.c */
void route_upload(Manager *m, Cell *c, const char *file, HttpRequest *r);
void route_image_delete(Manager *m, Cell *c, const char *file, HttpRequest *r);

/* api-hypervisor.c */
void route_hypervisor(Manager *m, HttpRequest *r);
void route_hypervisor_console(Manager *m, HttpRequest *r);
void route_hypervisor_action(Manager *m, const char *verb, HttpRequest *r);

/* api-operations.c */
void route_operation(Manager *m, HttpRequest *r, const char *id);

/* api-events.c */
void route_events(Manager *m, HttpRequest *r);
