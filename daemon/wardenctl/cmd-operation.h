/* SPDX-License-Identifier: MIT */
/* wardenctl operations and operation show. */
#pragma once

#include "args.h"

int cmd_operations(const Options *o, const char *verb, char **args);
int cmd_operation_show(const Options *o, const char *verb, char **args);
