/* SPDX-License-Identifier: MIT */
/*
 * Exceptions, and the two ways a CPU stops: for good on purpose, or by
 * touching what the cell does not own.
 */
#include "internal.h"

#define ESR_EC_SHIFT 26
#define ESR_EC_MASK 0x3f

static const char *const entry_kinds[4] = {
	"synchronous exception", "IRQ", "FIQ", "SError",
};

static bool in_trap;

void inmate_trap(uint64_t entry, uint64_t esr, uint64_t elr, uint64_t far)
{
	uint32_t ec = (uint32_t)(esr >> ESR_EC_SHIFT) & ESR_EC_MASK;
	char reason[128];

	/* A fault while reporting a fault: the comm region or the console is
	 * what broke. Stop without touching either again. */
	if (in_trap)
		cpu_halt_forever();
	in_trap = true;

	snprintk(reason, sizeof(reason),
		 "%s (EC 0x%x, ESR 0x%lx) at pc 0x%lx, FAR 0x%lx",
		 entry_kinds[entry & 3], ec, esr, elr, far);
	/* The exception class is the machine-readable part; the vector
	 * entry, an asynchronous exception or an interrupt has none. */
	hb_panic(reason, (entry & 3) == 0 ? ec : 0x100 | (uint32_t)entry);
}

void cpu_halt_forever(void)
{
	cpu_irq_disable();
	timer_stop();
	gic_quiet();
	/* Let the last stores to the comm region and the UART land before
	 * the CPU goes quiet. */
	__asm__ volatile("dsb sy" : : : "memory");
	for (;;)
		__asm__ volatile("wfi" : : : "memory");
}

void cpu_crash(void)
{
	(void)*(const volatile uint64_t *)INMATE_UNMAPPED_ADDR;
	/* Only where the read came back with data instead of an abort. */
	hb_panic("read of an unmapped address did not fault", 0);
}
