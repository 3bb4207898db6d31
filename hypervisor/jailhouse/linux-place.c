/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfdt.h>
#include <zlib.h>

#include "linux-place.h"

/* The arm64 Image header (Linux, Documentation/arm64/booting.rst). */
#define IMAGE_HEADER_SIZE 64
#define IMAGE_TEXT_OFFSET 0x08
#define IMAGE_MAGIC 0x38
static const uint8_t image_magic[4] = { 'A', 'R', 'M', 0x64 };

#define PAGE 0x1000u
/* The reference tool's slack: room for the loader when the RAM region
 * starts at 0, and for growing the DTB. */
#define LOADER_SLACK 0x2000u
#define DTB_SLACK 0x1000u
/* /memory leaves out a small region at 0: the loader's. */
#define LOADER_REGION_MAX 0x10000u

/* Far above any kernel; only stops a gzip bomb from filling memory. */
#define KERNEL_MAX ((size_t)1 << 30)

#define RAM_MASK                                                                                          \
	(JH_MEM_READ | JH_MEM_WRITE | JH_MEM_EXECUTE | JH_MEM_DMA | JH_MEM_IO | JH_MEM_COMM_REGION | \
	 JH_MEM_ROOTSHARED)
#define RAM_FLAGS (JH_MEM_READ | JH_MEM_WRITE | JH_MEM_EXECUTE | JH_MEM_DMA)
#define LOADABLE_FLAGS (JH_MEM_WRITE | JH_MEM_LOADABLE)

struct JhLinuxPlacement {
	JhLinuxLayout layout;
	uint8_t *kernel; /* inflated, when it was gzipped; else NULL */
	uint8_t *dtb;
	char params[JH_LINUX_PARAMS_MAX];
	bool gzipped;
	JhLinuxImage images[_JH_LINUX_IMAGE_KIND_MAX];
	size_t n_images;
};

static const char *const image_kind_table[_JH_LINUX_IMAGE_KIND_MAX] = {
	[JH_LINUX_IMAGE_LOADER] = "loader", [JH_LINUX_IMAGE_KERNEL] = "kernel", [JH_LINUX_IMAGE_DTB] = "dtb",
	[JH_LINUX_IMAGE_INITRD] = "initrd", [JH_LINUX_IMAGE_PARAMS] = "params",
};

const char *jh_linux_image_kind_to_string(JhLinuxImageKind k) {
	return k >= 0 && k < _JH_LINUX_IMAGE_KIND_MAX ? image_kind_table[k] : NULL;
}

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t err_size, int r, const char *fmt, ...) {
	va_list ap;

	if (err && err_size) {
		va_start(ap, fmt);
		vsnprintf(err, err_size, fmt, ap);
		va_end(ap);
	}
	return r;
}

static const char *or_default(const char *name, const char *fallback) {
	return name && *name ? name : fallback;
}

bool jh_linux_region_is_ram(const JhMemory *m) {
	return (m->flags & RAM_MASK) == RAM_FLAGS;
}

/* v rounded up to a multiple of the power of two a; false on overflow. */
static bool align_up(uint64_t v, uint64_t a, uint64_t *ret) {
	if (v > UINT64_MAX - (a - 1))
		return false;
	*ret = (v + a - 1) & ~(a - 1);
	return true;
}

static bool add(uint64_t *acc, uint64_t v) {
	return !__builtin_add_overflow(*acc, v, acc);
}

static int layout(const JhCellConfig *cell, const char *cname, uint64_t text_offset, uint64_t image_len,
                  uint64_t dtb_file_size, bool with_initrd, unsigned decompression_factor, JhLinuxLayout *ret,
                  char *err, size_t err_size) {
	JhLinuxLayout l = { .text_offset = text_offset };
	const JhMemory *ram = NULL;
	uint64_t decompression;
	bool ok;

	ok = align_up(image_len, PAGE, &l.kernel_size);
	l.image_size = text_offset;
	ok = ok && add(&l.image_size, l.kernel_size) && add(&l.image_size, JH_LINUX_KERNEL_ALIGN);
	if (ok && with_initrd) {
		/* Room for the kernel to unpack itself before the initrd. */
		if (decompression_factor == 0)
			decompression_factor = JH_LINUX_DECOMPRESSION_FACTOR;
		ok = !__builtin_mul_overflow(l.kernel_size, (uint64_t)decompression_factor, &decompression) &&
		     add(&l.kernel_size, decompression) && add(&l.image_size, decompression);
	}
	ok = ok && align_up(dtb_file_size, PAGE, &l.dtb_size) && add(&l.dtb_size, DTB_SLACK) &&
	     add(&l.image_size, l.dtb_size) && add(&l.image_size, LOADER_SLACK);
	if (!ok)
		return fail(err, err_size, -EFBIG,
		            "%s: the images overflow 64 bits (text_offset 0x%" PRIx64 ", kernel 0x%" PRIx64
		            ", DTB 0x%" PRIx64 " bytes)",
		            cname, text_offset, image_len, dtb_file_size);

	for (uint32_t i = 0; i < cell->n_memory && !ram; i++)
		if (jh_linux_region_is_ram(&cell->memory[i]) && cell->memory[i].size >= l.image_size) {
			ram = &cell->memory[i];
			l.ram_region = i;
		}
	if (!ram)
		return fail(err, err_size, -ENOSPC,
		            "%s: memory regions: no RAM region (read, write, execute, DMA; not IO, comm region or "
		            "root-shared) holds the 0x%" PRIx64 " bytes that kernel, initrd reserve and DTB need",
		            cname, l.image_size);

	l.dtb_address = ram->virt_start ? ram->virt_start : LOADER_SLACK;
	ok = !__builtin_add_overflow(l.dtb_address, l.dtb_size, &l.kernel_address) &&
	     align_up(l.kernel_address, JH_LINUX_KERNEL_ALIGN, &l.kernel_address) && add(&l.kernel_address, text_offset);
	l.initrd_address = l.kernel_address;
	ok = ok && add(&l.initrd_address, l.kernel_size);
	l.loader_address = cell->cpu_reset_address;
	l.params_address = cell->cpu_reset_address;
	ok = ok && add(&l.params_address, JH_LINUX_PARAMS_OFFSET);
	if (!ok)
		return fail(err, err_size, -EFBIG, "%s: memory region %" PRIu32 ": the images would pass the end of the address space",
		            cname, l.ram_region);
	*ret = l;
	return 0;
}

int jh_linux_layout(const JhCellConfig *cell, uint64_t text_offset, uint64_t image_len, uint64_t dtb_file_size,
                    bool with_initrd, unsigned decompression_factor, JhLinuxLayout *ret, char *err,
                    size_t err_size) {
	return layout(cell, or_default(cell->name, "cell"), text_offset, image_len, dtb_file_size, with_initrd,
	              decompression_factor, ret, err, err_size);
}

/* All the members of a gzip file, and the zeros it may be padded with. */
static int gunzip(const uint8_t *in, size_t n, const char *name, uint8_t **ret, size_t *ret_size, char *err,
                  size_t err_size) {
	z_stream zs = { 0 };
	uint8_t *out = NULL;
	size_t cap = 0;
	int r, z;

	if (n > UINT_MAX)
		return fail(err, err_size, -EFBIG, "%s: %zu bytes: too large a gzip file", name, n);
	if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
		return fail(err, err_size, -ENOMEM, "%s: cannot set up zlib", name);
	zs.next_in = (Bytef *)(uintptr_t)in;
	zs.avail_in = (uInt)n;
	for (;;) {
		if (zs.total_out == cap) {
			size_t ncap = cap ? cap * 2 : (n < (1u << 20) ? 1u << 22 : n * 4);
			uint8_t *p;
			if (cap >= KERNEL_MAX) {
				r = fail(err, err_size, -EFBIG, "%s: inflates to more than %zu bytes", name, KERNEL_MAX);
				goto out;
			}
			if (ncap > KERNEL_MAX)
				ncap = KERNEL_MAX;
			p = realloc(out, ncap);
			if (!p) {
				r = fail(err, err_size, -ENOMEM, "%s: out of memory inflating it", name);
				goto out;
			}
			out = p;
			cap = ncap;
		}
		zs.next_out = out + zs.total_out;
		zs.avail_out = (uInt)(cap - zs.total_out > UINT_MAX ? UINT_MAX : cap - zs.total_out);
		z = inflate(&zs, Z_NO_FLUSH);
		if (z == Z_STREAM_END) {
			while (zs.avail_in > 0 && *zs.next_in == 0) {
				zs.next_in++;
				zs.avail_in--;
			}
			if (zs.avail_in == 0)
				break;
			if (zs.avail_in < 2 || zs.next_in[0] != 0x1f || zs.next_in[1] != 0x8b) {
				r = fail(err, err_size, -EBADMSG, "%s: offset 0x%zx: bytes after the gzip stream", name,
				         n - zs.avail_in);
				goto out;
			}
			inflateReset(&zs);
			continue;
		}
		if (z == Z_BUF_ERROR && zs.avail_in == 0) {
			r = fail(err, err_size, -EBADMSG, "%s: the gzip stream is truncated", name);
			goto out;
		}
		if (z != Z_OK && z != Z_BUF_ERROR) {
			r = fail(err, err_size, z == Z_MEM_ERROR ? -ENOMEM : -EBADMSG, "%s: offset 0x%zx: bad gzip data (%s)",
			         name, n - zs.avail_in, zs.msg ? zs.msg : "zlib error");
			goto out;
		}
	}
	*ret_size = zs.total_out;
	*ret = out;
	out = NULL;
	r = 0;
out:
	inflateEnd(&zs);
	free(out);
	return r;
}

static uint64_t le64(const uint8_t *b) {
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

static int check_image(const uint8_t *k, size_t n, const char *name, bool gzipped, char *err, size_t err_size) {
	const char *what = gzipped ? " (inflated)" : "";

	if (n < IMAGE_HEADER_SIZE)
		return fail(err, err_size, -ENOEXEC, "%s%s: %zu bytes, too short for an arm64 Image header (%u)", name, what,
		            n, IMAGE_HEADER_SIZE);
	if (memcmp(k + IMAGE_MAGIC, image_magic, sizeof image_magic) != 0)
		return fail(err, err_size, -ENOEXEC,
		            "%s%s: offset 0x%x (magic): %02x %02x %02x %02x, expected \"ARM\\x64\": not an arm64 kernel "
		            "Image",
		            name, what, IMAGE_MAGIC, k[IMAGE_MAGIC], k[IMAGE_MAGIC + 1], k[IMAGE_MAGIC + 2],
		            k[IMAGE_MAGIC + 3]);
	return 0;
}

/* Nodes under / the placement edits, matched by their exact name as the
 * reference tool matches them ("memory@40000000" is another node). */
enum { NODE_MEMORY, NODE_CHOSEN, _NODE_MAX };
static const char *const node_names[_NODE_MAX] = { "memory", "chosen" };

typedef struct DtbEdit {
	int node;
	const char *name;
	const void *value;
	int len;
	bool done;
} DtbEdit;

typedef struct DtbPatch {
	const void *in;
	void *out;
	DtbEdit edits[5];
	size_t n_edits;
} DtbPatch;

static int emit_edits(DtbPatch *p, int node) {
	for (size_t i = 0; i < p->n_edits; i++) {
		DtbEdit *e = &p->edits[i];
		int r;
		if (e->node != node || e->done)
			continue;
		r = fdt_property(p->out, e->name, e->value, e->len);
		if (r < 0)
			return r;
		e->done = true;
	}
	return 0;
}

static DtbEdit *find_edit(DtbPatch *p, int node, const char *name) {
	for (size_t i = 0; i < p->n_edits; i++)
		if (p->edits[i].node == node && !p->edits[i].done && strcmp(p->edits[i].name, name) == 0)
			return &p->edits[i];
	return NULL;
}

/*
 * Rewrites the tree with the edits: a property that exists keeps its place,
 * a new one follows the node's last property, a new node follows the
 * root's last child, in the order they were first edited. That is the
 * reference tool's order, so dtc shows both results alike.
 */
static int dtb_rewrite(DtbPatch *p) {
	bool found[_NODE_MAX] = { false };
	int offset = 0, next, depth = 0, cur = -1, r;

	for (int i = 0, n = fdt_num_mem_rsv(p->in); i < n; i++) {
		uint64_t addr, size;
		if ((r = fdt_get_mem_rsv(p->in, i, &addr, &size)) < 0 || (r = fdt_add_reservemap_entry(p->out, addr, size)) < 0)
			return r;
	}
	if ((r = fdt_finish_reservemap(p->out)) < 0)
		return r;
	for (;;) {
		uint32_t tag = fdt_next_tag(p->in, offset, &next);
		const struct fdt_property *prop;
		const char *name;
		DtbEdit *e;
		int len;

		if (next < 0)
			return next;
		switch (tag) {
		case FDT_BEGIN_NODE:
			if (depth == 2 && cur >= 0 && (r = emit_edits(p, cur)) < 0)
				return r;
			name = fdt_get_name(p->in, offset, &len);
			if (!name)
				return len;
			if (++depth == 2) {
				cur = -1;
				for (int i = 0; i < _NODE_MAX; i++)
					if (strcmp(name, node_names[i]) == 0)
						cur = i;
				if (cur >= 0)
					found[cur] = true;
			}
			if ((r = fdt_begin_node(p->out, name)) < 0)
				return r;
			break;
		case FDT_PROP:
			prop = fdt_get_property_by_offset(p->in, offset, &len);
			if (!prop)
				return len;
			name = fdt_get_string(p->in, (int)fdt32_to_cpu(prop->nameoff), NULL);
			if (!name)
				return -FDT_ERR_BADSTRUCTURE;
			e = depth == 2 && cur >= 0 ? find_edit(p, cur, name) : NULL;
			if (e) {
				r = fdt_property(p->out, name, e->value, e->len);
				e->done = true;
			} else
				r = fdt_property(p->out, name, prop->data, len);
			if (r < 0)
				return r;
			break;
		case FDT_END_NODE:
			if (depth == 2 && cur >= 0) {
				if ((r = emit_edits(p, cur)) < 0)
					return r;
				cur = -1;
			}
			if (depth == 1)
				for (size_t i = 0; i < p->n_edits; i++) {
					int node = p->edits[i].node;
					if (found[node])
						continue;
					found[node] = true;
					if ((r = fdt_begin_node(p->out, node_names[node])) < 0 ||
					    (r = emit_edits(p, node)) < 0 || (r = fdt_end_node(p->out)) < 0)
						return r;
				}
			if ((r = fdt_end_node(p->out)) < 0)
				return r;
			if (--depth < 0)
				return -FDT_ERR_BADSTRUCTURE;
			break;
		case FDT_NOP: break;
		case FDT_END:
			if (depth != 0)
				return -FDT_ERR_BADSTRUCTURE;
			return fdt_finish(p->out);
		default: return -FDT_ERR_BADSTRUCTURE;
		}
		offset = next;
	}
}

/* #address-cells or #size-cells of /: 1 or 2. */
static int root_cells(const void *fdt, const char *prop, const char *name, unsigned *ret, char *err,
                      size_t err_size) {
	const fdt32_t *v;
	int len;
	uint32_t cells;

	v = fdt_getprop(fdt, 0, prop, &len);
	if (!v)
		return fail(err, err_size, -EINVAL, "%s: /%s: missing; the cell's memory cannot be described", name,
		            prop);
	if (len != 4)
		return fail(err, err_size, -EINVAL, "%s: /%s: %d bytes, expected one cell (4)", name, prop, len);
	cells = fdt32_to_cpu(*v);
	if (cells != 1 && cells != 2)
		return fail(err, err_size, -EINVAL, "%s: /%s: %" PRIu32 ", expected 1 or 2", name, prop, cells);
	*ret = cells;
	return 0;
}

/* One number in 1 or 2 big-endian cells. */
static int put_cells(uint8_t **at, uint64_t v, unsigned cells) {
	if (cells == 1 && v > UINT32_MAX)
		return -ERANGE;
	for (int i = (int)cells * 4 - 1; i >= 0; i--)
		*(*at)++ = (uint8_t)(v >> 8 * i);
	return 0;
}

static int patch_dtb(const JhCellConfig *cell, const JhLinuxInput *in, const JhLinuxLayout *l, uint8_t **ret,
                     size_t *ret_size, char *err, size_t err_size) {
	const char *name = or_default(in->dtb_name, "DTB");
	uint8_t initrd_start[8], initrd_end[8];
	uint8_t *reg = NULL, *at, *s, *e;
	unsigned acells, scells;
	DtbPatch p = { .in = in->dtb };
	size_t n_ram = 0, bufsize;
	int r = 0;

	if (in->dtb_size >= 4 && fdt_magic(in->dtb) != FDT_MAGIC)
		return fail(err, err_size, -EINVAL,
		            "%s: offset 0x0 (magic): 0x%08" PRIx32 ", expected 0x%08x: not a flattened device tree (DTB)",
		            name, fdt_magic(in->dtb), FDT_MAGIC);
	if (in->dtb_size < sizeof(struct fdt_header) || (r = fdt_check_header(in->dtb)) < 0)
		return fail(err, err_size, -EINVAL, "%s: not a flattened device tree (DTB): %s", name,
		            in->dtb_size < sizeof(struct fdt_header) ? "shorter than its header" : fdt_strerror(r));
	if (fdt_totalsize(in->dtb) > in->dtb_size)
		return fail(err, err_size, -EINVAL, "%s: offset 0x4 (totalsize): %" PRIu32 " bytes, the file has %zu", name,
		            fdt_totalsize(in->dtb), in->dtb_size);
	if ((r = fdt_check_full(in->dtb, in->dtb_size)) < 0)
		return fail(err, err_size, -EINVAL, "%s: not a valid device tree: %s", name, fdt_strerror(r));
	if ((r = root_cells(in->dtb, "#address-cells", name, &acells, err, err_size)) < 0 ||
	    (r = root_cells(in->dtb, "#size-cells", name, &scells, err, err_size)) < 0)
		return r;

	for (uint32_t i = 0; i < cell->n_memory; i++)
		n_ram += jh_linux_region_is_ram(&cell->memory[i]);
	reg = malloc(n_ram * 16 + 1);
	if (!reg)
		return fail(err, err_size, -ENOMEM, "%s: out of memory", name);
	at = reg;
	for (uint32_t i = 0; i < cell->n_memory; i++) {
		const JhMemory *m = &cell->memory[i];
		if (!jh_linux_region_is_ram(m) || (m->virt_start == 0 && m->size <= LOADER_REGION_MAX))
			continue;
		if (put_cells(&at, m->virt_start, acells) < 0 || put_cells(&at, m->size, scells) < 0) {
			r = fail(err, err_size, -ERANGE,
			         "%s: /#address-cells, /#size-cells: 1 cell cannot hold memory region %" PRIu32
			         " (0x%" PRIx64 ", 0x%" PRIx64 " bytes)",
			         name, i, m->virt_start, m->size);
			goto out;
		}
	}
	s = initrd_start;
	e = initrd_end;
	if (in->initrd && (put_cells(&s, l->initrd_address, acells) < 0 ||
	                   put_cells(&e, l->initrd_address + in->initrd_size, acells) < 0)) {
		r = fail(err, err_size, -ERANGE, "%s: /#address-cells: 1 cell cannot hold the initrd's end 0x%" PRIx64, name,
		         l->initrd_address + in->initrd_size);
		goto out;
	}

	p.edits[p.n_edits++] = (DtbEdit){ NODE_MEMORY, "device_type", "memory", sizeof "memory", false };
	p.edits[p.n_edits++] = (DtbEdit){ NODE_MEMORY, "reg", reg, (int)(at - reg), false };
	if (in->cmdline && *in->cmdline) {
		size_t len = strlen(in->cmdline) + 1;
		if (len > INT_MAX / 2) {
			r = fail(err, err_size, -EFBIG, "command line: %zu bytes, too long", len);
			goto out;
		}
		p.edits[p.n_edits++] = (DtbEdit){ NODE_CHOSEN, "bootargs", in->cmdline, (int)len, false };
	}
	if (in->initrd) {
		p.edits[p.n_edits++] = (DtbEdit){ NODE_CHOSEN, "linux,initrd-start", initrd_start, (int)(s - initrd_start), false };
		p.edits[p.n_edits++] = (DtbEdit){ NODE_CHOSEN, "linux,initrd-end", initrd_end, (int)(e - initrd_end), false };
	}

	/* The input, every edit as a new property with a new name, two new
	 * nodes, alignment: an upper bound. */
	bufsize = fdt_totalsize(in->dtb) + 2 * (sizeof(struct fdt_node_header) + 8 + 4);
	for (size_t i = 0; i < p.n_edits; i++)
		bufsize += sizeof(struct fdt_property) + (size_t)p.edits[i].len + 3 + strlen(p.edits[i].name) + 1;
	if (bufsize > INT_MAX) {
		r = fail(err, err_size, -EFBIG, "%s: the patched tree would pass 2 GiB", name);
		goto out;
	}
	p.out = malloc(bufsize);
	if (!p.out) {
		r = fail(err, err_size, -ENOMEM, "%s: out of memory", name);
		goto out;
	}
	r = fdt_create(p.out, (int)bufsize);
	if (r >= 0)
		r = dtb_rewrite(&p);
	/* fdt_create aligns the reserve map to 16 bytes; laid out again, it
	 * follows the header directly, as in dtc's and the reference's output. */
	if (r >= 0)
		r = fdt_open_into(p.out, p.out, (int)bufsize);
	if (r >= 0)
		r = fdt_pack(p.out);
	if (r < 0) {
		r = fail(err, err_size, -EINVAL, "%s: cannot patch the device tree: %s", name, fdt_strerror(r));
		free(p.out);
		goto out;
	}
	fdt_set_boot_cpuid_phys(p.out, fdt_boot_cpuid_phys(in->dtb));
	*ret_size = fdt_totalsize(p.out);
	*ret = p.out;
	r = 0;
out:
	free(reg);
	return r;
}

static void add_image(JhLinuxPlacement *p, JhLinuxImageKind kind, uint64_t address, const void *data, size_t size) {
	p->images[p->n_images++] = (JhLinuxImage){ kind, address, data, size };
}

/* What the loader occupies when its size is not known: up to the
 * parameter page. */
static uint64_t extent(const JhLinuxImage *i) {
	if (i->kind == JH_LINUX_IMAGE_LOADER && i->size == 0)
		return JH_LINUX_LOADER_ROOM;
	return i->size ? i->size : 1;
}

/* Where CELL_LOAD would refuse an image, or two would overwrite each other. */
static int check_images(const JhCellConfig *cell, const char *cname, const JhLinuxPlacement *p, char *err,
                        size_t err_size) {

	for (size_t i = 0; i < p->n_images; i++) {
		const JhLinuxImage *a = &p->images[i];
		uint64_t len = extent(a), last;
		bool inside = false;

		if (__builtin_add_overflow(a->address, len - 1, &last))
			return fail(err, err_size, -ERANGE, "%s: the %s image at 0x%" PRIx64 " passes the end of the address space",
			            cname, jh_linux_image_kind_to_string(a->kind), a->address);
		for (uint32_t m = 0; m < cell->n_memory && !inside; m++) {
			const JhMemory *r = &cell->memory[m];
			inside = (r->flags & LOADABLE_FLAGS) == LOADABLE_FLAGS && r->size > 0 && a->address >= r->virt_start &&
			         last - r->virt_start <= r->size - 1;
		}
		if (!inside)
			return fail(err, err_size, -ERANGE,
			            "%s: memory regions: the %s image (0x%" PRIx64 "..0x%" PRIx64
			            ") lies in no region that is WRITE and LOADABLE",
			            cname, jh_linux_image_kind_to_string(a->kind), a->address, last);
		for (size_t j = 0; j < i; j++) {
			const JhLinuxImage *b = &p->images[j];
			uint64_t blast = b->address + extent(b) - 1;
			/* The parameter string is meant to land on the loader's own
			 * .cmdline section (at JH_LINUX_PARAMS_OFFSET of a loader
			 * that is longer than that): loaded after the loader, it
			 * replaces those bytes, as the reference tool's -s does. */
			if (a->kind == JH_LINUX_IMAGE_PARAMS && b->kind == JH_LINUX_IMAGE_LOADER)
				continue;
			if (a->address <= blast && b->address <= last)
				return fail(err, err_size, -ERANGE,
				            "%s: the %s image (0x%" PRIx64 "..0x%" PRIx64 ") overlaps the %s image (0x%" PRIx64
				            "..0x%" PRIx64 ")",
				            cname, jh_linux_image_kind_to_string(a->kind), a->address, last,
				            jh_linux_image_kind_to_string(b->kind), b->address, blast);
		}
	}
	return 0;
}

int jh_linux_place(const JhCellConfig *cell, const JhLinuxInput *in, JhLinuxPlacement **ret, char *err,
                   size_t err_size) {
	const char *kname = or_default(in->kernel_name, "kernel");
	const char *cname = or_default(in->cell_name, or_default(cell->name, "cell"));
	const uint8_t *kernel = in->kernel;
	size_t kernel_len = in->kernel_size, dtb_len = 0;
	JhLinuxPlacement *p;
	int r;

	p = calloc(1, sizeof *p);
	if (!p)
		return fail(err, err_size, -ENOMEM, "out of memory");
	if (kernel_len >= 2 && kernel[0] == 0x1f && kernel[1] == 0x8b) {
		r = gunzip(kernel, kernel_len, kname, &p->kernel, &kernel_len, err, err_size);
		if (r < 0)
			goto fail;
		kernel = p->kernel;
		p->gzipped = true;
	}
	r = check_image(kernel, kernel_len, kname, p->gzipped, err, err_size);
	if (r < 0)
		goto fail;
	r = layout(cell, cname, le64(kernel + IMAGE_TEXT_OFFSET), kernel_len, in->dtb_size, in->initrd != NULL,
	           in->decompression_factor, &p->layout, err, err_size);
	if (r < 0)
		goto fail;
	r = patch_dtb(cell, in, &p->layout, &p->dtb, &dtb_len, err, err_size);
	if (r < 0)
		goto fail;
	if (dtb_len > p->layout.dtb_size) {
		r = fail(err, err_size, -EFBIG,
		         "%s: the patched DTB (%zu bytes) outgrows the 0x%" PRIx64 " bytes reserved for it (a long command line?)",
		         or_default(in->dtb_name, "DTB"), dtb_len, p->layout.dtb_size);
		goto fail;
	}
	snprintf(p->params, sizeof p->params, "kernel=0x%" PRIx64 " dtb=0x%" PRIx64, p->layout.kernel_address,
	         p->layout.dtb_address);

	add_image(p, JH_LINUX_IMAGE_LOADER, p->layout.loader_address, NULL, in->loader_size);
	add_image(p, JH_LINUX_IMAGE_KERNEL, p->layout.kernel_address, kernel, kernel_len);
	add_image(p, JH_LINUX_IMAGE_DTB, p->layout.dtb_address, p->dtb, dtb_len);
	if (in->initrd)
		add_image(p, JH_LINUX_IMAGE_INITRD, p->layout.initrd_address, in->initrd, in->initrd_size);
	add_image(p, JH_LINUX_IMAGE_PARAMS, p->layout.params_address, p->params, strlen(p->params) + 1);
	r = check_images(cell, cname, p, err, err_size);
	if (r < 0)
		goto fail;
	*ret = p;
	return 0;
fail:
	jh_linux_placement_free(p);
	return r;
}

JhLinuxPlacement *jh_linux_placement_free(JhLinuxPlacement *p) {
	if (p) {
		free(p->kernel);
		free(p->dtb);
		free(p);
	}
	return NULL;
}

const JhLinuxLayout *jh_linux_placement_layout(const JhLinuxPlacement *p) {
	return &p->layout;
}

const JhLinuxImage *jh_linux_placement_images(const JhLinuxPlacement *p, size_t *ret_n) {
	*ret_n = p->n_images;
	return p->images;
}

const JhLinuxImage *jh_linux_placement_image(const JhLinuxPlacement *p, JhLinuxImageKind k) {
	for (size_t i = 0; i < p->n_images; i++)
		if (p->images[i].kind == k)
			return &p->images[i];
	return NULL;
}

const char *jh_linux_placement_params(const JhLinuxPlacement *p) {
	return p->params;
}

bool jh_linux_placement_kernel_was_gzipped(const JhLinuxPlacement *p) {
	return p->gzipped;
}
