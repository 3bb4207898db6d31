/* SPDX-License-Identifier: MIT */
#include "manager.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "http.h"
#include "log.h"
#include "macro.h"
#include "persist.h"

#define DEFAULT_STATE_DIR "/var/lib/warden"
#define DEFAULT_RUNTIME_DIR "/run/warden"
#define DEFAULT_KVM_RUNNER "/usr/libexec/warden/warden-kvm"
#define DEFAULT_QEMU_BINARY "/usr/bin/qemu-system-x86_64"

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

	HttpLimits limits = {
		.max_body_bytes = m->config->max_body_bytes,
		.max_header_bytes = m->config->max_header_bytes,
		.max_connections = m->config->max_connections,
	};
	r = http_new(m, &limits, &m->http);
	if (r < 0)
		return log_error_errno(r, "Failed to set up HTTP: %m");

	/* Listeners: systemd's sockets if it passed any, otherwise the
	 * command line's, otherwise the config's. */
	int n = sd_listen_fds(true);
	if (n > 0) {
		for (int i = 0; i < n; i++) {
			r = http_listen_fd(m->http, SD_LISTEN_FDS_START + i);
			if (r < 0)
				return log_error_errno(r, "Failed to use socket passed by systemd: %m");
		}
	} else {
		const char *const *list = o->n_listen ? o->listen : (const char *const *)m->config->listen;
		size_t nl = o->n_listen ? o->n_listen : m->config->n_listen;
		for (size_t i = 0; i < nl; i++) {
			if (strncmp(list[i], "unix:", 5) == 0) {
				_cleanup_free_ char *dir = strdup(list[i] + 5);
				char *slash = dir ? strrchr(dir, '/') : NULL;
				if (slash && slash != dir) {
					*slash = 0;
					(void)mkdir_p(dir, 0755);
				}
			}
			r = http_listen(m->http, list[i]);
			if (r < 0)
				return log_error_errno(r, "Failed to listen on %s: %m", list[i]);
		}
	}
	if (http_n_listeners(m->http) == 0)
		log_warning("No listeners configured: the API is unreachable (use --listen)");

	*ret = TAKE_PTR(m);
	return 0;
}

Manager *manager_free(Manager *m) {
	if (!m)
		return NULL;
	/* Cells keep running: the next wardend adopts them. */
	for (size_t i = 0; i < m->n_cells; i++)
		cell_free(m->cells[i]);
	http_free(m->http);
	backend_free(m->kvm);
	backend_free(m->qemu);
	sd_event_source_disable_unref(m->watchdog_timer);
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

Cell *manager_find_cell(Manager *m, const char *name) {
	for (size_t i = 0; i < m->n_cells; i++)
		if (strcmp(m->cells[i]->spec->name, name) == 0)
			return m->cells[i];
	return NULL;
}

Backend *manager_backend_for(Manager *m, const char *kind) {
	if (strcmp(kind, "kvm") == 0)
		return m->kvm;
	if (strcmp(kind, "qemu") == 0)
		return m->qemu;
	return NULL;
}

void manager_update_status(Manager *m) {
	unsigned counts[_CELL_STATE_MAX] = { 0 };
	char buf[256];
	int n;

	if (!m->ready)
		return;
	for (size_t i = 0; i < m->n_cells; i++)
		counts[m->cells[i]->state]++;
	n = snprintf(buf, sizeof buf, "STATUS=%zu cells: %u running, %u degraded, %u starting, %u failed, %u stopped",
	             m->n_cells, counts[CELL_RUNNING], counts[CELL_DEGRADED], counts[CELL_STARTING],
	             counts[CELL_FAILED], counts[CELL_STOPPED] + counts[CELL_STOPPING]);
	if (n > 0)
		sd_notify(false, buf);
}

int manager_restart_hypervisor(Manager *m, const char *reason) {
	int r;

	log_warning("Restarting the hypervisor and every cell: %s", reason);
	for (size_t i = 0; i < m->n_cells; i++)
		cell_stop(m->cells[i], "hypervisor restart");
	for (int i = 0; i < 2; i++) {
		Backend *b = i == 0 ? m->kvm : m->qemu;
		if (!b)
			continue;
		(void)backend_disable(b);
		r = backend_enable(b);
		if (r < 0)
			return log_error_errno(r, "Failed to re-enable the %s backend: %m", backend_kind(b));
	}
	for (size_t i = 0; i < m->n_cells; i++)
		if (m->cells[i]->spec->autostart) {
			r = cell_start(m->cells[i]);
			if (r < 0)
				log_cell_errno(LOG_ERR, r, m->cells[i]->spec->name, MSGID_CELL_FAILED,
				               "Failed to start cell \"%s\": %m", m->cells[i]->spec->name);
		}
	return 0;
}

int manager_startup(Manager *m) {
	const char *runner = m->config->kvm_runner ? m->config->kvm_runner : DEFAULT_KVM_RUNNER;
	BackendConfig bc = { .runtime_dir = m->runtime_dir, .runner_path = runner };
	uint64_t wd;
	int r;

	r = backend_new("kvm", &bc, &m->kvm);
	if (r < 0)
		return log_error_errno(r, "Failed to set up the kvm backend: %m");
	r = backend_enable(m->kvm);
	if (r < 0)
		log_warning_errno(r, "The kvm backend is unavailable (%m); kvm cells will fail to start");

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

	for (size_t i = 0; i < m->config->n_cells; i++) {
		Cell *c;
		r = cell_new(m, m->config->cells[i], &c);
		if (r < 0)
			return log_error_errno(r, "Failed to set up cell: %m");
		m->config->cells[i] = NULL;
		m->cells[m->n_cells++] = c;
		r = persist_load_cell(c);
		if (r < 0 && r != -ENOENT)
			log_cell_errno(LOG_WARNING, r, c->spec->name, NULL,
			               "Ignoring unreadable supervision state of cell \"%s\": %m", c->spec->name);
	}
	m->config->n_cells = 0;

	for (size_t i = 0; i < m->n_cells; i++) {
		Cell *c = m->cells[i];
		r = cell_adopt(c);
		if (r >= 0)
			continue;
		if (r != -ENOENT)
			log_cell_errno(LOG_WARNING, r, c->spec->name, NULL, "Could not adopt cell \"%s\": %m",
			               c->spec->name);
		/* No live cell to come back to (e.g. after a reboot: the
		 * runtime directory is gone and monotonic times restarted):
		 * a pending backoff has nothing left to restart in place. */
		c->restart_due_ns = 0;
		c->failed_ns = 0;
		if (c->state == CELL_FAILED)
			c->state = CELL_STOPPED;
		if (!c->spec->autostart)
			continue;
		r = cell_start(c);
		if (r < 0)
			log_cell_errno(LOG_ERR, r, c->spec->name, MSGID_CELL_FAILED, "Failed to start cell \"%s\": %m",
			               c->spec->name);
	}

	if (sd_watchdog_enabled(false, &wd) > 0 && wd > 0) {
		m->watchdog_usec = wd;
		r = sd_event_add_time_relative(m->event, &m->watchdog_timer, CLOCK_MONOTONIC, wd / 2, 0, on_watchdog, m);
		if (r < 0)
			return log_error_errno(r, "Failed to arm the watchdog: %m");
	}

	m->ready = true;
	sd_notify(false, "READY=1");
	manager_update_status(m);
	log_cell(LOG_INFO, NULL, MSGID_DAEMON_READY, "wardend %s ready: %zu cells, %zu listeners", WARDEN_VERSION,
	         m->n_cells, http_n_listeners(m->http));
	return 0;
}

int manager_run(Manager *m) {
	int r = sd_event_loop(m->event);
	if (r < 0)
		return log_error_errno(r, "Event loop failed: %m");
	return 0;
}
