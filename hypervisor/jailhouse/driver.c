/* SPDX-License-Identifier: MIT */
#include "driver.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int device_ioctl(void *ctx, unsigned long request, void *arg)
{
	int fd = (int)(intptr_t)ctx;
	return ioctl(fd, request, arg) < 0 ? -errno : 0;
}

static const JhDriverOps device_ops = { .ioctl = device_ioctl };

int jh_driver_open(const char *path, JhDriver *ret)
{
	int fd = open(path ? path : JH_DEVICE_PATH, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*ret = (JhDriver){ .ops = &device_ops, .ctx = (void *)(intptr_t)fd };
	return 0;
}

void jh_driver_close(JhDriver *d)
{
	if (d->ops == &device_ops)
		close((int)(intptr_t)d->ctx);
	*d = (JhDriver){ 0 };
}

static int call(JhDriver *d, unsigned long request, void *arg)
{
	return d && d->ops ? d->ops->ioctl(d->ctx, request, arg) : -EBADF;
}

/* By name, as the tool does: the driver matches id -1 by its name. */
static int cell_id(const char *name, struct jh_cell_id *ret)
{
	if (!name || !*name)
		return -EINVAL;
	if (strlen(name) >= JH_CELL_NAME_LEN)
		return -ENAMETOOLONG;
	*ret = (struct jh_cell_id){ .id = JH_CELL_ID_UNUSED };
	memcpy(ret->name, name, strlen(name));
	return 0;
}

int jh_enable(JhDriver *d, const void *system_config, size_t size)
{
	if (!system_config || size == 0)
		return -EINVAL;
	/* No struct: the ioctl takes the config itself. */
	return call(d, JH_IOCTL_ENABLE, (void *)system_config);
}

int jh_disable(JhDriver *d)
{
	return call(d, JH_IOCTL_DISABLE, NULL);
}

int jh_cell_create(JhDriver *d, const void *cell_config, size_t size)
{
	struct jh_cell_create cc;

	if (!cell_config || size == 0 || size > UINT32_MAX)
		return -EINVAL;
	cc = (struct jh_cell_create){ .config_address = (uint64_t)(uintptr_t)cell_config,
		                      .config_size = (uint32_t)size };
	return call(d, JH_IOCTL_CELL_CREATE, &cc);
}

int jh_cell_load(JhDriver *d, const char *name, const JhImage *images, size_t n)
{
	struct jh_cell_load *cl;
	int r;

	if (n > JH_MAX_IMAGES || (n && !images))
		return -EINVAL;
	cl = calloc(1, sizeof(*cl) + n * sizeof(cl->image[0]));
	if (!cl)
		return -ENOMEM;
	r = cell_id(name, &cl->cell_id);
	if (r >= 0) {
		cl->num_preload_images = (uint32_t)n;
		for (size_t i = 0; i < n; i++)
			cl->image[i] = (struct jh_preload_image){
				.source_address = (uint64_t)(uintptr_t)images[i].data,
				.size = images[i].size,
				.target_address = images[i].target,
			};
		r = call(d, JH_IOCTL_CELL_LOAD, cl);
	}
	free(cl);
	return r;
}

int jh_cell_start(JhDriver *d, const char *name)
{
	struct jh_cell_id id;
	int r = cell_id(name, &id);
	return r < 0 ? r : call(d, JH_IOCTL_CELL_START, &id);
}

int jh_cell_destroy(JhDriver *d, const char *name)
{
	struct jh_cell_id id;
	int r = cell_id(name, &id);
	return r < 0 ? r : call(d, JH_IOCTL_CELL_DESTROY, &id);
}
