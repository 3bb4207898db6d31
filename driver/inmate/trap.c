/* SPDX-License-Identifier: MIT */
/*
 * Exceptions (ring 0) and the ring-0 services ring-3 code asks for.
 */
#include "internal.h"

static const char *const exception_names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
	"#DF", "#CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "#15",
	"#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#22", "#23",
	"#24", "#25", "#26", "#27", "#HV", "#VC", "#SX", "#31",
};

static bool in_trap;

void inmate_trap(const struct trap_frame *f)
{
	const char *name = f->vector < 32 ? exception_names[f->vector] : "#??";
	char reason[128];
	uint64_t cr2 = 0;

	/* A fault while reporting a fault: the comm region or the console is
	 * what broke. Stop without touching either again. */
	if (in_trap)
		cpu_hlt_forever();
	in_trap = true;

	if (f->vector == 14)
		__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));

	if (f->vector == 14)
		snprintk(reason, sizeof(reason),
			 "exception %s at rip 0x%lx addr 0x%lx error 0x%lx", name,
			 f->rip, cr2, f->error);
	else
		snprintk(reason, sizeof(reason),
			 "exception %s at rip 0x%lx error 0x%lx", name, f->rip,
			 f->error);
	hb_panic(reason, (uint32_t)f->vector);
}

static bool in_ring0(void)
{
	uint16_t cs;

	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	return (cs & 3) == 0;
}

void cpu_hlt_forever(void)
{
	/* From a trap handler, stop right here: ring 0 cannot go through
	 * the service gate on the nested KVM (its emulator has no int). */
	if (in_ring0())
		for (;;)
			__asm__ volatile("cli; hlt" : : : "memory");
	__asm__ volatile("int %0" : : "i"(INMATE_SVC_VECTOR), "a"(INMATE_SVC_HLT)
			 : "memory");
	__builtin_unreachable();
}

void cpu_triple_fault(void)
{
	__asm__ volatile("int %0"
			 :
			 : "i"(INMATE_SVC_VECTOR), "a"(INMATE_SVC_TRIPLE_FAULT)
			 : "memory");
	__builtin_unreachable();
}
