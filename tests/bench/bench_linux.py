#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmark: a Linux cell on the qemu backend, launch, panic detection and recovery.

Not a test: prints figures, asserts nothing about them.

Starts a real wardend (tests/lib/harness.py, directories on /dev/shm) with
one `linux` cell: QEMU (TCG unless --accel kvm, -M pc) booting the image of
driver/linux, period 100 ms, timeout 1000 ms, boot timeout 30 s, restart on
every failure, no backoff. Then --runs times each:

  panic    POST /cells/linux/inject {"fault": "panic"}; the daemon restarts
           the cell the way backends.qemu.restart says (--restart): "fresh"
           (the default: destroy QEMU, start a new one) or "in-place" (QMP
           stop, comm cleared, system_reset, cont). Run the script once with
           each to compare the two strategies on panics.
           This script watches the comm file (mmap) and console.log every
           --poll-ms and notes when the inmate's PANICKED write and the
           kernel's "Kernel panic" line appear; the daemon's failure event
           carries its CLOCK_MONOTONIC stamp, the same clock as ours.
  fresh    POST /cells/linux/stop (destroys QEMU), POST /cells/linux/start:
           a new QEMU process, the other restart strategy.

Figures (ms): launch -> first running beat (the daemon's boot_ms of a fresh
start), panic -> declared (from the comm write and from the console line,
as this script saw them, to the daemon's failure event; and the daemon's own
detection_ms, which runs from the last beat because a Linux inmate has no
host clock), declared -> running again (the daemon's recovery_ms), and the
two restart strategies side by side (restart request -> first running beat).
A boot that takes longer than --hang-s or that the daemon declares a
boot-timeout counts as hung.

The anchor is the thesis's manual Linux cell reboot on a Raspberry Pi 4 with
Jailhouse (1.51 s, detection not counted): a constant, printed beside ours.

Usage: tests/bench/bench_linux.py [--runs N] [--accel tcg|kvm] [--kernel F] [--initrd F]
"""
import argparse
import json
import mmap
import os
import re
import shutil
import signal
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness  # noqa: E402
from benchstats import median, pct  # noqa: E402

ANCHOR_MS = 1510.0  # thesis: Linux cell reboot (destroy -> created and loaded), mean, RPi4 + Jailhouse
PANIC_LINE = b"Kernel panic - not syncing"
STATE_PANICKED = 5
COMM_MAGIC = 0x4d4d4f434e445257


def stats(xs):
    if not xs:
        return "%9s %9s %9s %5d" % ("-", "-", "-", 0)
    return "%9.1f %9.1f %9.1f %5d" % (median(xs), pct(xs, 90), max(xs), len(xs))


def row(label, xs):
    return "%-46s %s" % (label, stats(xs))


def cell_spec(cpu, kernel, initrd):
    return {
        "name": "linux", "backend": "qemu", "cpus": [cpu],
        "memory": [{"name": "ram", "phys_start": "0x80000000", "virt_start": "0x0", "size": "0x10000000",
                    "flags": ["read", "write", "execute", "loadable"]}],
        "comm": {"phys_start": "0x7f010000", "virt_start": "0xfe000000", "size": 4096},
        "linux": {"kernel": kernel, "initrd": initrd, "cmdline": "console=ttyS0 quiet"},
        "allow_inject": True,
        "health": {"period_ms": 100, "timeout_ms": 1000, "boot_timeout_ms": 30000},
        "recovery": {"on_panic": "restart", "on_stuck": "restart", "on_boot_timeout": "restart",
                     "on_crash": "restart", "on_exit": "restart", "max_restarts": 1024, "window_s": 1,
                     "backoff": {"initial_ms": 0}},
    }


class Bench:
    def __init__(self, d, args, out):
        self.d = d
        self.args = args
        self.out = out
        self.celldir = os.path.join(d.runtime_dir, "cells", "linux")
        self.panic = []  # dicts, one per injection
        self.fresh = []  # dicts, one per stop + start
        self.launch = []  # boot_ms of fresh starts, the first one included
        self.hung = []  # (what, detail)
        self.boots = 0

    def say(self, msg):
        print(msg, file=self.out, flush=True)

    def wait_running(self, what, since=None):
        """Polls until running with a beat; None (and a hung boot noted) past --hang-s."""
        deadline = time.monotonic() + self.args.hang_s
        c = None
        while time.monotonic() < deadline:
            c = self.d.cell("linux")
            if c["state"] == "running" and c["heartbeat"]["seq"] >= 1:
                return c
            time.sleep(0.02)
        self.hung.append((what, "not running %.0f s after %s (state %s, failures %s)" %
                          (self.args.hang_s, what, c and c["state"], c and c.get("failures"))))
        self.say("!! %s: %s\n   log tail:\n%s" % (what, self.hung[-1][1], self.d.log()[-2000:]))
        return None

    def note_boot_timeouts(self, before, after, what):
        n = after["failures"].get("boot-timeout", 0) - before["failures"].get("boot-timeout", 0)
        if n > 0:
            self.hung.append((what, "%d boot-timeout(s) declared by the daemon" % n))

    def comm_state(self, m):
        magic, state = struct.unpack_from("<QQ", m, 0)[0], struct.unpack_from("<I", m, 16)[0]
        return state if magic == COMM_MAGIC else 0

    def panic_once(self, i):
        before = self.wait_running("panic %d (before)" % i)
        if not before:
            return
        with open(os.path.join(self.celldir, "comm"), "rb") as f:
            m = mmap.mmap(f.fileno(), 4096, mmap.MAP_SHARED, mmap.PROT_READ)
        con = open(os.path.join(self.celldir, "console.log"), "rb")
        con.seek(0, os.SEEK_END)
        tail = b""
        t_comm = t_con = None
        poll = self.args.poll_ms / 1000.0
        r = self.d.post("/cells/linux/inject", {"fault": "panic"})
        t_inject = time.monotonic()
        if r.status != 202:
            self.say("!! inject answered %r" % r)
            return
        next_http = 0.0
        c = None
        deadline = t_inject + self.args.hang_s
        while True:
            now = time.monotonic()
            if t_comm is None and self.comm_state(m) == STATE_PANICKED:
                t_comm = now
            if t_con is None:
                tail = (tail + con.read())[-4096:]
                if PANIC_LINE in tail:
                    t_con = now
            if now >= next_http:
                next_http = now + 0.01
                c = self.d.cell("linux")
                if c["restarts"] > before["restarts"]:
                    break
            if now > deadline:
                self.hung.append(("panic %d" % i, "no restart within %.0f s" % self.args.hang_s))
                return
            time.sleep(poll)
        m.close()
        con.close()
        c = self.wait_running("panic %d (restart)" % i)
        if not c:
            return
        self.boots += 1
        self.note_boot_timeouts(before, c, "panic %d" % i)
        fails = [e for e in c["events"] if e["type"] == "failure" and "panic" in e["reason"]]
        declared = fails[-1]["mono_ns"] / 1e9 if fails else None
        lf = c["last_failure"] or {}
        t = c["timings"]
        self.panic.append({
            "kind": lf.get("kind"),
            "reason": lf.get("reason", ""),
            "comm_to_declared": (declared - t_comm) * 1000 if declared and t_comm else None,
            "console_to_declared": (declared - t_con) * 1000 if declared and t_con else None,
            "console_to_comm": (t_comm - t_con) * 1000 if t_comm and t_con else None,
            "detection": t["detection_ms"],
            "recovery": t["recovery_ms"],
            "restart_to_beat": t["boot_ms"],
            "pid_same": c["hypervisor"]["pid"] == before["hypervisor"]["pid"],
        })

    def fresh_once(self, i):
        before = self.wait_running("fresh %d (before)" % i)
        if not before:
            return
        r = self.d.post("/cells/linux/stop")
        if r.status != 202:
            self.say("!! stop answered %r" % r)
            return
        self.d.wait_state("linux", "stopped", timeout=30)
        t0 = time.monotonic()
        r = self.d.post("/cells/linux/start")
        if r.status != 202:
            self.say("!! start answered %r" % r)
            return
        c = self.wait_running("fresh %d (start)" % i)
        if not c:
            return
        seen = (time.monotonic() - t0) * 1000
        self.boots += 1
        self.note_boot_timeouts(before, c, "fresh %d" % i)
        self.launch.append(c["timings"]["boot_ms"])
        self.fresh.append({"restart_to_beat": c["timings"]["boot_ms"], "seen": seen,
                           "pid_new": c["hypervisor"]["pid"] != before["hypervisor"]["pid"]})


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        m = re.match(r'^(warden_cell_(?:detection|recovery|boot)_seconds_(?:sum|count))\{([^}]*)\} (\S+)$', line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            out[(m.group(1), labels.get("kind"))] = float(m.group(3))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--runs", type=int, default=20, help="panic injections, and as many fresh restarts; default 20")
    ap.add_argument("--accel", default="tcg", choices=["tcg", "kvm"], help="QEMU accelerator; default tcg")
    ap.add_argument("--kernel", default=os.path.join(harness.BUILD, "driver", "linux", "vmlinux"))
    ap.add_argument("--initrd", default=os.path.join(harness.BUILD, "driver", "linux", "initramfs.cpio.gz"))
    ap.add_argument("--qemu", default=shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64")
    ap.add_argument("--cpu", type=int, default=1, help="host CPU of the cell; default 1")
    ap.add_argument("--poll-ms", type=float, default=1.0, help="comm/console poll interval; default 1")
    ap.add_argument("--hang-s", type=float, default=60.0, help="a boot slower than this counts as hung; default 60")
    ap.add_argument("--restart", default="fresh", choices=["fresh", "in-place"],
                    help="how wardend restarts the panicked cell (backends.qemu.restart); default fresh")
    args = ap.parse_args()

    if not os.access(args.qemu, os.X_OK):
        print("SKIP: %s not found" % args.qemu)
        return 0
    for p in (args.kernel, args.initrd):
        if not os.access(p, os.R_OK):
            print("SKIP: no Linux inmate image (%s): ninja -C build driver/linux/vmlinux "
                  "driver/linux/initramfs.cpio.gz" % p)
            return 0

    log = sys.stderr
    sys.stdout.reconfigure(line_buffering=True)
    others = os.sched_getaffinity(0) - {args.cpu}
    pinned = "not pinned (one CPU)"
    if others:
        os.sched_setaffinity(0, others)  # wardend inherits it (and pins itself to root_cpus)
        pinned = "wardend and script on CPUs %s" % ",".join(map(str, sorted(others)))
    cfg = {"backends": {"qemu": {"binary": args.qemu, "accel": args.accel, "machine": "pc",
                                 "restart": args.restart}},
           "root_cpus": sorted(others)[:1] if others else [], "cpu_sharing": not others,
           # --kernel and --initrd may be anywhere: absolute image paths must be inside api.image_dirs
           "api": {"image_dirs": sorted({os.path.dirname(os.path.abspath(p)) for p in (args.kernel, args.initrd)})},
           "cells": [cell_spec(args.cpu, os.path.abspath(args.kernel), os.path.abspath(args.initrd))]}
    d = harness.Daemon(cfg, keep_dirs=tempfile.mkdtemp(prefix="warden-bench-linux-", dir="/dev/shm"))
    qemu_pids = []
    t_start = time.monotonic()
    try:
        d.start()
        b = Bench(d, args, log)
        c = b.wait_running("the first launch")
        if not c:
            print("ABORTED: the cell never came up; see stderr")
            return 1
        b.boots += 1
        b.launch.append(c["timings"]["boot_ms"])
        qemu_pids.append(c["hypervisor"]["pid"])
        print("wardend up, linux cell running; %d panics (restart %s), then %d API stop+start" %
              (args.runs, args.restart, args.runs), file=log, flush=True)
        for i in range(args.runs):
            b.panic_once(i)
            if i % 5 == 4:
                print("  panic %d/%d (%.0f s)" % (i + 1, args.runs, time.monotonic() - t_start), file=log, flush=True)
        for i in range(args.runs):
            b.fresh_once(i)
            if i % 5 == 4:
                print("  fresh %d/%d (%.0f s)" % (i + 1, args.runs, time.monotonic() - t_start), file=log, flush=True)
        metrics = parse_metrics(d.get("/metrics").body)
        final = d.cell("linux")
    finally:
        d.stop()
        cells = os.path.join(d.runtime_dir, "cells") + "/"
        for p in os.listdir("/proc"):
            try:
                if p.isdigit() and (os.readlink("/proc/%s/cwd" % p) + "/").startswith(cells):
                    os.kill(int(p), signal.SIGKILL)
            except OSError:
                pass
        d.cleanup()
    elapsed = time.monotonic() - t_start

    # ---- report ----------------------------------------------------------
    P, F = b.panic, b.fresh
    print()
    print("== warden Linux cell on QEMU-%s (-M pc, %s), %d runs each (%.0f s) ==" %
          (args.accel, os.path.basename(args.kernel), args.runs, elapsed))
    print("cell on CPU %d, %s; period 100 ms, timeout 1000 ms; comm/console polled every %.1f ms" %
          (args.cpu, pinned, args.poll_ms))
    kinds = {}
    for s in P:
        kinds[s["kind"]] = kinds.get(s["kind"], 0) + 1
    print("panics declared as: %s; reason \"sysrq triggered crash\": %d/%d; restarted in the same QEMU: %d/%d" %
          (", ".join("%s x%d" % kv for kv in sorted(kinds.items(), key=str)) or "-",
           sum("sysrq triggered crash" in s["reason"] for s in P), len(P), sum(s["pid_same"] for s in P), len(P)))
    print()
    print("%-46s %9s %9s %9s %5s" % ("(ms)", "median", "p90", "max", "n"))
    print(row("launch -> first running beat (new QEMU)", b.launch))
    print(row("panic: console line -> comm write (seen)", [s["console_to_comm"] for s in P if s["console_to_comm"] is not None]))
    print(row("panic: comm write (seen) -> declared", [s["comm_to_declared"] for s in P if s["comm_to_declared"] is not None]))
    print(row("panic: console line (seen) -> declared", [s["console_to_declared"] for s in P if s["console_to_declared"] is not None]))
    print(row("panic: daemon detection_ms (from last beat)", [s["detection"] for s in P if s["detection"] is not None]))
    print(row("declared -> running again (recovery_ms)", [s["recovery"] for s in P if s["recovery"] is not None]))
    print()
    print("restart strategies, restart request -> first running beat (the daemon's boot_ms):")
    policy = [s["restart_to_beat"] for s in P if s["restart_to_beat"] is not None]
    fresh = [s["restart_to_beat"] for s in F if s["restart_to_beat"] is not None]
    how = {"fresh": "destroy + new QEMU", "in-place": "system_reset"}[args.restart]
    print(row("after a panic: %s" % how, policy))
    print(row("API stop + start: destroy + new QEMU", fresh))
    print(row("API stop + start, as the client sees it", [s["seen"] for s in F]))
    if policy and fresh and args.restart == "in-place":
        a, f = median(policy), median(fresh)
        print("faster: %s, by %.0f ms (median)" % ("in place" if a < f else "fresh", abs(f - a)))
    print()
    rec = [s["recovery"] for s in P if s["recovery"] is not None]
    print("thesis anchor (constant, not measured here): manual Linux cell reboot on a Raspberry Pi 4 with "
          "Jailhouse, %.2f s mean, detection not counted" % (ANCHOR_MS / 1000))
    if rec:
        print("warden recovery median %.0f ms = %.2f x the anchor (TCG emulates the whole guest; "
              "detection is extra and automatic here)" % (median(rec), median(rec) / ANCHOR_MS))
    print()
    print("reliability: %d boots, %d hung or timed out" % (b.boots, len(b.hung)))
    for what, why in b.hung:
        print("  %s: %s" % (what, why))
    cnt = metrics.get(("warden_cell_detection_seconds_count", "panic"), 0)
    sm = metrics.get(("warden_cell_detection_seconds_sum", "panic"), 0)
    rc = metrics.get(("warden_cell_recovery_seconds_count", None), 0)
    rs = metrics.get(("warden_cell_recovery_seconds_sum", None), 0)
    print("/metrics: panic detections %d (mean %.1f ms), recoveries %d (mean %.0f ms); cell restarts %d, "
          "final state %s" % (cnt, sm / cnt * 1000 if cnt else 0, rc, rs / rc * 1000 if rc else 0,
                              final["restarts"], final["state"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
