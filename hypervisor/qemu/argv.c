/* SPDX-License-Identifier: MIT */
/*
 * How a cell's QEMU starts: the checks that a spec fits this board, the
 * command line, and the process with its fds. Never logs; returns
 * negative errno.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../backend-internal.h"
#include "../celldir.h"
#include "argv.h"
#include "cellfiles.h"

#define CMDLINE_MAX 4096
#define MAX_ARGS 64

/* A QEMU option value we put inside a comma-separated list. */
bool qemu_option_value_valid(const char *s)
{
	if (!s || !*s || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("-_.", *s))
			return false;
	return true;
}

/* Guest RAM: every memory region but the comm region, in MiB. */
uint64_t qemu_ram_mib(const BackendCellConfig *cfg)
{
	uint64_t bytes = 0;

	for (size_t i = 0; i < cfg->n_regions; i++) {
		const BackendRegion *m = &cfg->regions[i];
		if (m->virt_start == cfg->comm_addr && m->size == cfg->comm_size &&
		    (m->flags & BACKEND_MEM_SHARED))
			continue;
		bytes += m->size;
	}
	return (bytes + (1ull << 20) - 1) >> 20;
}

/* qboot, where QEMU installs its firmware: PREFIX/bin/qemu-system-x86_64
 * -> PREFIX/share/qemu/qboot.rom (Debian: qemu-system-data). SeaBIOS, the
 * default, answers a host reset of a machine it has booted with a chain of
 * hard reboots of its own (0.4-4 s measured, see README.md); qboot boots
 * the same kernel and restarts cleanly. */
char *qemu_find_firmware(const char *binary)
{
	char *dir = strdup(binary), *path = NULL, *slash;

	if (!dir)
		return NULL;
	slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	if (asprintf(&path, "%s/../share/qemu/qboot.rom", dir) < 0)
		path = NULL;
	free(dir);
	if (!path)
		return NULL;
	char *real = realpath(path, NULL);
	free(path);
	if (real && access(real, R_OK) < 0) {
		free(real);
		real = NULL;
	}
	return real;
}

/* argv (MAX_ARGS entries, all NULL) gets the command line, with the QMP
 * socket as fd qmp_fd; QEMU runs in the cell directory. */
static int argv_build(const QemuMachine *m, const char *name, const BackendCellConfig *cfg, int qmp_fd,
		      char **argv)
{
	bool kvm = strcmp(m->accel, "kvm") == 0;
	size_t n = 0;
	int r = 0;

	r |= backend_append_arg(argv, &n, MAX_ARGS, "%s", m->binary);
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-name");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "guest=%s,debug-threads=on", name);
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-M");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "%s", m->machine);
	if (m->firmware) {
		r |= backend_append_arg(argv, &n, MAX_ARGS, "-bios");
		r |= backend_append_arg(argv, &n, MAX_ARGS, "%s", m->firmware);
	}
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-accel");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "%s", m->accel);
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-cpu");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "%s", kvm ? "host" : "max");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-smp");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "%zu", cfg->n_cpus);
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-m");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "%" PRIu64 "M", qemu_ram_mib(cfg));
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-mem-prealloc");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-nodefaults");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-no-user-config");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-nographic");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-display");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "none");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-vga");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "none");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-net");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "none");
	/* The tap is wardend's, persistent and already on its bridge: QEMU
	 * only opens it, and runs no script on it either way. */
	if (cfg->net_tap) {
		r |= backend_append_arg(argv, &n, MAX_ARGS, "-netdev");
		r |= backend_append_arg(argv, &n, MAX_ARGS, "tap,id=warden-net,ifname=%s,script=no,downscript=no",
				cfg->net_tap);
		r |= backend_append_arg(argv, &n, MAX_ARGS, "-device");
		r |= backend_append_arg(argv, &n, MAX_ARGS, "virtio-net-pci,netdev=warden-net,mac=%s", cfg->net_mac);
	}
	/* Up but not running until start; a guest power-off pauses rather
	 * than exits (the daemon sees "halted", not a dead process). No
	 * -no-reboot: it turns QMP system_reset into a shutdown. */
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-S");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-no-shutdown");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-pidfile");
	r |= backend_append_arg(argv, &n, MAX_ARGS, QEMU_FILE_PID);
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-object");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "memory-backend-file,id=warden-comm,share=on,mem-path=" QEMU_FILE_COMM
			",size=%zu", (size_t)cfg->comm_size);
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-device");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "ivshmem-plain,memdev=warden-comm");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-device");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "pvpanic");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-chardev");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "file,id=warden-console,path=" QEMU_FILE_CONSOLE ",append=on");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-serial");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "chardev:warden-console");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-chardev");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "socket,id=warden-qmp,fd=%d,server=on,wait=off", qmp_fd);
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-mon");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "chardev=warden-qmp,mode=control");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-kernel");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "%s", cfg->kernel);
	if (cfg->initrd) {
		r |= backend_append_arg(argv, &n, MAX_ARGS, "-initrd");
		r |= backend_append_arg(argv, &n, MAX_ARGS, "%s", cfg->initrd);
	}
	r |= backend_append_arg(argv, &n, MAX_ARGS, "-append");
	r |= backend_append_arg(argv, &n, MAX_ARGS, "%s%swarden.period_ms=%u warden.allow_inject=%d",
			cfg->cmdline ? cfg->cmdline : "", cfg->cmdline && *cfg->cmdline ? " " : "",
			cfg->period_ms ? cfg->period_ms : 100, cfg->allow_inject ? 1 : 0);
	argv[n] = NULL;
	return r ? -ENOMEM : 0;
}

static bool power_of_two(uint64_t x)
{
	return x && !(x & (x - 1));
}

int qemu_config_check(const BackendCellConfig *cfg)
{
	if (!backend_name_valid(cfg->name))
		return -EINVAL;
	if (cfg->n_cpus == 0 || cfg->n_cpus > BACKEND_MAX_CPUS || !cfg->cpus)
		return -EINVAL;
	for (size_t i = 0; i < cfg->n_cpus; i++)
		if (cfg->cpus[i] >= CPU_SETSIZE)
			return -EINVAL;
	if (cfg->n_regions > BACKEND_MAX_REGIONS || qemu_ram_mib(cfg) == 0)
		return -EINVAL;
	/* ivshmem wants a power-of-two BAR. */
	if (cfg->comm_size < WARDEN_COMM_SIZE || !power_of_two(cfg->comm_size) ||
	    cfg->comm_size > (1ull << 30))
		return -EINVAL;
	/* This board boots Linux kernels only; flat images are kvm's. */
	if (!cfg->kernel || cfg->kernel[0] != '/' || cfg->n_images > 0)
		return -EINVAL;
	if (cfg->initrd && cfg->initrd[0] != '/')
		return -EINVAL;
	if (cfg->net_tap && (!qemu_option_value_valid(cfg->net_tap) || !cfg->net_mac ||
			     strspn(cfg->net_mac, "0123456789abcdefABCDEF:") != 17 || cfg->net_mac[17]))
		return -EINVAL;
	if (cfg->cmdline && strlen(cfg->cmdline) > CMDLINE_MAX - 64)
		return -EINVAL;
	if (access(cfg->kernel, R_OK) < 0 || (cfg->initrd && access(cfg->initrd, R_OK) < 0))
		return -errno;
	return 0;
}

static void argv_clear(char **argv)
{
	for (size_t i = 0; i < MAX_ARGS && argv[i]; i++)
		free(argv[i]);
}

int qemu_spawn(const QemuMachine *m, const char *name, const BackendCellConfig *cfg, int dir_fd,
	       ChildProcess *proc)
{
	char *argv[MAX_ARGS] = { 0 };
	int listen_fd, null_fd = -1, log_fd = -1;
	cpu_set_t cpus;
	int r;

	CPU_ZERO(&cpus);
	for (size_t i = 0; i < cfg->n_cpus; i++)
		CPU_SET(cfg->cpus[i], &cpus);

	/* The QMP socket is bound and listening before QEMU runs: we connect
	 * at once, and QEMU takes the connection when it is ready. */
	listen_fd = celldir_listen(dir_fd, QEMU_FILE_QMP, 4);
	if (listen_fd < 0)
		return listen_fd;
	r = argv_build(m, name, cfg, 3, argv);
	if (r < 0)
		goto out;
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	log_fd = openat(dir_fd, QEMU_FILE_LOG, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, LOG_FILE_MODE);
	if (null_fd < 0 || log_fd < 0) {
		r = -errno;
		goto out;
	}
	/* QEMU outlives the daemon: its own session, no controlling tty.
	 * Every QEMU thread (vCPUs, main loop, workers) inherits the
	 * affinity. fd 3 is the QMP socket (argv says so). */
	const ChildSpawn how = {
		.binary = m->binary,
		.argv = argv,
		.fds = { null_fd, log_fd, log_fd, listen_fd },
		.n_fds = 4,
		.dir_fd = dir_fd,
		.cpus = &cpus,
		.new_session = true,
	};
	r = child_spawn(proc, &how);
out:
	backend_close_fd(&listen_fd);
	backend_close_fd(&null_fd);
	backend_close_fd(&log_fd);
	argv_clear(argv);
	return r;
}
