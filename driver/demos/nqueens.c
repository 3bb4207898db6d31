/* SPDX-License-Identifier: MIT */
/*
 * nqueens: a compute inmate. Counts every placement of N non-attacking
 * queens on an N x N board by backtracking (args "n=10", the default),
 * reports the count and the time it took on the console and in
 * result[0] (solutions) and result[1] (elapsed ns), then idles on its
 * heartbeat. It keeps beating (and serving the mailbox) while it computes.
 */
#include "inmate.h"

#define N_MAX 20u
/* Above this depth a subtree is small enough not to delay a beat. */
#define BEAT_DEPTH 3

/* One queen per row; `cols`, `left` and `right` are the columns and the
 * two diagonals already attacked in the current row. */
static uint64_t count(uint32_t all, uint32_t cols, uint32_t left,
		      uint32_t right, unsigned int depth)
{
	uint32_t free = all & ~(cols | left | right);
	uint64_t n = 0;

	if (cols == all)
		return 1;
	if (depth < BEAT_DEPTH && hb_beat_due()) {
		struct mbox_cmd m;

		mbox_serve(&m);
	}
	while (free) {
		uint32_t bit = free & -free;

		free &= free - 1;
		n += count(all, cols | bit, ((left | bit) << 1) & all,
			   (right | bit) >> 1, depth + 1);
	}
	return n;
}

int main(void)
{
	uint32_t period_ms = hb_period_ms(10);
	uint64_t n = args_get_u64("n", 10), t0, ns, solutions;
	struct mbox_cmd m;

	hb_init(period_ms, 0);
	printk("nqueens: up\n");
	if (n < 1 || n > N_MAX) {
		printk("nqueens: n=%lu out of range 1..%u, using 10\n", n, N_MAX);
		n = 10;
	}
	hb_set_state(WARDEN_INMATE_RUNNING);
	hb_beat();

	t0 = tsc_read();
	solutions = count((1u << n) - 1, 0, 0, 0, 0);
	ns = tsc_to_ns(tsc_read() - t0);

	hb_set_result(0, solutions);
	hb_set_result(1, ns);
	hb_beat();
	printk("nqueens: n=%lu solutions=%lu elapsed %lu ns\n", n, solutions, ns);

	/* Done: stay a healthy, idle cell until told to shut down. */
	for (;;) {
		sleep_us(period_ms * 1000u);
		hb_beat();
		mbox_serve(&m);
	}
}
