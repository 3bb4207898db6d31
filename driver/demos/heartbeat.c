/* SPDX-License-Identifier: MIT */
/*
 * heartbeat: the smallest well-behaved inmate. Beats every period_ms (from
 * the cell spec, 10 ms if none), answers PING and SHUTDOWN on every beat,
 * and otherwise sleeps so that it costs no host CPU.
 */
#include "inmate.h"

int main(void)
{
	uint32_t period_ms = hb_period_ms(10);
	uint64_t period = ns_to_tsc((uint64_t)period_ms * 1000000u), next;
	struct mbox_cmd m;

	/* Running first, talking after: on warden-kvm every console byte is
	 * an exit, and boot time is measured to the first RUNNING beat. */
	hb_init(period_ms, 0);
	hb_set_state(WARDEN_INMATE_RUNNING);
	hb_beat();
	printk("heartbeat: up\n");
	printk("heartbeat: period %u ms, comm region %s, tsc %lu kHz\n",
	       period_ms, inmate_comm_shared() ? "shared" : "private",
	       tsc_khz());

	next = tsc_read();
	for (;;) {
		mbox_serve(&m); /* no INJECT: not advertised */

		/* Absolute deadlines, so the work above does not stretch
		 * the period; after a long stop, skip rather than burst. */
		next += period;
		if ((int64_t)(tsc_read() - next) > (int64_t)period)
			next = tsc_read() + period;
		sleep_until_tsc(next);
		hb_beat();
	}
}
