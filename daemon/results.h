/* SPDX-License-Identifier: MIT */
/*
 * The results area of a cell's comm region (api/warden/results.h), as the
 * daemon shows it: a bounded, sanitised copy (the inmate is not trusted:
 * names are cut to [a-z0-9_], counts clamped), its JSON for
 * GET /cells/NAME and its Prometheus lines for /metrics. Reading never
 * waits: a torn read after a few tries is "no results this time".
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "warden/results.h"

/* Copy and sanitise the area of the mapped comm region `comm` (which must
 * be at least WARDEN_COMM_SIZE bytes). 0, or a negative errno: -ENODATA
 * (no area), -EAGAIN (torn: the writer was busy every try). */
int results_read(const volatile void *comm, struct warden_results *out);
/* Make a copy safe to print: terminated [a-z0-9_] names, n_values and
 * n_buckets within bounds, a histogram's name likewise. */
void results_sanitize(struct warden_results *r);
/* {"values": {name: n}, "histogram": {...} or null}; never NULL unless
 * out of memory. */
json_t *results_to_json(const struct warden_results *r);
/* Prometheus families, header lines excluded (metrics.c writes those):
 * warden_cell_result{cell,name,kind} and the histogram
 * warden_cell_result_latency_seconds{cell,name}. */
void results_prom_values(FILE *f, const char *cell, const struct warden_results *r);
void results_prom_histogram(FILE *f, const char *cell, const struct warden_results *r);
