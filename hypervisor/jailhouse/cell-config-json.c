/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cell-config-json.h"

#define PATH_MAX_LEN 160

typedef struct NamedBit {
	const char *name;
	uint64_t bit;
} NamedBit;

static const NamedBit cell_flag_names[] = {
	{ "passive_commreg", JH_CELL_PASSIVE_COMMREG },
	{ "test_device", JH_CELL_TEST_DEVICE },
	{ "aarch32", JH_CELL_AARCH32 },
	{ "virtual_console_permitted", JH_CELL_VIRTUAL_CONSOLE_PERMITTED },
	{ "virtual_console_active", JH_CELL_VIRTUAL_CONSOLE_ACTIVE },
	{ NULL, 0 },
};

static const NamedBit system_flag_names[] = {
	{ "virtual_debug_console", JH_SYS_VIRTUAL_DEBUG_CONSOLE },
	{ NULL, 0 },
};

static const NamedBit mem_flag_names[] = {
	{ "read", JH_MEM_READ },
	{ "write", JH_MEM_WRITE },
	{ "execute", JH_MEM_EXECUTE },
	{ "dma", JH_MEM_DMA },
	{ "io", JH_MEM_IO },
	{ "comm_region", JH_MEM_COMM_REGION },
	{ "loadable", JH_MEM_LOADABLE },
	{ "rootshared", JH_MEM_ROOTSHARED },
	{ "no_hugepages", JH_MEM_NO_HUGEPAGES },
	{ "io_unaligned", JH_MEM_IO_UNALIGNED },
	{ "io_8", JH_MEM_IO_8 },
	{ "io_16", JH_MEM_IO_16 },
	{ "io_32", JH_MEM_IO_32 },
	{ "io_64", JH_MEM_IO_64 },
	{ NULL, 0 },
};

static const NamedBit console_flag_names[] = {
	{ "access_mmio", JH_CON_ACCESS_MMIO },
	{ "regdist_4", JH_CON_REGDIST_4 },
	{ "fb_1920x1080", JH_CON_FB_1920x1080 },
	{ "inverted_gate", JH_CON_INVERTED_GATE },
	{ "mdr_quirk", JH_CON_MDR_QUIRK },
	{ NULL, 0 },
};

static const NamedBit cache_flag_names[] = {
	{ "rootshared", JH_CACHE_ROOTSHARED },
	{ NULL, 0 },
};

static const NamedBit pci_cap_flag_names[] = {
	{ "write", JH_PCICAPS_WRITE },
	{ NULL, 0 },
};

/* Enums: the same tables, value instead of bit. */
static const NamedBit console_types[] = {
	{ "none", JH_CON_TYPE_NONE },       { "efifb", JH_CON_TYPE_EFIFB },
	{ "8250", JH_CON_TYPE_8250 },       { "pl011", JH_CON_TYPE_PL011 },
	{ "xuartps", JH_CON_TYPE_XUARTPS }, { "mvebu", JH_CON_TYPE_MVEBU },
	{ "hscif", JH_CON_TYPE_HSCIF },     { "scifa", JH_CON_TYPE_SCIFA },
	{ "imx", JH_CON_TYPE_IMX },         { "imx_lpuart", JH_CON_TYPE_IMX_LPUART },
	{ "scif", JH_CON_TYPE_SCIF },       { NULL, 0 },
};

static const NamedBit cache_types[] = {
	{ "l3_code", JH_CACHE_L3_CODE },
	{ "l3_data", JH_CACHE_L3_DATA },
	{ "l3", JH_CACHE_L3 },
	{ NULL, 0 },
};

static const NamedBit pci_types[] = {
	{ "device", JH_PCI_TYPE_DEVICE },
	{ "bridge", JH_PCI_TYPE_BRIDGE },
	{ "ivshmem", JH_PCI_TYPE_IVSHMEM },
	{ NULL, 0 },
};

static const NamedBit iommu_types[] = {
	{ "amd", JH_IOMMU_AMD },       { "intel", JH_IOMMU_INTEL },           { "smmuv3", JH_IOMMU_SMMUV3 },
	{ "pvu", JH_IOMMU_PVU },       { "arm_mmu500", JH_IOMMU_ARM_MMU500 }, { NULL, 0 },
};

static const NamedBit apic_modes[] = {
	{ "auto", JH_APIC_MODE_AUTO },
	{ "xapic", JH_APIC_MODE_XAPIC },
	{ "x2apic", JH_APIC_MODE_X2APIC },
	{ NULL, 0 },
};

/* The low bits of the virtio protocols name the virtio device. */
static const NamedBit shmem_protocols[] = {
	{ "undefined", JH_SHMEM_PROTO_UNDEFINED },
	{ "veth", JH_SHMEM_PROTO_VETH },
	{ "virtio_front_net", JH_SHMEM_PROTO_VIRTIO_FRONT + 1 },
	{ "virtio_front_block", JH_SHMEM_PROTO_VIRTIO_FRONT + 2 },
	{ "virtio_front_console", JH_SHMEM_PROTO_VIRTIO_FRONT + 3 },
	{ "virtio_back_net", JH_SHMEM_PROTO_VIRTIO_BACK + 1 },
	{ "virtio_back_block", JH_SHMEM_PROTO_VIRTIO_BACK + 2 },
	{ "virtio_back_console", JH_SHMEM_PROTO_VIRTIO_BACK + 3 },
	{ NULL, 0 },
};

/* ---- writing ---- */

/* Builders collect the first failure (out of memory) instead of checking
 * every json_*_new: the document is dropped as a whole at the end. */
typedef struct Out {
	bool oom;
} Out;

static json_t *chk(Out *o, json_t *v) {
	if (!v)
		o->oom = true;
	return v;
}

static void set(Out *o, json_t *obj, const char *key, json_t *v) {
	if (!v || json_object_set_new(obj, key, v) < 0)
		o->oom = true;
}

static void append(Out *o, json_t *arr, json_t *v) {
	if (!v || json_array_append_new(arr, v) < 0)
		o->oom = true;
}

static json_t *hex(uint64_t v) {
	char buf[24];

	snprintf(buf, sizeof buf, "0x%" PRIx64, v);
	return json_string(buf);
}

/* A JSON integer, which jansson holds signed: from 2^63 on a "0x…" string,
 * which number() reads back the same. */
static json_t *integer(uint64_t v) {
	return v > (uint64_t)INT64_MAX ? hex(v) : json_integer((json_int_t)v);
}

static json_t *flags_json(Out *o, const NamedBit *names, uint64_t v) {
	json_t *a = chk(o, json_array());

	if (!a)
		return NULL;
	for (const NamedBit *n = names; n->name; n++)
		if (v & n->bit) {
			append(o, a, json_string(n->name));
			v &= ~n->bit;
		}
	/* Bits without a name stay, as one hex item. */
	if (v)
		append(o, a, hex(v));
	return a;
}

static json_t *enum_json(const NamedBit *names, uint64_t v) {
	for (const NamedBit *n = names; n->name; n++)
		if (n->bit == v)
			return json_string(n->name);
	return integer(v);
}

static json_t *memory_json(Out *o, const JhMemory *m) {
	json_t *j = chk(o, json_object());

	if (!j)
		return NULL;
	set(o, j, "phys_start", hex(m->phys_start));
	set(o, j, "virt_start", hex(m->virt_start));
	set(o, j, "size", hex(m->size));
	set(o, j, "flags", flags_json(o, mem_flag_names, m->flags));
	return j;
}

static json_t *console_json(Out *o, const JhConsole *c) {
	json_t *j = chk(o, json_object());

	if (!j)
		return NULL;
	set(o, j, "type", enum_json(console_types, c->type));
	set(o, j, "flags", flags_json(o, console_flag_names, c->flags));
	set(o, j, "address", hex(c->address));
	set(o, j, "size", hex(c->size));
	if (c->divider)
		set(o, j, "divider", hex(c->divider));
	if (c->gate_nr)
		set(o, j, "gate_nr", integer(c->gate_nr));
	if (c->clock_reg)
		set(o, j, "clock_reg", hex(c->clock_reg));
	return j;
}

static bool console_empty(const JhConsole *c) {
	static const JhConsole zero;
	return memcmp(c, &zero, sizeof zero) == 0;
}

/* Protocols without a name are ranges (custom, virtio): hex reads best. */
static json_t *protocol_json(uint16_t v) {
	for (const NamedBit *n = shmem_protocols; n->name; n++)
		if (n->bit == v)
			return json_string(n->name);
	return hex(v);
}

/* A list of numbers where runs of three or more become "A-B" strings. */
/* 64 bits: an irqchip's pin_base + 127 may pass 2^32 - 1, and the pins
 * must not wrap on their way to JSON (add_pin() reads them as 64 bits). */
static void append_range(Out *o, json_t *a, uint64_t first, uint64_t last) {
	char buf[48];

	if (last - first >= 2) {
		snprintf(buf, sizeof buf, "%" PRIu64 "-%" PRIu64, first, last);
		append(o, a, json_string(buf));
		return;
	}
	for (uint64_t i = first; i <= last; i++)
		append(o, a, integer(i));
}

static json_t *pins_json(Out *o, const JhIrqchip *ic) {
	json_t *a = chk(o, json_array());
	int first = -1;

	if (!a)
		return NULL;
	for (unsigned i = 0; i <= 128; i++) {
		bool on = i < 128 && (ic->pin_bitmap[i / 32] >> (i % 32) & 1);

		if (on && first < 0)
			first = (int)i;
		if (!on && first >= 0) {
			append_range(o, a, (uint64_t)ic->pin_base + (unsigned)first, (uint64_t)ic->pin_base + i - 1);
			first = -1;
		}
	}
	return a;
}

/* The smallest set the cpus need, in whole u64 words as configs declare
 * it; anything else is written out as cpu_set_size. */
static uint32_t default_cpu_set_size(int highest) {
	uint32_t words = highest < 0 ? 1 : (uint32_t)highest / 64 + 1;
	return words * 8;
}

static json_t *pci_device_json(Out *o, const JhPciDevice *p) {
	json_t *j = chk(o, json_object()), *bars = chk(o, json_array());
	char bdf[16];

	if (!j || !bars) {
		json_decref(j);
		json_decref(bars);
		return NULL;
	}
	set(o, j, "type", enum_json(pci_types, p->type));
	set(o, j, "iommu", integer(p->iommu));
	set(o, j, "domain", integer(p->domain));
	snprintf(bdf, sizeof bdf, "%02x:%02x.%x", p->bdf >> 8, (p->bdf >> 3) & 0x1f, p->bdf & 7);
	set(o, j, "bdf", json_string(bdf));
	for (unsigned i = 0; i < 6; i++)
		append(o, bars, hex(p->bar_mask[i]));
	set(o, j, "bar_mask", bars);
	set(o, j, "caps_start", integer(p->caps_start));
	set(o, j, "num_caps", integer(p->num_caps));
	if (p->num_msi_vectors || p->msi_64bits || p->msi_maskable) {
		set(o, j, "num_msi_vectors", integer(p->num_msi_vectors));
		set(o, j, "msi_64bits", json_boolean(p->msi_64bits));
		set(o, j, "msi_maskable", json_boolean(p->msi_maskable));
	}
	if (p->num_msix_vectors || p->msix_region_size || p->msix_address) {
		set(o, j, "num_msix_vectors", integer(p->num_msix_vectors));
		set(o, j, "msix_region_size", hex(p->msix_region_size));
		set(o, j, "msix_address", hex(p->msix_address));
	}
	if (p->type == JH_PCI_TYPE_IVSHMEM || p->shmem_regions_start || p->shmem_dev_id || p->shmem_peers ||
	    p->shmem_protocol) {
		set(o, j, "shmem_regions_start", integer(p->shmem_regions_start));
		set(o, j, "shmem_dev_id", integer(p->shmem_dev_id));
		set(o, j, "shmem_peers", integer(p->shmem_peers));
		set(o, j, "shmem_protocol", protocol_json(p->shmem_protocol));
	}
	return j;
}

/* The cell's fields; the header keys are the caller's. */
static void cell_json(Out *o, json_t *j, const JhCellConfig *c) {
	json_t *cpus = chk(o, json_array()), *a;
	int highest = -1;

	/* Jailhouse takes any bytes for a name; JSON strings are UTF-8. A
	 * name that is not is given as its bytes in hex, so that every .cell
	 * has a JSON form. */
	json_t *name = json_string(c->name);
	if (name)
		set(o, j, "name", name);
	else {
		char hexname[2 * JH_NAME_SIZE + 1] = "";
		for (size_t k = 0; c->name[k] && k < JH_NAME_SIZE - 1; k++)
			snprintf(hexname + 2 * k, 3, "%02x", (unsigned char)c->name[k]);
		set(o, j, "name_hex", json_string(hexname));
	}
	if (c->id)
		set(o, j, "id", integer(c->id));
	set(o, j, "flags", flags_json(o, cell_flag_names, c->flags));
	for (uint32_t i = 0; cpus && i < c->cpu_set_size * 8u; i++)
		if (jh_cell_config_has_cpu(c, i)) {
			append(o, cpus, integer(i));
			highest = (int)i;
		}
	set(o, j, "cpus", cpus);
	if (c->cpu_set_size != default_cpu_set_size(highest))
		set(o, j, "cpu_set_size", integer(c->cpu_set_size));
	set(o, j, "cpu_reset_address", hex(c->cpu_reset_address));
	if (c->msg_reply_timeout)
		set(o, j, "msg_reply_timeout", integer(c->msg_reply_timeout));
	if (c->vpci_irq_base)
		set(o, j, "vpci_irq_base", integer(c->vpci_irq_base));
	if (!console_empty(&c->console))
		set(o, j, "console", console_json(o, &c->console));

	set(o, j, "memory", a = chk(o, json_array()));
	for (uint32_t i = 0; a && i < c->n_memory; i++)
		append(o, a, memory_json(o, &c->memory[i]));

	if (c->n_cache) {
		set(o, j, "cache", a = chk(o, json_array()));
		for (uint32_t i = 0; a && i < c->n_cache; i++) {
			json_t *e = chk(o, json_object());
			if (!e)
				break;
			set(o, e, "start", integer(c->cache[i].start));
			set(o, e, "size", integer(c->cache[i].size));
			set(o, e, "type", enum_json(cache_types, c->cache[i].type));
			set(o, e, "flags", flags_json(o, cache_flag_names, c->cache[i].flags));
			append(o, a, e);
		}
	}
	if (c->n_irqchips) {
		set(o, j, "irqchips", a = chk(o, json_array()));
		for (uint32_t i = 0; a && i < c->n_irqchips; i++) {
			json_t *e = chk(o, json_object());
			if (!e)
				break;
			set(o, e, "address", hex(c->irqchips[i].address));
			set(o, e, "id", hex(c->irqchips[i].id));
			set(o, e, "pin_base", integer(c->irqchips[i].pin_base));
			set(o, e, "pins", pins_json(o, &c->irqchips[i]));
			append(o, a, e);
		}
	}
	if (c->n_pio) {
		set(o, j, "pio", a = chk(o, json_array()));
		for (uint32_t i = 0; a && i < c->n_pio; i++) {
			json_t *e = chk(o, json_object());
			if (!e)
				break;
			set(o, e, "base", hex(c->pio[i].base));
			set(o, e, "length", hex(c->pio[i].length));
			append(o, a, e);
		}
	}
	if (c->n_pci_devices) {
		set(o, j, "pci_devices", a = chk(o, json_array()));
		for (uint32_t i = 0; a && i < c->n_pci_devices; i++)
			append(o, a, pci_device_json(o, &c->pci_devices[i]));
	}
	if (c->n_pci_caps) {
		set(o, j, "pci_caps", a = chk(o, json_array()));
		for (uint32_t i = 0; a && i < c->n_pci_caps; i++) {
			const JhPciCap *p = &c->pci_caps[i];
			json_t *e = chk(o, json_object());
			if (!e)
				break;
			set(o, e, "id", hex(p->id & ~JH_PCI_EXTENDED_CAP));
			if (p->id & JH_PCI_EXTENDED_CAP)
				set(o, e, "extended", json_true());
			set(o, e, "start", hex(p->start));
			set(o, e, "len", integer(p->len));
			set(o, e, "flags", flags_json(o, pci_cap_flag_names, p->flags));
			append(o, a, e);
		}
	}
	if (c->n_stream_ids) {
		set(o, j, "stream_ids", a = chk(o, json_array()));
		for (uint32_t i = 0; a && i < c->n_stream_ids; i++)
			append(o, a, hex(c->stream_ids[i]));
	}
}

static int finish(Out *o, json_t *j, json_t **ret, char *err, size_t err_size) {
	if (o->oom) {
		json_decref(j);
		snprintf(err, err_size, "out of memory");
		return -ENOMEM;
	}
	*ret = j;
	return 0;
}

static void header_json(Out *o, json_t *j, JhConfigKind k, unsigned rev, JhArch arch) {
	set(o, j, "jailhouse", json_string(jh_config_kind_to_string(k)));
	set(o, j, "revision", integer(rev));
	if (jh_arch_to_string(arch))
		set(o, j, "architecture", json_string(jh_arch_to_string(arch)));
}

int jh_cell_config_to_json(const JhCellConfig *c, json_t **ret, char *err, size_t err_size) {
	Out o = { 0 };
	json_t *j = chk(&o, json_object());

	if (j) {
		header_json(&o, j, JH_CONFIG_CELL, c->revision, c->arch);
		cell_json(&o, j, c);
	}
	return finish(&o, j, ret, err, err_size);
}

static json_t *iommu_json(Out *o, const JhIommu *u) {
	json_t *j = chk(o, json_object());

	if (!j)
		return NULL;
	set(o, j, "type", enum_json(iommu_types, u->type));
	set(o, j, "base", hex(u->base));
	set(o, j, "size", hex(u->size));
	if (u->type == JH_IOMMU_PVU) {
		set(o, j, "tlb_base", hex(u->tipvu_tlb_base));
		set(o, j, "tlb_size", hex(u->tipvu_tlb_size));
	} else if (u->type == JH_IOMMU_AMD || u->amd_bdf || u->amd_base_cap || u->amd_msi_cap || u->amd_features) {
		set(o, j, "amd_bdf", hex(u->amd_bdf));
		set(o, j, "amd_base_cap", hex(u->amd_base_cap));
		set(o, j, "amd_msi_cap", hex(u->amd_msi_cap));
		set(o, j, "amd_features", hex(u->amd_features));
	}
	return j;
}

static bool iommu_empty(const JhIommu *u) {
	return !u->type && !u->base && !u->size && !u->amd_bdf && !u->amd_base_cap && !u->amd_msi_cap &&
	       !u->amd_features && !u->tipvu_tlb_base && !u->tipvu_tlb_size;
}

int jh_system_config_to_json(const JhSystemConfig *s, json_t **ret, char *err, size_t err_size) {
	Out o = { 0 };
	json_t *j = chk(&o, json_object()), *p, *units, *half, *root;
	int n_units = 0;

	if (!j)
		return finish(&o, j, ret, err, err_size);
	header_json(&o, j, JH_CONFIG_SYSTEM, s->revision, s->arch);
	set(&o, j, "flags", flags_json(&o, system_flag_names, s->flags));
	set(&o, j, "hypervisor_memory", memory_json(&o, &s->hypervisor_memory));
	if (!console_empty(&s->debug_console))
		set(&o, j, "debug_console", console_json(&o, &s->debug_console));

	set(&o, j, "platform_info", p = chk(&o, json_object()));
	if (!p)
		return finish(&o, j, ret, err, err_size);
	set(&o, p, "pci_mmconfig_base", hex(s->pci_mmconfig_base));
	set(&o, p, "pci_mmconfig_end_bus", integer(s->pci_mmconfig_end_bus));
	set(&o, p, "pci_is_virtual", integer(s->pci_is_virtual));
	set(&o, p, "pci_domain", integer(s->pci_domain));
	/* Units are positional (PCI devices name them by index): keep every
	 * one up to the last that is in use. */
	for (int i = 0; i < JH_MAX_IOMMU_UNITS; i++)
		if (!iommu_empty(&s->iommu_units[i]))
			n_units = i + 1;
	if (n_units) {
		set(&o, p, "iommu_units", units = chk(&o, json_array()));
		for (int i = 0; units && i < n_units; i++)
			append(&o, units, iommu_json(&o, &s->iommu_units[i]));
	}
	half = chk(&o, json_object());
	if (half && s->platform == JH_PLATFORM_X86) {
		set(&o, half, "pm_timer_address", hex(s->x86.pm_timer_address));
		set(&o, half, "apic_mode", enum_json(apic_modes, s->x86.apic_mode));
		set(&o, half, "vtd_interrupt_limit", integer(s->x86.vtd_interrupt_limit));
		set(&o, half, "tsc_khz", integer(s->x86.tsc_khz));
		set(&o, half, "apic_khz", integer(s->x86.apic_khz));
		set(&o, p, "x86", half);
	} else if (half) {
		set(&o, half, "maintenance_irq", integer(s->arm.maintenance_irq));
		set(&o, half, "gic_version", integer(s->arm.gic_version));
		set(&o, half, "gicd_base", hex(s->arm.gicd_base));
		set(&o, half, "gicc_base", hex(s->arm.gicc_base));
		set(&o, half, "gich_base", hex(s->arm.gich_base));
		set(&o, half, "gicv_base", hex(s->arm.gicv_base));
		set(&o, half, "gicr_base", hex(s->arm.gicr_base));
		set(&o, p, "arm", half);
	}
	set(&o, j, "root_cell", root = chk(&o, json_object()));
	if (root)
		cell_json(&o, root, &s->root_cell);
	return finish(&o, j, ret, err, err_size);
}

/* ---- reading ---- */

typedef struct In {
	char *err;
	size_t err_size;
} In;

__attribute__((format(printf, 3, 4))) static int bad(const In *in, const char *path, const char *fmt, ...) {
	va_list ap;
	int n;

	if (!in->err || !in->err_size)
		return -EINVAL;
	n = snprintf(in->err, in->err_size, "%s: ", path);
	if (n < 0 || (size_t)n >= in->err_size)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(in->err + n, in->err_size - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static const char *type_name(const json_t *v) {
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a real number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "unknown";
}

static void sub(char *buf, const char *path, const char *key) {
	snprintf(buf, PATH_MAX_LEN, "%s.%s", path, key);
}

static void idx(char *buf, const char *path, size_t i) {
	snprintf(buf, PATH_MAX_LEN, "%s[%zu]", path, i);
}

static int want_object(const In *in, const json_t *v, const char *path, const char *const *keys) {
	const char *key;
	json_t *unused;

	if (!json_is_object(v))
		return bad(in, path, "expected an object, not %s", type_name(v));
	json_object_foreach((json_t *)v, key, unused) {
		bool known = false;
		for (const char *const *k = keys; *k && !known; k++)
			known = strcmp(*k, key) == 0;
		if (!known)
			return bad(in, path, "unknown key \"%s\"", key);
	}
	return 0;
}

/* A number: a non-negative JSON integer, or a string in C notation
 * ("0x1000", "4096", "010" is octal as in C). */
static int number(const In *in, const json_t *v, const char *path, uint64_t max, uint64_t *ret) {
	uint64_t x;

	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return bad(in, path, "%lld is negative", (long long)json_integer_value(v));
		x = (uint64_t)json_integer_value(v);
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;

		errno = 0;
		x = strtoull(s, &end, 0);
		if (errno || end == s || *end || *s == '-' || *s == '+' || *s == ' ')
			return bad(in, path, "\"%s\" is not a number", s);
	} else {
		return bad(in, path, "expected a number or a \"0x…\" string, not %s", type_name(v));
	}
	if (x > max)
		return bad(in, path, "0x%" PRIx64 " is larger than 0x%" PRIx64, x, max);
	*ret = x;
	return 0;
}

/* An optional number member: absent leaves *ret as it is. */
static int get_num(const In *in, const json_t *obj, const char *key, const char *path, uint64_t max, uint64_t *ret) {
	const json_t *v = json_object_get(obj, key);
	char p[PATH_MAX_LEN];

	if (!v)
		return 0;
	sub(p, path, key);
	return number(in, v, p, max, ret);
}

#define GET(in, obj, key, path, field)                                                                 \
	({                                                                                             \
		uint64_t _v = (field);                                                                 \
		int _r = get_num(in, obj, key, path, (uint64_t)(__typeof__(field))~(__typeof__(field))0, &_v); \
		if (_r >= 0)                                                                           \
			(field) = (__typeof__(field))_v;                                               \
		_r;                                                                                    \
	})

static int get_bool(const In *in, const json_t *obj, const char *key, const char *path, bool *ret) {
	const json_t *v = json_object_get(obj, key);
	char p[PATH_MAX_LEN];

	if (!v)
		return 0;
	if (!json_is_boolean(v)) {
		sub(p, path, key);
		return bad(in, p, "expected true or false, not %s", type_name(v));
	}
	*ret = json_is_true(v);
	return 0;
}

static int get_flags(const In *in, const json_t *obj, const char *key, const char *path, const NamedBit *names,
                     uint64_t max, uint64_t *ret) {
	const json_t *a = json_object_get(obj, key), *v;
	char p[PATH_MAX_LEN], q[PATH_MAX_LEN];
	uint64_t flags = 0;
	size_t i;
	int r;

	if (!a)
		return 0;
	sub(p, path, key);
	if (!json_is_array(a))
		return bad(in, p, "expected an array of flag names, not %s", type_name(a));
	json_array_foreach(a, i, v) {
		const NamedBit *n;
		uint64_t x;

		idx(q, p, i);
		for (n = names; json_is_string(v) && n->name; n++)
			if (strcmp(n->name, json_string_value(v)) == 0)
				break;
		if (json_is_string(v) && n->name) {
			flags |= n->bit;
			continue;
		}
		if (json_is_string(v) && strncmp(json_string_value(v), "0x", 2) != 0) {
			char known[256];
			size_t o = 0;

			for (n = names; n->name && o < sizeof known; n++)
				o += (size_t)snprintf(known + o, sizeof known - o, "%s%s", o ? ", " : "", n->name);
			return bad(in, q, "unknown flag \"%s\" (known: %s, or a \"0x…\" bit mask)", json_string_value(v),
			           known);
		}
		if ((r = number(in, v, q, max, &x)) < 0)
			return r;
		flags |= x;
	}
	*ret = flags;
	return 0;
}

#define GET_FLAGS(in, obj, key, path, names, field)                                                    \
	({                                                                                             \
		uint64_t _v = (field);                                                                 \
		int _r = get_flags(in, obj, key, path, names, (uint64_t)(__typeof__(field))~(__typeof__(field))0, \
		                   &_v);                                                               \
		if (_r >= 0)                                                                           \
			(field) = (__typeof__(field))_v;                                               \
		_r;                                                                                    \
	})

static int get_enum(const In *in, const json_t *obj, const char *key, const char *path, const NamedBit *names,
                    uint64_t max, uint64_t *ret) {
	const json_t *v = json_object_get(obj, key);
	char p[PATH_MAX_LEN];

	if (!v)
		return 0;
	sub(p, path, key);
	if (json_is_string(v))
		for (const NamedBit *n = names; n->name; n++)
			if (strcmp(n->name, json_string_value(v)) == 0) {
				*ret = n->bit;
				return 0;
			}
	if (json_is_string(v) && strncmp(json_string_value(v), "0x", 2) != 0 &&
	    strspn(json_string_value(v), "0123456789") != strlen(json_string_value(v)))
		return bad(in, p, "unknown value \"%s\"", json_string_value(v));
	return number(in, v, p, max, ret);
}

#define GET_ENUM(in, obj, key, path, names, field)                                                     \
	({                                                                                             \
		uint64_t _v = (field);                                                                 \
		int _r = get_enum(in, obj, key, path, names, (uint64_t)(__typeof__(field))~(__typeof__(field))0, \
		                  &_v);                                                                \
		if (_r >= 0)                                                                           \
			(field) = (__typeof__(field))_v;                                               \
		_r;                                                                                    \
	})

static int get_array(const In *in, const json_t *obj, const char *key, const char *path, size_t max_n,
                     const json_t **ret) {
	const json_t *a = json_object_get(obj, key);
	char p[PATH_MAX_LEN];

	*ret = NULL;
	if (!a)
		return 0;
	sub(p, path, key);
	if (!json_is_array(a))
		return bad(in, p, "expected an array, not %s", type_name(a));
	if (json_array_size(a) > max_n)
		return bad(in, p, "more than %zu entries", max_n);
	*ret = a;
	return 0;
}

static int memory_from(const In *in, const json_t *v, const char *path, JhMemory *m) {
	static const char *const keys[] = { "phys_start", "virt_start", "size", "flags", NULL };
	int r;

	if ((r = want_object(in, v, path, keys)) < 0 || (r = GET(in, v, "phys_start", path, m->phys_start)) < 0 ||
	    (r = GET(in, v, "virt_start", path, m->virt_start)) < 0 || (r = GET(in, v, "size", path, m->size)) < 0 ||
	    (r = GET_FLAGS(in, v, "flags", path, mem_flag_names, m->flags)) < 0)
		return r;
	return 0;
}

static int console_from(const In *in, const json_t *obj, const char *key, const char *path, JhConsole *c) {
	static const char *const keys[] = { "type",    "flags",   "address",   "size",
		                            "divider", "gate_nr", "clock_reg", NULL };
	const json_t *v = json_object_get(obj, key);
	char p[PATH_MAX_LEN];
	int r;

	if (!v)
		return 0;
	sub(p, path, key);
	if ((r = want_object(in, v, p, keys)) < 0 || (r = GET_ENUM(in, v, "type", p, console_types, c->type)) < 0 ||
	    (r = GET_FLAGS(in, v, "flags", p, console_flag_names, c->flags)) < 0 ||
	    (r = GET(in, v, "address", p, c->address)) < 0 || (r = GET(in, v, "size", p, c->size)) < 0 ||
	    (r = GET(in, v, "divider", p, c->divider)) < 0 || (r = GET(in, v, "gate_nr", p, c->gate_nr)) < 0 ||
	    (r = GET(in, v, "clock_reg", p, c->clock_reg)) < 0)
		return r;
	return 0;
}

/* Items are numbers or "A-B" ranges; calls add() for each number. */
typedef int (*AddFn)(const In *in, const char *path, uint64_t n, void *userdata);

static int number_list(const In *in, const json_t *a, const char *path, AddFn add, void *userdata) {
	const json_t *v;
	char q[PATH_MAX_LEN];
	size_t i;
	int r;

	json_array_foreach(a, i, v) {
		uint64_t first, last;

		idx(q, path, i);
		if (json_is_string(v) && strchr(json_string_value(v), '-')) {
			const char *s = json_string_value(v);
			char *end;

			errno = 0;
			first = strtoull(s, &end, 0);
			if (errno || end == s || *end != '-' || *s == '-')
				return bad(in, q, "\"%s\" is not a range A-B", s);
			s = end + 1;
			last = strtoull(s, &end, 0);
			if (errno || end == s || *end || *s == '-' || last < first)
				return bad(in, q, "\"%s\" is not a range A-B", json_string_value(v));
		} else if ((r = number(in, v, q, UINT64_MAX, &first)) < 0) {
			/* as wide as a range: each add function checks its own
			 * bounds (an irqchip's pins may pass 2^32 - 1) */
			return r;
		} else {
			last = first;
		}
		for (uint64_t n = first; n <= last; n++)
			if ((r = add(in, q, n, userdata)) < 0)
				return r;
	}
	return 0;
}

typedef struct CpuSet {
	uint8_t bits[1024]; /* 8192 CPUs */
	int highest;
} CpuSet;

static int add_cpu(const In *in, const char *path, uint64_t n, void *userdata) {
	CpuSet *s = userdata;

	if (n >= sizeof s->bits * 8)
		return bad(in, path, "CPU %" PRIu64 " is beyond the largest supported (%zu)", n, sizeof s->bits * 8 - 1);
	s->bits[n / 8] |= (uint8_t)(1u << (n % 8));
	if ((int)n > s->highest)
		s->highest = (int)n;
	return 0;
}

static int add_pin(const In *in, const char *path, uint64_t n, void *userdata) {
	JhIrqchip *ic = userdata;
	uint64_t bit = n - ic->pin_base;

	if (n < ic->pin_base || bit >= 128)
		return bad(in, path, "interrupt %" PRIu64 " is outside pin_base %u .. %u that one irqchip entry covers", n,
		           ic->pin_base, ic->pin_base + 127);
	ic->pin_bitmap[bit / 32] |= 1u << (bit % 32);
	return 0;
}

static int bdf_from(const In *in, const json_t *obj, const char *path, uint16_t *ret) {
	const json_t *v = json_object_get(obj, "bdf");
	char p[PATH_MAX_LEN];
	unsigned bus, dev, fn;
	int end = 0;
	uint64_t x;

	if (!v)
		return 0;
	sub(p, path, "bdf");
	if (json_is_string(v) && strchr(json_string_value(v), ':')) {
		if (sscanf(json_string_value(v), "%x:%x.%x%n", &bus, &dev, &fn, &end) != 3 ||
		    json_string_value(v)[end] || bus > 0xff || dev > 0x1f || fn > 7)
			return bad(in, p, "\"%s\" is not BUS:DEVICE.FUNCTION (hex, e.g. \"00:0e.0\")", json_string_value(v));
		*ret = (uint16_t)(bus << 8 | dev << 3 | fn);
		return 0;
	}
	if (number(in, v, p, UINT16_MAX, &x) < 0)
		return -EINVAL;
	*ret = (uint16_t)x;
	return 0;
}

static int pci_device_from(const In *in, const json_t *v, const char *path, JhPciDevice *d) {
	static const char *const keys[] = { "type",
		                            "iommu",
		                            "domain",
		                            "bdf",
		                            "bar_mask",
		                            "caps_start",
		                            "num_caps",
		                            "num_msi_vectors",
		                            "msi_64bits",
		                            "msi_maskable",
		                            "num_msix_vectors",
		                            "msix_region_size",
		                            "msix_address",
		                            "shmem_regions_start",
		                            "shmem_dev_id",
		                            "shmem_peers",
		                            "shmem_protocol",
		                            NULL };
	const json_t *bars;
	char p[PATH_MAX_LEN], q[PATH_MAX_LEN];
	int r;

	if ((r = want_object(in, v, path, keys)) < 0 || (r = GET_ENUM(in, v, "type", path, pci_types, d->type)) < 0 ||
	    (r = GET(in, v, "iommu", path, d->iommu)) < 0 || (r = GET(in, v, "domain", path, d->domain)) < 0 ||
	    (r = bdf_from(in, v, path, &d->bdf)) < 0 || (r = get_array(in, v, "bar_mask", path, 6, &bars)) < 0 ||
	    (r = GET(in, v, "caps_start", path, d->caps_start)) < 0 ||
	    (r = GET(in, v, "num_caps", path, d->num_caps)) < 0 ||
	    (r = GET(in, v, "num_msi_vectors", path, d->num_msi_vectors)) < 0 ||
	    (r = get_bool(in, v, "msi_64bits", path, &d->msi_64bits)) < 0 ||
	    (r = get_bool(in, v, "msi_maskable", path, &d->msi_maskable)) < 0 ||
	    (r = GET(in, v, "num_msix_vectors", path, d->num_msix_vectors)) < 0 ||
	    (r = GET(in, v, "msix_region_size", path, d->msix_region_size)) < 0 ||
	    (r = GET(in, v, "msix_address", path, d->msix_address)) < 0 ||
	    (r = GET(in, v, "shmem_regions_start", path, d->shmem_regions_start)) < 0 ||
	    (r = GET(in, v, "shmem_dev_id", path, d->shmem_dev_id)) < 0 ||
	    (r = GET(in, v, "shmem_peers", path, d->shmem_peers)) < 0 ||
	    (r = GET_ENUM(in, v, "shmem_protocol", path, shmem_protocols, d->shmem_protocol)) < 0)
		return r;
	sub(p, path, "bar_mask");
	for (size_t i = 0; bars && i < json_array_size(bars); i++) {
		uint64_t x;

		idx(q, p, i);
		if ((r = number(in, json_array_get(bars, i), q, UINT32_MAX, &x)) < 0)
			return r;
		d->bar_mask[i] = (uint32_t)x;
	}
	return 0;
}

/* Every list is bounded by what a u32 count and a sane file hold. */
#define LIST_MAX (1u << 20)

static int cell_from(const In *in, const json_t *j, const char *path, const char *const *keys, JhCellConfig *c) {
	const json_t *v, *a;
	char p[PATH_MAX_LEN], q[PATH_MAX_LEN];
	_Static_assert(sizeof(((CpuSet *)0)->bits) <= UINT32_MAX, "cpu set size");
	CpuSet *cpus;
	uint64_t cpu_set_size;
	size_t i;
	int r;

	if ((r = want_object(in, j, path, keys)) < 0)
		return r;
	v = json_object_get(j, "name");
	sub(p, path, "name");
	if (v && json_object_get(j, "name_hex"))
		return bad(in, path, "\"name\" and \"name_hex\" exclude each other");
	if (!v && (v = json_object_get(j, "name_hex"))) {
		/* the bytes of a name that is not UTF-8, as import writes them */
		const char *h = json_is_string(v) ? json_string_value(v) : NULL;
		size_t len = h ? strlen(h) : 0;
		sub(p, path, "name_hex");
		if (!h || len == 0 || len % 2 || len / 2 >= JH_NAME_SIZE || strspn(h, "0123456789abcdefABCDEF") != len)
			return bad(in, p, "expected an even number of hex digits, at most %d bytes", JH_NAME_SIZE - 1);
		for (size_t k = 0; k < len / 2; k++) {
			unsigned x;
			sscanf(h + 2 * k, "%2x", &x);
			if (!x)
				return bad(in, p, "a name holds no NUL");
			c->name[k] = (char)x;
		}
	} else {
		if (!v)
			return bad(in, path, "\"name\" is required");
		if (!json_is_string(v))
			return bad(in, p, "expected a string, not %s", type_name(v));
		if (json_string_length(v) >= JH_NAME_SIZE || strlen(json_string_value(v)) != json_string_length(v))
			return bad(in, p, "\"%s\": at most %d bytes and no NUL", json_string_value(v), JH_NAME_SIZE - 1);
		memcpy(c->name, json_string_value(v), json_string_length(v));
	}

	if ((r = GET(in, j, "id", path, c->id)) < 0 ||
	    (r = GET_FLAGS(in, j, "flags", path, cell_flag_names, c->flags)) < 0 ||
	    (r = GET(in, j, "cpu_reset_address", path, c->cpu_reset_address)) < 0 ||
	    (r = GET(in, j, "msg_reply_timeout", path, c->msg_reply_timeout)) < 0 ||
	    (r = GET(in, j, "vpci_irq_base", path, c->vpci_irq_base)) < 0 ||
	    (r = console_from(in, j, "console", path, &c->console)) < 0)
		return r;

	if (!(cpus = calloc(1, sizeof *cpus)))
		return bad(in, path, "out of memory");
	cpus->highest = -1;
	r = get_array(in, j, "cpus", path, LIST_MAX, &a);
	sub(p, path, "cpus");
	if (r >= 0 && a)
		r = number_list(in, a, p, add_cpu, cpus);
	cpu_set_size = default_cpu_set_size(cpus->highest);
	if (r >= 0 && (r = get_num(in, j, "cpu_set_size", path, sizeof cpus->bits, &cpu_set_size)) >= 0 &&
	    cpus->highest >= 0 && cpu_set_size * 8 <= (uint64_t)cpus->highest) {
		sub(p, path, "cpu_set_size");
		r = bad(in, p, "%" PRIu64 " bytes cannot hold CPU %d", cpu_set_size, cpus->highest);
	}
	if (r >= 0 && !(c->cpu_set = calloc(cpu_set_size ? cpu_set_size : 1, 1)))
		r = bad(in, path, "out of memory");
	if (r >= 0) {
		memcpy(c->cpu_set, cpus->bits, cpu_set_size);
		c->cpu_set_size = (uint32_t)cpu_set_size;
	}
	free(cpus);
	if (r < 0)
		return r;

	if ((r = get_array(in, j, "memory", path, LIST_MAX, &a)) < 0)
		return r;
	sub(p, path, "memory");
	if (!(c->memory = calloc(json_array_size(a) ?: 1, sizeof *c->memory)))
		return bad(in, path, "out of memory");
	json_array_foreach(a, i, v) {
		idx(q, p, i);
		if ((r = memory_from(in, v, q, &c->memory[i])) < 0)
			return r;
		c->n_memory++;
	}

	if ((r = get_array(in, j, "cache", path, LIST_MAX, &a)) < 0)
		return r;
	sub(p, path, "cache");
	if (!(c->cache = calloc(json_array_size(a) ?: 1, sizeof *c->cache)))
		return bad(in, path, "out of memory");
	json_array_foreach(a, i, v) {
		static const char *const ckeys[] = { "start", "size", "type", "flags", NULL };
		JhCache *e = &c->cache[i];

		idx(q, p, i);
		if ((r = want_object(in, v, q, ckeys)) < 0 || (r = GET(in, v, "start", q, e->start)) < 0 ||
		    (r = GET(in, v, "size", q, e->size)) < 0 || (r = GET_ENUM(in, v, "type", q, cache_types, e->type)) < 0 ||
		    (r = GET_FLAGS(in, v, "flags", q, cache_flag_names, e->flags)) < 0)
			return r;
		c->n_cache++;
	}

	if ((r = get_array(in, j, "irqchips", path, LIST_MAX, &a)) < 0)
		return r;
	sub(p, path, "irqchips");
	if (!(c->irqchips = calloc(json_array_size(a) ?: 1, sizeof *c->irqchips)))
		return bad(in, path, "out of memory");
	json_array_foreach(a, i, v) {
		static const char *const ikeys[] = { "address", "id", "pin_base", "pins", NULL };
		JhIrqchip *e = &c->irqchips[i];
		const json_t *pins;
		char pp[PATH_MAX_LEN];

		idx(q, p, i);
		if ((r = want_object(in, v, q, ikeys)) < 0 || (r = GET(in, v, "address", q, e->address)) < 0 ||
		    (r = GET(in, v, "id", q, e->id)) < 0 || (r = GET(in, v, "pin_base", q, e->pin_base)) < 0 ||
		    (r = get_array(in, v, "pins", q, 128, &pins)) < 0)
			return r;
		sub(pp, q, "pins");
		if (pins && (r = number_list(in, pins, pp, add_pin, e)) < 0)
			return r;
		c->n_irqchips++;
	}

	if ((r = get_array(in, j, "pio", path, LIST_MAX, &a)) < 0)
		return r;
	sub(p, path, "pio");
	if (!(c->pio = calloc(json_array_size(a) ?: 1, sizeof *c->pio)))
		return bad(in, path, "out of memory");
	json_array_foreach(a, i, v) {
		static const char *const pkeys[] = { "base", "length", NULL };

		idx(q, p, i);
		if ((r = want_object(in, v, q, pkeys)) < 0 || (r = GET(in, v, "base", q, c->pio[i].base)) < 0 ||
		    (r = GET(in, v, "length", q, c->pio[i].length)) < 0)
			return r;
		c->n_pio++;
	}

	if ((r = get_array(in, j, "pci_devices", path, LIST_MAX, &a)) < 0)
		return r;
	sub(p, path, "pci_devices");
	if (!(c->pci_devices = calloc(json_array_size(a) ?: 1, sizeof *c->pci_devices)))
		return bad(in, path, "out of memory");
	json_array_foreach(a, i, v) {
		idx(q, p, i);
		if ((r = pci_device_from(in, v, q, &c->pci_devices[i])) < 0)
			return r;
		c->n_pci_devices++;
	}

	if ((r = get_array(in, j, "pci_caps", path, LIST_MAX, &a)) < 0)
		return r;
	sub(p, path, "pci_caps");
	if (!(c->pci_caps = calloc(json_array_size(a) ?: 1, sizeof *c->pci_caps)))
		return bad(in, path, "out of memory");
	json_array_foreach(a, i, v) {
		static const char *const kkeys[] = { "id", "extended", "start", "len", "flags", NULL };
		JhPciCap *e = &c->pci_caps[i];
		bool extended = false;
		char pp[PATH_MAX_LEN];

		idx(q, p, i);
		if ((r = want_object(in, v, q, kkeys)) < 0 || (r = GET(in, v, "id", q, e->id)) < 0 ||
		    (r = get_bool(in, v, "extended", q, &extended)) < 0 || (r = GET(in, v, "start", q, e->start)) < 0 ||
		    (r = GET(in, v, "len", q, e->len)) < 0 ||
		    (r = GET_FLAGS(in, v, "flags", q, pci_cap_flag_names, e->flags)) < 0)
			return r;
		if (extended && (e->id & JH_PCI_EXTENDED_CAP)) {
			sub(pp, q, "id");
			return bad(in, pp, "0x%x has the extended bit already; drop it or \"extended\"", e->id);
		}
		if (extended)
			e->id |= JH_PCI_EXTENDED_CAP;
		c->n_pci_caps++;
	}

	if ((r = get_array(in, j, "stream_ids", path, LIST_MAX, &a)) < 0)
		return r;
	sub(p, path, "stream_ids");
	if (!(c->stream_ids = calloc(json_array_size(a) ?: 1, sizeof *c->stream_ids)))
		return bad(in, path, "out of memory");
	json_array_foreach(a, i, v) {
		uint64_t x;

		idx(q, p, i);
		if ((r = number(in, v, q, UINT32_MAX, &x)) < 0)
			return r;
		c->stream_ids[c->n_stream_ids++] = (uint32_t)x;
	}
	return 0;
}

#define CELL_KEYS                                                                                        \
	"name", "name_hex", "id", "flags", "cpus", "cpu_set_size", "cpu_reset_address", "msg_reply_timeout", "vpci_irq_base", \
	        "console", "memory", "cache", "irqchips", "pio", "pci_devices", "pci_caps", "stream_ids"

int jh_config_json_kind(const json_t *doc, JhConfigKind *ret_kind, char *err, size_t err_size) {
	const In in = { err, err_size };
	const json_t *v = json_object_get(doc, "jailhouse");

	if (!json_is_object(doc))
		return bad(&in, "$", "expected an object, not %s", type_name(doc));
	if (!v)
		return bad(&in, "$", "\"jailhouse\" is required: \"cell\" or \"system\"");
	for (int k = 0; k < _JH_CONFIG_KIND_MAX; k++)
		if (json_is_string(v) && strcmp(json_string_value(v), jh_config_kind_to_string(k)) == 0) {
			*ret_kind = k;
			return 0;
		}
	return bad(&in, "$.jailhouse", "expected \"cell\" or \"system\"");
}

static int header_from(const In *in, const json_t *doc, JhConfigKind want, unsigned *ret_rev, JhArch *ret_arch) {
	const json_t *v;
	JhConfigKind kind;
	uint64_t rev = JH_REVISION_DEFAULT;
	int r;

	if ((r = jh_config_json_kind(doc, &kind, in->err, in->err_size)) < 0)
		return r;
	if (kind != want)
		return bad(in, "$.jailhouse", "\"%s\", expected \"%s\"", jh_config_kind_to_string(kind),
		           jh_config_kind_to_string(want));
	if ((r = get_num(in, doc, "revision", "$", UINT16_MAX, &rev)) < 0)
		return r;
	if (rev < JH_REVISION_MIN || rev > JH_REVISION_MAX)
		return bad(in, "$.revision", "%" PRIu64 ", expected %d, %d or %d", rev, JH_REVISION_MIN, JH_REVISION_MIN + 1,
		           JH_REVISION_MAX);
	*ret_rev = (unsigned)rev;
	*ret_arch = JH_ARCH_UNSPEC;
	v = json_object_get(doc, "architecture");
	if (v && (!json_is_string(v) || jh_arch_from_string(json_string_value(v)) == JH_ARCH_UNSPEC))
		return bad(in, "$.architecture", "expected \"x86\", \"arm\" or \"arm64\"");
	if (v)
		*ret_arch = jh_arch_from_string(json_string_value(v));
	return 0;
}

int jh_cell_config_from_json(const json_t *doc, JhCellConfig **ret, char *err, size_t err_size) {
	static const char *const keys[] = { "jailhouse", "revision", "architecture", CELL_KEYS, NULL };
	const In in = { err, err_size };
	JhCellConfig *c;
	unsigned rev;
	JhArch arch;
	int r;

	if ((r = header_from(&in, doc, JH_CONFIG_CELL, &rev, &arch)) < 0)
		return r;
	if (!(c = jh_cell_config_new(rev, arch)))
		return bad(&in, "$", "out of memory");
	if ((r = cell_from(&in, doc, "$", keys, c)) < 0) {
		jh_cell_config_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

static int iommu_from(const In *in, const json_t *v, const char *path, JhIommu *u) {
	static const char *const keys[] = { "type",         "base",         "size",     "amd_bdf",  "amd_base_cap",
		                            "amd_msi_cap", "amd_features", "tlb_base", "tlb_size", NULL };
	int r;

	if ((r = want_object(in, v, path, keys)) < 0 || (r = GET_ENUM(in, v, "type", path, iommu_types, u->type)) < 0 ||
	    (r = GET(in, v, "base", path, u->base)) < 0 || (r = GET(in, v, "size", path, u->size)) < 0 ||
	    (r = GET(in, v, "amd_bdf", path, u->amd_bdf)) < 0 ||
	    (r = GET(in, v, "amd_base_cap", path, u->amd_base_cap)) < 0 ||
	    (r = GET(in, v, "amd_msi_cap", path, u->amd_msi_cap)) < 0 ||
	    (r = GET(in, v, "amd_features", path, u->amd_features)) < 0 ||
	    (r = GET(in, v, "tlb_base", path, u->tipvu_tlb_base)) < 0 ||
	    (r = GET(in, v, "tlb_size", path, u->tipvu_tlb_size)) < 0)
		return r;
	/* One union on disk: the fields of the other view would be lost. */
	if (u->type == JH_IOMMU_PVU && (u->amd_bdf || u->amd_base_cap || u->amd_msi_cap || u->amd_features))
		return bad(in, path, "a PVU unit has no amd_* fields");
	if (u->type != JH_IOMMU_PVU && (u->tipvu_tlb_base || u->tipvu_tlb_size))
		return bad(in, path, "tlb_base and tlb_size belong to PVU units only");
	return 0;
}

static int platform_from(const In *in, const json_t *doc, JhSystemConfig *s) {
	static const char *const keys[] = { "pci_mmconfig_base", "pci_mmconfig_end_bus", "pci_is_virtual", "pci_domain",
		                            "iommu_units",       "x86",                  "arm",            NULL };
	static const char *const x86_keys[] = { "pm_timer_address", "apic_mode", "vtd_interrupt_limit", "tsc_khz",
		                                "apic_khz",         NULL };
	static const char *const arm_keys[] = { "maintenance_irq", "gic_version", "gicd_base", "gicc_base",
		                                "gich_base",       "gicv_base",   "gicr_base", NULL };
	const json_t *p = json_object_get(doc, "platform_info"), *a, *x86, *arm, *v;
	const char *path = "$.platform_info";
	char q[PATH_MAX_LEN];
	size_t i;
	int r;

	s->platform = jh_arch_platform(s->arch);
	if (!p)
		return 0;
	if ((r = want_object(in, p, path, keys)) < 0 ||
	    (r = GET(in, p, "pci_mmconfig_base", path, s->pci_mmconfig_base)) < 0 ||
	    (r = GET(in, p, "pci_mmconfig_end_bus", path, s->pci_mmconfig_end_bus)) < 0 ||
	    (r = GET(in, p, "pci_is_virtual", path, s->pci_is_virtual)) < 0 ||
	    (r = GET(in, p, "pci_domain", path, s->pci_domain)) < 0 ||
	    (r = get_array(in, p, "iommu_units", path, JH_MAX_IOMMU_UNITS, &a)) < 0)
		return r;
	json_array_foreach(a, i, v) {
		snprintf(q, sizeof q, "%s.iommu_units[%zu]", path, i);
		if ((r = iommu_from(in, v, q, &s->iommu_units[i])) < 0)
			return r;
	}
	x86 = json_object_get(p, "x86");
	arm = json_object_get(p, "arm");
	if (x86 && arm)
		return bad(in, path, "\"x86\" and \"arm\" exclude each other");
	if (x86) {
		sub(q, path, "x86");
		if ((r = want_object(in, x86, q, x86_keys)) < 0 ||
		    (r = GET(in, x86, "pm_timer_address", q, s->x86.pm_timer_address)) < 0 ||
		    (r = GET_ENUM(in, x86, "apic_mode", q, apic_modes, s->x86.apic_mode)) < 0 ||
		    (r = GET(in, x86, "vtd_interrupt_limit", q, s->x86.vtd_interrupt_limit)) < 0 ||
		    (r = GET(in, x86, "tsc_khz", q, s->x86.tsc_khz)) < 0 ||
		    (r = GET(in, x86, "apic_khz", q, s->x86.apic_khz)) < 0)
			return r;
		s->platform = JH_PLATFORM_X86;
	}
	if (arm) {
		sub(q, path, "arm");
		if ((r = want_object(in, arm, q, arm_keys)) < 0 ||
		    (r = GET(in, arm, "maintenance_irq", q, s->arm.maintenance_irq)) < 0 ||
		    (r = GET(in, arm, "gic_version", q, s->arm.gic_version)) < 0 ||
		    (r = GET(in, arm, "gicd_base", q, s->arm.gicd_base)) < 0 ||
		    (r = GET(in, arm, "gicc_base", q, s->arm.gicc_base)) < 0 ||
		    (r = GET(in, arm, "gich_base", q, s->arm.gich_base)) < 0 ||
		    (r = GET(in, arm, "gicv_base", q, s->arm.gicv_base)) < 0 ||
		    (r = GET(in, arm, "gicr_base", q, s->arm.gicr_base)) < 0)
			return r;
		s->platform = JH_PLATFORM_ARM;
	}
	return 0;
}

int jh_system_config_from_json(const json_t *doc, JhSystemConfig **ret, char *err, size_t err_size) {
	static const char *const keys[] = { "jailhouse",     "revision",      "architecture", "flags", "hypervisor_memory",
		                            "debug_console", "platform_info", "root_cell",    NULL };
	static const char *const root_keys[] = { CELL_KEYS, NULL };
	const In in = { err, err_size };
	const json_t *v;
	JhSystemConfig *s;
	unsigned rev;
	JhArch arch;
	int r;

	if ((r = header_from(&in, doc, JH_CONFIG_SYSTEM, &rev, &arch)) < 0)
		return r;
	if ((r = want_object(&in, doc, "$", keys)) < 0)
		return r;
	if (!(s = jh_system_config_new(rev, arch)))
		return bad(&in, "$", "out of memory");
	v = json_object_get(doc, "hypervisor_memory");
	if ((r = GET_FLAGS(&in, doc, "flags", "$", system_flag_names, s->flags)) < 0 ||
	    (v && (r = memory_from(&in, v, "$.hypervisor_memory", &s->hypervisor_memory)) < 0) ||
	    (r = console_from(&in, doc, "debug_console", "$", &s->debug_console)) < 0 ||
	    (r = platform_from(&in, doc, s)) < 0)
		goto fail;
	v = json_object_get(doc, "root_cell");
	if (!v) {
		r = bad(&in, "$", "\"root_cell\" is required");
		goto fail;
	}
	if ((r = cell_from(&in, v, "$.root_cell", root_keys, &s->root_cell)) < 0)
		goto fail;
	*ret = s;
	return 0;
fail:
	jh_system_config_free(s);
	return r;
}
