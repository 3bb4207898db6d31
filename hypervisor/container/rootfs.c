/* SPDX-License-Identifier: MIT */
/*
 * Rootfs tarballs: checked, unpacked, cached by digest. See rootfs.h.
 * Never logs; returns negative errno and a reason text.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <gnutls/crypto.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../backend-internal.h"
#include "rootfs.h"

#define READ_BLOCK (64u << 10)

/* Digests of tarballs already hashed, by file identity: a start after a
 * stop creates the cell anew and would hash the same tarball again.
 * Uploads are renamed into place, so a new file is a new inode. */
#define MEMO_SLOTS 16
static struct memo {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	char hex[65];
} memo[MEMO_SLOTS];
static unsigned memo_next;
static pthread_mutex_t memo_lock = PTHREAD_MUTEX_INITIALIZER;

static bool memo_same(const struct memo *m, const struct stat *st)
{
	return m->hex[0] && m->dev == st->st_dev && m->ino == st->st_ino && m->size == st->st_size &&
	       m->mtime.tv_sec == st->st_mtim.tv_sec && m->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static int digest_read(const char *tarball, char hex[65]);

int rootfs_digest(const char *tarball, char hex[65])
{
	struct stat st, after;
	int r;

	if (stat(tarball, &st) < 0)
		return -errno;
	pthread_mutex_lock(&memo_lock);
	for (unsigned i = 0; i < MEMO_SLOTS; i++)
		if (memo_same(&memo[i], &st)) {
			memcpy(hex, memo[i].hex, 65);
			pthread_mutex_unlock(&memo_lock);
			return 0;
		}
	pthread_mutex_unlock(&memo_lock);
	r = digest_read(tarball, hex);
	if (r < 0 || stat(tarball, &after) < 0 || !(after.st_ino == st.st_ino && after.st_size == st.st_size &&
	                                            after.st_mtim.tv_sec == st.st_mtim.tv_sec &&
	                                            after.st_mtim.tv_nsec == st.st_mtim.tv_nsec))
		return r; /* changed while read: not remembered */
	pthread_mutex_lock(&memo_lock);
	memo[memo_next] = (struct memo){ .dev = st.st_dev, .ino = st.st_ino, .size = st.st_size, .mtime = st.st_mtim };
	memcpy(memo[memo_next].hex, hex, 65);
	memo_next = (memo_next + 1) % MEMO_SLOTS;
	pthread_mutex_unlock(&memo_lock);
	return 0;
}

static int digest_read(const char *tarball, char hex[65])
{
	gnutls_hash_hd_t h;
	unsigned char d[32];
	char *buf;
	ssize_t k;
	int fd, r = 0;

	fd = open(tarball, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(READ_BLOCK);
	if (!buf || gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0) {
		free(buf);
		close(fd);
		return -ENOMEM;
	}
	while ((k = read(fd, buf, READ_BLOCK)) > 0)
		gnutls_hash(h, buf, (size_t)k);
	if (k < 0)
		r = -errno;
	gnutls_hash_deinit(h, d);
	free(buf);
	close(fd);
	for (size_t i = 0; i < sizeof(d); i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	return r;
}

static struct archive *open_archive(const char *tarball, char *why, size_t n, int *ret)
{
	struct archive *a = archive_read_new();

	if (!a) {
		*ret = -ENOMEM;
		return NULL;
	}
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	if (archive_read_open_filename(a, tarball, READ_BLOCK) != ARCHIVE_OK) {
		snprintf(why, n, "not a readable tarball: %s", archive_error_string(a));
		*ret = archive_errno(a) == ENOENT ? -ENOENT : -EBADMSG;
		archive_read_free(a);
		return NULL;
	}
	*ret = 0;
	return a;
}

static bool path_escapes(const char *p)
{
	const char *s = p;

	while (*s) {
		const char *e = strchrnul(s, '/');
		if (e - s == 2 && s[0] == '.' && s[1] == '.')
			return true;
		s = *e ? e + 1 : e;
	}
	return false;
}

/* Refuse what could write outside the tree or create devices. */
static int entry_check(struct archive_entry *e, char *why, size_t n)
{
	const char *path = archive_entry_pathname(e);
	const char *link = archive_entry_hardlink(e);
	mode_t type = archive_entry_filetype(e);

	if (!path || !*path) {
		snprintf(why, n, "an entry without a name");
		return -EINVAL;
	}
	if (path[0] == '/') {
		snprintf(why, n, "entry \"%.100s\" has an absolute path", path);
		return -EINVAL;
	}
	if (path_escapes(path)) {
		snprintf(why, n, "entry \"%.100s\" has a \"..\" component", path);
		return -EINVAL;
	}
	if (link && (link[0] == '/' || path_escapes(link))) {
		snprintf(why, n, "hard link \"%.60s\" points outside the tree (\"%.60s\")", path, link);
		return -EINVAL;
	}
	if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK && !link) {
		snprintf(why, n, "entry \"%.100s\" is a %s, not a file, directory or symlink", path,
		         type == AE_IFCHR ? "character device" : type == AE_IFBLK ? "block device" :
		         type == AE_IFIFO ? "FIFO" : type == AE_IFSOCK ? "socket" : "special file");
		return -EINVAL;
	}
	return 0;
}

/* Symlinks seen so far: a later entry below one would be written wherever
 * it points (libarchive refuses to, but only at unpack time). */
typedef struct Links {
	char **v;
	size_t n, cap;
} Links;

static const char *skip_dot(const char *p)
{
	while (p[0] == '.' && p[1] == '/')
		p += 2;
	return p;
}

static int links_add(Links *l, const char *path)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n] = strdup(skip_dot(path));
	if (!l->v[l->n])
		return -ENOMEM;
	/* "a/" and "a" name the same link */
	size_t k = strlen(l->v[l->n]);
	while (k > 0 && l->v[l->n][k - 1] == '/')
		l->v[l->n][--k] = 0;
	l->n++;
	return 0;
}

static const char *links_below(const Links *l, const char *path)
{
	path = skip_dot(path);
	for (size_t i = 0; i < l->n; i++) {
		size_t k = strlen(l->v[i]);
		if (k && strncmp(path, l->v[i], k) == 0 && path[k] == '/')
			return l->v[i];
	}
	return NULL;
}

static void links_free(Links *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

static int walk(const char *tarball, const char *dir, char *why, size_t n)
{
	Links links = { 0 };
	const char *via;
	struct archive *w = NULL;
	struct archive_entry *e;
	char full[PATH_MAX];
	int r, k;
	struct archive *a = open_archive(tarball, why, n, &r);

	if (!a)
		return r;
	if (dir) {
		w = archive_write_disk_new();
		if (!w) {
			archive_read_free(a);
			return -ENOMEM;
		}
		/* Owners and modes as the tarball says (the container runs as
		 * root); the library's own guards on top of entry_check(). The
		 * paths it gets are absolute (dir prefixed: a worker thread
		 * cannot chdir), so not SECURE_NOABSOLUTEPATHS: entry_check()
		 * refused absolute entries already. */
		archive_write_disk_set_options(w, ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
		                                          ARCHIVE_EXTRACT_SECURE_NODOTDOT |
		                                          ARCHIVE_EXTRACT_SECURE_SYMLINKS);
	}
	for (;;) {
		k = archive_read_next_header(a, &e);
		if (k == ARCHIVE_EOF) {
			r = 0;
			break;
		}
		if (k < ARCHIVE_WARN) {
			snprintf(why, n, "damaged or truncated tarball: %s", archive_error_string(a));
			r = -EBADMSG;
			break;
		}
		r = entry_check(e, why, n);
		if (r < 0)
			break;
		if ((via = links_below(&links, archive_entry_pathname(e)))) {
			snprintf(why, n, "entry \"%.80s\" lies below the symlink \"%.60s\"", archive_entry_pathname(e), via);
			r = -EINVAL;
			break;
		}
		if (archive_entry_filetype(e) == AE_IFLNK && !archive_entry_hardlink(e) &&
		    (r = links_add(&links, archive_entry_pathname(e))) < 0)
			break;
		if (!w) {
			/* Read the data too: a truncated member shows only there. */
			if (archive_read_data_skip(a) != ARCHIVE_OK) {
				snprintf(why, n, "damaged or truncated tarball: %s", archive_error_string(a));
				r = -EBADMSG;
				break;
			}
			continue;
		}
		snprintf(full, sizeof(full), "%s/%s", dir, archive_entry_pathname(e));
		archive_entry_set_pathname(e, full);
		if (archive_entry_hardlink(e)) {
			char l[PATH_MAX];
			snprintf(l, sizeof(l), "%s/%s", dir, archive_entry_hardlink(e));
			archive_entry_set_hardlink(e, l);
		}
		k = archive_read_extract2(a, e, w);
		if (k != ARCHIVE_OK) {
			snprintf(why, n, "unpacking failed: %s", archive_error_string(w) ? archive_error_string(w) :
			         archive_error_string(a));
			r = archive_errno(a) == EIO || !archive_errno(w) ? -EBADMSG : -archive_errno(w);
			break;
		}
	}
	if (w) {
		archive_write_close(w);
		archive_write_free(w);
	}
	archive_read_free(a);
	links_free(&links);
	return r;
}

int rootfs_check(const char *tarball, char *why, size_t n)
{
	why[0] = 0;
	return walk(tarball, NULL, why, n);
}

int rootfs_unpack(const char *tarball, const char *dir, char *why, size_t n)
{
	int r;

	why[0] = 0;
	/* Checked whole before the first byte is written. */
	r = walk(tarball, NULL, why, n);
	if (r < 0)
		return r;
	if (mkdir(dir, 0755) < 0) {
		snprintf(why, n, "cannot create %.100s: %s", dir, strerror(errno));
		return -errno;
	}
	r = walk(tarball, dir, why, n);
	if (r < 0)
		(void)rootfs_remove_tree(dir);
	return r;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
	return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

int rootfs_remove_tree(const char *dir)
{
	if (access(dir, F_OK) < 0)
		return errno == ENOENT ? 0 : -errno;
	return nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0 ? -errno : 0;
}

int rootfs_cached(const char *tarball, const char *cache_dir, const char *want_hex, char *ret_path, size_t path_n,
                  char *why, size_t n)
{
	char hex[65], tmp[PATH_MAX];
	struct stat st;
	int r;

	why[0] = 0;
	r = rootfs_digest(tarball, hex);
	if (r < 0) {
		snprintf(why, n, "cannot read the rootfs tarball: %s", strerror(-r));
		return r;
	}
	if (want_hex && strcasecmp(want_hex, hex) != 0) {
		snprintf(why, n, "rootfs digest mismatch: the tarball has SHA-256 %s", hex);
		return -EBADMSG;
	}
	r = backend_mkdir_p(cache_dir);
	if (r < 0)
		return r;
	if ((size_t)snprintf(ret_path, path_n, "%s/%s", cache_dir, hex) >= path_n)
		return -ENAMETOOLONG;
	if (stat(ret_path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	snprintf(tmp, sizeof(tmp), "%s/.%s.%d", cache_dir, hex, (int)gettid());
	(void)rootfs_remove_tree(tmp);
	r = rootfs_unpack(tarball, tmp, why, n);
	if (r < 0)
		return r;
	if (rename(tmp, ret_path) < 0) {
		r = -errno;
		(void)rootfs_remove_tree(tmp);
		/* Another worker won the race: its tree is the same. */
		if ((r == -EEXIST || r == -ENOTEMPTY) && stat(ret_path, &st) == 0)
			return 0;
		return r;
	}
	return 0;
}
