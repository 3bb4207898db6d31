/* SPDX-License-Identifier: MIT */
/*
 * The OCI bundle of a container cell: config.json (OCI runtime spec 1.0)
 * generated from the cell's config. Only hypervisor/container/ includes
 * this.
 */
#ifndef WARDEN_CONTAINER_BUNDLE_H
#define WARDEN_CONTAINER_BUNDLE_H

#include <stdbool.h>
#include <stdint.h>

#include "../backend.h"

/* Where the comm region appears inside the container, and the variable
 * that names it (driver/container/warden-app.h says the same). */
#define CONTAINER_COMM_PATH "/run/warden/comm"
#define CONTAINER_COMM_ENV "WARDEN_COMM"
#define CONTAINER_DEFAULT_MEMORY (64ull << 20)

typedef struct BundleSpec {
	const BackendCellConfig *cfg;
	const char *rootfs;      /* absolute: the unpacked tree */
	const char *comm_file;   /* absolute: the cell's comm file on the host */
	const char *cgroup_path; /* "/warden-TAG-NAME" */
} BundleSpec;

/* Write config.json into the directory (temp file, rename). */
int bundle_write(int dir_fd, const BundleSpec *b);
/* Split args at blanks into at most max - 1 words, NUL-terminated vector;
 * returns how many, -E2BIG beyond. The words point into buf. */
int bundle_split_args(const char *args, char *buf, size_t buf_n, char **argv, size_t max);

#endif /* WARDEN_CONTAINER_BUNDLE_H */
