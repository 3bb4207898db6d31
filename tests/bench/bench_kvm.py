#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmark: how fast a cell comes up on warden-kvm, beside QEMU.

Not a test: prints figures, asserts nothing about them.

warden side: the runner (build/hypervisor/kvm/warden-kvm) is driven directly,
the way wardend's kvm backend does it (ready pipe, SEQPACKET control socket),
with the heartbeat demo in a cell directory on /dev/shm (tmpfs, like /run):

  create     spawn runner -> ready -> load -> start -> first beat
  restart    `reset` request -> first beat of the new boot
  re-create  `destroy` request -> spawn -> ready -> load -> start -> first beat

"First beat" is read two ways: the inmate's own stamp of it (beat_mono_ns in
the comm region, host CLOCK_MONOTONIC through the boot info's TSC sync pair)
and the moment this script, spinning on the mmapped comm file, saw it.
The first console byte (the status page's console_head) is taken too, to
compare like with like against QEMU.

QEMU side: the same heartbeat.bin under qemu-system-x86_64 -M pc (multiboot,
SeaBIOS first), TCG unless --qemu-accel says otherwise, with the comm region
on an ivshmem-plain device backed by a /dev/shm file:

  launch     process start -> first serial byte (and -> first beat)
  reset      QMP system_reset -> first serial byte of the new boot
             (and -> first beat of the new boot)

Usage: tests/bench/bench_kvm.py [--runs N] [--qemu-runs N] [--qemu-accel tcg,kvm]
"""
import argparse
import json
import mmap
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness  # noqa: E402
from benchstats import median, pct  # noqa: E402

RUNNER = os.path.abspath(harness.WARDEN_KVM)
IMAGE = os.path.abspath(os.path.join(harness.DEMOS, "heartbeat.bin"))

COMM_MAGIC = 0x4d4d4f434e445257
INMATE_RUNNING = 2
# struct warden_comm offsets (api/warden/comm.h)
OFF_MAGIC, OFF_STATE, OFF_SEQ, OFF_UPTIME, OFF_BEAT_MONO = 0, 16, 24, 32, 48
# struct warden_kvm_status (hypervisor/kvm/runner.h): console_head
OFF_CONSOLE_HEAD = 216
OFF_CONSOLE, CONSOLE_SIZE = 4096, 16384
BANNER_END = b"kHz\r\n"  # heartbeat's boot banner ends so; it prints nothing after it


def now():
    return time.monotonic_ns()


# ---- statistics ---------------------------------------------------------

def fmt_ms(ns):
    return "%9.3f" % (ns / 1e6)


def row(label, xs):
    if not xs:
        return "%-44s %9s %9s %9s %5d" % (label, "-", "-", "-", 0)
    return "%-44s %s %s %s %5d" % (label, fmt_ms(median(xs)), fmt_ms(pct(xs, 90)), fmt_ms(max(xs)), len(xs))


# ---- warden-kvm ---------------------------------------------------------

class Runner:
    """One warden-kvm process for a cell directory, driven like kvm-backend.c."""

    def __init__(self, celldir, cpu, period_ms):
        self.dir = celldir
        self.cpu = cpu
        self.period_ms = period_ms
        self.proc = None
        self.ctl = None
        self.comm = None
        self.status = None
        self._files = []

    def spawn(self):
        """Spawns the runner and waits for "ok" on the ready pipe."""
        r, w = os.pipe()
        log = open(os.path.join(self.dir, "runner.log"), "ab")
        argv = [RUNNER, "--name=bench", "--dir=" + self.dir, "--cpus=%d" % self.cpu,
                "--ram=0x0:0x400000:0x40000000", "--comm=0x80000000:0x1000",
                "--image=%s@0x100000" % IMAGE, "--entry=0x100000",
                "--period-ms=%d" % self.period_ms, "--ready-fd=%d" % w]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     pass_fds=(w,), close_fds=True)
        os.close(w)
        log.close()
        buf = b""
        while b"\n" not in buf:
            chunk = os.read(r, 256)
            if not chunk:
                break
            buf += chunk
        os.close(r)
        if not buf.startswith(b"ok"):
            raise RuntimeError("runner not ready: %r; runner.log:\n%s" % (buf, self.runner_log()))

    def attach(self):
        """Connects the control socket and maps comm and status (first time only:
        the files are the same inode for the life of a runner; re-created per runner)."""
        self.ctl = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.ctl.settimeout(10)
        self.ctl.connect(os.path.join(self.dir, "control"))
        self.unmap()
        for name, attr, size in (("comm", "comm", 4096), ("status", "status", 4096 + CONSOLE_SIZE)):
            f = open(os.path.join(self.dir, name), "rb")
            self._files.append(f)
            setattr(self, attr, mmap.mmap(f.fileno(), size, mmap.MAP_SHARED, mmap.PROT_READ))

    def unmap(self):
        for m in (self.comm, self.status):
            if m is not None:
                m.close()
        self.comm = self.status = None
        for f in self._files:
            f.close()
        self._files = []

    def request(self, req):
        self.ctl.send(req.encode())
        reply = self.ctl.recv(257).decode()
        if not reply.startswith("ok"):
            raise RuntimeError("%s: %s; runner.log:\n%s" % (req, reply, self.runner_log()))
        return reply

    def destroy(self):
        """Sends destroy; returns the old process so the caller reaps it later."""
        self.request("destroy")
        self.ctl.close()
        self.ctl = None
        old, self.proc = self.proc, None
        return old

    def runner_log(self):
        try:
            with open(os.path.join(self.dir, "runner.log"), "rb") as f:
                return f.read().decode(errors="replace")[-2000:]
        except OSError:
            return ""

    # comm/status readers
    def beat(self):
        """(magic, state, seq, uptime_ns, beat_mono_ns) of the comm region."""
        m = self.comm
        return (struct.unpack_from("<Q", m, OFF_MAGIC)[0], struct.unpack_from("<I", m, OFF_STATE)[0],
                struct.unpack_from("<Q", m, OFF_SEQ)[0], struct.unpack_from("<Q", m, OFF_UPTIME)[0],
                struct.unpack_from("<Q", m, OFF_BEAT_MONO)[0])

    def console_head(self):
        return struct.unpack_from("<Q", self.status, OFF_CONSOLE_HEAD)[0]

    def wait_banner(self, timeout_s=5.0):
        """Waits (off the clock) until the boot banner is out, so that the
        next measurement's first console byte is the next boot's."""
        deadline = time.monotonic() + timeout_s
        n = len(BANNER_END)
        while True:
            head = self.console_head()
            if head >= n:
                tail = bytes(self.status[OFF_CONSOLE + (head - n + i) % CONSOLE_SIZE] for i in range(n))
                if tail == BANNER_END:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("boot banner not seen; runner.log:\n" + self.runner_log())
            time.sleep(0.0005)

    def wait_new_boot(self, t0, console0, timeout_s=5.0):
        """Spins until the first beat of a boot that started after t0 and the
        console has grown past console0. Returns (stamped, seen_beat, seen_console)
        as absolute CLOCK_MONOTONIC ns.

        A beat belongs to the new boot if it is stamped after t0 with an uptime
        below half the period (an old boot's later beats have uptime >= period;
        its first beat was seen before t0)."""
        deadline = now() + int(timeout_s * 1e9)
        half = self.period_ms * 500000
        stamped = seen_beat = seen_console = None
        while True:
            t = now()
            if seen_beat is None:
                magic, state, seq, up, mono = self.beat()
                if magic == COMM_MAGIC and seq > 0 and mono > t0 and up < half and state == INMATE_RUNNING:
                    # Re-read: the magic guards a rewrite, the seq a torn read.
                    if self.beat()[2] == seq:
                        stamped, seen_beat = mono, t
            if seen_console is None and self.console_head() > console0:
                seen_console = t
            if seen_beat is not None and seen_console is not None:
                return stamped, seen_beat, seen_console
            if t > deadline:
                raise RuntimeError("no new boot within %.1f s: comm %r console_head %d; runner.log:\n%s" %
                                   (timeout_s, self.beat(), self.console_head(), self.runner_log()))


def bench_warden(runs, cpu, period_ms, out):
    base = tempfile.mkdtemp(prefix="warden-bench-", dir="/dev/shm")
    celldir = os.path.join(base, "cells", "bench")
    os.makedirs(celldir)
    res = {k: [] for k in ("create.spawn_ready", "create.load", "create.start", "create.beat",
                           "create.beat_seen", "create.console",
                           "restart.reply", "restart.beat", "restart.beat_seen", "restart.console",
                           "recreate.destroy", "recreate.spawn_ready", "recreate.beat",
                           "recreate.beat_seen", "recreate.console")}
    zombies = []
    rn = Runner(celldir, cpu, period_ms)
    try:
        # create: the first runner of the directory, once per iteration (each
        # iteration ends with a destroy so the next create starts from nothing)
        for i in range(runs):
            t0 = now()
            rn.spawn()
            t1 = now()
            rn.attach()
            rn.request("load")
            t2 = now()
            rn.request("start")
            t3 = now()
            stamped, seen, con = rn.wait_new_boot(t0, rn.console_head())
            res["create.spawn_ready"].append(t1 - t0)
            res["create.load"].append(t2 - t1)
            res["create.start"].append(t3 - t2)
            res["create.beat"].append(stamped - t0)
            res["create.beat_seen"].append(seen - t0)
            res["create.console"].append(con - t0)

            # restart in place
            rn.wait_banner()
            c0 = rn.console_head()
            t0 = now()
            rn.request("reset")
            t1 = now()
            stamped, seen, con = rn.wait_new_boot(t0, c0)
            res["restart.reply"].append(t1 - t0)
            res["restart.beat"].append(stamped - t0)
            res["restart.beat_seen"].append(seen - t0)
            res["restart.console"].append(con - t0)

            # destroy + re-create in the same directory
            rn.wait_banner()
            t0 = now()
            zombies.append(rn.destroy())
            t1 = now()
            rn.spawn()
            t2 = now()
            rn.attach()
            rn.request("load")
            rn.request("start")
            stamped, seen, con = rn.wait_new_boot(t0, 0)
            res["recreate.destroy"].append(t1 - t0)
            res["recreate.spawn_ready"].append(t2 - t1)
            res["recreate.beat"].append(stamped - t0)
            res["recreate.beat_seen"].append(seen - t0)
            res["recreate.console"].append(con - t0)

            # tear down for the next create (off the clock) and reap
            rn.wait_banner()
            zombies.append(rn.destroy())
            for z in zombies:
                z.wait(timeout=10)
            zombies = []
            if i % 10 == 9:
                print("  warden-kvm: %d/%d" % (i + 1, runs), file=out, flush=True)
    finally:
        if rn.ctl is not None:
            try:
                zombies.append(rn.destroy())
            except (OSError, RuntimeError):
                if rn.proc:
                    rn.proc.kill()
                    zombies.append(rn.proc)
        for z in zombies:
            try:
                z.wait(timeout=10)
            except subprocess.TimeoutExpired:
                z.kill()
                z.wait()
        rn.unmap()
        shutil.rmtree(base, ignore_errors=True)
    return res


# ---- QEMU ---------------------------------------------------------------

class Qemu:
    def __init__(self, accel, workdir, idx):
        self.accel = accel
        self.qmp_path = os.path.join(workdir, "qmp%d.sock" % idx)
        self.shm_path = os.path.join(workdir, "comm%d" % idx)
        with open(self.shm_path, "wb") as f:
            f.write(b"\0" * 4096)
        f = open(self.shm_path, "rb")
        self.comm = mmap.mmap(f.fileno(), 4096, mmap.MAP_SHARED, mmap.PROT_READ)
        f.close()
        self.proc = None
        self.qmp = None
        self.buf = b""

    def launch(self):
        argv = ["qemu-system-x86_64", "-M", "pc", "-accel", self.accel, "-m", "64",
                "-display", "none", "-nodefaults", "-serial", "stdio",
                "-kernel", IMAGE,
                "-object", "memory-backend-file,id=comm,share=on,mem-path=%s,size=4096" % self.shm_path,
                "-device", "ivshmem-plain,memdev=comm",
                "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path]
        t0 = now()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        os.set_blocking(self.proc.stdout.fileno(), False)
        return t0

    def read_serial(self):
        try:
            b = os.read(self.proc.stdout.fileno(), 65536)
        except BlockingIOError:
            return b""
        if b == b"" and self.proc.poll() is not None:
            raise RuntimeError("qemu exited with %s" % self.proc.returncode)
        self.buf += b
        return b

    def comm_beat(self):
        m = self.comm
        return (struct.unpack_from("<Q", m, OFF_MAGIC)[0], struct.unpack_from("<Q", m, OFF_SEQ)[0],
                struct.unpack_from("<Q", m, OFF_UPTIME)[0])

    def wait_boot(self, seq0, up0, timeout_s=30.0):
        """Spins until the first serial byte and the first beat of a new boot
        (seq above seq0 with an uptime below up0, or any beat if seq0 == 0).
        Returns (seen_byte, seen_beat) absolute ns."""
        deadline = now() + int(timeout_s * 1e9)
        byte = beat = None
        fd = self.proc.stdout.fileno()
        while True:
            t = now()
            if byte is None:
                if self.read_serial():
                    byte = t
            if beat is None:
                magic, seq, up = self.comm_beat()
                if magic == COMM_MAGIC and seq > seq0 and (seq0 == 0 or up < up0):
                    beat = t
            if byte is not None and beat is not None:
                return byte, beat
            if t > deadline:
                raise RuntimeError("qemu: no boot within %.0f s; serial %r" % (timeout_s, self.buf[-200:]))
            # short sleeps, not a spin: QEMU needs both cores more than we do
            select.select([] if byte is not None else [fd], [], [], 0.0002)

    def drain_until(self, marker, timeout_s=30.0):
        deadline = time.monotonic() + timeout_s
        while marker not in self.buf:
            if time.monotonic() > deadline:
                raise RuntimeError("qemu: %r not seen; serial %r" % (marker, self.buf[-300:]))
            select.select([self.proc.stdout.fileno()], [], [], 0.05)
            self.read_serial()

    def qmp_connect(self):
        deadline = time.monotonic() + 10
        while True:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.qmp_path)
                break
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        s.settimeout(10)
        self.qmp = s
        self.qmp_file = s.makefile("rb")
        json.loads(self.qmp_file.readline())  # greeting
        self.qmp_cmd("qmp_capabilities")

    def qmp_send(self, cmd):
        self.qmp.sendall(json.dumps({"execute": cmd}).encode() + b"\n")

    def qmp_cmd(self, cmd):
        self.qmp_send(cmd)
        while True:
            msg = json.loads(self.qmp_file.readline())
            if "return" in msg or "error" in msg:
                return msg

    def quit(self):
        if self.qmp:
            try:
                self.qmp.close()
                self.qmp_file.close()
            except OSError:
                pass
            self.qmp = None
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait()
            self.proc.stdout.close()
        self.proc = None
        self.buf = b""

    def close(self):
        self.quit()
        self.comm.close()


def bench_qemu(accel, runs, resets, out):
    work = tempfile.mkdtemp(prefix="warden-bench-qemu-", dir="/dev/shm")
    res = {"launch.byte": [], "launch.beat": [], "reset.byte": [], "reset.beat": []}
    marker = b"kHz\r\n"  # end of heartbeat's boot banner: nothing more is printed
    try:
        for i in range(runs):
            q = Qemu(accel, work, i)
            try:
                t0 = q.launch()
                byte, beat = q.wait_boot(0, 0)
                res["launch.byte"].append(byte - t0)
                res["launch.beat"].append(beat - t0)
                if i < resets:
                    q.drain_until(marker)
                    q.qmp_connect()
                    time.sleep(0.05)  # let the old boot's uptime grow past the new one's
                    q.read_serial()
                    q.buf = b""
                    _, seq0, up0 = q.comm_beat()
                    t0 = now()
                    q.qmp_send("system_reset")
                    byte, beat = q.wait_boot(seq0, up0)
                    res["reset.byte"].append(byte - t0)
                    res["reset.beat"].append(beat - t0)
            finally:
                q.close()
            if i % 10 == 9:
                print("  qemu-%s: %d/%d" % (accel, i + 1, runs), file=out, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return res


# ---- main ---------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--runs", type=int, default=100, help="warden-kvm iterations (each: create, restart, re-create); default 100")
    ap.add_argument("--qemu-runs", type=int, default=None, help="QEMU launches, each followed by one system_reset; default = --runs")
    ap.add_argument("--qemu-accel", default="tcg", help="comma-separated QEMU accelerators to measure (tcg, kvm); default tcg. "
                    "Under nested KVM a QEMU-KVM boot takes seconds (SeaBIOS in emulated real mode): use few --qemu-runs")
    ap.add_argument("--cpu", type=int, default=1, help="host CPU for the cell's vCPU; default 1")
    ap.add_argument("--period-ms", type=int, default=1000, help="heartbeat period given to the inmate (the first beat "
                    "comes before any sleep, so it does not change the figures); default 1000")
    ap.add_argument("--no-pin", action="store_true", help="do not pin this script off the vCPU's CPU during the warden-kvm part")
    ap.add_argument("--no-qemu", action="store_true")
    args = ap.parse_args()
    qruns = args.runs if args.qemu_runs is None else args.qemu_runs

    if not harness.kvm_available():
        print("SKIP: /dev/kvm not available")
        return 0
    for p in (RUNNER, IMAGE):
        if not os.path.exists(p):
            print("missing %s: build first (ninja -C build)" % p)
            return 1

    sys.stdout.reconfigure(line_buffering=True)
    log = sys.stderr
    print("warden-kvm: %d runs, vCPU on CPU %d, period %d ms, cell dir on /dev/shm" %
          (args.runs, args.cpu, args.period_ms), file=log, flush=True)
    all_cpus = os.sched_getaffinity(0)
    others = all_cpus - {args.cpu}
    if others and not args.no_pin:
        # Like a root cell: this script (and the runner's main thread, which
        # keeps off the cell's CPUs anyway) stay off the vCPU's CPU.
        os.sched_setaffinity(0, others)
    w = bench_warden(args.runs, args.cpu, args.period_ms, log)
    os.sched_setaffinity(0, all_cpus)  # QEMU gets every CPU
    q = {}
    if not args.no_qemu and qruns > 0:
        if not shutil.which("qemu-system-x86_64"):
            print("qemu-system-x86_64 not found: QEMU side skipped", file=log)
        else:
            for accel in [a.strip() for a in args.qemu_accel.split(",") if a.strip()]:
                print("qemu-%s: %d launches, %d resets" % (accel, qruns, qruns), file=log, flush=True)
                q[accel] = bench_qemu(accel, qruns, qruns, log)

    hdr = "%-44s %9s %9s %9s %5s" % ("all in ms", "median", "p90", "max", "n")
    print()
    print("== warden-kvm (heartbeat.bin, runner driven over its control socket; vCPU on CPU %d, script %s) ==" %
          (args.cpu, "on CPUs " + ",".join(map(str, sorted(others))) if others and not args.no_pin else "not pinned"))
    print(hdr)
    print(row("create: spawn -> ready", w["create.spawn_ready"]))
    print(row("create:   load request", w["create.load"]))
    print(row("create:   start request", w["create.start"]))
    print(row("create -> first beat (inmate stamp)", w["create.beat"]))
    print(row("create -> first beat (seen)", w["create.beat_seen"]))
    print(row("create -> first console byte (seen)", w["create.console"]))
    print(row("restart: reset request", w["restart.reply"]))
    print(row("restart -> first new beat (inmate stamp)", w["restart.beat"]))
    print(row("restart -> first new beat (seen)", w["restart.beat_seen"]))
    print(row("restart -> first new console byte (seen)", w["restart.console"]))
    print(row("re-create: destroy request", w["recreate.destroy"]))
    print(row("re-create:   spawn -> ready", w["recreate.spawn_ready"]))
    print(row("re-create -> first beat (inmate stamp)", w["recreate.beat"]))
    print(row("re-create -> first beat (seen)", w["recreate.beat_seen"]))
    print(row("re-create -> first console byte (seen)", w["recreate.console"]))
    bad = sum(1 for s, v in zip(w["create.beat"] + w["restart.beat"] + w["recreate.beat"],
                                w["create.beat_seen"] + w["restart.beat_seen"] + w["recreate.beat_seen"]) if s > v)
    print("(inmate stamps later than the sighting: %d of %d; should be 0)" %
          (bad, len(w["create.beat"]) * 3))

    for accel, r in q.items():
        print()
        print("== QEMU %s (qemu-system-x86_64 -M pc -kernel heartbeat.bin, ivshmem comm) ==" % accel)
        print(hdr)
        print(row("launch -> first serial byte", r["launch.byte"]))
        print(row("launch -> first beat (seen on ivshmem)", r["launch.beat"]))
        print(row("system_reset -> first serial byte", r["reset.byte"]))
        print(row("system_reset -> first beat (seen)", r["reset.beat"]))

        def ratio(qk, wk):
            if not r[qk] or not w[wk]:
                return "-"
            return "%.0fx" % (median(r[qk]) / median(w[wk]))
        print()
        print("ratio QEMU-%s / warden-kvm, medians:" % accel)
        print("  launch -> first byte  / create -> first byte      %8s" % ratio("launch.byte", "create.console"))
        print("  launch -> first byte  / create -> first beat      %8s   (the issue's pairing)" %
              ratio("launch.byte", "create.beat"))
        print("  launch -> first beat  / create -> first beat      %8s" % ratio("launch.beat", "create.beat_seen"))
        print("  reset  -> first byte  / restart -> first byte     %8s" % ratio("reset.byte", "restart.console"))
        print("  reset  -> first byte  / restart -> first beat     %8s   (the issue's pairing)" %
              ratio("reset.byte", "restart.beat"))
        print("  reset  -> first beat  / restart -> first beat     %8s" % ratio("reset.beat", "restart.beat_seen"))
        print("  launch -> first byte  / re-create -> first beat   %8s" % ratio("launch.byte", "recreate.beat"))
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    sys.exit(main())
