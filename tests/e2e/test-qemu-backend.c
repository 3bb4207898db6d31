/* SPDX-License-Identifier: MIT */
/*
 * End-to-end test of the qemu backend: the real qemu-system-x86_64 and the
 * real Linux inmate (kernel + initramfs with warden.ko), driven through
 * hypervisor/backend.h exactly as wardend drives it.
 *
 * Paths come from the environment (set by tests/e2e/meson.build):
 *   WARDEN_QEMU, WARDEN_LINUX_KERNEL, WARDEN_LINUX_INITRD.
 * Without QEMU or the image every test says "SKIP: <why>" and skips.
 *
 * A TCG boot takes seconds, so the tests share one cell and run in order
 * (boot, reset, panic, stop, adopt, destroy), then a second one for
 * SIGKILL: five boots in all. Every wait is bounded; timings are printed
 * as TAP comments, never asserted.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hypervisor/backend.h"
#include "backend-test.h"

#define PERIOD_MS 100
#define BOOT_TIMEOUT_MS 90000 /* TCG on a loaded 2-core machine */
#define WAIT_MS 10000
#define RAM_SIZE 0x10000000ull

static struct {
	const char *qemu;
	const char *kernel;
	const char *initrd;
	const char *skip; /* why everything is skipped, or NULL */
	char runtime_dir[64];
	Backend *backend;
	BackendCell *cell; /* "linux", shared by the tests in order */
	pid_t pid;
	unsigned cpu;
	int marker_fd; /* an fd QEMU must not inherit */
} T;

#define REQUIRE_IMAGE()                                       \
	do {                                                  \
		if (T.skip) {                                 \
			fprintf(stderr, "SKIP: %s\n", T.skip); \
			skip();                               \
		}                                             \
	} while (0)

#define REQUIRE_CELL()                                                         \
	do {                                                                   \
		REQUIRE_IMAGE();                                               \
		if (!T.cell)                                                   \
			fail_msg("no cell: an earlier test did not create it"); \
	} while (0)

/* The inmate's comm header is up (magic) and its counter reached target. */
static bool wait_beats(BackendCell *c, uint64_t target, int timeout_ms)
{
	volatile struct warden_comm *comm = backend_cell_comm(c);
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;

	while (__atomic_load_n(&comm->magic, __ATOMIC_ACQUIRE) != WARDEN_COMM_MAGIC ||
	       seq_of(c) < target) {
		BackendCellStatus st;
		if (now_ns() >= deadline)
			return false;
		if (backend_cell_status(c, &st) == 0 && st.state == BACKEND_CELL_GONE)
			fail_msg("qemu went away while booting: %s", st.reason);
		wait_event_or(c, 20);
	}
	return true;
}

static bool wait_inmate_state(BackendCell *c, uint32_t state, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;

	while (backend_cell_comm(c)->state != state) {
		if (now_ns() >= deadline)
			return false;
		wait_event_or(c, 10);
	}
	return true;
}

static void assert_state(BackendCell *c, BackendCellState want, BackendCellStatus *st)
{
	assert_int_equal(backend_cell_status(c, st), 0);
	if (st->state != want)
		fail_msg("state %s (%s), expected %s", backend_cell_state_to_string(st->state),
			 st->reason, backend_cell_state_to_string(want));
}

static int cell_create(const char *name, BackendCell **ret)
{
	const BackendRegion regions[] = {
		{ .phys_start = 0x80000000, .virt_start = 0, .size = RAM_SIZE,
		  .flags = BACKEND_MEM_READ | BACKEND_MEM_WRITE | BACKEND_MEM_EXECUTE |
			   BACKEND_MEM_LOADABLE },
	};
	const BackendCellConfig cfg = {
		.name = name,
		.cpus = &T.cpu,
		.n_cpus = 1,
		.regions = regions,
		.n_regions = 1,
		.comm_addr = 0,
		.comm_size = 4096,
		.period_ms = PERIOD_MS,
		.allow_inject = true,
		.kernel = T.kernel,
		.initrd = T.initrd,
		.cmdline = "console=ttyS0 quiet",
	};

	return backend_cell_create(T.backend, &cfg, ret);
}

static bool file_exists(const char *cell, const char *file)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/cells/%s/%s", T.runtime_dir, cell, file);
	return access(path, F_OK) == 0;
}

/* Every thread of pid may run on exactly `want`. */
static void assert_threads_pinned(pid_t pid, const char *want)
{
	char path[320], line[256], got[64];
	struct dirent *de;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)pid, de->d_name);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "Cpus_allowed_list: %63s", got) == 1) {
				if (strcmp(got, want) != 0)
					fail_msg("thread %s runs on %s, not %s", de->d_name, got, want);
				n++;
			}
		fclose(f);
	}
	closedir(d);
	assert_true(n >= 2); /* main loop and at least one vCPU */
	printf("# %d qemu threads, all on CPU %s\n", n, want);
}

/* QEMU holds no descriptor of ours but what it was given. */
static void assert_no_leaked_fds(pid_t pid)
{
	char path[320], target[PATH_MAX], mine[PATH_MAX];
	struct dirent *de;
	ssize_t k;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", T.marker_fd);
	k = readlink(path, mine, sizeof(mine) - 1);
	assert_true(k > 0);
	mine[k] = 0;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd/%s", (int)pid, de->d_name);
		k = readlink(path, target, sizeof(target) - 1);
		if (k < 0)
			continue;
		target[k] = 0;
		if (strcmp(target, mine) == 0)
			fail_msg("qemu inherited fd %s (%s)", de->d_name, target);
	}
	closedir(d);
}

static bool proc_cmdline_has(pid_t pid, const char *needle)
{
	char path[64], buf[16384];
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	for (size_t i = 0; i < n; i++)
		if (!buf[i])
			buf[i] = ' ';
	buf[n] = 0;
	return strstr(buf, needle) != NULL;
}

/* ---- tests ----------------------------------------------------------- */

static void test_backend_config(void **state)
{
	BackendConfig cfg = { .runtime_dir = "/nonexistent", .runner_path = "/nonexistent/qemu" };
	Backend *b = NULL;

	(void)state;
	assert_int_equal(backend_new("qemu", &cfg, &b), 0);
	assert_string_equal(backend_kind(b), "qemu");
	assert_int_equal(backend_enable(b), -ENOENT); /* no such binary */
	backend_free(b);
	cfg.accel = "hax";
	assert_int_equal(backend_new("qemu", &cfg, &b), -EINVAL);
	cfg.accel = "kvm";
	cfg.machine = "pc,accel=tcg"; /* no option smuggling */
	assert_int_equal(backend_new("qemu", &cfg, &b), -EINVAL);
	cfg.machine = "q35";
	assert_int_equal(backend_new("qemu", &cfg, &b), 0);
	backend_free(b);
	cfg.runtime_dir = "relative";
	assert_int_equal(backend_new("qemu", &cfg, &b), -EINVAL);

	/* Specs this board cannot run are refused before anything starts. */
	REQUIRE_IMAGE();
	const BackendRegion ram = { .size = RAM_SIZE, .flags = BACKEND_MEM_READ | BACKEND_MEM_WRITE };
	const BackendImage img = { .path = "/bin/true", .addr = 0x100000 };
	BackendCellConfig cc = { .name = "bad", .cpus = &T.cpu, .n_cpus = 1, .regions = &ram,
				 .n_regions = 1, .comm_size = 4096, .kernel = T.kernel };
	BackendCell *c = NULL;
	cc.comm_size = 6144; /* ivshmem wants a power of two */
	assert_int_equal(backend_cell_create(T.backend, &cc, &c), -EINVAL);
	cc.comm_size = 4096;
	cc.images = &img;
	cc.n_images = 1; /* flat images are the kvm backend's */
	assert_int_equal(backend_cell_create(T.backend, &cc, &c), -EINVAL);
	cc.n_images = 0;
	cc.kernel = "/nonexistent/vmlinux";
	assert_int_equal(backend_cell_create(T.backend, &cc, &c), -ENOENT);
	assert_false(file_exists("bad", "qmp.sock"));
}

static void test_create_boot(void **state)
{
	BackendCellStatus st;
	char buf[8192], want[16];

	(void)state;
	REQUIRE_IMAGE();
	uint64_t t0 = now_ns();
	assert_int_equal(cell_create("linux", &T.cell), 0);
	uint64_t t1 = now_ns();
	assert_state(T.cell, BACKEND_CELL_CREATED, &st);
	T.pid = st.pid;
	assert_true(T.pid > 0);
	struct pollfd p = { .fd = backend_cell_pidfd(T.cell), .events = POLLIN };
	assert_int_equal(poll(&p, 1, 0), 0);
	assert_true(file_exists("linux", "qmp.sock") && file_exists("linux", "comm") &&
		    file_exists("linux", "pid") && file_exists("linux", "console.log"));

	assert_int_equal(backend_cell_start(T.cell), -ENOEXEC); /* not loaded */
	assert_int_equal(backend_cell_load(T.cell), 0);
	assert_int_equal(backend_cell_start(T.cell), 0);
	uint64_t t2 = now_ns();
	assert_int_equal(backend_cell_start(T.cell), -EALREADY);
	assert_true(wait_beats(T.cell, 1, BOOT_TIMEOUT_MS));
	uint64_t t3 = now_ns();
	assert_true(wait_beats(T.cell, seq_of(T.cell) + 3, WAIT_MS));

	volatile struct warden_comm *comm = backend_cell_comm(T.cell);
	assert_int_equal(comm->abi, WARDEN_COMM_ABI);
	assert_int_equal(comm->period_ms, PERIOD_MS);
	assert_true(comm->flags & WARDEN_FLAG_INJECT);
	assert_state(T.cell, BACKEND_CELL_RUNNING, &st);
	assert_int_equal(st.boots, 1);
	assert_int_equal(st.pid, T.pid);
	printf("# create (qemu up, QMP ready) %.0f ms; start -> first beat %.0f ms\n",
	       (double)(t1 - t0) / 1e6, (double)(t3 - t2) / 1e6);

	snprintf(want, sizeof(want), "%u", T.cpu);
	assert_threads_pinned(T.pid, want);
	assert_no_leaked_fds(T.pid);
	assert_true(proc_cmdline_has(T.pid, "warden.period_ms=100 warden.allow_inject=1"));

	ssize_t n = backend_cell_console_read(T.cell, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = 0;
	printf("# console: %zd bytes\n", n);
	assert_int_equal(backend_cell_console_read(T.cell, buf, 16), 16);
}

static void test_reset_in_place(void **state)
{
	BackendCellStatus st;

	(void)state;
	REQUIRE_CELL();
	volatile struct warden_comm *comm = backend_cell_comm(T.cell);

	uint64_t t0 = now_ns();
	assert_int_equal(backend_cell_reset(T.cell), 0);
	uint64_t t1 = now_ns();
	/* The inmate half is cleared before the machine runs again; the new
	 * kernel needs far longer than this to write it. */
	assert_true(comm->magic == 0 && comm->seq == 0 && comm->state == 0);
	assert_true(wait_beats(T.cell, 2, BOOT_TIMEOUT_MS));
	uint64_t t2 = now_ns();
	/* A new kernel: up for less time than has passed since the reset. */
	assert_true(comm->uptime_ns < now_ns() - t0);
	assert_state(T.cell, BACKEND_CELL_RUNNING, &st);
	assert_int_equal(st.pid, T.pid);
	assert_int_equal(st.boots, 2);
	printf("# reset call %.1f ms; reset -> first beat %.0f ms (same pid %d)\n",
	       (double)(t1 - t0) / 1e6, (double)(t2 - t0) / 1e6, (int)T.pid);
}

static void test_panic_then_reset(void **state)
{
	BackendCellStatus st;
	char reason[WARDEN_COMM_REASON_LEN];

	(void)state;
	REQUIRE_CELL();
	volatile struct warden_comm *comm = backend_cell_comm(T.cell);
	assert_int_equal(backend_cell_mail(T.cell, WARDEN_CMD_INJECT, WARDEN_FAULT_PANIC), 0);
	uint64_t t0 = now_ns();
	assert_true(wait_inmate_state(T.cell, WARDEN_INMATE_PANICKED, WAIT_MS));
	uint64_t t1 = now_ns();
	for (size_t i = 0; i < sizeof(reason); i++)
		reason[i] = comm->reason[i];
	reason[sizeof(reason) - 1] = 0;
	printf("# mail -> PANICKED in comm %.0f ms: \"%s\"\n", (double)(t1 - t0) / 1e6, reason);
	assert_non_null(strstr(reason, "sysrq triggered crash"));

	/* With the guest's pvpanic driver loaded, QEMU says so too (and
	 * pauses the machine); without it the kernel spins in panic(). */
	uint64_t deadline = now_ns() + 2000ull * 1000000ull;
	do {
		wait_event_or(T.cell, 20);
		assert_int_equal(backend_cell_status(T.cell, &st), 0);
	} while (st.state == BACKEND_CELL_RUNNING && now_ns() < deadline);
	printf("# after the panic qemu reports: %s (%s)\n", backend_cell_state_to_string(st.state),
	       st.reason);
	assert_true(st.state == BACKEND_CELL_RUNNING || st.state == BACKEND_CELL_FAILED);

	uint64_t t2 = now_ns();
	assert_int_equal(backend_cell_reset(T.cell), 0);
	assert_int_not_equal(comm->state, WARDEN_INMATE_PANICKED);
	assert_true(wait_beats(T.cell, 2, BOOT_TIMEOUT_MS));
	assert_true(wait_inmate_state(T.cell, WARDEN_INMATE_RUNNING, WAIT_MS));
	printf("# reset after panic -> first beat %.0f ms\n", (double)(now_ns() - t2) / 1e6);
	assert_state(T.cell, BACKEND_CELL_RUNNING, &st);
	assert_int_equal(st.pid, T.pid);
	assert_int_equal(st.boots, 3);
}

static void test_stop_adopt_reset(void **state)
{
	BackendCellStatus st;
	BackendCell *a = NULL;
	char buf[256];

	(void)state;
	REQUIRE_CELL();
	assert_int_equal(backend_cell_stop(T.cell), 0);
	assert_state(T.cell, BACKEND_CELL_STOPPED, &st);
	assert_true(wait_seq_stalls(T.cell, 5 * PERIOD_MS, WAIT_MS));
	/* Stopped keeps everything readable. */
	assert_int_equal(backend_cell_comm(T.cell)->magic, WARDEN_COMM_MAGIC);
	assert_true(backend_cell_console_read(T.cell, buf, sizeof(buf)) > 0);

	/* The daemon goes away and comes back: the machine is still paused. */
	T.cell = backend_cell_free(T.cell);
	assert_int_equal(backend_cell_adopt(T.backend, "linux", &a), 0);
	T.cell = a;
	assert_state(a, BACKEND_CELL_STOPPED, &st);
	assert_int_equal(st.pid, T.pid);
	assert_int_equal(st.boots, 3); /* kept in the cell directory */

	assert_int_equal(backend_cell_reset(a), 0);
	assert_true(wait_beats(a, 2, BOOT_TIMEOUT_MS));
	assert_state(a, BACKEND_CELL_RUNNING, &st);
	assert_int_equal(st.boots, 4);
}

static void test_adopt_running(void **state)
{
	BackendCellStatus st;
	BackendCell *a = NULL;

	(void)state;
	REQUIRE_CELL();
	assert_int_equal(backend_cell_adopt(T.backend, "nobody", &a), -ENOENT);
	uint64_t s = seq_of(T.cell);
	T.cell = backend_cell_free(T.cell);

	uint64_t t0 = now_ns();
	assert_int_equal(backend_cell_adopt(T.backend, "linux", &a), 0);
	printf("# adopt %.2f ms\n", (double)(now_ns() - t0) / 1e6);
	T.cell = a;
	assert_state(a, BACKEND_CELL_RUNNING, &st);
	assert_int_equal(st.pid, T.pid);
	assert_true(seq_of(a) >= s);
	assert_true(wait_beats(a, seq_of(a) + 3, WAIT_MS));
	/* Events reach the adopted handle: a stop shows as a QMP STOP. */
	assert_int_equal(backend_cell_stop(a), 0);
	assert_state(a, BACKEND_CELL_STOPPED, &st);
}

static void test_destroy(void **state)
{
	BackendCellStatus st;
	BackendCell *dup = NULL, *a = NULL;

	(void)state;
	REQUIRE_CELL();
	assert_int_equal(cell_create("linux", &dup), -EEXIST);

	uint64_t t0 = now_ns();
	assert_int_equal(backend_cell_destroy(T.cell), 0);
	printf("# destroy (QMP quit -> process gone) %.1f ms\n", (double)(now_ns() - t0) / 1e6);
	struct pollfd p = { .fd = backend_cell_pidfd(T.cell), .events = POLLIN };
	assert_int_equal(poll(&p, 1, 0), 1);
	assert_state(T.cell, BACKEND_CELL_GONE, &st);
	assert_int_equal(backend_cell_destroy(T.cell), 0); /* idempotent */
	assert_int_equal(backend_cell_start(T.cell), -ENODEV);
	assert_false(file_exists("linux", "qmp.sock"));
	assert_false(file_exists("linux", "pid"));
	assert_false(file_exists("linux", "comm"));
	assert_true(file_exists("linux", "console.log")); /* for the post-mortem */
	assert_int_equal(kill(T.pid, 0), -1);
	T.cell = backend_cell_free(T.cell);
	assert_int_equal(backend_cell_adopt(T.backend, "linux", &a), -ENOENT);
}

static void test_sigkill(void **state)
{
	BackendCellStatus st;
	BackendCell *c = NULL, *a = NULL;

	(void)state;
	REQUIRE_IMAGE();
	assert_int_equal(cell_create("kill", &c), 0);
	assert_int_equal(backend_cell_load(c), 0);
	assert_int_equal(backend_cell_start(c), 0);
	assert_state(c, BACKEND_CELL_RUNNING, &st);
	struct pollfd p = { .fd = backend_cell_pidfd(c), .events = POLLIN };
	assert_int_equal(poll(&p, 1, 0), 0);

	uint64_t t0 = now_ns();
	assert_int_equal(kill(st.pid, SIGKILL), 0);
	assert_int_equal(poll(&p, 1, 5000), 1);
	printf("# SIGKILL -> pidfd readable: %.3f ms\n", (double)(now_ns() - t0) / 1e6);
	assert_state(c, BACKEND_CELL_GONE, &st);
	assert_non_null(strstr(st.reason, "signal 9"));
	assert_int_equal(backend_cell_reset(c), -ESRCH);
	assert_int_equal(backend_cell_destroy(c), 0);
	backend_cell_free(c);

	/* Nothing live behind the leftovers: not adoptable, but re-creatable
	 * (no boot needed to prove it). */
	assert_int_equal(backend_cell_adopt(T.backend, "kill", &a), -ENOENT);
	assert_int_equal(cell_create("kill", &c), 0);
	assert_int_equal(backend_cell_destroy(c), 0);
	backend_cell_free(c);
}

static int group_setup(void **state)
{
	static char why[512];

	(void)state;
	T.qemu = getenv("WARDEN_QEMU");
	T.kernel = getenv("WARDEN_LINUX_KERNEL");
	T.initrd = getenv("WARDEN_LINUX_INITRD");
	if (!T.qemu || !*T.qemu || access(T.qemu, X_OK) < 0) {
		snprintf(why, sizeof(why), "QEMU not found (WARDEN_QEMU=%s)", T.qemu ? T.qemu : "");
		T.skip = why;
	} else if (!T.kernel || access(T.kernel, R_OK) < 0 || !T.initrd ||
		   access(T.initrd, R_OK) < 0) {
		snprintf(why, sizeof(why),
			 "no Linux inmate image (WARDEN_LINUX_KERNEL=%s, WARDEN_LINUX_INITRD=%s)",
			 T.kernel ? T.kernel : "", T.initrd ? T.initrd : "");
		T.skip = why;
	}
	long n_online = sysconf(_SC_NPROCESSORS_ONLN);
	T.cpu = n_online > 1 ? (unsigned)(n_online - 1) : 0;
	if (n_online > 1) {
		/* Stay off the cell's CPU, as a root cell would. */
		cpu_set_t set;
		CPU_ZERO(&set);
		for (long i = 0; i < n_online - 1; i++)
			CPU_SET(i, &set);
		(void)sched_setaffinity(0, sizeof(set), &set);
	}
	T.marker_fd = open("/dev/zero", O_RDONLY); /* deliberately inheritable */
	snprintf(T.runtime_dir, sizeof(T.runtime_dir), "%s/warden-e2e-qemu-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(T.runtime_dir))
		return -1;
	BackendConfig cfg = { .runtime_dir = T.runtime_dir,
			      .runner_path = T.qemu && *T.qemu ? T.qemu : "/usr/bin/qemu-system-x86_64" };
	if (backend_new("qemu", &cfg, &T.backend) < 0)
		return -1;
	if (!T.skip && backend_enable(T.backend) < 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	/* Leave no QEMU behind even if a test failed half way. */
	if (T.cell) {
		(void)backend_cell_destroy(T.cell);
		T.cell = backend_cell_free(T.cell);
	}
	const char *names[] = { "linux", "kill", "bad" };
	for (size_t i = 0; !T.skip && i < sizeof(names) / sizeof(names[0]); i++) {
		BackendCell *c = NULL;
		if (backend_cell_adopt(T.backend, names[i], &c) == 0) {
			(void)backend_cell_destroy(c);
			backend_cell_free(c);
		}
	}
	backend_free(T.backend);
	if (T.marker_fd >= 0)
		close(T.marker_fd);
	if (!getenv("WARDEN_E2E_KEEP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", T.runtime_dir);
		(void)!system(cmd);
	}
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backend_config),
		cmocka_unit_test(test_create_boot),
		cmocka_unit_test(test_reset_in_place),
		cmocka_unit_test(test_panic_then_reset),
		cmocka_unit_test(test_stop_adopt_reset),
		cmocka_unit_test(test_adopt_running),
		cmocka_unit_test(test_destroy),
		cmocka_unit_test(test_sigkill),
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests_name("qemu-backend", tests, group_setup, group_teardown);
}
