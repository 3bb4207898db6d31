/* SPDX-License-Identifier: MIT */
/* wardenctl cells, cell show|console, and the changes to a cell: start,
 * stop, restart, shutdown, inject, create, replace, delete. */
#pragma once

#include "args.h"

int cmd_cells(const Options *o, const char *verb, char **args);
int cmd_cell_show(const Options *o, const char *verb, char **args);
int cmd_cell_console(const Options *o, const char *verb, char **args);
int cmd_logs(const Options *o, const char *verb, char **args);
int cmd_cell_action(const Options *o, const char *verb, char **args);
int cmd_cell_inject(const Options *o, const char *verb, char **args);
int cmd_cell_create(const Options *o, const char *verb, char **args);
int cmd_cell_replace(const Options *o, const char *verb, char **args);
int cmd_cell_delete(const Options *o, const char *verb, char **args);
