/* SPDX-License-Identifier: MIT */
/*
 * config.json from a container cell's config. The container gets its own
 * pid, network (loopback only), ipc, uts and mount namespaces; the cell's
 * CPUs as its cpuset, its memory limit, no devices beyond the standard
 * set; the root filesystem read-only unless the spec made it writable;
 * the comm file bind-mounted read-write at CONTAINER_COMM_PATH. The
 * process runs as root inside, without a terminal, its stdout and stderr
 * going to the console log the backend hands the runtime.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle.h"

int bundle_split_args(const char *args, char *buf, size_t buf_n, char **argv, size_t max)
{
	size_t n = 0;
	char *s, *save = NULL;

	if (!args)
		args = "";
	if (strlen(args) >= buf_n)
		return -E2BIG;
	snprintf(buf, buf_n, "%s", args);
	for (s = strtok_r(buf, " \t\n", &save); s; s = strtok_r(NULL, " \t\n", &save)) {
		if (n + 1 >= max)
			return -E2BIG;
		argv[n++] = s;
	}
	argv[n] = NULL;
	return (int)n;
}

static json_t *mount_entry(const char *dest, const char *type, const char *source, const char *const *opts)
{
	json_t *o = json_pack("{s:s, s:s, s:s}", "destination", dest, "type", type, "source", source);
	json_t *a = json_array();

	for (size_t i = 0; opts[i]; i++)
		json_array_append_new(a, json_string(opts[i]));
	json_object_set_new(o, "options", a);
	return o;
}

static json_t *strings(const char *const *v)
{
	json_t *a = json_array();

	for (size_t i = 0; v[i]; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *build(const BundleSpec *b)
{
	static const char *const caps[] = { "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE", NULL };
	static const char *const masked[] = { "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		                              "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		                              "/proc/scsi", "/sys/firmware", NULL };
	static const char *const ro[] = { "/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
		                          "/proc/sysrq-trigger", NULL };
	const BackendCellConfig *cfg = b->cfg;
	char argbuf[1024], *argv[64], cpus[BACKEND_MAX_CPUS * 4 + 1] = "", env_comm[64], env_period[48],
	     env_cell[96];
	size_t len = 0;
	json_t *root, *args, *mounts, *ns, *env;
	int n = bundle_split_args(cfg->args, argbuf, sizeof(argbuf), argv, 64);

	if (n <= 0)
		return NULL;
	for (size_t i = 0; i < cfg->n_cpus; i++)
		len += (size_t)snprintf(cpus + len, sizeof(cpus) - len, "%s%u", i ? "," : "", cfg->cpus[i]);
	args = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(args, json_string(argv[i]));
	snprintf(env_comm, sizeof(env_comm), "%s=%s", CONTAINER_COMM_ENV, CONTAINER_COMM_PATH);
	snprintf(env_period, sizeof(env_period), "WARDEN_PERIOD_MS=%u", cfg->period_ms ? cfg->period_ms : 10);
	snprintf(env_cell, sizeof(env_cell), "WARDEN_CELL=%s", cfg->name);
	env = json_pack("[s, s, s, s, s]", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	                env_comm, env_period, env_cell, cfg->allow_inject ? "WARDEN_ALLOW_INJECT=1" : "WARDEN_ALLOW_INJECT=0");

	mounts = json_array();
	json_array_append_new(mounts, mount_entry("/proc", "proc", "proc", (const char *const[]){ "nosuid", "noexec", "nodev", NULL }));
	json_array_append_new(mounts, mount_entry("/dev", "tmpfs", "tmpfs",
	                                          (const char *const[]){ "nosuid", "strictatime", "mode=755", "size=65536k", NULL }));
	json_array_append_new(mounts, mount_entry("/dev/pts", "devpts", "devpts",
	                                          (const char *const[]){ "nosuid", "noexec", "newinstance", "ptmxmode=0666",
	                                                                 "mode=0620", NULL }));
	json_array_append_new(mounts, mount_entry("/dev/shm", "tmpfs", "shm",
	                                          (const char *const[]){ "nosuid", "noexec", "nodev", "mode=1777", "size=65536k", NULL }));
	json_array_append_new(mounts, mount_entry("/dev/mqueue", "mqueue", "mqueue",
	                                          (const char *const[]){ "nosuid", "noexec", "nodev", NULL }));
	json_array_append_new(mounts, mount_entry("/sys", "sysfs", "sysfs",
	                                          (const char *const[]){ "nosuid", "noexec", "nodev", "ro", NULL }));
	json_array_append_new(mounts, mount_entry("/run", "tmpfs", "tmpfs",
	                                          (const char *const[]){ "nosuid", "nodev", "mode=755", "size=4096k", NULL }));
	json_array_append_new(mounts, mount_entry(CONTAINER_COMM_PATH, "bind", b->comm_file,
	                                          (const char *const[]){ "rbind", "rw", "nosuid", "nodev", "noexec", NULL }));

	ns = json_pack("[{s:s}, {s:s}, {s:s}, {s:s}, {s:s}]", "type", "pid", "type", "network", "type", "ipc", "type",
	               "uts", "type", "mount");
	root = json_pack("{s:s, s:{s:b, s:{s:i, s:i}, s:o, s:o, s:s, s:{s:o, s:o, s:o}, s:b, s:[{s:s, s:i, s:i}]},"
	                 " s:{s:s, s:b}, s:s, s:o}",
	                 "ociVersion", "1.0.2",
	                 "process", "terminal", 0, "user", "uid", 0, "gid", 0, "args", args, "env", env, "cwd", "/",
	                 "capabilities", "bounding", strings(caps), "effective", strings(caps), "permitted", strings(caps),
	                 "noNewPrivileges", 1, "rlimits", "type", "RLIMIT_NOFILE", "hard", 1024, "soft", 1024,
	                 "root", "path", b->rootfs, "readonly", !cfg->rootfs_writable,
	                 "hostname", cfg->name,
	                 "mounts", mounts);
	if (!root)
		return NULL;
	json_t *res = json_pack("{s:[{s:b, s:s}], s:{s:s}, s:{s:I}, s:{s:i}}", "devices", "allow", 0, "access", "rwm",
	                        "cpu", "cpus", cpus, "memory", "limit",
	                        (json_int_t)(cfg->memory_limit ? cfg->memory_limit : CONTAINER_DEFAULT_MEMORY),
	                        "pids", "limit", 1024);
	json_t *lx = json_pack("{s:o, s:s, s:o, s:o, s:o}", "namespaces", ns, "cgroupsPath", b->cgroup_path,
	                       "resources", res, "maskedPaths", strings(masked), "readonlyPaths", strings(ro));
	if (!lx || json_object_set_new(root, "linux", lx) < 0) {
		json_decref(root);
		return NULL;
	}
	return root;
}

int bundle_write(int dir_fd, const BundleSpec *b)
{
	json_t *root = build(b);
	char *text;
	int fd, r = 0;
	size_t len;

	if (!root)
		return -EINVAL;
	text = json_dumps(root, JSON_INDENT(2));
	json_decref(root);
	if (!text)
		return -ENOMEM;
	len = strlen(text);
	fd = openat(dir_fd, "config.json.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		free(text);
		return -errno;
	}
	if (write(fd, text, len) != (ssize_t)len)
		r = -EIO;
	close(fd);
	free(text);
	if (r == 0 && renameat(dir_fd, "config.json.tmp", dir_fd, "config.json") < 0)
		r = -errno;
	return r;
}
