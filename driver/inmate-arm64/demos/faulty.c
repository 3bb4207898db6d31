/* SPDX-License-Identifier: MIT */
/*
 * faulty-arm64: heartbeat-arm64 that fails on command, to exercise
 * detection and recovery. It advertises WARDEN_FLAG_INJECT (a Jailhouse
 * cell has no boot info to forbid it) and obeys WARDEN_CMD_INJECT:
 *
 *   hang   interrupts masked, spin without WFI: no beats, no mailbox,
 *          a host CPU burnt on purpose
 *   panic  PANICKED with reason "injected panic", code 2, then halt
 *   crash  read an address no region of the cell maps: Jailhouse fails
 *          the CPU and the cell reads "failed"
 *   exit   HALTED with reason "injected exit"
 *   stall  keep state RUNNING and keep sleeping, but never advance seq
 *          again; the mailbox is still served, so only the heartbeat
 *          is broken (SHUTDOWN still works)
 */
#include "inmate.h"

#define PERIOD_MS 10u

static bool stalled;

static const char *fault_name(uint32_t fault)
{
	switch (fault) {
	case WARDEN_FAULT_HANG:
		return "hang";
	case WARDEN_FAULT_PANIC:
		return "panic";
	case WARDEN_FAULT_CRASH:
		return "crash";
	case WARDEN_FAULT_EXIT:
		return "exit";
	case WARDEN_FAULT_STALL:
		return "stall";
	default:
		return "unknown fault";
	}
}

static void inject(uint32_t fault)
{
	printk("faulty-arm64: injecting %s\n", fault_name(fault));

	switch (fault) {
	case WARDEN_FAULT_HANG:
		cpu_irq_disable();
		for (;;)
			cpu_relax();
	case WARDEN_FAULT_PANIC:
		hb_panic("injected panic", WARDEN_FAULT_PANIC);
	case WARDEN_FAULT_CRASH:
		cpu_crash();
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
	uint64_t period = ns_to_cnt((uint64_t)PERIOD_MS * 1000000u), next;
	struct mbox_cmd m;

	hb_init(PERIOD_MS, WARDEN_FLAG_INJECT);
	hb_set_state(WARDEN_INMATE_RUNNING);
	hb_beat();
	printk("faulty-arm64: up, period %u ms, fault injection %s\n",
	       PERIOD_MS, hb_inject_allowed() ? "allowed" : "not allowed");

	next = cnt_read();
	for (;;) {
		if (mbox_serve(&m)) {
			/* Acknowledge first: the daemon learns the command
			 * arrived even if the fault stops everything. */
			mbox_ack(&m);
			inject(m.arg);
		}

		next += period;
		if ((int64_t)(cnt_read() - next) > (int64_t)period)
			next = cnt_read() + period;
		sleep_until_cnt(next);
		if (!stalled)
			hb_beat();
	}
}
