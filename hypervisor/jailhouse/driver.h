/* SPDX-License-Identifier: MIT */
/*
 * The ioctls of /dev/jailhouse behind a thin seam: every call goes through
 * JhDriver.ops->ioctl, so that tests record and check what would reach the
 * real driver (layouts, order, errors), and the Jailhouse helper process is
 * the only place that opens the device. These calls block for as long as
 * the driver takes (ENABLE, a CELL_LOAD of a 30 MB kernel): never call them
 * on the daemon's loop. Negative errno, no logging.
 */
#ifndef WARDEN_JAILHOUSE_DRIVER_H
#define WARDEN_JAILHOUSE_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#include "abi.h"

typedef struct JhDriverOps {
	/* ioctl(2) on the device: 0 or -errno */
	int (*ioctl)(void *ctx, unsigned long request, void *arg);
} JhDriverOps;

typedef struct JhDriver {
	const JhDriverOps *ops;
	void *ctx;
} JhDriver;

typedef struct JhImage {
	const void *data;
	size_t size;
	uint64_t target; /* guest-physical address in the cell */
} JhImage;

#define JH_DEVICE_PATH "/dev/jailhouse"
#define JH_MAX_IMAGES 16

/* The real device (ctx is its fd). */
int jh_driver_open(const char *path, JhDriver *ret);
void jh_driver_close(JhDriver *d);

int jh_enable(JhDriver *d, const void *system_config, size_t size);
int jh_disable(JhDriver *d);
int jh_cell_create(JhDriver *d, const void *cell_config, size_t size);
/* CELL_LOAD: sets the cell loadable (shut down), then copies the images.
 * With no images it is the tool's "cell shutdown". */
int jh_cell_load(JhDriver *d, const char *name, const JhImage *images, size_t n);
int jh_cell_start(JhDriver *d, const char *name);
int jh_cell_destroy(JhDriver *d, const char *name);

#endif /* WARDEN_JAILHOUSE_DRIVER_H */
