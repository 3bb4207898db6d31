/* SPDX-License-Identifier: MIT */
/*
 * Find the comm region when no boot info says where it is: on a QEMU board
 * the daemon attaches it as an ivshmem-plain device, and the firmware has
 * already placed and enabled its BARs by the time a multiboot image runs.
 */
#include "internal.h"

#define PCI_CONFIG_ADDR 0xcf8
#define PCI_CONFIG_DATA 0xcfc
#define PCI_VENDOR_REDHAT_QUMRANET 0x1af4
#define PCI_DEVICE_IVSHMEM 0x1110
#define PCI_COMMAND_MEMORY 0x2
#define PCI_BAR_MEM_TYPE_MASK 0x6
#define PCI_BAR_MEM_TYPE_64 0x4

static uint32_t pci_read(unsigned int dev, unsigned int reg)
{
	outl(PCI_CONFIG_ADDR, 0x80000000u | dev << 11 | (reg & 0xfc));
	return inl(PCI_CONFIG_DATA);
}

static void pci_write(unsigned int dev, unsigned int reg, uint32_t v)
{
	outl(PCI_CONFIG_ADDR, 0x80000000u | dev << 11 | (reg & 0xfc));
	outl(PCI_CONFIG_DATA, v);
}

/* Size of a 32-bit memory BAR by the usual all-ones probe, with memory
 * decoding off meanwhile so that nothing answers at the probe address. */
static uint64_t bar_size(unsigned int dev, unsigned int reg, uint32_t cmd)
{
	uint32_t orig = pci_read(dev, reg), mask;

	pci_write(dev, 0x04, cmd & ~PCI_COMMAND_MEMORY);
	pci_write(dev, reg, 0xffffffffu);
	mask = pci_read(dev, reg) & ~0xfu;
	pci_write(dev, reg, orig);
	pci_write(dev, 0x04, cmd);
	return mask ? (uint64_t)(~mask + 1u) : 0;
}

uint64_t pci_find_ivshmem(uint64_t *ret_size)
{
	/* Bus 0 only: that is where QEMU's pc and q35 put plugged devices
	 * unless told otherwise. */
	for (unsigned int dev = 0; dev < 32; dev++) {
		uint32_t id = pci_read(dev, 0x00), cmd, bar, hi = 0;

		if ((id & 0xffff) != PCI_VENDOR_REDHAT_QUMRANET ||
		    id >> 16 != PCI_DEVICE_IVSHMEM)
			continue;
		cmd = pci_read(dev, 0x04);
		bar = pci_read(dev, 0x18); /* BAR2: the shared memory */
		if ((bar & PCI_BAR_MEM_TYPE_MASK) == PCI_BAR_MEM_TYPE_64)
			hi = pci_read(dev, 0x1c);
		/* Above 4 GiB is outside the identity map. */
		if (!(cmd & PCI_COMMAND_MEMORY) || hi || !(bar & ~0xfu))
			return 0;
		*ret_size = bar_size(dev, 0x18, cmd);
		return bar & ~0xfu;
	}
	return 0;
}
