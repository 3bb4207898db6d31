/* SPDX-License-Identifier: MIT */
/*
 * warden-jailhouse-fake: the real helper (jh_helper_serve, helper.h) with
 * the fake driver of fake-jailhouse.h behind its ioctl seam, for daemon
 * tests on machines without Jailhouse. The daemon spawns it exactly as it
 * spawns warden-jailhouse (socket on fd 3, the same options); what the real
 * driver would do to /sys/devices/jailhouse it does to --sysfs=DIR, and
 * every ioctl is appended to DIR.calls (one line each, fake-jailhouse.h).
 * --mem=FILE stands for /dev/mem: a sparse file, a comm region at its
 * physical address is the bytes at that offset.
 *
 *   warden-jailhouse-fake [--device=IGNORED] --mem=FILE --sysfs=DIR [--cpus=MASK]
 *
 * The root cell owns --cpus (hex, default 0xff) when enabled.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hypervisor/jailhouse/helper.h"
#include "tests/lib/fake-jailhouse.h"

int main(int argc, char **argv)
{
	JhHelperOptions opts = { 0 };
	uint64_t cpus = 0xff;
	char log_path[4096];
	JhDriver d;
	FakeJh f;
	int r;

	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--device=", 9) == 0)
			continue;
		else if (strncmp(argv[i], "--mem=", 6) == 0)
			opts.mem_path = argv[i] + 6;
		else if (strncmp(argv[i], "--sysfs=", 8) == 0)
			opts.sysfs_root = argv[i] + 8;
		else if (strncmp(argv[i], "--cpus=", 7) == 0)
			cpus = strtoull(argv[i] + 7, NULL, 16);
		else {
			fprintf(stderr, "usage: %s --mem=FILE --sysfs=DIR [--cpus=MASK] (socket on fd 3)\n", argv[0]);
			return 2;
		}
	}
	if (!opts.mem_path || !opts.sysfs_root) {
		fprintf(stderr, "warden-jailhouse-fake: --mem and --sysfs are required\n");
		return 2;
	}
	snprintf(log_path, sizeof(log_path), "%s.calls", opts.sysfs_root);
	r = fake_jh_init(&f, cpus, opts.sysfs_root, log_path);
	if (r < 0) {
		fprintf(stderr, "warden-jailhouse-fake: %s\n", strerror(-r));
		return 1;
	}
	d = fake_jh_driver(&f);
	r = jh_helper_serve(3, &d, &opts);
	fake_jh_done(&f);
	if (r < 0) {
		fprintf(stderr, "warden-jailhouse-fake: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}
