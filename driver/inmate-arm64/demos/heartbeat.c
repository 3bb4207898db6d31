/* SPDX-License-Identifier: MIT */
/*
 * heartbeat-arm64: the smallest well-behaved arm64 inmate. Beats every
 * 10 ms, answers PING and SHUTDOWN on every beat, and otherwise sleeps in
 * WFI so that it costs no host CPU.
 */
#include "inmate.h"

#define PERIOD_MS 10u

int main(void)
{
	uint64_t period = ns_to_cnt((uint64_t)PERIOD_MS * 1000000u), next;
	struct mbox_cmd m;

	/* Running first, talking after: boot time is measured to the first
	 * RUNNING beat, and the UART is slow. */
	hb_init(PERIOD_MS, 0);
	hb_set_state(WARDEN_INMATE_RUNNING);
	hb_beat();
	printk("heartbeat-arm64: up, period %u ms\n", PERIOD_MS);
	printk("heartbeat-arm64: comm region at %p, counter %lu Hz\n",
	       (void *)WARDEN_JH_COMM_BASE, cnt_freq());

	next = cnt_read();
	for (;;) {
		mbox_serve(&m); /* no INJECT: not advertised */

		/* Absolute deadlines, so the work above does not stretch
		 * the period; after a long stop, skip rather than burst. */
		next += period;
		if ((int64_t)(cnt_read() - next) > (int64_t)period)
			next = cnt_read() + period;
		sleep_until_cnt(next);
		hb_beat();
	}
}
