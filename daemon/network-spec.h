/* SPDX-License-Identifier: MIT */
/*
 * A cell spec's "network" object: the root-side interface of a cell (a tap
 * wardend makes for a qemu cell, the ivshmem-net interface Jailhouse gives
 * the root cell), the root-side address, the cell's own address and an
 * optional NAT uplink. Parsed and validated here, pure: nothing touches
 * the machine's interfaces (netif.c does, on workers). docs/networks.md.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <net/if.h>

#define NET_DEFAULT_BRIDGE "warden0"
#define NET_MATCH_MAX 32

typedef struct NetSpec {
	/* qemu: the tap's name (default "wd-" and the cell name's first 12
	 * characters); jailhouse: "" until the interface is found by match */
	char interface[IFNAMSIZ];
	/* qemu: the bridge the tap joins (default warden0); jailhouse: a
	 * bridge the interface joins, or "" to address the interface itself */
	char bridge[IFNAMSIZ];
	/* jailhouse: how the ivshmem-net interface is recognised, by its
	 * PCI address (ethtool bus-info) or its driver; one of them */
	char match_pci[NET_MATCH_MAX];
	char match_driver[NET_MATCH_MAX];
	uint32_t address;      /* root side, host byte order */
	unsigned prefix;       /* of `address`, 1..30 */
	uint32_t cell_address; /* the cell's, in address/prefix */
	char mac[18];          /* qemu: the cell NIC's MAC ("52:54:00:..") */
	char nat_uplink[IFNAMSIZ]; /* "" : no NAT */
	bool degrade_on_carrier_loss;
	bool tap; /* qemu: a tap wardend makes; false: a found interface */
} NetSpec;

/* Parses obj (the spec's "network") for a cell of `backend` named `cell`;
 * path is the JSON path, err CONFIG_ERROR_MAX bytes. -EINVAL with the
 * reason, -ENOMEM. */
int network_spec_parse(json_t *obj, const char *path, const char *cell, const char *backend, NetSpec **ret,
                       char *err);
NetSpec *network_spec_free(NetSpec *n);
NetSpec *network_spec_dup(const NetSpec *n);
json_t *network_spec_to_json(const NetSpec *n);
/* Two cells' networks side by side: the same interface twice, the same
 * cell address twice, one bridge with two different root addresses, or
 * overlapping subnets on different links. -EBUSY with the reason. */
int network_spec_check_pair(const NetSpec *a, const char *a_cell, const NetSpec *b, const char *b_cell,
                            const char *path, char *err);

/* 1 to 15 of [A-Za-z0-9._-], not "." or "..": a name the kernel takes
 * (dev_valid_name) that is also safe on QEMU's command line. */
bool network_ifname_valid(const char *s);
/* "a.b.c.d" into host byte order; false if it is not one. */
bool network_parse_ipv4(const char *s, uint32_t *ret);
void network_format_ipv4(uint32_t a, char buf[16]);
static inline uint32_t network_mask(unsigned prefix) {
	return prefix ? ~(uint32_t)0 << (32 - prefix) : 0;
}
/* The cell's kernel argument, "ip=CELL::ROOT:MASK::eth0:off". */
int network_kernel_ip_arg(const NetSpec *n, char *buf, size_t size);
