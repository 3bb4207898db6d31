/* SPDX-License-Identifier: MIT */
/*
 * Where a cell spec's absolute image paths may point. The runner reads an
 * image as root and copies it into guest memory, and an inmate can copy
 * guest memory to its console, which a monitor token reads: an image path
 * is a read of any file as root unless it is held to the directories the
 * operator meant for images (api.image_dirs). The test is on the path as
 * the kernel resolves it (symlinks, ".."), never on its text.
 */
#pragma once

#include <stddef.h>

#include "config.h"

/* Resolves an absolute path as open() would: realpath() of the longest
 * part that exists, the rest appended as written. That rest (a file not
 * there yet) must not have "." or ".." components (-EINVAL): nothing on
 * disk says yet where they lead. -EINVAL for a relative path too. */
int image_path_resolve(const char *path, char *ret, size_t size);

/* 0, and the resolved path in ret, if `path` resolves to somewhere below
 * one of `dirs` (each resolved the same way); -EPERM if it does not; the
 * error of image_path_resolve() if it cannot be resolved. */
int image_path_check(const char *path, char *const *dirs, size_t n_dirs, char *ret, size_t size);

/* Every absolute image path of `s` (images, kernel, initrd) must pass
 * image_path_check(). Returns -EPERM, or the resolution's error, with the
 * JSON path of the first that does not in err (CONFIG_ERROR_MAX bytes,
 * as config.h's parsers write it). Bare names are the store's. */
int image_path_check_spec(const CellSpec *s, const char *path, char *const *dirs, size_t n_dirs, char *err);
