/* SPDX-License-Identifier: MIT */
/*
 * Dispatch of the backend interface (backend.h) to the backend kinds, plus
 * the pieces every backend shares: the state name table, the mailbox write
 * and small process and file helpers. Never logs; returns negative errno.
 */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "backend-internal.h"
#include "process.h"

static const char *const cell_state_table[_BACKEND_CELL_STATE_MAX] = {
	[BACKEND_CELL_CREATED] = "created",
	[BACKEND_CELL_RUNNING] = "running",
	[BACKEND_CELL_STOPPED] = "stopped",
	[BACKEND_CELL_HALTED] = "halted",
	[BACKEND_CELL_SHUTDOWN] = "shutdown",
	[BACKEND_CELL_FAILED] = "failed",
	[BACKEND_CELL_GONE] = "gone",
};

const char *backend_cell_state_to_string(BackendCellState s)
{
	if (s < 0 || s >= _BACKEND_CELL_STATE_MAX)
		return NULL;
	return cell_state_table[s];
}

BackendCellState backend_cell_state_from_string(const char *s)
{
	if (!s)
		return _BACKEND_CELL_STATE_INVALID;
	for (int i = 0; i < _BACKEND_CELL_STATE_MAX; i++)
		if (cell_state_table[i] && strcmp(cell_state_table[i], s) == 0)
			return (BackendCellState)i;
	return _BACKEND_CELL_STATE_INVALID;
}

int backend_new(const char *kind, const BackendConfig *cfg, Backend **ret)
{
	if (!kind || !cfg || !ret)
		return -EINVAL;
	if (strcmp(kind, "kvm") == 0)
		return kvm_backend_new(cfg, ret);
	if (strcmp(kind, "qemu") == 0)
		return qemu_backend_new(cfg, ret);
	if (strcmp(kind, "jailhouse") == 0)
		return jailhouse_backend_new(cfg, ret);
	if (strcmp(kind, "container") == 0)
		return container_backend_new(cfg, ret);
	return -EOPNOTSUPP;
}

Backend *backend_free(Backend *b)
{
	if (b)
		b->ops->free(b);
	return NULL;
}

const char *backend_kind(const Backend *b)
{
	return b ? b->ops->kind : NULL;
}

bool backend_restarts_in_place(const Backend *b)
{
	return b && b->ops->restart_in_place;
}

int backend_enable(Backend *b)
{
	if (!b)
		return -EINVAL;
	return b->ops->enable(b);
}

int backend_disable(Backend *b)
{
	if (!b)
		return -EINVAL;
	return b->ops->disable(b);
}

ssize_t backend_console_read(Backend *b, char *buf, size_t n)
{
	return b->ops->console_read ? b->ops->console_read(b, buf, n) : -EOPNOTSUPP;
}

int backend_stats(Backend *b, BackendStat *ret, size_t max)
{
	if (!b || (!ret && max))
		return -EINVAL;
	return b->ops->stats ? b->ops->stats(b, ret, max) : 0;
}

int backend_cell_create(Backend *b, const BackendCellConfig *cfg, BackendCell **ret)
{
	if (!b || !cfg || !cfg->name || !ret)
		return -EINVAL;
	return b->ops->cell_create(b, cfg, ret);
}

int backend_cell_adopt(Backend *b, const char *name, BackendCell **ret)
{
	if (!b || !name || !ret)
		return -EINVAL;
	return b->ops->cell_adopt(b, name, ret);
}

#define CELL_CALL(c, op, ...) ((c) ? (c)->ops->op((c), ##__VA_ARGS__) : -EINVAL)

int backend_cell_load(BackendCell *c)
{
	return CELL_CALL(c, load);
}

int backend_cell_start(BackendCell *c)
{
	return CELL_CALL(c, start);
}

int backend_cell_stop(BackendCell *c)
{
	return CELL_CALL(c, stop);
}

int backend_cell_reset(BackendCell *c)
{
	return CELL_CALL(c, reset);
}

int backend_cell_shutdown(BackendCell *c)
{
	/* Without a channel of its own, a backend asks through the mailbox. */
	if (c && !c->ops->shutdown)
		return c->ops->mail(c, WARDEN_CMD_SHUTDOWN, 0);
	return CELL_CALL(c, shutdown);
}

int backend_cell_mail(BackendCell *c, uint32_t cmd, uint32_t arg)
{
	if (cmd == WARDEN_CMD_NONE || cmd >= WARDEN_CMD_MAX)
		return -EINVAL;
	return CELL_CALL(c, mail, cmd, arg);
}

int backend_cell_destroy(BackendCell *c)
{
	return CELL_CALL(c, destroy);
}

void backend_set_child_nofile_limit(const struct rlimit *rl)
{
	child_set_nofile_limit(rl);
}

static void tasks_free(BackendTasks *t);

BackendCell *backend_cell_free(BackendCell *c)
{
	if (c) {
		tasks_free(c->tasks);
		c->ops->free(c);
	}
	return NULL;
}

const char *backend_cell_name(const BackendCell *c)
{
	return c ? c->ops->name(c) : NULL;
}

int backend_cell_status(BackendCell *c, BackendCellStatus *ret)
{
	if (!ret)
		return -EINVAL;
	return CELL_CALL(c, status, ret);
}

volatile struct warden_comm *backend_cell_comm(BackendCell *c)
{
	return c ? c->ops->comm(c) : NULL;
}

ssize_t backend_cell_console_read(BackendCell *c, char *buf, size_t n)
{
	if (!c || (!buf && n > 0))
		return -EINVAL;
	return c->ops->console_read(c, buf, n);
}

int backend_cell_event_fd(BackendCell *c)
{
	return CELL_CALL(c, event_fd);
}

int backend_cell_event_ack(BackendCell *c)
{
	return CELL_CALL(c, event_ack);
}

int backend_cell_pidfd(BackendCell *c)
{
	return CELL_CALL(c, pidfd);
}

int backend_cell_reset_begin(BackendCell *c)
{
	if (!c)
		return -EINVAL;
	return c->ops->reset_begin ? c->ops->reset_begin(c) : -EOPNOTSUPP;
}

int backend_cell_reset_finish(BackendCell *c)
{
	if (!c)
		return -EINVAL;
	return c->ops->reset_finish ? c->ops->reset_finish(c) : -EOPNOTSUPP;
}

/* ---- CPU times ------------------------------------------------------ */

/* What backend_cell_cpu_times() keeps between calls: the process's CPU
 * clock, its task directory and each thread's stat and status files, open,
 * with the thread's voluntary context switches when it was last seen
 * runnable. Under host load a third of a cell's samples can fall in a
 * stall's second half, where the verdict wants these figures: opening
 * /proc/PID/task/TID/{stat,schedstat} afresh each time was 40 % of the
 * loop's CPU at 64 cells. Now a look is a clock read, an fstat and a pread
 * per thread (two for a runnable one: status costs 2.5 times stat). The
 * set is read again when the thread count changes (the directory's link
 * count is 2 + the threads) or a file fails (its thread went). */
#define TASKS_MAX 32

struct BackendTasks {
	pid_t pid;
	clockid_t clock; /* the process's CPU clock: all threads, exited ones too */
	int dir_fd;
	nlink_t nlink;   /* the task directory's, when the set was read */
	unsigned n;
	int stat_fd[TASKS_MAX], status_fd[TASKS_MAX];
	uint64_t sleeps[TASKS_MAX]; /* voluntary_ctxt_switches, last seen runnable */
	bool known[TASKS_MAX];      /* sleeps[] is from the last read */
};

static void tasks_close(BackendTasks *t)
{
	for (unsigned i = 0; i < t->n; i++) {
		close(t->stat_fd[i]);
		close(t->status_fd[i]);
	}
	t->n = 0;
	backend_close_fd(&t->dir_fd);
}

static void tasks_free(BackendTasks *t)
{
	if (t) {
		tasks_close(t);
		free(t);
	}
}

/* TID/what under the task directory, or -1. */
static int task_file_open(int dir_fd, const char *tid, const char *what)
{
	char file[300];

	snprintf(file, sizeof(file), "%s/%s", tid, what);
	return openat(dir_fd, file, O_RDONLY | O_CLOEXEC);
}

/* The file's whole text again, NUL-terminated; -errno. */
static int task_file_read(int fd, char *buf, size_t n)
{
	ssize_t k = pread(fd, buf, n - 1, 0);

	if (k <= 0)
		return k < 0 ? -errno : -ENODATA;
	buf[k] = 0;
	return 0;
}

static int tasks_scan(BackendTasks *t, pid_t pid)
{
	char path[64];
	struct dirent *de;
	struct stat sb;
	DIR *d;
	int fd, r;

	tasks_close(t);
	t->pid = 0;
	r = -clock_getcpuclockid(pid, &t->clock);
	if (r < 0)
		return r == -ESRCH ? -ENOENT : r;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	t->dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->dir_fd < 0)
		return -errno;
	/* The count before the listing: a thread born in between only
	 * makes the next call read the set again. */
	fd = fstat(t->dir_fd, &sb) < 0 ? -1 : openat(t->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		tasks_close(t);
		return r;
	}
	while ((de = readdir(d)) && t->n < TASKS_MAX) {
		int f, g;

		if (de->d_name[0] == '.')
			continue;
		f = task_file_open(t->dir_fd, de->d_name, "stat");
		g = f >= 0 ? task_file_open(t->dir_fd, de->d_name, "status") : -1;
		if (g < 0) {
			if (f >= 0)
				close(f);
			continue; /* the thread just went */
		}
		t->known[t->n] = false;
		t->stat_fd[t->n] = f;
		t->status_fd[t->n++] = g;
	}
	closedir(d);
	if (t->n == 0) {
		tasks_close(t);
		return -ENOENT;
	}
	t->pid = pid;
	t->nlink = sb.st_nlink;
	return 0;
}

/* Threads in state R now (*ret_runnable), and those of them not asleep
 * by choice since the last read (*ret_waiting; a thread not runnable at
 * the last read, or new to the set, counts if R). A vCPU that sleeps
 * between its ticks is R for the moment it wakes, which can be both reads
 * of a stall when the timeout is a multiple of its period: its voluntary
 * switches tell that it ran its loop and slept. -errno when a file failed
 * (its thread went). */
static int tasks_read(BackendTasks *t, unsigned *ret_runnable, unsigned *ret_waiting)
{
	unsigned runnable_n = 0, waiting = 0;

	for (unsigned i = 0; i < t->n; i++) {
		char buf[2048], *p;
		unsigned long long sleeps = 0;
		bool slept;
		int r = task_file_read(t->stat_fd[i], buf, sizeof(buf));

		if (r < 0)
			return r;
		/* "TID (comm) S ...": the state follows the last ')' */
		p = strrchr(buf, ')');
		if (!p || p[1] != ' ' || p[2] != 'R') {
			t->known[i] = false;
			continue;
		}
		r = task_file_read(t->status_fd[i], buf, sizeof(buf));
		if (r < 0)
			return r;
		p = strstr(buf, "\nvoluntary_ctxt_switches:");
		if (!p || sscanf(p, "\nvoluntary_ctxt_switches: %llu", &sleeps) != 1)
			return -EBADMSG;
		slept = t->known[i] && sleeps != t->sleeps[i];
		t->sleeps[i] = sleeps;
		t->known[i] = true;
		runnable_n++;
		if (!slept)
			waiting++;
	}
	*ret_runnable = runnable_n;
	*ret_waiting = waiting;
	return 0;
}

int backend_cell_cpu_times(BackendCell *c, uint64_t *ret_run_ns, unsigned *ret_runnable, unsigned *ret_waiting)
{
	unsigned runnable, waiting;
	BackendCellStatus st;
	BackendTasks *t;
	struct timespec ts;
	struct stat sb;
	int r;

	r = backend_cell_status(c, &st);
	if (r < 0)
		return r;
	if (st.pid <= 0)
		return -ENOENT;
	if (!c->tasks) {
		c->tasks = calloc(1, sizeof(*c->tasks));
		if (!c->tasks)
			return -ENOMEM;
		c->tasks->dir_fd = -1;
	}
	t = c->tasks;
	if (t->pid != st.pid || fstat(t->dir_fd, &sb) < 0 || sb.st_nlink != t->nlink) {
		r = tasks_scan(t, st.pid);
		if (r < 0)
			return r;
	}
	r = tasks_read(t, &runnable, &waiting);
	if (r < 0) {
		/* A thread went: read the set again, once. */
		r = tasks_scan(t, st.pid);
		if (r >= 0)
			r = tasks_read(t, &runnable, &waiting);
		if (r < 0)
			return r == -ESRCH ? -ENOENT : r;
	}
	if (clock_gettime(t->clock, &ts) < 0)
		return errno == EINVAL ? -ENOENT : -errno;
	*ret_run_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	*ret_runnable = runnable;
	*ret_waiting = waiting;
	return 0;
}

void backend_cell_reap(BackendCell *c)
{
	if (c && c->ops->reap)
		c->ops->reap(c);
}

int backend_comm_post(volatile struct warden_comm *comm, uint32_t cmd, uint32_t arg)
{
	if (!comm)
		return -ENXIO;
	/* Single writer (the daemon), so a plain read-modify-write of cmd_seq
	 * is enough; the release store orders cmd/cmd_arg before it. */
	comm->cmd = cmd;
	comm->cmd_arg = arg;
	__atomic_store_n(&comm->cmd_seq, comm->cmd_seq + 1, __ATOMIC_RELEASE);
	return 0;
}

ssize_t backend_comm_console_read(const volatile struct warden_comm *comm, size_t region_size, char *buf, size_t n)
{
	const volatile struct warden_console *con;
	uint64_t head, again, size, take;

	if (!comm || region_size <= WARDEN_CONSOLE_OFFSET + sizeof(struct warden_console))
		return 0;
	con = (const volatile struct warden_console *)((const volatile uint8_t *)comm + WARDEN_CONSOLE_OFFSET);
	size = region_size - WARDEN_CONSOLE_OFFSET - sizeof(struct warden_console);
	/* The inmate's word for its size is only believed up to the region. */
	if (con->magic != WARDEN_CONSOLE_MAGIC || con->size == 0 || con->size > size)
		return 0;
	size = con->size;
	head = __atomic_load_n(&con->head, __ATOMIC_ACQUIRE);
	take = head < size ? head : size;
	if (take > n)
		take = n;
	for (uint64_t i = 0; i < take; i++)
		buf[i] = (char)con->data[(head - take + i) % size];
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	/* Bytes the inmate wrote over while we copied are not the ones we
	 * wanted: drop that many from the front. */
	again = __atomic_load_n(&con->head, __ATOMIC_RELAXED);
	if (again - head > size - take) {
		uint64_t lost = again - head - (size - take);
		if (lost >= take)
			return 0;
		memmove(buf, buf + lost, (size_t)(take - lost));
		take -= lost;
	}
	return (ssize_t)take;
}

void backend_close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int backend_pidfd_open(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	return fd < 0 ? -errno : fd;
}

uint64_t backend_now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int backend_remaining_ms(uint64_t deadline_ns)
{
	uint64_t now = backend_now_ns(CLOCK_MONOTONIC);

	if (now >= deadline_ns)
		return 0;
	return (int)((deadline_ns - now + 999999) / 1000000);
}

bool backend_fd_readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return fd >= 0 && poll(&p, 1, timeout_ms) > 0 && (p.revents & (POLLIN | POLLHUP));
}

bool backend_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64 || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("-_.", s[i]))
			return false;
	return true;
}

int backend_mkdir_p(const char *path)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == 0) {
			char ch = *p;
			*p = 0;
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return -errno;
			*p = ch;
			if (!ch)
				return 0;
		}
	}
}

int backend_append_arg(char **argv, size_t *n, size_t max, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (*n + 1 >= max)
		return -E2BIG;
	va_start(ap, fmt);
	r = vasprintf(&argv[*n], fmt, ap);
	va_end(ap);
	if (r < 0) {
		argv[*n] = NULL;
		return -ENOMEM;
	}
	(*n)++;
	return 0;
}
