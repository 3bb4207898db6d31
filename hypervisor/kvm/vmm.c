/* SPDX-License-Identifier: MIT */
/*
 * The VM of one cell: memory slots, vCPUs, and what a boot needs (page
 * tables, GDT, boot info, registers) per api/warden/kvm.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../api/warden/apps.h"
#include "../../api/warden/kvm.h"
#include "vmm.h"

#define MSR_IA32_TSC 0x10

#define PTE_P (1ull << 0)
#define PTE_RW (1ull << 1)
#define PTE_US (1ull << 2)
#define PTE_PS (1ull << 7)

#define CR0_PE (1ull << 0)
#define CR0_MP (1ull << 1)
#define CR0_ET (1ull << 4)
#define CR0_NE (1ull << 5)
#define CR0_WP (1ull << 16)
#define CR0_PG (1ull << 31)
#define CR4_PAE (1ull << 5)
#define CR4_OSFXSR (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)

uint64_t now_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static VmmRam *ram_find(Vmm *v, uint64_t gpa, uint64_t len)
{
	for (size_t i = 0; i < v->n_ram; i++) {
		VmmRam *r = &v->ram[i];
		if (gpa >= r->gpa && len <= r->size && gpa - r->gpa <= r->size - len)
			return r;
	}
	return NULL;
}

static int set_slot(Vmm *v, uint32_t slot, uint64_t gpa, uint64_t size, void *host)
{
	struct kvm_userspace_memory_region m = {
		.slot = slot,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};

	return ioctl(v->vm_fd, KVM_SET_USER_MEMORY_REGION, &m) < 0 ? -errno : 0;
}

static int vcpu_create(Vmm *v, unsigned i)
{
	Vcpu *c = &v->vcpus[i];

	c->vmm = v;
	c->index = i;
	c->host_cpu = v->cpus[i];
	c->fd = ioctl(v->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
	if (c->fd < 0)
		return -errno;
	c->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
	if (c->run == MAP_FAILED) {
		c->run = NULL;
		return -errno;
	}
	c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->wake_fd < 0)
		return -errno;
	if (ioctl(c->fd, KVM_SET_CPUID2, v->cpuid) < 0)
		return -errno;
	if (i == 0) {
		int khz = ioctl(c->fd, KVM_GET_TSC_KHZ);
		if (khz <= 0)
			return khz < 0 ? -errno : -ENODEV;
		v->tsc_khz = (uint64_t)khz;
		if (ioctl(c->fd, KVM_GET_SREGS, &v->sregs0) < 0)
			return -errno;
	}
	c->outcome = VCPU_PARKED;
	return 0;
}

static int cpuid_fetch(Vmm *v)
{
	/* Each try costs a CPUID exit per leaf on nested KVM: start big. */
	for (unsigned n = 128; n <= 1024; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c)
			return -ENOMEM;
		c->nent = n;
		if (ioctl(v->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			v->cpuid = c;
			return 0;
		}
		free(c);
		if (errno != E2BIG)
			return -errno;
	}
	return -E2BIG;
}

/*
 * Everything that costs time happens here, once per process: memory is
 * allocated and registered, vCPUs created. Slots go in before anything
 * else touches the VM (an irqchip would make each slot change slow; we
 * have none anyway).
 */
int vmm_create(Vmm *v)
{
	int r;

	if (!ram_find(v, 0, WARDEN_KVM_IMAGE_MIN))
		return -EINVAL; /* the runner's page tables and boot info live there */

	v->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (v->kvm_fd < 0)
		return -errno;
	if (ioctl(v->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		return -EPROTONOSUPPORT;
	v->vm_fd = ioctl(v->kvm_fd, KVM_CREATE_VM, 0);
	if (v->vm_fd < 0)
		return -errno;
	r = ioctl(v->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (r <= 0)
		return r < 0 ? -errno : -ENODEV;
	v->run_size = (size_t)r;

	uint32_t slot = 0;
	for (size_t i = 0; i < v->n_ram; i++) {
		VmmRam *m = &v->ram[i];
		m->host = mmap(NULL, m->size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (m->host == MAP_FAILED) {
			m->host = NULL;
			return -errno;
		}
		r = set_slot(v, slot++, m->gpa, m->size, m->host);
		if (r < 0)
			return r;
	}
	r = set_slot(v, slot++, v->comm_gpa, v->comm_size, v->comm);
	if (r < 0)
		return r;

	/* Intel needs a TSS area for real-mode emulation; we never enter real
	 * mode, but give it one above RAM so KVM never picks its own. */
	(void)ioctl(v->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul);

	/* The doorbell never exits to us: KVM signals the eventfd directly.
	 * Length 0 matches any access width at the port. */
	struct kvm_ioeventfd ioev = {
		.addr = WARDEN_PORT_DOORBELL,
		.len = 0,
		.fd = v->event_fd,
		.flags = KVM_IOEVENTFD_FLAG_PIO,
	};
	if (ioctl(v->vm_fd, KVM_IOEVENTFD, &ioev) < 0)
		return -errno;

	r = cpuid_fetch(v);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < v->n_cpus; i++) {
		r = vcpu_create(v, i);
		if (r < 0)
			return r;
	}
	return 0;
}

static void build_page_tables(uint8_t *ram0)
{
	uint64_t *pml4 = (uint64_t *)(ram0 + WARDEN_KVM_PML4);
	uint64_t *pdpt = (uint64_t *)(ram0 + WARDEN_KVM_PDPT);
	uint64_t *pd = (uint64_t *)(ram0 + WARDEN_KVM_PD);
	const uint64_t flags = PTE_P | PTE_RW | PTE_US;

	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = WARDEN_KVM_PDPT | flags;
	for (uint64_t i = 0; i < 4; i++)
		pdpt[i] = (WARDEN_KVM_PD + i * 4096) | flags;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i << 21) | flags | PTE_PS;
}

static void build_gdt(uint8_t *ram0)
{
	uint64_t *gdt = (uint64_t *)(ram0 + WARDEN_KVM_GDT);

	memset(gdt, 0, 4096);
	gdt[0] = 0;
	gdt[1] = 0x00af9b000000ffffull; /* 0x08: 64-bit code, DPL 0 */
	gdt[2] = 0x00cf93000000ffffull; /* 0x10: data, DPL 0 */
}

static int load_image(Vmm *v, const VmmImage *img, char *err, size_t err_len)
{
	struct stat st;
	int fd = open(img->path, O_RDONLY | O_CLOEXEC);
	int r = 0;

	if (fd < 0) {
		r = -errno;
		snprintf(err, err_len, "cannot open image %s", img->path);
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	VmmRam *m = ram_find(v, img->addr, (uint64_t)st.st_size);
	if (!m || (m->gpa == 0 && img->addr < WARDEN_KVM_IMAGE_MIN)) {
		r = -ERANGE;
		snprintf(err, err_len, "image %s (%lld bytes) does not fit at 0x%llx",
			 img->path, (long long)st.st_size, (unsigned long long)img->addr);
		goto out;
	}
	uint8_t *dst = m->host + (img->addr - m->gpa);
	size_t done = 0;
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, dst + done, (size_t)st.st_size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			snprintf(err, err_len, "short read from image %s", img->path);
			goto out;
		}
		done += (size_t)n;
	}
out:
	close(fd);
	return r;
}

/* Put the machine into its boot state: tables, images, a clean inmate half
 * of the comm region. vCPU registers follow in vmm_prepare_boot(). */
int vmm_load(Vmm *v, char *err, size_t err_len)
{
	VmmRam *m0 = ram_find(v, 0, WARDEN_KVM_IMAGE_MIN);
	int r;

	/* Only what the runner owns is rewritten (every page-table entry,
	 * the GDT, the boot info); clearing all of low RAM would cost more
	 * than the rest of a reset. */
	build_page_tables(m0->host);
	build_gdt(m0->host);
	for (size_t i = 0; i < v->n_images; i++) {
		r = load_image(v, &v->images[i], err, err_len);
		if (r < 0)
			return r;
	}
	/* The inmate half belongs to the inmate that is about to boot; a
	 * stale heartbeat from the last boot must not look alive. */
	warden_comm_clear_inmate(v->comm);
	return 0;
}

static int vcpu_prepare(Vmm *v, Vcpu *c)
{
	struct warden_bootinfo *bi;
	uint64_t bi_gpa = WARDEN_KVM_BOOTINFO + (uint64_t)c->index * VMM_BOOTINFO_STRIDE;
	struct kvm_sregs s = v->sregs0;
	struct kvm_segment code = {
		.base = 0, .limit = 0xffffffff, .selector = 0x08, .type = 0xb,
		.present = 1, .dpl = 0, .db = 0, .s = 1, .l = 1, .g = 1,
	};
	struct kvm_segment data = {
		.base = 0, .limit = 0xffffffff, .selector = 0x10, .type = 0x3,
		.present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1,
	};
	struct kvm_regs regs = {
		.rip = v->entry,
		.rdi = bi_gpa,
		.rsi = WARDEN_BOOT_MAGIC,
		.rflags = 2,
	};
	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
	struct kvm_vcpu_events ev = { 0 };
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} msr = { .hdr.nmsrs = 1, .e.index = MSR_IA32_TSC };

	s.cs = code;
	s.ds = s.es = s.fs = s.gs = s.ss = data;
	s.gdt.base = WARDEN_KVM_GDT;
	s.gdt.limit = 3 * 8 - 1;
	s.idt.base = 0;
	s.idt.limit = 0; /* no IDT: any exception before the inmate's own is fatal */
	s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	s.cr2 = 0;
	s.cr3 = WARDEN_KVM_PML4;
	s.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
	s.efer = EFER_LME | EFER_LMA;
	memset(s.interrupt_bitmap, 0, sizeof(s.interrupt_bitmap));

	/* Clear whatever the last boot left pending (an exception in flight
	 * at a triple fault, an interrupt shadow). */
	if (ioctl(c->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return -errno;
	if (ioctl(c->fd, KVM_SET_SREGS, &s) < 0)
		return -errno;
	if (ioctl(c->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	if (ioctl(c->fd, KVM_SET_FPU, &fpu) < 0)
		return -errno;

	/* Pair a guest TSC reading with host CLOCK_MONOTONIC, taking the
	 * midpoint of the clock readings around the ioctl. */
	uint64_t t0 = now_mono_ns();
	if (ioctl(c->fd, KVM_GET_MSRS, &msr) != 1)
		return -EIO;
	uint64_t t1 = now_mono_ns();

	bi = (struct warden_bootinfo *)(ram_find(v, 0, WARDEN_KVM_IMAGE_MIN)->host + bi_gpa);
	memset(bi, 0, sizeof(*bi));
	bi->magic = WARDEN_BOOT_MAGIC;
	bi->version = WARDEN_BOOT_VERSION;
	bi->cpu = c->index;
	bi->n_cpus = (uint32_t)v->n_cpus;
	bi->period_ms = v->period_ms;
	bi->comm_addr = v->comm_gpa;
	bi->comm_size = v->comm_size;
	VmmRam *img_ram = v->n_images ? ram_find(v, v->images[0].addr, 1) : NULL;
	if (!img_ram)
		img_ram = ram_find(v, v->entry, 1);
	if (img_ram) {
		bi->ram_addr = img_ram->gpa;
		bi->ram_size = img_ram->size;
	}
	bi->tsc_khz = v->tsc_khz;
	bi->sync_tsc = msr.e.data;
	bi->sync_mono_ns = t0 + (t1 - t0) / 2;
	bi->flags = v->boot_flags;
	if (v->args)
		snprintf(bi->args, sizeof(bi->args), "%s", v->args);
	return 0;
}

/* Registers, boot info and TSC pairing for a boot from the entry point. */
int vmm_prepare_boot(Vmm *v)
{
	for (unsigned i = 0; i < v->n_cpus; i++) {
		int r = vcpu_prepare(v, &v->vcpus[i]);
		if (r < 0)
			return r;
	}
	return 0;
}
