# SPDX-License-Identifier: MIT
"""warden on real Jailhouse: the emulated arm64 board, end to end.

One board boots for the whole file (hypervisor/jailhouse/board/run: QEMU
TCG emulating 16 Cortex-A57 CPUs with EL2 on this machine's two cores, so
a boot takes minutes). Real Jailhouse runs under Debian's arm64 kernel,
wardend runs in its root cell, and this test talks to wardend's API
through QEMU's forwarded port and acts inside the board through its shell
port. The tests run in order on that board: both cells running with
Jailhouse's own figures; a panic in the Linux cell; a hang of the
bare-metal cell; a hypervisor verdict (an access outside the cell makes
Jailhouse fail the CPU); bad requests; wardend killed and its cells
adopted; the ecosystem rebooted.

Skips (with the reason) where qemu-system-aarch64, the arm64 cross
compiler or the Jailhouse tarball is missing. Every wait polls with a
generous deadline; nothing sleeps a fixed time for a result.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from board import BOOT_S, CELL_S, Board, require_board  # noqa: E402
from harness import Skip, run_tests, test  # noqa: E402

board = None


def booted():
    """The board, booted and both cells running (the first test does it)."""
    global board
    require_board()
    if board is None:
        board = Board()
        try:
            board.start()
            board.wait_cell("heartbeat", lambda c: c["state"] == "running", BOOT_S, "running")
            board.wait_cell("linux", lambda c: c["state"] == "running", BOOT_S, "running")
        except Exception as e:
            board.failed = e
            raise
    if board.failed:
        raise AssertionError("the board did not come up: %s" % board.failed)
    return board


@test
def board_boots_both_cells_on_real_jailhouse():
    b = booted()
    print("# board up, both cells running, after %.0f s" % (time.monotonic() - b.started), flush=True)
    status, h = b.request("GET", "/hypervisor")
    assert status == 200, h
    for name in ("heartbeat", "linux"):
        c = b.cell(name)
        hv = c["hypervisor"]
        assert hv["state"] == "running", hv
        assert isinstance(hv.get("cell_id"), int) and hv["cell_id"] > 0, hv
        exits = hv["exits"]
        assert exits["total"] > 0, exits
        s0 = c["heartbeat"]["seq"]
        b.wait_cell(name, lambda c, s0=s0: c["heartbeat"]["seq"] > s0, 120, "heartbeat advances")
    # Jailhouse's own view, read in the board
    out = b.shell("cat /sys/devices/jailhouse/enabled; for d in /sys/devices/jailhouse/cells/*; do "
                  "echo $(cat $d/name) $(cat $d/state) $(cat $d/cpus_assigned_list); done")
    assert "warden-heartbeat running 1" in out, out
    assert "qemu-arm64-linux-demo running 2-3" in out, out
    # each cell's own output, from the console ring behind its comm page
    # (the board's one UART carries all of them mixed)
    status, text = b.request("GET", "/cells/linux/console?bytes=65536")
    assert status == 200 and "Linux version" in text and "warden: comm region at" in text, (status, text[-2000:])
    status, text = b.request("GET", "/cells/heartbeat/console")
    assert status == 200 and "faulty-arm64: up" in text, (status, text[-2000:])
    assert "Linux version" not in text, text[-2000:]
    # what Jailhouse itself printed, through the API
    status, text = b.request("GET", "/hypervisor/console")
    assert status == 200 and "Activating hypervisor" in text, (status, text[-2000:])
    assert 'Created cell "qemu-arm64-linux-demo"' in text, text[-2000:]
    status, metrics = b.request("GET", "/metrics")
    assert status == 200
    assert 'warden_cell_up{cell="linux"} 1' in metrics, metrics[:2000]
    assert "vmexits" in metrics or "warden_cell_exits_total" in metrics, metrics[:2000]


@test
def linux_panic_is_declared_and_recovered():
    b = booted()
    before = b.cell("linux")["restarts"]
    status, body = b.request("POST", "/cells/linux/inject", {"fault": "panic"})
    assert status in (200, 202), (status, body)
    c = b.wait_cell("linux", lambda c: c["restarts"] > before, 300, "restarted after the panic")
    evs = json.dumps(c.get("events", []))
    assert "panic" in evs, evs
    assert "sysrq" in evs or "Kernel panic" in evs or "not syncing" in evs, evs
    b.wait_cell("linux", lambda c: c["state"] == "running", CELL_S, "running again")


@test
def baremetal_hang_is_stuck_and_recovered():
    b = booted()
    before = b.cell("heartbeat")["restarts"]
    status, body = b.request("POST", "/cells/heartbeat/inject", {"fault": "hang"})
    assert status in (200, 202), (status, body)
    c = b.wait_cell("heartbeat", lambda c: c["restarts"] > before, 120, "restarted after the hang")
    assert "stuck" in json.dumps(c.get("events", [])), c.get("events")
    b.wait_cell("heartbeat", lambda c: c["state"] == "running", 300, "running again")


@test
def hypervisor_verdict_names_the_failed_cpu():
    b = booted()
    before = b.cell("heartbeat")["restarts"]
    status, body = b.request("POST", "/cells/heartbeat/inject", {"fault": "crash"})
    assert status in (200, 202), (status, body)
    c = b.wait_cell("heartbeat", lambda c: c["restarts"] > before, 120, "restarted after the crash")
    evs = json.dumps(c.get("events", []))
    assert "CPU 1 failed" in evs, evs
    b.wait_cell("heartbeat", lambda c: c["state"] == "running", 300, "running again")


@test
def bad_requests_get_a_clear_error():
    b = booted()
    spec = json.loads(json.dumps(b.cell("heartbeat")["spec"]))
    spec["name"] = "thief"
    status, body = b.request("POST", "/cells", spec)
    assert status in (409, 422), (status, body)
    assert "CPU" in json.dumps(body) or "cpu" in json.dumps(body), body
    # a .cell of another revision than the board's Jailhouse
    out = b.shell("ls /usr/share/warden/jailhouse/")
    assert "warden-heartbeat-rev13.cell" in out, out
    spec = json.loads(json.dumps(b.cell("heartbeat")["spec"]))
    spec["name"] = "old"
    spec["jailhouse"] = {"cell_config": "/usr/share/warden/jailhouse/warden-heartbeat-rev13.cell"}
    for k in ("cpus", "memory"):
        spec.pop(k, None)
    spec["comm"] = {"virt_start": "0x80100000", "size": 4096}
    status, body = b.request("POST", "/cells", spec)
    assert status == 422, (status, body)
    assert "revision" in json.dumps(body), body


@test
def killed_wardend_adopts_running_cells():
    b = booted()
    before = {n: b.cell(n) for n in ("heartbeat", "linux")}
    out = b.shell("kill -9 $(pidof wardend); echo killed")
    assert "killed" in out, out
    # The board's init starts wardend again. The cells ran on meanwhile:
    # the same Jailhouse ids, and the inmates' own uptime went on.
    for n in ("heartbeat", "linux"):
        c = b.wait_cell(n, lambda c: c["state"] == "running" and "adopted after a daemon restart" in
                        json.dumps(c.get("events", [])), 300, "adopted")
        assert c["hypervisor"]["cell_id"] == before[n]["hypervisor"]["cell_id"], (c["hypervisor"], before[n])
        assert c["heartbeat"]["uptime_ms"] > before[n]["heartbeat"]["uptime_ms"], (c["heartbeat"], before[n])
        assert not any(e["type"] == "started" for e in c["events"]), c["events"]
        s0 = c["heartbeat"]["seq"]
        b.wait_cell(n, lambda c, s0=s0: c["heartbeat"]["seq"] > s0, 120, "beating after adopt")


@test
def ecosystem_restart_brings_every_cell_back():
    b = booted()
    status, body = b.request("POST", "/hypervisor/restart")
    assert status in (200, 202), (status, body)
    for n in ("heartbeat", "linux"):
        b.wait_cell(n, lambda c: c["state"] != "running", 300, "down for the restart")
    for n in ("heartbeat", "linux"):
        b.wait_cell(n, lambda c: c["state"] == "running", CELL_S, "running after the restart")


@test
def board_powers_off():
    global board
    if board is None:
        raise Skip("no board was booted")
    board.stop()
    board = None


if __name__ == "__main__":
    try:
        run_tests()
    finally:
        if board:
            board.stop()
