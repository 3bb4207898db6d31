/* SPDX-License-Identifier: MIT */
/*
 * /metrics in two steps, so that formatting (16 ms for 64 cells on these
 * machines) never runs on the loop: a snapshot of the figures, taken on the
 * loop (a copy, no formatting), and its rendering in the Prometheus text
 * format 0.0.4, which may run on any thread.
 */
#pragma once

#include <errno.h>
#include <stddef.h>

typedef struct Manager Manager;
typedef struct MetricsSnapshot MetricsSnapshot;

MetricsSnapshot *metrics_snapshot(Manager *m);
MetricsSnapshot *metrics_snapshot_free(MetricsSnapshot *s);
/* Renders every metric of the snapshot; *ret is malloc'd. */
int metrics_format(const MetricsSnapshot *s, char **ret, size_t *ret_size);
/* Both at once, on the caller's thread. */
int metrics_render(Manager *m, char **ret, size_t *ret_size);
