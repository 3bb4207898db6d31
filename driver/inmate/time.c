/* SPDX-License-Identifier: MIT */
/*
 * Time from the TSC. warden-kvm tells the frequency and a (TSC, host
 * CLOCK_MONOTONIC) pair in the boot info; elsewhere the PIT measures it.
 */
#include "internal.h"

#define PIT_HZ 1193182u
#define PIT_CH2 0x42
#define PIT_CMD 0x43
#define PIT_GATE 0x61	/* bit 0: channel 2 gate, bit 1: speaker, bit 5: OUT2 */
#define CALIBRATE_MS 10u

/* Count PIT channel 2 down from CALIBRATE_MS worth of ticks and see how far
 * the TSC got. Returns 0 if the result is not believable (no PIT). */
static uint64_t calibrate_pit(void)
{
	const uint32_t count = PIT_HZ / (1000 / CALIBRATE_MS);
	uint64_t t0, t1, khz;
	uint8_t gate = inb(PIT_GATE);

	outb(PIT_GATE, (gate & ~0x02) | 0x01);
	outb(PIT_CMD, 0xb0); /* channel 2, lo/hi byte, mode 0, binary */
	outb(PIT_CH2, count & 0xff);
	outb(PIT_CH2, count >> 8);
	t0 = tsc_read();
	while (!(inb(PIT_GATE) & 0x20))
		if (tsc_read() - t0 > 10000000000ull)
			return 0;
	t1 = tsc_read();
	outb(PIT_GATE, gate);

	khz = (t1 - t0) / CALIBRATE_MS;
	if (khz < 100000 || khz > 20000000)
		return 0;
	return khz;
}

uint64_t tsc_khz(void)
{
	if (!inmate_env.tsc_khz) {
		uint64_t khz = inmate_env.bootinfo ? 0 : calibrate_pit();

		inmate_env.tsc_khz = khz ? khz : INMATE_DEFAULT_TSC_KHZ;
	}
	return inmate_env.tsc_khz;
}

uint64_t tsc_to_ns(uint64_t ticks)
{
	uint64_t khz = tsc_khz();

	/* Split so that neither product can overflow 64 bits. */
	return ticks / khz * 1000000u + ticks % khz * 1000000u / khz;
}

uint64_t ns_to_tsc(uint64_t ns)
{
	uint64_t khz = tsc_khz();

	return ns / 1000000u * khz + ns % 1000000u * khz / 1000000u;
}

uint64_t uptime_ns(void)
{
	return tsc_to_ns(tsc_read() - inmate_env.boot_tsc);
}

uint64_t host_mono_ns(void)
{
	const struct warden_bootinfo *bi = inmate_env.bootinfo;
	uint64_t now;

	if (!(inmate_env.flags & WARDEN_FLAG_HOST_CLOCK))
		return uptime_ns();
	now = tsc_read();
	if (now >= bi->sync_tsc)
		return bi->sync_mono_ns + tsc_to_ns(now - bi->sync_tsc);
	return bi->sync_mono_ns - tsc_to_ns(bi->sync_tsc - now);
}

static void spin_until_tsc(uint64_t deadline)
{
	while ((int64_t)(tsc_read() - deadline) < 0)
		cpu_relax();
}

void sleep_us(uint32_t us)
{
	if (inmate_env.bootinfo)
		outl(WARDEN_PORT_SLEEP, us);
	else
		spin_until_tsc(tsc_read() + ns_to_tsc((uint64_t)us * 1000u));
}

void sleep_until_tsc(uint64_t deadline)
{
	for (;;) {
		uint64_t now = tsc_read(), us;

		if ((int64_t)(now - deadline) >= 0)
			return;
		us = tsc_to_ns(deadline - now) / 1000u;
		if (!inmate_env.bootinfo || us == 0) {
			/* Less than a microsecond left: the port cannot say
			 * it, and an exit would cost more. */
			spin_until_tsc(deadline);
			return;
		}
		outl(WARDEN_PORT_SLEEP, us > UINT32_MAX ? UINT32_MAX : (uint32_t)us);
	}
}
