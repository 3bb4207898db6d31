/* SPDX-License-Identifier: MIT */
/*
 * The files the daemon reads without asking: the status page (state,
 * counters, console ring), the comm region, console.log; and the event
 * eventfd that wakes the daemon for inmate doorbells and state changes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm.h"

/* What an inmate prints may be anything its memory held: no more than
 * wardend's group reads it (as backend-internal.h's LOG_FILE_MODE). */
#define CONSOLE_FILE_MODE 0640

/* A fresh inode every time: a runner that is still tearing down keeps its
 * own files, and nobody maps a file that is being truncated under it. */
static int create_shared(Vmm *v, const char *name, size_t size, void **ret)
{
	(void)unlinkat(v->dir_fd, name, 0);
	int fd = openat(v->dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0)
		goto fail;
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		goto fail;
	*ret = p;
	return fd;
fail:;
	int r = -errno;
	close(fd);
	return r;
}

int status_open(Vmm *v)
{
	void *p;
	int r;

	r = create_shared(v, WARDEN_KVM_FILE_COMM, v->comm_size, &p);
	if (r < 0)
		return r;
	v->comm_fd = r;
	v->comm = p;

	r = create_shared(v, WARDEN_KVM_FILE_STATUS, sizeof(*v->status), &p);
	if (r < 0)
		return r;
	v->status_fd = r;
	v->status = p;
	v->status->version = WARDEN_KVM_STATUS_VERSION;
	v->status->size = sizeof(*v->status);
	v->status->pid = getpid();
	v->status->n_cpus = (uint32_t)v->n_cpus;
	v->status->state = BACKEND_CELL_CREATED;
	v->status->state_mono_ns = now_mono_ns();
	/* The magic goes last: a reader that sees it sees the rest. */
	__atomic_store_n(&v->status->magic, WARDEN_KVM_STATUS_MAGIC, __ATOMIC_RELEASE);

	v->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (v->event_fd < 0)
		return -errno;

	v->console_fd = openat(v->dir_fd, WARDEN_KVM_FILE_CONSOLE,
			       O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, CONSOLE_FILE_MODE);
	if (v->console_fd < 0)
		return -errno;
	return 0;
}

void status_notify(Vmm *v)
{
	uint64_t one = 1;

	(void)!write(v->event_fd, &one, sizeof(one));
}

void status_count(uint64_t *counter)
{
	__atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

void status_set_state_locked(Vmm *v, BackendCellState s, const char *reason)
{
	struct warden_kvm_status *st = v->status;

	v->state = s;
	__atomic_store_n(&st->seq, st->seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	st->state = s;
	snprintf(st->reason, sizeof(st->reason), "%s", reason ? reason : "");
	st->state_mono_ns = now_mono_ns();
	if (s == BACKEND_CELL_RUNNING)
		st->boots++;
	__atomic_store_n(&st->seq, st->seq + 1, __ATOMIC_RELEASE);
	status_notify(v);
}

static void console_log_write(Vmm *v, const char *buf, size_t n)
{
	if (v->console_fd < 0 || n == 0)
		return;
	/* Bounded: one rotation keeps the previous megabyte for inspection. */
	if (v->console_log_size + n > VMM_CONSOLE_LOG_MAX) {
		char old[64];
		snprintf(old, sizeof(old), "%s.1", WARDEN_KVM_FILE_CONSOLE);
		(void)renameat(v->dir_fd, WARDEN_KVM_FILE_CONSOLE, v->dir_fd, old);
		int fd = openat(v->dir_fd, WARDEN_KVM_FILE_CONSOLE,
				O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, CONSOLE_FILE_MODE);
		close(v->console_fd);
		v->console_fd = fd;
		v->console_log_size = 0;
		if (fd < 0)
			return;
	}
	if (write(v->console_fd, buf, n) > 0)
		v->console_log_size += n;
}

void console_put(Vmm *v, const uint8_t *buf, size_t n)
{
	struct warden_kvm_status *st = v->status;

	pthread_mutex_lock(&v->console_lock);
	uint64_t head = st->console_head;
	for (size_t i = 0; i < n; i++) {
		st->console[(head + i) & (WARDEN_KVM_CONSOLE_SIZE - 1)] = (char)buf[i];
		v->line[v->line_len++] = (char)buf[i];
		/* console.log gets whole lines: one write per line, not per
		 * byte, since every byte is already a full VM exit. */
		if (buf[i] == '\n' || v->line_len == sizeof(v->line)) {
			console_log_write(v, v->line, v->line_len);
			v->line_len = 0;
		}
	}
	__atomic_store_n(&st->console_head, head + n, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&v->console_lock);
}

void console_flush(Vmm *v)
{
	pthread_mutex_lock(&v->console_lock);
	console_log_write(v, v->line, v->line_len);
	v->line_len = 0;
	pthread_mutex_unlock(&v->console_lock);
}
