/* SPDX-License-Identifier: MIT */
#include "persist.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cell.h"
#include "macro.h"
#include "manager.h"

int mkdir_p(const char *path, unsigned mode) {
	char buf[4096];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof buf)
		return -EINVAL;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int read_text_file(const char *path, char **ret) {
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t n = 0, cap = 0;

	if (!f)
		return -errno;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			char *nb;
			cap = cap ? cap * 2 : 8192;
			if (cap > (16u << 20)) {
				free(buf);
				return -EFBIG;
			}
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
		}
		size_t k = fread(buf + n, 1, 4096, f);
		n += k;
		if (k < 4096)
			break;
	}
	if (ferror(f)) {
		free(buf);
		return -EIO;
	}
	buf[n] = 0;
	*ret = buf;
	return 0;
}

int fsync_dir_of(const char *path) {
	char buf[4096];
	_cleanup_close_ int fd = -1;

	if (strlen(path) >= sizeof buf)
		return -ENAMETOOLONG;
	strcpy(buf, path);
	fd = open(dirname(buf), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return fsync(fd) < 0 ? -errno : 0;
}

int write_file_atomic(const char *path, const void *data, size_t size, unsigned mode) {
	char tmp[4096];
	_cleanup_close_ int fd = -1;
	const char *p = data;
	int r;

	if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	while (size > 0) {
		ssize_t w = write(fd, p, size);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto fail;
		}
		p += w;
		size -= (size_t)w;
	}
	if (fsync(fd) < 0) {
		r = -errno;
		goto fail;
	}
	if (rename(tmp, path) < 0) {
		r = -errno;
		goto fail;
	}
	return fsync_dir_of(path);
fail:
	unlink(tmp);
	return r;
}

int write_json_atomic(const char *path, json_t *j) {
	_cleanup_free_ char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (!s)
		return -ENOMEM;
	return write_file_atomic(path, s, strlen(s), 0644);
}

static int cell_state_path(Cell *c, char *buf, size_t n, bool create_dir) {
	Manager *m = cell_manager(c);
	int r;

	if (!manager_state_dir(m))
		return -ENOENT;
	if (snprintf(buf, n, "%s/cells/%s", manager_state_dir(m), cell_name(c)) >= (int)n)
		return -ENAMETOOLONG;
	if (create_dir && (r = mkdir_p(buf, 0755)) < 0)
		return r;
	strncat(buf, "/supervision.json", n - strlen(buf) - 1);
	return 0;
}

int persist_save_cell(Cell *c) {
	char path[4096];
	json_t *j;
	int r;

	r = cell_state_path(c, path, sizeof path, true);
	if (r < 0)
		return r;
	j = cell_supervision_to_json(c);
	if (!j)
		return -ENOMEM;
	r = write_json_atomic(path, j);
	json_decref(j);
	return r;
}

int persist_load_cell(Cell *c) {
	char path[4096];
	json_error_t je;
	json_t *j;
	int r;

	r = cell_state_path(c, path, sizeof path, false);
	if (r < 0)
		return r;
	j = json_load_file(path, 0, &je);
	if (!j)
		return access(path, F_OK) < 0 ? -ENOENT : -EBADMSG;
	cell_supervision_from_json(c, j);
	json_decref(j);
	return 0;
}
