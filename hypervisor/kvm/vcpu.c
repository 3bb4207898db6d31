/* SPDX-License-Identifier: MIT */
/*
 * vCPU threads and the exits they handle.
 *
 * Stopping a vCPU that never exits (ring-3 `cli; jmp .`) uses the
 * immediate_exit protocol: the controller sets stop_req, then sends
 * SIG_KICK to the thread. The handler sets run->immediate_exit, so a kick
 * that lands just before KVM_RUN makes it return at once, and one that
 * lands inside KVM_RUN interrupts it with EINTR. The thread clears
 * immediate_exit before it checks stop_req, so no kick is lost.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "../../api/warden/kvm.h"
#include "vmm.h"

#define SIG_KICK SIGUSR1
#define RFLAGS_IF (1ull << 9)
#define STOP_TIMEOUT_NS (2ull * 1000000000ull)
#define REKICK_NS (10ull * 1000000ull)

static __thread struct kvm_run *tls_run;

static void kick_handler(int sig)
{
	(void)sig;
	if (tls_run)
		tls_run->immediate_exit = 1;
}

static void kick(Vcpu *c)
{
	__atomic_store_n(&c->stop_req, 1, __ATOMIC_SEQ_CST);
	uint64_t one = 1;
	(void)!write(c->wake_fd, &one, sizeof(one));
	if (c->thread_started)
		pthread_kill(c->thread, SIG_KICK);
}

/* Interruptible paravirtual sleep: the wake eventfd is written by kick(),
 * so a stop never waits for the guest's timer to expire. */
static void vcpu_sleep(Vcpu *c, uint64_t us)
{
	struct timespec ts = {
		.tv_sec = (time_t)(us / 1000000),
		.tv_nsec = (long)(us % 1000000) * 1000,
	};
	struct pollfd p = { .fd = c->wake_fd, .events = POLLIN };

	if (__atomic_load_n(&c->stop_req, __ATOMIC_SEQ_CST))
		return;
	(void)ppoll(&p, 1, &ts, NULL);
}

static void handle_io(Vcpu *c)
{
	struct kvm_run *run = c->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	size_t len = (size_t)run->io.size * run->io.count;
	Vmm *v = c->vmm;
	uint16_t port = run->io.port;

	if (run->io.direction == KVM_EXIT_IO_IN) {
		/* Nothing to read but the UART's status: transmitter empty. */
		memset(data, port == WARDEN_PORT_UART + 5 ? 0x60 : (port >= WARDEN_PORT_UART && port <= WARDEN_PORT_UART + 7 ? 0 : 0xff), len);
		status_count(&v->status->exits_io);
		return;
	}

	switch (port) {
	case WARDEN_PORT_UART:
		status_count(&v->status->exits_io);
		if (run->io.size == 1)
			console_put(v, data, len);
		return;
	case WARDEN_PORT_SLEEP: {
		uint64_t us = 0;
		memcpy(&us, data, run->io.size <= 8 ? run->io.size : 8);
		status_count(&v->status->exits_sleep);
		vcpu_sleep(c, us);
		return;
	}
	case WARDEN_PORT_HALT:
		status_count(&v->status->exits_io);
		c->next = VCPU_HALTED;
		snprintf(c->reason, sizeof(c->reason), "halt port");
		return;
	case WARDEN_PORT_DOORBELL: {
		/* Only reached if the ioeventfd did not match this access. */
		uint64_t one = 1;
		status_count(&v->status->exits_io);
		(void)!write(v->event_fd, &one, sizeof(one));
		return;
	}
	default:
		status_count(&v->status->exits_io);
		return;
	}
}

static void handle_hlt(Vcpu *c)
{
	struct kvm_regs regs;

	status_count(&c->vmm->status->exits_hlt);
	c->next = VCPU_HALTED;
	/* No interrupt controller: nothing can ever wake a halted vCPU, so
	 * both flavours stop it for good; the reason tells them apart. */
	if (ioctl(c->fd, KVM_GET_REGS, &regs) == 0 && !(regs.rflags & RFLAGS_IF))
		snprintf(c->reason, sizeof(c->reason), "hlt with interrupts off");
	else
		snprintf(c->reason, sizeof(c->reason), "hlt");
}

static const char *internal_suberror(uint32_t s)
{
	switch (s) {
	case KVM_INTERNAL_ERROR_EMULATION: return "emulation failure";
	case KVM_INTERNAL_ERROR_SIMUL_EX: return "exception during exception delivery";
	case KVM_INTERNAL_ERROR_DELIVERY_EV: return "event delivery failure";
	default: return "unknown";
	}
}

/* Run until a stop request or a terminal exit; sets c->next. */
static void vcpu_run_loop(Vcpu *c)
{
	struct kvm_run *run = c->run;
	Vmm *v = c->vmm;

	c->next = VCPU_RUNNING;
	for (;;) {
		run->immediate_exit = 0;
		if (__atomic_load_n(&c->stop_req, __ATOMIC_SEQ_CST)) {
			c->next = VCPU_PARKED;
			return;
		}
		if (ioctl(c->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			c->next = VCPU_FAILED;
			snprintf(c->reason, sizeof(c->reason), "KVM_RUN: %s", strerror(errno));
			return;
		}
		status_count(&v->status->exits);
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			handle_io(c);
			break;
		case KVM_EXIT_HLT:
			handle_hlt(c);
			break;
		case KVM_EXIT_MMIO:
			/* Unbacked guest-physical memory: reads float high. */
			status_count(&v->status->exits_mmio);
			if (!run->mmio.is_write)
				memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
			break;
		case KVM_EXIT_INTR:
			break;
		case KVM_EXIT_SHUTDOWN:
			c->next = VCPU_SHUTDOWN;
			snprintf(c->reason, sizeof(c->reason), "triple fault");
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			c->next = VCPU_SHUTDOWN;
			snprintf(c->reason, sizeof(c->reason), "system event %u",
				 run->system_event.type);
			break;
		case KVM_EXIT_FAIL_ENTRY:
			c->next = VCPU_FAILED;
			snprintf(c->reason, sizeof(c->reason),
				 "entry failed: hardware reason 0x%llx",
				 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			c->next = VCPU_FAILED;
			snprintf(c->reason, sizeof(c->reason), "internal error: suberror %u (%s)",
				 run->internal.suberror, internal_suberror(run->internal.suberror));
			break;
		default:
			c->next = VCPU_FAILED;
			snprintf(c->reason, sizeof(c->reason), "unhandled exit reason %u",
				 run->exit_reason);
			break;
		}
		if (c->next != VCPU_RUNNING)
			return;
	}
}

/* A vCPU ended on its own: fold it into the cell state. Vmm.lock held. */
static void vcpu_settle_locked(Vcpu *c)
{
	Vmm *v = c->vmm;

	switch (c->outcome) {
	case VCPU_SHUTDOWN:
	case VCPU_FAILED:
		/* The machine is dead as a whole: park the siblings too. */
		for (unsigned i = 0; i < v->n_cpus; i++)
			if (&v->vcpus[i] != c && v->vcpus[i].active)
				kick(&v->vcpus[i]);
		if (v->state == BACKEND_CELL_RUNNING)
			status_set_state_locked(v, c->outcome == VCPU_SHUTDOWN ?
						BACKEND_CELL_SHUTDOWN : BACKEND_CELL_FAILED,
						c->reason);
		break;
	case VCPU_HALTED:
		for (unsigned i = 0; i < v->n_cpus; i++)
			if (v->vcpus[i].outcome != VCPU_HALTED)
				return;
		if (v->state == BACKEND_CELL_RUNNING)
			status_set_state_locked(v, BACKEND_CELL_HALTED, c->reason);
		break;
	default:
		break;
	}
}

static void *vcpu_thread(void *arg)
{
	Vcpu *c = arg;
	Vmm *v = c->vmm;
	sigset_t ss;

	tls_run = c->run;
	sigemptyset(&ss);
	sigaddset(&ss, SIG_KICK);
	pthread_sigmask(SIG_UNBLOCK, &ss, NULL);

	pthread_mutex_lock(&v->lock);
	for (;;) {
		while (!c->go && !v->quit)
			pthread_cond_wait(&v->cond, &v->lock);
		if (v->quit)
			break;
		c->active = true;
		pthread_mutex_unlock(&v->lock);

		vcpu_run_loop(c);

		pthread_mutex_lock(&v->lock);
		c->active = false;
		c->go = false;
		c->outcome = c->next;
		if (c->outcome != VCPU_PARKED) {
			console_flush(v);
			vcpu_settle_locked(c);
		}
		pthread_cond_broadcast(&v->cond);
	}
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

int vcpu_threads_start(Vmm *v)
{
	struct sigaction sa = { .sa_handler = kick_handler };
	pthread_attr_t attr;
	int r;

	/* No SA_RESTART: KVM_RUN and ppoll must come back with EINTR. */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIG_KICK, &sa, NULL) < 0)
		return -errno;

	for (unsigned i = 0; i < v->n_cpus; i++) {
		Vcpu *c = &v->vcpus[i];
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(c->host_cpu, &set);
		r = pthread_attr_init(&attr);
		if (r)
			return -r;
		/* Pinned from birth: the thread never runs on a foreign CPU. */
		r = pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
		if (!r)
			r = pthread_attr_setstacksize(&attr, 256 * 1024);
		if (!r)
			r = pthread_create(&c->thread, &attr, vcpu_thread, c);
		pthread_attr_destroy(&attr);
		if (r)
			return -r;
		c->thread_started = true;
		char tname[16];
		snprintf(tname, sizeof(tname), "vcpu%u", i);
		pthread_setname_np(c->thread, tname);
	}
	return 0;
}

int vmm_stop_locked(Vmm *v)
{
	uint64_t deadline = now_mono_ns() + STOP_TIMEOUT_NS;

	for (unsigned i = 0; i < v->n_cpus; i++) {
		v->vcpus[i].go = false;
		if (v->vcpus[i].active)
			kick(&v->vcpus[i]);
	}
	for (;;) {
		bool busy = false;
		for (unsigned i = 0; i < v->n_cpus; i++)
			busy |= v->vcpus[i].active;
		if (!busy)
			return 0;
		uint64_t now = now_mono_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		/* Re-kick now and then: cheap insurance against a kick that
		 * raced with a thread between its loop and its run. */
		uint64_t until = now + REKICK_NS < deadline ? now + REKICK_NS : deadline;
		struct timespec ts = {
			.tv_sec = (time_t)(until / 1000000000ull),
			.tv_nsec = (long)(until % 1000000000ull),
		};
		if (pthread_cond_timedwait(&v->cond, &v->lock, &ts) == ETIMEDOUT)
			for (unsigned i = 0; i < v->n_cpus; i++)
				if (v->vcpus[i].active)
					kick(&v->vcpus[i]);
	}
}

void vmm_go_locked(Vmm *v)
{
	for (unsigned i = 0; i < v->n_cpus; i++) {
		Vcpu *c = &v->vcpus[i];
		uint64_t drain;

		__atomic_store_n(&c->stop_req, 0, __ATOMIC_SEQ_CST);
		(void)!read(c->wake_fd, &drain, sizeof(drain));
		c->outcome = VCPU_RUNNING;
		c->reason[0] = 0;
		c->go = true;
	}
	pthread_cond_broadcast(&v->cond);
}
