/* SPDX-License-Identifier: MIT */
/*
 * State shared by the library's own files; inmates use inmate.h only.
 */
#ifndef WARDEN_INMATE_INTERNAL_H
#define WARDEN_INMATE_INTERNAL_H

/* Constants start.S shares: keep this part free of C. */

/* Multiboot v1: what the 32-bit entry passes on in %rsi (and %rdi = the
 * multiboot info). */
#define MULTIBOOT_LOADER_MAGIC 0x2badb002u
#define MULTIBOOT_INFO_CMDLINE (1u << 2)

/* Services of the DPL-3 gate `int $INMATE_SVC_VECTOR` (number in %eax);
 * the numbers are shared with start.S. */
#define INMATE_SVC_VECTOR 0x80
#define INMATE_SVC_HLT 1
#define INMATE_SVC_TRIPLE_FAULT 2

/* Fallbacks when nobody tells the inmate. */
#define INMATE_DEFAULT_TSC_KHZ 2000000u

/* GDT selectors (start.S builds the GDT). */
#define INMATE_SEL_KCODE 0x08
#define INMATE_SEL_KDATA 0x10
#define INMATE_SEL_UDATA 0x18
#define INMATE_SEL_UCODE 0x20
#define INMATE_SEL_TSS 0x28
#define INMATE_SEL_TSS1 0x38

/* WARDEN_BOOT_MAGIC, for start.S which cannot include kvm.h. */
#define INMATE_BOOT_MAGIC 0x544f4f424e445257

#ifndef __ASSEMBLER__

#include "inmate.h"

struct inmate_env {
	const struct warden_bootinfo *bootinfo; /* NULL unless warden-kvm */
	volatile struct warden_comm *comm;
	bool comm_shared;
	/* warden-kvm's UART never makes the transmitter wait: skip the LSR
	 * poll, which is one more exit per character. */
	bool uart_fast;
	uint64_t tsc_khz;
	uint64_t boot_tsc;

	/* heartbeat */
	uint32_t flags;
	uint64_t period_tsc;
	uint64_t last_beat_tsc;
	uint64_t seq;
	uint64_t ack_seq;

	char args[WARDEN_BOOT_ARGS_LEN];
};

extern struct inmate_env inmate_env;

/* The C entry in ring 3, called by start.S with the loader's registers. */
void inmate_start(uint64_t boot_ptr, uint64_t boot_magic) __noreturn;

/* The frame start.S builds on the ring-0 stack for an exception. */
struct trap_frame {
	uint64_t vector;
	uint64_t error;
	uint64_t rip;
	uint64_t cs;
	uint64_t rflags;
	uint64_t rsp;
	uint64_t ss;
};

/* Ring 0, called by start.S; never returns. */
void inmate_trap(const struct trap_frame *f) __noreturn;

/* Program the UART (a loader other than warden-kvm may not have). */
void console_init(void);

/* Look for an ivshmem-plain device (1af4:1110) and return its BAR2 if the
 * firmware mapped it below 4 GiB, else 0. */
uint64_t pci_find_ivshmem(uint64_t *ret_size);

/* The private stand-in comm page (start.S/inmate.ld place it). */
extern struct warden_comm inmate_private_comm;

#endif /* __ASSEMBLER__ */

#endif /* WARDEN_INMATE_INTERNAL_H */
