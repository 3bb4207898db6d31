/* SPDX-License-Identifier: MIT */
/*
 * The contract between the warden-kvm runner (one process per cell) and the
 * daemon-side kvm backend (kvm-backend.c, inside wardend). Both live in
 * hypervisor/kvm and are always built together, so the layout below is
 * versioned for safety but not meant as a stable public ABI.
 *
 * Files in the cell directory (runtime_dir/cells/NAME):
 *   pid          the runner's pid; the runner holds an flock on it while it
 *                lives, so a second runner for the same cell refuses to start
 *   control      SOCK_SEQPACKET control socket (text protocol below)
 *   comm         the comm region, mapped by the runner into the guest and by
 *                the daemon (struct warden_comm)
 *   status       struct warden_kvm_status, written by the runner only
 *   console.log  the inmate's serial output (bounded, rotated once)
 *   runner.log   the runner's stderr (opened by the daemon)
 *
 * Control protocol: one request per datagram, one reply per request, ASCII,
 * no trailing newline needed. Requests: load, start, stop, reset, status,
 * destroy, fds. Replies start with "ok" (maybe followed by key=value words)
 * or are "err <positive errno> <message>". The reply to "fds" carries, with
 * SCM_RIGHTS and in this order, the comm fd, the event (doorbell) eventfd
 * and the status fd. See README.md for the semantics of each request.
 */
#ifndef WARDEN_KVM_RUNNER_H
#define WARDEN_KVM_RUNNER_H

#include <stdint.h>

#include "../backend.h"

/* "WKVMSTAT" read as a little-endian 64-bit word. */
#define WARDEN_KVM_STATUS_MAGIC 0x5441545354564d4bULL
#define WARDEN_KVM_STATUS_VERSION 1
#define WARDEN_KVM_CONSOLE_SIZE 16384u /* power of two */
#define WARDEN_KVM_MSG_MAX 256u        /* longest request or reply */

#define WARDEN_KVM_FILE_PID "pid"
#define WARDEN_KVM_FILE_CONTROL "control"
#define WARDEN_KVM_FILE_COMM "comm"
#define WARDEN_KVM_FILE_STATUS "status"
#define WARDEN_KVM_FILE_CONSOLE "console.log"
#define WARDEN_KVM_FILE_RUNNER_LOG "runner.log"

/* Order of the descriptors in the reply to "fds". */
enum {
	WARDEN_KVM_FD_COMM,
	WARDEN_KVM_FD_EVENT,
	WARDEN_KVM_FD_STATUS,
	_WARDEN_KVM_FD_MAX,
};

/*
 * The status page. Single writer: the runner. `seq` is a seqcount over
 * state, reason, state_mono_ns and boots (odd while being written). The
 * exit counters are independent 64-bit words updated atomically and read
 * without the seqcount. Console bytes go to console[head % SIZE] before
 * `console_head` (total bytes ever written) is advanced with release
 * semantics.
 */
struct warden_kvm_status {
	uint64_t magic;
	uint32_t version;
	uint32_t size; /* sizeof(struct warden_kvm_status) */
	uint32_t seq;
	int32_t pid;
	int32_t state; /* BackendCellState */
	uint32_t n_cpus;
	uint64_t state_mono_ns;
	uint64_t boots;
	char reason[BACKEND_REASON_LEN];

	uint64_t exits;
	uint64_t exits_io;
	uint64_t exits_mmio;
	uint64_t exits_hlt;
	uint64_t exits_sleep;

	uint64_t console_head;
	uint8_t reserved[4096 - 224];
	char console[WARDEN_KVM_CONSOLE_SIZE];
};

_Static_assert(__builtin_offsetof(struct warden_kvm_status, console) == 4096,
	       "console ring starts on its own page");

#endif /* WARDEN_KVM_RUNNER_H */
