/* SPDX-License-Identifier: MIT */
/*
 * What the Jailhouse driver tells through sysfs (/sys/devices/jailhouse):
 * whether it is enabled, its memory and remap pools, and per cell its
 * name, state, CPUs (assigned and failed) and vmexit statistics. Reads
 * plain files under a root that tests point at recorded trees; never
 * logs; negative errno.
 */
#ifndef WARDEN_JAILHOUSE_SYSFS_H
#define WARDEN_JAILHOUSE_SYSFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "abi.h"

#define JH_SYSFS_ROOT "/sys/devices/jailhouse"
#define JH_MAX_CPUS 256
#define JH_MAX_STATS 24
#define JH_STAT_NAME_LEN 32

typedef struct JhCpuSet {
	uint64_t bits[JH_MAX_CPUS / 64];
} JhCpuSet;

typedef struct JhStat {
	char name[JH_STAT_NAME_LEN]; /* "vmexits_total", ... */
	uint64_t value;
} JhStat;

typedef struct JhCellInfo {
	int id;
	char name[JH_CELL_NAME_LEN];
	JhCellState state; /* _JH_CELL_STATE_INVALID for what is not known */
	JhCpuSet cpus, cpus_failed;
	JhStat stats[JH_MAX_STATS];
	size_t n_stats;
} JhCellInfo;

typedef struct JhSystemInfo {
	bool enabled;
	uint64_t mem_pool_size, mem_pool_used;     /* pages */
	uint64_t remap_pool_size, remap_pool_used; /* pages */
} JhSystemInfo;

const char *jh_cell_state_to_string(JhCellState s);
/* "running", "shut down", ... (a trailing newline is fine). */
JhCellState jh_cell_state_from_string(const char *s);

/* "0,2-15" (cpus_*_list); "" is the empty set. -EINVAL on anything else. */
int jh_cpu_list_parse(const char *s, JhCpuSet *ret);
/* "fffd" (cpus_assigned: a hex mask, CPU 0 the lowest bit); comma-grouped
 * masks ("ffffffff,ffffffff") too. */
int jh_cpu_mask_parse(const char *s, JhCpuSet *ret);
bool jh_cpu_set_has(const JhCpuSet *s, unsigned cpu);
unsigned jh_cpu_set_count(const JhCpuSet *s);
/* "1,3-4" into buf; the string "" for the empty set. */
void jh_cpu_set_format(const JhCpuSet *s, char *buf, size_t n);

int jh_sysfs_read_system(const char *root, JhSystemInfo *ret);
/* The cell with that id: -ENOENT if there is none. */
int jh_sysfs_read_cell(const char *root, int id, JhCellInfo *ret);
/* The cheap part of jh_sysfs_read_cell(), for every heartbeat sample:
 * name, state and failed CPUs; no assigned CPUs, no statistics. */
int jh_sysfs_read_cell_state(const char *root, int id, JhCellInfo *ret);
/* The id of the cell with that name: -ENOENT if there is none. */
int jh_sysfs_find_cell(const char *root, const char *name, int *ret_id);
/* A statistic by name, or 0 when the cell has none of that name. */
uint64_t jh_cell_stat(const JhCellInfo *c, const char *name);

#endif /* WARDEN_JAILHOUSE_SYSFS_H */
