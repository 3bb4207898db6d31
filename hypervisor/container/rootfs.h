/* SPDX-License-Identifier: MIT */
/*
 * A container cell's root filesystem, from a rootfs tarball (tar, plain or
 * compressed as libarchive reads it). Before anything is written, every
 * entry is checked: a relative path without "..", a regular file,
 * directory or symlink (no device nodes, FIFOs or sockets), hard links
 * inside the tree, nothing below a symlink of the tarball. Read-only cells share one unpacked tree per SHA-256 of
 * the tarball in a cache directory; writable ones get their own copy.
 * Worker calls only: they read the whole tarball. Only hypervisor/
 * includes this.
 */
#ifndef WARDEN_CONTAINER_ROOTFS_H
#define WARDEN_CONTAINER_ROOTFS_H

#include <stddef.h>

#define ROOTFS_WHY_LEN 160

/* The tarball's SHA-256, lowercase hex. */
int rootfs_digest(const char *tarball, char hex[65]);
/* Check every entry without unpacking; why says what is wrong. -EINVAL
 * for a refused entry, -EBADMSG for a damaged or truncated archive. */
int rootfs_check(const char *tarball, char *why, size_t n);
/* Unpack into `dir`, which must not exist; checks as rootfs_check(). */
int rootfs_unpack(const char *tarball, const char *dir, char *why, size_t n);
/* The shared tree of a tarball: cache_dir/HEX, unpacked on first use
 * (into a temp dir, then renamed, so that a half tree never shows). With
 * want_hex, the tarball must have that digest (-EBADMSG otherwise). */
int rootfs_cached(const char *tarball, const char *cache_dir, const char *want_hex, char *ret_path, size_t path_n,
                  char *why, size_t n);
/* rm -rf, not crossing into other file systems. */
int rootfs_remove_tree(const char *dir);

#endif /* WARDEN_CONTAINER_ROOTFS_H */
