# SPDX-License-Identifier: MIT
"""Test harness for warden's integration and end-to-end tests.

Speaks TAP (meson counts it), starts the real wardend on a temporary unix
socket and a free TCP port, and talks real HTTP to it. Standard library
only, so a fresh Debian machine needs nothing but python3.
"""
import base64
import hashlib
import http.client
import json
import os
import secrets
import ssl
import threading
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
    if os.environ.get("WARDEN_NO_KVM"):  # to try the skips on a KVM host
        return False
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
        return True
    except OSError:
        return False


def require_kvm():
    if not kvm_available():
        raise Skip("/dev/kvm not available")


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
            print("ok %d - %s # SKIP: %s" % (i, name, e), flush=True)
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
        self.send_error = None  # set when the body could not be sent whole

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


def sha256_hex(data):
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


def content_digest(data):
    """RFC 9530 Content-Digest of data: sha-256=:BASE64:"""
    return "sha-256=:%s:" % base64.b64encode(hashlib.sha256(data).digest()).decode()


def is_temp_name(name):
    """Names the daemon uses while it writes a file (swept at startup)."""
    return ".tmp." in name or name.startswith(".upload-")


def temp_leftovers(root):
    """Paths under root that are half-written files."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        found += [os.path.join(dirpath, n) for n in filenames + dirnames if is_temp_name(n)]
    return found


def poll(pred, timeout=10, what="condition", interval=0.02):
    """Calls pred() until it returns something true; returns that."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("%s not reached in %ss (last: %r)" % (what, timeout, v))
        time.sleep(interval)


# request(token=...) default: the daemon's operator token on TCP
OPERATOR = object()


def proc_cmdline(pid):
    """The argv of a process, as bytes."""
    with open("/proc/%s/cmdline" % pid, "rb") as f:
        return f.read().split(b"\0")


def proc_pids(match):
    """pids of the processes for which match(pid as a string) holds; a
    process that goes while it is looked at (OSError) does not."""
    pids = []
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and match(p):
                pids.append(int(p))
        except OSError:
            pass
    return pids


class Daemon:
    """A real wardend in temporary directories. Use as a context manager.

    TCP listeners need bearer tokens: unless tokens=False, the daemon gets a
    tokens file (d.tokens_path) with an operator token (d.operator_token,
    principal "ops") and a monitor token (d.monitor_token, principal "mon").
    Its path goes into the config as api.tokens_file unless the config's own
    "api" section names a tokens_file itself (a None value drops the key).
    The tokens are kept in the directory, so Daemon(keep_dirs=d.dir) on the
    same directory knows them again. request(..., tcp=True) sends the
    operator token; token=None sends none, token="..." that one.
    """

    OPERATOR_NAME = "ops"
    MONITOR_NAME = "mon"

    def __init__(self, config=None, env=None, tcp=True, args=(), keep_dirs=None, tokens=True, port=None,
                 wrap=()):
        self.dir = keep_dirs or tempfile.mkdtemp(prefix="warden-test-")
        # argv before wardend's own, e.g. a command that sets up a namespace
        # and execs the rest (it must exec: self.proc is then wardend)
        self.wrap = list(wrap)
        self.sock = os.path.join(self.dir, "api.sock")
        self.port = (port or free_port()) if tcp else None
        self.config = config if config is not None else {"cells": []}
        self.env = env
        self.args = list(args)
        self.proc = None
        self.log_path = os.path.join(self.dir, "wardend.log")
        self.tokens = tokens
        self.tokens_path = os.path.join(self.dir, "tokens")
        self.operator_token = self.monitor_token = None
        if tokens:
            self._init_tokens()

    def _init_tokens(self):
        plain = os.path.join(self.dir, "tokens.plain.json")
        try:
            with open(plain) as f:
                t = json.load(f)
        except (OSError, ValueError):
            t = {"operator": "op-" + secrets.token_hex(16), "monitor": "mon-" + secrets.token_hex(16)}
            with open(plain, "w") as f:
                json.dump(t, f)
        self.operator_token, self.monitor_token = t["operator"], t["monitor"]
        with open(self.tokens_path, "w") as f:
            f.write("# NAME ROLE SHA256HEX, written by tests/lib/harness.py\n")
            f.write("%s operator %s\n" % (self.OPERATOR_NAME, sha256_hex(self.operator_token)))
            f.write("%s monitor %s\n" % (self.MONITOR_NAME, sha256_hex(self.monitor_token)))

    def token_file(self, role="operator", token=None):
        """A file holding one token (for wardenctl --token-file)."""
        tok = token if token is not None else (self.operator_token if role == "operator" else self.monitor_token)
        path = os.path.join(self.dir, "token-%s" % sha256_hex(tok)[:12])
        with open(path, "w") as f:
            f.write(tok + "\n")
        return path

    @property
    def tls(self):
        api = self.config.get("api") or {}
        return bool(api.get("tls"))

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)

    @property
    def state_dir(self):
        return os.path.join(self.dir, "state")

    @property
    def runtime_dir(self):
        return os.path.join(self.dir, "run")

    def start(self, wait=True):
        cfg = dict(self.config)
        cfg.setdefault("backends", {"kvm": {"runner": os.path.abspath(WARDEN_KVM)}})
        if self.tokens:
            api = dict(cfg.get("api") or {})
            if "tokens_file" not in api:
                api["tokens_file"] = self.tokens_path
            elif api["tokens_file"] is None:
                del api["tokens_file"]
            cfg["api"] = api
        cfg.setdefault("cpu_sharing", True)
        path = os.path.join(self.dir, "config.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        argv = self.wrap + [WARDEND, "--config", path, "--listen", "unix:" + self.sock,
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

    def connection(self, tcp=False, timeout=30, cafile=None):
        """An http.client connection to the unix socket or the TCP listener
        (https when the config has api.tls; cafile defaults to its cert)."""
        if not tcp:
            return UnixHTTPConnection(self.sock, timeout=timeout)
        if self.tls:
            ctx = ssl.create_default_context(cafile=cafile or self.config["api"]["tls"]["cert"])
            return http.client.HTTPSConnection("localhost", self.port, timeout=timeout, context=ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def auth_headers(self, token=OPERATOR):
        if token is OPERATOR:
            token = self.operator_token
        return {"Authorization": "Bearer " + token} if token else {}

    def request(self, method, path, body=None, headers=None, tcp=False, timeout=30, token=OPERATOR):
        conn = self.connection(tcp, timeout)
        hdrs = dict(headers or {})
        if tcp and not any(k.lower() == "authorization" for k in hdrs):
            hdrs.update(self.auth_headers(token))
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        try:
            send_error = None
            try:
                conn.request(method, path, body=body, headers=hdrs)
            except (BrokenPipeError, ConnectionResetError) as e:
                # The daemon may answer before it read the body (a refusal,
                # a replay) and close: the answer may still be there.
                send_error = e
            try:
                r = conn.getresponse()
                resp = Response(r.status, dict(r.getheaders()), r.read().decode(errors="replace"))
            except (OSError, http.client.HTTPException):
                if send_error:
                    raise send_error
                raise
            resp.send_error = send_error
            return resp
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def upload(self, cell, name, data, digest=None, headers=None, **kw):
        """PUT /cells/CELL/images/NAME; digest: None computes it, False
        sends none, a string is sent as it is."""
        h = {"Content-Type": "application/octet-stream"}
        if digest is None:
            digest = content_digest(data)
        if digest is not False:
            h["Content-Digest"] = digest
        h.update(headers or {})
        return self.request("PUT", "/cells/%s/images/%s" % (cell, name), body=data, headers=h, **kw)

    def images_dir(self, cell):
        return os.path.join(self.state_dir, "cells", cell, "images")

    def operation(self, op_id, wait=None, **kw):
        """GET /operations/ID[?wait=S]; returns the Response."""
        q = "" if wait is None else "?wait=%s" % wait
        return self.get("/operations/%s%s" % (op_id, q), timeout=(wait or 0) + 30, **kw)

    def wait_operation(self, op_id, timeout=60):
        """Waits until the operation ends; returns it (a dict)."""
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.0, deadline - time.monotonic())
            r = self.operation(op_id, wait=round(min(left, 300), 3))
            assert r.status in (200, 202), r
            op = r.json()
            if op["phase"] != "running" or time.monotonic() >= deadline:
                return op

    def restart(self, sig=signal.SIGTERM):
        """Stops (or kills) wardend and starts it again on the same dirs."""
        if sig == signal.SIGTERM:
            self.stop()
        else:
            self.kill(sig)
        self.logf.close()
        return self.start()

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
        rt = self.runtime_dir.encode()
        return proc_pids(lambda p: (lambda cmd: cmd[0].endswith(b"warden-kvm") and any(rt in a for a in cmd))(
            proc_cmdline(p)))

    def cell_pids(self):
        """pids of processes working in this daemon's cell directories
        (QEMU runs in runtime_dir/cells/NAME): cells outlive wardend by
        design, so a test's end must end them, or they run on with their
        directory deleted."""
        cells = os.path.join(self.runtime_dir, "cells") + "/"
        return proc_pids(lambda p: (os.readlink("/proc/%s/cwd" % p) + "/").startswith(cells))

    def strays(self):
        """pids of wardend processes on this daemon's dirs that are not
        self.proc: a wrapper (strace, a socket-passing exec) may leave its
        wardend running when it is stopped itself."""
        me = self.proc.pid if self.proc else None
        d = self.dir.encode()
        return proc_pids(lambda p: int(p) != me and (lambda cmd: cmd[0].endswith(b"wardend") and
                                                      any(d in a for a in cmd))(proc_cmdline(p)))

    def delete_containers(self):
        """Container cells outlive wardend too, and their inits run outside
        the cell directories: the OCI runtime that runs them (its state in
        runtime_dir/container/RUNTIME) deletes them, cgroups and all."""
        base = os.path.join(self.runtime_dir, "container")
        for rt, default in (("runc", "/usr/sbin/runc"), ("crun", "/usr/bin/crun")):
            root = os.path.join(base, rt)
            binary = shutil.which(rt) or default
            if not os.path.isdir(root) or not os.access(binary, os.X_OK):
                continue
            ids = subprocess.run([binary, "--root", root, "list", "-q"], capture_output=True, text=True).stdout.split()
            for cid in ids:
                subprocess.run([binary, "--root", root, "delete", "--force", cid], capture_output=True)

    def cleanup(self):
        self.stop()
        self.delete_containers()
        for pid in self.strays() + self.runner_pids() + self.cell_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if hasattr(self, "logf"):
            self.logf.close()
        # WARDEN_KEEP_TEST_DIRS=1 keeps them (the daemon's log, its state)
        # for a post-mortem, e.g. of a sanitizer report.
        if os.environ.get("WARDEN_KEEP_TEST_DIRS") == "1":
            sys.stderr.write("# kept %s\n" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
        return False


def raw_request(port, data, timeout=5):
    """Sends raw bytes to the TCP listener; returns (status, headers, body)."""
    return _raw_exchange(socket.create_connection(("127.0.0.1", port), timeout=timeout), data)


def raw_unix(path, data, timeout=5):
    """raw_request() over a unix socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return _raw_exchange(s, data)


def _raw_exchange(s, data):
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


class EventStream:
    """GET /events, read by a thread: self.events is the list of
    {"id": int, "event": str, "data": object} received so far."""

    def __init__(self, d, last_id=None, tcp=False, token=OPERATOR, query="", timeout=120):
        self.events = []
        self.comments = []
        self.closed = False
        self._cv = threading.Condition()
        self.conn = d.connection(tcp, timeout=timeout)
        hdrs = {"Accept": "text/event-stream"}
        if tcp:
            hdrs.update(d.auth_headers(token))
        if last_id is not None:
            hdrs["Last-Event-ID"] = str(last_id)
        self.conn.request("GET", "/events" + query, headers=hdrs)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = dict(self.resp.getheaders())
        if self.status != 200:
            self.body = self.resp.read().decode(errors="replace")
            self.conn.close()
            self.closed = True
            return
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        cur = {}
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                line = line.decode().rstrip("\r\n")
                if line == "":
                    if "data" in cur:
                        ev = {"id": int(cur["id"]) if "id" in cur else None, "event": cur.get("event", "message"),
                              "data": json.loads(cur["data"])}
                        with self._cv:
                            self.events.append(ev)
                            self._cv.notify_all()
                    cur = {}
                elif line.startswith(":"):
                    self.comments.append(line)
                else:
                    k, _, v = line.partition(":")
                    v = v[1:] if v.startswith(" ") else v
                    cur[k] = cur[k] + "\n" + v if k == "data" and k in cur else v
        except Exception:
            pass
        with self._cv:
            self.closed = True
            self._cv.notify_all()

    def wait_for(self, pred, timeout=10, what="event"):
        """Waits for an event with pred(event) true; returns it."""
        deadline = time.monotonic() + timeout
        with self._cv:
            seen = 0
            while True:
                for ev in self.events[seen:]:
                    if pred(ev):
                        return ev
                seen = len(self.events)
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    raise AssertionError("%s not seen in %ss; got %s" % (
                        what, timeout, json.dumps(self.events)[-3000:]))
                self._cv.wait(min(left, 0.5))

    def close(self):
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
