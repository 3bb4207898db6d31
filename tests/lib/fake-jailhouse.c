/* SPDX-License-Identifier: MIT */
/* The fake Jailhouse driver (fake-jailhouse.h). */
#include "fake-jailhouse.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The arm64 counters of FACTS.md section 3, generic ones first. */
static const char *const stat_names[] = {
	"vmexits_total",       "vmexits_mmio",     "vmexits_management", "vmexits_hypercall", "vmexits_maintenance",
	"vmexits_virt_irq",    "vmexits_virt_sgi", "vmexits_psci",       "vmexits_smccc",
};

/* ---- sysfs --------------------------------------------------------------- */

static void put(const FakeJh *f, const char *rel, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void put(const FakeJh *f, const char *rel, const char *fmt, ...)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8], buf[512];
	va_list ap;
	int fd, n;

	if (!f->sysfs)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	snprintf(path, sizeof(path), "%s/%s", f->sysfs, rel);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	/* A reader never sees half a file: sysfs attributes are read whole. */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, buf, (size_t)n) != n) {
		close(fd);
		unlink(tmp);
		return;
	}
	close(fd);
	(void)rename(tmp, path);
}

static void mkdir_rel(const FakeJh *f, const char *rel)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", f->sysfs, rel);
	(void)mkdir(path, 0755);
}

static void rm_rf(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;

	if (!d) {
		(void)unlink(path);
		return;
	}
	while ((de = readdir(d))) {
		char sub[PATH_MAX];
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		rm_rf(sub);
	}
	closedir(d);
	(void)rmdir(path);
}

/* "%*pb" with nr_cpu_ids = 16 and "%*pbl" of FACTS.md. */
static void cpu_strings(uint64_t mask, char *hex, size_t nh, char *list, size_t nl)
{
	size_t len = 0;

	snprintf(hex, nh, "%04llx", (unsigned long long)(mask & 0xffff));
	list[0] = 0;
	for (unsigned c = 0; c < 64; c++) {
		unsigned e = c;
		if (!(mask >> c & 1))
			continue;
		while (e + 1 < 64 && (mask >> (e + 1) & 1))
			e++;
		len += (size_t)snprintf(list + len, nl - len, e == c ? "%s%u" : "%s%u-%u", len ? "," : "", c, e);
		c = e;
	}
}

static void sysfs_cpus(const FakeJh *f, int id, uint64_t cpus)
{
	char rel[64], hex[32], list[256];

	cpu_strings(cpus, hex, sizeof(hex), list, sizeof(list));
	snprintf(rel, sizeof(rel), "cells/%d/cpus_assigned", id);
	put(f, rel, "%s\n", hex);
	snprintf(rel, sizeof(rel), "cells/%d/cpus_assigned_list", id);
	put(f, rel, "%s\n", list);
}

static void sysfs_state(const FakeJh *f, int id, const char *state)
{
	char rel[64];

	snprintf(rel, sizeof(rel), "cells/%d/state", id);
	put(f, rel, "%s\n", state);
	/* A cell set loadable or started has no failed CPU. */
	snprintf(rel, sizeof(rel), "cells/%d/cpus_failed", id);
	put(f, rel, "0000\n");
	snprintf(rel, sizeof(rel), "cells/%d/cpus_failed_list", id);
	put(f, rel, "\n");
}

static void sysfs_cell(const FakeJh *f, int id, const char *name, uint64_t cpus, const char *state)
{
	char rel[96];

	if (!f->sysfs)
		return;
	snprintf(rel, sizeof(rel), "cells/%d", id);
	mkdir_rel(f, rel);
	snprintf(rel, sizeof(rel), "cells/%d/statistics", id);
	mkdir_rel(f, rel);
	for (size_t i = 0; i < sizeof(stat_names) / sizeof(stat_names[0]); i++) {
		snprintf(rel, sizeof(rel), "cells/%d/statistics/%s", id, stat_names[i]);
		put(f, rel, "0\n");
	}
	snprintf(rel, sizeof(rel), "cells/%d/name", id);
	put(f, rel, "%s\n", name);
	sysfs_cpus(f, id, cpus);
	sysfs_state(f, id, state);
}

static void sysfs_cell_remove(const FakeJh *f, int id)
{
	char path[PATH_MAX];

	if (!f->sysfs)
		return;
	snprintf(path, sizeof(path), "%s/cells/%d", f->sysfs, id);
	rm_rf(path);
}

static void sysfs_system(const FakeJh *f)
{
	unsigned cells = 0;

	if (!f->sysfs)
		return;
	for (int i = 1; i < FAKE_JH_MAX_CELLS; i++)
		cells += f->cells[i].used;
	put(f, "enabled", "%d\n", f->enabled);
	/* Pages, as the driver prints them; each cell takes some of both. */
	put(f, "mem_pool_size", "%ld\n", f->enabled ? 16384L : 0L);
	put(f, "mem_pool_used", "%ld\n", f->enabled ? 1024L + 256L * cells : 0L);
	put(f, "remap_pool_size", "%ld\n", f->enabled ? 4096L : 0L);
	put(f, "remap_pool_used", "%ld\n", f->enabled ? 128L + 16L * cells : 0L);
	put(f, "console", "%s", "");
}

/* ---- the log ------------------------------------------------------------ */

static const char *request_name(unsigned long request)
{
	switch (request) {
	case JH_IOCTL_ENABLE: return "ENABLE";
	case JH_IOCTL_DISABLE: return "DISABLE";
	case JH_IOCTL_CELL_CREATE: return "CELL_CREATE";
	case JH_IOCTL_CELL_LOAD: return "CELL_LOAD";
	case JH_IOCTL_CELL_START: return "CELL_START";
	case JH_IOCTL_CELL_DESTROY: return "CELL_DESTROY";
	}
	return "UNKNOWN";
}

static void log_call(const FakeJh *f, unsigned long request, const char *name, long n_images, int result)
{
	char line[160];
	int n;

	if (f->log_fd < 0)
		return;
	n = snprintf(line, sizeof(line), "%s", request_name(request));
	if (name && *name)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " %s", name);
	if (n_images >= 0)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " images=%ld", n_images);
	n += snprintf(line + n, sizeof(line) - (size_t)n, " %d\n", result);
	/* O_APPEND: one write, one line, even for a reader tailing it. */
	(void)!write(f->log_fd, line, (size_t)n);
}

/* ---- the driver ------------------------------------------------------------ */

static FakeJhCell *by_id(FakeJh *f, const struct jh_cell_id *id)
{
	for (int i = 1; i < FAKE_JH_MAX_CELLS; i++)
		if (f->cells[i].used && id->id == JH_CELL_ID_UNUSED &&
		    strncmp(f->cells[i].name, id->name, JH_CELL_NAME_LEN) == 0)
			return &f->cells[i];
	return NULL;
}

FakeJhCell *fake_jh_cell(FakeJh *f, const char *name)
{
	struct jh_cell_id id = { .id = JH_CELL_ID_UNUSED };

	snprintf(id.name, sizeof(id.name), "%s", name);
	return by_id(f, &id);
}

static int slot(const FakeJh *f, const FakeJhCell *c)
{
	return (int)(c - f->cells);
}

static int fake_enable(FakeJh *f, const void *arg, FakeJhCall *call)
{
	memcpy(call->config_head, arg, 8);
	if (f->enabled)
		return -EBUSY;
	if (memcmp(arg, "JHSYS", 5) != 0 || ((const uint8_t *)arg)[6] != 14)
		return -EINVAL;
	f->enabled = true;
	f->root_cpus = f->all_cpus;
	/* The ioctl has no size: the root cell's name is at a fixed offset of
	 * a rev-14 system config (root_cell @356, its name @+8). */
	memcpy(f->root_name, (const char *)arg + 356 + 8, JH_CELL_NAME_LEN - 1);
	f->root_name[JH_CELL_NAME_LEN - 1] = 0;
	if (!f->root_name[0])
		snprintf(f->root_name, sizeof(f->root_name), "root");
	if (f->sysfs) {
		mkdir_rel(f, "cells");
		sysfs_cell(f, 0, f->root_name, f->root_cpus, "running");
	}
	sysfs_system(f);
	return 0;
}

static int fake_disable(FakeJh *f)
{
	if (!f->enabled)
		return -EINVAL;
	for (int i = 1; i < FAKE_JH_MAX_CELLS; i++)
		if (f->cells[i].used) {
			jh_cell_config_free(f->cells[i].cfg);
			f->cells[i] = (FakeJhCell){ 0 };
			sysfs_cell_remove(f, i);
		}
	sysfs_cell_remove(f, 0);
	f->enabled = false;
	f->root_cpus = f->all_cpus;
	sysfs_system(f);
	return 0;
}

static int fake_create(FakeJh *f, const struct jh_cell_create *cc, FakeJhCall *call)
{
	JhCellConfig *c = NULL;
	char err[256];
	uint64_t cpus = 0;
	struct jh_cell_id id = { .id = JH_CELL_ID_UNUSED };

	call->config_size = cc->config_size;
	memcpy(call->config_head, (const void *)(uintptr_t)cc->config_address, 8);
	if (!f->enabled)
		return -EINVAL;
	if (jh_cell_config_decode((const void *)(uintptr_t)cc->config_address, cc->config_size, JH_ARCH_ARM64, &c, err,
	                          sizeof err) < 0)
		return -EINVAL;
	memcpy(id.name, c->name, JH_CELL_NAME_LEN);
	memcpy(call->id.name, c->name, JH_CELL_NAME_LEN);
	if (by_id(f, &id)) {
		jh_cell_config_free(c);
		return -EEXIST;
	}
	for (unsigned cpu = 0; cpu < 64; cpu++)
		if (jh_cell_config_has_cpu(c, cpu))
			cpus |= 1ULL << cpu;
	if ((cpus & ~f->root_cpus) || !cpus) {
		jh_cell_config_free(c);
		return -EBUSY;
	}
	for (int i = 1; i < FAKE_JH_MAX_CELLS; i++) /* the lowest free id; root is 0 */
		if (!f->cells[i].used) {
			f->cells[i] = (FakeJhCell){ .used = true, .cpus = cpus, .cfg = c };
			memcpy(f->cells[i].name, c->name, JH_CELL_NAME_LEN);
			f->root_cpus &= ~cpus;
			/* A created cell reads "shut down" until its start. */
			sysfs_cell(f, i, f->cells[i].name, cpus, "shut down");
			sysfs_cpus(f, 0, f->root_cpus);
			sysfs_system(f);
			return 0;
		}
	jh_cell_config_free(c);
	return -ENOMEM;
}

static bool loadable(const JhCellConfig *c, uint64_t at, uint64_t size)
{
	for (uint32_t i = 0; i < c->n_memory; i++) {
		const JhMemory *m = &c->memory[i];
		if ((m->flags & (JH_MEM_WRITE | JH_MEM_LOADABLE)) == (JH_MEM_WRITE | JH_MEM_LOADABLE) &&
		    at >= m->virt_start && at - m->virt_start <= m->size && size <= m->size - (at - m->virt_start))
			return true;
	}
	return false;
}

static int fake_load(FakeJh *f, const struct jh_cell_load *cl, FakeJhCall *call)
{
	FakeJhCell *cell;

	call->id = cl->cell_id;
	call->n_images = cl->num_preload_images;
	for (uint32_t i = 0; i < cl->num_preload_images && i < 4; i++) {
		call->image[i] = cl->image[i];
		memcpy(call->image_head[i], (const void *)(uintptr_t)cl->image[i].source_address,
		       cl->image[i].size < 16 ? cl->image[i].size : 16);
	}
	cell = by_id(f, &cl->cell_id);
	if (!cell)
		return -ENOENT;
	/* HC_CELL_SET_LOADABLE comes first, whatever the images say. */
	cell->started = false;
	sysfs_state(f, slot(f, cell), "shut down");
	for (uint32_t i = 0; i < cl->num_preload_images; i++)
		if (!loadable(cell->cfg, cl->image[i].target_address, cl->image[i].size))
			return -EINVAL;
	return 0;
}

static int fake_start_destroy(FakeJh *f, unsigned long request, const struct jh_cell_id *id, FakeJhCall *call)
{
	FakeJhCell *cell;
	int i;

	call->id = *id;
	cell = by_id(f, id);
	if (!cell)
		return -ENOENT;
	if (cell->refuse)
		return -EPERM;
	i = slot(f, cell);
	if (request == JH_IOCTL_CELL_START) {
		cell->started = true;
		sysfs_state(f, i, "running");
		return 0;
	}
	f->root_cpus |= cell->cpus;
	jh_cell_config_free(cell->cfg);
	*cell = (FakeJhCell){ 0 };
	sysfs_cell_remove(f, i);
	sysfs_cpus(f, 0, f->root_cpus);
	sysfs_system(f);
	return 0;
}

static int fake_ioctl(void *ctx, unsigned long request, void *arg)
{
	FakeJh *f = ctx;
	FakeJhCall scratch, *call;
	int r;

	pthread_mutex_lock(&f->lock);
	call = f->n_calls < FAKE_JH_MAX_CALLS ? &f->calls[f->n_calls++] : &scratch;
	*call = (FakeJhCall){ .request = request };
	switch (request) {
	case JH_IOCTL_ENABLE:
		r = fake_enable(f, arg, call);
		break;
	case JH_IOCTL_DISABLE:
		r = fake_disable(f);
		break;
	case JH_IOCTL_CELL_CREATE:
		r = fake_create(f, arg, call);
		break;
	case JH_IOCTL_CELL_LOAD:
		r = fake_load(f, arg, call);
		break;
	case JH_IOCTL_CELL_START:
	case JH_IOCTL_CELL_DESTROY:
		r = fake_start_destroy(f, request, arg, call);
		break;
	default:
		r = -ENOTTY;
	}
	call->result = r;
	log_call(f, request, call->id.name, request == JH_IOCTL_CELL_LOAD ? (long)call->n_images : -1, r);
	pthread_mutex_unlock(&f->lock);
	return r;
}

const JhDriverOps fake_jh_ops = { .ioctl = fake_ioctl };

int fake_jh_init(FakeJh *f, uint64_t cpus, const char *sysfs_dir, const char *log_path)
{
	*f = (FakeJh){ .all_cpus = cpus, .root_cpus = cpus, .log_fd = -1 };
	pthread_mutex_init(&f->lock, NULL);
	if (sysfs_dir) {
		f->sysfs = strdup(sysfs_dir);
		if (!f->sysfs)
			return -ENOMEM;
		if (mkdir(sysfs_dir, 0755) < 0 && errno != EEXIST)
			return -errno;
		/* The driver is loaded, the hypervisor not enabled. */
		sysfs_system(f);
	}
	if (log_path) {
		f->log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (f->log_fd < 0)
			return -errno;
	}
	return 0;
}

void fake_jh_done(FakeJh *f)
{
	for (int i = 0; i < FAKE_JH_MAX_CELLS; i++)
		jh_cell_config_free(f->cells[i].cfg);
	if (f->log_fd >= 0)
		close(f->log_fd);
	free(f->sysfs);
	pthread_mutex_destroy(&f->lock);
	*f = (FakeJh){ .log_fd = -1 };
}

JhDriver fake_jh_driver(FakeJh *f)
{
	return (JhDriver){ .ops = &fake_jh_ops, .ctx = f };
}
