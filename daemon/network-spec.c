/* SPDX-License-Identifier: MIT */
#include "network-spec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "macro.h"

bool network_ifname_valid(const char *s) {
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n >= IFNAMSIZ || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
		      ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

bool network_parse_ipv4(const char *s, uint32_t *ret) {
	struct in_addr a;

	/* inet_pton takes exactly four decimal parts, no shorthand. */
	if (!s || inet_pton(AF_INET, s, &a) != 1)
		return false;
	*ret = ntohl(a.s_addr);
	return true;
}

void network_format_ipv4(uint32_t a, char buf[16]) {
	struct in_addr in = { .s_addr = htonl(a) };
	if (!inet_ntop(AF_INET, &in, buf, 16))
		snprintf(buf, 16, "?");
}

static int parse_ifname(json_t *obj, const char *key, const char *path, char *dst, char *err) {
	json_t *v = json_object_get(obj, key);
	const char *s;

	if (!v)
		return 0;
	if (!json_is_string(v))
		return config_error(err, path, "\"%s\" must be a string (an interface name)", key);
	s = json_string_value(v);
	if (strlen(s) >= IFNAMSIZ)
		return config_error(err, path, "\"%s\": \"%s\" is too long for an interface name (%zu characters, at most %d)",
		                    key, s, strlen(s), IFNAMSIZ - 1);
	if (!network_ifname_valid(s))
		return config_error(err, path,
		                    "\"%s\": \"%s\" is not a valid interface name (1 to %d of A-Z a-z 0-9 . _ -, not \".\" or \"..\")",
		                    key, s, IFNAMSIZ - 1);
	snprintf(dst, IFNAMSIZ, "%s", s);
	return 0;
}

static int parse_match(json_t *m, const char *path, NetSpec *n, char *err) {
	static const char *const keys[] = { "pci", "driver" };
	char p[320];
	const char *key;
	json_t *v;

	snprintf(p, sizeof p, "%s.match", path);
	if (!json_is_object(m))
		return config_error(err, p, "must be an object: {\"pci\": \"0000:00:0f.0\"} or {\"driver\": \"ivshmem-net\"}");
	json_object_foreach(m, key, v) {
		char *dst = NULL;
		const char *s;
		for (size_t i = 0; i < ELEMENTSOF(keys); i++)
			if (strcmp(key, keys[i]) == 0)
				dst = i == 0 ? n->match_pci : n->match_driver;
		if (!dst)
			return config_error(err, p, "unknown key \"%s\" (pci, driver)", key);
		if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= NET_MATCH_MAX)
			return config_error(err, p, "\"%s\" must be a string of 1 to %d characters", key, NET_MATCH_MAX - 1);
		s = json_string_value(v);
		for (const char *q = s; *q; q++)
			if (*q <= ' ' || *q > '~')
				return config_error(err, p, "\"%s\": \"%s\" has a character that is not printable ASCII", key, s);
		snprintf(dst, NET_MATCH_MAX, "%s", s);
	}
	if (!n->match_pci[0] == !n->match_driver[0])
		return config_error(err, p, "needs exactly one of \"pci\" and \"driver\"");
	return 0;
}

static bool mac_valid(const char *s) {
	unsigned b[6];
	char tail;

	if (strlen(s) != 17 || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6)
		return false;
	for (size_t i = 0; i < 17; i++)
		if (i % 3 == 2 ? s[i] != ':' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
		                                 (s[i] >= 'A' && s[i] <= 'F')))
			return false;
	/* unicast, and not all zero */
	return !(b[0] & 1) && (b[0] | b[1] | b[2] | b[3] | b[4] | b[5]);
}

/* A stable, locally administered MAC from the cell name (FNV-1a), so a
 * restarted cell keeps its neighbours' ARP entries. */
static void default_mac(const char *cell, char mac[18]) {
	uint32_t h = 2166136261u;
	for (const char *q = cell; *q; q++)
		h = (h ^ (uint8_t)*q) * 16777619u;
	snprintf(mac, 18, "52:54:00:%02x:%02x:%02x", (h >> 16) & 0xff, (h >> 8) & 0xff, h & 0xff);
}

int network_spec_parse(json_t *obj, const char *path, const char *cell, const char *backend, NetSpec **ret,
                       char *err) {
	static const char *const keys[] = { "interface", "bridge", "match", "address", "cell_address", "mac", "nat",
		                            "degrade_on_carrier_loss", NULL };
	_cleanup_free_ NetSpec *n = NULL;
	const char *key, *s;
	json_t *v;
	int r;

	if (!json_is_object(obj))
		return config_error(err, path, "must be an object");
	json_object_foreach(obj, key, v) {
		bool ok = false;
		for (const char *const *k = keys; *k; k++)
			ok |= strcmp(*k, key) == 0;
		if (!ok)
			return config_error(err, path, "unknown key \"%s\"", key);
	}
	if (strcmp(backend, "qemu") != 0 && strcmp(backend, "jailhouse") != 0)
		return config_error(err, path, "the %s backend gives a cell no network interface (qemu and jailhouse do)",
		                    backend);
	n = calloc(1, sizeof *n);
	if (!n)
		return -ENOMEM;
	n->tap = strcmp(backend, "qemu") == 0;
	n->degrade_on_carrier_loss = true;
	if ((r = parse_ifname(obj, "bridge", path, n->bridge, err)) < 0)
		return r;
	if (n->tap) {
		if (json_object_get(obj, "match"))
			return config_error(err, path, "\"match\" is for jailhouse cells (their ivshmem-net interface); a qemu cell gets a tap");
		if ((r = parse_ifname(obj, "interface", path, n->interface, err)) < 0)
			return r;
		if (!n->interface[0])
			snprintf(n->interface, sizeof n->interface, "wd-%.12s", cell);
		if (!n->bridge[0])
			snprintf(n->bridge, sizeof n->bridge, "%s", NET_DEFAULT_BRIDGE);
		if (strcmp(n->interface, n->bridge) == 0)
			return config_error(err, path, "\"interface\" and \"bridge\" must differ (both \"%s\")", n->bridge);
	} else {
		if (json_object_get(obj, "interface"))
			return config_error(err, path,
			                    "\"interface\" is for qemu cells: a jailhouse cell's interface is found by \"match\"");
		if (!json_object_get(obj, "match"))
			return config_error(err, path, "\"match\" is required: {\"pci\": \"0000:00:0f.0\"} or {\"driver\": \"ivshmem-net\"}");
		if ((r = parse_match(json_object_get(obj, "match"), path, n, err)) < 0)
			return r;
		if (json_object_get(obj, "mac"))
			return config_error(err, path, "\"mac\" is for qemu cells: the ivshmem-net device has its own");
	}

	v = json_object_get(obj, "address");
	if (!v)
		return config_error(err, path, "\"address\" is required (the root side's, e.g. \"10.77.0.1/24\")");
	if (!json_is_string(v))
		return config_error(err, path, "\"address\" must be a string, ADDRESS/PREFIX");
	s = json_string_value(v);
	{
		char a[32];
		const char *slash = strchr(s, '/');
		char *end;
		long pl;

		if (!slash || (size_t)(slash - s) >= sizeof a)
			return config_error(err, path, "\"address\": \"%s\" is not ADDRESS/PREFIX (e.g. \"10.77.0.1/24\")", s);
		memcpy(a, s, (size_t)(slash - s));
		a[slash - s] = 0;
		if (!network_parse_ipv4(a, &n->address))
			return config_error(err, path, "\"address\": \"%s\" is not an IPv4 address", a);
		errno = 0;
		pl = strtol(slash + 1, &end, 10);
		if (errno || end == slash + 1 || *end || pl < 1 || pl > 30)
			return config_error(err, path, "\"address\": the prefix \"%s\" must be a number from 1 to 30", slash + 1);
		n->prefix = (unsigned)pl;
	}
	uint32_t mask = network_mask(n->prefix), net = n->address & mask;
	if (n->address == net || n->address == (net | ~mask))
		return config_error(err, path, "\"address\": %s is the network's or its broadcast address", s);
	if ((n->address >> 24) == 127 || (n->address >> 28) >= 14 || (n->address >> 24) == 0)
		return config_error(err, path, "\"address\": %s is a loopback, multicast or reserved address", s);

	v = json_object_get(obj, "cell_address");
	if (!v)
		return config_error(err, path, "\"cell_address\" is required (the address the cell gets, e.g. \"10.77.0.2\")");
	if (!json_is_string(v) || !network_parse_ipv4(json_string_value(v), &n->cell_address))
		return config_error(err, path, "\"cell_address\": %s%s%s is not an IPv4 address", json_is_string(v) ? "\"" : "",
		                    json_is_string(v) ? json_string_value(v) : "a non-string", json_is_string(v) ? "\"" : "");
	s = json_string_value(v);
	if ((n->cell_address & mask) != net)
		return config_error(err, path, "\"cell_address\": %s is not in the root side's subnet %s", s,
		                    json_string_value(json_object_get(obj, "address")));
	if (n->cell_address == n->address)
		return config_error(err, path, "\"cell_address\": %s is the root side's own address", s);
	if (n->cell_address == net || n->cell_address == (net | ~mask))
		return config_error(err, path, "\"cell_address\": %s is the network's or its broadcast address", s);

	if (n->tap) {
		v = json_object_get(obj, "mac");
		if (v && (!json_is_string(v) || !mac_valid(json_string_value(v))))
			return config_error(err, path, "\"mac\" must be a unicast MAC address such as \"52:54:00:12:34:56\"");
		if (v)
			snprintf(n->mac, sizeof n->mac, "%s", json_string_value(v));
		else
			default_mac(cell, n->mac);
	}

	v = json_object_get(obj, "nat");
	if (v && !json_is_null(v) && !json_is_false(v)) {
		char p[320];
		snprintf(p, sizeof p, "%s.nat", path);
		if (!json_is_object(v) || json_object_size(v) != 1 || !json_object_get(v, "uplink"))
			return config_error(err, p, "must be {\"uplink\": \"IFNAME\"} (or null or false: no NAT)");
		if ((r = parse_ifname(v, "uplink", p, n->nat_uplink, err)) < 0)
			return r;
		if (strcmp(n->nat_uplink, n->bridge) == 0 || strcmp(n->nat_uplink, n->interface) == 0)
			return config_error(err, p, "\"uplink\": \"%s\" is the cell's own link", n->nat_uplink);
	}
	v = json_object_get(obj, "degrade_on_carrier_loss");
	if (v && !json_is_boolean(v))
		return config_error(err, path, "\"degrade_on_carrier_loss\" must be a boolean");
	if (v)
		n->degrade_on_carrier_loss = json_is_true(v);
	*ret = TAKE_PTR(n);
	return 0;
}

NetSpec *network_spec_free(NetSpec *n) {
	free(n);
	return NULL;
}

NetSpec *network_spec_dup(const NetSpec *n) {
	NetSpec *d;

	if (!n)
		return NULL;
	d = malloc(sizeof *d);
	if (d)
		*d = *n;
	return d;
}

json_t *network_spec_to_json(const NetSpec *n) {
	char a[16], c[16], buf[24];
	json_t *o = json_object();

	network_format_ipv4(n->address, a);
	network_format_ipv4(n->cell_address, c);
	snprintf(buf, sizeof buf, "%s/%u", a, n->prefix);
	if (n->tap) {
		json_object_set_new(o, "interface", json_string(n->interface));
		json_object_set_new(o, "mac", json_string(n->mac));
	} else {
		json_t *m = json_object();
		if (n->match_pci[0])
			json_object_set_new(m, "pci", json_string(n->match_pci));
		else
			json_object_set_new(m, "driver", json_string(n->match_driver));
		json_object_set_new(o, "match", m);
	}
	if (n->bridge[0])
		json_object_set_new(o, "bridge", json_string(n->bridge));
	json_object_set_new(o, "address", json_string(buf));
	json_object_set_new(o, "cell_address", json_string(c));
	json_object_set_new(o, "nat", n->nat_uplink[0] ? json_pack("{s:s}", "uplink", n->nat_uplink) : json_null());
	json_object_set_new(o, "degrade_on_carrier_loss", json_boolean(n->degrade_on_carrier_loss));
	return o;
}

static int busy(char *err, const char *path, const char *fmt, const char *a1, const char *a2, const char *a3) {
	config_error(err, path, fmt, a1, a2, a3);
	return -EBUSY;
}

int network_spec_check_pair(const NetSpec *a, const char *a_cell, const NetSpec *b, const char *b_cell,
                            const char *path, char *err) {
	uint32_t common = network_mask(a->prefix < b->prefix ? a->prefix : b->prefix);
	bool same_bridge = a->bridge[0] && strcmp(a->bridge, b->bridge) == 0;
	char sa[24], sb[24], t[16];

	network_format_ipv4(a->address, t);
	snprintf(sa, sizeof sa, "%s/%u", t, a->prefix);
	network_format_ipv4(b->address, t);
	snprintf(sb, sizeof sb, "%s/%u", t, b->prefix);
	if (a->interface[0] && (strcmp(a->interface, b->interface) == 0 || strcmp(a->interface, b->bridge) == 0))
		return busy(err, path, "interface \"%s\" of cell \"%s\" is already a link of cell \"%s\"", a->interface,
		            a_cell, b_cell);
	if (b->interface[0] && strcmp(b->interface, a->bridge) == 0)
		return busy(err, path, "bridge \"%s\" of cell \"%s\" is cell \"%s\"'s tap", a->bridge, a_cell, b_cell);
	if (a->match_pci[0] && strcmp(a->match_pci, b->match_pci) == 0)
		return busy(err, path, "PCI device %s of cell \"%s\" is cell \"%s\"'s interface", a->match_pci, a_cell,
		            b_cell);
	if (a->match_driver[0] && strcmp(a->match_driver, b->match_driver) == 0)
		return busy(err, path, "cells \"%s\" and \"%s\" both match the first interface of driver \"%s\": match by \"pci\"",
		            a_cell, b_cell, a->match_driver);
	if (same_bridge) {
		if (a->address != b->address || a->prefix != b->prefix)
			return busy(err, path, "bridge \"%s\" has address %s in cell \"%s\", another one here", a->bridge, sb,
			            b_cell);
		if (a->cell_address == b->cell_address) {
			network_format_ipv4(a->cell_address, t);
			return busy(err, path, "cell address %s is already cell \"%s\"'s (bridge \"%s\")", t, b_cell, a->bridge);
		}
		return 0;
	}
	if ((a->address & common) == (b->address & common)) {
		char msg[96];
		snprintf(msg, sizeof msg, "%s of cell \"%s\" overlaps", sa, a_cell);
		return busy(err, path, "subnet %s subnet %s of cell \"%s\" on another link", msg, sb, b_cell);
	}
	return 0;
}

int network_kernel_ip_arg(const NetSpec *n, char *buf, size_t size) {
	char c[16], g[16], m[16];
	int k;

	network_format_ipv4(n->cell_address, c);
	network_format_ipv4(n->address, g);
	network_format_ipv4(network_mask(n->prefix), m);
	k = snprintf(buf, size, "ip=%s::%s:%s::eth0:off", c, g, m);
	return k < 0 || (size_t)k >= size ? -ENOBUFS : 0;
}
