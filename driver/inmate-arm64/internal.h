/* SPDX-License-Identifier: MIT */
/*
 * State and helpers shared by the kit's own files; inmates use inmate.h
 * only.
 */
#ifndef WARDEN_INMATE_ARM64_INTERNAL_H
#define WARDEN_INMATE_ARM64_INTERNAL_H

#include "inmate.h"

/* The virtual timer's PPI on every Arm board Jailhouse runs on. */
#define TIMER_VIRT_PPI 27

/* CNTFRQ_EL0 of qemu's generic timer, if the firmware left it 0. */
#define INMATE_DEFAULT_CNT_HZ 62500000u

/* The one errno the kit returns (there is no errno.h here). */
#define ENODEV 19

struct inmate_env {
	volatile struct warden_comm *comm;
	uint64_t freq;		/* CNTFRQ_EL0 */
	uint64_t boot_cnt;
	bool gic_ok;		/* else sleeps spin on the counter */

	/* heartbeat */
	uint32_t flags;
	uint64_t seq;
	uint64_t ack_seq;
};

extern struct inmate_env inmate_env;

/* The C entry, called by start.S on the stack, with .bss cleared. */
void inmate_start(void) __noreturn;

/* Which of the 16 vector table entries was taken (its index: 4 groups of
 * synchronous, IRQ, FIQ, SError), and the syndrome. Called by start.S on
 * a fresh stack; never returns. */
void inmate_trap(uint64_t entry, uint64_t esr, uint64_t elr, uint64_t far)
	__noreturn;

/* Unmasked MMIO of each width; the address must be aligned to it (the
 * MMU is off: everything is device memory). */
static inline uint8_t mmio_read8(uintptr_t addr)
{
	return *(volatile uint8_t *)addr;
}

static inline void mmio_write8(uintptr_t addr, uint8_t v)
{
	*(volatile uint8_t *)addr = v;
}

static inline uint16_t mmio_read16(uintptr_t addr)
{
	return *(volatile uint16_t *)addr;
}

static inline uint32_t mmio_read32(uintptr_t addr)
{
	return *(volatile uint32_t *)addr;
}

static inline void mmio_write32(uintptr_t addr, uint32_t v)
{
	*(volatile uint32_t *)addr = v;
}

static inline uint64_t mmio_read64(uintptr_t addr)
{
	return *(volatile uint64_t *)addr;
}

/* Jailhouse's comm region (../shared/jailhouse/FACTS.md section 4): the
 * offsets of what the kit reads of it. The hypervisor fills the console
 * from the cell config and the GIC fields from the system config when it
 * starts the cell. */
#define JHCOMM_SIGNATURE "JHCOMM"
#define JHCOMM_CONSOLE 24	/* struct jailhouse_console, 32 bytes */
#define JHCOMM_GIC_VERSION 64	/* u8 */
#define JHCOMM_GICD_BASE 72	/* u64 */
#define JHCOMM_GICR_BASE 88	/* u64 */

/* The base of Jailhouse's comm region if the cell has one and it carries
 * the "JHCOMM" signature; 0 otherwise (the plain-QEMU build, or a page
 * nobody wrote). */
uintptr_t jh_comm_base(void);

/* Choose the UART: the one Jailhouse's comm region describes (a PL011 or
 * an 8250; none for any other or a port-I/O one), qemu virt's PL011 if
 * there is no comm region. Programs it only where nobody has (plain
 * QEMU; under Jailhouse the root cell's Linux did). */
void console_init(void);

/* Read the counter frequency and the boot time. */
void time_init(void);
/* Virtual timer off: its interrupt line drops. */
void timer_stop(void);

/* Find this CPU's redistributor, enable the CPU interface and PPI 27.
 * Returns 0, or -ENODEV (the CPU then sleeps by spinning). */
int gic_init(void);
/* Acknowledge and end every pending interrupt. */
void gic_drain(void);
/* Disable PPI 27 and the CPU interface: nothing wakes a halted CPU. */
void gic_quiet(void);

/* Barriers for the comm region, which all sides access as device or
 * uncached memory, so exclusives and atomics are out: `dmb ish` orders
 * this CPU's accesses for the other CPUs of the system. */
static inline void comm_release(void)
{
	__asm__ volatile("dmb ish" : : : "memory");
}

static inline void comm_acquire(void)
{
	__asm__ volatile("dmb ish" : : : "memory");
}

#endif /* WARDEN_INMATE_ARM64_INTERNAL_H */
