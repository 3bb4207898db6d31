/* SPDX-License-Identifier: MIT */
/*
 * warden-jailhouse: the process that holds /dev/jailhouse, serving the
 * backend over the socket it inherits as fd 3 (helper.h). Runs with what
 * the driver needs (CAP_SYS_ADMIN for its ioctls, CAP_SYS_RAWIO for
 * /dev/mem) so that wardend needs neither.
 *
 *   warden-jailhouse [--device=/dev/jailhouse] [--mem=/dev/mem]
 *                    [--sysfs=/sys/devices/jailhouse]
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "helper.h"
#include "sysfs.h"

int main(int argc, char **argv)
{
	const char *device = JH_DEVICE_PATH;
	JhHelperOptions opts = { .mem_path = "/dev/mem", .sysfs_root = JH_SYSFS_ROOT };
	JhDriver d;
	int r;

	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--device=", 9) == 0)
			device = argv[i] + 9;
		else if (strncmp(argv[i], "--mem=", 6) == 0)
			opts.mem_path = argv[i] + 6;
		else if (strncmp(argv[i], "--sysfs=", 8) == 0)
			opts.sysfs_root = argv[i] + 8;
		else {
			fprintf(stderr, "usage: %s [--device=PATH] [--mem=PATH] [--sysfs=DIR] (socket on fd 3)\n", argv[0]);
			return 2;
		}
	}
	r = jh_driver_open(device, &d);
	if (r < 0) {
		fprintf(stderr, "warden-jailhouse: cannot open %s: %s\n", device, strerror(-r));
		return 1;
	}
	r = jh_helper_serve(3, &d, &opts);
	jh_driver_close(&d);
	if (r < 0) {
		fprintf(stderr, "warden-jailhouse: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}
