/* SPDX-License-Identifier: MIT */
#include "fuzz-manager.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 ? 0 : 0;
}

static void write_text(const char *path, const char *text) {
	FILE *f = fopen(path, "we");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
		perror(path);
		abort();
	}
}

Manager *fuzz_manager_new(const char *cells_json) {
	char dir[] = "/dev/shm/warden-fuzz-XXXXXX";
	char path[256], state[256], run[256], images[256], *cfg;
	ManagerOptions o = { 0 };
	Manager *m = NULL;

	if (!getenv("FUZZ_LOG"))
		log_set_max_level(-1);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		abort();
	}
	snprintf(state, sizeof state, "%s/state", dir);
	snprintf(run, sizeof run, "%s/run", dir);
	snprintf(images, sizeof images, "%s/images", dir);
	snprintf(path, sizeof path, "%s/tokens", dir);
	/* configs/demo-tokens */
	write_text(path, "ground   operator b354c7fd4d95a267238a3eb9bf47ab9771e7b8297d51fcfc8dfe42db8700d8a9\n"
	                 "grafana  monitor  31ef164da0efecf46117c5255c3f3e2c1cb998afec405c221d5394940b60de72\n");
	if (asprintf(&cfg,
	             "{\"backends\": {\"kvm\": {\"runner\": \"%s/none/warden-kvm\"},"
	             " \"qemu\": {\"binary\": \"%s/none/qemu-system-x86_64\"}},"
	             " \"cpu_sharing\": true,"
	             " \"api\": {\"tokens_file\": \"%s\", \"anonymous_metrics\": true, \"image_dirs\": [\"%s\"],"
	             " \"max_image_bytes\": 65536},"
	             " \"limits\": {\"max_body_bytes\": 65536},"
	             " \"cells\": %s}",
	             dir, dir, path, images, cells_json) < 0)
		abort();
	snprintf(path, sizeof path, "%s/config.json", dir);
	write_text(path, cfg);
	free(cfg);
	o.config_path = path;
	o.state_dir = state;
	o.runtime_dir = run;
	if (manager_new(&o, &m) < 0 || manager_startup(m) < 0) {
		fprintf(stderr, "fuzz: cannot build the Manager in %s (FUZZ_LOG=1 says why)\n", dir);
		abort();
	}
	/* the directory goes with the Manager: its state dir is below it */
	return m;
}

void fuzz_manager_free(Manager *m) {
	char dir[256];
	char *slash;

	snprintf(dir, sizeof dir, "%s", manager_state_dir(m));
	slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	manager_free(m);
	if (strncmp(dir, "/dev/shm/warden-fuzz-", 21) == 0)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void fuzz_manager_settle(Manager *m) {
	for (int i = 0; i < 16; i++)
		if (sd_event_run(manager_event(m), 0) <= 0)
			break;
}
