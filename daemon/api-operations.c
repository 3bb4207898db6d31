/* SPDX-License-Identifier: MIT */
/* GET /operations/ID (?wait=S): what a lifecycle request turned into. */
#include "api-internal.h"
#include "http.h"
#include "manager.h"
#include "operation.h"

void route_operation(Manager *m, HttpRequest *r, const char *id) {
	double wait = query_wait(r);
	Operation *op;

	if (wait < 0)
		return;
	op = operation_find(manager_operations(m), id);
	if (!op) {
		http_reply_problem(r, 404, "Not Found", "no operation %s (the newest %d are kept, in memory)", id,
		                   OPERATIONS_MAX);
		return;
	}
	operation_reply(manager_operations(m), op, r, wait, 200, wait > 0 ? 202 : 200);
}
