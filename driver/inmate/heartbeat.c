/* SPDX-License-Identifier: MIT */
/*
 * The inmate's half of the comm region protocol (api/warden/comm.h): the
 * heartbeat, the panic/halt reason and the mailbox.
 */
#include "internal.h"

#define COMM_INMATE_BYTES WARDEN_COMM_MAILBOX_OFFSET

uint32_t hb_period_ms(uint32_t fallback)
{
	const struct warden_bootinfo *bi = inmate_env.bootinfo;

	return bi && bi->period_ms ? bi->period_ms : fallback;
}

void hb_init(uint32_t period_ms, uint32_t caps)
{
	volatile struct warden_comm *c = inmate_env.comm;
	const struct warden_bootinfo *bi = inmate_env.bootinfo;
	uint64_t old_seq = 0;
	uint32_t flags = inmate_env.flags & WARDEN_FLAG_HOST_CLOCK;

	if (!period_ms)
		period_ms = 1;
	if ((caps & WARDEN_FLAG_INJECT) && bi && (bi->flags & WARDEN_FLAG_INJECT))
		flags |= WARDEN_FLAG_INJECT;
	inmate_env.flags = flags;
	inmate_env.period_tsc = ns_to_tsc((uint64_t)period_ms * 1000000u);

	/* Keep seq growing across in-place restarts (the region survives
	 * them), so "seq changed" and "seq grew" mean the same to a reader. */
	if (c->magic == WARDEN_COMM_MAGIC)
		old_seq = c->seq;

	/* Hide the region while it is rewritten: no reader may pair a valid
	 * magic with the last boot's leftovers. */
	__atomic_store_n(&c->magic, 0, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memset((void *)((uintptr_t)c + sizeof(c->magic)), 0,
	       COMM_INMATE_BYTES - sizeof(c->magic));

	c->abi = WARDEN_COMM_ABI;
	c->size = WARDEN_COMM_SIZE;
	c->state = WARDEN_INMATE_BOOTING;
	c->period_ms = period_ms;
	c->flags = flags;
	c->seq = old_seq;
	inmate_env.seq = old_seq;

	/* Whatever the mailbox holds predates this boot. */
	inmate_env.ack_seq = __atomic_load_n(&c->cmd_seq, __ATOMIC_ACQUIRE);
	c->ack_cmd = WARDEN_CMD_NONE;
	c->ack_seq = inmate_env.ack_seq;

	inmate_env.last_beat_tsc = tsc_read();
	c->uptime_ns = uptime_ns();
	__atomic_store_n(&c->magic, WARDEN_COMM_MAGIC, __ATOMIC_RELEASE);
}

void hb_beat(void)
{
	volatile struct warden_comm *c = inmate_env.comm;
	uint64_t now = tsc_read();

	c->uptime_ns = tsc_to_ns(now - inmate_env.boot_tsc);
	if (inmate_env.flags & WARDEN_FLAG_HOST_CLOCK)
		c->beat_mono_ns = host_mono_ns();
	__atomic_store_n(&c->seq, ++inmate_env.seq, __ATOMIC_RELEASE);
	inmate_env.last_beat_tsc = now;
}

bool hb_beat_due(void)
{
	if (tsc_read() - inmate_env.last_beat_tsc < inmate_env.period_tsc)
		return false;
	hb_beat();
	return true;
}

void hb_set_state(enum warden_inmate_state state)
{
	inmate_env.comm->state = state;
}

void hb_set_stage(uint32_t stage)
{
	inmate_env.comm->boot_stage = stage;
}

void hb_set_result(unsigned int idx, uint64_t value)
{
	volatile struct warden_comm *c = inmate_env.comm;

	if (idx < sizeof(c->result) / sizeof(c->result[0]))
		c->result[idx] = value;
}

bool hb_inject_allowed(void)
{
	return inmate_env.flags & WARDEN_FLAG_INJECT;
}

static void write_reason(const char *reason, uint32_t code)
{
	volatile struct warden_comm *c = inmate_env.comm;
	uint32_t s = c->reason_seq;
	size_t n = strnlen(reason, WARDEN_COMM_REASON_LEN - 1);

	/* Odd means a writer died half-way (a trap while panicking): start
	 * from the next even value so that readers see a change. */
	s = (s + 1) & ~1u;
	__atomic_store_n(&c->reason_seq, s + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	for (size_t i = 0; i < WARDEN_COMM_REASON_LEN; i++)
		c->reason[i] = i < n ? reason[i] : '\0';
	c->reason_code = code;
	c->event_mono_ns = host_mono_ns();
	__atomic_store_n(&c->reason_seq, s + 2, __ATOMIC_RELEASE);
}

void doorbell_ring(void)
{
	outl(WARDEN_PORT_DOORBELL, 1);
}

void hb_panic(const char *reason, uint32_t code)
{
	write_reason(reason, code);
	hb_set_state(WARDEN_INMATE_PANICKED);
	doorbell_ring();
	/* The console is slow (an exit per byte): the daemon hears first. */
	printk("PANIC: %s (code %u)\n", reason, code);
	cpu_hlt_forever();
}

void hb_halt(const char *reason)
{
	write_reason(reason, 0);
	hb_set_state(WARDEN_INMATE_HALTED);
	doorbell_ring();
	printk("halted: %s\n", reason);
	outl(WARDEN_PORT_HALT, 0);
	/* Only loaders other than warden-kvm get here. */
	cpu_hlt_forever();
}

bool mbox_poll(struct mbox_cmd *ret)
{
	volatile struct warden_comm *c = inmate_env.comm;
	uint64_t seq = __atomic_load_n(&c->cmd_seq, __ATOMIC_ACQUIRE);
	uint32_t cmd, arg;

	for (;;) {
		uint64_t again;

		if (seq == inmate_env.ack_seq)
			return false;
		cmd = c->cmd;
		arg = c->cmd_arg;
		/* The daemon may have written the next command meanwhile;
		 * take cmd and arg only together with their own seq. */
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		again = __atomic_load_n(&c->cmd_seq, __ATOMIC_ACQUIRE);
		if (again == seq)
			break;
		seq = again;
	}
	ret->seq = seq;
	ret->cmd = cmd;
	ret->arg = arg;
	return true;
}

void mbox_ack(const struct mbox_cmd *cmd)
{
	volatile struct warden_comm *c = inmate_env.comm;

	c->ack_cmd = cmd->cmd;
	__atomic_store_n(&c->ack_seq, cmd->seq, __ATOMIC_RELEASE);
	inmate_env.ack_seq = cmd->seq;
}

bool mbox_serve(struct mbox_cmd *ret)
{
	struct mbox_cmd m;

	if (!mbox_poll(&m))
		return false;

	switch (m.cmd) {
	case WARDEN_CMD_SHUTDOWN:
		mbox_ack(&m);
		printk("shutdown requested\n");
		hb_set_state(WARDEN_INMATE_STOPPING);
		hb_beat();
		hb_halt("shutdown");
	case WARDEN_CMD_INJECT:
		if (hb_inject_allowed()) {
			*ret = m;
			return true;
		}
		mbox_ack(&m);
		return false;
	case WARDEN_CMD_PING:
	default:
		mbox_ack(&m);
		return false;
	}
}
