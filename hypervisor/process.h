/* SPDX-License-Identifier: MIT */
/*
 * The process that holds a cell (warden-kvm runner, QEMU), as a backend
 * sees it: spawned by us or adopted after a daemon restart, watched through
 * a pidfd, reaped with a bounded wait, and its end told as a reason text
 * ("qemu killed by signal 9"). Only hypervisor/ includes this.
 *
 * Reaping never blocks unless the caller gives a timeout: loop calls pass 0.
 */
#ifndef WARDEN_HYPERVISOR_PROCESS_H
#define WARDEN_HYPERVISOR_PROCESS_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

typedef struct ChildProcess ChildProcess;

/* How the child starts. Between fork and exec it only does what is asked
 * here, with async-signal-safe calls: signal dispositions to the defaults
 * and an empty mask (the daemon blocks signals for sd-event), then
 * optionally a session of its own, an affinity and a working directory,
 * then fds[i] as fd i and every other fd closed. */
#define CHILD_MAX_FDS 8
typedef struct ChildSpawn {
	const char *binary;       /* absolute path, executed as is */
	char *const *argv;
	int fds[CHILD_MAX_FDS];   /* each a valid fd, placed at its index */
	size_t n_fds;             /* at least 3: stdin, stdout, stderr */
	int dir_fd;               /* working directory, or -1 to keep ours */
	const cpu_set_t *cpus;    /* affinity every thread inherits, or NULL */
	bool new_session;         /* setsid(): outlives the daemon's session */
} ChildSpawn;

/* The fd limit children start with where the daemon raised its own (an
 * fd past 1024 breaks a child's select()). Set once, before any spawn. */
void child_set_nofile_limit(const struct rlimit *rl);

/* `what` names the process in exit reasons ("runner", "qemu"). */
int child_new(const char *what, ChildProcess **ret);
/* Closes the pidfd; the process itself is left alone (a cell outlives the
 * daemon). A process of ours that already exited is reaped first. */
ChildProcess *child_free(ChildProcess *p);

/* Fork and exec; returns once the exec succeeded (bounded), with the pid
 * and a pidfd taken. On failure no child is left behind: the exec error
 * comes back as its errno. -EBUSY if p already holds a process. */
int child_spawn(ChildProcess *p, const ChildSpawn *how);
/* Watch a process that is not our child (a cell found after a daemon
 * restart). -ENOENT if it is gone already. */
int child_adopt(ChildProcess *p, pid_t pid);

/* If the pidfd polls readable within timeout_ms (0: now), collect the
 * exit status (our child) and remember how it ended. Returns whether the
 * process is known to have exited. */
bool child_reap(ChildProcess *p, int timeout_ms);
/* SIGKILL, then reap within timeout_ms: 0 once exited, -ETIMEDOUT not. A
 * process that already exited, or none, is 0. */
int child_kill(ChildProcess *p, int timeout_ms);

pid_t child_pid(const ChildProcess *p);  /* 0 if none */
int child_pidfd(const ChildProcess *p);  /* -1 if none */
bool child_exited(const ChildProcess *p);
/* Its exit status (128 + the signal when killed); -1 while it runs or
 * when it is not our child. */
int child_exit_code(const ChildProcess *p);
/* "qemu exited with status 1", "runner killed by signal 9", "qemu exited"
 * (not our child: no status); "" while it runs. */
const char *child_exit_reason(const ChildProcess *p);

#endif /* WARDEN_HYPERVISOR_PROCESS_H */
