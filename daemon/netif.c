/* SPDX-License-Identifier: MIT */
#include "netif.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>

#include "macro.h"

/* libnl's own error numbers, back to errno. */
static int nlerr(int e) {
	switch (e < 0 ? -e : e) {
	case 0: return 0;
	case NLE_NOMEM: return -ENOMEM;
	case NLE_EXIST: return -EEXIST;
	case NLE_OBJ_NOTFOUND:
	case NLE_NODEV: return -ENOENT;
	case NLE_PERM: return -EPERM;
	case NLE_BUSY: return -EBUSY;
	case NLE_INVAL: return -EINVAL;
	case NLE_OPNOTSUPP: return -EOPNOTSUPP;
	case NLE_AGAIN: return -EAGAIN;
	case NLE_RANGE: return -ERANGE;
	default: return -EIO;
	}
}

static void link_putp(struct rtnl_link **l) {
	if (*l)
		rtnl_link_put(*l);
}
#define _cleanup_link_ _cleanup_(link_putp)

int netif_open(struct nl_sock **ret) {
	struct nl_sock *sk = nl_socket_alloc();
	int r;

	if (!sk)
		return -ENOMEM;
	r = nl_connect(sk, NETLINK_ROUTE);
	if (r < 0) {
		nl_socket_free(sk);
		return nlerr(r);
	}
	*ret = sk;
	return 0;
}

void netif_close(struct nl_sock *sk) {
	if (sk)
		nl_socket_free(sk);
}

static int link_get(struct nl_sock *sk, const char *name, struct rtnl_link **ret) {
	int r = rtnl_link_get_kernel(sk, 0, name, ret);
	return r < 0 ? nlerr(r) : 0;
}

static bool alias_is(struct rtnl_link *l, const char *want) {
	const char *a = rtnl_link_get_ifalias(l);
	return a && strcmp(a, want) == 0;
}

static void cell_alias(const char *cell, char buf[64]) {
	snprintf(buf, 64, NETIF_ALIAS_CELL "%s", cell);
}

/* Marker, master (-1: leave), up, in one RTM_NEWLINK. */
static int link_set(struct nl_sock *sk, struct rtnl_link *l, const char *alias, int master, bool up) {
	_cleanup_link_ struct rtnl_link *ch = rtnl_link_alloc();
	int r;

	if (!ch)
		return -ENOMEM;
	if (alias)
		rtnl_link_set_ifalias(ch, alias);
	if (master >= 0)
		rtnl_link_set_master(ch, master);
	if (up)
		rtnl_link_set_flags(ch, IFF_UP);
	else
		rtnl_link_unset_flags(ch, IFF_UP);
	r = rtnl_link_change(sk, l, ch, 0);
	return r < 0 ? nlerr(r) : 0;
}

static int address_change(struct nl_sock *sk, int ifindex, uint32_t addr, unsigned prefix, bool add) {
	struct rtnl_addr *a = rtnl_addr_alloc();
	struct nl_addr *local = NULL;
	uint32_t be = htonl(addr);
	int r;

	if (!a)
		return -ENOMEM;
	local = nl_addr_build(AF_INET, &be, sizeof be);
	if (!local) {
		rtnl_addr_put(a);
		return -ENOMEM;
	}
	nl_addr_set_prefixlen(local, (int)prefix);
	rtnl_addr_set_ifindex(a, ifindex);
	rtnl_addr_set_family(a, AF_INET);
	r = rtnl_addr_set_local(a, local);
	if (r >= 0)
		r = add ? rtnl_addr_add(sk, a, 0) : rtnl_addr_delete(sk, a, 0);
	nl_addr_put(local);
	rtnl_addr_put(a);
	r = nlerr(r);
	/* Already there (a re-adopted bridge), or already gone. */
	if ((add && r == -EEXIST) || (!add && (r == -ENOENT || r == -EADDRNOTAVAIL || r == -EIO)))
		return 0;
	return r;
}

int netif_bridge_ensure(struct nl_sock *sk, const char *name, uint32_t addr, unsigned prefix, int *ret_ifindex) {
	_cleanup_link_ struct rtnl_link *l = NULL;
	int r;

	r = link_get(sk, name, &l);
	if (r == -ENOENT) {
		_cleanup_link_ struct rtnl_link *nb = rtnl_link_bridge_alloc();
		if (!nb)
			return -ENOMEM;
		rtnl_link_set_name(nb, name);
		r = rtnl_link_add(sk, nb, NLM_F_CREATE | NLM_F_EXCL);
		if (r < 0)
			return nlerr(r);
		/* The kernel takes no ifalias in the RTM_NEWLINK that creates
		 * a link: marked with the change that brings it up. */
		if ((r = link_get(sk, name, &l)) < 0 || (r = link_set(sk, l, NETIF_ALIAS_BRIDGE, -1, true)) < 0)
			return r;
		rtnl_link_put(l);
		l = NULL;
		r = link_get(sk, name, &l);
	}
	if (r < 0)
		return r;
	if (!alias_is(l, NETIF_ALIAS_BRIDGE) || !rtnl_link_is_bridge(l))
		return -EBUSY;
	if ((r = address_change(sk, rtnl_link_get_ifindex(l), addr, prefix, true)) < 0)
		return r;
	if (!(rtnl_link_get_flags(l) & IFF_UP) && (r = link_set(sk, l, NULL, -1, true)) < 0)
		return r;
	if (ret_ifindex)
		*ret_ifindex = rtnl_link_get_ifindex(l);
	return 0;
}

static void cache_freep(struct nl_cache **c) {
	if (*c)
		nl_cache_free(*c);
}

int netif_bridge_release(struct nl_sock *sk, const char *name) {
	_cleanup_link_ struct rtnl_link *l = NULL;
	_cleanup_(cache_freep) struct nl_cache *cache = NULL;
	int r, ifindex;

	r = link_get(sk, name, &l);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (!alias_is(l, NETIF_ALIAS_BRIDGE))
		return 0;
	ifindex = rtnl_link_get_ifindex(l);
	r = rtnl_link_alloc_cache(sk, AF_UNSPEC, &cache);
	if (r < 0)
		return nlerr(r);
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o))
		if (rtnl_link_get_master((struct rtnl_link *)o) == ifindex)
			return -ENOTEMPTY;
	r = rtnl_link_delete(sk, l);
	r = nlerr(r);
	return r == -ENOENT ? 0 : r;
}

static int tap_create(const char *name) {
	struct ifreq ifr = { 0 };
	int fd, r = 0;

	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
	ifr.ifr_flags = (short)(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_TUN_EXCL); /* IFF_TUN_EXCL is the sign bit */
	/* owned by wardend's user: QEMU, its child, opens it without
	 * CAP_NET_ADMIN of its own */
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETOWNER, (unsigned long)geteuid()) < 0 ||
	    ioctl(fd, TUNSETPERSIST, 1) < 0)
		r = -errno;
	close(fd);
	return r;
}

int netif_tap_ensure(struct nl_sock *sk, const char *name, const char *cell, int master) {
	_cleanup_link_ struct rtnl_link *l = NULL;
	char alias[64];
	bool fresh = false;
	int r;

	cell_alias(cell, alias);
	r = link_get(sk, name, &l);
	if (r == -ENOENT) {
		if ((r = tap_create(name)) < 0)
			return r;
		fresh = true;
		r = link_get(sk, name, &l);
	}
	if (r < 0)
		return r;
	if (fresh)
		return link_set(sk, l, alias, master, true);
	if (!alias_is(l, alias))
		return -EBUSY;
	/* A restart finds it as it was: one round trip less. */
	if (rtnl_link_get_master(l) == master && (rtnl_link_get_flags(l) & IFF_UP))
		return 0;
	return link_set(sk, l, NULL, master, true);
}

int netif_tap_delete(struct nl_sock *sk, const char *name, const char *cell) {
	_cleanup_link_ struct rtnl_link *l = NULL;
	char alias[64];
	int r;

	cell_alias(cell, alias);
	r = link_get(sk, name, &l);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (!alias_is(l, alias))
		return -EBUSY;
	r = nlerr(rtnl_link_delete(sk, l));
	return r == -ENOENT ? 0 : r;
}

static bool drvinfo_matches(int fd, const char *name, const char *pci, const char *driver) {
	struct ethtool_drvinfo info = { .cmd = ETHTOOL_GDRVINFO };
	struct ifreq ifr = { 0 };

	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
	ifr.ifr_data = (void *)&info;
	if (ioctl(fd, SIOCETHTOOL, &ifr) < 0)
		return false;
	if (pci && pci[0])
		return strncmp(info.bus_info, pci, sizeof info.bus_info) == 0;
	return driver && strncmp(info.driver, driver, sizeof info.driver) == 0;
}

int netif_find(struct nl_sock *sk, const char *pci, const char *driver, const char *cell, char ret_name[IFNAMSIZ]) {
	_cleanup_(cache_freep) struct nl_cache *cache = NULL;
	char alias[64];
	int fd, r = -ENOENT;

	cell_alias(cell, alias);
	r = rtnl_link_alloc_cache(sk, AF_UNSPEC, &cache);
	if (r < 0)
		return nlerr(r);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = -ENOENT;
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		struct rtnl_link *l = (struct rtnl_link *)o;
		const char *a = rtnl_link_get_ifalias(l);
		/* another cell's already */
		if (a && strncmp(a, NETIF_ALIAS_CELL, strlen(NETIF_ALIAS_CELL)) == 0 && strcmp(a, alias) != 0)
			continue;
		if (!drvinfo_matches(fd, rtnl_link_get_name(l), pci, driver))
			continue;
		snprintf(ret_name, IFNAMSIZ, "%s", rtnl_link_get_name(l));
		r = 0;
		break;
	}
	close(fd);
	return r;
}

int netif_claim(struct nl_sock *sk, const char *name, const char *cell, int master, uint32_t addr, unsigned prefix) {
	_cleanup_link_ struct rtnl_link *l = NULL;
	char alias[64];
	int r;

	cell_alias(cell, alias);
	if ((r = link_get(sk, name, &l)) < 0)
		return r;
	if ((r = link_set(sk, l, alias, master > 0 ? master : -1, true)) < 0)
		return r;
	if (master <= 0)
		return address_change(sk, rtnl_link_get_ifindex(l), addr, prefix, true);
	return 0;
}

int netif_find_cell(struct nl_sock *sk, const char *cell, char ret_name[IFNAMSIZ]) {
	_cleanup_(cache_freep) struct nl_cache *cache = NULL;
	char alias[64];
	int r;

	cell_alias(cell, alias);
	r = rtnl_link_alloc_cache(sk, AF_UNSPEC, &cache);
	if (r < 0)
		return nlerr(r);
	for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o))
		if (alias_is((struct rtnl_link *)o, alias)) {
			snprintf(ret_name, IFNAMSIZ, "%s", rtnl_link_get_name((struct rtnl_link *)o));
			return 0;
		}
	return -ENOENT;
}

int netif_unclaim(struct nl_sock *sk, const char *cell, uint32_t addr, unsigned prefix) {
	_cleanup_link_ struct rtnl_link *l = NULL;
	char name[IFNAMSIZ];
	int r;

	r = netif_find_cell(sk, cell, name);
	if (r == -ENOENT)
		return 0;
	if (r < 0 || (r = link_get(sk, name, &l)) < 0)
		return r;
	if (rtnl_link_get_master(l) <= 0 && (r = address_change(sk, rtnl_link_get_ifindex(l), addr, prefix, false)) < 0)
		return r;
	/* An empty ifalias is the kernel's "none". */
	return link_set(sk, l, "", rtnl_link_get_master(l) > 0 ? 0 : -1, false);
}

int netif_set_up(struct nl_sock *sk, const char *name, bool up) {
	_cleanup_link_ struct rtnl_link *l = NULL;
	int r;

	if ((r = link_get(sk, name, &l)) < 0)
		return r;
	return link_set(sk, l, NULL, -1, up);
}
