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
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import BUILD, Skip, free_port, poll, run_tests, test  # noqa: E402

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BOARD = os.path.join(TOP, "hypervisor", "jailhouse", "board")
JAILHOUSE_SRC = (os.environ.get("JAILHOUSE_SRC") or os.environ.get("WARDEN_JAILHOUSE_SRC_DEFAULT")
                 or os.path.join(TOP, "..", "shared", "jailhouse"))
TOKEN = "warden-demo-operator"
BOOT_S = 1800  # the board and both cells, on a loaded 2-core machine
CELL_S = 900   # one Linux cell boot under TCG


def require_board():
    if not shutil.which("qemu-system-aarch64"):
        raise Skip("qemu-system-aarch64 not installed (package qemu-system-arm)")
    if not shutil.which("aarch64-linux-gnu-gcc"):
        raise Skip("aarch64-linux-gnu-gcc not installed (package gcc-aarch64-linux-gnu)")
    if not os.path.exists(os.path.join(JAILHOUSE_SRC, "jailhouse-e57d1eff6d55.tar.gz")):
        raise Skip("no Jailhouse source: %s/jailhouse-e57d1eff6d55.tar.gz (set JAILHOUSE_SRC)" % JAILHOUSE_SRC)


class Board:
    """The running board: its QEMU process, API port, shell port, console."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="warden-board-")
        self.console = os.path.join(self.dir, "console.log")
        self.api_port, self.shell_port = free_port(), free_port()
        self.proc = None
        self.failed = None

    def start(self):
        build = subprocess.run([os.path.join(BOARD, "build"), BUILD], capture_output=True, text=True,
                               env=dict(os.environ, JAILHOUSE_SRC=JAILHOUSE_SRC))
        if build.returncode != 0:
            raise AssertionError("board/build failed:\n" + build.stdout[-3000:] + build.stderr[-3000:])
        print("# " + build.stdout.strip().splitlines()[-1], flush=True)
        self.proc = subprocess.Popen(
            [os.path.join(BOARD, "run"), "--build-dir", BUILD, "--api-port", str(self.api_port),
             "--shell-port", str(self.shell_port), "--console", self.console],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        self.started = time.monotonic()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if os.environ.get("WARDEN_KEEP_TEST_DIRS"):
            print("# board console kept in %s" % self.console, flush=True)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def console_tail(self, n=6000):
        try:
            with open(self.console, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def alive(self):
        if self.proc.poll() is not None:
            raise AssertionError("the board stopped (rc %s); console:\n%s" % (self.proc.returncode,
                                                                              self.console_tail()))

    def request(self, method, path, body=None, timeout=60):
        self.alive()
        conn = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=timeout)
        hdrs = {"Authorization": "Bearer " + TOKEN}
        if body is not None:
            body = json.dumps(body)
            hdrs["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            text = r.read().decode(errors="replace")
            return r.status, (json.loads(text) if r.getheader("Content-Type", "").find("json") >= 0 else text)
        finally:
            conn.close()

    def try_get(self, path):
        try:
            status, body = self.request("GET", path, timeout=20)
            return body if status == 200 else None
        except (OSError, http.client.HTTPException, ValueError):
            return None

    def cell(self, name):
        return self.try_get("/cells/" + name)

    def wait_cell(self, name, pred, timeout, what):
        def check():
            self.alive()
            c = self.cell(name)
            return c if c and pred(c) else None
        return poll(check, timeout=timeout, interval=1.0, what="%s: %s" % (name, what))

    def shell(self, command, timeout=60):
        """Runs command in the board's root shell; returns its output."""
        self.alive()
        with socket.create_connection(("127.0.0.1", self.shell_port), timeout=timeout) as s:
            s.sendall(command.encode() + b"\nexit\n")
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        return out.decode(errors="replace")


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
