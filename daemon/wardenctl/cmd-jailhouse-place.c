/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "buffer.h"
#include "cell-config.h"
#include "cmd-jailhouse-place.h"
#include "exit-code.h"
#include "linux-place.h"
#include "macro.h"

/* A cell config is kilobytes, a DTB rarely more than 64 KiB; kernels and
 * initrds are tens of megabytes. The limits only stop a wrong file. */
#define CELL_MAX_BYTES (16u << 20)
#define DTB_MAX_BYTES (16u << 20)
#define IMAGE_MAX_BYTES ((size_t)1 << 30)

static void cell_freep(JhCellConfig **c) {
	jh_cell_config_free(*c);
}
static void placement_freep(JhLinuxPlacement **p) {
	jh_linux_placement_free(*p);
}

static int read_input(const char *file, size_t max, Buffer *ret) {
	int r = buffer_read_file(file, max, ret);

	if (r < 0)
		fprintf(stderr, "wardenctl: %s: %s\n", file, r == -EFBIG ? "too large" : strerror(-r));
	return r;
}

static json_t *hex(uint64_t v) {
	char buf[24];

	snprintf(buf, sizeof buf, "0x%" PRIx64, v);
	return json_string(buf);
}

/* The fields `jailhouse cell linux --write-params` prints in its commands,
 * then every image in load order. */
static json_t *placement_to_json(const JhLinuxPlacement *p, const Options *o) {
	const JhLinuxImage *initrd = jh_linux_placement_image(p, JH_LINUX_IMAGE_INITRD);
	const JhLinuxLayout *l = jh_linux_placement_layout(p);
	json_t *doc, *images;
	size_t n;
	const JhLinuxImage *im = jh_linux_placement_images(p, &n);

	doc = json_pack("{s:o, s:o, s:o, s:o, s:o, s:s, s:b}", "loader_address", hex(l->loader_address),
	                "kernel_address", hex(l->kernel_address), "dtb_address", hex(l->dtb_address), "initrd_address",
	                initrd ? hex(initrd->address) : json_null(), "params_address", hex(l->params_address),
	                "params_string", jh_linux_placement_params(p), "kernel_gzipped",
	                jh_linux_placement_kernel_was_gzipped(p));
	images = json_array();
	if (!doc || !images || json_object_set_new(doc, "images", images) < 0) {
		json_decref(doc);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		const char *file = im[i].kind == JH_LINUX_IMAGE_KERNEL ? o->place_kernel
		                   : im[i].kind == JH_LINUX_IMAGE_DTB  ? o->place_write_dtb
		                   : im[i].kind == JH_LINUX_IMAGE_INITRD ? o->place_initrd
		                                                       : NULL;
		json_t *j = json_pack("{s:s, s:o}", "image", jh_linux_image_kind_to_string(im[i].kind), "address",
		                      hex(im[i].address));
		/* The loader's size is linux-loader.bin's, which place does not read. */
		if (!j || (im[i].kind != JH_LINUX_IMAGE_LOADER && json_object_set_new(j, "size", json_integer((json_int_t)im[i].size)) < 0) ||
		    (file && json_object_set_new(j, "file", json_string(file)) < 0) || json_array_append_new(images, j) < 0) {
			json_decref(j);
			json_decref(doc);
			return NULL;
		}
	}
	return doc;
}

int cmd_jailhouse_place(const Options *o, const char *verb, char **args) {
	_cleanup_(buffer_done) Buffer cell_file = { 0 }, kernel = { 0 }, dtb = { 0 }, initrd = { 0 };
	_cleanup_(cell_freep) JhCellConfig *cell = NULL;
	_cleanup_(placement_freep) JhLinuxPlacement *p = NULL;
	_cleanup_(json_decrefp) json_t *doc = NULL;
	const JhLinuxImage *dtb_image;
	char err[512] = "";
	JhConfigKind kind;
	unsigned rev;
	int r;

	(void)verb;
	(void)args;
	if (!o->place_cell || !o->place_kernel || !o->place_dtb || !o->place_write_dtb) {
		fprintf(stderr, "wardenctl: jailhouse place: --cell, --kernel, --dtb and --write-dtb are required\n");
		return EXIT_USAGE;
	}
	if (streq(o->place_write_dtb, "-")) {
		fprintf(stderr, "wardenctl: jailhouse place: --write-dtb -: stdout carries the JSON; name a file\n");
		return EXIT_USAGE;
	}
	if (read_input(o->place_cell, CELL_MAX_BYTES, &cell_file) < 0 ||
	    read_input(o->place_kernel, IMAGE_MAX_BYTES, &kernel) < 0 ||
	    read_input(o->place_dtb, DTB_MAX_BYTES, &dtb) < 0 ||
	    (o->place_initrd && read_input(o->place_initrd, IMAGE_MAX_BYTES, &initrd) < 0))
		return EXIT_USAGE;

	r = jh_config_identify(cell_file.data, cell_file.size, &kind, &rev, err, sizeof err);
	if (r >= 0 && kind != JH_CONFIG_CELL) {
		snprintf(err, sizeof err, "offset 0x0 (signature): a system config, expected a cell config");
		r = -EINVAL;
	}
	if (r >= 0)
		r = jh_cell_config_decode(cell_file.data, cell_file.size, JH_ARCH_UNSPEC, &cell, err, sizeof err);
	if (r >= 0 && cell->arch != JH_ARCH_ARM64 && cell->arch != JH_ARCH_UNSPEC) {
		snprintf(err, sizeof err, "offset 0x5 (architecture): %s; place knows arm64 only",
		         jh_arch_to_string(cell->arch));
		r = -EINVAL;
	}
	if (r == -ENOMEM)
		return oom();
	if (r < 0) {
		fprintf(stderr, "wardenctl: %s: %s\n", o->place_cell, err);
		return EXIT_USAGE;
	}

	r = jh_linux_place(cell,
	                   &(JhLinuxInput){
	                           .cell_name = o->place_cell,
	                           .kernel = kernel.data,
	                           .kernel_size = kernel.size,
	                           .kernel_name = o->place_kernel,
	                           .dtb = dtb.data,
	                           .dtb_size = dtb.size,
	                           .dtb_name = o->place_dtb,
	                           /* buffer_read_file leaves an empty file's data set */
	                           .initrd = o->place_initrd ? initrd.data : NULL,
	                           .initrd_size = initrd.size,
	                           .initrd_name = o->place_initrd,
	                           .cmdline = o->place_cmdline,
	                   },
	                   &p, err, sizeof err);
	if (r == -ENOMEM)
		return oom();
	if (r < 0) {
		fprintf(stderr, "wardenctl: %s\n", err);
		return EXIT_USAGE;
	}
	doc = placement_to_json(p, o);
	if (!doc)
		return oom();

	dtb_image = jh_linux_placement_image(p, JH_LINUX_IMAGE_DTB);
	r = buffer_write_file_atomic(o->place_write_dtb, dtb_image->data, dtb_image->size);
	if (r < 0) {
		fprintf(stderr, "wardenctl: %s: %s\n", o->place_write_dtb, strerror(-r));
		return EXIT_REFUSED;
	}
	if (json_dumpf(doc, stdout, JSON_INDENT(2)) < 0 || fputc('\n', stdout) == EOF)
		return EXIT_REFUSED; /* main() says that writing failed */
	return EXIT_OK;
}
