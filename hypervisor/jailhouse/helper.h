/* SPDX-License-Identifier: MIT */
/*
 * The Jailhouse helper: the one process that holds /dev/jailhouse (and
 * /dev/mem for comm regions), so that the daemon, which parses HTTP, holds
 * neither. It serves one SEQPACKET socket: each request is one message,
 * with its blobs (configs, images) as memfds passed alongside, and gets one
 * reply. The backend's worker threads are its clients (JhClient): a
 * request blocks for as long as the driver takes, which is why they are
 * worker calls and never run on the daemon's loop.
 *
 * A comm region is handed out as an fd of /dev/mem only for a range that a
 * cell config the helper created declares as shared with the root cell
 * (ROOTSHARED or COMM_REGION): the daemon maps it without privileges.
 * A new helper knows no cells; CELL_REGISTER tells it of those that
 * outlived the previous one (see jh_client_cell_register()).
 */
#ifndef WARDEN_JAILHOUSE_HELPER_H
#define WARDEN_JAILHOUSE_HELPER_H

#include <stddef.h>
#include <stdint.h>

#include "driver.h"

#define JH_HELPER_MAGIC 0x524a4857u /* "WHJR" */

enum {
	JH_OP_ENABLE = 1,
	JH_OP_DISABLE,
	JH_OP_CELL_CREATE,
	JH_OP_CELL_LOAD,
	JH_OP_CELL_START,
	JH_OP_CELL_DESTROY,
	JH_OP_OPEN_MEM,
	JH_OP_CELL_REGISTER,
	_JH_OP_MAX,
};

struct jh_helper_request {
	uint32_t magic;
	uint32_t op;
	char name[JH_CELL_NAME_LEN];
	uint32_t n_blobs; /* fds passed alongside, one per blob */
	uint32_t reserved;
	struct {
		uint64_t size;
		uint64_t target; /* LOAD: guest-physical address */
	} blob[JH_MAX_IMAGES];
	uint64_t mem_phys, mem_size; /* OPEN_MEM */
};

struct jh_helper_reply {
	uint32_t magic;
	int32_t result; /* 0 or -errno; OPEN_MEM passes the fd alongside */
};

typedef struct JhHelperOptions {
	const char *mem_path;   /* what OPEN_MEM opens; NULL: /dev/mem */
	const char *sysfs_root; /* what CELL_REGISTER checks; NULL: JH_SYSFS_ROOT */
} JhHelperOptions;

/* Serves requests on fd until it reaches EOF; 0 then, -errno on a broken
 * socket. */
int jh_helper_serve(int fd, JhDriver *driver, const JhHelperOptions *opts);

typedef struct JhClient JhClient;

/* fd: the daemon's end of the helper's socket (taken over). */
int jh_client_new(int fd, JhClient **ret);
JhClient *jh_client_free(JhClient *c);
int jh_client_enable(JhClient *c, const void *system_config, size_t size);
int jh_client_disable(JhClient *c);
int jh_client_cell_create(JhClient *c, const void *cell_config, size_t size);
int jh_client_cell_load(JhClient *c, const char *name, const JhImage *images, size_t n);
int jh_client_cell_start(JhClient *c, const char *name);
int jh_client_cell_destroy(JhClient *c, const char *name);
/* An fd of the helper's mem device for [phys, phys + size): mmap it at
 * offset phys. -EPERM for a range no created or registered cell shares
 * with the root. */
int jh_client_open_mem(JhClient *c, uint64_t phys, uint64_t size, int *ret_fd);
/* CELL_REGISTER: the shared ranges of a cell that exists already (created
 * by an earlier helper, before a daemon restart), from its .cell bytes,
 * without touching the driver. The helper checks sysfs: a cell of that
 * name must exist (-ENOENT) and own exactly the CPUs the .cell names
 * (-EPERM). It cannot check the memory regions (sysfs does not show them):
 * the daemon is trusted with that much, as it is with the .cell it asks to
 * create. */
int jh_client_cell_register(JhClient *c, const void *cell_config, size_t size);

#endif /* WARDEN_JAILHOUSE_HELPER_H */
