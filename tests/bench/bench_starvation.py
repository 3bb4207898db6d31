#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmark: false stuck cells on a starved host, and real hangs on an idle one.

Not a test: prints figures, asserts nothing about them.

The defect: on a loaded 2-core host the demo's faulty cell (timeout 30 ms)
was declared stuck again and again with no injection at all. CPU load alone
did not do it; the mix did: wrk on the API, several TCG QEMUs, load averages
of 20-40. wardend now puts such stalls down to host starvation (its own
sampling lateness; the cell's run-queue wait over a 1 ms grace) and counts
them in warden_cell_starved_total instead of restarting the cell.

Phase B runs first (the host as idle as it gets), then phase A.

Phase A, load (--seconds, default 120): a wardend (harness Daemon,
directories on /dev/shm) with the demo config's kvm cells (heartbeat 10/50
ms, faulty 5/30 ms, cpu_sharing and root_cpus as the demo has them) and two
QEMU-TCG Linux cells that this script restarts in a loop
(POST /cells/NAME/restart?wait=60). Meanwhile
  wrk -t2 -c32 -dSs --latency -H "Authorization: Bearer ..." http://127.0.0.1:PORT/cells
  stress-ng --cpu 4 --io 2 --timeout Ss
Nothing is injected, so every failure of a kvm cell is a false one.
Reported: failures by kind and restarts (deltas over the window), the
daemon's warden_cell_starved_total and "host starved" log lines, the load
average (/proc/loadavg, sampled every second), wrk's requests/s, latency and
errors, the QEMU restarts done, and the loop lag (warden_loop_lag_seconds,
delta over the window; warden_loop_lag_max_seconds, since start).

Phase B, idle: a fresh wardend with only the faulty cell (period 5 ms,
timeout 30 ms, allow_inject, restart, no backoff); --injections (30) each of
hang and stall, waiting for the recovery each time. Reported:
timings.detection_ms (from the last beat, so it holds the timeout) minus
30 ms: median, p90, max. The goal is at most 2 ms.

--baseline-build DIR runs both phases against another build (its wardend,
warden-kvm, demos and configs/demo.json) in the same run, for a before/after.

--qemu-cells, --stress-cpu, --stress-io and --wrk-connections make the load
heavier than the goal's mix (2, 4, 2, 32), to look for the defect.

Usage: tests/bench/bench_starvation.py [--seconds S] [--baseline-build DIR] [--injections N]
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness  # noqa: E402
from benchstats import median, pct  # noqa: E402

KVM_CELLS = ["heartbeat", "faulty"]
FAULTY_PERIOD_MS = 5
FAULTY_TIMEOUT_MS = 30
GOAL_EXCESS_MS = 2.0
RESTART_WAIT_S = 60
LOG = sys.stderr


def say(msg):
    print(msg, file=LOG, flush=True)


class Build:
    """One build tree: its wardend, runner, demo config and Linux image."""

    def __init__(self, path, label):
        self.path = os.path.abspath(path)
        self.label = label
        self.wardend = os.path.join(self.path, "daemon", "wardend")
        self.runner = os.path.join(self.path, "hypervisor", "kvm", "warden-kvm")
        self.demo = os.path.join(self.path, "configs", "demo.json")
        self.kernel = os.path.join(self.path, "driver", "linux", "vmlinux")
        self.initrd = os.path.join(self.path, "driver", "linux", "initramfs.cpio.gz")

    def missing(self):
        return [p for p in (self.wardend, self.runner, self.demo, self.kernel, self.initrd) if not os.access(p, os.R_OK)]

    def knows(self, word):
        """Whether this build's wardend holds the string (a config key, say)."""
        with open(self.wardend, "rb") as f:
            return word.encode() in f.read()

    def demo_config(self):
        with open(self.demo) as f:
            return json.load(f)


class BenchDaemon(harness.Daemon):
    """A harness Daemon running a given build's wardend; cleanup() also
    ends what outlives the daemon by design (QEMUs, runners) by pid."""

    def __init__(self, build, config, prefix):
        super().__init__(config, keep_dirs=tempfile.mkdtemp(prefix=prefix, dir="/dev/shm"))
        self.build = build

    def start(self, wait=True):
        # harness.Daemon.start() runs harness.WARDEND; one run compares two builds
        harness.WARDEND = self.build.wardend
        return super().start(wait)

    def stop_cells(self, names):
        for n in names:
            try:
                self.post("/cells/%s/stop?wait=30" % n, timeout=60)
            except OSError:
                pass

    def cleanup(self):
        self.stop()
        kill_own(self.dir)
        super().cleanup()


def kill_own(root):
    """SIGKILLs processes whose cwd or command line is under root: the
    QEMUs and runners of this script's daemons, never anyone else's."""
    root = root.rstrip("/") + "/"
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            cwd = os.readlink("/proc/%s/cwd" % p) + "/"
            with open("/proc/%s/cmdline" % p, "rb") as f:
                cmd = f.read().decode(errors="replace")
        except OSError:
            continue
        if cwd.startswith(root) or root.rstrip("/") in cmd:
            try:
                os.kill(int(p), signal.SIGKILL)
            except OSError:
                pass


def linux_cell(build, name, cpu, ram_phys, comm_phys):
    return {
        "name": name, "backend": "qemu", "cpus": [cpu],
        "memory": [{"name": "ram", "phys_start": hex(ram_phys), "virt_start": "0x0", "size": "0x10000000",
                    "flags": ["read", "write", "execute", "loadable"]}],
        # ivshmem BAR 2 in the guest; the address only has to stay clear of RAM
        "comm": {"phys_start": hex(comm_phys), "virt_start": "0xfe000000", "size": 4096},
        "linux": {"kernel": build.kernel, "initrd": build.initrd, "cmdline": "console=ttyS0 quiet"},
        "health": {"period_ms": 100, "timeout_ms": 1000, "boot_timeout_ms": 60000},
        "recovery": {"on_panic": "restart", "on_stuck": "restart", "on_boot_timeout": "restart",
                     "on_crash": "restart", "on_exit": "restart", "max_restarts": 1024, "window_s": 1,
                     "backoff": {"initial_ms": 0}, "shutdown_timeout_ms": 20000},
    }


def qemu_names(args):
    return ["linux%d" % (i + 1) for i in range(args.qemu_cells)]


def load_config(build, qemu, args):
    demo = build.demo_config()
    cells = [c for c in demo["cells"] if c["name"] in KVM_CELLS]
    # The Linux cells share CPUs with the kvm cells (and wardend), as the demo shares them
    cells += [linux_cell(build, n, 1 - i % 2, 0x80000000 + i * 0x10000000, 0x7f010000 + i * 0x1000)
              for i, n in enumerate(qemu_names(args))]
    api = {k: v for k, v in demo.get("api", {}).items() if k != "tokens_file"}  # the harness's tokens
    if build.knows("image_dirs"):  # older builds reject the key, and hold no images to it
        api["image_dirs"] = sorted({os.path.dirname(p) for p in [build.kernel, build.initrd] +
                                    [i["file"] for c in cells for i in c.get("images", [])]})
    return {"cpu_sharing": demo.get("cpu_sharing", True), "root_cpus": demo.get("root_cpus", [0]),
            "backends": {"kvm": {"runner": build.runner},
                         "qemu": {"binary": qemu, "accel": "tcg", "machine": "pc"}},
            "api": api, "cells": cells}


def idle_config(build):
    demo = build.demo_config()
    faulty = dict(next(c for c in demo["cells"] if c["name"] == "faulty"))
    faulty["allow_inject"] = True
    faulty["health"] = {"period_ms": FAULTY_PERIOD_MS, "timeout_ms": FAULTY_TIMEOUT_MS, "boot_timeout_ms": 2000}
    faulty["recovery"] = {"on_panic": "restart", "on_stuck": "restart", "on_boot_timeout": "restart",
                          "on_crash": "restart", "on_exit": "restart", "max_restarts": 1024, "window_s": 1,
                          "backoff": {"initial_ms": 0}}
    return {"cpu_sharing": demo.get("cpu_sharing", True), "root_cpus": demo.get("root_cpus", [0]),
            "backends": {"kvm": {"runner": build.runner}}, "cells": [faulty]}


# ---- /metrics ---------------------------------------------------------------

def metrics(d):
    """{name: {frozenset(labels.items()): value}}"""
    out = {}
    for line in d.get("/metrics").body.splitlines():
        m = re.match(r'^([a-z_]+)(?:\{([^}]*)\})? (\S+)$', line)
        if m:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            out.setdefault(m.group(1), {})[labels] = float(m.group(3))
    return out


def starved(mx, cell):
    v = mx.get("warden_cell_starved_total", {}).get(frozenset({("cell", cell)}))
    return None if v is None else int(v)


def lag_buckets(mx):
    """[(le, cumulative count)], sorted; [] without the metric."""
    b = mx.get("warden_loop_lag_seconds_bucket", {})
    return sorted(((float(dict(k)["le"]), v) for k, v in b.items()), key=lambda x: x[0])


def lag_quantile(buckets, q):
    """The upper bound of the bucket holding quantile q (a histogram says no more)."""
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None
    for le, cum in buckets:
        if cum >= q * total:
            return le
    return buckets[-1][0]


# ---- load ---------------------------------------------------------------------

def ensure_tool(name, package):
    if shutil.which(name):
        return True
    say("%s missing: apt-get install -y %s" % (name, package))
    try:
        subprocess.run(["apt-get", "install", "-y", "-q", package], stdout=LOG, stderr=LOG, timeout=600,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    except (OSError, subprocess.TimeoutExpired):
        pass
    return shutil.which(name) is not None


class LoadSampler(threading.Thread):
    """/proc/loadavg every second until stop is set: 1-min average, runnable."""

    def __init__(self, stop):
        super().__init__(daemon=True)
        self.stop_ev = stop
        self.avg1 = []
        self.runnable = []

    def run(self):
        while not self.stop_ev.is_set():
            with open("/proc/loadavg") as f:
                parts = f.read().split()
            self.avg1.append(float(parts[0]))
            self.runnable.append(int(parts[3].split("/")[0]))
            self.stop_ev.wait(1.0)


class Restarter(threading.Thread):
    """POST /cells/NAME/restart?wait=60 in a loop until the deadline."""

    def __init__(self, d, name, deadline):
        super().__init__(daemon=True)
        self.d, self.name, self.deadline = d, name, deadline
        self.ok = []  # seconds, restart request -> operation succeeded
        self.failed = []  # why

    def run(self):
        while time.monotonic() < self.deadline:
            t0 = time.monotonic()
            try:
                r = self.d.post("/cells/%s/restart?wait=%d" % (self.name, RESTART_WAIT_S), timeout=RESTART_WAIT_S + 30)
                op = r.json() if r.status in (200, 202) else None
                if op and op.get("phase") == "running":
                    op = self.d.wait_operation(op["operation"], timeout=RESTART_WAIT_S)
            except (OSError, ValueError) as e:
                self.failed.append("request: %s" % e)
                time.sleep(1)
                continue
            if op and op.get("phase") == "succeeded":
                self.ok.append(time.monotonic() - t0)
            else:
                why = "%d %s" % (r.status, (op or {}).get("error") or r.body[:200])
                self.failed.append(why)
                say("  %s restart: %s" % (self.name, why))
                time.sleep(1)  # a refused restart is not a reason to spin


def parse_wrk(text):
    out = {"rps": None, "requests": None, "errors": {}, "non2xx": 0, "lat": {}}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", text)
    if m:
        out["requests"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    for p, v, u in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M):
        out["lat"][p] = float(v) * unit[u]
    return out


def kill_group(p):
    if p and p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        p.wait()


def wait_up(d, names, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cs = {n: d.cell(n) for n in names}
        if all(c["state"] == "running" and c["heartbeat"]["seq"] >= 1 for c in cs.values()):
            return True
        time.sleep(0.2)
    return False


def phase_a(build, args, qemu):
    res = {"build": build.label}
    qemu_cells = qemu_names(args)
    d = BenchDaemon(build, load_config(build, qemu, args), "warden-bench-starve-")
    wrk = stress = None
    stop = threading.Event()
    sampler = LoadSampler(stop)
    restarters = []
    try:
        d.start()
        if not wait_up(d, KVM_CELLS + qemu_cells, 180):
            res["aborted"] = "cells not all running 180 s after start: %s" % {
                n: d.cell(n)["state"] for n in KVM_CELLS + qemu_cells}
            return res
        say("[%s] phase A: cells up; %d s of wrk -c%d, stress-ng --cpu %d --io %d, %d QEMU cells restarting" %
            (build.label, args.seconds, args.wrk_connections, args.stress_cpu, args.stress_io, len(qemu_cells)))
        before = {n: d.cell(n) for n in KVM_CELLS + qemu_cells}
        m0 = metrics(d)
        log0 = len(d.log())
        t0 = time.monotonic()
        deadline = t0 + args.seconds
        url = "http://127.0.0.1:%d/cells" % d.port
        wrk = subprocess.Popen(["wrk", "-t2", "-c%d" % args.wrk_connections, "-d%ds" % args.seconds, "--latency",
                                "-H", "Authorization: Bearer " + d.operator_token, url],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, text=True)
        stress = subprocess.Popen(["stress-ng", "--cpu", str(args.stress_cpu), "--io", str(args.stress_io), "--timeout", "%ds" % args.seconds],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                  cwd=d.dir)
        sampler.start()
        restarters = [Restarter(d, n, deadline) for n in qemu_cells]
        for r in restarters:
            r.start()
        try:
            wrk_out = wrk.communicate(timeout=args.seconds + 60)[0]
        except subprocess.TimeoutExpired:
            kill_group(wrk)
            wrk_out = ""
        while time.monotonic() < deadline:  # wrk ended early: the window is still the window
            time.sleep(0.2)
        res["elapsed"] = time.monotonic() - t0
        after = {n: d.cell(n) for n in KVM_CELLS + qemu_cells}
        m1 = metrics(d)
        log = d.log()[log0:]
        stop.set()
        kill_group(stress)
        say("[%s] phase A: window over; waiting for the restarts in flight" % build.label)
        for r in restarters:
            r.join(RESTART_WAIT_S * 2 + 60)

        res["wrk"] = parse_wrk(wrk_out)
        res["wrk_raw"] = wrk_out
        res["load1"], res["runnable"] = sampler.avg1, sampler.runnable
        res["cells"] = {}
        for n in KVM_CELLS + qemu_cells:
            b, a = before[n], after[n]
            kinds = {k: a["failures"].get(k, 0) - b["failures"].get(k, 0) for k in a["failures"]}
            s0, s1 = starved(m0, n), starved(m1, n)
            fails = [e for e in a["events"] if e["type"] == "failure" and t0 * 1e9 <= e.get("mono_ns", 0) <= deadline * 1e9]
            res["cells"][n] = {"failures": {k: v for k, v in kinds.items() if v},
                               "restarts": a["restarts"] - b["restarts"],
                               "starved": None if s1 is None else s1 - (s0 or 0),
                               "reasons": [e.get("reason", "") for e in fails][-3:],
                               "state": a["state"]}
        res["starved_log"] = log.count("host starved")
        res["qemu_ok"] = {r.name: r.ok for r in restarters}
        res["qemu_failed"] = {r.name: r.failed for r in restarters}
        b0, b1 = lag_buckets(m0), lag_buckets(m1)
        if b1:
            delta = [(le, c1 - dict(b0).get(le, 0)) for le, c1 in b1]
            cnt = delta[-1][1]
            s = m1.get("warden_loop_lag_seconds_sum", {}).get(frozenset(), 0) - \
                m0.get("warden_loop_lag_seconds_sum", {}).get(frozenset(), 0)
            res["lag"] = {"count": cnt, "mean_ms": s / cnt * 1000 if cnt else None,
                          "p50": lag_quantile(delta, 0.5), "p99": lag_quantile(delta, 0.99),
                          "over_1ms": cnt - dict(delta).get(0.001, 0), "over_10ms": cnt - dict(delta).get(0.01, cnt)}
        mx = m1.get("warden_loop_lag_max_seconds", {}).get(frozenset())
        res["lag_max_ms"] = None if mx is None else mx * 1000
        # cells outlive the daemon by design: stop them through it first
        d.stop_cells(qemu_cells + KVM_CELLS)
    finally:
        stop.set()
        kill_group(wrk)
        kill_group(stress)
        d.cleanup()
    return res


def phase_b(build, args):
    res = {"build": build.label, "excess": {"hang": [], "stall": []}, "kinds": {}, "problems": []}
    cpu_cell = idle_config(build)["cells"][0]["cpus"][0]
    saved = os.sched_getaffinity(0)
    others = saved - {cpu_cell}
    if others:
        os.sched_setaffinity(0, others)  # off the cell's CPU, as bench_faults.py
    d = BenchDaemon(build, idle_config(build), "warden-bench-idle-")
    try:
        d.start()
        wait_up(d, ["faulty"], 20)
        with open("/proc/loadavg") as f:
            res["loadavg_start"] = f.read().split()[0]
        say("[%s] phase B: %d hang + %d stall injections" % (build.label, args.injections, args.injections))
        m0 = metrics(d)
        log0 = len(d.log())
        for i in range(args.injections):
            for fault in ("hang", "stall"):
                c = d.wait_cell("faulty", lambda c: c["state"] == "running" and c["heartbeat"]["seq"] >= 1, 10)
                r0 = c["restarts"]
                r = d.post("/cells/faulty/inject", {"fault": fault})
                if r.status != 202:
                    res["problems"].append("%s: inject answered %r" % (fault, r))
                    continue
                deadline = time.monotonic() + 10
                while True:
                    c = d.cell("faulty")
                    if c["restarts"] > r0 and c["state"] == "running":
                        break
                    if time.monotonic() > deadline:
                        res["problems"].append("%s: not recovered in 10 s (state %s)" % (fault, c["state"]))
                        d.post("/cells/faulty/restart?wait=10")
                        c = None
                        break
                    time.sleep(0.002)
                if c is None:
                    continue
                kind = (c.get("last_failure") or {}).get("kind")
                res["kinds"][kind] = res["kinds"].get(kind, 0) + 1
                det = c["timings"]["detection_ms"]
                if kind == "stuck" and det is not None:
                    res["excess"][fault].append(det - FAULTY_TIMEOUT_MS)
        m1 = metrics(d)
        s0, s1 = starved(m0, "faulty"), starved(m1, "faulty")
        res["starved"] = None if s1 is None else s1 - (s0 or 0)
        res["starved_lines"] = [l for l in d.log()[log0:].splitlines() if "host starved" in l]
        d.stop_cells(["faulty"])
    finally:
        d.cleanup()
        os.sched_setaffinity(0, saved)
    return res


# ---- report -------------------------------------------------------------------

def fmt(v, f="%d"):
    return "-" if v is None else f % v


def report_a(runs, args):
    print()
    print("== phase A: load, %d s: wrk -t2 -c%d GET /cells (TCP, operator token), stress-ng --cpu %d --io %d, "
          "%d QEMU-TCG Linux cells restarted in a loop; no injection ==" %
          (args.seconds, args.wrk_connections, args.stress_cpu, args.stress_io, args.qemu_cells))
    for r in runs:
        if r.get("aborted"):
            print("[%s] ABORTED: %s" % (r["build"], r["aborted"]))
    runs = [r for r in runs if not r.get("aborted")]
    if not runs:
        return
    w = 22
    print("%-44s" % "" + "".join("%*s" % (w, r["build"]) for r in runs))

    def row(label, vals):
        print("%-44s" % label + "".join("%*s" % (w, v) for v in vals))

    for n in KVM_CELLS:
        row("%s: false failures (all kinds)" % n, [sum(r["cells"][n]["failures"].values()) for r in runs])
        row("  by kind", [" ".join("%s %d" % kv for kv in sorted(r["cells"][n]["failures"].items())) or "-"
                          for r in runs])
        row("  restarts", [r["cells"][n]["restarts"] for r in runs])
        row("  warden_cell_starved_total (delta)", [fmt(r["cells"][n]["starved"]) for r in runs])
    for n in qemu_names(args):
        row("%s: failures by kind / starved" % n,
            ["%s / %s" % (" ".join("%s %d" % kv for kv in sorted(r["cells"][n]["failures"].items())) or "0",
                          fmt(r["cells"][n]["starved"])) for r in runs])
    row("\"host starved\" log lines", [r["starved_log"] for r in runs])
    row("load average 1-min: median / max",
        ["%.1f / %.1f" % (median(r["load1"]), max(r["load1"])) if r["load1"] else "-" for r in runs])
    row("runnable tasks: median / max",
        ["%d / %d" % (median(r["runnable"]), max(r["runnable"])) if r["runnable"] else "-" for r in runs])
    row("wrk requests/s", [fmt(r["wrk"]["rps"], "%.0f") for r in runs])
    row("wrk latency p50 / p99 (ms)", ["%s / %s" % (fmt(r["wrk"]["lat"].get("50"), "%.1f"),
                                                    fmt(r["wrk"]["lat"].get("99"), "%.1f")) for r in runs])
    row("wrk errors: socket c/r/w/timeout, non-2xx",
        ["%s, %d" % ("/".join(str(r["wrk"]["errors"].get(k, 0)) for k in ("connect", "read", "write", "timeout")),
                     r["wrk"]["non2xx"]) for r in runs])
    row("QEMU restarts done (all Linux cells)", [sum(len(v) for v in r["qemu_ok"].values()) for r in runs])
    row("  restart -> running, median / max (s)",
        ["%.1f / %.1f" % (median(a), max(a)) if a else "-"
         for a in ([x for v in r["qemu_ok"].values() for x in v] for r in runs)])
    row("  restarts failed or refused", [sum(len(v) for v in r["qemu_failed"].values()) for r in runs])
    row("loop lag samples in the window", [fmt(r.get("lag", {}).get("count")) for r in runs])
    row("loop lag mean (ms)", [fmt(r.get("lag", {}).get("mean_ms"), "%.2f") for r in runs])
    row("loop lag p50 / p99 (bucket bound, ms)",
        ["%s / %s" % (fmt(r["lag"]["p50"] * 1000, "%g"), fmt(r["lag"]["p99"] * 1000, "%g")) if r.get("lag") else "-"
         for r in runs])
    row("loop lag samples > 1 ms / > 10 ms",
        ["%d / %d" % (r["lag"]["over_1ms"], r["lag"]["over_10ms"]) if r.get("lag") else "-" for r in runs])
    row("warden_loop_lag_max_seconds (ms, since start)", [fmt(r.get("lag_max_ms"), "%.1f") for r in runs])
    if len(runs) == 2:
        new = sum(sum(runs[0]["cells"][n]["failures"].values()) for n in KVM_CELLS)
        old = sum(sum(runs[1]["cells"][n]["failures"].values()) for n in KVM_CELLS)
        print("false failures of the kvm cells, %s vs %s: %d vs %d%s" %
              (runs[0]["build"], runs[1]["build"], new, old,
               " (%.1fx fewer)" % (old / new) if new else (" (all gone)" if old else
                                                           ": the baseline had none either, so this load did not "
                                                           "reproduce the defect in this run")))
    for r in runs:
        for n in KVM_CELLS:
            for why in r["cells"][n]["reasons"]:
                print("  [%s] %s failure: %s" % (r["build"], n, why))
        for n, fl in r["qemu_failed"].items():
            for why in fl[:3]:
                print("  [%s] %s restart failed: %s" % (r["build"], n, why))


def report_b(runs, args):
    print()
    print("== phase B: idle, faulty cell alone (period %d ms, timeout %d ms), %d hang + %d stall; "
          "stuck detection_ms - %d ms (goal <= %.0f ms) ==" %
          (FAULTY_PERIOD_MS, FAULTY_TIMEOUT_MS, args.injections, args.injections, FAULTY_TIMEOUT_MS, GOAL_EXCESS_MS))
    print("%-12s %-6s %8s %8s %8s %5s  %s" % ("build", "fault", "median", "p90", "max", "n", "goal"))
    for r in runs:
        for f in ("hang", "stall"):
            xs = r["excess"][f]
            if xs:
                print("%-12s %-6s %8.3f %8.3f %8.3f %5d  %s" % (r["build"], f, median(xs), pct(xs, 90), max(xs), len(xs),
                                                              "met" if max(xs) <= GOAL_EXCESS_MS else
                                                              "max over (p90 %s)" % ("met" if pct(xs, 90) <= GOAL_EXCESS_MS
                                                                                     else "over")))
            else:
                print("%-12s %-6s %8s %8s %8s %5d" % (r["build"], f, "-", "-", "-", 0))
        print("%-12s declared as: %s; starved (delta) %s; load avg at start %s" %
              (r["build"], ", ".join("%s x%d" % kv for kv in sorted(r["kinds"].items(), key=str)),
               fmt(r.get("starved")), r.get("loadavg_start", "-")))
        for l in r.get("starved_lines", [])[:5]:
            print("%-12s   %s" % (r["build"], l.strip()))
        for p in r["problems"]:
            print("%-12s PROBLEM: %s" % (r["build"], p))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--seconds", type=int, default=120, help="length of the load window; default 120")
    ap.add_argument("--injections", type=int, default=30, help="hang and stall injections each in phase B; default 30")
    ap.add_argument("--build", default=harness.BUILD, help="the build under test; default build/")
    ap.add_argument("--baseline-build", help="another build to run both phases against, e.g. an older commit's")
    ap.add_argument("--qemu", default=shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64")
    ap.add_argument("--qemu-cells", type=int, default=2, help="Linux cells restarted in a loop; default 2")
    ap.add_argument("--stress-cpu", type=int, default=4, help="stress-ng --cpu; default 4")
    ap.add_argument("--stress-io", type=int, default=2, help="stress-ng --io; default 2")
    ap.add_argument("--wrk-connections", type=int, default=32, help="wrk -c; default 32")
    ap.add_argument("--skip-a", action="store_true", help="phase B only")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)

    if not harness.kvm_available():
        print("SKIP: /dev/kvm not available")
        return 0
    if not os.access(args.qemu, os.X_OK):
        print("SKIP: %s not found" % args.qemu)
        return 0
    builds = [Build(args.build, "this build")]
    if args.baseline_build:
        builds.append(Build(args.baseline_build, "baseline"))
    for b in builds:
        if b.missing():
            print("SKIP: %s lacks %s (ninja -C %s)" % (b.path, ", ".join(b.missing()), b.path))
            return 0
    if not args.skip_a:
        for tool in ("wrk", "stress-ng"):
            if not ensure_tool(tool, tool):
                print("SKIP: %s not installed and apt-get could not install it" % tool)
                return 0

    t_start = time.monotonic()
    a_runs, b_runs = [], []
    # the idle phase first, before the load phase leaves its 1-min load average behind
    for b in builds:
        b_runs.append(phase_b(b, args))
    for b in builds:
        if not args.skip_a:
            a_runs.append(phase_a(b, args, args.qemu))

    print()
    print("builds: %s" % "; ".join("%s = %s" % (b.label, b.path) for b in builds))
    print("host: %d CPUs, shared with other users (figures are noisy); total %.0f s" %
          (os.cpu_count() or 0, time.monotonic() - t_start))
    if a_runs:
        report_a(a_runs, args)
    report_b(b_runs, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
