/* SPDX-License-Identifier: MIT */
/* Config validation: every rejection names the JSON path and the problem. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "macro.h"

static const ConfigEnv env4 = { .n_cpus = 4 };

#define CELL(name, cpus, phys) \
	"{\"name\":\"" name "\",\"cpus\":" cpus ",\"memory\":[{\"name\":\"ram\",\"phys_start\":\"" phys "\"," \
	"\"virt_start\":0,\"size\":\"0x200000\",\"flags\":[\"read\",\"write\",\"execute\",\"loadable\"]}]," \
	"\"comm\":{\"virt_start\":\"0x80000000\",\"size\":4096},\"images\":[{\"file\":\"x.bin\",\"address\":\"0x100000\"}]}"

static int parse(const char *text, Config **ret, char *err) {
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	int r;
	assert_non_null(j);
	r = config_parse(j, &env4, ret, err);
	json_decref(j);
	return r;
}

/* Asserts that `text` is refused with a message containing both `path`
 * and `problem`. */
static void expect_reject(const char *text, const char *path, const char *problem) {
	char err[CONFIG_ERROR_MAX] = "";
	Config *c = NULL;
	int r = parse(text, &c, err);
	if (r != -EINVAL || !strstr(err, path) || !strstr(err, problem))
		fail_msg("expected rejection at %s (%s), got r=%d err=\"%s\"", path, problem, r, err);
	assert_null(c);
}

static void test_valid_two_cells(void **state) {
	char err[CONFIG_ERROR_MAX] = "";
	Config *c = NULL;
	(void)state;
	assert_int_equal(parse("{\"root_cpus\":[0],\"cells\":[" CELL("a", "[1]", "0x40000000") "," CELL("b-2", "[2,3]",
	                       "0x40200000") "]}", &c, err), 0);
	assert_non_null(c);
	assert_int_equal(c->n_cells, 2);
	assert_string_equal(c->cells[1]->name, "b-2");
	assert_int_equal(c->cells[1]->n_cpus, 2);
	assert_int_equal(c->cells[0]->memory[0].size, 0x200000);
	assert_int_equal(c->cells[0]->entry, 0x100000);
	assert_int_equal(c->cells[0]->health.period_ms, 10);
	assert_int_equal(c->cells[0]->recovery.on[FAILURE_EXIT], ACTION_STOP);
	config_free(c);
}

static void test_spec_roundtrip(void **state) {
	char err[CONFIG_ERROR_MAX] = "";
	Config *c = NULL, *c2 = NULL;
	json_t *j, *root;
	(void)state;
	assert_int_equal(parse("{\"cells\":[" CELL("a", "[1]", "0x40000000") "]}", &c, err), 0);
	j = cell_spec_to_json(c->cells[0]);
	root = json_pack("{s:[o]}", "cells", j);
	assert_int_equal(config_parse(root, &env4, &c2, err), 0);
	assert_memory_equal(c->cells[0]->cpus, c2->cells[0]->cpus, sizeof(unsigned));
	assert_int_equal(c2->cells[0]->memory[0].phys_start, 0x40000000);
	json_decref(root);
	config_free(c);
	config_free(c2);
}

/* A cell's "realtime": parsed, kept through the JSON form, bad values
 * refused with their path. */
#define RT_CELL(rt) \
	"{\"cells\":[{\"name\":\"a\",\"cpus\":[1],\"realtime\":" rt ",\"memory\":[{\"name\":\"ram\"," \
	"\"phys_start\":0,\"virt_start\":0,\"size\":\"0x200000\",\"flags\":[\"read\",\"write\",\"execute\"," \
	"\"loadable\"]}],\"comm\":{\"virt_start\":\"0x80000000\",\"size\":4096},\"images\":[{\"file\":\"x.bin\"," \
	"\"address\":\"0x100000\"}]}]}"

static void test_realtime(void **state) {
	char err[CONFIG_ERROR_MAX] = "";
	Config *c = NULL;
	json_t *j;
	(void)state;
	assert_int_equal(parse(RT_CELL("{\"priority\":90,\"mlock\":true}"), &c, err), 0);
	assert_int_equal(c->cells[0]->rt_priority, 90);
	assert_true(c->cells[0]->rt_mlock);
	j = cell_spec_to_json(c->cells[0]);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "realtime"), "priority")), 90);
	assert_true(json_is_true(json_object_get(json_object_get(j, "realtime"), "mlock")));
	json_decref(j);
	config_free(c);
	expect_reject(RT_CELL("{\"priority\":100}"), "$.cells[0].realtime", "priority");
	expect_reject(RT_CELL("{\"mlock\":true}"), "$.cells[0].realtime", "\"priority\" (1..99, SCHED_FIFO) is required");
	expect_reject(RT_CELL("{\"priority\":5,\"nice\":1}"), "$.cells[0].realtime", "unknown key \"nice\"");
	expect_reject(RT_CELL("true"), "$.cells[0]", "realtime");
}

static void test_reject_unknown_key(void **state) {
	(void)state;
	expect_reject("{\"listn\":[]}", "$", "unknown key \"listn\"");
	expect_reject("{\"cells\":[{\"name\":\"a\",\"cpu\":[1]}]}", "$.cells[0]", "unknown key \"cpu\"");
}

static void test_reject_wrong_types(void **state) {
	(void)state;
	expect_reject("[]", "$", "must be an object");
	expect_reject("{\"cpu_sharing\":\"yes\"}", "$", "\"cpu_sharing\" must be a boolean");
	expect_reject("{\"cells\":{}}", "$.cells", "must be an array");
	expect_reject("{\"cells\":[{\"name\":\"a\",\"cpus\":\"1\"}]}", "$.cells[0].cpus", "must be an array");
	expect_reject("{\"cells\":[{\"name\":\"a\",\"cpus\":[\"1\"]}]}", "$.cells[0].cpus[0]", "must be a CPU number");
	expect_reject("{\"listen\":[\"http://x\"]}", "$.listen[0]", "is not a listener");
}

static void test_reject_bad_names(void **state) {
	(void)state;
	expect_reject("{\"cells\":[" CELL("Linux", "[1]", "0x0") "]}", "$.cells[0]", "not a valid cell name");
	expect_reject("{\"cells\":[" CELL("-a", "[1]", "0x0") "]}", "$.cells[0]", "not a valid cell name");
	expect_reject("{\"cells\":[" CELL("a/b", "[1]", "0x0") "]}", "$.cells[0]", "not a valid cell name");
	expect_reject("{\"cells\":[" CELL("abcdefghijabcdefghijabcdefghijab", "[1]", "0x0") "]}", "$.cells[0]",
	              "not a valid cell name");
	assert_true(cell_name_is_valid("abcdefghijabcdefghijabcdefghija"));
	assert_true(cell_name_is_valid("0linux_1-x"));
	assert_false(cell_name_is_valid(""));
}

static void test_reject_duplicate_names(void **state) {
	(void)state;
	expect_reject("{\"cells\":[" CELL("a", "[1]", "0x40000000") "," CELL("a", "[2]", "0x50000000") "]}",
	              "$.cells[1]", "already exists");
}

static void test_reject_cpu_in_two_cells(void **state) {
	(void)state;
	expect_reject("{\"cells\":[" CELL("a", "[1]", "0x40000000") "," CELL("b", "[2,1]", "0x50000000") "]}",
	              "$.cells[1]", "CPU 1 of cell \"b\" is already assigned to cell \"a\"");
}

static void test_reject_cpu_in_root_set(void **state) {
	(void)state;
	expect_reject("{\"root_cpus\":[0,1],\"cells\":[" CELL("a", "[1]", "0x40000000") "]}", "$.cells[0]",
	              "belongs to the root set");
}

static void test_cpu_sharing_allows_overlap(void **state) {
	char err[CONFIG_ERROR_MAX] = "";
	Config *c = NULL;
	(void)state;
	assert_int_equal(parse("{\"cpu_sharing\":true,\"root_cpus\":[0,1],\"cells\":[" CELL("a", "[1]", "0x40000000")
	                       "," CELL("b", "[1]", "0x50000000") "]}", &c, err), 0);
	assert_true(c->cpu_sharing);
	config_free(c);
}

#define CONTAINER(name, cpus, extra) \
	"{\"name\":\"" name "\",\"backend\":\"container\",\"cpus\":" cpus ",\"args\":\"/bin/app -x\"," \
	"\"container\":{\"rootfs\":\"rootfs.tar\"" extra "}}"

/* A container cell: no memory, images or comm needed; the rootfs is an
 * image reference; its CPUs are checked like a VM cell's; the spec
 * survives its own JSON form. */
static void test_container_cells(void **state) {
	char err[CONFIG_ERROR_MAX] = "";
	Config *c = NULL, *c2 = NULL;
	const char *refs[SPEC_MAX_IMAGE_REFS];
	BackendRegion regions[BACKEND_MAX_REGIONS];
	BackendImage images[BACKEND_MAX_IMAGES];
	BackendCellConfig bc;
	json_t *root;
	(void)state;
	assert_int_equal(parse("{\"root_cpus\":[0],\"backends\":{\"container\":{\"runtime\":\"crun\"}},\"cells\":["
	                       CONTAINER("app", "[1]", ",\"writable\":true,\"memory_limit\":8388608,"
	                                 "\"digest\":\"sha256:" "0123456789abcdef0123456789abcdef"
	                                 "0123456789abcdef0123456789abcdef\"") "]}", &c, err), 0);
	assert_string_equal(c->container_runtime, "crun");
	assert_non_null(c->cells[0]->container);
	assert_true(c->cells[0]->container->writable);
	assert_int_equal(c->cells[0]->comm.size, 4096);
	assert_int_equal(cell_spec_image_refs(c->cells[0], refs), 1);
	assert_string_equal(refs[0], "rootfs.tar");
	cell_spec_to_backend(c->cells[0], &bc, regions, images);
	assert_string_equal(bc.rootfs, "rootfs.tar");
	assert_true(bc.rootfs_writable);
	assert_int_equal(bc.memory_limit, 8388608);
	assert_string_equal(bc.args, "/bin/app -x");
	root = json_pack("{s:[o]}", "cells", cell_spec_to_json(c->cells[0]));
	assert_int_equal(config_parse(root, &env4, &c2, err), 0);
	assert_string_equal(c2->cells[0]->container->rootfs, "rootfs.tar");
	assert_int_equal(c2->cells[0]->container->memory_limit, 8388608);
	json_decref(root);
	config_free(c);
	config_free(c2);

	expect_reject("{\"cells\":[{\"name\":\"a\",\"backend\":\"container\",\"cpus\":[1],\"args\":\"x\"}]}",
	              "$.cells[0]", "rootfs tarball");
	expect_reject("{\"cells\":[" CONTAINER("a", "[1]", ",\"colour\":1") "]}", "$.cells[0].container",
	              "unknown key \"colour\"");
	expect_reject("{\"cells\":[" CONTAINER("a", "[1]", ",\"digest\":\"md5:00\"") "]}", "$.cells[0].container",
	              "64 hex digits");
	expect_reject("{\"cells\":[" CONTAINER("a", "[1]", ",\"memory_limit\":1") "]}", "$.cells[0].container",
	              "at least");
	expect_reject("{\"cells\":[{\"name\":\"a\",\"backend\":\"container\",\"cpus\":[1],"
	              "\"container\":{\"rootfs\":\"r.tar\"}}]}", "$.cells[0]", "\"args\" is required");
	expect_reject("{\"cells\":[{\"name\":\"a\",\"backend\":\"container\",\"cpus\":[1],\"args\":\"x\","
	              "\"container\":{\"rootfs\":\"a/b.tar\"}}]}", "$.cells[0].container", "bare name");
	expect_reject("{\"cells\":[{\"name\":\"a\",\"backend\":\"container\",\"cpus\":[1],\"args\":\"x\","
	              "\"images\":[],\"container\":{\"rootfs\":\"r.tar\"}}]}", "$.cells[0]", "not for container cells");
	expect_reject("{\"cells\":[" CELL("vm", "[2]", "0x40000000") "," CONTAINER("a", "[2]", "") "]}", "$.cells[1]",
	              "CPU 2 of cell \"a\" is already assigned to cell \"vm\"");
	expect_reject("{\"root_cpus\":[0],\"cells\":[" CONTAINER("a", "[0]", "") "]}", "$.cells[0]",
	              "belongs to the root set");
	expect_reject("{\"backends\":{\"container\":{\"runtime\":\"docker\"}}}", "$.backends.container",
	              "neither \"runc\" nor \"crun\"");
	expect_reject("{\"backends\":{\"container\":{\"binary\":\"runc\"}}}", "$.backends.container",
	              "not an absolute path");
}

static void test_reject_missing_cpu(void **state) {
	(void)state;
	expect_reject("{\"cells\":[" CELL("a", "[4]", "0x40000000") "]}", "$.cells[0].cpus[0]",
	              "CPU 4 does not exist on this machine");
	expect_reject("{\"root_cpus\":[9]}", "$.root_cpus[0]", "does not exist");
	expect_reject("{\"cells\":[" CELL("a", "[1,1]", "0x40000000") "]}", "$.cells[0].cpus[1]", "listed twice");
}

static void test_reject_memory_overlap(void **state) {
	(void)state;
	expect_reject("{\"cells\":[" CELL("a", "[1]", "0x40000000") "," CELL("b", "[2]", "0x40100000") "]}",
	              "$.cells[1]", "overlaps region \"ram\" of cell \"a\"");
}

static void test_shared_region_allowed(void **state) {
	char err[CONFIG_ERROR_MAX] = "";
	Config *c = NULL;
	const char *shared = "{\"name\":\"shm\",\"phys_start\":\"0x60000000\",\"virt_start\":\"0x90000000\","
	                     "\"size\":4096,\"flags\":[\"read\",\"write\",\"shared\"]}";
	char text[4096];
	(void)state;
	snprintf(text, sizeof text,
	         "{\"cells\":[{\"name\":\"a\",\"cpus\":[1],\"memory\":[%s,{\"name\":\"ram\",\"phys_start\":\"0x40000000\","
	         "\"virt_start\":0,\"size\":\"0x200000\",\"flags\":[\"loadable\"]}],\"comm\":{\"virt_start\":\"0x80000000\","
	         "\"size\":4096},\"images\":[{\"file\":\"a\",\"address\":\"0x100000\"}]},"
	         "{\"name\":\"b\",\"cpus\":[2],\"memory\":[%s,{\"name\":\"ram\",\"phys_start\":\"0x50000000\","
	         "\"virt_start\":0,\"size\":\"0x200000\",\"flags\":[\"loadable\"]}],\"comm\":{\"virt_start\":\"0x80000000\","
	         "\"size\":4096},\"images\":[{\"file\":\"b\",\"address\":\"0x100000\"}]}]}",
	         shared, shared);
	assert_int_equal(parse(text, &c, err), 0);
	config_free(c);
	/* the same range without "shared" on both sides is a conflict */
	char *p = strstr(text, ",\"shared\"");
	memmove(p, p + 9, strlen(p + 9) + 1);
	expect_reject(text, "$.cells[1]", "overlaps region \"shm\" of cell \"a\"");
}

static void test_reject_bad_regions(void **state) {
	(void)state;
	expect_reject("{\"cells\":[" CELL("a", "[1]", "0x40000001") "]}", "$.cells[0].memory[0]", "multiples of 4096");
	expect_reject("{\"cells\":[{\"name\":\"a\",\"cpus\":[1],\"memory\":[{\"virt_start\":0,\"size\":4096,"
	              "\"flags\":[\"rwx\"]}]}]}", "$.cells[0].memory[0]", "unknown flag \"rwx\"");
	expect_reject("{\"cells\":[{\"name\":\"a\",\"cpus\":[1],\"memory\":[{\"virt_start\":0,\"size\":\"0x2000\","
	              "\"flags\":[\"loadable\"]}],\"comm\":{\"virt_start\":4096,\"size\":4096},\"images\":[]}]}",
	              "$.cells[0]", "overlap");
	expect_reject("{\"cells\":[{\"name\":\"a\",\"cpus\":[1],\"memory\":[{\"virt_start\":0,\"size\":\"0x200000\","
	              "\"flags\":[\"read\"]}],\"comm\":{\"virt_start\":\"0x80000000\",\"size\":4096},"
	              "\"images\":[{\"file\":\"a\",\"address\":\"0x100000\"}]}]}",
	              "$.cells[0].images[0]", "not inside a loadable memory region");
	expect_reject("{\"cells\":[{\"name\":\"a\",\"cpus\":[1],\"memory\":[{\"virt_start\":0,\"size\":\"zz\","
	              "\"flags\":[\"read\"]}]}]}", "$.cells[0].memory[0]", "is not a number");
}

/* A cell spec with one region of `size` at `virt`, for the range checks. */
#define REGION_CELL(virt, size) \
	"{\"cells\":[{\"name\":\"a\",\"cpus\":[1],\"memory\":[{\"name\":\"ram\",\"virt_start\":\"" virt "\"," \
	"\"size\":\"" size "\",\"flags\":[\"read\",\"loadable\"]}]," \
	"\"comm\":{\"virt_start\":\"0x7ffffffffffff000\",\"size\":4096}," \
	"\"images\":[{\"file\":\"x.bin\",\"address\":\"" virt "\"}]}]}"

/* The store keeps sizes as JSON integers (signed 64-bit in jansson): a
 * number at or above 2^63 was acknowledged, stored negative and the cell
 * gone at the next start. Refused now where it comes in. */
static void test_reject_numbers_the_store_cannot_hold(void **state) {
	(void)state;
	expect_reject(REGION_CELL("0x100000000", "0x8000000000000000"), "$.cells[0].memory[0]",
	              "\"size\" must be below 2^63");
	expect_reject(REGION_CELL("0x8000000000000000", "0x1000"), "$.cells[0].memory[0]",
	              "\"virt_start\" must be below 2^63");
	expect_reject("{\"cells\":[" CELL("a", "[1]", "0xfffffffffffff000") "]}", "$.cells[0].memory[0]",
	              "\"phys_start\" must be below 2^63");
	expect_reject("{\"cells\":[{\"name\":\"a\",\"cpus\":[1],\"memory\":[{\"virt_start\":0,\"size\":4096,"
	              "\"flags\":[\"loadable\"]}],\"comm\":{\"virt_start\":\"0x1000\",\"size\":4096},"
	              "\"images\":[{\"file\":\"x.bin\",\"address\":\"18446744073709551615\"}]}]}",
	              "$.cells[0].images[0]", "\"address\" must be below 2^63");
}

/* What is accepted comes back from the stored form unchanged: the largest
 * size, through cell_spec_to_json and a JSON text as the store writes it. */
static void test_largest_numbers_survive_the_store(void **state) {
	char err[CONFIG_ERROR_MAX] = "";
	Config *c = NULL;
	CellSpec *back = NULL;
	json_t *j, *j2, *again;
	char *text;
	(void)state;
	assert_int_equal(parse(REGION_CELL("0x0", "0x7ffffffffffff000"), &c, err), 0);
	assert_true(c->cells[0]->memory[0].size == 0x7ffffffffffff000ull);
	j = cell_spec_to_json(c->cells[0]);
	text = json_dumps(j, 0);
	again = json_loads(text, 0, NULL);
	assert_non_null(again);
	if (cell_spec_parse(again, "$stored", &env4, &back, err) < 0)
		fail_msg("the stored form of an accepted spec does not load: %s", err);
	assert_true(back->memory[0].size == 0x7ffffffffffff000ull);
	j2 = cell_spec_to_json(back);
	assert_true(json_equal(j, j2));
	json_decref(j2);
	cell_spec_free(back);
	json_decref(again);
	free(text);
	json_decref(j);
	config_free(c);
}

static void test_reject_bad_health_and_recovery(void **state) {
	char text[2048];
	(void)state;
	snprintf(text, sizeof text, "{\"cells\":[%s]}", CELL("a", "[1]", "0x40000000"));
	text[strlen(text) - 3] = 0; /* drop "}]}" to add keys to the cell */
	char bad[2300];
	snprintf(bad, sizeof bad, "%s,\"health\":{\"period_ms\":50,\"timeout_ms\":10}}]}", text);
	expect_reject(bad, "$.cells[0]", "must be longer than \"period_ms\"");
	snprintf(bad, sizeof bad, "%s,\"recovery\":{\"on_panic\":\"reboot\"}}]}", text);
	expect_reject(bad, "$.cells[0].recovery", "unknown action \"reboot\"");
	snprintf(bad, sizeof bad, "%s,\"recovery\":{\"backoff\":{\"factor\":0.5}}}]}", text);
	expect_reject(bad, "$.cells[0].recovery.backoff", "\"factor\" must be between");
	snprintf(bad, sizeof bad, "%s,\"recovery\":{\"max_restarts\":5000}}]}", text);
	expect_reject(bad, "$.cells[0].recovery", "\"max_restarts\" must be between");
	snprintf(bad, sizeof bad, "%s,\"recovery\":{\"on_exhausted\":\"panic\"}}]}", text);
	expect_reject(bad, "$.cells[0].recovery", "unknown action \"panic\"");
}

#define LINUX_CELL(extra) \
	"{\"cells\":[{\"name\":\"linux\",\"backend\":\"qemu\",\"cpus\":[1],\"memory\":[{\"name\":\"ram\"," \
	"\"phys_start\":\"0x80000000\",\"virt_start\":0,\"size\":\"0x10000000\",\"flags\":[\"read\",\"write\"]}]," \
	"\"comm\":{\"virt_start\":\"0xfe000000\",\"size\":4096}" extra "}]}"

static void test_linux_cell(void **state) {
	char err[CONFIG_ERROR_MAX] = "";
	Config *c = NULL;
	json_t *j;
	(void)state;
	assert_int_equal(parse(LINUX_CELL(",\"linux\":{\"kernel\":\"k\",\"initrd\":\"rd.gz\",\"cmdline\":\"quiet\"}"),
	                       &c, err), 0);
	assert_string_equal(c->cells[0]->kernel, "k");
	assert_string_equal(c->cells[0]->initrd, "rd.gz");
	assert_string_equal(c->cells[0]->cmdline, "quiet");
	/* the spec's JSON form round-trips the linux object, without images */
	j = cell_spec_to_json(c->cells[0]);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "linux"), "initrd")), "rd.gz");
	assert_null(json_object_get(j, "images"));
	json_decref(j);
	config_free(c);

	expect_reject(LINUX_CELL(""), "$.cells[0]", "\"images\" must name at least one image (or \"linux\" a kernel)");
	expect_reject(LINUX_CELL(",\"linux\":{\"initrd\":\"x\"}"), "$.cells[0].linux", "\"kernel\" is required");
	expect_reject(LINUX_CELL(",\"linux\":{\"kernel\":\"k\",\"append\":\"x\"}"), "$.cells[0].linux",
	              "unknown key \"append\"");
	expect_reject("{\"cells\":[{\"name\":\"l\",\"cpus\":[1],\"memory\":[],\"comm\":{\"virt_start\":0,\"size\":4096},"
	              "\"linux\":{\"kernel\":\"k\"}}]}",
	              "$.cells[0]", "use \"backend\": \"qemu\"");
}

/* One image reference, in a cell the rest of which is valid. */
static char *image_cell(const char *api, const char *file) {
	static char text[2048];
	snprintf(text, sizeof text,
	         "{%s%s\"cells\":[{\"name\":\"a\",\"cpus\":[1],\"memory\":[{\"virt_start\":0,\"size\":\"0x200000\","
	         "\"flags\":[\"loadable\"]}],\"comm\":{\"virt_start\":\"0x80000000\",\"size\":4096},"
	         "\"images\":[{\"file\":\"%s\",\"address\":\"0x100000\"}]}]}",
	         api, *api ? "," : "", file);
	return text;
}

/* Relative paths were acknowledged and could never start (only bare names
 * are uploaded images): refused where they come in. */
static void test_reject_relative_image_paths(void **state) {
	(void)state;
	expect_reject(image_cell("", "../../etc/passwd"), "$.cells[0].images[0]", "neither an uploaded image");
	expect_reject(image_cell("", "sub/app.bin"), "$.cells[0].images[0]", "nor an absolute path");
	expect_reject(image_cell("", ".hidden"), "$.cells[0].images[0]", "\"file\": \".hidden\"");
	expect_reject(LINUX_CELL(",\"linux\":{\"kernel\":\"k\",\"initrd\":\"../rd\"}"), "$.cells[0].linux",
	              "\"initrd\": \"../rd\"");
}

/* An absolute path anywhere let an operator token read any file root can
 * read (runner -> guest memory -> console). It must resolve to below
 * api.image_dirs: the config file is held to the rule as the API is. */
static void test_image_dirs(void **state) {
	char dir[] = "/tmp/warden-test-config-XXXXXX", api[512], path[600], path2[600], err[CONFIG_ERROR_MAX] = "";
	Config *c = NULL;
	FILE *f;
	(void)state;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/img", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof path, "%s/img/ok.bin", dir);
	assert_non_null(f = fopen(path, "w"));
	fclose(f);
	snprintf(path, sizeof path, "%s/secret", dir);
	assert_non_null(f = fopen(path, "w"));
	fclose(f);
	snprintf(path2, sizeof path2, "%s/img/link.bin", dir);
	assert_int_equal(symlink(path, path2), 0);
	snprintf(api, sizeof api, "\"api\":{\"image_dirs\":[\"%s/img\"]}", dir);

	/* inside, and one not uploaded there yet: fine */
	snprintf(path, sizeof path, "%s/img/ok.bin", dir);
	assert_int_equal(parse(image_cell(api, path), &c, err), 0);
	assert_int_equal(c->api.n_image_dirs, 1);
	c = config_free(c);
	snprintf(path, sizeof path, "%s/img/later.bin", dir);
	assert_int_equal(parse(image_cell(api, path), &c, err), 0);
	c = config_free(c);
	/* outside: directly, by "..", by a symlink, the directory itself */
	expect_reject(image_cell(api, "/etc/passwd"), "$.cells[0].images[0].file", "outside the image directories");
	snprintf(path, sizeof path, "%s/img/../secret", dir);
	expect_reject(image_cell(api, path), "$.cells[0].images[0].file", "api.image_dirs");
	expect_reject(image_cell(api, path2), "$.cells[0].images[0].file", "api.image_dirs");
	snprintf(path, sizeof path, "%s/img", dir);
	expect_reject(image_cell(api, path), "$.cells[0].images[0].file", "api.image_dirs");
	/* ".." where nothing exists to say where it leads */
	snprintf(path, sizeof path, "%s/img/none/../../secret", dir);
	expect_reject(image_cell(api, path), "$.cells[0].images[0].file", "does not exist");
	/* the Linux kernel and initrd too */
	snprintf(path, sizeof path, "{%s,%s", api, LINUX_CELL(",\"linux\":{\"kernel\":\"k\",\"initrd\":\"/etc/passwd\"}") + 1);
	expect_reject(path, "$.cells[0].linux.initrd", "api.image_dirs");
	/* no directories: uploaded images only */
	expect_reject(image_cell("\"api\":{\"image_dirs\":[]}", "/etc/passwd"), "$.cells[0].images[0].file",
	              "api.image_dirs: []");
	assert_int_equal(parse(image_cell("\"api\":{\"image_dirs\":[]}", "ok.bin"), &c, err), 0);
	c = config_free(c);
	/* the default: where the inmates are installed and this build's */
	assert_int_equal(parse("{}", &c, err), 0);
	{
		static const char *const defaults[] = { WARDEN_IMAGE_DIRS };

		assert_int_equal(c->api.n_image_dirs, ELEMENTSOF(defaults));
		for (size_t i = 0; i < ELEMENTSOF(defaults); i++)
			assert_string_equal(c->api.image_dirs[i], defaults[i]);
	}
	c = config_free(c);
	expect_reject("{\"api\":{\"image_dirs\":[\"rel\"]}}", "$.api.image_dirs[0]", "not an absolute path");
	expect_reject("{\"api\":{\"image_dirs\":\"/x\"}}", "$.api.image_dirs", "must be an array");

	snprintf(path, sizeof path, "rm -rf '%s'", dir);
	assert_int_equal(system(path), 0);
}

static void test_api_section(void **state) {
	char err[CONFIG_ERROR_MAX] = "";
	Config *c = NULL;
	(void)state;
	assert_int_equal(parse("{}", &c, err), 0);
	assert_int_equal(c->api.socket_mode, 0660);
	assert_int_equal(c->api.idempotency_ttl_s, 86400);
	assert_false(c->api.anonymous_metrics);
	config_free(c);
	assert_int_equal(parse("{\"api\":{\"tokens_file\":\"/t\",\"anonymous_metrics\":true,\"socket_mode\":\"0600\","
	                       "\"tls\":{\"cert\":\"/c\",\"key\":\"/k\"},\"max_image_bytes\":1048576},"
	                       "\"backends\":{\"qemu\":{\"accel\":\"kvm\",\"machine\":\"q35\"}}}",
	                       &c, err), 0);
	assert_int_equal(c->api.socket_mode, 0600);
	assert_string_equal(c->api.tls_key, "/k");
	assert_int_equal(c->api.max_image_bytes, 1048576);
	assert_string_equal(c->qemu_accel, "kvm");
	config_free(c);
	expect_reject("{\"api\":{\"socket_mode\":\"0066\"}}", "$.api", "lets the owner read and write");
	expect_reject("{\"api\":{\"socket_mode\":\"rw\"}}", "$.api", "not an octal mode");
	expect_reject("{\"api\":{\"tls\":{\"cert\":\"/c\"}}}", "$.api.tls", "go together");
	expect_reject("{\"api\":{\"max_image_bytes\":10}}", "$.api", "between 4096");
	expect_reject("{\"api\":{\"tokens\":\"x\"}}", "$.api", "unknown key \"tokens\"");
	expect_reject("{\"backends\":{\"qemu\":{\"accel\":\"hvf\"}}}", "$.backends.qemu", "neither");
	expect_reject("{\"backends\":{\"qemu\":{\"restart\":\"reboot\"}}}", "$.backends.qemu",
	              "neither \"fresh\" nor \"in-place\"");
	assert_int_equal(parse("{\"backends\":{\"qemu\":{\"restart\":\"in-place\"}}}", &c, err), 0);
	assert_int_equal(c->qemu_restart_in_place, 1);
	config_free(c);
	assert_int_equal(parse("{}", &c, err), 0);
	assert_int_equal(c->qemu_restart_in_place, -1);
	config_free(c);
}

static void test_tables_complete(void **state) {
	(void)state;
	for (int k = 0; k < _FAILURE_KIND_MAX; k++) {
		assert_non_null(failure_kind_to_string(k));
		assert_int_equal(failure_kind_from_string(failure_kind_to_string(k)), k);
	}
	for (int a = 0; a < _ACTION_MAX; a++)
		assert_int_equal(recovery_action_from_string(recovery_action_to_string(a)), a);
	for (int a = 0; a < _EXHAUSTED_MAX; a++)
		assert_int_equal(exhausted_action_from_string(exhausted_action_to_string(a)), a);
	assert_null(failure_kind_to_string(_FAILURE_KIND_MAX));
	assert_int_equal(failure_kind_from_string("nope"), _FAILURE_KIND_INVALID);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_two_cells),
		cmocka_unit_test(test_spec_roundtrip),
		cmocka_unit_test(test_reject_unknown_key),
		cmocka_unit_test(test_realtime),
		cmocka_unit_test(test_reject_wrong_types),
		cmocka_unit_test(test_reject_bad_names),
		cmocka_unit_test(test_reject_duplicate_names),
		cmocka_unit_test(test_reject_cpu_in_two_cells),
		cmocka_unit_test(test_reject_cpu_in_root_set),
		cmocka_unit_test(test_cpu_sharing_allows_overlap),
		cmocka_unit_test(test_reject_missing_cpu),
		cmocka_unit_test(test_reject_memory_overlap),
		cmocka_unit_test(test_shared_region_allowed),
		cmocka_unit_test(test_reject_bad_regions),
		cmocka_unit_test(test_reject_numbers_the_store_cannot_hold),
		cmocka_unit_test(test_largest_numbers_survive_the_store),
		cmocka_unit_test(test_reject_bad_health_and_recovery),
		cmocka_unit_test(test_linux_cell),
		cmocka_unit_test(test_reject_relative_image_paths),
		cmocka_unit_test(test_image_dirs),
		cmocka_unit_test(test_api_section),
		cmocka_unit_test(test_tables_complete),
		cmocka_unit_test(test_container_cells),
	};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
