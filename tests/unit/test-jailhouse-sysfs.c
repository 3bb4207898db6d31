/* SPDX-License-Identifier: MIT */
/*
 * hypervisor/jailhouse/sysfs.c against sysfs trees recorded on the emulated
 * arm64 board (../shared/jailhouse/captures/qemu-arm64-inmate-lifecycle.log:
 * the values after "create", with the inmate-demo cell created, and a
 * failed cell), rebuilt in a temporary directory.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hypervisor/jailhouse/sysfs.h"

static char root[64];

static void put(const char *rel, const char *text) {
	char path[256], dir[256];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", root, rel);
	snprintf(dir, sizeof dir, "%s", path);
	for (char *p = dir + strlen(root) + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			mkdir(dir, 0755);
			*p = '/';
		}
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state) {
	static const char *const root_stats[][2] = {
		{ "vmexits_hypercall", "240\n" }, { "vmexits_maintenance", "0\n" }, { "vmexits_management", "14\n" },
		{ "vmexits_mmio", "0\n" },        { "vmexits_psci", "1\n" },        { "vmexits_smccc", "0\n" },
		{ "vmexits_total", "5825\n" },    { "vmexits_virt_irq", "4631\n" }, { "vmexits_virt_sgi", "579\n" },
	};
	char rel[128];
	(void)state;
	snprintf(root, sizeof root, "/tmp/warden-jh-sysfs-XXXXXX");
	assert_non_null(mkdtemp(root));
	put("enabled", "1\n");
	put("mem_pool_size", "994\n");
	put("mem_pool_used", "158\n");
	put("remap_pool_size", "131072\n");
	put("remap_pool_used", "528\n");
	put("cells/0/name", "qemu-arm64\n");
	put("cells/0/state", "running\n");
	put("cells/0/cpus_assigned", "fffd\n");
	put("cells/0/cpus_assigned_list", "0,2-15\n");
	put("cells/0/cpus_failed", "0000\n");
	put("cells/0/cpus_failed_list", "\n");
	for (size_t i = 0; i < sizeof root_stats / sizeof root_stats[0]; i++) {
		snprintf(rel, sizeof rel, "cells/0/statistics/%s", root_stats[i][0]);
		put(rel, root_stats[i][1]);
	}
	put("cells/0/statistics/cpu0/vmexits_total", "11\n"); /* per CPU: not the cell's sum */
	put("cells/1/name", "inmate-demo\n");
	put("cells/1/state", "shut down\n");
	put("cells/1/cpus_assigned", "0002\n");
	put("cells/1/cpus_assigned_list", "1\n");
	put("cells/1/cpus_failed", "0000\n");
	put("cells/1/cpus_failed_list", "\n");
	put("cells/1/statistics/vmexits_total", "0\n");
	/* a cell whose CPUs failed; an older driver without the lists */
	put("cells/2/name", "linux-demo\n");
	put("cells/2/state", "failed\n");
	put("cells/2/cpus_assigned", "000c\n");
	put("cells/2/cpus_failed", "0008\n");
	return 0;
}

static int teardown(void **state) {
	char cmd[128];
	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_states(void **state) {
	(void)state;
	assert_int_equal(jh_cell_state_from_string("running\n"), JH_CELL_RUNNING);
	assert_int_equal(jh_cell_state_from_string("running/locked"), JH_CELL_RUNNING_LOCKED);
	assert_int_equal(jh_cell_state_from_string("shut down\n"), JH_CELL_SHUT_DOWN);
	assert_int_equal(jh_cell_state_from_string("failed"), JH_CELL_FAILED);
	assert_int_equal(jh_cell_state_from_string("Comm ABI mismatch\n"), JH_CELL_FAILED_COMM_REV);
	assert_int_equal(jh_cell_state_from_string("invalid"), _JH_CELL_STATE_INVALID);
	assert_int_equal(jh_cell_state_from_string("run"), _JH_CELL_STATE_INVALID);
	assert_int_equal(jh_cell_state_from_string(NULL), _JH_CELL_STATE_INVALID);
	for (int s = 0; s < _JH_CELL_STATE_MAX; s++)
		assert_int_equal(jh_cell_state_from_string(jh_cell_state_to_string(s)), s);
	assert_string_equal(jh_cell_state_to_string(_JH_CELL_STATE_INVALID), "invalid");
}

static void test_cpu_lists_and_masks(void **state) {
	JhCpuSet a, b;
	char buf[64];
	(void)state;
	assert_int_equal(jh_cpu_list_parse("0,2-15\n", &a), 0);
	assert_int_equal(jh_cpu_mask_parse("fffd\n", &b), 0);
	assert_memory_equal(&a, &b, sizeof a);
	assert_int_equal(jh_cpu_set_count(&a), 15);
	assert_false(jh_cpu_set_has(&a, 1));
	jh_cpu_set_format(&a, buf, sizeof buf);
	assert_string_equal(buf, "0,2-15");
	assert_int_equal(jh_cpu_list_parse("", &a), 0);
	assert_int_equal(jh_cpu_set_count(&a), 0);
	jh_cpu_set_format(&a, buf, sizeof buf);
	assert_string_equal(buf, "");
	assert_int_equal(jh_cpu_mask_parse("00000001,00000000", &a), 0);
	assert_true(jh_cpu_set_has(&a, 32));
	assert_int_equal(jh_cpu_set_count(&a), 1);
	/* bad input */
	assert_int_equal(jh_cpu_list_parse("3-1", &a), -EINVAL);
	assert_int_equal(jh_cpu_list_parse("1,,2", &a), -EINVAL);
	assert_int_equal(jh_cpu_list_parse("x", &a), -EINVAL);
	assert_int_equal(jh_cpu_list_parse("999", &a), -EINVAL);
	assert_int_equal(jh_cpu_mask_parse("", &a), -EINVAL);
	assert_int_equal(jh_cpu_mask_parse("fg", &a), -EINVAL);
}

static void test_system(void **state) {
	JhSystemInfo si;
	(void)state;
	assert_int_equal(jh_sysfs_read_system(root, &si), 0);
	assert_true(si.enabled);
	assert_int_equal(si.mem_pool_size, 994);
	assert_int_equal(si.mem_pool_used, 158);
	assert_int_equal(si.remap_pool_size, 131072);
	assert_int_equal(si.remap_pool_used, 528);
	assert_int_equal(jh_sysfs_read_system("/nonexistent", &si), -ENOENT);
}

static void test_cells(void **state) {
	JhCellInfo c;
	int id;
	(void)state;
	assert_int_equal(jh_sysfs_read_cell(root, 0, &c), 0);
	assert_string_equal(c.name, "qemu-arm64");
	assert_int_equal(c.state, JH_CELL_RUNNING);
	assert_int_equal(jh_cpu_set_count(&c.cpus), 15);
	assert_int_equal(jh_cpu_set_count(&c.cpus_failed), 0);
	assert_int_equal(c.n_stats, 9);
	assert_int_equal(jh_cell_stat(&c, "vmexits_total"), 5825);
	assert_int_equal(jh_cell_stat(&c, "vmexits_virt_irq"), 4631);
	assert_int_equal(jh_cell_stat(&c, "vmexits_pio"), 0);

	assert_int_equal(jh_sysfs_read_cell(root, 1, &c), 0);
	assert_int_equal(c.state, JH_CELL_SHUT_DOWN);
	assert_true(jh_cpu_set_has(&c.cpus, 1));
	assert_int_equal(jh_cpu_set_count(&c.cpus), 1);

	assert_int_equal(jh_sysfs_read_cell(root, 2, &c), 0);
	assert_int_equal(c.state, JH_CELL_FAILED);
	assert_int_equal(jh_cpu_set_count(&c.cpus), 2);
	assert_int_equal(jh_cpu_set_count(&c.cpus_failed), 0); /* no list: the mask is not read */
	assert_int_equal(c.n_stats, 0);

	assert_int_equal(jh_sysfs_read_cell(root, 7, &c), -ENOENT);
	assert_int_equal(jh_sysfs_find_cell(root, "inmate-demo", &id), 0);
	assert_int_equal(id, 1);
	assert_int_equal(jh_sysfs_find_cell(root, "nobody", &id), -ENOENT);
}

static void test_garbage(void **state) {
	JhCellInfo c;
	(void)state;
	put("cells/3/name", "broken\n");
	put("cells/3/state", "running\n");
	put("cells/3/cpus_assigned_list", "1-\n");
	assert_int_equal(jh_sysfs_read_cell(root, 3, &c), -EBADMSG);
	put("cells/3/cpus_assigned_list", "1\n");
	put("cells/3/cpus_failed_list", "zz\n");
	assert_int_equal(jh_sysfs_read_cell(root, 3, &c), -EBADMSG);
	put("cells/3/cpus_failed_list", "1\n");
	put("cells/3/state", "exploded\n");
	assert_int_equal(jh_sysfs_read_cell(root, 3, &c), 0);
	assert_int_equal(c.state, _JH_CELL_STATE_INVALID);
	assert_true(jh_cpu_set_has(&c.cpus_failed, 1));
	put("mem_pool_used", "-5\n");
	JhSystemInfo si;
	assert_int_equal(jh_sysfs_read_system(root, &si), -EBADMSG);
	put("mem_pool_used", "158\n");
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_states),
		cmocka_unit_test(test_cpu_lists_and_masks),
		cmocka_unit_test(test_system),
		cmocka_unit_test(test_cells),
		cmocka_unit_test(test_garbage),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
