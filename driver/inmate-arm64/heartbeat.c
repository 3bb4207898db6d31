/* SPDX-License-Identifier: MIT */
/*
 * The inmate's half of the comm region protocol (api/warden/comm.h): the
 * heartbeat, the panic/halt reason and the mailbox.
 *
 * The region is device memory to this CPU (MMU off): every access below is
 * a naturally aligned volatile load or store, and "release" is `dmb ish`
 * followed by a plain store, "acquire" a plain load followed by `dmb ish`.
 */
#include "internal.h"

void hb_init(uint32_t period_ms, uint32_t caps)
{
	volatile struct warden_comm *c = inmate_env.comm;
	uint64_t old_seq = 0;

	if (!period_ms)
		period_ms = 1;
	inmate_env.flags = caps & WARDEN_FLAG_INJECT;

	/* Keep seq growing across restarts (the region survives them), so
	 * "seq changed" and "seq grew" mean the same to a reader. */
	if (c->magic == WARDEN_COMM_MAGIC)
		old_seq = c->seq;

	/* Hide the region while it is rewritten: no reader may pair a valid
	 * magic with the last boot's leftovers. */
	c->magic = 0;
	comm_release();
	for (uintptr_t off = sizeof(c->magic); off < WARDEN_COMM_MAILBOX_OFFSET;
	     off += sizeof(uint64_t))
		*(volatile uint64_t *)((uintptr_t)c + off) = 0;

	c->abi = WARDEN_COMM_ABI;
	c->size = WARDEN_COMM_SIZE;
	c->state = WARDEN_INMATE_BOOTING;
	c->period_ms = period_ms;
	c->flags = inmate_env.flags;
	c->seq = old_seq;
	inmate_env.seq = old_seq;

	/* Whatever the mailbox holds predates this boot. */
	inmate_env.ack_seq = c->cmd_seq;
	comm_acquire();
	c->ack_cmd = WARDEN_CMD_NONE;
	c->ack_seq = inmate_env.ack_seq;

	c->uptime_ns = uptime_ns();
	comm_release();
	c->magic = WARDEN_COMM_MAGIC;
}

void hb_beat(void)
{
	volatile struct warden_comm *c = inmate_env.comm;

	c->uptime_ns = uptime_ns();
	comm_release();
	c->seq = ++inmate_env.seq;
}

void hb_set_state(enum warden_inmate_state state)
{
	/* After whatever the state sums up (a reason, a last beat). */
	comm_release();
	inmate_env.comm->state = state;
}

void hb_set_stage(uint32_t stage)
{
	inmate_env.comm->boot_stage = stage;
}

bool hb_inject_allowed(void)
{
	return inmate_env.flags & WARDEN_FLAG_INJECT;
}

static void write_reason(const char *reason, uint32_t code)
{
	volatile struct warden_comm *c = inmate_env.comm;
	size_t n = strnlen(reason, WARDEN_COMM_REASON_LEN - 1);
	/* Odd means a writer died half-way (a fault while panicking): start
	 * from the next even value so that readers see a change. */
	uint32_t s = (c->reason_seq + 1) & ~1u;

	c->reason_seq = s + 1;
	comm_release();
	/* Byte by byte: the source has no alignment to speak of, and a wide
	 * unaligned access to device memory faults. */
	for (size_t i = 0; i < WARDEN_COMM_REASON_LEN; i++)
		c->reason[i] = i < n ? reason[i] : '\0';
	c->reason_code = code;
	c->event_mono_ns = uptime_ns();
	comm_release();
	c->reason_seq = s + 2;
}

void hb_panic(const char *reason, uint32_t code)
{
	write_reason(reason, code);
	hb_set_state(WARDEN_INMATE_PANICKED);
	/* The console is slow: the daemon hears first. */
	printk("PANIC: %s (code %u)\n", reason, code);
	cpu_halt_forever();
}

void hb_halt(const char *reason)
{
	write_reason(reason, 0);
	hb_set_state(WARDEN_INMATE_HALTED);
	printk("halted: %s\n", reason);
	cpu_halt_forever();
}

bool mbox_poll(struct mbox_cmd *ret)
{
	volatile struct warden_comm *c = inmate_env.comm;
	uint64_t seq = c->cmd_seq;
	uint32_t cmd, arg;

	comm_acquire();
	for (;;) {
		uint64_t again;

		if (seq == inmate_env.ack_seq)
			return false;
		cmd = c->cmd;
		arg = c->cmd_arg;
		/* The daemon may have written the next command meanwhile;
		 * take cmd and arg only together with their own seq. */
		comm_acquire();
		again = c->cmd_seq;
		comm_acquire();
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
	comm_release();
	c->ack_seq = cmd->seq;
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
