/* SPDX-License-Identifier: MIT */
/*
 * The root side of cell networks against the real kernel (daemon/netif.c,
 * nat.c, network.c's monitor), in a network namespace of the test's own
 * (unshare(CLONE_NEWNET) first thing): nothing outside it is touched.
 * A veth stands in for the ivshmem-net interface a Jailhouse cell brings:
 * found by driver, claimed, watched, released. Needs root; says
 * "SKIP: <why>" otherwise.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>

#include "nat.h"
#include "netif.h"
#include "network.h"

static const char *skip_reason;
static struct nl_sock *sk;

#define REQUIRE_NETNS()                                       \
	do {                                                  \
		if (skip_reason) {                            \
			fprintf(stderr, "SKIP: %s\n", skip_reason); \
			skip();                               \
		}                                             \
	} while (0)

static struct rtnl_link *get(const char *name) {
	struct rtnl_link *l = NULL;
	if (rtnl_link_get_kernel(sk, 0, name, &l) < 0)
		return NULL;
	return l;
}

static bool exists(const char *name) {
	struct rtnl_link *l = get(name);
	if (l)
		rtnl_link_put(l);
	return l != NULL;
}

static char *alias_of(const char *name, char *buf) {
	struct rtnl_link *l = get(name);
	assert_non_null(l);
	snprintf(buf, 64, "%s", rtnl_link_get_ifalias(l) ? rtnl_link_get_ifalias(l) : "");
	rtnl_link_put(l);
	return buf;
}

static int master_of(const char *name) {
	struct rtnl_link *l = get(name);
	int m;
	assert_non_null(l);
	m = rtnl_link_get_master(l);
	rtnl_link_put(l);
	return m;
}

static int ifindex_of(const char *name) {
	struct rtnl_link *l = get(name);
	int i;
	assert_non_null(l);
	i = rtnl_link_get_ifindex(l);
	rtnl_link_put(l);
	return i;
}

/* Has the interface this IPv4 address? */
static bool has_addr(const char *name, const char *addr) {
	struct nl_cache *cache = NULL;
	int ifindex = ifindex_of(name);
	bool found = false;
	char buf[64];

	assert_int_equal(rtnl_addr_alloc_cache(sk, &cache), 0);
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_addr *a = (struct rtnl_addr *)o;
		if (rtnl_addr_get_ifindex(a) != ifindex || rtnl_addr_get_family(a) != AF_INET)
			continue;
		nl_addr2str(rtnl_addr_get_local(a), buf, sizeof buf);
		if (strncmp(buf, addr, strlen(addr)) == 0)
			found = true;
	}
	nl_cache_free(cache);
	return found;
}

static void foreign_bridge(const char *name) {
	struct rtnl_link *l = rtnl_link_bridge_alloc();
	rtnl_link_set_name(l, name);
	assert_int_equal(rtnl_link_add(sk, l, NLM_F_CREATE | NLM_F_EXCL), 0);
	rtnl_link_put(l);
}

static void del(const char *name) {
	struct rtnl_link *l = get(name);
	if (l) {
		rtnl_link_delete(sk, l);
		rtnl_link_put(l);
	}
}

#define A(a, b, c, d) (((uint32_t)(a) << 24) | ((b) << 16) | ((c) << 8) | (d))

static void test_bridge_and_tap(void **state) {
	char alias[64];
	int br, br2;
	(void)state;
	REQUIRE_NETNS();

	assert_int_equal(netif_bridge_ensure(sk, "wbr0", A(10, 77, 0, 1), 24, &br), 0);
	assert_string_equal(alias_of("wbr0", alias), NETIF_ALIAS_BRIDGE);
	assert_true(has_addr("wbr0", "10.77.0.1"));
	/* again: the same bridge, nothing new */
	assert_int_equal(netif_bridge_ensure(sk, "wbr0", A(10, 77, 0, 1), 24, &br2), 0);
	assert_int_equal(br, br2);

	assert_int_equal(netif_tap_ensure(sk, "wd-a", "a", br), 0);
	assert_string_equal(alias_of("wd-a", alias), NETIF_ALIAS_CELL "a");
	assert_int_equal(master_of("wd-a"), br);
	/* a restart finds it as it was */
	assert_int_equal(netif_tap_ensure(sk, "wd-a", "a", br), 0);
	/* another cell's name for it is refused, and it stays */
	assert_int_equal(netif_tap_ensure(sk, "wd-a", "b", br), -EBUSY);
	assert_int_equal(netif_tap_delete(sk, "wd-a", "b"), -EBUSY);
	assert_true(exists("wd-a"));
	/* the bridge stays while it has a port */
	assert_int_equal(netif_bridge_release(sk, "wbr0"), -ENOTEMPTY);
	assert_true(exists("wbr0"));
	assert_int_equal(netif_tap_delete(sk, "wd-a", "a"), 0);
	assert_false(exists("wd-a"));
	assert_int_equal(netif_tap_delete(sk, "wd-a", "a"), 0);
	assert_int_equal(netif_bridge_release(sk, "wbr0"), 0);
	assert_false(exists("wbr0"));
}

static void test_foreign_links_are_refused(void **state) {
	char alias[64];
	int br;
	(void)state;
	REQUIRE_NETNS();

	foreign_bridge("fbr0");
	assert_int_equal(netif_bridge_ensure(sk, "fbr0", A(10, 78, 0, 1), 24, &br), -EBUSY);
	assert_string_equal(alias_of("fbr0", alias), "");
	assert_false(has_addr("fbr0", "10.78.0.1"));
	/* not warden's: never deleted */
	assert_int_equal(netif_bridge_release(sk, "fbr0"), 0);
	assert_true(exists("fbr0"));
	/* a tap name someone else uses (here: a bridge) */
	assert_int_equal(netif_bridge_ensure(sk, "wbr1", A(10, 79, 0, 1), 24, &br), 0);
	assert_int_equal(netif_tap_ensure(sk, "fbr0", "a", br), -EBUSY);
	assert_int_equal(master_of("fbr0"), 0);
	del("fbr0");
	assert_int_equal(netif_bridge_release(sk, "wbr1"), 0);
}

static void run_loop_until(sd_event *e, Network *n, const char *cell, bool want_problem, char *why, size_t size) {
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		why[0] = 0;
		if (network_cell_problem(n, cell, why, size) == want_problem && (want_problem || why[0] == 0)) {
			NetLinkState s[4];
			/* known to the monitor at all */
			if (network_snapshot(n, s, 4) > 0)
				return;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 20)
			fail_msg("the monitor did not see %s on cell %s's link", want_problem ? "a problem" : "it fine", cell);
		assert_true(sd_event_run(e, 100 * 1000) >= 0);
	}
}

/* ivshmem-net stand-in: a veth, found by its driver, claimed, watched. */
static void test_veth_stands_in_for_ivshmem_net(void **state) {
	char name[IFNAMSIZ], other[IFNAMSIZ], alias[64], why[128];
	sd_event *e = NULL;
	Network *n = NULL;
	(void)state;
	REQUIRE_NETNS();

	struct rtnl_link *veth = rtnl_link_veth_alloc();
	assert_non_null(veth);
	rtnl_link_set_name(veth, "ivsh0");
	rtnl_link_set_name(rtnl_link_veth_get_peer(veth), "ivcell0");
	int r = rtnl_link_add(sk, veth, NLM_F_CREATE | NLM_F_EXCL);
	if (r < 0)
		fail_msg("veth: %s", nl_geterror(r));
	rtnl_link_put(veth);
	/* the far end is the "cell's", kept up so the near one has carrier */
	assert_int_equal(netif_set_up(sk, "ivcell0", true), 0);
	/* by PCI address: a veth has none */
	assert_int_equal(netif_find(sk, "0000:00:0f.0", NULL, "jh", name), -ENOENT);
	assert_int_equal(netif_find(sk, NULL, "veth", "jh", name), 0);
	assert_true(strcmp(name, "ivsh0") == 0 || strcmp(name, "ivcell0") == 0);
	/* the test's cell side is ivcell0: claim ivsh0 explicitly */
	snprintf(name, sizeof name, "ivsh0");

	assert_true(sd_event_default(&e) >= 0);
	assert_int_equal(network_new(e, NULL, &n), 0);

	assert_int_equal(netif_claim(sk, name, "jh", 0, A(10, 90, 0, 1), 24), 0);
	assert_string_equal(alias_of(name, alias), NETIF_ALIAS_CELL "jh");
	assert_true(has_addr(name, "10.90.0.1"));
	assert_int_equal(netif_find_cell(sk, "jh", other), 0);
	assert_string_equal(other, name);
	/* a second cell matching the same driver skips the claimed one */
	assert_int_equal(netif_find(sk, NULL, "veth", "jh2", other), 0);
	assert_string_equal(other, "ivcell0");

	run_loop_until(e, n, "jh", false, why, sizeof why);
	/* the cell side goes away: carrier lost on ours */
	assert_int_equal(netif_set_up(sk, "ivcell0", false), 0);
	run_loop_until(e, n, "jh", true, why, sizeof why);
	assert_non_null(strstr(why, "carrier lost on ivsh0"));
	assert_int_equal(netif_set_up(sk, "ivcell0", true), 0);
	run_loop_until(e, n, "jh", false, why, sizeof why);

	/* GET /cells/NAME's object, from the monitor's view */
	CellSpec spec = { .name = "jh" };
	NetSpec ns = { .address = A(10, 90, 0, 1), .prefix = 24, .cell_address = A(10, 90, 0, 2) };
	snprintf(ns.match_driver, sizeof ns.match_driver, "veth");
	spec.network = &ns;
	json_t *j = network_cell_json(n, &spec);
	assert_string_equal(json_string_value(json_object_get(j, "interface")), "ivsh0");
	assert_true(json_is_true(json_object_get(j, "carrier")));
	assert_string_equal(json_string_value(json_object_get(j, "address")), "10.90.0.1/24");
	json_decref(j);

	assert_int_equal(netif_unclaim(sk, "jh", A(10, 90, 0, 1), 24), 0);
	assert_string_equal(alias_of(name, alias), "");
	assert_false(has_addr(name, "10.90.0.1"));
	assert_int_equal(netif_find_cell(sk, "jh", other), -ENOENT);
	/* released twice: nothing to do */
	assert_int_equal(netif_unclaim(sk, "jh", A(10, 90, 0, 1), 24), 0);
	/* the device is the driver's: it stays */
	assert_true(exists(name));

	network_free(n);
	sd_event_unref(e);
	del("ivsh0");
}

static void test_nat_table(void **state) {
	NatRule r = { .link = "wbr2", .uplink = "up9", .net = A(10, 91, 0, 0), .prefix = 24 };
	char err[256], *t;
	(void)state;
	REQUIRE_NETNS();

	if (access("/proc/sys/net/ipv4/ip_forward", W_OK) < 0)
		skip();
	assert_int_equal(nat_apply(&r, 1, err), 0);
	t = nat_list();
	assert_non_null(t);
	assert_non_null(strstr(t, "masquerade"));
	assert_non_null(strstr(t, "10.91.0.0"));
	assert_non_null(strstr(t, "\"up9\""));
	free(t);
	/* the same twice: replaced, not doubled */
	assert_int_equal(nat_apply(&r, 1, err), 0);
	t = nat_list();
	assert_non_null(t);
	assert_null(strstr(strstr(t, "masquerade") + 1, "masquerade"));
	free(t);
	assert_int_equal(nat_apply(NULL, 0, err), 0);
	assert_null(nat_list());
	/* removing what is not there is no error */
	assert_int_equal(nat_apply(NULL, 0, err), 0);
}

int main(void) {
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bridge_and_tap),
		cmocka_unit_test(test_foreign_links_are_refused),
		cmocka_unit_test(test_veth_stands_in_for_ivshmem_net),
		cmocka_unit_test(test_nat_table),
	};

	if (geteuid() != 0)
		skip_reason = "needs root (a network namespace, CAP_NET_ADMIN)";
	else if (unshare(CLONE_NEWNET) < 0)
		skip_reason = "unshare(CLONE_NEWNET) failed";
	else if (netif_open(&sk) < 0)
		skip_reason = "no NETLINK_ROUTE socket";
	else if (netif_set_up(sk, "lo", true) < 0)
		skip_reason = "cannot bring lo up in the new namespace";
	return cmocka_run_group_tests(tests, NULL, NULL);
}
