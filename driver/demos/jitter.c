/* SPDX-License-Identifier: MIT */
/*
 * jitter: how late does a periodic wakeup come? Sleeps to an absolute TSC
 * deadline every period_us (args "period_us=1000", the default) and
 * measures how far past the deadline it woke. Cumulative min, avg and max
 * lateness in ns go to result[0..2], the number of samples to result[3]
 * and the number of periods missed outright to result[4]; the console
 * gets a line per second for that second.
 *
 * The results area (api/warden/results.h) gets every sample, as
 * cyclictest -h does: histogram "latency" in 1 us buckets (as many as the
 * area holds, WARDEN_RESULTS_BUCKETS, or args "buckets=N" fewer) with
 * min/avg/max and the overflow beyond, and values period_us and missed.
 */
#include "inmate.h"

#define PERIOD_US_MIN 10u
#define PERIOD_US_MAX 1000000u

struct stats {
	uint64_t n, min, max, sum;
};

static void stats_add(struct stats *s, uint64_t v)
{
	if (!s->n || v < s->min)
		s->min = v;
	if (v > s->max)
		s->max = v;
	s->sum += v;
	s->n++;
}

static uint64_t stats_avg(const struct stats *s)
{
	return s->n ? s->sum / s->n : 0;
}

int main(void)
{
	uint32_t period_ms = hb_period_ms(10);
	uint64_t period_us = args_get_u64("period_us", 1000);
	uint64_t period, next, second, report, missed = 0;
	struct stats total = { 0 }, window = { 0 };
	struct mbox_cmd m;

	hb_init(period_ms, 0);
	printk("jitter: up\n");
	if (period_us < PERIOD_US_MIN || period_us > PERIOD_US_MAX) {
		printk("jitter: period_us=%lu out of range %u..%u, using 1000\n",
		       period_us, PERIOD_US_MIN, PERIOD_US_MAX);
		period_us = 1000;
	}
	warden_results_init(inmate_results(), "latency", 1000,
			    (uint32_t)args_get_u64("buckets", WARDEN_RESULTS_BUCKETS));
	warden_results_put(inmate_results(), "period_us", WARDEN_RESULT_GAUGE, period_us);
	period = ns_to_tsc(period_us * 1000u);
	second = ns_to_tsc(1000000000u);
	printk("jitter: period %lu us, heartbeat %u ms\n", period_us, period_ms);

	hb_set_state(WARDEN_INMATE_RUNNING);
	hb_beat();
	next = tsc_read() + period;
	report = next + second;
	for (;;) {
		uint64_t now, late;

		sleep_until_tsc(next);
		now = tsc_read();
		late = tsc_to_ns(now - next);
		stats_add(&total, late);
		stats_add(&window, late);

		hb_set_result(0, total.min);
		hb_set_result(1, stats_avg(&total));
		hb_set_result(2, total.max);
		hb_set_result(3, total.n);
		hb_set_result(4, missed);
		warden_results_begin(inmate_results());
		warden_results_add(inmate_results(), late);
		warden_results_set(inmate_results(), "missed", WARDEN_RESULT_COUNTER, missed);
		warden_results_end(inmate_results());
		if (hb_beat_due())
			mbox_serve(&m);

		/* A wakeup later than a whole period lost the periods in
		 * between: count them instead of firing them in a burst. */
		next += period;
		while ((int64_t)(now - next) >= 0) {
			next += period;
			missed++;
		}

		if ((int64_t)(now - report) >= 0) {
			printk("jitter: n=%lu late min %lu avg %lu max %lu ns"
			       " (total n=%lu max %lu ns, missed %lu)\n",
			       window.n, window.min, stats_avg(&window),
			       window.max, total.n, total.max, missed);
			window = (struct stats){ 0 };
			report += second;
		}
	}
}
