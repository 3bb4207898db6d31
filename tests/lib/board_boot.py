# SPDX-License-Identifier: MIT
"""The thesis's three boot experiments on the emulated Jailhouse board,
measured on wardend's own clock: shared by tests/bench/bench_jailhouse.py
and tests/eval/run.

Each boot is timed from the operation's acceptance (created_mono_ns) to two
end points of the board's Linux cell: `started` (CELL_START returned: the
thesis's end point, where `jailhouse cell linux` exits) and its first
running beat (warden's)."""
import time

from board import CELL_S

EXPERIMENTS = ("ecosystem boot", "Linux cell reboot", "ecosystem reboot")


def events_after(b, name, mono_ns):
    c = b.cell(name)
    return [e for e in c["events"] if e["mono_ns"] >= mono_ns] if c else []


def timed_boot(b, method, path, cell="linux"):
    """Issues the request; returns (to started, to first running beat) in
    seconds, both on wardend's clock from the operation's acceptance."""
    status, op = b.request(method, path)
    assert status == 202 and "operation" in op, (status, op)
    t0 = op["created_mono_ns"]

    def done():
        evs = events_after(b, cell, t0)
        started = [e for e in evs if e["type"] == "started"]
        running = [e for e in evs if e["type"] == "state" and e["state"] == "running"]
        return (started[0], running[0]) if started and running and running[0]["mono_ns"] > started[0]["mono_ns"] \
            else None

    deadline = time.monotonic() + CELL_S
    while time.monotonic() < deadline:
        b.alive()
        r = done()
        if r:
            return (r[0]["mono_ns"] - t0) / 1e9, (r[1]["mono_ns"] - t0) / 1e9
        time.sleep(0.5)
    raise AssertionError("%s %s: the Linux cell did not come up in %d s" % (method, path, CELL_S))


def wait_all_running(b):
    for n in ("heartbeat", "linux"):
        b.wait_cell(n, lambda c: c["state"] == "running", CELL_S, "running")


def ecosystem_boot(b):
    status, op = b.request("POST", "/hypervisor/disable?wait=300")
    assert status in (200, 202), (status, op)
    b.wait_cell("linux", lambda c: c["state"] == "stopped", CELL_S, "stopped by the disable")
    r = timed_boot(b, "POST", "/hypervisor/enable")
    wait_all_running(b)
    return r


def linux_reboot(b):
    r = timed_boot(b, "POST", "/cells/linux/restart")
    wait_all_running(b)
    return r


def ecosystem_reboot(b):
    r = timed_boot(b, "POST", "/hypervisor/restart")
    wait_all_running(b)
    return r


BOOTS = {"ecosystem boot": ecosystem_boot, "Linux cell reboot": linux_reboot, "ecosystem reboot": ecosystem_reboot}


def boot_round(b):
    """One run of each experiment: {experiment: (to started, to first beat)}."""
    return {name: BOOTS[name](b) for name in EXPERIMENTS}
