#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The thesis's boot experiments on the emulated arm64 Jailhouse board.

Boots the board once (hypervisor/jailhouse/board/run: real Jailhouse under
QEMU TCG, wardend in the root cell) and repeats, N times each:

  ecosystem boot    POST /hypervisor/enable after a disable (wardend:
                    ENABLE, then the Linux cell created, loaded, started)
  Linux cell reboot POST /cells/linux/restart (CELL_LOAD + CELL_START)
  ecosystem reboot  POST /hypervisor/restart (every cell destroyed,
                    DISABLE, ENABLE, every cell booted again)
  panic detection   a panic injected into the Linux cell, until warden
                    declared it (the thesis had a person notice it); and
                    a read outside the bare-metal cell, until warden
                    declared the CPU Jailhouse failed

Each boot is timed on wardend's own monotonic clock, from the operation's
acceptance (created_mono_ns) to two end points of the Linux cell:
`started` (CELL_START returned: the thesis's end point, where `jailhouse
cell linux` exits) and its first running beat (warden's). The thesis's
figures (Raspberry Pi 4, 50 runs) are printed beside them. TCG emulates the
16 CPUs of the board on this machine's 2 cores: its figures are many times
a Pi's and are no estimate of them; the ratios between the experiments are
what compares.

    python3 tests/bench/bench_jailhouse.py [--runs N]   (default 5)

Needs what tests/board needs (qemu-system-aarch64, the cross compiler,
the Jailhouse tarball); prints SKIP and why without them.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from benchstats import median  # noqa: E402
from board import BOOT_S, CELL_S, Board, require_board  # noqa: E402
from board_boot import BOOTS, wait_all_running  # noqa: E402
from harness import Skip  # noqa: E402

# mean, median, sd in seconds (the thesis, Raspberry Pi 4, 50 runs each)
THESIS = {
    "ecosystem boot": (1.4518, 1.4515, 0.0189),
    "Linux cell reboot": (1.5072, 1.4697, 0.1306),
    "ecosystem reboot": (1.8419, 1.8232, 0.0753),
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def panic_detection(b):
    before = b.cell("linux")["restarts"]
    status, body = b.request("POST", "/cells/linux/inject", {"fault": "panic"})
    assert status == 202, (status, body)
    c = b.wait_cell("linux", lambda c: c["restarts"] > before and c["timings"]["detection_ms"] is not None,
                    CELL_S, "the panic declared")
    failures = [e for e in c["events"] if e["type"] == "failure"]
    assert failures and "panic" in json.dumps(failures[-1]), failures
    wait_all_running(b)
    return c["timings"]["detection_ms"], c["timings"]["recovery_ms"]


def verdict_detection(b):
    """The bare-metal cell reads outside itself: Jailhouse fails its CPU and
    sysfs says so; warden reads sysfs at every sample."""
    before = b.cell("heartbeat")["restarts"]
    status, body = b.request("POST", "/cells/heartbeat/inject", {"fault": "crash"})
    assert status == 202, (status, body)
    c = b.wait_cell("heartbeat", lambda c: c["restarts"] > before and c["timings"]["detection_ms"] is not None,
                    CELL_S, "the failed CPU declared")
    assert "CPU 1 failed" in json.dumps(c["events"]), c["events"]
    wait_all_running(b)
    return c["timings"]["detection_ms"], c["timings"]["recovery_ms"]


def fmt(xs):
    return "%9.3f %9.3f %9.3f %4d" % (statistics.mean(xs), median(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0,
                                       len(xs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    try:
        require_board()
    except Skip as e:
        print("SKIP: %s" % e)
        return 0
    b = Board()
    try:
        b.start()
        log("booting the board (TCG)...")
        t = time.monotonic()
        b.wait_cell("linux", lambda c: c["state"] == "running", BOOT_S, "running")
        wait_all_running(b)
        log("board up, both cells running, after %.0f s" % (time.monotonic() - t))
        results = {k: ([], []) for k in THESIS}
        det, rec, vdet, vrec = [], [], [], []
        for i in range(args.runs):
            for name in THESIS:
                s, r = BOOTS[name](b)
                results[name][0].append(s)
                results[name][1].append(r)
                log("run %d/%d %-18s started %.3f s, first beat %.3f s" % (i + 1, args.runs, name, s, r))
            d, rc = panic_detection(b)
            det.append(d)
            rec.append(rc)
            log("run %d/%d panic: detected in %.3f ms, recovered in %.0f ms" % (i + 1, args.runs, d, rc))
            d, rc = verdict_detection(b)
            vdet.append(d)
            vrec.append(rc)
            log("run %d/%d failed CPU: detected in %.3f ms, recovered in %.0f ms" % (i + 1, args.runs, d, rc))
    finally:
        b.stop()

    print("Jailhouse on the emulated arm64 board (QEMU TCG, 16 CPUs on %d host cores), %d runs;"
          % (os.cpu_count() or 0, args.runs))
    print("seconds from wardend accepting the request. The thesis: Raspberry Pi 4, 50 runs, to `cell linux` exiting.")
    print()
    print("%-18s %-28s %9s %9s %9s %4s" % ("experiment", "end point", "mean", "median", "sd", "n"))
    for name, (mean, med, sd) in THESIS.items():
        started, beat = results[name]
        print("%-18s %-28s %9.4f %9.4f %9.4f %4d" % (name, "thesis (Pi 4): cell started", mean, med, sd, 50))
        print("%-18s %-28s %s" % ("", "board: started (CELL_START)", fmt(started)))
        print("%-18s %-28s %s" % ("", "board: first running beat", fmt(beat)))
        print("%-18s %-28s %8.1fx" % ("", "board/thesis, medians", median(started) / med))
    print()
    print("%-18s %-28s %9s %9s %9s %4s" % ("", "", "mean", "median", "sd", "n"))
    print("%-18s %-28s %s" % ("panic", "detection (ms)", fmt(det)))
    print("%-18s %-28s %s" % ("", "recovery to running (ms)", fmt(rec)))
    print("%-18s %-28s %s" % ("failed CPU", "detection (ms)", fmt(vdet)))
    print("%-18s %-28s %s" % ("(bare metal)", "recovery to running (ms)", fmt(vrec)))
    print("(the thesis could not measure detection: a person noticed the crash)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
