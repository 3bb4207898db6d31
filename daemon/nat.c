/* SPDX-License-Identifier: MIT */
#include "nat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <nftables/libnftables.h>

#include "network-spec.h"

static json_t *table_obj(void) {
	return json_pack("{s:s, s:s}", "family", "ip", "name", NAT_TABLE);
}

static json_t *chain(const char *name, const char *type, const char *hook, int prio) {
	return json_pack("{s:{s:{s:s, s:s, s:s, s:s, s:s, s:i, s:s}}}", "add", "chain", "family", "ip", "table", NAT_TABLE,
	                 "name", name, "type", type, "hook", hook, "prio", prio, "policy", "accept");
}

static json_t *match_meta(const char *key, const char *value) {
	return json_pack("{s:{s:s, s:{s:{s:s}}, s:s}}", "match", "op", "==", "left", "meta", "key", key, "right", value);
}

static json_t *rule(const char *chain_name, json_t *expr) {
	return json_pack("{s:{s:{s:s, s:s, s:s, s:o}}}", "add", "rule", "family", "ip", "table", NAT_TABLE, "chain",
	                 chain_name, "expr", expr);
}

static json_t *ruleset(const NatRule *rules, size_t n) {
	json_t *cmds = json_array();

	/* add-then-delete: the delete must not fail on a table that is not
	 * there, and the whole batch is one transaction */
	json_array_append_new(cmds, json_pack("{s:{s:o}}", "add", "table", table_obj()));
	json_array_append_new(cmds, json_pack("{s:{s:o}}", "delete", "table", table_obj()));
	if (n == 0)
		return json_pack("{s:o}", "nftables", cmds);
	json_array_append_new(cmds, json_pack("{s:{s:o}}", "add", "table", table_obj()));
	json_array_append_new(cmds, chain("postrouting", "nat", "postrouting", 100));
	json_array_append_new(cmds, chain("forward", "filter", "forward", 0));
	for (size_t i = 0; i < n; i++) {
		char net[16];
		network_format_ipv4(rules[i].net, net);
		json_array_append_new(
		        cmds, rule("postrouting",
		                   json_pack("[{s:{s:s, s:{s:{s:s, s:s}}, s:{s:{s:s, s:i}}}}, o, {s:n}]", "match", "op", "==",
		                             "left", "payload", "protocol", "ip", "field", "saddr", "right", "prefix", "addr",
		                             net, "len", (int)rules[i].prefix, match_meta("oifname", rules[i].uplink),
		                             "masquerade")));
		json_array_append_new(cmds, rule("forward", json_pack("[o, o, {s:n}]", match_meta("iifname", rules[i].link),
		                                                      match_meta("oifname", rules[i].uplink), "accept")));
		json_array_append_new(
		        cmds, rule("forward", json_pack("[o, o, {s:{s:s, s:{s:{s:s}}, s:[s, s]}}, {s:n}]",
		                                        match_meta("iifname", rules[i].uplink),
		                                        match_meta("oifname", rules[i].link), "match", "op", "in", "left", "ct",
		                                        "key", "state", "right", "established", "related", "accept")));
	}
	return json_pack("{s:o}", "nftables", cmds);
}

static int forwarding_on(void) {
	int fd = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, "1\n", 2) != 2)
		r = -errno;
	close(fd);
	return r;
}

static struct nft_ctx *ctx_new(void) {
	struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);

	if (!ctx)
		return NULL;
	/* JSON in (libnftables 1.0.6 reads JSON input when JSON output is
	 * set) and out, messages into a buffer rather than stderr */
	nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON);
	if (nft_ctx_buffer_output(ctx) < 0 || nft_ctx_buffer_error(ctx) < 0) {
		nft_ctx_free(ctx);
		return NULL;
	}
	return ctx;
}

int nat_apply(const NatRule *rules, size_t n, char *err) {
	struct nft_ctx *ctx;
	json_t *j;
	char *text;
	int r = 0;

	err[0] = 0;
	if (n > 0 && (r = forwarding_on()) < 0) {
		snprintf(err, 256, "cannot turn IPv4 forwarding on: %s", strerror(-r));
		return r;
	}
	j = ruleset(rules, n);
	text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text)
		return -ENOMEM;
	ctx = ctx_new();
	if (!ctx) {
		free(text);
		return -ENOMEM;
	}
	if (nft_run_cmd_from_buffer(ctx, text) != 0) {
		const char *e = nft_ctx_get_error_buffer(ctx);
		snprintf(err, 256, "%s", e && e[0] ? e : "nftables refused the ruleset");
		err[strcspn(err, "\n")] = 0;
		r = -EIO;
	}
	nft_ctx_free(ctx);
	free(text);
	return r;
}

char *nat_list(void) {
	struct nft_ctx *ctx = ctx_new();
	char *out = NULL;

	if (!ctx)
		return NULL;
	if (nft_run_cmd_from_buffer(ctx, "list table ip " NAT_TABLE) == 0)
		out = strdup(nft_ctx_get_output_buffer(ctx));
	nft_ctx_free(ctx);
	return out;
}
