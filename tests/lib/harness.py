# SPDX-License-Identifier: MIT
"""Test harness for warden's integration and end-to-end tests.

Speaks TAP (meson counts it), starts the real wardend on a temporary unix
socket and a free TCP port, and talks real HTTP to it. Standard library
only, so a fresh Debian machine needs nothing but python3.
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
import traceback

BUILD = os.environ.get("WARDEN_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
WARDEND = os.environ.get("WARDEND", os.path.join(BUILD, "daemon", "wardend"))
WARDENCTL = os.environ.get("WARDENCTL", os.path.join(BUILD, "daemon", "wardenctl"))
WARDEN_KVM = os.environ.get("WARDEN_KVM", os.path.join(BUILD, "hypervisor", "kvm", "warden-kvm"))
DEMOS = os.environ.get("WARDEN_DEMOS", os.path.join(BUILD, "driver", "demos"))

_tests = []


def test(fn):
    _tests.append(fn)
    return fn


class Skip(Exception):
    pass


def kvm_available():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
        return True
    except OSError:
        return False


def require_kvm():
    if not kvm_available():
        raise Skip("/dev/kvm not available: this test needs real KVM")


def run_tests():
    """Runs every @test in order; prints TAP; exits 1 if any failed."""
    print("1..%d" % len(_tests), flush=True)
    failed = 0
    for i, fn in enumerate(_tests, 1):
        name = fn.__name__
        try:
            fn()
            print("ok %d - %s" % (i, name), flush=True)
        except Skip as e:
            print("ok %d - %s # SKIP %s" % (i, name, e), flush=True)
        except Exception:
            failed += 1
            print("not ok %d - %s" % (i, name), flush=True)
            for line in traceback.format_exc().splitlines():
                print("# " + line, flush=True)
    sys.exit(1 if failed else 0)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def ctype(self):
        return self.headers.get("Content-Type", "")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %s %r>" % (self.status, self.ctype, self.body[:300])


def demo_cell(name, image, cpu=1, phys=0x40000000, comm_phys=0x7f000000, period=10, timeout=50,
              boot_timeout=2000, **extra):
    """A cell spec for the in-tree KVM hypervisor running one demo image."""
    spec = {
        "name": name,
        "backend": "kvm",
        "cpus": [cpu],
        "memory": [{"name": "ram", "phys_start": hex(phys), "virt_start": "0x0", "size": "0x400000",
                    "flags": ["read", "write", "execute", "loadable"]}],
        "comm": {"phys_start": hex(comm_phys), "virt_start": "0x80000000", "size": 4096},
        "images": [{"file": os.path.abspath(os.path.join(DEMOS, image)), "address": "0x100000"}],
        "health": {"period_ms": period, "timeout_ms": timeout, "boot_timeout_ms": boot_timeout},
    }
    spec.update(extra)
    return spec


class Daemon:
    """A real wardend in temporary directories. Use as a context manager."""

    def __init__(self, config=None, env=None, tcp=True, args=(), keep_dirs=None):
        self.dir = keep_dirs or tempfile.mkdtemp(prefix="warden-test-")
        self.sock = os.path.join(self.dir, "api.sock")
        self.port = free_port() if tcp else None
        self.config = config if config is not None else {"cells": []}
        self.env = env
        self.args = list(args)
        self.proc = None
        self.log_path = os.path.join(self.dir, "wardend.log")

    @property
    def state_dir(self):
        return os.path.join(self.dir, "state")

    @property
    def runtime_dir(self):
        return os.path.join(self.dir, "run")

    def start(self, wait=True):
        cfg = dict(self.config)
        cfg.setdefault("backends", {"kvm": {"runner": os.path.abspath(WARDEN_KVM)}})
        cfg.setdefault("cpu_sharing", True)
        path = os.path.join(self.dir, "config.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        argv = [WARDEND, "--config", path, "--listen", "unix:" + self.sock,
                "--state-dir", self.state_dir, "--runtime-dir", self.runtime_dir] + self.args
        if self.port:
            argv += ["--listen", "tcp:127.0.0.1:%d" % self.port]
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        env.pop("LISTEN_FDS", None)
        env.pop("JOURNAL_STREAM", None)
        if self.env:
            env.update(self.env)
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.logf, stderr=self.logf, env=env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("wardend exited with %s:\n%s" % (self.proc.returncode, self.log()))
            try:
                if self.get("/health").status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise AssertionError("wardend did not come up:\n" + self.log())

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def request(self, method, path, body=None, headers=None, tcp=False, timeout=30):
        if tcp:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        else:
            conn = UnixHTTPConnection(self.sock, timeout=timeout)
        hdrs = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            return Response(r.status, dict(r.getheaders()), r.read().decode(errors="replace"))
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def cell(self, name):
        r = self.get("/cells/" + name)
        assert r.status == 200, r
        return r.json()

    def wait_cell(self, name, pred, timeout=10, what="condition"):
        deadline = time.monotonic() + timeout
        c = None
        while time.monotonic() < deadline:
            c = self.cell(name)
            if pred(c):
                return c
            time.sleep(0.01)
        raise AssertionError("cell %s: %s not reached in %ss; last: %s\nlog:\n%s" %
                             (name, what, timeout, json.dumps(c)[:2000], self.log()[-3000:]))

    def wait_state(self, name, state, timeout=10):
        return self.wait_cell(name, lambda c: c["state"] == state, timeout, "state " + state)

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def runner_pids(self):
        """pids of warden-kvm runners started for this daemon's runtime dir."""
        pids = []
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    cmd = f.read().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"warden-kvm") and any(self.runtime_dir.encode() in a for a in cmd):
                pids.append(int(p))
        return pids

    def cleanup(self):
        self.stop()
        for pid in self.runner_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if hasattr(self, "logf"):
            self.logf.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
        return False


def raw_request(port, data, timeout=5):
    """Sends raw bytes to the TCP listener; returns (status, headers, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not b:
                break
            chunks.append(b)
    finally:
        s.close()
    raw = b"".join(chunks).decode(errors="replace")
    if not raw:
        return None, {}, ""
    head, _, body = raw.partition("\r\n\r\n")
    lines = head.split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body
