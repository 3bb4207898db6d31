/* SPDX-License-Identifier: MIT */
/*
 * Start code of a warden inmate: the two ways in (warden-kvm's 64-bit entry
 * at the image's first byte, a multiboot v1 loader's 32-bit entry), the CPU
 * tables, the exception and service gates, and the drop to ring 3.
 *
 * Ring-0 instructions are emulated one by one on the nested KVM of the
 * build machines (~1.3 M/s), so the common path below is straight-line and
 * every table is built by the assembler instead of by a loop at boot. That
 * works because the whole section lies in the 64 KiB above IMAGE_BASE
 * (inmate.ld asserts it): a handler's address is then IMAGE_BASE plus an
 * offset the assembler knows, which fills the split address fields of a
 * gate or a TSS descriptor.
 */
#include "internal.h"

#define IMAGE_BASE 0x100000
#define IMAGE_BASE_HI16 0x0010 /* IMAGE_BASE >> 16 */

#define MB_MAGIC 0x1badb002
#define MB_FLAGS 0x00010000 /* bit 16: the address fields are valid */

#define MSR_EFER 0xc0000080
#define EFER_LME 0x100
#define CR0_PE 0x1
#define CR0_PG 0x80000000
#define CR4_PAE 0x20
#define PTE_PRESENT_RW_USER 0x7
#define PDE_2M 0x87 /* present, writable, user, 2 MiB page */

#define RFLAGS_RING3 0x3002 /* IOPL 3 (ports, cli from ring 3), IF clear */

	.section .entry, "awx"
	.code64
	.globl	_start
_start:
	/* warden-kvm enters here, in long mode: %rdi = boot info, %rsi =
	 * WARDEN_BOOT_MAGIC, %rsp = 0. Jump over the multiboot header,
	 * which has to sit within the first 8 KiB. */
	jmp	entry64

	.balign	4
multiboot_header:
	.long	MB_MAGIC
	.long	MB_FLAGS
	.long	-(MB_MAGIC + MB_FLAGS)
	.long	multiboot_header	/* header_addr */
	.long	_start			/* load_addr: the file's first byte */
	.long	0			/* load_end_addr: the whole file */
	.long	__image_end		/* bss_end_addr: keep the loader's data off
					 * the stacks and page tables */
	.long	multiboot_entry		/* entry_addr */

entry64:
	cli
	cld
	/* The boot CPU takes the tables below; CPU 1 has its own stacks and
	 * TSS (secondary64) and serves smp.c; any other vCPU stops before
	 * it touches anything. */
	movabs	$INMATE_BOOT_MAGIC, %rax
	cmp	%rax, %rsi
	jne	common64
	cmpl	$0, 12(%rdi)		/* warden_bootinfo.cpu */
	jne	secondary64

common64:
	/* %rdi, %rsi: the loader's pointer and magic, passed through to
	 * inmate_start() untouched. */
	lea	kstack_top(%rip), %rsp
	lgdt	gdt_ptr(%rip)
	mov	$INMATE_SEL_KDATA, %eax
	mov	%eax, %ss
	xor	%eax, %eax
	mov	%eax, %fs
	mov	%eax, %gs
	pushq	$INMATE_SEL_KCODE
	lea	1f(%rip), %rax
	push	%rax
	lretq				/* reload %cs from our GDT */
1:
	mov	$INMATE_SEL_TSS, %eax
	ltr	%ax
	lidt	idt_ptr(%rip)

	/* To ring 3 with IOPL 3 and interrupts off: port I/O and cli work,
	 * and the CPU runs natively from here on. (The nested KVM of the
	 * build machines runs ring 3 with IOPL 0 and IF 1 whatever the frame
	 * says; the TSS I/O bitmap keeps the ports open there, and without
	 * an interrupt controller IF does not matter.) */
	mov	$(INMATE_SEL_UDATA | 3), %eax
	mov	%eax, %ds
	mov	%eax, %es
	pushq	$(INMATE_SEL_UDATA | 3)
	lea	ustack_top(%rip), %rax
	push	%rax
	pushq	$RFLAGS_RING3
	pushq	$(INMATE_SEL_UCODE | 3)
	lea	ring3_entry(%rip), %rax
	push	%rax
	iretq

park:
	cli
	hlt
	jmp	park

/* CPU 1 on warden-kvm: the same road to ring 3 on its own stacks and TSS,
 * then inmate_secondary() (smp.c) with %rdi = its boot info. */
secondary64:
	cmpl	$1, 12(%rdi)
	jne	park
	lea	kstack1_top(%rip), %rsp
	lgdt	gdt_ptr(%rip)
	mov	$INMATE_SEL_KDATA, %eax
	mov	%eax, %ss
	xor	%eax, %eax
	mov	%eax, %fs
	mov	%eax, %gs
	pushq	$INMATE_SEL_KCODE
	lea	1f(%rip), %rax
	push	%rax
	lretq
1:
	mov	$INMATE_SEL_TSS1, %eax
	ltr	%ax
	lidt	idt_ptr(%rip)
	mov	$(INMATE_SEL_UDATA | 3), %eax
	mov	%eax, %ds
	mov	%eax, %es
	pushq	$(INMATE_SEL_UDATA | 3)
	lea	ustack1_top(%rip), %rax
	push	%rax
	pushq	$RFLAGS_RING3
	pushq	$(INMATE_SEL_UCODE | 3)
	lea	ring3_secondary(%rip), %rax
	push	%rax
	iretq

/* ---- exceptions and services (ring 0) -------------------------------- */

/* Vectors where the CPU pushes an error code. */
#define HAS_ERROR(v) ((v) == 8 || (v) == 10 || (v) == 11 || (v) == 12 || \
		      (v) == 13 || (v) == 14 || (v) == 17 || (v) == 21 || \
		      (v) == 29 || (v) == 30)

	.macro	trap_stub vec
trap_\vec:
	.if	!HAS_ERROR(\vec)
	pushq	$0
	.endif
	pushq	$\vec
	jmp	trap_common
	.endm

	.irp	v, 0,1,2,3,4,5,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	trap_stub \v
	.endr

/* #UD, with a detour: the nested KVM of the build machines turns `int n`
 * in ring 3 into #UD instead of going through the gate, so an #UD on an
 * `int $INMATE_SVC_VECTOR` from ring 3 is the service call it meant. */
trap_6:
	testb	$3, 8(%rsp)		/* the frame's %cs: from ring 3? */
	jz	1f
	push	%rdx
	mov	8(%rsp), %rdx		/* the frame's %rip */
	cmpw	$(0x00cd | INMATE_SVC_VECTOR << 8), (%rdx)
	pop	%rdx
	jne	1f
	addq	$2, (%rsp)		/* return past the int, as the gate would */
	jmp	svc_entry
1:
	pushq	$0
	pushq	$6
	jmp	trap_common

trap_common:
	/* Fatal by design: inmate_trap() records and stops, so there is no
	 * register state to save for a return. */
	cld
	mov	%rsp, %rdi
	and	$-16, %rsp
	call	inmate_trap
	jmp	park

/* int $INMATE_SVC_VECTOR from ring 3, service number in %eax. */
svc_entry:
	cmp	$INMATE_SVC_HLT, %eax
	je	park
	cmp	$INMATE_SVC_TRIPLE_FAULT, %eax
	je	1f
	mov	$-1, %eax		/* unknown service */
	iretq
1:
	/* No IDT at all: the #UD cannot be delivered, nor can the #GP or
	 * the #DF that follow, and the CPU shuts down. (ud2, not int3: the
	 * nested KVM's ring-0 emulator cannot execute int.) */
	lidt	idt_null(%rip)
	ud2
	jmp	park

/* ---- multiboot v1 entry ---------------------------------------------- */

	.code32
multiboot_entry:
	/* Protected mode, paging off, %eax = loader magic, %ebx = multiboot
	 * info, no usable stack or GDT. Build an identity map of the first
	 * 4 GiB with 2 MiB pages (user-accessible, like warden-kvm's), enter
	 * long mode and join the 64-bit path. */
	cli
	cld
	mov	%eax, %esi
	mov	%ebx, %ebp
	lgdt	gdt_ptr			/* a 32-bit lgdt uses the low 4 base bytes */
	mov	$INMATE_SEL_KDATA, %eax
	mov	%eax, %ds
	mov	%eax, %es
	mov	%eax, %ss

	mov	$mb_pml4, %edi		/* PML4 and PDPT are adjacent */
	mov	$(2 * 4096 / 4), %ecx
	xor	%eax, %eax
	rep stosl
	movl	$(mb_pdpt + PTE_PRESENT_RW_USER), mb_pml4
	movl	$(mb_pd + 0x0000 + PTE_PRESENT_RW_USER), mb_pdpt + 0
	movl	$(mb_pd + 0x1000 + PTE_PRESENT_RW_USER), mb_pdpt + 8
	movl	$(mb_pd + 0x2000 + PTE_PRESENT_RW_USER), mb_pdpt + 16
	movl	$(mb_pd + 0x3000 + PTE_PRESENT_RW_USER), mb_pdpt + 24
	mov	$mb_pd, %edi
	mov	$PDE_2M, %eax
	mov	$2048, %ecx
2:
	mov	%eax, (%edi)
	movl	$0, 4(%edi)
	add	$0x200000, %eax
	add	$8, %edi
	loop	2b

	mov	$mb_pml4, %eax
	mov	%eax, %cr3
	mov	%cr4, %eax
	or	$CR4_PAE, %eax
	mov	%eax, %cr4
	mov	$MSR_EFER, %ecx
	rdmsr
	or	$EFER_LME, %eax
	wrmsr
	mov	%cr0, %eax
	or	$(CR0_PG | CR0_PE), %eax
	mov	%eax, %cr0
	ljmp	$INMATE_SEL_KCODE, $multiboot_long

	.code64
multiboot_long:
	mov	%ebp, %edi		/* multiboot info, zero-extended */
	mov	%esi, %esi		/* loader magic, zero-extended */
	jmp	common64

/* ---- tables ---------------------------------------------------------- */

	.balign	16
gdt:
	.quad	0
	.quad	0x00af9a000000ffff	/* 0x08 kernel code, 64-bit */
	.quad	0x00cf92000000ffff	/* 0x10 kernel data */
	.quad	0x00cff2000000ffff	/* 0x18 user data, DPL 3 */
	.quad	0x00affa000000ffff	/* 0x20 user code, 64-bit, DPL 3 */
gdt_tss:				/* 0x28 64-bit TSS, 16 bytes */
	.word	tss_end - tss - 1
	.word	tss - _start		/* base 15:0 (IMAGE_BASE's are 0) */
	.byte	IMAGE_BASE_HI16		/* base 23:16 */
	.byte	0x89			/* present, available 64-bit TSS */
	.byte	0
	.byte	0			/* base 31:24 */
	.long	0			/* base 63:32 */
	.long	0
gdt_tss1:				/* 0x38 CPU 1's TSS */
	.word	tss_end - tss1 - 1
	.word	tss1 - _start
	.byte	IMAGE_BASE_HI16
	.byte	0x89
	.byte	0
	.byte	0
	.long	0
	.long	0
gdt_end:

	.balign	8
	.word	0
gdt_ptr:
	.word	gdt_end - gdt - 1
	.quad	gdt

	/* CPU 1's TSS: its own rsp0, the same I/O bitmap (the iomap offset
	 * reaches over the boot CPU's TSS into it). */
	.balign	16
tss1:
	.long	0
	.quad	kstack1_top
	.quad	0, 0
	.quad	0
	.quad	0, 0, 0, 0, 0, 0, 0
	.quad	0
	.word	0
	.word	tss_iomap - tss1

	.balign	16
tss:
	.long	0
	.quad	kstack_top		/* rsp0: the stack for traps from ring 3 */
	.quad	0, 0			/* rsp1, rsp2 */
	.quad	0
	.quad	0, 0, 0, 0, 0, 0, 0	/* ist1..7 */
	.quad	0
	.word	0
	.word	tss_iomap - tss
tss_iomap:
	/* All ports open to ring 3. IOPL 3 would do that without a bitmap,
	 * but the nested KVM of the build machines runs ring 3 with IOPL 0
	 * whatever the image asks for; the bitmap is honoured there. It is
	 * part of the image, not built at boot: 8 KiB of zeros cost nothing
	 * to load and a lot to clear in emulated ring 0. */
	.fill	65536 / 8, 1, 0
	.byte	0xff			/* the CPU reads one byte past the end */
tss_end:

	.macro	gate handler, attr
	.word	\handler - _start	/* offset 15:0 */
	.word	INMATE_SEL_KCODE
	.byte	0			/* no IST */
	.byte	\attr
	.word	IMAGE_BASE_HI16		/* offset 31:16 */
	.long	0			/* offset 63:32 */
	.long	0
	.endm

	.balign	16
idt:
	.irp	v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	gate	trap_\v, 0x8e		/* interrupt gate, DPL 0 */
	.endr
	.fill	(INMATE_SVC_VECTOR - 32) * 16, 1, 0
	gate	svc_entry, 0xee		/* interrupt gate, DPL 3 */
idt_end:

	.balign	8
	.word	0
idt_ptr:
	.word	idt_end - idt - 1
	.quad	idt

	.balign	8
	.word	0
idt_null:
	.word	0
	.quad	0

	.globl	__entry_end
__entry_end:

/* ---- ring 3 ---------------------------------------------------------- */

	.text
ring3_entry:
	/* Clear .bss here, natively: an in-place restart reloads the image
	 * but not what the last run left behind it. */
	mov	%rdi, %r12
	mov	%rsi, %r13
	lea	__bss_start(%rip), %rdi
	lea	__bss_end(%rip), %rcx
	sub	%rdi, %rcx
	xor	%eax, %eax
	rep stosb
	mov	%r12, %rdi
	mov	%r13, %rsi
	call	inmate_start
	ud2

ring3_secondary:
	call	inmate_secondary
	ud2

/* ---- memory the loaders need not load or clear ----------------------- */

	.section .noinit, "aw", @nobits
	.balign	4096
mb_pml4:
	.skip	4096
mb_pdpt:
	.skip	4096
mb_pd:
	.skip	4 * 4096
	.globl	inmate_private_comm
inmate_private_comm:
	.skip	4096
	.balign	16
kstack:
	.skip	8192
kstack_top:
ustack:
	.skip	32768
ustack_top:
kstack1:
	.skip	8192
kstack1_top:
ustack1:
	.skip	32768
ustack1_top:

	.section .note.GNU-stack, "", @progbits
