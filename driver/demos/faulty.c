/* SPDX-License-Identifier: MIT */
/*
 * faulty: a heartbeat inmate that fails on command, to exercise detection
 * and recovery. WARDEN_CMD_INJECT is obeyed only if the cell spec allows it
 * (WARDEN_FLAG_INJECT in the boot info), and then:
 *
 *   hang   interrupts off (see cpu_irq_disable()), spin in ring 3: no
 *          beats, no mailbox, full host CPU
 *   panic  PANICKED with reason "injected panic", code 2, then stop
 *   crash  triple fault: the hypervisor sees the CPU shut down
 *   exit   HALTED with reason "injected exit"
 *   stall  keep state RUNNING and keep sleeping, but never advance seq
 *          again; the mailbox is still served, so only the heartbeat
 *          is broken (SHUTDOWN still works)
 */
#include "inmate.h"

static const char *const fault_names[WARDEN_FAULT_MAX] = {
	[WARDEN_FAULT_NONE] = "none",   [WARDEN_FAULT_HANG] = "hang",
	[WARDEN_FAULT_PANIC] = "panic", [WARDEN_FAULT_CRASH] = "crash",
	[WARDEN_FAULT_EXIT] = "exit",   [WARDEN_FAULT_STALL] = "stall",
};

static bool stalled;

static void inject(uint32_t fault)
{
	printk("faulty: injecting %s\n",
	       fault < WARDEN_FAULT_MAX ? fault_names[fault] : "unknown fault");

	switch (fault) {
	case WARDEN_FAULT_HANG:
		cpu_irq_disable();
		for (;;)
			cpu_relax();
	case WARDEN_FAULT_PANIC:
		hb_panic("injected panic", WARDEN_FAULT_PANIC);
	case WARDEN_FAULT_CRASH:
		cpu_triple_fault();
	case WARDEN_FAULT_EXIT:
		hb_halt("injected exit");
	case WARDEN_FAULT_STALL:
		stalled = true;
		break;
	default:
		break;
	}
}

int main(void)
{
	uint32_t period_ms = hb_period_ms(10);
	uint64_t period = ns_to_tsc((uint64_t)period_ms * 1000000u), next;
	struct mbox_cmd m;

	/* Running first, talking after: on warden-kvm every console byte is
	 * an exit, and boot time is measured to the first RUNNING beat. */
	hb_init(period_ms, WARDEN_FLAG_INJECT);
	hb_set_state(WARDEN_INMATE_RUNNING);
	hb_beat();
	printk("faulty: up\n");
	printk("faulty: period %u ms, fault injection %s\n", period_ms,
	       hb_inject_allowed() ? "allowed" : "not allowed");

	next = tsc_read();
	for (;;) {
		if (mbox_serve(&m)) {
			/* Acknowledge first: the daemon learns the command
			 * arrived even if the fault stops everything. */
			mbox_ack(&m);
			inject(m.arg);
		}

		next += period;
		if ((int64_t)(tsc_read() - next) > (int64_t)period)
			next = tsc_read() + period;
		sleep_until_tsc(next);
		if (!stalled)
			hb_beat();
	}
}
