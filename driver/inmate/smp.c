/* SPDX-License-Identifier: MIT */
/*
 * A second CPU for inmates that compute in parallel (nqueens threads=2).
 *
 * On warden-kvm every vCPU enters the image; start.S sends CPU 1 to ring 3
 * on its own stacks and TSS and calls inmate_secondary() here, which says
 * it is up and then waits for work in paravirtual sleeps (no host CPU
 * spent while idle). The boot CPU hands it one function at a time.
 *
 * The shared state lives in .data, not .bss: the boot CPU clears .bss when
 * it reaches ring 3, which may be after CPU 1 said it is up.
 *
 * Only images that say INMATE_SMP() use CPU 1; in the others it halts at
 * once, as every other vCPU does, so that the cell still halts when its
 * boot CPU does. CPU 1 halts too once the inmate writes PANICKED or HALTED.
 */
#include "inmate.h"

#include "internal.h"

#define SMP_IDLE_SLEEP_US 200u

static struct {
	uint32_t up; /* CPU 1 reached ring 3 */
	uint32_t gen; /* advanced by the boot CPU per piece of work */
	uint32_t done; /* the gen CPU 1 finished */
	void (*fn)(void *);
	void *arg;
} smp __attribute__((section(".data"))) = { 0, 0, 0, 0, 0 };

/* Defined (to 1) by INMATE_SMP() in an image that uses CPU 1. */
extern const int inmate_smp_wanted __attribute__((weak));

void inmate_secondary(const struct warden_bootinfo *bi) __noreturn;

static bool inmate_ended(void)
{
	volatile struct warden_comm *c = inmate_comm();
	uint32_t st;

	if (!c)
		return false;
	st = c->state;
	return st == WARDEN_INMATE_PANICKED || st == WARDEN_INMATE_HALTED;
}

void inmate_secondary(const struct warden_bootinfo *bi)
{
	uint32_t seen = 0;

	(void)bi;
	if (!&inmate_smp_wanted || !inmate_smp_wanted)
		cpu_hlt_forever();
	__atomic_store_n(&smp.up, 1, __ATOMIC_RELEASE);
	for (;;) {
		uint32_t g = __atomic_load_n(&smp.gen, __ATOMIC_ACQUIRE);

		if (g == seen) {
			if (inmate_ended())
				outl(WARDEN_PORT_HALT, 0);
			outl(WARDEN_PORT_SLEEP, SMP_IDLE_SLEEP_US);
			continue;
		}
		seen = g;
		smp.fn(smp.arg);
		__atomic_store_n(&smp.done, g, __ATOMIC_RELEASE);
	}
}

unsigned int smp_cpus(void)
{
	const struct warden_bootinfo *bi = inmate_bootinfo();

	if (!bi || bi->n_cpus < 2)
		return 1;
	return __atomic_load_n(&smp.up, __ATOMIC_ACQUIRE) ? 2 : 1;
}

bool smp_wait_up(uint32_t timeout_ms)
{
	const struct warden_bootinfo *bi = inmate_bootinfo();
	uint64_t end = tsc_read() + ns_to_tsc((uint64_t)timeout_ms * 1000000u);

	if (!bi || bi->n_cpus < 2)
		return false;
	while (!__atomic_load_n(&smp.up, __ATOMIC_ACQUIRE)) {
		if ((int64_t)(tsc_read() - end) >= 0)
			return false;
		sleep_us(1000);
	}
	return true;
}

bool smp_start(void (*fn)(void *), void *arg)
{
	if (smp_cpus() < 2 || smp.done != smp.gen)
		return false;
	smp.fn = fn;
	smp.arg = arg;
	__atomic_store_n(&smp.gen, smp.gen + 1, __ATOMIC_RELEASE);
	return true;
}

bool smp_done(void)
{
	return __atomic_load_n(&smp.done, __ATOMIC_ACQUIRE) == smp.gen;
}
