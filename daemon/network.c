/* SPDX-License-Identifier: MIT */
#include "network.h"

#include <errno.h>
#include <linux/if.h>
#include <linux/rtnetlink.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/rtnl.h>
#include <netlink/socket.h>

#include "log.h"
#include "macro.h"
#include "nat.h"
#include "netif.h"

#define DUMP_INTERVAL_USEC (1000 * 1000)
/* How long a jailhouse cell's ivshmem-net interface may take to appear
 * after its start. */
#define ATTACH_TIMEOUT_NS (10ull * 1000 * 1000 * 1000)

struct Network {
	sd_event *event;
	BackendQueue *queue;

	/* the loop's: the monitor and what it learnt */
	struct nl_sock *mon;
	sd_event_source *mon_source, *dump_timer;
	bool dump_wanted; /* a dump could not be sent: try at the next tick */
	NetLinkState links[CONFIG_MAX_CELLS];
	size_t n_links;

	/* the workers': bridges and the NAT table are shared between cells,
	 * so their changes run one at a time */
	pthread_mutex_t lock;
	NatRule nat[CONFIG_MAX_CELLS];
	char nat_cell[CONFIG_MAX_CELLS][CELL_NAME_MAX + 1];
	size_t n_nat;
};

typedef enum NetJobKind {
	NET_JOB_PREPARE,
	NET_JOB_ATTACH,
	NET_JOB_RELEASE,
} NetJobKind;

/* One worker's job: a copy of all it needs, freed by the worker, so that
 * a cell deleted meanwhile leaves nothing dangling. */
typedef struct NetJob {
	Network *net;
	NetJobKind kind;
	char cell[CELL_NAME_MAX + 1];
	NetSpec spec;
} NetJob;

static const char *const operstate_names[] = {
	[IF_OPER_UNKNOWN] = "unknown", [IF_OPER_NOTPRESENT] = "notpresent", [IF_OPER_DOWN] = "down",
	[IF_OPER_LOWERLAYERDOWN] = "lowerlayerdown", [IF_OPER_TESTING] = "testing", [IF_OPER_DORMANT] = "dormant",
	[IF_OPER_UP] = "up",
};

const char *network_operstate_to_string(uint8_t s) {
	return s < ELEMENTSOF(operstate_names) && operstate_names[s] ? operstate_names[s] : "unknown";
}

/* ---- the workers' side ---------------------------------------------- */

/* The cell's NAT rule in the table's set (rule NULL: out of it), and the
 * table rewritten when the set changed. Under net->lock. */
static int nat_update(NetJob *j, struct nl_sock *sk, const NatRule *rule) {
	Network *n = j->net;
	char err[256];
	size_t i;
	int r;

	(void)sk;
	for (i = 0; i < n->n_nat; i++)
		if (strcmp(n->nat_cell[i], j->cell) == 0)
			break;
	if (rule) {
		if (i < n->n_nat && memcmp(&n->nat[i], rule, sizeof *rule) == 0)
			return 0; /* a restart: the table already says so */
		if (i == n->n_nat) {
			if (n->n_nat == CONFIG_MAX_CELLS)
				return -ENOSPC;
			snprintf(n->nat_cell[n->n_nat++], sizeof n->nat_cell[0], "%s", j->cell);
		}
		n->nat[i] = *rule;
	} else {
		if (i == n->n_nat)
			return 0;
		n->n_nat--;
		n->nat[i] = n->nat[n->n_nat];
		memcpy(n->nat_cell[i], n->nat_cell[n->n_nat], sizeof n->nat_cell[0]);
	}
	r = nat_apply(n->nat, n->n_nat, err);
	if (r < 0)
		log_cell_errno(LOG_ERR, r, j->cell, NULL, "Cell \"%s\": NAT table \"ip " NAT_TABLE "\" not written: %s",
		               j->cell, err[0] ? err : strerror(-r));
	return r;
}

static int nat_for(NetJob *j, struct nl_sock *sk, const char *link) {
	NatRule rule = { .prefix = j->spec.prefix, .net = j->spec.address & network_mask(j->spec.prefix) };

	if (!j->spec.nat_uplink[0])
		return nat_update(j, sk, NULL);
	snprintf(rule.link, sizeof rule.link, "%s", link);
	snprintf(rule.uplink, sizeof rule.uplink, "%s", j->spec.nat_uplink);
	return nat_update(j, sk, &rule);
}

static int bridge_for(NetJob *j, struct nl_sock *sk, int *ret_ifindex) {
	int r = netif_bridge_ensure(sk, j->spec.bridge, j->spec.address, j->spec.prefix, ret_ifindex);

	if (r == -EBUSY)
		log_cell(LOG_ERR, j->cell, NULL,
		         "Cell \"%s\": bridge \"%s\" exists and is not warden's (no ifalias \"" NETIF_ALIAS_BRIDGE
		         "\"): refused, it is left as it is",
		         j->cell, j->spec.bridge);
	else if (r < 0)
		log_cell_errno(LOG_ERR, r, j->cell, NULL, "Cell \"%s\": bridge \"%s\" not set up: %m", j->cell,
		               j->spec.bridge);
	return r;
}

static int job_prepare(NetJob *j, struct nl_sock *sk) {
	int br, r;

	if ((r = bridge_for(j, sk, &br)) < 0)
		return r;
	r = netif_tap_ensure(sk, j->spec.interface, j->cell, br);
	if (r == -EBUSY)
		log_cell(LOG_ERR, j->cell, NULL,
		         "Cell \"%s\": interface \"%s\" exists and is not this cell's (no ifalias \"" NETIF_ALIAS_CELL
		         "%s\"): refused, it is left as it is",
		         j->cell, j->spec.interface, j->cell);
	else if (r < 0)
		log_cell_errno(LOG_ERR, r, j->cell, NULL, "Cell \"%s\": tap \"%s\" not set up: %m", j->cell,
		               j->spec.interface);
	if (r < 0)
		return r;
	return nat_for(j, sk, j->spec.bridge);
}

static int job_attach(NetJob *j, struct nl_sock *sk) {
	struct timespec ts;
	char name[IFNAMSIZ];
	uint64_t deadline;
	int br = 0, r;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	deadline = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + ATTACH_TIMEOUT_NS;
	if (j->spec.bridge[0] && (r = bridge_for(j, sk, &br)) < 0)
		return r;
	/* Claimed before a daemon restart: the marker says which it is. */
	r = netif_find_cell(sk, j->cell, name);
	while (r == -ENOENT) {
		r = netif_find(sk, j->spec.match_pci[0] ? j->spec.match_pci : NULL,
		               j->spec.match_driver[0] ? j->spec.match_driver : NULL, j->cell, name);
		if (r != -ENOENT)
			break;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec >= deadline)
			break;
		/* a worker, not the loop: the device is the driver's to make */
		pthread_mutex_unlock(&j->net->lock);
		nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL);
		pthread_mutex_lock(&j->net->lock);
	}
	if (r == -ENOENT) {
		log_cell(LOG_ERR, j->cell, NULL, "Cell \"%s\": no interface with %s \"%s\" appeared within %llu s", j->cell,
		         j->spec.match_pci[0] ? "PCI address" : "driver",
		         j->spec.match_pci[0] ? j->spec.match_pci : j->spec.match_driver,
		         (unsigned long long)(ATTACH_TIMEOUT_NS / 1000000000ull));
		return r;
	}
	if (r >= 0)
		r = netif_claim(sk, name, j->cell, br, j->spec.address, j->spec.prefix);
	if (r < 0) {
		log_cell_errno(LOG_ERR, r, j->cell, NULL, "Cell \"%s\": interface not set up: %m", j->cell);
		return r;
	}
	log_cell(LOG_INFO, j->cell, NULL, "Cell \"%s\": root-side interface \"%s\"%s%s", j->cell, name,
	         br ? " on bridge " : "", br ? j->spec.bridge : "");
	return nat_for(j, sk, br ? j->spec.bridge : name);
}

static int job_release(NetJob *j, struct nl_sock *sk) {
	int r, k;

	if (j->spec.tap)
		r = netif_tap_delete(sk, j->spec.interface, j->cell);
	else
		r = netif_unclaim(sk, j->cell, j->spec.address, j->spec.prefix);
	if (r < 0)
		log_cell_errno(LOG_WARNING, r, j->cell, NULL, "Cell \"%s\": its interface not released: %m", j->cell);
	if (j->spec.bridge[0]) {
		k = netif_bridge_release(sk, j->spec.bridge);
		if (k < 0 && k != -ENOTEMPTY)
			log_cell_errno(LOG_WARNING, k, j->cell, NULL, "Cell \"%s\": bridge \"%s\" not removed: %m", j->cell,
			               j->spec.bridge);
	}
	k = nat_update(j, sk, NULL);
	return r < 0 ? r : k;
}

static int run_job(void *arg) {
	NetJob *j = arg;
	struct nl_sock *sk = NULL;
	int r;

	pthread_mutex_lock(&j->net->lock);
	r = netif_open(&sk);
	if (r < 0)
		log_cell_errno(LOG_ERR, r, j->cell, NULL, "Cell \"%s\": no netlink socket: %m", j->cell);
	else if (j->kind == NET_JOB_PREPARE)
		r = job_prepare(j, sk);
	else if (j->kind == NET_JOB_ATTACH)
		r = job_attach(j, sk);
	else
		r = job_release(j, sk);
	netif_close(sk);
	pthread_mutex_unlock(&j->net->lock);
	free(j);
	return r;
}

static int submit(Network *n, NetJobKind kind, const CellSpec *spec, BackendDoneFn done, void *userdata,
                  BackendRequest **ret) {
	NetJob *j;
	int r;

	if (!n)
		return -EOPNOTSUPP;
	if (!spec->network)
		return -ENODATA;
	j = calloc(1, sizeof *j);
	if (!j)
		return -ENOMEM;
	j->net = n;
	j->kind = kind;
	snprintf(j->cell, sizeof j->cell, "%s", spec->name);
	j->spec = *spec->network;
	/* the cell's key: ordered with its boots and destroys */
	r = backend_call_async(n->queue, spec->name, run_job, j, done, userdata, ret);
	if (r < 0) {
		free(j);
		return r;
	}
	sd_event_source_set_enabled(n->dump_timer, SD_EVENT_ON);
	return 0;
}

int network_prepare_async(Network *n, const CellSpec *spec, BackendDoneFn done, void *userdata, BackendRequest **ret) {
	return submit(n, NET_JOB_PREPARE, spec, done, userdata, ret);
}

int network_attach_async(Network *n, const CellSpec *spec) {
	return submit(n, NET_JOB_ATTACH, spec, NULL, NULL, NULL);
}

int network_release_async(Network *n, const CellSpec *spec) {
	return submit(n, NET_JOB_RELEASE, spec, NULL, NULL, NULL);
}

/* ---- the loop's side: the monitor -------------------------------------- */

static NetLinkState *link_by_cell(Network *n, const char *cell, bool create) {
	for (size_t i = 0; i < n->n_links; i++)
		if (strcmp(n->links[i].cell, cell) == 0)
			return &n->links[i];
	if (!create || n->n_links == CONFIG_MAX_CELLS)
		return NULL;
	NetLinkState *s = &n->links[n->n_links++];
	*s = (NetLinkState){ 0 };
	snprintf(s->cell, sizeof s->cell, "%s", cell);
	return s;
}

static void link_update(Network *n, struct rtnl_link *l, bool deleted) {
	const char *alias = rtnl_link_get_ifalias(l);
	int ifindex = rtnl_link_get_ifindex(l);
	size_t plen = strlen(NETIF_ALIAS_CELL);
	NetLinkState *s = NULL;

	if (alias && strncmp(alias, NETIF_ALIAS_CELL, plen) == 0 && alias[plen])
		s = link_by_cell(n, alias + plen, !deleted);
	/* gone, or no longer marked (released): the one we knew by index */
	for (size_t i = 0; !s && i < n->n_links; i++)
		if (n->links[i].present && n->links[i].ifindex == ifindex) {
			n->links[i].present = false;
			return;
		}
	if (!s)
		return;
	if (deleted) {
		if (s->ifindex == ifindex)
			s->present = false;
		return;
	}
	unsigned flags = rtnl_link_get_flags(l);
	snprintf(s->ifname, sizeof s->ifname, "%s", rtnl_link_get_name(l) ? rtnl_link_get_name(l) : "");
	s->ifindex = ifindex;
	s->present = true;
	s->up = flags & IFF_UP;
	s->carrier = flags & IFF_LOWER_UP;
	s->operstate = rtnl_link_get_operstate(l);
	/* a change notification carries the counters too */
	s->rx_bytes = rtnl_link_get_stat(l, RTNL_LINK_RX_BYTES);
	s->rx_packets = rtnl_link_get_stat(l, RTNL_LINK_RX_PACKETS);
	s->rx_errors = rtnl_link_get_stat(l, RTNL_LINK_RX_ERRORS);
	s->rx_dropped = rtnl_link_get_stat(l, RTNL_LINK_RX_DROPPED);
	s->tx_bytes = rtnl_link_get_stat(l, RTNL_LINK_TX_BYTES);
	s->tx_packets = rtnl_link_get_stat(l, RTNL_LINK_TX_PACKETS);
	s->tx_errors = rtnl_link_get_stat(l, RTNL_LINK_TX_ERRORS);
	s->tx_dropped = rtnl_link_get_stat(l, RTNL_LINK_TX_DROPPED);
}

typedef struct ParseCtx {
	Network *n;
	bool deleted;
} ParseCtx;

static void on_object(struct nl_object *o, void *arg) {
	ParseCtx *p = arg;
	link_update(p->n, (struct rtnl_link *)o, p->deleted);
}

static int on_valid(struct nl_msg *msg, void *arg) {
	struct nlmsghdr *h = nlmsg_hdr(msg);
	ParseCtx p = { .n = arg, .deleted = h->nlmsg_type == RTM_DELLINK };
	const struct ifinfomsg *ifi;

	if (h->nlmsg_type != RTM_NEWLINK && h->nlmsg_type != RTM_DELLINK)
		return NL_OK;
	/* The bridge's own port notifications (AF_BRIDGE) share the group,
	 * and an RTM_DELLINK of those means "no longer forwarding", not
	 * "gone": only the generic link messages count. */
	if (!nlmsg_valid_hdr(h, sizeof *ifi))
		return NL_OK;
	ifi = nlmsg_data(h);
	if (ifi->ifi_family != AF_UNSPEC)
		return NL_OK;
	(void)nl_msg_parse(msg, on_object, &p);
	return NL_OK;
}

static void dump_request(Network *n) {
	/* A send on a non-blocking socket: the replies come to on_monitor().
	 * -EBUSY while the previous dump is still being read. */
	n->dump_wanted = nl_rtgen_request(n->mon, RTM_GETLINK, AF_UNSPEC, NLM_F_DUMP) < 0;
}

static int on_monitor(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	Network *n = userdata;

	(void)s;
	(void)fd;
	(void)revents;
	/* bounded: a flood of link changes must not starve the cells */
	for (int i = 0; i < 64; i++) {
		int r = nl_recvmsgs_report(n->mon, nl_socket_get_cb(n->mon));
		if (r == 0 || r == -NLE_AGAIN)
			break;
		if (r == -NLE_NOMEM) {
			/* ENOBUFS: notifications were lost; a dump catches up */
			n->dump_wanted = true;
			break;
		}
		if (r < 0)
			break;
	}
	return 0;
}

static int on_dump_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	Network *n = userdata;

	dump_request(n);
	sd_event_source_set_time(s, usec + DUMP_INTERVAL_USEC);
	return 0;
}

int network_new(sd_event *event, BackendQueue *queue, Network **ret) {
	Network *n = calloc(1, sizeof *n);
	uint64_t now;
	int r;

	if (!n)
		return -ENOMEM;
	n->event = event;
	n->queue = queue;
	pthread_mutex_init(&n->lock, NULL);
	n->mon = nl_socket_alloc();
	if (!n->mon) {
		network_free(n);
		return -ENOMEM;
	}
	nl_socket_disable_seq_check(n->mon);
	nl_socket_disable_auto_ack(n->mon);
	nl_socket_modify_cb(n->mon, NL_CB_VALID, NL_CB_CUSTOM, on_valid, n);
	r = nl_connect(n->mon, NETLINK_ROUTE);
	if (r >= 0)
		r = nl_socket_add_membership(n->mon, RTNLGRP_LINK);
	if (r >= 0)
		r = nl_socket_set_nonblocking(n->mon);
	if (r >= 0)
		r = nl_socket_set_buffer_size(n->mon, 1 << 20, 0);
	if (r < 0) {
		network_free(n);
		return -EIO;
	}
	r = sd_event_add_io(event, &n->mon_source, nl_socket_get_fd(n->mon), EPOLLIN, on_monitor, n);
	if (r >= 0) {
		sd_event_now(event, CLOCK_MONOTONIC, &now);
		r = sd_event_add_time(event, &n->dump_timer, CLOCK_MONOTONIC, now, 100 * 1000, on_dump_timer, n);
	}
	if (r < 0) {
		network_free(n);
		return r;
	}
	/* Only once a cell has a network (submit() turns it on). */
	sd_event_source_set_enabled(n->dump_timer, SD_EVENT_OFF);
	*ret = n;
	return 0;
}

Network *network_free(Network *n) {
	if (!n)
		return NULL;
	sd_event_source_disable_unref(n->mon_source);
	sd_event_source_disable_unref(n->dump_timer);
	if (n->mon)
		nl_socket_free(n->mon);
	pthread_mutex_destroy(&n->lock);
	free(n);
	return NULL;
}

bool network_cell_problem(Network *n, const char *cell, char *buf, size_t size) {
	const NetLinkState *s = n ? link_by_cell(n, cell, false) : NULL;

	if (!s)
		return false;
	if (!s->present)
		snprintf(buf, size, "network interface %s is gone", s->ifname);
	else if (!s->up)
		snprintf(buf, size, "network link %s is down", s->ifname);
	else if (!s->carrier)
		snprintf(buf, size, "carrier lost on %s (operstate %s)", s->ifname, network_operstate_to_string(s->operstate));
	else
		return false;
	return true;
}

json_t *network_cell_json(Network *n, const CellSpec *spec) {
	const NetLinkState *s = n ? link_by_cell(n, spec->name, false) : NULL;
	json_t *o = network_spec_to_json(spec->network);

	if (!spec->network->tap)
		json_object_set_new(o, "interface", s && s->ifname[0] ? json_string(s->ifname) : json_null());
	json_object_set_new(o, "present", json_boolean(s && s->present));
	json_object_set_new(o, "up", json_boolean(s && s->present && s->up));
	json_object_set_new(o, "carrier", json_boolean(s && s->present && s->carrier));
	json_object_set_new(o, "operstate",
	                    json_string(s && s->present ? network_operstate_to_string(s->operstate) : "notpresent"));
	json_object_set_new(o, "rx",
	                    json_pack("{s:I, s:I, s:I, s:I}", "bytes", (json_int_t)(s ? s->rx_bytes : 0), "packets",
	                              (json_int_t)(s ? s->rx_packets : 0), "errors", (json_int_t)(s ? s->rx_errors : 0),
	                              "dropped", (json_int_t)(s ? s->rx_dropped : 0)));
	json_object_set_new(o, "tx",
	                    json_pack("{s:I, s:I, s:I, s:I}", "bytes", (json_int_t)(s ? s->tx_bytes : 0), "packets",
	                              (json_int_t)(s ? s->tx_packets : 0), "errors", (json_int_t)(s ? s->tx_errors : 0),
	                              "dropped", (json_int_t)(s ? s->tx_dropped : 0)));
	return o;
}

size_t network_snapshot(Network *n, NetLinkState *ret, size_t max) {
	size_t k = 0;

	for (size_t i = 0; n && i < n->n_links && k < max; i++)
		if (n->links[i].ifname[0])
			ret[k++] = n->links[i];
	return k;
}

void network_metrics_format(const NetLinkState *s, size_t n, FILE *f) {
	static const struct {
		const char *name, *help;
		size_t off;
	} counters[] = {
		{ "warden_cell_network_receive_bytes_total", "Bytes the root side of the cell's link received.",
		  offsetof(NetLinkState, rx_bytes) },
		{ "warden_cell_network_receive_packets_total", "Packets the root side of the cell's link received.",
		  offsetof(NetLinkState, rx_packets) },
		{ "warden_cell_network_receive_errors_total", "Receive errors on the root side of the cell's link.",
		  offsetof(NetLinkState, rx_errors) },
		{ "warden_cell_network_receive_dropped_total", "Received packets dropped on the root side.",
		  offsetof(NetLinkState, rx_dropped) },
		{ "warden_cell_network_transmit_bytes_total", "Bytes the root side of the cell's link sent.",
		  offsetof(NetLinkState, tx_bytes) },
		{ "warden_cell_network_transmit_packets_total", "Packets the root side of the cell's link sent.",
		  offsetof(NetLinkState, tx_packets) },
		{ "warden_cell_network_transmit_errors_total", "Transmit errors on the root side of the cell's link.",
		  offsetof(NetLinkState, tx_errors) },
		{ "warden_cell_network_transmit_dropped_total", "Packets dropped before sending on the root side.",
		  offsetof(NetLinkState, tx_dropped) },
	};

	if (n == 0)
		return;
	fprintf(f, "# HELP warden_cell_network_carrier 1 if the root side of the cell's link is up with carrier.\n"
	           "# TYPE warden_cell_network_carrier gauge\n");
	for (size_t i = 0; i < n; i++)
		fprintf(f, "warden_cell_network_carrier{cell=\"%s\",interface=\"%s\"} %d\n", s[i].cell, s[i].ifname,
		        s[i].present && s[i].up && s[i].carrier);
	for (size_t c = 0; c < ELEMENTSOF(counters); c++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", counters[c].name, counters[c].help, counters[c].name);
		for (size_t i = 0; i < n; i++)
			fprintf(f, "%s{cell=\"%s\",interface=\"%s\"} %llu\n", counters[c].name, s[i].cell, s[i].ifname,
			        (unsigned long long)*(const uint64_t *)((const char *)&s[i] + counters[c].off));
	}
}
