# SPDX-License-Identifier: MIT
"""wardend over real HTTP: read-only API, errors, metrics, systemd contract.

These tests need no KVM: their cells have autostart off.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import (Daemon, WARDEND, WARDENCTL, demo_cell, raw_request, run_tests, test)  # noqa: E402

CONFIG = {
    "root_cpus": [0],
    "cells": [
        demo_cell("alpha", "heartbeat.bin", cpu=1, autostart=False),
        demo_cell("beta", "faulty.bin", cpu=1, phys=0x40400000, comm_phys=0x7f001000, autostart=False,
                  allow_inject=True),
    ],
}


def problem(r, status):
    assert r.status == status, r
    assert r.ctype == "application/problem+json", r
    p = r.json()
    for k in ("type", "title", "status", "detail"):
        assert k in p, (k, p)
    assert p["status"] == status
    return p


@test
def health_and_cells():
    with Daemon(CONFIG) as d:
        r = d.get("/health")
        assert r.status == 200 and r.ctype == "application/json", r
        h = r.json()
        assert h["status"] == "ok" and h["cells"]["total"] == 2 and h["cells"]["stopped"] == 2, h
        assert any(l.startswith("unix:") for l in h["listeners"]) and any(l.startswith("tcp:") for l in h["listeners"])
        cells = d.get("/cells").json()
        assert [c["name"] for c in cells] == ["alpha", "beta"]
        for c in cells:
            assert c["state"] == "stopped" and c["restarts"] == 0 and c["last_failure"] is None
            assert set(c["heartbeat"]) >= {"seq", "age_ms", "inmate_state"}
            assert set(c["timings"]) == {"boot_ms", "detection_ms", "recovery_ms"}
        one = d.cell("beta")
        assert one["name"] == "beta" and one["state"] == "stopped"
        assert one["spec"]["cpus"] == [1] and one["spec"]["allow_inject"] is True
        assert one["spec"]["memory"][0]["phys_start"] == "0x40400000"
        # the same over TCP
        r = d.get("/cells/alpha", tcp=True)
        assert r.status == 200 and r.json()["spec"]["name"] == "alpha"
        # HEAD carries headers, no body
        r = d.request("HEAD", "/health")
        assert r.status == 200 and r.body == "" and r.ctype == "application/json"


def auth(d):
    """The Authorization header line for raw_request()."""
    return b"Authorization: Bearer " + d.operator_token.encode() + b"\r\n"


@test
def unknown_paths_and_methods():
    with Daemon(CONFIG) as d:
        problem(d.get("/nope"), 404)
        p = problem(d.get("/cells/gamma"), 404)
        assert "gamma" in p["detail"]
        problem(d.get("/cells/alpha/nothing"), 404)
        problem(d.get("/cells/" + "x" * 300), 404)
        r = d.request("DELETE", "/health")
        problem(r, 405)
        assert "GET" in r.headers.get("Allow", ""), r.headers
        r = d.request("GET", "/cells/alpha/restart")
        problem(r, 405)
        assert r.headers.get("Allow") == "POST"
        r = d.request("PATCH", "/metrics")
        problem(r, 405)
        # an unknown method token
        st, hdr, body = raw_request(d.port, b"BREW /cells HTTP/1.1\r\nHost: x\r\n" + auth(d) +
                                    b"Connection: close\r\n\r\n")
        assert st is not None and 400 <= st < 500, (st, body)
        # malformed paths
        for path in (b"/cells//alpha", b"/cells/../health", b"/cells/%00x"):
            st, hdr, body = raw_request(d.port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + auth(d) +
                                        b"Connection: close\r\n\r\n")
            assert st in (400, 404), (path, st, body)
            assert hdr.get("content-type", "").startswith("application/problem+json"), (path, hdr)
        assert d.get("/health").status == 200


@test
def bad_requests_leave_daemon_up():
    with Daemon(CONFIG) as d:
        # huge header
        big = b"X-Big: " + b"a" * 200000 + b"\r\n"
        st, hdr, body = raw_request(d.port, b"GET /cells HTTP/1.1\r\nHost: x\r\n" + auth(d) + big +
                                    b"Connection: close\r\n\r\n")
        assert st is None or 400 <= st < 500, (st, body[:200])
        # garbage request line
        st, hdr, body = raw_request(d.port, b"\x00\x01\x02 garbage\r\n\r\n")
        assert st is None or 400 <= st < 500, st
        # oversized body, announced
        st, hdr, body = raw_request(d.port, b"POST /cells/beta/inject HTTP/1.1\r\nHost: x\r\n" + auth(d) + b"Content-Length: 999999999\r\n"
                                    b"Content-Type: application/json\r\nConnection: close\r\n\r\n{")
        assert st == 413, (st, body)
        assert hdr.get("content-type") == "application/problem+json"
        # oversized body, chunked (not announced)
        chunk = b"a" * 65536
        data = (b"POST /cells/beta/inject HTTP/1.1\r\nHost: x\r\n" + auth(d) +
                b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        data += (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 20 + b"0\r\n\r\n"
        st, hdr, body = raw_request(d.port, data)
        assert st == 413, (st, body[:200])
        # malformed JSON, wrong shape, unknown fault
        p = problem(d.post("/cells/beta/inject", body="{\"fault\": "), 400)
        assert "malformed JSON" in p["detail"], p
        problem(d.post("/cells/beta/inject", body={"fault": "hang", "extra": 1}), 422)
        problem(d.post("/cells/beta/inject", body=["hang"]), 422)
        problem(d.post("/cells/beta/inject", body={"fault": "meltdown"}), 422)
        # injection refused where the spec does not allow it
        p = problem(d.post("/cells/alpha/inject", body={"fault": "panic"}), 403)
        assert "allow_inject" in p["detail"]
        # a stopped cell takes no faults
        problem(d.post("/cells/beta/inject", body={"fault": "panic"}), 409)
        # still alive and well
        assert d.get("/health").status == 200
        assert d.proc.poll() is None


@test
def metrics_are_promtool_clean():
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required (Debian package prometheus)"
    with Daemon(CONFIG) as d:
        r = d.get("/metrics")
        assert r.status == 200, r
        assert r.ctype.startswith("text/plain; version=0.0.4"), r.ctype
        text = r.body
        for name in ("warden_build_info", "warden_cells", "warden_cell_up", "warden_cell_state",
                     "process_resident_memory_bytes", "process_cpu_seconds_total",
                     "warden_cell_heartbeat_age_seconds", "warden_cell_restarts_total",
                     "warden_cell_failures_total", "warden_cell_boot_seconds",
                     "warden_cell_detection_seconds", "warden_cell_recovery_seconds"):
            assert "# TYPE %s " % name in text, name
        assert 'warden_cell_state{cell="alpha",state="stopped"} 1' in text
        assert 'warden_cell_state{cell="alpha",state="running"} 0' in text
        assert 'warden_cell_up{cell="beta"} 0' in text
        assert "warden_cells 2" in text
        assert 'warden_cell_detection_seconds_bucket{cell="beta",kind="panic",le="0.0001"} 0' in text
        p = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True)
        out = (p.stdout + p.stderr).decode()
        assert p.returncode == 0 and out.strip() == "", out


@test
def config_errors_are_clear():
    d = tempfile.mkdtemp()
    try:
        cases = [
            ({"cells": [demo_cell("a", "heartbeat.bin", cpu=1), demo_cell("b", "heartbeat.bin", cpu=1, phys=0x50000000,
                                                                        comm_phys=0x7f001000)]},
             '$.cells[1]: CPU 1 of cell "b" is already assigned to cell "a"'),
            ({"cells": [demo_cell("A", "heartbeat.bin")]}, "$.cells[0]: \"name\": \"A\" is not a valid cell name"),
            ({"cells": [demo_cell("a", "heartbeat.bin", cpu=4096)]}, "$.cells[0].cpus[0]: CPU 4096 does not exist"),
            ({"bogus": 1}, '$: unknown key "bogus"'),
        ]
        for cfg, msg in cases:
            path = os.path.join(d, "c.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            p = subprocess.run([WARDEND, "--config", path, "--state-dir", d + "/s", "--runtime-dir", d + "/r",
                                "--listen", "unix:" + d + "/x.sock"], capture_output=True, timeout=10)
            assert p.returncode != 0, cfg
            assert msg in p.stderr.decode(), (msg, p.stderr.decode())
        with open(os.path.join(d, "bad.json"), "w") as f:
            f.write("{\"cells\": [}")
        p = subprocess.run([WARDEND, "--config", os.path.join(d, "bad.json")], capture_output=True, timeout=10)
        assert p.returncode != 0 and "bad.json:1:" in p.stderr.decode(), p.stderr
        p = subprocess.run([WARDEND, "--version"], capture_output=True, timeout=10)
        assert p.returncode == 0 and p.stdout.startswith(b"wardend "), p
        p = subprocess.run([WARDEND, "--help"], capture_output=True, timeout=10)
        assert p.returncode == 0 and b"--listen" in p.stdout
        p = subprocess.run([WARDEND, "--listen", "http://x"], capture_output=True, timeout=10)
        assert p.returncode != 0 and b"unix:/PATH or tcp:HOST:PORT" in p.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


@test
def plays_systemd_notify_and_watchdog():
    """READY=1, STATUS= and WATCHDOG=1 arrive on NOTIFY_SOCKET; STOPPING=1 on SIGTERM."""
    tmp = tempfile.mkdtemp()
    ns = os.path.join(tmp, "notify")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(ns)
    srv.settimeout(0.2)
    d = Daemon(CONFIG, env={"NOTIFY_SOCKET": ns, "WATCHDOG_USEC": "200000"})
    got = []
    try:
        d.start(wait=False)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                got.append(srv.recv(4096).decode())
            except socket.timeout:
                pass
            text = "\n".join(got)
            if "READY=1" in text and "STATUS=" in text and text.count("WATCHDOG=1") >= 2:
                break
        text = "\n".join(got)
        assert "READY=1" in text, text
        assert "STATUS=2 cells:" in text, text
        assert text.count("WATCHDOG=1") >= 2, text
        # READY comes after the listeners are up: the API answers now
        assert d.get("/health").status == 200
        d.proc.terminate()
        d.proc.wait(timeout=10)
        srv.settimeout(1)
        rest = []
        try:
            while True:
                rest.append(srv.recv(4096).decode())
        except socket.timeout:
            pass
        assert any("STOPPING=1" in m for m in rest), rest
        assert d.proc.returncode == 0
    finally:
        d.cleanup()
        srv.close()
        shutil.rmtree(tmp, ignore_errors=True)


@test
def socket_activation():
    """A listening socket passed as LISTEN_FDS is used instead of --listen."""
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "act.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(8)
    cfg = os.path.join(tmp, "c.json")
    with open(cfg, "w") as f:
        json.dump(dict(CONFIG, cpu_sharing=True), f)
    # the child gets the socket as fd 3, LISTEN_PID must be its own pid: use a shell
    fd = s.fileno()
    cmd = "exec 3<&%d; LISTEN_PID=$$ LISTEN_FDS=1 exec %s --config %s --state-dir %s/s --runtime-dir %s/r" % (
        fd, WARDEND, cfg, tmp, tmp)
    p = subprocess.Popen(["bash", "-c", cmd], pass_fds=(fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from harness import UnixHTTPConnection
        deadline = time.monotonic() + 10
        while True:
            try:
                c = UnixHTTPConnection(path, timeout=2)
                c.request("GET", "/health")
                r = c.getresponse()
                body = json.loads(r.read())
                break
            except OSError:
                assert p.poll() is None, "wardend exited with %s" % p.returncode
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert r.status == 200 and body["cells"]["total"] == 2, body
    finally:
        p.terminate()
        p.wait(timeout=10)
        s.close()
        shutil.rmtree(tmp, ignore_errors=True)


@test
def systemd_units_verify():
    sa = shutil.which("systemd-analyze")
    assert sa, "systemd-analyze is required"
    src = os.path.join(os.path.dirname(__file__), "..", "..", "systemd")
    tmp = tempfile.mkdtemp()
    try:
        for unit in ("wardend.service", "wardend.socket"):
            with open(os.path.join(src, unit)) as f:
                text = f.read()
            # verify checks that ExecStart= exists: point it at this build
            text = text.replace("/usr/bin/wardend", os.path.abspath(WARDEND))
            with open(os.path.join(tmp, unit), "w") as f:
                f.write(text)
        p = subprocess.run([sa, "verify", "--man=no", os.path.join(tmp, "wardend.service"),
                            os.path.join(tmp, "wardend.socket")], capture_output=True, timeout=60)
        out = (p.stdout + p.stderr).decode()
        assert p.returncode == 0, out
        # nothing said about our units (the host's own units may be noisy)
        ours = [l for l in out.splitlines() if "wardend" in l]
        assert not ours, ours
        with open(os.path.join(src, "wardend.service")) as f:
            svc = f.read()
        for line in ("Type=notify", "NotifyAccess=main", "KillMode=process", "RuntimeDirectoryPreserve=yes",
                     "ProtectSystem=strict", "NoNewPrivileges=yes", "DeviceAllow=/dev/kvm rw"):
            assert line in svc, line
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def wardenctl_basics():
    with Daemon(CONFIG) as d:
        def ctl(*args):
            # --socket and --url exclude each other (docs/wardenctl.md, synopsis)
            where = [] if "--url" in args else ["--socket", d.sock]
            return subprocess.run([WARDENCTL] + where + list(args), capture_output=True, timeout=30)
        p = ctl("cells")
        out = p.stdout.decode()
        assert p.returncode == 0 and out.splitlines()[0].split()[:2] == ["NAME", "STATE"], out
        assert "alpha" in out and "beta" in out and "stopped" in out, out
        p = ctl("--json", "cells")
        assert p.returncode == 0 and [c["name"] for c in json.loads(p.stdout)] == ["alpha", "beta"]
        p = ctl("--json", "cell", "show", "beta")
        assert p.returncode == 0 and json.loads(p.stdout)["spec"]["name"] == "beta"
        # TCP listeners need a bearer token (docs/wardenctl.md: --token-file; 401 is exit 6);
        # JSON only with --json, tables otherwise
        p = ctl("--url", "http://127.0.0.1:%d" % d.port, "--token-file", d.token_file(), "--json", "health")
        assert p.returncode == 0 and json.loads(p.stdout)["status"] == "ok", p
        p = ctl("--url", "http://127.0.0.1:%d" % d.port, "--token-file", d.token_file(), "health")
        assert p.returncode == 0 and p.stdout.decode().split()[:2] == ["status:", "ok"], p
        p = ctl("--url", "http://127.0.0.1:%d" % d.port, "health")
        assert p.returncode == 6 and b"Unauthorized" in p.stderr, p
        # not found: exit 4; not allowed: exit 6 (docs/wardenctl.md, "Exit codes")
        p = ctl("cell", "show", "gamma")
        assert p.returncode == 4 and b"no cell named" in p.stderr, p
        p = ctl("cell", "inject", "alpha", "panic")
        assert p.returncode == 6 and b"Forbidden" in p.stderr and b"allow_inject" in p.stderr, p
        p = ctl("cell", "frobnicate", "alpha")
        assert p.returncode == 2, p
        p = ctl("--socket", d.sock, "--url", "http://127.0.0.1:%d" % d.port, "health")
        assert p.returncode == 2 and b"exclude each other" in p.stderr, p
        p = subprocess.run([WARDENCTL, "--socket", d.dir + "/nope.sock", "cells"], capture_output=True, timeout=30)
        assert p.returncode == 3 and b"cannot reach wardend" in p.stderr, p


if __name__ == "__main__":
    run_tests()
