/* SPDX-License-Identifier: MIT */
/*
 * nqueens: the thesis's compute benchmark. Counts every placement of N
 * non-attacking queens on an N x N board by backtracking, `iterations`
 * times, on 1 or 2 threads (args "n=12 threads=1 iterations=1"; the
 * default n is 10). The first row's columns are dealt out to the threads
 * in turn.
 *
 * Reported through the results area (api/warden/results.h): n, threads
 * (the ones that ran), iterations, solutions, iter_avg_ns, iter_min_ns,
 * iter_max_ns and done (iterations finished); each iteration gets a
 * console line "nqueens: iter I ns T solutions S". Then it idles.
 *
 * One source, two builds:
 *   - the bare-metal inmate (driver/inmate): threads are the boot CPU and
 *     CPU 1 (smp.c); it beats and serves the mailbox while it computes;
 *   - with -DNQUEENS_HOST, a Linux program (pthreads): natively on the
 *     host, in the Linux cell (it then reports through /dev/warden, see
 *     driver/linux/README.md) or in a container cell. Arguments are the
 *     same key=value words on the command line; results also go to
 *     stdout as "key=value" lines;
 *   - with -DNQUEENS_CONTAINER too, the container cell's program
 *     (driver/container, /bin/nqueens in nqueens-rootfs.tar): it registers
 *     through libwarden-app, a thread of its own beats and serves the
 *     mailbox, the results go to the comm region's results area, and when
 *     done it stays a healthy idle cell, as the bare-metal build does.
 */
#ifdef NQUEENS_HOST
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef NQUEENS_CONTAINER
#include <unistd.h>

#include "warden-app.h"
#include "warden/results.h"
#endif
#else
#include "inmate.h"
#endif

#define N_MAX 20u
#define THREADS_MAX 2u
#define ITERATIONS_MAX 100000u
/* Above this depth a subtree is small enough not to delay a beat. */
#define BEAT_DEPTH 3

struct job {
	uint32_t n;
	unsigned int thread, threads;
	bool beats; /* this thread keeps the heartbeat */
	uint64_t solutions;
};

#ifdef NQUEENS_HOST
/* ---- host build: what the inmate kit gives the bare-metal build ------- */

static int host_argc;
static char **host_argv;

static uint64_t args_get_u64(const char *key, uint64_t def)
{
	size_t kl = strlen(key);

	for (int i = 1; i < host_argc; i++)
		if (strncmp(host_argv[i], key, kl) == 0 && host_argv[i][kl] == '=') {
			char *end;
			unsigned long long v = strtoull(host_argv[i] + kl + 1, &end, 0);
			if (*end == '\0' && end != host_argv[i] + kl + 1)
				return v;
		}
	return def;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define printk printf
static void beat_maybe(void)
{
}

#ifdef NQUEENS_CONTAINER
/* The comm region through libwarden-app: the beat thread owns the
 * heartbeat and the mailbox, main() the results area (one writer each). */
static struct warden_app app;

static void *beat_thread(void *arg)
{
	(void)arg;
	for (;;) {
		uint32_t fault;

		if (warden_app_beat(&app, &fault) == WARDEN_APP_SHUTDOWN) {
			warden_app_halt(&app, "shutdown");
			fflush(stdout);
			_exit(0);
		}
		usleep(app.period_ms * 1000u);
	}
	return NULL;
}

static void report(const char *name, const char *kind, uint64_t v)
{
	enum warden_result_kind k = WARDEN_RESULT_GAUGE;

	if (strcmp(kind, "counter") == 0)
		k = WARDEN_RESULT_COUNTER;
	else if (strcmp(kind, "ns") == 0)
		k = WARDEN_RESULT_NS;
	printf("%s=%" PRIu64 "\n", name, v);
	fflush(stdout);
	warden_results_put(warden_results_of(app.comm), name, k, v);
}
#else
/* /dev/warden (warden.ko) takes "result NAME KIND VALUE" lines. */
static FILE *warden_dev;

static void report(const char *name, const char *kind, uint64_t v)
{
	printf("%s=%" PRIu64 "\n", name, v);
	if (warden_dev) {
		fprintf(warden_dev, "result %s %s %" PRIu64 "\n", name, kind, v);
		fflush(warden_dev);
	}
}
#endif
#define REPORT(name, kind, v) report(name, #kind, v)
#else
static uint64_t mono_ns(void)
{
	return tsc_to_ns(tsc_read());
}

static void beat_maybe(void)
{
	if (hb_beat_due()) {
		struct mbox_cmd m;

		mbox_serve(&m);
	}
}

INMATE_SMP();

static inline void report_kind(const char *name, enum warden_result_kind kind, uint64_t v)
{
	warden_results_put(inmate_results(), name, kind, v);
}
#define KIND_counter WARDEN_RESULT_COUNTER
#define KIND_gauge WARDEN_RESULT_GAUGE
#define KIND_ns WARDEN_RESULT_NS
#define REPORT(name, kind, v) report_kind(name, KIND_##kind, v)
#endif

/* One queen per row; `cols`, `left` and `right` are the columns and the
 * two diagonals already attacked in the current row. */
static uint64_t count(uint32_t all, uint32_t cols, uint32_t left, uint32_t right, unsigned int depth, bool beats)
{
	uint32_t free = all & ~(cols | left | right);
	uint64_t n = 0;

	if (cols == all)
		return 1;
	if (beats && depth < BEAT_DEPTH)
		beat_maybe();
	while (free) {
		uint32_t bit = free & -free;

		free &= free - 1;
		n += count(all, cols | bit, ((left | bit) << 1) & all, (right | bit) >> 1, depth + 1, beats);
	}
	return n;
}

/* The first row's columns thread, thread + threads, ... */
static void run_job(void *arg)
{
	struct job *j = arg;
	uint32_t all = (1u << j->n) - 1;

	j->solutions = 0;
	for (uint32_t c = j->thread; c < j->n; c += j->threads) {
		uint32_t bit = 1u << c;

		j->solutions += count(all, bit, (bit << 1) & all, bit >> 1, 1, j->beats);
	}
}

#ifdef NQUEENS_HOST
static void *host_thread(void *arg)
{
	run_job(arg);
	return NULL;
}

/* Threads 1.. on pthreads, thread 0 on the caller. */
static unsigned int run_all(struct job *jobs, unsigned int threads)
{
	pthread_t t[THREADS_MAX];
	unsigned int started = 1;

	for (unsigned int i = 1; i < threads; i++)
		if (pthread_create(&t[i], NULL, host_thread, &jobs[i]) == 0)
			started++;
		else
			break;
	if (started < threads) {
		/* fewer threads than asked: deal the columns again */
		for (unsigned int i = 1; i < started; i++)
			pthread_join(t[i], NULL);
		jobs[0].threads = 1;
		run_job(&jobs[0]);
		return 1;
	}
	run_job(&jobs[0]);
	for (unsigned int i = 1; i < threads; i++)
		pthread_join(t[i], NULL);
	return threads;
}
#else
/* Thread 1 on CPU 1, thread 0 on the boot CPU, which beats meanwhile. */
static unsigned int run_all(struct job *jobs, unsigned int threads)
{
	if (threads > 1 && !smp_start(run_job, &jobs[1])) {
		jobs[0].threads = 1;
		threads = 1;
	}
	run_job(&jobs[0]);
	while (threads > 1 && !smp_done()) {
		beat_maybe();
		sleep_us(100);
	}
	return threads;
}
#endif

#ifdef NQUEENS_HOST
int main(int argc, char **argv)
#else
int main(void)
#endif
{
	uint64_t n, threads, iterations, t0, ns, sum = 0, min = 0, max = 0, solutions = 0;
	unsigned int ran = 1;
	struct job jobs[THREADS_MAX];

#ifdef NQUEENS_HOST
	host_argc = argc;
	host_argv = argv;
#ifdef NQUEENS_CONTAINER
	pthread_t beater;
	int r = warden_app_register(&app, NULL, 0);

	if (r < 0) {
		fprintf(stderr, "nqueens: cannot register with warden: %s\n", strerror(-r));
		return 1;
	}
	warden_results_init(warden_results_of(app.comm), "", 1, 0);
	if (pthread_create(&beater, NULL, beat_thread, NULL) != 0) {
		warden_app_panic(&app, "nqueens: no beat thread", 0);
		return 1;
	}
	printf("nqueens: up\n");
#else
	if (!getenv("NQUEENS_NO_DEV"))
		warden_dev = fopen("/dev/warden", "w");
#endif
#else
	uint32_t period_ms = hb_period_ms(10);
	struct mbox_cmd m;

	hb_init(period_ms, 0);
	warden_results_init(inmate_results(), "", 1, 0);
	printk("nqueens: up\n");
#endif
	n = args_get_u64("n", 10);
	threads = args_get_u64("threads", 1);
	iterations = args_get_u64("iterations", 1);
	if (n < 1 || n > N_MAX) {
		printk("nqueens: n=%lu out of range 1..%u, using 10\n", (unsigned long)n, N_MAX);
		n = 10;
	}
	if (threads < 1 || threads > THREADS_MAX) {
		printk("nqueens: threads=%lu out of range 1..%u, using 1\n", (unsigned long)threads, THREADS_MAX);
		threads = 1;
	}
	if (iterations < 1 || iterations > ITERATIONS_MAX) {
		printk("nqueens: iterations=%lu out of range 1..%u, using 1\n", (unsigned long)iterations,
		       ITERATIONS_MAX);
		iterations = 1;
	}
#ifndef NQUEENS_HOST
	if (threads > 1 && !smp_wait_up(2000))
		printk("nqueens: no second CPU, running 1 thread\n");
	hb_set_state(WARDEN_INMATE_RUNNING);
	hb_beat();
#endif
	REPORT("n", gauge, n);
	REPORT("iterations", gauge, iterations);

	for (uint64_t it = 0; it < iterations; it++) {
		for (unsigned int i = 0; i < THREADS_MAX; i++)
			jobs[i] = (struct job){ .n = (uint32_t)n, .thread = i, .threads = (unsigned int)threads,
						.beats = i == 0 };
		t0 = mono_ns();
		ran = run_all(jobs, (unsigned int)threads);
		ns = mono_ns() - t0;
		solutions = 0;
		for (unsigned int i = 0; i < ran; i++)
			solutions += jobs[i].solutions;
		sum += ns;
		if (!it || ns < min)
			min = ns;
		if (ns > max)
			max = ns;
		printk("nqueens: iter %lu ns %lu solutions %lu threads %u\n", (unsigned long)it, (unsigned long)ns,
		       (unsigned long)solutions, ran);
		REPORT("threads", gauge, ran);
		REPORT("solutions", gauge, solutions);
		REPORT("iter_avg_ns", ns, sum / (it + 1));
		REPORT("iter_min_ns", ns, min);
		REPORT("iter_max_ns", ns, max);
		REPORT("done", counter, it + 1);
	}
	printk("nqueens: n=%lu solutions=%lu threads %u iterations %lu avg %lu ns\n", (unsigned long)n,
	       (unsigned long)solutions, ran, (unsigned long)iterations, (unsigned long)(sum / iterations));

#ifdef NQUEENS_CONTAINER
	/* Done: stay a healthy, idle cell until told to shut down. */
	fflush(stdout);
	pthread_join(beater, NULL);
	return 0;
#elif defined(NQUEENS_HOST)
	if (warden_dev)
		fclose(warden_dev);
	return 0;
#else
	/* Done: stay a healthy, idle cell until told to shut down. */
	for (;;) {
		sleep_us(period_ms * 1000u);
		hb_beat();
		mbox_serve(&m);
	}
#endif
}
