/* SPDX-License-Identifier: MIT */
/*
 * The one interface between wardend and a partition backend (kvm, qemu,
 * jailhouse). wardend includes this header and nothing else from
 * hypervisor/. The operations mirror Jailhouse's (enable, disable, cell
 * create/load/start/shutdown/destroy) so that every backend is driven alike.
 *
 * Two kinds of calls, and a backend author must keep them apart:
 *
 *   loop calls    never block and never wait: backend_stats(),
 *                 backend_cell_status(),
 *                 _comm(), _console_read(), _event_fd(), _event_ack(),
 *                 _pidfd(), _reap(), _cpu_times(), _mail(), _shutdown(), _name(),
 *                 _free(). The daemon calls
 *                 them on its event loop, sampling heartbeats between them.
 *   worker calls  may block, each wait bounded by the backend's own
 *                 deadline: enable, disable, cell create, adopt, load,
 *                 start, stop, reset, destroy. The daemon never calls them
 *                 on its loop: it submits them to a BackendQueue (below),
 *                 whose worker threads run them and deliver the completion
 *                 back on the loop. Adoption is the one exception: the
 *                 daemon adopts at start-up, before its loop serves anyone.
 *
 * A backend is therefore written as plain synchronous code; what it must
 * not do is block in a loop call, or keep state that a loop call on one
 * cell and a worker call on another cell would both change unlocked.
 * Functions return 0 or a negative errno and never log; the caller logs.
 */
#ifndef WARDEN_BACKEND_H
#define WARDEN_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "../api/warden/comm.h"

typedef struct Backend Backend;
typedef struct BackendCell BackendCell;

#define BACKEND_MAX_CPUS 64
#define BACKEND_MAX_REGIONS 16
#define BACKEND_MAX_IMAGES 8
#define BACKEND_REASON_LEN 128

/* Memory region flags, as in a Jailhouse cell config. */
enum {
	BACKEND_MEM_READ = 1u << 0,
	BACKEND_MEM_WRITE = 1u << 1,
	BACKEND_MEM_EXECUTE = 1u << 2,
	BACKEND_MEM_LOADABLE = 1u << 3,
	BACKEND_MEM_SHARED = 1u << 4,
};

typedef struct BackendRegion {
	uint64_t phys_start; /* host-physical (Jailhouse) / partition address */
	uint64_t virt_start; /* guest-physical */
	uint64_t size;
	unsigned flags; /* BACKEND_MEM_* */
} BackendRegion;

typedef struct BackendImage {
	const char *path; /* absolute */
	uint64_t addr;    /* guest-physical load address */
} BackendImage;

typedef struct BackendCellConfig {
	const char *name;
	const unsigned *cpus;
	size_t n_cpus;
	const BackendRegion *regions;
	size_t n_regions;
	const BackendImage *images;
	size_t n_images;
	uint64_t entry;     /* guest-physical entry point */
	uint64_t comm_addr; /* guest-physical address of the comm region */
	uint64_t comm_size; /* >= WARDEN_COMM_SIZE */
	uint32_t period_ms; /* heartbeat period the inmate should keep */
	bool allow_inject;  /* inmate may obey WARDEN_CMD_INJECT */
	unsigned rt_priority; /* kvm: SCHED_FIFO priority of the vCPU threads, 0 = normal */
	bool rt_mlock;        /* kvm: lock the runner's memory (mlockall) */
	const char *args;   /* free-form inmate arguments, may be NULL */
	/* A Linux inmate (the spec's "linux" object): the kernel replaces
	 * images/entry; each is NULL when unused. */
	const char *kernel;  /* absolute path of the kernel image */
	const char *initrd;  /* absolute path of the initramfs, or NULL */
	const char *cmdline; /* kernel command line, or NULL */
	const char *dtb;     /* jailhouse: the device tree template, or NULL */
	/* jailhouse: absolute path of the operator's .cell file, which the
	 * backend hands to CELL_CREATE as it is; NULL for the others. */
	const char *cell_config;
	/* ... or the .cell's bytes themselves (generated from the spec) */
	const uint8_t *cell_data;
	size_t cell_size;
	/* qemu: a virtio-net NIC on this tap, which wardend has made (its
	 * name) with this MAC; NULL: the cell has no NIC */
	const char *net_tap;
	const char *net_mac;
	/* container: the rootfs tarball (absolute), the SHA-256 it must have
	 * (hex, or NULL), whether the container may write to it, the memory
	 * limit in bytes (0: the backend's default); args are the process's
	 * argv, split at blanks. */
	const char *rootfs;
	const char *rootfs_digest;
	bool rootfs_writable;
	uint64_t memory_limit;
} BackendCellConfig;

typedef enum BackendCellState {
	BACKEND_CELL_CREATED,  /* exists, vCPUs not started since load */
	BACKEND_CELL_RUNNING,  /* vCPUs run */
	BACKEND_CELL_STOPPED,  /* stopped on request, memory preserved */
	BACKEND_CELL_HALTED,   /* the inmate stopped itself (halt, hlt with IF=0) */
	BACKEND_CELL_SHUTDOWN, /* the machine shut down: triple fault */
	BACKEND_CELL_FAILED,   /* the hypervisor gave up on it (internal error) */
	BACKEND_CELL_GONE,     /* the cell's process or VM no longer exists */
	_BACKEND_CELL_STATE_MAX,
	_BACKEND_CELL_STATE_INVALID = -1,
} BackendCellState;

/* A backend's own counter, by the name the hypervisor gives it
 * (jailhouse: "vmexits_psci", ...). */
#define BACKEND_MAX_STATS 24
#define BACKEND_STAT_NAME_LEN 32
typedef struct BackendStat {
	char name[BACKEND_STAT_NAME_LEN];
	uint64_t value;
} BackendStat;

typedef struct BackendCellStatus {
	BackendCellState state;
	char reason[BACKEND_REASON_LEN]; /* why it is in that state, or "" */
	uint64_t state_mono_ns; /* host CLOCK_MONOTONIC of the last change */
	uint64_t boots;         /* starts since create */
	pid_t pid;              /* the process holding the cell, or 0 */
	/* The hypervisor's own view, where it has one (jailhouse: the
	 * driver's cell id and the sysfs state string). */
	bool has_hv_id;
	int hv_id;
	char hv_state[24]; /* "" when the backend has none */
	/* statistics, cumulative since create */
	uint64_t exits;
	uint64_t exits_io;
	uint64_t exits_mmio;
	uint64_t exits_hlt;
	uint64_t exits_sleep;
	/* every counter the backend has, the ones above included */
	BackendStat stats[BACKEND_MAX_STATS];
	size_t n_stats;
} BackendCellStatus;

typedef struct BackendConfig {
	const char *runtime_dir; /* cells live in runtime_dir/cells/NAME */
	const char *runner_path; /* helper binary: warden-kvm, qemu-system-x86_64 */
	const char *accel;       /* qemu: "tcg" or "kvm"; NULL for the default */
	const char *machine;     /* qemu: machine type ("pc"); NULL for the default */
	/* jailhouse (runner_path is the helper, warden-jailhouse): */
	const char *system_config; /* the system config ENABLE loads; required to enable */
	const char *sysfs_root;    /* NULL: /sys/devices/jailhouse */
	const char *device;        /* NULL: /dev/jailhouse (the helper opens it) */
	const char *linux_loader;  /* NULL: /usr/libexec/jailhouse/linux-loader.bin */
	const char *mem;           /* NULL: /dev/mem (the helper opens it) */
	/* container (runner_path is the OCI runtime's binary): */
	const char *runtime;       /* "runc" or "crun"; NULL: runc */
} BackendConfig;

const char *backend_cell_state_to_string(BackendCellState s);
BackendCellState backend_cell_state_from_string(const char *s);

/* A container rootfs tarball's entries, checked without unpacking:
 * relative paths, no "..", no device nodes, not truncated. -EINVAL or
 * -EBADMSG with the reason in why. A worker call (reads it whole). */
int backend_rootfs_check(const char *tarball, char *why, size_t n);

/* The fd limit the processes backends spawn (runners, QEMU, OCI
 * runtimes) start with, where the daemon raised its own past select()'s
 * 1024. Once, before the first backend is made. */
void backend_set_child_nofile_limit(const struct rlimit *rl);

/* Known backend kinds ("kvm", ...); -EOPNOTSUPP for the others. */
int backend_new(const char *kind, const BackendConfig *cfg, Backend **ret);
Backend *backend_free(Backend *b);
const char *backend_kind(const Backend *b);
/* true: restart a cell with backend_cell_reset(); false: destroy it and
 * create a new one, which this backend does faster (both work). */
bool backend_restarts_in_place(const Backend *b);
int backend_enable(Backend *b);
int backend_disable(Backend *b);
/* Backend-wide figures (jailhouse: "enabled", "mem_pool_size",
 * "mem_pool_used", "remap_pool_size", "remap_pool_used", in pages), into
 * ret; returns how many, 0 for a backend without any, or -errno. A loop
 * call. */
int backend_stats(Backend *b, BackendStat *ret, size_t max);
/* The hypervisor's own console (jailhouse: sysfs `console`, what the
 * hypervisor printed, a few KB held in memory), its newest n bytes into
 * buf; returns the length, -EOPNOTSUPP for a backend without one. A loop
 * call. */
ssize_t backend_console_read(Backend *b, char *buf, size_t n);

/* Create the cell (VM, memory, vCPUs parked); images are not loaded yet.
 * -EEXIST if a live cell of that name already exists. */
int backend_cell_create(Backend *b, const BackendCellConfig *cfg, BackendCell **ret);
/* Re-attach to a cell that survived a daemon restart; -ENOENT if none. */
int backend_cell_adopt(Backend *b, const char *name, BackendCell **ret);
int backend_cell_load(BackendCell *c);
int backend_cell_start(BackendCell *c);
/* Stop the vCPUs; memory, comm region and console stay readable. */
int backend_cell_stop(BackendCell *c);
/* Restart in place: stop, reload the images, start. */
int backend_cell_reset(BackendCell *c);
/* Ask the inmate to shut down through the mailbox. The caller keeps the
 * deadline and calls backend_cell_destroy() or _stop() when it passes. */
int backend_cell_shutdown(BackendCell *c);
/* Write a mailbox command (WARDEN_CMD_*), ring the doorbell. */
int backend_cell_mail(BackendCell *c, uint32_t cmd, uint32_t arg);
/* The in-place reset without a worker, for backends whose reset is one
 * short exchange (kvm: one control-socket round trip, ~0.2 ms; a thread
 * hop would add more than that). Loop calls, both never block:
 * _begin() sends the request and returns an fd to poll for POLLIN, or
 * -EOPNOTSUPP (use backend_boot_async()); _finish() then gives the result,
 * -EAGAIN while there is none yet. The caller keeps the deadline, and
 * on any error falls back to backend_boot_async(). */
int backend_cell_reset_begin(BackendCell *c);
int backend_cell_reset_finish(BackendCell *c);
/* Tear the cell down. The object stays valid (state GONE) until freed. */
int backend_cell_destroy(BackendCell *c);
/* Release the daemon's handles. A cell not destroyed keeps running. */
BackendCell *backend_cell_free(BackendCell *c);

const char *backend_cell_name(const BackendCell *c);
int backend_cell_status(BackendCell *c, BackendCellStatus *ret);
/* The comm region, mapped shared and read-write, WARDEN_COMM_SIZE at least. */
volatile struct warden_comm *backend_cell_comm(BackendCell *c);
/* Copy up to n bytes of the newest console output into buf. */
ssize_t backend_cell_console_read(BackendCell *c, char *buf, size_t n);
/* Readable when the inmate rang its doorbell or the backend state changed;
 * call backend_cell_event_ack() to drain it. */
int backend_cell_event_fd(BackendCell *c);
int backend_cell_event_ack(BackendCell *c);
/* A pidfd, readable once the process holding the cell exited; -1 if the
 * backend has no such process. */
int backend_cell_pidfd(BackendCell *c);
/* The cell's process, all threads: CPU time so far (its CPU clock,
 * exited threads included), how many threads are runnable now (state R,
 * on a CPU or waiting for one), and how many of those have not slept by
 * choice since the previous call (a thread that did ran its loop; a vCPU
 * waking from HLT is R for a moment). For a stall about to be declared: a
 * cell whose threads kept wanting a CPU and got little is starved, not
 * stuck. Under host load a third of the samples can be in a stall's
 * second half, so it is cheap: the procfs files stay open with the cell
 * (a pread per thread, two for a runnable one). -ENOENT without a
 * process. */
int backend_cell_cpu_times(BackendCell *c, uint64_t *ret_run_ns, unsigned *ret_runnable, unsigned *ret_waiting);
/* The pidfd polled readable: collect the exit, so that status() reports
 * GONE from now on. status() itself never polls (it runs on every sample). */
void backend_cell_reap(BackendCell *c);

/* ---- asynchronous requests ------------------------------------------
 *
 * A BackendQueue runs worker calls on its own threads. Requests for the
 * same cell name run one after another in submission order; requests for
 * different cells run side by side, so one cell's slow boot never holds
 * up another's. Completions are queued and delivered on the thread that
 * calls backend_queue_dispatch(), which the daemon does when
 * backend_queue_fd() polls readable: callbacks run on the loop.
 *
 * Enable and disable are barriers: one starts once every request queued
 * before it has finished, and requests queued after it wait for it. So a
 * disable follows the destroys of its cells, and boots follow an enable.
 *
 * Ownership: a request owns the cell handle it was given until its
 * completion hands a handle back (or none). The caller must not touch the
 * handle meanwhile, not even with a loop call.
 */
typedef struct BackendQueue BackendQueue;
typedef struct BackendRequest BackendRequest;

typedef enum BackendRequestKind {
	BACKEND_REQUEST_BOOT,    /* reset in place, or (re)create + load + start */
	BACKEND_REQUEST_STOP,    /* stop the vCPUs, memory kept */
	BACKEND_REQUEST_DESTROY, /* tear down and free the handle */
	BACKEND_REQUEST_ENABLE,
	BACKEND_REQUEST_DISABLE,
	BACKEND_REQUEST_CALL,    /* the daemon's own blocking work */
	_BACKEND_REQUEST_KIND_MAX,
} BackendRequestKind;

typedef struct BackendCompletion {
	BackendRequestKind kind;
	Backend *backend;  /* BOOT, ENABLE, DISABLE: the backend asked */
	int result;        /* 0 or a negative errno */
	BackendCell *cell; /* the handle handed back (BOOT: the running cell,
	                    * NULL if it failed; STOP: the same handle) */
	bool reused;       /* BOOT: the old cell was reset in place */
	uint64_t queued_ns, started_ns, finished_ns; /* CLOCK_MONOTONIC */
} BackendCompletion;

typedef void (*BackendDoneFn)(const BackendCompletion *done, void *userdata);

const char *backend_request_kind_to_string(BackendRequestKind k);

int backend_queue_new(unsigned n_workers, BackendQueue **ret);
/* Runs what was submitted to its end (each request is bounded), without
 * callbacks; handles that would have been handed back are freed, not
 * destroyed, so cells outlive the daemon. */
BackendQueue *backend_queue_free(BackendQueue *q);
/* Readable while completions wait for backend_queue_dispatch(). */
int backend_queue_fd(BackendQueue *q);
/* Run the callbacks of every completed request; returns how many. */
unsigned backend_queue_dispatch(BackendQueue *q);
/* Requests submitted and not yet dispatched. */
unsigned backend_queue_pending(const BackendQueue *q);

/* Boot the cell cfg describes. With `old`, reset it in place when `reuse`,
 * and fall back to destroying it and creating a new one if that fails.
 * cfg is copied; `old` is owned by the request. */
int backend_boot_async(BackendQueue *q, Backend *b, BackendCell *old, bool reuse, const BackendCellConfig *cfg,
                       BackendDoneFn done, void *userdata, BackendRequest **ret);
int backend_stop_async(BackendQueue *q, BackendCell *c, BackendDoneFn done, void *userdata, BackendRequest **ret);
/* Destroys and frees c, even when the destroy reports an error. */
int backend_destroy_async(BackendQueue *q, BackendCell *c, BackendDoneFn done, void *userdata,
                          BackendRequest **ret);
int backend_enable_async(BackendQueue *q, Backend *b, BackendDoneFn done, void *userdata, BackendRequest **ret);
int backend_disable_async(BackendQueue *q, Backend *b, BackendDoneFn done, void *userdata, BackendRequest **ret);
/* Run fn(arg) on a worker, ordered with the requests of `key` (NULL: with
 * none): for the daemon's own blocking work, such as the fsync of a large
 * upload. The completion's result is fn's return value. */
int backend_call_async(BackendQueue *q, const char *key, int (*fn)(void *arg), void *arg, BackendDoneFn done,
                       void *userdata, BackendRequest **ret);
/* The caller is no longer interested (its cell went away): the callback
 * will not run, and a handle the request hands back is destroyed and freed
 * when `destroy`, only freed otherwise. Call it on the dispatch thread. */
void backend_request_abandon(BackendRequest *r, bool destroy);

#endif /* WARDEN_BACKEND_H */
