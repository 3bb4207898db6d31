/* SPDX-License-Identifier: MIT */
/*
 * Time from the generic timer: the virtual counter for reading it, the
 * virtual timer for sleeping. The interrupt stays masked in PSTATE; it
 * only has to end a WFI, and is then acknowledged at the GIC.
 */
#include "internal.h"

#define CNTV_CTL_ENABLE (1u << 0)

#define NSEC_PER_SEC 1000000000ull

void time_init(void)
{
	uint64_t freq;

	__asm__ volatile("mrs %0, cntfrq_el0" : "=r"(freq));
	inmate_env.freq = freq ? freq : INMATE_DEFAULT_CNT_HZ;
	inmate_env.boot_cnt = cnt_read();
	timer_stop();
}

uint64_t cnt_freq(void)
{
	return inmate_env.freq;
}

/* Split at whole seconds so that neither product can overflow 64 bits
 * (no 128-bit arithmetic: there is no libgcc here). */
uint64_t cnt_to_ns(uint64_t ticks)
{
	uint64_t f = inmate_env.freq;

	return ticks / f * NSEC_PER_SEC + ticks % f * NSEC_PER_SEC / f;
}

uint64_t ns_to_cnt(uint64_t ns)
{
	uint64_t f = inmate_env.freq;

	return ns / NSEC_PER_SEC * f + ns % NSEC_PER_SEC * f / NSEC_PER_SEC;
}

uint64_t uptime_ns(void)
{
	return cnt_to_ns(cnt_read() - inmate_env.boot_cnt);
}

void timer_stop(void)
{
	__asm__ volatile("msr cntv_ctl_el0, xzr; isb" : : : "memory");
}

static bool before(uint64_t deadline)
{
	return (int64_t)(cnt_read() - deadline) < 0;
}

void sleep_until_cnt(uint64_t deadline)
{
	if (!inmate_env.gic_ok) {
		while (before(deadline))
			cpu_relax();
		return;
	}

	__asm__ volatile("msr cntv_cval_el0, %0; msr cntv_ctl_el0, %1; isb"
			 :
			 : "r"(deadline), "r"((uint64_t)CNTV_CTL_ENABLE)
			 : "memory");
	while (before(deadline)) {
		/* A pending interrupt ends WFI even with PSTATE.I set. */
		__asm__ volatile("wfi" : : : "memory");
		/* Woken early: by something else, which has to be taken
		 * off the GIC or the next WFI ends at once. */
		if (before(deadline))
			gic_drain();
	}
	/* The timer interrupt is level-triggered: drop the line before
	 * ending it, so it does not come straight back. */
	timer_stop();
	gic_drain();
}
