/* SPDX-License-Identifier: MIT */
/*
 * The Jailhouse helper over its real socket protocol, with the fake driver
 * of tests/lib/fake-jailhouse.h behind the ioctl seam. It models the
 * driver's contract as
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
#include "hypervisor/jailhouse/sysfs.h"
#include "tests/lib/fake-jailhouse.h"

typedef struct T {
	FakeJh fake;
	JhDriver driver;
	JhClient *client;
	pthread_t server;
	int server_fd;
	int served;
	char mem_path[64];
	char dir[64];
	char sysfs[96];
} T;

static void *serve(void *arg) {
	T *t = arg;
	JhHelperOptions opts = { .mem_path = t->mem_path, .sysfs_root = t->sysfs };
	t->served = jh_helper_serve(t->server_fd, &t->driver, &opts);
	close(t->server_fd);
	return NULL;
}

static int setup(void **state) {
	T *t = calloc(1, sizeof *t);
	int sv[2], fd;

	snprintf(t->dir, sizeof t->dir, "/tmp/warden-jh-sysfs-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->sysfs, sizeof t->sysfs, "%s/jailhouse", t->dir);
	assert_int_equal(fake_jh_init(&t->fake, 0xf /* CPUs 0-3 */, t->sysfs, NULL), 0);
	t->driver = fake_jh_driver(&t->fake);
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
	char cmd[128];
	t->client = jh_client_free(t->client); /* EOF: the helper ends */
	pthread_join(t->server, NULL);
	unlink(t->mem_path);
	fake_jh_done(&t->fake);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
	assert_int_equal(system(cmd), 0);
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
	FakeJh *f = &t->fake;

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
	FakeJhCall *ld = &f->calls[f->n_calls - 1];
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

static char *slurp(const T *t, const char *rel) {
	static char buf[256];
	char path[256];
	FILE *fp;
	size_t n;

	snprintf(path, sizeof path, "%s/%s", t->sysfs, rel);
	fp = fopen(path, "r");
	if (!fp)
		return NULL;
	n = fread(buf, 1, sizeof buf - 1, fp);
	fclose(fp);
	buf[n] = 0;
	return buf;
}

/* The fake keeps sysfs as the driver does, and a new helper (after a
 * daemon restart) learns a live cell's shared ranges from CELL_REGISTER,
 * checked against sysfs. */
static void test_sysfs_and_register(void **state) {
	T *t = *state;
	size_t sys_n, cell_n, liar_n, ghost_n;
	uint8_t *sys = make_system(&sys_n), *cell = make_cell("demo", 1, 0x7f000000, &cell_n),
	        *liar = make_cell("demo", 2, 0x7f000000, &liar_n), *ghost = make_cell("ghost", 3, 0x7f200000, &ghost_n);
	JhCellInfo info;
	JhSystemInfo si;
	JhClient *second;
	T t2;
	int sv[2], fd = -1, id;

	assert_string_equal(slurp(t, "enabled"), "0\n");
	assert_int_equal(jh_client_enable(t->client, sys, sys_n), 0);
	assert_int_equal(jh_sysfs_read_system(t->sysfs, &si), 0);
	assert_true(si.enabled);
	assert_true(si.mem_pool_size > 0 && si.mem_pool_used > 0);
	assert_string_equal(slurp(t, "cells/0/name"), "qemu-arm64\n");
	assert_int_equal(jh_client_cell_create(t->client, cell, cell_n), 0);
	assert_int_equal(jh_sysfs_find_cell(t->sysfs, "demo", &id), 0);
	assert_int_equal(id, 1);
	assert_string_equal(slurp(t, "cells/1/state"), "shut down\n");
	assert_string_equal(slurp(t, "cells/1/cpus_assigned"), "0002\n");
	assert_string_equal(slurp(t, "cells/1/cpus_assigned_list"), "1\n");
	assert_string_equal(slurp(t, "cells/1/cpus_failed_list"), "\n");
	assert_string_equal(slurp(t, "cells/0/cpus_assigned_list"), "0,2-3\n");
	assert_int_equal(jh_client_cell_start(t->client, "demo"), 0);
	assert_int_equal(jh_sysfs_read_cell(t->sysfs, 1, &info), 0);
	assert_int_equal(info.state, JH_CELL_RUNNING);
	assert_true(jh_cpu_set_has(&info.cpus, 1) && jh_cpu_set_count(&info.cpus) == 1);
	assert_true(info.n_stats >= 4);
	assert_int_equal(jh_cell_stat(&info, "vmexits_total"), 0);

	/* a second helper on the same driver: it has created nothing */
	memset(&t2, 0, sizeof t2);
	t2.driver = t->driver;
	memcpy(t2.mem_path, t->mem_path, sizeof t2.mem_path);
	memcpy(t2.sysfs, t->sysfs, sizeof t2.sysfs);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	t2.server_fd = sv[1];
	assert_int_equal(jh_client_new(sv[0], &second), 0);
	assert_int_equal(pthread_create(&t2.server, NULL, serve, &t2), 0);
	assert_int_equal(jh_client_open_mem(second, 0x7f000000, 0x1000, &fd), -EPERM);
	assert_int_equal(jh_client_cell_register(second, ghost, ghost_n), -ENOENT);
	assert_int_equal(jh_client_cell_register(second, liar, liar_n), -EPERM); /* CPU 2 is not demo's */
	assert_int_equal(jh_client_cell_register(second, cell, cell_n), 0);
	assert_int_equal(jh_client_open_mem(second, 0x7f000000, 0x1000, &fd), 0);
	close(fd);
	second = jh_client_free(second);
	pthread_join(t2.server, NULL);
	/* register touched no driver call */
	assert_int_equal(t->fake.n_calls, 3);

	/* destroy and disable take the cells out of sysfs */
	assert_int_equal(jh_client_cell_destroy(t->client, "demo"), 0);
	assert_int_equal(jh_sysfs_find_cell(t->sysfs, "demo", &id), -ENOENT);
	assert_string_equal(slurp(t, "cells/0/cpus_assigned_list"), "0-3\n");
	assert_int_equal(jh_client_disable(t->client), 0);
	assert_string_equal(slurp(t, "enabled"), "0\n");
	assert_null(slurp(t, "cells/0/name"));
	free(sys);
	free(cell);
	free(liar);
	free(ghost);
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
		cmocka_unit_test_setup_teardown(test_sysfs_and_register, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
