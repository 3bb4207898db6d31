/* SPDX-License-Identifier: MIT */
#include "results.h"

#include <errno.h>
#include <string.h>

int results_read(const volatile void *comm, struct warden_results *out) {
	int r = warden_results_read(warden_results_of((volatile void *)comm), out);

	if (r == -1)
		return -ENODATA;
	if (r < 0)
		return -EAGAIN;
	results_sanitize(out);
	return 0;
}

static void sanitize_name(char *s, size_t size) {
	s[size - 1] = '\0';
	for (size_t i = 0; s[i]; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			s[i] = '_';
	}
}

void results_sanitize(struct warden_results *r) {
	if (r->n_values > WARDEN_RESULTS_VALUES)
		r->n_values = WARDEN_RESULTS_VALUES;
	for (unsigned i = 0; i < WARDEN_RESULTS_VALUES; i++) {
		sanitize_name(r->values[i].name, sizeof r->values[i].name);
		if (r->values[i].kind > WARDEN_RESULT_NS)
			r->values[i].kind = WARDEN_RESULT_GAUGE;
	}
	sanitize_name(r->hist.name, sizeof r->hist.name);
	if (r->hist.n_buckets > WARDEN_RESULTS_BUCKETS)
		r->hist.n_buckets = WARDEN_RESULTS_BUCKETS;
	if (!r->hist.bucket_ns)
		r->hist.bucket_ns = 1;
}

static const char *kind_name(uint32_t k) {
	switch (k) {
	case WARDEN_RESULT_COUNTER:
		return "counter";
	case WARDEN_RESULT_NS:
		return "ns";
	default:
		return "gauge";
	}
}

static bool value_used(const struct warden_results *r, unsigned i) {
	return i < r->n_values && r->values[i].name[0] && r->values[i].kind != WARDEN_RESULT_NONE;
}

json_t *results_to_json(const struct warden_results *r) {
	json_t *o = json_object(), *v = json_object(), *h = json_null();

	if (!o || !v) {
		json_decref(o);
		json_decref(v);
		return NULL;
	}
	for (unsigned i = 0; i < r->n_values; i++)
		if (value_used(r, i))
			json_object_set_new(v, r->values[i].name, json_integer((json_int_t)(r->values[i].value & INT64_MAX)));
	json_object_set_new(o, "values", v);
	if (r->hist.name[0]) {
		const struct warden_results_hist *hh = &r->hist;
		json_t *b = json_array();
		/* Buckets up to the last non-empty one: the rest are zero. */
		unsigned last = 0;
		for (unsigned i = 0; i < hh->n_buckets; i++)
			if (hh->bucket[i])
				last = i + 1;
		for (unsigned i = 0; i < last; i++)
			json_array_append_new(b, json_integer(hh->bucket[i]));
		h = json_object();
		json_object_set_new(h, "name", json_string(hh->name));
		json_object_set_new(h, "bucket_ns", json_integer(hh->bucket_ns));
		json_object_set_new(h, "n_buckets", json_integer(hh->n_buckets));
		json_object_set_new(h, "count", json_integer((json_int_t)(hh->count & INT64_MAX)));
		json_object_set_new(h, "min_ns", hh->count ? json_integer((json_int_t)(hh->min_ns & INT64_MAX)) : json_null());
		json_object_set_new(h, "avg_ns",
		                    hh->count ? json_integer((json_int_t)((hh->sum_ns / hh->count) & INT64_MAX)) : json_null());
		json_object_set_new(h, "max_ns", hh->count ? json_integer((json_int_t)(hh->max_ns & INT64_MAX)) : json_null());
		json_object_set_new(h, "overflow", json_integer((json_int_t)(hh->overflow & INT64_MAX)));
		json_object_set_new(h, "buckets", b);
	}
	json_object_set_new(o, "histogram", h);
	return o;
}

void results_prom_values(FILE *f, const char *cell, const struct warden_results *r) {
	for (unsigned i = 0; i < r->n_values; i++)
		if (value_used(r, i))
			fprintf(f, "warden_cell_result{cell=\"%s\",name=\"%s\",kind=\"%s\"} %llu\n", cell, r->values[i].name,
			        kind_name(r->values[i].kind), (unsigned long long)r->values[i].value);
}

void results_prom_histogram(FILE *f, const char *cell, const struct warden_results *r) {
	const struct warden_results_hist *h = &r->hist;
	unsigned long long cum = 0;

	if (!h->name[0])
		return;
	for (unsigned i = 0; i < h->n_buckets; i++) {
		cum += h->bucket[i];
		fprintf(f, "warden_cell_result_latency_seconds_bucket{cell=\"%s\",name=\"%s\",le=\"%.9g\"} %llu\n", cell,
		        h->name, (double)(i + 1) * h->bucket_ns / 1e9, cum);
	}
	fprintf(f, "warden_cell_result_latency_seconds_bucket{cell=\"%s\",name=\"%s\",le=\"+Inf\"} %llu\n", cell, h->name,
	        (unsigned long long)h->count);
	fprintf(f, "warden_cell_result_latency_seconds_sum{cell=\"%s\",name=\"%s\"} %.9f\n", cell, h->name,
	        (double)h->sum_ns / 1e9);
	fprintf(f, "warden_cell_result_latency_seconds_count{cell=\"%s\",name=\"%s\"} %llu\n", cell, h->name,
	        (unsigned long long)h->count);
}
