/* SPDX-License-Identifier: MIT */
/*
 * Just enough GICv3 for the virtual timer to end a WFI: this CPU's
 * redistributor with PPI 27 enabled in group 1, and the CPU interface
 * through the system registers.
 *
 * In a Jailhouse cell the distributor and the redistributors are emulated:
 * writes to GICD_CTLR and GICR_IGROUPR0 are ignored (the root cell's Linux
 * set them up: group 1, affinity routing), the enable bits of this CPU's
 * own PPIs go through, and every CPU's GICR_TYPER can be read so that the
 * cell can find its own frame. The CPU interface is the virtual one. On
 * plain QEMU all of it starts from reset and is set up here.
 */
#include "internal.h"

#define GICD_CTLR 0x0000
/* The layout without security (qemu virt has no EL3): bit 1 enables
 * group 1, bit 4 is affinity routing (always on in qemu's model). */
#define GICD_CTLR_ENABLE_G1 (1u << 1)
#define GICD_CTLR_ARE (1u << 4)
#define GICD_CTLR_RWP (1u << 31)

/* Redistributor: RD_base, then SGI_base 64 KiB above it. GICv3 frames are
 * 128 KiB (GICv4 ones would be 256 KiB; the board has a GICv3). */
#define GICR_FRAME_SIZE 0x20000
#define GICR_MAX_FRAMES 512
#define GICR_TYPER 0x0008
#define GICR_TYPER_LAST (1u << 4)
#define GICR_WAKER 0x0014
#define GICR_WAKER_PROCESSOR_SLEEP (1u << 1)
#define GICR_WAKER_CHILDREN_ASLEEP (1u << 2)
#define GICR_PIDR2 0xffe8
#define GICR_SGI_BASE 0x10000
#define GICR_IGROUPR0 (GICR_SGI_BASE + 0x0080)
#define GICR_ISENABLER0 (GICR_SGI_BASE + 0x0100)
#define GICR_ICENABLER0 (GICR_SGI_BASE + 0x0180)

/* ICC_IAR1_EL1 values from 1020 up are special (1023: nothing pending). */
#define GIC_INTID_SPECIAL 1020
#define GIC_INTID_MASK 0xffffffu
/* Bound the drain: a level interrupt whose line stays up would come back
 * for ever. */
#define GIC_DRAIN_MAX 16

#define GIC_SPIN_MAX 100000

static uintptr_t gicr_rd;

/* The GICv3 addresses: Jailhouse's comm region's if the cell has one, else
 * qemu virt's. -ENODEV when the comm region tells of another GIC (the
 * Raspberry Pi 4 has a GICv2, GIC-400) or of none: in a cell an address
 * that no region maps fails the cell at its first read, so nothing is
 * probed then. */
static int gic_addresses(uintptr_t *ret_gicd, uintptr_t *ret_gicr)
{
	const uintptr_t jh = jh_comm_base();
	uint64_t d, r;

	if (!jh) {
		*ret_gicd = QEMU_VIRT_GICD_BASE;
		*ret_gicr = QEMU_VIRT_GICR_BASE;
		return 0;
	}
	if (mmio_read8(jh + JHCOMM_GIC_VERSION) != 3)
		return -ENODEV;
	d = mmio_read64(jh + JHCOMM_GICD_BASE);
	r = mmio_read64(jh + JHCOMM_GICR_BASE);
	if (!d || !r)
		return -ENODEV;
	*ret_gicd = (uintptr_t)d;
	*ret_gicr = (uintptr_t)r;
	return 0;
}

/* Walk the redistributor frames for the one whose affinity is this CPU's
 * MPIDR_EL1. */
static uintptr_t find_redist(uintptr_t rd)
{
	uint64_t mpidr;
	uint32_t aff;

	__asm__ volatile("mrs %0, mpidr_el1" : "=r"(mpidr));
	aff = (uint32_t)((mpidr >> 32) & 0xff) << 24 | (uint32_t)(mpidr & 0xffffff);

	for (unsigned int i = 0; i < GICR_MAX_FRAMES; i++, rd += GICR_FRAME_SIZE) {
		uint32_t arch = (mmio_read32(rd + GICR_PIDR2) >> 4) & 0xf;
		uint32_t typer_lo, typer_hi;

		if (arch != 3)
			return 0;
		/* Two 32-bit halves: Jailhouse emulates them one by one. */
		typer_lo = mmio_read32(rd + GICR_TYPER);
		typer_hi = mmio_read32(rd + GICR_TYPER + 4);
		if (typer_hi == aff)
			return rd;
		if (typer_lo & GICR_TYPER_LAST)
			return 0;
	}
	return 0;
}

static void spin_while_set(uintptr_t reg, uint32_t mask)
{
	for (int spin = GIC_SPIN_MAX; (mmio_read32(reg) & mask) && spin; spin--)
		cpu_relax();
}

int gic_init(void)
{
	const uint32_t ppi = 1u << TIMER_VIRT_PPI;
	uintptr_t gicd, gicr;
	uint32_t v;

	if (gic_addresses(&gicd, &gicr) < 0)
		return -ENODEV;
	gicr_rd = find_redist(gicr);
	if (!gicr_rd)
		return -ENODEV;

	/* Only where nobody did it: a distributor set up by the root cell
	 * is not ours to rewrite (and Jailhouse ignores the write). */
	v = mmio_read32(gicd + GICD_CTLR);
	if (!(v & GICD_CTLR_ENABLE_G1)) {
		mmio_write32(gicd + GICD_CTLR,
			     v | GICD_CTLR_ENABLE_G1 | GICD_CTLR_ARE);
		spin_while_set(gicd + GICD_CTLR, GICD_CTLR_RWP);
	}

	/* A redistributor comes out of reset asleep. */
	v = mmio_read32(gicr_rd + GICR_WAKER);
	if (v & GICR_WAKER_PROCESSOR_SLEEP) {
		mmio_write32(gicr_rd + GICR_WAKER,
			     v & ~GICR_WAKER_PROCESSOR_SLEEP);
		spin_while_set(gicr_rd + GICR_WAKER,
			       GICR_WAKER_CHILDREN_ASLEEP);
	}

	mmio_write32(gicr_rd + GICR_IGROUPR0,
		     mmio_read32(gicr_rd + GICR_IGROUPR0) | ppi);
	mmio_write32(gicr_rd + GICR_ISENABLER0, ppi);

	/* System register interface; EOImode 0 (a write to EOIR also
	 * deactivates); every priority passes; group 1 on. */
	__asm__ volatile("msr icc_sre_el1, %0; isb" : : "r"(7ul) : "memory");
	__asm__ volatile("msr icc_ctlr_el1, xzr" : : : "memory");
	__asm__ volatile("msr icc_pmr_el1, %0" : : "r"(0xfful) : "memory");
	__asm__ volatile("msr icc_igrpen1_el1, %0; isb" : : "r"(1ul) : "memory");
	return 0;
}

void gic_drain(void)
{
	for (int n = 0; n < GIC_DRAIN_MAX; n++) {
		uint64_t iar;

		__asm__ volatile("mrs %0, icc_iar1_el1" : "=r"(iar) : : "memory");
		if ((iar & GIC_INTID_MASK) >= GIC_INTID_SPECIAL)
			break;
		__asm__ volatile("msr icc_eoir1_el1, %0" : : "r"(iar) : "memory");
	}
	__asm__ volatile("isb" : : : "memory");
}

void gic_quiet(void)
{
	if (!gicr_rd)
		return;
	mmio_write32(gicr_rd + GICR_ICENABLER0, 1u << TIMER_VIRT_PPI);
	__asm__ volatile("msr icc_igrpen1_el1, xzr; isb" : : : "memory");
}
