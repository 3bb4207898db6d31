/* SPDX-License-Identifier: MIT */
#include "sysfs.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const state_table[_JH_CELL_STATE_MAX] = {
	[JH_CELL_RUNNING] = "running",
	[JH_CELL_RUNNING_LOCKED] = "running/locked",
	[JH_CELL_SHUT_DOWN] = "shut down",
	[JH_CELL_FAILED] = "failed",
	[JH_CELL_FAILED_COMM_REV] = "Comm ABI mismatch",
};

const char *jh_cell_state_to_string(JhCellState s)
{
	return s >= 0 && s < _JH_CELL_STATE_MAX ? state_table[s] : "invalid";
}

JhCellState jh_cell_state_from_string(const char *s)
{
	size_t n;

	if (!s)
		return _JH_CELL_STATE_INVALID;
	n = strcspn(s, "\n");
	for (int i = 0; i < _JH_CELL_STATE_MAX; i++)
		if (strlen(state_table[i]) == n && strncmp(state_table[i], s, n) == 0)
			return (JhCellState)i;
	return _JH_CELL_STATE_INVALID;
}

bool jh_cpu_set_has(const JhCpuSet *s, unsigned cpu)
{
	return cpu < JH_MAX_CPUS && (s->bits[cpu / 64] >> (cpu % 64)) & 1;
}

static void cpu_set_add(JhCpuSet *s, unsigned cpu)
{
	s->bits[cpu / 64] |= 1ULL << (cpu % 64);
}

unsigned jh_cpu_set_count(const JhCpuSet *s)
{
	unsigned n = 0;
	for (size_t i = 0; i < JH_MAX_CPUS / 64; i++)
		n += (unsigned)__builtin_popcountll(s->bits[i]);
	return n;
}

static int parse_cpu(const char **p, unsigned *ret)
{
	char *end;
	unsigned long v;

	if (!isdigit((unsigned char)**p))
		return -EINVAL;
	errno = 0;
	v = strtoul(*p, &end, 10);
	if (errno || v >= JH_MAX_CPUS)
		return -EINVAL;
	*p = end;
	*ret = (unsigned)v;
	return 0;
}

int jh_cpu_list_parse(const char *s, JhCpuSet *ret)
{
	JhCpuSet set = { 0 };
	const char *p = s;

	while (*p && *p != '\n') {
		unsigned a, b;
		if (parse_cpu(&p, &a) < 0)
			return -EINVAL;
		b = a;
		if (*p == '-') {
			p++;
			if (parse_cpu(&p, &b) < 0 || b < a)
				return -EINVAL;
		}
		for (unsigned c = a; c <= b; c++)
			cpu_set_add(&set, c);
		if (*p == ',')
			p++;
		else if (*p && *p != '\n')
			return -EINVAL;
	}
	if (*p == '\n' && p[1])
		return -EINVAL;
	*ret = set;
	return 0;
}

int jh_cpu_mask_parse(const char *s, JhCpuSet *ret)
{
	JhCpuSet set = { 0 };
	size_t len = strcspn(s, "\n");
	unsigned bit = 0;

	if (len == 0 || (s[len] && s[len + 1]))
		return -EINVAL;
	/* The lowest CPU is the last hex digit. */
	for (size_t i = len; i > 0; i--) {
		char ch = s[i - 1];
		int v;
		if (ch == ',')
			continue;
		if (!isxdigit((unsigned char)ch))
			return -EINVAL;
		v = isdigit((unsigned char)ch) ? ch - '0' : tolower((unsigned char)ch) - 'a' + 10;
		for (int k = 0; k < 4; k++, bit++)
			if (v & (1 << k)) {
				if (bit >= JH_MAX_CPUS)
					return -EINVAL;
				cpu_set_add(&set, bit);
			}
	}
	*ret = set;
	return 0;
}

void jh_cpu_set_format(const JhCpuSet *s, char *buf, size_t n)
{
	size_t len = 0;

	buf[0] = 0;
	for (unsigned c = 0; c < JH_MAX_CPUS; c++) {
		unsigned e = c;
		if (!jh_cpu_set_has(s, c))
			continue;
		while (e + 1 < JH_MAX_CPUS && jh_cpu_set_has(s, e + 1))
			e++;
		if (len < n)
			len += (size_t)snprintf(buf + len, n - len, e == c ? "%s%u" : "%s%u-%u", len ? "," : "", c, e);
		c = e;
	}
}

/* The file's first line, without its newline; -errno. */
static int read_line(const char *root, const char *rel, char *buf, size_t n)
{
	char path[PATH_MAX];
	ssize_t k;
	int fd;

	if (snprintf(path, sizeof(path), "%s/%s", root, rel) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	k = read(fd, buf, n - 1);
	close(fd);
	if (k < 0)
		return -errno;
	buf[k] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

static int read_u64(const char *root, const char *rel, uint64_t *ret)
{
	char buf[32], *end;
	unsigned long long v;
	int r = read_line(root, rel, buf, sizeof(buf));

	if (r < 0)
		return r;
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno || end == buf || *end || buf[0] == '-')
		return -EBADMSG;
	*ret = v;
	return 0;
}

int jh_sysfs_read_system(const char *root, JhSystemInfo *ret)
{
	JhSystemInfo si = { 0 };
	uint64_t en;
	int r;

	if ((r = read_u64(root, "enabled", &en)) < 0)
		return r;
	si.enabled = en != 0;
	/* The pools read 0 while disabled; their absence is an error. */
	if ((r = read_u64(root, "mem_pool_size", &si.mem_pool_size)) < 0 ||
	    (r = read_u64(root, "mem_pool_used", &si.mem_pool_used)) < 0 ||
	    (r = read_u64(root, "remap_pool_size", &si.remap_pool_size)) < 0 ||
	    (r = read_u64(root, "remap_pool_used", &si.remap_pool_used)) < 0)
		return r;
	*ret = si;
	return 0;
}

static int read_stats(const char *root, const char *dir, JhCellInfo *c)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if (snprintf(path, sizeof(path), "%s/%s", root, dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d)) && c->n_stats < JH_MAX_STATS) {
		char rel[PATH_MAX];
		JhStat *st = &c->stats[c->n_stats];
		/* vmexits_*: the cell's sums; cpuN/ hold the same per CPU. */
		if (strncmp(de->d_name, "vmexits_", 8) != 0 || strlen(de->d_name) >= JH_STAT_NAME_LEN)
			continue;
		snprintf(rel, sizeof(rel), "%s/%s", dir, de->d_name);
		if (read_u64(root, rel, &st->value) < 0)
			continue;
		snprintf(st->name, sizeof(st->name), "%s", de->d_name);
		c->n_stats++;
	}
	closedir(d);
	return 0;
}

int jh_sysfs_read_cell(const char *root, int id, JhCellInfo *ret)
{
	char rel[96], buf[256];
	JhCellInfo *c;
	int r;

	if (id < 0)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->id = id;
	snprintf(rel, sizeof(rel), "cells/%d/name", id);
	if ((r = read_line(root, rel, c->name, sizeof(c->name))) < 0)
		goto out;
	snprintf(rel, sizeof(rel), "cells/%d/state", id);
	if ((r = read_line(root, rel, buf, sizeof(buf))) < 0)
		goto out;
	c->state = jh_cell_state_from_string(buf);
	/* The lists are what `jailhouse cell list` prints; the masks are the
	 * fall-back of older drivers. */
	snprintf(rel, sizeof(rel), "cells/%d/cpus_assigned_list", id);
	if (read_line(root, rel, buf, sizeof(buf)) >= 0)
		r = jh_cpu_list_parse(buf, &c->cpus);
	else {
		snprintf(rel, sizeof(rel), "cells/%d/cpus_assigned", id);
		r = read_line(root, rel, buf, sizeof(buf));
		if (r >= 0)
			r = jh_cpu_mask_parse(buf, &c->cpus);
	}
	if (r < 0) {
		r = -EBADMSG;
		goto out;
	}
	snprintf(rel, sizeof(rel), "cells/%d/cpus_failed_list", id);
	if (read_line(root, rel, buf, sizeof(buf)) >= 0 && jh_cpu_list_parse(buf, &c->cpus_failed) < 0) {
		r = -EBADMSG;
		goto out;
	}
	snprintf(rel, sizeof(rel), "cells/%d/statistics", id);
	r = read_stats(root, rel, c);
	if (r >= 0)
		*ret = *c;
out:
	free(c);
	return r;
}

int jh_sysfs_read_cell_state(const char *root, int id, JhCellInfo *ret)
{
	char rel[96], buf[256];
	int r;

	if (id < 0)
		return -EINVAL;
	ret->id = id;
	ret->n_stats = 0;
	snprintf(rel, sizeof(rel), "cells/%d/name", id);
	if ((r = read_line(root, rel, ret->name, sizeof(ret->name))) < 0)
		return r;
	snprintf(rel, sizeof(rel), "cells/%d/state", id);
	if ((r = read_line(root, rel, buf, sizeof(buf))) < 0)
		return r;
	ret->state = jh_cell_state_from_string(buf);
	memset(&ret->cpus_failed, 0, sizeof(ret->cpus_failed));
	snprintf(rel, sizeof(rel), "cells/%d/cpus_failed_list", id);
	if (read_line(root, rel, buf, sizeof(buf)) >= 0 && jh_cpu_list_parse(buf, &ret->cpus_failed) < 0)
		return -EBADMSG;
	return 0;
}

int jh_sysfs_find_cell(const char *root, const char *name, int *ret_id)
{
	char path[PATH_MAX];
	struct dirent *de;
	int r = -ENOENT;
	DIR *d;

	if (snprintf(path, sizeof(path), "%s/cells", root) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char rel[96], n[JH_CELL_NAME_LEN + 8], *end;
		long id = strtol(de->d_name, &end, 10);
		if (!isdigit((unsigned char)de->d_name[0]) || *end || id < 0 || id > INT_MAX)
			continue;
		snprintf(rel, sizeof(rel), "cells/%ld/name", id);
		if (read_line(path, rel + 6, n, sizeof(n)) >= 0 && strcmp(n, name) == 0) {
			*ret_id = (int)id;
			r = 0;
			break;
		}
	}
	closedir(d);
	return r;
}

uint64_t jh_cell_stat(const JhCellInfo *c, const char *name)
{
	for (size_t i = 0; i < c->n_stats; i++)
		if (strcmp(c->stats[i].name, name) == 0)
			return c->stats[i].value;
	return 0;
}
