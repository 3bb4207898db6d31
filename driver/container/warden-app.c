/* SPDX-License-Identifier: MIT */
/*
 * libwarden-app: see warden-app.h. The write order follows what the
 * bare-metal inmates do (driver/inmate/heartbeat.c): the region is hidden
 * (magic 0) while it is rewritten, seq is written last with release
 * semantics, the reason under its seqcount. The container shares the
 * host's CLOCK_MONOTONIC, so beats carry WARDEN_FLAG_HOST_CLOCK.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "warden-app.h"

#define INMATE_BYTES WARDEN_COMM_MAILBOX_OFFSET

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int warden_app_register(struct warden_app *a, const char *path, uint32_t period_ms)
{
	volatile struct warden_comm *c;
	const char *env;
	uint64_t old_seq = 0;
	struct stat st;
	void *p;
	int fd;

	memset(a, 0, sizeof(*a));
	if (!path)
		path = getenv(WARDEN_APP_ENV_COMM);
	if (!path || !*path)
		path = WARDEN_APP_COMM_PATH;
	if (!period_ms && (env = getenv(WARDEN_APP_ENV_PERIOD)))
		period_ms = (uint32_t)strtoul(env, NULL, 10);
	if (!period_ms)
		period_ms = 10;
	env = getenv(WARDEN_APP_ENV_INJECT);
	a->inject = env && strcmp(env, "1") == 0;

	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || st.st_size < (off_t)WARDEN_COMM_SIZE) {
		close(fd);
		return -EPROTO;
	}
	p = mmap(NULL, WARDEN_COMM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -errno;
	c = p;
	a->comm = c;
	a->period_ms = period_ms;
	a->start_ns = mono_ns();

	/* seq keeps growing across restarts of the same region. */
	if (c->magic == WARDEN_COMM_MAGIC)
		old_seq = c->seq;
	__atomic_store_n(&c->magic, 0, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memset((void *)((uintptr_t)c + sizeof(c->magic)), 0, INMATE_BYTES - sizeof(c->magic));
	c->abi = WARDEN_COMM_ABI;
	c->size = WARDEN_COMM_SIZE;
	c->period_ms = period_ms;
	c->flags = WARDEN_FLAG_HOST_CLOCK | (a->inject ? WARDEN_FLAG_INJECT : 0);
	c->seq = old_seq;
	a->seq = old_seq;
	/* Whatever the mailbox holds predates this process. */
	a->ack_seq = __atomic_load_n(&c->cmd_seq, __ATOMIC_ACQUIRE);
	c->ack_seq = a->ack_seq;
	c->state = WARDEN_INMATE_RUNNING;
	c->uptime_ns = 0;
	c->beat_mono_ns = a->start_ns;
	__atomic_store_n(&c->magic, WARDEN_COMM_MAGIC, __ATOMIC_RELEASE);
	__atomic_store_n(&c->seq, ++a->seq, __ATOMIC_RELEASE);
	return 0;
}

static void ack(struct warden_app *a, uint64_t seq, uint32_t cmd)
{
	a->comm->ack_cmd = cmd;
	__atomic_store_n(&a->comm->ack_seq, seq, __ATOMIC_RELEASE);
	a->ack_seq = seq;
}

enum warden_app_request warden_app_beat(struct warden_app *a, uint32_t *arg)
{
	volatile struct warden_comm *c = a->comm;
	uint64_t now = mono_ns(), seq, again;
	uint32_t cmd, carg;

	if (!c)
		return WARDEN_APP_NONE;
	c->uptime_ns = now - a->start_ns;
	c->beat_mono_ns = now;
	__atomic_store_n(&c->seq, ++a->seq, __ATOMIC_RELEASE);

	seq = __atomic_load_n(&c->cmd_seq, __ATOMIC_ACQUIRE);
	for (;;) {
		if (seq == a->ack_seq)
			return WARDEN_APP_NONE;
		cmd = c->cmd;
		carg = c->cmd_arg;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		again = __atomic_load_n(&c->cmd_seq, __ATOMIC_ACQUIRE);
		if (again == seq)
			break;
		seq = again;
	}
	ack(a, seq, cmd);
	if (cmd == WARDEN_CMD_SHUTDOWN) {
		c->state = WARDEN_INMATE_STOPPING;
		return WARDEN_APP_SHUTDOWN;
	}
	if (cmd == WARDEN_CMD_INJECT && a->inject) {
		if (arg)
			*arg = carg;
		return WARDEN_APP_INJECT;
	}
	return WARDEN_APP_NONE;
}

void warden_app_degrade(struct warden_app *a, const char *app)
{
	volatile struct warden_comm *c = a->comm;
	size_t n = app ? strnlen(app, WARDEN_COMM_APP_LEN - 1) : 0;

	if (!c)
		return;
	for (size_t i = 0; i < WARDEN_COMM_APP_LEN; i++)
		c->degraded_app[i] = i < n ? app[i] : '\0';
	__atomic_store_n(&c->state, WARDEN_INMATE_DEGRADED, __ATOMIC_RELEASE);
}

void warden_app_recover(struct warden_app *a)
{
	if (a->comm)
		__atomic_store_n(&a->comm->state, WARDEN_INMATE_RUNNING, __ATOMIC_RELEASE);
}

static void write_reason(volatile struct warden_comm *c, const char *reason, uint32_t code)
{
	uint32_t s = (c->reason_seq + 1) & ~1u;
	size_t n = reason ? strnlen(reason, WARDEN_COMM_REASON_LEN - 1) : 0;

	__atomic_store_n(&c->reason_seq, s + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	for (size_t i = 0; i < WARDEN_COMM_REASON_LEN; i++)
		c->reason[i] = i < n ? reason[i] : '\0';
	c->reason_code = code;
	c->event_mono_ns = mono_ns();
	__atomic_store_n(&c->reason_seq, s + 2, __ATOMIC_RELEASE);
}

void warden_app_panic(struct warden_app *a, const char *reason, uint32_t code)
{
	if (!a->comm)
		return;
	write_reason(a->comm, reason, code);
	__atomic_store_n(&a->comm->state, WARDEN_INMATE_PANICKED, __ATOMIC_RELEASE);
}

void warden_app_halt(struct warden_app *a, const char *reason)
{
	if (!a->comm)
		return;
	write_reason(a->comm, reason, 0);
	__atomic_store_n(&a->comm->state, WARDEN_INMATE_HALTED, __ATOMIC_RELEASE);
}

void warden_app_close(struct warden_app *a)
{
	if (a->comm)
		munmap((void *)a->comm, WARDEN_COMM_SIZE);
	a->comm = NULL;
}
