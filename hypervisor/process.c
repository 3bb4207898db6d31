/* SPDX-License-Identifier: MIT */
/*
 * The process behind a cell: spawn, pidfd, bounded reap, exit reason.
 * Shared by the kvm and qemu backends, which both keep one process per
 * cell and must tell a dead process from a live one without waiting on
 * the daemon's loop. Never logs; returns negative errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend-internal.h"
#include "process.h"

#ifndef P_PIDFD
#define P_PIDFD 3 /* glibc < 2.36 lacks it; the kernel has had it since 5.4 */
#endif

#define EXEC_TIMEOUT_MS 5000 /* vfork -> exec done; it takes milliseconds */
#define EXEC_FAIL_REAP_MS 2000
/* Where the child parks its fds before placing them at 0..n: above any
 * target, so that no source is overwritten before it is moved. */
#define LIFT_FD_MIN 16

struct ChildProcess {
	char what[16];
	pid_t pid;
	int pidfd;
	bool exited;
	int exit_code; /* CLD_EXITED status, 128 + signal, -1 unknown */
	char exit_reason[64];
};

int child_new(const char *what, ChildProcess **ret)
{
	ChildProcess *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	snprintf(p->what, sizeof(p->what), "%s", what);
	p->pidfd = -1;
	p->exit_code = -1;
	*ret = p;
	return 0;
}

ChildProcess *child_free(ChildProcess *p)
{
	if (!p)
		return NULL;
	(void)child_reap(p, 0);
	backend_close_fd(&p->pidfd);
	free(p);
	return NULL;
}

static struct rlimit child_nofile;
static bool child_nofile_set;

void child_set_nofile_limit(const struct rlimit *rl)
{
	child_nofile = *rl;
	child_nofile_set = true;
}

/* In the child between vfork and exec: async-signal-safe calls only, and
 * nothing but its own frame written (it shares the parent's memory). */
static __attribute__((noreturn)) void child_exec(const ChildSpawn *how, int err_fd)
{
	extern char **environ;
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	int lifted[CHILD_MAX_FDS + 1];
	size_t n = how->n_fds;
	sigset_t none;
	int efd = err_fd, e;

	if (how->new_session && setsid() < 0)
		goto fail;
	for (int s = 1; s < NSIG; s++)
		(void)sigaction(s, &dfl, NULL);
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
		goto fail;
	if (how->cpus && sched_setaffinity(0, sizeof(*how->cpus), how->cpus) < 0)
		goto fail;
	if (child_nofile_set && setrlimit(RLIMIT_NOFILE, &child_nofile) < 0)
		goto fail;
	if (how->dir_fd >= 0 && fchdir(how->dir_fd) < 0)
		goto fail;
	for (size_t i = 0; i <= n; i++) {
		lifted[i] = fcntl(i < n ? how->fds[i] : err_fd, F_DUPFD, LIFT_FD_MIN);
		if (lifted[i] < 0)
			goto fail;
	}
	for (size_t i = 0; i < n; i++)
		if (dup2(lifted[i], (int)i) < 0)
			goto fail;
	/* Close-on-exec: EOF on the pipe is the parent's "exec succeeded". */
	if (dup3(lifted[n], (int)n, O_CLOEXEC) < 0)
		goto fail;
	efd = (int)n;
	if (close_range((unsigned)n + 1, ~0u, 0) < 0)
		for (int fd = (int)n + 1; fd < 65536; fd++)
			(void)close(fd);
	execve(how->binary, how->argv, environ);
fail:
	e = errno;
	(void)!write(efd, &e, sizeof(e));
	_exit(127);
}

int child_spawn(ChildProcess *p, const ChildSpawn *how)
{
	int pipefd[2] = { -1, -1 };
	pid_t pid;
	int r, e = 0;

	if (p->pid > 0)
		return -EBUSY;
	if (how->n_fds < 3 || how->n_fds > CHILD_MAX_FDS)
		return -EINVAL;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	/* Not fork(): copying wardend's page tables holds its memory map
	 * locked, and every later write of the loop's would fault for a
	 * copy-on-write, which showed as 15 ms of loop lag per QEMU start.
	 * vfork() shares our memory until exec while this (worker) thread
	 * waits; child_exec() never returns and writes nothing but its own
	 * frame. (A clone() on a stack of our own did the same, but confused
	 * AddressSanitizer's view of the stacks; vfork() it knows.) */
	pid = vfork();
	if (pid < 0) {
		r = -errno;
		goto out;
	}
	if (pid == 0)
		child_exec(how, pipefd[1]);
	backend_close_fd(&pipefd[1]);
	p->pid = pid;

	/* The child is ours and unreaped, so its pid cannot be recycled yet. */
	r = backend_pidfd_open(pid);
	if (r < 0) {
		kill(pid, SIGKILL);
		(void)waitpid(pid, NULL, 0);
		p->exited = true;
		goto out;
	}
	p->pidfd = r;
	r = 0;

	/* EOF on the pipe: exec succeeded. An errno: it did not. */
	if (backend_fd_readable(pipefd[0], EXEC_TIMEOUT_MS)) {
		ssize_t k = read(pipefd[0], &e, sizeof(e));
		if (k == (ssize_t)sizeof(e))
			r = e > 0 ? -e : -ECHILD;
	} else {
		r = -ETIMEDOUT;
	}
	if (r < 0)
		(void)child_kill(p, EXEC_FAIL_REAP_MS);
out:
	backend_close_fd(&pipefd[0]);
	backend_close_fd(&pipefd[1]);
	return r;
}

int child_adopt(ChildProcess *p, pid_t pid)
{
	int r;

	if (p->pid > 0)
		return -EBUSY;
	r = backend_pidfd_open(pid);
	if (r < 0)
		return r == -ESRCH ? -ENOENT : r;
	p->pidfd = r;
	p->pid = pid;
	return 0;
}

bool child_reap(ChildProcess *p, int timeout_ms)
{
	siginfo_t si = { 0 };

	if (p->exited)
		return true;
	if (p->pidfd < 0 || !backend_fd_readable(p->pidfd, timeout_ms))
		return false;
	p->exited = true;
	if (waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG) == 0 && si.si_pid) {
		p->exit_code = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
		if (si.si_code == CLD_EXITED)
			snprintf(p->exit_reason, sizeof(p->exit_reason), "%s exited with status %d",
				 p->what, si.si_status);
		else
			snprintf(p->exit_reason, sizeof(p->exit_reason), "%s killed by signal %d",
				 p->what, si.si_status);
	} else {
		/* Not our child (adopted after a daemon restart): no status. */
		snprintf(p->exit_reason, sizeof(p->exit_reason), "%s exited", p->what);
	}
	return true;
}

int child_kill(ChildProcess *p, int timeout_ms)
{
	if (p->exited || p->pidfd < 0)
		return 0;
	(void)syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0);
	return child_reap(p, timeout_ms) ? 0 : -ETIMEDOUT;
}

pid_t child_pid(const ChildProcess *p)
{
	return p->pid;
}

int child_pidfd(const ChildProcess *p)
{
	return p->pidfd;
}

bool child_exited(const ChildProcess *p)
{
	return p->exited;
}

int child_exit_code(const ChildProcess *p)
{
	return p->exited ? p->exit_code : -1;
}

const char *child_exit_reason(const ChildProcess *p)
{
	return p->exit_reason;
}
