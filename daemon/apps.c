/* SPDX-License-Identifier: MIT */
#include "apps.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

int apps_read(const volatile void *comm, struct warden_apps *out) {
	int r = warden_apps_read(warden_apps_of((volatile void *)comm), out);

	if (r == -1)
		return -ENODATA;
	if (r < 0)
		return -EAGAIN;
	apps_sanitize(out);
	return 0;
}

static bool name_char(char c) {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
	       c == '-';
}

void apps_sanitize(struct warden_apps *t) {
	if (t->n_slots > WARDEN_APPS_MAX)
		t->n_slots = WARDEN_APPS_MAX;
	for (unsigned i = 0; i < WARDEN_APPS_MAX; i++) {
		struct warden_app_slot *s = &t->app[i];

		s->name[sizeof s->name - 1] = '\0';
		for (size_t k = 0; s->name[k]; k++)
			if (!name_char(s->name[k]))
				s->name[k] = '_';
		if (s->state >= WARDEN_APP_STATE_MAX || !s->name[0])
			s->state = WARDEN_APP_FREE;
		s->flags &= WARDEN_APP_CLOSED;
	}
}

static bool slot_used(const struct warden_apps *t, unsigned i) {
	return i < t->n_slots && t->app[i].state != WARDEN_APP_FREE;
}

json_t *apps_to_json(const struct warden_apps *t) {
	json_t *a = json_array();

	if (!a)
		return NULL;
	for (unsigned i = 0; i < WARDEN_APPS_MAX; i++) {
		const struct warden_app_slot *s = &t->app[i];
		if (!slot_used(t, i))
			continue;
		json_array_append_new(
		        a, json_pack("{s:s, s:s, s:b, s:I, s:I, s:I}", "name", s->name, "state",
		                     s->state == WARDEN_APP_LATE ? "late" : "on-time", "closed",
		                     (s->flags & WARDEN_APP_CLOSED) != 0, "period_ms", (json_int_t)s->period_ms, "misses",
		                     (json_int_t)s->misses, "beats", (json_int_t)(s->beats & INT64_MAX)));
	}
	return a;
}

void apps_prom(FILE *f, const char *cell, const struct warden_apps *t, int which) {
	for (unsigned i = 0; i < WARDEN_APPS_MAX; i++) {
		const struct warden_app_slot *s = &t->app[i];
		if (!slot_used(t, i))
			continue;
		if (which == 0)
			fprintf(f, "warden_cell_application_late{cell=\"%s\",app=\"%s\"} %d\n", cell, s->name,
			        s->state == WARDEN_APP_LATE);
		else
			fprintf(f, "warden_cell_application_misses_total{cell=\"%s\",app=\"%s\"} %u\n", cell, s->name,
			        s->misses);
	}
}
