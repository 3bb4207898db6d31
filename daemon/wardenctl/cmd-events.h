/* SPDX-License-Identifier: MIT */
/* wardenctl events: the daemon's event stream (SSE), resumed where it broke off. */
#pragma once

#include "args.h"

int cmd_events(const Options *o, const char *verb, char **args);

#include <jansson.h>

#include "output.h"

/* Fills t (header first) from a list the daemon sent. */
typedef int (*TableFn)(const Options *o, json_t *j, Table *t);
/* cells -w, operations -w: the table, then a line again for every row that
 * an event changed, until interrupted. */
int watch_list(const Options *o, const char *path, TableFn fill);
