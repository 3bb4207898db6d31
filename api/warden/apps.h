/* SPDX-License-Identifier: MIT */
/*
 * warden applications table, version 1: the applications an inmate watches
 * by itself (warden.ko's /dev/warden registrations, containers inside a
 * Linux cell among them), for wardend to show (GET /cells/NAME
 * `applications`, /metrics warden_cell_application_*).
 *
 * Where: WARDEN_APPS_OFFSET (3072) up to the end of the comm page, bytes
 * that revision 1 of the comm ABI (api/warden/comm.h) left unused above
 * the mailbox. The inmate writes them; the daemon only reads them, and
 * clears them with the inmate's half before every boot. Older daemons
 * ignore the table, older inmates leave it zero (no magic: no table).
 *
 * Contents: WARDEN_APPS_MAX slots, `n_slots` of them in use as slots (a
 * slot with an empty name is free). Each application has a name, its own
 * deadline (period_ms), whether it is on time or late, how often it went
 * late, how many beats it sent, and whether its file was closed without
 * unregistering (a crashed application stays, and goes late).
 *
 * One writer, a seqcount as in results.h: the writer makes `seq` odd,
 * writes, makes it even (release). A reader copies the table between two
 * acquire loads of `seq`, retries a few times while it is odd or moved,
 * then gives up for this read: it never waits on the writer.
 *
 * Header-only and self-standing like comm.h (freestanding C, the Linux
 * kernel, userspace); it needs GCC/clang __atomic builtins.
 */
#ifndef WARDEN_APPS_H
#define WARDEN_APPS_H

#include "comm.h"

/** "WAPP" read as a little-endian 32-bit word. */
#define WARDEN_APPS_MAGIC 0x50504157u
#define WARDEN_APPS_VERSION 1u
/** Bytes from the start of the comm region. */
#define WARDEN_APPS_OFFSET 3072u
#define WARDEN_APPS_SIZE 1024u
#define WARDEN_APPS_MAX 16u
/** Room for a name, NUL-terminated: 1..31 of [A-Za-z0-9._-]. */
#define WARDEN_APPS_NAME_LEN WARDEN_COMM_APP_LEN
#define WARDEN_APPS_READ_TRIES 4

/** Field `state` of a slot. */
enum warden_app_state {
	WARDEN_APP_FREE = 0,
	/** Beat within its period. */
	WARDEN_APP_ON_TIME = 1,
	/** No beat for longer than its period: the cell is DEGRADED. */
	WARDEN_APP_LATE = 2,
	WARDEN_APP_STATE_MAX
};

/** Bits of field `flags` of a slot. */
#define WARDEN_APP_CLOSED (1u << 0) /**< its file closed without unregister */

struct warden_app_slot {
	char name[WARDEN_APPS_NAME_LEN]; /* 0: "" = free */
	warden_u32 state; /* 32: enum warden_app_state */
	warden_u32 period_ms; /* 36: its deadline */
	warden_u32 misses; /* 40: times it went late since it registered */
	warden_u32 flags; /* 44: WARDEN_APP_* */
	warden_u64 beats; /* 48: beats since it registered, registering included */
};

struct warden_apps {
	warden_u32 magic; /* 0: WARDEN_APPS_MAGIC once initialised */
	warden_u32 version; /* 4: WARDEN_APPS_VERSION */
	warden_u32 seq; /* 8: seqcount, odd while the writer writes */
	warden_u32 n_slots; /* 12: slots of app[] the writer uses, <= WARDEN_APPS_MAX */
	struct warden_app_slot app[WARDEN_APPS_MAX]; /* 16 */
	warden_u8 reserved[WARDEN_APPS_SIZE - 16 - WARDEN_APPS_MAX * 56]; /* 912 */
};

_Static_assert(sizeof(struct warden_app_slot) == 56, "application slot size");
_Static_assert(sizeof(struct warden_apps) == WARDEN_APPS_SIZE, "applications table size");
_Static_assert(WARDEN_APPS_OFFSET >= WARDEN_COMM_MAILBOX_OFFSET + 20 &&
		       WARDEN_APPS_OFFSET + WARDEN_APPS_SIZE <= WARDEN_COMM_SIZE,
	       "applications table above the mailbox, inside the page");

/** The table inside a mapped comm region. */
static inline volatile struct warden_apps *warden_apps_of(volatile void *comm)
{
	return (volatile struct warden_apps *)((volatile warden_u8 *)comm + WARDEN_APPS_OFFSET);
}

/** What a daemon does before each boot: zero every byte the inmate writes
 *  (its half below the mailbox, and this table), so that nothing of the
 *  last boot is read as this one's. The mailbox stays: an inmate takes
 *  its cmd_seq as handled when it boots. */
static inline void warden_comm_clear_inmate(volatile void *comm)
{
	volatile warden_u8 *p = (volatile warden_u8 *)comm;
	unsigned int i;

	for (i = 0; i < WARDEN_COMM_MAILBOX_OFFSET; i++)
		p[i] = 0;
	for (i = WARDEN_APPS_OFFSET; i < WARDEN_APPS_OFFSET + WARDEN_APPS_SIZE; i++)
		p[i] = 0;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* ---- writer (exactly one per region) ----------------------------------- */

/** Open a write: seq becomes odd. Pair with warden_apps_end(). */
static inline void warden_apps_begin(volatile struct warden_apps *t)
{
	__atomic_store_n(&t->seq, t->seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

/** Close a write: seq becomes even again, the writes before it visible. */
static inline void warden_apps_end(volatile struct warden_apps *t)
{
	__atomic_store_n(&t->seq, t->seq + 1, __ATOMIC_RELEASE);
}

/** Empty the table with `n_slots` slots; `seq` keeps growing across
 *  re-initialisations. */
static inline void warden_apps_init(volatile struct warden_apps *t, warden_u32 n_slots)
{
	warden_u32 seq = t->magic == WARDEN_APPS_MAGIC ? t->seq : 0;
	unsigned int i;

	if (seq & 1)
		seq++;
	t->seq = seq + 1;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	for (i = 0; i < sizeof(t->app); i++)
		((volatile warden_u8 *)t->app)[i] = 0;
	t->n_slots = n_slots > WARDEN_APPS_MAX ? WARDEN_APPS_MAX : n_slots;
	t->version = WARDEN_APPS_VERSION;
	t->magic = WARDEN_APPS_MAGIC;
	warden_apps_end(t);
}

/* ---- reader ------------------------------------------------------------ */

/** Copy a consistent snapshot of `src` to `dst`. Returns 0, -1 if there
 *  is no table (no magic or another version), -2 if every try was torn. */
static inline int warden_apps_read(const volatile struct warden_apps *src, struct warden_apps *dst)
{
	int t;

	for (t = 0; t < WARDEN_APPS_READ_TRIES; t++) {
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
		if (dst->magic != WARDEN_APPS_MAGIC || dst->version != WARDEN_APPS_VERSION)
			return -1;
		return 0;
	}
	return -2;
}

#endif /* WARDEN_APPS_H */
