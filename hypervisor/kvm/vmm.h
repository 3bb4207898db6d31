/* SPDX-License-Identifier: MIT */
/*
 * Internals of the warden-kvm runner: one VM per process, one thread per
 * vCPU (pinned from birth), the control loop on the main thread.
 *
 * Locking: Vmm.lock guards the cell state, every Vcpu's go/active/outcome
 * fields and the status page's seqcount-protected part. The console ring
 * and console.log have their own lock because vCPUs print while the control
 * thread holds Vmm.lock waiting for them to stop.
 */
#ifndef WARDEN_KVM_VMM_H
#define WARDEN_KVM_VMM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "runner.h"

#define VMM_MAX_RAM BACKEND_MAX_REGIONS
#define VMM_MAX_IMAGES BACKEND_MAX_IMAGES
#define VMM_MAX_CPUS BACKEND_MAX_CPUS
#define VMM_BOOTINFO_STRIDE 512u /* 64 vCPUs fit below WARDEN_KVM_IMAGE_MIN */
#define VMM_CONSOLE_LOG_MAX (1u << 20)

typedef enum VcpuOutcome {
	VCPU_PARKED,   /* stopped on request or never started */
	VCPU_RUNNING,
	VCPU_HALTED,   /* the guest halted it */
	VCPU_SHUTDOWN, /* triple fault */
	VCPU_FAILED,   /* KVM gave up */
} VcpuOutcome;

typedef struct VmmRam {
	uint64_t gpa;
	uint64_t size;
	uint64_t phys; /* informational: the partition address from the spec */
	uint8_t *host;
} VmmRam;

typedef struct VmmImage {
	char *path;
	uint64_t addr;
} VmmImage;

typedef struct Vmm Vmm;

typedef struct Vcpu {
	Vmm *vmm;
	unsigned index;
	unsigned host_cpu;
	int fd;
	int wake_fd; /* eventfd: cuts a WARDEN_PORT_SLEEP short */
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;
	VcpuOutcome next; /* vCPU thread only: outcome of the current run */

	/* under Vmm.lock */
	bool go;
	bool active;
	VcpuOutcome outcome;
	char reason[BACKEND_REASON_LEN];

	int stop_req; /* atomic: leave KVM_RUN and park */
} Vcpu;

struct Vmm {
	const char *name;
	const char *dir;
	int dir_fd;

	/* spec */
	VmmRam ram[VMM_MAX_RAM];
	size_t n_ram;
	uint64_t comm_gpa, comm_size;
	VmmImage images[VMM_MAX_IMAGES];
	size_t n_images;
	uint64_t entry;
	uint32_t period_ms;
	uint32_t boot_flags;
	const char *args;
	unsigned rt_priority; /* --rt-priority: SCHED_FIFO vCPU threads, 0 = no */
	bool mlock;           /* --mlock: mlockall() once the VM is built */
	unsigned cpus[VMM_MAX_CPUS];
	size_t n_cpus;

	/* KVM */
	int kvm_fd, vm_fd;
	size_t run_size;
	struct kvm_cpuid2 *cpuid;
	struct kvm_sregs sregs0; /* the vCPU's reset state, template for boots */
	uint64_t tsc_khz;
	Vcpu vcpus[VMM_MAX_CPUS];

	/* shared files */
	int comm_fd;
	uint8_t *comm;
	int status_fd;
	struct warden_kvm_status *status;
	int event_fd;

	/* console */
	pthread_mutex_t console_lock;
	int console_fd;
	uint64_t console_log_size;
	char line[256];
	size_t line_len;

	/* under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	BackendCellState state;
	bool loaded;
	bool quit;
};

/* vmm.c: the machine */
int vmm_create(Vmm *v);
int vmm_load(Vmm *v, char *err, size_t err_len);
int vmm_prepare_boot(Vmm *v);

/* vcpu.c: threads and exits */
int vcpu_threads_start(Vmm *v);
/* Stop every vCPU and wait for all of them to park; Vmm.lock held. */
int vmm_stop_locked(Vmm *v);
/* Let every vCPU run from its current registers; Vmm.lock held. */
void vmm_go_locked(Vmm *v);

/* status.c: the status page, the event fd and the console */
int status_open(Vmm *v);
/* Change the cell state, publish it and wake the daemon; Vmm.lock held. */
void status_set_state_locked(Vmm *v, BackendCellState s, const char *reason);
void status_count(uint64_t *counter);
void status_notify(Vmm *v);
void console_put(Vmm *v, const uint8_t *buf, size_t n);
void console_flush(Vmm *v);

uint64_t now_mono_ns(void);

#endif /* WARDEN_KVM_VMM_H */
