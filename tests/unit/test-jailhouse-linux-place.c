/* SPDX-License-Identifier: MIT */
/*
 * hypervisor/jailhouse/linux-place.c: the arithmetic of FACTS.md section 6
 * on hand-made cells, the DTB edits, and the bad inputs. The placement is
 * held against Jailhouse's own tool by tests/jailhouse/test_place.py.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libfdt.h>
#include <zlib.h>

#include "cell-config.h"
#include "linux-place.h"

#define RAM (JH_MEM_READ | JH_MEM_WRITE | JH_MEM_EXECUTE | JH_MEM_DMA | JH_MEM_LOADABLE)
#define LOADER_RAM (JH_MEM_READ | JH_MEM_WRITE | JH_MEM_EXECUTE | JH_MEM_LOADABLE)

static char err[512];

#define assert_err_contains(s) \
	do { \
		if (!strstr(err, (s))) \
			fail_msg("error \"%s\" lacks \"%s\"", err, (s)); \
	} while (0)

/* The qemu-arm64-linux-demo layout: loader RAM at 0, 128 MiB at 0x70000000,
 * a comm region and an IO region that must not count as RAM. */
static JhCellConfig *demo_cell(void) {
	JhCellConfig *c = jh_cell_config_new(14, JH_ARCH_ARM64);

	snprintf(c->name, sizeof c->name, "demo");
	c->n_memory = 4;
	c->memory = calloc(4, sizeof *c->memory);
	c->memory[0] = (JhMemory){ 0x09000000, 0x09000000, 0x1000,
		                   JH_MEM_READ | JH_MEM_WRITE | JH_MEM_IO | JH_MEM_ROOTSHARED };
	c->memory[1] = (JhMemory){ 0x7f900000, 0, 0x10000, LOADER_RAM };
	c->memory[2] = (JhMemory){ 0x70000000, 0x70000000, 0x8000000, RAM };
	c->memory[3] = (JhMemory){ 0, 0x80000000, 0x1000, JH_MEM_READ | JH_MEM_WRITE | JH_MEM_COMM_REGION };
	return c;
}

static uint8_t *image(size_t size, uint64_t text_offset) {
	uint8_t *k = calloc(1, size);

	for (int i = 0; i < 8; i++)
		k[8 + i] = (uint8_t)(text_offset >> 8 * i);
	memcpy(k + 0x38, "ARM\x64", 4);
	return k;
}

/* / with #address-cells and #size-cells, a /chosen holding bootargs, and
 * /memory absent. */
static void *dtb(unsigned acells, unsigned scells, size_t *ret_size) {
	static uint8_t buf[4096];

	assert_int_equal(fdt_create(buf, sizeof buf), 0);
	assert_int_equal(fdt_finish_reservemap(buf), 0);
	assert_int_equal(fdt_begin_node(buf, ""), 0);
	assert_int_equal(fdt_property_u32(buf, "#address-cells", acells), 0);
	assert_int_equal(fdt_property_u32(buf, "#size-cells", scells), 0);
	assert_int_equal(fdt_begin_node(buf, "chosen"), 0);
	assert_int_equal(fdt_property_string(buf, "bootargs", "old"), 0);
	assert_int_equal(fdt_property_string(buf, "stdout-path", "serial0"), 0);
	assert_int_equal(fdt_end_node(buf), 0);
	assert_int_equal(fdt_end_node(buf), 0);
	assert_int_equal(fdt_finish(buf), 0);
	*ret_size = fdt_totalsize(buf);
	return buf;
}

static void test_layout_arithmetic(void **state) {
	JhCellConfig *c = demo_cell();
	JhLinuxLayout l;

	(void)state;
	/* No initrd: kernel_size is the page-aligned Image. */
	assert_int_equal(jh_linux_layout(c, 0, 0x5a3123, 1721, false, 0, &l, err, sizeof err), 0);
	assert_int_equal(l.kernel_size, 0x5a4000);
	assert_int_equal(l.dtb_size, 0x1000 + 0x1000);
	assert_int_equal(l.image_size, 0x5a4000 + 0x200000 + 0x2000 + 0x2000);
	assert_int_equal(l.ram_region, 2);
	assert_int_equal(l.dtb_address, 0x70000000);
	assert_int_equal(l.kernel_address, 0x70200000);
	assert_int_equal(l.initrd_address, 0x70200000 + 0x5a4000);
	assert_int_equal(l.loader_address, 0);
	assert_int_equal(l.params_address, 0x1000);

	/* An initrd doubles the kernel's room (factor 1); text_offset shifts
	 * the kernel from the 2 MiB boundary. */
	assert_int_equal(jh_linux_layout(c, 0x80000, 0x1234567, 0x2001, true, 0, &l, err, sizeof err), 0);
	assert_int_equal(l.kernel_size, 2 * 0x1235000);
	assert_int_equal(l.dtb_size, 0x3000 + 0x1000);
	assert_int_equal(l.kernel_address, 0x70280000);
	assert_int_equal(l.initrd_address, 0x70280000 + 2 * 0x1235000);
	assert_int_equal(l.image_size, 0x80000 + 2 * 0x1235000 + 0x200000 + 0x4000 + 0x2000);

	/* -k 3 */
	assert_int_equal(jh_linux_layout(c, 0, 0x1000, 0x1000, true, 3, &l, err, sizeof err), 0);
	assert_int_equal(l.kernel_size, 4 * 0x1000);
	jh_cell_config_free(c);
}

static void test_layout_region_choice(void **state) {
	JhCellConfig *c = demo_cell();
	JhLinuxLayout l;

	(void)state;
	/* A RAM region at 0 keeps two pages for loader and params. */
	c->memory[1].flags |= JH_MEM_DMA;
	c->memory[1].size = 0x400000;
	assert_int_equal(jh_linux_layout(c, 0, 0x1000, 0x100, false, 0, &l, err, sizeof err), 0);
	assert_int_equal(l.ram_region, 1);
	assert_int_equal(l.dtb_address, 0x2000);
	assert_int_equal(l.kernel_address, 0x200000);
	/* Too small for this kernel: the next RAM region. */
	assert_int_equal(jh_linux_layout(c, 0, 0x300000, 0x100, false, 0, &l, err, sizeof err), 0);
	assert_int_equal(l.ram_region, 2);
	/* ROOTSHARED is no RAM of the cell's. */
	c->memory[2].flags |= JH_MEM_ROOTSHARED;
	assert_int_equal(jh_linux_layout(c, 0, 0x300000, 0x100, false, 0, &l, err, sizeof err), -ENOSPC);
	assert_err_contains("demo: memory regions: no RAM region");
	/* Nor does anything hold 128 MiB twice over. */
	c->memory[2].flags &= ~(uint64_t)JH_MEM_ROOTSHARED;
	assert_int_equal(jh_linux_layout(c, 0, 0x4000000, 0x100, true, 0, &l, err, sizeof err), -ENOSPC);
	assert_int_equal(jh_linux_layout(c, UINT64_MAX - 0x1000, 0x1000, 0x100, false, 0, &l, err, sizeof err), -EFBIG);
	jh_cell_config_free(c);
}

static void test_place_images_and_dtb(void **state) {
	JhCellConfig *c = demo_cell();
	JhLinuxPlacement *p = NULL;
	uint8_t *k = image(0x10000, 0);
	static const uint8_t initrd[5000];
	const JhLinuxImage *im;
	const fdt64_t *v;
	size_t dsize, n;
	int node, len;
	void *d = dtb(2, 2, &dsize);

	(void)state;
	assert_int_equal(jh_linux_place(c,
	                                &(JhLinuxInput){ .kernel = k, .kernel_size = 0x10000, .dtb = d, .dtb_size = dsize,
	                                                 .initrd = initrd, .initrd_size = sizeof initrd,
	                                                 .cmdline = "console=ttyAMA0" },
	                                &p, err, sizeof err),
	                 0);
	assert_string_equal(jh_linux_placement_params(p), "kernel=0x70200000 dtb=0x70000000");
	im = jh_linux_placement_images(p, &n);
	assert_int_equal(n, 5);
	assert_int_equal(im[0].kind, JH_LINUX_IMAGE_LOADER);
	assert_int_equal(im[1].kind, JH_LINUX_IMAGE_KERNEL);
	assert_int_equal(im[1].address, 0x70200000);
	assert_int_equal(im[1].size, 0x10000);
	assert_int_equal(im[2].kind, JH_LINUX_IMAGE_DTB);
	assert_int_equal(im[3].kind, JH_LINUX_IMAGE_INITRD);
	assert_int_equal(im[3].address, 0x70200000 + 2 * 0x10000);
	assert_int_equal(im[4].kind, JH_LINUX_IMAGE_PARAMS);
	assert_int_equal(im[4].address, 0x1000);
	assert_int_equal(im[4].size, strlen("kernel=0x70200000 dtb=0x70000000") + 1);
	assert_false(jh_linux_placement_kernel_was_gzipped(p));

	/* The patched tree: /memory new, with only the DMA RAM; bootargs
	 * replaced; the initrd range in two cells. */
	d = (void *)im[2].data;
	assert_int_equal(fdt_check_full(d, im[2].size), 0);
	node = fdt_path_offset(d, "/memory");
	assert_true(node > 0);
	assert_string_equal(fdt_getprop(d, node, "device_type", NULL), "memory");
	v = fdt_getprop(d, node, "reg", &len);
	assert_int_equal(len, 16);
	assert_int_equal(fdt64_ld(&v[0]), 0x70000000);
	assert_int_equal(fdt64_ld(&v[1]), 0x8000000);
	node = fdt_path_offset(d, "/chosen");
	assert_string_equal(fdt_getprop(d, node, "bootargs", NULL), "console=ttyAMA0");
	/* In place: bootargs stays the first property of /chosen. */
	assert_string_equal(fdt_string(d, fdt32_to_cpu(fdt_get_property_by_offset(d, fdt_first_property_offset(d, node), NULL)->nameoff)),
	                    "bootargs");
	v = fdt_getprop(d, node, "linux,initrd-start", &len);
	assert_int_equal(len, 8);
	assert_int_equal(fdt64_ld(&v[0]), 0x70220000);
	v = fdt_getprop(d, node, "linux,initrd-end", &len);
	assert_int_equal(fdt64_ld(&v[0]), 0x70220000 + sizeof initrd);
	jh_linux_placement_free(p);

	/* One address cell: 32-bit values. No cmdline: bootargs untouched. */
	d = dtb(1, 1, &dsize);
	assert_int_equal(jh_linux_place(c,
	                                &(JhLinuxInput){ .kernel = k, .kernel_size = 0x10000, .dtb = d, .dtb_size = dsize,
	                                                 .initrd = initrd, .initrd_size = 0 },
	                                &p, err, sizeof err),
	                 0);
	im = jh_linux_placement_image(p, JH_LINUX_IMAGE_DTB);
	node = fdt_path_offset(im->data, "/memory");
	assert_true(fdt_getprop(im->data, node, "reg", &len) != NULL);
	assert_int_equal(len, 8);
	node = fdt_path_offset(im->data, "/chosen");
	assert_string_equal(fdt_getprop(im->data, node, "bootargs", NULL), "old");
	fdt_getprop(im->data, node, "linux,initrd-end", &len);
	assert_int_equal(len, 4);
	jh_linux_placement_free(p);

	/* Jailhouse's linux-loader.bin is longer than the parameter offset:
	 * the string goes onto its .cmdline section, loaded after it. */
	assert_int_equal(jh_linux_place(c,
	                                &(JhLinuxInput){ .kernel = k, .kernel_size = 0x10000, .dtb = d, .dtb_size = dsize,
	                                                 .loader_size = 13496 },
	                                &p, err, sizeof err),
	                 0);
	im = jh_linux_placement_images(p, &n);
	assert_int_equal(im[0].size, 13496);
	assert_int_equal(im[n - 1].kind, JH_LINUX_IMAGE_PARAMS);
	jh_linux_placement_free(p);
	/* but the kernel must still stay clear of it */
	assert_int_equal(jh_linux_place(c,
	                                &(JhLinuxInput){ .kernel = k, .kernel_size = 0x10000, .dtb = d, .dtb_size = dsize,
	                                                 .loader_size = 0x10001 },
	                                &p, err, sizeof err),
	                 -ERANGE);
	free(k);
	jh_cell_config_free(c);
}

static void test_place_gzip(void **state) {
	JhCellConfig *c = demo_cell();
	JhLinuxPlacement *p = NULL;
	uint8_t *k = image(0x20000, 0x80000), *gz;
	uLongf gzlen = compressBound(0x20000) + 64;
	z_stream zs = { 0 };
	size_t dsize;
	void *d = dtb(2, 2, &dsize);

	(void)state;
	gz = malloc(gzlen);
	assert_int_equal(deflateInit2(&zs, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
	zs.next_in = k;
	zs.avail_in = 0x20000;
	zs.next_out = gz;
	zs.avail_out = (uInt)gzlen;
	assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
	gzlen = zs.total_out;
	deflateEnd(&zs);

	assert_int_equal(jh_linux_place(c, &(JhLinuxInput){ .kernel = gz, .kernel_size = gzlen, .dtb = d, .dtb_size = dsize },
	                                &p, err, sizeof err),
	                 0);
	assert_true(jh_linux_placement_kernel_was_gzipped(p));
	assert_int_equal(jh_linux_placement_image(p, JH_LINUX_IMAGE_KERNEL)->size, 0x20000);
	assert_memory_equal(jh_linux_placement_image(p, JH_LINUX_IMAGE_KERNEL)->data, k, 0x20000);
	assert_int_equal(jh_linux_placement_layout(p)->kernel_address, 0x70280000);
	assert_null(jh_linux_placement_image(p, JH_LINUX_IMAGE_INITRD));
	jh_linux_placement_free(p);

	/* Truncated gzip */
	assert_int_equal(jh_linux_place(c,
	                                &(JhLinuxInput){ .kernel = gz, .kernel_size = gzlen / 2, .kernel_name = "Image.gz",
	                                                 .dtb = d, .dtb_size = dsize },
	                                &p, err, sizeof err),
	                 -EBADMSG);
	assert_err_contains("Image.gz: the gzip stream is truncated");
	free(gz);
	free(k);
	jh_cell_config_free(c);
}

static void test_bad_inputs(void **state) {
	JhCellConfig *c = demo_cell();
	JhLinuxPlacement *p = NULL;
	uint8_t *k = image(0x10000, 0);
	uint8_t junk[64] = "not a device tree";
	size_t dsize;
	void *d = dtb(2, 2, &dsize);
	JhLinuxInput in = { .cell_name = "demo.cell", .kernel = k, .kernel_size = 0x10000, .kernel_name = "Image",
		            .dtb = d, .dtb_size = dsize, .dtb_name = "in.dtb" };

	(void)state;
	/* Not arm64: the magic at 0x38. */
	memcpy(k + 0x38, "RISC", 4);
	assert_int_equal(jh_linux_place(c, &in, &p, err, sizeof err), -ENOEXEC);
	assert_err_contains("Image: offset 0x38 (magic)");
	assert_err_contains("not an arm64 kernel Image");
	memcpy(k + 0x38, "ARM\x64", 4);
	in.kernel_size = 63;
	assert_int_equal(jh_linux_place(c, &in, &p, err, sizeof err), -ENOEXEC);
	assert_err_contains("too short for an arm64 Image header");
	in.kernel_size = 0x10000;

	/* Not a DTB */
	in.dtb = junk;
	in.dtb_size = sizeof junk;
	assert_int_equal(jh_linux_place(c, &in, &p, err, sizeof err), -EINVAL);
	assert_err_contains("in.dtb: offset 0x0 (magic): 0x6e6f7420, expected 0xd00dfeed: not a flattened device tree");
	/* The magic, and too short for the rest of the header */
	memcpy(junk, d, 10);
	in.dtb_size = 10;
	assert_int_equal(jh_linux_place(c, &in, &p, err, sizeof err), -EINVAL);
	assert_err_contains("in.dtb: not a flattened device tree");
	/* A DTB truncated below its totalsize */
	in.dtb = d;
	in.dtb_size = dsize - 8;
	assert_int_equal(jh_linux_place(c, &in, &p, err, sizeof err), -EINVAL);
	assert_err_contains("in.dtb: offset 0x4 (totalsize)");
	in.dtb_size = dsize;
	/* Three address cells */
	d = dtb(3, 2, &dsize);
	in.dtb = d;
	assert_int_equal(jh_linux_place(c, &in, &p, err, sizeof err), -EINVAL);
	assert_err_contains("in.dtb: /#address-cells: 3, expected 1 or 2");
	/* One cell cannot hold a region above 4 GiB */
	d = dtb(1, 1, &dsize);
	in.dtb = d;
	c->memory[2].virt_start = 0x100000000;
	assert_int_equal(jh_linux_place(c, &in, &p, err, sizeof err), -ERANGE);
	assert_err_contains("in.dtb: /#address-cells, /#size-cells: 1 cell cannot hold memory region 2");
	c->memory[2].virt_start = 0x70000000;
	d = dtb(2, 2, &dsize);
	in.dtb = d;

	/* No RAM region */
	c->memory[2].flags &= ~(uint64_t)JH_MEM_DMA;
	assert_int_equal(jh_linux_place(c, &in, &p, err, sizeof err), -ENOSPC);
	assert_err_contains("demo.cell: memory regions: no RAM region");
	c->memory[2].flags |= JH_MEM_DMA;

	/* RAM the driver would not load into */
	c->memory[2].flags &= ~(uint64_t)JH_MEM_LOADABLE;
	assert_int_equal(jh_linux_place(c, &in, &p, err, sizeof err), -ERANGE);
	assert_err_contains("demo.cell: memory regions: the kernel image (0x70200000..0x7020ffff) lies in no region");
	c->memory[2].flags |= JH_MEM_LOADABLE;
	/* The loader and params outside: cpu_reset_address in no region */
	c->cpu_reset_address = 0x60000000;
	assert_int_equal(jh_linux_place(c, &in, &p, err, sizeof err), -ERANGE);
	assert_err_contains("the loader image (0x60000000..0x60000fff) lies in no region");
	/* Loader and params over the DTB */
	c->cpu_reset_address = 0x70000000;
	assert_int_equal(jh_linux_place(c, &in, &p, err, sizeof err), -ERANGE);
	assert_err_contains("the dtb image");
	assert_err_contains("overlaps the loader image");
	c->cpu_reset_address = 0;

	/* A command line too long for the page kept for the DTB to grow */
	{
		char *long_cmdline = malloc(0x3000);
		memset(long_cmdline, 'x', 0x2fff);
		long_cmdline[0x2fff] = 0;
		in.cmdline = long_cmdline;
		assert_int_equal(jh_linux_place(c, &in, &p, err, sizeof err), -EFBIG);
		assert_err_contains("in.dtb: the patched DTB");
		free(long_cmdline);
		in.cmdline = NULL;
	}
	assert_int_equal(jh_linux_place(c, &in, &p, err, sizeof err), 0);
	jh_linux_placement_free(p);
	free(k);
	jh_cell_config_free(c);
}

static void test_kind_table(void **state) {
	(void)state;
	for (int k = 0; k < _JH_LINUX_IMAGE_KIND_MAX; k++)
		assert_non_null(jh_linux_image_kind_to_string(k));
	assert_null(jh_linux_image_kind_to_string(_JH_LINUX_IMAGE_KIND_MAX));
	assert_null(jh_linux_image_kind_to_string(_JH_LINUX_IMAGE_KIND_INVALID));
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout_arithmetic), cmocka_unit_test(test_layout_region_choice),
		cmocka_unit_test(test_place_images_and_dtb), cmocka_unit_test(test_place_gzip),
		cmocka_unit_test(test_bad_inputs), cmocka_unit_test(test_kind_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
