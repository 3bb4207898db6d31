/* SPDX-License-Identifier: MIT */
/*
 * The root cell's side of a cell network, through libnl-route-3: the
 * bridge, the qemu cell's tap, a jailhouse cell's ivshmem-net interface,
 * their addresses and link state. Every call is a netlink round trip and
 * blocks: workers only (network.c submits them), never the event loop.
 * Functions return 0 or a negative errno and never log.
 *
 * Ownership is an ifalias: warden sets "warden:bridge" on the bridges it
 * makes and "warden:cell:NAME" on a cell's root-side interface, and
 * changes or deletes nothing that lacks the marker: an existing link of
 * the same name is refused with -EBUSY, never taken over. The marker is
 * also how a restarted wardend finds its links again (network.c).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <net/if.h>

struct nl_sock;

#define NETIF_ALIAS_BRIDGE "warden:bridge"
#define NETIF_ALIAS_CELL "warden:cell:"

int netif_open(struct nl_sock **ret);
void netif_close(struct nl_sock *sk);

/* The bridge `name`: made (with the marker) if missing, up, with
 * addr/prefix (host byte order) on it. -EBUSY: a link of that name exists
 * without warden's marker, or is not a bridge. */
int netif_bridge_ensure(struct nl_sock *sk, const char *name, uint32_t addr, unsigned prefix, int *ret_ifindex);
/* Deletes the bridge if it is warden's and no port is left on it.
 * 0 also when it is not there; -ENOTEMPTY while ports remain. */
int netif_bridge_release(struct nl_sock *sk, const char *name);

/* The persistent tap `name` for `cell`: made if missing (IFF_TAP,
 * IFF_NO_PI, IFF_VNET_HDR, as QEMU opens it), marked, a port of the bridge
 * `master` (ifindex), up. -EBUSY: a link of that name is not this cell's. */
int netif_tap_ensure(struct nl_sock *sk, const char *name, const char *cell, int master);
/* Deletes the cell's tap; 0 when it is not there. -EBUSY: not this
 * cell's, left alone. */
int netif_tap_delete(struct nl_sock *sk, const char *name, const char *cell);

/* The interface of PCI address `pci` (ethtool bus-info) or of driver
 * `driver` (the first one not already another cell's) into ret_name.
 * -ENOENT: none (yet). */
int netif_find(struct nl_sock *sk, const char *pci, const char *driver, const char *cell, char ret_name[IFNAMSIZ]);
/* Makes the found interface `name` the cell's: marker, up, and either a
 * port of `master` (ifindex > 0) or addr/prefix on it. */
int netif_claim(struct nl_sock *sk, const char *name, const char *cell, int master, uint32_t addr, unsigned prefix);
/* Undoes netif_claim() on whatever interface carries the cell's marker:
 * its address, its bridge port, the marker; the device itself is the
 * driver's and stays. 0 when there is none. */
int netif_unclaim(struct nl_sock *sk, const char *cell, uint32_t addr, unsigned prefix);

/* The name of the link holding `cell`'s marker; -ENOENT. */
int netif_find_cell(struct nl_sock *sk, const char *cell, char ret_name[IFNAMSIZ]);
/* Sets a link's administrative state (tests and tools). */
int netif_set_up(struct nl_sock *sk, const char *name, bool up);
