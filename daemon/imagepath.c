/* SPDX-License-Identifier: MIT */
#include "imagepath.h"

#include <errno.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Appends "/" and the components of `tail` to buf (length *n), skipping
 * empty ones ("a//b", a trailing "/"). */
static int append_tail(char *buf, size_t *n, size_t size, const char *tail) {
	while (*tail) {
		size_t len;

		while (*tail == '/')
			tail++;
		len = strcspn(tail, "/");
		if (len == 0)
			break;
		if ((len == 1 && tail[0] == '.') || (len == 2 && tail[0] == '.' && tail[1] == '.'))
			return -EINVAL;
		if (*n + 1 + len >= size)
			return -ENAMETOOLONG;
		buf[(*n)++] = '/';
		memcpy(buf + *n, tail, len);
		*n += len;
		buf[*n] = 0;
		tail += len;
	}
	return 0;
}

int image_path_resolve(const char *path, char *ret, size_t size) {
	char head[PATH_MAX], real[PATH_MAX];
	size_t cut = strlen(path), n;
	int r;

	if (path[0] != '/')
		return -EINVAL;
	if (cut >= sizeof head)
		return -ENAMETOOLONG;
	memcpy(head, path, cut + 1);
	/* Shorten from the right until what is left exists; "/" always does. */
	while (!realpath(cut > 0 ? head : "/", real)) {
		char *slash;

		struct stat st;

		if (errno != ENOENT)
			return -errno;
		/* There but not resolvable: a symlink that leads nowhere yet
		 * could lead anywhere later. */
		if (cut > 0 && lstat(head, &st) == 0)
			return -ENOENT;
		head[cut] = 0;
		slash = strrchr(head, '/');
		cut = (size_t)(slash - head);
		*slash = 0;
	}
	n = strlen(real);
	if (n == 1)
		n = 0; /* "/" plus a tail: no double slash */
	if (n >= size)
		return -ENAMETOOLONG;
	memcpy(ret, real, n);
	ret[n] = 0;
	r = append_tail(ret, &n, size, path + cut);
	if (r < 0)
		return r;
	if (n == 0) {
		if (size < 2)
			return -ENAMETOOLONG;
		strcpy(ret, "/");
	}
	return 0;
}

int image_path_check(const char *path, char *const *dirs, size_t n_dirs, char *ret, size_t size) {
	int r = image_path_resolve(path, ret, size);

	if (r < 0)
		return r;
	for (size_t i = 0; i < n_dirs; i++) {
		char d[PATH_MAX];
		size_t len;

		/* A directory that cannot be resolved holds nothing. */
		if (image_path_resolve(dirs[i], d, sizeof d) < 0)
			continue;
		len = strlen(d);
		if (len == 1 || (strncmp(ret, d, len) == 0 && ret[len] == '/'))
			return 0;
	}
	return -EPERM;
}

static int check_image_dir(const char *file, const char *path, char *const *dirs, size_t n_dirs, char *err) {
	char resolved[PATH_MAX], list[256] = "";
	size_t n = 0;
	int r;

	if (file[0] != '/')
		return 0;
	r = image_path_check(file, dirs, n_dirs, resolved, sizeof resolved);
	if (r == 0)
		return 0;
	if (r == -EINVAL) {
		snprintf(err, CONFIG_ERROR_MAX, "%s: \"%s\" has \".\" or \"..\" in a part that does not exist", path,
		         file);
		return r;
	}
	if (r != -EPERM) {
		snprintf(err, CONFIG_ERROR_MAX, "%s: \"%s\" cannot be resolved: %s", path, file, strerror(-r));
		return r;
	}
	for (size_t i = 0; i < n_dirs && n < sizeof list; i++) {
		int k = snprintf(list + n, sizeof list - n, "%s\"%s\"", i ? ", " : "", dirs[i]);
		if (k < 0)
			break;
		n += (size_t)k;
	}
	snprintf(err, CONFIG_ERROR_MAX,
	         "%s: \"%s\" is outside the image directories (api.image_dirs: [%s]), after symlinks and \"..\"; "
	         "name an uploaded image or a file below one of them",
	         path, file, list);
	return -EPERM;
}

int image_path_check_spec(const CellSpec *s, const char *path, char *const *dirs, size_t n_dirs, char *err) {
	char p[320];
	int r;

	for (size_t i = 0; i < s->n_images; i++) {
		snprintf(p, sizeof p, "%s.images[%zu].file", path, i);
		if ((r = check_image_dir(s->images[i].file, p, dirs, n_dirs, err)) < 0)
			return r;
	}
	snprintf(p, sizeof p, "%s.linux.kernel", path);
	if (s->kernel && (r = check_image_dir(s->kernel, p, dirs, n_dirs, err)) < 0)
		return r;
	snprintf(p, sizeof p, "%s.linux.initrd", path);
	if (s->initrd && (r = check_image_dir(s->initrd, p, dirs, n_dirs, err)) < 0)
		return r;
	snprintf(p, sizeof p, "%s.linux.dtb", path);
	if (s->dtb && (r = check_image_dir(s->dtb, p, dirs, n_dirs, err)) < 0)
		return r;
	snprintf(p, sizeof p, "%s.container.rootfs", path);
	if (s->container && (r = check_image_dir(s->container->rootfs, p, dirs, n_dirs, err)) < 0)
		return r;
	/* The .cell is what the helper hands the driver, as root. */
	snprintf(p, sizeof p, "%s.jailhouse.cell_config", path);
	if (s->cell_config && (r = check_image_dir(s->cell_config, p, dirs, n_dirs, err)) < 0)
		return r;
	return 0;
}
