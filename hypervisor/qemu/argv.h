/* SPDX-License-Identifier: MIT */
/*
 * What a cell spec becomes on QEMU's command line: which specs this board
 * can run at all, the argv (see README.md for every option and why), and
 * the firmware it boots with. Pure but for the file checks; only
 * hypervisor/qemu/ includes this.
 */
#ifndef WARDEN_QEMU_ARGV_H
#define WARDEN_QEMU_ARGV_H

#include <stdbool.h>
#include <stdint.h>

#include "../backend.h"
#include "../process.h"

/* The board every cell of a backend runs on. */
typedef struct QemuMachine {
	const char *binary;   /* qemu-system-x86_64, absolute */
	const char *machine;  /* -M */
	const char *accel;    /* "tcg" or "kvm" */
	const char *firmware; /* -bios, or NULL for QEMU's default */
} QemuMachine;

/* A value fit for a QEMU option list: 1..64 of [A-Za-z0-9._-]. */
bool qemu_option_value_valid(const char *s);
/* 0, -EINVAL for a spec this board cannot run, or the access() error of
 * the kernel or initrd. */
int qemu_config_check(const BackendCellConfig *cfg);
/* Guest RAM: every memory region but the comm region, in MiB. */
uint64_t qemu_ram_mib(const BackendCellConfig *cfg);
/* qboot beside the binary, or NULL (QEMU's default, SeaBIOS). */
char *qemu_find_firmware(const char *binary);

/* Start QEMU for the cell in dir_fd (its working directory), paused (-S)
 * and with the QMP socket qmp.sock listening before it runs, as proc.
 * Returns once QEMU was executed; ready is QMP's business. */
int qemu_spawn(const QemuMachine *m, const char *name, const BackendCellConfig *cfg, int dir_fd,
	       ChildProcess *proc);

#endif /* WARDEN_QEMU_ARGV_H */
