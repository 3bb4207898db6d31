/* SPDX-License-Identifier: MIT */
/*
 * The jailhouse backend as wardend sees it (backend.h). Two channels, kept
 * apart on purpose:
 *
 *   - the helper (warden-jailhouse, helper.h), which holds /dev/jailhouse
 *     and /dev/mem: ENABLE, DISABLE, CELL_CREATE/LOAD/START/DESTROY and the
 *     fd of a comm region. Its protocol is synchronous and an ioctl may
 *     block for seconds (ENABLE, a CELL_LOAD of a kernel), so only worker
 *     calls talk to it: enable, disable, create, adopt, load, start, stop,
 *     reset, destroy;
 *   - sysfs (/sys/devices/jailhouse), plain reads that never wait on the
 *     hypervisor: status and stats, the loop calls.
 *
 * The heartbeat is warden's comm region: the spec's comm region is a
 * memory region of the .cell (virt_start == comm_addr) that the cell shares
 * with the root cell; the helper hands out an fd of /dev/mem for it and we
 * map it at its physical address. No doorbell, no process: the daemon
 * samples (event_fd -EBADF, pidfd -1).
 *
 * Restart is Jailhouse's own: CELL_LOAD (which sets the cell loadable, i.e.
 * shut down) and CELL_START, without a destroy; stop is CELL_LOAD without
 * images, what `jailhouse cell shutdown` does.
 *
 * Daemon restarts: the helper is the daemon's child and ends with it (EOF on
 * its socket), the cells do not. What adopt needs to map a comm region
 * again is kept at create under RUNTIME_DIR/jailhouse: NAME.json (the
 * Jailhouse name, the comm region, the images) and NAME.cell (the bytes
 * CELL_CREATE took). Adopt hands those bytes to the new helper with
 * CELL_REGISTER, which checks them against sysfs before it lets us map the
 * cell's shared ranges.
 *
 * No logging; negative errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#include "../../api/warden/apps.h"
#include "../backend-internal.h"
#include "../process.h"
#include "cell-config.h"
#include "helper.h"
#include "linux-place.h"
#include "sysfs.h"

#define DEFAULT_DEVICE JH_DEVICE_PATH
#define DEFAULT_MEM "/dev/mem"
/* Where Jailhouse's `make install` puts the loader `jailhouse cell linux` uses. */
#define DEFAULT_LINUX_LOADER "/usr/libexec/jailhouse/linux-loader.bin"
#define MAX_LINUX_FILE (512u << 20) /* a kernel, an initramfs */
#define MAX_DTB_FILE (1u << 20)
#define MAX_CONFIG_BYTES (16u << 20) /* a .cell or system config */
/* Every helper exchange is bounded: a CELL_LOAD copies at most a few
 * hundred MB, ENABLE brings up every CPU. A helper that does not answer in
 * time is killed, so that its late reply never answers the next request. */
#define HELPER_TIMEOUT_S 120
#define HELPER_KILL_MS 1000
#define STATS_REFRESH_NS (500 * 1000000ull) /* sysfs statistics, per cell */

typedef struct JhBackend {
	Backend base;
	char *helper_path;
	char *system_config;
	char *sysfs_root;
	char *device;
	char *mem;
	char *linux_loader;
	char *state_dir; /* RUNTIME_DIR/jailhouse */
	/* The helper serves one request at a time; its socket and its
	 * replacement after a death are shared by every worker. */
	pthread_mutex_t lock;
	ChildProcess *helper;
	JhClient *client;
} JhBackend;

typedef struct JhCellImage {
	char *path;
	uint64_t addr;
} JhCellImage;

typedef struct JhCell {
	BackendCell base;
	JhBackend *backend;
	char *name;                    /* warden's */
	char jh_name[JH_CELL_NAME_LEN]; /* the .cell's, what the driver knows */
	uint8_t *cell_data;
	size_t cell_size;
	JhCellImage images[BACKEND_MAX_IMAGES];
	size_t n_images;
	/* A Linux cell: placed at every load as `jailhouse cell linux` would */
	char *kernel, *initrd, *dtb, *cmdline;
	uint64_t comm_virt, comm_phys, comm_size;
	volatile struct warden_comm *comm;
	uint64_t boots;
	bool destroyed;
	/* loop-call state: only status() touches it */
	int sysfs_id; /* -1: look it up */
	BackendCellState last_state;
	char last_reason[BACKEND_REASON_LEN];
	uint64_t state_ns;
	uint64_t stats_ns;
	BackendStat stats[BACKEND_MAX_STATS];
	size_t n_stats;
} JhCell;

static const BackendOps jhb_backend_ops;
static const BackendCellOps jhb_cell_ops;

/* ---- small pieces --------------------------------------------------- */

static int read_file(const char *path, size_t max, uint8_t **ret, size_t *ret_size)
{
	struct stat st;
	uint8_t *buf;
	size_t got = 0;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		r = S_ISREG(st.st_mode) ? -errno : -EINVAL;
		close(fd);
		return r;
	}
	if ((uint64_t)st.st_size > max || st.st_size == 0) {
		close(fd);
		return st.st_size == 0 ? -ENODATA : -EFBIG;
	}
	buf = malloc((size_t)st.st_size);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			r = k < 0 ? -errno : -EIO;
			break;
		}
		got += (size_t)k;
	}
	close(fd);
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret = buf;
	*ret_size = got;
	return 0;
}

static int write_file(const char *path, const void *data, size_t size)
{
	char tmp[PATH_MAX];
	const uint8_t *p = data;
	int fd, r = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	while (size > 0) {
		ssize_t k = write(fd, p, size);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			r = k < 0 ? -errno : -EIO;
			break;
		}
		p += k;
		size -= (size_t)k;
	}
	/* The runtime directory is tmpfs: a rename is atomic enough, no
	 * fsync (it does not survive a reboot, and neither do the cells). */
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

/* ---- the helper ------------------------------------------------------ */

static void helper_drop(JhBackend *b, bool kill)
{
	b->client = jh_client_free(b->client);
	if (b->helper && kill)
		(void)child_kill(b->helper, HELPER_KILL_MS);
	else if (b->helper)
		(void)child_reap(b->helper, HELPER_KILL_MS);
	b->helper = child_free(b->helper);
}

/* Under b->lock: a live helper, spawned if there is none (first use, or the
 * last one died). */
static int helper_ensure(JhBackend *b)
{
	struct timeval tv = { .tv_sec = HELPER_TIMEOUT_S };
	char *argv[8] = { 0 };
	char log_path[PATH_MAX];
	int sv[2] = { -1, -1 }, null_fd = -1, log_fd = -1, r;
	size_t n = 0;

	if (b->client && b->helper && !child_reap(b->helper, 0))
		return 0;
	helper_drop(b, false);
	if ((r = backend_mkdir_p(b->state_dir)) < 0)
		return r;
	if ((r = child_new("jailhouse helper", &b->helper)) < 0)
		return r;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		goto out;
	}
	snprintf(log_path, sizeof(log_path), "%s/helper.log", b->state_dir);
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, LOG_FILE_MODE);
	if (null_fd < 0 || log_fd < 0) {
		r = -errno;
		goto out;
	}
	r = backend_append_arg(argv, &n, 8, "%s", b->helper_path);
	if (r >= 0)
		r = backend_append_arg(argv, &n, 8, "--device=%s", b->device);
	if (r >= 0)
		r = backend_append_arg(argv, &n, 8, "--mem=%s", b->mem);
	if (r >= 0)
		r = backend_append_arg(argv, &n, 8, "--sysfs=%s", b->sysfs_root);
	if (r < 0)
		goto out;
	/* fd 3 is the helper's end of the socket; it stays in our session and
	 * ends when we do (EOF). */
	const ChildSpawn how = {
		.binary = b->helper_path,
		.argv = argv,
		.fds = { null_fd, log_fd, log_fd, sv[1] },
		.n_fds = 4,
		.dir_fd = -1,
	};
	r = child_spawn(b->helper, &how);
	if (r < 0)
		goto out;
	if (setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		r = -errno;
		goto out;
	}
	r = jh_client_new(sv[0], &b->client);
	if (r >= 0)
		sv[0] = -1;
out:
	backend_close_fd(&sv[0]);
	backend_close_fd(&sv[1]);
	backend_close_fd(&null_fd);
	backend_close_fd(&log_fd);
	for (size_t i = 0; argv[i]; i++)
		free(argv[i]);
	if (r < 0)
		helper_drop(b, true);
	return r;
}

static int helper_begin(JhBackend *b)
{
	int r;

	pthread_mutex_lock(&b->lock);
	r = helper_ensure(b);
	if (r < 0)
		pthread_mutex_unlock(&b->lock);
	return r;
}

/* The exchange's result r: a helper that timed out or went away is
 * replaced on the next call. */
static int helper_end(JhBackend *b, int r)
{
	if (r == -EAGAIN || r == -EWOULDBLOCK) {
		helper_drop(b, true);
		r = -ETIMEDOUT;
	} else if (r == -ECONNRESET || r == -EPIPE || r == -EBADMSG) {
		helper_drop(b, true);
	}
	pthread_mutex_unlock(&b->lock);
	return r;
}

/* ---- backend ---------------------------------------------------------- */

int jailhouse_backend_new(const BackendConfig *cfg, Backend **ret)
{
	JhBackend *b;

	if (!cfg->runtime_dir || !cfg->runner_path || cfg->runtime_dir[0] != '/' || cfg->runner_path[0] != '/')
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->base.ops = &jhb_backend_ops;
	pthread_mutex_init(&b->lock, NULL);
	b->helper_path = strdup(cfg->runner_path);
	b->system_config = cfg->system_config ? strdup(cfg->system_config) : NULL;
	b->sysfs_root = strdup(cfg->sysfs_root ? cfg->sysfs_root : JH_SYSFS_ROOT);
	b->device = strdup(cfg->device ? cfg->device : DEFAULT_DEVICE);
	b->mem = strdup(cfg->mem ? cfg->mem : DEFAULT_MEM);
	b->linux_loader = strdup(cfg->linux_loader ? cfg->linux_loader : DEFAULT_LINUX_LOADER);
	if (asprintf(&b->state_dir, "%s/jailhouse", cfg->runtime_dir) < 0)
		b->state_dir = NULL;
	if (!b->helper_path || (cfg->system_config && !b->system_config) || !b->sysfs_root || !b->device || !b->mem ||
	    !b->linux_loader ||
	    !b->state_dir) {
		jhb_backend_ops.free(&b->base);
		return -ENOMEM;
	}
	*ret = &b->base;
	return 0;
}

static void jhb_backend_free(Backend *base)
{
	JhBackend *b = (JhBackend *)base;

	/* The helper sees EOF and exits; the cells keep running. */
	helper_drop(b, false);
	pthread_mutex_destroy(&b->lock);
	free(b->helper_path);
	free(b->system_config);
	free(b->sysfs_root);
	free(b->device);
	free(b->mem);
	free(b->linux_loader);
	free(b->state_dir);
	free(b);
}

static bool hypervisor_enabled(JhBackend *b)
{
	JhSystemInfo si;
	return jh_sysfs_read_system(b->sysfs_root, &si) >= 0 && si.enabled;
}

static int jhb_backend_enable(Backend *base)
{
	JhBackend *b = (JhBackend *)base;
	struct stat st;
	uint8_t *data = NULL;
	size_t size = 0;
	int r;

	if (access(b->helper_path, X_OK) < 0)
		return -errno;
	/* Without the driver (jailhouse.ko not loaded) there is no device:
	 * say so here rather than through a helper that exits at once. */
	if (stat(b->device, &st) < 0)
		return -errno;
	/* Enabled already (the cells outlived a daemon restart): nothing to
	 * do, and ENABLE would say -EBUSY. */
	if (hypervisor_enabled(b))
		return 0;
	if (!b->system_config)
		return -ENOKEY;
	r = read_file(b->system_config, MAX_CONFIG_BYTES, &data, &size);
	if (r < 0)
		return r;
	r = helper_begin(b);
	if (r >= 0)
		r = helper_end(b, jh_client_enable(b->client, data, size));
	if (r == -EBUSY && hypervisor_enabled(b))
		r = 0;
	free(data);
	return r;
}

static int jhb_backend_disable(Backend *base)
{
	JhBackend *b = (JhBackend *)base;
	int r;

	/* DISABLE of a disabled hypervisor is -EINVAL: it is what we want. */
	if (access(b->sysfs_root, F_OK) < 0 || !hypervisor_enabled(b))
		return 0;
	r = helper_begin(b);
	if (r >= 0)
		r = helper_end(b, jh_client_disable(b->client));
	if (r < 0 && !hypervisor_enabled(b))
		r = 0;
	return r;
}

static int jhb_backend_stats(Backend *base, BackendStat *ret, size_t max)
{
	JhBackend *b = (JhBackend *)base;
	JhSystemInfo si;
	size_t n = 0;
	int r;

	r = jh_sysfs_read_system(b->sysfs_root, &si);
	if (r < 0)
		return r;
	const BackendStat all[] = {
		{ "enabled", si.enabled },
		{ "mem_pool_size", si.mem_pool_size },
		{ "mem_pool_used", si.mem_pool_used },
		{ "remap_pool_size", si.remap_pool_size },
		{ "remap_pool_used", si.remap_pool_used },
	};
	for (; n < max && n < sizeof(all) / sizeof(all[0]); n++)
		ret[n] = all[n];
	return (int)n;
}

/* The sysfs attribute is the hypervisor's console ring as it stands, read
 * from memory by the driver: one read that does not wait. */
static ssize_t jhb_backend_console_read(Backend *base, char *buf, size_t n)
{
	JhBackend *b = (JhBackend *)base;
	char path[PATH_MAX], *all;
	ssize_t k, got = 0;
	size_t cap = 1u << 16;
	int fd;

	if (snprintf(path, sizeof(path), "%s/console", b->sysfs_root) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	all = malloc(cap);
	if (!all) {
		close(fd);
		return -ENOMEM;
	}
	while ((size_t)got < cap && (k = read(fd, all + got, cap - (size_t)got)) > 0)
		got += k;
	close(fd);
	/* the newest n bytes */
	if ((size_t)got > n) {
		memcpy(buf, all + got - (ssize_t)n, n);
		got = (ssize_t)n;
	} else
		memcpy(buf, all, (size_t)got);
	free(all);
	return got;
}

/* ---- cell objects ------------------------------------------------------ */

static JhCell *cell_new(JhBackend *b, const char *name)
{
	JhCell *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->base.ops = &jhb_cell_ops;
	c->backend = b;
	c->sysfs_id = -1;
	c->last_state = _BACKEND_CELL_STATE_INVALID;
	c->name = strdup(name);
	if (!c->name) {
		free(c);
		return NULL;
	}
	return c;
}

static void jhb_cell_free(BackendCell *base)
{
	JhCell *c = (JhCell *)base;

	if (c->comm)
		munmap((void *)c->comm, c->comm_size);
	for (size_t i = 0; i < c->n_images; i++)
		free(c->images[i].path);
	free(c->kernel);
	free(c->initrd);
	free(c->dtb);
	free(c->cmdline);
	free(c->cell_data);
	free(c->name);
	free(c);
}

static int record_path(const JhCell *c, const char *ext, char *buf, size_t n)
{
	if (snprintf(buf, n, "%s/%s.%s", c->backend->state_dir, c->name, ext) >= (int)n)
		return -ENAMETOOLONG;
	return 0;
}

/* What adopt needs after a daemon restart. */
static int record_save(const JhCell *c)
{
	char path[PATH_MAX];
	json_t *o, *imgs = json_array();
	char *text;
	int r;

	for (size_t i = 0; i < c->n_images; i++)
		json_array_append_new(imgs, json_pack("{s:s, s:I}", "path", c->images[i].path, "addr",
		                                      (json_int_t)c->images[i].addr));
	o = json_pack("{s:i, s:s, s:I, s:I, s:I, s:o}", "version", 1, "jailhouse_name", c->jh_name, "comm_virt",
	              (json_int_t)c->comm_virt, "comm_phys", (json_int_t)c->comm_phys, "comm_size",
	              (json_int_t)c->comm_size, "images", imgs);
	if (!o)
		return -ENOMEM;
	if (c->kernel) {
		json_t *l = json_pack("{s:s, s:s}", "kernel", c->kernel, "dtb", c->dtb);
		if (l && c->initrd)
			json_object_set_new(l, "initrd", json_string(c->initrd));
		if (l && c->cmdline)
			json_object_set_new(l, "cmdline", json_string(c->cmdline));
		if (!l || json_object_set_new(o, "linux", l) < 0) {
			json_decref(o);
			return -ENOMEM;
		}
	}
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!text)
		return -ENOMEM;
	r = backend_mkdir_p(c->backend->state_dir);
	if (r >= 0)
		r = record_path(c, "cell", path, sizeof(path));
	if (r >= 0)
		r = write_file(path, c->cell_data, c->cell_size);
	if (r >= 0)
		r = record_path(c, "json", path, sizeof(path));
	if (r >= 0)
		r = write_file(path, text, strlen(text));
	free(text);
	return r;
}

static void record_remove(const JhCell *c)
{
	char path[PATH_MAX];

	if (record_path(c, "json", path, sizeof(path)) >= 0)
		unlink(path);
	if (record_path(c, "cell", path, sizeof(path)) >= 0)
		unlink(path);
}

static int record_load(JhCell *c)
{
	uint8_t *text = NULL;
	char path[PATH_MAX];
	json_error_t je;
	json_t *o, *v;
	size_t size, i;
	int r;

	if ((r = record_path(c, "json", path, sizeof(path))) < 0 ||
	    (r = read_file(path, 1u << 20, &text, &size)) < 0)
		return r;
	o = json_loadb((const char *)text, size, 0, &je);
	free(text);
	if (!o)
		return -EBADMSG;
	const char *jn = json_string_value(json_object_get(o, "jailhouse_name"));
	c->comm_virt = (uint64_t)json_integer_value(json_object_get(o, "comm_virt"));
	c->comm_phys = (uint64_t)json_integer_value(json_object_get(o, "comm_phys"));
	c->comm_size = (uint64_t)json_integer_value(json_object_get(o, "comm_size"));
	r = jn && strlen(jn) < JH_CELL_NAME_LEN && c->comm_size >= WARDEN_COMM_SIZE ? 0 : -EBADMSG;
	if (r >= 0)
		snprintf(c->jh_name, sizeof(c->jh_name), "%s", jn);
	json_array_foreach(json_object_get(o, "images"), i, v) {
		const char *p = json_string_value(json_object_get(v, "path"));
		if (r < 0 || !p || c->n_images >= BACKEND_MAX_IMAGES) {
			r = -EBADMSG;
			break;
		}
		c->images[c->n_images].addr = (uint64_t)json_integer_value(json_object_get(v, "addr"));
		c->images[c->n_images].path = strdup(p);
		if (!c->images[c->n_images++].path)
			r = -ENOMEM;
	}
	v = json_object_get(o, "linux");
	if (r >= 0 && v) {
		const char *k = json_string_value(json_object_get(v, "kernel"));
		const char *d = json_string_value(json_object_get(v, "dtb"));
		const char *ird = json_string_value(json_object_get(v, "initrd"));
		const char *l = json_string_value(json_object_get(v, "cmdline"));
		if (!k || !d)
			r = -EBADMSG;
		else if (!(c->kernel = strdup(k)) || !(c->dtb = strdup(d)) || (ird && !(c->initrd = strdup(ird))) ||
		         (l && !(c->cmdline = strdup(l))))
			r = -ENOMEM;
	}
	json_decref(o);
	if (r >= 0 && (r = record_path(c, "cell", path, sizeof(path))) >= 0)
		r = read_file(path, MAX_CONFIG_BYTES, &c->cell_data, &c->cell_size);
	return r;
}

/* Under the helper lock: the comm region, through the helper's mem fd. */
static int comm_map(JhCell *c)
{
	void *p;
	int fd = -1, r;

	r = jh_client_open_mem(c->backend->client, c->comm_phys, c->comm_size, &fd);
	if (r < 0)
		return r;
	p = mmap(NULL, c->comm_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)c->comm_phys);
	r = p == MAP_FAILED ? -errno : 0;
	close(fd);
	if (r < 0)
		return r;
	c->comm = p;
	/* Tell the inmate how much of the region there is: a console ring
	 * follows the page when the spec's comm region is bigger. */
	__atomic_store_n(&c->comm->region_size, (uint32_t)c->comm_size, __ATOMIC_RELEASE);
	return 0;
}

/* The .cell's own view: its Jailhouse name and the physical address of the
 * region the spec's comm region is. */
static int cell_layout(JhCell *c, uint64_t comm_virt, uint64_t comm_size)
{
	JhCellConfig *cc = NULL;
	char err[256];
	int r;

	r = jh_cell_config_decode(c->cell_data, c->cell_size, JH_ARCH_UNSPEC, &cc, err, sizeof(err));
	if (r < 0)
		return -EINVAL;
	snprintf(c->jh_name, sizeof(c->jh_name), "%s", cc->name);
	r = -ENXIO; /* no region of the .cell is the comm region */
	for (uint32_t i = 0; i < cc->n_memory; i++) {
		const JhMemory *m = &cc->memory[i];
		if (m->virt_start != comm_virt || m->size < comm_size)
			continue;
		if ((m->phys_start & 0xfff) || !(m->flags & JH_MEM_ROOTSHARED))
			r = -EINVAL; /* the root cell could not map it */
		else
			r = 0;
		c->comm_phys = m->phys_start;
		break;
	}
	c->comm_virt = comm_virt;
	c->comm_size = comm_size;
	jh_cell_config_free(cc);
	return r;
}

static int validate_config(const BackendCellConfig *cfg)
{
	if (!backend_name_valid(cfg->name))
		return -EINVAL;
	/* The .cell: a file, or bytes wardend generated from the spec. */
	if (cfg->cell_data ? !cfg->cell_size || cfg->cell_size > MAX_CONFIG_BYTES
	                   : !cfg->cell_config || cfg->cell_config[0] != '/')
		return -EINVAL;
	/* A Linux cell: a kernel and the device tree it is placed with. */
	if (cfg->kernel && (cfg->kernel[0] != '/' || !cfg->dtb || cfg->dtb[0] != '/' || cfg->n_images ||
	                    (cfg->initrd && cfg->initrd[0] != '/')))
		return -EINVAL;
	if (cfg->n_images > BACKEND_MAX_IMAGES || cfg->comm_size < WARDEN_COMM_SIZE || (cfg->comm_size & 0xfff))
		return -EINVAL;
	for (size_t i = 0; i < cfg->n_images; i++)
		if (!cfg->images[i].path || cfg->images[i].path[0] != '/')
			return -EINVAL;
	return 0;
}

static int jhb_cell_create(Backend *base, const BackendCellConfig *cfg, BackendCell **ret)
{
	JhBackend *b = (JhBackend *)base;
	JhCell *c;
	int r;

	r = validate_config(cfg);
	if (r < 0)
		return r;
	c = cell_new(b, cfg->name);
	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_images; i++) {
		c->images[i].addr = cfg->images[i].addr;
		c->images[i].path = strdup(cfg->images[i].path);
		c->n_images++;
		if (!c->images[i].path) {
			r = -ENOMEM;
			goto fail;
		}
	}
	/* warden.ko finds the comm region by its address: the cell's
	 * guest-physical one (virt_start), with no ivshmem device to probe. */
	if (cfg->kernel &&
	    (!(c->kernel = strdup(cfg->kernel)) || !(c->dtb = strdup(cfg->dtb)) ||
	     (cfg->initrd && !(c->initrd = strdup(cfg->initrd))) ||
	     asprintf(&c->cmdline, "%s%swarden.period_ms=%u warden.allow_inject=%d warden.phys_addr=0x%" PRIx64
	                           " warden.phys_size=%" PRIu64,
	              cfg->cmdline ? cfg->cmdline : "", cfg->cmdline && *cfg->cmdline ? " " : "",
	              cfg->period_ms ? cfg->period_ms : 100, cfg->allow_inject ? 1 : 0, cfg->comm_addr,
	              cfg->comm_size) < 0)) {
		c->cmdline = NULL;
		r = -ENOMEM;
		goto fail;
	}
	if (cfg->cell_data) {
		c->cell_data = malloc(cfg->cell_size);
		r = c->cell_data ? 0 : -ENOMEM;
		if (c->cell_data) {
			memcpy(c->cell_data, cfg->cell_data, cfg->cell_size);
			c->cell_size = cfg->cell_size;
		}
	} else
		r = read_file(cfg->cell_config, MAX_CONFIG_BYTES, &c->cell_data, &c->cell_size);
	if (r < 0)
		goto fail;
	r = cell_layout(c, cfg->comm_addr, cfg->comm_size);
	if (r < 0)
		goto fail;

	r = helper_begin(b);
	if (r < 0)
		goto fail;
	r = jh_client_cell_create(b->client, c->cell_data, c->cell_size);
	if (r == -EEXIST) {
		/* A cell of that Jailhouse name, left by a daemon that died
		 * before it recorded it: ours by name, so start it over. */
		r = jh_client_cell_destroy(b->client, c->jh_name);
		if (r >= 0)
			r = jh_client_cell_create(b->client, c->cell_data, c->cell_size);
	}
	if (r >= 0) {
		r = comm_map(c);
		if (r < 0)
			(void)jh_client_cell_destroy(b->client, c->jh_name);
	}
	r = helper_end(b, r);
	if (r < 0)
		goto fail;
	r = record_save(c);
	if (r < 0) {
		if (helper_begin(b) >= 0)
			(void)helper_end(b, jh_client_cell_destroy(b->client, c->jh_name));
		goto fail;
	}
	*ret = &c->base;
	return 0;
fail:
	jhb_cell_free(&c->base);
	return r;
}

static int jhb_cell_adopt(Backend *base, const char *name, BackendCell **ret)
{
	JhBackend *b = (JhBackend *)base;
	JhCellInfo info;
	JhCell *c;
	int r;

	if (!backend_name_valid(name))
		return -EINVAL;
	c = cell_new(b, name);
	if (!c)
		return -ENOMEM;
	r = record_load(c);
	if (r < 0)
		goto fail;
	r = jh_sysfs_find_cell(b->sysfs_root, c->jh_name, &c->sysfs_id);
	if (r < 0) {
		/* Gone with a disable, a reboot, an operator: forget it. */
		if (r == -ENOENT || r == -ENOTDIR)
			record_remove(c);
		r = -ENOENT;
		goto fail;
	}
	r = helper_begin(b);
	if (r < 0)
		goto fail;
	r = jh_client_cell_register(b->client, c->cell_data, c->cell_size);
	if (r >= 0)
		r = comm_map(c);
	r = helper_end(b, r);
	if (r < 0)
		goto fail;
	/* Started before, unless it is shut down. */
	if (jh_sysfs_read_cell_state(b->sysfs_root, c->sysfs_id, &info) >= 0 && info.state != JH_CELL_SHUT_DOWN)
		c->boots = 1;
	*ret = &c->base;
	return 0;
fail:
	jhb_cell_free(&c->base);
	return r;
}

/* ---- cell operations ------------------------------------------------- */

typedef struct Mapped {
	void *p;
	size_t size;
} Mapped;

static int map_image(const char *path, Mapped *ret)
{
	struct stat st;
	void *p;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode) || st.st_size == 0)
		r = -EINVAL;
	if (r == 0) {
		p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED)
			r = -errno;
		else
			*ret = (Mapped){ .p = p, .size = (size_t)st.st_size };
	}
	close(fd);
	return r;
}

/* A fresh boot must not take the last run's beats for its own: the cell is
 * shut down once CELL_LOAD returned, so nobody else writes the inmate's
 * half now. The mailbox stays (an inmate takes its cmd_seq as handled). */
static void comm_clear(JhCell *c)
{
	__atomic_store_n(&c->comm->seq, 0, __ATOMIC_RELEASE);
	warden_comm_clear_inmate(c->comm);
}

/* A Linux cell's images, placed as `jailhouse cell linux` places them:
 * loader, kernel, patched DTB, initrd, parameter string. Read anew at
 * every load, so that a replaced kernel file takes effect at the next
 * restart. */
/* Where linux_place() maps a Linux cell's files in cell_load()'s maps[]. */
enum { KERNEL, DTB, INITRD, LOADER };

static int linux_place(JhCell *c, Mapped *maps, JhLinuxPlacement **ret)
{
	JhCellConfig *cc = NULL;
	char err[256];
	int r;

	if ((r = map_image(c->kernel, &maps[KERNEL])) < 0 || (r = map_image(c->dtb, &maps[DTB])) < 0 ||
	    (c->initrd && (r = map_image(c->initrd, &maps[INITRD])) < 0) ||
	    (r = map_image(c->backend->linux_loader, &maps[LOADER])) < 0)
		return r;
	if (maps[KERNEL].size > MAX_LINUX_FILE || maps[DTB].size > MAX_DTB_FILE || maps[INITRD].size > MAX_LINUX_FILE)
		return -EFBIG;
	r = jh_cell_config_decode(c->cell_data, c->cell_size, JH_ARCH_UNSPEC, &cc, err, sizeof(err));
	if (r < 0)
		return -EINVAL;
	JhLinuxInput in = {
		.cell_name = c->name,
		.kernel = maps[KERNEL].p,
		.kernel_size = maps[KERNEL].size,
		.kernel_name = c->kernel,
		.dtb = maps[DTB].p,
		.dtb_size = maps[DTB].size,
		.dtb_name = c->dtb,
		.initrd = c->initrd ? maps[INITRD].p : NULL,
		.initrd_size = maps[INITRD].size,
		.initrd_name = c->initrd,
		.cmdline = c->cmdline,
		.loader_size = maps[LOADER].size,
	};
	r = jh_linux_place(cc, &in, ret, err, sizeof(err));
	jh_cell_config_free(cc);
	/* The worker's errno alone would say "Numerical result out of
	 * range"; the placement says which image and region. wardend's
	 * stderr is its log (the journal under systemd). */
	if (r < 0)
		fprintf(stderr, "jailhouse backend: cell \"%s\": %s\n", c->name, err);
	return r;
}

static int cell_load(JhCell *c, bool images)
{
	Mapped maps[BACKEND_MAX_IMAGES] = { 0 };
	JhImage ji[BACKEND_MAX_IMAGES];
	size_t n = images ? c->n_images : 0;
	int r = 0;

	JhLinuxPlacement *placed = NULL;

	if (c->destroyed)
		return -ENODEV;
	if (images && c->kernel) {
		const JhLinuxImage *li;

		r = linux_place(c, maps, &placed);
		li = r >= 0 ? jh_linux_placement_images(placed, &n) : NULL;
		for (size_t i = 0; r >= 0 && i < n; i++) {
			/* the placement leaves the loader's bytes to us */
			const void *data = li[i].kind == JH_LINUX_IMAGE_LOADER ? maps[LOADER].p : li[i].data;
			size_t size = li[i].kind == JH_LINUX_IMAGE_LOADER ? maps[LOADER].size : li[i].size;
			ji[i] = (JhImage){ .data = data, .size = size, .target = li[i].address };
		}
		if (r < 0)
			n = 0;
	}
	for (size_t i = 0; i < n && r >= 0 && !c->kernel; i++) {
		r = map_image(c->images[i].path, &maps[i]);
		ji[i] = (JhImage){ .data = maps[i].p, .size = maps[i].size, .target = c->images[i].addr };
	}
	if (r >= 0 && (r = helper_begin(c->backend)) >= 0)
		r = helper_end(c->backend, jh_client_cell_load(c->backend->client, c->jh_name, n ? ji : NULL, n));
	for (size_t i = 0; i < BACKEND_MAX_IMAGES; i++)
		if (maps[i].p)
			munmap(maps[i].p, maps[i].size);
	jh_linux_placement_free(placed);
	if (r >= 0 && images)
		comm_clear(c);
	return r;
}

static int jhb_cell_load(BackendCell *base)
{
	return cell_load((JhCell *)base, true);
}

static int jhb_cell_start(BackendCell *base)
{
	JhCell *c = (JhCell *)base;
	int r;

	if (c->destroyed)
		return -ENODEV;
	r = helper_begin(c->backend);
	if (r >= 0)
		r = helper_end(c->backend, jh_client_cell_start(c->backend->client, c->jh_name));
	if (r >= 0)
		__atomic_add_fetch(&c->boots, 1, __ATOMIC_RELAXED);
	return r;
}

/* `jailhouse cell shutdown`: CELL_LOAD without images parks the CPUs and
 * leaves the memory, the comm region included, as it is. */
static int jhb_cell_stop(BackendCell *base)
{
	return cell_load((JhCell *)base, false);
}

/* Jailhouse's restart: CELL_LOAD (set loadable) and CELL_START, no destroy. */
static int jhb_cell_reset(BackendCell *base)
{
	int r = jhb_cell_load(base);
	return r < 0 ? r : jhb_cell_start(base);
}

static int jhb_cell_mail(BackendCell *base, uint32_t cmd, uint32_t arg)
{
	JhCell *c = (JhCell *)base;

	if (c->destroyed)
		return -ENODEV;
	/* No doorbell into the cell here: the inmate reads its mailbox on
	 * every beat. */
	return backend_comm_post(c->comm, cmd, arg);
}

static int jhb_cell_destroy(BackendCell *base)
{
	JhCell *c = (JhCell *)base;
	JhBackend *b = c->backend;
	int id, r;

	if (c->destroyed)
		return 0;
	r = helper_begin(b);
	if (r >= 0)
		r = helper_end(b, jh_client_cell_destroy(b->client, c->jh_name));
	/* Gone already (a DISABLE takes every cell with it): as good. */
	if (r < 0 && jh_sysfs_find_cell(b->sysfs_root, c->jh_name, &id) < 0)
		r = 0;
	if (r >= 0) {
		c->destroyed = true;
		record_remove(c);
	}
	return r;
}

static const char *jhb_cell_name(const BackendCell *base)
{
	return ((const JhCell *)base)->name;
}

/* The cached sysfs id while it still names our cell, else a fresh look-up
 * (ids are reused after a destroy). */
static int locate(JhCell *c, JhCellInfo *info)
{
	const char *root = c->backend->sysfs_root;
	int r;

	if (c->sysfs_id >= 0) {
		r = jh_sysfs_read_cell_state(root, c->sysfs_id, info);
		if (r >= 0 && strcmp(info->name, c->jh_name) == 0)
			return 0;
		if (r < 0 && r != -ENOENT)
			return r;
		c->sysfs_id = -1;
	}
	r = jh_sysfs_find_cell(root, c->jh_name, &c->sysfs_id);
	if (r == -ENOTDIR)
		r = -ENOENT;
	if (r < 0) {
		c->sysfs_id = -1;
		return r;
	}
	return jh_sysfs_read_cell_state(root, c->sysfs_id, info);
}

static void refresh_stats(JhCell *c, uint64_t now)
{
	JhCellInfo *full;

	if (c->stats_ns && now - c->stats_ns < STATS_REFRESH_NS)
		return;
	c->stats_ns = now;
	full = calloc(1, sizeof(*full));
	if (!full)
		return;
	if (jh_sysfs_read_cell(c->backend->sysfs_root, c->sysfs_id, full) >= 0) {
		c->n_stats = 0;
		for (size_t i = 0; i < full->n_stats && c->n_stats < BACKEND_MAX_STATS; i++) {
			BackendStat *st = &c->stats[c->n_stats++];
			snprintf(st->name, sizeof(st->name), "%s", full->stats[i].name);
			st->value = full->stats[i].value;
		}
	}
	free(full);
}

static uint64_t stat_value(const JhCell *c, const char *name)
{
	for (size_t i = 0; i < c->n_stats; i++)
		if (strcmp(c->stats[i].name, name) == 0)
			return c->stats[i].value;
	return 0;
}

static int jhb_cell_status(BackendCell *base, BackendCellStatus *ret)
{
	JhCell *c = (JhCell *)base;
	uint64_t now = backend_now_ns(CLOCK_MONOTONIC);
	BackendCellStatus s = { .boots = __atomic_load_n(&c->boots, __ATOMIC_RELAXED) };
	JhCellInfo info;
	char cpus[128];
	int r = 0;

	if (c->destroyed) {
		s.state = BACKEND_CELL_GONE;
		snprintf(s.reason, sizeof(s.reason), "destroyed");
	} else if ((r = locate(c, &info)) == -ENOENT) {
		s.state = BACKEND_CELL_GONE;
		snprintf(s.reason, sizeof(s.reason), "Jailhouse has no cell \"%s\"", c->jh_name);
	} else if (r < 0) {
		return r;
	} else {
		switch (info.state) {
		case JH_CELL_RUNNING:
		case JH_CELL_RUNNING_LOCKED:
			s.state = BACKEND_CELL_RUNNING;
			break;
		case JH_CELL_SHUT_DOWN:
			s.state = s.boots ? BACKEND_CELL_STOPPED : BACKEND_CELL_CREATED;
			break;
		case JH_CELL_FAILED:
			s.state = BACKEND_CELL_FAILED;
			jh_cpu_set_format(&info.cpus_failed, cpus, sizeof(cpus));
			if (cpus[0])
				snprintf(s.reason, sizeof(s.reason), "Jailhouse: CPU%s %s failed",
				         strpbrk(cpus, ",-") ? "s" : "", cpus);
			else
				snprintf(s.reason, sizeof(s.reason), "Jailhouse: cell failed");
			break;
		case JH_CELL_FAILED_COMM_REV:
			s.state = BACKEND_CELL_FAILED;
			snprintf(s.reason, sizeof(s.reason), "Jailhouse: Comm ABI mismatch");
			break;
		default:
			s.state = BACKEND_CELL_FAILED;
			snprintf(s.reason, sizeof(s.reason), "Jailhouse: state \"invalid\"");
			break;
		}
		refresh_stats(c, now);
		s.has_hv_id = true;
		s.hv_id = c->sysfs_id;
		snprintf(s.hv_state, sizeof(s.hv_state), "%s", jh_cell_state_to_string(info.state));
	}
	if (s.state != c->last_state || strcmp(s.reason, c->last_reason) != 0) {
		c->last_state = s.state;
		memcpy(c->last_reason, s.reason, sizeof(c->last_reason));
		c->state_ns = now;
	}
	s.state_mono_ns = c->state_ns;
	s.exits = stat_value(c, "vmexits_total");
	s.exits_mmio = stat_value(c, "vmexits_mmio");
	s.exits_io = stat_value(c, "vmexits_pio");
	memcpy(s.stats, c->stats, sizeof(s.stats));
	s.n_stats = c->n_stats;
	*ret = s;
	return 0;
}

static volatile struct warden_comm *jhb_cell_comm(BackendCell *base)
{
	return ((JhCell *)base)->comm;
}

static ssize_t jhb_cell_console_read(BackendCell *base, char *buf, size_t n)
{
	/* Cells share the board's UARTs; what an inmate also writes into its
	 * comm region's console ring is its own. */
	JhCell *c = (JhCell *)base;

	return c->comm ? backend_comm_console_read(c->comm, c->comm_size, buf, n) : 0;
}

static int jhb_cell_event_fd(BackendCell *base)
{
	(void)base;
	return -EBADF;
}

static int jhb_cell_event_ack(BackendCell *base)
{
	(void)base;
	return 0;
}

static int jhb_cell_pidfd(BackendCell *base)
{
	(void)base;
	return -1;
}

static const BackendOps jhb_backend_ops = {
	.kind = "jailhouse",
	/* Jailhouse's restart is CELL_LOAD + CELL_START; a destroy and create
	 * would also take the CPUs from the root cell and back. */
	.restart_in_place = true,
	.free = jhb_backend_free,
	.enable = jhb_backend_enable,
	.disable = jhb_backend_disable,
	.cell_create = jhb_cell_create,
	.cell_adopt = jhb_cell_adopt,
	.stats = jhb_backend_stats,
	.console_read = jhb_backend_console_read,
};

static const BackendCellOps jhb_cell_ops = {
	.free = jhb_cell_free,
	.load = jhb_cell_load,
	.start = jhb_cell_start,
	.stop = jhb_cell_stop,
	.reset = jhb_cell_reset,
	.mail = jhb_cell_mail,
	.destroy = jhb_cell_destroy,
	.name = jhb_cell_name,
	.status = jhb_cell_status,
	.comm = jhb_cell_comm,
	.console_read = jhb_cell_console_read,
	.event_fd = jhb_cell_event_fd,
	.event_ack = jhb_cell_event_ack,
	.pidfd = jhb_cell_pidfd,
};
