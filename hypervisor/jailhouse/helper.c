/* SPDX-License-Identifier: MIT */
/*
 * Both ends of the Jailhouse helper's socket (helper.h). The server half
 * runs in warden-jailhouse (helper-main.c) and in tests, with a recording
 * driver behind the seam; the client half runs on the backend's workers.
 */
#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cell-config.h"
#include "sysfs.h"

#define MAX_SHARED 64

/* ---- fds over the socket --------------------------------------------- */

static int send_msg(int fd, const void *buf, size_t n, const int *fds, size_t n_fds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * JH_MAX_IMAGES)];
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = n };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (n_fds > JH_MAX_IMAGES)
		return -EINVAL;
	if (n_fds) {
		struct cmsghdr *cm;
		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
	}
	for (;;) {
		if (sendmsg(fd, &mh, MSG_NOSIGNAL) >= 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

/* One message; its fds into fds[] (the rest closed). 0 at EOF. */
static ssize_t recv_msg(int fd, void *buf, size_t n, int *fds, size_t max_fds, size_t *ret_n_fds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * JH_MAX_IMAGES)];
	struct iovec iov = { .iov_base = buf, .iov_len = n };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	size_t got = 0;
	ssize_t k;

	do
		k = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return -errno;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t m = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *in = (int *)CMSG_DATA(cm);
		for (size_t i = 0; i < m; i++) {
			if (got < max_fds)
				fds[got++] = in[i];
			else
				close(in[i]);
		}
	}
	*ret_n_fds = got;
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		for (size_t i = 0; i < got; i++)
			close(fds[i]);
		*ret_n_fds = 0;
		return -EMSGSIZE;
	}
	return k;
}

/* ---- the server --------------------------------------------------------- */

typedef struct Shared {
	char cell[JH_CELL_NAME_LEN];
	uint64_t start, size;
} Shared;

typedef struct Server {
	JhDriver *driver;
	const char *mem_path;
	const char *sysfs_root;
	Shared shared[MAX_SHARED];
	size_t n_shared;
} Server;

/* What a created cell shares with the root cell: the comm regions the
 * daemon may map. */
static void remember_shared(Server *s, const void *cfg, size_t size)
{
	JhCellConfig *c = NULL;
	char err[256];

	if (jh_cell_config_decode(cfg, size, JH_ARCH_UNSPEC, &c, err, sizeof(err)) < 0)
		return;
	for (uint32_t i = 0; i < c->n_memory && s->n_shared < MAX_SHARED; i++) {
		const JhMemory *m = &c->memory[i];
		if (!(m->flags & (JH_MEM_ROOTSHARED | JH_MEM_COMM_REGION)) || !m->size)
			continue;
		Shared *sh = &s->shared[s->n_shared++];
		memcpy(sh->cell, c->name, sizeof(sh->cell));
		sh->start = m->phys_start;
		sh->size = m->size;
	}
	jh_cell_config_free(c);
}

static void forget_shared(Server *s, const char *cell)
{
	size_t j = 0;
	for (size_t i = 0; i < s->n_shared; i++)
		if (strncmp(s->shared[i].cell, cell, JH_CELL_NAME_LEN) != 0)
			s->shared[j++] = s->shared[i];
	s->n_shared = j;
}

/* A cell an earlier helper created: sysfs must show it with the CPUs
 * the .cell names. */
static int register_cell(Server *s, const void *cfg, size_t size)
{
	JhCellConfig *c = NULL;
	JhCellInfo *info = NULL;
	char err[256];
	int id, r;

	if (jh_cell_config_decode(cfg, size, JH_ARCH_UNSPEC, &c, err, sizeof(err)) < 0)
		return -EINVAL;
	r = jh_sysfs_find_cell(s->sysfs_root, c->name, &id);
	if (r >= 0) {
		info = calloc(1, sizeof(*info));
		r = info ? jh_sysfs_read_cell(s->sysfs_root, id, info) : -ENOMEM;
	}
	if (r == -ENOENT || r == -ENOTDIR)
		r = -ENOENT;
	for (unsigned cpu = 0; r >= 0 && cpu < JH_MAX_CPUS; cpu++)
		if (jh_cpu_set_has(&info->cpus, cpu) != jh_cell_config_has_cpu(c, cpu))
			r = -EPERM;
	if (r >= 0) {
		forget_shared(s, c->name);
		remember_shared(s, cfg, size);
	}
	free(info);
	jh_cell_config_free(c);
	return r;
}

static bool shared_allows(const Server *s, uint64_t phys, uint64_t size)
{
	for (size_t i = 0; i < s->n_shared; i++) {
		const Shared *sh = &s->shared[i];
		if (size && phys >= sh->start && phys - sh->start <= sh->size && size <= sh->size - (phys - sh->start))
			return true;
	}
	return false;
}

static int handle(Server *s, const struct jh_helper_request *rq, const int *fds, size_t n_fds, int *ret_fd)
{
	void *maps[JH_MAX_IMAGES] = { 0 };
	JhImage images[JH_MAX_IMAGES];
	char name[JH_CELL_NAME_LEN + 1];
	int r = 0;

	if (rq->n_blobs != n_fds || n_fds > JH_MAX_IMAGES)
		return -EINVAL;
	memcpy(name, rq->name, JH_CELL_NAME_LEN);
	name[JH_CELL_NAME_LEN] = 0;
	for (size_t i = 0; i < n_fds; i++) {
		if (rq->blob[i].size == 0 || rq->blob[i].size > SIZE_MAX) {
			r = -EINVAL;
			goto out;
		}
		maps[i] = mmap(NULL, rq->blob[i].size, PROT_READ, MAP_PRIVATE, fds[i], 0);
		if (maps[i] == MAP_FAILED) {
			maps[i] = NULL;
			r = -errno;
			goto out;
		}
		images[i] = (JhImage){ .data = maps[i], .size = rq->blob[i].size, .target = rq->blob[i].target };
	}
	switch (rq->op) {
	case JH_OP_ENABLE:
		r = n_fds == 1 ? jh_enable(s->driver, maps[0], rq->blob[0].size) : -EINVAL;
		break;
	case JH_OP_DISABLE:
		r = jh_disable(s->driver);
		if (r >= 0)
			s->n_shared = 0;
		break;
	case JH_OP_CELL_CREATE:
		r = n_fds == 1 ? jh_cell_create(s->driver, maps[0], rq->blob[0].size) : -EINVAL;
		if (r >= 0)
			remember_shared(s, maps[0], rq->blob[0].size);
		break;
	case JH_OP_CELL_LOAD:
		r = jh_cell_load(s->driver, name, images, n_fds);
		break;
	case JH_OP_CELL_START:
		r = jh_cell_start(s->driver, name);
		break;
	case JH_OP_CELL_DESTROY:
		r = jh_cell_destroy(s->driver, name);
		if (r >= 0)
			forget_shared(s, name);
		break;
	case JH_OP_CELL_REGISTER:
		r = n_fds == 1 ? register_cell(s, maps[0], rq->blob[0].size) : -EINVAL;
		break;
	case JH_OP_OPEN_MEM:
		if (!shared_allows(s, rq->mem_phys, rq->mem_size)) {
			r = -EPERM;
			break;
		}
		*ret_fd = open(s->mem_path, O_RDWR | O_CLOEXEC | O_SYNC);
		r = *ret_fd < 0 ? -errno : 0;
		break;
	default:
		r = -EOPNOTSUPP;
		break;
	}
out:
	for (size_t i = 0; i < n_fds; i++)
		if (maps[i])
			munmap(maps[i], rq->blob[i].size);
	return r;
}

int jh_helper_serve(int fd, JhDriver *driver, const JhHelperOptions *opts)
{
	Server *s = calloc(1, sizeof(*s));
	int r = 0;

	if (!s)
		return -ENOMEM;
	s->driver = driver;
	s->mem_path = opts && opts->mem_path ? opts->mem_path : "/dev/mem";
	s->sysfs_root = opts && opts->sysfs_root ? opts->sysfs_root : JH_SYSFS_ROOT;
	for (;;) {
		struct jh_helper_request rq;
		struct jh_helper_reply rp = { .magic = JH_HELPER_MAGIC };
		int fds[JH_MAX_IMAGES], out_fd = -1;
		size_t n_fds = 0;
		ssize_t k = recv_msg(fd, &rq, sizeof(rq), fds, JH_MAX_IMAGES, &n_fds);

		if (k == 0)
			break; /* the daemon went: nothing else to serve */
		if (k < 0 && k != -EMSGSIZE) {
			r = (int)k;
			break;
		}
		if (k != (ssize_t)sizeof(rq) || rq.magic != JH_HELPER_MAGIC)
			rp.result = -EBADMSG;
		else
			rp.result = handle(s, &rq, fds, n_fds, &out_fd);
		for (size_t i = 0; i < n_fds; i++)
			close(fds[i]);
		r = send_msg(fd, &rp, sizeof(rp), out_fd >= 0 ? &out_fd : NULL, out_fd >= 0 ? 1 : 0);
		if (out_fd >= 0)
			close(out_fd);
		if (r < 0)
			break;
	}
	free(s);
	return r;
}

/* ---- the client ---------------------------------------------------------- */

struct JhClient {
	int fd;
	/* Workers share one socket: one exchange at a time. */
	pthread_mutex_t lock;
};

int jh_client_new(int fd, JhClient **ret)
{
	JhClient *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = fd;
	pthread_mutex_init(&c->lock, NULL);
	*ret = c;
	return 0;
}

JhClient *jh_client_free(JhClient *c)
{
	if (!c)
		return NULL;
	if (c->fd >= 0)
		close(c->fd);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return NULL;
}

static int blob_fd(const void *data, size_t size)
{
	const char *p = data;
	int fd = memfd_create("warden-jailhouse-blob", MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	while (size > 0) {
		ssize_t w = write(fd, p, size);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int r = w < 0 ? -errno : -EIO;
			close(fd);
			return r;
		}
		p += w;
		size -= (size_t)w;
	}
	return fd;
}

static int exchange(JhClient *c, struct jh_helper_request *rq, const JhImage *blobs, size_t n, int *ret_fd)
{
	struct jh_helper_reply rp;
	int fds[JH_MAX_IMAGES], in_fd = -1, r = 0;
	size_t made = 0, n_in = 0;
	ssize_t k;

	if (n > JH_MAX_IMAGES)
		return -EINVAL;
	rq->magic = JH_HELPER_MAGIC;
	rq->n_blobs = (uint32_t)n;
	for (; made < n; made++) {
		if (!blobs[made].data || !blobs[made].size) {
			r = -EINVAL;
			goto out;
		}
		r = blob_fd(blobs[made].data, blobs[made].size);
		if (r < 0)
			goto out;
		fds[made] = r;
		rq->blob[made].size = blobs[made].size;
		rq->blob[made].target = blobs[made].target;
	}
	pthread_mutex_lock(&c->lock);
	r = send_msg(c->fd, rq, sizeof(*rq), fds, n);
	if (r >= 0) {
		k = recv_msg(c->fd, &rp, sizeof(rp), &in_fd, 1, &n_in);
		if (k == 0)
			r = -ECONNRESET; /* the helper died */
		else if (k < 0)
			r = (int)k;
		else if (k != (ssize_t)sizeof(rp) || rp.magic != JH_HELPER_MAGIC)
			r = -EBADMSG;
		else
			r = rp.result;
	}
	pthread_mutex_unlock(&c->lock);
	if (n_in && (r < 0 || !ret_fd))
		close(in_fd);
	else if (n_in)
		*ret_fd = in_fd;
	else if (r >= 0 && ret_fd)
		r = -EBADMSG;
out:
	for (size_t i = 0; i < made; i++)
		close(fds[i]);
	return r;
}

static int named(JhClient *c, uint32_t op, const char *name, const JhImage *blobs, size_t n)
{
	struct jh_helper_request rq = { .op = op };

	if (!name || !*name || strlen(name) >= JH_CELL_NAME_LEN)
		return -EINVAL;
	memcpy(rq.name, name, strlen(name));
	return exchange(c, &rq, blobs, n, NULL);
}

int jh_client_enable(JhClient *c, const void *system_config, size_t size)
{
	struct jh_helper_request rq = { .op = JH_OP_ENABLE };
	JhImage b = { .data = system_config, .size = size };
	return exchange(c, &rq, &b, 1, NULL);
}

int jh_client_disable(JhClient *c)
{
	struct jh_helper_request rq = { .op = JH_OP_DISABLE };
	return exchange(c, &rq, NULL, 0, NULL);
}

int jh_client_cell_create(JhClient *c, const void *cell_config, size_t size)
{
	struct jh_helper_request rq = { .op = JH_OP_CELL_CREATE };
	JhImage b = { .data = cell_config, .size = size };
	return exchange(c, &rq, &b, 1, NULL);
}

int jh_client_cell_register(JhClient *c, const void *cell_config, size_t size)
{
	struct jh_helper_request rq = { .op = JH_OP_CELL_REGISTER };
	JhImage b = { .data = cell_config, .size = size };
	return exchange(c, &rq, &b, 1, NULL);
}

int jh_client_cell_load(JhClient *c, const char *name, const JhImage *images, size_t n)
{
	return named(c, JH_OP_CELL_LOAD, name, images, n);
}

int jh_client_cell_start(JhClient *c, const char *name)
{
	return named(c, JH_OP_CELL_START, name, NULL, 0);
}

int jh_client_cell_destroy(JhClient *c, const char *name)
{
	return named(c, JH_OP_CELL_DESTROY, name, NULL, 0);
}

int jh_client_open_mem(JhClient *c, uint64_t phys, uint64_t size, int *ret_fd)
{
	struct jh_helper_request rq = { .op = JH_OP_OPEN_MEM, .mem_phys = phys, .mem_size = size };
	return exchange(c, &rq, NULL, 0, ret_fd);
}
