/* SPDX-License-Identifier: MIT */
/*
 * The executor of a cell's state machine: it turns what the loop sees into
 * CellInputs, and the machine's CellActions into backend requests, timers,
 * events and log lines. It decides nothing itself (cell-machine.c does),
 * and it never waits: backend work goes to the manager's BackendQueue and
 * comes back through on_request_done().
 */
#include "cell.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apps.h"
#include "log.h"
#include "macro.h"
#include "manager.h"
#include "network.h"
#include "persist.h"
#include "results.h"
#include "store.h"

#define RESET_TIMEOUT_NS (5 * NSEC_PER_SEC)

#define CELL_EVENTS_MAX 64

/* The executor around a CellMachine (cell-machine.h); see cell.h. */
struct Cell {
	Manager *manager;
	CellSpec *spec;      /* what the cell runs (or will run at its next start) */
	CellSpec *next_spec; /* accepted while the cell ran: used at the next boot */
	uint64_t revision;   /* of the newest accepted spec */
	uint64_t backend_revision; /* of the spec the backend cell was made from */
	CellMachine m;
	BackendCell *backend;     /* NULL while a request owns it */
	BackendRequest *request;  /* in flight, or NULL */
	/* An in-place reset run from the loop (backend_cell_reset_begin):
	 * its reply and its deadline. */
	sd_event_source *reset_reply, *reset_deadline;

	sd_event_source *event_source;  /* doorbell / backend state changes */
	sd_event_source *pidfd_source;  /* the cell's process exited */
	sd_event_source *sample_timer;  /* stall and boot deadlines, to the us */
	sd_event_source *action_timer;  /* backoff, shutdown deadline */
	sd_event_source *save_source;   /* deferred persist_save_cell() */
	bool save_pending;              /* put off while busy */
	uint64_t sample_due_ns;         /* when the armed sample is due */
	uint64_t wheel_due_ns;          /* a routine one on the manager's wheel, or 0 */

	CellEvent events[CELL_EVENTS_MAX];
	unsigned n_events, events_head;

	/* The root-side links of spec->network were set up (or are being):
	 * they are released when the cell stops for good. */
	bool net_up;
	bool prepare_reuse; /* the boot waiting for them resets in place */
	/* The old backend cell, unwatched, held for the boot that waits for
	 * the network set-up (as a boot request would hold it). */
	BackendCell *prepare_old;
};

/* ---- accessors ------------------------------------------------------ */

const char *cell_name(const Cell *c) {
	return c->spec->name;
}

Manager *cell_manager(const Cell *c) {
	return c->manager;
}

const CellSpec *cell_spec(const Cell *c) {
	return c->spec;
}

uint64_t cell_revision(const Cell *c) {
	return c->revision;
}

CellState cell_state(const Cell *c) {
	return c->m.state;
}

const char *cell_state_reason(const Cell *c) {
	return c->m.state_reason;
}

const CellMachine *cell_machine(const Cell *c) {
	return &c->m;
}

bool cell_busy(const Cell *c) {
	return c->request || c->reset_reply;
}

bool cell_has_backend(const Cell *c) {
	return c->backend != NULL;
}

int cell_backend_status(Cell *c, BackendCellStatus *ret) {
	return c->backend ? backend_cell_status(c->backend, ret) : -ENODEV;
}

bool cell_held(const Cell *c) {
	return c->m.held;
}

ssize_t cell_console_read(Cell *c, char *buf, size_t n) {
	if (!c->backend)
		return -ENODEV;
	return backend_cell_console_read(c->backend, buf, n);
}

const CellSpec *cell_latest_spec(const Cell *c) {
	return c->next_spec ? c->next_spec : c->spec;
}

void cell_replace_spec(Cell *c, CellSpec *spec, uint64_t revision) {
	c->revision = revision;
	cell_spec_free(c->next_spec);
	c->next_spec = NULL;
	if (c->backend || c->request) {
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

/* ---- events ---------------------------------------------------------- */

static void cell_emit(Cell *c, const char *type, const char *reason) {
	CellEvent *e = &c->events[c->events_head];

	*e = (CellEvent){
		.id = manager_next_event_id(c->manager),
		.mono_ns = now_ns(CLOCK_MONOTONIC),
		.realtime_ns = now_ns(CLOCK_REALTIME),
		.state = c->m.state,
		.previous = c->m.previous,
	};
	snprintf(e->type, sizeof e->type, "%s", type);
	snprintf(e->reason, sizeof e->reason, "%s", reason ? reason : "");
	c->events_head = (c->events_head + 1) % CELL_EVENTS_MAX;
	if (c->n_events < CELL_EVENTS_MAX)
		c->n_events++;
	manager_cell_event(c->manager, c, e);
}

static int on_save(sd_event_source *s, void *userdata) {
	Cell *c = userdata;
	int r;

	(void)s;
	/* Not while its reset or request is in flight: the loop is idle then
	 * only because it waits for that, and the runner shares its CPU. The
	 * completion saves. */
	if (cell_busy(c)) {
		c->save_pending = true;
		return 0;
	}
	c->save_pending = false;
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

/* ---- watching the backend cell --------------------------------------- */

static int on_sample_timer(sd_event_source *s, uint64_t usec, void *userdata);
static int on_action_timer(sd_event_source *s, uint64_t usec, void *userdata);
static int on_backend_event(sd_event_source *s, int fd, uint32_t revents, void *userdata);
static int on_pidfd(sd_event_source *s, int fd, uint32_t revents, void *userdata);

static void cell_unwatch(Cell *c) {
	c->event_source = sd_event_source_disable_unref(c->event_source);
	c->pidfd_source = sd_event_source_disable_unref(c->pidfd_source);
}

static int cell_watch(Cell *c) {
	int fd, r;

	cell_unwatch(c);
	fd = backend_cell_event_fd(c->backend);
	if (fd >= 0) {
		r = sd_event_add_io(manager_event(c->manager), &c->event_source, fd, EPOLLIN, on_backend_event, c);
		if (r < 0)
			return r;
		/* Doorbells carry panics: serve them before HTTP. */
		sd_event_source_set_priority(c->event_source, SD_EVENT_PRIORITY_IMPORTANT);
	}
	fd = backend_cell_pidfd(c->backend);
	if (fd >= 0) {
		r = sd_event_add_io(manager_event(c->manager), &c->pidfd_source, fd, EPOLLIN, on_pidfd, c);
		if (r < 0)
			return r;
		sd_event_source_set_priority(c->pidfd_source, SD_EVENT_PRIORITY_IMPORTANT);
	}
	return 0;
}

/* The handle goes to a request (or away): nothing may watch its fds. */
static BackendCell *cell_take_backend(Cell *c) {
	cell_unwatch(c);
	return TAKE_PTR(c->backend);
}

int cell_new(Manager *m, CellSpec *spec, uint64_t revision, Cell **ret) {
	Cell *c = calloc(1, sizeof *c);
	int r;

	if (!c)
		return -ENOMEM;
	c->manager = m;
	c->spec = spec;
	c->revision = revision;
	cell_machine_init(&c->m);

	/* Routine samples ride the manager's wheel (cell_wheel_run): one
	 * timer and one dispatch for every cell due in the same slot. This
	 * timer is for the deadlines (stall, boot), armed to the us. */
	r = sd_event_add_time(manager_event(m), &c->sample_timer, CLOCK_MONOTONIC, UINT64_MAX, 1, on_sample_timer, c);
	if (r >= 0)
		r = sd_event_add_time(manager_event(m), &c->action_timer, CLOCK_MONOTONIC, UINT64_MAX, 1,
		                      on_action_timer, c);
	if (r >= 0)
		r = sd_event_add_defer(manager_event(m), &c->save_source, on_save, c);
	if (r < 0) {
		c->spec = NULL;
		cell_free(c);
		return r;
	}
	sd_event_source_set_priority(c->save_source, SD_EVENT_PRIORITY_IDLE);
	/* Supervision before HTTP, which runs at the normal priority. */
	sd_event_source_set_priority(c->sample_timer, CELL_PRIORITY_TIMERS);
	sd_event_source_set_priority(c->action_timer, CELL_PRIORITY_TIMERS);
	sd_event_source_set_enabled(c->save_source, SD_EVENT_OFF);
	sd_event_source_set_enabled(c->sample_timer, SD_EVENT_OFF);
	sd_event_source_set_enabled(c->action_timer, SD_EVENT_OFF);
	*ret = c;
	return 0;
}

static void reset_end(Cell *c) {
	c->reset_reply = sd_event_source_disable_unref(c->reset_reply);
	c->reset_deadline = sd_event_source_disable_unref(c->reset_deadline);
}

static void cell_release(Cell *c, bool destroy) {
	reset_end(c);
	if (c->request) {
		backend_request_abandon(c->request, destroy);
		c->request = NULL;
	}
	if (c->backend || c->prepare_old) {
		BackendCell *b = c->backend ? cell_take_backend(c) : TAKE_PTR(c->prepare_old);
		if (destroy && manager_queue(c->manager) &&
		    backend_destroy_async(manager_queue(c->manager), b, NULL, NULL, NULL) >= 0)
			b = NULL;
		backend_cell_free(b);
	}
}

static void cell_free_sources(Cell *c) {
	cell_unwatch(c);
	sd_event_source_disable_unref(c->sample_timer);
	sd_event_source_disable_unref(c->action_timer);
	sd_event_source_disable_unref(c->save_source);
}

/* Daemon exit: handles go, cells keep running for the next wardend. */
Cell *cell_free(Cell *c) {
	int enabled = SD_EVENT_OFF, r;

	if (!c)
		return NULL;
	/* A save still due (deferred to an idle loop, or put off while a
	 * request ran) is written now: the loop is gone, and what it holds,
	 * an operator's stop say, must survive the daemon. */
	(void)sd_event_source_get_enabled(c->save_source, &enabled);
	if (c->save_pending || enabled != SD_EVENT_OFF) {
		r = persist_save_cell(c);
		if (r < 0)
			log_cell_errno(LOG_WARNING, r, c->spec->name, NULL,
			               "Failed to save supervision state of cell \"%s\": %m", c->spec->name);
	}
	cell_release(c, false);
	cell_free_sources(c);
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

/* ---- feeding the machine --------------------------------------------- */

static void cell_apply(Cell *c, const CellActions *acts);

static int cell_feed(Cell *c, CellInput *in) {
	CellActions acts;
	CellContext ctx = {
		.name = c->spec->name,
		.health = &c->spec->health,
		.recovery = &c->spec->recovery,
		/* A spec accepted since the backend cell was made may change
		 * its layout: that boot makes a new one. */
		.reuse_backend = !c->next_spec && c->backend_revision == c->revision &&
		                 manager_restarts_in_place(c->manager, c->spec->backend),
	};
	int r;

	if (!in->now_ns)
		in->now_ns = now_ns(CLOCK_MONOTONIC);
	in->realtime_ns = now_ns(CLOCK_REALTIME);
	acts.n = 0;
	r = cell_step(&c->m, &ctx, in, &acts);
	cell_apply(c, &acts);
	return r;
}

static void feed_done(Cell *c, int result, bool reused) {
	CellInput in = { .kind = CELL_INPUT_DONE, .result = result, .reused = reused };
	cell_feed(c, &in);
}

static void on_request_done(const BackendCompletion *d, void *userdata) {
	Cell *c = userdata;
	int r;

	c->request = NULL;
	c->backend = d->cell;
	log_cell(LOG_DEBUG, c->spec->name, NULL, "Cell \"%s\": %s done in %.3f ms (queued %.3f ms): %s", c->spec->name,
	         backend_request_kind_to_string(d->kind), (double)(d->finished_ns - d->started_ns) / 1e6,
	         (double)(d->started_ns - d->queued_ns) / 1e6, d->result < 0 ? strerror(-d->result) : "ok");
	if (c->backend && (r = cell_watch(c)) < 0)
		log_cell_errno(LOG_WARNING, r, c->spec->name, NULL, "Failed to watch cell \"%s\": %m", c->spec->name);
	/* jailhouse: the ivshmem-net interface appears once the cell runs */
	if (d->kind == BACKEND_REQUEST_BOOT && d->result >= 0 && c->spec->network && !c->spec->network->tap &&
	    network_attach_async(manager_network(c->manager), c->spec) >= 0)
		c->net_up = true;
	feed_done(c, d->result, d->reused);
	if (c->save_pending)
		cell_save(c);
	/* No longer busy, whether or not the state changed: READY may be due. */
	manager_update_status(c->manager);
}

/* The backend config of the current spec; paths point into `paths`. */
static int cell_backend_config(Cell *c, BackendCellConfig *cfg, BackendRegion *regions, BackendImage *images,
                               char (*paths)[PATH_MAX]) {
	int r;

	cell_spec_to_backend(c->spec, cfg, regions, images);
	/* Bare names are images uploaded for this cell. */
	for (size_t i = 0; i < cfg->n_images; i++) {
		if ((r = store_image_path(c->manager, c->spec->name, images[i].path, paths[i], PATH_MAX)) < 0)
			return r;
		images[i].path = paths[i];
	}
	if (cfg->kernel) {
		if ((r = store_image_path(c->manager, c->spec->name, cfg->kernel, paths[BACKEND_MAX_IMAGES], PATH_MAX)) < 0)
			return r;
		cfg->kernel = paths[BACKEND_MAX_IMAGES];
	}
	if (cfg->initrd) {
		if ((r = store_image_path(c->manager, c->spec->name, cfg->initrd, paths[BACKEND_MAX_IMAGES + 1],
		                          PATH_MAX)) < 0)
			return r;
		cfg->initrd = paths[BACKEND_MAX_IMAGES + 1];
	}
	if (cfg->dtb) {
		if ((r = store_image_path(c->manager, c->spec->name, cfg->dtb, paths[BACKEND_MAX_IMAGES + 2], PATH_MAX)) < 0)
			return r;
		cfg->dtb = paths[BACKEND_MAX_IMAGES + 2];
	}
	/* A container has no dtb: its rootfs tarball takes that slot. */
	if (cfg->rootfs) {
		if ((r = store_image_path(c->manager, c->spec->name, cfg->rootfs, paths[BACKEND_MAX_IMAGES + 2],
		                          PATH_MAX)) < 0)
			return r;
		cfg->rootfs = paths[BACKEND_MAX_IMAGES + 2];
	}
	return 0;
}

static int cell_submit_boot_now(Cell *c, bool reuse);
static void on_network_ready(const BackendCompletion *d, void *userdata);

/* The links go before the boot on the cell's queue key; the boot itself
 * is submitted when they are ready (on_network_ready). */
static int cell_submit_worker_boot(Cell *c, bool reuse) {
	Network *net = manager_network(c->manager);
	int r;

	/* A spec accepted while the cell ran takes effect now; the links of
	 * the old one go first if they differ. */
	if (c->next_spec) {
		if (c->net_up && (!c->next_spec->network ||
		                  memcmp(c->spec->network, c->next_spec->network, sizeof(NetSpec)) != 0)) {
			(void)network_release_async(net, c->spec);
			c->net_up = false;
		}
		cell_spec_free(c->spec);
		c->spec = TAKE_PTR(c->next_spec);
	}
	if (!c->spec->network || !c->spec->network->tap)
		return cell_submit_boot_now(c, reuse);
	r = network_prepare_async(net, c->spec, on_network_ready, c, &c->request);
	if (r < 0)
		return r;
	c->net_up = true;
	c->prepare_reuse = reuse;
	/* Unwatched meanwhile, as under a boot request: the old QEMU's exit
	 * is the boot's business, not a crash of the cell. */
	c->prepare_old = cell_take_backend(c);
	return 0;
}

static void on_network_ready(const BackendCompletion *d, void *userdata) {
	Cell *c = userdata;
	int r = d->result;

	c->request = NULL;
	log_cell(LOG_DEBUG, c->spec->name, NULL, "Cell \"%s\": network set up in %.3f ms (queued %.3f ms): %s",
	         c->spec->name, (double)(d->finished_ns - d->started_ns) / 1e6,
	         (double)(d->started_ns - d->queued_ns) / 1e6, r < 0 ? strerror(-r) : "ok");
	if (r >= 0)
		r = cell_submit_boot_now(c, c->prepare_reuse);
	if (r < 0) {
		BackendCell *old = TAKE_PTR(c->prepare_old);
		if (d->result < 0) {
			char why[CELL_REASON_MAX];
			snprintf(why, sizeof why, "network set-up failed: %s (see the log)", strerror(-r));
			cell_emit(c, "network", why);
		}
		/* as a failed boot does: the old cell goes */
		if (old && backend_destroy_async(manager_queue(c->manager), old, NULL, NULL, NULL) >= 0)
			old = NULL;
		backend_cell_free(old);
		feed_done(c, r, false);
	}
}

static int cell_submit_boot_now(Cell *c, bool reuse) {
	BackendRegion regions[BACKEND_MAX_REGIONS];
	BackendImage images[BACKEND_MAX_IMAGES];
	char paths[BACKEND_MAX_IMAGES + 4][PATH_MAX];
	BackendCellConfig cfg;
	BackendCell *old;
	Backend *b;
	int r;

	b = manager_backend_for(c->manager, c->spec->backend);
	if (!b)
		return -EOPNOTSUPP;
	r = cell_backend_config(c, &cfg, regions, images, paths);
	if (r < 0)
		return r;
	/* qemu: the NIC on the tap, and the cell's address on its command
	 * line (init.sh sets it: Debian's kernel has no IP_PNP) */
	if (c->spec->network && c->spec->network->tap) {
		char *cmd = paths[BACKEND_MAX_IMAGES + 3], ip[96];
		if ((r = network_kernel_ip_arg(c->spec->network, ip, sizeof ip)) < 0)
			return r;
		snprintf(cmd, PATH_MAX, "%s%s%s", cfg.cmdline ? cfg.cmdline : "", cfg.cmdline && *cfg.cmdline ? " " : "", ip);
		cfg.cmdline = cmd;
		cfg.net_tap = c->spec->network->interface;
		cfg.net_mac = c->spec->network->mac;
	}
	old = c->prepare_old ? TAKE_PTR(c->prepare_old) : cell_take_backend(c);
	r = backend_boot_async(manager_queue(c->manager), b, old, reuse, &cfg, on_request_done, c, &c->request);
	if (r < 0) {
		/* Never submitted: the old handle is still ours to give up. */
		backend_cell_free(old);
		return r;
	}
	c->backend_revision = c->revision;
	cell_save(c);
	return 0;
}

/* The fast path did not work out: the worker resets or re-creates. */
static void reset_fall_back(Cell *c, int why) {
	int r;

	reset_end(c);
	log_cell_errno(LOG_DEBUG, why, c->spec->name, NULL, "Cell \"%s\": in-place reset failed (%m), booting anew",
	               c->spec->name);
	r = cell_submit_worker_boot(c, false);
	if (r < 0)
		feed_done(c, r, false);
}

static int on_reset_reply(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	Cell *c = userdata;
	int r;

	(void)s;
	(void)fd;
	(void)revents;
	r = backend_cell_reset_finish(c->backend);
	if (r == -EAGAIN)
		return 0;
	if (r < 0) {
		reset_fall_back(c, r);
		return 0;
	}
	reset_end(c);
	feed_done(c, 0, true);
	if (c->save_pending)
		cell_save(c);
	return 0;
}

static int on_reset_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
	(void)s;
	(void)usec;
	reset_fall_back(userdata, -ETIMEDOUT);
	return 0;
}

/* In place from the loop when the backend can (kvm: one control-socket
 * round trip, faster than a hop to a worker); the worker otherwise. */
static int cell_submit_boot(Cell *c, bool reuse) {
	uint64_t now = now_ns(CLOCK_MONOTONIC);
	int fd, r;

	if (!reuse || !c->backend || c->next_spec)
		return cell_submit_worker_boot(c, reuse);
	fd = backend_cell_reset_begin(c->backend);
	if (fd < 0)
		return cell_submit_worker_boot(c, fd == -EOPNOTSUPP);
	r = sd_event_add_io(manager_event(c->manager), &c->reset_reply, fd, EPOLLIN, on_reset_reply, c);
	if (r >= 0)
		r = sd_event_add_time(manager_event(c->manager), &c->reset_deadline, CLOCK_MONOTONIC,
		                      (now + RESET_TIMEOUT_NS) / NSEC_PER_USEC, 1000, on_reset_deadline, c);
	if (r < 0) {
		reset_end(c);
		return cell_submit_worker_boot(c, false);
	}
	sd_event_source_set_priority(c->reset_reply, SD_EVENT_PRIORITY_IMPORTANT);
	/* The runner's control thread shares our root CPU and has just been
	 * woken by the request: let it reset the vCPU now rather than after
	 * our bookkeeping (logs, events, the deferred save). Not a wait: the
	 * CPU comes back at once when nothing else is runnable. Measured: it
	 * takes a quarter of a millisecond off every in-place recovery. */
	sched_yield();
	return 0;
}

static int cell_submit(Cell *c, CellActionKind kind) {
	BackendQueue *q = manager_queue(c->manager);
	BackendCell *b;
	int r;

	if (!c->backend)
		return -ENODEV;
	b = cell_take_backend(c);
	if (kind == CELL_DO_FREEZE)
		r = backend_stop_async(q, b, on_request_done, c, &c->request);
	else
		r = backend_destroy_async(q, b, on_request_done, c, &c->request);
	if (r < 0) {
		c->backend = b;
		(void)cell_watch(c);
	}
	return r;
}

/* Stopped or failed for good, nothing in flight: the links go (after the
 * teardown, on the same queue key). A restart sets them up again. */
static void cell_network_settle(Cell *c) {
	if (!c->net_up || c->backend || c->request || (c->m.state != CELL_STOPPED && c->m.state != CELL_FAILED))
		return;
	if (network_release_async(manager_network(c->manager), c->spec) >= 0)
		c->net_up = false;
}

static void cell_apply(Cell *c, const CellActions *acts) {
	const char *name = c->spec->name;
	bool failed = false, boot = false, reuse = false;
	int failure = 0, r;

	for (size_t i = 0; i < acts->n; i++) {
		const CellAction *a = &acts->a[i];
		switch (a->kind) {
		case CELL_DO_STATE:
			log_cell(a->state == CELL_FAILED ? LOG_WARNING : LOG_INFO, name, MSGID_CELL_STATE,
			         "Cell \"%s\" %s -> %s%s%s", name, cell_state_to_string(a->previous),
			         cell_state_to_string(a->state), a->text[0] ? ": " : "", a->text);
			cell_emit(c, "state", a->text);
			manager_update_status(c->manager);
			break;
		case CELL_DO_EMIT:
			cell_emit(c, a->type, a->text);
			break;
		case CELL_DO_LOG:
			log_cell(a->level, name, a->msgid, "%s", a->text);
			break;
		case CELL_DO_BOOT:
			/* Last, after the step's logs and events: a boot's first
			 * moments (the runner's, on our CPU) are worth more than
			 * our bookkeeping. */
			boot = true;
			reuse = a->reuse;
			break;
		case CELL_DO_FREEZE:
		case CELL_DO_DESTROY:
			r = cell_submit(c, a->kind);
			if (r < 0) {
				failed = true;
				failure = r;
			}
			break;
		case CELL_DO_RELEASE:
			backend_cell_free(cell_take_backend(c));
			break;
		case CELL_DO_MAIL:
			/* A lost request only means its deadline passes. */
			r = backend_cell_mail(c->backend, a->mail, 0);
			if (r < 0)
				log_cell_errno(LOG_WARNING, r, name, NULL, "Cell \"%s\": mailbox request failed: %m", name);
			break;
		case CELL_DO_SAMPLE_AT:
			c->sample_due_ns = a->at_ns;
			/* A routine look goes on the wheel; a deadline on the
			 * cell's own timer (disarming it when it is off
			 * already returns at once). */
			if (a->at_ns && !a->precise) {
				timer_disarm(c->sample_timer);
				c->wheel_due_ns = a->at_ns;
				manager_wheel_arm(c->manager, a->at_ns);
			} else {
				c->wheel_due_ns = 0;
				if (a->at_ns)
					timer_arm(c->sample_timer, a->at_ns);
				else
					timer_disarm(c->sample_timer);
			}
			break;
		case CELL_DO_TIMER_AT:
			if (a->at_ns)
				timer_arm(c->action_timer, a->at_ns);
			else
				timer_disarm(c->action_timer);
			break;
		case CELL_DO_SAVE:
			cell_save(c);
			break;
		case CELL_DO_HYPERVISOR_RESTART:
			(void)manager_restart_hypervisor(c->manager, a->text);
			break;
		default:
			break;
		}
	}
	if (boot) {
		r = cell_submit_boot(c, reuse);
		if (r < 0 && !failed) {
			failed = true;
			failure = r;
		}
	}
	/* A request that could not even be queued completes at once. */
	if (failed)
		feed_done(c, failure, false);
	cell_network_settle(c);
}

/* ---- what the loop sees ---------------------------------------------- */

int cell_results(Cell *c, struct warden_results *out) {
	volatile struct warden_comm *cm;

	if (!c->backend || !(cm = backend_cell_comm(c->backend)))
		return -ENODATA;
	return results_read(cm, out);
}

int cell_apps(Cell *c, struct warden_apps *out) {
	volatile struct warden_comm *cm;

	if (!c->backend || !(cm = backend_cell_comm(c->backend)))
		return -ENODATA;
	return apps_read(cm, out);
}

static void cell_observe(Cell *c, CellObservation *o) {
	volatile struct warden_comm *cm;
	BackendCellStatus st;
	int r;

	r = backend_cell_status(c->backend, &st);
	if (r < 0) {
		o->status_error = r;
		return;
	}
	o->backend_state = st.state;
	memcpy(o->backend_reason, st.reason, sizeof o->backend_reason);
	o->backend_state_ns = st.state_mono_ns;
	cm = backend_cell_comm(c->backend);
	if (!cm || st.state == BACKEND_CELL_GONE)
		return;
	cell_observe_comm(cm, o);
	if (c->spec->network && c->spec->network->degrade_on_carrier_loss)
		(void)network_cell_problem(manager_network(c->manager), c->spec->name, o->link_problem,
		                           sizeof o->link_problem);
}

static void cell_sample_late(Cell *c, uint64_t now, uint64_t late_ns) {
	CellObservation o = { .sample_late_ns = late_ns };
	CellInput in = { .kind = CELL_INPUT_SAMPLE, .now_ns = now, .obs = &o };

	if (!c->backend || cell_busy(c))
		return;
	cell_observe(c, &o);
	if (cell_machine_wants_cpu_times(&c->m, &c->spec->health, now))
		o.cpu_known = backend_cell_cpu_times(c->backend, &o.cpu_run_ns, &o.cpu_runnable,
		                                       &o.cpu_waiting) >= 0;
	cell_feed(c, &in);
}

void cell_sample(Cell *c) {
	cell_sample_late(c, now_ns(CLOCK_MONOTONIC), 0);
}

uint64_t cell_wheel_due(const Cell *c) {
	return c->wheel_due_ns;
}

bool cell_wheel_run(Cell *c, uint64_t now) {
	uint64_t due = c->wheel_due_ns;

	if (!due || due > now + CELL_WHEEL_ACCURACY_USEC * NSEC_PER_USEC)
		return false;
	c->wheel_due_ns = 0;
	/* The sample's own clock, not the wheel's: the cells before this one
	 * took time, and an inmate's event written meanwhile must not look
	 * as if it came after the sample (event_time() would fall back to
	 * the last beat, a period earlier). */
	now = now_ns(CLOCK_MONOTONIC);
	cell_sample_late(c, now, now > due ? now - due : 0);
	return true;
}

static int on_sample_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	Cell *c = userdata;
	uint64_t now = now_ns(CLOCK_MONOTONIC);

	(void)s;
	(void)usec;
	cell_sample_late(c, now, c->sample_due_ns && now > c->sample_due_ns ? now - c->sample_due_ns : 0);
	return 0;
}

static int on_backend_event(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	Cell *c = userdata;
	int r;

	(void)fd;
	(void)revents;
	if (!c->backend)
		return 0;
	r = backend_cell_event_ack(c->backend);
	/* The channel is gone (QEMU exiting): its pidfd tells the rest. */
	if (r == -ESRCH)
		sd_event_source_set_enabled(s, SD_EVENT_OFF);
	cell_sample(c);
	return 0;
}

/* A process that ended by itself may have said how (a container's init
 * exiting with status 0 is a halt, one that wrote PANICKED first a
 * panic): one sample before the exit is taken for a crash. True when that
 * sample declared a failure. */
static bool exit_said_why(Cell *c) {
	uint64_t before = 0, after = 0;
	BackendCellStatus st;

	if (!c->backend || backend_cell_status(c->backend, &st) < 0)
		return false;
	/* A container's runtime also knows how its init died. */
	if (st.state != BACKEND_CELL_HALTED && !(st.state == BACKEND_CELL_GONE && c->spec->container))
		return false;
	for (size_t k = 0; k < _FAILURE_KIND_MAX; k++)
		before += c->m.failures[k];
	cell_sample(c);
	for (size_t k = 0; k < _FAILURE_KIND_MAX; k++)
		after += c->m.failures[k];
	return after != before;
}

static int on_pidfd(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
	CellInput in = { .kind = CELL_INPUT_EXITED };
	Cell *c = userdata;
	(void)fd;
	(void)revents;
	sd_event_source_set_enabled(s, SD_EVENT_OFF);
	backend_cell_reap(c->backend);
	if (exit_said_why(c))
		return 0;
	cell_feed(c, &in);
	return 0;
}

static int on_action_timer(sd_event_source *s, uint64_t usec, void *userdata) {
	CellInput in = { .kind = CELL_INPUT_TIMER };
	(void)s;
	(void)usec;
	cell_feed(userdata, &in);
	return 0;
}

/* ---- verbs ------------------------------------------------------------ */

int cell_start(Cell *c) {
	CellInput in = { .kind = CELL_INPUT_START };
	return cell_feed(c, &in);
}

int cell_stop(Cell *c, const char *reason, bool by_operator) {
	CellInput in = { .kind = CELL_INPUT_STOP, .reason = reason, .by_operator = by_operator };
	return cell_feed(c, &in);
}

int cell_restart(Cell *c, const char *reason) {
	CellInput in = { .kind = CELL_INPUT_RESTART, .reason = reason };
	return cell_feed(c, &in);
}

int cell_shutdown(Cell *c) {
	CellInput in = { .kind = CELL_INPUT_SHUTDOWN };
	return cell_feed(c, &in);
}

void cell_delete(Cell *c) {
	cell_stop(c, "cell deleted", false);
	cell_release(c, true);
	/* after the destroy just queued, or the request it abandoned */
	if (c->net_up)
		(void)network_release_async(manager_network(c->manager), c->spec);
	c->net_up = false;
	network_forget(manager_network(c->manager), c->spec->name);
	/* Its state directory goes with it: nothing more to save. */
	c->save_pending = false;
	sd_event_source_set_enabled(c->save_source, SD_EVENT_OFF);
	cell_free(c);
}

static const char *const fault_names[WARDEN_FAULT_MAX] = {
	[WARDEN_FAULT_HANG] = "hang", [WARDEN_FAULT_PANIC] = "panic", [WARDEN_FAULT_CRASH] = "crash",
	[WARDEN_FAULT_EXIT] = "exit", [WARDEN_FAULT_STALL] = "stall",
};

int cell_inject(Cell *c, const char *fault) {
	CellState s = c->m.state;

	for (unsigned f = 1; f < WARDEN_FAULT_MAX; f++)
		if (fault && strcmp(fault, fault_names[f]) == 0) {
			char why[64];
			int r;
			if (!c->spec->allow_inject)
				return -EPERM;
			if (!c->backend || (s != CELL_RUNNING && s != CELL_DEGRADED && s != CELL_STARTING))
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

int cell_adopt(Cell *c) {
	Backend *b = manager_backend_for(c->manager, c->spec->backend);
	CellInput in = { .kind = CELL_INPUT_ORPHANED };
	CellObservation o = { 0 };
	BackendCellStatus st;
	int r;

	r = b ? backend_cell_adopt(b, c->spec->name, &c->backend) : -EOPNOTSUPP;
	if (r >= 0 && ((r = cell_watch(c)) < 0 || (r = backend_cell_status(c->backend, &st)) < 0))
		backend_cell_free(cell_take_backend(c));
	if (r < 0) {
		cell_feed(c, &in);
		return r == -EOPNOTSUPP ? -ENOENT : r;
	}
	log_cell(LOG_INFO, c->spec->name, MSGID_CELL_ADOPTED, "Cell \"%s\" adopted (pid %d, %s)", c->spec->name,
	         (int)st.pid, backend_cell_state_to_string(st.state));
	o.backend_state = st.state;
	/* The links outlived the daemon too: check them again (idempotent)
	 * and re-register the cell's NAT rule. */
	if (c->spec->network) {
		if (c->spec->network->tap)
			r = network_prepare_async(manager_network(c->manager), c->spec, NULL, NULL, NULL);
		else
			r = network_attach_async(manager_network(c->manager), c->spec);
		c->net_up = r >= 0;
	}
	in = (CellInput){ .kind = CELL_INPUT_ADOPTED, .obs = &o };
	cell_feed(c, &in);
	return 0;
}

/* ---- what persist.c keeps --------------------------------------------- */

json_t *cell_supervision_to_json(const Cell *c) {
	const CellMachine *m = &c->m;
	json_t *j, *ring = json_array(), *f = json_object();

	for (unsigned i = 0; i < m->policy.n_restarts; i++)
		json_array_append_new(ring, json_integer((json_int_t)policy_restart_ns(&m->policy, i)));
	for (int k = 0; k < _FAILURE_KIND_MAX; k++)
		json_object_set_new(f, failure_kind_to_string(k), json_integer((json_int_t)m->failures[k]));
	j = json_pack("{s:i, s:s, s:i, s:o, s:I, s:I, s:i, s:o, s:b, s:b, s:I}", "version", 1, "state",
	              cell_state_to_string(m->state), "restarts", (int)m->restarts, "failures", f, "restart_due_ns",
	              (json_int_t)m->restart_due_ns, "failed_ns", (json_int_t)m->failed_ns, "consecutive",
	              (int)m->policy.consecutive, "restart_history_ns", ring, "has_failure", m->has_failure, "held",
	              m->held, "backend_revision", (json_int_t)c->backend_revision);
	if (j && m->has_failure) {
		json_object_set_new(j, "last_failure_kind", json_string(failure_kind_to_string(m->last_failure_kind)));
		json_object_set_new(j, "last_failure_reason", json_string(m->last_failure_reason));
		json_object_set_new(j, "last_failure_realtime_ns", json_integer((json_int_t)m->last_failure_realtime_ns));
	}
	return j;
}

void cell_supervision_from_json(Cell *c, json_t *j) {
	CellMachine *m = &c->m;
	json_t *v;
	size_t i;

	m->restarts = (unsigned)json_integer_value(json_object_get(j, "restarts"));
	c->backend_revision = (uint64_t)json_integer_value(json_object_get(j, "backend_revision"));
	m->restart_due_ns = (uint64_t)json_integer_value(json_object_get(j, "restart_due_ns"));
	m->failed_ns = (uint64_t)json_integer_value(json_object_get(j, "failed_ns"));
	m->policy.consecutive = (unsigned)json_integer_value(json_object_get(j, "consecutive"));
	m->held = json_is_true(json_object_get(j, "held"));
	for (int k = 0; k < _FAILURE_KIND_MAX; k++)
		m->failures[k] = (uint64_t)json_integer_value(
			json_object_get(json_object_get(j, "failures"), failure_kind_to_string(k)));
	json_array_foreach(json_object_get(j, "restart_history_ns"), i, v)
		policy_record_restart(&m->policy, (uint64_t)json_integer_value(v));
	m->has_failure = json_is_true(json_object_get(j, "has_failure"));
	if (m->has_failure) {
		FailureKind k = failure_kind_from_string(json_string_value(json_object_get(j, "last_failure_kind")));
		const char *why = json_string_value(json_object_get(j, "last_failure_reason"));
		m->last_failure_kind = k >= 0 ? k : FAILURE_CRASH;
		cell_sanitize_text(m->last_failure_reason, sizeof m->last_failure_reason, why ? why : "", SIZE_MAX);
		m->last_failure_realtime_ns = (uint64_t)json_integer_value(json_object_get(j, "last_failure_realtime_ns"));
	}
	if (cell_state_from_string(json_string_value(json_object_get(j, "state"))) == CELL_FAILED)
		m->state = CELL_FAILED;
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

/* The inmate's results area (daemon/results.c), null without one. */
static json_t *cell_results_json(Cell *c) {
	struct warden_results res;
	json_t *j;

	if (cell_results(c, &res) < 0 || !(j = results_to_json(&res)))
		return json_null();
	return j;
}

/* The inmate's applications table (daemon/apps.c), null without one. */
static json_t *cell_apps_json(Cell *c) {
	struct warden_apps t;
	json_t *j;

	if (cell_apps(c, &t) < 0 || !(j = apps_to_json(&t)))
		return json_null();
	return j;
}

json_t *cell_to_json(Cell *c, bool full) {
	uint64_t now = now_ns(CLOCK_MONOTONIC);
	json_t *o = json_object(), *hb, *t, *lf = json_null();

	json_object_set_new(o, "name", json_string(c->spec->name));
	json_object_set_new(o, "state", json_string(cell_state_to_string(c->m.state)));
	json_object_set_new(o, "backend", json_string(c->spec->backend));
	json_object_set_new(o, "restarts", json_integer(c->m.restarts));
	json_object_set_new(o, "revision", json_integer((json_int_t)c->revision));
	{
		json_t *cpus = json_array();
		const CellSpec *ls = cell_latest_spec(c);
		for (size_t i = 0; i < ls->n_cpus; i++)
			json_array_append_new(cpus, json_integer(ls->cpus[i]));
		json_object_set_new(o, "cpus", cpus);
	}

	hb = json_object();
	json_object_set_new(hb, "seq", json_integer((json_int_t)c->m.hb_seq));
	json_object_set_new(hb, "age_ms", c->m.hb_valid ? json_real(round((double)(now - c->m.hb_changed_ns) / 1e3) / 1e3)
	                                               : json_null());
	json_object_set_new(hb, "inmate_state", json_string(inmate_state_to_string(c->m.hb_inmate_state)));
	json_object_set_new(hb, "uptime_ms", json_real(round((double)c->m.hb_uptime_ns / 1e3) / 1e3));
	json_object_set_new(o, "heartbeat", hb);

	if (c->m.has_failure) {
		lf = json_object();
		json_object_set_new(lf, "kind", json_string(failure_kind_to_string(c->m.last_failure_kind)));
		json_object_set_new(lf, "reason", json_string(c->m.last_failure_reason));
		json_object_set_new(lf, "at", timestamp_json(c->m.last_failure_realtime_ns));
	}
	json_object_set_new(o, "last_failure", lf);

	t = json_object();
	json_object_set_new(t, "boot_ms", ms_or_null(c->m.boot_ms));
	json_object_set_new(t, "detection_ms", ms_or_null(c->m.detection_ms));
	json_object_set_new(t, "recovery_ms", ms_or_null(c->m.recovery_ms));
	json_object_set_new(o, "timings", t);

	if (full) {
		json_t *ev = json_array(), *f = json_object();
		BackendCellStatus st;

		for (int k = 0; k < _FAILURE_KIND_MAX; k++)
			json_object_set_new(f, failure_kind_to_string(k), json_integer((json_int_t)c->m.failures[k]));
		json_object_set_new(o, "failures", f);
		for (unsigned i = 0; i < c->n_events; i++) {
			const CellEvent *e = &c->events[(c->events_head + CELL_EVENTS_MAX - c->n_events + i) % CELL_EVENTS_MAX];
			json_array_append_new(ev, json_pack("{s:I, s:s, s:s, s:s, s:o, s:I}", "id", (json_int_t)e->id, "type",
			                                    e->type, "state", cell_state_to_string(e->state), "reason",
			                                    e->reason, "at", timestamp_json(e->realtime_ns), "mono_ns",
			                                    (json_int_t)e->mono_ns));
		}
		json_object_set_new(o, "events", ev);
		if (c->backend && backend_cell_status(c->backend, &st) >= 0) {
			json_t *hv = json_pack("{s:s, s:s, s:i, s:I, s:{s:I, s:I, s:I, s:I, s:I}}", "state",
			                       backend_cell_state_to_string(st.state), "reason", st.reason, "pid",
			                       (int)st.pid, "boots", (json_int_t)st.boots, "exits", "total",
			                       (json_int_t)st.exits, "io", (json_int_t)st.exits_io, "mmio",
			                       (json_int_t)st.exits_mmio, "hlt", (json_int_t)st.exits_hlt, "sleep",
			                       (json_int_t)st.exits_sleep);
			/* The hypervisor's own counters by their own names
			 * (jailhouse: vmexits_psci -> "psci"). */
			json_t *ex = json_object_get(hv, "exits");
			for (size_t i = 0; i < st.n_stats; i++) {
				const char *k = st.stats[i].name;
				if (strncmp(k, "vmexits_", 8) == 0)
					k += 8;
				if (!json_object_get(ex, k))
					json_object_set_new(ex, k, json_integer((json_int_t)st.stats[i].value));
			}
			if (st.has_hv_id)
				json_object_set_new(hv, "cell_id", json_integer(st.hv_id));
			if (st.hv_state[0])
				json_object_set_new(hv, "native_state", json_string(st.hv_state));
			json_object_set_new(o, "hypervisor", hv);
		} else
			json_object_set_new(o, "hypervisor", json_null());
		json_object_set_new(o, "spec", cell_spec_to_json(cell_latest_spec(c)));
		json_object_set_new(o, "spec_pending",
		                    json_boolean(c->next_spec || (c->backend && c->backend_revision != c->revision)));
		json_object_set_new(o, "missing_images", cell_missing_images(c));
		json_object_set_new(o, "results", cell_results_json(c));
		json_object_set_new(o, "applications", cell_apps_json(c));
	}
	if (c->spec->network)
		json_object_set_new(o, "network", network_cell_json(manager_network(c->manager), c->spec));
	return o;
}
