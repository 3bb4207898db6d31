/* SPDX-License-Identifier: MIT */
#include "cell.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "manager.h"
#include "persist.h"
#include "store.h"

static const char *const cell_state_table[_CELL_STATE_MAX] = {
	[CELL_STOPPED] = "stopped",   [CELL_STARTING] = "starting", [CELL_RUNNING] = "running",
	[CELL_DEGRADED] = "degraded", [CELL_FAILED] = "failed",     [CELL_STOPPING] = "stopping",
};

const char *cell_state_to_string(CellState s) {
	return s >= 0 && s < _CELL_STATE_MAX ? cell_state_table[s] : NULL;
}

CellState cell_state_from_string(const char *s) {
	for (int i = 0; s && i < _CELL_STATE_MAX; i++)
		if (strcmp(cell_state_table[i], s) == 0)
			return i;
	return _CELL_STATE_INVALID;
}

static const char *const inmate_state_table[WARDEN_INMATE_STATE_MAX] = {
	[WARDEN_INMATE_NONE] = "none",         [WARDEN_INMATE_BOOTING] = "booting",
	[WARDEN_INMATE_RUNNING] = "running",   [WARDEN_INMATE_DEGRADED] = "degraded",
	[WARDEN_INMATE_STOPPING] = "stopping", [WARDEN_INMATE_PANICKED] = "panicked",
	[WARDEN_INMATE_HALTED] = "halted",
};

const char *inmate_state_to_string(uint32_t s) {
	return s < WARDEN_INMATE_STATE_MAX ? inmate_state_table[s] : "invalid";
}

const double hist_bounds[HIST_BUCKETS] = { 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	                                   0.025,   0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   10.0 };

void histogram_observe(Histogram *h, double seconds) {
	for (int i = 0; i < HIST_BUCKETS; i++)
		if (seconds <= hist_bounds[i]) {
			h->bucket[i]++;
			break;
		}
	h->count++;
	h->sum += seconds;
}

static void cell_emit(Cell *c, const char *type, const char *reason) {
	CellEvent *e = &c->events[c->events_head];

	*e = (CellEvent){
		.id = ++c->manager->next_event_id,
		.mono_ns = now_ns(CLOCK_MONOTONIC),
		.realtime_ns = now_ns(CLOCK_REALTIME),
		.state = c->state,
		.previous = c->previous_state,
	};
	snprintf(e->type, sizeof e->type, "%s", type);
	snprintf(e->reason, sizeof e->reason, "%s", reason ? reason : "");
	c->events_head = (c->events_head + 1) % CELL_EVENTS_MAX;
	if (c->n_events < CELL_EVENTS_MAX)
		c->n_events++;
	manager_cell_event(c->manager, c, e);
}

void cell_set_state(Cell *c, CellState s, const char *reason) {
	if (c->state == s)
		return;
	log_cell(s == CELL_FAILED ? LOG_WARNING : LOG_INFO, c->spec->name, MSGID_CELL_STATE,
	         "Cell \"%s\" %s -> %s%s%s", c->spec->name, cell_state_to_string(c->state), cell_state_to_string(s),
	         reason && *reason ? ": " : "", reason ? reason : "");
	c->previous_state = c->state;
	c->state = s;
	if (s == CELL_RUNNING)
		c->healthy_since_ns = now_ns(CLOCK_MONOTONIC);
	cell_emit(c, "state", reason);
	manager_update_status(c->manager);
}

static int on_save(sd_event_source *s, void *userdata) {
	Cell *c = userdata;
	int r;

	(void)s;
	r = persist_save_cell(c);
	if (r < 0)
		log_cell_errno(LOG_WARNING, r, c->spec->name, NULL,
		               "Failed to save supervision state of cell \"%s\": %m", c->spec->name);
	return 0;
}

/* Saving means fsync: do it when the loop is idle, never between a failure
 * and its recovery. */
static void cell_save(Cell *c) {
	sd_event_source_set_enabled(c->save_source, SD_EVENT_ONESHOT);
}

static int on_sample_timer(sd_event_source *s, uint64_t usec, void *userdata);
static int on_action_timer(sd_event_source *s, uint64_t usec, void *userdata);
static int on_backend_event(sd_event_source *s, int fd, uint32_t revents, void *userdata);
static int on_pidfd(sd_event_source *s, int fd, uint32_t revents, void *userdata);

int cell_new(Manager *m, CellSpec *spec, Cell **ret) {
	Cell *c = calloc(1, sizeof *c);
	int r;

	if (!c)
		return -ENOMEM;
	c->manager = m;
	c->spec = spec;
	c->state = CELL_STOPPED;
	c->boot_ms = c->detection_ms = c->recovery_ms = -1;
	policy_init(&c->policy);

	r = sd_event_add_time(m->event, &c->sample_timer, CLOCK_MONOTONIC, UINT64_MAX, 1, on_sample_timer, c);
	if (r >= 0)
		r = sd_event_add_time(m->event, &c->action_timer, CLOCK_MONOTONIC, UINT64_MAX, 1, on_action_timer, c);
	if (r >= 0)
		r = sd_event_add_defer(m->event, &c->save_source, on_save, c);
	if (r < 0) {
		c->spec = NULL;
		cell_free(c);
		return r;
	}
	sd_event_source_set_priority(c->save_source, SD_EVENT_PRIORITY_IDLE);
	sd_event_source_set_enabled(c->save_source, SD_EVENT_OFF);
	sd_event_source_set_enabled(c->sample_timer, SD_EVENT_OFF);
	sd_event_source_set_enabled(c->action_timer, SD_EVENT_OFF);
	*ret = c;
	return 0;
}

static void cell_unwatch(Cell *c) {
	c->event_source = sd_event_source_disable_unref(c->event_source);
	c->pidfd_source = sd_event_source_disable_unref(c->pidfd_source);
}

static int cell_watch(Cell *c) {
	int fd, r;

	cell_unwatch(c);
	fd = backend_cell_event_fd(c->backend);
	if (fd >= 0) {
		r = sd_event_add_io(c->manager->event, &c->event_source, fd, EPOLLIN, on_backend_event, c);
		if (r < 0)
			return r;
		/* Doorbells carry panics: serve them before HTTP. */
		sd_event_source_set_priority(c->event_source, SD_EVENT_PRIORITY_IMPORTANT);
	}
	fd = backend_cell_pidfd(c->backend);
	if (fd >= 0) {
		r = sd_event_add_io(c->manager->event, &c->pidfd_source, fd, EPOLLIN, on_pidfd, c);
		if (r < 0)
			return r;
		sd_event_source_set_priority(c->pidfd_source, SD_EVENT_PRIORITY_IMPORTANT);
	}
	return 0;
}

static void cell_drop_backend(Cell *c, bool destroy) {
	if (!c->backend)
		return;
	cell_unwatch(c);
	if (destroy)
		(void)backend_cell_destroy(c->backend);
	c->backend = backend_cell_free(c->backend);
}

void cell_detach(Cell *c) {
	cell_drop_backend(c, false);
}

Cell *cell_free(Cell *c) {
	if (!c)
		return NULL;
	cell_drop_backend(c, false);
	sd_event_source_disable_unref(c->sample_timer);
	sd_event_source_disable_unref(c->action_timer);
	sd_event_source_disable_unref(c->save_source);
	cell_spec_free(c->spec);
	cell_spec_free(c->next_spec);
	free(c);
	return NULL;
}

static void timer_arm(sd_event_source *s, uint64_t at_ns) {
	sd_event_source_set_time(s, at_ns / NSEC_PER_USEC);
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static void timer_disarm(sd_event_source *s) {
	sd_event_source_set_enabled(s, SD_EVENT_OFF);
}

static void hb_reset(Cell *c, uint64_t now) {
	c->hb_valid = false;
	c->hb_seq = 0;
	c->hb_inmate_state = WARDEN_INMATE_NONE;
	c->hb_changed_ns = now;
	c->hb_uptime_ns = 0;
}

const CellSpec *cell_latest_spec(const Cell *c) {
	return c->next_spec ? c->next_spec : c->spec;
}

void cell_replace_spec(Cell *c, CellSpec *spec, uint64_t revision) {
	c->revision = revision;
	cell_spec_free(c->next_spec);
	c->next_spec = NULL;
	if (c->backend) {
		c->next_spec = spec;
		return;
	}
	cell_spec_free(c->spec);
	c->spec = spec;
}

json_t *cell_missing_images(Cell *c) {
	const CellSpec *s = cell_latest_spec(c);
	json_t *a = json_array();
	const char *refs[SPEC_MAX_IMAGE_REFS];
	size_t n = cell_spec_image_refs(s, refs);

	for (size_t i = 0; i < n; i++)
		if (refs[i][0] != '/' && !store_image_exists(c->manager, s->name, refs[i]))
			json_array_append_new(a, json_string(refs[i]));
	return a;
}

static int cell_create_backend(Cell *c) {
	BackendRegion regions[BACKEND_MAX_REGIONS];
	BackendImage images[BACKEND_MAX_IMAGES];
	char paths[BACKEND_MAX_IMAGES + 2][PATH_MAX];
	BackendCellConfig cfg;
	Backend *b;
	int r;

	b = manager_backend_for(c->manager, c->spec->backend);
	if (!b)
		return -EOPNOTSUPP;
	cell_spec_to_backend(c->spec, &cfg, regions, images);
	/* Bare names are images uploaded for this cell. */
	for (size_t i = 0; i < cfg.n_images; i++) {
		if ((r = store_image_path(c->manager, c->spec->name, images[i].path, paths[i], PATH_MAX)) < 0)
			return r;
		images[i].path = paths[i];
	}
	if (cfg.kernel) {
		if ((r = store_image_path(c->manager, c->spec->name, cfg.kernel, paths[BACKEND_MAX_IMAGES], PATH_MAX)) < 0)
			return r;
		cfg.kernel = paths[BACKEND_MAX_IMAGES];
	}
	if (cfg.initrd) {
		if ((r = store_image_path(c->manager, c->spec->name, cfg.initrd, paths[BACKEND_MAX_IMAGES + 1],
		                          PATH_MAX)) < 0)
			return r;
		cfg.initrd = paths[BACKEND_MAX_IMAGES + 1];
	}
	r = backend_cell_create(b, &cfg, &c->backend);
	if (r < 0)
		return r;
	c->backend_revision = c->revision;
	cell_save(c);
	r = cell_watch(c);
	if (r >= 0)
		r = backend_cell_load(c->backend);
	if (r < 0) {
		cell_drop_backend(c, true);
		return r;
	}
	return 0;
}

/* Boots the cell: in place if the backend cell still exists, from scratch
 * otherwise. Boot time is measured from here to the first running beat. */
static int cell_boot(Cell *c) {
	BackendCellStatus st;
	uint64_t now;
	int r;

	if (c->backend && (backend_cell_status(c->backend, &st) < 0 || st.state == BACKEND_CELL_GONE))
		cell_drop_backend(c, true);
	/* A spec accepted while the cell ran (also before a daemon restart)
	 * takes effect now, on a new backend cell: its layout may differ. */
	if (c->backend && (c->backend_revision != c->revision ||
	                   !manager_restarts_in_place(c->manager, c->spec->backend)))
		cell_drop_backend(c, true);
	if (c->next_spec) {
		cell_spec_free(c->spec);
		c->spec = TAKE_PTR(c->next_spec);
	}

	now = now_ns(CLOCK_MONOTONIC);
	c->start_issued_ns = now;
	hb_reset(c, now);
	if (c->backend) {
		r = backend_cell_reset(c->backend);
		if (r < 0) {
			/* The in-place path failed: fall back to a new cell. */
			cell_drop_backend(c, true);
		}
	}
	if (!c->backend) {
		r = cell_create_backend(c);
		if (r < 0)
			return r;
		r = backend_cell_start(c->backend);
		if (r < 0) {
			cell_drop_backend(c, true);
			return r;
		}
	}
	timer_arm(c->sample_timer, now + NSEC_PER_MSEC);
	return 0;
}

int cell_start(Cell *c) {
	int r;

	if (c->state == CELL_RUNNING || c->state == CELL_DEGRADED || c->state == CELL_STARTING)
		return -EALREADY;
	if (c->state == CELL_STOPPING)
		return -EBUSY;
	timer_disarm(c->action_timer);
	c->restart_due_ns = 0;
	c->failed_ns = 0;
	c->shutdown_requested = false;
	r = cell_boot(c);
	if (r < 0) {
		cell_set_state(c, CELL_FAILED, "start failed");
		return r;
	}
	cell_set_state(c, CELL_STARTING, "start requested");
	return 0;
}

int cell_stop(Cell *c, const char *reason) {
	timer_disarm(c->sample_timer);
	timer_disarm(c->action_timer);
	c->restart_due_ns = 0;
	c->failed_ns = 0;
	cell_drop_backend(c, true);
	cell_set_state(c, CELL_STOPPED, reason);
	return 0;
}

int cell_restart(Cell *c, const char *reason) {
	int r;

	timer_disarm(c->action_timer);
	c->restart_due_ns = 0;
	c->shutdown_requested = false;
	r = cell_boot(c);
	if (r < 0) {
		cell_set_state(c, CELL_FAILED, "restart failed");
		return r;
	}
	/* Recorded even when the cell was still starting, where the state
	 * itself does not change. */
	cell_emit(c, "action", reason);
	cell_set_state(c, CELL_STARTING, reason);
	return 0;
}

int cell_shutdown(Cell *c) {
	uint64_t now = now_ns(CLOCK_MONOTONIC);
	int r;

	if (!c->backend || c->state == CELL_STOPPED)
		return -EALREADY;
	if (c->state == CELL_STOPPING)
		return 0;
	r = backend_cell_shutdown(c->backend);
	if (r < 0)
		return r;
	c->shutdown_requested = true;
	c->restart_due_ns = 0;
	timer_arm(c->action_timer, now + (uint64_t)c->spec->recovery.shutdown_timeout_ms * NSEC_PER_MSEC);
	cell_set_state(c, CELL_STOPPING, "shutdown requested through the mailbox");
	return 0;
}

static const char *const fault_names[WARDEN_FAULT_MAX] = {
	[WARDEN_FAULT_HANG] = "hang", [WARDEN_FAULT_PANIC] = "panic", [WARDEN_FAULT_CRASH] = "crash",
	[WARDEN_FAULT_EXIT] = "exit", [WARDEN_FAULT_STALL] = "stall",
};

int cell_inject(Cell *c, const char *fault) {
	for (unsigned f = 1; f < WARDEN_FAULT_MAX; f++)
		if (fault && strcmp(fault, fault_names[f]) == 0) {
			char why[64];
			int r;
			if (!c->spec->allow_inject)
				return -EPERM;
			if (!c->backend || (c->state != CELL_RUNNING && c->state != CELL_DEGRADED &&
			                    c->state != CELL_STARTING))
				return -ESRCH;
			r = backend_cell_mail(c->backend, WARDEN_CMD_INJECT, f);
			if (r < 0)
				return r;
			snprintf(why, sizeof why, "fault \"%s\" injected", fault);
			cell_emit(c, "action", why);
			log_cell(LOG_NOTICE, c->spec->name, MSGID_CELL_HEALTH, "Cell \"%s\": %s", c->spec->name, why);
			return 0;
		}
	return -EINVAL;
}

/* The policy's answer to a failure, carried out. */
static void cell_fail(Cell *c, FailureKind kind, const char *reason, uint64_t since_ns, uint64_t now) {
	char why[CELL_REASON_MAX + 64];
	PolicyDecision d;
	double det;

	timer_disarm(c->sample_timer);
	c->failures[kind]++;
	c->has_failure = true;
	c->last_failure_kind = kind;
	snprintf(c->last_failure_reason, sizeof c->last_failure_reason, "%s", reason);
	c->last_failure_realtime_ns = now_ns(CLOCK_REALTIME);
	det = since_ns && since_ns <= now ? (double)(now - since_ns) / 1e6 : 0.0;
	c->detection_ms = det;
	histogram_observe(&c->h_detection[kind], det / 1e3);
	c->failed_ns = now;

	log_cell(LOG_ERR, c->spec->name, MSGID_CELL_FAILED, "Cell \"%s\" failed (%s) after %.3f ms: %s",
	         c->spec->name, failure_kind_to_string(kind), det, reason);
	snprintf(why, sizeof why, "%s: %s", failure_kind_to_string(kind), reason);
	cell_emit(c, "failure", why);

	d = policy_on_failure(&c->policy, &c->spec->recovery, kind, now);
	if (d.exhausted) {
		snprintf(why, sizeof why, "restart budget exhausted (%u restarts in %u s), %s",
		         c->spec->recovery.max_restarts, c->spec->recovery.window_s,
		         exhausted_action_to_string(c->spec->recovery.on_exhausted));
		log_cell(LOG_ERR, c->spec->name, MSGID_CELL_FAILED, "Cell \"%s\": %s", c->spec->name, why);
		snprintf(c->last_failure_reason, sizeof c->last_failure_reason, "%s; %s", reason, why);
		if (c->spec->recovery.on_exhausted == EXHAUSTED_HYPERVISOR_RESTART) {
			cell_set_state(c, CELL_FAILED, why);
			cell_save(c);
			(void)manager_restart_hypervisor(c->manager, why);
			return;
		}
		cell_drop_backend(c, true);
		c->failed_ns = 0;
		cell_set_state(c, CELL_FAILED, why);
		cell_save(c);
		return;
	}

	switch (d.action) {
	case ACTION_RESTART:
		cell_set_state(c, CELL_FAILED, why);
		c->restart_due_ns = now + d.delay_ns;
		cell_save(c);
		if (d.delay_ns == 0) {
			on_action_timer(c->action_timer, 0, c);
		} else {
			log_cell(LOG_INFO, c->spec->name, MSGID_CELL_HEALTH, "Cell \"%s\" restarts in %.1f ms (backoff)",
			         c->spec->name, (double)d.delay_ns / 1e6);
			timer_arm(c->action_timer, c->restart_due_ns);
		}
		return;
	case ACTION_STOP:
		cell_drop_backend(c, true);
		c->failed_ns = 0;
		cell_set_state(c, CELL_FAILED, why);
		break;
	case ACTION_PRESERVE:
		/* Keep memory, comm region and console for inspection. */
		if (c->backend)
			(void)backend_cell_stop(c->backend);
		c->failed_ns = 0;
		cell_set_state(c, CELL_FAILED, why);
		break;
	case ACTION_NONE:
	default:
		/* Report only; keep watching in case it comes back. */
		cell_set_state(c, CELL_FAILED, why);
		timer_arm(c->sample_timer, now + (uint64_t)c->spec->health.period_ms * NSEC_PER_MSEC);
		break;
	}
	cell_save(c);
}

static int on_action_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	Cell *c = userdata;
	char why[64];
	int r;

	(void)s;
	(void)usec;
	if (c->shutdown_requested && c->state == CELL_STOPPING) {
		char msg[128];
		snprintf(msg, sizeof msg, "shutdown deadline of %u ms passed; cell destroyed",
		         c->spec->recovery.shutdown_timeout_ms);
		log_cell(LOG_WARNING, c->spec->name, MSGID_CELL_STOPPED, "Cell \"%s\": %s", c->spec->name, msg);
		c->shutdown_requested = false;
		return cell_stop(c, msg);
	}
	if (!c->restart_due_ns)
		return 0;
	c->restart_due_ns = 0;
	c->restarts++;
	snprintf(why, sizeof why, "restart %u after %s", c->restarts, failure_kind_to_string(c->last_failure_kind));
	r = cell_boot(c);
	if (r < 0) {
		log_cell_errno(LOG_ERR, r, c->spec->name, MSGID_CELL_FAILED, "Cell \"%s\" could not be restarted: %m",
		               c->spec->name);
		cell_set_state(c, CELL_FAILED, "restart failed");
		cell_save(c);
		return 0;
	}
	cell_set_state(c, CELL_STARTING, why);
	cell_save(c);
	return 0;
}

/* Copies the reason under the seqcount; false if it kept changing. */
static bool comm_read_reason(volatile struct warden_comm *cm, char *buf, size_t n, uint32_t *code,
                             uint64_t *event_ns) {
	for (int tries = 0; tries < 16; tries++) {
		uint32_t s1 = __atomic_load_n(&cm->reason_seq, __ATOMIC_ACQUIRE);
		if (s1 & 1)
			continue;
		size_t len = n - 1 < WARDEN_COMM_REASON_LEN ? n - 1 : WARDEN_COMM_REASON_LEN - 1;
		for (size_t i = 0; i < len; i++)
			buf[i] = cm->reason[i];
		buf[len] = 0;
		*code = cm->reason_code;
		*event_ns = cm->event_mono_ns;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&cm->reason_seq, __ATOMIC_RELAXED) == s1) {
			/* Only printable bytes reach logs and JSON. */
			for (char *p = buf; *p; p++)
				if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
					*p = '?';
			return true;
		}
	}
	snprintf(buf, n, "(reason torn while reading)");
	return false;
}

/* One look at the backend and the comm region. Decides on failures, moves
 * the state machine, and returns when to look again (0: don't). */
static uint64_t cell_check(Cell *c, uint64_t now) {
	const HealthSpec *h = &c->spec->health;
	volatile struct warden_comm *cm;
	BackendCellStatus st;
	char reason[CELL_REASON_MAX];
	uint64_t seq, next;
	uint32_t istate, flags;
	int r;

	if (!c->backend || c->state == CELL_STOPPED)
		return 0;
	if (c->state == CELL_FAILED && !c->restart_due_ns && c->spec->recovery.on[c->last_failure_kind] != ACTION_NONE)
		return 0;
	if (c->restart_due_ns)
		return 0;

	r = backend_cell_status(c->backend, &st);
	if (r < 0 || st.state == BACKEND_CELL_GONE) {
		if (c->state == CELL_STOPPING) {
			cell_stop(c, "the cell's process exited during shutdown");
			return 0;
		}
		cell_fail(c, FAILURE_CRASH, st.reason[0] ? st.reason : "the cell's process is gone", now, now);
		return 0;
	}

	cm = backend_cell_comm(c->backend);
	seq = __atomic_load_n(&cm->seq, __ATOMIC_ACQUIRE);
	istate = cm->state;
	flags = cm->flags;

	/* The inmate's own panic reason beats the hypervisor's view of the
	 * same event (a Linux panic also stops a QEMU board). */
	if ((st.state == BACKEND_CELL_SHUTDOWN || st.state == BACKEND_CELL_FAILED) &&
	    !(cm->magic == WARDEN_COMM_MAGIC && istate == WARDEN_INMATE_PANICKED)) {
		snprintf(reason, sizeof reason, "%s (%s)", st.state == BACKEND_CELL_SHUTDOWN ? "machine shut down" :
		         "hypervisor failed the cell", st.reason[0] ? st.reason : "no reason given");
		cell_fail(c, FAILURE_PANIC, reason, st.state_mono_ns, now);
		return 0;
	}

	if (cm->magic != 0 || seq != 0) {
		const char *bad = NULL;
		char tmp[96];
		if (cm->magic != WARDEN_COMM_MAGIC) {
			snprintf(tmp, sizeof tmp, "bad magic 0x%016" PRIx64, (uint64_t)cm->magic);
			bad = tmp;
		} else if (cm->abi != WARDEN_COMM_ABI) {
			snprintf(tmp, sizeof tmp, "ABI revision %u, expected %u", cm->abi, WARDEN_COMM_ABI);
			bad = tmp;
		} else if (istate == WARDEN_INMATE_NONE || istate >= WARDEN_INMATE_STATE_MAX) {
			snprintf(tmp, sizeof tmp, "impossible inmate state %u", istate);
			bad = tmp;
		} else if (c->hb_valid && seq < c->hb_seq) {
			snprintf(tmp, sizeof tmp, "sequence went backwards (%" PRIu64 " -> %" PRIu64 ")", c->hb_seq, seq);
			bad = tmp;
		}
		if (bad && c->state != CELL_STOPPING) {
			snprintf(reason, sizeof reason, "comm region invalid: %s", bad);
			cell_fail(c, FAILURE_PANIC, reason, c->hb_changed_ns, now);
			return 0;
		}
	}

	if (istate == WARDEN_INMATE_PANICKED) {
		uint32_t code;
		uint64_t ev = 0;
		char why[WARDEN_COMM_REASON_LEN];
		comm_read_reason(cm, why, sizeof why, &code, &ev);
		/* Without the host's clock in the comm region, the hypervisor's
		 * own report of the panic (QEMU's pvpanic event) is the best
		 * time we have; the last beat otherwise. */
		if (!(flags & WARDEN_FLAG_HOST_CLOCK) || ev > now || ev == 0)
			ev = (st.state == BACKEND_CELL_FAILED || st.state == BACKEND_CELL_SHUTDOWN) && st.state_mono_ns &&
			                     st.state_mono_ns <= now ?
			             st.state_mono_ns :
			             c->hb_changed_ns;
		snprintf(reason, sizeof reason, "inmate panicked: %s", why);
		cell_fail(c, FAILURE_PANIC, reason, ev, now);
		return 0;
	}

	if (istate == WARDEN_INMATE_HALTED || st.state == BACKEND_CELL_HALTED) {
		if (c->state == CELL_STOPPING) {
			c->shutdown_requested = false;
			timer_disarm(c->action_timer);
			cell_stop(c, "inmate halted after a shutdown request");
			return 0;
		}
		if (istate == WARDEN_INMATE_HALTED) {
			uint32_t code;
			uint64_t ev = 0;
			char why[WARDEN_COMM_REASON_LEN];
			comm_read_reason(cm, why, sizeof why, &code, &ev);
			if (!(flags & WARDEN_FLAG_HOST_CLOCK) || ev > now || ev == 0)
				ev = st.state_mono_ns ? st.state_mono_ns : now;
			snprintf(reason, sizeof reason, "inmate halted: %s", why[0] ? why : "no reason given");
			cell_fail(c, FAILURE_EXIT, reason, ev, now);
		} else {
			/* A vCPU that stopped for good without saying so is hung. */
			snprintf(reason, sizeof reason, "vCPU stopped: %s", st.reason[0] ? st.reason : "halted");
			cell_fail(c, FAILURE_STUCK, reason, st.state_mono_ns ? st.state_mono_ns : now, now);
		}
		return 0;
	}

	if (cm->magic == WARDEN_COMM_MAGIC && (seq != c->hb_seq || !c->hb_valid) && seq != 0) {
		uint64_t beat = cm->beat_mono_ns;
		/* Prefer the inmate's own beat time when it shares our clock:
		 * timeouts then run from the beat, not from our sample. */
		c->hb_changed_ns = (flags & WARDEN_FLAG_HOST_CLOCK) && beat <= now && now - beat < NSEC_PER_SEC ? beat : now;
		c->hb_seq = seq;
		c->hb_valid = true;
		c->hb_uptime_ns = cm->uptime_ns;
	}
	c->hb_inmate_state = istate;

	switch (c->state) {
	case CELL_STARTING:
		if (c->hb_valid && (istate == WARDEN_INMATE_RUNNING || istate == WARDEN_INMATE_DEGRADED)) {
			/* Measured to the beat itself when the inmate shares our
			 * clock, so our own sampling delay does not count. */
			uint64_t at = c->hb_changed_ns >= c->start_issued_ns ? c->hb_changed_ns : now;
			c->boot_ms = (double)(at - c->start_issued_ns) / 1e6;
			histogram_observe(&c->h_boot, c->boot_ms / 1e3);
			if (c->failed_ns) {
				c->recovery_ms = (double)(at - (at > c->failed_ns ? c->failed_ns : at)) / 1e6;
				histogram_observe(&c->h_recovery, c->recovery_ms / 1e3);
				log_cell(LOG_NOTICE, c->spec->name, MSGID_CELL_RECOVERED,
				         "Cell \"%s\" recovered in %.3f ms", c->spec->name, c->recovery_ms);
				snprintf(reason, sizeof reason, "recovered in %.3f ms", c->recovery_ms);
				cell_emit(c, "recovered", reason);
				c->failed_ns = 0;
			} else {
				log_cell(LOG_INFO, c->spec->name, MSGID_CELL_STARTED, "Cell \"%s\" booted in %.3f ms",
				         c->spec->name, c->boot_ms);
			}
			snprintf(reason, sizeof reason, "first beat after %.3f ms", c->boot_ms);
			cell_set_state(c, istate == WARDEN_INMATE_DEGRADED ? CELL_DEGRADED : CELL_RUNNING, reason);
			cell_save(c);
		} else if (now - c->start_issued_ns >= (uint64_t)h->boot_timeout_ms * NSEC_PER_MSEC) {
			snprintf(reason, sizeof reason, "no running beat %u ms after start (inmate %s)",
			         h->boot_timeout_ms, inmate_state_to_string(istate));
			cell_fail(c, FAILURE_BOOT_TIMEOUT, reason, c->start_issued_ns + (uint64_t)h->boot_timeout_ms * NSEC_PER_MSEC, now);
			return 0;
		}
		break;
	case CELL_RUNNING:
	case CELL_DEGRADED:
	case CELL_FAILED: /* action "none": watch for a comeback */
		if (now - c->hb_changed_ns > (uint64_t)h->timeout_ms * NSEC_PER_MSEC) {
			if (c->state == CELL_FAILED)
				break;
			snprintf(reason, sizeof reason, "no beat for %.1f ms (timeout %u ms), sequence stuck at %" PRIu64 ", inmate %s",
			         (double)(now - c->hb_changed_ns) / 1e6, h->timeout_ms, c->hb_seq,
			         inmate_state_to_string(istate));
			cell_fail(c, FAILURE_STUCK, reason, c->hb_changed_ns, now);
			return 0;
		}
		if (istate == WARDEN_INMATE_DEGRADED && c->state != CELL_DEGRADED) {
			char app[WARDEN_COMM_APP_LEN + 1];
			for (size_t i = 0; i < WARDEN_COMM_APP_LEN; i++)
				app[i] = cm->degraded_app[i];
			app[WARDEN_COMM_APP_LEN] = 0;
			snprintf(reason, sizeof reason, "inmate reports degraded%s%s", app[0] ? ": " : "", app);
			cell_set_state(c, CELL_DEGRADED, reason);
		} else if (istate == WARDEN_INMATE_RUNNING && c->state != CELL_RUNNING) {
			cell_set_state(c, CELL_RUNNING, c->state == CELL_FAILED ? "beating again" : "inmate reports running");
		}
		if (c->state == CELL_RUNNING)
			policy_on_healthy(&c->policy, &c->spec->recovery, c->healthy_since_ns, now);
		break;
	case CELL_STOPPING:
	default:
		break;
	}

	/* Sample at half the period; never sleep past the next deadline. */
	next = now + (uint64_t)h->period_ms * NSEC_PER_MSEC / 2;
	if (c->state == CELL_RUNNING || c->state == CELL_DEGRADED) {
		uint64_t deadline = c->hb_changed_ns + (uint64_t)h->timeout_ms * NSEC_PER_MSEC + NSEC_PER_USEC;
		if (deadline < next)
			next = deadline;
	} else if (c->state == CELL_STARTING) {
		uint64_t deadline = c->start_issued_ns + (uint64_t)h->boot_timeout_ms * NSEC_PER_MSEC;
		if (deadline < next)
			next = deadline;
	}
	return next > now ? next : now + NSEC_PER_USEC;
}

void cell_sample(Cell *c) {
	uint64_t now = now_ns(CLOCK_MONOTONIC);
	uint64_t next = cell_check(c, now);
	if (next)
		timer_arm(c->sample_timer, next);
}

static int on_sample_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	(void)s;
	(void)usec;
	cell_sample(userdata);
	return 0;
}

static int on_backend_event(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	Cell *c = userdata;
	(void)s;
	(void)fd;
	(void)revents;
	if (c->backend)
		(void)backend_cell_event_ack(c->backend);
	cell_sample(c);
	return 0;
}

static int on_pidfd(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	Cell *c = userdata;
	uint64_t now = now_ns(CLOCK_MONOTONIC);
	(void)fd;
	(void)revents;
	sd_event_source_set_enabled(s, SD_EVENT_OFF);
	if (c->state == CELL_STOPPED)
		return 0;
	if (c->state == CELL_STOPPING) {
		cell_stop(c, "the cell's process exited during shutdown");
		return 0;
	}
	/* Keep the dead handle out of the way: a restart creates a new cell. */
	cell_drop_backend(c, false);
	cell_fail(c, FAILURE_CRASH, "the cell's process died", now, now);
	return 0;
}

int cell_adopt(Cell *c) {
	Backend *b = manager_backend_for(c->manager, c->spec->backend);
	BackendCellStatus st;
	uint64_t now = now_ns(CLOCK_MONOTONIC);
	int r;

	if (!b)
		return -EOPNOTSUPP;
	r = backend_cell_adopt(b, c->spec->name, &c->backend);
	if (r < 0)
		return r;
	r = cell_watch(c);
	if (r < 0 || (r = backend_cell_status(c->backend, &st)) < 0) {
		cell_drop_backend(c, false);
		return r;
	}
	hb_reset(c, now);
	c->start_issued_ns = now;
	log_cell(LOG_INFO, c->spec->name, MSGID_CELL_ADOPTED, "Cell \"%s\" adopted (pid %d, %s)", c->spec->name,
	         (int)st.pid, backend_cell_state_to_string(st.state));

	if (c->restart_due_ns) {
		/* A restart was pending when the previous daemon died: keep its
		 * deadline, never restart twice. */
		c->state = CELL_FAILED;
		timer_arm(c->action_timer, c->restart_due_ns > now ? c->restart_due_ns : now);
		return 0;
	}
	if (st.state == BACKEND_CELL_STOPPED && c->state == CELL_FAILED) {
		/* preserved for inspection */
		return 0;
	}
	c->state = CELL_STARTING;
	cell_emit(c, "state", "adopted after a daemon restart");
	timer_arm(c->sample_timer, now + NSEC_PER_USEC);
	return 0;
}

/* RFC 3339 UTC with milliseconds: what operators paste into tickets. */
static json_t *timestamp_json(uint64_t realtime_ns) {
	char buf[40];
	struct tm tm;
	time_t t = (time_t)(realtime_ns / NSEC_PER_SEC);

	gmtime_r(&t, &tm);
	strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + strlen(buf), sizeof buf - strlen(buf), ".%03uZ",
	         (unsigned)(realtime_ns % NSEC_PER_SEC / NSEC_PER_MSEC));
	return json_string(buf);
}

static json_t *ms_or_null(double v) {
	return v < 0 ? json_null() : json_real(round(v * 1000.0) / 1000.0);
}

json_t *cell_to_json(Cell *c, bool full) {
	uint64_t now = now_ns(CLOCK_MONOTONIC);
	json_t *o = json_object(), *hb, *t, *lf = json_null();

	json_object_set_new(o, "name", json_string(c->spec->name));
	json_object_set_new(o, "state", json_string(cell_state_to_string(c->state)));
	json_object_set_new(o, "backend", json_string(c->spec->backend));
	json_object_set_new(o, "restarts", json_integer(c->restarts));
	json_object_set_new(o, "revision", json_integer((json_int_t)c->revision));
	{
		json_t *cpus = json_array();
		const CellSpec *ls = cell_latest_spec(c);
		for (size_t i = 0; i < ls->n_cpus; i++)
			json_array_append_new(cpus, json_integer(ls->cpus[i]));
		json_object_set_new(o, "cpus", cpus);
	}

	hb = json_object();
	json_object_set_new(hb, "seq", json_integer((json_int_t)c->hb_seq));
	json_object_set_new(hb, "age_ms", c->hb_valid ? json_real(round((double)(now - c->hb_changed_ns) / 1e3) / 1e3)
	                                               : json_null());
	json_object_set_new(hb, "inmate_state", json_string(inmate_state_to_string(c->hb_inmate_state)));
	json_object_set_new(hb, "uptime_ms", json_real(round((double)c->hb_uptime_ns / 1e3) / 1e3));
	json_object_set_new(o, "heartbeat", hb);

	if (c->has_failure) {
		lf = json_object();
		json_object_set_new(lf, "kind", json_string(failure_kind_to_string(c->last_failure_kind)));
		json_object_set_new(lf, "reason", json_string(c->last_failure_reason));
		json_object_set_new(lf, "at", timestamp_json(c->last_failure_realtime_ns));
	}
	json_object_set_new(o, "last_failure", lf);

	t = json_object();
	json_object_set_new(t, "boot_ms", ms_or_null(c->boot_ms));
	json_object_set_new(t, "detection_ms", ms_or_null(c->detection_ms));
	json_object_set_new(t, "recovery_ms", ms_or_null(c->recovery_ms));
	json_object_set_new(o, "timings", t);

	if (full) {
		json_t *ev = json_array(), *f = json_object();
		BackendCellStatus st;

		for (int k = 0; k < _FAILURE_KIND_MAX; k++)
			json_object_set_new(f, failure_kind_to_string(k), json_integer((json_int_t)c->failures[k]));
		json_object_set_new(o, "failures", f);
		for (unsigned i = 0; i < c->n_events; i++) {
			const CellEvent *e = &c->events[(c->events_head + CELL_EVENTS_MAX - c->n_events + i) % CELL_EVENTS_MAX];
			json_array_append_new(ev, json_pack("{s:I, s:s, s:s, s:s, s:o, s:I}", "id", (json_int_t)e->id, "type",
			                                    e->type, "state", cell_state_to_string(e->state), "reason",
			                                    e->reason, "at", timestamp_json(e->realtime_ns), "mono_ns",
			                                    (json_int_t)e->mono_ns));
		}
		json_object_set_new(o, "events", ev);
		if (c->backend && backend_cell_status(c->backend, &st) >= 0)
			json_object_set_new(o, "hypervisor",
			                    json_pack("{s:s, s:s, s:i, s:I, s:{s:I, s:I, s:I, s:I, s:I}}", "state",
			                              backend_cell_state_to_string(st.state), "reason", st.reason, "pid",
			                              (int)st.pid, "boots", (json_int_t)st.boots, "exits", "total",
			                              (json_int_t)st.exits, "io", (json_int_t)st.exits_io, "mmio",
			                              (json_int_t)st.exits_mmio, "hlt", (json_int_t)st.exits_hlt, "sleep",
			                              (json_int_t)st.exits_sleep));
		else
			json_object_set_new(o, "hypervisor", json_null());
		json_object_set_new(o, "spec", cell_spec_to_json(cell_latest_spec(c)));
		json_object_set_new(o, "spec_pending",
		                    json_boolean(c->next_spec || (c->backend && c->backend_revision != c->revision)));
		json_object_set_new(o, "missing_images", cell_missing_images(c));
	}
	return o;
}
