/* SPDX-License-Identifier: MIT */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include "auth.h"
#include "imagepath.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "persist.h"

#define SHA_XATTR "user.warden.sha256"

/* STATE_DIR/LEAF without a cell; STATE_DIR/cells/CELL[/LEAF[/FILE]] with one. */
static int path_of(Manager *m, char *buf, size_t n, const char *leaf, const char *cell, const char *file) {
	int k;
	if (!cell)
		k = snprintf(buf, n, "%s/%s", manager_state_dir(m), leaf);
	else
		k = snprintf(buf, n, "%s/cells/%s%s%s%s%s", manager_state_dir(m), cell, leaf ? "/" : "",
		             leaf ? leaf : "", file ? "/" : "", file ? file : "");
	return k < 0 || (size_t)k >= n ? -ENAMETOOLONG : 0;
}

bool store_is_seeded(Manager *m) {
	char p[4096];
	return path_of(m, p, sizeof p, "seeded", NULL, NULL) == 0 && access(p, F_OK) == 0;
}

int store_mark_seeded(Manager *m) {
	static const char text[] = "The config file seeded this store; the store is authoritative now.\n";
	char p[4096];
	int r = path_of(m, p, sizeof p, "seeded", NULL, NULL);
	return r < 0 ? r : write_file_atomic(p, text, sizeof text - 1, 0644);
}

static int rm_rf_at(int parent, const char *name) {
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d;
	struct dirent *de;

	if (fd < 0)
		return unlinkat(parent, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			(void)rm_rf_at(dirfd(d), de->d_name);
	closedir(d);
	return unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT ? -errno : 0;
}

int store_reset(Manager *m) {
	char p[4096];
	int r;

	if ((r = path_of(m, p, sizeof p, "seeded", NULL, NULL)) < 0)
		return r;
	if (unlink(p) < 0 && errno != ENOENT)
		return -errno;
	if ((r = path_of(m, p, sizeof p, "cells", NULL, NULL)) < 0)
		return r;
	r = rm_rf_at(AT_FDCWD, p);
	return r < 0 ? r : fsync_dir_of(p);
}

static bool is_temp_name(const char *n) {
	return strstr(n, ".tmp.") != NULL || strncmp(n, ".upload-", 8) == 0;
}

static void sweep_dir(const char *dir, bool recurse) {
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char p[4096];
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= (int)sizeof p)
			continue;
		if (is_temp_name(de->d_name)) {
			if (unlink(p) == 0)
				log_info("Removed %s, left over by a daemon that was killed mid-write", p);
		} else if (recurse && de->d_type == DT_DIR)
			sweep_dir(p, true);
	}
	closedir(d);
}

void store_sweep(Manager *m) {
	char p[4096];
	sweep_dir(manager_state_dir(m), false);
	if (path_of(m, p, sizeof p, "cells", NULL, NULL) == 0)
		sweep_dir(p, true);
	if (path_of(m, p, sizeof p, "idempotency", NULL, NULL) == 0)
		sweep_dir(p, false);
}

int store_save_spec(Manager *m, const CellSpec *s, uint64_t revision) {
	char p[4096];
	json_t *j;
	int r;

	if ((r = path_of(m, p, sizeof p, NULL, s->name, NULL)) < 0)
		return r;
	if ((r = mkdir_p(p, 0755)) < 0)
		return r;
	if ((r = path_of(m, p, sizeof p, "spec.json", s->name, NULL)) < 0)
		return r;
	j = json_pack("{s:I, s:o}", "revision", (json_int_t)revision, "spec", cell_spec_to_json(s));
	if (!j)
		return -ENOMEM;
	r = write_json_atomic(p, j);
	json_decref(j);
	return r;
}

int store_remove_cell(Manager *m, const char *name) {
	char p[4096];
	int r;

	if ((r = path_of(m, p, sizeof p, "spec.json", name, NULL)) < 0)
		return r;
	if (unlink(p) < 0 && errno != ENOENT)
		return -errno;
	if ((r = fsync_dir_of(p)) < 0)
		return r;
	/* From here on the cell is gone for good; the rest is cleanup that a
	 * restart would also do. */
	if ((r = path_of(m, p, sizeof p, NULL, name, NULL)) < 0)
		return r;
	return rm_rf_at(AT_FDCWD, p);
}

int store_load_specs(Manager *m, json_t **ret) {
	char p[4096];
	json_t *a = json_array();
	DIR *d;
	struct dirent *de;

	if (path_of(m, p, sizeof p, "cells", NULL, NULL) < 0 || !a) {
		json_decref(a);
		return -ENOMEM;
	}
	d = opendir(p);
	if (!d) {
		*ret = a;
		return errno == ENOENT ? 0 : -errno;
	}
	while ((de = readdir(d))) {
		char sp[4096];
		json_error_t je;
		json_t *j;

		if (de->d_name[0] == '.' || !cell_name_is_valid(de->d_name))
			continue;
		if (path_of(m, sp, sizeof sp, "spec.json", de->d_name, NULL) < 0)
			continue;
		j = json_load_file(sp, JSON_REJECT_DUPLICATES, &je);
		if (!j) {
			if (access(sp, F_OK) == 0)
				log_error("Ignoring stored spec %s: %s", sp, je.text);
			else {
				/* a cell deleted while the daemon died: finish the job */
				char dir[4096];
				if (path_of(m, dir, sizeof dir, NULL, de->d_name, NULL) == 0)
					(void)rm_rf_at(AT_FDCWD, dir);
			}
			continue;
		}
		json_array_append_new(a, j);
	}
	closedir(d);
	*ret = a;
	return 0;
}

/* Why a stored spec does not make a cell, found the way startup would
 * (manager.c load_cells): its JSON, its spec, its place beside the cells. */
static void broken_reason(Manager *m, const char *name, const char *sp, char *err) {
	_cleanup_(json_decrefp) json_t *j = NULL;
	_cleanup_(cell_spec_freep) CellSpec *spec = NULL;
	CellSpec *others[CONFIG_MAX_CELLS];
	const Config *cfg;
	json_error_t je;
	ConfigEnv env;
	size_t n;

	j = json_load_file(sp, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		snprintf(err, CONFIG_ERROR_MAX, "%d:%d: %s", je.line, je.column, je.text);
		return;
	}
	config_env_host(&env);
	if (cell_spec_parse(json_object_get(j, "spec"), "$.spec", &env, &spec, err) < 0)
		return;
	if (strcmp(spec->name, name) != 0) {
		snprintf(err, CONFIG_ERROR_MAX, "$.spec: \"name\" is \"%s\", not the directory's", spec->name);
		return;
	}
	n = manager_other_specs(m, name, others);
	cfg = manager_config(m);
	if (cell_spec_check_partition(spec, "$.spec", others, n, cfg->root_cpus, cfg->n_root_cpus, cfg->cpu_sharing,
	                              err) < 0)
		return;
	snprintf(err, CONFIG_ERROR_MAX, "it did not load at startup (the log says why)");
}

json_t *store_broken_specs(Manager *m) {
	char p[4096];
	json_t *a = json_array();
	DIR *d;
	struct dirent *de;

	if (!a || path_of(m, p, sizeof p, "cells", NULL, NULL) < 0 || !(d = opendir(p)))
		return a;
	while ((de = readdir(d))) {
		char sp[4096], err[CONFIG_ERROR_MAX];

		/* the names store_load_specs() reads; a cell of the name is loaded */
		if (de->d_name[0] == '.' || !cell_name_is_valid(de->d_name) || manager_find_cell(m, de->d_name))
			continue;
		if (path_of(m, sp, sizeof sp, "spec.json", de->d_name, NULL) < 0 || access(sp, F_OK) < 0)
			continue;
		broken_reason(m, de->d_name, sp, err);
		json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "name", de->d_name, "path", sp, "reason", err));
	}
	closedir(d);
	return a;
}

bool image_name_is_valid(const char *n) {
	return names_image_valid(n);
}

int store_image_path(Manager *m, const char *cell, const char *file, char *buf, size_t size) {
	if (file[0] == '/') {
		/* Checked when the spec was accepted, and again here at every
		 * start: a spec stored before api.image_dirs existed, or a
		 * symlink changed since, must not hand the runner (root) a file
		 * outside them. The runner gets the resolved path. */
		const Config *cfg = manager_config(m);
		int r = image_path_check(file, cfg->api.image_dirs, cfg->api.n_image_dirs, buf, size);
		if (r == -EPERM)
			/* logged here, once: the caller only has the errno */
			log_error("Refusing image \"%s\" of cell \"%s\": it resolves to \"%s\", outside api.image_dirs",
			          file, cell, buf);
		return r;
	}
	if (!image_name_is_valid(file))
		return -EINVAL;
	return path_of(m, buf, size, "images", cell, file);
}

bool store_image_exists(Manager *m, const char *cell, const char *file) {
	char p[4096];
	return store_image_path(m, cell, file, p, sizeof p) == 0 && access(p, R_OK) == 0;
}

static int hash_fd(int fd, uint8_t out[SHA256_LEN]) {
	gnutls_hash_hd_t h;
	char buf[65536];
	ssize_t n;

	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
		return -EIO;
	while ((n = read(fd, buf, sizeof buf)) > 0)
		gnutls_hash(h, buf, (size_t)n);
	gnutls_hash_deinit(h, out);
	return n < 0 ? -errno : 0;
}

json_t *store_list_images(Manager *m, const char *cell) {
	char dir[4096];
	json_t *a = json_array();
	DIR *d;
	struct dirent *de;

	if (path_of(m, dir, sizeof dir, "images", cell, NULL) < 0 || !(d = opendir(dir)))
		return a;
	while ((de = readdir(d))) {
		char hex[2 * SHA256_LEN + 1] = "";
		struct stat st;
		int fd;

		if (!image_name_is_valid(de->d_name))
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		if (fgetxattr(fd, SHA_XATTR, hex, sizeof hex - 1) != 2 * SHA256_LEN) {
			uint8_t dg[SHA256_LEN];
			if (hash_fd(fd, dg) == 0)
				sha256_hex(dg, hex);
			else
				hex[0] = 0;
		}
		hex[2 * SHA256_LEN] = 0;
		close(fd);
		json_array_append_new(a, json_pack("{s:s, s:I, s:s}", "name", de->d_name, "size", (json_int_t)st.st_size,
		                                   "sha256", hex));
	}
	closedir(d);
	return a;
}

int store_remove_image(Manager *m, const char *cell, const char *file) {
	char p[4096];
	int r = store_image_path(m, cell, file, p, sizeof p);
	if (r < 0)
		return r;
	if (unlink(p) < 0)
		return -errno;
	return fsync_dir_of(p);
}

struct Upload {
	int fd;
	char tmp[4096];
	char final[4096];
	gnutls_hash_hd_t hash;
	size_t size;
};

int upload_begin(Manager *m, const char *cell, const char *file, Upload **ret) {
	char dir[4096];
	Upload *u;
	int r;

	if (!image_name_is_valid(file))
		return -EINVAL;
	if ((r = path_of(m, dir, sizeof dir, "images", cell, NULL)) < 0)
		return r;
	if ((r = mkdir_p(dir, 0755)) < 0)
		return r;
	u = calloc(1, sizeof *u);
	if (!u)
		return -ENOMEM;
	u->fd = -1;
	if (gnutls_hash_init(&u->hash, GNUTLS_DIG_SHA256) < 0) {
		free(u);
		return -EIO;
	}
	snprintf(u->final, sizeof u->final, "%s/%s", dir, file);
	/* Hidden and unique: never listed, swept at startup if left. */
	snprintf(u->tmp, sizeof u->tmp, "%s/.upload-%s-XXXXXX", dir, file);
	u->fd = mkostemp(u->tmp, O_CLOEXEC);
	if (u->fd < 0) {
		r = -errno;
		gnutls_hash_deinit(u->hash, NULL);
		free(u);
		return r;
	}
	*ret = u;
	return 0;
}

int upload_write(void *userdata, const void *data, size_t n) {
	Upload *u = userdata;
	const char *p = data;

	gnutls_hash(u->hash, data, n);
	while (n > 0) {
		ssize_t w = write(u->fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
		u->size += (size_t)w;
	}
	return 0;
}

void upload_abort(void *userdata) {
	Upload *u = userdata;
	if (!u)
		return;
	if (u->fd >= 0) {
		close(u->fd);
		unlink(u->tmp);
	}
	gnutls_hash_deinit(u->hash, NULL);
	free(u);
}

const char *upload_temp_path(const Upload *u) {
	return u->tmp;
}

int upload_commit(Upload *u, const uint8_t want[32], bool *ret_replaced, char hex[65], size_t *ret_size) {
	uint8_t got[SHA256_LEN];
	int r = 0;

	gnutls_hash_output(u->hash, got);
	sha256_hex(got, hex);
	*ret_size = u->size;
	if (memcmp(got, want, SHA256_LEN) != 0) {
		r = -EBADMSG;
		goto out;
	}
	(void)fsetxattr(u->fd, SHA_XATTR, hex, 2 * SHA256_LEN, 0);
	if (fchmod(u->fd, 0644) < 0 || fsync(u->fd) < 0) {
		r = -errno;
		goto out;
	}
	*ret_replaced = access(u->final, F_OK) == 0;
	if (rename(u->tmp, u->final) < 0) {
		r = -errno;
		goto out;
	}
	u->tmp[0] = 0;
	r = fsync_dir_of(u->final);
out:
	close(u->fd);
	if (u->tmp[0])
		unlink(u->tmp);
	gnutls_hash_deinit(u->hash, NULL);
	free(u);
	return r;
}
