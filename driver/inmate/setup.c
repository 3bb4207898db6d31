/* SPDX-License-Identifier: MIT */
/*
 * The C side of boot, in ring 3: work out who loaded us, what the
 * arguments are and where the comm region lives, then run main().
 */
#include "internal.h"

_Static_assert(INMATE_BOOT_MAGIC == WARDEN_BOOT_MAGIC,
	       "start.S checks the boot magic from internal.h");

struct inmate_env inmate_env;

/* The parts of the multiboot v1 info structure we read. */
struct multiboot_info {
	uint32_t flags;
	uint32_t mem_lower;
	uint32_t mem_upper;
	uint32_t boot_device;
	uint32_t cmdline;
};

static void copy_args(const char *src, size_t max)
{
	size_t n = strnlen(src, max);

	if (n >= sizeof(inmate_env.args))
		n = sizeof(inmate_env.args) - 1;
	memcpy(inmate_env.args, src, n);
	inmate_env.args[n] = '\0';
}

static void setup_warden(const struct warden_bootinfo *bi)
{
	inmate_env.bootinfo = bi;
	inmate_env.uart_fast = true;
	if (bi->tsc_khz)
		inmate_env.tsc_khz = bi->tsc_khz;
	if (bi->tsc_khz && bi->sync_mono_ns)
		inmate_env.flags |= WARDEN_FLAG_HOST_CLOCK;
	copy_args(bi->args, sizeof(bi->args));

	/* A comm region smaller than the ABI's would take writes past its
	 * end; run with the private page instead and let the daemon notice
	 * the missing heartbeat. */
	if (bi->comm_addr && bi->comm_size >= WARDEN_COMM_SIZE) {
		inmate_env.comm =
			(volatile struct warden_comm *)(uintptr_t)bi->comm_addr;
		inmate_env.comm_shared = true;
	}
}

static void setup_multiboot(uint64_t info_addr)
{
	const struct multiboot_info *mbi =
		(const struct multiboot_info *)(uintptr_t)info_addr;
	uint64_t addr, size;

	console_init();
	/* QEMU passes "<kernel path> <-append text>" as the command line;
	 * the key=value parser skips the path. */
	if (mbi && (mbi->flags & MULTIBOOT_INFO_CMDLINE) && mbi->cmdline)
		copy_args((const char *)(uintptr_t)mbi->cmdline,
			  WARDEN_BOOT_ARGS_LEN);

	addr = pci_find_ivshmem(&size);
	if (addr && size >= WARDEN_COMM_SIZE) {
		inmate_env.comm = (volatile struct warden_comm *)(uintptr_t)addr;
		inmate_env.comm_shared = true;
	}
}

void inmate_start(uint64_t boot_ptr, uint64_t boot_magic)
{
	const struct warden_bootinfo *bi =
		(const struct warden_bootinfo *)(uintptr_t)boot_ptr;
	int r;

	inmate_env.boot_tsc = tsc_read();
	inmate_env.tsc_khz = 0; /* calibrated on first use unless told */
	inmate_env.comm = &inmate_private_comm;

	if (boot_magic == WARDEN_BOOT_MAGIC && bi &&
	    bi->magic == WARDEN_BOOT_MAGIC && bi->version >= WARDEN_BOOT_VERSION)
		setup_warden(bi);
	else if (boot_magic == MULTIBOOT_LOADER_MAGIC)
		setup_multiboot(boot_ptr);

	if (!inmate_env.comm_shared)
		memset(&inmate_private_comm, 0, sizeof(inmate_private_comm));

	r = main();
	if (r != 0) {
		char reason[64];

		snprintk(reason, sizeof(reason), "main returned %d", r);
		hb_halt(reason);
	}
	hb_halt("main returned");
}

const struct warden_bootinfo *inmate_bootinfo(void)
{
	return inmate_env.bootinfo;
}

const char *inmate_args(void)
{
	return inmate_env.args;
}

volatile struct warden_comm *inmate_comm(void)
{
	return inmate_env.comm;
}

bool inmate_comm_shared(void)
{
	return inmate_env.comm_shared;
}
