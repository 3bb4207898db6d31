/* SPDX-License-Identifier: MIT */
/*
 * The BackendQueue of backend.h: worker threads that run the blocking
 * backend calls, one request at a time per cell name, and hand completions
 * back to the daemon's loop through an eventfd.
 *
 * Why threads and not a state machine per protocol: every backend (the kvm
 * runner's control socket, QMP, the Jailhouse ioctls) then stays plain
 * synchronous code with bounded waits, and what must never block (the
 * loop) simply never calls it. Per-name ordering keeps a destroy from
 * overtaking the boot before it, and from racing the next create of a
 * cell of the same name.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "backend-internal.h"

#define QUEUE_MAX_WORKERS 16
#define WORKER_NICE 10

struct BackendRequest {
	BackendRequest *next;
	BackendQueue *queue;
	BackendRequestKind kind;
	char key[72]; /* cell name ("" for backend-wide requests) */
	Backend *backend;
	BackendCellConfig *cfg; /* BOOT: a deep copy */
	bool reuse;
	BackendDoneFn done;
	void *userdata;
	int (*fn)(void *arg); /* CALL */
	void *arg;
	bool abandoned, destroy_result;
	BackendCompletion c;
};

struct BackendQueue {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t workers[QUEUE_MAX_WORKERS];
	unsigned n_workers;
	bool stopping;
	int event_fd;
	BackendRequest *queued; /* FIFO */
	BackendRequest *done;   /* FIFO */
	/* keys of the requests running now, one per worker */
	const char *running[QUEUE_MAX_WORKERS];
	bool barrier_running;
	unsigned pending; /* submitted, not dispatched */
};

static const char *const kind_table[_BACKEND_REQUEST_KIND_MAX] = {
	[BACKEND_REQUEST_BOOT] = "boot",       [BACKEND_REQUEST_STOP] = "stop",
	[BACKEND_REQUEST_DESTROY] = "destroy", [BACKEND_REQUEST_ENABLE] = "enable",
	[BACKEND_REQUEST_DISABLE] = "disable", [BACKEND_REQUEST_CALL] = "call",
};

const char *backend_request_kind_to_string(BackendRequestKind k)
{
	return k >= 0 && k < _BACKEND_REQUEST_KIND_MAX ? kind_table[k] : NULL;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- deep copy of a cell config ------------------------------------ */

static char *dup_or_null(const char *s, bool *oom)
{
	char *d;
	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

void backend_cell_config_free(BackendCellConfig *c)
{
	if (!c)
		return;
	free((char *)c->name);
	free((void *)c->cpus);
	free((void *)c->regions);
	for (size_t i = 0; c->images && i < c->n_images; i++)
		free((char *)c->images[i].path);
	free((void *)c->images);
	free((char *)c->args);
	free((char *)c->kernel);
	free((char *)c->initrd);
	free((char *)c->cmdline);
	free((char *)c->cell_config);
	free((char *)c->dtb);
	free((void *)c->cell_data);
	free((char *)c->net_tap);
	free((char *)c->net_mac);
	free((char *)c->rootfs);
	free((char *)c->rootfs_digest);
	free(c);
}

BackendCellConfig *backend_cell_config_dup(const BackendCellConfig *src)
{
	BackendCellConfig *c = calloc(1, sizeof(*c));
	unsigned *cpus = NULL;
	BackendRegion *regions = NULL;
	BackendImage *images = NULL;
	bool oom = false;

	if (!c)
		return NULL;
	*c = *src;
	c->name = c->args = c->kernel = c->initrd = c->cmdline = c->cell_config = c->dtb = NULL;
	c->net_tap = c->net_mac = c->rootfs = c->rootfs_digest = NULL;
	c->cell_data = NULL;
	c->cpus = NULL;
	c->regions = NULL;
	c->images = NULL;
	if (src->n_cpus > BACKEND_MAX_CPUS || src->n_regions > BACKEND_MAX_REGIONS ||
	    src->n_images > BACKEND_MAX_IMAGES) {
		c->n_images = 0;
		backend_cell_config_free(c);
		return NULL;
	}
	cpus = calloc(src->n_cpus + 1, sizeof(*cpus));
	regions = calloc(src->n_regions + 1, sizeof(*regions));
	images = calloc(src->n_images + 1, sizeof(*images));
	c->cpus = cpus;
	c->regions = regions;
	c->images = images;
	if (!cpus || !regions || !images) {
		c->n_images = 0;
		backend_cell_config_free(c);
		return NULL;
	}
	if (src->n_cpus)
		memcpy(cpus, src->cpus, src->n_cpus * sizeof(*cpus));
	if (src->n_regions)
		memcpy(regions, src->regions, src->n_regions * sizeof(*regions));
	for (size_t i = 0; i < src->n_images; i++) {
		images[i].addr = src->images[i].addr;
		images[i].path = dup_or_null(src->images[i].path, &oom);
	}
	c->name = dup_or_null(src->name, &oom);
	c->args = dup_or_null(src->args, &oom);
	c->kernel = dup_or_null(src->kernel, &oom);
	c->initrd = dup_or_null(src->initrd, &oom);
	c->cmdline = dup_or_null(src->cmdline, &oom);
	c->cell_config = dup_or_null(src->cell_config, &oom);
	c->dtb = dup_or_null(src->dtb, &oom);
	if (src->cell_data && src->cell_size) {
		uint8_t *data = malloc(src->cell_size);
		if (data)
			memcpy(data, src->cell_data, src->cell_size);
		else
			oom = true;
		c->cell_data = data;
	}
	c->net_tap = dup_or_null(src->net_tap, &oom);
	c->net_mac = dup_or_null(src->net_mac, &oom);
	c->rootfs = dup_or_null(src->rootfs, &oom);
	c->rootfs_digest = dup_or_null(src->rootfs_digest, &oom);
	if (oom || !c->name) {
		backend_cell_config_free(c);
		return NULL;
	}
	return c;
}

/* ---- the work itself (worker threads) ------------------------------ */

static void drop_cell(BackendCell *c, bool destroy)
{
	if (!c)
		return;
	if (destroy)
		(void)backend_cell_destroy(c);
	backend_cell_free(c);
}

static int run_boot(BackendRequest *rq)
{
	BackendCell *c = rq->c.cell;
	int r;

	rq->c.cell = NULL;
	if (c && rq->reuse) {
		r = backend_cell_reset(c);
		if (r >= 0) {
			rq->c.cell = c;
			rq->c.reused = true;
			return 0;
		}
	}
	/* The in-place path was not asked for, or failed: start anew. */
	drop_cell(c, true);
	r = backend_cell_create(rq->backend, rq->cfg, &c);
	if (r < 0)
		return r;
	r = backend_cell_load(c);
	if (r >= 0)
		r = backend_cell_start(c);
	if (r < 0) {
		drop_cell(c, true);
		return r;
	}
	rq->c.cell = c;
	return 0;
}

static int run(BackendRequest *rq)
{
	int r;

	switch (rq->kind) {
	case BACKEND_REQUEST_BOOT:
		return run_boot(rq);
	case BACKEND_REQUEST_STOP:
		return backend_cell_stop(rq->c.cell);
	case BACKEND_REQUEST_DESTROY:
		r = backend_cell_destroy(rq->c.cell);
		rq->c.cell = backend_cell_free(rq->c.cell);
		return r;
	case BACKEND_REQUEST_ENABLE:
		return backend_enable(rq->backend);
	case BACKEND_REQUEST_DISABLE:
		return backend_disable(rq->backend);
	case BACKEND_REQUEST_CALL:
		return rq->fn(rq->arg);
	default:
		return -EINVAL;
	}
}

static bool is_barrier(const BackendRequest *rq)
{
	return rq->kind == BACKEND_REQUEST_ENABLE || rq->kind == BACKEND_REQUEST_DISABLE;
}

/* The first queued request that may run now, unlinked. A barrier runs
 * alone, after everything queued before it; nothing queued after it
 * passes it. Other requests wait only for their own cell. */
static BackendRequest *take_runnable(BackendQueue *q)
{
	unsigned running = 0;

	if (q->barrier_running)
		return NULL;
	for (unsigned i = 0; i < q->n_workers; i++)
		running += q->running[i] != NULL;
	for (BackendRequest **p = &q->queued; *p; p = &(*p)->next) {
		BackendRequest *rq = *p;
		bool busy = false;
		if (is_barrier(rq)) {
			if (p != &q->queued || running)
				return NULL;
		} else {
			for (unsigned i = 0; rq->key[0] && i < q->n_workers; i++)
				if (q->running[i] && strcmp(q->running[i], rq->key) == 0)
					busy = true;
			if (busy)
				continue;
		}
		*p = rq->next;
		rq->next = NULL;
		return rq;
	}
	return NULL;
}

static void append(BackendRequest **list, BackendRequest *rq)
{
	while (*list)
		list = &(*list)->next;
	*list = rq;
}

struct worker_arg {
	BackendQueue *q;
	unsigned slot;
};

static void *worker_main(void *arg)
{
	BackendQueue *q = ((struct worker_arg *)arg)->q;
	unsigned slot = ((struct worker_arg *)arg)->slot;
	uint64_t one = 1;

	free(arg);
	/* Workers share the root CPUs with the loop (they inherit its
	 * affinity): they yield to it. A loop that waits for a CPU behind a
	 * worker formatting /metrics is a loop that waits. */
	(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), WORKER_NICE);
	pthread_mutex_lock(&q->lock);
	for (;;) {
		BackendRequest *rq = take_runnable(q);
		if (!rq) {
			if (q->stopping && !q->queued)
				break;
			pthread_cond_wait(&q->wake, &q->lock);
			continue;
		}
		q->running[slot] = rq->key;
		q->barrier_running = is_barrier(rq);
		pthread_mutex_unlock(&q->lock);

		rq->c.started_ns = mono_ns();
		rq->c.result = run(rq);
		rq->c.finished_ns = mono_ns();

		pthread_mutex_lock(&q->lock);
		q->running[slot] = NULL;
		if (is_barrier(rq))
			q->barrier_running = false;
		append(&q->done, rq);
		/* Its cell may have the next request queued. */
		pthread_cond_broadcast(&q->wake);
		/* The loop is told with the lock released: woken at once (it
		 * outranks us), it takes the lock first thing. */
		pthread_mutex_unlock(&q->lock);
		(void)!write(q->event_fd, &one, sizeof(one));
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* ---- the loop's side ------------------------------------------------ */

int backend_queue_new(unsigned n_workers, BackendQueue **ret)
{
	BackendQueue *q;
	sigset_t all, old;
	int r = 0;

	if (n_workers == 0 || n_workers > QUEUE_MAX_WORKERS || !ret)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	/* The loop (SCHED_FIFO where the unit asks for it) takes this lock
	 * too, and a worker holding it can be preempted by its peers: with
	 * priority inheritance the holder runs at the loop's priority until
	 * it lets go. Without it the loop waited 3 ms behind two workers
	 * rendering /metrics, past a stall deadline. */
	pthread_mutexattr_t attr;
	pthread_mutexattr_init(&attr);
	(void)pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT);
	pthread_mutex_init(&q->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	pthread_cond_init(&q->wake, NULL);
	q->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->event_fd < 0) {
		r = -errno;
		goto fail;
	}
	/* Signals are the loop's (signalfd): workers take none of them. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (unsigned i = 0; i < n_workers; i++) {
		struct worker_arg *a = malloc(sizeof(*a));
		if (!a) {
			r = -ENOMEM;
			break;
		}
		*a = (struct worker_arg){ q, i };
		r = -pthread_create(&q->workers[i], NULL, worker_main, a);
		if (r < 0) {
			free(a);
			break;
		}
		q->n_workers++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		goto fail;
	*ret = q;
	return 0;
fail:
	backend_queue_free(q);
	return r;
}

/* After the callback (or instead of it): what nobody takes is released. */
static void request_finish(BackendRequest *rq)
{
	if (rq->abandoned || !rq->done)
		drop_cell(rq->c.cell, rq->destroy_result);
	backend_cell_config_free(rq->cfg);
	free(rq);
}

BackendQueue *backend_queue_free(BackendQueue *q)
{
	if (!q)
		return NULL;
	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	pthread_cond_broadcast(&q->wake);
	pthread_mutex_unlock(&q->lock);
	for (unsigned i = 0; i < q->n_workers; i++)
		pthread_join(q->workers[i], NULL);
	/* No workers were ever started: run nothing, drop everything. */
	while (q->queued) {
		BackendRequest *rq = q->queued;
		q->queued = rq->next;
		rq->abandoned = true;
		rq->destroy_result = false;
		request_finish(rq);
	}
	while (q->done) {
		BackendRequest *rq = q->done;
		q->done = rq->next;
		/* Completed, never dispatched: a cell its caller still
		 * wanted outlives the daemon; an abandoned one goes as asked. */
		if (!rq->abandoned)
			rq->destroy_result = false;
		rq->abandoned = true;
		request_finish(rq);
	}
	if (q->event_fd >= 0)
		close(q->event_fd);
	pthread_cond_destroy(&q->wake);
	pthread_mutex_destroy(&q->lock);
	free(q);
	return NULL;
}

int backend_queue_fd(BackendQueue *q)
{
	return q ? q->event_fd : -EINVAL;
}

unsigned backend_queue_pending(const BackendQueue *q)
{
	return q ? q->pending : 0;
}

unsigned backend_queue_dispatch(BackendQueue *q)
{
	BackendRequest *list;
	uint64_t v;
	unsigned n = 0;

	(void)!read(q->event_fd, &v, sizeof(v));
	pthread_mutex_lock(&q->lock);
	list = q->done;
	q->done = NULL;
	pthread_mutex_unlock(&q->lock);
	while (list) {
		BackendRequest *rq = list;
		list = rq->next;
		q->pending--;
		n++;
		if (!rq->abandoned && rq->done) {
			rq->done(&rq->c, rq->userdata);
			rq->c.cell = NULL; /* the callback owns it now */
		}
		request_finish(rq);
	}
	return n;
}

static BackendRequest *request_new(BackendRequestKind kind, const char *key, Backend *b, BackendCell *c,
                                   BackendDoneFn done, void *userdata)
{
	BackendRequest *rq = calloc(1, sizeof(*rq));

	if (!rq)
		return NULL;
	rq->kind = kind;
	snprintf(rq->key, sizeof(rq->key), "%s", key ? key : "");
	rq->backend = b;
	rq->done = done;
	rq->userdata = userdata;
	/* Without a callback nobody takes a handle back: destroy it. */
	rq->destroy_result = !done;
	rq->c.kind = kind;
	rq->c.backend = b;
	rq->c.cell = c;
	return rq;
}

static int enqueue(BackendQueue *q, BackendRequest *rq, BackendRequest **ret)
{
	rq->queue = q;
	rq->c.queued_ns = mono_ns();
	if (ret)
		*ret = rq;
	pthread_mutex_lock(&q->lock);
	append(&q->queued, rq);
	q->pending++;
	pthread_cond_broadcast(&q->wake);
	pthread_mutex_unlock(&q->lock);
	return 0;
}

int backend_boot_async(BackendQueue *q, Backend *b, BackendCell *old, bool reuse, const BackendCellConfig *cfg,
                       BackendDoneFn done, void *userdata, BackendRequest **ret)
{
	BackendRequest *rq;

	if (!q || !b || !cfg || !cfg->name)
		return -EINVAL;
	rq = request_new(BACKEND_REQUEST_BOOT, cfg->name, b, old, done, userdata);
	if (!rq)
		return -ENOMEM;
	rq->cfg = backend_cell_config_dup(cfg);
	if (!rq->cfg) {
		free(rq);
		return -ENOMEM;
	}
	rq->reuse = reuse;
	return enqueue(q, rq, ret);
}

static int cell_request(BackendQueue *q, BackendRequestKind kind, BackendCell *c, BackendDoneFn done,
                        void *userdata, BackendRequest **ret)
{
	BackendRequest *rq;

	if (!q || !c)
		return -EINVAL;
	rq = request_new(kind, backend_cell_name(c), NULL, c, done, userdata);
	if (!rq)
		return -ENOMEM;
	return enqueue(q, rq, ret);
}

int backend_stop_async(BackendQueue *q, BackendCell *c, BackendDoneFn done, void *userdata, BackendRequest **ret)
{
	return cell_request(q, BACKEND_REQUEST_STOP, c, done, userdata, ret);
}

int backend_destroy_async(BackendQueue *q, BackendCell *c, BackendDoneFn done, void *userdata,
                          BackendRequest **ret)
{
	return cell_request(q, BACKEND_REQUEST_DESTROY, c, done, userdata, ret);
}

static int backend_request(BackendQueue *q, BackendRequestKind kind, Backend *b, BackendDoneFn done,
                           void *userdata, BackendRequest **ret)
{
	BackendRequest *rq;
	char key[32];

	if (!q || !b)
		return -EINVAL;

	/* Keyed by the backend kind, with a '/' no cell name can have;
	 * as a barrier it never overlaps anything anyway. */
	snprintf(key, sizeof(key), "/%s", backend_kind(b));
	rq = request_new(kind, key, b, NULL, done, userdata);
	if (!rq)
		return -ENOMEM;
	return enqueue(q, rq, ret);
}

int backend_enable_async(BackendQueue *q, Backend *b, BackendDoneFn done, void *userdata, BackendRequest **ret)
{
	return backend_request(q, BACKEND_REQUEST_ENABLE, b, done, userdata, ret);
}

int backend_disable_async(BackendQueue *q, Backend *b, BackendDoneFn done, void *userdata, BackendRequest **ret)
{
	return backend_request(q, BACKEND_REQUEST_DISABLE, b, done, userdata, ret);
}

int backend_call_async(BackendQueue *q, const char *key, int (*fn)(void *arg), void *arg, BackendDoneFn done,
                       void *userdata, BackendRequest **ret)
{
	BackendRequest *rq;

	if (!q || !fn)
		return -EINVAL;
	rq = request_new(BACKEND_REQUEST_CALL, key, NULL, NULL, done, userdata);
	if (!rq)
		return -ENOMEM;
	rq->fn = fn;
	rq->arg = arg;
	return enqueue(q, rq, ret);
}

void backend_request_abandon(BackendRequest *r, bool destroy)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->queue->lock);
	r->abandoned = true;
	r->destroy_result = destroy;
	pthread_mutex_unlock(&r->queue->lock);
}
