/* SPDX-License-Identifier: MIT */
/*
 * warden results area, version 1: what an inmate measured, for wardend to
 * show (GET /cells/NAME `results`, /metrics warden_cell_result*).
 *
 * It lives inside the inmate-owned half of the comm region
 * (api/warden/comm.h), at WARDEN_RESULTS_OFFSET, WARDEN_RESULTS_SIZE bytes,
 * in what revision 1 of the comm ABI left as `inmate_reserved`: older
 * daemons ignore it, older inmates leave it zero (no magic: no results).
 *
 * Contents: up to WARDEN_RESULTS_VALUES named values (counters or gauges,
 * 64-bit, optionally in nanoseconds) and one histogram of
 * WARDEN_RESULTS_BUCKETS fixed-width buckets (bucket i counts samples in
 * [i*bucket_ns, (i+1)*bucket_ns)), with count, sum, min, max and the
 * samples beyond the last bucket in `overflow` (cyclictest -h: 1 us buckets
 * up to a bound).
 *
 * One writer (the inmate; on Linux, warden.ko on behalf of /dev/warden
 * writers). `seq` is a seqcount: the writer makes it odd, writes, makes it
 * even (release). A reader copies the area between two acquire loads of
 * `seq` and retries a few times while it is odd or moved, then gives up for
 * this sample: it never waits on the writer.
 *
 * Header-only and self-standing like comm.h: freestanding C (the bare-metal
 * kit), the Linux kernel and userspace (the container library) include it
 * as is. It needs GCC/clang __atomic builtins and nothing else.
 */
#ifndef WARDEN_RESULTS_H
#define WARDEN_RESULTS_H

#include "comm.h"

/** "WRES" read as a little-endian 32-bit word. */
#define WARDEN_RESULTS_MAGIC 0x53455257u
#define WARDEN_RESULTS_VERSION 1u
/** Byte offset inside the comm region, and the area's size. */
#define WARDEN_RESULTS_OFFSET 512u
#define WARDEN_RESULTS_SIZE 1536u
#define WARDEN_RESULTS_VALUES 8u
/** Room for a value's name, NUL-terminated: [a-z0-9_]. */
#define WARDEN_RESULTS_NAME_LEN 12u
#define WARDEN_RESULTS_HIST_NAME_LEN 16u
#define WARDEN_RESULTS_BUCKETS 316u
/** How many times a reader retries a torn read before it gives up. */
#define WARDEN_RESULTS_READ_TRIES 4

/** Kinds of value (field `kind`). */
enum warden_result_kind {
	WARDEN_RESULT_NONE = 0, /**< slot unused */
	WARDEN_RESULT_COUNTER = 1, /**< only grows */
	WARDEN_RESULT_GAUGE = 2, /**< any value */
	WARDEN_RESULT_NS = 3, /**< a gauge in nanoseconds */
};

struct warden_result_value {
	char name[WARDEN_RESULTS_NAME_LEN]; /* 0 */
	warden_u32 kind; /* 12: enum warden_result_kind */
	warden_u64 value; /* 16 */
};

struct warden_results_hist {
	char name[WARDEN_RESULTS_HIST_NAME_LEN]; /* 0: "" = no histogram */
	warden_u32 bucket_ns; /* 16: width of a bucket */
	warden_u32 n_buckets; /* 20: buckets in use, <= WARDEN_RESULTS_BUCKETS */
	warden_u64 count; /* 24: samples, overflow included */
	warden_u64 sum_ns; /* 32 */
	warden_u64 min_ns; /* 40: valid when count > 0 */
	warden_u64 max_ns; /* 48 */
	warden_u64 overflow; /* 56: samples >= n_buckets * bucket_ns */
	warden_u32 bucket[WARDEN_RESULTS_BUCKETS]; /* 64 */
};

struct warden_results {
	warden_u32 magic; /* 0: WARDEN_RESULTS_MAGIC once initialised */
	warden_u32 version; /* 4: WARDEN_RESULTS_VERSION */
	warden_u32 seq; /* 8: seqcount, odd while the writer writes */
	warden_u32 n_values; /* 12: slots of values[] in use */
	struct warden_result_value values[WARDEN_RESULTS_VALUES]; /* 16 */
	struct warden_results_hist hist; /* 208 */
};

_Static_assert(sizeof(struct warden_results) == WARDEN_RESULTS_SIZE, "results area size");
_Static_assert(WARDEN_RESULTS_OFFSET + WARDEN_RESULTS_SIZE <= WARDEN_COMM_MAILBOX_OFFSET,
	       "results area inside the inmate-owned half");

/** The area inside a mapped comm region. */
static inline volatile struct warden_results *warden_results_of(volatile void *comm)
{
	return (volatile struct warden_results *)((volatile warden_u8 *)comm + WARDEN_RESULTS_OFFSET);
}

/* ---- writer (exactly one per region) ----------------------------------- */

/** Open a write: seq becomes odd. Pair with warden_results_end(). */
static inline void warden_results_begin(volatile struct warden_results *r)
{
	__atomic_store_n(&r->seq, r->seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

/** Close a write: seq becomes even again, the writes before it visible. */
static inline void warden_results_end(volatile struct warden_results *r)
{
	__atomic_store_n(&r->seq, r->seq + 1, __ATOMIC_RELEASE);
}

/** Clear the area and declare a histogram (name "" for none; bucket_ns
 *  and n_buckets are clamped to 1 and WARDEN_RESULTS_BUCKETS). Keeps
 *  `seq` growing across re-initialisations. */
static inline void warden_results_init(volatile struct warden_results *r, const char *hist_name,
				       warden_u32 bucket_ns, warden_u32 n_buckets)
{
	warden_u32 seq = r->magic == WARDEN_RESULTS_MAGIC ? r->seq : 0;
	unsigned int i;

	if (seq & 1)
		seq++;
	r->seq = seq + 1;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	for (i = 0; i < sizeof(r->values); i++)
		((volatile warden_u8 *)r->values)[i] = 0;
	for (i = 0; i < sizeof(r->hist); i++)
		((volatile warden_u8 *)&r->hist)[i] = 0;
	for (i = 0; hist_name && hist_name[i] && i < WARDEN_RESULTS_HIST_NAME_LEN - 1; i++)
		r->hist.name[i] = hist_name[i];
	r->hist.bucket_ns = bucket_ns ? bucket_ns : 1;
	r->hist.n_buckets = n_buckets > WARDEN_RESULTS_BUCKETS ? WARDEN_RESULTS_BUCKETS : n_buckets;
	r->n_values = 0;
	r->version = WARDEN_RESULTS_VERSION;
	r->magic = WARDEN_RESULTS_MAGIC;
	warden_results_end(r);
}

static inline int warden_results_name_eq(const volatile char *a, const char *b)
{
	unsigned int i;

	for (i = 0; i < WARDEN_RESULTS_NAME_LEN; i++) {
		if (a[i] != b[i])
			return 0;
		if (!b[i])
			return 1;
	}
	return 0;
}

/** Set value `name` (created in the next free slot on first use; dropped,
 *  returning -1, when all slots are taken). Call inside begin/end, or use
 *  warden_results_put() for a single value. */
static inline int warden_results_set(volatile struct warden_results *r, const char *name,
				     enum warden_result_kind kind, warden_u64 value)
{
	unsigned int i, j, n = r->n_values;

	for (i = 0; i < n && i < WARDEN_RESULTS_VALUES; i++)
		if (warden_results_name_eq(r->values[i].name, name))
			break;
	if (i >= WARDEN_RESULTS_VALUES)
		return -1;
	if (i == n) {
		for (j = 0; j < WARDEN_RESULTS_NAME_LEN - 1 && name[j]; j++)
			r->values[i].name[j] = name[j];
		for (; j < WARDEN_RESULTS_NAME_LEN; j++)
			r->values[i].name[j] = 0;
		r->n_values = n + 1;
	}
	r->values[i].kind = kind;
	r->values[i].value = value;
	return 0;
}

static inline int warden_results_put(volatile struct warden_results *r, const char *name,
				     enum warden_result_kind kind, warden_u64 value)
{
	int ret;

	warden_results_begin(r);
	ret = warden_results_set(r, name, kind, value);
	warden_results_end(r);
	return ret;
}

/** Add one sample to the histogram; inside begin/end or alone through
 *  warden_results_sample(). */
static inline void warden_results_add(volatile struct warden_results *r, warden_u64 ns)
{
	volatile struct warden_results_hist *h = &r->hist;
	warden_u64 b = ns / (h->bucket_ns ? h->bucket_ns : 1);

	if (!h->count || ns < h->min_ns)
		h->min_ns = ns;
	if (ns > h->max_ns)
		h->max_ns = ns;
	h->count++;
	h->sum_ns += ns;
	if (b < h->n_buckets && b < WARDEN_RESULTS_BUCKETS)
		h->bucket[b]++;
	else
		h->overflow++;
}

static inline void warden_results_sample(volatile struct warden_results *r, warden_u64 ns)
{
	warden_results_begin(r);
	warden_results_add(r, ns);
	warden_results_end(r);
}

/* ---- reader ------------------------------------------------------------ */

/** Copy a consistent snapshot of `src` to `dst`. Returns 0, -1 if the
 *  area is not initialised (no magic or another version), -2 if every
 *  try was torn (the writer was busy: try again at the next sample). */
static inline int warden_results_read(const volatile struct warden_results *src, struct warden_results *dst)
{
	int t;

	for (t = 0; t < WARDEN_RESULTS_READ_TRIES; t++) {
		warden_u32 s0 = __atomic_load_n(&src->seq, __ATOMIC_ACQUIRE), s1;
		unsigned int i;

		if (s0 & 1)
			continue;
		for (i = 0; i < sizeof(*dst); i++)
			((warden_u8 *)dst)[i] = ((const volatile warden_u8 *)src)[i];
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		s1 = __atomic_load_n(&src->seq, __ATOMIC_RELAXED);
		if (s0 != s1)
			continue;
		if (dst->magic != WARDEN_RESULTS_MAGIC || dst->version != WARDEN_RESULTS_VERSION)
			return -1;
		return 0;
	}
	return -2;
}

#endif /* WARDEN_RESULTS_H */
