/* SPDX-License-Identifier: MIT */
/*
 * The Jailhouse driver's user interface, re-declared from the facts
 * measured against its headers (../shared/jailhouse/FACTS.md, sections 2
 * and 3): ioctl numbers, the structs they take, the cell state strings of
 * sysfs. Packed, little endian, LP64, as the driver has them; the offsets
 * are pinned by _Static_assert so that a slip cannot compile.
 */
#ifndef WARDEN_JAILHOUSE_ABI_H
#define WARDEN_JAILHOUSE_ABI_H

#include <stddef.h>
#include <stdint.h>

#define JH_CELL_NAME_LEN 32 /* 31 characters and the NUL */
#define JH_CELL_ID_UNUSED (-1) /* "match by name" in jh_cell_id */

/* _IOW(0, nr, size) / _IO(0, nr) with the generic encoding (x86-64 and arm64). */
#define JH_IOCTL_ENABLE 0x40080000UL       /* arg: the system config itself */
#define JH_IOCTL_DISABLE 0x00000001UL      /* no arg */
#define JH_IOCTL_CELL_CREATE 0x40100002UL  /* struct jh_cell_create */
#define JH_IOCTL_CELL_LOAD 0x40300003UL    /* struct jh_cell_load + images */
#define JH_IOCTL_CELL_START 0x40280004UL   /* struct jh_cell_id */
#define JH_IOCTL_CELL_DESTROY 0x40280005UL /* struct jh_cell_id */

struct jh_cell_create {
	uint64_t config_address; /* user pointer to the .cell bytes */
	uint32_t config_size;
	uint32_t padding;
} __attribute__((packed));

struct jh_cell_id {
	int32_t id; /* JH_CELL_ID_UNUSED: by name */
	uint32_t padding;
	char name[JH_CELL_NAME_LEN];
} __attribute__((packed));

struct jh_preload_image {
	uint64_t source_address; /* user pointer */
	uint64_t size;
	uint64_t target_address; /* guest-physical in the cell */
	uint64_t padding;
} __attribute__((packed));

struct jh_cell_load {
	struct jh_cell_id cell_id;
	uint32_t num_preload_images;
	uint32_t padding;
	struct jh_preload_image image[];
} __attribute__((packed));

_Static_assert(sizeof(struct jh_cell_create) == 16, "jailhouse_cell_create");
_Static_assert(sizeof(struct jh_cell_id) == 40, "jailhouse_cell_id");
_Static_assert(offsetof(struct jh_cell_id, name) == 8, "jailhouse_cell_id.name");
_Static_assert(sizeof(struct jh_preload_image) == 32, "jailhouse_preload_image");
_Static_assert(offsetof(struct jh_preload_image, target_address) == 16, "preload target");
_Static_assert(sizeof(struct jh_cell_load) == 48, "jailhouse_cell_load");
_Static_assert(offsetof(struct jh_cell_load, num_preload_images) == 40, "num_preload_images");

/* Cell states as sysfs prints them (cells/<id>/state). */
typedef enum JhCellState {
	JH_CELL_RUNNING,        /* "running" */
	JH_CELL_RUNNING_LOCKED, /* "running/locked" */
	JH_CELL_SHUT_DOWN,      /* "shut down": also created, not started */
	JH_CELL_FAILED,         /* "failed" */
	JH_CELL_FAILED_COMM_REV, /* "Comm ABI mismatch" */
	_JH_CELL_STATE_MAX,
	_JH_CELL_STATE_INVALID = -1, /* "invalid" and anything else */
} JhCellState;

#endif /* WARDEN_JAILHOUSE_ABI_H */
