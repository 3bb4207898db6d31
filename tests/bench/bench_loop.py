#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Benchmark: does wardend's event loop ever block? Loop lag and API latency under load.

Not a test: prints figures, asserts nothing about them.

Each scenario starts a fresh wardend (tests/lib/harness.py, directories on
/dev/shm, pinned off the cells' CPU) and reads, over its window:

  loop lag     the daemon's own probe: a 50 Hz high-priority timer notes how
               late the loop ran it (warden_loop_lag_seconds histogram in
               GET /metrics). p50/p99 come from the bucket deltas between a
               scrape before and one after the window: the upper bound of
               the bucket where the cumulative count crosses (so "<= x").
               max is warden_loop_lag_max_seconds when it grew during the
               window, else the window's highest non-empty bucket bound.
  /health      GET /health over the unix socket, one request every 20 ms,
               sequential, from a thread of this script: round trip (new
               connection each time).

Scenarios (--only NAME[,NAME..]):

  idle       8 heartbeat cells (period 100 ms), 10 s idle
  restart    200 POST /cells/NAME/restart?wait=5, round-robin over 4 of 8
             heartbeat cells; restart time as this script sees it and the
             operation's own timings_ms.total
  qemu       --qemu-restarts (50) restarts of a Linux cell on QEMU (TCG);
             SKIP without QEMU or the Linux inmate image
  upload     --uploads (20) PUT /cells/NAME/images/FILE of 64 MiB each over
             the unix socket, then as many over TCP (operator token): MB/s
             (10^6 bytes per second) of each upload's round trip
  metrics    64 faulty cells (period 10 ms, timeout 30 ms, cpu_sharing) with
             0 clients, then with --clients (32) threads scraping GET /metrics
             in a loop: --injections (40) panics (detection_ms) and as many
             stalls (stuck: detection_ms - timeout_ms) round-robin over the
             cells, one at a time, each recovered before the next
  cpu        wardend's utime+stime (/proc/PID/stat) over --idle-seconds (20)
             at 64 heartbeat cells x period 10 ms and 8 x period 100 ms,
             as % of one core

Usage: tests/bench/bench_loop.py [--quick] [--only idle,restart,...] [--qemu-restarts N] [--idle-seconds S]
"""
import argparse
import datetime
import http.client
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness  # noqa: E402
from benchstats import median, pct  # noqa: E402

SCENARIOS = ["idle", "restart", "qemu", "upload", "metrics", "cpu"]
LAG_LE = ["1e-05", "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
          "0.025", "0.05", "0.1", "1", "+Inf"]
HEALTH_INTERVAL_S = 0.020
FAULTY_PERIOD_MS, FAULTY_TIMEOUT_MS = 10, 30
IMAGE_MIB = 64
# daemon log lines that are expected here and not a problem
EXPECTED_LOG = [re.compile(p) for p in (r"cpu_sharing is ON",)]

log = sys.stderr


def say(msg):
    print(msg, file=log, flush=True)


def stats(xs, fmt="%9.3f"):
    """median p90 p99 max n, in the bench's column layout."""
    if not xs:
        return "%9s %9s %9s %9s %5d" % ("-", "-", "-", "-", 0)
    return "%s %s %s %s %5d" % (fmt % median(xs), fmt % pct(xs, 90), fmt % pct(xs, 99), fmt % max(xs), len(xs))


# ---- the daemon's loop lag probe ------------------------------------------

class Lag:
    """warden_loop_lag_* from one /metrics scrape."""

    def __init__(self, text):
        self.cum = {}
        self.max_s = None
        for line in text.splitlines():
            m = re.match(r'^warden_loop_lag_seconds_bucket\{le="([^"]+)"\} (\d+)$', line)
            if m:
                self.cum[m.group(1)] = int(m.group(2))
            elif line.startswith("warden_loop_lag_max_seconds "):
                self.max_s = float(line.split()[1])
        missing = [le for le in LAG_LE if le not in self.cum]
        if missing or self.max_s is None:
            raise AssertionError("/metrics lacks warden_loop_lag buckets %s or the max gauge" % missing)


def scrape_lag(d):
    r = d.get("/metrics")
    if r.status != 200:
        raise AssertionError("GET /metrics answered %r" % r)
    return Lag(r.body)


class LagWindow:
    """The lag probe's figures between two scrapes, in ms; p50/p99 are bucket upper bounds."""

    def __init__(self, a, b):
        delta = [b.cum[le] - a.cum[le] for le in LAG_LE]
        self.n = delta[-1]
        self.grew = b.max_s > a.max_s
        self.max_ever_ms = b.max_s * 1000
        self.p50 = self._crossing(delta, 0.50)
        self.p99 = self._crossing(delta, 0.99)
        top = None
        prev = 0
        for le, c in zip(LAG_LE, delta):
            if c > prev:
                top = le
            prev = c
        if self.grew:
            self.max_ms, self.max_exact = b.max_s * 1000, True
        else:  # the gauge still holds a larger lag from before the window (startup)
            self.max_ms, self.max_exact = self._bound(top), False

    def _crossing(self, delta, q):
        if not self.n:
            return None
        need = q * self.n
        for le, c in zip(LAG_LE, delta):
            if c >= need:
                return self._bound(le)
        return None

    @staticmethod
    def _bound(le):
        return None if le is None else float("inf") if le == "+Inf" else float(le) * 1000

    def cols(self):
        def f(v, exact=False):
            if v is None:
                return "%9s" % "-"
            if v == float("inf"):
                return "%9s" % ">1000"
            return ("%9.3f" if exact else "%9s") % (v if exact else "<=%g" % v)
        return "%s %s %s" % (f(self.p50), f(self.p99), f(self.max_ms, self.max_exact))


# ---- /health, as a client sees it -------------------------------------------

class HealthProbe:
    """GET /health every HEALTH_INTERVAL_S over the unix socket, sequential, from a thread."""

    def __init__(self, d, limit_s):
        self.d = d
        self.limit_s = limit_s  # a bound, should stop() never come
        self.ms = []
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        t_end = time.monotonic() + self.limit_s
        nxt = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < t_end:
            t0 = time.monotonic()
            try:
                r = self.d.get("/health", timeout=10)
                if r.status == 200:
                    self.ms.append((time.monotonic() - t0) * 1000)
                else:
                    self.errors.append("status %d" % r.status)
            except (OSError, http.client.HTTPException) as e:
                self.errors.append(repr(e))
            nxt += HEALTH_INTERVAL_S
            self._stop.wait(max(0.0, nxt - time.monotonic()))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(15)
        return False


class Window:
    """A measured stretch: lag window and /health probe around a with-block."""

    def __init__(self, d, limit_s=3600):
        self.d = d
        self.probe = HealthProbe(d, limit_s)
        self.lag = None
        self.seconds = 0.0

    def __enter__(self):
        self._a = scrape_lag(self.d)
        self._t0 = time.monotonic()
        self.probe.__enter__()
        return self

    def __exit__(self, *exc):
        self.probe.__exit__()
        self.seconds = time.monotonic() - self._t0
        if exc[0] is None:
            self.lag = LagWindow(self._a, scrape_lag(self.d))
        return False


# ---- cells and daemons --------------------------------------------------------

def slot(i):
    return {"phys": 0x40000000 + i * 0x400000, "comm_phys": 0x7f000000 + i * 0x1000}


def heartbeat_cell(i, cpu, period, timeout):
    return harness.demo_cell("hb%02d" % i, "heartbeat.bin", cpu=cpu, period=period, timeout=timeout,
                             autostart=False, **slot(i))


def faulty_cell(i, cpu):
    return harness.demo_cell(
        "f%02d" % i, "faulty.bin", cpu=cpu, period=FAULTY_PERIOD_MS, timeout=FAULTY_TIMEOUT_MS, allow_inject=True,
        recovery={"on_panic": "restart", "on_stuck": "restart", "on_boot_timeout": "restart",
                  "on_crash": "restart", "on_exit": "restart", "max_restarts": 1024, "window_s": 1,
                  "backoff": {"initial_ms": 0}}, autostart=False, **slot(i))


class BenchDaemon(harness.Daemon):
    """A harness Daemon on /dev/shm, pinned off the cells' CPU."""

    # --rt-priority: wardend as the shipped unit runs it (CPUSchedulingPolicy=fifo,
    # CPUSchedulingResetOnFork=yes): the loop thread real-time, its workers and
    # every child (runners, QEMU) back to SCHED_OTHER.
    rt_priority = 0

    def __init__(self, cfg, pin_cpus, tag):
        cfg.setdefault("limits", {"max_connections": 256})
        wrap = ["chrt", "--fifo", "--reset-on-fork", str(self.rt_priority)] if self.rt_priority else []
        super().__init__(cfg, keep_dirs=tempfile.mkdtemp(prefix="warden-bench-loop-%s-" % tag, dir="/dev/shm"),
                         wrap=wrap)
        self.pin_cpus = pin_cpus

    def start(self, wait=True):
        mine = os.sched_getaffinity(0)
        if self.pin_cpus:
            os.sched_setaffinity(0, self.pin_cpus)  # wardend inherits it; vCPU threads pin themselves
        try:
            return super().start(wait)
        finally:
            os.sched_setaffinity(0, mine)  # the clients of this script may run anywhere

    def problem_lines(self, since=0, expected=None):
        """Daemon log lines at warning or worse that this bench does not expect
        (from byte offset since; expected(line) says which more are fine)."""
        out = []
        for line in self.log()[since:].splitlines():
            m = re.match(r"^\S+ wardend\[\d+\] (\w+): (.*)$", line)
            if m and m.group(1) in ("warning", "err", "error", "crit", "alert", "emerg") and \
                    not any(p.search(m.group(2)) for p in EXPECTED_LOG) and not (expected and expected(line)):
                out.append(line)
            elif not m and line.strip():
                out.append(line)  # not the daemon's log format: a crash, a sanitizer, a runner
        return out


def start_all(d, names, timeout=60):
    """Starts the cells one after the other, each up before the next.

    Not all at once: 64 vCPUs booting together on one shared host CPU starve
    each other past a 30 ms timeout ("sequence stuck at 1"), and with
    restarts that never run out (budget 1024/s, no backoff) the restarts
    keep the storm going; see tests/bench/README.md."""
    for name in names:
        r = d.post("/cells/%s/start?wait=5" % name)
        if r.status != 200:
            raise AssertionError("POST /cells/%s/start?wait=5 answered %r\n%s" % (name, r, d.log()[-3000:]))
    deadline = time.monotonic() + timeout
    while True:
        r = d.get("/cells")
        cells = r.json() if r.status == 200 else []
        cells = cells.get("cells", cells) if isinstance(cells, dict) else cells
        up = {c["name"] for c in cells if c.get("state") == "running"}
        if set(names) <= up:
            return
        if time.monotonic() > deadline:
            raise AssertionError("cells not running after %d s: %s\n%s" %
                                 (timeout, sorted(set(names) - up), d.log()[-3000:]))
        time.sleep(0.1)


# ---- scenarios -----------------------------------------------------------------

class Result:
    def __init__(self, label):
        self.label = label
        self.window = None
        self.figure = "-"  # the scenario's own figure, for the summary
        self.details = []  # extra lines for the detail section
        self.problems = []
        self.skip = None
        self.goals = []  # (text, met)


class Bench:
    def __init__(self, args):
        self.args = args
        self.results = []
        self.pin = (os.sched_getaffinity(0) - {args.cpu}) if not args.no_pin else set()

    def finish(self, res, d, window=None, since=0, expected=None):
        res.window = window
        if d.proc and d.proc.poll() is not None:
            res.problems.append("wardend exited with %s during the scenario" % d.proc.returncode)
        if window and window.probe.errors:
            res.problems.append("%d /health errors, first: %s" % (len(window.probe.errors), window.probe.errors[0]))
        lines = d.problem_lines(since, expected)
        starved = [l for l in lines if "host starved" in l]
        if starved:
            res.problems.append("the daemon's starvation guard fired %d times (\"%s\")" %
                                (len(starved), starved[0].split(": ", 2)[-1]))
        lines = [l for l in lines if "host starved" not in l]
        if lines:
            res.problems.append("%d daemon log lines at warning or worse, first: %s" % (len(lines), lines[0]))
            say("!! %s: daemon log lines at warning or worse:\n%s" % (res.label, "\n".join(lines[:40])))
        self.results.append(res)
        return res

    def lag_goals(self, res):
        w = res.window
        if w and w.lag and w.lag.n:
            res.goals.append(("loop lag max <= 5 ms", w.lag.max_ms is not None and w.lag.max_ms <= 5))
            res.goals.append(("loop lag p99 <= 1 ms", w.lag.p99 is not None and w.lag.p99 <= 1))

    # 1
    def idle(self):
        a = self.args
        res = Result("idle: 8 hb x 100 ms, %g s" % a.idle_window)
        say("== idle: 8 heartbeat cells, period 100 ms, %g s" % a.idle_window)
        cells = [heartbeat_cell(i, a.cpu, 100, 500) for i in range(8)]
        with BenchDaemon({"cells": cells}, self.pin, "idle") as d:
            start_all(d, [c["name"] for c in cells])
            with Window(d) as w:
                time.sleep(a.idle_window)
            self.finish(res, d, w)
        self.lag_goals(res)

    # 2
    def restart(self):
        a = self.args
        n = a.restarts
        res = Result("restart: %d kvm restarts" % n)
        say("== restart: %d POST /cells/NAME/restart?wait=5 over 4 of 8 heartbeat cells" % n)
        cells = [heartbeat_cell(i, a.cpu, 100, 500) for i in range(8)]
        seen, total = [], []
        with BenchDaemon({"cells": cells}, self.pin, "restart") as d:
            start_all(d, [c["name"] for c in cells])
            with Window(d) as w:
                for i in range(n):
                    name = cells[i % 4]["name"]
                    t0 = time.monotonic()
                    r = d.post("/cells/%s/restart?wait=5" % name)
                    dt = (time.monotonic() - t0) * 1000
                    op = r.json() if r.ctype.startswith("application/json") else {}
                    if r.status != 200 or op.get("phase") != "succeeded":
                        res.problems.append("restart %d of %s: %r" % (i, name, r))
                        continue
                    seen.append(dt)
                    total.append((op.get("timings_ms") or {}).get("total"))
                    if i % 50 == 49:
                        say("  %d/%d" % (i + 1, n))
            self.finish(res, d, w)
        total = [t for t in total if t is not None]
        res.figure = "restart median %.2f ms (op %.2f)" % (median(seen), median(total)) if seen else "no restart"
        res.details = [("restart, POST -> 200 (client)", seen), ("restart, operation timings_ms.total", total)]
        self.lag_goals(res)

    # 3
    def qemu(self):
        a = self.args
        n = a.qemu_restarts
        res = Result("qemu: %d Linux restarts" % n)
        qemu = shutil.which("qemu-system-x86_64")
        kernel = os.path.join(harness.BUILD, "driver", "linux", "vmlinux")
        initrd = os.path.join(harness.BUILD, "driver", "linux", "initramfs.cpio.gz")
        if not qemu:
            res.skip = "qemu-system-x86_64 not found"
        for p in (kernel, initrd):
            if not res.skip and not os.access(p, os.R_OK):
                res.skip = "no Linux inmate image (%s): ninja -C build driver/linux/vmlinux " \
                           "driver/linux/initramfs.cpio.gz" % p
        if res.skip:
            say("== qemu: SKIP: " + res.skip)
            self.results.append(res)
            return
        say("== qemu: %d POST /cells/linux/restart?wait=120 of a Linux cell (QEMU TCG)" % n)
        kernel, initrd = os.path.abspath(kernel), os.path.abspath(initrd)
        spec = {
            "name": "linux", "backend": "qemu", "cpus": [a.cpu],
            "memory": [{"name": "ram", "phys_start": "0x80000000", "virt_start": "0x0", "size": "0x10000000",
                        "flags": ["read", "write", "execute", "loadable"]}],
            "comm": {"phys_start": "0x7f100000", "virt_start": "0xfe000000", "size": 4096},
            "linux": {"kernel": kernel, "initrd": initrd, "cmdline": "console=ttyS0 quiet"},
            "health": {"period_ms": 100, "timeout_ms": 1000, "boot_timeout_ms": 60000},
        }
        cfg = {"backends": {"kvm": {"runner": os.path.abspath(harness.WARDEN_KVM)},
                            "qemu": {"binary": qemu, "accel": "tcg", "machine": "pc"}},
               "api": {"image_dirs": sorted({os.path.dirname(kernel), os.path.dirname(initrd)})},
               "cells": [spec]}
        seen, total = [], []
        with BenchDaemon(cfg, self.pin, "qemu") as d:
            d.wait_cell("linux", lambda c: c["state"] == "running" and c["heartbeat"]["seq"] >= 1, 120, "running")
            with Window(d) as w:
                for i in range(n):
                    t0 = time.monotonic()
                    r = d.post("/cells/linux/restart?wait=120", timeout=150)
                    dt = (time.monotonic() - t0) * 1000
                    op = r.json() if r.ctype.startswith("application/json") else {}
                    if r.status != 200 or op.get("phase") != "succeeded":
                        res.problems.append("restart %d: %r" % (i, r))
                        say("!! qemu restart %d: %r\n%s" % (i, r, d.log()[-2000:]))
                        try:
                            d.wait_state("linux", "running", timeout=120)
                        except AssertionError:
                            break
                        continue
                    seen.append(dt)
                    total.append((op.get("timings_ms") or {}).get("total"))
                    if i % 10 == 9:
                        say("  %d/%d" % (i + 1, n))
            self.finish(res, d, w)
        total = [t for t in total if t is not None]
        res.figure = "restart median %.0f ms (op %.0f)" % (median(seen), median(total)) if seen else "no restart"
        res.details = [("restart, POST -> 200 (client)", seen), ("restart, operation timings_ms.total", total)]
        self.lag_goals(res)

    # 4
    def upload(self):
        a = self.args
        n = a.uploads
        say("== upload: %d x %d MiB over unix, then over TCP" % (n, IMAGE_MIB))
        data = os.urandom(IMAGE_MIB << 20)
        digest = harness.content_digest(data)
        cells = [heartbeat_cell(i, a.cpu, 100, 500) for i in range(8)]
        cfg = {"cells": cells, "api": {"max_image_bytes": 2 * len(data)}}
        with BenchDaemon(cfg, self.pin, "upload") as d:
            start_all(d, [c["name"] for c in cells])
            for transport, tcp in (("unix", False), ("tcp", True)):
                res = Result("upload: %d x %d MiB, %s" % (n, IMAGE_MIB, transport))
                mbs = []
                with Window(d) as w:
                    for i in range(n):
                        t0 = time.monotonic()
                        r = d.upload(cells[0]["name"], "big%d.bin" % (i % 2), data, digest=digest, tcp=tcp,
                                     timeout=120)
                        dt = time.monotonic() - t0
                        if r.status not in (200, 201):
                            res.problems.append("upload %d over %s: %r" % (i, transport, r))
                            continue
                        mbs.append(len(data) / dt / 1e6)
                self.finish(res, d, w)
                res.figure = "%s %.0f MB/s median" % (transport, median(mbs)) if mbs else "no upload"
                res.details = [("upload MB/s over %s (10^6 B/s)" % transport, mbs)]
                res.goals.append(("upload >= 200 MB/s (%s)" % transport, bool(mbs) and median(mbs) >= 200))
                self.lag_goals(res)

    # 5
    def metrics(self):
        a = self.args
        n = a.injections
        say("== metrics: 64 faulty cells (period %d ms, timeout %d ms); %d panics + %d stalls with 0, then %d "
            "/metrics clients" % (FAULTY_PERIOD_MS, FAULTY_TIMEOUT_MS, n, n, a.clients))
        cells = [faulty_cell(i, a.cpu) for i in range(64)]
        names = [c["name"] for c in cells]
        phases = {}
        with BenchDaemon({"cells": cells}, self.pin, "metrics") as d:
            start_all(d, names)
            rr = [0]
            t0 = time.monotonic()
            body = d.get("/metrics").body
            one = (time.monotonic() - t0) * 1000
            say("  one GET /metrics: %d bytes, %d lines, %.1f ms" % (len(body), body.count("\n"), one))
            for clients in (0, a.clients):
                res = Result("metrics: 64 cells, %d clients" % clients)
                since = len(d.log())
                stalled = set()
                scrapes = [0]
                errors = []
                stop = threading.Event()

                def scrape(stop=stop, scrapes=scrapes, errors=errors):
                    while not stop.is_set():
                        try:
                            r = d.get("/metrics", timeout=30)
                            if r.status == 200:
                                scrapes[0] += 1
                            else:
                                errors.append("status %d" % r.status)
                        except (OSError, http.client.HTTPException) as e:
                            errors.append(repr(e))
                            stop.wait(0.01)
                threads = [threading.Thread(target=scrape, daemon=True) for _ in range(clients)]
                for t in threads:
                    t.start()
                t0 = time.monotonic()
                try:
                    with Window(d) as w:
                        panic = self.inject_series(d, names, rr, "panic", n, res)
                        stuck = self.inject_series(d, names, rr, "stall", n, res, stalled)
                finally:
                    stop.set()
                    for t in threads:
                        t.join(60)
                el = time.monotonic() - t0
                if errors:
                    res.problems.append("%d /metrics client errors, first: %s" % (len(errors), errors[0]))


                def expected(line, stalled=stalled):
                    # the log drops its "cell X: " prefix where the message names the cell first
                    m = re.search(r"cell (\S+): ", line) or re.search(r'Cell "([^"]+)"', line)
                    return "injected panic" in line or (bool(m) and m.group(1) in stalled and
                                                        ("(stuck)" in line or "failed: stuck" in line))
                self.finish(res, d, w, since, expected)
                excess = [x - FAULTY_TIMEOUT_MS for x in stuck]
                phases[clients] = (panic, excess)
                res.figure = "panic %s / stuck+%s ms" % (
                    "%.3f/%.3f" % (median(panic), max(panic)) if panic else "-",
                    "%.3f/%.3f" % (median(excess), max(excess)) if excess else "-")
                res.details = [("panic detection_ms", panic),
                               ("stall: detection_ms - timeout_ms (%d)" % FAULTY_TIMEOUT_MS, excess)]
                if not clients:
                    res.details_note = "one GET /metrics before: %d bytes, %d lines, %.1f ms" % (
                        len(body), body.count("\n"), one)
                else:
                    res.details_note = "%d /metrics scrapes in %.1f s (%.0f/s)" % (scrapes[0], el, scrapes[0] / el)
                    res.goals.append(("panic detection median <= 1 ms", bool(panic) and median(panic) <= 1))
                    res.goals.append(("panic detection max <= 5 ms", bool(panic) and max(panic) <= 5))
                    res.goals.append(("stuck within timeout + 2 ms (max)", bool(excess) and max(excess) <= 2))
                self.lag_goals(res)
        if 0 in phases and a.clients in phases:
            ratios = []
            for what, i in (("panic detection median", 0), ("stuck excess median", 1)):
                base, load = phases[0][i], phases[a.clients][i]
                if base and load and median(base) > 0:
                    ratios.append("%s x%.2f" % (what, median(load) / median(base)))
            self.results[-1].ratio = "; ".join(ratios)

    def inject_series(self, d, names, rr, fault, n, res, stalled=None, poll_s=0.002, timeout_s=10):
        """n injections round-robin over names, each waited for (restarts+1, running) before the next;
        gives up after 3 in a row not recovered."""
        out = []
        lost = 0
        for i in range(n):
            if lost >= 3:
                res.problems.append("gave up on %s after %d in a row not recovered (%d of %d injected)" %
                                    (fault, lost, i, n))
                break
            name = names[rr[0] % len(names)]
            rr[0] += 1
            c = d.wait_cell(name, lambda c: c["state"] == "running" and c["heartbeat"]["seq"] >= 1, 10, "running")
            r0 = c["restarts"]
            if stalled is not None:
                stalled.add(name)
            r = d.post("/cells/%s/inject" % name, {"fault": fault})
            if r.status != 202:
                res.problems.append("inject %s into %s: %r" % (fault, name, r))
                continue
            deadline = time.monotonic() + timeout_s
            while True:
                c = d.cell(name)
                if c["restarts"] > r0 and c["state"] == "running":
                    break
                if time.monotonic() > deadline:
                    res.problems.append("%s into %s not recovered within %d s (state %s)" %
                                        (fault, name, timeout_s, c["state"]))
                    say("!! %s into %s not recovered: %s\n%s" % (fault, name, json.dumps(c)[:2000], d.log()[-2000:]))
                    c = None
                    lost += 1
                    break
                time.sleep(poll_s)
            if c is None:
                continue
            lost = 0
            kind = (c.get("last_failure") or {}).get("kind")
            want = "panic" if fault == "panic" else "stuck"
            if kind != want:
                res.problems.append("%s into %s declared %s, not %s" % (fault, name, kind, want))
                continue
            det = c["timings"]["detection_ms"]
            if det is not None:
                out.append(det)
        return out

    # 6
    def cpu(self):
        a = self.args
        for ncells, period, timeout, goal in ((64, 10, 50, 3.0), (8, 100, 500, 0.2)):
            res = Result("cpu: %d hb x %d ms, %g s" % (ncells, period, a.idle_seconds))
            say("== cpu: %d heartbeat cells, period %d ms, %g s" % (ncells, period, a.idle_seconds))
            cells = [heartbeat_cell(i, a.cpu, period, timeout) for i in range(ncells)]
            with BenchDaemon({"cells": cells}, self.pin, "cpu") as d:
                start_all(d, [c["name"] for c in cells])
                time.sleep(1)  # let the start settle
                pid = d.proc.pid
                runners = d.runner_pids()
                # no /health probe here: it would be CPU use of its own
                a0, t0 = scrape_lag(d), time.monotonic()
                c0, s0, r0 = cpu_ticks(pid), sched_ns(pid), sum(cpu_ticks(p) for p in runners)
                time.sleep(a.idle_seconds)
                c1, s1, r1 = cpu_ticks(pid), sched_ns(pid), sum(cpu_ticks(p) for p in runners)
                el = time.monotonic() - t0
                w = Window.__new__(Window)
                w.probe, w.seconds = HealthProbe(d, 0), el
                w.lag = LagWindow(a0, scrape_lag(d))
                self.finish(res, d, w)
            hz = os.sysconf("SC_CLK_TCK")
            pc = (c1 - c0) / hz / el * 100
            ps = (s1 - s0) / 1e9 / el * 100
            pr = (r1 - r0) / hz / el * 100
            res.figure = "wardend %.2f %% of a core" % pc
            res.cpu_note = ("wardend %.3f %% (utime+stime, %d ticks of 1/%d s; schedstat %.3f %%); its %d runners "
                            "together %.2f %%" % (pc, c1 - c0, hz, ps, len(runners), pr))
            res.goals.append(("idle CPU <= %g %% at %d x %d ms" % (goal, ncells, period), pc <= goal))


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def sched_ns(pid):
    """CPU time of all the process's threads, ns (schedstat: finer than the ticks)."""
    total = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


# ---- report ------------------------------------------------------------------------

def report(b, elapsed):
    a = b.args
    print()
    print("== warden event loop: loop lag and API latency under load (%s, %.0f s%s) ==" %
          (datetime.date.today().isoformat(), elapsed, ", --quick" if a.quick else ""))
    print("cells on CPU %d; %s; %s; this script's clients on any CPU; dirs on /dev/shm" %
          (a.cpu, "wardend on CPUs %s" % ",".join(map(str, sorted(b.pin))) if b.pin else "wardend not pinned",
           "wardend's loop SCHED_FIFO %d (reset on fork)" % a.rt_priority if a.rt_priority else "wardend SCHED_OTHER"))
    print("loop lag: the daemon's 50 Hz probe, bucket upper bounds (<=) for p50/p99, max exact from the gauge "
          "when it grew in the window; /health: unix socket, every %d ms, round trip" % (HEALTH_INTERVAL_S * 1000))
    print()
    hdr = "%-34s %9s %9s %9s %6s | %9s %9s %9s %5s | %s" % (
        "scenario (ms)", "lag p50", "lag p99", "lag max", "n", "/health", "p99", "max", "n", "figure")
    print(hdr)
    print("-" * len(hdr))
    for r in b.results:
        if r.skip:
            print("%-34s SKIP: %s" % (r.label, r.skip))
            continue
        w = r.window
        lag = w.lag.cols() + " %6d" % w.lag.n if w and w.lag else "%9s %9s %9s %6s" % ("-", "-", "-", "-")
        h = w.probe.ms if w else []
        hc = "%9.3f %9.3f %9.3f %5d" % (median(h), pct(h, 99), max(h), len(h)) if h else \
            "%9s %9s %9s %5d" % ("-", "-", "-", 0)
        print("%-34s %s | %s | %s" % (r.label, lag, hc, r.figure))

    print()
    print("details (ms unless said)%s %9s %9s %9s %9s %5s" % (" " * 22, "median", "p90", "p99", "max", "n"))
    for r in b.results:
        if r.skip:
            continue
        print(r.label)
        for label, xs in r.details:
            print("  %-44s %s" % (label, stats(xs)))
        if r.window and r.window.probe.ms:
            print("  %-44s %s" % ("/health round trip", stats(r.window.probe.ms)))
        if r.window and r.window.lag:
            L = r.window.lag
            print("  %-44s %.1f s window, %d probe ticks; max since start %.3f ms" %
                  ("loop lag", r.window.seconds, L.n, L.max_ever_ms))
        for attr in ("details_note", "cpu_note", "ratio"):
            if getattr(r, attr, None):
                print("  " + ("with clients / without: " if attr == "ratio" else "") + getattr(r, attr))

    print()
    print("goals (printed, not asserted):")
    for r in b.results:
        for text, met in r.goals:
            print("  %-10s %-40s %s" % ("met" if met else "NOT MET", text, r.label))
    problems = [(r.label, p) for r in b.results for p in r.problems]
    if problems:
        print()
        print("PROBLEMS (%d), details on stderr:" % len(problems))
        for label, p in problems:
            print("  %s: %s" % (label, p))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    ap.add_argument("--only", default=",".join(SCENARIOS), help="scenarios, comma-separated: %s" % ",".join(SCENARIOS))
    ap.add_argument("--restarts", type=int, default=None, help="kvm restarts; default 200 (--quick 20)")
    ap.add_argument("--qemu-restarts", type=int, default=None, help="qemu Linux cell restarts; default 50 (--quick 2)")
    ap.add_argument("--uploads", type=int, default=None, help="64 MiB uploads per transport; default 20 (--quick 3)")
    ap.add_argument("--injections", type=int, default=None,
                    help="panics, and as many stalls, per client count; default 40 (--quick 8)")
    ap.add_argument("--clients", type=int, default=32, help="concurrent /metrics scrapers; default 32")
    ap.add_argument("--idle-window", type=float, default=None, help="idle scenario seconds; default 10 (--quick 2)")
    ap.add_argument("--idle-seconds", type=float, default=None,
                    help="CPU measurement seconds per cell set; default 20 (--quick 3)")
    ap.add_argument("--cpu", type=int, default=1, help="host CPU of the cells; default 1")
    ap.add_argument("--no-pin", action="store_true", help="do not pin wardend off the cells' CPU")
    ap.add_argument("--rt-priority", type=int, default=0,
                    help="run wardend under chrt --fifo --reset-on-fork N, as the unit does; default 0 (SCHED_OTHER)")
    args = ap.parse_args()
    BenchDaemon.rt_priority = args.rt_priority
    q = args.quick
    for k, full, quick in (("restarts", 200, 20), ("qemu_restarts", 50, 2), ("uploads", 20, 3),
                           ("injections", 40, 8), ("idle_window", 10.0, 2.0), ("idle_seconds", 20.0, 3.0)):
        if getattr(args, k) is None:
            setattr(args, k, quick if q else full)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    for s in only:
        if s not in SCENARIOS:
            ap.error("unknown scenario %r (%s)" % (s, ", ".join(SCENARIOS)))

    if not harness.kvm_available():
        print("SKIP: /dev/kvm not available")
        return 0
    sys.stdout.reconfigure(line_buffering=True)
    b = Bench(args)
    t0 = time.monotonic()
    for s in SCENARIOS:
        if s in only:
            try:
                getattr(b, s)()
            except AssertionError as e:
                res = Result("%s (aborted)" % s)
                res.problems.append(str(e).splitlines()[0])
                say("!! %s aborted: %s" % (s, e))
                b.results.append(res)
                res.skip = "aborted: " + str(e).splitlines()[0]
    report(b, time.monotonic() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
