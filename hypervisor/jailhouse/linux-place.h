/* SPDX-License-Identifier: MIT */
/*
 * Linux in a Jailhouse cell on arm64, placed as `jailhouse cell linux` places
 * it (../shared/jailhouse/FACTS.md, section 6): where the loader, kernel,
 * DTB, initrd and parameter string go in the cell's address space, and the
 * DTB patched for the cell (/memory, /chosen bootargs and initrd range).
 * Written from those facts; tests/jailhouse/test_place.py holds the result
 * against Jailhouse's own tools/jailhouse-cell-linux.
 *
 * Pure code: no I/O, no logging. Functions return 0 or a negative errno and,
 * on error, leave a message in err naming the file and the field:
 * -ENOEXEC a kernel that is not an arm64 Image, -EBADMSG a gzip stream that
 * does not inflate, -EINVAL a DTB that is not a DTB (or lacks what Linux
 * needs of it), -ENOSPC no RAM region big enough, -ERANGE an image outside
 * every loadable region or over another image, -EFBIG an absurd size.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cell-config.h"

/* The arm64 choices of the reference tool. */
#define JH_LINUX_KERNEL_ALIGN 0x200000u /* 2 MiB */
#define JH_LINUX_DECOMPRESSION_FACTOR 1u
#define JH_LINUX_PARAMS_OFFSET 0x1000u  /* from cpu_reset_address */
#define JH_LINUX_PARAMS_MAX 256u        /* the loader's .cmdline section */
#define JH_LINUX_LOADER_ROOM 0x1000u    /* up to the parameter page */

typedef enum JhLinuxImageKind {
	JH_LINUX_IMAGE_LOADER, /* linux-loader.bin, supplied by the caller */
	JH_LINUX_IMAGE_KERNEL, /* the Image, inflated */
	JH_LINUX_IMAGE_DTB,    /* the patched DTB */
	JH_LINUX_IMAGE_INITRD,
	JH_LINUX_IMAGE_PARAMS, /* "kernel=0x… dtb=0x…" and its NUL */
	_JH_LINUX_IMAGE_KIND_MAX,
	_JH_LINUX_IMAGE_KIND_INVALID = -1,
} JhLinuxImageKind;

const char *jh_linux_image_kind_to_string(JhLinuxImageKind k);

typedef struct JhLinuxInput {
	/* The names only go into error messages. */
	const char *cell_name;
	const void *kernel; /* an arm64 Image, or one gzipped */
	size_t kernel_size;
	const char *kernel_name;
	const void *dtb;
	size_t dtb_size; /* the file's size: the tool reserves room by it */
	const char *dtb_name;
	const void *initrd; /* NULL: none; an empty initrd is still one */
	size_t initrd_size;
	const char *initrd_name;
	const char *cmdline;           /* NULL or "": /chosen/bootargs untouched */
	unsigned decompression_factor; /* 0: JH_LINUX_DECOMPRESSION_FACTOR */
	size_t loader_size;            /* 0: JH_LINUX_LOADER_ROOM is assumed */
} JhLinuxInput;

/* The arithmetic, apart from the bytes (FACTS.md section 6's names). */
typedef struct JhLinuxLayout {
	uint64_t text_offset;
	uint64_t kernel_size; /* page-aligned Image, + factor * itself with an initrd */
	uint64_t dtb_size;    /* page-aligned DTB file + one page */
	uint64_t image_size;  /* what the RAM region must hold */
	uint32_t ram_region;  /* index into the cell's memory regions */
	uint64_t loader_address;
	uint64_t dtb_address;
	uint64_t kernel_address;
	uint64_t initrd_address; /* where it goes when there is one */
	uint64_t params_address;
} JhLinuxLayout;

/* Readable, writable, executable, DMA-capable, and none of IO,
 * COMM_REGION, ROOTSHARED: what the tool takes for the cell's RAM. */
bool jh_linux_region_is_ram(const JhMemory *m);

/*
 * The placement alone, from the sizes: image_len is the inflated Image's
 * length, dtb_file_size the DTB file's. Fails with -ENOSPC when no RAM
 * region holds image_size, -EFBIG on overflow.
 */
int jh_linux_layout(const JhCellConfig *cell, uint64_t text_offset, uint64_t image_len, uint64_t dtb_file_size,
                    bool with_initrd, unsigned decompression_factor, JhLinuxLayout *ret, char *err,
                    size_t err_size);

typedef struct JhLinuxImage {
	JhLinuxImageKind kind;
	uint64_t address;    /* in the cell's address space */
	const uint8_t *data; /* NULL for the loader; owned by the placement or the input */
	size_t size;         /* the loader: JhLinuxInput.loader_size, maybe 0 */
} JhLinuxImage;

typedef struct JhLinuxPlacement JhLinuxPlacement;

/*
 * Inflates the kernel if gzipped, checks its arm64 header, computes the
 * layout, patches the DTB and checks that every image lies inside one
 * WRITE|LOADABLE region (where CELL_LOAD would refuse it) without
 * overlapping another. The placement points into input's initrd; the rest
 * it owns.
 */
int jh_linux_place(const JhCellConfig *cell, const JhLinuxInput *input, JhLinuxPlacement **ret, char *err,
                   size_t err_size);
JhLinuxPlacement *jh_linux_placement_free(JhLinuxPlacement *p); /* accepts NULL */

const JhLinuxLayout *jh_linux_placement_layout(const JhLinuxPlacement *p);
/* In load order: loader, kernel, DTB, initrd (when given), params. */
const JhLinuxImage *jh_linux_placement_images(const JhLinuxPlacement *p, size_t *ret_n);
/* The image of a kind, or NULL (an initrd when none was given). */
const JhLinuxImage *jh_linux_placement_image(const JhLinuxPlacement *p, JhLinuxImageKind k);
/* "kernel=0x… dtb=0x…", NUL-terminated. */
const char *jh_linux_placement_params(const JhLinuxPlacement *p);
bool jh_linux_placement_kernel_was_gzipped(const JhLinuxPlacement *p);
