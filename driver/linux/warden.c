/* SPDX-License-Identifier: MIT OR GPL-2.0-only */
/*
 * warden.ko: the Linux inmate's half of the comm region protocol
 * (api/warden/comm.h).
 *
 * The kernel beats, not a userspace daemon: a hard-irq hrtimer advances
 * `seq` every period_ms, so a dead kernel or a CPU stuck with interrupts off
 * stops the beat, while a hung userspace does not. Applications that want to
 * be watched register through /dev/warden; one that misses its own deadline
 * makes the cell DEGRADED. Panics, oopses and the shutdown path are reported
 * from the panic, die and reboot notifiers.
 *
 * Dual-licensed (MIT like the rest of warden, or GPL-2.0) because it uses
 * GPL-only kernel symbols. Needs Linux 6.1 or later.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/build_bug.h>
#include <linux/console.h>
#include <linux/ctype.h>
#include <linux/delay.h>
#include <linux/fs.h>
#include <linux/hrtimer.h>
#include <linux/io.h>
#include <linux/kdebug.h>
#include <linux/ktime.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/notifier.h>
#include <linux/panic_notifier.h>
#include <linux/pci.h>
#include <linux/reboot.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/syscore_ops.h>
#include <linux/sysrq.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>

#include <warden/apps.h>
#include <warden/comm.h>
#include <warden/results.h>

/* The daemon reads the region at these offsets: a layout change in comm.h
 * that is not matched here must break the module build, not the protocol. */
#define COMM_AT(field, offset) \
	static_assert(offsetof(struct warden_comm, field) == (offset))
COMM_AT(magic, 0);
COMM_AT(abi, 8);
COMM_AT(size, 12);
COMM_AT(state, 16);
COMM_AT(period_ms, 20);
COMM_AT(seq, 24);
COMM_AT(uptime_ns, 32);
COMM_AT(boot_stage, 40);
COMM_AT(flags, 44);
COMM_AT(beat_mono_ns, 48);
COMM_AT(reason_seq, 56);
COMM_AT(reason_code, 60);
COMM_AT(event_mono_ns, 64);
COMM_AT(ack_cmd, 72);
COMM_AT(ack_seq, 80);
COMM_AT(result, 88);
COMM_AT(degraded_app, 136);
COMM_AT(reason, 168);
COMM_AT(inmate_reserved, 424);
COMM_AT(cmd_seq, WARDEN_COMM_MAILBOX_OFFSET);
COMM_AT(cmd, WARDEN_COMM_MAILBOX_OFFSET + 8);
COMM_AT(cmd_arg, WARDEN_COMM_MAILBOX_OFFSET + 12);
static_assert(sizeof(struct warden_comm) == WARDEN_COMM_SIZE);
static_assert(WARDEN_COMM_ABI == 1);
static_assert(WARDEN_APPS_OFFSET == 3072 && WARDEN_APPS_VERSION == 1);

#define WARDEN_MAX_APPS WARDEN_APPS_MAX
/* The mailbox and the application deadlines are checked at least this
 * often, whatever the beat period. */
#define WARDEN_POLL_MS 10
#define WARDEN_APP_PERIOD_MAX_MS 600000u
/* Longest write(2) on /dev/warden; the longest command is ~50 bytes. */
#define WARDEN_WRITE_MAX 128
#define WARDEN_STATUS_MAX 2048
/* boot_stage once the module runs: the kernel and its userspace are up. */
#define WARDEN_STAGE_MODULE 1

#define IVSHMEM_QEMU_VENDOR 0x1af4
#define IVSHMEM_QEMU_DEVICE 0x1110
#define IVSHMEM_QEMU_BAR_SHMEM 2
/* ivshmem v2 (Jailhouse Documentation/ivshmem-v2-specification.md): the
 * shared memory is [state table | R/W section | output sections]; sizes and,
 * without BAR 2, the base address sit in the vendor-specific capability. */
#define IVSHMEM_V2_VENDOR 0x110a
#define IVSHMEM_V2_DEVICE 0x4106
#define IVSHMEM_V2_BAR_SHMEM 2
#define IVSHMEM_V2_CAP_LENGTH 0x02
#define IVSHMEM_V2_CAP_STATE_TABLE_SIZE 0x04
#define IVSHMEM_V2_CAP_RW_SECTION_SIZE 0x08
#define IVSHMEM_V2_CAP_BASE_ADDRESS 0x18
#define IVSHMEM_V2_CAP_LENGTH_WITH_BASE 0x20
#define IVSHMEM_V2_PROTO_NET 0x0001

static unsigned int period_ms = 100;
module_param(period_ms, uint, 0444);
MODULE_PARM_DESC(period_ms, "Heartbeat period in milliseconds, 1..10000 (100)");

static bool allow_inject;
module_param(allow_inject, bool, 0444);
MODULE_PARM_DESC(allow_inject, "Obey WARDEN_CMD_INJECT (off)");

static unsigned long phys_addr;
module_param(phys_addr, ulong, 0444);
MODULE_PARM_DESC(phys_addr, "Physical address of the comm region instead of an ivshmem device");

static unsigned long phys_size = WARDEN_COMM_SIZE;
module_param(phys_size, ulong, 0444);
MODULE_PARM_DESC(phys_size, "Size of the region at phys_addr, at least 4096 (4096)");

static const char *const state_names[WARDEN_INMATE_STATE_MAX] = {
	[WARDEN_INMATE_NONE] = "none",
	[WARDEN_INMATE_BOOTING] = "booting",
	[WARDEN_INMATE_RUNNING] = "running",
	[WARDEN_INMATE_DEGRADED] = "degraded",
	[WARDEN_INMATE_STOPPING] = "stopping",
	[WARDEN_INMATE_PANICKED] = "panicked",
	[WARDEN_INMATE_HALTED] = "halted",
};

static const char *const fault_names[WARDEN_FAULT_MAX] = {
	[WARDEN_FAULT_NONE] = "none",
	[WARDEN_FAULT_HANG] = "hang",
	[WARDEN_FAULT_PANIC] = "panic",
	[WARDEN_FAULT_CRASH] = "crash",
	[WARDEN_FAULT_EXIT] = "exit",
	[WARDEN_FAULT_STALL] = "stall",
};

struct warden_app {
	char name[WARDEN_COMM_APP_LEN];
	unsigned int period_ms;
	u64 period_ns;
	u64 last_beat_ns;
	bool used;
	/* Its file was closed without "unregister": it stays, and goes late,
	 * so that an application that crashed is noticed. */
	bool closed;
	bool late;
	/* What the applications table shows besides the above. */
	u32 misses;
	u64 beats;
};

/* One per open /dev/warden. */
struct warden_client {
	int slot; /* index into warden.apps, or -1 */
};

struct warden {
	/* Set before the heartbeat starts, cleared after it stopped and every
	 * notifier is gone; nothing else changes it. */
	struct warden_comm *comm;
	phys_addr_t comm_phys;
	struct pci_dev *pdev;
	bool bar_requested;
	bool unloading;

	/* Guards everything below up to `apps`, and the comm writes of the
	 * state machine (state, degraded_app, reason). Raw: taken in the
	 * hard-irq tick, also on PREEMPT_RT. */
	raw_spinlock_t lock;
	u32 state;
	bool stalled;
	u64 seq;
	u64 ticks_per_beat;
	u64 tick_count;
	int degraded_slot;
	struct warden_app apps[WARDEN_MAX_APPS];

	/* Newest cmd_seq handled; written by the mailbox work only. */
	u64 handled_seq;
	int beat_cpu;
	ktime_t tick;
	struct hrtimer timer;
	struct workqueue_struct *wq;
	struct work_struct mbox_work;
	struct work_struct hang_work;
	struct work_struct crash_work;
	struct notifier_block panic_nb;
	struct notifier_block die_nb;
	struct notifier_block reboot_nb;
};

static struct warden warden = {
	.lock = __RAW_SPIN_LOCK_UNLOCKED(warden.lock),
	.degraded_slot = -1,
};

/* Serialises probe, remove and module init against each other. */
static DEFINE_MUTEX(warden_attach_lock);

/* Read by the crash injection so that the compiler cannot see the NULL. */
static int *volatile warden_null;

static const char *state_name(u32 state)
{
	return state < WARDEN_INMATE_STATE_MAX ? state_names[state] : "invalid";
}

static const char *fault_name(u32 fault)
{
	return fault < WARDEN_FAULT_MAX ? fault_names[fault] : "unknown";
}

static bool state_is_final(u32 state)
{
	return state == WARDEN_INMATE_PANICKED || state == WARDEN_INMATE_HALTED;
}

/* ---- comm region writes ------------------------------------------------ */

/* Caller holds w->lock. The first PANICKED or HALTED wins: a panic that
 * follows an oops keeps the oops, a panic while powering off keeps HALTED. */
static bool comm_set_state(struct warden *w, u32 state)
{
	if (state_is_final(w->state))
		return false;
	w->state = state;
	WRITE_ONCE(w->comm->state, state);
	return true;
}

/* Caller holds w->lock. */
static void comm_beat(struct warden *w)
{
	struct warden_comm *c = w->comm;

	WRITE_ONCE(c->uptime_ns, ktime_get_mono_fast_ns());
	smp_store_release(&c->seq, ++w->seq);
}

static void comm_write_reason(struct warden_comm *c, const char *msg,
			      size_t len, u32 code)
{
	/* Odd means a writer died half-way: start from the next even value
	 * so that readers see a change. */
	u32 s = (READ_ONCE(c->reason_seq) + 1) & ~1u;

	while (len && msg[len - 1] == '\n')
		len--;
	len = min_t(size_t, len, WARDEN_COMM_REASON_LEN - 1);

	WRITE_ONCE(c->reason_seq, s + 1);
	smp_wmb();
	memcpy(c->reason, msg, len);
	memset(c->reason + len, 0, WARDEN_COMM_REASON_LEN - len);
	WRITE_ONCE(c->reason_code, code);
	/* The guest's clock: WARDEN_FLAG_HOST_CLOCK is never set here. */
	WRITE_ONCE(c->event_mono_ns, ktime_get_mono_fast_ns());
	smp_store_release(&c->reason_seq, s + 2);
}

/* Panic stops the other CPUs with an NMI, maybe one that held the lock, and
 * an oops may hit this CPU inside the tick: wait a bounded time, then write
 * without the lock. */
static bool warden_lock_fatal(struct warden *w)
{
	unsigned int i;

	for (i = 0; i < 1000; i++) {
		if (raw_spin_trylock(&w->lock))
			return true;
		udelay(10);
	}
	return false;
}

/* Write a state with its reason. Safe from any context; `fatal` for the
 * panic and die paths. */
static void warden_report(struct warden *w, u32 state, const char *msg,
			  u32 code, bool fatal)
{
	struct warden_comm *c = READ_ONCE(w->comm);
	unsigned long flags;
	bool locked = true;

	if (!c)
		return;
	local_irq_save(flags);
	if (fatal)
		locked = warden_lock_fatal(w);
	else
		raw_spin_lock(&w->lock);
	if (!state_is_final(w->state)) {
		comm_write_reason(c, msg, strnlen(msg, WARDEN_COMM_REASON_LEN),
				  code);
		comm_set_state(w, state);
	}
	/* Shared memory: nothing to flush, but nothing may linger in a
	 * write-combining buffer either when the machine stops next. */
	wmb();
	if (locked)
		raw_spin_unlock(&w->lock);
	local_irq_restore(flags);
}

static void warden_set_state(struct warden *w, u32 state)
{
	unsigned long flags;

	raw_spin_lock_irqsave(&w->lock, flags);
	comm_set_state(w, state);
	raw_spin_unlock_irqrestore(&w->lock, flags);
	wmb();
}

/* ---- application deadlines --------------------------------------------- */

/* Caller holds w->lock, inside warden_apps_begin/end: slot i of the
 * applications table (api/warden/apps.h) from w->apps[i]. */
static void apps_slot_write(struct warden *w, int i)
{
	volatile struct warden_app_slot *s = &warden_apps_of(w->comm)->app[i];
	const struct warden_app *a = &w->apps[i];
	unsigned int k;

	for (k = 0; k < WARDEN_APPS_NAME_LEN; k++)
		s->name[k] = a->used ? a->name[k] : 0;
	s->state = !a->used ? WARDEN_APP_FREE : a->late ? WARDEN_APP_LATE : WARDEN_APP_ON_TIME;
	s->period_ms = a->used ? a->period_ms : 0;
	s->misses = a->used ? a->misses : 0;
	s->flags = a->used && a->closed ? WARDEN_APP_CLOSED : 0;
	s->beats = a->used ? a->beats : 0;
}

/* Caller holds w->lock: publish slot i (i < 0: every slot). */
static void apps_publish(struct warden *w, int i)
{
	volatile struct warden_apps *t;

	if (!w->comm)
		return;
	t = warden_apps_of(w->comm);
	warden_apps_begin(t);
	if (i >= 0) {
		apps_slot_write(w, i);
	} else {
		for (i = 0; i < WARDEN_MAX_APPS; i++)
			apps_slot_write(w, i);
	}
	warden_apps_end(t);
}

/* Caller holds w->lock. Returns the slot now named in degraded_app (-1 for
 * none) if that changed, or -2 if nothing changed. */
static int apps_check(struct warden *w, u64 now)
{
	struct warden_comm *c = w->comm;
	int late = -1, i;

	if (w->state != WARDEN_INMATE_RUNNING &&
	    w->state != WARDEN_INMATE_DEGRADED)
		return -2;

	for (i = 0; i < WARDEN_MAX_APPS; i++) {
		struct warden_app *a = &w->apps[i];

		bool was_late = a->late;

		if (!a->used)
			continue;
		a->late = (s64)(now - a->last_beat_ns) > (s64)a->period_ns;
		if (a->late && !was_late)
			a->misses++;
		if (a->late != was_late)
			apps_publish(w, i);
		if (a->late && late < 0)
			late = i;
	}
	/* Keep naming the application that went late first while it is. */
	if (w->degraded_slot >= 0 && w->apps[w->degraded_slot].used &&
	    w->apps[w->degraded_slot].late)
		late = w->degraded_slot;
	if (late == w->degraded_slot)
		return -2;

	w->degraded_slot = late;
	if (late >= 0) {
		strscpy_pad(c->degraded_app, w->apps[late].name,
			    sizeof(c->degraded_app));
		comm_set_state(w, WARDEN_INMATE_DEGRADED);
	} else {
		comm_set_state(w, WARDEN_INMATE_RUNNING);
		memset(c->degraded_app, 0, sizeof(c->degraded_app));
	}
	return late;
}

/* ---- heartbeat and mailbox --------------------------------------------- */

static enum hrtimer_restart warden_tick(struct hrtimer *timer)
{
	struct warden *w = container_of(timer, struct warden, timer);
	struct warden_comm *c = w->comm;
	char app[WARDEN_COMM_APP_LEN] = "";
	u64 overruns = hrtimer_forward_now(timer, w->tick);
	int degraded;

	/* Pinned: a hang injected on this CPU stops the beat on any SMP. */
	WRITE_ONCE(w->beat_cpu, smp_processor_id());

	raw_spin_lock(&w->lock);
	degraded = apps_check(w, ktime_get_ns());
	if (degraded >= 0)
		strscpy(app, w->apps[degraded].name, sizeof(app));
	w->tick_count += overruns;
	if (w->tick_count >= w->ticks_per_beat) {
		w->tick_count = 0;
		if (!w->stalled && !state_is_final(w->state))
			comm_beat(w);
	}
	raw_spin_unlock(&w->lock);

	if (degraded >= 0)
		pr_warn("application \"%s\" missed its deadline, cell degraded\n",
			app);
	else if (degraded == -1)
		pr_info("all applications on time, cell running\n");

	if (smp_load_acquire(&c->cmd_seq) != READ_ONCE(w->handled_seq))
		queue_work(w->wq, &w->mbox_work);
	return HRTIMER_RESTART;
}

/* Take cmd and cmd_arg only together with their own cmd_seq: the daemon
 * may write the next command meanwhile. */
static bool mbox_read(struct warden *w, u64 *ret_seq, u32 *ret_cmd,
		      u32 *ret_arg)
{
	struct warden_comm *c = w->comm;
	u64 seq = smp_load_acquire(&c->cmd_seq), again;
	u32 cmd, arg;

	for (;;) {
		if (seq == w->handled_seq)
			return false;
		cmd = READ_ONCE(c->cmd);
		arg = READ_ONCE(c->cmd_arg);
		smp_rmb();
		again = smp_load_acquire(&c->cmd_seq);
		if (again == seq)
			break;
		seq = again;
	}
	*ret_seq = seq;
	*ret_cmd = cmd;
	*ret_arg = arg;
	return true;
}

static void mbox_ack(struct warden *w, u64 seq, u32 cmd)
{
	struct warden_comm *c = w->comm;

	WRITE_ONCE(c->ack_cmd, cmd);
	smp_store_release(&c->ack_seq, seq);
	WRITE_ONCE(w->handled_seq, seq);
	wmb();
}

static void warden_hang_work(struct work_struct *work)
{
	pr_emerg("injected hang: CPU %d spins with interrupts off\n",
		 raw_smp_processor_id());
	local_irq_disable();
	for (;;)
		cpu_relax();
}

static void warden_crash_work(struct work_struct *work)
{
	pr_emerg("injected crash: NULL pointer dereference\n");
	*warden_null = 1;
}

static void warden_inject(struct warden *w, u32 fault)
{
	unsigned long flags;
	int mask;

	pr_warn("injecting fault \"%s\"\n", fault_name(fault));
	/* A module that hangs, oopses or stops the machine on purpose must
	 * not be unloaded under the work item doing it. */
	if (fault != WARDEN_FAULT_STALL && fault < WARDEN_FAULT_MAX)
		__module_get(THIS_MODULE);

	switch (fault) {
	case WARDEN_FAULT_HANG:
		queue_work_on(READ_ONCE(w->beat_cpu), system_highpri_wq,
			      &w->hang_work);
		break;
	case WARDEN_FAULT_PANIC:
		/* The path of `echo c > /proc/sysrq-trigger`. handle_sysrq()
		 * honours kernel.sysrq, which often leaves 'c' out (Debian:
		 * 0x1b6): then panic with the same words. */
		mask = sysrq_mask();
		if (mask == 1 || (mask & SYSRQ_ENABLE_DUMP))
			handle_sysrq('c');
		panic("sysrq triggered crash\n");
		break;
	case WARDEN_FAULT_CRASH:
		/* Not on the mailbox's own queue: the oops kills the worker
		 * and its work item never completes. */
		queue_work(system_unbound_wq, &w->crash_work);
		break;
	case WARDEN_FAULT_EXIT:
		warden_report(w, WARDEN_INMATE_HALTED, "injected exit", 0, false);
		if (kernel_can_power_off())
			kernel_power_off();
		kernel_halt();
		break;
	case WARDEN_FAULT_STALL:
		raw_spin_lock_irqsave(&w->lock, flags);
		w->stalled = true;
		raw_spin_unlock_irqrestore(&w->lock, flags);
		break;
	default:
		pr_warn("unknown fault %u ignored\n", fault);
		break;
	}
}

static void warden_mbox_work(struct work_struct *work)
{
	struct warden *w = container_of(work, struct warden, mbox_work);
	u32 cmd, arg;
	u64 seq;

	if (!mbox_read(w, &seq, &cmd, &arg))
		return;

	/* Acknowledge first: the daemon learns the command arrived even if
	 * acting on it stops everything. */
	switch (cmd) {
	case WARDEN_CMD_SHUTDOWN:
		warden_set_state(w, WARDEN_INMATE_STOPPING);
		mbox_ack(w, seq, cmd);
		pr_info("shutdown requested\n");
		/* poweroff_cmd first, so that userspace stops in order; the
		 * kernel powers off by itself if that cannot run. */
		orderly_poweroff(true);
		break;
	case WARDEN_CMD_INJECT:
		mbox_ack(w, seq, cmd);
		if (!allow_inject) {
			pr_warn("fault \"%s\" not injected: allow_inject is off\n",
				fault_name(arg));
			break;
		}
		warden_inject(w, arg);
		break;
	case WARDEN_CMD_PING:
		mbox_ack(w, seq, cmd);
		break;
	default:
		mbox_ack(w, seq, cmd);
		pr_warn("unknown command %u ignored\n", cmd);
		break;
	}
}

/* ---- notifiers --------------------------------------------------------- */

static int warden_panic_notify(struct notifier_block *nb, unsigned long action,
			       void *data)
{
	struct warden *w = container_of(nb, struct warden, panic_nb);

	warden_report(w, WARDEN_INMATE_PANICKED, data ? data : "panic", 0, true);
	return NOTIFY_DONE;
}

static int warden_die_notify(struct notifier_block *nb, unsigned long action,
			     void *data)
{
	struct warden *w = container_of(nb, struct warden, die_nb);
	const struct die_args *args = data;
	char reason[WARDEN_COMM_REASON_LEN];

	if (action != DIE_OOPS)
		return NOTIFY_DONE;
	scnprintf(reason, sizeof(reason), "Oops: %s",
		  args->str ? args->str : "");
	warden_report(w, WARDEN_INMATE_PANICKED, reason, args->trapnr, true);
	return NOTIFY_DONE;
}

/* Runs before devices shut down; HALTED comes from the syscore hook, which
 * is about the last code to run before the machine goes. */
static int warden_reboot_notify(struct notifier_block *nb, unsigned long action,
				void *data)
{
	struct warden *w = container_of(nb, struct warden, reboot_nb);

	warden_set_state(w, WARDEN_INMATE_STOPPING);
	return NOTIFY_DONE;
}

static void warden_syscore_shutdown(void)
{
	struct warden *w = &warden;

	switch (system_state) {
	case SYSTEM_HALT:
		warden_report(w, WARDEN_INMATE_HALTED, "halt", 0, false);
		break;
	case SYSTEM_POWER_OFF:
		warden_report(w, WARDEN_INMATE_HALTED, "power off", 0, false);
		break;
	case SYSTEM_RESTART:
		warden_report(w, WARDEN_INMATE_STOPPING, "restart", 0, false);
		break;
	default:
		break;
	}
}

static struct syscore_ops warden_syscore_ops = {
	.shutdown = warden_syscore_shutdown,
};

/* ---- start and stop ---------------------------------------------------- */

static void comm_init(struct warden *w)
{
	struct warden_comm *c = w->comm;

	/* Keep seq growing across in-place restarts (the region survives
	 * them), so that "seq changed" and "seq grew" mean the same. */
	w->seq = READ_ONCE(c->magic) == WARDEN_COMM_MAGIC ? READ_ONCE(c->seq) : 0;

	/* Hide the region while it is rewritten: no reader may pair a valid
	 * magic with the last boot's leftovers. */
	WRITE_ONCE(c->magic, 0);
	smp_wmb();
	memset((u8 *)c + sizeof(c->magic), 0,
	       WARDEN_COMM_MAILBOX_OFFSET - sizeof(c->magic));
	c->abi = WARDEN_COMM_ABI;
	c->size = WARDEN_COMM_SIZE;
	c->state = WARDEN_INMATE_BOOTING;
	c->period_ms = period_ms;
	c->flags = allow_inject ? WARDEN_FLAG_INJECT : 0;
	c->boot_stage = WARDEN_STAGE_MODULE;
	c->seq = w->seq;

	/* Whatever the mailbox holds predates this boot. */
	w->handled_seq = smp_load_acquire(&c->cmd_seq);
	c->ack_cmd = WARDEN_CMD_NONE;
	c->ack_seq = w->handled_seq;
	c->uptime_ns = ktime_get_mono_fast_ns();
	w->state = WARDEN_INMATE_BOOTING;
	w->stalled = false;
	w->degraded_slot = -1;
	/* An empty results area: /dev/warden writers fill it. */
	warden_results_init(warden_results_of(c), "", 1, 0);
	/* The applications table, with the registrations this module already
	 * holds (a device that went and came back). */
	warden_apps_init(warden_apps_of(c), WARDEN_MAX_APPS);
	apps_publish(w, -1);
	smp_store_release(&c->magic, WARDEN_COMM_MAGIC);
}

/* Caller holds warden_attach_lock. */
static int warden_start(struct warden *w, struct warden_comm *comm,
			phys_addr_t phys)
{
	unsigned long flags;
	u64 ticks = DIV_ROUND_UP(period_ms, WARDEN_POLL_MS);
	int r;

	w->comm = comm;
	w->comm_phys = phys;
	comm_init(w);

	w->panic_nb.notifier_call = warden_panic_notify;
	/* Before everybody else (pvpanic, kmsg dumpers): the daemon hears
	 * about the panic first. */
	w->panic_nb.priority = INT_MAX;
	r = atomic_notifier_chain_register(&panic_notifier_list, &w->panic_nb);
	if (r)
		goto err_comm;
	w->die_nb.notifier_call = warden_die_notify;
	w->die_nb.priority = INT_MAX;
	r = register_die_notifier(&w->die_nb);
	if (r)
		goto err_panic;
	w->reboot_nb.notifier_call = warden_reboot_notify;
	w->reboot_nb.priority = INT_MIN; /* after the others' cleanup */
	r = register_reboot_notifier(&w->reboot_nb);
	if (r)
		goto err_die;
	register_syscore_ops(&warden_syscore_ops);

	/* A tick divides the beat period, so beats keep period_ms exactly. */
	w->ticks_per_beat = ticks;
	w->tick_count = 0;
	w->tick = ns_to_ktime((u64)period_ms * NSEC_PER_MSEC / ticks);

	raw_spin_lock_irqsave(&w->lock, flags);
	comm_set_state(w, WARDEN_INMATE_RUNNING);
	comm_beat(w);
	raw_spin_unlock_irqrestore(&w->lock, flags);

	preempt_disable();
	w->beat_cpu = smp_processor_id();
	hrtimer_start(&w->timer, w->tick, HRTIMER_MODE_REL_PINNED_HARD);
	preempt_enable();
	return 0;

err_die:
	unregister_die_notifier(&w->die_nb);
err_panic:
	atomic_notifier_chain_unregister(&panic_notifier_list, &w->panic_nb);
err_comm:
	w->comm = NULL;
	return r;
}

/* Caller holds warden_attach_lock. Leaves the mapping to the caller. */
static void warden_stop(struct warden *w, const char *reason)
{
	hrtimer_cancel(&w->timer);
	unregister_syscore_ops(&warden_syscore_ops);
	unregister_reboot_notifier(&w->reboot_nb);
	unregister_die_notifier(&w->die_nb);
	atomic_notifier_chain_unregister(&panic_notifier_list, &w->panic_nb);
	cancel_work_sync(&w->mbox_work);
	warden_report(w, WARDEN_INMATE_HALTED, reason, 0, false);
	w->comm = NULL;
}

/* ---- /dev/warden ------------------------------------------------------- */

static bool app_name_valid(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n >= WARDEN_COMM_APP_LEN)
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum(name[i]) && !strchr("._-", name[i]))
			return false;
	return true;
}

/* Caller holds w->lock. */
static int apps_find(struct warden *w, const char *name)
{
	int i;

	for (i = 0; i < WARDEN_MAX_APPS; i++)
		if (w->apps[i].used && !strcmp(w->apps[i].name, name))
			return i;
	return -1;
}

static int client_register(struct warden *w, struct warden_client *cl,
			   const char *name, const char *period)
{
	struct warden_app *a;
	unsigned long flags;
	unsigned int ms;
	int slot, i, r = 0;

	if (!app_name_valid(name) || kstrtouint(period, 10, &ms) || ms < 1 ||
	    ms > WARDEN_APP_PERIOD_MAX_MS)
		return -EINVAL;
	if (cl->slot >= 0)
		return -EBUSY;

	raw_spin_lock_irqsave(&w->lock, flags);
	slot = apps_find(w, name);
	if (slot >= 0 && !w->apps[slot].closed) {
		r = -EEXIST;
		goto out;
	}
	/* An application that restarts after a crash takes its old, closed
	 * registration over. */
	for (i = 0; slot < 0 && i < WARDEN_MAX_APPS; i++)
		if (!w->apps[i].used)
			slot = i;
	if (slot < 0) {
		r = -ENOSPC;
		goto out;
	}
	a = &w->apps[slot];
	strscpy_pad(a->name, name, sizeof(a->name));
	a->period_ms = ms;
	a->period_ns = (u64)ms * NSEC_PER_MSEC;
	a->last_beat_ns = ktime_get_ns();
	a->used = true;
	a->closed = false;
	a->late = false;
	a->misses = 0;
	a->beats = 1;
	cl->slot = slot;
	apps_publish(w, slot);
out:
	raw_spin_unlock_irqrestore(&w->lock, flags);
	return r;
}

static int client_beat(struct warden *w, struct warden_client *cl)
{
	unsigned long flags;

	if (cl->slot < 0)
		return -EINVAL;
	raw_spin_lock_irqsave(&w->lock, flags);
	w->apps[cl->slot].last_beat_ns = ktime_get_ns();
	w->apps[cl->slot].beats++;
	apps_publish(w, cl->slot);
	raw_spin_unlock_irqrestore(&w->lock, flags);
	return 0;
}

static int client_unregister(struct warden *w, struct warden_client *cl)
{
	unsigned long flags;

	if (cl->slot < 0)
		return -EINVAL;
	raw_spin_lock_irqsave(&w->lock, flags);
	memset(&w->apps[cl->slot], 0, sizeof(w->apps[cl->slot]));
	apps_publish(w, cl->slot);
	raw_spin_unlock_irqrestore(&w->lock, flags);
	cl->slot = -1;
	return 0;
}

/*
 * The results area (api/warden/results.h) on behalf of applications: the
 * module is its one writer, w->lock serialises the writers it serves.
 *   result NAME counter|gauge|ns VALUE     a named value
 *   histogram NAME BUCKET_NS N_BUCKETS     (re)declare the histogram; clears
 *                                          the area, values included
 *   sample NS                              one sample into the histogram
 */
static bool result_name_valid(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n >= WARDEN_RESULTS_NAME_LEN)
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '_'))
			return false;
	return true;
}

static int client_result(struct warden *w, char **words, int n)
{
	enum warden_result_kind kind;
	unsigned long flags;
	u64 v;
	u32 a, b;
	int r = 0;

	if (n == 4 && !strcmp(words[0], "result")) {
		if (!result_name_valid(words[1]) || kstrtou64(words[3], 0, &v))
			return -EINVAL;
		if (!strcmp(words[2], "counter"))
			kind = WARDEN_RESULT_COUNTER;
		else if (!strcmp(words[2], "gauge"))
			kind = WARDEN_RESULT_GAUGE;
		else if (!strcmp(words[2], "ns"))
			kind = WARDEN_RESULT_NS;
		else
			return -EINVAL;
		raw_spin_lock_irqsave(&w->lock, flags);
		if (!w->comm)
			r = -ENODEV;
		else if (warden_results_put(warden_results_of(w->comm), words[1], kind, v) < 0)
			r = -ENOSPC;
		raw_spin_unlock_irqrestore(&w->lock, flags);
		return r;
	}
	if (n == 4 && !strcmp(words[0], "histogram")) {
		if (strlen(words[1]) >= WARDEN_RESULTS_HIST_NAME_LEN || kstrtou32(words[2], 0, &a) ||
		    kstrtou32(words[3], 0, &b) || a == 0)
			return -EINVAL;
		raw_spin_lock_irqsave(&w->lock, flags);
		if (w->comm)
			warden_results_init(warden_results_of(w->comm), words[1], a, b);
		else
			r = -ENODEV;
		raw_spin_unlock_irqrestore(&w->lock, flags);
		return r;
	}
	if (n == 2 && !strcmp(words[0], "sample")) {
		if (kstrtou64(words[1], 0, &v))
			return -EINVAL;
		raw_spin_lock_irqsave(&w->lock, flags);
		if (w->comm)
			warden_results_sample(warden_results_of(w->comm), v);
		else
			r = -ENODEV;
		raw_spin_unlock_irqrestore(&w->lock, flags);
		return r;
	}
	return -EINVAL;
}

/* One line: "register NAME PERIOD_MS", "beat" or "unregister", or a
 * results line (client_result). */
static int client_command(struct warden *w, struct warden_client *cl,
			  char *line)
{
	char *words[4], *tok;
	int n = 0;

	while ((tok = strsep(&line, " \t\r"))) {
		if (!*tok)
			continue;
		if (n == ARRAY_SIZE(words))
			return -EINVAL;
		words[n++] = tok;
	}
	if (n == 0)
		return 0;
	if (n == 3 && !strcmp(words[0], "register"))
		return client_register(w, cl, words[1], words[2]);
	if (n == 1 && !strcmp(words[0], "beat"))
		return client_beat(w, cl);
	if (n == 1 && !strcmp(words[0], "unregister"))
		return client_unregister(w, cl);
	if (!strcmp(words[0], "result") || !strcmp(words[0], "histogram") ||
	    !strcmp(words[0], "sample"))
		return client_result(w, words, n);
	return -EINVAL;
}

static int warden_open(struct inode *inode, struct file *file)
{
	struct warden_client *cl = kzalloc(sizeof(*cl), GFP_KERNEL);

	if (!cl)
		return -ENOMEM;
	cl->slot = -1;
	file->private_data = cl;
	return nonseekable_open(inode, file);
}

static int warden_release(struct inode *inode, struct file *file)
{
	struct warden_client *cl = file->private_data;
	struct warden *w = &warden;
	unsigned long flags;

	if (cl->slot >= 0) {
		raw_spin_lock_irqsave(&w->lock, flags);
		w->apps[cl->slot].closed = true;
		apps_publish(w, cl->slot);
		raw_spin_unlock_irqrestore(&w->lock, flags);
	}
	kfree(cl);
	return 0;
}

/* Each write holds whole lines (a last line may lack its newline). */
static ssize_t warden_write(struct file *file, const char __user *ubuf,
			    size_t len, loff_t *ppos)
{
	struct warden_client *cl = file->private_data;
	char *buf, *p, *line;
	int r = 0;

	if (len > WARDEN_WRITE_MAX)
		return -EINVAL;
	buf = memdup_user_nul(ubuf, len);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	if (strlen(buf) != len)
		r = -EINVAL;
	p = buf;
	while (!r && (line = strsep(&p, "\n")))
		r = client_command(&warden, cl, line);
	kfree(buf);
	return r ? r : len;
}

/* A snapshot for people: the cell state, then one line per application. */
static ssize_t warden_read(struct file *file, char __user *ubuf, size_t count,
			   loff_t *ppos)
{
	struct warden *w = &warden;
	unsigned long flags;
	size_t n;
	ssize_t r;
	char *buf;
	int i;

	buf = kmalloc(WARDEN_STATUS_MAX, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	raw_spin_lock_irqsave(&w->lock, flags);
	n = scnprintf(buf, WARDEN_STATUS_MAX, "cell %s seq %llu%s\n",
		      state_name(w->state), w->seq,
		      w->stalled ? " stalled" : "");
	for (i = 0; i < WARDEN_MAX_APPS; i++) {
		const struct warden_app *a = &w->apps[i];

		if (a->used)
			n += scnprintf(buf + n, WARDEN_STATUS_MAX - n,
				       "app %s %u %s%s\n", a->name,
				       a->period_ms,
				       a->late ? "late" : "on-time",
				       a->closed ? " closed" : "");
	}
	raw_spin_unlock_irqrestore(&w->lock, flags);
	r = simple_read_from_buffer(ubuf, count, ppos, buf, n);
	kfree(buf);
	return r;
}

static const struct file_operations warden_fops = {
	.owner = THIS_MODULE,
	.open = warden_open,
	.release = warden_release,
	.read = warden_read,
	.write = warden_write,
	.llseek = no_llseek,
};

static struct miscdevice warden_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "warden",
	.fops = &warden_fops,
	.mode = 0600,
};

/* ---- finding the comm region ------------------------------------------- */

static int ivshmem_v2_region(struct pci_dev *pdev, resource_size_t *ret_base,
			     resource_size_t *ret_size, bool *ret_bar)
{
	u32 table, lo, hi;
	u64 rw_size, base;
	u8 len;
	int cap;

	/* ivshmem-net speaks its own protocol on the same IDs. */
	if ((pdev->class & 0xffff) == IVSHMEM_V2_PROTO_NET)
		return -ENODEV;
	cap = pci_find_capability(pdev, PCI_CAP_ID_VNDR);
	if (!cap)
		return -ENODEV;
	pci_read_config_byte(pdev, cap + IVSHMEM_V2_CAP_LENGTH, &len);
	pci_read_config_dword(pdev, cap + IVSHMEM_V2_CAP_STATE_TABLE_SIZE, &table);
	pci_read_config_dword(pdev, cap + IVSHMEM_V2_CAP_RW_SECTION_SIZE, &lo);
	pci_read_config_dword(pdev, cap + IVSHMEM_V2_CAP_RW_SECTION_SIZE + 4, &hi);
	rw_size = (u64)hi << 32 | lo;

	if (pci_resource_len(pdev, IVSHMEM_V2_BAR_SHMEM)) {
		base = pci_resource_start(pdev, IVSHMEM_V2_BAR_SHMEM);
		*ret_bar = true;
	} else if (len >= IVSHMEM_V2_CAP_LENGTH_WITH_BASE) {
		pci_read_config_dword(pdev, cap + IVSHMEM_V2_CAP_BASE_ADDRESS, &lo);
		pci_read_config_dword(pdev, cap + IVSHMEM_V2_CAP_BASE_ADDRESS + 4,
				      &hi);
		base = (u64)hi << 32 | lo;
		*ret_bar = false;
	} else {
		return -ENODEV;
	}
	/* The comm region is the R/W section, right after the state table:
	 * both sides write to it. */
	*ret_base = base + table;
	*ret_size = rw_size;
	return 0;
}

static int ivshmem_region(struct pci_dev *pdev, resource_size_t *ret_base,
			  resource_size_t *ret_size, bool *ret_bar)
{
	if (pdev->vendor == IVSHMEM_V2_VENDOR)
		return ivshmem_v2_region(pdev, ret_base, ret_size, ret_bar);
	*ret_base = pci_resource_start(pdev, IVSHMEM_QEMU_BAR_SHMEM);
	*ret_size = pci_resource_len(pdev, IVSHMEM_QEMU_BAR_SHMEM);
	*ret_bar = true;
	return *ret_size ? 0 : -ENODEV;
}

static int warden_pci_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct warden *w = &warden;
	resource_size_t base, size;
	struct warden_comm *comm;
	bool bar;
	int r;

	mutex_lock(&warden_attach_lock);
	if (w->comm) {
		dev_info(&pdev->dev, "already beating into another region, not this one\n");
		r = -EBUSY;
		goto out;
	}
	/* Without firmware (PVH boot, a Jailhouse cell) nobody else turns
	 * memory decoding on. */
	r = pci_enable_device_mem(pdev);
	if (r) {
		dev_err(&pdev->dev, "cannot enable device: %d\n", r);
		goto out;
	}
	r = ivshmem_region(pdev, &base, &size, &bar);
	if (r) {
		dev_info(&pdev->dev, "no shared memory for a comm region here\n");
		goto err_disable;
	}
	if (size < WARDEN_COMM_SIZE) {
		dev_err(&pdev->dev, "shared memory of %llu bytes, the comm region needs %u\n",
			(unsigned long long)size, WARDEN_COMM_SIZE);
		r = -ENOSPC;
		goto err_disable;
	}
	if (bar) {
		r = pci_request_region(pdev, IVSHMEM_QEMU_BAR_SHMEM, KBUILD_MODNAME);
		if (r) {
			dev_err(&pdev->dev, "shared memory BAR busy: %d\n", r);
			goto err_disable;
		}
	}
	comm = memremap(base, WARDEN_COMM_SIZE, MEMREMAP_WB);
	if (!comm) {
		dev_err(&pdev->dev, "cannot map the shared memory at %pa\n", &base);
		r = -ENOMEM;
		goto err_release;
	}
	r = warden_start(w, comm, base);
	if (r) {
		dev_err(&pdev->dev, "cannot register notifiers: %d\n", r);
		goto err_unmap;
	}
	w->pdev = pdev;
	w->bar_requested = bar;
	dev_info(&pdev->dev, "comm region at %pa, period %u ms, fault injection %s\n",
		 &base, period_ms, allow_inject ? "allowed" : "off");
	mutex_unlock(&warden_attach_lock);
	return 0;

err_unmap:
	memunmap(comm);
err_release:
	if (bar)
		pci_release_region(pdev, IVSHMEM_QEMU_BAR_SHMEM);
err_disable:
	pci_disable_device(pdev);
out:
	mutex_unlock(&warden_attach_lock);
	return r;
}

static void warden_pci_remove(struct pci_dev *pdev)
{
	struct warden *w = &warden;
	struct warden_comm *comm;

	mutex_lock(&warden_attach_lock);
	comm = w->comm;
	warden_stop(w, w->unloading ? "module unloaded" : "device removed");
	memunmap(comm);
	if (w->bar_requested)
		pci_release_region(pdev, IVSHMEM_QEMU_BAR_SHMEM);
	pci_disable_device(pdev);
	w->pdev = NULL;
	mutex_unlock(&warden_attach_lock);
}

static const struct pci_device_id warden_pci_ids[] = {
	{ PCI_DEVICE(IVSHMEM_QEMU_VENDOR, IVSHMEM_QEMU_DEVICE) },
	{ PCI_DEVICE(IVSHMEM_V2_VENDOR, IVSHMEM_V2_DEVICE) },
	{ }
};
MODULE_DEVICE_TABLE(pci, warden_pci_ids);

static struct pci_driver warden_pci_driver = {
	.name = KBUILD_MODNAME,
	.id_table = warden_pci_ids,
	.probe = warden_pci_probe,
	.remove = warden_pci_remove,
};

/*
 * The console ring behind a comm region bigger than a page (comm.h): the
 * kernel's log goes there too, so that the daemon can show this cell's own
 * output where cells share a UART (Jailhouse). Written under the console
 * lock printk holds for every console; one writer.
 */
static struct warden_console *warden_ring;
static u32 warden_ring_size;

static void warden_console_write(struct console *con, const char *s, unsigned int n)
{
	struct warden_console *r = READ_ONCE(warden_ring);
	u64 head;

	if (!r)
		return;
	head = r->head;
	while (n--)
		r->data[head++ % warden_ring_size] = *s++;
	smp_store_release(&r->head, head);
}

static struct console warden_console = {
	.name = "warden",
	.write = warden_console_write,
	/* enabled whatever console= says (as netconsole is), and the log
	 * from boot on replayed into it */
	.flags = CON_ENABLED | CON_PRINTBUFFER,
	.index = -1,
};

static void warden_ring_start(struct warden_comm *comm, size_t region)
{
	struct warden_console *r = (void *)((u8 *)comm + WARDEN_CONSOLE_OFFSET);
	size_t size = region - WARDEN_CONSOLE_OFFSET - sizeof(*r);

	if (region <= WARDEN_CONSOLE_OFFSET + sizeof(*r))
		return;
	if (size > U32_MAX)
		size = U32_MAX;
	/* A ring the last boot left with the same size goes on. */
	if (r->magic != WARDEN_CONSOLE_MAGIC || r->size != size) {
		r->head = 0;
		r->size = size;
		smp_wmb();
		r->magic = WARDEN_CONSOLE_MAGIC;
	}
	warden_ring_size = size;
	WRITE_ONCE(warden_ring, r);
	register_console(&warden_console);
}

static void warden_ring_stop(void)
{
	if (READ_ONCE(warden_ring)) {
		unregister_console(&warden_console);
		WRITE_ONCE(warden_ring, NULL);
	}
}

static int warden_attach_phys(struct warden *w)
{
	phys_addr_t base = phys_addr;
	struct warden_comm *comm;
	int r;

	/* The whole region: a console ring may follow the page. */
	comm = memremap(base, phys_size, MEMREMAP_WB);
	if (!comm) {
		pr_err("cannot map phys_addr %pa\n", &base);
		return -ENOMEM;
	}
	mutex_lock(&warden_attach_lock);
	r = warden_start(w, comm, base);
	mutex_unlock(&warden_attach_lock);
	if (r) {
		pr_err("cannot register notifiers: %d\n", r);
		memunmap(comm);
		return r;
	}
	pr_info("comm region at %pa, period %u ms, fault injection %s\n",
		&base, period_ms, allow_inject ? "allowed" : "off");
	warden_ring_start(comm, phys_size);
	return 0;
}

static void warden_detach_phys(struct warden *w)
{
	struct warden_comm *comm;

	warden_ring_stop();
	mutex_lock(&warden_attach_lock);
	comm = w->comm;
	warden_stop(w, "module unloaded");
	mutex_unlock(&warden_attach_lock);
	memunmap(comm);
}

/* ---- module ------------------------------------------------------------ */

static int __init warden_init(void)
{
	struct warden *w = &warden;
	int r;

	if (period_ms < 1 || period_ms > 10000) {
		pr_err("period_ms=%u is not in 1..10000\n", period_ms);
		return -EINVAL;
	}
	if (phys_addr && phys_size < WARDEN_COMM_SIZE) {
		pr_err("phys_size=%lu is below %u\n", phys_size, WARDEN_COMM_SIZE);
		return -EINVAL;
	}

	hrtimer_init(&w->timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL_PINNED_HARD);
	w->timer.function = warden_tick;
	INIT_WORK(&w->mbox_work, warden_mbox_work);
	INIT_WORK(&w->hang_work, warden_hang_work);
	INIT_WORK(&w->crash_work, warden_crash_work);
	w->wq = alloc_ordered_workqueue(KBUILD_MODNAME, WQ_HIGHPRI);
	if (!w->wq)
		return -ENOMEM;

	r = misc_register(&warden_misc);
	if (r) {
		pr_err("cannot register /dev/warden: %d\n", r);
		goto err_wq;
	}

	if (phys_addr) {
		r = warden_attach_phys(w);
		if (r)
			goto err_misc;
		return 0;
	}
	r = pci_register_driver(&warden_pci_driver);
	if (r) {
		pr_err("cannot register the PCI driver: %d\n", r);
		goto err_misc;
	}
	if (!READ_ONCE(w->comm)) {
		pr_err("no comm region: no usable ivshmem device (%04x:%04x, %04x:%04x) and no phys_addr\n",
		       IVSHMEM_QEMU_VENDOR, IVSHMEM_QEMU_DEVICE,
		       IVSHMEM_V2_VENDOR, IVSHMEM_V2_DEVICE);
		r = -ENODEV;
		goto err_pci;
	}
	return 0;

err_pci:
	pci_unregister_driver(&warden_pci_driver);
err_misc:
	misc_deregister(&warden_misc);
err_wq:
	destroy_workqueue(w->wq);
	return r;
}

static void __exit warden_exit(void)
{
	struct warden *w = &warden;

	w->unloading = true;
	if (phys_addr)
		warden_detach_phys(w);
	else
		pci_unregister_driver(&warden_pci_driver);
	misc_deregister(&warden_misc);
	destroy_workqueue(w->wq);
}

module_init(warden_init);
module_exit(warden_exit);

MODULE_DESCRIPTION("warden heartbeat, mailbox and crash reporting for a Linux cell");
MODULE_AUTHOR("warden");
MODULE_LICENSE("Dual MIT/GPL");
