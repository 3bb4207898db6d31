/* SPDX-License-Identifier: MIT */
/*
 * What a backend implementation provides to backend.c. Only hypervisor/
 * includes this; wardend sees backend.h alone. Every Backend and BackendCell
 * object starts with a pointer to its ops table, so backend.c dispatches
 * without knowing the concrete type.
 */
#ifndef WARDEN_BACKEND_INTERNAL_H
#define WARDEN_BACKEND_INTERNAL_H

#include <time.h>

#include "backend.h"

typedef struct BackendOps {
	const char *kind;
	/* Whether the daemon restarts a cell with reset() or by destroying it
	 * and creating a new one, whichever was measured faster. */
	bool restart_in_place;
	void (*free)(Backend *b);
	int (*enable)(Backend *b);
	int (*disable)(Backend *b);
	int (*cell_create)(Backend *b, const BackendCellConfig *cfg, BackendCell **ret);
	int (*cell_adopt)(Backend *b, const char *name, BackendCell **ret);
	int (*stats)(Backend *b, BackendStat *ret, size_t max); /* optional */
	ssize_t (*console_read)(Backend *b, char *buf, size_t n); /* optional */
} BackendOps;

typedef struct BackendCellOps {
	void (*free)(BackendCell *c);
	int (*load)(BackendCell *c);
	int (*start)(BackendCell *c);
	int (*stop)(BackendCell *c);
	int (*reset)(BackendCell *c);
	int (*shutdown)(BackendCell *c); /* optional: NULL asks through mail */
	int (*mail)(BackendCell *c, uint32_t cmd, uint32_t arg);
	int (*destroy)(BackendCell *c);
	const char *(*name)(const BackendCell *c);
	int (*status)(BackendCell *c, BackendCellStatus *ret);
	volatile struct warden_comm *(*comm)(BackendCell *c);
	ssize_t (*console_read)(BackendCell *c, char *buf, size_t n);
	int (*event_fd)(BackendCell *c);
	int (*event_ack)(BackendCell *c);
	int (*pidfd)(BackendCell *c);
	void (*reap)(BackendCell *c);
	int (*reset_begin)(BackendCell *c);  /* optional */
	int (*reset_finish)(BackendCell *c); /* optional */
} BackendCellOps;

struct Backend {
	const BackendOps *ops;
};

typedef struct BackendTasks BackendTasks;

/* Backends allocate their cells zeroed, base first. */
struct BackendCell {
	const BackendCellOps *ops;
	BackendTasks *tasks; /* backend_cell_cpu_times()'s open procfs files */
};

/* Backend constructors, one per kind. */
int kvm_backend_new(const BackendConfig *cfg, Backend **ret);
int qemu_backend_new(const BackendConfig *cfg, Backend **ret);
int jailhouse_backend_new(const BackendConfig *cfg, Backend **ret);
int container_backend_new(const BackendConfig *cfg, Backend **ret);

/* Consoles and runner logs: what inmates print can be anything their
 * memory held (an image, a secret), so no more than the daemon's group
 * reads them (the API's console reads go through the daemon's roles). */
#define LOG_FILE_MODE 0640

/* Small pieces every backend implementation needs. */
void backend_close_fd(int *fd);
/* A pidfd for pid, or -errno. */
int backend_pidfd_open(pid_t pid);
/* Now on clk, in ns; and what is left until a CLOCK_MONOTONIC deadline,
 * in ms rounded up (0: passed), for poll(). */
uint64_t backend_now_ns(clockid_t clk);
int backend_remaining_ms(uint64_t deadline_ns);
/* fd polls readable (or hung up) within timeout_ms (0: now). */
bool backend_fd_readable(int fd, int timeout_ms);
/* Cell names become directory names: 1..64 of [A-Za-z0-9._-], no leading dot. */
bool backend_name_valid(const char *s);
/* mkdir -p with mode 0755. */
int backend_mkdir_p(const char *path);
/* argv[*n] = the formatted string, keeping argv[max - 1] for the NULL. */
int backend_append_arg(char **argv, size_t *n, size_t max, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A deep copy of a cell config, every string, array and byte buffer it
 * points at included, for requests that outlive the caller's config
 * (backend-queue.c); NULL when out of memory or over the BACKEND_MAX_*
 * bounds. _free() takes NULL. */
BackendCellConfig *backend_cell_config_dup(const BackendCellConfig *src);
void backend_cell_config_free(BackendCellConfig *c);

/* Post a mailbox command per comm.h: cmd and cmd_arg, then cmd_seq with
 * release semantics. Shared by backends whose comm region is plain memory. */
int backend_comm_post(volatile struct warden_comm *comm, uint32_t cmd, uint32_t arg);
/* The newest n bytes of the console ring behind a comm region of
 * region_size bytes (api/warden/comm.h); 0 when there is none or it is not
 * set up. The ring's writer is the inmate: whatever it holds is copied,
 * never trusted for more than its bytes. */
ssize_t backend_comm_console_read(const volatile struct warden_comm *comm, size_t region_size, char *buf, size_t n);

#endif /* WARDEN_BACKEND_INTERNAL_H */
