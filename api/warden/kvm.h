/* SPDX-License-Identifier: MIT */
/*
 * What a bare-metal inmate sees on warden's in-tree KVM hypervisor
 * (hypervisor/kvm, the warden-kvm runner), revision 1.
 *
 * Entry: every vCPU starts in 64-bit long mode, ring 0, interrupts off, at
 * the cell's entry address, with
 *   %rdi = guest-physical address of struct warden_bootinfo,
 *   %rsi = WARDEN_BOOT_MAGIC (lets an image that also boots elsewhere tell),
 *   %rsp = 0 (the image sets up its own stack).
 * Paging: the first 4 GiB are identity-mapped with 2 MiB pages, writable and
 * user-accessible (so ring-3 code reaches RAM, the comm region and the boot
 * info). A flat GDT is loaded (0x08: 64-bit code, 0x10: data); the image is
 * expected to load its own GDT/IDT/TSS if it leaves ring 0.
 *
 * I/O ports (usable from ring 3 when the image runs with IOPL 3):
 *   0x3f8..0x3ff  16550 UART, transmit only: THR at 0x3f8, LSR at 0x3fd
 *                 always reads "transmitter empty".
 *   WARDEN_PORT_DOORBELL  any write wakes wardend (a KVM ioeventfd; no
 *                 exit to the runner on the fast path).
 *   WARDEN_PORT_SLEEP     32-bit write of N: the vCPU sleeps N microseconds
 *                 (a paravirtual timer; the runner can cut it short to stop
 *                 the cell). Lets an idle inmate cost no host CPU.
 *   WARDEN_PORT_HALT      any write: the vCPU stops for good (the inmate has
 *                 halted itself); the runner reports it.
 * There is no interrupt controller: HLT with interrupts off stops the vCPU
 * for good, and the runner reports it.
 */
#ifndef WARDEN_KVM_H
#define WARDEN_KVM_H

#include "comm.h"

#define WARDEN_BOOT_MAGIC 0x544f4f424e445257ULL /* "WRDNBOOT" */
#define WARDEN_BOOT_VERSION 1
#define WARDEN_BOOT_ARGS_LEN 256u

#define WARDEN_PORT_UART 0x3f8
#define WARDEN_PORT_DOORBELL 0x510
#define WARDEN_PORT_SLEEP 0x511
#define WARDEN_PORT_HALT 0x512

/* Guest-physical layout the runner reserves in the cell's RAM region that
 * starts at guest-physical 0: page tables, boot info, GDT. Images load at or
 * above WARDEN_KVM_IMAGE_MIN. */
#define WARDEN_KVM_PML4 0x1000ull
#define WARDEN_KVM_PDPT 0x2000ull
#define WARDEN_KVM_PD 0x3000ull /* four pages, 0x3000..0x6fff */
#define WARDEN_KVM_GDT 0x7000ull
#define WARDEN_KVM_BOOTINFO 0x8000ull
#define WARDEN_KVM_IMAGE_MIN 0x10000ull

struct warden_bootinfo {
	/** WARDEN_BOOT_MAGIC */
	warden_u64 magic; /* 0 */
	/** WARDEN_BOOT_VERSION */
	warden_u32 version; /* 8 */
	/** Index of this vCPU within the cell (0 is the boot CPU). */
	warden_u32 cpu; /* 12 */
	/** Number of vCPUs in the cell. */
	warden_u32 n_cpus; /* 16 */
	/** Heartbeat period from the cell spec, in milliseconds. */
	warden_u32 period_ms; /* 20 */
	/** Guest-physical address and size of the comm region. */
	warden_u64 comm_addr; /* 24 */
	warden_u64 comm_size; /* 32 */
	/** Guest-physical start and size of the RAM region holding the image. */
	warden_u64 ram_addr; /* 40 */
	warden_u64 ram_size; /* 48 */
	/** TSC frequency in kHz. */
	warden_u64 tsc_khz; /* 56 */
	/** A guest TSC value and the host CLOCK_MONOTONIC (ns) at that TSC:
	 *  host_ns = sync_mono_ns + (tsc - sync_tsc) * 1e6 / tsc_khz. */
	warden_u64 sync_tsc; /* 64 */
	warden_u64 sync_mono_ns; /* 72 */
	/** WARDEN_FLAG_INJECT if the spec allows fault injection. */
	warden_u32 flags; /* 80 */
	warden_u32 reserved; /* 84 */
	/** The spec's "args" string, NUL-terminated ("n=10 period=5"). */
	char args[WARDEN_BOOT_ARGS_LEN]; /* 88 */
};

#endif /* WARDEN_KVM_H */
