# SPDX-License-Identifier: MIT
"""The emulated arm64 Jailhouse board (hypervisor/jailhouse/board) as the
tests and benchmarks use it: built, booted in QEMU with its API and shell
forwarded to free loopback ports, and talked to over real HTTP."""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from harness import BUILD, Skip, free_port, poll

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


