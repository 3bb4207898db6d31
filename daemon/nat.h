/* SPDX-License-Identifier: MIT */
/*
 * NAT and forwarding for cell networks through libnftables' JSON API, in
 * one table warden owns ("ip warden"): a masquerade of each NAT'ed cell
 * subnet out of its uplink, and the forwarding between its bridge (or
 * interface) and that uplink. Nothing else in the ruleset is touched, and
 * there is no iptables or nft process. Blocking: workers only.
 */
#pragma once

#include <net/if.h>
#include <stddef.h>
#include <stdint.h>

#define NAT_TABLE "warden"

typedef struct NatRule {
	char link[IFNAMSIZ];   /* the cell side: bridge or interface */
	char uplink[IFNAMSIZ];
	uint32_t net;          /* host byte order */
	unsigned prefix;
} NatRule;

/* Replaces the table with one for `rules`; with none, deletes it. Turns
 * IPv4 forwarding on (in wardend's network namespace) when there are
 * rules. 0 or a negative errno; err (256 bytes) gets nftables' message. */
int nat_apply(const NatRule *rules, size_t n, char *err);
/* The table's JSON as nftables lists it, or NULL (tests). */
char *nat_list(void);
