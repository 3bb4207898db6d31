/* SPDX-License-Identifier: MIT */
/*
 * The container backend: every cell is one OCI container, run by runc (the
 * default) or crun through its command line. The cell directory is the
 * bundle: config.json (bundle.c), the comm file the container sees at
 * /run/warden/comm, console.log with the container's stdout and stderr.
 * The root filesystem is a tarball unpacked once per digest (rootfs.c).
 *
 * A boot is `RUNTIME run` in the foreground, in a session of its own: the
 * runtime process stays the container's parent, exits with the container
 * init's status (128 + signal when killed) and removes the container
 * (state, cgroup, mounts) when init is gone. So its pidfd is the cell's
 * pidfd, its exit status tells an exit (0: halted) from a crash, and a
 * killed init needs no `delete`. The init's pid comes from the runtime's
 * pid file and is the cell's pid.
 *
 * The runtime survives the daemon; a restarted daemon re-adopts it from
 * the pid files in the cell directory (and the runtime's own state).
 *
 * Worker calls spawn the runtime and wait for it, each wait bounded; loop
 * calls never do. No logging: what the runtime says goes to runtime.log
 * in the cell directory. README.md beside this file has the layout.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../backend-internal.h"
#include "../celldir.h"
#include "../process.h"
#include "../qemu/cellfiles.h"
#include "bundle.h"
#include "rootfs.h"

#define DEFAULT_RUNC "/usr/sbin/runc"
#define UNSHARE_BINARY "/usr/bin/unshare"
#define SHELL_BINARY "/bin/sh"
#define CGROUP2_MAGIC 0x63677270

#define FILE_RUNTIME_PID "runtime.pid" /* the foreground runtime */
#define FILE_INIT_PID "init.pid"       /* written by the runtime */
#define FILE_LOG "runtime.log"
#define FILE_OUT "runtime.out"
#define FILE_STATE "backend-state"
#define FILE_ROOTFS "rootfs" /* a writable cell's own tree */

#define START_TIMEOUT_MS 10000 /* run -> pid file; runc takes ~60 ms */
#define CMD_TIMEOUT_MS 10000   /* state, delete */
#define KILL_WAIT_MS 3000      /* init killed -> runtime gone */
#define RUNTIME_KILL_MS 2000

typedef struct ContainerBackend {
	Backend base;
	char *cells_dir;
	char *cache_dir;  /* unpacked read-only trees, by digest */
	char *state_root; /* the runtime's --root */
	char *binary;
	bool crun;
	bool crun_unshare; /* crun on a mixed cgroup layout: see runtime_argv() */
	char tag[9];       /* of runtime_dir, in cgroup paths */
} ContainerBackend;

typedef struct ContainerCell {
	BackendCell base;
	ContainerBackend *backend;
	char *name;
	char *dir;
	char id[96]; /* the runtime's container id */
	int dir_fd;
	int console_fd;
	ChildProcess *proc; /* the foreground runtime, or NULL */
	pid_t init_pid;
	bool destroyed;
	bool loaded;
	bool exit_noted; /* the halt of a clean exit is in the comm region */
	volatile struct warden_comm *comm;
	size_t comm_size;
	uint64_t boots;

	BackendCellState state;
	char reason[BACKEND_REASON_LEN];
	uint64_t state_mono_ns;
} ContainerCell;

static const BackendOps container_backend_ops;
static const BackendCellOps container_cell_ops;

static void set_state(ContainerCell *c, BackendCellState s, const char *reason)
{
	c->state = s;
	snprintf(c->reason, sizeof(c->reason), "%s", reason ? reason : "");
	c->state_mono_ns = backend_now_ns(CLOCK_MONOTONIC);
}

/* ---- the runtime's command line ------------------------------------ */

#define MAX_ARGV 32

/* crun refuses a host with cgroup v1 controllers and a v2 mount beside
 * them; in a mount namespace of its own without the v2 mount it works,
 * and nobody else sees the difference. */
static int runtime_argv(ContainerCell *c, const char *const *args, char **argv, size_t *n)
{
	ContainerBackend *b = c->backend;
	int r = 0;

	*n = 0;
	if (b->crun_unshare) {
		r |= backend_append_arg(argv, n, MAX_ARGV, "%s", UNSHARE_BINARY);
		r |= backend_append_arg(argv, n, MAX_ARGV, "--mount");
		r |= backend_append_arg(argv, n, MAX_ARGV, "--propagation=private");
		r |= backend_append_arg(argv, n, MAX_ARGV, "%s", SHELL_BINARY);
		r |= backend_append_arg(argv, n, MAX_ARGV, "-c");
		r |= backend_append_arg(argv, n, MAX_ARGV, "umount /sys/fs/cgroup/unified 2>/dev/null; exec \"$0\" \"$@\"");
	}
	r |= backend_append_arg(argv, n, MAX_ARGV, "%s", b->binary);
	r |= backend_append_arg(argv, n, MAX_ARGV, "--root=%s", b->state_root);
	r |= backend_append_arg(argv, n, MAX_ARGV, "--log=%s/%s", c->dir, FILE_LOG);
	for (size_t i = 0; args[i] && r == 0; i++)
		r |= backend_append_arg(argv, n, MAX_ARGV, "%s", args[i]);
	return r < 0 ? -ENOMEM : 0;
}

static void argv_free(char **argv, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(argv[i]);
}

/* Spawn the runtime with stdout to out_fd (-1: /dev/null) and stderr to
 * runtime.log. With ret, hand the running process back; else wait for it
 * (bounded) and return its exit status, or -errno. */
static int runtime_exec(ContainerCell *c, const char *const *args, int out_fd, bool session, ChildProcess **ret)
{
	char *argv[MAX_ARGV] = { 0 };
	ChildProcess *p = NULL;
	size_t n = 0;
	int null_fd = -1, log_fd = -1, r;

	r = runtime_argv(c, args, argv, &n);
	if (r < 0)
		goto out;
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	log_fd = openat(c->dir_fd, FILE_LOG, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, LOG_FILE_MODE);
	if (null_fd < 0 || log_fd < 0) {
		r = -errno;
		goto out;
	}
	r = child_new(c->backend->crun ? "crun" : "runc", &p);
	if (r < 0)
		goto out;
	const ChildSpawn how = {
		.binary = argv[0],
		.argv = argv,
		.fds = { null_fd, out_fd >= 0 ? out_fd : null_fd, out_fd >= 0 && session ? out_fd : log_fd },
		.n_fds = 3,
		.dir_fd = c->dir_fd,
		.new_session = session,
	};
	r = child_spawn(p, &how);
	if (r < 0)
		goto out;
	if (ret) {
		*ret = p;
		p = NULL;
		goto out;
	}
	if (!child_reap(p, CMD_TIMEOUT_MS)) {
		(void)child_kill(p, RUNTIME_KILL_MS);
		r = -ETIMEDOUT;
		goto out;
	}
	r = child_exit_code(p);
out:
	child_free(p);
	backend_close_fd(&null_fd);
	backend_close_fd(&log_fd);
	argv_free(argv, n);
	return r;
}

/* The runtime's own view: "running", "paused", "stopped", "created";
 * -ENOENT when it knows no such container. */
static int runtime_state(ContainerCell *c, char *status, size_t n, pid_t *pid)
{
	const char *args[] = { "state", c->id, NULL };
	json_error_t jerr;
	json_t *o;
	int fd, r;

	fd = openat(c->dir_fd, FILE_OUT, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	r = runtime_exec(c, args, fd, false, NULL);
	if (r != 0) {
		close(fd);
		return r < 0 ? r : -ENOENT;
	}
	(void)lseek(fd, 0, SEEK_SET);
	o = json_loadfd(fd, 0, &jerr);
	close(fd);
	if (!o)
		return -EPROTO;
	snprintf(status, n, "%s", json_string_value(json_object_get(o, "status")) ?: "");
	if (pid)
		*pid = (pid_t)json_integer_value(json_object_get(o, "pid"));
	json_decref(o);
	return 0;
}

/* The runtime keeps a directory per container below its --root (runc
 * and crun alike): without one there is nothing to ask it about, and a
 * process spawn (~15 ms) is saved. */
static bool runtime_knows(ContainerCell *c)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", c->backend->state_root, c->id);
	return access(path, F_OK) == 0;
}

static int runtime_delete(ContainerCell *c)
{
	const char *args[] = { "delete", "--force", c->id, NULL };
	int r = runtime_exec(c, args, -1, false, NULL);

	return r < 0 ? r : 0;
}

/* ---- small files ---------------------------------------------------- */

static int read_pid(int dir_fd, const char *name, pid_t *ret)
{
	char buf[32] = "";
	ssize_t k;
	int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	k = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (k <= 0)
		return -ENODATA;
	buf[k] = 0;
	long v = strtol(buf, NULL, 10);
	if (v <= 0)
		return -EPROTO;
	*ret = (pid_t)v;
	return 0;
}

static int write_text(int dir_fd, const char *name, const char *text)
{
	char tmp[64];
	size_t len = strlen(text);
	int fd, r = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len)
		r = -EIO;
	close(fd);
	if (r == 0 && renameat(dir_fd, tmp, dir_fd, name) < 0)
		r = -errno;
	return r;
}

static void save_record(ContainerCell *c)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "boots %" PRIu64 "\n", c->boots);
	(void)write_text(c->dir_fd, FILE_STATE, buf);
}

static void load_record(ContainerCell *c)
{
	char buf[64] = "";
	int fd = openat(c->dir_fd, FILE_STATE, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	if (read(fd, buf, sizeof(buf) - 1) > 0)
		(void)sscanf(buf, "boots %" SCNu64, &c->boots);
	close(fd);
}

/* A line of ours in runtime.log, for the operator reading it. */
static void note(ContainerCell *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(ContainerCell *c, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int fd, len;

	va_start(ap, fmt);
	len = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (len < 0)
		return;
	if (len > (int)sizeof(line) - 2)
		len = (int)sizeof(line) - 2;
	line[len++] = '\n';
	fd = openat(c->dir_fd, FILE_LOG, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, LOG_FILE_MODE);
	if (fd < 0)
		return;
	(void)!write(fd, line, (size_t)len);
	close(fd);
}

/* The process at pid is our runtime running this container. */
static bool is_our_runtime(ContainerCell *c, pid_t pid)
{
	char path[64], buf[4096];
	ssize_t k;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	k = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (k <= 0)
		return false;
	buf[k] = 0;
	/* NUL-separated: the id is a whole word, the last one. */
	for (ssize_t i = 0; i < k; i += (ssize_t)strlen(buf + i) + 1)
		if (strcmp(buf + i, c->id) == 0)
			return true;
	return false;
}

/* ---- backend -------------------------------------------------------- */

static bool mixed_cgroups(void)
{
	struct statfs fs;

	return statfs("/sys/fs/cgroup/unified", &fs) == 0 && (unsigned long)fs.f_type == CGROUP2_MAGIC &&
	       statfs("/sys/fs/cgroup", &fs) == 0 && (unsigned long)fs.f_type != CGROUP2_MAGIC;
}

int container_backend_new(const BackendConfig *cfg, Backend **ret)
{
	const char *runtime = cfg->runtime ? cfg->runtime : "runc";
	ContainerBackend *b;
	uint32_t h = 2166136261u;

	if (!cfg->runtime_dir || cfg->runtime_dir[0] != '/')
		return -EINVAL;
	if (strcmp(runtime, "runc") != 0 && strcmp(runtime, "crun") != 0)
		return -EINVAL;
	if (cfg->runner_path && cfg->runner_path[0] != '/')
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->base.ops = &container_backend_ops;
	b->crun = strcmp(runtime, "crun") == 0;
	b->binary = strdup(cfg->runner_path ? cfg->runner_path : b->crun ? "/usr/bin/crun" : DEFAULT_RUNC);
	if (asprintf(&b->cells_dir, "%s/cells", cfg->runtime_dir) < 0)
		b->cells_dir = NULL;
	if (asprintf(&b->cache_dir, "%s/container/rootfs", cfg->runtime_dir) < 0)
		b->cache_dir = NULL;
	if (asprintf(&b->state_root, "%s/container/%s", cfg->runtime_dir, runtime) < 0)
		b->state_root = NULL;
	if (!b->binary || !b->cells_dir || !b->cache_dir || !b->state_root) {
		container_backend_ops.free(&b->base);
		return -ENOMEM;
	}
	/* Two daemons (tests) may run cells of the same name: the cgroup
	 * path carries a hash of the runtime dir. */
	for (const char *s = cfg->runtime_dir; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	snprintf(b->tag, sizeof(b->tag), "%08x", h);
	*ret = &b->base;
	return 0;
}

static void container_backend_free(Backend *base)
{
	ContainerBackend *b = (ContainerBackend *)base;

	free(b->cells_dir);
	free(b->cache_dir);
	free(b->state_root);
	free(b->binary);
	free(b);
}

static int container_backend_enable(Backend *base)
{
	ContainerBackend *b = (ContainerBackend *)base;
	int r;

	if (access(b->binary, X_OK) < 0)
		return -ENOENT;
	b->crun_unshare = b->crun && mixed_cgroups();
	if (b->crun_unshare && access(UNSHARE_BINARY, X_OK) < 0)
		return -ENOENT;
	if ((r = backend_mkdir_p(b->cells_dir)) < 0 || (r = backend_mkdir_p(b->cache_dir)) < 0)
		return r;
	return backend_mkdir_p(b->state_root);
}

static int container_backend_disable(Backend *base)
{
	(void)base;
	return 0;
}

static int container_backend_stats(Backend *base, BackendStat *ret, size_t max)
{
	ContainerBackend *b = (ContainerBackend *)base;

	if (max < 1)
		return 0;
	snprintf(ret[0].name, sizeof(ret[0].name), "runtime_crun");
	ret[0].value = b->crun;
	return 1;
}

/* ---- cell objects --------------------------------------------------- */

static ContainerCell *cell_new(ContainerBackend *b, const char *name)
{
	ContainerCell *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->base.ops = &container_cell_ops;
	c->backend = b;
	c->dir_fd = c->console_fd = -1;
	c->state = BACKEND_CELL_CREATED;
	snprintf(c->id, sizeof(c->id), "warden-%s-%s", b->tag, name);
	c->name = strdup(name);
	if (!c->name || asprintf(&c->dir, "%s/%s", b->cells_dir, name) < 0) {
		free(c->name);
		free(c);
		return NULL;
	}
	return c;
}

static void container_cell_free(BackendCell *base)
{
	ContainerCell *c = (ContainerCell *)base;

	c->proc = child_free(c->proc);
	if (c->comm)
		munmap((void *)c->comm, c->comm_size);
	backend_close_fd(&c->console_fd);
	backend_close_fd(&c->dir_fd);
	free(c->name);
	free(c->dir);
	free(c);
}

/* The container of the last boot, gone: init killed, the runtime waited
 * for (it removes the container as init dies), and whatever is left
 * deleted. Bounded. */
static int instance_kill(ContainerCell *c)
{
	int r = 0;

	if (c->proc && !child_reap(c->proc, 0)) {
		if (c->init_pid > 0) {
			int fd = backend_pidfd_open(c->init_pid);
			if (fd >= 0) {
				(void)syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0);
				close(fd);
			}
		}
		if (!child_reap(c->proc, KILL_WAIT_MS)) {
			(void)child_kill(c->proc, RUNTIME_KILL_MS);
			r = runtime_delete(c);
		}
	} else if (!c->proc && runtime_knows(c)) {
		/* Never booted by us, or adopted without a runtime. */
		r = runtime_delete(c);
	}
	c->init_pid = 0;
	(void)unlinkat(c->dir_fd, FILE_INIT_PID, 0);
	(void)unlinkat(c->dir_fd, FILE_RUNTIME_PID, 0);
	return r;
}

static int prepare_rootfs(ContainerCell *c, const BackendCellConfig *cfg, char *path, size_t n)
{
	char why[ROOTFS_WHY_LEN];
	const char *want = cfg->rootfs_digest;
	int r;

	if (want && strncmp(want, "sha256:", 7) == 0)
		want += 7;
	if (!cfg->rootfs_writable) {
		r = rootfs_cached(cfg->rootfs, c->backend->cache_dir, want, path, n, why, sizeof(why));
	} else {
		char hex[65];
		snprintf(path, n, "%s/%s", c->dir, FILE_ROOTFS);
		r = rootfs_digest(cfg->rootfs, hex);
		if (r < 0)
			snprintf(why, sizeof(why), "cannot read the rootfs tarball: %s", strerror(-r));
		else if (want && strcasecmp(want, hex) != 0) {
			snprintf(why, sizeof(why), "rootfs digest mismatch: the tarball has SHA-256 %s", hex);
			r = -EBADMSG;
		}
		if (r >= 0) {
			(void)rootfs_remove_tree(path);
			r = rootfs_unpack(cfg->rootfs, path, why, sizeof(why));
		}
	}
	if (r < 0)
		note(c, "warden: rootfs %s refused: %s", cfg->rootfs, why);
	return r;
}

static int container_cell_create(Backend *base, const BackendCellConfig *cfg, BackendCell **ret)
{
	ContainerBackend *b = (ContainerBackend *)base;
	char rootfs[PATH_MAX], comm_path[PATH_MAX], cgroup[160], status[32], argbuf[1024], *argv[64];
	ContainerCell *c;
	pid_t pid;
	int r;

	if (!backend_name_valid(cfg->name) || !cfg->rootfs || cfg->rootfs[0] != '/' || cfg->n_cpus == 0)
		return -EINVAL;
	if (bundle_split_args(cfg->args, argbuf, sizeof(argbuf), argv, 64) <= 0)
		return -EINVAL;
	c = cell_new(b, cfg->name);
	if (!c)
		return -ENOMEM;
	r = c->dir_fd = celldir_open(c->dir, true);
	if (r < 0)
		goto fail;
	/* A live container of this name is not ours to replace; a leftover
	 * (the runtime died with the host's daemon killed) is removed. */
	if (read_pid(c->dir_fd, FILE_RUNTIME_PID, &pid) == 0 && is_our_runtime(c, pid)) {
		r = -EEXIST;
		goto fail;
	}
	if (runtime_knows(c) && runtime_state(c, status, sizeof(status), NULL) == 0)
		(void)runtime_delete(c);
	r = prepare_rootfs(c, cfg, rootfs, sizeof(rootfs));
	if (r < 0)
		goto fail;
	r = c->console_fd = cellfiles_console_new(c->dir_fd);
	if (r < 0)
		goto fail;
	r = cellfiles_comm_map(c->dir_fd, cfg->comm_size > WARDEN_COMM_SIZE ? (size_t)cfg->comm_size : WARDEN_COMM_SIZE,
	                       true, &c->comm, &c->comm_size);
	if (r < 0)
		goto fail;
	snprintf(comm_path, sizeof(comm_path), "%s/%s", c->dir, QEMU_FILE_COMM);
	snprintf(cgroup, sizeof(cgroup), "/warden-%s-%s", b->tag, cfg->name);
	const BundleSpec bs = { .cfg = cfg, .rootfs = rootfs, .comm_file = comm_path, .cgroup_path = cgroup };
	r = bundle_write(c->dir_fd, &bs);
	if (r < 0)
		goto fail;
	save_record(c);
	set_state(c, BACKEND_CELL_CREATED, "created");
	*ret = &c->base;
	return 0;
fail:
	container_cell_free(&c->base);
	return r;
}

static int container_cell_adopt(Backend *base, const char *name, BackendCell **ret)
{
	ContainerBackend *b = (ContainerBackend *)base;
	char status[32] = "";
	ContainerCell *c;
	pid_t pid, init = 0;
	int r;

	if (!backend_name_valid(name))
		return -EINVAL;
	c = cell_new(b, name);
	if (!c)
		return -ENOMEM;
	r = c->dir_fd = celldir_open(c->dir, false);
	if (r < 0)
		goto fail;
	r = read_pid(c->dir_fd, FILE_RUNTIME_PID, &pid);
	if (r < 0 || !is_our_runtime(c, pid)) {
		r = -ENOENT;
		goto fail;
	}
	if ((r = child_new(b->crun ? "crun" : "runc", &c->proc)) < 0 || (r = child_adopt(c->proc, pid)) < 0)
		goto fail;
	/* The runtime's own word on it, and the init's pid. */
	r = runtime_state(c, status, sizeof(status), &init);
	if (r < 0 || (strcmp(status, "running") != 0 && strcmp(status, "paused") != 0) || init <= 0) {
		r = -ENOENT;
		goto fail;
	}
	if (!is_our_runtime(c, pid)) {
		r = -ENOENT; /* exited meanwhile, the pid may be someone else's */
		goto fail;
	}
	c->init_pid = init;
	r = cellfiles_comm_map(c->dir_fd, 0, false, &c->comm, &c->comm_size);
	if (r < 0)
		goto fail;
	c->console_fd = cellfiles_console_open(c->dir_fd);
	if (c->console_fd < 0)
		c->console_fd = -1;
	load_record(c);
	c->loaded = true;
	set_state(c, BACKEND_CELL_RUNNING, "");
	*ret = &c->base;
	return 0;
fail:
	/* Leave the runtime alone: not adopted is not destroyed. */
	container_cell_free(&c->base);
	return r;
}

/* ---- cell operations ------------------------------------------------ */

static int container_cell_load(BackendCell *base)
{
	ContainerCell *c = (ContainerCell *)base;
	int r;

	if (c->destroyed)
		return -ENODEV;
	r = instance_kill(c);
	if (r < 0)
		return r;
	c->proc = child_free(c->proc);
	cellfiles_comm_clear_inmate(c->comm);
	c->exit_noted = false;
	cellfiles_console_rotate(c->dir_fd, c->console_fd);
	c->loaded = true;
	set_state(c, BACKEND_CELL_CREATED, "loaded");
	return 0;
}

static int container_cell_start(BackendCell *base)
{
	ContainerCell *c = (ContainerCell *)base;
	const char *args[] = { "run", "--bundle", c->dir, "--pid-file", FILE_INIT_PID, c->id, NULL };
	char buf[32];
	uint64_t deadline;
	int out_fd, r;

	if (c->destroyed)
		return -ENODEV;
	if (c->state == BACKEND_CELL_RUNNING && c->proc && !child_reap(c->proc, 0))
		return -EALREADY;
	if (!c->loaded)
		return -ENOEXEC;
	/* A start is a boot: whatever ran before goes first. */
	if (c->proc || c->state != BACKEND_CELL_CREATED) {
		r = container_cell_load(base);
		if (r < 0)
			return r;
	}
	(void)unlinkat(c->dir_fd, FILE_INIT_PID, 0);
	out_fd = openat(c->dir_fd, QEMU_FILE_CONSOLE, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, LOG_FILE_MODE);
	if (out_fd < 0)
		return -errno;
	r = runtime_exec(c, args, out_fd, true, &c->proc);
	close(out_fd);
	if (r < 0)
		return r;
	snprintf(buf, sizeof(buf), "%d\n", (int)child_pid(c->proc));
	(void)write_text(c->dir_fd, FILE_RUNTIME_PID, buf);

	/* The runtime writes the pid file once init exists (create), and
	 * starts it right after; it exits at once when it cannot. */
	deadline = backend_now_ns(CLOCK_MONOTONIC) + START_TIMEOUT_MS * 1000000ull;
	for (;;) {
		pid_t init;
		if (read_pid(c->dir_fd, FILE_INIT_PID, &init) == 0) {
			c->init_pid = init;
			break;
		}
		if (child_reap(c->proc, 1)) {
			note(c, "warden: %s run exited before the container started (%s)",
			     c->backend->crun ? "crun" : "runc", child_exit_reason(c->proc));
			(void)unlinkat(c->dir_fd, FILE_RUNTIME_PID, 0);
			c->proc = child_free(c->proc);
			return -ECHILD;
		}
		if (backend_remaining_ms(deadline) == 0) {
			c->proc = child_free(c->proc);
			(void)runtime_delete(c);
			return -ETIMEDOUT;
		}
	}
	c->boots++;
	c->loaded = false;
	save_record(c);
	set_state(c, BACKEND_CELL_RUNNING, "");
	return 0;
}

/* No pause: a stopped container is gone, its comm region and console
 * stay readable (they are files of ours), and a start boots it anew. */
static int container_cell_stop(BackendCell *base)
{
	ContainerCell *c = (ContainerCell *)base;
	int r;

	if (c->destroyed)
		return -ENODEV;
	r = instance_kill(c);
	if (r < 0)
		return r;
	if (c->state == BACKEND_CELL_RUNNING || c->state == BACKEND_CELL_STOPPED)
		set_state(c, BACKEND_CELL_STOPPED, "stopped on request");
	return 0;
}

static int container_cell_reset(BackendCell *base)
{
	ContainerCell *c = (ContainerCell *)base;
	int r = container_cell_load(base);

	if (r < 0)
		return r;
	c->loaded = true;
	return container_cell_start(base);
}

static int container_cell_mail(BackendCell *base, uint32_t cmd, uint32_t arg)
{
	ContainerCell *c = (ContainerCell *)base;

	if (c->destroyed)
		return -ENODEV;
	/* No doorbell: the process reads its mailbox on every beat. */
	return backend_comm_post(c->comm, cmd, arg);
}

static int container_cell_destroy(BackendCell *base)
{
	ContainerCell *c = (ContainerCell *)base;
	char path[PATH_MAX];
	int r;

	if (c->destroyed)
		return 0;
	r = instance_kill(c);
	if (r < 0)
		return r;
	(void)unlinkat(c->dir_fd, "config.json", 0);
	(void)unlinkat(c->dir_fd, QEMU_FILE_COMM, 0);
	(void)unlinkat(c->dir_fd, FILE_STATE, 0);
	(void)unlinkat(c->dir_fd, FILE_OUT, 0);
	snprintf(path, sizeof(path), "%s/%s", c->dir, FILE_ROOTFS);
	(void)rootfs_remove_tree(path);
	c->destroyed = true;
	set_state(c, BACKEND_CELL_GONE, "destroyed");
	return 0;
}

static const char *container_cell_name(const BackendCell *base)
{
	return ((const ContainerCell *)base)->name;
}

/* A clean exit (status 0) is the process's halt: said in the comm region
 * as the process would have, unless it said something itself. The
 * process is gone, so nobody else writes the region now. */
static void note_clean_exit(ContainerCell *c)
{
	volatile struct warden_comm *m = c->comm;
	static const char why[] = "container init exited with status 0";
	uint32_t s;

	if (c->exit_noted || !m)
		return;
	c->exit_noted = true;
	if (__atomic_load_n(&m->magic, __ATOMIC_ACQUIRE) == WARDEN_COMM_MAGIC &&
	    (m->state == WARDEN_INMATE_PANICKED || m->state == WARDEN_INMATE_HALTED))
		return;
	s = (m->reason_seq + 1) & ~1u;
	__atomic_store_n(&m->reason_seq, s + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	for (size_t i = 0; i < WARDEN_COMM_REASON_LEN; i++)
		m->reason[i] = i < sizeof(why) ? why[i] : '\0';
	m->event_mono_ns = backend_now_ns(CLOCK_MONOTONIC);
	__atomic_store_n(&m->reason_seq, s + 2, __ATOMIC_RELEASE);
	m->state = WARDEN_INMATE_HALTED;
	if (__atomic_load_n(&m->magic, __ATOMIC_ACQUIRE) != WARDEN_COMM_MAGIC) {
		m->abi = WARDEN_COMM_ABI;
		m->size = WARDEN_COMM_SIZE;
		m->flags |= WARDEN_FLAG_HOST_CLOCK;
		__atomic_store_n(&m->magic, WARDEN_COMM_MAGIC, __ATOMIC_RELEASE);
	}
}

static int container_cell_status(BackendCell *base, BackendCellStatus *ret)
{
	ContainerCell *c = (ContainerCell *)base;
	BackendCellStatus s = { 0 };
	const char *native = "created";

	cellfiles_console_rotate(c->dir_fd, c->console_fd);
	s.state = c->state;
	snprintf(s.reason, sizeof(s.reason), "%s", c->reason);
	s.state_mono_ns = c->state_mono_ns;
	if (c->state == BACKEND_CELL_RUNNING && c->proc && child_reap(c->proc, 0)) {
		int code = child_exit_code(c->proc);
		if (code == 0) {
			note_clean_exit(c);
			s.state = BACKEND_CELL_HALTED;
			snprintf(s.reason, sizeof(s.reason), "container init exited with status 0");
		} else {
			s.state = BACKEND_CELL_GONE;
			if (code > 128)
				snprintf(s.reason, sizeof(s.reason), "container init killed by signal %d", code - 128);
			else if (code > 0)
				snprintf(s.reason, sizeof(s.reason), "container init exited with status %d", code);
			else
				snprintf(s.reason, sizeof(s.reason), "container exited (%s)", child_exit_reason(c->proc));
		}
		s.state_mono_ns = 0;
	}
	switch (s.state) {
	case BACKEND_CELL_RUNNING:
		native = "running";
		s.pid = c->init_pid;
		break;
	case BACKEND_CELL_CREATED:
		native = "created";
		break;
	default:
		native = "stopped";
		break;
	}
	snprintf(s.hv_state, sizeof(s.hv_state), "%s", native);
	s.boots = c->boots;
	*ret = s;
	return 0;
}

static volatile struct warden_comm *container_cell_comm(BackendCell *base)
{
	return ((ContainerCell *)base)->comm;
}

static ssize_t container_cell_console_read(BackendCell *base, char *buf, size_t n)
{
	ContainerCell *c = (ContainerCell *)base;

	return cellfiles_console_read(c->dir_fd, c->console_fd, buf, n);
}

static int container_cell_event_fd(BackendCell *base)
{
	(void)base;
	return -EBADF; /* no doorbell: samples and the pidfd tell it all */
}

static int container_cell_event_ack(BackendCell *base)
{
	(void)base;
	return 0;
}

static int container_cell_pidfd(BackendCell *base)
{
	ContainerCell *c = (ContainerCell *)base;

	return c->proc ? child_pidfd(c->proc) : -1;
}

static void container_cell_reap(BackendCell *base)
{
	ContainerCell *c = (ContainerCell *)base;

	if (c->proc)
		(void)child_reap(c->proc, 0);
}

int backend_rootfs_check(const char *tarball, char *why, size_t n)
{
	if (!tarball || !why || n == 0)
		return -EINVAL;
	return rootfs_check(tarball, why, n);
}

static const BackendOps container_backend_ops = {
	.kind = "container",
	/* Both paths are one `run`; in place keeps the bundle and rootfs. */
	.restart_in_place = true,
	.free = container_backend_free,
	.enable = container_backend_enable,
	.disable = container_backend_disable,
	.cell_create = container_cell_create,
	.cell_adopt = container_cell_adopt,
	.stats = container_backend_stats,
};

static const BackendCellOps container_cell_ops = {
	.free = container_cell_free,
	.load = container_cell_load,
	.start = container_cell_start,
	.stop = container_cell_stop,
	.reset = container_cell_reset,
	.mail = container_cell_mail,
	.destroy = container_cell_destroy,
	.name = container_cell_name,
	.status = container_cell_status,
	.comm = container_cell_comm,
	.console_read = container_cell_console_read,
	.event_fd = container_cell_event_fd,
	.event_ack = container_cell_event_ack,
	.pidfd = container_cell_pidfd,
	.reap = container_cell_reap,
};
