/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cell-config.h"

/* Sizes and offsets on disk (FACTS.md, section 1). */
#define DESC_SIZE 132
#define CONSOLE_SIZE 32
#define MEMORY_SIZE 32
#define CACHE_SIZE 12
#define IRQCHIP_SIZE 32
#define PIO_SIZE 4
#define PCI_DEVICE_SIZE 56
#define PCI_CAP_SIZE 8
#define STREAM_ID_SIZE 4
#define IOMMU_SIZE 28

#define SYS_ROOT_CELL_REV12 354
#define SYS_ROOT_CELL_REV13 356

/* The header every config starts with: signature, (rev 14) architecture,
 * revision. */
#define HEADER_SIZE 8

typedef struct Reader {
	const uint8_t *d;
	size_t size;
	char *err;
	size_t err_size;
} Reader;

static int failv(char *err, size_t err_size, int r, const char *fmt, va_list ap) {
	if (err && err_size)
		vsnprintf(err, err_size, fmt, ap);
	return r;
}

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t err_size, int r, const char *fmt, ...) {
	va_list ap;

	va_start(ap, fmt);
	failv(err, err_size, r, fmt, ap);
	va_end(ap);
	return r;
}

/* "offset 0x1c (field): why" — the form of every decoding error. */
__attribute__((format(printf, 4, 5))) static int bad(const Reader *rd, size_t off, const char *field, const char *fmt,
                                                     ...) {
	char why[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	return fail(rd->err, rd->err_size, -EINVAL, "offset 0x%zx (%s): %s", off, field, why);
}

static uint8_t rd8(const Reader *rd, size_t off) {
	return rd->d[off];
}
static uint16_t rd16(const Reader *rd, size_t off) {
	return (uint16_t)(rd->d[off] | rd->d[off + 1] << 8);
}
static uint32_t rd32(const Reader *rd, size_t off) {
	return (uint32_t)rd16(rd, off) | (uint32_t)rd16(rd, off + 2) << 16;
}
static uint64_t rd64(const Reader *rd, size_t off) {
	return (uint64_t)rd32(rd, off) | (uint64_t)rd32(rd, off + 4) << 32;
}

/* Bytes that carry no field must be zero, or decode + encode would lose
 * them. */
static int check_zero(const Reader *rd, size_t off, size_t len, const char *field) {
	for (size_t i = 0; i < len; i++)
		if (rd->d[off + i])
			return bad(rd, off + i, field, "byte 0x%02x where zero is expected (no field holds it)",
			           rd->d[off + i]);
	return 0;
}

static void wr8(uint8_t *d, size_t off, uint8_t v) {
	d[off] = v;
}
static void wr16(uint8_t *d, size_t off, uint16_t v) {
	d[off] = (uint8_t)v;
	d[off + 1] = (uint8_t)(v >> 8);
}
static void wr32(uint8_t *d, size_t off, uint32_t v) {
	wr16(d, off, (uint16_t)v);
	wr16(d, off + 2, (uint16_t)(v >> 16));
}
static void wr64(uint8_t *d, size_t off, uint64_t v) {
	wr32(d, off, (uint32_t)v);
	wr32(d, off + 4, (uint32_t)(v >> 32));
}

static const char *const arch_names[_JH_ARCH_MAX] = {
	[JH_ARCH_X86] = "x86",
	[JH_ARCH_ARM] = "arm",
	[JH_ARCH_ARM64] = "arm64",
};

const char *jh_arch_to_string(JhArch a) {
	return a >= 0 && a < _JH_ARCH_MAX ? arch_names[a] : NULL;
}

JhArch jh_arch_from_string(const char *s) {
	for (int a = 0; s && a < _JH_ARCH_MAX; a++)
		if (strcmp(s, arch_names[a]) == 0)
			return (JhArch)a;
	return JH_ARCH_UNSPEC;
}

static const char *const kind_names[_JH_CONFIG_KIND_MAX] = {
	[JH_CONFIG_CELL] = "cell",
	[JH_CONFIG_SYSTEM] = "system",
};

const char *jh_config_kind_to_string(JhConfigKind k) {
	return k >= 0 && k < _JH_CONFIG_KIND_MAX ? kind_names[k] : NULL;
}

JhPlatform jh_arch_platform(JhArch a) {
	switch (a) {
	case JH_ARCH_X86: return JH_PLATFORM_X86;
	case JH_ARCH_ARM:
	case JH_ARCH_ARM64: return JH_PLATFORM_ARM;
	default: return JH_PLATFORM_UNSPEC;
	}
}

static bool revision_valid(unsigned rev) {
	return rev >= JH_REVISION_MIN && rev <= JH_REVISION_MAX;
}

/* Rev 14 signatures are 5 bytes and an architecture byte; older ones 6. */
static const char *signature(JhConfigKind k, unsigned rev) {
	if (rev >= 14)
		return k == JH_CONFIG_CELL ? "JHCLL" : "JHSYS";
	return k == JH_CONFIG_CELL ? "JHCELL" : "JHSYST";
}

static void printable(const uint8_t *p, size_t n, char *buf, size_t buf_size) {
	size_t o = 0;

	for (size_t i = 0; i < n && o + 5 < buf_size; i++)
		o += (size_t)snprintf(buf + o, buf_size - o, p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' ? "%c" : "\\x%02x",
		                      p[i]);
	buf[o] = 0;
}

int jh_config_identify(const void *data, size_t size, JhConfigKind *ret_kind, unsigned *ret_revision, char *err,
                       size_t err_size) {
	const Reader rd = { .d = data, .size = size, .err = err, .err_size = err_size };
	char sig[64];
	JhConfigKind kind;
	unsigned rev;

	if (size < HEADER_SIZE)
		return fail(err, err_size, -EINVAL, "truncated: %zu bytes, the header alone needs %d", size, HEADER_SIZE);
	printable(rd.d, 6, sig, sizeof sig);
	if (memcmp(rd.d, "JHCLL", 5) == 0 || memcmp(rd.d, "JHCELL", 6) == 0)
		kind = JH_CONFIG_CELL;
	else if (memcmp(rd.d, "JHSYS", 5) == 0)
		kind = JH_CONFIG_SYSTEM;
	else
		return bad(&rd, 0, "signature", "\"%s\" is neither a Jailhouse cell config (JHCLL, JHCELL) nor a system config (JHSYS, JHSYST)", sig);
	rev = rd16(&rd, 6);
	if (!revision_valid(rev))
		return bad(&rd, 6, "revision", "%u, expected %d, %d or %d", rev, JH_REVISION_MIN, JH_REVISION_MIN + 1,
		           JH_REVISION_MAX);
	if (memcmp(rd.d, signature(kind, rev), strlen(signature(kind, rev))) != 0)
		return bad(&rd, 0, "signature", "\"%s\" is not the signature of revision %u (\"%s\")", sig, rev,
		           signature(kind, rev));
	*ret_kind = kind;
	*ret_revision = rev;
	return 0;
}

/* The header's architecture: checked against the wanted one for rev 14,
 * the wanted one (maybe unspecified) for older revisions. */
static int decode_arch(const Reader *rd, unsigned rev, JhArch want, JhArch *ret) {
	uint8_t a;

	if (rev < 14) {
		*ret = want;
		return 0;
	}
	a = rd8(rd, 5);
	if (a >= _JH_ARCH_MAX)
		return bad(rd, 5, "architecture", "%u, expected 0 (x86), 1 (arm) or 2 (arm64)", a);
	if (want != JH_ARCH_UNSPEC && (JhArch)a != want)
		return bad(rd, 5, "architecture", "the file is for %s, expected %s", arch_names[a], arch_names[want]);
	*ret = (JhArch)a;
	return 0;
}

static int decode_name(const Reader *rd, size_t off, const char *field, char name[static JH_NAME_SIZE]) {
	const uint8_t *p = rd->d + off;
	const uint8_t *nul = memchr(p, 0, JH_NAME_SIZE);

	if (!nul)
		return bad(rd, off, field, "not NUL-terminated within %d bytes", JH_NAME_SIZE);
	if (check_zero(rd, off + (size_t)(nul - p), JH_NAME_SIZE - (size_t)(nul - p), field) < 0)
		return -EINVAL;
	memcpy(name, p, JH_NAME_SIZE);
	return 0;
}

static void decode_console(const Reader *rd, size_t off, JhConsole *c) {
	c->address = rd64(rd, off);
	c->size = rd32(rd, off + 8);
	c->type = rd16(rd, off + 12);
	c->flags = rd16(rd, off + 14);
	c->divider = rd32(rd, off + 16);
	c->gate_nr = rd32(rd, off + 20);
	c->clock_reg = rd64(rd, off + 24);
}

static void encode_console(uint8_t *d, size_t off, const JhConsole *c) {
	wr64(d, off, c->address);
	wr32(d, off + 8, c->size);
	wr16(d, off + 12, c->type);
	wr16(d, off + 14, c->flags);
	wr32(d, off + 16, c->divider);
	wr32(d, off + 20, c->gate_nr);
	wr64(d, off + 24, c->clock_reg);
}

static void decode_memory(const Reader *rd, size_t off, JhMemory *m) {
	m->phys_start = rd64(rd, off);
	m->virt_start = rd64(rd, off + 8);
	m->size = rd64(rd, off + 16);
	m->flags = rd64(rd, off + 24);
}

static void encode_memory(uint8_t *d, size_t off, const JhMemory *m) {
	wr64(d, off, m->phys_start);
	wr64(d, off + 8, m->virt_start);
	wr64(d, off + 16, m->size);
	wr64(d, off + 24, m->flags);
}

/* The counts of a cell desc, in body order. */
typedef struct Counts {
	uint32_t cpu_set_size, memory, cache, irqchips, pio, pci_devices, pci_caps, stream_ids;
} Counts;

static void read_counts(const Reader *rd, size_t d, Counts *c) {
	c->cpu_set_size = rd32(rd, d + 48);
	c->memory = rd32(rd, d + 52);
	c->cache = rd32(rd, d + 56);
	c->irqchips = rd32(rd, d + 60);
	c->pio = rd32(rd, d + 64);
	c->pci_devices = rd32(rd, d + 68);
	c->pci_caps = rd32(rd, d + 72);
	c->stream_ids = rd32(rd, d + 76);
}

static uint64_t body_size(const Counts *c) {
	return (uint64_t)c->cpu_set_size + (uint64_t)c->memory * MEMORY_SIZE + (uint64_t)c->cache * CACHE_SIZE +
	       (uint64_t)c->irqchips * IRQCHIP_SIZE + (uint64_t)c->pio * PIO_SIZE +
	       (uint64_t)c->pci_devices * PCI_DEVICE_SIZE + (uint64_t)c->pci_caps * PCI_CAP_SIZE +
	       (uint64_t)c->stream_ids * STREAM_ID_SIZE;
}

/* The file must be exactly desc + body: say which section the file ends in,
 * or how many bytes trail, so that an operator sees which count is off. */
static int check_body_size(const Reader *rd, size_t body, const Counts *c, const char *prefix) {
	const struct {
		const char *name;
		uint64_t bytes;
	} sections[] = {
		{ "cpu_set", c->cpu_set_size },
		{ "memory regions", (uint64_t)c->memory * MEMORY_SIZE },
		{ "cache regions", (uint64_t)c->cache * CACHE_SIZE },
		{ "irqchips", (uint64_t)c->irqchips * IRQCHIP_SIZE },
		{ "pio regions", (uint64_t)c->pio * PIO_SIZE },
		{ "pci devices", (uint64_t)c->pci_devices * PCI_DEVICE_SIZE },
		{ "pci capabilities", (uint64_t)c->pci_caps * PCI_CAP_SIZE },
		{ "stream ids", (uint64_t)c->stream_ids * STREAM_ID_SIZE },
	};
	uint64_t off = body, total = body + body_size(c);

	for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
		if (off + sections[i].bytes > rd->size)
			return fail(rd->err, rd->err_size, -EINVAL,
			            "offset 0x%" PRIx64 " (%s%s): truncated: the counts in the header need %" PRIu64
			            " bytes, the file has %zu",
			            off, prefix, sections[i].name, total, rd->size);
		off += sections[i].bytes;
	}
	if (total != rd->size)
		return fail(rd->err, rd->err_size, -EINVAL,
		            "offset 0x%" PRIx64 ": %" PRIu64 " trailing bytes: the counts in the %sheader add up to %" PRIu64
		            " bytes, the file has %zu",
		            total, rd->size - total, prefix, total, rd->size);
	return 0;
}

static void *alloc_array(uint32_t n, size_t elem) {
	return calloc(n ? n : 1, elem);
}

/* The cell desc at d and its body; prefix names the fields in errors
 * ("" or "root_cell."). */
static int decode_cell(const Reader *rd, size_t d, const char *prefix, JhCellConfig *c) {
	char field[96];
	Counts n;
	size_t off;
	int r;

	if (d + DESC_SIZE > rd->size)
		return fail(rd->err, rd->err_size, -EINVAL,
		            "offset 0x%zx (%scell desc): truncated: the desc needs %d bytes up to 0x%zx, the file has %zu", d,
		            prefix, DESC_SIZE, d + DESC_SIZE, rd->size);
	snprintf(field, sizeof field, "%sname", prefix);
	if ((r = decode_name(rd, d + 8, field, c->name)) < 0)
		return r;
	c->id = rd32(rd, d + 40);
	c->flags = rd32(rd, d + 44);
	read_counts(rd, d, &n);
	c->vpci_irq_base = rd32(rd, d + 80);
	c->cpu_reset_address = rd64(rd, d + 84);
	c->msg_reply_timeout = rd64(rd, d + 92);
	decode_console(rd, d + 100, &c->console);
	if ((r = check_body_size(rd, d + DESC_SIZE, &n, prefix)) < 0)
		return r;

	if (!(c->cpu_set = alloc_array(n.cpu_set_size, 1)) || !(c->memory = alloc_array(n.memory, sizeof(JhMemory))) ||
	    !(c->cache = alloc_array(n.cache, sizeof(JhCache))) ||
	    !(c->irqchips = alloc_array(n.irqchips, sizeof(JhIrqchip))) || !(c->pio = alloc_array(n.pio, sizeof(JhPio))) ||
	    !(c->pci_devices = alloc_array(n.pci_devices, sizeof(JhPciDevice))) ||
	    !(c->pci_caps = alloc_array(n.pci_caps, sizeof(JhPciCap))) ||
	    !(c->stream_ids = alloc_array(n.stream_ids, sizeof(uint32_t))))
		return fail(rd->err, rd->err_size, -ENOMEM, "out of memory");

	off = d + DESC_SIZE;
	c->cpu_set_size = n.cpu_set_size;
	memcpy(c->cpu_set, rd->d + off, n.cpu_set_size);
	off += n.cpu_set_size;

	c->n_memory = n.memory;
	for (uint32_t i = 0; i < n.memory; i++, off += MEMORY_SIZE)
		decode_memory(rd, off, &c->memory[i]);

	c->n_cache = n.cache;
	for (uint32_t i = 0; i < n.cache; i++, off += CACHE_SIZE) {
		c->cache[i].start = rd32(rd, off);
		c->cache[i].size = rd32(rd, off + 4);
		c->cache[i].type = rd8(rd, off + 8);
		snprintf(field, sizeof field, "%scache[%u] padding", prefix, i);
		if ((r = check_zero(rd, off + 9, 1, field)) < 0)
			return r;
		c->cache[i].flags = rd16(rd, off + 10);
	}

	c->n_irqchips = n.irqchips;
	for (uint32_t i = 0; i < n.irqchips; i++, off += IRQCHIP_SIZE) {
		c->irqchips[i].address = rd64(rd, off);
		c->irqchips[i].id = rd32(rd, off + 8);
		c->irqchips[i].pin_base = rd32(rd, off + 12);
		for (unsigned w = 0; w < 4; w++)
			c->irqchips[i].pin_bitmap[w] = rd32(rd, off + 16 + 4 * w);
	}

	c->n_pio = n.pio;
	for (uint32_t i = 0; i < n.pio; i++, off += PIO_SIZE) {
		c->pio[i].base = rd16(rd, off);
		c->pio[i].length = rd16(rd, off + 2);
	}

	c->n_pci_devices = n.pci_devices;
	for (uint32_t i = 0; i < n.pci_devices; i++, off += PCI_DEVICE_SIZE) {
		JhPciDevice *p = &c->pci_devices[i];
		uint8_t msi = rd8(rd, off + 35);

		p->type = rd8(rd, off);
		p->iommu = rd8(rd, off + 1);
		p->domain = rd16(rd, off + 2);
		p->bdf = rd16(rd, off + 4);
		for (unsigned b = 0; b < 6; b++)
			p->bar_mask[b] = rd32(rd, off + 6 + 4 * b);
		p->caps_start = rd16(rd, off + 30);
		p->num_caps = rd16(rd, off + 32);
		p->num_msi_vectors = rd8(rd, off + 34);
		if (msi & ~3u) {
			snprintf(field, sizeof field, "%spci_devices[%u] msi bits", prefix, i);
			return bad(rd, off + 35, field, "0x%02x: only bit 0 (msi_64bits) and bit 1 (msi_maskable) exist",
			           msi);
		}
		p->msi_64bits = msi & 1;
		p->msi_maskable = msi & 2;
		p->num_msix_vectors = rd16(rd, off + 36);
		p->msix_region_size = rd16(rd, off + 38);
		p->msix_address = rd64(rd, off + 40);
		p->shmem_regions_start = rd32(rd, off + 48);
		p->shmem_dev_id = rd8(rd, off + 52);
		p->shmem_peers = rd8(rd, off + 53);
		p->shmem_protocol = rd16(rd, off + 54);
	}

	c->n_pci_caps = n.pci_caps;
	for (uint32_t i = 0; i < n.pci_caps; i++, off += PCI_CAP_SIZE) {
		c->pci_caps[i].id = rd16(rd, off);
		c->pci_caps[i].start = rd16(rd, off + 2);
		c->pci_caps[i].len = rd16(rd, off + 4);
		c->pci_caps[i].flags = rd16(rd, off + 6);
	}

	c->n_stream_ids = n.stream_ids;
	for (uint32_t i = 0; i < n.stream_ids; i++, off += STREAM_ID_SIZE)
		c->stream_ids[i] = rd32(rd, off);
	return 0;
}

static int encode_check_cell(const JhCellConfig *c, const char *prefix, char *err, size_t err_size) {
	if (!memchr(c->name, 0, JH_NAME_SIZE))
		return fail(err, err_size, -EINVAL, "%sname: longer than %d characters", prefix, JH_NAME_SIZE - 1);
	if (c->cpu_set_size && !c->cpu_set)
		return fail(err, err_size, -EINVAL, "%scpu_set: %u bytes announced, none given", prefix, c->cpu_set_size);
	return 0;
}

static size_t cell_size(const JhCellConfig *c) {
	const Counts n = {
		.cpu_set_size = c->cpu_set_size,
		.memory = c->n_memory,
		.cache = c->n_cache,
		.irqchips = c->n_irqchips,
		.pio = c->n_pio,
		.pci_devices = c->n_pci_devices,
		.pci_caps = c->n_pci_caps,
		.stream_ids = c->n_stream_ids,
	};
	return DESC_SIZE + (size_t)body_size(&n);
}

/* The desc (without the 8 header bytes, which the caller writes) at d and
 * the body after it. */
static void encode_cell(uint8_t *b, size_t d, const JhCellConfig *c) {
	size_t off;

	/* The name's tail stays zero: the decoder demands it. */
	memcpy(b + d + 8, c->name, strnlen(c->name, JH_NAME_SIZE));
	wr32(b, d + 40, c->id);
	wr32(b, d + 44, c->flags);
	wr32(b, d + 48, c->cpu_set_size);
	wr32(b, d + 52, c->n_memory);
	wr32(b, d + 56, c->n_cache);
	wr32(b, d + 60, c->n_irqchips);
	wr32(b, d + 64, c->n_pio);
	wr32(b, d + 68, c->n_pci_devices);
	wr32(b, d + 72, c->n_pci_caps);
	wr32(b, d + 76, c->n_stream_ids);
	wr32(b, d + 80, c->vpci_irq_base);
	wr64(b, d + 84, c->cpu_reset_address);
	wr64(b, d + 92, c->msg_reply_timeout);
	encode_console(b, d + 100, &c->console);

	off = d + DESC_SIZE;
	if (c->cpu_set_size)
		memcpy(b + off, c->cpu_set, c->cpu_set_size);
	off += c->cpu_set_size;
	for (uint32_t i = 0; i < c->n_memory; i++, off += MEMORY_SIZE)
		encode_memory(b, off, &c->memory[i]);
	for (uint32_t i = 0; i < c->n_cache; i++, off += CACHE_SIZE) {
		wr32(b, off, c->cache[i].start);
		wr32(b, off + 4, c->cache[i].size);
		wr8(b, off + 8, c->cache[i].type);
		wr16(b, off + 10, c->cache[i].flags);
	}
	for (uint32_t i = 0; i < c->n_irqchips; i++, off += IRQCHIP_SIZE) {
		wr64(b, off, c->irqchips[i].address);
		wr32(b, off + 8, c->irqchips[i].id);
		wr32(b, off + 12, c->irqchips[i].pin_base);
		for (unsigned w = 0; w < 4; w++)
			wr32(b, off + 16 + 4 * w, c->irqchips[i].pin_bitmap[w]);
	}
	for (uint32_t i = 0; i < c->n_pio; i++, off += PIO_SIZE) {
		wr16(b, off, c->pio[i].base);
		wr16(b, off + 2, c->pio[i].length);
	}
	for (uint32_t i = 0; i < c->n_pci_devices; i++, off += PCI_DEVICE_SIZE) {
		const JhPciDevice *p = &c->pci_devices[i];

		wr8(b, off, p->type);
		wr8(b, off + 1, p->iommu);
		wr16(b, off + 2, p->domain);
		wr16(b, off + 4, p->bdf);
		for (unsigned k = 0; k < 6; k++)
			wr32(b, off + 6 + 4 * k, p->bar_mask[k]);
		wr16(b, off + 30, p->caps_start);
		wr16(b, off + 32, p->num_caps);
		wr8(b, off + 34, p->num_msi_vectors);
		wr8(b, off + 35, (uint8_t)((p->msi_64bits ? 1 : 0) | (p->msi_maskable ? 2 : 0)));
		wr16(b, off + 36, p->num_msix_vectors);
		wr16(b, off + 38, p->msix_region_size);
		wr64(b, off + 40, p->msix_address);
		wr32(b, off + 48, p->shmem_regions_start);
		wr8(b, off + 52, p->shmem_dev_id);
		wr8(b, off + 53, p->shmem_peers);
		wr16(b, off + 54, p->shmem_protocol);
	}
	for (uint32_t i = 0; i < c->n_pci_caps; i++, off += PCI_CAP_SIZE) {
		wr16(b, off, c->pci_caps[i].id);
		wr16(b, off + 2, c->pci_caps[i].start);
		wr16(b, off + 4, c->pci_caps[i].len);
		wr16(b, off + 6, c->pci_caps[i].flags);
	}
	for (uint32_t i = 0; i < c->n_stream_ids; i++, off += STREAM_ID_SIZE)
		wr32(b, off, c->stream_ids[i]);
}

static void encode_header(uint8_t *b, JhConfigKind k, unsigned rev, JhArch arch) {
	const char *sig = signature(k, rev);

	memcpy(b, sig, strlen(sig));
	if (rev >= 14)
		wr8(b, 5, (uint8_t)arch);
	wr16(b, 6, (uint16_t)rev);
}

static int encode_check_header(unsigned rev, JhArch arch, char *err, size_t err_size) {
	if (!revision_valid(rev))
		return fail(err, err_size, -EINVAL, "revision: %u, expected %d, %d or %d", rev, JH_REVISION_MIN,
		            JH_REVISION_MIN + 1, JH_REVISION_MAX);
	if (arch != JH_ARCH_UNSPEC && !jh_arch_to_string(arch))
		return fail(err, err_size, -EINVAL, "architecture: %d is not x86, arm or arm64", (int)arch);
	if (rev >= 14 && arch == JH_ARCH_UNSPEC)
		return fail(err, err_size, -EINVAL, "architecture: revision %u records it; say x86, arm or arm64", rev);
	return 0;
}

JhCellConfig *jh_cell_config_new(unsigned revision, JhArch arch) {
	JhCellConfig *c = calloc(1, sizeof *c);

	if (c) {
		c->revision = revision;
		c->arch = arch;
	}
	return c;
}

void jh_cell_config_clear(JhCellConfig *c) {
	free(c->cpu_set);
	free(c->memory);
	free(c->cache);
	free(c->irqchips);
	free(c->pio);
	free(c->pci_devices);
	free(c->pci_caps);
	free(c->stream_ids);
	*c = (JhCellConfig){ .revision = c->revision, .arch = c->arch };
}

JhCellConfig *jh_cell_config_free(JhCellConfig *c) {
	if (c) {
		jh_cell_config_clear(c);
		free(c);
	}
	return NULL;
}

JhSystemConfig *jh_system_config_new(unsigned revision, JhArch arch) {
	JhSystemConfig *s = calloc(1, sizeof *s);

	if (s) {
		s->revision = revision;
		s->arch = arch;
		s->platform = jh_arch_platform(arch);
		s->root_cell.revision = revision;
		s->root_cell.arch = arch;
	}
	return s;
}

JhSystemConfig *jh_system_config_free(JhSystemConfig *s) {
	if (s) {
		jh_cell_config_clear(&s->root_cell);
		free(s);
	}
	return NULL;
}

bool jh_cell_config_has_cpu(const JhCellConfig *c, unsigned cpu) {
	return cpu / 8 < c->cpu_set_size && (c->cpu_set[cpu / 8] >> (cpu % 8) & 1);
}

int jh_cell_config_decode(const void *data, size_t size, JhArch arch, JhCellConfig **ret, char *err, size_t err_size) {
	const Reader rd = { .d = data, .size = size, .err = err, .err_size = err_size };
	JhCellConfig *c;
	JhConfigKind kind;
	unsigned rev;
	int r;

	if ((r = jh_config_identify(data, size, &kind, &rev, err, err_size)) < 0)
		return r;
	if (kind != JH_CONFIG_CELL)
		return bad(&rd, 0, "signature", "a system config, not a cell config");
	if (!(c = jh_cell_config_new(rev, JH_ARCH_UNSPEC)))
		return fail(err, err_size, -ENOMEM, "out of memory");
	if ((r = decode_arch(&rd, rev, arch, &c->arch)) < 0 || (r = decode_cell(&rd, 0, "", c)) < 0) {
		jh_cell_config_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

int jh_cell_config_encode(const JhCellConfig *c, uint8_t **ret_data, size_t *ret_size, char *err, size_t err_size) {
	uint8_t *b;
	size_t n;
	int r;

	if ((r = encode_check_header(c->revision, c->arch, err, err_size)) < 0 ||
	    (r = encode_check_cell(c, "", err, err_size)) < 0)
		return r;
	n = cell_size(c);
	if (!(b = calloc(1, n)))
		return fail(err, err_size, -ENOMEM, "out of memory");
	encode_header(b, JH_CONFIG_CELL, c->revision, c->arch);
	encode_cell(b, 0, c);
	*ret_data = b;
	*ret_size = n;
	return 0;
}

/* The platform part of a system config, per revision and half. Rev 12 puts
 * the IOMMU units inside the union, after each half's own fields; rev 13
 * moved them before it (FACTS.md). */
typedef struct PlatformLayout {
	size_t iommu;     /* offset of iommu_units[0] */
	size_t union_off; /* the union, x86 or arm */
	size_t union_end;
} PlatformLayout;

static PlatformLayout platform_layout(unsigned rev, JhPlatform p) {
	if (rev >= 13)
		return (PlatformLayout){ .iommu = 88, .union_off = 312, .union_end = SYS_ROOT_CELL_REV13 };
	return (PlatformLayout){ .iommu = p == JH_PLATFORM_X86 ? 106 : 130, .union_off = 88,
		                 .union_end = SYS_ROOT_CELL_REV12 };
}

static int decode_iommu(const Reader *rd, size_t off, unsigned i, JhIommu *u) {
	char field[48];

	u->type = rd32(rd, off);
	u->base = rd64(rd, off + 4);
	u->size = rd32(rd, off + 12);
	if (u->type == JH_IOMMU_PVU) {
		u->tipvu_tlb_base = rd64(rd, off + 16);
		u->tipvu_tlb_size = rd32(rd, off + 24);
		return 0;
	}
	u->amd_bdf = rd16(rd, off + 16);
	u->amd_base_cap = rd8(rd, off + 18);
	u->amd_msi_cap = rd8(rd, off + 19);
	u->amd_features = rd32(rd, off + 20);
	snprintf(field, sizeof field, "iommu_units[%u] union tail", i);
	return check_zero(rd, off + 24, 4, field);
}

static void encode_iommu(uint8_t *b, size_t off, const JhIommu *u) {
	wr32(b, off, u->type);
	wr64(b, off + 4, u->base);
	wr32(b, off + 12, u->size);
	if (u->type == JH_IOMMU_PVU) {
		wr64(b, off + 16, u->tipvu_tlb_base);
		wr32(b, off + 24, u->tipvu_tlb_size);
		return;
	}
	wr16(b, off + 16, u->amd_bdf);
	wr8(b, off + 18, u->amd_base_cap);
	wr8(b, off + 19, u->amd_msi_cap);
	wr32(b, off + 20, u->amd_features);
}

static int decode_platform(const Reader *rd, unsigned rev, JhPlatform p, JhSystemConfig *s) {
	const PlatformLayout l = platform_layout(rev, p);
	size_t end, o = l.union_off;
	int r;

	for (unsigned i = 0; i < JH_MAX_IOMMU_UNITS; i++)
		if ((r = decode_iommu(rd, l.iommu + i * IOMMU_SIZE, i, &s->iommu_units[i])) < 0)
			return r;
	s->x86 = (JhPlatformX86){ 0 };
	s->arm = (JhPlatformArm){ 0 };
	if (p == JH_PLATFORM_X86 && rev >= 13) {
		s->x86.pm_timer_address = rd16(rd, o);
		s->x86.apic_mode = rd8(rd, o + 2);
		if ((r = check_zero(rd, o + 3, 1, "platform_info.x86 padding")) < 0)
			return r;
		s->x86.vtd_interrupt_limit = rd32(rd, o + 4);
		s->x86.tsc_khz = rd32(rd, o + 8);
		s->x86.apic_khz = rd32(rd, o + 12);
		end = o + 16;
	} else if (p == JH_PLATFORM_X86) {
		s->x86.pm_timer_address = rd16(rd, o);
		s->x86.vtd_interrupt_limit = rd32(rd, o + 2);
		s->x86.apic_mode = rd8(rd, o + 6);
		if ((r = check_zero(rd, o + 7, 3, "platform_info.x86 padding")) < 0)
			return r;
		s->x86.tsc_khz = rd32(rd, o + 10);
		s->x86.apic_khz = rd32(rd, o + 14);
		end = l.iommu + JH_MAX_IOMMU_UNITS * IOMMU_SIZE;
	} else {
		s->arm.maintenance_irq = rd8(rd, o);
		s->arm.gic_version = rd8(rd, o + 1);
		if (rev >= 13) {
			if ((r = check_zero(rd, o + 2, 2, "platform_info.arm padding")) < 0)
				return r;
			o += 2;
		}
		s->arm.gicd_base = rd64(rd, o + 2);
		s->arm.gicc_base = rd64(rd, o + 10);
		s->arm.gich_base = rd64(rd, o + 18);
		s->arm.gicv_base = rd64(rd, o + 26);
		s->arm.gicr_base = rd64(rd, o + 34);
		end = rev >= 13 ? o + 42 : l.union_end;
	}
	/* The x86 half is shorter than the arm half: the rest of the union. */
	return check_zero(rd, end, l.union_end - end,
	                  p == JH_PLATFORM_X86 ? "platform_info union (after the x86 part; an arm config?)"
	                                       : "platform_info union");
}

static void encode_platform(uint8_t *b, const JhSystemConfig *s) {
	const PlatformLayout l = platform_layout(s->revision, s->platform);
	size_t o = l.union_off;

	for (unsigned i = 0; i < JH_MAX_IOMMU_UNITS; i++)
		encode_iommu(b, l.iommu + i * IOMMU_SIZE, &s->iommu_units[i]);
	if (s->platform == JH_PLATFORM_X86 && s->revision >= 13) {
		wr16(b, o, s->x86.pm_timer_address);
		wr8(b, o + 2, s->x86.apic_mode);
		wr32(b, o + 4, s->x86.vtd_interrupt_limit);
		wr32(b, o + 8, s->x86.tsc_khz);
		wr32(b, o + 12, s->x86.apic_khz);
	} else if (s->platform == JH_PLATFORM_X86) {
		wr16(b, o, s->x86.pm_timer_address);
		wr32(b, o + 2, s->x86.vtd_interrupt_limit);
		wr8(b, o + 6, s->x86.apic_mode);
		wr32(b, o + 10, s->x86.tsc_khz);
		wr32(b, o + 14, s->x86.apic_khz);
	} else {
		wr8(b, o, s->arm.maintenance_irq);
		wr8(b, o + 1, s->arm.gic_version);
		if (s->revision >= 13)
			o += 2;
		wr64(b, o + 2, s->arm.gicd_base);
		wr64(b, o + 10, s->arm.gicc_base);
		wr64(b, o + 18, s->arm.gich_base);
		wr64(b, o + 26, s->arm.gicv_base);
		wr64(b, o + 34, s->arm.gicr_base);
	}
}

static size_t root_cell_offset(unsigned rev) {
	return rev >= 13 ? SYS_ROOT_CELL_REV13 : SYS_ROOT_CELL_REV12;
}

/* Revisions 12 and 13 do not say which half of the union is used. The root
 * cell of an x86 system has PIO regions (every x86 board needs the PCI
 * config ports at least); arm systems have none. */
static JhPlatform infer_platform(const Reader *rd, size_t root) {
	Counts n;

	read_counts(rd, root, &n);
	return n.pio > 0 ? JH_PLATFORM_X86 : JH_PLATFORM_ARM;
}

int jh_system_config_decode(const void *data, size_t size, JhArch arch, JhSystemConfig **ret, char *err,
                            size_t err_size) {
	const Reader rd = { .d = data, .size = size, .err = err, .err_size = err_size };
	JhSystemConfig *s;
	JhConfigKind kind;
	unsigned rev;
	size_t root;
	int r;

	if ((r = jh_config_identify(data, size, &kind, &rev, err, err_size)) < 0)
		return r;
	if (kind != JH_CONFIG_SYSTEM)
		return bad(&rd, 0, "signature", "a cell config, not a system config");
	root = root_cell_offset(rev);
	if (size < root + DESC_SIZE)
		return fail(err, err_size, -EINVAL,
		            "truncated: %zu bytes, a revision %u system config needs %zu before its root cell's body",
		            size, rev, root + DESC_SIZE);
	if (!(s = jh_system_config_new(rev, JH_ARCH_UNSPEC)))
		return fail(err, err_size, -ENOMEM, "out of memory");
	if ((r = decode_arch(&rd, rev, arch, &s->arch)) < 0)
		goto fail;
	s->flags = rd32(&rd, 8);
	decode_memory(&rd, 12, &s->hypervisor_memory);
	decode_console(&rd, 44, &s->debug_console);
	s->pci_mmconfig_base = rd64(&rd, 76);
	s->pci_mmconfig_end_bus = rd8(&rd, 84);
	s->pci_is_virtual = rd8(&rd, 85);
	s->pci_domain = rd16(&rd, 86);

	s->platform = jh_arch_platform(s->arch);
	if (s->platform != JH_PLATFORM_UNSPEC) {
		r = decode_platform(&rd, rev, s->platform, s);
	} else {
		JhPlatform guess = infer_platform(&rd, root);

		r = decode_platform(&rd, rev, guess, s);
		if (r < 0) {
			char first[256];

			snprintf(first, sizeof first, "%s", err ? err : "");
			guess = guess == JH_PLATFORM_X86 ? JH_PLATFORM_ARM : JH_PLATFORM_X86;
			if ((r = decode_platform(&rd, rev, guess, s)) < 0)
				fail(err, err_size, r, "%s (the architecture is unknown; give it)", first);
		}
		s->platform = guess;
	}
	if (r < 0)
		goto fail;
	/* Jailhouse leaves the root cell's own header zero. */
	if ((r = check_zero(&rd, root, HEADER_SIZE, "root_cell header")) < 0 ||
	    (r = decode_cell(&rd, root, "root_cell.", &s->root_cell)) < 0)
		goto fail;
	s->root_cell.revision = rev;
	s->root_cell.arch = s->arch;
	*ret = s;
	return 0;
fail:
	jh_system_config_free(s);
	return r;
}

int jh_system_config_encode(const JhSystemConfig *s, uint8_t **ret_data, size_t *ret_size, char *err,
                            size_t err_size) {
	size_t root = root_cell_offset(s->revision), n;
	uint8_t *b;
	int r;

	if ((r = encode_check_header(s->revision, s->arch, err, err_size)) < 0 ||
	    (r = encode_check_cell(&s->root_cell, "root_cell.", err, err_size)) < 0)
		return r;
	if (s->platform != JH_PLATFORM_X86 && s->platform != JH_PLATFORM_ARM)
		return fail(err, err_size, -EINVAL, "platform_info: neither x86 nor arm");
	if (s->arch != JH_ARCH_UNSPEC && jh_arch_platform(s->arch) != s->platform)
		return fail(err, err_size, -EINVAL, "platform_info: %s data in a system config for %s",
		            s->platform == JH_PLATFORM_X86 ? "x86" : "arm", jh_arch_to_string(s->arch));
	n = root + cell_size(&s->root_cell);
	if (!(b = calloc(1, n)))
		return fail(err, err_size, -ENOMEM, "out of memory");
	encode_header(b, JH_CONFIG_SYSTEM, s->revision, s->arch);
	wr32(b, 8, s->flags);
	encode_memory(b, 12, &s->hypervisor_memory);
	encode_console(b, 44, &s->debug_console);
	wr64(b, 76, s->pci_mmconfig_base);
	wr8(b, 84, s->pci_mmconfig_end_bus);
	wr8(b, 85, s->pci_is_virtual);
	wr16(b, 86, s->pci_domain);
	encode_platform(b, s);
	encode_cell(b, root, &s->root_cell);
	*ret_data = b;
	*ret_size = n;
	return 0;
}
