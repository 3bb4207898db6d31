/* SPDX-License-Identifier: MIT */
/* wardend: keeps the cells of a static-partitioning hypervisor alive. */
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "hypervisor/backend.h"
#include "log.h"
#include "macro.h"
#include "manager.h"

/* The fd table wardend grows to before its first thread: 64 cells with
 * their runners' procfs files, pidfds and event fds, and the API's
 * connections, with room to spare. */
#define FD_TABLE_ENTRIES 4096
/* Blocks up to this size come from malloc's heaps, not from an mmap each. */
#define MALLOC_MMAP_THRESHOLD (32u << 20)
#define MALLOC_TRIM_THRESHOLD (128u << 20)

/* What the process needs before it has threads, so that the loop's
 * thread never waits in the kernel for them later:
 * - memory: a block that a worker allocates with mmap() and the loop
 *   frees is an munmap() on the loop, which waits for the memory map's
 *   lock while a worker (at a lower priority, preempted by its peers)
 *   holds it: a rendered /metrics page (660 KB at 64 cells) held a
 *   deadline 2 ms. Large blocks now come from the heaps and stay there.
 * - fds: growing the fd table of a threaded process waits for an RCU
 *   grace period (ms); it grows once here, single-threaded, instead.
 *   wardend polls with epoll only, so it raises its soft fd limit to the
 *   hard one (children get the old soft limit back). */
static void prepare_process(void) {
	struct rlimit rl;
	int fd;

	(void)mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD);
	(void)mallopt(M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD);
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	backend_set_child_nofile_limit(&rl);
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit raised = { rl.rlim_max, rl.rlim_max };
		if (setrlimit(RLIMIT_NOFILE, &raised) >= 0)
			rl = raised;
	}
	fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC,
	           (int)(rl.rlim_cur < FD_TABLE_ENTRIES ? rl.rlim_cur - 1 : FD_TABLE_ENTRIES - 1));
	if (fd >= 0)
		close(fd);
}

static void help(void) {
	printf("Usage: wardend [OPTIONS]\n\n"
	       "Supervise the cells of a static-partitioning hypervisor.\n\n"
	       "  -c --config FILE       JSON configuration (daemon settings and cells)\n"
	       "  -l --listen ADDR       unix:/PATH or tcp:HOST:PORT; repeatable;\n"
	       "                         replaces the config's listeners\n"
	       "     --state-dir DIR     durable state (default /var/lib/warden)\n"
	       "     --runtime-dir DIR   runtime state shared with cell runners\n"
	       "                         (default /run/warden)\n"
	       "     --reseed            forget the cells stored in the state directory\n"
	       "                         and seed them again from the config file\n"
	       "  -v --verbose           debug logging\n"
	       "     --version           print the version and exit\n"
	       "  -h --help              this help\n");
}

int main(int argc, char **argv) {
	enum { ARG_STATE_DIR = 0x100, ARG_RUNTIME_DIR, ARG_VERSION, ARG_RESEED };
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "state-dir", required_argument, NULL, ARG_STATE_DIR },
		{ "runtime-dir", required_argument, NULL, ARG_RUNTIME_DIR },
		{ "reseed", no_argument, NULL, ARG_RESEED },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, ARG_VERSION },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	_cleanup_(manager_freep) Manager *m = NULL;
	ManagerOptions o = { 0 };
	int c, r;

	log_setup();
	prepare_process();
	while ((c = getopt_long(argc, argv, "c:l:vh", options, NULL)) >= 0) {
		switch (c) {
		case 'c':
			o.config_path = optarg;
			break;
		case 'l':
			if (o.n_listen >= CONFIG_MAX_LISTEN) {
				log_error("At most %d --listen options", CONFIG_MAX_LISTEN);
				return EXIT_FAILURE;
			}
			if (strncmp(optarg, "unix:/", 6) != 0 && strncmp(optarg, "tcp:", 4) != 0) {
				log_error("--listen %s: expected unix:/PATH or tcp:HOST:PORT", optarg);
				return EXIT_FAILURE;
			}
			o.listen[o.n_listen++] = optarg;
			break;
		case ARG_STATE_DIR:
			o.state_dir = optarg;
			break;
		case ARG_RUNTIME_DIR:
			o.runtime_dir = optarg;
			break;
		case ARG_RESEED:
			o.reseed = true;
			break;
		case 'v':
			log_set_max_level(LOG_DEBUG);
			break;
		case ARG_VERSION:
			printf("wardend %s\n", WARDEN_VERSION);
			return EXIT_SUCCESS;
		case 'h':
			help();
			return EXIT_SUCCESS;
		default:
			return EXIT_FAILURE;
		}
	}
	if (optind < argc) {
		log_error("Unexpected argument: %s", argv[optind]);
		return EXIT_FAILURE;
	}

	r = manager_new(&o, &m);
	if (r < 0)
		return EXIT_FAILURE;
	r = manager_startup(m);
	if (r < 0)
		return EXIT_FAILURE;
	r = manager_run(m);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
