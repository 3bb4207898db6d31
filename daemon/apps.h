/* SPDX-License-Identifier: MIT */
/*
 * The applications table of a cell's comm region (api/warden/apps.h): the
 * applications a Linux inmate watches through /dev/warden, containers in
 * the cell among them. A bounded, sanitised copy (the inmate is not
 * trusted: names cut to [A-Za-z0-9._-], states and counts clamped), its
 * JSON for GET /cells/NAME and its Prometheus lines for /metrics. Reading
 * never waits: a torn read after a few tries is "no table this time".
 */
#pragma once

#include <jansson.h>
#include <stdio.h>

#include "warden/apps.h"

/* Copy and sanitise the table of the mapped comm region `comm` (at least
 * WARDEN_COMM_SIZE bytes). 0, or -ENODATA (no table), -EAGAIN (torn). */
int apps_read(const volatile void *comm, struct warden_apps *out);
/* Make a copy safe to print: n_slots within bounds, every name terminated
 * and of the module's alphabet, unknown states free, flags known bits. */
void apps_sanitize(struct warden_apps *t);
/* [{"name", "state": "on-time"|"late", "closed", "period_ms", "misses",
 *   "beats"}], the used slots in slot order; NULL only out of memory. */
json_t *apps_to_json(const struct warden_apps *t);
/* Lines of warden_cell_application_late{cell,app} (0/1) and of
 * warden_cell_application_misses_total{cell,app}; `which` is 0 for the
 * first family, 1 for the second (metrics.c writes the headers). */
void apps_prom(FILE *f, const char *cell, const struct warden_apps *t, int which);
