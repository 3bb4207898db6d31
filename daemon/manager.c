/* SPDX-License-Identifier: MIT */
#include "manager.h"

#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "api.h"
#include "auth.h"
#include "events.h"
#include "http.h"
#include "idempotency.h"
#include "log.h"
#include "macro.h"
#include "network.h"
#include "operation.h"
#include "persist.h"
#include "store.h"

#define DEFAULT_STATE_DIR "/var/lib/warden"
#define DEFAULT_RUNTIME_DIR "/run/warden"
#define DEFAULT_KVM_RUNNER "/usr/libexec/warden/warden-kvm"
#define DEFAULT_QEMU_BINARY "/usr/bin/qemu-system-x86_64"
#define DEFAULT_JH_HELPER "/usr/libexec/warden/warden-jailhouse"

struct Manager {
	sd_event *event;
	Config *config;
	char *state_dir;
	char *runtime_dir;
	Backend *kvm;
	Backend *qemu; /* NULL when QEMU is not installed */
	Backend *jailhouse; /* NULL unless backends.jailhouse is configured */
	Backend *container; /* NULL when the OCI runtime is not installed */
	bool container_enabled;
	int container_error;
	bool kvm_enabled, qemu_enabled, jailhouse_enabled; /* enabled, or an enable is queued */
	int kvm_error, qemu_error, jailhouse_error;        /* of the last enable: 0 or -errno */
	BackendQueue *queue; /* runs the blocking backend calls off the loop */
	sd_event_source *queue_source;
	Network *network; /* cell networks' links and monitor, or NULL */
	Http *http;
	Api *api;
	Tokens *tokens;
	Operations *operations;
	Events *events;
	Cell *cells[CONFIG_MAX_CELLS];
	size_t n_cells;
	bool reseed;
	bool hypervisor_enabled;
	sd_event_source *prune_timer; /* expired Idempotency-Key records */

	uint64_t next_event_id;
	uint64_t started_mono_ns;
	uint64_t watchdog_usec;
	sd_event_source *watchdog_timer;
	sd_event_source *lag_timer;
	sd_event_source *wheel_timer; /* the cells' routine samples (cell.h) */
	uint64_t wheel_at_ns;         /* when it is armed for, 0: disarmed */
	uint64_t lag_due_ns;
	LoopLag lag;
	bool ready;        /* READY=1 sent: the autostarted cells settled */
	bool started;      /* manager_startup() is done */
};

/* CLI beats config beats systemd's *_DIRECTORY beats the default. */
static char *pick_dir(const char *cli, const char *cfg, const char *env, const char *def) {
	const char *e = env ? getenv(env) : NULL;
	if (e && strchr(e, ':'))
		e = NULL; /* several directories: not ours to choose */
	return strdup(cli ? cli : cfg ? cfg : e ? e : def);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
	Manager *m = userdata;
	(void)s;
	log_cell(LOG_INFO, NULL, MSGID_DAEMON_STOPPING, "Received %s, stopping; cells keep running",
	         strsignal((int)si->ssi_signo));
	sd_notify(false, "STOPPING=1\nSTATUS=Stopping");
	return sd_event_exit(m->event, 0);
}

static int on_watchdog(sd_event_source *s, uint64_t usec, void *userdata) {
	Manager *m = userdata;
	sd_notify(false, "WATCHDOG=1");
	sd_event_source_set_time(s, usec + m->watchdog_usec / 2);
	return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

const double loop_lag_bounds[LOOP_LAG_BUCKETS] = { 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
	                                           0.0025,  0.005,    0.01,    0.025,  0.05,    0.1,    1.0 };
const char *const loop_lag_le[LOOP_LAG_BUCKETS] = { "1e-05", "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005", "0.001",
	                                            "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "1" };

/* 20 probes a second: enough to catch the stalls a benchmark makes over
 * its run, cheap enough for an idle daemon. On a grid of CLOCK_MONOTONIC,
 * like the cells' routine samples (cell-machine.c), so that most probes
 * share their wake-up with the sample wheel's. */
#define LAG_PERIOD_NS (50 * NSEC_PER_MSEC)

static uint64_t lag_next(uint64_t now) {
	return (now / LAG_PERIOD_NS + 1) * LAG_PERIOD_NS;
}

static int on_wheel(sd_event_source *s, uint64_t usec, void *userdata) {
	Manager *m = userdata;
	uint64_t now = now_ns(CLOCK_MONOTONIC), next = 0;

	(void)s;
	(void)usec;
	m->wheel_at_ns = 0;
	/* One pass: batches of 16 per loop iteration were measured too, and
	 * bought nothing at 64 cells but a third more CPU. */
	for (size_t i = 0; i < m->n_cells; i++) {
		uint64_t due;
		/* A cell sampled now is due again at its next slot; the
		 * others still wait for theirs. */
		cell_wheel_run(m->cells[i], now);
		due = cell_wheel_due(m->cells[i]);
		if (due && (!next || due < next))
			next = due;
	}
	if (next)
		manager_wheel_arm(m, next);
	return 0;
}

void manager_wheel_arm(Manager *m, uint64_t at_ns) {
	if (m->wheel_at_ns && m->wheel_at_ns <= at_ns)
		return;
	if (!m->wheel_timer) {
		int r = sd_event_add_time(m->event, &m->wheel_timer, CLOCK_MONOTONIC, UINT64_MAX,
		                          CELL_WHEEL_ACCURACY_USEC, on_wheel, m);
		if (r < 0) {
			log_error_errno(r, "Failed to make the sample wheel's timer: %m");
			return;
		}
		sd_event_source_set_priority(m->wheel_timer, CELL_PRIORITY_TIMERS);
	}
	m->wheel_at_ns = at_ns;
	sd_event_source_set_time(m->wheel_timer, at_ns / NSEC_PER_USEC);
	sd_event_source_set_enabled(m->wheel_timer, SD_EVENT_ONESHOT);
}

static int on_lag_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	Manager *m = userdata;
	uint64_t now = now_ns(CLOCK_MONOTONIC);
	uint64_t late = now > m->lag_due_ns ? now - m->lag_due_ns : 0;
	double sec = (double)late / 1e9;

	(void)usec;
	for (int i = 0; i < LOOP_LAG_BUCKETS; i++)
		if (sec <= loop_lag_bounds[i]) {
			m->lag.bucket[i]++;
			break;
		}
	m->lag.count++;
	m->lag.sum_ns += late;
	if (late > m->lag.max_ns)
		m->lag.max_ns = late;
	m->lag_due_ns = lag_next(now);
	sd_event_source_set_time(s, m->lag_due_ns / NSEC_PER_USEC);
	return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static int on_queue(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	Manager *m = userdata;
	(void)s;
	(void)fd;
	(void)revents;
	backend_queue_dispatch(m->queue);
	return 0;
}

/* The path a unix socket is bound to; false for any other socket. */
static bool socket_unix_path(int fd, char *buf, size_t n) {
	struct sockaddr_storage ss = { 0 }; /* longer than sockaddr_un: a NUL follows */
	const struct sockaddr_un *sa = (const struct sockaddr_un *)&ss;
	socklen_t len = sizeof(struct sockaddr_un);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 || ss.ss_family != AF_UNIX ||
	    len <= offsetof(struct sockaddr_un, sun_path) || sa->sun_path[0] == 0)
		return false;
	return (size_t)snprintf(buf, n, "%s", sa->sun_path) < n;
}

static bool same_file_path(const char *a, const char *b) {
	_cleanup_free_ char *ra = NULL, *rb = NULL;

	if (strcmp(a, b) == 0)
		return true;
	ra = realpath(a, NULL);
	rb = realpath(b, NULL);
	return ra && rb && strcmp(ra, rb) == 0;
}

/* Listeners: every socket systemd passed, and every configured one (the
 * command line's replace the config's). The shipped wardend.service
 * requires wardend.socket, so systemd always passes the unix socket: had
 * that replaced the configuration, the TCP API and /metrics would never
 * exist under the shipped units. A configured unix listener on the path of
 * a passed socket is that socket, and is not bound again (binding would
 * unlink systemd's socket first). */
static int manager_listen(Manager *m, const ManagerOptions *o) {
	const char *const *list = o->n_listen ? o->listen : (const char *const *)m->config->listen;
	size_t nl = o->n_listen ? o->n_listen : m->config->n_listen;
	int n = sd_listen_fds(true), r;

	for (int i = 0; i < n; i++) {
		r = http_listen_fd(m->http, SD_LISTEN_FDS_START + i);
		if (r < 0)
			return log_error_errno(r, "Failed to use socket passed by systemd: %m");
	}
	for (size_t i = 0; i < nl; i++) {
		bool passed = false;

		if (strncmp(list[i], "unix:", 5) == 0) {
			_cleanup_free_ char *dir = strdup(list[i] + 5);
			char *slash = dir ? strrchr(dir, '/') : NULL;
			char path[sizeof ((struct sockaddr_un *)NULL)->sun_path + 1];

			for (int k = 0; k < n && !passed; k++)
				passed = socket_unix_path(SD_LISTEN_FDS_START + k, path, sizeof path) &&
				         same_file_path(path, list[i] + 5);
			if (passed) {
				log_info("Listening on %s as the socket systemd passed", list[i]);
				continue;
			}
			if (slash && slash != dir) {
				*slash = 0;
				(void)mkdir_p(dir, 0755);
			}
		}
		r = http_listen(m->http, list[i]);
		if (r < 0)
			return log_error_errno(r, "Failed to listen on %s: %m", list[i]);
	}
	return 0;
}

int manager_new(const ManagerOptions *o, Manager **ret) {
	_cleanup_(manager_freep) Manager *m = NULL;
	char err[CONFIG_ERROR_MAX];
	ConfigEnv env;
	sigset_t mask;
	int r;

	m = calloc(1, sizeof *m);
	if (!m)
		return log_error_errno(ENOMEM, "Out of memory");
	m->started_mono_ns = now_ns(CLOCK_MONOTONIC);

	config_env_host(&env);
	if (o->config_path) {
		r = config_load_file(o->config_path, &env, &m->config, err);
		if (r < 0)
			return log_error_errno(r, "Invalid configuration: %s", err);
	} else {
		json_t *empty = json_object();
		r = config_parse(empty, &env, &m->config, err);
		json_decref(empty);
		if (r < 0)
			return log_error_errno(r, "Invalid configuration: %s", err);
	}
	if (m->config->cpu_sharing)
		log_warning("cpu_sharing is ON: cells may share CPUs with each other and the root set. "
		            "This breaks static partitioning and is meant for development hosts only.");

	/* wardend belongs to the root set: keep it off the cells' CPUs so a
	 * busy vCPU never delays the daemon noticing its failure. */
	if (m->config->n_root_cpus > 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		for (size_t i = 0; i < m->config->n_root_cpus; i++)
			CPU_SET(m->config->root_cpus[i], &set);
		if (sched_setaffinity(0, sizeof set, &set) < 0)
			log_warning_errno(errno, "Failed to pin wardend to the root CPUs: %m");
	}

	m->state_dir = pick_dir(o->state_dir, m->config->state_dir, "STATE_DIRECTORY", DEFAULT_STATE_DIR);
	m->runtime_dir = pick_dir(o->runtime_dir, m->config->runtime_dir, "RUNTIME_DIRECTORY", DEFAULT_RUNTIME_DIR);
	if (!m->state_dir || !m->runtime_dir)
		return log_error_errno(ENOMEM, "Out of memory");
	if ((r = mkdir_p(m->state_dir, 0755)) < 0)
		return log_error_errno(r, "Failed to create state directory %s: %m", m->state_dir);
	if ((r = mkdir_p(m->runtime_dir, 0755)) < 0)
		return log_error_errno(r, "Failed to create runtime directory %s: %m", m->runtime_dir);

	r = sd_event_new(&m->event);
	if (r < 0)
		return log_error_errno(r, "Failed to create event loop: %m");

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	/* A dead HTTP client must not kill the daemon. */
	signal(SIGPIPE, SIG_IGN);
	if ((r = sd_event_add_signal(m->event, NULL, SIGTERM, on_signal, m)) < 0 ||
	    (r = sd_event_add_signal(m->event, NULL, SIGINT, on_signal, m)) < 0)
		return log_error_errno(r, "Failed to watch signals: %m");

	r = api_new(&m->api);
	if (r < 0)
		return log_error_errno(r, "Failed to set up the API: %m");
	HttpLimits limits = {
		.max_body_bytes = m->config->max_body_bytes,
		.max_header_bytes = m->config->max_header_bytes,
		.max_connections = m->config->max_connections,
	};
	HttpSocketOptions so = { .unix_mode = m->config->api.socket_mode, .unix_gid = -1 };
	_cleanup_free_ char *cert = NULL, *key = NULL;
	if (m->config->api.socket_group) {
		struct group *g = getgrnam(m->config->api.socket_group);
		if (!g)
			return log_error_errno(ENOENT, "api.socket_group: no group named \"%s\"", m->config->api.socket_group);
		so.unix_gid = (long)g->gr_gid;
	}
	if (m->config->api.tls_cert) {
		if ((r = read_text_file(m->config->api.tls_cert, &cert)) < 0)
			return log_error_errno(r, "api.tls.cert: cannot read %s: %m", m->config->api.tls_cert);
		if ((r = read_text_file(m->config->api.tls_key, &key)) < 0)
			return log_error_errno(r, "api.tls.key: cannot read %s: %m", m->config->api.tls_key);
		so.tls_cert = cert;
		so.tls_key = key;
	}
	r = http_new(m, &limits, &so, &m->http);
	if (key)
		explicit_bzero(key, strlen(key));
	if (r < 0)
		return log_error_errno(r, "Failed to set up HTTP: %m");
	if (m->config->api.tokens_file) {
		char terr[512];
		r = tokens_load(m->config->api.tokens_file, &m->tokens, terr, sizeof terr);
		if (r < 0)
			return log_error_errno(r, "api.tokens_file: %s", terr);
		log_info("Loaded %zu API tokens from %s", tokens_count(m->tokens), m->config->api.tokens_file);
	}
	http_set_auth(m->http, tokens_check, m->tokens);
	if ((r = events_new(m, &m->events)) < 0 || (r = operations_new(m, &m->operations)) < 0)
		return log_error_errno(r, "Failed to set up operations and events: %m");
	/* Four workers: a slow boot (QEMU, a Jailhouse CELL_LOAD) holds one,
	 * the other cells' requests keep moving. */
	r = backend_queue_new(4, &m->queue);
	if (r < 0)
		return log_error_errno(r, "Failed to start the backend workers: %m");
	r = sd_event_add_io(m->event, &m->queue_source, backend_queue_fd(m->queue), EPOLLIN, on_queue, m);
	if (r < 0)
		return log_error_errno(r, "Failed to watch the backend workers: %m");
	sd_event_source_set_priority(m->queue_source, SD_EVENT_PRIORITY_IMPORTANT);
	/* Without it a cell with a network cannot start; the others can. */
	r = network_new(m->event, m->queue, &m->network);
	if (r < 0)
		log_warning_errno(r, "Failed to open the netlink link monitor, cell networks are off: %m");
	m->reseed = o->reseed;

	if ((r = manager_listen(m, o)) < 0)
		return r;
	if (http_n_listeners(m->http) == 0)
		log_warning("No listeners configured: the API is unreachable (use --listen)");
	for (size_t i = 0; i < http_n_listeners(m->http); i++)
		if (strncmp(http_listener_name(m->http, i), "unix:", 5) != 0 && tokens_count(m->tokens) == 0)
			log_warning("%s needs bearer tokens and api.tokens_file names none: it will answer 401%s",
			            http_listener_name(m->http, i),
			            m->config->api.anonymous_metrics ? " (but to /health and /metrics)" : "");

	*ret = TAKE_PTR(m);
	return 0;
}

Manager *manager_free(Manager *m) {
	if (!m)
		return NULL;
	/* Cells keep running: the next wardend adopts them. */
	for (size_t i = 0; i < m->n_cells; i++)
		cell_free(m->cells[i]);
	/* Before the backends: requests in flight still use them. */
	sd_event_source_disable_unref(m->queue_source);
	backend_queue_free(m->queue);
	/* After the queue: its workers ran network jobs to their end. */
	network_free(m->network);
	http_free(m->http);
	api_free(m->api);
	operations_free(m->operations);
	events_free(m->events);
	tokens_free(m->tokens);
	sd_event_source_disable_unref(m->prune_timer);
	backend_free(m->kvm);
	backend_free(m->qemu);
	backend_free(m->container);
	backend_free(m->jailhouse);
	sd_event_source_disable_unref(m->watchdog_timer);
	sd_event_source_disable_unref(m->lag_timer);
	sd_event_source_disable_unref(m->wheel_timer);
	sd_event_unref(m->event);
	/* cells own their specs; the config keeps the rest */
	if (m->config)
		m->config->n_cells = 0;
	config_free(m->config);
	free(m->state_dir);
	free(m->runtime_dir);
	free(m);
	return NULL;
}

sd_event *manager_event(Manager *m) {
	return m->event;
}

const Config *manager_config(const Manager *m) {
	return m->config;
}

const char *manager_state_dir(const Manager *m) {
	return m->state_dir;
}

const char *manager_runtime_dir(const Manager *m) {
	return m->runtime_dir;
}

Http *manager_http(Manager *m) {
	return m->http;
}

Operations *manager_operations(Manager *m) {
	return m->operations;
}

Events *manager_events(Manager *m) {
	return m->events;
}

Api *manager_api(Manager *m) {
	return m->api;
}

uint64_t manager_started_mono_ns(const Manager *m) {
	return m->started_mono_ns;
}

const LoopLag *manager_loop_lag(const Manager *m) {
	return &m->lag;
}

bool manager_hypervisor_enabled(const Manager *m) {
	return m->hypervisor_enabled;
}

bool manager_backend_available(Manager *m, const char *kind) {
	if (strcmp(kind, "kvm") == 0)
		return m->kvm != NULL && m->kvm_error >= 0;
	if (strcmp(kind, "qemu") == 0)
		return m->qemu != NULL && m->qemu_error >= 0;
	if (strcmp(kind, "jailhouse") == 0)
		return m->jailhouse != NULL && m->jailhouse_error >= 0;
	if (strcmp(kind, "container") == 0)
		return m->container != NULL && m->container_error >= 0;
	return false;
}

const char *manager_container_unavailable(Manager *m, const CellSpec *spec) {
	static char why[4096 + 160];
	const char *rt = m->config->container_runtime ? m->config->container_runtime : "runc";
	const char *bin = m->config->container_binary ? m->config->container_binary :
	                  strcmp(rt, "crun") == 0 ? "/usr/bin/crun" : "/usr/sbin/runc";

	if (!spec->container || manager_backend_available(m, "container"))
		return NULL;
	/* The enable is tried again at each start: the runtime may have been
	 * installed meanwhile. */
	if (m->container && (m->container_error = backend_enable(m->container)) >= 0)
		return NULL;
	snprintf(why, sizeof why,
	         "the container backend is unavailable: the OCI runtime %s (%s) is missing or not executable; "
	         "install it (apt-get install %s) or set backends.container.binary",
	         rt, bin, rt);
	return why;
}

int manager_backend_stats(Manager *m, const char *kind, BackendStat *ret, size_t max) {
	Backend *b = manager_backend_for(m, kind);
	return b ? backend_stats(b, ret, max) : -ENODEV;
}

ssize_t manager_hypervisor_console(Manager *m, char *buf, size_t n) {
	static const char *const kinds[] = { "jailhouse", "kvm", "qemu" };
	for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
		Backend *b = manager_backend_for(m, kinds[i]);
		ssize_t k = b ? backend_console_read(b, buf, n) : -EOPNOTSUPP;
		if (k != -EOPNOTSUPP)
			return k;
	}
	return -ENODEV;
}

uint64_t manager_next_event_id(Manager *m) {
	return ++m->next_event_id;
}

Cell *const *manager_cells(Manager *m, size_t *ret_n) {
	*ret_n = m->n_cells;
	return m->cells;
}

size_t manager_n_cells(const Manager *m) {
	return m->n_cells;
}

Cell *manager_find_cell(Manager *m, const char *name) {
	for (size_t i = 0; i < m->n_cells; i++)
		if (strcmp(cell_name(m->cells[i]), name) == 0)
			return m->cells[i];
	return NULL;
}

BackendQueue *manager_queue(Manager *m) {
	return m->queue;
}

Network *manager_network(Manager *m) {
	return m->network;
}

Backend *manager_backend_for(Manager *m, const char *kind) {
	if (strcmp(kind, "kvm") == 0)
		return m->kvm;
	if (strcmp(kind, "qemu") == 0)
		return m->qemu;
	if (strcmp(kind, "jailhouse") == 0)
		return m->jailhouse;
	if (strcmp(kind, "container") == 0)
		return m->container;
	return NULL;
}

/* The backends in enable order, with their flags. */
typedef struct BackendSlot {
	Backend *backend;
	bool *enabled;
	int *error;
} BackendSlot;

static size_t backend_slots(Manager *m, BackendSlot out[4]) {
	out[0] = (BackendSlot){ m->kvm, &m->kvm_enabled, &m->kvm_error };
	out[1] = (BackendSlot){ m->qemu, &m->qemu_enabled, &m->qemu_error };
	out[2] = (BackendSlot){ m->jailhouse, &m->jailhouse_enabled, &m->jailhouse_error };
	out[3] = (BackendSlot){ m->container, &m->container_enabled, &m->container_error };
	return 4;
}

bool manager_restarts_in_place(Manager *m, const char *kind) {
	if (strcmp(kind, "qemu") == 0 && m->config->qemu_restart_in_place >= 0)
		return m->config->qemu_restart_in_place;
	return backend_restarts_in_place(manager_backend_for(m, kind));
}

static void manager_check_ready(Manager *m);

void manager_update_status(Manager *m) {
	unsigned counts[_CELL_STATE_MAX] = { 0 };
	char buf[256];
	int n;

	if (!m->started)
		return;
	for (size_t i = 0; i < m->n_cells; i++)
		counts[cell_state(m->cells[i])]++;
	n = snprintf(buf, sizeof buf, "STATUS=%s%zu cells: %u running, %u degraded, %u starting, %u failed, %u stopped",
	             m->hypervisor_enabled ? "" : "hypervisor disabled; ", m->n_cells, counts[CELL_RUNNING],
	             counts[CELL_DEGRADED], counts[CELL_STARTING], counts[CELL_FAILED],
	             counts[CELL_STOPPED] + counts[CELL_STOPPING]);
	if (n > 0)
		sd_notify(false, buf);
	manager_check_ready(m);
}

/* READY=1 once every cell has settled: none starting, stopping or with a
 * backend request in flight. Boot timeouts bound the wait. */
static void manager_check_ready(Manager *m) {
	if (m->ready || !m->started)
		return;
	for (size_t i = 0; i < m->n_cells; i++) {
		CellState s = cell_state(m->cells[i]);
		if (s == CELL_STARTING || s == CELL_STOPPING || cell_busy(m->cells[i]))
			return;
	}
	m->ready = true;
	sd_notify(false, "READY=1");
	log_cell(LOG_INFO, NULL, MSGID_DAEMON_READY, "wardend %s ready: %zu cells, %zu listeners%s", WARDEN_VERSION,
	         m->n_cells, http_n_listeners(m->http),
	         m->hypervisor_enabled ? "" : "; the hypervisor is disabled (POST /hypervisor/enable starts it)");
}

static void on_backend_done(const BackendCompletion *d, void *userdata) {
	Manager *m = userdata;
	const char *kind = backend_kind(d->backend);

	if (d->kind == BACKEND_REQUEST_ENABLE) {
		BackendSlot slots[4];
		size_t n = backend_slots(m, slots);
		for (size_t i = 0; i < n; i++)
			if (slots[i].backend == d->backend) {
				*slots[i].error = d->result;
				*slots[i].enabled = d->result >= 0;
			}
	}
	if (d->result < 0)
		log_error_errno(d->result, "Failed to %s the %s backend: %m", backend_request_kind_to_string(d->kind),
		                kind);
	else
		log_info("The %s backend is %sd", kind, backend_request_kind_to_string(d->kind));
}

static bool backend_in_use(Manager *m, const char *kind) {
	for (size_t i = 0; i < m->n_cells; i++)
		if (strcmp(cell_latest_spec(m->cells[i])->backend, kind) == 0)
			return true;
	return false;
}

/* Every cell stopped, then (the queue orders it after their destroys)
 * every enabled backend disabled. */
static void stop_everything(Manager *m, const char *reason) {
	BackendSlot slots[4];
	size_t n = backend_slots(m, slots);
	int r;

	for (size_t i = 0; i < m->n_cells; i++)
		cell_stop(m->cells[i], reason, false);
	for (size_t i = 0; i < n; i++) {
		if (!slots[i].backend || !*slots[i].enabled)
			continue;
		*slots[i].enabled = false;
		r = backend_disable_async(m->queue, slots[i].backend, on_backend_done, m, NULL);
		if (r < 0)
			log_error_errno(r, "Failed to queue the disable of the %s backend: %m",
			                backend_kind(slots[i].backend));
	}
}

int manager_restart_hypervisor(Manager *m, const char *reason) {
	log_warning("Restarting the hypervisor and every cell: %s", reason);
	stop_everything(m, "hypervisor restart");
	return manager_enable_hypervisor(m);
}

static int on_prune(sd_event_source *s, uint64_t usec, void *userdata) {
	Manager *m = userdata;
	unsigned n = idempotency_prune(m);
	if (n)
		log_debug("Dropped %u expired Idempotency-Key records", n);
	sd_event_source_set_time(s, usec + 3600 * USEC_PER_SEC);
	return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

/* "The hypervisor is disabled" is kept across daemon restarts as a file. */
static void hypervisor_mark_path(Manager *m, char *buf, size_t n) {
	snprintf(buf, n, "%s/hypervisor-disabled", m->state_dir);
}

static bool hypervisor_marked_disabled(Manager *m) {
	char p[4096];
	hypervisor_mark_path(m, p, sizeof p);
	return access(p, F_OK) == 0;
}

static void set_hypervisor_enabled(Manager *m, bool on) {
	static const char text[] = "POST /hypervisor/enable turns the partition set back on.\n";
	char p[4096];

	hypervisor_mark_path(m, p, sizeof p);
	if (!on && write_file_atomic(p, text, sizeof text - 1, 0644) < 0)
		log_warning("Failed to record that the hypervisor is disabled");
	else if (on && unlink(p) == 0)
		(void)fsync_dir_of(p);
	m->hypervisor_enabled = on;
}

static int cmp_cells(const void *a, const void *b) {
	return strcmp(cell_name(*(Cell *const *)a), cell_name(*(Cell *const *)b));
}

/* The store is authoritative once seeded; the config seeds it once. */
static int load_cells(Manager *m) {
	_cleanup_(json_decrefp) json_t *stored = NULL;
	ConfigEnv env;
	json_t *e;
	size_t i;
	int r;

	config_env_for(m->config, &env);
	if (m->reseed) {
		r = store_reset(m);
		if (r < 0)
			return log_error_errno(r, "Failed to clear the stored specs for --reseed: %m");
		log_notice("--reseed: forgot the stored specs, seeding again from the config file");
	}
	store_sweep(m);
	if (!store_is_seeded(m)) {
		for (i = 0; i < m->config->n_cells; i++)
			if ((r = store_save_spec(m, m->config->cells[i], 1)) < 0)
				return log_error_errno(r, "Failed to store the spec of cell \"%s\": %m",
				                       m->config->cells[i]->name);
		if ((r = store_mark_seeded(m)) < 0)
			return log_error_errno(r, "Failed to mark the store seeded: %m");
		log_info("Seeded %s from the config file: %zu cells", m->state_dir, m->config->n_cells);
	} else if (m->config->n_cells)
		log_info("%s is authoritative: the config file's cells only seeded it (wardend --reseed starts over)",
		         m->state_dir);
	for (i = 0; i < m->config->n_cells; i++)
		m->config->cells[i] = cell_spec_free(m->config->cells[i]);
	m->config->n_cells = 0;

	r = store_load_specs(m, &stored);
	if (r < 0)
		return log_error_errno(r, "Failed to read the stored specs: %m");
	json_array_foreach(stored, i, e) {
		char err[CONFIG_ERROR_MAX], path[64];
		CellSpec *others[CONFIG_MAX_CELLS], *spec = NULL;
		json_int_t rev = json_integer_value(json_object_get(e, "revision"));
		Cell *c;
		size_t n;

		snprintf(path, sizeof path, "$stored[%zu]", i);
		r = cell_spec_parse(json_object_get(e, "spec"), path, &env, &spec, err);
		if (r >= 0) {
			n = manager_other_specs(m, spec->name, others);
			r = cell_spec_check_partition(spec, path, others, n, m->config->root_cpus, m->config->n_root_cpus,
			                              m->config->cpu_sharing, err);
		}
		if (r < 0) {
			log_error("Ignoring a stored cell spec: %s", err);
			cell_spec_free(spec);
			continue;
		}
		r = manager_add_cell(m, spec, rev > 0 ? (uint64_t)rev : 1, &c);
		if (r < 0)
			return log_error_errno(r, "Failed to set up cell: %m");
	}
	qsort(m->cells, m->n_cells, sizeof m->cells[0], cmp_cells);
	return 0;
}

size_t manager_other_specs(Manager *m, const char *except, CellSpec **out) {
	size_t n = 0;
	for (size_t i = 0; i < m->n_cells; i++)
		if (!except || strcmp(cell_name(m->cells[i]), except) != 0)
			out[n++] = (CellSpec *)cell_latest_spec(m->cells[i]);
	return n;
}

int manager_add_cell(Manager *m, CellSpec *spec, uint64_t revision, Cell **ret) {
	Cell *c;
	int r;

	if (m->n_cells >= CONFIG_MAX_CELLS) {
		cell_spec_free(spec);
		return -E2BIG;
	}
	r = cell_new(m, spec, revision, &c);
	if (r < 0) {
		cell_spec_free(spec);
		return r;
	}
	m->cells[m->n_cells++] = c;
	r = persist_load_cell(c);
	if (r < 0 && r != -ENOENT)
		log_cell_errno(LOG_WARNING, r, cell_name(c), NULL,
		               "Ignoring unreadable supervision state of cell \"%s\": %m", cell_name(c));
	if (ret)
		*ret = c;
	return 0;
}

void manager_remove_cell(Manager *m, Cell *c) {
	char name[CELL_NAME_MAX + 1];
	size_t i;

	snprintf(name, sizeof name, "%s", cell_name(c));
	for (i = 0; i < m->n_cells && m->cells[i] != c; i++)
		;
	if (i == m->n_cells)
		return;
	memmove(&m->cells[i], &m->cells[i + 1], (m->n_cells - i - 1) * sizeof m->cells[0]);
	m->n_cells--;
	cell_delete(c);
	operations_cell_changed(m->operations, name);
	manager_update_status(m);
}

void manager_cell_event(Manager *m, Cell *c, const CellEvent *e) {
	const CellMachine *cm = cell_machine(c);
	json_t *d = json_pack("{s:s, s:s, s:s, s:I}", "cell", cell_name(c), "state", cell_state_to_string(e->state),
	                      "reason", e->reason, "cell_event", (json_int_t)e->id);
	if (strcmp(e->type, "state") == 0)
		json_object_set_new(d, "previous", json_string(cell_state_to_string(e->previous)));
	if (strcmp(e->type, "failure") == 0 && cm->has_failure) {
		json_object_set_new(d, "kind", json_string(failure_kind_to_string(cm->last_failure_kind)));
		json_object_set_new(d, "action",
		                    json_string(recovery_action_to_string(cell_spec(c)->recovery.on[cm->last_failure_kind])));
	}
	events_emit_json(m, e->type, d);
	if (m->operations)
		operations_cell_changed(m->operations, cell_name(c));
}

int manager_disable_hypervisor(Manager *m) {
	stop_everything(m, "hypervisor disabled");
	set_hypervisor_enabled(m, false);
	log_cell(LOG_NOTICE, NULL, NULL, "Hypervisor disabled: every cell is stopped");
	manager_update_status(m);
	return 0;
}

/* Start the autostart cells the operator has not stopped. */
static void start_autostart_cells(Manager *m) {
	int r;

	for (size_t i = 0; i < m->n_cells; i++) {
		Cell *c = m->cells[i];
		/* A cell still being torn down (a hypervisor restart) starts
		 * once that is done. */
		if (!cell_spec(c)->autostart || cell_held(c) ||
		    (cell_state(c) != CELL_STOPPED && !(cell_state(c) == CELL_STOPPING && cell_busy(c))))
			continue;
		r = cell_start(c);
		if (r < 0)
			log_cell_errno(LOG_ERR, r, cell_name(c), MSGID_CELL_FAILED, "Failed to start cell \"%s\": %m",
			               cell_name(c));
	}
}

/* Only what the cells use: an unused backend that cannot be enabled (no
 * runner installed, say) must not fail the ecosystem. Boots queued after
 * this wait for the enables (barriers); a failed enable shows as each
 * cell's failed start. */
static int queue_enables(Manager *m) {
	BackendSlot slots[4];
	size_t n = backend_slots(m, slots);
	int r;

	for (size_t i = 0; i < n; i++) {
		if (!slots[i].backend || *slots[i].enabled || !backend_in_use(m, backend_kind(slots[i].backend)))
			continue;
		r = backend_enable_async(m->queue, slots[i].backend, on_backend_done, m, NULL);
		if (r < 0)
			return log_error_errno(r, "Failed to queue the enable of the %s backend: %m",
			                       backend_kind(slots[i].backend));
		*slots[i].enabled = true;
	}
	return 0;
}

int manager_enable_hypervisor(Manager *m) {
	int r;

	r = queue_enables(m);
	if (r < 0)
		return r;
	set_hypervisor_enabled(m, true);
	start_autostart_cells(m);
	log_cell(LOG_NOTICE, NULL, NULL, "Hypervisor enabled");
	manager_update_status(m);
	return 0;
}

/* The OCI runtime only has to be there; without it container cells fail
 * to start, and say why (manager_backend_error()). */
static void manager_startup_container(Manager *m) {
	const char *rt = m->config->container_runtime ? m->config->container_runtime : "runc";
	BackendConfig bc = {
		.runtime_dir = m->runtime_dir,
		.runner_path = m->config->container_binary,
		.runtime = rt,
	};
	int r = backend_new("container", &bc, &m->container);

	if (r >= 0 && (r = backend_enable(m->container)) < 0) {
		log_warning_errno(r, "The container backend is unavailable (%s: %m); container cells will fail to start",
		                  m->config->container_binary ? m->config->container_binary :
		                  strcmp(rt, "crun") == 0 ? "/usr/bin/crun" : "/usr/sbin/runc");
		m->container_error = r;
	} else if (r < 0)
		log_warning_errno(r, "No container backend (%m); container cells will fail to start");
	m->container_enabled = m->container != NULL && r >= 0;
}

int manager_startup(Manager *m) {
	const char *runner = m->config->kvm_runner ? m->config->kvm_runner : DEFAULT_KVM_RUNNER;
	BackendConfig bc = { .runtime_dir = m->runtime_dir, .runner_path = runner };
	uint64_t wd;
	int r;

	/* Enabled here, before the loop serves anyone: kvm and qemu only
	 * check that their device and binaries are there. */
	r = backend_new("kvm", &bc, &m->kvm);
	if (r < 0)
		return log_error_errno(r, "Failed to set up the kvm backend: %m");
	m->kvm_error = backend_enable(m->kvm);
	m->kvm_enabled = m->kvm_error >= 0;
	if (m->kvm_error < 0) {
		/* the backend checks /dev/kvm, then the runner: say which */
		const char *what = access("/dev/kvm", R_OK | W_OK) < 0 ? "/dev/kvm" : runner;
		log_warning_errno(m->kvm_error, "The kvm backend is unavailable (%s%s: %m); kvm cells will fail to start",
		                  what == runner ? "runner " : "", what);
	}

	bc = (BackendConfig){
		.runtime_dir = m->runtime_dir,
		.runner_path = m->config->qemu_binary ? m->config->qemu_binary : DEFAULT_QEMU_BINARY,
		.accel = m->config->qemu_accel,
		.machine = m->config->qemu_machine,
	};
	r = backend_new("qemu", &bc, &m->qemu);
	if (r >= 0 && (r = backend_enable(m->qemu)) < 0) {
		log_warning_errno(r, "The qemu backend is unavailable (%s: %m); qemu cells will fail to start",
		                  bc.runner_path);
		m->qemu = backend_free(m->qemu);
	} else if (r < 0)
		log_warning_errno(r, "No qemu backend (%m); qemu cells will fail to start");
	m->qemu_enabled = m->qemu != NULL;

	manager_startup_container(m);

	/* Jailhouse's ENABLE blocks (it brings up the hypervisor on every
	 * CPU): queued below, like any enable, never run here. */
	if (m->config->jailhouse) {
		bc = (BackendConfig){
			.runtime_dir = m->runtime_dir,
			.runner_path = m->config->jh_helper ? m->config->jh_helper : DEFAULT_JH_HELPER,
			.system_config = m->config->jh_system_config,
			.sysfs_root = m->config->jh_sysfs,
			.device = m->config->jh_device,
			.mem = m->config->jh_mem,
			.linux_loader = m->config->jh_linux_loader,
		};
		r = backend_new("jailhouse", &bc, &m->jailhouse);
		if (r < 0)
			return log_error_errno(r, "Failed to set up the jailhouse backend: %m");
		if (!m->config->jh_system_config)
			log_warning("backends.jailhouse has no \"system_config\": the hypervisor can be used only if "
			            "it is enabled already");
	}

	r = load_cells(m);
	if (r < 0)
		return r;
	m->hypervisor_enabled = !hypervisor_marked_disabled(m);
	if (!m->hypervisor_enabled)
		log_cell(LOG_NOTICE, NULL, NULL,
		         "The hypervisor is disabled (since POST /hypervisor/disable): no cell starts until "
		         "POST /hypervisor/enable");

	for (size_t i = 0; i < m->n_cells; i++) {
		Cell *c = m->cells[i];
		r = cell_adopt(c);
		if (r < 0 && r != -ENOENT)
			log_cell_errno(LOG_WARNING, r, cell_name(c), NULL, "Could not adopt cell \"%s\": %m", cell_name(c));
		else if (r == -ENOENT && cell_held(c))
			log_cell(LOG_INFO, cell_name(c), NULL, "Cell \"%s\" stays stopped: the operator stopped it",
			         cell_name(c));
	}
	if (m->hypervisor_enabled) {
		r = queue_enables(m);
		if (r < 0)
			return r;
		start_autostart_cells(m);
	}

	if (sd_watchdog_enabled(false, &wd) > 0 && wd > 0) {
		m->watchdog_usec = wd;
		r = sd_event_add_time_relative(m->event, &m->watchdog_timer, CLOCK_MONOTONIC, wd / 2, 0, on_watchdog, m);
		if (r < 0)
			return log_error_errno(r, "Failed to arm the watchdog: %m");
	}

	r = sd_event_add_time_relative(m->event, &m->prune_timer, CLOCK_MONOTONIC, 0, USEC_PER_SEC, on_prune, m);
	if (r < 0)
		return log_error_errno(r, "Failed to arm the idempotency record pruning: %m");

	m->lag_due_ns = lag_next(now_ns(CLOCK_MONOTONIC));
	r = sd_event_add_time(m->event, &m->lag_timer, CLOCK_MONOTONIC, m->lag_due_ns / NSEC_PER_USEC, 1, on_lag_timer, m);
	if (r < 0)
		return log_error_errno(r, "Failed to arm the loop lag probe: %m");
	/* As urgent as a doorbell: it measures how late one could be served. */
	sd_event_source_set_priority(m->lag_timer, SD_EVENT_PRIORITY_IMPORTANT);

	/* READY=1 follows once the cells settled (manager_check_ready). */
	m->started = true;
	manager_update_status(m);
	return 0;
}

int manager_run(Manager *m) {
	int r = sd_event_loop(m->event);
	if (r < 0)
		return log_error_errno(r, "Event loop failed: %m");
	return 0;
}
