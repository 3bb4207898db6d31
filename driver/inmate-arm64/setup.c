/* SPDX-License-Identifier: MIT */
/*
 * The C side of boot: console, time, the GIC, then main().
 */
#include "internal.h"

struct inmate_env inmate_env;

void inmate_start(void)
{
	int r;

	inmate_env.comm = (volatile struct warden_comm *)WARDEN_JH_COMM_BASE;
	time_init();
	console_init();
	/* Without a redistributor the inmate still beats, but its sleeps
	 * spin: say so, since that costs a host CPU. */
	inmate_env.gic_ok = gic_init() == 0;
	if (!inmate_env.gic_ok)
		printk("inmate: no GICv3 redistributor for this CPU, sleeps spin\n");

	r = main();
	if (r != 0) {
		char reason[64];

		snprintk(reason, sizeof(reason), "main returned %d", r);
		hb_halt(reason);
	}
	hb_halt("main returned");
}
