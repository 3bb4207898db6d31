/* SPDX-License-Identifier: MIT */
/*
 * The one interface between wardend and a partition backend (kvm, qemu,
 * jailhouse). wardend includes this header and nothing else from
 * hypervisor/. The operations mirror Jailhouse's (enable, disable, cell
 * create/load/start/shutdown/destroy) so that every backend is driven alike.
 *
 * All calls are synchronous and short: anything that may take long (a
 * graceful shutdown, a boot) is started here and completed by the daemon's
 * event loop, which waits on backend_cell_event_fd() and backend_cell_pidfd().
 * Functions return 0 or a negative errno and never log; the caller logs.
 */
#ifndef WARDEN_BACKEND_H
#define WARDEN_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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
	const char *args;   /* free-form inmate arguments, may be NULL */
	/* A Linux inmate (the spec's "linux" object): the kernel replaces
	 * images/entry; each is NULL when unused. */
	const char *kernel;  /* absolute path of the kernel image */
	const char *initrd;  /* absolute path of the initramfs, or NULL */
	const char *cmdline; /* kernel command line, or NULL */
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

typedef struct BackendCellStatus {
	BackendCellState state;
	char reason[BACKEND_REASON_LEN]; /* why it is in that state, or "" */
	uint64_t state_mono_ns; /* host CLOCK_MONOTONIC of the last change */
	uint64_t boots;         /* starts since create */
	pid_t pid;              /* the process holding the cell, or 0 */
	/* statistics, cumulative since create */
	uint64_t exits;
	uint64_t exits_io;
	uint64_t exits_mmio;
	uint64_t exits_hlt;
	uint64_t exits_sleep;
} BackendCellStatus;

typedef struct BackendConfig {
	const char *runtime_dir; /* cells live in runtime_dir/cells/NAME */
	const char *runner_path; /* helper binary: warden-kvm, qemu-system-x86_64 */
	const char *accel;       /* qemu: "tcg" or "kvm"; NULL for the default */
	const char *machine;     /* qemu: machine type ("pc"); NULL for the default */
} BackendConfig;

const char *backend_cell_state_to_string(BackendCellState s);
BackendCellState backend_cell_state_from_string(const char *s);

/* Known backend kinds ("kvm", ...); -EOPNOTSUPP for the others. */
int backend_new(const char *kind, const BackendConfig *cfg, Backend **ret);
Backend *backend_free(Backend *b);
const char *backend_kind(const Backend *b);
/* true: restart a cell with backend_cell_reset(); false: destroy it and
 * create a new one, which this backend does faster (both work). */
bool backend_restarts_in_place(const Backend *b);
int backend_enable(Backend *b);
int backend_disable(Backend *b);

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

#endif /* WARDEN_BACKEND_H */
