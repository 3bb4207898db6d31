/* SPDX-License-Identifier: MIT */
/*
 * The files of a qemu cell, in runtime_dir/cells/NAME (README.md has the
 * table): the comm region QEMU and the daemon both map, the console log
 * and its rotation, and the backend-state record that lets a restarted
 * daemon know the boot count and which images QEMU read. QEMU runs with
 * the directory as its cwd and names the files relative. Every function
 * takes the directory's fd. Only hypervisor/qemu/ includes this.
 */
#ifndef WARDEN_QEMU_CELLFILES_H
#define WARDEN_QEMU_CELLFILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../../api/warden/comm.h"

#define QEMU_FILE_QMP "qmp.sock"
#define QEMU_FILE_PID "pid"
#define QEMU_FILE_COMM "comm"
#define QEMU_FILE_CONSOLE "console.log"
#define QEMU_FILE_CONSOLE_OLD "console.log.1"
#define QEMU_FILE_LOG "qemu.log"
#define QEMU_FILE_LOG_OLD "qemu.log.1"
#define QEMU_FILE_STATE "backend-state"

/* What a kernel or initrd file was when QEMU read it: QEMU keeps the
 * images it loaded at start-up, so a changed file needs a new process. */
typedef struct ImageId {
	bool set;
	uint64_t dev, ino, size, mtime_ns;
} ImageId;

int image_id_take(const char *path, ImageId *ret);
/* The file at path is no longer the one id describes (or is gone);
 * false when there is nothing to compare. */
bool image_id_changed(const char *path, const ImageId *id);

/* What backend-state keeps across a daemon restart. */
typedef struct QemuRecord {
	uint64_t boots;
	char *kernel; /* owned; NULL if unknown */
	char *initrd;
	ImageId kernel_id;
	ImageId initrd_id;
} QemuRecord;

/* Written whole (temp file, rename): a reader never sees half of it. */
int cellfiles_record_save(int dir_fd, const QemuRecord *rec);
/* Fills what the file has; a missing or unreadable file leaves rec alone. */
void cellfiles_record_load(int dir_fd, QemuRecord *rec);
void cellfiles_record_clear(QemuRecord *rec);

/* Map the comm file shared and read-write: created at `size` when
 * `create`, else at the size it has (-EPROTO below WARDEN_COMM_SIZE). */
int cellfiles_comm_map(int dir_fd, size_t size, bool create, volatile struct warden_comm **ret,
		       size_t *ret_size);
/* Zero the inmate's half, as a power-on would. */
void cellfiles_comm_clear_inmate(volatile struct warden_comm *comm);

/* A new life: keep the last QEMU's console and log as NAME.1, start an
 * empty console.log and return a read fd on it. */
int cellfiles_console_new(int dir_fd);
/* A read fd on console.log as it is (adoption). */
int cellfiles_console_open(int dir_fd);
/* Cut console.log to console.log.1 once it passes 1 MiB. */
void cellfiles_console_rotate(int dir_fd, int console_fd);
/* The newest n bytes, across console.log.1 and console.log. */
ssize_t cellfiles_console_read(int dir_fd, int console_fd, char *buf, size_t n);

/* Everything but the logs, which stay for a post-mortem. */
void cellfiles_remove_runtime(int dir_fd);

#endif /* WARDEN_QEMU_CELLFILES_H */
