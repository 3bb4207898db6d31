/* SPDX-License-Identifier: MIT */
/*
 * The deep copy a queued boot request keeps of its cell config: the caller's
 * config may live on its stack (the Jailhouse device tree, the generated
 * .cell bytes), so nothing the copy points at may be the caller's memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hypervisor/backend-internal.h"

static bool inside(const void *p, const void *base, size_t n)
{
	const char *c = p, *b = base;
	return p && c >= b && c < b + n;
}

static void every_pointer_is_copied_and_outlives_its_source(void **state)
{
	(void)state;
	struct {
		char name[16], args[16], tap[16], mac[18], rootfs[32], digest[8], kernel[32], initrd[32], cmdline[32], dtb[32], cell_config[32], image[32];
		unsigned cpus[2];
		BackendRegion regions[1];
		BackendImage images[1];
		uint8_t cell_data[64];
	} src;
	BackendCellConfig cfg;
	BackendCellConfig *copy;

	strcpy(src.name, "linux");
	strcpy(src.args, "n=12");
	strcpy(src.kernel, "/k/Image");
	strcpy(src.initrd, "/k/initrd");
	strcpy(src.cmdline, "console=ttyS0");
	strcpy(src.dtb, "/k/inmate.dtb");
	strcpy(src.cell_config, "/k/linux.cell");
	strcpy(src.image, "/k/app.bin");
	strcpy(src.tap, "wtap-linux");
	strcpy(src.mac, "52:54:00:12:34:56");
	strcpy(src.rootfs, "/k/rootfs.tar");
	strcpy(src.digest, "ab12");
	src.cpus[0] = 2;
	src.cpus[1] = 3;
	src.regions[0] = (BackendRegion){ .phys_start = 0x1000, .virt_start = 0, .size = 0x2000, .flags = 7 };
	src.images[0] = (BackendImage){ .path = src.image, .addr = 0x4000 };
	for (size_t i = 0; i < sizeof(src.cell_data); i++)
		src.cell_data[i] = (uint8_t)i;
	cfg = (BackendCellConfig){
		.name = src.name, .args = src.args, .kernel = src.kernel, .initrd = src.initrd,
		.cmdline = src.cmdline, .dtb = src.dtb, .net_tap = src.tap, .net_mac = src.mac,
		.rootfs = src.rootfs, .rootfs_digest = src.digest, .rootfs_writable = true, .memory_limit = 1 << 20, .cell_config = src.cell_config,
		.cpus = src.cpus, .n_cpus = 2, .regions = src.regions, .n_regions = 1,
		.images = src.images, .n_images = 1, .cell_data = src.cell_data,
		.cell_size = sizeof(src.cell_data), .entry = 0x4000, .comm_addr = 0x1000,
		.comm_size = 0x1000, .period_ms = 10, .allow_inject = true,
	};

	copy = backend_cell_config_dup(&cfg);
	assert_non_null(copy);
	/* Nothing in the copy points into the source ... */
	const void *ptrs[] = { copy->name, copy->args, copy->kernel, copy->initrd, copy->cmdline, copy->dtb,
		               copy->cell_config, copy->cpus, copy->regions, copy->images, copy->images[0].path,
		               copy->cell_data, copy->net_tap, copy->net_mac, copy->rootfs, copy->rootfs_digest };
	for (size_t i = 0; i < sizeof(ptrs) / sizeof(ptrs[0]); i++) {
		assert_non_null(ptrs[i]);
		assert_false(inside(ptrs[i], &src, sizeof(src)));
	}
	/* ... so scribbling over the source changes nothing in it. */
	memset(&src, 0x5a, sizeof(src));
	assert_string_equal(copy->name, "linux");
	assert_string_equal(copy->args, "n=12");
	assert_string_equal(copy->kernel, "/k/Image");
	assert_string_equal(copy->initrd, "/k/initrd");
	assert_string_equal(copy->cmdline, "console=ttyS0");
	assert_string_equal(copy->dtb, "/k/inmate.dtb");
	assert_string_equal(copy->cell_config, "/k/linux.cell");
	assert_string_equal(copy->images[0].path, "/k/app.bin");
	assert_string_equal(copy->net_tap, "wtap-linux");
	assert_string_equal(copy->net_mac, "52:54:00:12:34:56");
	assert_string_equal(copy->rootfs, "/k/rootfs.tar");
	assert_string_equal(copy->rootfs_digest, "ab12");
	assert_true(copy->rootfs_writable);
	assert_int_equal(copy->memory_limit, 1 << 20);
	assert_int_equal(copy->images[0].addr, 0x4000);
	assert_int_equal(copy->n_cpus, 2);
	assert_int_equal(copy->cpus[0], 2);
	assert_int_equal(copy->cpus[1], 3);
	assert_int_equal(copy->regions[0].size, 0x2000);
	assert_int_equal(copy->cell_size, 64);
	for (size_t i = 0; i < copy->cell_size; i++)
		assert_int_equal(copy->cell_data[i], i);
	assert_int_equal(copy->period_ms, 10);
	assert_true(copy->allow_inject);
	backend_cell_config_free(copy);
}

static void absent_fields_stay_absent(void **state)
{
	(void)state;
	BackendCellConfig cfg = { .name = "bare", .period_ms = 5 };
	BackendCellConfig *copy = backend_cell_config_dup(&cfg);

	assert_non_null(copy);
	assert_string_equal(copy->name, "bare");
	assert_null(copy->dtb);
	assert_null(copy->cell_data);
	assert_null(copy->kernel);
	assert_int_equal(copy->n_images, 0);
	backend_cell_config_free(copy);
	backend_cell_config_free(NULL);
}

static void bounds_beyond_the_backend_maxima_are_refused(void **state)
{
	(void)state;
	unsigned cpus[BACKEND_MAX_CPUS + 1] = { 0 };
	BackendCellConfig cfg = { .name = "big", .cpus = cpus, .n_cpus = BACKEND_MAX_CPUS + 1 };

	assert_null(backend_cell_config_dup(&cfg));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_pointer_is_copied_and_outlives_its_source),
		cmocka_unit_test(absent_fields_stay_absent),
		cmocka_unit_test(bounds_beyond_the_backend_maxima_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
