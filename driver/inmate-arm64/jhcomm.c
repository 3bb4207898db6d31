/* SPDX-License-Identifier: MIT */
/*
 * Whether the cell has Jailhouse's comm region. The console and the GIC
 * take their addresses from it; without it (plain QEMU) they use qemu
 * virt's.
 */
#include "internal.h"

uintptr_t jh_comm_base(void)
{
	const uintptr_t base = JAILHOUSE_COMM_BASE;

	if (!base)
		return 0;
	/* Byte by byte: the page is device memory with the MMU off. */
	for (size_t i = 0; i < sizeof(JHCOMM_SIGNATURE) - 1; i++)
		if (mmio_read8(base + i) != (uint8_t)JHCOMM_SIGNATURE[i])
			return 0;
	return base;
}
