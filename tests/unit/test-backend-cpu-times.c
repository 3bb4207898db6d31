/* SPDX-License-Identifier: MIT */
/*
 * backend_cell_cpu_times() against a real process: a forked child whose
 * threads the test starts and ends, behind a fake cell whose status names
 * it. The figures are the kernel's, so the test waits for conditions
 * (a thread spun, a thread went) instead of timing anything.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hypervisor/backend-internal.h"

typedef struct FakeCell {
	BackendCell base;
	pid_t pid;
} FakeCell;

static int fake_status(BackendCell *c, BackendCellStatus *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->state = BACKEND_CELL_RUNNING;
	ret->pid = ((FakeCell *)c)->pid;
	return 0;
}

static const char *fake_name(const BackendCell *c)
{
	(void)c;
	return "fake";
}

static void fake_free(BackendCell *c)
{
	free(c);
}

static const BackendCellOps fake_ops = { .free = fake_free, .name = fake_name, .status = fake_status };

/* ---- the child: threads that spin until told to stop ---------------- */

static atomic_bool stop_spinning;

static void *spin(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_spinning))
		;
	return NULL;
}

/* Mostly running, with a short nap every millisecond: R at nearly every
 * read, and asleep by choice between any two of them. */
static void *nap(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_spinning)) {
		struct timespec t0, t;
		nanosleep(&(struct timespec){ .tv_nsec = 100000 }, NULL);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		do
			clock_gettime(CLOCK_MONOTONIC, &t);
		while ((t.tv_sec - t0.tv_sec) * 1000000000L + t.tv_nsec - t0.tv_nsec < 1000000);
	}
	return NULL;
}

/* Commands on in: 's' one more spinner, 'n' one more napper, 'q' every
 * thread ends, EOF exit.
 * Each is answered on out once done. */
static void child_main(int in, int out)
{
	pthread_t t[8];
	unsigned n = 0;
	char cmd;

	while (read(in, &cmd, 1) == 1) {
		if ((cmd == 's' || cmd == 'n') && n < 8) {
			atomic_store(&stop_spinning, false);
			if (pthread_create(&t[n], NULL, cmd == 's' ? spin : nap, NULL) == 0)
				n++;
		} else if (cmd == 'q') {
			atomic_store(&stop_spinning, true);
			while (n)
				pthread_join(t[--n], NULL);
		}
		if (write(out, &cmd, 1) != 1)
			break;
	}
	_exit(0);
}

typedef struct Child {
	pid_t pid;
	int to, from;
} Child;

static Child child_start(void)
{
	int a[2], b[2];
	Child c;

	assert_int_equal(pipe(a), 0);
	assert_int_equal(pipe(b), 0);
	c.pid = fork();
	assert_true(c.pid >= 0);
	if (c.pid == 0) {
		close(a[1]);
		close(b[0]);
		child_main(a[0], b[1]);
	}
	close(a[0]);
	close(b[1]);
	c.to = a[1];
	c.from = b[0];
	return c;
}

static void child_say(const Child *c, char cmd)
{
	char ack;
	assert_int_equal(write(c->to, &cmd, 1), 1);
	assert_int_equal(read(c->from, &ack, 1), 1);
	assert_int_equal(ack, cmd);
}

static void child_end(Child *c)
{
	int status;
	close(c->to);
	close(c->from);
	assert_int_equal(waitpid(c->pid, &status, 0), c->pid);
}

static unsigned open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void nap_ms(unsigned ms)
{
	nanosleep(&(struct timespec){ .tv_nsec = (long)ms * 1000000 }, NULL);
}

/* Look until the runnable count is want (a thread that was told to end
 * takes a moment to go); 10 s at most, then the last figure stands. Only
 * spinners and threads blocked for good here: every runnable thread is
 * waiting, none slept by choice. */
static unsigned runnable_becomes(BackendCell *c, unsigned want, uint64_t *ret_run)
{
	unsigned runnable = ~0u, waiting = ~0u;

	for (int i = 0; i < 1000; i++) {
		assert_int_equal(backend_cell_cpu_times(c, ret_run, &runnable, &waiting), 0);
		if (runnable == want)
			break;
		nap_ms(10);
	}
	assert_int_equal(waiting, runnable);
	return runnable;
}

static void follows_the_threads_as_they_come_and_go(void **state)
{
	(void)state;
	unsigned fds = open_fds(), runnable, waiting;
	uint64_t run0, run;
	Child ch = child_start();
	FakeCell *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->base.ops = &fake_ops;
	f->pid = ch.pid;

	/* one thread, blocked in read(): none runnable */
	assert_int_equal(runnable_becomes(&f->base, 0, &run0), 0);

	/* a spinner: runnable, and the process's CPU time grows */
	child_say(&ch, 's');
	assert_int_equal(runnable_becomes(&f->base, 1, &run), 1);
	for (int i = 0; i < 1000 && run < run0 + 5000000; i++) {
		nap_ms(10);
		assert_int_equal(backend_cell_cpu_times(&f->base, &run, &runnable, &waiting), 0);
	}
	assert_true(run >= run0 + 5000000);

	/* a second one is found without being asked for */
	child_say(&ch, 's');
	assert_int_equal(runnable_becomes(&f->base, 2, &run), 2);

	/* both end: their files go stale and the set is read again; the
	 * time they ran stays with the process */
	child_say(&ch, 'q');
	assert_int_equal(runnable_becomes(&f->base, 0, &run0), 0);
	assert_true(run0 >= run);

	/* the process goes */
	child_end(&ch);
	assert_int_equal(backend_cell_cpu_times(&f->base, &run, &runnable, &waiting), -ENOENT);

	backend_cell_free(&f->base);
	assert_int_equal(open_fds(), fds);
}

/* A thread that is R at two reads but slept by choice between them is
 * not waiting for a CPU: a stalled vCPU that wakes each tick. */
static void a_thread_that_slept_since_the_last_read_is_not_waiting(void **state)
{
	(void)state;
	unsigned runnable, waiting, was_runnable = 0, pairs = 0;
	uint64_t run;
	Child ch = child_start();
	FakeCell *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->base.ops = &fake_ops;
	f->pid = ch.pid;
	child_say(&ch, 'n');
	for (int i = 0; i < 1000 && pairs < 10; i++) {
		nap_ms(5);
		assert_int_equal(backend_cell_cpu_times(&f->base, &run, &runnable, &waiting), 0);
		assert_true(waiting <= runnable);
		if (runnable && was_runnable) {
			assert_int_equal(waiting, 0);
			pairs++;
		}
		was_runnable = runnable;
	}
	assert_int_equal(pairs, 10);
	/* a spinner beside it is waiting whenever it is runnable */
	child_say(&ch, 's');
	for (int i = 0; i < 1000 && pairs < 20; i++) {
		nap_ms(5);
		assert_int_equal(backend_cell_cpu_times(&f->base, &run, &runnable, &waiting), 0);
		if (runnable == 2 && was_runnable == 2) {
			assert_int_equal(waiting, 1);
			pairs++;
		}
		was_runnable = runnable;
	}
	assert_int_equal(pairs, 20);
	child_say(&ch, 'q');
	child_end(&ch);
	backend_cell_free(&f->base);
}

static void no_process_is_enoent(void **state)
{
	(void)state;
	uint64_t run = 7;
	unsigned runnable = 7, waiting = 7;
	FakeCell *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->base.ops = &fake_ops;
	assert_int_equal(backend_cell_cpu_times(&f->base, &run, &runnable, &waiting), -ENOENT);
	assert_int_equal(run, 7);
	assert_int_equal(runnable, 7);
	backend_cell_free(&f->base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(follows_the_threads_as_they_come_and_go),
		cmocka_unit_test(a_thread_that_slept_since_the_last_read_is_not_waiting),
		cmocka_unit_test(no_process_is_enoent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
