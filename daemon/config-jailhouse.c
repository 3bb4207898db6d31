/* SPDX-License-Identifier: MIT */
/*
 * A jailhouse cell spec and its .cell (cell_spec_jailhouse_reconcile(),
 * config.h). The .cell is what Jailhouse gets, so it is the truth about the
 * cell's CPUs and memory: decoded when the spec is accepted, it fills what
 * the spec leaves out, so that the static-partitioning check (config.c)
 * sees the real layout, and what the spec does state must agree with it.
 *
 * The file is small (a few KB) and local; reading it where the spec is
 * accepted is one short read, like the realpath() of image paths.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cell-config-json.h"
#include "cell-config.h"
#include "config.h"
#include "macro.h"

#define MAX_CELL_FILE (1u << 20)

static int read_cell_file(const char *file, uint8_t **ret, size_t *ret_size) {
	struct stat st;
	uint8_t *buf;
	ssize_t k;
	int fd, r = 0;

	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode))
		r = -EINVAL;
	else if (st.st_size > (off_t)MAX_CELL_FILE)
		r = -EFBIG;
	if (r < 0) {
		close(fd);
		return r;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	/* One read: a regular file this small comes whole or not at all. */
	k = read(fd, buf, (size_t)st.st_size + 1);
	close(fd);
	if (k < 0) {
		free(buf);
		return -errno;
	}
	*ret = buf;
	*ret_size = (size_t)k;
	return 0;
}

static unsigned region_flags(uint64_t jh) {
	unsigned f = 0;

	if (jh & JH_MEM_READ)
		f |= BACKEND_MEM_READ;
	if (jh & JH_MEM_WRITE)
		f |= BACKEND_MEM_WRITE;
	if (jh & JH_MEM_EXECUTE)
		f |= BACKEND_MEM_EXECUTE;
	if (jh & JH_MEM_LOADABLE)
		f |= BACKEND_MEM_LOADABLE;
	if (jh & JH_MEM_ROOTSHARED)
		f |= BACKEND_MEM_SHARED;
	return f;
}

static void format_cpus(const unsigned *cpus, size_t n, char *buf, size_t size) {
	size_t len = 0;

	buf[0] = 0;
	for (size_t i = 0; i < n && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%u", i ? "," : "", cpus[i]);
	if (n == 0)
		snprintf(buf, size, "none");
}

static bool same_region(const MemRegion *a, const MemRegion *b) {
	return a->phys_start == b->phys_start && a->virt_start == b->virt_start && a->size == b->size &&
	       a->flags == b->flags;
}

/* What the model of a spec can hold of the .cell: its regions but the
 * comm region (the spec's own "comm"), Jailhouse's comm page (no physical
 * memory behind it) and the empty placeholders of ivshmem-net blocks. */
static int cell_regions(const JhCellConfig *cc, const CellSpec *s, const char *path, const char *file,
                        MemRegion *out, size_t *ret_n, int *ret_comm, char *err) {
	size_t n = 0;

	*ret_comm = -1;
	for (uint32_t i = 0; i < cc->n_memory; i++) {
		const JhMemory *m = &cc->memory[i];
		if (m->size == 0 || (m->flags & JH_MEM_COMM_REGION))
			continue;
		if (m->virt_start == s->comm.virt_start) {
			*ret_comm = (int)i;
			continue;
		}
		if (n == BACKEND_MAX_REGIONS)
			return config_error(err, path, "the .cell \"%s\" has more than %d memory regions besides the comm region",
			            file, BACKEND_MAX_REGIONS);
		out[n] = (MemRegion){
			.phys_start = m->phys_start,
			.virt_start = m->virt_start,
			.size = m->size,
			.flags = region_flags(m->flags),
		};
		snprintf(out[n].name, sizeof out[n].name, "cell-memory[%" PRIu32 "]", i);
		n++;
	}
	*ret_n = n;
	return 0;
}

void config_jailhouse_system_identity(const char *system_config, unsigned *ret_revision, int *ret_arch) {
	_cleanup_free_ uint8_t *data = NULL;
	JhConfigKind kind;
	unsigned rev;
	size_t size;
	char err[256];

	*ret_revision = 0;
	*ret_arch = -1;
	if (read_cell_file(system_config, &data, &size) < 0 ||
	    jh_config_identify(data, size, &kind, &rev, err, sizeof err) < 0 || kind != JH_CONFIG_SYSTEM)
		return;
	*ret_revision = rev;
	/* rev 14 names its architecture in the byte after the signature */
	if (rev >= 14 && size > 5)
		*ret_arch = data[5];
}

int cell_spec_jailhouse_generate(CellSpec *s, json_t *doc, const char *path, char *err) {
	JhCellConfig *cc = NULL;
	JhConfigKind kind;
	char p[320], cerr[256];
	int r;

	snprintf(p, sizeof p, "%s.cell", path);
	if (!json_is_object(doc))
		return config_error(err, p, "must be an object: a .cell as wardenctl jailhouse import prints it");
	if (jh_config_json_kind(doc, &kind, cerr, sizeof cerr) < 0)
		return config_error(err, p, "%s", cerr);
	if (kind != JH_CONFIG_CELL)
		return config_error(err, p, "is a %s config; a cell needs \"jailhouse\": \"cell\"",
		                    jh_config_kind_to_string(kind));
	r = jh_cell_config_from_json(doc, &cc, cerr, sizeof cerr);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return config_error(err, p, "%s", cerr);
	r = jh_cell_config_encode(cc, &s->cell_bytes, &s->cell_size, cerr, sizeof cerr);
	jh_cell_config_free(cc);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return config_error(err, p, "cannot be encoded: %s", cerr);
	s->cell_doc = json_deep_copy(doc);
	return s->cell_doc ? 0 : -ENOMEM;
}

int cell_spec_jailhouse_reconcile(CellSpec *s, const char *path, const ConfigEnv *env, bool has_cpus,
                                  bool has_memory, char *err) {
	MemRegion regions[BACKEND_MAX_REGIONS];
	unsigned cpus[BACKEND_MAX_CPUS];
	char p[320], want[256], have[256], cerr[256];
	_cleanup_free_ uint8_t *data = NULL;
	JhCellConfig *cc = NULL;
	size_t size = 0, n_cpus = 0, n_regions = 0;
	int comm = -1, r;

	/* What the messages call it: the file, or the spec's document. */
	const char *what = s->cell_config ? s->cell_config : "the generated .cell";

	snprintf(p, sizeof p, "%s.jailhouse.%s", path, s->cell_config ? "cell_config" : "cell");
	if (s->cell_config) {
		r = read_cell_file(s->cell_config, &data, &size);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return config_error(err, p, "cannot read \"%s\": %s", s->cell_config, strerror(-r));
	}
	if (jh_cell_config_decode(s->cell_config ? data : s->cell_bytes, s->cell_config ? size : s->cell_size,
	                          JH_ARCH_UNSPEC, &cc, cerr, sizeof cerr) < 0)
		return config_error(err, p, "\"%s\" is not a Jailhouse cell config: %s", what, cerr);
	if (env->jh_revision && cc->revision != env->jh_revision) {
		r = config_error(err, p, "\"%s\" is a config of revision %u; this hypervisor's system config is revision %u",
		                 what, cc->revision, env->jh_revision);
		goto out;
	}
	if (env->jh_arch >= 0 && cc->arch != JH_ARCH_UNSPEC && (int)cc->arch != env->jh_arch) {
		r = config_error(err, p, "\"%s\" is a config for %s; this hypervisor's system config is for %s",
		                 what, jh_arch_to_string(cc->arch), jh_arch_to_string((JhArch)env->jh_arch));
		goto out;
	}

	for (unsigned cpu = 0; cpu < cc->cpu_set_size * 8u; cpu++) {
		if (!jh_cell_config_has_cpu(cc, cpu))
			continue;
		if (cpu >= env->n_cpus) {
			r = config_error(err, p, "CPU %u of \"%s\" does not exist on this machine (it has CPUs 0-%u)", cpu,
			         what, env->n_cpus - 1);
			goto out;
		}
		if (n_cpus == BACKEND_MAX_CPUS) {
			r = config_error(err, p, "\"%s\" names more than %d CPUs", what, BACKEND_MAX_CPUS);
			goto out;
		}
		cpus[n_cpus++] = cpu;
	}
	if (n_cpus == 0) {
		r = config_error(err, p, "\"%s\" gives the cell no CPU", what);
		goto out;
	}
	if (has_cpus) {
		bool same = n_cpus == s->n_cpus;
		for (size_t i = 0; same && i < s->n_cpus; i++) {
			bool found = false;
			for (size_t j = 0; j < n_cpus; j++)
				found |= cpus[j] == s->cpus[i];
			same = found;
		}
		if (!same) {
			format_cpus(s->cpus, s->n_cpus, want, sizeof want);
			format_cpus(cpus, n_cpus, have, sizeof have);
			snprintf(p, sizeof p, "%s.cpus", path);
			r = config_error(err, p, "CPUs %s disagree with the CPUs of \"%s\" (%s)", want, what, have);
			goto out;
		}
	} else {
		memcpy(s->cpus, cpus, n_cpus * sizeof cpus[0]);
		s->n_cpus = n_cpus;
	}

	snprintf(p, sizeof p, "%s.memory", path);
	if ((r = cell_regions(cc, s, p, what, regions, &n_regions, &comm, err)) < 0)
		goto out;

	/* The comm region is a region of the .cell that the root cell can
	 * map: warden reads the heartbeat from its physical address. */
	snprintf(p, sizeof p, "%s.comm", path);
	if (comm < 0) {
		r = config_error(err, p, "no memory region of \"%s\" starts at virt_start 0x%" PRIx64, what,
		         s->comm.virt_start);
		goto out;
	}
	{
		const JhMemory *m = &cc->memory[comm];
		if (!(m->flags & JH_MEM_ROOTSHARED) || !(m->flags & JH_MEM_READ) || !(m->flags & JH_MEM_WRITE)) {
			r = config_error(err, p,
			         "region %d of \"%s\" at 0x%" PRIx64 " must be read, write and rootshared to be the comm "
			         "region",
			         comm, what, m->virt_start);
			goto out;
		}
		if (m->size < s->comm.size) {
			r = config_error(err, p, "region %d of \"%s\" is 0x%" PRIx64 " bytes, smaller than the comm region", comm,
			         what, m->size);
			goto out;
		}
		if (s->comm.phys_start != UINT64_MAX && s->comm.phys_start != m->phys_start) {
			r = config_error(err, p, "phys_start 0x%" PRIx64 " disagrees with region %d of \"%s\" (0x%" PRIx64 ")",
			         s->comm.phys_start, comm, what, m->phys_start);
			goto out;
		}
		s->comm.phys_start = m->phys_start;
		s->comm.flags |= BACKEND_MEM_SHARED;
	}

	if (has_memory) {
		for (size_t i = 0; i < s->n_memory; i++) {
			bool found = false;
			for (size_t j = 0; j < n_regions && !found; j++)
				found = same_region(&s->memory[i], &regions[j]);
			if (!found) {
				snprintf(p, sizeof p, "%s.memory[%zu]", path, i);
				r = config_error(err, p, "region \"%s\" (phys 0x%" PRIx64 ", virt 0x%" PRIx64 ", size 0x%" PRIx64
				         ") is not a region of \"%s\" with the same flags",
				         s->memory[i].name, s->memory[i].phys_start, s->memory[i].virt_start,
				         s->memory[i].size, what);
				goto out;
			}
		}
		for (size_t j = 0; j < n_regions; j++) {
			bool found = false;
			for (size_t i = 0; i < s->n_memory && !found; i++)
				found = same_region(&s->memory[i], &regions[j]);
			if (!found) {
				snprintf(p, sizeof p, "%s.memory", path);
				r = config_error(err, p, "\"%s\" has region %s (phys 0x%" PRIx64 ", virt 0x%" PRIx64 ", size 0x%" PRIx64
				         ") that the spec does not list",
				         what, regions[j].name + strlen("cell-"), regions[j].phys_start,
				         regions[j].virt_start, regions[j].size);
				goto out;
			}
		}
	} else {
		memcpy(s->memory, regions, n_regions * sizeof regions[0]);
		s->n_memory = n_regions;
	}
	r = 0;
out:
	jh_cell_config_free(cc);
	return r;
}
