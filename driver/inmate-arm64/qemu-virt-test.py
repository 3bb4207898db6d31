#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Run the arm64 inmates on plain qemu-system-aarch64 -M virt,gic-version=3
(no Jailhouse) and check them against api/warden/comm.h from the outside.

The NAME-arm64-qemu-virt.elf builds link the image at 0x40200000 and put
warden's comm page at 0x40100000 (meson.build). Guest RAM is a file in
/dev/shm (memory-backend-file, share=on), so this script maps the comm page
as wardend would map a cell's and drives the mailbox with the daemon's
protocol: cmd and cmd_arg, then cmd_seq. The QEMU monitor shows the page
too (`xp`), and /proc/PID/stat tells how much host CPU the vCPU costs.

    driver/inmate-arm64/qemu-virt-test.py [BUILD_DIR]

BUILD_DIR defaults to build/ beside the source tree; the ELFs are built
there with ninja first. TAP on stdout; exit status 1 if a check failed.
"""
import mmap
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", ".."))
QEMU = "qemu-system-aarch64"

RAM_BASE = 0x40000000
RAM_SIZE = 256 << 20
COMM = 0x40100000

MAGIC = 0x4D4D4F434E445257
OFF = dict(magic=0, abi=8, size=12, state=16, period_ms=20, seq=24, uptime_ns=32, flags=44,
           reason_seq=56, reason_code=60, event_mono_ns=64, ack_cmd=72, ack_seq=80, reason=168,
           cmd_seq=2048, cmd=2056, cmd_arg=2060)
WIDTH = dict(magic=8, seq=8, uptime_ns=8, event_mono_ns=8, ack_seq=8, cmd_seq=8)
RUNNING, STOPPING, PANICKED, HALTED = 2, 4, 5, 6
SHUTDOWN, PING, INJECT = 1, 2, 3
HANG, PANIC, CRASH, EXIT, STALL = 1, 2, 3, 4, 5
FLAG_INJECT = 1


class Vm:
    """One qemu run of an inmate, its RAM mapped here."""

    def __init__(self, elf, tmp, tag, preset=None):
        self.tmp = tmp
        self.ram = "/dev/shm/warden-inmate-arm64-%d-%s" % (os.getpid(), tag)
        self.uart_path = os.path.join(tmp, tag + ".uart")
        self.sock = os.path.join(tmp, tag + ".mon")
        with open(self.ram, "wb") as f:
            f.truncate(RAM_SIZE)
        fd = os.open(self.ram, os.O_RDWR)
        self.map = mmap.mmap(fd, RAM_SIZE, mmap.MAP_SHARED)
        os.close(fd)
        for field, value in (preset or {}).items():
            self.put(field, value)
        self.proc = subprocess.Popen(
            [QEMU, "-M", "virt,gic-version=3,memory-backend=ram", "-cpu", "cortex-a57", "-m", "256M",
             "-object", "memory-backend-file,id=ram,size=256M,share=on,mem-path=" + self.ram,
             "-display", "none", "-serial", "file:" + self.uart_path,
             "-monitor", "unix:%s,server,nowait" % self.sock,
             "-device", "loader,file=%s,cpu-num=0" % elf],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.map.close()
        os.unlink(self.ram)

    def get(self, field):
        w = WIDTH.get(field, 4)
        return struct.unpack_from("<Q" if w == 8 else "<I", self.map, COMM - RAM_BASE + OFF[field])[0]

    def put(self, field, value):
        w = WIDTH.get(field, 4)
        struct.pack_into("<Q" if w == 8 else "<I", self.map, COMM - RAM_BASE + OFF[field], value)

    def reason(self):
        at = COMM - RAM_BASE + OFF["reason"]
        return bytes(self.map[at:at + 256]).split(b"\0", 1)[0].decode(errors="replace")

    def post(self, cmd, arg=0):
        """The daemon's side: cmd and cmd_arg, then cmd_seq (x86 stores
        stay in program order)."""
        seq = self.get("cmd_seq") + 1
        self.put("cmd", cmd)
        self.put("cmd_arg", arg)
        self.put("cmd_seq", seq)
        return seq

    def uart(self):
        try:
            with open(self.uart_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait(self, pred, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("qemu exited: " + self.proc.stderr.read().decode(errors="replace"))
            if pred():
                return True
            time.sleep(0.005)
        return False

    def boot(self, line):
        return self.wait(lambda: line in self.uart() and self.get("state") == RUNNING, 20.0)

    def ack(self, seq, timeout=2.0):
        """Seconds until ack_seq reaches seq, or None."""
        t0 = time.monotonic()
        if not self.wait(lambda: self.get("ack_seq") == seq, timeout):
            return None
        return time.monotonic() - t0

    def cpu_percent(self, seconds):
        def ticks():
            with open("/proc/%d/stat" % self.proc.pid) as f:
                st = f.read().rsplit(")", 1)[1].split()
            return int(st[11]) + int(st[12])  # utime + stime
        hz = os.sysconf("SC_CLK_TCK")
        t0, c0 = time.monotonic(), ticks()
        time.sleep(seconds)
        return 100.0 * (ticks() - c0) / hz / (time.monotonic() - t0)

    def seq_rate(self, seconds):
        s0, u0, t0 = self.get("seq"), self.get("uptime_ns"), time.monotonic()
        time.sleep(seconds)
        s1, u1, t1 = self.get("seq"), self.get("uptime_ns"), time.monotonic()
        return (s1 - s0) / (t1 - t0), (u1 - u0) / 1e9 / (t1 - t0)

    def monitor(self, command):
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.sock)
        s.settimeout(2)
        buf = b""
        while b"(qemu)" not in buf:
            buf += s.recv(4096)
        s.sendall(command.encode() + b"\n")
        buf = b""
        while buf.count(b"(qemu)") < 1:
            buf += s.recv(65536)
        s.close()
        # The monitor echoes the line with terminal edits; keep the dump.
        return "\n".join(l for l in buf.decode(errors="replace").splitlines() if l[:2] == "00")


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def check(self, ok, what):
        self.n += 1
        self.failed += not ok
        print("%s %d - %s" % ("ok" if ok else "not ok", self.n, what), flush=True)

    def note(self, text):
        for line in text.splitlines():
            print("# " + line, flush=True)


def heartbeat(t, elf, tmp):
    vm = Vm(elf, tmp, "heartbeat")
    try:
        t.check(vm.boot("heartbeat-arm64: up, period 10 ms"), "heartbeat: UART line, state RUNNING")
        t.note(vm.uart().strip())
        t.check(vm.get("magic") == MAGIC and vm.get("abi") == 1 and vm.get("size") == 4096 and
                vm.get("period_ms") == 10 and vm.get("flags") == 0,
                "heartbeat: magic, abi 1, size 4096, period 10 ms, flags 0")
        rate, clock = vm.seq_rate(3.0)
        t.check(80 <= rate <= 105, "heartbeat: seq advances %.1f beats/s (10 ms period)" % rate)
        t.check(0.9 <= clock <= 1.1, "heartbeat: uptime_ns runs at %.3f x wall time" % clock)
        cpu = vm.cpu_percent(5.0)
        t.check(cpu < 20, "heartbeat: qemu uses %.1f %% of a host CPU while the inmate beats" % cpu)
        a = vm.monitor("xp /8gx 0x%x" % COMM)
        time.sleep(0.5)
        b = vm.monitor("xp /8gx 0x%x" % COMM)
        t.note("monitor, 0.5 s apart:\n" + a + "\n" + b)
        seq_a = int(a.splitlines()[1].split()[2], 16)
        seq_b = int(b.splitlines()[1].split()[2], 16)
        t.check(seq_b > seq_a, "heartbeat: monitor xp sees seq %d then %d" % (seq_a, seq_b))

        seq = vm.post(PING)
        lat = vm.ack(seq)
        t.check(lat is not None and vm.get("ack_cmd") == PING,
                "heartbeat: PING acknowledged in %s" % ("%.1f ms" % (lat * 1e3) if lat else "-"))
        seq = vm.post(INJECT, PANIC)
        lat = vm.ack(seq)
        time.sleep(0.2)
        s0 = vm.get("seq")
        time.sleep(0.2)
        t.check(lat is not None and vm.get("ack_cmd") == INJECT and vm.get("state") == RUNNING and
                vm.get("seq") > s0, "heartbeat: INJECT (not advertised) acknowledged and ignored")

        seq = vm.post(SHUTDOWN)
        lat = vm.ack(seq)
        halted = vm.wait(lambda: vm.get("state") == HALTED, 2.0)
        t.check(lat is not None and vm.get("ack_cmd") == SHUTDOWN and halted and
                vm.reason() == "shutdown" and vm.get("reason_seq") % 2 == 0 and vm.get("reason_seq") > 0,
                "heartbeat: SHUTDOWN acknowledged, state HALTED, reason \"%s\", reason_seq %d" %
                (vm.reason(), vm.get("reason_seq")))
        s0 = vm.get("seq")
        cpu = vm.cpu_percent(2.0)
        t.check(vm.get("seq") == s0 and cpu < 20,
                "heartbeat: halted: seq stays %d, qemu at %.1f %% CPU (WFI, timer off)" % (s0, cpu))
        t.check("shutdown requested" in vm.uart() and "halted: shutdown" in vm.uart(),
                "heartbeat: UART tells the shutdown")
    finally:
        vm.close()

    # A command left in the mailbox by the last boot must not run again,
    # and seq keeps growing over an inmate restart.
    vm = Vm(elf, tmp, "stale", preset=dict(magic=MAGIC, seq=1000, cmd_seq=41, cmd=SHUTDOWN))
    try:
        ok = vm.boot("heartbeat-arm64: up")
        time.sleep(0.5)
        t.check(ok and vm.get("ack_seq") == 41 and vm.get("ack_cmd") == 0 and vm.get("state") == RUNNING,
                "heartbeat: a stale SHUTDOWN (cmd_seq 41) is taken as handled at boot")
        t.check(vm.get("seq") > 1000, "heartbeat: seq continues from the last boot's 1000 (now %d)" %
                vm.get("seq"))
    finally:
        vm.close()


def faulty_boot(t, elf, tmp, tag):
    vm = Vm(elf, tmp, tag)
    if not vm.boot("faulty-arm64: up, period 10 ms, fault injection allowed"):
        t.check(False, "faulty(%s): boot" % tag)
        vm.close()
        return None
    return vm


def faulty(t, elf, tmp):
    vm = faulty_boot(t, elf, tmp, "hang")
    if vm:
        try:
            t.check(vm.get("flags") & FLAG_INJECT, "faulty: advertises WARDEN_FLAG_INJECT")
            seq = vm.post(INJECT, HANG)
            lat = vm.ack(seq)
            time.sleep(0.1)
            s0 = vm.get("seq")
            cpu = vm.cpu_percent(2.0)
            ping = vm.post(PING)
            t.check(lat is not None and vm.get("seq") == s0 and vm.ack(ping, 0.5) is None and
                    vm.get("state") == RUNNING,
                    "faulty hang: acknowledged, then no beats, no mailbox (seq stays %d)" % s0)
            t.check(cpu > 50, "faulty hang: spins without WFI, qemu at %.1f %% CPU" % cpu)
        finally:
            vm.close()

    vm = faulty_boot(t, elf, tmp, "panic")
    if vm:
        try:
            seq = vm.post(INJECT, PANIC)
            lat = vm.ack(seq)
            ok = vm.wait(lambda: vm.get("state") == PANICKED, 2.0)
            up, ev = vm.get("uptime_ns"), vm.get("event_mono_ns")
            t.check(lat is not None and ok and vm.reason() == "injected panic" and vm.get("reason_code") == 2 and
                    vm.get("reason_seq") == 2,
                    "faulty panic: PANICKED, reason \"%s\", code %d, reason_seq %d" %
                    (vm.reason(), vm.get("reason_code"), vm.get("reason_seq")))
            t.check(0 <= ev - up < 50_000_000,
                    "faulty panic: event_mono_ns %d is uptime (last beat %d)" % (ev, up))
            cpu = vm.cpu_percent(2.0)
            t.check("PANIC: injected panic (code 2)" in vm.uart() and cpu < 20,
                    "faulty panic: UART line, halted CPU at %.1f %%" % cpu)
        finally:
            vm.close()

    vm = faulty_boot(t, elf, tmp, "crash")
    if vm:
        try:
            seq = vm.post(INJECT, CRASH)
            lat = vm.ack(seq)
            # No Jailhouse to fail the CPU: the external abort comes back
            # to the inmate's vectors, which panic.
            ok = vm.wait(lambda: vm.get("state") == PANICKED, 2.0)
            t.check(lat is not None and ok and "FAR 0x50000000" in vm.reason() and
                    vm.get("reason_code") == 0x25,
                    "faulty crash: the read of 0x50000000 aborts: \"%s\", code 0x%x" %
                    (vm.reason(), vm.get("reason_code")))
        finally:
            vm.close()

    vm = faulty_boot(t, elf, tmp, "exit")
    if vm:
        try:
            seq = vm.post(INJECT, EXIT)
            lat = vm.ack(seq)
            ok = vm.wait(lambda: vm.get("state") == HALTED, 2.0)
            t.check(lat is not None and ok and vm.reason() == "injected exit" and vm.get("reason_code") == 0,
                    "faulty exit: HALTED, reason \"%s\"" % vm.reason())
        finally:
            vm.close()

    vm = faulty_boot(t, elf, tmp, "stall")
    if vm:
        try:
            seq = vm.post(INJECT, STALL)
            lat = vm.ack(seq)
            time.sleep(0.1)
            s0 = vm.get("seq")
            cpu = vm.cpu_percent(2.0)
            ping = vm.post(PING)
            plat = vm.ack(ping)
            t.check(lat is not None and vm.get("seq") == s0 and vm.get("state") == RUNNING and plat is not None,
                    "faulty stall: RUNNING, seq stays %d, PING still acknowledged" % s0)
            t.check(cpu < 20, "faulty stall: still sleeps, qemu at %.1f %% CPU" % cpu)
            seq = vm.post(SHUTDOWN)
            t.check(vm.ack(seq) is not None and vm.wait(lambda: vm.get("state") == HALTED, 2.0),
                    "faulty stall: SHUTDOWN still works")
        finally:
            vm.close()


def main():
    if not shutil.which(QEMU):
        print("1..0 # SKIP %s not installed (package qemu-system-arm)" % QEMU, flush=True)
        return 0
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(SRC, "build")
    elfs = {n: os.path.join(build, "driver", "inmate-arm64", n + "-arm64-qemu-virt.elf")
            for n in ("heartbeat", "faulty")}
    subprocess.run(["ninja", "-C", build] + [os.path.relpath(e, build) for e in elfs.values()],
                   check=True, stdout=subprocess.DEVNULL)
    t = Tap()
    with tempfile.TemporaryDirectory() as tmp:
        heartbeat(t, elfs["heartbeat"], tmp)
        faulty(t, elfs["faulty"], tmp)
    print("1..%d" % t.n, flush=True)
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
