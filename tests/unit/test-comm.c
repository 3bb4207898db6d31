/* SPDX-License-Identifier: MIT */
/*
 * Pins the comm region ABI (api/warden/comm.h) and the boot info of the
 * in-tree KVM hypervisor (api/warden/kvm.h): every offset, every size,
 * every constant. Inmates, the Linux driver, the runner and the daemon are
 * built separately and meet only through these layouts, so a change here
 * has to be a deliberate ABI revision, never an accident of padding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "warden/comm.h"
#include "warden/kvm.h"

#define FIELD_SIZE(type, field) sizeof(((type *)0)->field)

#define assert_field(type, field, off, size)                         \
	do {                                                         \
		assert_int_equal(offsetof(type, field), (off));      \
		assert_int_equal(FIELD_SIZE(type, field), (size));   \
	} while (0)

static void test_comm_layout(void **state)
{
	(void)state;

	assert_int_equal(sizeof(struct warden_comm), 4096);
	assert_int_equal(sizeof(struct warden_comm), WARDEN_COMM_SIZE);
	assert_int_equal(_Alignof(struct warden_comm), 8);

	assert_field(struct warden_comm, magic, 0, 8);
	assert_field(struct warden_comm, abi, 8, 4);
	assert_field(struct warden_comm, size, 12, 4);
	assert_field(struct warden_comm, state, 16, 4);
	assert_field(struct warden_comm, period_ms, 20, 4);
	assert_field(struct warden_comm, seq, 24, 8);
	assert_field(struct warden_comm, uptime_ns, 32, 8);
	assert_field(struct warden_comm, boot_stage, 40, 4);
	assert_field(struct warden_comm, flags, 44, 4);
	assert_field(struct warden_comm, beat_mono_ns, 48, 8);
	assert_field(struct warden_comm, reason_seq, 56, 4);
	assert_field(struct warden_comm, reason_code, 60, 4);
	assert_field(struct warden_comm, event_mono_ns, 64, 8);
	assert_field(struct warden_comm, ack_cmd, 72, 4);
	assert_field(struct warden_comm, reserved0, 76, 4);
	assert_field(struct warden_comm, ack_seq, 80, 8);
	assert_field(struct warden_comm, result, 88, 48);
	assert_field(struct warden_comm, result[5], 128, 8);
	assert_field(struct warden_comm, degraded_app, 136, 32);
	assert_field(struct warden_comm, reason, 168, 256);
	assert_field(struct warden_comm, inmate_reserved, 424, 2048 - 424);

	assert_field(struct warden_comm, cmd_seq, 2048, 8);
	assert_field(struct warden_comm, cmd, 2056, 4);
	assert_field(struct warden_comm, cmd_arg, 2060, 4);
	assert_field(struct warden_comm, region_size, 2064, 4);
	assert_field(struct warden_comm, daemon_reserved, 2068, 4096 - 2068);
	assert_field(struct warden_console, magic, 0, 8);
	assert_field(struct warden_console, size, 8, 4);
	assert_field(struct warden_console, head, 16, 8);
	assert_int_equal(offsetof(struct warden_console, data), 32);
}

static void test_comm_halves(void **state)
{
	(void)state;

	/* One writer per half: the inmate's ends where the mailbox starts,
	 * and the 64-bit words each side publishes with release stores
	 * are naturally aligned (so the stores are single-copy atomic). */
	assert_int_equal(WARDEN_COMM_MAILBOX_OFFSET, 2048);
	assert_int_equal(offsetof(struct warden_comm, cmd_seq),
			 WARDEN_COMM_MAILBOX_OFFSET);
	assert_int_equal(offsetof(struct warden_comm, inmate_reserved) +
				 FIELD_SIZE(struct warden_comm, inmate_reserved),
			 WARDEN_COMM_MAILBOX_OFFSET);
	assert_int_equal(offsetof(struct warden_comm, seq) % 8, 0);
	assert_int_equal(offsetof(struct warden_comm, ack_seq) % 8, 0);
	assert_int_equal(offsetof(struct warden_comm, cmd_seq) % 8, 0);
	assert_int_equal(offsetof(struct warden_comm, reason_seq) % 4, 0);
	assert_int_equal(WARDEN_COMM_REASON_LEN, 256);
	assert_int_equal(WARDEN_COMM_APP_LEN, 32);
	assert_int_equal(FIELD_SIZE(struct warden_comm, reason),
			 WARDEN_COMM_REASON_LEN);
	assert_int_equal(FIELD_SIZE(struct warden_comm, degraded_app),
			 WARDEN_COMM_APP_LEN);
}

static void test_comm_constants(void **state)
{
	uint64_t magic = WARDEN_COMM_MAGIC;
	unsigned char bytes[8];

	(void)state;

	/* The magic reads "WRDNCOMM" in a little-endian dump of the region;
	 * spelled out byte by byte so the test holds on any host. */
	for (int i = 0; i < 8; i++)
		bytes[i] = (unsigned char)(magic >> (8 * i));
	assert_memory_equal(bytes, "WRDNCOMM", 8);
	assert_int_equal(WARDEN_COMM_ABI, 1);

	assert_int_equal(WARDEN_INMATE_NONE, 0);
	assert_int_equal(WARDEN_INMATE_BOOTING, 1);
	assert_int_equal(WARDEN_INMATE_RUNNING, 2);
	assert_int_equal(WARDEN_INMATE_DEGRADED, 3);
	assert_int_equal(WARDEN_INMATE_STOPPING, 4);
	assert_int_equal(WARDEN_INMATE_PANICKED, 5);
	assert_int_equal(WARDEN_INMATE_HALTED, 6);
	assert_int_equal(WARDEN_INMATE_STATE_MAX, 7);

	assert_int_equal(WARDEN_CMD_NONE, 0);
	assert_int_equal(WARDEN_CMD_SHUTDOWN, 1);
	assert_int_equal(WARDEN_CMD_PING, 2);
	assert_int_equal(WARDEN_CMD_INJECT, 3);
	assert_int_equal(WARDEN_CMD_MAX, 4);

	assert_int_equal(WARDEN_FAULT_NONE, 0);
	assert_int_equal(WARDEN_FAULT_HANG, 1);
	assert_int_equal(WARDEN_FAULT_PANIC, 2);
	assert_int_equal(WARDEN_FAULT_CRASH, 3);
	assert_int_equal(WARDEN_FAULT_EXIT, 4);
	assert_int_equal(WARDEN_FAULT_STALL, 5);
	assert_int_equal(WARDEN_FAULT_MAX, 6);

	assert_int_equal(WARDEN_FLAG_INJECT, 1);
	assert_int_equal(WARDEN_FLAG_HOST_CLOCK, 2);
}

static void test_bootinfo_layout(void **state)
{
	(void)state;

	assert_int_equal(sizeof(struct warden_bootinfo), 344);
	assert_int_equal(_Alignof(struct warden_bootinfo), 8);

	assert_field(struct warden_bootinfo, magic, 0, 8);
	assert_field(struct warden_bootinfo, version, 8, 4);
	assert_field(struct warden_bootinfo, cpu, 12, 4);
	assert_field(struct warden_bootinfo, n_cpus, 16, 4);
	assert_field(struct warden_bootinfo, period_ms, 20, 4);
	assert_field(struct warden_bootinfo, comm_addr, 24, 8);
	assert_field(struct warden_bootinfo, comm_size, 32, 8);
	assert_field(struct warden_bootinfo, ram_addr, 40, 8);
	assert_field(struct warden_bootinfo, ram_size, 48, 8);
	assert_field(struct warden_bootinfo, tsc_khz, 56, 8);
	assert_field(struct warden_bootinfo, sync_tsc, 64, 8);
	assert_field(struct warden_bootinfo, sync_mono_ns, 72, 8);
	assert_field(struct warden_bootinfo, flags, 80, 4);
	assert_field(struct warden_bootinfo, reserved, 84, 4);
	assert_field(struct warden_bootinfo, args, 88, 256);
	assert_int_equal(FIELD_SIZE(struct warden_bootinfo, args),
			 WARDEN_BOOT_ARGS_LEN);
}

static void test_kvm_constants(void **state)
{
	uint64_t magic = WARDEN_BOOT_MAGIC;
	unsigned char bytes[8];

	(void)state;

	for (int i = 0; i < 8; i++)
		bytes[i] = (unsigned char)(magic >> (8 * i));
	assert_memory_equal(bytes, "WRDNBOOT", 8);
	assert_int_equal(WARDEN_BOOT_VERSION, 1);
	assert_int_equal(WARDEN_BOOT_ARGS_LEN, 256);

	assert_int_equal(WARDEN_PORT_UART, 0x3f8);
	assert_int_equal(WARDEN_PORT_DOORBELL, 0x510);
	assert_int_equal(WARDEN_PORT_SLEEP, 0x511);
	assert_int_equal(WARDEN_PORT_HALT, 0x512);

	/* The runner's low-memory layout, which images must stay clear of,
	 * and which must itself stay below the lowest image address. */
	assert_int_equal(WARDEN_KVM_PML4, 0x1000);
	assert_int_equal(WARDEN_KVM_PDPT, 0x2000);
	assert_int_equal(WARDEN_KVM_PD, 0x3000);
	assert_int_equal(WARDEN_KVM_GDT, 0x7000);
	assert_int_equal(WARDEN_KVM_BOOTINFO, 0x8000);
	assert_int_equal(WARDEN_KVM_IMAGE_MIN, 0x10000);
	assert_true(WARDEN_KVM_PD + 4 * 4096 <= WARDEN_KVM_GDT);
	assert_true(WARDEN_KVM_BOOTINFO + sizeof(struct warden_bootinfo) <=
		    WARDEN_KVM_IMAGE_MIN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_comm_layout),
		cmocka_unit_test(test_comm_halves),
		cmocka_unit_test(test_comm_constants),
		cmocka_unit_test(test_bootinfo_layout),
		cmocka_unit_test(test_kvm_constants),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests_name("comm", tests, NULL, NULL);
}
