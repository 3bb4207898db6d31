/* SPDX-License-Identifier: MIT */
/*
 * End-to-end test of the kvm backend: real /dev/kvm, the real warden-kvm
 * runner and the real demo inmates (heartbeat, faulty), driven through
 * hypervisor/backend.h exactly as wardend drives it.
 *
 * Paths come from the environment (set by tests/e2e/meson.build):
 *   WARDEN_KVM_RUNNER, WARDEN_DEMO_HEARTBEAT, WARDEN_DEMO_FAULTY.
 * Every wait is a bounded poll() on the cell's event fd or pidfd; timings
 * are printed as TAP comments, never asserted tightly.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hypervisor/backend.h"
#include "backend-test.h"

#define PERIOD_MS 10
#define BEAT_TIMEOUT_MS 5000
#define RAM_SIZE 0x400000ull
#define COMM_ADDR 0x80000000ull
#define IMAGE_ADDR 0x100000ull

static struct {
	bool kvm;
	const char *runner;
	const char *heartbeat;
	const char *faulty;
	char runtime_dir[64];
	Backend *backend;
	unsigned cpu; /* a CPU for single-vCPU cells */
	long n_online;
} T;

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double median_ms(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	return (double)v[n / 2] / 1e6;
}

#define REQUIRE_KVM()                                                      \
	do {                                                               \
		if (!T.kvm) {                                              \
			fprintf(stderr, "SKIP: /dev/kvm not available\n"); \
			skip();                                            \
		}                                                          \
	} while (0)

static bool wait_seq_at_least(BackendCell *c, uint64_t target, int timeout_ms)
{
	uint64_t t0 = now_ns();
	uint64_t deadline = t0 + (uint64_t)timeout_ms * 1000000ull;

	while (seq_of(c) < target) {
		uint64_t now = now_ns();
		if (now >= deadline)
			return false;
		/* Beats ring no doorbell: watch the counter closely for the
		 * first few milliseconds (that is what the timings measure,
		 * and we run on a CPU the cell does not use), then nap. */
		if (now - t0 < 20ull * 1000000ull)
			__builtin_ia32_pause();
		else
			wait_event_or(c, 1);
	}
	return true;
}

static BackendCellState wait_state_not(BackendCell *c, BackendCellState s, int timeout_ms,
				       BackendCellStatus *st)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;

	for (;;) {
		assert_int_equal(backend_cell_status(c, st), 0);
		if (st->state != s || now_ns() >= deadline)
			return st->state;
		wait_event_or(c, 50);
	}
}

static int cell_create(const char *name, const char *image, bool inject,
		       const unsigned *cpus, size_t n_cpus, BackendCell **ret)
{
	const BackendRegion regions[] = {
		{ .phys_start = 0x40000000, .virt_start = 0, .size = RAM_SIZE,
		  .flags = BACKEND_MEM_READ | BACKEND_MEM_WRITE | BACKEND_MEM_EXECUTE |
			   BACKEND_MEM_LOADABLE },
		{ .phys_start = 0x7f000000, .virt_start = COMM_ADDR, .size = 4096,
		  .flags = BACKEND_MEM_READ | BACKEND_MEM_WRITE | BACKEND_MEM_SHARED },
	};
	const BackendImage images[] = { { .path = image, .addr = IMAGE_ADDR } };
	const BackendCellConfig cfg = {
		.name = name,
		.cpus = cpus ? cpus : &T.cpu,
		.n_cpus = cpus ? n_cpus : 1,
		.regions = regions,
		.n_regions = 2,
		.images = images,
		.n_images = 1,
		.entry = IMAGE_ADDR,
		.comm_addr = COMM_ADDR,
		.comm_size = 4096,
		.period_ms = PERIOD_MS,
		.allow_inject = inject,
	};

	return backend_cell_create(T.backend, &cfg, ret);
}

/* Create, load, start and see the first beat; returns the time that took. */
static BackendCell *cell_up(const char *name, const char *image, bool inject,
			    const unsigned *cpus, size_t n_cpus, uint64_t *ret_ns)
{
	BackendCell *c = NULL;
	uint64_t t0 = now_ns();

	assert_int_equal(cell_create(name, image, inject, cpus, n_cpus, &c), 0);
	assert_int_equal(backend_cell_load(c), 0);
	assert_int_equal(backend_cell_start(c), 0);
	assert_true(wait_seq_at_least(c, 1, BEAT_TIMEOUT_MS));
	if (ret_ns)
		*ret_ns = now_ns() - t0;
	return c;
}

static void cell_down(BackendCell *c)
{
	assert_int_equal(backend_cell_destroy(c), 0);
	struct pollfd p = { .fd = backend_cell_pidfd(c), .events = POLLIN };
	assert_int_equal(poll(&p, 1, 5000), 1);
	backend_cell_free(c);
}

static void assert_running(BackendCell *c, BackendCellStatus *st)
{
	assert_int_equal(backend_cell_status(c, st), 0);
	if (st->state != BACKEND_CELL_RUNNING)
		fail_msg("state %s (%s)", backend_cell_state_to_string(st->state), st->reason);
}

/* ---- tests ----------------------------------------------------------- */

static void test_state_table(void **state)
{
	(void)state;
	for (int i = 0; i < _BACKEND_CELL_STATE_MAX; i++) {
		const char *s = backend_cell_state_to_string((BackendCellState)i);
		assert_non_null(s);
		assert_int_equal(backend_cell_state_from_string(s), i);
	}
	assert_null(backend_cell_state_to_string(_BACKEND_CELL_STATE_MAX));
	assert_int_equal(backend_cell_state_from_string("bogus"), _BACKEND_CELL_STATE_INVALID);
	Backend *b = NULL;
	BackendConfig cfg = { .runtime_dir = "/nonexistent", .runner_path = "/nonexistent" };
	/* jailhouse is a kind now: made without touching anything (its
	 * helper is spawned on first use), and it knows no cell. */
	assert_int_equal(backend_new("jailhouse", &cfg, &b), 0);
	assert_string_equal(backend_kind(b), "jailhouse");
	BackendCell *none = NULL;
	assert_int_equal(backend_cell_adopt(b, "nobody", &none), -ENOENT);
	b = backend_free(b);
	assert_int_equal(backend_new("bogus", &cfg, &b), -EOPNOTSUPP);
}

static void test_heartbeat(void **state)
{
	uint64_t t[5];
	BackendCellStatus st;
	char buf[4096];

	(void)state;
	REQUIRE_KVM();
	for (size_t i = 0; i < 5; i++) {
		BackendCell *c = cell_up("hb", T.heartbeat, false, NULL, 0, &t[i]);
		uint64_t s = seq_of(c);
		assert_true(wait_seq_at_least(c, s + 3, BEAT_TIMEOUT_MS));
		volatile struct warden_comm *comm = backend_cell_comm(c);
		assert_true(comm->magic == WARDEN_COMM_MAGIC);
		assert_int_equal(comm->state, WARDEN_INMATE_RUNNING);
		assert_running(c, &st);
		assert_int_equal(st.boots, 1);
		assert_true(st.pid > 0);
		assert_true(st.exits_sleep > 0);
		ssize_t n = backend_cell_console_read(c, buf, sizeof(buf) - 1);
		assert_true(n >= 0);
		if (i == 0) {
			buf[n] = 0;
			printf("# console: %zd bytes\n", n);
		}
		cell_down(c);
	}
	printf("# create -> first beat: median %.2f ms of 5 (includes spawning the runner)\n",
	       median_ms(t, 5));
}

static void test_reset(void **state)
{
	enum { N = 15 };
	uint64_t t[N];
	BackendCellStatus st;

	(void)state;
	REQUIRE_KVM();
	BackendCell *c = cell_up("reset", T.heartbeat, false, NULL, 0, NULL);
	assert_running(c, &st);
	pid_t pid = st.pid;

	for (size_t i = 0; i < N; i++) {
		assert_true(wait_seq_at_least(c, 10, BEAT_TIMEOUT_MS));
		volatile struct warden_comm *comm = backend_cell_comm(c);
		uint64_t old_seq = seq_of(c), old_up = comm->uptime_ns;

		uint64_t t0 = now_ns();
		assert_int_equal(backend_cell_reset(c), 0);
		assert_true(wait_seq_at_least(c, 1, BEAT_TIMEOUT_MS));
		t[i] = now_ns() - t0;

		/* A fresh boot: the counter and the uptime start over. */
		assert_true(seq_of(c) < old_seq);
		assert_true(comm->uptime_ns < old_up);
		assert_running(c, &st);
		assert_int_equal(st.pid, pid);
		assert_int_equal(st.boots, i + 2);
	}
	printf("# reset -> first beat: median %.2f ms of %d (same runner pid %d)\n",
	       median_ms(t, N), N, (int)pid);
	cell_down(c);
}

static void test_destroy_recreate(void **state)
{
	BackendCellStatus st;
	BackendCell *dup = NULL;

	(void)state;
	REQUIRE_KVM();
	BackendCell *c = cell_up("again", T.heartbeat, false, NULL, 0, NULL);
	assert_int_equal(cell_create("again", T.heartbeat, false, NULL, 0, &dup), -EEXIST);

	assert_int_equal(backend_cell_destroy(c), 0);
	assert_int_equal(backend_cell_status(c, &st), 0);
	assert_int_equal(st.state, BACKEND_CELL_GONE);
	assert_int_equal(backend_cell_destroy(c), 0); /* idempotent */
	assert_int_equal(backend_cell_start(c), -ENODEV);
	struct pollfd p = { .fd = backend_cell_pidfd(c), .events = POLLIN };
	assert_int_equal(poll(&p, 1, 5000), 1);
	backend_cell_free(c);

	/* Right away, while nothing is left of the old runner. */
	c = cell_up("again", T.heartbeat, false, NULL, 0, NULL);
	assert_running(c, &st);
	assert_int_equal(st.boots, 1);
	cell_down(c);

	/* Re-create while the old runner may still be tearing its VM down. */
	c = cell_up("again", T.heartbeat, false, NULL, 0, NULL);
	assert_int_equal(backend_cell_destroy(c), 0);
	backend_cell_free(c);
	c = cell_up("again", T.heartbeat, false, NULL, 0, NULL);
	cell_down(c);
}

/* The Cpus_allowed_list of the thread named `comm` in process pid. */
static bool thread_cpus(pid_t pid, const char *comm, char *out, size_t n)
{
	char path[384], line[256];
	struct dirent *de;
	bool found = false;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	assert_non_null(d);
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", (int)pid, de->d_name);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		bool match = fgets(line, sizeof(line), f) && strncmp(line, comm, strlen(comm)) == 0 &&
			     line[strlen(comm)] == '\n';
		fclose(f);
		if (!match)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)pid, de->d_name);
		f = fopen(path, "re");
		assert_non_null(f);
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "Cpus_allowed_list: %63s", out) == 1 && n >= 64)
				found = true;
		fclose(f);
	}
	closedir(d);
	return found;
}

static void test_affinity(void **state)
{
	BackendCellStatus st;
	char got[64], want[16];

	(void)state;
	REQUIRE_KVM();
	BackendCell *c = cell_up("pin", T.heartbeat, false, NULL, 0, NULL);
	assert_running(c, &st);
	assert_true(thread_cpus(st.pid, "vcpu0", got, sizeof(got)));
	snprintf(want, sizeof(want), "%u", T.cpu);
	assert_string_equal(got, want);
	cell_down(c);

	if (T.n_online < 2)
		return;
	/* Two vCPUs, listed in reverse so index and CPU differ. The inmate
	 * library parks secondary CPUs with hlt: the cell keeps running. */
	const unsigned cpus[2] = { 1, 0 };
	c = cell_up("pin2", T.heartbeat, false, cpus, 2, NULL);
	assert_true(wait_seq_at_least(c, seq_of(c) + 3, BEAT_TIMEOUT_MS));
	assert_running(c, &st);
	assert_true(thread_cpus(st.pid, "vcpu0", got, sizeof(got)));
	assert_string_equal(got, "1");
	assert_true(thread_cpus(st.pid, "vcpu1", got, sizeof(got)));
	assert_string_equal(got, "0");
	cell_down(c);
}

static void test_hang_stop(void **state)
{
	BackendCellStatus st;

	(void)state;
	REQUIRE_KVM();
	BackendCell *c = cell_up("hang", T.faulty, true, NULL, 0, NULL);
	assert_true(wait_seq_at_least(c, 3, BEAT_TIMEOUT_MS));
	assert_int_equal(backend_cell_mail(c, WARDEN_CMD_INJECT, WARDEN_FAULT_HANG), 0);
	/* The inmate spins with interrupts off and never exits again. */
	assert_true(wait_seq_stalls(c, 10 * PERIOD_MS, BEAT_TIMEOUT_MS));
	assert_running(c, &st);

	uint64_t t0 = now_ns();
	assert_int_equal(backend_cell_stop(c), 0);
	uint64_t dt = now_ns() - t0;
	printf("# stop of a spinning guest: %.3f ms\n", (double)dt / 1e6);
	assert_true(dt < 1000ull * 1000000ull);
	assert_int_equal(backend_cell_status(c, &st), 0);
	assert_int_equal(st.state, BACKEND_CELL_STOPPED);

	assert_int_equal(backend_cell_reset(c), 0);
	assert_true(wait_seq_at_least(c, 3, BEAT_TIMEOUT_MS));
	assert_running(c, &st);

	/* Hang again and reset without a stop first. */
	assert_int_equal(backend_cell_mail(c, WARDEN_CMD_INJECT, WARDEN_FAULT_HANG), 0);
	assert_true(wait_seq_stalls(c, 10 * PERIOD_MS, BEAT_TIMEOUT_MS));
	assert_int_equal(backend_cell_reset(c), 0);
	assert_true(wait_seq_at_least(c, 3, BEAT_TIMEOUT_MS));
	cell_down(c);
}

static void test_triple_fault(void **state)
{
	BackendCellStatus st;

	(void)state;
	REQUIRE_KVM();
	BackendCell *c = cell_up("crash", T.faulty, true, NULL, 0, NULL);
	assert_true(wait_seq_at_least(c, 3, BEAT_TIMEOUT_MS));
	assert_int_equal(backend_cell_mail(c, WARDEN_CMD_INJECT, WARDEN_FAULT_CRASH), 0);
	assert_int_equal(wait_state_not(c, BACKEND_CELL_RUNNING, BEAT_TIMEOUT_MS, &st),
			 BACKEND_CELL_SHUTDOWN);
	assert_string_equal(st.reason, "triple fault");

	assert_int_equal(backend_cell_reset(c), 0);
	assert_true(wait_seq_at_least(c, 3, BEAT_TIMEOUT_MS));
	assert_running(c, &st);
	cell_down(c);
}

static void test_panic_doorbell(void **state)
{
	BackendCellStatus st;

	(void)state;
	REQUIRE_KVM();
	BackendCell *c = cell_up("panic", T.faulty, true, NULL, 0, NULL);
	assert_true(wait_seq_at_least(c, 3, BEAT_TIMEOUT_MS));
	(void)backend_cell_event_ack(c);
	assert_int_equal(backend_cell_mail(c, WARDEN_CMD_INJECT, WARDEN_FAULT_PANIC), 0);

	/* The doorbell (an ioeventfd) wakes us; the runner is not involved. */
	volatile struct warden_comm *comm = backend_cell_comm(c);
	uint64_t deadline = now_ns() + BEAT_TIMEOUT_MS * 1000000ull;
	while (comm->state != WARDEN_INMATE_PANICKED && now_ns() < deadline) {
		struct pollfd p = { .fd = backend_cell_event_fd(c), .events = POLLIN };
		assert_true(poll(&p, 1, BEAT_TIMEOUT_MS) == 1);
		assert_int_equal(backend_cell_event_ack(c), 0);
	}
	assert_int_equal(comm->state, WARDEN_INMATE_PANICKED);
	assert_int_equal(backend_cell_status(c, &st), 0);
	printf("# after panic: cell %s (%s)\n", backend_cell_state_to_string(st.state), st.reason);
	assert_int_equal(backend_cell_reset(c), 0);
	assert_true(wait_seq_at_least(c, 3, BEAT_TIMEOUT_MS));
	assert_int_equal(comm->state, WARDEN_INMATE_RUNNING);
	cell_down(c);
}

static void test_sigkill(void **state)
{
	BackendCellStatus st;

	(void)state;
	REQUIRE_KVM();
	BackendCell *c = cell_up("kill", T.heartbeat, false, NULL, 0, NULL);
	assert_running(c, &st);
	struct pollfd p = { .fd = backend_cell_pidfd(c), .events = POLLIN };
	assert_int_equal(poll(&p, 1, 0), 0);

	uint64_t t0 = now_ns();
	assert_int_equal(kill(st.pid, SIGKILL), 0);
	assert_int_equal(poll(&p, 1, 5000), 1);
	printf("# SIGKILL -> pidfd readable: %.3f ms\n", (double)(now_ns() - t0) / 1e6);

	/* status() never polls: until the caller reaps, the page is all it has */
	assert_int_equal(backend_cell_status(c, &st), 0);
	assert_int_equal(st.state, BACKEND_CELL_RUNNING);
	backend_cell_reap(c);
	assert_int_equal(backend_cell_status(c, &st), 0);
	assert_int_equal(st.state, BACKEND_CELL_GONE);
	assert_non_null(strstr(st.reason, "signal 9"));
	assert_int_equal(backend_cell_start(c), -ESRCH);
	assert_int_equal(backend_cell_destroy(c), 0);
	backend_cell_free(c);

	/* Nothing live behind the leftovers: not adoptable, but re-creatable. */
	BackendCell *a = NULL;
	assert_int_equal(backend_cell_adopt(T.backend, "kill", &a), -ENOENT);
	c = cell_up("kill", T.heartbeat, false, NULL, 0, NULL);
	cell_down(c);
}

static void test_adopt(void **state)
{
	BackendCellStatus st, st2;
	BackendCell *a = NULL;

	(void)state;
	REQUIRE_KVM();
	assert_int_equal(backend_cell_adopt(T.backend, "nobody", &a), -ENOENT);

	BackendCell *c = cell_up("keep", T.heartbeat, false, NULL, 0, NULL);
	assert_running(c, &st);
	uint64_t s = seq_of(c);
	backend_cell_free(c); /* as if the daemon went away */

	assert_int_equal(backend_cell_adopt(T.backend, "keep", &a), 0);
	assert_running(a, &st2);
	assert_int_equal(st2.pid, st.pid);
	assert_int_equal(st2.boots, 1);
	assert_true(seq_of(a) >= s);
	assert_true(wait_seq_at_least(a, seq_of(a) + 3, BEAT_TIMEOUT_MS));
	/* And it is fully controllable again. */
	assert_int_equal(backend_cell_reset(a), 0);
	assert_true(wait_seq_at_least(a, 1, BEAT_TIMEOUT_MS));
	cell_down(a);
}

static int group_setup(void **state)
{
	(void)state;
	T.runner = getenv("WARDEN_KVM_RUNNER");
	T.heartbeat = getenv("WARDEN_DEMO_HEARTBEAT");
	T.faulty = getenv("WARDEN_DEMO_FAULTY");
	T.kvm = access("/dev/kvm", R_OK | W_OK) == 0;
	if (!T.runner || !T.heartbeat || !T.faulty) {
		fprintf(stderr, "set WARDEN_KVM_RUNNER, WARDEN_DEMO_HEARTBEAT, WARDEN_DEMO_FAULTY\n");
		return -1;
	}
	T.n_online = sysconf(_SC_NPROCESSORS_ONLN);
	T.cpu = T.n_online > 1 ? (unsigned)(T.n_online - 1) : 0;
	if (T.n_online > 1) {
		/* Stay off the single-vCPU cells' CPU so that watching the
		 * heartbeat does not steal time from it. */
		cpu_set_t set;
		CPU_ZERO(&set);
		for (long i = 0; i < T.n_online - 1; i++)
			CPU_SET(i, &set);
		(void)sched_setaffinity(0, sizeof(set), &set);
	}
	/* tmpfs, like the daemon's /run: the runner creates a few files per cell. */
	snprintf(T.runtime_dir, sizeof(T.runtime_dir), "%s/warden-e2e-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(T.runtime_dir))
		return -1;
	BackendConfig cfg = { .runtime_dir = T.runtime_dir, .runner_path = T.runner };
	if (backend_new("kvm", &cfg, &T.backend) < 0)
		return -1;
	if (T.kvm && backend_enable(T.backend) < 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	/* Leave no runner behind even if a test failed half way. */
	const char *names[] = { "hb", "reset", "again", "pin", "pin2", "hang", "crash",
				"panic", "kill", "keep" };
	for (size_t i = 0; T.kvm && i < sizeof(names) / sizeof(names[0]); i++) {
		BackendCell *c = NULL;
		if (backend_cell_adopt(T.backend, names[i], &c) == 0) {
			(void)backend_cell_destroy(c);
			backend_cell_free(c);
		}
	}
	backend_free(T.backend);
	if (!getenv("WARDEN_E2E_KEEP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", T.runtime_dir);
		(void)!system(cmd);
	}
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_table),
		cmocka_unit_test(test_heartbeat),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_destroy_recreate),
		cmocka_unit_test(test_affinity),
		cmocka_unit_test(test_hang_stop),
		cmocka_unit_test(test_triple_fault),
		cmocka_unit_test(test_panic_doorbell),
		cmocka_unit_test(test_sigkill),
		cmocka_unit_test(test_adopt),
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests_name("kvm-backend", tests, group_setup, group_teardown);
}
