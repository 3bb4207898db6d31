/* SPDX-License-Identifier: MIT */
/*
 * The container backend where the build has none (meson -Dcontainers=
 * disabled, or libarchive missing with auto): the kind is known but not
 * available, so a container cell is refused with a reason instead of an
 * unknown backend. The arm64 board's cross build uses this: its root cell
 * runs no containers, and libarchive would bring libxml2 and ICU, tens of
 * MiB, into the board's initramfs.
 */
#include <errno.h>
#include <stdio.h>

#include "../backend-internal.h"

int container_backend_new(const BackendConfig *cfg, Backend **ret)
{
	(void)cfg;
	(void)ret;
	return -EOPNOTSUPP;
}

int backend_rootfs_check(const char *tarball, char *why, size_t n)
{
	(void)tarball;
	if (why && n)
		snprintf(why, n, "this wardend was built without container cells (meson -Dcontainers)");
	return -EOPNOTSUPP;
}
