/* SPDX-License-Identifier: MIT */
/*
 * The warden inmate library: everything a bare-metal x86-64 inmate needs to
 * keep a heartbeat in its comm region (api/warden/comm.h).
 *
 * The image boots either from warden's KVM runner (64-bit entry at the first
 * byte, boot info in %rdi, see api/warden/kvm.h) or from any multiboot v1
 * loader such as QEMU's `-kernel` (32-bit entry; no boot info, so the comm
 * region is searched on PCI as an ivshmem BAR). Both paths end in ring 3
 * (IOPL 3 where the CPU honours it; the TSS I/O bitmap opens the ports
 * where it does not), where main() runs: on the nested KVM of the build machines
 * ring-0 code is emulated instruction by instruction and ring-3 code runs
 * natively, so the library leaves ring 0 after a few dozen instructions and
 * only returns there for an exception or one of the services in cpu_*().
 *
 * CPUs: the boot CPU runs main(); on warden-kvm a second vCPU (CPU 1) runs
 * work handed to it through smp_start() (smp.c); others halt at entry.
 */
#ifndef WARDEN_INMATE_H
#define WARDEN_INMATE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "warden/comm.h"
#include "warden/kvm.h"
#include "warden/results.h"

#define __noreturn __attribute__((noreturn))
#define __printf(a, b) __attribute__((format(printf, a, b)))

/* Provided by the inmate; runs in ring 3. Returning halts the inmate. */
int main(void);

/* ---- boot environment ------------------------------------------------- */

/* The runner's boot info, or NULL when the image was not started by
 * warden-kvm (multiboot, or a bad magic). */
const struct warden_bootinfo *inmate_bootinfo(void);
/* The argument string: the boot info's `args`, the multiboot command line,
 * or "". */
const char *inmate_args(void);
/* The comm region the heartbeat goes to. Without one (QEMU without
 * ivshmem) this is a private page inside the image, so the inmate behaves
 * the same and nothing outside it is written. */
volatile struct warden_comm *inmate_comm(void);
/* True if inmate_comm() is a region someone else can see. */
bool inmate_comm_shared(void);

/* ---- console (16550 UART at WARDEN_PORT_UART) ------------------------- */

void console_putc(char c);
void console_write(const char *s, size_t len);
void console_puts(const char *s);
/* printf subset: %c %s %p %d %i %u %x %X with the l, ll and z length
 * modifiers, '-' and '0' flags and a field width. Returns the length. */
int printk(const char *fmt, ...) __printf(1, 2);
int vprintk(const char *fmt, va_list ap);
/* Like snprintf: always NUL-terminates when size > 0, returns the length
 * the full output would have had. */
int snprintk(char *buf, size_t size, const char *fmt, ...) __printf(3, 4);
int vsnprintk(char *buf, size_t size, const char *fmt, va_list ap);

/* ---- time ------------------------------------------------------------- */

static inline uint64_t tsc_read(void)
{
	uint32_t lo, hi;

	/* lfence keeps the read from being hoisted above earlier loads, so
	 * a measured interval covers the work between two reads. */
	__asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi) : : "memory");
	return ((uint64_t)hi << 32) | lo;
}

/* TSC frequency: from the boot info, else calibrated against the PIT. */
uint64_t tsc_khz(void);
uint64_t tsc_to_ns(uint64_t ticks);
uint64_t ns_to_tsc(uint64_t ns);
/* Nanoseconds since the library took over from the loader. */
uint64_t uptime_ns(void);
/* Host CLOCK_MONOTONIC in ns when the boot info carries a sync pair
 * (WARDEN_FLAG_HOST_CLOCK), uptime_ns() otherwise. */
uint64_t host_mono_ns(void);
/* Sleep at least `us` microseconds: WARDEN_PORT_SLEEP on warden-kvm (the
 * vCPU costs no host CPU meanwhile; the runner may cut it short to stop
 * the cell), a TSC busy-wait elsewhere. */
void sleep_us(uint32_t us);
/* Sleep until the TSC reaches `deadline`. */
void sleep_until_tsc(uint64_t deadline);

/* ---- ports and CPU services ------------------------------------------- */

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" : : : "memory");
}

/* Interrupts off, where ring 3 may do that (IOPL 3). The nested KVM of
 * the build machines runs ring 3 with IOPL 0, where cli would trap; it has
 * no interrupt controller either, so nothing interrupts an inmate there. */
static inline void cpu_irq_disable(void)
{
	uint64_t rflags;

	__asm__ volatile("pushfq; popq %0" : "=r"(rflags));
	if (((rflags >> 12) & 3) == 3)
		__asm__ volatile("cli" : : : "memory");
}

/* Wake wardend: a 32-bit write (outl) to WARDEN_PORT_DOORBELL. The runner
 * registers a 4-byte ioeventfd there, which only matches 4-byte writes; an
 * outb would exit to the runner instead of taking the fast path. */
void doorbell_ring(void);
/* Interrupts off and HLT, in ring 0: the vCPU stops for good. From ring 3
 * this is a service call (int $0x80). */
void cpu_hlt_forever(void) __noreturn;
/* Load an empty IDT and raise an exception: the CPU shuts down. */
void cpu_triple_fault(void) __noreturn;

/* ---- heartbeat (inmate-owned half of the comm region) ----------------- */

/* Initialise the comm region: layout fields, state BOOTING, period, flags,
 * and take the current mailbox command as handled. `caps` are the
 * WARDEN_FLAG_* the inmate implements; WARDEN_FLAG_INJECT is advertised
 * only if the boot info allows it too. */
void hb_init(uint32_t period_ms, uint32_t caps);
/* The beat period: the boot info's period_ms, or `fallback`. */
uint32_t hb_period_ms(uint32_t fallback);
/* One beat: uptime, host time, then seq (release). */
void hb_beat(void);
/* Beat if at least one period passed since the last beat. */
bool hb_beat_due(void);
void hb_set_state(enum warden_inmate_state state);
void hb_set_stage(uint32_t stage);
void hb_set_result(unsigned int idx, uint64_t value);
bool hb_inject_allowed(void);
/* Record a reason (seqcount), state PANICKED, ring the doorbell, print it
 * and stop with interrupts off (the runner sees a halted vCPU, the daemon
 * sees PANICKED). */
void hb_panic(const char *reason, uint32_t code) __noreturn;
/* Record a reason, state HALTED, ring the doorbell and stop through
 * WARDEN_PORT_HALT: the inmate ended on purpose. */
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
 * SHUTDOWN is acknowledged, beats STOPPING and halts; INJECT is returned
 * (not yet acknowledged) if the inmate advertises WARDEN_FLAG_INJECT and
 * acknowledged and ignored otherwise, as are unknown commands. Returns
 * true when there is an INJECT for the caller. */
bool mbox_serve(struct mbox_cmd *ret);

/* ---- a second CPU (smp.c) ---------------------------------------------- */

/* Say this once, at file scope, in an image that uses CPU 1; without it
 * CPU 1 halts at entry like the others. */
#define INMATE_SMP() const int inmate_smp_wanted = 1

/* 2 if CPU 1 is up and serving smp_start(), 1 otherwise. */
unsigned int smp_cpus(void);
/* Wait up to timeout_ms for CPU 1 to come up; false without one. */
bool smp_wait_up(uint32_t timeout_ms);
/* Run fn(arg) on CPU 1; false if there is no CPU 1 or it is still busy. */
bool smp_start(void (*fn)(void *), void *arg);
/* True once the last smp_start() work returned. */
bool smp_done(void);

/* ---- results area (api/warden/results.h) ------------------------------ */

/* The results area of inmate_comm(). */
static inline volatile struct warden_results *inmate_results(void)
{
	return warden_results_of(inmate_comm());
}

/* ---- arguments ("n=10 period=5") -------------------------------------- */

/* Value of `key` as a number (decimal or 0x hex), or `def` if the key is
 * missing or its value is not a number. */
uint64_t args_get_u64(const char *key, uint64_t def);

/* ---- freestanding string functions (gcc may emit calls to these) ------ */

void *memset(void *s, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);

#endif /* WARDEN_INMATE_H */
