/* SPDX-License-Identifier: MIT */
/* A cell spec's "network" (daemon/network-spec.c): what is accepted, the
 * defaults, the round trip through the stored spec, and every refusal with
 * its JSON path and reason. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "network-spec.h"

static const ConfigEnv env4 = { .n_cpus = 4 };

/* A valid qemu cell with `net` as its "network" (JSON text). */
static char *qcell(char *buf, size_t n, const char *name, const char *phys, const char *net) {
	snprintf(buf, n,
	         "{\"name\":\"%s\",\"backend\":\"qemu\",\"cpus\":[1],\"memory\":[{\"name\":\"ram\",\"phys_start\":\"%s\","
	         "\"virt_start\":0,\"size\":\"0x200000\",\"flags\":[\"read\",\"write\",\"execute\",\"loadable\"]}],"
	         "\"comm\":{\"virt_start\":\"0x80000000\",\"size\":4096},\"linux\":{\"kernel\":\"k\"},\"network\":%s}",
	         name, phys, net);
	return buf;
}

static int parse_cells(const char *c1, const char *c2, Config **ret, char *err) {
	char text[4096];
	json_error_t je;
	json_t *j;
	int r;

	snprintf(text, sizeof text, "{\"cpu_sharing\":true,\"cells\":[%s%s%s]}", c1, c2 ? "," : "", c2 ? c2 : "");
	j = json_loads(text, 0, &je);
	if (!j)
		fail_msg("bad test JSON: %s: %s", je.text, text);
	r = config_parse(j, &env4, ret, err);
	json_decref(j);
	return r;
}

static void expect_reject2(const char *net1, const char *net2, const char *path, const char *problem) {
	char a[2048], b[2048], err[CONFIG_ERROR_MAX] = "";
	Config *c = NULL;
	int r = parse_cells(qcell(a, sizeof a, "a", "0x40000000", net1),
	                    net2 ? qcell(b, sizeof b, "b", "0x40200000", net2) : NULL, &c, err);
	if (r != -EINVAL || !strstr(err, path) || !strstr(err, problem))
		fail_msg("expected rejection at %s (%s), got r=%d err=\"%s\"", path, problem, r, err);
	assert_null(c);
}

static void expect_reject(const char *net, const char *problem) {
	expect_reject2(net, NULL, "$.cells[0].network", problem);
}

#define DEMO "{\"address\":\"10.77.0.1/24\",\"cell_address\":\"10.77.0.2\"}"

static void test_defaults_and_round_trip(void **state) {
	char a[2048], err[CONFIG_ERROR_MAX] = "";
	Config *c = NULL, *c2 = NULL;
	const NetSpec *n;
	json_t *j, *cells;
	char *text;
	(void)state;

	assert_int_equal(parse_cells(qcell(a, sizeof a, "linux", "0x40000000", DEMO), NULL, &c, err), 0);
	n = c->cells[0]->network;
	assert_non_null(n);
	assert_true(n->tap);
	assert_string_equal(n->interface, "wd-linux");
	assert_string_equal(n->bridge, "warden0");
	assert_int_equal(n->address, 0x0a4d0001);
	assert_int_equal(n->prefix, 24);
	assert_int_equal(n->cell_address, 0x0a4d0002);
	assert_string_equal(n->nat_uplink, "");
	assert_true(n->degrade_on_carrier_loss);
	assert_int_equal(strncmp(n->mac, "52:54:00:", 9), 0);

	char ip[96];
	assert_int_equal(network_kernel_ip_arg(n, ip, sizeof ip), 0);
	assert_string_equal(ip, "ip=10.77.0.2::10.77.0.1:255.255.255.0::eth0:off");

	/* the stored spec's form parses back to the same network */
	j = cell_spec_to_json(c->cells[0]);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "network"), "address")), "10.77.0.1/24");
	cells = json_pack("{s:b, s:[o]}", "cpu_sharing", 1, "cells", j);
	assert_int_equal(config_parse(cells, &env4, &c2, err), 0);
	assert_memory_equal(c2->cells[0]->network, n, sizeof *n);
	text = json_dumps(cells, 0);
	assert_non_null(strstr(text, "\"nat\": null"));
	free(text);
	json_decref(cells);
	config_free(c2);
	config_free(c);

	/* everything stated */
	assert_int_equal(parse_cells(qcell(a, sizeof a, "x", "0x40000000",
	                                   "{\"interface\":\"tap-x\",\"bridge\":\"br-x\",\"address\":\"192.168.5.1/30\","
	                                   "\"cell_address\":\"192.168.5.2\",\"mac\":\"52:54:00:aa:bb:cc\","
	                                   "\"nat\":{\"uplink\":\"eth0\"},\"degrade_on_carrier_loss\":false}"),
	                             NULL, &c, err),
	                 0);
	n = c->cells[0]->network;
	assert_string_equal(n->interface, "tap-x");
	assert_string_equal(n->bridge, "br-x");
	assert_string_equal(n->mac, "52:54:00:aa:bb:cc");
	assert_string_equal(n->nat_uplink, "eth0");
	assert_false(n->degrade_on_carrier_loss);
	config_free(c);
}

static void test_bad_input(void **state) {
	(void)state;
	expect_reject("{\"interface\":\"a-very-long-tap-name\",\"address\":\"10.0.0.1/24\",\"cell_address\":\"10.0.0.2\"}",
	              "\"interface\": \"a-very-long-tap-name\" is too long for an interface name (20 characters, at most 15)");
	expect_reject("{\"bridge\":\"br 0\",\"address\":\"10.0.0.1/24\",\"cell_address\":\"10.0.0.2\"}",
	              "\"bridge\": \"br 0\" is not a valid interface name");
	expect_reject("{\"bridge\":\"a/b\",\"address\":\"10.0.0.1/24\",\"cell_address\":\"10.0.0.2\"}",
	              "is not a valid interface name");
	expect_reject("{\"bridge\":\"..\",\"address\":\"10.0.0.1/24\",\"cell_address\":\"10.0.0.2\"}",
	              "is not a valid interface name");
	expect_reject("{\"address\":\"10.0.0.300/24\",\"cell_address\":\"10.0.0.2\"}",
	              "\"address\": \"10.0.0.300\" is not an IPv4 address");
	expect_reject("{\"address\":\"10.0.0.1\",\"cell_address\":\"10.0.0.2\"}", "is not ADDRESS/PREFIX");
	expect_reject("{\"address\":\"10.0.0.1/33\",\"cell_address\":\"10.0.0.2\"}", "must be a number from 1 to 30");
	expect_reject("{\"address\":\"10.0.0.0/24\",\"cell_address\":\"10.0.0.2\"}", "the network's or its broadcast");
	expect_reject("{\"address\":\"127.0.0.1/8\",\"cell_address\":\"127.0.0.2\"}", "loopback, multicast or reserved");
	expect_reject("{\"address\":\"10.0.0.1/24\",\"cell_address\":\"banana\"}",
	              "\"cell_address\": \"banana\" is not an IPv4 address");
	expect_reject("{\"address\":\"10.0.0.1/24\",\"cell_address\":7}", "is not an IPv4 address");
	expect_reject("{\"address\":\"10.0.0.1/24\",\"cell_address\":\"10.0.1.2\"}", "is not in the root side's subnet");
	expect_reject("{\"address\":\"10.0.0.1/24\",\"cell_address\":\"10.0.0.1\"}", "is the root side's own address");
	expect_reject("{\"address\":\"10.0.0.1/24\",\"cell_address\":\"10.0.0.255\"}", "broadcast address");
	expect_reject("{\"cell_address\":\"10.0.0.2\"}", "\"address\" is required");
	expect_reject("{\"address\":\"10.0.0.1/24\"}", "\"cell_address\" is required");
	expect_reject("{\"address\":\"10.0.0.1/24\",\"cell_address\":\"10.0.0.2\",\"mac\":\"01:00:5e:00:00:01\"}",
	              "\"mac\" must be a unicast MAC address");
	expect_reject("{\"address\":\"10.0.0.1/24\",\"cell_address\":\"10.0.0.2\",\"nat\":\"eth0\"}",
	              "must be {\"uplink\": \"IFNAME\"}");
	expect_reject("{\"address\":\"10.0.0.1/24\",\"cell_address\":\"10.0.0.2\",\"nat\":{\"uplink\":\"warden0\"}}",
	              "is the cell's own link");
	expect_reject("{\"address\":\"10.0.0.1/24\",\"cell_address\":\"10.0.0.2\",\"match\":{\"driver\":\"veth\"}}",
	              "\"match\" is for jailhouse cells");
	expect_reject("{\"address\":\"10.0.0.1/24\",\"cell_address\":\"10.0.0.2\",\"vlan\":3}", "unknown key \"vlan\"");
	expect_reject("{\"interface\":\"warden0\",\"address\":\"10.0.0.1/24\",\"cell_address\":\"10.0.0.2\"}",
	              "\"interface\" and \"bridge\" must differ");
	expect_reject("[]", "must be an object");
}

static void test_two_cells(void **state) {
	char a[2048], b[2048], err[CONFIG_ERROR_MAX] = "";
	Config *c = NULL;
	(void)state;

	/* one bridge, one subnet, two cells */
	assert_int_equal(parse_cells(qcell(a, sizeof a, "a", "0x40000000", DEMO),
	                             qcell(b, sizeof b, "b", "0x40200000",
	                                   "{\"address\":\"10.77.0.1/24\",\"cell_address\":\"10.77.0.3\"}"),
	                             &c, err),
	                 0);
	assert_string_equal(c->cells[1]->network->interface, "wd-b");
	assert_string_not_equal(c->cells[0]->network->mac, c->cells[1]->network->mac);
	config_free(c);

	expect_reject2(DEMO, "{\"bridge\":\"other0\",\"address\":\"10.77.0.129/25\",\"cell_address\":\"10.77.0.130\"}",
	               "$.cells[1]", "subnet 10.77.0.129/25 of cell \"b\" overlaps subnet 10.77.0.1/24 of cell \"a\"");
	expect_reject2(DEMO, "{\"address\":\"10.77.0.1/24\",\"cell_address\":\"10.77.0.2\"}", "$.cells[1]",
	               "cell address 10.77.0.2 is already cell \"a\"'s");
	expect_reject2(DEMO, "{\"address\":\"10.77.0.9/24\",\"cell_address\":\"10.77.0.2\"}", "$.cells[1]",
	               "bridge \"warden0\" has address 10.77.0.1/24 in cell \"a\"");
	expect_reject2(DEMO, "{\"interface\":\"wd-a\",\"bridge\":\"br1\",\"address\":\"10.78.0.1/24\",\"cell_address\":\"10.78.0.2\"}",
	               "$.cells[1]", "interface \"wd-a\" of cell \"b\" is already a link of cell \"a\"");
	/* different subnets on different bridges are fine */
	assert_int_equal(parse_cells(qcell(a, sizeof a, "a", "0x40000000", DEMO),
	                             qcell(b, sizeof b, "b", "0x40200000",
	                                   "{\"bridge\":\"br1\",\"address\":\"10.78.0.1/24\",\"cell_address\":\"10.78.0.2\"}"),
	                             &c, err),
	                 0);
	config_free(c);
}

static void test_backends(void **state) {
	char err[CONFIG_ERROR_MAX] = "";
	json_t *j;
	CellSpec *s = NULL;
	(void)state;

	j = json_loads("{\"name\":\"k\",\"cpus\":[1],\"memory\":[{\"virt_start\":0,\"size\":\"0x200000\",\"flags\":[\"loadable\"]}],"
	               "\"comm\":{\"virt_start\":\"0x80000000\",\"size\":4096},\"images\":[{\"file\":\"x.bin\",\"address\":0}],"
	               "\"network\":" DEMO "}",
	               0, NULL);
	assert_int_equal(cell_spec_parse(j, "$", &env4, &s, err), -EINVAL);
	assert_non_null(strstr(err, "the kvm backend gives a cell no network interface"));
	json_decref(j);

	/* jailhouse: the found interface, by match; the pair checks */
	NetSpec *n = NULL, *m = NULL;
	j = json_loads("{\"match\":{\"driver\":\"ivshmem-net\"},\"address\":\"10.1.0.1/24\",\"cell_address\":\"10.1.0.2\"}",
	               0, NULL);
	assert_int_equal(network_spec_parse(j, "$.network", "jh", "jailhouse", &n, err), 0);
	assert_false(n->tap);
	assert_string_equal(n->match_driver, "ivshmem-net");
	assert_string_equal(n->interface, "");
	assert_string_equal(n->bridge, "");
	json_decref(j);
	j = json_loads("{\"match\":{\"driver\":\"ivshmem-net\"},\"address\":\"10.2.0.1/24\",\"cell_address\":\"10.2.0.2\"}",
	               0, NULL);
	assert_int_equal(network_spec_parse(j, "$.network", "jh2", "jailhouse", &m, err), 0);
	assert_int_equal(network_spec_check_pair(m, "jh2", n, "jh", "$", err), -EBUSY);
	assert_non_null(strstr(err, "match by \"pci\""));
	json_decref(j);
	network_spec_free(m);
	m = NULL;

	j = json_loads("{\"match\":{\"pci\":\"0000:00:0f.0\"},\"address\":\"10.1.0.1/24\",\"cell_address\":\"10.1.0.2\"}", 0,
	               NULL);
	assert_int_equal(network_spec_parse(j, "$.network", "jh", "jailhouse", &m, err), 0);
	assert_string_equal(m->match_pci, "0000:00:0f.0");
	json_decref(j);
	network_spec_free(m);
	network_spec_free(n);

	static const char *const bad[][2] = {
		{ "{\"address\":\"10.1.0.1/24\",\"cell_address\":\"10.1.0.2\"}", "\"match\" is required" },
		{ "{\"match\":{},\"address\":\"10.1.0.1/24\",\"cell_address\":\"10.1.0.2\"}", "exactly one of" },
		{ "{\"match\":{\"pci\":\"a\",\"driver\":\"b\"},\"address\":\"10.1.0.1/24\",\"cell_address\":\"10.1.0.2\"}",
		  "exactly one of" },
		{ "{\"match\":{\"slot\":1},\"address\":\"10.1.0.1/24\",\"cell_address\":\"10.1.0.2\"}", "unknown key \"slot\"" },
		{ "{\"match\":{\"driver\":\"ivshmem-net\"},\"interface\":\"x\",\"address\":\"10.1.0.1/24\",\"cell_address\":\"10.1.0.2\"}",
		  "\"interface\" is for qemu cells" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		j = json_loads(bad[i][0], 0, NULL);
		assert_non_null(j);
		n = NULL;
		assert_int_equal(network_spec_parse(j, "$.network", "jh", "jailhouse", &n, err), -EINVAL);
		if (!strstr(err, bad[i][1]))
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, bad[i][1]);
		assert_null(n);
		json_decref(j);
	}
}

static void test_ifname_rule(void **state) {
	(void)state;
	assert_true(network_ifname_valid("warden0"));
	assert_true(network_ifname_valid("a.b_c-d"));
	assert_true(network_ifname_valid("123456789012345"));
	assert_false(network_ifname_valid("1234567890123456"));
	assert_false(network_ifname_valid(""));
	assert_false(network_ifname_valid("."));
	assert_false(network_ifname_valid("a:b"));
	assert_false(network_ifname_valid("a,b"));
	assert_false(network_ifname_valid("a b"));
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_and_round_trip),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_two_cells),
		cmocka_unit_test(test_backends),
		cmocka_unit_test(test_ifname_rule),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
