/* SPDX-License-Identifier: MIT */
/*
 * Jailhouse binary configurations: cell configs (".cell", what CELL_CREATE
 * takes) and system configs (the root cell, what ENABLE takes), config
 * revisions 12, 13 and 14, decoded into a model and encoded back.
 *
 * The layouts are re-declared from ../shared/jailhouse/FACTS.md (measured
 * against Jailhouse's headers); no Jailhouse header is included or copied.
 * Every structure on disk is packed little endian, so the codec reads and
 * writes bytes at fixed offsets instead of overlaying C structs: the host's
 * padding and endianness never matter.
 *
 * The model is plain data on purpose (not opaque): the spec checks, the JSON
 * mapping (cell-config-json.h) and the backend read and build it field by
 * field. It is lossless for every file the decoder accepts: decode then
 * encode gives the same bytes. Bytes that carry no field (padding, unused
 * union space, bytes after a name's NUL, the root cell's own header) must be
 * zero; the decoder refuses a file where they are not, naming the offset,
 * instead of silently dropping them. Jailhouse's configs are compiled C
 * initializers, which zero all of them.
 *
 * Pure code: no I/O, no logging. Functions return 0 or a negative errno and,
 * on error, leave a message in err naming the file offset and the field.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JH_NAME_SIZE 32 /* 31 characters and a NUL */
#define JH_MAX_IOMMU_UNITS 8

#define JH_REVISION_MIN 12
#define JH_REVISION_MAX 14
#define JH_REVISION_DEFAULT 14

typedef enum JhArch {
	JH_ARCH_X86 = 0, /* the values are the rev-14 header's architecture byte */
	JH_ARCH_ARM = 1,
	JH_ARCH_ARM64 = 2,
	_JH_ARCH_MAX,
	/* Revisions 12 and 13 do not record the architecture. */
	JH_ARCH_UNSPEC = -1,
} JhArch;

typedef enum JhConfigKind {
	JH_CONFIG_CELL,
	JH_CONFIG_SYSTEM,
	_JH_CONFIG_KIND_MAX,
} JhConfigKind;

/* Which half of the system config's platform union is in use. */
typedef enum JhPlatform {
	JH_PLATFORM_X86,
	JH_PLATFORM_ARM, /* arm and arm64 */
	_JH_PLATFORM_MAX,
	JH_PLATFORM_UNSPEC = -1,
} JhPlatform;

/* Cell flags */
#define JH_CELL_PASSIVE_COMMREG 0x00000001u
#define JH_CELL_TEST_DEVICE 0x00000002u
#define JH_CELL_AARCH32 0x00000004u
#define JH_CELL_VIRTUAL_CONSOLE_PERMITTED 0x40000000u
#define JH_CELL_VIRTUAL_CONSOLE_ACTIVE 0x80000000u

/* System flags */
#define JH_SYS_VIRTUAL_DEBUG_CONSOLE 0x00000001u

/* Memory region flags */
#define JH_MEM_READ 0x0001u
#define JH_MEM_WRITE 0x0002u
#define JH_MEM_EXECUTE 0x0004u
#define JH_MEM_DMA 0x0008u
#define JH_MEM_IO 0x0010u
#define JH_MEM_COMM_REGION 0x0020u
#define JH_MEM_LOADABLE 0x0040u
#define JH_MEM_ROOTSHARED 0x0080u
#define JH_MEM_NO_HUGEPAGES 0x0100u
#define JH_MEM_IO_UNALIGNED 0x8000u
#define JH_MEM_IO_8 0x10000u
#define JH_MEM_IO_16 0x20000u
#define JH_MEM_IO_32 0x40000u
#define JH_MEM_IO_64 0x80000u

/* Console types and flags */
enum {
	JH_CON_TYPE_NONE = 0,
	JH_CON_TYPE_EFIFB = 1,
	JH_CON_TYPE_8250 = 2,
	JH_CON_TYPE_PL011 = 3,
	JH_CON_TYPE_XUARTPS = 4,
	JH_CON_TYPE_MVEBU = 5,
	JH_CON_TYPE_HSCIF = 6,
	JH_CON_TYPE_SCIFA = 7,
	JH_CON_TYPE_IMX = 8,
	JH_CON_TYPE_IMX_LPUART = 9,
	JH_CON_TYPE_SCIF = 0xa,
};
#define JH_CON_ACCESS_MMIO 0x0001u
#define JH_CON_REGDIST_4 0x0002u
#define JH_CON_FB_1920x1080 0x0004u
#define JH_CON_INVERTED_GATE 0x1000u
#define JH_CON_MDR_QUIRK 0x2000u

/* Cache types and flags */
enum { JH_CACHE_L3_CODE = 1, JH_CACHE_L3_DATA = 2, JH_CACHE_L3 = 3 };
#define JH_CACHE_ROOTSHARED 0x0001u

/* PCI device types, capability flags, ivshmem protocols */
enum { JH_PCI_TYPE_DEVICE = 1, JH_PCI_TYPE_BRIDGE = 2, JH_PCI_TYPE_IVSHMEM = 3 };
#define JH_PCICAPS_WRITE 0x0001u
#define JH_PCI_EXTENDED_CAP 0x8000u
#define JH_SHMEM_PROTO_UNDEFINED 0x0000u
#define JH_SHMEM_PROTO_VETH 0x0001u
#define JH_SHMEM_PROTO_CUSTOM 0x4000u
#define JH_SHMEM_PROTO_VIRTIO_FRONT 0x8000u
#define JH_SHMEM_PROTO_VIRTIO_BACK 0xc000u

/* IOMMU types, x86 APIC modes */
enum {
	JH_IOMMU_AMD = 1,
	JH_IOMMU_INTEL = 2,
	JH_IOMMU_SMMUV3 = 3,
	JH_IOMMU_PVU = 4,
	JH_IOMMU_ARM_MMU500 = 5,
};
enum { JH_APIC_MODE_AUTO = 0, JH_APIC_MODE_XAPIC = 1, JH_APIC_MODE_X2APIC = 2 };

typedef struct JhConsole {
	uint64_t address;
	uint32_t size;
	uint16_t type;
	uint16_t flags;
	uint32_t divider;
	uint32_t gate_nr;
	uint64_t clock_reg;
} JhConsole;

typedef struct JhMemory {
	uint64_t phys_start;
	uint64_t virt_start;
	uint64_t size;
	uint64_t flags;
} JhMemory;

typedef struct JhCache {
	uint32_t start;
	uint32_t size;
	uint8_t type;
	uint16_t flags;
} JhCache;

typedef struct JhIrqchip {
	uint64_t address;
	uint32_t id;
	uint32_t pin_base;
	/* Bit i of word w is interrupt pin_base + 32 * w + i. */
	uint32_t pin_bitmap[4];
} JhIrqchip;

typedef struct JhPio {
	uint16_t base;
	uint16_t length;
} JhPio;

typedef struct JhPciDevice {
	uint8_t type;
	uint8_t iommu;
	uint16_t domain;
	uint16_t bdf; /* bus << 8 | device << 3 | function */
	uint32_t bar_mask[6];
	uint16_t caps_start;
	uint16_t num_caps;
	uint8_t num_msi_vectors;
	bool msi_64bits;
	bool msi_maskable;
	uint16_t num_msix_vectors;
	uint16_t msix_region_size;
	uint64_t msix_address;
	uint32_t shmem_regions_start;
	uint8_t shmem_dev_id;
	uint8_t shmem_peers;
	uint16_t shmem_protocol;
} JhPciDevice;

typedef struct JhPciCap {
	uint16_t id; /* | JH_PCI_EXTENDED_CAP for extended capabilities */
	uint16_t start;
	uint16_t len;
	uint16_t flags;
} JhPciCap;

typedef struct JhIommu {
	uint32_t type;
	uint64_t base;
	uint32_t size;
	/* The union on disk: the amd view for every type but PVU, whose
	 * view is tipvu (the other view's bytes must be zero). */
	uint16_t amd_bdf;
	uint8_t amd_base_cap;
	uint8_t amd_msi_cap;
	uint32_t amd_features;
	uint64_t tipvu_tlb_base;
	uint32_t tipvu_tlb_size;
} JhIommu;

typedef struct JhCellConfig {
	/* Of a .cell file; unused for a system config's root cell, whose
	 * revision and architecture are the system's. */
	unsigned revision;
	JhArch arch;

	char name[JH_NAME_SIZE];
	uint32_t id; /* set by the driver; 0 in files */
	uint32_t flags;
	uint32_t vpci_irq_base;
	uint64_t cpu_reset_address;
	uint64_t msg_reply_timeout;
	JhConsole console;

	uint8_t *cpu_set; /* bitmap, bit n of byte n / 8 is CPU n */
	uint32_t cpu_set_size;
	JhMemory *memory;
	uint32_t n_memory;
	JhCache *cache;
	uint32_t n_cache;
	JhIrqchip *irqchips;
	uint32_t n_irqchips;
	JhPio *pio;
	uint32_t n_pio;
	JhPciDevice *pci_devices;
	uint32_t n_pci_devices;
	JhPciCap *pci_caps;
	uint32_t n_pci_caps;
	uint32_t *stream_ids;
	uint32_t n_stream_ids;
} JhCellConfig;

typedef struct JhPlatformX86 {
	uint16_t pm_timer_address;
	uint8_t apic_mode;
	uint32_t vtd_interrupt_limit;
	uint32_t tsc_khz;
	uint32_t apic_khz;
} JhPlatformX86;

typedef struct JhPlatformArm {
	uint8_t maintenance_irq;
	uint8_t gic_version;
	uint64_t gicd_base;
	uint64_t gicc_base;
	uint64_t gich_base;
	uint64_t gicv_base;
	uint64_t gicr_base;
} JhPlatformArm;

typedef struct JhSystemConfig {
	unsigned revision;
	JhArch arch;
	uint32_t flags;
	JhMemory hypervisor_memory;
	JhConsole debug_console;

	uint64_t pci_mmconfig_base;
	uint8_t pci_mmconfig_end_bus;
	uint8_t pci_is_virtual;
	uint16_t pci_domain;
	JhIommu iommu_units[JH_MAX_IOMMU_UNITS];
	JhPlatform platform; /* x86 or arm below; rev 14: follows arch */
	JhPlatformX86 x86;
	JhPlatformArm arm;

	JhCellConfig root_cell;
} JhSystemConfig;

const char *jh_arch_to_string(JhArch a);
JhArch jh_arch_from_string(const char *s); /* JH_ARCH_UNSPEC if unknown */
const char *jh_config_kind_to_string(JhConfigKind k);
/* x86 → x86, arm and arm64 → arm, else UNSPEC. */
JhPlatform jh_arch_platform(JhArch a);

/* The kind and revision a file's header claims, checked: signature,
 * revision 12..14 and their agreement. */
int jh_config_identify(const void *data, size_t size, JhConfigKind *ret_kind, unsigned *ret_revision, char *err,
                       size_t err_size);

/*
 * Decodes a whole file. arch: JH_ARCH_UNSPEC accepts what a rev-14 file
 * says and leaves rev-12/13 files unspecified (a system config's platform
 * half is then inferred: x86 when its root cell has PIO regions, else arm,
 * and the other half is tried when that leaves non-zero bytes); any other
 * value is required of a rev-14 file and assumed for older ones.
 */
int jh_cell_config_decode(const void *data, size_t size, JhArch arch, JhCellConfig **ret, char *err, size_t err_size);
int jh_system_config_decode(const void *data, size_t size, JhArch arch, JhSystemConfig **ret, char *err,
                            size_t err_size);

/* Encodes at the model's revision (and, rev 14, architecture). *ret_data
 * is malloc'ed. */
int jh_cell_config_encode(const JhCellConfig *c, uint8_t **ret_data, size_t *ret_size, char *err, size_t err_size);
int jh_system_config_encode(const JhSystemConfig *s, uint8_t **ret_data, size_t *ret_size, char *err,
                            size_t err_size);

/* An empty model (the given revision and architecture, no regions). */
JhCellConfig *jh_cell_config_new(unsigned revision, JhArch arch);
JhSystemConfig *jh_system_config_new(unsigned revision, JhArch arch);
/* Both accept NULL and half-built models; they return NULL. */
JhCellConfig *jh_cell_config_free(JhCellConfig *c);
JhSystemConfig *jh_system_config_free(JhSystemConfig *s);
/* Frees a cell's arrays, leaving it empty (for the embedded root cell). */
void jh_cell_config_clear(JhCellConfig *c);

/* Whether CPU n is in the cell's set. */
bool jh_cell_config_has_cpu(const JhCellConfig *c, unsigned cpu);
