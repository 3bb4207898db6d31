/* SPDX-License-Identifier: MIT */
/*
 * warden comm region ABI, revision 1.
 *
 * One page of shared memory per cell, mapped by the inmate (guest-physical,
 * over ivshmem on Jailhouse and QEMU, a memory slot on the in-tree KVM
 * hypervisor) and by wardend. Little-endian. Every field has exactly one
 * writer:
 *
 *   - the inmate owns everything from `magic` up to (not including)
 *     WARDEN_COMM_MAILBOX_OFFSET;
 *   - the daemon owns the mailbox at WARDEN_COMM_MAILBOX_OFFSET.
 *
 * Heartbeat protocol (inmate): write state, uptime and the other fields with
 * plain stores, then advance `seq` with a release store. Readers load `seq`
 * with acquire semantics first and may then read the rest.
 *
 * Panic reason protocol (inmate): `reason_seq` is a seqcount. Make it odd,
 * write `reason`, `reason_code` and `event_mono_ns`, make it even again
 * (release). Readers retry, or report the read as torn, while it is odd or
 * changed under them.
 *
 * Mailbox protocol (daemon): write `cmd` and `cmd_arg`, then advance
 * `cmd_seq` with a release store, then ring the doorbell if there is one.
 * The inmate records the newest `cmd_seq` it has handled in `ack_seq` (and
 * the command in `ack_cmd`). An inmate that boots takes the current
 * `cmd_seq` as already handled, so a stale command never survives a reset.
 *
 * Console ring (optional, both sides): where the comm region is bigger than
 * one page, the daemon says how big in `region_size` before the inmate
 * starts, and the bytes from WARDEN_CONSOLE_OFFSET on are a struct
 * warden_console the inmate appends what it prints to: each byte at
 * data[head % size], then `head` advanced with a release store. The daemon
 * reads the newest bytes (acquire `head`, copy, check `head` again to drop
 * what was overwritten meanwhile). It is for boards where cells share one
 * UART (Jailhouse): the API can then show each cell's own output.
 *
 * Results area (optional, inmate): bytes WARDEN_RESULTS_OFFSET (512) up to
 * 2048 of inmate_reserved may hold a struct warden_results
 * (api/warden/results.h, its own magic, version and seqcount): what the
 * inmate measured, for the daemon's API.
 *
 * Applications table (optional, inmate): bytes WARDEN_APPS_OFFSET (3072)
 * up to 4096, unused by the mailbox, may hold a struct warden_apps
 * (api/warden/apps.h, likewise): the applications the inmate watches
 * itself (warden.ko's /dev/warden users). The inmate is its one writer;
 * the daemon clears it with the inmate's half before every boot.
 *
 * This header is self-standing and usable from freestanding C, the Linux
 * kernel and userspace: it needs nothing but fixed-width integers.
 */
#ifndef WARDEN_COMM_H
#define WARDEN_COMM_H

#ifdef __KERNEL__
#include <linux/types.h>
typedef __u8 warden_u8;
typedef __u32 warden_u32;
typedef __u64 warden_u64;
#else
#include <stdint.h>
typedef uint8_t warden_u8;
typedef uint32_t warden_u32;
typedef uint64_t warden_u64;
#endif

/** "WRDNCOMM" read as a little-endian 64-bit word. */
#define WARDEN_COMM_MAGIC 0x4d4d4f434e445257ULL
/** Bumped on every incompatible layout change. */
#define WARDEN_COMM_ABI 1
/** Size of the region the layout below describes. */
#define WARDEN_COMM_SIZE 4096u
/** Offset of the daemon-owned mailbox. */
#define WARDEN_COMM_MAILBOX_OFFSET 2048u
/** Room for the panic/oops reason, NUL-terminated. */
#define WARDEN_COMM_REASON_LEN 256u
/** Room for the name of an application that missed its deadline. */
#define WARDEN_COMM_APP_LEN 32u

/** Inmate states (field `state`). 0 means "not written yet". */
enum warden_inmate_state {
	WARDEN_INMATE_NONE = 0,
	WARDEN_INMATE_BOOTING = 1,
	WARDEN_INMATE_RUNNING = 2,
	WARDEN_INMATE_DEGRADED = 3,
	WARDEN_INMATE_STOPPING = 4,
	WARDEN_INMATE_PANICKED = 5,
	WARDEN_INMATE_HALTED = 6,
	WARDEN_INMATE_STATE_MAX
};

/** Mailbox commands (field `cmd`). */
enum warden_cmd {
	WARDEN_CMD_NONE = 0,
	/** Stop work, write STOPPING, then HALTED, then halt. */
	WARDEN_CMD_SHUTDOWN = 1,
	/** Acknowledge only; proves the inmate reads its mailbox. */
	WARDEN_CMD_PING = 2,
	/** Inject the fault in `cmd_arg` (enum warden_fault); only inmates
	 *  that advertise WARDEN_FLAG_INJECT obey it. */
	WARDEN_CMD_INJECT = 3,
	WARDEN_CMD_MAX
};

/** Faults for WARDEN_CMD_INJECT. */
enum warden_fault {
	WARDEN_FAULT_NONE = 0,
	/** Interrupts off, no more beats, no more mailbox. */
	WARDEN_FAULT_HANG = 1,
	/** Write PANICKED and a reason, then stop. */
	WARDEN_FAULT_PANIC = 2,
	/** Take the whole cell down (triple fault on x86). */
	WARDEN_FAULT_CRASH = 3,
	/** Write HALTED and stop, as if the work were finished. */
	WARDEN_FAULT_EXIT = 4,
	/** Keep running and claiming RUNNING, stop advancing `seq`. */
	WARDEN_FAULT_STALL = 5,
	WARDEN_FAULT_MAX
};

/** Bits of field `flags`. */
#define WARDEN_FLAG_INJECT (1u << 0) /**< inmate obeys WARDEN_CMD_INJECT */
#define WARDEN_FLAG_HOST_CLOCK (1u << 1) /**< *_mono_ns are host CLOCK_MONOTONIC */

struct warden_comm {
	/* ---- inmate-owned ------------------------------------------------ */
	/** WARDEN_COMM_MAGIC once the inmate has initialised the region. */
	warden_u64 magic; /* 0 */
	/** WARDEN_COMM_ABI. */
	warden_u32 abi; /* 8 */
	/** WARDEN_COMM_SIZE as the inmate understands it. */
	warden_u32 size; /* 12 */
	/** enum warden_inmate_state. */
	warden_u32 state; /* 16 */
	/** Beat period the inmate keeps, in milliseconds. */
	warden_u32 period_ms; /* 20 */
	/** Advanced on every beat, written last, release semantics. */
	warden_u64 seq; /* 24 */
	/** Inmate uptime in nanoseconds at the last beat. */
	warden_u64 uptime_ns; /* 32 */
	/** Free-form boot progress; 0 at entry, grows as the inmate boots. */
	warden_u32 boot_stage; /* 40 */
	/** WARDEN_FLAG_* */
	warden_u32 flags; /* 44 */
	/** Host CLOCK_MONOTONIC at the last beat, when WARDEN_FLAG_HOST_CLOCK. */
	warden_u64 beat_mono_ns; /* 48 */
	/** Seqcount guarding reason, reason_code and event_mono_ns. */
	warden_u32 reason_seq; /* 56 */
	/** Machine-readable reason (exception vector, fault number, ...). */
	warden_u32 reason_code; /* 60 */
	/** Host CLOCK_MONOTONIC of the panic/halt write, when
	 *  WARDEN_FLAG_HOST_CLOCK; inmate uptime in ns otherwise. */
	warden_u64 event_mono_ns; /* 64 */
	/** The last mailbox command handled (enum warden_cmd). */
	warden_u32 ack_cmd; /* 72 */
	warden_u32 reserved0; /* 76 */
	/** The `cmd_seq` of the last mailbox command handled. */
	warden_u64 ack_seq; /* 80 */
	/** Application results (nqueens: solutions, elapsed ns; jitter: min,
	 *  avg, max ns, samples). Meaning depends on the inmate. */
	warden_u64 result[6]; /* 88 */
	/** Name of the application that made the cell DEGRADED. */
	char degraded_app[WARDEN_COMM_APP_LEN]; /* 136 */
	/** NUL-terminated panic/oops/halt reason, under reason_seq. */
	char reason[WARDEN_COMM_REASON_LEN]; /* 168 */
	warden_u8 inmate_reserved[WARDEN_COMM_MAILBOX_OFFSET - 424]; /* 424 */

	/* ---- daemon-owned ------------------------------------------------ */
	/** Advanced after cmd and cmd_arg are written, release semantics. */
	warden_u64 cmd_seq; /* 2048 */
	/** enum warden_cmd. */
	warden_u32 cmd; /* 2056 */
	/** Argument of cmd (enum warden_fault for WARDEN_CMD_INJECT). */
	warden_u32 cmd_arg; /* 2060 */
	/** The whole region's size as the daemon maps it, written before the
	 *  inmate starts; 0 (older daemons) means WARDEN_COMM_SIZE. Above
	 *  WARDEN_COMM_SIZE + sizeof(struct warden_console) a console ring
	 *  follows the page. */
	warden_u32 region_size; /* 2064 */
	warden_u8 daemon_reserved[WARDEN_COMM_SIZE - 2068]; /* 2068 */
};

/** Where the console ring starts in a region bigger than one page. */
#define WARDEN_CONSOLE_OFFSET WARDEN_COMM_SIZE
/** "WRDNCONS" read as a little-endian 64-bit word. */
#define WARDEN_CONSOLE_MAGIC 0x534e4f434e445257ULL

/** Written by the inmate only; the daemon only reads it. */
struct warden_console {
	/** WARDEN_CONSOLE_MAGIC once `size` is set. */
	warden_u64 magic; /* 0 */
	/** Bytes of data[]: region_size - WARDEN_CONSOLE_OFFSET - 32. */
	warden_u32 size; /* 8 */
	warden_u32 reserved0; /* 12 */
	/** Bytes ever written; the next goes to data[head % size]. */
	warden_u64 head; /* 16 */
	warden_u64 reserved1; /* 24 */
	warden_u8 data[]; /* 32 */
};

#endif /* WARDEN_COMM_H */
