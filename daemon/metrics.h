/* SPDX-License-Identifier: MIT */
#pragma once

#include <errno.h>
#include <stddef.h>

typedef struct Manager Manager;

/* Renders every metric; *ret is malloc'd. */
int metrics_render(Manager *m, char **ret, size_t *ret_size);
