/* SPDX-License-Identifier: MIT */
/*
 * The files in a qemu cell's directory. Never logs; returns negative
 * errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../api/warden/apps.h"
#include "../backend-internal.h"
#include "cellfiles.h"

#define CONSOLE_ROTATE_BYTES (1u << 20)

/* ---- image identity ------------------------------------------------- */

int image_id_take(const char *path, ImageId *ret)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	*ret = (ImageId){
		.set = true,
		.dev = (uint64_t)st.st_dev,
		.ino = (uint64_t)st.st_ino,
		.size = (uint64_t)st.st_size,
		.mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000ull + (uint64_t)st.st_mtim.tv_nsec,
	};
	return 0;
}

bool image_id_changed(const char *path, const ImageId *id)
{
	ImageId now = { 0 };

	if (!path || !id->set)
		return false;
	if (image_id_take(path, &now) < 0)
		return true;
	return now.dev != id->dev || now.ino != id->ino || now.size != id->size ||
	       now.mtime_ns != id->mtime_ns;
}

/* ---- backend-state -------------------------------------------------- */

int cellfiles_record_save(int dir_fd, const QemuRecord *rec)
{
	char buf[2 * PATH_MAX + 256];
	int len = 0, fd, r = 0;

	len = snprintf(buf, sizeof(buf), "boots %" PRIu64 "\n", rec->boots);
	for (int i = 0; i < 2; i++) {
		const char *path = i ? rec->initrd : rec->kernel;
		const ImageId *id = i ? &rec->initrd_id : &rec->kernel_id;
		if (!path || !id->set)
			continue;
		len += snprintf(buf + len, sizeof(buf) - (size_t)len,
				"%s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %s\n",
				i ? "initrd" : "kernel", id->dev, id->ino, id->size, id->mtime_ns, path);
		if (len >= (int)sizeof(buf))
			return -ENAMETOOLONG;
	}
	fd = openat(dir_fd, QEMU_FILE_STATE ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	ssize_t k = write(fd, buf, (size_t)len);
	if (k < 0)
		r = -errno;
	else if (k != len)
		r = -EIO;
	close(fd);
	if (r == 0 && renameat(dir_fd, QEMU_FILE_STATE ".tmp", dir_fd, QEMU_FILE_STATE) < 0)
		r = -errno;
	return r;
}

void cellfiles_record_load(int dir_fd, QemuRecord *rec)
{
	char line[PATH_MAX + 128], path[PATH_MAX];
	int fd = openat(dir_fd, QEMU_FILE_STATE, O_RDONLY | O_CLOEXEC);
	FILE *f;

	if (fd < 0)
		return;
	f = fdopen(fd, "re");
	if (!f) {
		close(fd);
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		ImageId id = { .set = true };
		char what[8];
		if (sscanf(line, "boots %" SCNu64, &rec->boots) == 1)
			continue;
		if (sscanf(line, "%7s %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %4095[^\n]", what,
			   &id.dev, &id.ino, &id.size, &id.mtime_ns, path) != 6)
			continue;
		char **dst = strcmp(what, "kernel") == 0 ? &rec->kernel :
			     strcmp(what, "initrd") == 0 ? &rec->initrd : NULL;
		if (!dst || *dst)
			continue;
		*dst = strdup(path);
		if (*dst)
			*(dst == &rec->kernel ? &rec->kernel_id : &rec->initrd_id) = id;
	}
	fclose(f);
}

void cellfiles_record_clear(QemuRecord *rec)
{
	free(rec->kernel);
	free(rec->initrd);
	*rec = (QemuRecord){ 0 };
}

/* ---- comm region ---------------------------------------------------- */

int cellfiles_comm_map(int dir_fd, size_t size, bool create, volatile struct warden_comm **ret,
		       size_t *ret_size)
{
	int fd, r = 0;
	void *p;

	fd = openat(dir_fd, QEMU_FILE_COMM, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0600);
	if (fd < 0)
		return -errno;
	if (create && ftruncate(fd, (off_t)size) < 0) {
		r = -errno;
		goto out;
	}
	if (!create) {
		struct stat st;
		if (fstat(fd, &st) < 0) {
			r = -errno;
			goto out;
		}
		size = (size_t)st.st_size;
		if (size < WARDEN_COMM_SIZE) {
			r = -EPROTO;
			goto out;
		}
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		r = -errno;
		goto out;
	}
	*ret = p;
	*ret_size = size;
out:
	close(fd);
	return r;
}

/* A stale PANICKED or HALTED must never be read as the new boot's. The
 * mailbox stays; the inmate takes its cmd_seq as handled when it boots. */
void cellfiles_comm_clear_inmate(volatile struct warden_comm *comm)
{
	warden_comm_clear_inmate(comm);
}

/* ---- console -------------------------------------------------------- */

int cellfiles_console_new(int dir_fd)
{
	int fd;

	/* The newest logs are kept for the next life as NAME.1. */
	(void)renameat(dir_fd, QEMU_FILE_CONSOLE, dir_fd, QEMU_FILE_CONSOLE_OLD);
	(void)renameat(dir_fd, QEMU_FILE_LOG, dir_fd, QEMU_FILE_LOG_OLD);
	fd = openat(dir_fd, QEMU_FILE_CONSOLE, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, LOG_FILE_MODE);
	if (fd < 0)
		return -errno;
	close(fd);
	return cellfiles_console_open(dir_fd);
}

int cellfiles_console_open(int dir_fd)
{
	int fd = openat(dir_fd, QEMU_FILE_CONSOLE, O_RDONLY | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* QEMU appends (O_APPEND): the file can be cut without QEMU noticing. */
void cellfiles_console_rotate(int dir_fd, int console_fd)
{
	struct stat st;
	char buf[65536];
	int out;
	off_t off = 0;

	if (console_fd < 0 || fstat(console_fd, &st) < 0 || st.st_size < CONSOLE_ROTATE_BYTES)
		return;
	out = openat(dir_fd, QEMU_FILE_CONSOLE_OLD, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, LOG_FILE_MODE);
	if (out < 0)
		return;
	for (;;) {
		ssize_t n = pread(console_fd, buf, sizeof(buf), off);
		if (n <= 0 || write(out, buf, (size_t)n) != n)
			break;
		off += n;
	}
	close(out);
	/* What QEMU wrote between the copy and the cut is lost: a few bytes,
	 * once per MiB of console output. */
	int w = openat(dir_fd, QEMU_FILE_CONSOLE, O_WRONLY | O_CLOEXEC);
	if (w >= 0) {
		(void)!ftruncate(w, 0);
		close(w);
	}
}

/* The tail of console.log, preceded by the tail of console.log.1 when the
 * current file is shorter than asked for. */
ssize_t cellfiles_console_read(int dir_fd, int console_fd, char *buf, size_t n)
{
	struct stat st;
	size_t cur, old_part = 0;
	ssize_t k;

	if (console_fd < 0 || fstat(console_fd, &st) < 0)
		return console_fd < 0 ? 0 : -errno;
	cur = (size_t)st.st_size;
	if (cur < n) {
		int fd = openat(dir_fd, QEMU_FILE_CONSOLE_OLD, O_RDONLY | O_CLOEXEC);
		struct stat ost;
		if (fd >= 0 && fstat(fd, &ost) == 0) {
			size_t want = n - cur, have = (size_t)ost.st_size;
			size_t take = want < have ? want : have;
			k = pread(fd, buf, take, (off_t)(have - take));
			old_part = k > 0 ? (size_t)k : 0;
		}
		if (fd >= 0)
			close(fd);
	}
	size_t take = cur < n - old_part ? cur : n - old_part;
	k = pread(console_fd, buf + old_part, take, (off_t)(cur - take));
	if (k < 0)
		return -errno;
	return (ssize_t)old_part + k;
}

void cellfiles_remove_runtime(int dir_fd)
{
	static const char *const files[] = { QEMU_FILE_QMP, QEMU_FILE_PID, QEMU_FILE_COMM, QEMU_FILE_STATE };

	/* The logs stay for a post-mortem; the next create keeps them as .1. */
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		(void)unlinkat(dir_fd, files[i], 0);
}
