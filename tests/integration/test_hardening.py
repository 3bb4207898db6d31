# SPDX-License-Identifier: MIT
"""wardend's HTTP front end under abuse: more connections than it takes,
wake-ups from requests on the same listener, bytes that are not UTF-8,
the unix socket's mode from the moment it exists, Idempotency-Keys reused
for other requests or by other principals.
"""
import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import harness  # noqa: E402
from harness import (Daemon, EventStream, Skip, content_digest, demo_cell, poll, raw_request, raw_unix,  # noqa: E402
                     require_kvm, run_tests, test)

CELL = demo_cell("alpha", "heartbeat.bin", cpu=1, autostart=False)


def problem(r, status):
    assert r.status == status, (status, r)
    assert r.ctype == "application/problem+json", r
    p = r.json()
    assert p["status"] == status and p["title"] and p["detail"], p
    return p


def raw_problem(answer, status):
    """The (status, headers, body) of raw_request() as a problem."""
    st, hdr, body = answer
    assert st == status, (status, answer)
    assert hdr.get("content-type") == "application/problem+json", answer
    p = json.loads(body)
    assert p["status"] == status, p
    return p


def auth(d):
    return b"Authorization: Bearer " + d.operator_token.encode() + b"\r\n"


def hold(n, connect):
    """n idle connections that send nothing."""
    socks = []
    for _ in range(n):
        s = connect()
        socks.append(s)
    return socks


# --- connection limit ------------------------------------------------------


@test
def connection_limit_answers_503_and_listener_comes_back():
    """Past max_connections a client gets a prompt 503 problem instead of a
    connection that hangs, and once the crowd leaves the listener serves
    again (libmicrohttpd stops listening at its limit)."""
    with Daemon({"cells": [], "limits": {"max_connections": 4}}) as d:
        # one connection admitted before the crowd keeps being served
        early = d.connection(tcp=True, timeout=5)
        early.request("GET", "/health", headers=d.auth_headers())
        r = early.getresponse()
        assert r.status == 200, r.status
        r.read()
        for tcp in (True, False):
            if tcp:
                crowd = hold(40, lambda: socket.create_connection(("127.0.0.1", d.port), timeout=10))
            else:
                def unix():
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.connect(d.sock)
                    return s
                crowd = hold(40, unix)
            try:
                time.sleep(0.2)
                t0 = time.monotonic()
                r = d.get("/health", tcp=tcp, timeout=8)
                took = time.monotonic() - t0
                p = problem(r, 503)
                assert "limit" in p["detail"], p
                assert r.headers.get("Connection", "").lower() == "close", r.headers
                assert r.headers.get("Retry-After") == "1", r.headers
                assert took < 5, took
                if tcp:
                    # the admitted keep-alive connection still works
                    early.request("GET", "/health", headers=d.auth_headers())
                    r = early.getresponse()
                    assert r.status == 200, r.status
                    r.read()
            finally:
                for s in crowd:
                    s.close()
            # and the listener is back once they are gone
            r = poll(lambda: (lambda r: r if r.status == 200 else None)(d.get("/health", tcp=tcp, timeout=5)),
                     10, "GET /health answered 200 again")
            assert r.json()["status"] == "ok", r
        early.close()
        assert d.proc.poll() is None


@test
def listener_comes_back_after_its_last_connection_closes():
    """The listener at libmicrohttpd's own limit, then one connection closes
    and nothing else happens: the next client is still served."""
    with Daemon({"cells": [], "limits": {"max_connections": 1}}) as d:
        crowd = hold(60, lambda: socket.create_connection(("127.0.0.1", d.port), timeout=10))
        time.sleep(0.3)
        for s in crowd:
            s.close()
        time.sleep(0.3)
        st, hdr, body = raw_request(d.port, b"GET /health HTTP/1.1\r\nHost: x\r\n" + auth(d) +
                                    b"Connection: close\r\n\r\n", timeout=5)
        assert st == 200, (st, body)


@test
def listen_backlog_holds_a_burst_beyond_max_connections():
    """Soak finding: the accept queue was a fixed 64 whatever
    max_connections said, so a burst of connects had SYNs dropped and
    took a second each. ss shows a listening socket's backlog as Send-Q."""
    if not shutil.which("ss"):
        raise Skip("ss (iproute2) not installed")
    with Daemon({"cells": [], "limits": {"max_connections": 256}}) as d:
        out = subprocess.run(["ss", "-Hltn", "sport = :%d" % d.port], capture_output=True, text=True,
                             check=True).stdout.split()
        assert len(out) >= 3 and out[0] == "LISTEN", out
        backlog = int(out[2])
        assert backlog >= 256 + 64, "listen backlog %d for max_connections 256" % backlog


@test
def closed_event_streams_give_their_connections_back():
    """Soak finding: an event stream parked between events was not watched
    for the client's hangup, so a closed stream held its connection (and
    a max_connections slot) until a keepalive write failed, 15-30 s
    later, and meanwhile the listener answered 503."""
    with Daemon({"cells": [], "limits": {"max_connections": 4}}) as d:
        streams = []
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            s.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n" + auth(d) + b"\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                assert chunk, "the stream closed before its headers"
                head += chunk
            assert head.startswith(b"HTTP/1.1 200"), head[:80]
            streams.append(s)
        r = d.get("/health", tcp=True, timeout=8)
        assert r.status == 503, "four streams should fill a listener of 4, got %d" % r.status
        for s in streams:
            s.close()
        # well before the first keepalive (15 s) could notice
        poll(lambda: d.get("/health", tcp=True, timeout=5).status == 200, 8,
             "GET /health answered 200 after the streams closed")


# --- wake-ups --------------------------------------------------------------


def hung_cell():
    return demo_cell("hung", "faulty.bin", cpu=1, autostart=True, allow_inject=True,
                     recovery={"on_stuck": "none", "shutdown_timeout_ms": 30000})


@test
def waiters_wake_for_requests_on_their_own_listener():
    """A request parked with ?wait= on an operation is answered as soon as
    a request on the same listener finishes that operation."""
    require_kvm()
    with Daemon({"root_cpus": [0], "cells": [hung_cell()]}) as d:
        for tcp in (False, True):
            d.wait_state("hung", "running", 20)
            assert d.post("/cells/hung/inject", body={"fault": "hang"}, tcp=tcp).status == 202
            d.wait_state("hung", "failed", 20)
            res = {}
            # the operation a hung cell never finishes by itself
            r = d.post("/cells/hung/shutdown", tcp=tcp)
            assert r.status == 202, r
            op = r.json()["operation"]

            def park(name, fn):
                t0 = time.monotonic()
                res[name] = (fn(), time.monotonic() - t0)
            waiters = [threading.Thread(target=park, args=("op", lambda: d.operation(op, wait=20, tcp=tcp)))]
            for t in waiters:
                t.start()
            time.sleep(0.5)  # parked by now; not an assertion on timing
            r = d.post("/cells/hung/stop?wait=10", tcp=tcp)
            assert r.status == 200 and r.json()["phase"] == "succeeded", r
            for t in waiters:
                t.join(30)
            r, took = res["op"]
            assert r.status == 200 and r.json()["phase"] == "succeeded", r
            assert took < 5, (tcp, took)
            assert d.post("/cells/hung/start?wait=20", tcp=tcp).status == 200


@test
def events_wake_for_mutations_on_their_own_listener():
    """An SSE client sees the events caused by requests on its listener."""
    with Daemon({"root_cpus": [0], "cells": [CELL]}) as d:
        for tcp in (False, True):
            with EventStream(d, tcp=tcp) as es:
                for i in range(3):
                    seen = len(es.events)
                    assert d.put("/cells/alpha", body=CELL, tcp=tcp).status == 200
                    es.wait_for(lambda e: e["event"] == "spec" and es.events.index(e) >= seen, 5,
                                "the spec event of PUT %d" % i)


# --- bytes that are not UTF-8 ----------------------------------------------


@test
def invalid_utf8_gets_an_answer():
    with Daemon({"root_cpus": [0], "cells": [CELL]}) as d:
        get = lambda path, extra=b"": (b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + extra +  # noqa: E731
                                       b"Connection: close\r\n\r\n")
        # no token on TCP: the 401 names the path
        p = raw_problem(raw_request(d.port, get(b"/%ff"), timeout=5), 401)
        assert p["instance"] == "/?", p
        p = raw_problem(raw_request(d.port, get(b"/cells/%ff%fe", auth(d)), timeout=5), 404)
        assert "/cells/" in p["instance"], p
        raw_problem(raw_unix(d.sock, get(b"/%c3%28"), timeout=5), 404)
        # overlong, surrogate and past U+10FFFF are not UTF-8 either
        for bad in (b"%c0%af", b"%ed%a0%80", b"%f4%90%80%80", b"%e2%82"):
            raw_problem(raw_unix(d.sock, get(b"/x" + bad + b"y"), timeout=5), 404)
        # valid UTF-8 goes through as it is
        p = raw_problem(raw_unix(d.sock, get(b"/caf%c3%a9"), timeout=5), 404)
        assert p["instance"] == "/caf\u00e9", p
        # a detail cut at its limit in the middle of a character
        p = raw_problem(raw_unix(d.sock, get(b"/xy" + b"%c3%a9" * 600), timeout=5), 404)
        assert p["detail"].startswith("no resource at /xy\u00e9"), p["detail"][:40]
        # a bad If-Match is a failed precondition, not a server error
        body = b'{"name": "alpha"}'
        st = raw_unix(d.sock, b"PUT /cells/alpha HTTP/1.1\r\nHost: x\r\nIf-Match: \"\xff\xfe\"\r\n"
                      b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                      % len(body) + body, timeout=5)
        p = raw_problem(st, 412)
        assert "revision 1" in p["detail"], p
        assert d.get("/health").status == 200


# --- framing and header limits -----------------------------------------------


@test
def framing_that_rfc_9112_refuses_is_400():
    """Two different Content-Length headers, both Content-Length and
    Transfer-Encoding, an HTTP/1.1 request without Host or with two: each a
    400 problem, and the connection closes (the body cannot be framed)."""
    with Daemon({"cells": []}) as d:
        def ask(head, body=b"", tcp=True):
            data = head + b"Connection: close\r\n\r\n" + body
            return raw_request(d.port, data) if tcp else raw_unix(d.sock, data)
        post = b"POST /cells HTTP/1.1\r\nHost: x\r\n" + auth(d)
        for tcp in (True, False):
            p = raw_problem(ask(post + b"Content-Length: 2\r\nContent-Length: 3\r\n", b"{}x", tcp), 400)
            assert "Content-Length" in p["detail"], p
            # a list libmicrohttpd refuses by itself, with its own body
            assert ask(post + b"Content-Length: 2, 3\r\n", b"{}x", tcp)[0] == 400
            raw_problem(ask(post + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n", b"{}", tcp), 400)
            st, hdr, _ = ask(post + b"Content-Length: 2\r\nContent-Length: 3\r\n", b"{}x", tcp)
            assert hdr.get("connection") == "close", hdr
            # the same length twice is one length (RFC 9110, 8.6): the spec is judged
            raw_problem(ask(post + b"Content-Length: 2\r\nContent-Length: 2\r\n", b"{}", tcp), 422)
            p = raw_problem(ask(b"GET /health HTTP/1.1\r\n" + auth(d), tcp=tcp), 400)
            assert "Host" in p["detail"], p
            raw_problem(ask(b"GET /health HTTP/1.1\r\nHost: x\r\nHost: y\r\n" + auth(d), tcp=tcp), 400)
            # HTTP/1.0 has no Host to require
            st, _, _ = ask(b"GET /health HTTP/1.0\r\n" + auth(d), tcp=tcp)
            assert st == 200, st
        assert d.get("/health").status == 200


@test
def header_limit_is_enforced_exactly():
    """limits.max_header_bytes counts the request line, the header lines and
    the empty line: one byte over is a 431 problem. libmicrohttpd's own
    bound (its memory pool, twice the limit) let a 20 KiB header through a
    16 KiB limit."""
    with Daemon({"cells": []}) as d:
        big = b"GET /health HTTP/1.1\r\nHost: x\r\n" + auth(d) + b"X-Big: " + b"a" * 20480 + b"\r\n"
        p = raw_problem(raw_request(d.port, big + b"Connection: close\r\n\r\n"), 431)
        assert "16384" in p["detail"] and "max_header_bytes" in p["detail"], p
        assert p["title"] == "Request Header Fields Too Large", p
    with Daemon({"cells": [], "limits": {"max_header_bytes": 1024}}, tcp=False) as d:
        base = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: \r\n\r\n"
        for total, status in ((1023, 200), (1024, 200), (1025, 431), (2000, 431)):
            req = base.replace(b"X-Pad: ", b"X-Pad: " + b"a" * (total - len(base)))
            assert len(req) == total
            st = raw_unix(d.sock, req)
            if status == 200:
                assert st[0] == 200, (total, st)
            else:
                raw_problem(st, 431)

# --- the unix socket's mode ------------------------------------------------


@test
def unix_socket_is_born_with_its_mode():
    """The socket never exists with wider permissions than configured:
    chmod() calls are slowed down under strace to open any window between
    bind() and a later chmod() wide enough to see."""
    strace = shutil.which("strace")
    if not strace:
        raise Skip("strace not installed")
    tmp = tempfile.mkdtemp(prefix="warden-test-wrap-")
    wrapper = os.path.join(tmp, "wardend")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\numask 0\nexec %s -f -qq -o /dev/null -e trace=chmod,fchmodat "
                "-e inject=chmod,fchmodat:delay_enter=700000 %s \"$@\"\n" % (strace, harness.WARDEND))
    os.chmod(wrapper, 0o755)
    saved = harness.WARDEND
    harness.WARDEND = wrapper
    d = Daemon({"cells": [], "api": {"socket_mode": "0600"}}, tcp=False)
    try:
        d.start(wait=False)
        first = poll(lambda: (lambda m: m)(_mode(d.sock)), 20, "the socket appeared", interval=0.0005)
        assert first == 0o600, oct(first)
        d.wait_ready(30)
        assert _mode(d.sock) == 0o600
    finally:
        harness.WARDEND = saved
        d.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def _mode(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    assert stat.S_ISSOCK(st.st_mode), st
    return stat.S_IMODE(st.st_mode)


# --- parked requests whose client left ---------------------------------------


def sanitized_wardend():
    """A wardend built with AddressSanitizer, whose LeakSanitizer reports
    at exit: WARDEN_ASAN_WARDEND, or the one under test if it is one."""
    for path in (os.environ.get("WARDEN_ASAN_WARDEND"), harness.WARDEND):
        if not path:
            continue
        try:
            out = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        if "libasan" in out:
            return path
    return None


@test
def abandoned_waits_leak_nothing():
    """A request parked with ?wait= whose client has gone is closed by
    libmicrohttpd without the waiter being called again: its ticket (64
    bytes) was lost each time."""
    require_kvm()
    asan = sanitized_wardend()
    if not asan:
        raise Skip("needs wardend built with -Db_sanitize=address (set WARDEN_ASAN_WARDEND or use such a build)")
    saved = harness.WARDEND
    harness.WARDEND = asan
    d = Daemon({"root_cpus": [0], "cells": [hung_cell()], "api": {"image_dirs": [harness.DEMOS]}}, tcp=False,
               env={"ASAN_OPTIONS": "detect_leaks=1:exitcode=0"})
    try:
        d.start()
        d.wait_state("hung", "running", 30)
        assert d.post("/cells/hung/inject", body={"fault": "hang"}).status == 202
        d.wait_state("hung", "failed", 30)
        r = d.post("/cells/hung/shutdown")
        assert r.status == 202 and r.json()["phase"] == "running", r
        op = r.json()["operation"].encode()
        for _ in range(4):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(d.sock)
            s.sendall(b"GET /operations/" + op + b"?wait=60 HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.05)
            s.close()
        assert d.get("/health").status == 200
        d.proc.send_signal(signal.SIGTERM)
        d.proc.wait(60)
        log = d.log()
        assert "LeakSanitizer" not in log, log[log.find("LeakSanitizer") - 10:][:3000]
    finally:
        harness.WARDEND = saved
        d.cleanup()

# --- sockets passed by systemd and configured listeners ----------------------

PASS_WRAPPER = r"""#!/usr/bin/env python3
# What systemd does for wardend.socket: bind the unix socket, pass it as
# fd 3 (LISTEN_FDS=1, LISTEN_PID=the daemon's), exec wardend.
import os, socket, sys
path, wardend = os.environ["WARDEN_TEST_PASS_UNIX"], os.environ["WARDEN_TEST_WARDEND"]
args = sys.argv[1:]
if os.environ.get("WARDEN_TEST_DROP_LISTEN"):
    kept = []
    while args:
        a = args.pop(0)
        if a == "--listen":
            args.pop(0)
        else:
            kept.append(a)
    args = kept
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(16)
if s.fileno() == 3:
    os.set_inheritable(3, True)
else:
    os.dup2(s.fileno(), 3)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(wardend, [wardend] + args)
"""


def passed_socket_daemon(config, drop_listen):
    tmp = tempfile.mkdtemp(prefix="warden-test-passfd-")
    wrapper = os.path.join(tmp, "wardend")
    with open(wrapper, "w") as f:
        f.write(PASS_WRAPPER)
    os.chmod(wrapper, 0o755)
    d = Daemon(config)
    d.env = {"WARDEN_TEST_PASS_UNIX": d.sock, "WARDEN_TEST_WARDEND": harness.WARDEND}
    if drop_listen:
        d.env["WARDEN_TEST_DROP_LISTEN"] = "1"
    return d, wrapper, tmp


@test
def passed_sockets_and_configured_listeners_compose():
    """wardend.service requires wardend.socket, so systemd always passes the
    unix socket; the configured TCP listener (the API over the network,
    /metrics) must exist as well. A configured unix listener on the passed
    socket's path is that socket, not a second bind that would unlink it."""
    for drop_listen in (False, True):
        d, wrapper, tmp = passed_socket_daemon({"cells": []}, drop_listen)
        other = os.path.join(d.dir, "other.sock")
        if drop_listen:
            # the config's listeners, not the command line's
            d.config["listen"] = ["unix:" + d.sock, "unix:" + other, "tcp:127.0.0.1:%d" % d.port]
        saved = harness.WARDEND
        harness.WARDEND = wrapper
        try:
            d.start()
            h = d.get("/health").json()
            want = ["unix:" + d.sock, "tcp:127.0.0.1:%d" % d.port] + (["unix:" + other] if drop_listen else [])
            assert sorted(h["listeners"]) == sorted(want), (h["listeners"], want)
            r = d.get("/health", tcp=True)
            assert r.status == 200 and r.json()["status"] == "ok", r
            assert d.get("/metrics", tcp=True).status == 200
            if drop_listen:
                st, _, _ = raw_unix(other, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert st == 200, st
            assert "as the socket systemd passed" in d.log(), d.log()[-2000:]
        finally:
            harness.WARDEND = saved
            d.cleanup()
            shutil.rmtree(tmp, ignore_errors=True)

# --- Idempotency-Key: the body, the principal, old records ------------------


def spec(name, i):
    return demo_cell(name, "heartbeat.bin", cpu=1, autostart=False, phys=0x40000000 + i * 0x400000,
                     comm_phys=0x7f000000 + i * 0x1000)


@test
def idempotency_key_with_another_body_is_422():
    """The IETF Idempotency-Key draft: the same key with another payload is
    a client error (422), not a retry that replays the first answer and
    drops the second request."""
    with Daemon({"cells": []}) as d:
        key = {"Idempotency-Key": "create-1"}
        r1 = d.post("/cells", body=spec("beta", 1), headers=key)
        assert r1.status == 201 and "Idempotent-Replayed" not in r1.headers, r1
        r = d.post("/cells", body=spec("beta", 1), headers=key)
        assert r.status == 201 and r.headers.get("Idempotent-Replayed") == "true" and r.body == r1.body, r
        p = problem(d.post("/cells", body=spec("delta", 2), headers=key), 422)
        assert "create-1" in p["detail"] and "another body" in p["detail"], p
        assert d.get("/cells/delta").status == 404
        # the same bytes again are still the retry, also after a restart
        d.restart()
        r = d.post("/cells", body=spec("beta", 1), headers=key)
        assert r.status == 201 and r.headers.get("Idempotent-Replayed") == "true" and r.body == r1.body, r
        problem(d.post("/cells", body=spec("delta", 2), headers=key), 422)
        # an upload's body is compared as well, streamed as it is
        data = os.urandom(40000)
        up = {"Idempotency-Key": "up-1"}
        r1 = d.upload("beta", "app.bin", data, headers=up)
        assert r1.status == 201, r1
        r = d.upload("beta", "app.bin", data, headers=up)
        assert r.status == 201 and r.headers.get("Idempotent-Replayed") == "true", r
        other = os.urandom(40000)
        p = problem(d.upload("beta", "app.bin", other, headers=up), 422)
        assert "another body" in p["detail"], p
        with open(os.path.join(d.images_dir("beta"), "app.bin"), "rb") as f:
            assert f.read() == data
        assert "422 refused: Idempotency-Key reused with another body" in d.log(), d.log()[-2000:]


@test
def idempotency_keys_are_per_principal():
    """Two principals that happen to pick the same key make two requests:
    neither gets the other's stored answer, nor a 409 for the other's
    request in progress."""
    with Daemon({"cells": []}) as d:
        key = {"Idempotency-Key": "same-key"}
        # unix:uid=N
        r1 = d.post("/cells", body=spec("beta", 1), headers=key)
        assert r1.status == 201, r1
        # the token "ops", another body: its own request, not a 422
        r2 = d.post("/cells", body=spec("delta", 2), headers=key, tcp=True)
        assert r2.status == 201 and "Idempotent-Replayed" not in r2.headers, r2
        assert r2.json()["name"] == "delta", r2
        # and each one's retry gets its own answer
        r = d.post("/cells", body=spec("delta", 2), headers=key, tcp=True)
        assert r.status == 201 and r.headers.get("Idempotent-Replayed") == "true" and r.body == r2.body, r
        r = d.post("/cells", body=spec("beta", 1), headers=key)
        assert r.status == 201 and r.headers.get("Idempotent-Replayed") == "true" and r.body == r1.body, r
        # the same key on another path is still each one's own
        r = d.request("DELETE", "/cells/beta", headers=key, tcp=True)
        problem(r, 422)
        assert d.get("/cells/beta").status == 200


@test
def idempotency_records_from_before_the_upgrade_still_replay():
    """A record written before bodies and principals were kept (no
    "version") is still replayed for a retry across the upgrade, matching
    on method and path only, for any principal."""
    with Daemon({"cells": []}) as d:
        key = "legacy-1"
        rec = {"key": key, "method": "POST", "path": "/cells", "status": 201, "content_type": "application/json",
               "location": "/cells/old", "etag": '"1"', "operation": "", "body": '{"legacy":true}\n',
               "created_s": int(time.time()), "waited": False}
        os.makedirs(os.path.join(d.state_dir, "idempotency"), exist_ok=True)
        with open(os.path.join(d.state_dir, "idempotency", hashlib.sha256(key.encode()).hexdigest() + ".json"),
                  "w") as f:
            json.dump(rec, f)
        for tcp, i in ((False, 1), (True, 2)):
            r = d.post("/cells", body=spec("new%d" % i, i), headers={"Idempotency-Key": key}, tcp=tcp)
            assert r.status == 201 and r.headers.get("Idempotent-Replayed") == "true", r
            assert r.json() == {"legacy": True} and r.headers.get("Location") == "/cells/old", r
        problem(d.request("DELETE", "/cells/old", headers={"Idempotency-Key": key}), 422)
        assert d.get("/cells").json() == [], d.get("/cells").json()


if __name__ == "__main__":
    run_tests()
