/* SPDX-License-Identifier: MIT */
/*
 * hypervisor/jailhouse/cell-config.c and cell-config-json.c: offsets on
 * disk (FACTS.md), round trips at every revision, and the errors for bad
 * files and bad JSON. Jailhouse's own configs are checked byte for byte by
 * tests/jailhouse/test_configs.py.
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

#include "cell-config-json.h"
#include "cell-config.h"

static char err[512];

static uint16_t get16(const uint8_t *b, size_t off) {
	return (uint16_t)(b[off] | b[off + 1] << 8);
}
static uint32_t get32(const uint8_t *b, size_t off) {
	return get16(b, off) | (uint32_t)get16(b, off + 2) << 16;
}
static uint64_t get64(const uint8_t *b, size_t off) {
	return get32(b, off) | (uint64_t)get32(b, off + 4) << 32;
}
static void put32(uint8_t *b, size_t off, uint32_t v) {
	for (int i = 0; i < 4; i++)
		b[off + i] = (uint8_t)(v >> 8 * i);
}

#define assert_err_contains(s) \
	do { \
		if (!strstr(err, (s))) \
			fail_msg("error \"%s\" lacks \"%s\"", err, (s)); \
	} while (0)

/* One of everything, so that every section has an offset to check. */
static void fill_cell(JhCellConfig *c, const char *name) {
	snprintf(c->name, sizeof c->name, "%s", name);
	c->flags = JH_CELL_PASSIVE_COMMREG | JH_CELL_VIRTUAL_CONSOLE_PERMITTED;
	c->vpci_irq_base = 153;
	c->cpu_reset_address = 0x80000000;
	c->msg_reply_timeout = 77;
	c->console = (JhConsole){ .address = 0xfe215040, .size = 0x40, .type = JH_CON_TYPE_8250,
		                  .flags = JH_CON_ACCESS_MMIO | JH_CON_REGDIST_4 };
	c->cpu_set_size = 8;
	c->cpu_set = calloc(1, 8);
	c->cpu_set[0] = 0x0c; /* CPUs 2 and 3 */
	c->n_memory = 2;
	c->memory = calloc(2, sizeof *c->memory);
	c->memory[0] = (JhMemory){ 0x20000000, 0, 0x10000000, JH_MEM_READ | JH_MEM_WRITE | JH_MEM_LOADABLE };
	c->memory[1] = (JhMemory){ 0xfe215040, 0xfe215040, 0x40, JH_MEM_READ | JH_MEM_IO | JH_MEM_IO_32 };
	c->n_cache = 1;
	c->cache = calloc(1, sizeof *c->cache);
	c->cache[0] = (JhCache){ .start = 0, .size = 2, .type = JH_CACHE_L3, .flags = JH_CACHE_ROOTSHARED };
	c->n_irqchips = 1;
	c->irqchips = calloc(1, sizeof *c->irqchips);
	c->irqchips[0] = (JhIrqchip){ .address = 0xff841000, .id = 0, .pin_base = 32,
		                      .pin_bitmap = { 0x1, 0, 0, 1u << 25 | 1u << 26 | 1u << 27 } };
	c->n_pio = 1;
	c->pio = calloc(1, sizeof *c->pio);
	c->pio[0] = (JhPio){ 0x3f8, 8 };
	c->n_pci_devices = 1;
	c->pci_devices = calloc(1, sizeof *c->pci_devices);
	c->pci_devices[0] = (JhPciDevice){ .type = JH_PCI_TYPE_IVSHMEM, .bdf = 1 << 3, .bar_mask = { 0xfffff000 },
		                           .num_msix_vectors = 1, .msi_maskable = true, .shmem_regions_start = 0,
		                           .shmem_dev_id = 1, .shmem_peers = 2,
		                           .shmem_protocol = JH_SHMEM_PROTO_VETH };
	c->n_pci_caps = 1;
	c->pci_caps = calloc(1, sizeof *c->pci_caps);
	c->pci_caps[0] = (JhPciCap){ .id = 0x10 | JH_PCI_EXTENDED_CAP, .start = 0x100, .len = 4,
		                     .flags = JH_PCICAPS_WRITE };
	c->n_stream_ids = 1;
	c->stream_ids = calloc(1, sizeof *c->stream_ids);
	c->stream_ids[0] = 0x4242;
}

#define CELL_BYTES (132 + 8 + 2 * 32 + 12 + 32 + 4 + 56 + 8 + 4)

static void encode_cell(unsigned rev, JhArch arch, uint8_t **ret, size_t *ret_size) {
	JhCellConfig *c = jh_cell_config_new(rev, arch);

	fill_cell(c, "linux");
	assert_int_equal(jh_cell_config_encode(c, ret, ret_size, err, sizeof err), 0);
	jh_cell_config_free(c);
}

static void test_cell_layout_rev14(void **state) {
	uint8_t *b;
	size_t n, body = 132;

	(void)state;
	encode_cell(14, JH_ARCH_ARM64, &b, &n);
	assert_int_equal(n, CELL_BYTES);
	assert_memory_equal(b, "JHCLL", 5);
	assert_int_equal(b[5], 2);
	assert_int_equal(get16(b, 6), 14);
	assert_string_equal((char *)b + 8, "linux");
	assert_int_equal(get32(b, 44), JH_CELL_PASSIVE_COMMREG | JH_CELL_VIRTUAL_CONSOLE_PERMITTED);
	assert_int_equal(get32(b, 48), 8);
	assert_int_equal(get32(b, 52), 2);
	assert_int_equal(get32(b, 76), 1);
	assert_int_equal(get32(b, 80), 153);
	assert_int_equal(get64(b, 84), 0x80000000);
	assert_int_equal(get64(b, 92), 77);
	assert_int_equal(get64(b, 100), 0xfe215040); /* console address */
	assert_int_equal(get16(b, 112), JH_CON_TYPE_8250);
	assert_int_equal(b[body], 0x0c);
	body += 8;
	assert_int_equal(get64(b, body + 16), 0x10000000); /* memory[0].size */
	assert_int_equal(get64(b, body + 32 + 24), JH_MEM_READ | JH_MEM_IO | JH_MEM_IO_32);
	body += 64;
	assert_int_equal(b[body + 8], JH_CACHE_L3);
	assert_int_equal(get16(b, body + 10), JH_CACHE_ROOTSHARED);
	body += 12;
	assert_int_equal(get32(b, body + 12), 32); /* pin_base */
	assert_int_equal(get32(b, body + 28), 7u << 25);
	body += 32 + 4;
	assert_int_equal(b[body], JH_PCI_TYPE_IVSHMEM);
	assert_int_equal(get16(b, body + 4), 8);
	assert_int_equal(get32(b, body + 6), 0xfffff000);
	assert_int_equal(b[body + 35], 2); /* msi_maskable is bit 1 */
	assert_int_equal(b[body + 53], 2);
	assert_int_equal(get16(b, body + 54), JH_SHMEM_PROTO_VETH);
	body += 56;
	assert_int_equal(get16(b, body), 0x8010);
	assert_int_equal(get32(b, body + 8), 0x4242);
	free(b);
}

static void test_cell_roundtrip_all_revisions(void **state) {
	(void)state;
	for (unsigned rev = 12; rev <= 14; rev++) {
		JhCellConfig *c = NULL;
		uint8_t *b, *b2;
		size_t n, n2;

		encode_cell(rev, rev == 14 ? JH_ARCH_X86 : JH_ARCH_UNSPEC, &b, &n);
		assert_int_equal(n, CELL_BYTES);
		assert_memory_equal(b, rev == 14 ? "JHCLL\0" : "JHCELL", 6);
		assert_int_equal(get16(b, 6), rev);
		assert_int_equal(jh_cell_config_decode(b, n, JH_ARCH_UNSPEC, &c, err, sizeof err), 0);
		assert_int_equal(c->revision, rev);
		assert_int_equal(c->arch, rev == 14 ? JH_ARCH_X86 : JH_ARCH_UNSPEC);
		assert_true(jh_cell_config_has_cpu(c, 2) && jh_cell_config_has_cpu(c, 3));
		assert_false(jh_cell_config_has_cpu(c, 1) || jh_cell_config_has_cpu(c, 64));
		assert_int_equal(jh_cell_config_encode(c, &b2, &n2, err, sizeof err), 0);
		assert_int_equal(n2, n);
		assert_memory_equal(b2, b, n);
		jh_cell_config_free(c);
		free(b);
		free(b2);
	}
}

static int decode_cell(const uint8_t *b, size_t n, JhArch arch) {
	JhCellConfig *c = NULL;
	int r;

	err[0] = 0;
	r = jh_cell_config_decode(b, n, arch, &c, err, sizeof err);
	if (r < 0)
		assert_null(c);
	jh_cell_config_free(c);
	return r;
}

static void test_cell_truncated(void **state) {
	uint8_t *b;
	size_t n;

	(void)state;
	encode_cell(14, JH_ARCH_ARM64, &b, &n);
	assert_int_equal(decode_cell(b, 4, JH_ARCH_UNSPEC), -EINVAL);
	assert_err_contains("truncated: 4 bytes");
	assert_int_equal(decode_cell(b, 100, JH_ARCH_UNSPEC), -EINVAL);
	assert_err_contains("(cell desc): truncated");
	assert_int_equal(decode_cell(b, n - 1, JH_ARCH_UNSPEC), -EINVAL);
	assert_err_contains("(stream ids): truncated");
	/* The section the file ends in is named, at its offset. */
	assert_int_equal(decode_cell(b, 132 + 8 + 40, JH_ARCH_UNSPEC), -EINVAL);
	assert_err_contains("offset 0x8c (memory regions): truncated");
	free(b);
}

static void test_cell_counts_do_not_add_up(void **state) {
	uint8_t *b, *longer;
	size_t n;

	(void)state;
	encode_cell(14, JH_ARCH_ARM64, &b, &n);
	longer = calloc(1, n + 3);
	memcpy(longer, b, n);
	assert_int_equal(decode_cell(longer, n + 3, JH_ARCH_UNSPEC), -EINVAL);
	assert_err_contains("3 trailing bytes");
	/* A count far beyond the file must not be believed (or allocated). */
	put32(b, 52, 0xffffffff);
	assert_int_equal(decode_cell(b, n, JH_ARCH_UNSPEC), -EINVAL);
	assert_err_contains("(memory regions): truncated");
	put32(b, 52, 1); /* one region fewer: 32 bytes trail */
	assert_int_equal(decode_cell(b, n, JH_ARCH_UNSPEC), -EINVAL);
	assert_err_contains("32 trailing bytes");
	free(longer);
	free(b);
}

static void test_cell_bad_header(void **state) {
	uint8_t *b;
	size_t n;

	(void)state;
	encode_cell(14, JH_ARCH_ARM64, &b, &n);
	b[0] = 'X';
	assert_int_equal(decode_cell(b, n, JH_ARCH_UNSPEC), -EINVAL);
	assert_err_contains("offset 0x0 (signature): \"XHCLL\\x02\" is neither");
	b[0] = 'J';

	b[6] = 15;
	assert_int_equal(decode_cell(b, n, JH_ARCH_UNSPEC), -EINVAL);
	assert_err_contains("offset 0x6 (revision): 15, expected 12, 13 or 14");
	b[6] = 13; /* a rev-14 signature with revision 13 */
	assert_int_equal(decode_cell(b, n, JH_ARCH_UNSPEC), -EINVAL);
	assert_err_contains("is not the signature of revision 13 (\"JHCELL\")");
	b[6] = 14;

	b[5] = 7;
	assert_int_equal(decode_cell(b, n, JH_ARCH_UNSPEC), -EINVAL);
	assert_err_contains("offset 0x5 (architecture): 7");
	b[5] = 2;
	assert_int_equal(decode_cell(b, n, JH_ARCH_X86), -EINVAL);
	assert_err_contains("offset 0x5 (architecture): the file is for arm64, expected x86");
	assert_int_equal(decode_cell(b, n, JH_ARCH_ARM64), 0);
	free(b);
}

static void test_cell_unrepresentable_bytes(void **state) {
	uint8_t *b;
	size_t n;

	(void)state;
	encode_cell(14, JH_ARCH_ARM64, &b, &n);
	b[8 + 30] = 'x'; /* after the name's NUL */
	assert_int_equal(decode_cell(b, n, JH_ARCH_UNSPEC), -EINVAL);
	assert_err_contains("offset 0x26 (name)");
	memset(b + 8, 'a', 32); /* no NUL at all */
	assert_int_equal(decode_cell(b, n, JH_ARCH_UNSPEC), -EINVAL);
	assert_err_contains("not NUL-terminated");
	free(b);

	encode_cell(14, JH_ARCH_ARM64, &b, &n);
	b[132 + 8 + 64 + 9] = 1; /* cache padding */
	assert_int_equal(decode_cell(b, n, JH_ARCH_UNSPEC), -EINVAL);
	assert_err_contains("(cache[0] padding)");
	b[132 + 8 + 64 + 9] = 0;
	b[132 + 8 + 64 + 12 + 32 + 4 + 35] = 0x84; /* unknown MSI bits */
	assert_int_equal(decode_cell(b, n, JH_ARCH_UNSPEC), -EINVAL);
	assert_err_contains("(pci_devices[0] msi bits): 0x84");
	free(b);
}

static void test_cell_encode_errors(void **state) {
	JhCellConfig *c = jh_cell_config_new(14, JH_ARCH_UNSPEC);
	uint8_t *b = NULL;
	size_t n;

	(void)state;
	snprintf(c->name, sizeof c->name, "x");
	assert_int_equal(jh_cell_config_encode(c, &b, &n, err, sizeof err), -EINVAL);
	assert_err_contains("architecture: revision 14 records it");
	c->revision = 11;
	assert_int_equal(jh_cell_config_encode(c, &b, &n, err, sizeof err), -EINVAL);
	assert_err_contains("revision: 11");
	c->revision = 13; /* older revisions need no architecture */
	assert_int_equal(jh_cell_config_encode(c, &b, &n, err, sizeof err), 0);
	assert_int_equal(n, 132);
	free(b);
	memset(c->name, 'n', sizeof c->name);
	assert_int_equal(jh_cell_config_encode(c, &b, &n, err, sizeof err), -EINVAL);
	assert_err_contains("name: longer than 31");
	jh_cell_config_free(c);
}

static JhSystemConfig *make_system(unsigned rev, JhArch arch, JhPlatform p) {
	JhSystemConfig *s = jh_system_config_new(rev, arch);

	s->platform = p;
	s->flags = JH_SYS_VIRTUAL_DEBUG_CONSOLE;
	s->hypervisor_memory = (JhMemory){ .phys_start = 0x3fc00000, .size = 0x400000 };
	s->debug_console = (JhConsole){ .address = 0xfe215040, .size = 0x40, .type = JH_CON_TYPE_8250 };
	s->pci_mmconfig_base = 0xe0000000;
	s->pci_mmconfig_end_bus = 0xff;
	s->pci_is_virtual = 1;
	s->iommu_units[1] = (JhIommu){ .type = JH_IOMMU_AMD, .base = 0xfeb80000, .size = 0x80000, .amd_bdf = 0x02,
		                       .amd_base_cap = 0x40, .amd_features = 0x80048824 };
	s->iommu_units[2] = (JhIommu){ .type = JH_IOMMU_PVU, .base = 0x30f80000, .size = 0x1000,
		                       .tipvu_tlb_base = 0x36000000, .tipvu_tlb_size = 0x40000 };
	s->x86 = (JhPlatformX86){ .pm_timer_address = 0x408, .apic_mode = JH_APIC_MODE_X2APIC,
		                  .vtd_interrupt_limit = 256, .tsc_khz = 2000000, .apic_khz = 100000 };
	s->arm = (JhPlatformArm){ .maintenance_irq = 25, .gic_version = 2, .gicd_base = 0xff841000,
		                  .gicc_base = 0xff842000, .gich_base = 0xff844000, .gicv_base = 0xff846000,
		                  .gicr_base = 0 };
	if (p == JH_PLATFORM_X86)
		s->arm = (JhPlatformArm){ 0 };
	else
		s->x86 = (JhPlatformX86){ 0 };
	fill_cell(&s->root_cell, "root");
	if (p == JH_PLATFORM_ARM) { /* arm roots have no PIO regions */
		s->root_cell.n_pio = 0;
	}
	return s;
}

static void system_roundtrip(JhSystemConfig *s, uint8_t **ret, size_t *ret_size) {
	JhSystemConfig *d = NULL;
	uint8_t *b, *b2;
	size_t n, n2;

	assert_int_equal(jh_system_config_encode(s, &b, &n, err, sizeof err), 0);
	assert_int_equal(jh_system_config_decode(b, n, JH_ARCH_UNSPEC, &d, err, sizeof err), 0);
	assert_int_equal(d->platform, s->platform);
	assert_int_equal(d->root_cell.n_memory, 2);
	assert_int_equal(jh_system_config_encode(d, &b2, &n2, err, sizeof err), 0);
	assert_int_equal(n2, n);
	assert_memory_equal(b2, b, n);
	jh_system_config_free(d);
	free(b2);
	*ret = b;
	*ret_size = n;
}

static void test_system_layouts(void **state) {
	JhSystemConfig *s;
	uint8_t *b;
	size_t n;

	(void)state;
	/* rev 14 arm64: platform union at 312, root cell at 356 */
	s = make_system(14, JH_ARCH_ARM64, JH_PLATFORM_ARM);
	system_roundtrip(s, &b, &n);
	assert_memory_equal(b, "JHSYS\2", 6);
	assert_int_equal(get32(b, 8), 1);
	assert_int_equal(get64(b, 12), 0x3fc00000);
	assert_int_equal(get64(b, 44), 0xfe215040);
	assert_int_equal(get64(b, 76), 0xe0000000);
	assert_int_equal(b[84], 0xff);
	assert_int_equal(get32(b, 88 + 28), JH_IOMMU_AMD);
	assert_int_equal(get16(b, 88 + 28 + 16), 0x02);
	assert_int_equal(get64(b, 88 + 56 + 16), 0x36000000);
	assert_int_equal(b[312], 25);
	assert_int_equal(b[313], 2);
	assert_int_equal(get64(b, 316), 0xff841000);
	assert_int_equal(get64(b, 340), 0xff846000);
	assert_memory_equal(b + 356, "\0\0\0\0\0\0\0\0root", 12); /* the root's header stays zero */
	assert_int_equal(n, 356 + CELL_BYTES - 4);
	free(b);
	jh_system_config_free(s);

	/* rev 13 x86 */
	s = make_system(13, JH_ARCH_UNSPEC, JH_PLATFORM_X86);
	system_roundtrip(s, &b, &n);
	assert_memory_equal(b, "JHSYST", 6);
	assert_int_equal(get16(b, 312), 0x408);
	assert_int_equal(b[314], JH_APIC_MODE_X2APIC);
	assert_int_equal(get32(b, 316), 256);
	assert_int_equal(get32(b, 320), 2000000);
	assert_int_equal(get32(b, 324), 100000);
	assert_int_equal(n, 356 + CELL_BYTES);
	free(b);
	jh_system_config_free(s);

	/* rev 12 x86: the IOMMU units moved into the union, root cell at 354 */
	s = make_system(12, JH_ARCH_UNSPEC, JH_PLATFORM_X86);
	system_roundtrip(s, &b, &n);
	assert_int_equal(get16(b, 88), 0x408);
	assert_int_equal(get32(b, 90), 256);
	assert_int_equal(b[94], JH_APIC_MODE_X2APIC);
	assert_int_equal(get32(b, 98), 2000000);
	assert_int_equal(get32(b, 102), 100000);
	assert_int_equal(get32(b, 106 + 28), JH_IOMMU_AMD);
	assert_string_equal((char *)b + 354 + 8, "root");
	assert_int_equal(n, 354 + CELL_BYTES);
	free(b);
	jh_system_config_free(s);

	/* rev 12 arm */
	s = make_system(12, JH_ARCH_UNSPEC, JH_PLATFORM_ARM);
	system_roundtrip(s, &b, &n);
	assert_int_equal(b[88], 25);
	assert_int_equal(get64(b, 90), 0xff841000);
	assert_int_equal(get64(b, 114), 0xff846000);
	assert_int_equal(get32(b, 130 + 28), JH_IOMMU_AMD);
	free(b);
	jh_system_config_free(s);
}

static void test_system_bad_input(void **state) {
	JhSystemConfig *s = make_system(14, JH_ARCH_ARM64, JH_PLATFORM_ARM), *d = NULL;
	JhCellConfig *c = NULL;
	uint8_t *b;
	size_t n;

	(void)state;
	assert_int_equal(jh_system_config_encode(s, &b, &n, err, sizeof err), 0);
	assert_int_equal(jh_cell_config_decode(b, n, JH_ARCH_UNSPEC, &c, err, sizeof err), -EINVAL);
	assert_err_contains("a system config, not a cell config");
	assert_int_equal(jh_system_config_decode(b, 300, JH_ARCH_UNSPEC, &d, err, sizeof err), -EINVAL);
	assert_err_contains("truncated: 300 bytes");
	assert_int_equal(jh_system_config_decode(b, n - 2, JH_ARCH_UNSPEC, &d, err, sizeof err), -EINVAL);
	assert_err_contains("(root_cell.stream ids): truncated");
	b[356] = 'J';
	assert_int_equal(jh_system_config_decode(b, n, JH_ARCH_UNSPEC, &d, err, sizeof err), -EINVAL);
	assert_err_contains("offset 0x164 (root_cell header)");
	b[356] = 0;
	b[314] = 1; /* arm padding */
	assert_int_equal(jh_system_config_decode(b, n, JH_ARCH_UNSPEC, &d, err, sizeof err), -EINVAL);
	assert_err_contains("offset 0x13a (platform_info.arm padding)");
	free(b);

	/* x86 data in a system for arm64 */
	s->platform = JH_PLATFORM_X86;
	assert_int_equal(jh_system_config_encode(s, &b, &n, err, sizeof err), -EINVAL);
	assert_err_contains("x86 data in a system config for arm64");
	jh_system_config_free(s);

	/* A cell is no system. */
	encode_cell(14, JH_ARCH_ARM64, &b, &n);
	assert_int_equal(jh_system_config_decode(b, n, JH_ARCH_UNSPEC, &d, err, sizeof err), -EINVAL);
	assert_err_contains("a cell config, not a system config");
	free(b);
}

/* Rev 13 does not record the architecture: an arm system whose root cell
 * has PIO regions is first read as x86, and the bytes past the x86 half
 * send the decoder to the arm half. */
static void test_system_platform_inference(void **state) {
	JhSystemConfig *s = make_system(13, JH_ARCH_UNSPEC, JH_PLATFORM_ARM), *d = NULL;
	uint8_t *b;
	size_t n;

	(void)state;
	s->root_cell.n_pio = 1;
	assert_int_equal(jh_system_config_encode(s, &b, &n, err, sizeof err), 0);
	assert_int_equal(jh_system_config_decode(b, n, JH_ARCH_UNSPEC, &d, err, sizeof err), 0);
	assert_int_equal(d->platform, JH_PLATFORM_ARM);
	assert_int_equal(d->arm.gicv_base, 0xff846000);
	jh_system_config_free(d);
	free(b);
	jh_system_config_free(s);
}

/* to_json, from_json, encode: the same bytes. */
static void test_json_roundtrip(void **state) {
	JhSystemConfig *s = make_system(14, JH_ARCH_X86, JH_PLATFORM_X86), *s2 = NULL;
	JhCellConfig *c = jh_cell_config_new(12, JH_ARCH_ARM64), *c2 = NULL;
	json_t *j = NULL;
	uint8_t *b, *b2;
	size_t n, n2;
	char *text;

	(void)state;
	fill_cell(c, "gic-demo");
	c->cpu_set_size = 16; /* bigger than the CPUs need: kept explicitly */
	c->cpu_set = realloc(c->cpu_set, 16);
	memset(c->cpu_set + 8, 0, 8);
	c->memory[1].flags |= 1ull << 40; /* a bit without a name */
	c->console.type = 0x77;            /* a type without a name */
	/* beyond a signed JSON integer (a fuzzer found it coming back
	 * negative): written as a hex string */
	c->msg_reply_timeout = (1ull << 63) + 5;
	assert_int_equal(jh_cell_config_encode(c, &b, &n, err, sizeof err), 0);
	assert_int_equal(jh_cell_config_to_json(c, &j, err, sizeof err), 0);
	text = json_dumps(j, JSON_COMPACT);
	assert_non_null(strstr(text, "\"cpus\":[2,3],\"cpu_set_size\":16"));
	assert_non_null(strstr(text, "\"pins\":[32,\"153-155\"]"));
	assert_non_null(strstr(text, "\"0x10000000000\""));
	assert_non_null(strstr(text, "\"shmem_protocol\":\"veth\""));
	assert_non_null(strstr(text, "\"bdf\":\"00:01.0\""));
	assert_non_null(strstr(text, "\"msg_reply_timeout\":\"0x8000000000000005\""));
	free(text);
	assert_int_equal(jh_cell_config_from_json(j, &c2, err, sizeof err), 0);
	assert_int_equal(c2->revision, 12);
	assert_string_equal(c2->name, "gic-demo");
	assert_int_equal(c2->arch, JH_ARCH_ARM64);
	assert_int_equal(jh_cell_config_encode(c2, &b2, &n2, err, sizeof err), 0);
	assert_int_equal(n2, n);
	assert_memory_equal(b2, b, n);
	json_decref(j);
	free(b);
	free(b2);

	assert_int_equal(jh_system_config_encode(s, &b, &n, err, sizeof err), 0);
	assert_int_equal(jh_system_config_to_json(s, &j, err, sizeof err), 0);
	assert_int_equal(jh_system_config_from_json(j, &s2, err, sizeof err), 0);
	assert_int_equal(jh_system_config_encode(s2, &b2, &n2, err, sizeof err), 0);
	assert_int_equal(n2, n);
	assert_memory_equal(b2, b, n);
	json_decref(j);
	free(b);
	free(b2);
	jh_cell_config_free(c);
	jh_cell_config_free(c2);
	jh_system_config_free(s);
	jh_system_config_free(s2);
}

/* Jailhouse takes any bytes for a name; its JSON form has them in hex. */
static void test_json_name_not_utf8(void **state) {
	JhCellConfig *c = jh_cell_config_new(14, JH_ARCH_ARM64), *c2 = NULL;
	json_t *j = NULL;
	uint8_t *b, *b2;
	size_t n, n2;
	char *text;

	(void)state;
	fill_cell(c, "x");
	memcpy(c->name, "cell\xff\xfe", 7);
	assert_int_equal(jh_cell_config_encode(c, &b, &n, err, sizeof err), 0);
	assert_int_equal(jh_cell_config_to_json(c, &j, err, sizeof err), 0);
	text = json_dumps(j, JSON_COMPACT);
	assert_non_null(strstr(text, "\"name_hex\":\"63656c6cfffe\""));
	assert_null(strstr(text, "\"name\":"));
	free(text);
	assert_int_equal(jh_cell_config_from_json(j, &c2, err, sizeof err), 0);
	assert_int_equal(jh_cell_config_encode(c2, &b2, &n2, err, sizeof err), 0);
	assert_int_equal(n2, n);
	assert_memory_equal(b2, b, n);
	json_decref(j);
	free(b);
	free(b2);
	jh_cell_config_free(c);
	jh_cell_config_free(c2);
}

static int cell_from_text(const char *text) {
	json_t *j = json_loads(text, 0, NULL);
	JhCellConfig *c = NULL;
	int r;

	assert_non_null(j);
	err[0] = 0;
	r = jh_cell_config_from_json(j, &c, err, sizeof err);
	json_decref(j);
	if (r < 0)
		assert_null(c);
	jh_cell_config_free(c);
	return r;
}

static void test_json_errors(void **state) {
	(void)state;
	/* A minimal spec is enough: everything else defaults to zero. */
	assert_int_equal(cell_from_text("{\"jailhouse\":\"cell\",\"name\":\"a\"}"), 0);
	assert_int_equal(cell_from_text("{\"name\":\"a\"}"), -EINVAL);
	assert_err_contains("$: \"jailhouse\" is required");
	assert_int_equal(cell_from_text("{\"jailhouse\":\"system\",\"name\":\"a\"}"), -EINVAL);
	assert_err_contains("$.jailhouse: \"system\", expected \"cell\"");
	assert_int_equal(cell_from_text("{\"jailhouse\":\"cell\",\"name\":\"a\",\"revision\":15}"), -EINVAL);
	assert_err_contains("$.revision: 15");
	assert_int_equal(cell_from_text("{\"jailhouse\":\"cell\",\"name\":\"a\",\"architecture\":\"mips\"}"), -EINVAL);
	assert_err_contains("$.architecture");
	assert_int_equal(cell_from_text("{\"jailhouse\":\"cell\"}"), -EINVAL);
	assert_err_contains("\"name\" is required");
	assert_int_equal(cell_from_text("{\"jailhouse\":\"cell\",\"name\":\"0123456789012345678901234567890123\"}"),
	                 -EINVAL);
	assert_err_contains("$.name: \"0123456789012345678901234567890123\": at most 31 bytes");
	assert_int_equal(cell_from_text("{\"jailhouse\":\"cell\",\"name\":\"a\",\"colour\":1}"), -EINVAL);
	assert_err_contains("$: unknown key \"colour\"");
	assert_int_equal(cell_from_text("{\"jailhouse\":\"cell\",\"name\":\"a\",\"memory\":[{},{\"flags\":[\"read\","
	                                "\"sticky\"]}]}"),
	                 -EINVAL);
	assert_err_contains("$.memory[1].flags[1]: unknown flag \"sticky\" (known: read, write");
	assert_int_equal(cell_from_text("{\"jailhouse\":\"cell\",\"name\":\"a\",\"memory\":[{\"size\":\"0x1g\"}]}"),
	                 -EINVAL);
	assert_err_contains("$.memory[0].size: \"0x1g\" is not a number");
	assert_int_equal(cell_from_text("{\"jailhouse\":\"cell\",\"name\":\"a\",\"memory\":[{\"size\":-1}]}"), -EINVAL);
	assert_err_contains("$.memory[0].size: -1 is negative");
	assert_int_equal(cell_from_text("{\"jailhouse\":\"cell\",\"name\":\"a\",\"pio\":[{\"base\":65536}]}"), -EINVAL);
	assert_err_contains("$.pio[0].base: 0x10000 is larger than 0xffff");
	assert_int_equal(cell_from_text("{\"jailhouse\":\"cell\",\"name\":\"a\",\"irqchips\":[{\"pin_base\":32,"
	                                "\"pins\":[32,\"150-170\"]}]}"),
	                 -EINVAL);
	assert_err_contains("$.irqchips[0].pins[1]: interrupt 160 is outside pin_base 32 .. 159");
	assert_int_equal(cell_from_text("{\"jailhouse\":\"cell\",\"name\":\"a\",\"cpus\":[1,70],\"cpu_set_size\":8}"),
	                 -EINVAL);
	assert_err_contains("$.cpu_set_size: 8 bytes cannot hold CPU 70");
	assert_int_equal(cell_from_text("{\"jailhouse\":\"cell\",\"name\":\"a\",\"cpus\":[\"3-1\"]}"), -EINVAL);
	assert_err_contains("$.cpus[0]: \"3-1\" is not a range");
	assert_int_equal(cell_from_text("{\"jailhouse\":\"cell\",\"name\":\"a\",\"pci_devices\":[{\"bdf\":\"00:20.0\"}]}"),
	                 -EINVAL);
	assert_err_contains("$.pci_devices[0].bdf: \"00:20.0\" is not BUS:DEVICE.FUNCTION");
	assert_int_equal(cell_from_text("{\"jailhouse\":\"cell\",\"name\":\"a\",\"console\":{\"type\":\"vga\"}}"),
	                 -EINVAL);
	assert_err_contains("$.console.type: unknown value \"vga\"");
}

static void test_json_system_errors(void **state) {
	json_t *j = json_loads("{\"jailhouse\":\"system\",\"platform_info\":{\"x86\":{},\"arm\":{}},"
	                       "\"root_cell\":{\"name\":\"r\"}}",
	                       0, NULL);
	JhSystemConfig *s = NULL;

	(void)state;
	assert_int_equal(jh_system_config_from_json(j, &s, err, sizeof err), -EINVAL);
	assert_err_contains("$.platform_info: \"x86\" and \"arm\" exclude each other");
	json_decref(j);
	j = json_loads("{\"jailhouse\":\"system\"}", 0, NULL);
	assert_int_equal(jh_system_config_from_json(j, &s, err, sizeof err), -EINVAL);
	assert_err_contains("\"root_cell\" is required");
	json_decref(j);
	j = json_loads("{\"jailhouse\":\"system\",\"platform_info\":{\"iommu_units\":[{\"type\":\"pvu\",\"amd_bdf\":1}]},"
	               "\"root_cell\":{\"name\":\"r\"}}",
	               0, NULL);
	assert_int_equal(jh_system_config_from_json(j, &s, err, sizeof err), -EINVAL);
	assert_err_contains("$.platform_info.iommu_units[0]: a PVU unit has no amd_* fields");
	json_decref(j);
	assert_null(s);
}

static void test_name_tables(void **state) {
	(void)state;
	for (int a = 0; a < _JH_ARCH_MAX; a++) {
		assert_non_null(jh_arch_to_string(a));
		assert_int_equal(jh_arch_from_string(jh_arch_to_string(a)), a);
	}
	assert_null(jh_arch_to_string(JH_ARCH_UNSPEC));
	assert_int_equal(jh_arch_from_string("sparc"), JH_ARCH_UNSPEC);
	for (int k = 0; k < _JH_CONFIG_KIND_MAX; k++)
		assert_non_null(jh_config_kind_to_string(k));
	assert_int_equal(jh_arch_platform(JH_ARCH_ARM), JH_PLATFORM_ARM);
	assert_int_equal(jh_arch_platform(JH_ARCH_X86), JH_PLATFORM_X86);
	assert_null(jh_cell_config_free(NULL));
	assert_null(jh_system_config_free(NULL));
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cell_layout_rev14),
		cmocka_unit_test(test_cell_roundtrip_all_revisions),
		cmocka_unit_test(test_cell_truncated),
		cmocka_unit_test(test_cell_counts_do_not_add_up),
		cmocka_unit_test(test_cell_bad_header),
		cmocka_unit_test(test_cell_unrepresentable_bytes),
		cmocka_unit_test(test_cell_encode_errors),
		cmocka_unit_test(test_system_layouts),
		cmocka_unit_test(test_system_bad_input),
		cmocka_unit_test(test_system_platform_inference),
		cmocka_unit_test(test_json_roundtrip),
		cmocka_unit_test(test_json_name_not_utf8),
		cmocka_unit_test(test_json_errors),
		cmocka_unit_test(test_json_system_errors),
		cmocka_unit_test(test_name_tables),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
