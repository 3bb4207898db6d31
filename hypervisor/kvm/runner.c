/* SPDX-License-Identifier: MIT */
/*
 * warden-kvm: the runner of one cell on the in-tree KVM hypervisor.
 *
 * One process per cell, in its own session, so it outlives a daemon that
 * crashes or restarts; the daemon re-adopts it through the control socket.
 * The main thread runs the control loop; each vCPU has a thread pinned to
 * its CPU. See runner.h for the files and README.md for the protocol.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../api/warden/kvm.h"
#include "vmm.h"

#define MAX_CLIENTS 8

typedef struct Runner {
	Vmm vmm;
	int lock_fd;
	int listen_fd;
	int signal_fd;
	int ready_fd;
	int clients[MAX_CLIENTS];
} Runner;

static void logf_(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const char *name, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "warden-kvm[%d] %s: ", getpid(), name ? name : "?");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

#define log_msg(r, ...) logf_((r)->vmm.name, __VA_ARGS__)

static int parse_u64(const char *s, uint64_t *ret)
{
	char *end;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 0);
	if (errno || *end)
		return -EINVAL;
	*ret = x;
	return 0;
}

/* "A:B[:C]" into up to three numbers; returns how many were present. */
static int parse_triple(const char *s, uint64_t out[3])
{
	char buf[128];
	char *save = NULL;
	int n = 0;

	if (snprintf(buf, sizeof(buf), "%s", s) >= (int)sizeof(buf))
		return -EINVAL;
	for (char *t = strtok_r(buf, ":", &save); t; t = strtok_r(NULL, ":", &save)) {
		if (n == 3 || parse_u64(t, &out[n]) < 0)
			return -EINVAL;
		n++;
	}
	return n;
}

static int parse_cpus(Vmm *v, const char *s)
{
	char buf[512];
	char *save = NULL;

	if (snprintf(buf, sizeof(buf), "%s", s) >= (int)sizeof(buf))
		return -EINVAL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		uint64_t a, b;
		char *dash = strchr(t, '-');
		if (dash) {
			*dash = 0;
			if (parse_u64(t, &a) < 0 || parse_u64(dash + 1, &b) < 0 || b < a)
				return -EINVAL;
		} else if (parse_u64(t, &a) < 0) {
			return -EINVAL;
		} else {
			b = a;
		}
		for (uint64_t c = a; c <= b; c++) {
			if (c >= CPU_SETSIZE || v->n_cpus == VMM_MAX_CPUS)
				return -EINVAL;
			for (size_t i = 0; i < v->n_cpus; i++)
				if (v->cpus[i] == c)
					return -EINVAL;
			v->cpus[v->n_cpus++] = (unsigned)c;
		}
	}
	return v->n_cpus ? 0 : -EINVAL;
}

/* The spec's "realtime" (cyclictest -p and -m): memory locked, vCPU
 * threads SCHED_FIFO. A host that refuses (no CAP_SYS_NICE or
 * CAP_IPC_LOCK, RLIMIT_MEMLOCK) gets a log line and a normal cell. */
static void realtime(Runner *rn)
{
	Vmm *v = &rn->vmm;

	if (v->mlock && mlockall(MCL_CURRENT | MCL_FUTURE) < 0)
		log_msg(rn, "mlockall failed, memory not locked: %s", strerror(errno));
	if (!v->rt_priority)
		return;
	for (size_t i = 0; i < v->n_cpus; i++) {
		struct sched_param sp = { .sched_priority = (int)v->rt_priority };
		int r = pthread_setschedparam(v->vcpus[i].thread, SCHED_FIFO, &sp);

		if (r) {
			log_msg(rn, "SCHED_FIFO %u refused for vCPU %zu, running it normally: %s",
				v->rt_priority, i, strerror(r));
			return;
		}
	}
	log_msg(rn, "vCPU threads SCHED_FIFO %u%s", v->rt_priority, v->mlock ? ", memory locked" : "");
}

static bool overlaps(uint64_t a, uint64_t as, uint64_t b, uint64_t bs)
{
	return a < b + bs && b < a + as;
}

static int validate(Vmm *v, const char **what)
{
	const uint64_t page = 4096;

	*what = "name, dir, cpus, ram, comm and entry are required";
	if (!v->name || !v->dir || !v->n_cpus || !v->n_ram || !v->comm_size)
		return -EINVAL;
	*what = "comm region must be page-aligned and hold struct warden_comm";
	if (v->comm_size < WARDEN_COMM_SIZE || v->comm_size % page || v->comm_gpa % page)
		return -EINVAL;
	for (size_t i = 0; i < v->n_ram; i++) {
		VmmRam *m = &v->ram[i];
		*what = "ram regions must be page-aligned and non-empty";
		if (!m->size || m->size % page || m->gpa % page || m->gpa + m->size < m->gpa)
			return -EINVAL;
		*what = "ram regions overlap each other or the comm region";
		if (overlaps(m->gpa, m->size, v->comm_gpa, v->comm_size))
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (overlaps(m->gpa, m->size, v->ram[j].gpa, v->ram[j].size))
				return -EINVAL;
	}
	*what = "a ram region must start at guest-physical 0 (page tables, boot info)";
	bool zero = false;
	for (size_t i = 0; i < v->n_ram; i++)
		zero |= v->ram[i].gpa == 0 && v->ram[i].size >= WARDEN_KVM_IMAGE_MIN;
	if (!zero)
		return -EINVAL;
	return 0;
}

static int parse_args(Runner *rn, int argc, char **argv, const char **what)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "dir", required_argument, NULL, 'd' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "ram", required_argument, NULL, 'r' },
		{ "comm", required_argument, NULL, 'm' },
		{ "image", required_argument, NULL, 'i' },
		{ "entry", required_argument, NULL, 'e' },
		{ "period-ms", required_argument, NULL, 'p' },
		{ "inject", no_argument, NULL, 'j' },
		{ "args", required_argument, NULL, 'a' },
		{ "ready-fd", required_argument, NULL, 'R' },
		{ "rt-priority", required_argument, NULL, 'P' },
		{ "mlock", no_argument, NULL, 'L' },
		{}
	};
	Vmm *v = &rn->vmm;
	uint64_t x[3], n;
	int c, k;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
		switch (c) {
		case 'n':
			v->name = optarg;
			*what = "bad --name";
			if (!*optarg || strchr(optarg, '/'))
				return -EINVAL;
			break;
		case 'd':
			v->dir = optarg;
			break;
		case 'c':
			*what = "bad --cpus";
			if (parse_cpus(v, optarg) < 0)
				return -EINVAL;
			break;
		case 'r':
			*what = "bad --ram VIRT:SIZE[:PHYS]";
			k = parse_triple(optarg, x);
			if (k < 2 || v->n_ram == VMM_MAX_RAM)
				return -EINVAL;
			v->ram[v->n_ram++] = (VmmRam){ .gpa = x[0], .size = x[1],
						       .phys = k == 3 ? x[2] : x[0] };
			break;
		case 'm':
			*what = "bad --comm VIRT:SIZE";
			if (parse_triple(optarg, x) != 2)
				return -EINVAL;
			v->comm_gpa = x[0];
			v->comm_size = x[1];
			break;
		case 'i': {
			*what = "bad --image PATH@ADDR";
			char *at = strrchr(optarg, '@');
			if (!at || at == optarg || v->n_images == VMM_MAX_IMAGES ||
			    parse_u64(at + 1, &n) < 0)
				return -EINVAL;
			*at = 0;
			v->images[v->n_images++] = (VmmImage){ .path = optarg, .addr = n };
			break;
		}
		case 'e':
			*what = "bad --entry";
			if (parse_u64(optarg, &v->entry) < 0)
				return -EINVAL;
			break;
		case 'p':
			*what = "bad --period-ms";
			if (parse_u64(optarg, &n) < 0 || n == 0 || n > UINT32_MAX)
				return -EINVAL;
			v->period_ms = (uint32_t)n;
			break;
		case 'j':
			v->boot_flags |= WARDEN_FLAG_INJECT;
			break;
		case 'a':
			*what = "--args too long";
			if (strlen(optarg) >= WARDEN_BOOT_ARGS_LEN)
				return -EINVAL;
			v->args = optarg;
			break;
		case 'P':
			*what = "bad --rt-priority (1..99)";
			if (parse_u64(optarg, &n) < 0 || n < 1 || n > 99)
				return -EINVAL;
			v->rt_priority = (unsigned)n;
			break;
		case 'L':
			v->mlock = true;
			break;
		case 'R':
			*what = "bad --ready-fd";
			if (parse_u64(optarg, &n) < 0 || n > 1024)
				return -EINVAL;
			rn->ready_fd = (int)n;
			break;
		default:
			*what = "unknown option";
			return -EINVAL;
		}
	}
	*what = "unexpected argument";
	if (optind != argc)
		return -EINVAL;
	return validate(v, what);
}

static void ready(Runner *rn, int err, const char *what)
{
	char buf[256];
	int n;

	if (rn->ready_fd < 0)
		return;
	if (err == 0)
		n = snprintf(buf, sizeof(buf), "ok\n");
	else
		n = snprintf(buf, sizeof(buf), "err %d %s\n", err, what);
	(void)!write(rn->ready_fd, buf, (size_t)n);
	close(rn->ready_fd);
	rn->ready_fd = -1;
}

static int take_lock(Runner *rn)
{
	char buf[32];

	rn->lock_fd = openat(rn->vmm.dir_fd, WARDEN_KVM_FILE_PID,
			     O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (rn->lock_fd < 0)
		return -errno;
	if (flock(rn->lock_fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EEXIST : -errno;
	int n = snprintf(buf, sizeof(buf), "%d\n", getpid());
	if (ftruncate(rn->lock_fd, 0) < 0 || pwrite(rn->lock_fd, buf, (size_t)n, 0) != n)
		return -errno;
	return 0;
}

static int listen_control(Runner *rn)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	/* Relative to the cell directory (our cwd), so long runtime paths
	 * never hit the sun_path limit. We hold the lock: a leftover socket
	 * belongs to a dead runner. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", WARDEN_KVM_FILE_CONTROL);
	(void)unlink(WARDEN_KVM_FILE_CONTROL);
	rn->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (rn->listen_fd < 0)
		return -errno;
	if (bind(rn->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	if (listen(rn->listen_fd, MAX_CLIENTS) < 0)
		return -errno;
	return 0;
}

static int send_fds(int fd, const char *msg, const int *fds, size_t n)
{
	char cbuf[CMSG_SPACE(sizeof(int) * _WARDEN_KVM_FD_MAX)] = { 0 };
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = strlen(msg) };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cbuf,
		.msg_controllen = CMSG_SPACE(sizeof(int) * n),
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
	return sendmsg(fd, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* Stop everything and publish the final state before the process goes.
 * The VM fd closes with the process, after the reply: that teardown is
 * slow and nobody should wait for it. */
static void teardown(Runner *rn, const char *reason)
{
	Vmm *v = &rn->vmm;

	pthread_mutex_lock(&v->lock);
	(void)vmm_stop_locked(v);
	console_flush(v);
	status_set_state_locked(v, BACKEND_CELL_GONE, reason);
	pthread_mutex_unlock(&v->lock);
	(void)unlink(WARDEN_KVM_FILE_CONTROL);
	(void)unlink(WARDEN_KVM_FILE_PID);
	close(rn->lock_fd); /* a new runner for this cell may start now */
	rn->lock_fd = -1;
}

static int stop_or_fail_locked(Vmm *v)
{
	int r = vmm_stop_locked(v);

	if (r < 0)
		status_set_state_locked(v, BACKEND_CELL_FAILED, "vCPU did not stop");
	return r;
}

static int do_boot_locked(Vmm *v, const char **what)
{
	int r = vmm_prepare_boot(v);

	if (r < 0) {
		*what = "cannot set vCPU registers";
		status_set_state_locked(v, BACKEND_CELL_FAILED, "cannot set vCPU registers");
		return r;
	}
	vmm_go_locked(v);
	status_set_state_locked(v, BACKEND_CELL_RUNNING, "");
	return 0;
}

static int do_load_locked(Vmm *v, char *err, size_t err_len)
{
	int r = vmm_load(v, err, err_len);

	if (r < 0) {
		/* Half-written memory must not be started. */
		v->loaded = false;
		status_set_state_locked(v, BACKEND_CELL_STOPPED, err);
		return r;
	}
	v->loaded = true;
	return 0;
}

/* Handle one request; fills reply. Returns true if the runner must exit
 * after sending it. */
static bool handle_request(Runner *rn, int fd, const char *req, char *reply, size_t n)
{
	Vmm *v = &rn->vmm;
	char err[BACKEND_REASON_LEN] = "";
	const char *what = NULL;
	int r = 0;

	if (strcmp(req, "fds") == 0) {
		int fds[_WARDEN_KVM_FD_MAX] = {
			[WARDEN_KVM_FD_COMM] = v->comm_fd,
			[WARDEN_KVM_FD_EVENT] = v->event_fd,
			[WARDEN_KVM_FD_STATUS] = v->status_fd,
		};
		char msg[64];
		snprintf(msg, sizeof(msg), "ok comm_size=%llu", (unsigned long long)v->comm_size);
		r = send_fds(fd, msg, fds, _WARDEN_KVM_FD_MAX);
		if (r == 0) {
			reply[0] = 0; /* already answered */
			return false;
		}
		what = "cannot send descriptors";
		goto done;
	}
	if (strcmp(req, "status") == 0) {
		pthread_mutex_lock(&v->lock);
		snprintf(reply, n, "ok state=%s boots=%llu pid=%d version=%d",
			 backend_cell_state_to_string(v->state),
			 (unsigned long long)v->status->boots, getpid(),
			 WARDEN_KVM_STATUS_VERSION);
		pthread_mutex_unlock(&v->lock);
		return false;
	}
	if (strcmp(req, "destroy") == 0) {
		teardown(rn, "destroyed");
		snprintf(reply, n, "ok");
		return true;
	}

	pthread_mutex_lock(&v->lock);
	if (strcmp(req, "load") == 0) {
		r = stop_or_fail_locked(v);
		if (r == 0) {
			r = do_load_locked(v, err, sizeof(err));
			what = err;
		}
		if (r == 0)
			status_set_state_locked(v, BACKEND_CELL_CREATED, "");
	} else if (strcmp(req, "start") == 0) {
		if (v->state == BACKEND_CELL_RUNNING) {
			r = -EALREADY;
			what = "already running";
		} else if (!v->loaded) {
			r = -ENOEXEC;
			what = "not loaded";
		} else {
			r = stop_or_fail_locked(v);
			if (r == 0)
				r = do_boot_locked(v, &what);
		}
	} else if (strcmp(req, "stop") == 0) {
		r = stop_or_fail_locked(v);
		if (r == 0 && v->state == BACKEND_CELL_RUNNING)
			status_set_state_locked(v, BACKEND_CELL_STOPPED, "stopped on request");
	} else if (strcmp(req, "reset") == 0) {
		r = stop_or_fail_locked(v);
		if (r == 0) {
			r = do_load_locked(v, err, sizeof(err));
			what = err;
		}
		if (r == 0)
			r = do_boot_locked(v, &what);
	} else {
		r = -EBADMSG;
		what = "unknown request";
	}
	pthread_mutex_unlock(&v->lock);
	if (r == -ETIMEDOUT)
		what = "vCPU did not stop";
done:
	if (r < 0)
		snprintf(reply, n, "err %d %s", -r, what && *what ? what : strerror(-r));
	else
		snprintf(reply, n, "ok");
	return false;
}

static void client_drop(Runner *rn, int i)
{
	close(rn->clients[i]);
	rn->clients[i] = -1;
}

static bool serve_client(Runner *rn, int i)
{
	char req[WARDEN_KVM_MSG_MAX + 1];
	char reply[WARDEN_KVM_MSG_MAX];
	int fd = rn->clients[i];

	ssize_t k = recv(fd, req, WARDEN_KVM_MSG_MAX, MSG_DONTWAIT | MSG_TRUNC);
	if (k < 0 && (errno == EAGAIN || errno == EINTR))
		return false;
	if (k <= 0) {
		client_drop(rn, i);
		return false;
	}
	if ((size_t)k > WARDEN_KVM_MSG_MAX) {
		snprintf(reply, sizeof(reply), "err %d request too long", EMSGSIZE);
		(void)send(fd, reply, strlen(reply), MSG_NOSIGNAL);
		return false;
	}
	req[k] = 0;
	while (k > 0 && (req[k - 1] == '\n' || req[k - 1] == ' '))
		req[--k] = 0;

	bool quit = handle_request(rn, fd, req, reply, sizeof(reply));
	if (reply[0] && send(fd, reply, strlen(reply), MSG_NOSIGNAL) < 0)
		client_drop(rn, i);
	if (quit)
		log_msg(rn, "destroyed on request");
	return quit;
}

static void accept_clients(Runner *rn)
{
	for (;;) {
		int fd = accept4(rn->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		int i;
		for (i = 0; i < MAX_CLIENTS && rn->clients[i] >= 0; i++)
			;
		if (i == MAX_CLIENTS) {
			/* Do not let idle peers starve the daemon: drop the
			 * newest one, it can retry. */
			close(fd);
			continue;
		}
		rn->clients[i] = fd;
	}
}

static int control_loop(Runner *rn)
{
	for (;;) {
		struct pollfd p[2 + MAX_CLIENTS];
		int idx[MAX_CLIENTS];
		nfds_t np = 0;

		p[np++] = (struct pollfd){ .fd = rn->listen_fd, .events = POLLIN };
		p[np++] = (struct pollfd){ .fd = rn->signal_fd, .events = POLLIN };
		for (int i = 0; i < MAX_CLIENTS; i++)
			if (rn->clients[i] >= 0) {
				idx[np - 2] = i;
				p[np++] = (struct pollfd){ .fd = rn->clients[i], .events = POLLIN };
			}
		if (poll(p, np, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[1].revents) {
			struct signalfd_siginfo si;
			if (read(rn->signal_fd, &si, sizeof(si)) == sizeof(si)) {
				log_msg(rn, "terminated by signal %u", si.ssi_signo);
				teardown(rn, "runner terminated");
				return 0;
			}
		}
		for (nfds_t k = 2; k < np; k++)
			if (p[k].revents && serve_client(rn, idx[k - 2]))
				return 0;
		if (p[0].revents)
			accept_clients(rn);
	}
}

static int setup_signals(Runner *rn)
{
	sigset_t ss;

	/* The daemon may have blocked or ignored signals; we inherit that
	 * across exec and want none of it. */
	for (int s = 1; s < _NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			(void)signal(s, SIG_DFL);
	(void)signal(SIGPIPE, SIG_IGN);
	(void)signal(SIGHUP, SIG_IGN);
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	/* vCPU threads unblock SIGUSR1 themselves, the control thread never
	 * takes it. */
	sigaddset(&ss, SIGUSR1);
	if (pthread_sigmask(SIG_SETMASK, &ss, NULL))
		return -EINVAL;
	sigdelset(&ss, SIGUSR1);
	rn->signal_fd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
	return rn->signal_fd < 0 ? -errno : 0;
}

/* Keep the control thread off the cell's CPUs: a vCPU thread woken on the
 * CPU the control thread runs on preempts it, and the reply to "start" or
 * "reset" would then wait for the guest's (emulated) boot code. */
static void avoid_cell_cpus(const Vmm *v)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return;
	for (size_t i = 0; i < v->n_cpus; i++)
		CPU_CLR(v->cpus[i], &set);
	if (CPU_COUNT(&set) > 0)
		(void)sched_setaffinity(0, sizeof(set), &set);
}

static int init_sync(Vmm *v)
{
	pthread_condattr_t ca;

	if (pthread_condattr_init(&ca) || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) ||
	    pthread_cond_init(&v->cond, &ca) || pthread_mutex_init(&v->lock, NULL) ||
	    pthread_mutex_init(&v->console_lock, NULL))
		return -ENOMEM;
	pthread_condattr_destroy(&ca);
	return 0;
}

int main(int argc, char **argv)
{
	static Runner rn = { .ready_fd = -1, .lock_fd = -1, .listen_fd = -1, .signal_fd = -1 };
	Vmm *v = &rn.vmm;
	const char *what = "";
	int r;

	for (int i = 0; i < MAX_CLIENTS; i++)
		rn.clients[i] = -1;
	v->kvm_fd = v->vm_fd = v->comm_fd = v->status_fd = v->event_fd = v->console_fd = -1;
	v->dir_fd = -1;
	v->period_ms = 100;
	v->state = BACKEND_CELL_CREATED;

	r = parse_args(&rn, argc, argv, &what);
	if (r < 0) {
		ready(&rn, -r, what);
		fprintf(stderr, "warden-kvm: %s\n", what);
		return 2;
	}
	/* Our own session: a signal to the daemon's process group or the
	 * daemon's death does not take the cell along. */
	(void)setsid();

	r = setup_signals(&rn);
	what = "cannot set up signals";
	if (r < 0)
		goto fail;
	r = init_sync(v);
	if (r < 0)
		goto fail;
	avoid_cell_cpus(v);
	what = "cannot enter the cell directory";
	if (mkdir(v->dir, 0755) < 0 && errno != EEXIST) {
		r = -errno;
		goto fail;
	}
	if (chdir(v->dir) < 0) {
		r = -errno;
		goto fail;
	}
	v->dir_fd = open(".", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (v->dir_fd < 0) {
		r = -errno;
		goto fail;
	}
	what = "cell is held by another runner";
	r = take_lock(&rn);
	if (r < 0)
		goto fail;
	what = "cannot create the shared files";
	r = status_open(v);
	if (r < 0)
		goto fail;
	what = "cannot create the VM";
	r = vmm_create(v);
	if (r < 0)
		goto fail;
	what = "cannot start vCPU threads";
	r = vcpu_threads_start(v);
	if (r < 0)
		goto fail;
	realtime(&rn);
	what = "cannot listen on the control socket";
	r = listen_control(&rn);
	if (r < 0)
		goto fail;

	log_msg(&rn, "ready: %zu vCPU(s), tsc %llu kHz", v->n_cpus,
		(unsigned long long)v->tsc_khz);
	ready(&rn, 0, NULL);
	r = control_loop(&rn);
	if (r < 0) {
		log_msg(&rn, "control loop failed: %s", strerror(-r));
		teardown(&rn, "control loop failed");
		return 1;
	}
	return 0;

fail:
	log_msg(&rn, "%s: %s", what, strerror(-r));
	ready(&rn, -r, what);
	if (rn.lock_fd >= 0 && r != -EEXIST) {
		(void)unlink(WARDEN_KVM_FILE_CONTROL);
		(void)unlink(WARDEN_KVM_FILE_PID);
	}
	return 1;
}
