/* SPDX-License-Identifier: MIT */
/*
 * Entry of a warden arm64 inmate, and its vector table.
 *
 * Jailhouse resets the cell's CPU to the image's first byte at EL1h with
 * the MMU off and DAIF masked; the stack pointer and the rest are whatever
 * they are. So: mask again (true for any loader), put SCTLR_EL1 into a
 * known state, take the stack at the top of RAM, install the vectors,
 * clear .bss (a restart reloads the image, not what the last run left
 * behind it) and call inmate_start().
 */

/* SCTLR_EL1: the ARMv8.0 RES1 bits (29, 28, 23, 22, 20, 11) and I (12).
 * M, C, A and SA stay 0: MMU, data cache and alignment checks off, little
 * endian. The instruction cache is harmless with the MMU off. */
#define SCTLR_VALUE_HI 0x30d0
#define SCTLR_VALUE_LO 0x1800

	.section .entry, "ax"
	.globl	_start
_start:
	msr	daifset, #0xf
	movz	x0, #SCTLR_VALUE_HI, lsl #16
	movk	x0, #SCTLR_VALUE_LO
	msr	sctlr_el1, x0
	isb

	adr	x0, __stack_top
	mov	sp, x0
	adr	x0, vectors
	msr	vbar_el1, x0
	isb

	/* inmate.ld aligns both ends to 16 bytes. */
	adr	x0, __bss_start
	adr	x1, __bss_end
1:	cmp	x0, x1
	b.hs	2f
	stp	xzr, xzr, [x0], #16
	b	1b
2:
	bl	inmate_start

park:
	msr	daifset, #0xf
	wfi
	b	park

/* ---- vector table ------------------------------------------------------ */

/* 16 entries of 128 bytes: {current EL with SP_EL0, current EL with SPx,
 * lower EL AArch64, lower EL AArch32} x {synchronous, IRQ, FIQ, SError}.
 * Interrupts stay masked, so every entry taken is a fault: pass its index
 * and the syndrome to inmate_trap() on a fresh stack (the fault may be the
 * stack's own). */
	.balign	2048
vectors:
	.irp	n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
	.balign	128
	mov	x0, #\n
	b	trap_entry
	.endr

trap_entry:
	mrs	x1, esr_el1
	mrs	x2, elr_el1
	mrs	x3, far_el1
	adr	x4, __stack_top
	mov	sp, x4
	bl	inmate_trap
	b	park

	.section .note.GNU-stack, "", @progbits
