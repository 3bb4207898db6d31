/* SPDX-License-Identifier: MIT */
/*
 * A fake Jailhouse driver behind the ioctl seam (hypervisor/jailhouse/
 * driver.h), for tests: the unit test of the helper and the fake helper
 * binary the daemon tests run (warden-jailhouse-fake). It models the
 * driver's contract as ../shared/jailhouse/FACTS.md states it:
 *
 *   section 2 (ioctls): ENABLE once (-EBUSY after), with a JHSYS rev-14
 *   config (-EINVAL else); CELL_CREATE needs an enabled hypervisor
 *   (-EINVAL), a config that decodes, a unique name (-EEXIST) and CPUs the
 *   root cell owns (-EBUSY), and gets the lowest free id (root is 0);
 *   CELL_LOAD finds the cell by name (-ENOENT), sets it loadable ("shut
 *   down") and wants each image inside a WRITE|LOADABLE region (-EINVAL);
 *   an inmate may refuse START and DESTROY (-EPERM); DISABLE needs an
 *   enabled hypervisor and takes every cell with it.
 *
 *   section 3 (sysfs), when given a directory: enabled, the four pool
 *   figures, cells/<id>/{name,state,cpus_assigned,cpus_assigned_list,
 *   cpus_failed,cpus_failed_list,statistics/vmexits_*}, kept the way the
 *   driver keeps them on every call above; the root cell is cells/0.
 *   A test plays the hypervisor by writing a cell's state, cpus_failed_list
 *   or statistics files itself; LOAD and START make the fake write them
 *   anew (a loaded cell's CPUs are reset, so no CPU stays failed).
 *
 * Every call is recorded (up to FAKE_JH_MAX_CALLS) with what it pointed
 * at, and appended to a log file when one is set, one line per call:
 * "ENABLE 0", "CELL_CREATE demo 0", "CELL_LOAD demo images=1 0",
 * "CELL_START demo -1", ... (the last field is the result, 0 or -errno).
 */
#ifndef WARDEN_TESTS_FAKE_JAILHOUSE_H
#define WARDEN_TESTS_FAKE_JAILHOUSE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hypervisor/jailhouse/abi.h"
#include "hypervisor/jailhouse/cell-config.h"
#include "hypervisor/jailhouse/driver.h"

#define FAKE_JH_MAX_CALLS 64
#define FAKE_JH_MAX_CELLS 8

typedef struct FakeJhCall {
	unsigned long request;
	int result;
	struct jh_cell_id id;
	uint32_t n_images;
	struct jh_preload_image image[4];
	uint8_t image_head[4][16];
	uint8_t config_head[8];
	uint32_t config_size;
} FakeJhCall;

typedef struct FakeJhCell {
	bool used, started, refuse;
	char name[JH_CELL_NAME_LEN];
	uint64_t cpus;
	JhCellConfig *cfg;
} FakeJhCell;

typedef struct FakeJh {
	pthread_mutex_t lock;
	FakeJhCall calls[FAKE_JH_MAX_CALLS];
	size_t n_calls;
	bool enabled;
	uint64_t all_cpus, root_cpus;
	char root_name[JH_CELL_NAME_LEN];
	FakeJhCell cells[FAKE_JH_MAX_CELLS]; /* [0] is the root cell's slot */
	char *sysfs;  /* NULL: no sysfs tree */
	int log_fd;   /* -1: no call log */
} FakeJh;

extern const JhDriverOps fake_jh_ops;

/* cpus: what the root cell owns before ENABLE (a mask, CPU 0 = bit 0);
 * sysfs_dir (created) and log_path may be NULL. */
int fake_jh_init(FakeJh *f, uint64_t cpus, const char *sysfs_dir, const char *log_path);
void fake_jh_done(FakeJh *f);
/* The seam the helper serves: ops = fake_jh_ops, ctx = f. */
JhDriver fake_jh_driver(FakeJh *f);
/* By name: the cell's slot, or NULL. */
FakeJhCell *fake_jh_cell(FakeJh *f, const char *name);

#endif /* WARDEN_TESTS_FAKE_JAILHOUSE_H */
