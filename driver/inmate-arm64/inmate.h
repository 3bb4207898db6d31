/* SPDX-License-Identifier: MIT */
/*
 * The warden arm64 inmate kit: what a bare-metal inmate in a Jailhouse
 * non-root cell on `qemu-system-aarch64 -M virt,gic-version=3` needs to
 * keep a heartbeat in warden's comm region (api/warden/comm.h).
 *
 * Jailhouse enters the image's first byte at EL1 with the MMU and the
 * caches off and all of DAIF masked; nothing else about the CPU is known.
 * The kit keeps the MMU off, so every data access is Device-nGnRnE: no
 * unaligned access (the build uses -mstrict-align) and no exclusives or
 * atomics (ordering comes from plain stores and `dmb ish`). Interrupts
 * stay masked in PSTATE for good: the inmate sleeps in WFI, which the
 * pending virtual timer interrupt (PPI 27) ends anyway, and acknowledges
 * that interrupt at the GIC by hand. No vector table entry returns; an
 * exception is a panic.
 *
 * Single CPU: the cell has one, and nothing here is per-CPU.
 */
#ifndef WARDEN_INMATE_ARM64_H
#define WARDEN_INMATE_ARM64_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "warden/comm.h"

/*
 * Guest-physical addresses, as the cell sees them. The defaults are
 * Jailhouse's qemu-arm64 inmate cell; the plain-QEMU test build (README.md)
 * moves the comm page with -D and says there is no Jailhouse comm region.
 * RAM (64 KiB, the image at its start, the stack at its end) is placed by
 * inmate.ld alone.
 */
#ifndef WARDEN_JH_COMM_BASE
/* warden's comm page. The cell spec must map warden's comm page here: one
 * page, read/write, shared with the root cell (the daemon maps it there). */
#define WARDEN_JH_COMM_BASE 0x80100000ul
#endif
#ifndef JAILHOUSE_COMM_BASE
/* Jailhouse's own comm region ("JHCOMM"), for the GIC addresses and the
 * console's UART only (the cell is PASSIVE_COMMREG: its messages need no
 * answer). 0: there is none, use the qemu virt addresses below. */
#define JAILHOUSE_COMM_BASE 0x80000000ul
#endif
/* PL011 of the qemu virt board, the console where there is no Jailhouse
 * comm region to name one. */
#define INMATE_UART_BASE 0x09000000ul
/* qemu virt's GICv3, when Jailhouse's comm region does not say. */
#define QEMU_VIRT_GICD_BASE 0x08000000ul
#define QEMU_VIRT_GICR_BASE 0x080a0000ul
/* No region of the cell maps it (nor does the test machine's 256 MiB of
 * RAM from 0x40000000): a read there is the "crash" fault. */
#define INMATE_UNMAPPED_ADDR 0x50000000ul

#define __noreturn __attribute__((noreturn))
#define __printf(a, b) __attribute__((format(printf, a, b)))

/* Provided by the inmate. Returning halts the inmate. */
int main(void);

/* ---- console (the cell config's UART: PL011 or 8250; or none) ---------- */

void console_putc(char c);
void console_puts(const char *s);
/* printf subset: %c %s %p %d %i %u %x with the l, ll and z length
 * modifiers, the '0' flag and a field width. Returns the length. */
int printk(const char *fmt, ...) __printf(1, 2);
int vprintk(const char *fmt, va_list ap);
/* Like snprintf: NUL-terminates when size > 0, returns the length the
 * whole output would have had. */
int snprintk(char *buf, size_t size, const char *fmt, ...) __printf(3, 4);

/* ---- time (generic timer, virtual counter) ---------------------------- */

static inline uint64_t cnt_read(void)
{
	uint64_t v;

	/* isb: the read must not be taken ahead of the code before it. */
	__asm__ volatile("isb; mrs %0, cntvct_el0" : "=r"(v) : : "memory");
	return v;
}

/* CNTFRQ_EL0, in Hz. */
uint64_t cnt_freq(void);
uint64_t cnt_to_ns(uint64_t ticks);
uint64_t ns_to_cnt(uint64_t ns);
/* Nanoseconds since the kit took over from the loader. */
uint64_t uptime_ns(void);
/* WFI until the virtual counter reaches `deadline`: the virtual timer
 * wakes the CPU, which costs no host CPU meanwhile. */
void sleep_until_cnt(uint64_t deadline);

/* ---- CPU ---------------------------------------------------------------- */

static inline void cpu_irq_disable(void)
{
	__asm__ volatile("msr daifset, #0xf" : : : "memory");
}

static inline void cpu_relax(void)
{
	__asm__ volatile("yield" : : : "memory");
}

/* Timer and GIC quiet, interrupts masked, WFI for ever. */
void cpu_halt_forever(void) __noreturn;
/* Read INMATE_UNMAPPED_ADDR: Jailhouse fails the CPU and the cell. Where
 * nobody stops it (plain QEMU), the abort comes back as an exception and
 * ends in hb_panic(). */
void cpu_crash(void) __noreturn;

/* ---- heartbeat (inmate-owned half of the comm region) ----------------- */

/* Initialise the comm region: layout fields, state BOOTING, period,
 * `caps` (the WARDEN_FLAG_* the inmate implements) as flags, and take the
 * current mailbox command as handled. */
void hb_init(uint32_t period_ms, uint32_t caps);
/* One beat: uptime, then seq (release). */
void hb_beat(void);
void hb_set_state(enum warden_inmate_state state);
void hb_set_stage(uint32_t stage);
bool hb_inject_allowed(void);
/* Record a reason (seqcount), state PANICKED, print it and halt. */
void hb_panic(const char *reason, uint32_t code) __noreturn;
/* Record a reason, state HALTED, print it and halt: ended on purpose. */
void hb_halt(const char *reason) __noreturn;

/* ---- mailbox (daemon-owned half) -------------------------------------- */

struct mbox_cmd {
	uint64_t seq;
	uint32_t cmd; /* enum warden_cmd */
	uint32_t arg;
};

/* Fetch a command newer than the last one acknowledged. */
bool mbox_poll(struct mbox_cmd *ret);
/* Write ack_cmd, then ack_seq (release). */
void mbox_ack(const struct mbox_cmd *cmd);
/* Poll and handle what every inmate handles alike: PING is acknowledged;
 * SHUTDOWN is acknowledged, beats STOPPING and halts (HALTED); INJECT is
 * returned, not yet acknowledged, if the inmate advertises
 * WARDEN_FLAG_INJECT, and acknowledged and ignored otherwise, as are
 * unknown commands. Returns true when there is an INJECT for the caller. */
bool mbox_serve(struct mbox_cmd *ret);

/* ---- freestanding string functions (gcc may emit calls to these) ------ */

void *memset(void *s, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);

#endif /* WARDEN_INMATE_ARM64_H */
