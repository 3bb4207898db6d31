/* SPDX-License-Identifier: MIT */
/*
 * Cell networks in the daemon (docs/networks.md): the per-cell lifecycle of
 * the root-side links, submitted to the manager's BackendQueue so that no
 * netlink or nftables round trip runs on the loop, and the link monitor, a
 * non-blocking NETLINK_ROUTE socket on the loop (RTNLGRP_LINK plus a dump
 * a second for the counters) that keeps each cell's interface state.
 *
 * Interfaces are recognised by warden's ifalias marker (netif.h), so a
 * restarted wardend knows its links again from the first dump.
 */
#pragma once

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "hypervisor/backend.h"

typedef struct Network Network;

/* What the monitor knows of one cell's root-side interface. */
typedef struct NetLinkState {
	char cell[CELL_NAME_MAX + 1];
	char ifname[IFNAMSIZ];
	int ifindex;
	bool present; /* exists now (false after RTM_DELLINK) */
	bool up;      /* IFF_UP */
	bool carrier; /* IFF_LOWER_UP */
	uint8_t operstate;
	uint64_t rx_bytes, rx_packets, rx_errors, rx_dropped;
	uint64_t tx_bytes, tx_packets, tx_errors, tx_dropped;
} NetLinkState;

int network_new(sd_event *event, BackendQueue *queue, Network **ret);
/* After the queue is freed: its workers may still hold the Network. */
Network *network_free(Network *n);

/* Before a boot of the cell: its bridge, tap, addresses and NAT, ordered
 * before the boot request on the cell's queue key. done gets the result;
 * a failure is logged here with the reason. */
int network_prepare_async(Network *n, const CellSpec *spec, BackendDoneFn done, void *userdata, BackendRequest **ret);
/* After a boot of a jailhouse cell: finds and claims its ivshmem-net
 * interface (it appears when the cell starts). No completion. */
int network_attach_async(Network *n, const CellSpec *spec);
/* After the cell's teardown: its tap, its bridge if no port is left, its
 * NAT rules. No completion. */
int network_release_async(Network *n, const CellSpec *spec);

/* A running cell's link trouble ("carrier lost on wd-linux"), or false. */
bool network_cell_problem(Network *n, const char *cell, char *buf, size_t size);
/* The spec's network with the monitor's view: the "network" object of
 * GET /cells/NAME. */
json_t *network_cell_json(Network *n, const CellSpec *spec);
/* Copies up to max states (metrics snapshots); returns how many. */
size_t network_snapshot(Network *n, NetLinkState *ret, size_t max);
void network_metrics_format(const NetLinkState *s, size_t n, FILE *f);
const char *network_operstate_to_string(uint8_t operstate);
