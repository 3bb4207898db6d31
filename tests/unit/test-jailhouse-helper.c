/* SPDX-License-Identifier: MIT */
/*
 * The Jailhouse helper over its real socket protocol, with a fake driver
 * behind the ioctl seam. The fake models the driver's contract as
 * ../shared/jailhouse/FACTS.md states it (section 2): ENABLE once, CELL_CREATE
 * needs an enabled hypervisor, a unique name (-EEXIST) and CPUs the root
 * cell owns (-EBUSY); CELL_LOAD finds the cell by name (-ENOENT) and wants
 * each image inside a WRITE|LOADABLE region (-EINVAL); an inmate may refuse
 * START and DESTROY (-EPERM). Every call is recorded with what it pointed
 * at, and the test checks layouts, order and errors. The real driver is
 * exercised on the emulated board.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "hypervisor/jailhouse/abi.h"
#include "hypervisor/jailhouse/cell-config.h"
#include "hypervisor/jailhouse/helper.h"

#define MAX_CALLS 64
#define MAX_CELLS 8

typedef struct Call {
	unsigned long request;
	int result;
	struct jh_cell_id id;
	uint32_t n_images;
	struct jh_preload_image image[4];
	uint8_t image_head[4][16];
	uint8_t config_head[8];
	uint32_t config_size;
} Call;

typedef struct FakeCell {
	bool used, started, refuse;
	char name[JH_CELL_NAME_LEN];
	uint64_t cpus;
	JhCellConfig *cfg;
} FakeCell;

typedef struct Fake {
	pthread_mutex_t lock;
	Call calls[MAX_CALLS];
	size_t n_calls;
	bool enabled;
	uint64_t root_cpus;
	FakeCell cells[MAX_CELLS];
} Fake;

static FakeCell *by_name(Fake *f, const struct jh_cell_id *id) {
	for (int i = 1; i < MAX_CELLS; i++)
		if (f->cells[i].used && id->id == JH_CELL_ID_UNUSED &&
		    strncmp(f->cells[i].name, id->name, JH_CELL_NAME_LEN) == 0)
			return &f->cells[i];
	return NULL;
}

static int fake_create(Fake *f, const struct jh_cell_create *cc, Call *call) {
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
	if (by_name(f, &id)) {
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
	for (int i = 1; i < MAX_CELLS; i++) /* the lowest free id; root is 0 */
		if (!f->cells[i].used) {
			f->cells[i] = (FakeCell){ .used = true, .cpus = cpus, .cfg = c };
			memcpy(f->cells[i].name, c->name, JH_CELL_NAME_LEN);
			f->root_cpus &= ~cpus;
			return 0;
		}
	jh_cell_config_free(c);
	return -ENOMEM;
}

static bool loadable(const JhCellConfig *c, uint64_t at, uint64_t size) {
	for (uint32_t i = 0; i < c->n_memory; i++) {
		const JhMemory *m = &c->memory[i];
		if ((m->flags & (JH_MEM_WRITE | JH_MEM_LOADABLE)) == (JH_MEM_WRITE | JH_MEM_LOADABLE) &&
		    at >= m->virt_start && at - m->virt_start <= m->size && size <= m->size - (at - m->virt_start))
			return true;
	}
	return false;
}

static int fake_ioctl(void *ctx, unsigned long request, void *arg) {
	Fake *f = ctx;
	Call *call;
	FakeCell *cell;
	int r = 0;

	pthread_mutex_lock(&f->lock);
	assert_true(f->n_calls < MAX_CALLS);
	call = &f->calls[f->n_calls++];
	*call = (Call){ .request = request };
	switch (request) {
	case JH_IOCTL_ENABLE:
		memcpy(call->config_head, arg, 8);
		if (f->enabled)
			r = -EBUSY;
		else if (memcmp(arg, "JHSYS", 5) != 0 || ((const uint8_t *)arg)[6] != 14)
			r = -EINVAL;
		else
			f->enabled = true;
		break;
	case JH_IOCTL_DISABLE:
		if (!f->enabled)
			r = -EINVAL;
		for (int i = 1; i < MAX_CELLS && r == 0; i++)
			if (f->cells[i].used) {
				jh_cell_config_free(f->cells[i].cfg);
				f->cells[i].used = false;
			}
		f->enabled = false;
		break;
	case JH_IOCTL_CELL_CREATE:
		r = fake_create(f, arg, call);
		break;
	case JH_IOCTL_CELL_LOAD: {
		const struct jh_cell_load *cl = arg;
		call->id = cl->cell_id;
		call->n_images = cl->num_preload_images;
		for (uint32_t i = 0; i < cl->num_preload_images && i < 4; i++) {
			call->image[i] = cl->image[i];
			memcpy(call->image_head[i], (const void *)(uintptr_t)cl->image[i].source_address,
			       cl->image[i].size < 16 ? cl->image[i].size : 16);
		}
		cell = by_name(f, &cl->cell_id);
		if (!cell) {
			r = -ENOENT;
			break;
		}
		for (uint32_t i = 0; i < cl->num_preload_images; i++)
			if (!loadable(cell->cfg, cl->image[i].target_address, cl->image[i].size))
				r = -EINVAL;
		cell->started = false; /* loadable: shut down */
		break;
	}
	case JH_IOCTL_CELL_START:
	case JH_IOCTL_CELL_DESTROY:
		call->id = *(const struct jh_cell_id *)arg;
		cell = by_name(f, arg);
		if (!cell)
			r = -ENOENT;
		else if (cell->refuse)
			r = -EPERM;
		else if (request == JH_IOCTL_CELL_START)
			cell->started = true;
		else {
			f->root_cpus |= cell->cpus;
			jh_cell_config_free(cell->cfg);
			*cell = (FakeCell){ 0 };
		}
		break;
	default:
		r = -ENOTTY;
	}
	call->result = r;
	pthread_mutex_unlock(&f->lock);
	return r;
}

static const JhDriverOps fake_ops = { .ioctl = fake_ioctl };

typedef struct T {
	Fake fake;
	JhDriver driver;
	JhClient *client;
	pthread_t server;
	int server_fd;
	int served;
	char mem_path[64];
} T;

static void *serve(void *arg) {
	T *t = arg;
	t->served = jh_helper_serve(t->server_fd, &t->driver, t->mem_path);
	close(t->server_fd);
	return NULL;
}

static int setup(void **state) {
	T *t = calloc(1, sizeof *t);
	int sv[2], fd;

	pthread_mutex_init(&t->fake.lock, NULL);
	t->fake.root_cpus = 0xf; /* CPUs 0-3 */
	t->driver = (JhDriver){ .ops = &fake_ops, .ctx = &t->fake };
	snprintf(t->mem_path, sizeof t->mem_path, "/tmp/warden-jh-mem-XXXXXX");
	fd = mkstemp(t->mem_path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	t->server_fd = sv[1];
	assert_int_equal(jh_client_new(sv[0], &t->client), 0);
	assert_int_equal(pthread_create(&t->server, NULL, serve, t), 0);
	*state = t;
	return 0;
}

static int teardown(void **state) {
	T *t = *state;
	t->client = jh_client_free(t->client); /* EOF: the helper ends */
	pthread_join(t->server, NULL);
	unlink(t->mem_path);
	for (int i = 0; i < MAX_CELLS; i++)
		jh_cell_config_free(t->fake.cells[i].cfg);
	free(t);
	return 0;
}

/* A rev-14 arm64 cell: CPU `cpu`, 1 MiB of loadable RAM at 0, a comm
 * region shared with the root cell. */
static uint8_t *make_cell(const char *name, unsigned cpu, uint64_t comm_phys, size_t *ret_size) {
	JhCellConfig *c = jh_cell_config_new(14, JH_ARCH_ARM64);
	uint8_t *data;
	char err[256];

	assert_non_null(c);
	snprintf(c->name, sizeof c->name, "%s", name);
	c->cpu_set = calloc(1, 8);
	c->cpu_set_size = 8;
	c->cpu_set[cpu / 8] |= (uint8_t)(1u << (cpu % 8));
	c->memory = calloc(2, sizeof *c->memory);
	c->n_memory = 2;
	c->memory[0] = (JhMemory){ .phys_start = 0x70000000, .virt_start = 0, .size = 0x100000,
		                   .flags = JH_MEM_READ | JH_MEM_WRITE | JH_MEM_EXECUTE | JH_MEM_LOADABLE };
	c->memory[1] = (JhMemory){ .phys_start = comm_phys, .virt_start = 0x80000000, .size = 0x1000,
		                   .flags = JH_MEM_READ | JH_MEM_WRITE | JH_MEM_ROOTSHARED };
	assert_int_equal(jh_cell_config_encode(c, &data, ret_size, err, sizeof err), 0);
	jh_cell_config_free(c);
	return data;
}

static uint8_t *make_system(size_t *ret_size) {
	JhSystemConfig *s = jh_system_config_new(14, JH_ARCH_ARM64);
	uint8_t *data;
	char err[256];

	assert_non_null(s);
	snprintf(s->root_cell.name, sizeof s->root_cell.name, "qemu-arm64");
	assert_int_equal(jh_system_config_encode(s, &data, ret_size, err, sizeof err), 0);
	jh_system_config_free(s);
	return data;
}

static void test_lifecycle_and_layouts(void **state) {
	T *t = *state;
	size_t sys_n, cell_n, other_n;
	uint8_t *sys = make_system(&sys_n), *cell = make_cell("demo", 1, 0x7f000000, &cell_n),
	        *other = make_cell("other", 1, 0x7f100000, &other_n);
	uint8_t image[64];
	JhImage img = { .data = image, .size = sizeof image, .target = 0x1000 };
	Fake *f = &t->fake;

	for (size_t i = 0; i < sizeof image; i++)
		image[i] = (uint8_t)(i * 7);
	/* not enabled yet */
	assert_int_equal(jh_client_cell_create(t->client, cell, cell_n), -EINVAL);
	assert_int_equal(jh_client_enable(t->client, sys, sys_n), 0);
	assert_int_equal(jh_client_enable(t->client, sys, sys_n), -EBUSY);
	assert_memory_equal(f->calls[1].config_head, "JHSYS", 5);

	assert_int_equal(jh_client_cell_create(t->client, cell, cell_n), 0);
	assert_int_equal(f->calls[3].request, JH_IOCTL_CELL_CREATE);
	assert_int_equal(f->calls[3].config_size, cell_n);
	assert_memory_equal(f->calls[3].config_head, cell, 8);
	assert_int_equal(f->root_cpus, 0xd); /* CPU 1 went to the cell */
	assert_int_equal(jh_client_cell_create(t->client, cell, cell_n), -EEXIST);
	assert_int_equal(jh_client_cell_create(t->client, other, other_n), -EBUSY);

	/* load: by name, id -1, each image where the cell may be loaded */
	assert_int_equal(jh_client_cell_load(t->client, "demo", &img, 1), 0);
	Call *ld = &f->calls[f->n_calls - 1];
	assert_int_equal(ld->request, JH_IOCTL_CELL_LOAD);
	assert_int_equal(ld->id.id, JH_CELL_ID_UNUSED);
	assert_string_equal(ld->id.name, "demo");
	assert_int_equal(ld->n_images, 1);
	assert_int_equal(ld->image[0].size, sizeof image);
	assert_int_equal(ld->image[0].target_address, 0x1000);
	assert_memory_equal(ld->image_head[0], image, 16);
	img.target = 0x200000; /* past the 1 MiB of RAM */
	assert_int_equal(jh_client_cell_load(t->client, "demo", &img, 1), -EINVAL);
	img.target = 0x1000;
	assert_int_equal(jh_client_cell_load(t->client, "nobody", &img, 1), -ENOENT);
	/* the tool's "cell shutdown": a load without images */
	assert_int_equal(jh_client_cell_load(t->client, "demo", NULL, 0), 0);
	assert_int_equal(f->calls[f->n_calls - 1].n_images, 0);

	assert_int_equal(jh_client_cell_start(t->client, "demo"), 0);
	assert_int_equal(f->calls[f->n_calls - 1].request, JH_IOCTL_CELL_START);
	assert_true(f->cells[1].started);
	f->cells[1].refuse = true; /* the inmate says no */
	assert_int_equal(jh_client_cell_destroy(t->client, "demo"), -EPERM);
	f->cells[1].refuse = false;

	/* its comm region, and nothing else, can be mapped */
	int fd = -1;
	assert_int_equal(jh_client_open_mem(t->client, 0x7f000000, 0x1000, &fd), 0);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(jh_client_open_mem(t->client, 0x7f000800, 0x800, &fd), 0);
	close(fd);
	assert_int_equal(jh_client_open_mem(t->client, 0x7f000800, 0x1000, &fd), -EPERM);
	assert_int_equal(jh_client_open_mem(t->client, 0x70000000, 0x1000, &fd), -EPERM);

	assert_int_equal(jh_client_cell_destroy(t->client, "demo"), 0);
	assert_int_equal(f->root_cpus, 0xf);
	assert_int_equal(jh_client_open_mem(t->client, 0x7f000000, 0x1000, &fd), -EPERM);
	assert_int_equal(jh_client_cell_start(t->client, "demo"), -ENOENT);
	assert_int_equal(jh_client_disable(t->client), 0);
	assert_int_equal(jh_client_disable(t->client), -EINVAL);

	/* the order in which the driver saw them */
	static const unsigned long order[] = {
		JH_IOCTL_CELL_CREATE, JH_IOCTL_ENABLE,     JH_IOCTL_ENABLE,      JH_IOCTL_CELL_CREATE,
		JH_IOCTL_CELL_CREATE, JH_IOCTL_CELL_CREATE, JH_IOCTL_CELL_LOAD,   JH_IOCTL_CELL_LOAD,
		JH_IOCTL_CELL_LOAD,   JH_IOCTL_CELL_LOAD,   JH_IOCTL_CELL_START,  JH_IOCTL_CELL_DESTROY,
		JH_IOCTL_CELL_DESTROY, JH_IOCTL_CELL_START, JH_IOCTL_DISABLE,     JH_IOCTL_DISABLE,
	};
	assert_int_equal(f->n_calls, sizeof order / sizeof order[0]);
	for (size_t i = 0; i < f->n_calls; i++)
		assert_int_equal(f->calls[i].request, order[i]);
	free(sys);
	free(cell);
	free(other);
}

static void test_bad_requests(void **state) {
	T *t = *state;
	char name[40];

	memset(name, 'x', sizeof name - 1);
	name[sizeof name - 1] = 0;
	/* refused before anything reaches the driver */
	assert_int_equal(jh_client_cell_start(t->client, name), -EINVAL);
	assert_int_equal(jh_client_cell_start(t->client, ""), -EINVAL);
	assert_int_equal(jh_client_enable(t->client, NULL, 0), -EINVAL);
	assert_int_equal(t->fake.n_calls, 0);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lifecycle_and_layouts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
