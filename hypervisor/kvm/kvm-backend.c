/* SPDX-License-Identifier: MIT */
/*
 * The kvm backend as wardend sees it: every cell is a warden-kvm runner
 * process. Creating a cell spawns one; adopting re-attaches to one that
 * outlived a daemon restart. State, counters and console come from the
 * runner's status page (shared memory, no IPC); commands go over the
 * control socket and are answered synchronously, on the daemon's backend
 * workers (backend.h's worker calls), except the in-place reset, whose
 * reply the daemon's loop watches (reset_begin/finish).
 *
 * No logging, every wait bounded; a cell's calls never overlap (the
 * BackendQueue runs one request per cell at a time).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../backend-internal.h"
#include "../celldir.h"
#include "../process.h"
#include "runner.h"

#define READY_TIMEOUT_MS 5000
#define REQUEST_TIMEOUT_MS 5000
#define DESTROY_EXIT_TIMEOUT_MS 2000
#define FAILED_START_REAP_MS 1000 /* it exits right after a failed start */
#define MAX_ARGS (32 + 2 * (BACKEND_MAX_REGIONS + BACKEND_MAX_IMAGES))

typedef struct KvmBackend {
	Backend base;
	char *runtime_dir;
	char *runner_path;
	char *cells_dir;
} KvmBackend;

typedef struct KvmCell {
	BackendCell base;
	KvmBackend *backend;
	char *name;
	char *dir;
	int dir_fd;
	int ctl_fd;
	int event_fd;
	ChildProcess *proc;
	volatile struct warden_comm *comm;
	size_t comm_size;
	const volatile struct warden_kvm_status *status;
	bool destroyed;
} KvmCell;

static const BackendOps kvm_backend_ops;
static const BackendCellOps kvm_cell_ops;

/* ---- backend ------------------------------------------------------- */

int kvm_backend_new(const BackendConfig *cfg, Backend **ret)
{
	KvmBackend *b;

	if (!cfg->runtime_dir || !cfg->runner_path || cfg->runtime_dir[0] != '/')
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->base.ops = &kvm_backend_ops;
	b->runtime_dir = strdup(cfg->runtime_dir);
	b->runner_path = strdup(cfg->runner_path);
	if (asprintf(&b->cells_dir, "%s/cells", cfg->runtime_dir) < 0)
		b->cells_dir = NULL;
	if (!b->runtime_dir || !b->runner_path || !b->cells_dir) {
		kvm_backend_ops.free(&b->base);
		return -ENOMEM;
	}
	*ret = &b->base;
	return 0;
}

static void kvm_backend_free(Backend *base)
{
	KvmBackend *b = (KvmBackend *)base;

	free(b->runtime_dir);
	free(b->runner_path);
	free(b->cells_dir);
	free(b);
}

static int kvm_backend_enable(Backend *base)
{
	KvmBackend *b = (KvmBackend *)base;

	if (access("/dev/kvm", R_OK | W_OK) < 0)
		return -errno;
	if (access(b->runner_path, X_OK) < 0)
		return -errno;
	return backend_mkdir_p(b->cells_dir);
}

static int kvm_backend_disable(Backend *base)
{
	/* Nothing global to undo: each cell is its own process and VM. */
	(void)base;
	return 0;
}

/* ---- control socket ------------------------------------------------ */

static int control_connect(KvmCell *c)
{
	return celldir_connect(c->dir_fd, WARDEN_KVM_FILE_CONTROL, SOCK_SEQPACKET);
}

static int recv_reply(int fd, char *reply, size_t n, int *fds, size_t n_fds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * _WARDEN_KVM_FD_MAX)];
	struct iovec iov = { .iov_base = reply, .iov_len = n - 1 };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cbuf,
		.msg_controllen = sizeof(cbuf),
	};
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t got = 0;

	int k = poll(&p, 1, REQUEST_TIMEOUT_MS);
	if (k < 0)
		return -errno;
	if (k == 0)
		return -ETIMEDOUT;
	ssize_t len = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (len < 0)
		return -errno;
	if (len == 0)
		return -ECONNRESET;
	reply[len] = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k2 = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *in = (int *)CMSG_DATA(cm);
		for (size_t i = 0; i < k2; i++) {
			if (got < n_fds)
				fds[got++] = in[i];
			else
				close(in[i]);
		}
	}
	if (got != n_fds) {
		for (size_t i = 0; i < got; i++)
			close(fds[i]);
		if (n_fds)
			return -EBADMSG;
	}
	return 0;
}

/* "ok ..." is 0, "err N msg" is -N. */
static int parse_reply(const char *reply)
{
	if (strncmp(reply, "ok", 2) == 0 && (reply[2] == 0 || reply[2] == ' ' || reply[2] == '\n'))
		return 0;
	if (strncmp(reply, "err ", 4) == 0) {
		int e = atoi(reply + 4);
		return e > 0 ? -e : -EPROTO;
	}
	return -EPROTO;
}

static int request(KvmCell *c, const char *req, char *reply, size_t n, int *fds, size_t n_fds)
{
	char buf[WARDEN_KVM_MSG_MAX + 1];
	int r;

	if (c->destroyed)
		return -ENODEV;
	if (!reply) {
		reply = buf;
		n = sizeof(buf);
	}
	if (c->ctl_fd < 0) {
		r = control_connect(c);
		if (r < 0)
			return r == -ENOENT ? -ESRCH : r;
		c->ctl_fd = r;
	}
	if (send(c->ctl_fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
		r = -errno;
		goto broken;
	}
	r = recv_reply(c->ctl_fd, reply, n, fds, n_fds);
	if (r < 0)
		goto broken;
	return parse_reply(reply);

broken:
	/* A late reply must never be taken for the answer to the next
	 * request: start over on a fresh connection. */
	backend_close_fd(&c->ctl_fd);
	if (r == -EPIPE || r == -ECONNRESET)
		r = -ESRCH;
	return r;
}

/* ---- cell objects -------------------------------------------------- */

static KvmCell *cell_new(KvmBackend *b, const char *name)
{
	KvmCell *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->base.ops = &kvm_cell_ops;
	c->backend = b;
	c->dir_fd = c->ctl_fd = c->event_fd = -1;
	c->name = strdup(name);
	if (!c->name || asprintf(&c->dir, "%s/%s", b->cells_dir, name) < 0)
		c->dir = NULL;
	if (!c->name || !c->dir || child_new("runner", &c->proc) < 0) {
		free(c->name);
		free(c->dir);
		free(c);
		return NULL;
	}
	return c;
}

static void kvm_cell_free(BackendCell *base)
{
	KvmCell *c = (KvmCell *)base;

	c->proc = child_free(c->proc);
	if (c->comm)
		munmap((void *)c->comm, c->comm_size);
	if (c->status)
		munmap((void *)c->status, sizeof(*c->status));
	backend_close_fd(&c->ctl_fd);
	backend_close_fd(&c->event_fd);
	backend_close_fd(&c->dir_fd);
	free(c->name);
	free(c->dir);
	free(c);
}

/* Take the shared files from a live runner and map them. */
static int cell_attach(KvmCell *c)
{
	char reply[WARDEN_KVM_MSG_MAX + 1];
	int fds[_WARDEN_KVM_FD_MAX];
	unsigned long long comm_size = 0;
	void *p;
	int r;

	r = request(c, "fds", reply, sizeof(reply), fds, _WARDEN_KVM_FD_MAX);
	if (r < 0)
		return r;
	c->event_fd = fds[WARDEN_KVM_FD_EVENT];
	if (sscanf(reply, "ok comm_size=%llu", &comm_size) != 1 || comm_size < WARDEN_COMM_SIZE) {
		r = -EPROTO;
		goto out;
	}
	p = mmap(NULL, comm_size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[WARDEN_KVM_FD_COMM], 0);
	if (p == MAP_FAILED) {
		r = -errno;
		goto out;
	}
	c->comm = p;
	c->comm_size = comm_size;
	p = mmap(NULL, sizeof(*c->status), PROT_READ, MAP_SHARED, fds[WARDEN_KVM_FD_STATUS], 0);
	if (p == MAP_FAILED) {
		r = -errno;
		goto out;
	}
	c->status = p;
	if (__atomic_load_n(&c->status->magic, __ATOMIC_ACQUIRE) != WARDEN_KVM_STATUS_MAGIC ||
	    c->status->version != WARDEN_KVM_STATUS_VERSION ||
	    c->status->size != sizeof(*c->status))
		r = -EPROTO;
out:
	close(fds[WARDEN_KVM_FD_COMM]);
	close(fds[WARDEN_KVM_FD_STATUS]);
	return r;
}

static int build_argv(KvmBackend *b, const KvmCell *c, const BackendCellConfig *cfg,
		      char **argv)
{
	char cpus[BACKEND_MAX_CPUS * 6] = "";
	size_t n = 0, len = 0;
	int r = 0;

	for (size_t i = 0; i < cfg->n_cpus; i++)
		len += (size_t)snprintf(cpus + len, sizeof(cpus) - len, "%s%u",
					i ? "," : "", cfg->cpus[i]);
	r |= backend_append_arg(argv, &n, MAX_ARGS, "%s", b->runner_path);
	r |= backend_append_arg(argv, &n, MAX_ARGS, "--name=%s", c->name);
	r |= backend_append_arg(argv, &n, MAX_ARGS, "--dir=%s", c->dir);
	r |= backend_append_arg(argv, &n, MAX_ARGS, "--cpus=%s", cpus);
	for (size_t i = 0; i < cfg->n_regions; i++) {
		const BackendRegion *m = &cfg->regions[i];
		/* The comm region is the runner's shared file, not RAM. */
		if (m->virt_start == cfg->comm_addr)
			continue;
		r |= backend_append_arg(argv, &n, MAX_ARGS, "--ram=0x%llx:0x%llx:0x%llx",
				(unsigned long long)m->virt_start, (unsigned long long)m->size,
				(unsigned long long)m->phys_start);
	}
	r |= backend_append_arg(argv, &n, MAX_ARGS, "--comm=0x%llx:0x%llx", (unsigned long long)cfg->comm_addr,
			(unsigned long long)cfg->comm_size);
	for (size_t i = 0; i < cfg->n_images; i++)
		r |= backend_append_arg(argv, &n, MAX_ARGS, "--image=%s@0x%llx", cfg->images[i].path,
				(unsigned long long)cfg->images[i].addr);
	r |= backend_append_arg(argv, &n, MAX_ARGS, "--entry=0x%llx", (unsigned long long)cfg->entry);
	r |= backend_append_arg(argv, &n, MAX_ARGS, "--period-ms=%u", cfg->period_ms ? cfg->period_ms : 100);
	if (cfg->allow_inject)
		r |= backend_append_arg(argv, &n, MAX_ARGS, "--inject");
	if (cfg->args)
		r |= backend_append_arg(argv, &n, MAX_ARGS, "--args=%s", cfg->args);
	if (cfg->rt_priority)
		r |= backend_append_arg(argv, &n, MAX_ARGS, "--rt-priority=%u", cfg->rt_priority);
	if (cfg->rt_mlock)
		r |= backend_append_arg(argv, &n, MAX_ARGS, "--mlock");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "--ready-fd=3");
	argv[n] = NULL;
	return r ? -ENOMEM : 0;
}

static int validate_config(const BackendCellConfig *cfg)
{
	if (!backend_name_valid(cfg->name))
		return -EINVAL;
	if (cfg->n_cpus == 0 || cfg->n_cpus > BACKEND_MAX_CPUS || !cfg->cpus)
		return -EINVAL;
	if (cfg->n_regions > BACKEND_MAX_REGIONS || cfg->n_images > BACKEND_MAX_IMAGES)
		return -EINVAL;
	if (cfg->comm_size < WARDEN_COMM_SIZE)
		return -EINVAL;
	for (size_t i = 0; i < cfg->n_images; i++)
		if (!cfg->images[i].path || cfg->images[i].path[0] != '/')
			return -EINVAL;
	if (cfg->args && strlen(cfg->args) >= 256)
		return -EINVAL;
	return 0;
}

/* Wait for the runner's "ok" or "err N msg" on the ready pipe. */
static int wait_ready(int fd)
{
	char buf[256];
	size_t len = 0;
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long elapsed = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
		if (elapsed >= READY_TIMEOUT_MS)
			return -ETIMEDOUT;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int k = poll(&p, 1, (int)(READY_TIMEOUT_MS - elapsed));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -ETIMEDOUT;
		ssize_t m = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (m < 0 && errno == EINTR)
			continue;
		if (m < 0)
			return -errno;
		if (m == 0)
			return -ECHILD; /* died without a word */
		len += (size_t)m;
		buf[len] = 0;
		if (strchr(buf, '\n') || len == sizeof(buf) - 1)
			return parse_reply(buf);
	}
}

static int spawn_runner(KvmBackend *b, KvmCell *c, const BackendCellConfig *cfg)
{
	char *argv[MAX_ARGS] = { 0 };
	int pipefd[2] = { -1, -1 };
	int null_fd = -1, log_fd = -1, r;

	r = build_argv(b, c, cfg, argv);
	if (r < 0)
		goto out;
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		r = -errno;
		goto out;
	}
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	log_fd = openat(c->dir_fd, WARDEN_KVM_FILE_RUNNER_LOG,
			O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, LOG_FILE_MODE);
	if (null_fd < 0 || log_fd < 0) {
		r = -errno;
		goto out;
	}
	/* fd 3 is the ready pipe (--ready-fd=3). The runner pins its vCPU
	 * threads itself and stays in our session. */
	const ChildSpawn how = {
		.binary = b->runner_path,
		.argv = argv,
		.fds = { null_fd, log_fd, log_fd, pipefd[1] },
		.n_fds = 4,
		.dir_fd = -1,
	};
	r = child_spawn(c->proc, &how);
	backend_close_fd(&pipefd[1]);
	if (r < 0)
		goto out;

	r = wait_ready(pipefd[0]);
	if (r == -ETIMEDOUT || r == -EPROTO)
		(void)child_kill(c->proc, FAILED_START_REAP_MS);
	else if (r < 0)
		(void)child_reap(c->proc, FAILED_START_REAP_MS);
out:
	backend_close_fd(&pipefd[0]);
	backend_close_fd(&pipefd[1]);
	backend_close_fd(&null_fd);
	backend_close_fd(&log_fd);
	for (size_t i = 0; argv[i]; i++)
		free(argv[i]);
	return r;
}

static int open_cell_dir(KvmCell *c, bool create)
{
	c->dir_fd = celldir_open(c->dir, create);
	return c->dir_fd < 0 ? c->dir_fd : 0;
}

static int kvm_cell_create(Backend *base, const BackendCellConfig *cfg, BackendCell **ret)
{
	KvmBackend *b = (KvmBackend *)base;
	KvmCell *c;
	int r;

	r = validate_config(cfg);
	if (r < 0)
		return r;
	c = cell_new(b, cfg->name);
	if (!c)
		return -ENOMEM;
	r = open_cell_dir(c, true);
	if (r < 0)
		goto fail;
	r = spawn_runner(b, c, cfg);
	if (r < 0)
		goto fail;
	r = cell_attach(c);
	if (r < 0) {
		(void)request(c, "destroy", NULL, 0, NULL, 0);
		goto fail;
	}
	*ret = &c->base;
	return 0;
fail:
	kvm_cell_free(&c->base);
	return r;
}

static int kvm_cell_adopt(Backend *base, const char *name, BackendCell **ret)
{
	KvmBackend *b = (KvmBackend *)base;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	KvmCell *c;
	int r;

	if (!backend_name_valid(name))
		return -EINVAL;
	c = cell_new(b, name);
	if (!c)
		return -ENOMEM;
	r = open_cell_dir(c, false);
	if (r < 0)
		goto fail;
	r = control_connect(c);
	if (r < 0)
		goto fail;
	c->ctl_fd = r;
	/* The peer credentials name the process that listens, which is
	 * safer than trusting a pid file. */
	if (getsockopt(c->ctl_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		r = -errno;
		goto fail;
	}
	r = child_adopt(c->proc, cred.pid);
	if (r < 0)
		goto fail;
	r = cell_attach(c);
	if (r == -ESRCH)
		r = -ENOENT;
	if (r < 0)
		goto fail;
	if (c->status->state == BACKEND_CELL_GONE) {
		r = -ENOENT;
		goto fail;
	}
	*ret = &c->base;
	return 0;
fail:
	kvm_cell_free(&c->base);
	return r;
}

/* ---- cell operations ----------------------------------------------- */

static int kvm_cell_load(BackendCell *base)
{
	return request((KvmCell *)base, "load", NULL, 0, NULL, 0);
}

static int kvm_cell_start(BackendCell *base)
{
	return request((KvmCell *)base, "start", NULL, 0, NULL, 0);
}

static int kvm_cell_stop(BackendCell *base)
{
	return request((KvmCell *)base, "stop", NULL, 0, NULL, 0);
}

static int kvm_cell_reset(BackendCell *base)
{
	return request((KvmCell *)base, "reset", NULL, 0, NULL, 0);
}

/* The reset as two loop calls: the runner answers in ~0.2 ms, less than
 * a hop to a worker thread and back would cost. */
static int kvm_cell_reset_begin(BackendCell *base)
{
	KvmCell *c = (KvmCell *)base;
	int r;

	if (c->destroyed || child_exited(c->proc))
		return -ESRCH;
	if (c->ctl_fd < 0) {
		/* A unix socket connect to a listening runner does not wait. */
		r = control_connect(c);
		if (r < 0)
			return r == -ENOENT ? -ESRCH : r;
		c->ctl_fd = r;
	}
	if (send(c->ctl_fd, "reset", 5, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		r = -errno;
		backend_close_fd(&c->ctl_fd);
		return r == -EPIPE || r == -ECONNRESET ? -ESRCH : r;
	}
	return c->ctl_fd;
}

static int kvm_cell_reset_finish(BackendCell *base)
{
	KvmCell *c = (KvmCell *)base;
	char reply[WARDEN_KVM_MSG_MAX + 1];
	ssize_t n;

	if (c->ctl_fd < 0)
		return -ESRCH;
	n = recv(c->ctl_fd, reply, sizeof(reply) - 1, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return -EAGAIN;
	if (n <= 0) {
		int r = n < 0 ? -errno : -ESRCH;
		/* A late reply must never answer the next request. */
		backend_close_fd(&c->ctl_fd);
		return r == -ECONNRESET ? -ESRCH : r;
	}
	reply[n] = 0;
	return parse_reply(reply);
}

static int kvm_cell_mail(BackendCell *base, uint32_t cmd, uint32_t arg)
{
	KvmCell *c = (KvmCell *)base;

	if (c->destroyed)
		return -ENODEV;
	/* No daemon-to-inmate doorbell on this hypervisor: the inmate reads
	 * its mailbox on every beat. */
	return backend_comm_post(c->comm, cmd, arg);
}

static int kvm_cell_destroy(BackendCell *base)
{
	KvmCell *c = (KvmCell *)base;
	int r;

	if (c->destroyed)
		return 0;
	if (child_reap(c->proc, 0)) {
		c->destroyed = true;
		return 0;
	}
	r = request(c, "destroy", NULL, 0, NULL, 0);
	if (r == -ESRCH)
		r = 0; /* died meanwhile: just as gone */
	if (r == 0) {
		c->destroyed = true;
		backend_close_fd(&c->ctl_fd);
		/* A worker call: wait for the exit the reply promised, so the
		 * runner is reaped now and never lingers as a zombie. */
		(void)child_reap(c->proc, DESTROY_EXIT_TIMEOUT_MS);
	}
	return r;
}

static const char *kvm_cell_name(const BackendCell *base)
{
	return ((const KvmCell *)base)->name;
}

static int kvm_cell_status(BackendCell *base, BackendCellStatus *ret)
{
	KvmCell *c = (KvmCell *)base;
	const volatile struct warden_kvm_status *st = c->status;
	BackendCellStatus s = { 0 };
	uint32_t seq = 0;
	int tries;

	for (tries = 0; tries < 1000; tries++) {
		seq = __atomic_load_n(&st->seq, __ATOMIC_ACQUIRE);
		if (seq & 1)
			continue;
		s.state = (BackendCellState)st->state;
		for (size_t i = 0; i < sizeof(s.reason); i++)
			s.reason[i] = st->reason[i];
		s.state_mono_ns = st->state_mono_ns;
		s.boots = st->boots;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&st->seq, __ATOMIC_RELAXED) == seq)
			break;
	}
	if (tries == 1000)
		return -EAGAIN;
	s.reason[sizeof(s.reason) - 1] = 0;
	if (s.state < 0 || s.state >= _BACKEND_CELL_STATE_MAX)
		return -EPROTO;
	s.pid = child_pid(c->proc);
	s.exits = __atomic_load_n(&st->exits, __ATOMIC_RELAXED);
	s.exits_io = __atomic_load_n(&st->exits_io, __ATOMIC_RELAXED);
	s.exits_mmio = __atomic_load_n(&st->exits_mmio, __ATOMIC_RELAXED);
	s.exits_hlt = __atomic_load_n(&st->exits_hlt, __ATOMIC_RELAXED);
	s.exits_sleep = __atomic_load_n(&st->exits_sleep, __ATOMIC_RELAXED);

	/* No poll() of the pidfd here: this runs on every sample, and the
	 * caller watches the pidfd itself and says when it fired (reap). */
	if (child_exited(c->proc) && s.state != BACKEND_CELL_GONE) {
		/* Died without saying so (SIGKILL, crash): the page is
		 * stale, the process tells the truth. */
		s.state = BACKEND_CELL_GONE;
		snprintf(s.reason, sizeof(s.reason), "%s", child_exit_reason(c->proc));
		s.state_mono_ns = 0;
	}
	if (s.state == BACKEND_CELL_GONE && child_exited(c->proc))
		s.pid = 0;
	*ret = s;
	return 0;
}

static volatile struct warden_comm *kvm_cell_comm(BackendCell *base)
{
	return ((KvmCell *)base)->comm;
}

static ssize_t kvm_cell_console_read(BackendCell *base, char *buf, size_t n)
{
	KvmCell *c = (KvmCell *)base;
	const volatile struct warden_kvm_status *st = c->status;
	const uint64_t size = WARDEN_KVM_CONSOLE_SIZE;

	uint64_t head = __atomic_load_n(&st->console_head, __ATOMIC_ACQUIRE);
	uint64_t take = head < size ? head : size;
	if (take > n)
		take = n;
	uint64_t start = head - take;
	for (uint64_t i = 0; i < take; i++)
		buf[i] = st->console[(start + i) & (size - 1)];
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	/* The runner may have lapped the oldest bytes while we copied. */
	uint64_t head2 = __atomic_load_n(&st->console_head, __ATOMIC_RELAXED);
	if (head2 - start > size) {
		uint64_t lost = head2 - start - size;
		if (lost >= take)
			return 0;
		memmove(buf, buf + lost, take - lost);
		take -= lost;
	}
	return (ssize_t)take;
}

static int kvm_cell_event_fd(BackendCell *base)
{
	KvmCell *c = (KvmCell *)base;
	return c->event_fd >= 0 ? c->event_fd : -EBADF;
}

static int kvm_cell_event_ack(BackendCell *base)
{
	KvmCell *c = (KvmCell *)base;
	uint64_t v;

	/* One read resets an eventfd; it is non-blocking on both sides. */
	if (read(c->event_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

static void kvm_cell_reap(BackendCell *base)
{
	(void)child_reap(((KvmCell *)base)->proc, 0);
}

static int kvm_cell_pidfd(BackendCell *base)
{
	return child_pidfd(((KvmCell *)base)->proc);
}

static const BackendOps kvm_backend_ops = {
	.kind = "kvm",
	/* in place: 0.2 ms against 2.8 ms for a new runner */
	.restart_in_place = true,
	.free = kvm_backend_free,
	.enable = kvm_backend_enable,
	.disable = kvm_backend_disable,
	.cell_create = kvm_cell_create,
	.cell_adopt = kvm_cell_adopt,
};

static const BackendCellOps kvm_cell_ops = {
	.free = kvm_cell_free,
	.load = kvm_cell_load,
	.start = kvm_cell_start,
	.stop = kvm_cell_stop,
	.reset = kvm_cell_reset,
	.mail = kvm_cell_mail,
	.destroy = kvm_cell_destroy,
	.name = kvm_cell_name,
	.status = kvm_cell_status,
	.comm = kvm_cell_comm,
	.console_read = kvm_cell_console_read,
	.event_fd = kvm_cell_event_fd,
	.event_ack = kvm_cell_event_ack,
	.pidfd = kvm_cell_pidfd,
	.reap = kvm_cell_reap,
	.reset_begin = kvm_cell_reset_begin,
	.reset_finish = kvm_cell_reset_finish,
};
