#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Soak: wardend under a mixed load for minutes; errors, recovered faults, fd and RSS drift.

A benchmark, not a test: it asserts nothing about timings. Its exit status
says whether the soak held: 1 if any request failed (the flood's 503s
apart), if an injected fault was not recovered within 10 s of the end, or
if the fd drift is not 0 (also if wardend died); else 0. SKIP (exit 0)
without /dev/kvm, wrk (apt-get install -y wrk) or a built tree.

A real wardend (build/daemon/wardend, harness Daemon, directories on
/dev/shm) with the demo's kvm cells: heartbeat (period 10 ms, timeout 50 ms)
and faulty (5/30 ms, allow_inject, restart on every kind, no backoff, a
budget of 1024 restarts per 60 s), both on CPU 1, cpu_sharing, root_cpus
[0], limits.max_connections 64. All traffic is HTTP over TCP on 127.0.0.1
with the operator token. For --minutes M (10) of load:

  wrk       wrk -t1 -c4 -dSs --latency GET /cells: no rate limit in wrk,
            so few connections bound it. Socket errors and non-2xx are
            errors.
  faults    every 200 ms one POST /cells/faulty/inject, cycling hang,
            panic, crash, exit, stall; one at a time: the next tick after
            the cell is running again (ticks that find it still recovering
            are counted as skipped). Recovered: GET /cells/faulty shows
            restarts grown, state running, and a failure and a recovered
            event dated after the POST.
  SSE       3 clients at a time on GET /events, each for a random 2-8 s,
            reading events (every other one resumes with Last-Event-ID);
            a refused stream, an early end, ids not increasing or a resume
            that replays old ids is an error.
  uploads   every 2-5 s PUT /cells/heartbeat/images/soak-N.bin of 256 KiB
            to 4 MiB (random bytes, Content-Digest), GET the image list,
            DELETE it (201, 200 listing it, 204 or an error).
  flood     once a minute, max_connections + 20 TCP connections at once,
            each sending GET /cells right after its connect: those past
            the limit get a 503 and are closed by wardend; then all are
            closed. 503s are counted apart, not as errors. The script's
            own clients open no new connection meanwhile, nor until
            wardend has let go of the flood's (up to 10 s, else an
            error): they would rightly be refused. wrk's connections and
            open event streams stay up through it.

The first minute is a warm-up (half the run if shorter: --minutes 1 warms
up for 30 s). Three snapshots of the wardend process, each at a quiet
moment (wrk ended, no client, no fault outstanding, wardend holding no TCP
connection, not even one its peer reset, and its fd count steady for 2 s;
up to 45 s, as a closed event stream is let go only when a keepalive
write to it fails): at start, after the warm-up, at the end. fd drift and
RSS drift are end - after warm-up (/proc/PID/fd entries, VmRSS); the fds
are listed by kind. The loop lag is the daemon's own
(warden_loop_lag_seconds histogram, delta between the snapshots: p50/p99
are bucket upper bounds; warden_loop_lag_max_seconds). To tell whose lag
it is, a thread samples wardend's main thread every 10 ms (schedstat
run-queue wait, /proc/PID/syscall): the longest stretch it mostly waited
for a CPU, the longest it slept in a syscall other than epoll_wait; and
per window wardend's CPU time, its loop's run-queue wait and the host's
busy/steal/idle split (/proc/stat, everyone's load).

Goals, printed beside the figures: 0 errors apart from the flood's 503s,
100 % of faults recovered, fd drift exactly 0, RSS drift within 1 MiB
(RSS_TOLERANCE_KIB). Progress goes to stderr, the table to stdout; daemon
log lines at warning or worse that the injections do not explain are
listed under PROBLEMS. WARDEN_KEEP_TEST_DIRS=1 keeps the daemon's
directory (its log) for a post-mortem.

Usage: tests/bench/soak.py [--minutes M] [--seed N] [--wrk-connections 4]
"""
import argparse
import collections
import datetime
import errno
import hashlib
import http.client
import json
import os
import random
import re
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness  # noqa: E402
from benchstats import median, pct  # noqa: E402

FAULTS = ["hang", "panic", "crash", "exit", "stall"]
# README.md's failure table: a triple fault is a machine shutdown -> panic
DECLARED = {"hang": "stuck", "stall": "stuck", "panic": "panic", "crash": "panic", "exit": "exit"}
FAULT_INTERVAL_S = 0.2
RECOVERY_LIMIT_S = 10.0
POLL_S = 0.01
MAX_CONNECTIONS = 64
FLOOD_EXTRA = 20
FLOOD_EVERY_S = 60.0
FLOOD_REAP_S = 10.0
SSE_CLIENTS = 3
SSE_STAY_S = (2.0, 8.0)
SSE_READ_TIMEOUT_S = 20.0  # > the longest stay; wardend sends ": keepalive" every 15 s
UPLOAD_EVERY_S = (2.0, 5.0)
UPLOAD_BYTES = (256 * 1024, 4 * 1024 * 1024)
UPLOAD_CELL = "heartbeat"
WARMUP_S = 60.0
RSS_TOLERANCE_KIB = 1024
PROGRESS_S = 10.0
# A closed event stream keeps its connection until wardend's next write to it
# fails: the keepalive comes every 15 s, and it can take two.
QUIET_LIMIT_S = 45.0
LOG = sys.stderr


def say(msg):
    print(msg, file=LOG, flush=True)


# ---- what was counted ----------------------------------------------------------

class Tally:
    """Requests made and errors seen by the script's own clients."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = collections.Counter()
        self.errors = []  # (seconds since start, what, detail)
        self.t0 = time.monotonic()

    def count(self, what, n=1):
        with self.lock:
            self.requests[what] += n

    def error(self, what, detail):
        with self.lock:
            self.errors.append((time.monotonic() - self.t0, what, detail))
            n = len(self.errors)
        if n <= 20:
            say("!! error (%s): %s" % (what, detail))

    def error_count(self):
        with self.lock:
            return len(self.errors)


class Gate:
    """Closed during a flood: no client of this script opens a connection then."""

    def __init__(self):
        self.cv = threading.Condition()
        self.closed = False
        self.inflight = 0

    def enter(self):
        with self.cv:
            while self.closed:
                self.cv.wait()
            self.inflight += 1

    def leave(self):
        with self.cv:
            self.inflight -= 1
            self.cv.notify_all()

    def close(self, timeout=15):
        """Closes it and waits for the requests in flight; False if some are still."""
        deadline = time.monotonic() + timeout
        with self.cv:
            self.closed = True
            while self.inflight and time.monotonic() < deadline:
                self.cv.wait(0.1)
            return self.inflight == 0

    def open(self):
        with self.cv:
            self.closed = False
            self.cv.notify_all()


class Client:
    """HTTP requests over TCP with the operator token, through the gate, counted."""

    def __init__(self, d, gate, tally):
        self.d, self.gate, self.tally = d, gate, tally

    def request(self, what, method, path, expect=(200,), body=None, headers=None, timeout=30):
        self.gate.enter()
        try:
            r = self.d.request(method, path, body=body, headers=headers, tcp=True, timeout=timeout)
        except (OSError, http.client.HTTPException) as e:
            self.tally.error(what, "%s %s: %r" % (method, path, e))
            return None
        finally:
            self.gate.leave()
        self.tally.count(what)
        if r.status not in expect:
            self.tally.error(what, "%s %s answered %r" % (method, path, r))
            return None
        return r

    def json(self, what, method, path, **kw):
        r = self.request(what, method, path, **kw)
        if r is None:
            return None
        try:
            return r.json()
        except ValueError:
            self.tally.error(what, "%s %s: not JSON: %r" % (method, path, r))
            return None


class Worker(threading.Thread):
    """A load thread that can be paused (it then reports idle) and stopped."""

    def __init__(self, name):
        super().__init__(name=name, daemon=True)
        self.pause = threading.Event()
        self.idle = threading.Event()
        self.stop = threading.Event()

    def wait(self, s):
        """Sleeps s seconds; True if told to pause or stop meanwhile."""
        deadline = time.monotonic() + s
        while True:
            if self.pause.is_set() or self.stop.is_set():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.stop.wait(min(left, 0.05))

    def idle_while_paused(self):
        """True (after idling) if paused: the caller's loop starts over."""
        if not self.pause.is_set():
            self.idle.clear()
            return False
        self.idle.set()
        self.stop.wait(0.05)
        return True


# ---- faults ---------------------------------------------------------------------

class Injector(Worker):
    """One fault at a time into faulty, every FAULT_INTERVAL_S at most, each waited for."""

    def __init__(self, client, d):
        super().__init__("injector")
        self.c, self.d = client, d
        self.injected = collections.Counter()
        self.recovered = collections.Counter()
        self.declared = collections.Counter()  # (fault, kind)
        self.seen_ms = []  # POST -> running again, as this script saw it
        self.recovery_ms = []  # the daemon's timings.recovery_ms
        self.skipped = 0  # ticks that found the previous fault still recovering
        self.refused = 0  # 409: the cell was not running at the POST
        self.extra_restarts = 0  # restarts beyond one per fault (failures nobody injected)
        self.late = []  # (fault, seconds) recovered after RECOVERY_LIMIT_S
        self.unrecovered = []  # (fault, last cell JSON)
        self.outstanding = None
        self.give_up_at = None  # set at the end: the last fault's deadline

    def cell(self):
        return self.c.json("fault poll", "GET", "/cells/faulty")

    def run(self):
        n = 0
        tick = time.monotonic()
        while not self.stop.is_set():
            if self.idle_while_paused():
                tick = time.monotonic()
                continue
            if self.wait(tick - time.monotonic()):
                continue
            c = self.cell()
            if c is None or c["state"] != "running":
                self.stop.wait(POLL_S)
                continue
            fault = FAULTS[n % len(FAULTS)]
            t_ns = time.monotonic_ns()
            r = self.c.request("inject", "POST", "/cells/faulty/inject", expect=(202, 409), body={"fault": fault})
            if r is None or r.status == 409:
                self.refused += r is not None
                tick = time.monotonic() + FAULT_INTERVAL_S
                continue
            n += 1
            self.injected[fault] += 1
            self.outstanding = (fault, t_ns, c["restarts"])
            self.await_recovery(fault, t_ns, c["restarts"])
            self.outstanding = None
            tick += FAULT_INTERVAL_S
            now = time.monotonic()
            if tick < now:
                missed = int((now - tick) / FAULT_INTERVAL_S) + 1
                self.skipped += missed
                tick += missed * FAULT_INTERVAL_S

    def await_recovery(self, fault, t_ns, r0):
        warned = False
        c = None
        while True:
            got = self.cell()
            c = got or c
            if got and got["state"] == "running" and got["restarts"] > r0:
                ev = [e for e in got.get("events", []) if e.get("mono_ns", 0) >= t_ns]
                if any(e["type"] == "failure" for e in ev) and any(e["type"] == "recovered" for e in ev):
                    break
            el = (time.monotonic_ns() - t_ns) / 1e9
            if el > RECOVERY_LIMIT_S and not warned:
                warned = True
                say("!! %s into faulty not recovered after %.0f s: %s\n%s" %
                    (fault, RECOVERY_LIMIT_S, json.dumps(c)[:2000], self.d.log()[-3000:]))
            if self.give_up_at is not None and time.monotonic() > self.give_up_at:
                self.unrecovered.append((fault, c))
                return
            time.sleep(POLL_S)
        el = (time.monotonic_ns() - t_ns) / 1e9
        self.recovered[fault] += 1
        self.seen_ms.append(el * 1000)
        if el > RECOVERY_LIMIT_S:
            self.late.append((fault, el))
        self.declared[(fault, (got.get("last_failure") or {}).get("kind"))] += 1
        if got["timings"].get("recovery_ms") is not None:
            self.recovery_ms.append(got["timings"]["recovery_ms"])
        self.extra_restarts += got["restarts"] - r0 - 1

    def total(self, counter):
        return sum(counter.values())


# ---- event streams --------------------------------------------------------------

class SseClients(Worker):
    """SSE_CLIENTS clients at a time on GET /events, joining and leaving."""

    def __init__(self, d, gate, tally, rng):
        super().__init__("sse")
        self.d, self.gate, self.tally, self.rng = d, gate, tally, rng
        self.lock = threading.Lock()
        self.active = {}  # thread -> connection
        self.joins = self.resumes = self.events = self.empty = 0
        self.stays = []
        self.last_id = None

    def run(self):
        while not self.stop.is_set():
            if self.pause.is_set():
                self.cut_all()
                with self.lock:
                    busy = bool(self.active)
                if not busy:
                    self.idle.set()
                self.stop.wait(0.05)
                continue
            self.idle.clear()
            with self.lock:
                n = len(self.active)
            if n < SSE_CLIENTS:
                stay = self.rng.uniform(*SSE_STAY_S)
                resume = self.last_id if self.rng.random() < 0.5 else None
                t = threading.Thread(target=self.client, args=(stay, resume), daemon=True)
                with self.lock:
                    self.active[t] = None
                t.start()
            self.wait(self.rng.uniform(0.2, 1.0))
        self.cut_all()

    def cut_all(self):
        with self.lock:
            conns = [c for c in self.active.values() if c]
        for conn in conns:
            cut(conn)

    def client(self, stay, resume):
        me = threading.current_thread()
        conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=SSE_READ_TIMEOUT_S)
        hdrs = {"Accept": "text/event-stream", "Authorization": "Bearer " + self.d.operator_token}
        if resume is not None:
            hdrs["Last-Event-ID"] = str(resume)
        self.gate.enter()
        try:
            conn.request("GET", "/events", headers=hdrs)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            self.tally.error("sse", "GET /events: %r" % e)
            conn.close()
            self.done(me)
            return
        finally:
            self.gate.leave()
        self.tally.count("sse join")
        if resp.status != 200 or not resp.getheader("Content-Type", "").startswith("text/event-stream"):
            self.tally.error("sse", "GET /events answered %d %s: %r" % (
                resp.status, resp.getheader("Content-Type"), resp.read()[:300]))
            conn.close()
            self.done(me)
            return
        with self.lock:
            self.active[me] = conn
            self.joins += 1
            self.resumes += resume is not None
        t0 = time.monotonic()
        timer = threading.Timer(stay, cut, (conn,))
        timer.daemon = True
        timer.start()
        ids, n, cur = [], 0, {}
        ended = None
        try:
            while True:
                line = resp.readline()
                if not line:
                    ended = "the stream ended"
                    break
                line = line.decode(errors="replace").rstrip("\r\n")
                if line == "":
                    if "data" in cur:
                        try:
                            json.loads(cur["data"])
                            ids.append(int(cur["id"]))
                        except (KeyError, ValueError) as e:
                            self.tally.error("sse", "a malformed event %r: %r" % (cur, e))
                        n += 1
                    cur = {}
                elif not line.startswith(":"):
                    k, _, v = line.partition(":")
                    cur[k] = v[1:] if v.startswith(" ") else v
        except (OSError, ValueError, http.client.HTTPException) as e:
            ended = repr(e)
        timer.cancel()
        el = time.monotonic() - t0
        conn.close()
        if el < stay - 0.2 and not (self.pause.is_set() or self.stop.is_set()):
            self.tally.error("sse", "stream left after %.1f s of %.1f: %s (%d events)" % (el, stay, ended, n))
        if any(b <= a for a, b in zip(ids, ids[1:])):
            self.tally.error("sse", "event ids not increasing: %s" % ids[:50])
        if resume is not None and ids and ids[0] <= resume:
            self.tally.error("sse", "Last-Event-ID %d replayed id %d" % (resume, ids[0]))
        with self.lock:
            self.events += n
            self.empty += n == 0
            self.stays.append(el)
            if ids and (self.last_id is None or ids[-1] > self.last_id):
                self.last_id = ids[-1]
        self.done(me)

    def done(self, me):
        with self.lock:
            self.active.pop(me, None)


def cut(conn):
    """Ends a streaming connection from another thread: its reader sees EOF."""
    try:
        conn.sock.shutdown(socket.SHUT_RDWR)
    except (OSError, AttributeError):
        pass


# ---- uploads --------------------------------------------------------------------

class Uploader(Worker):
    """An image every few seconds: PUT, GET the list, DELETE."""

    def __init__(self, client, rng):
        super().__init__("uploader")
        self.c, self.rng = client, rng
        self.n = 0
        self.sizes = []
        self.mbps = []

    def run(self):
        while not self.stop.is_set():
            if self.idle_while_paused():
                continue
            if self.wait(self.rng.uniform(*UPLOAD_EVERY_S)):
                continue
            self.n += 1
            name = "soak-%d.bin" % self.n
            data = os.urandom(self.rng.randint(*UPLOAD_BYTES))
            path = "/cells/%s/images/%s" % (UPLOAD_CELL, name)
            t0 = time.monotonic()
            r = self.c.json("upload", "PUT", path, expect=(201,), body=data, timeout=120,
                            headers={"Content-Type": "application/octet-stream",
                                     "Content-Digest": harness.content_digest(data)})
            el = time.monotonic() - t0
            if r is not None:
                if r.get("size") != len(data) or r.get("sha256") != hashlib.sha256(data).hexdigest():
                    self.c.tally.error("upload", "PUT %s answered %r for %d bytes" % (path, r, len(data)))
                self.sizes.append(len(data))
                self.mbps.append(len(data) / el / 1e6)
            lst = self.c.json("image list", "GET", "/cells/%s/images" % UPLOAD_CELL)
            if lst is not None and r is not None:
                mine = [i for i in (lst if isinstance(lst, list) else lst.get("images", [])) if i.get("name") == name]
                if not mine or mine[0].get("size") != len(data):
                    self.c.tally.error("image list", "GET /cells/%s/images lacks %s (%d bytes): %s" %
                                       (UPLOAD_CELL, name, len(data), json.dumps(lst)[:300]))
            self.c.request("image delete", "DELETE", path, expect=(204,))


# ---- the connection flood -------------------------------------------------------

def flood(d, n, gate, tally):
    """n connections at once, each sending GET /cells as soon as it is up; reads every
    answer, closes all, and waits (up to FLOOD_REAP_S) for wardend to let go of them
    before the script's clients go on: until it has, a new connection is rightly refused."""
    res = {"opened": 0, "ok": 0, "503": 0, "other": [], "ms_503": [], "ms_ok": [], "connect_ms": [], "reap_ms": None}
    if not gate.close():
        say("!! flood: requests of this script still in flight after 15 s; flooding anyway")
    base = connections(d.proc.pid, d.port)
    req = ("GET /cells HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n\r\n" %
           (d.port, d.operator_token)).encode()
    socks = []
    state = {}  # socket -> [connect started, request sent (or None), bytes so far]
    sel = selectors.DefaultSelector()
    try:
        # Non-blocking connects: a connect can take a second when the accept
        # queue is full (the kernel drops the SYN; the client sends it again
        # after 1 s), and that must not hold up reading the others' answers.
        # Each request goes out as soon as its connection is up, as a client's
        # would: wardend drops a connection idle past the limit after 1 s.
        for i in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            socks.append(s)
            e = s.connect_ex(("127.0.0.1", d.port))
            if e not in (0, errno.EINPROGRESS):
                res["other"].append("connect %d: %s" % (i, os.strerror(e)))
                continue
            state[s] = [time.monotonic(), None, b""]
            sel.register(s, selectors.EVENT_WRITE)
        res["opened"] = len(state)
        deadline = time.monotonic() + 15
        while state and time.monotonic() < deadline:
            for key, _ in sel.select(0.2):
                s = key.fileobj
                st = state[s]
                if st[1] is None:  # connected (or failed)
                    e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    now = time.monotonic()
                    if e:
                        res["other"].append("connect: %s" % os.strerror(e))
                        sel.unregister(s)
                        del state[s]
                        continue
                    res["connect_ms"].append((now - st[0]) * 1000)
                    try:
                        s.sendall(req)  # small: fits the empty send buffer
                    except OSError as ex:
                        res["other"].append("send: %r" % ex)
                        sel.unregister(s)
                        del state[s]
                        continue
                    st[1] = now
                    sel.modify(s, selectors.EVENT_READ)
                    continue
                try:
                    b = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as ex:
                    b = b""
                    st[2] = st[2] or repr(ex).encode()
                st[2] += b
                status = answer_complete(st[2], closed=not b)
                if status is None:
                    continue
                sel.unregister(s)
                del state[s]
                ms = (time.monotonic() - st[1]) * 1000
                if status in (200, 503):
                    res["ok" if status == 200 else "503"] += 1
                    res["ms_ok" if status == 200 else "ms_503"].append(ms)
                else:
                    res["other"].append("answer %s: %r" % (status, st[2][:200]))
        for s, st in state.items():
            res["other"].append("no whole answer in 15 s (%s, %d bytes: %r)" % (
                "connected" if st[1] else "not connected", len(st[2]), st[2][:120]))
    finally:
        for s in socks:
            s.close()
        sel.close()
        t = time.monotonic()
        while connections(d.proc.pid, d.port) > base and time.monotonic() - t < FLOOD_REAP_S:
            time.sleep(0.005)
        if connections(d.proc.pid, d.port) > base:
            res["other"].append("wardend still held %d connections %.0f s after the flood's were closed "
                                "(%d before it)" % (connections(d.proc.pid, d.port), FLOOD_REAP_S, base))
        else:
            res["reap_ms"] = (time.monotonic() - t) * 1000
        gate.open()
    tally.count("flood 200", res["ok"])
    for o in res["other"]:
        tally.error("flood", o)
    return res


def answer_complete(buf, closed):
    """The status of a whole HTTP answer in buf, None if more is to come; 0 if it can never be one."""
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return 0 if closed else None
    try:
        status = int(head.split(b"\r\n", 1)[0].split()[1])
    except (IndexError, ValueError):
        return 0
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if m and len(body) >= int(m.group(1)):
        return status
    return status if closed else None


# ---- the wardend process --------------------------------------------------------

def connections(pid, port):
    """wardend's TCP connections on its port: those in /proc/net/tcp (any state but
    LISTEN) and its sockets listed nowhere, which are TCP sockets in state CLOSE
    (the peer reset them and wardend has not closed its fd yet)."""
    kinds = socket_kinds()
    n = 0
    for inode in socket_inodes(pid):
        kind = kinds.get(inode)
        if kind is None or (kind[0] == "tcp" and kind[1] == port and kind[2] != "LISTEN"):
            n += 1
    return n


def connection_states(pid, port):
    """{TCP state: n} of the connections() of wardend."""
    kinds = socket_kinds()
    out = collections.Counter()
    for inode in socket_inodes(pid):
        kind = kinds.get(inode)
        if kind is None:
            out["CLOSE"] += 1
        elif kind[0] == "tcp" and kind[1] == port and kind[2] != "LISTEN":
            out[kind[2]] += 1
    return out


def socket_inodes(pid):
    out = []
    for f in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, f))
        except OSError:
            continue
        if link.startswith("socket:["):
            out.append(link[8:-1])
    return out


def socket_kinds():
    """{inode: (protocol, local port or path, state)} of the host's sockets."""
    kinds = {}
    tcp_states = {"01": "ESTABLISHED", "06": "TIME_WAIT", "08": "CLOSE_WAIT", "0A": "LISTEN"}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                for line in f.readlines()[1:]:
                    p = line.split()
                    kinds[p[9]] = ("tcp", int(p[1].rsplit(":", 1)[1], 16), tcp_states.get(p[3], p[3]))
        except OSError:
            pass
    unix_types = {"0001": "stream", "0002": "dgram", "0005": "seqpacket"}
    try:
        with open("/proc/net/unix") as f:
            for line in f.readlines()[1:]:
                p = line.split()
                kinds[p[6]] = ("unix", p[7] if len(p) > 7 else "", "%s%s" % (
                    unix_types.get(p[4], p[4]), " listening" if p[3] == "00010000" else ""))
    except OSError:
        pass
    try:
        with open("/proc/net/netlink") as f:
            for line in f.readlines()[1:]:
                kinds[line.split()[9]] = ("netlink", "", "")
    except OSError:
        pass
    return kinds


def fd_kinds(pid):
    """wardend's open fds by kind: sockets by protocol and state, pipe, anon_inode:[x], or the file's directory."""
    kinds = collections.Counter()
    socks = socket_kinds()
    for f in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, f))
        except OSError:
            continue
        if link.startswith("socket:["):
            k = socks.get(link[8:-1])
            # listed nowhere: a TCP socket in state CLOSE (reset by its peer)
            kinds["socket " + ("tcp CLOSE" if k is None else "%s %s" % (k[0], k[2]))] += 1
        elif link.startswith("pipe:"):
            kinds["pipe"] += 1
        elif link.startswith("anon_inode:"):
            kinds[link] += 1
        else:
            kinds[os.path.dirname(link) or link] += 1
    return kinds


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


class Lag:
    """warden_loop_lag_* of one /metrics scrape."""

    def __init__(self, text):
        self.buckets = []
        self.max_s = self.sum_s = None
        for line in text.splitlines():
            m = re.match(r'^warden_loop_lag_seconds_bucket\{le="([^"]+)"\} (\d+)$', line)
            if m:
                self.buckets.append((float(m.group(1)), int(m.group(2))))
            elif line.startswith("warden_loop_lag_max_seconds "):
                self.max_s = float(line.split()[1])
            elif line.startswith("warden_loop_lag_seconds_sum "):
                self.sum_s = float(line.split()[1])
        self.buckets.sort()


def lag_window(a, b):
    """The loop lag between two scrapes: n, mean, p50/p99 bucket bounds, max (ms) and whether it is exact."""
    prev = dict(a.buckets)
    delta = [(le, c - prev.get(le, 0)) for le, c in b.buckets]
    n = delta[-1][1] if delta else 0
    out = {"n": n, "mean": (b.sum_s - a.sum_s) / n * 1000 if n else None}
    for q in (0.5, 0.99):
        out[q] = next((le * 1000 for le, c in delta if c >= q * n), None) if n else None
    top, last = None, 0
    for le, c in delta:
        if c > last:
            top = le * 1000
        last = c
    if b.max_s is not None and a.max_s is not None and b.max_s > a.max_s:
        out["max"], out["exact"] = b.max_s * 1000, True
    else:  # the gauge holds a larger lag from before the window
        out["max"], out["exact"] = top, False
    out["over_10ms"] = n - next((c for le, c in delta if le == 0.01), n) if n else 0
    return out


class Snapshot:
    def __init__(self, label, pid, lag, t):
        self.label = label
        self.kinds = fd_kinds(pid)
        self.fds = sum(self.kinds.values())
        self.rss = rss_kib(pid)
        self.lag = lag
        self.t = t


class LoopWatch(threading.Thread):
    """Samples wardend's main thread (its event loop) every 10 ms, to tell a loop
    lag of the host from one of wardend: the longest stretch in which it spent
    most of each sample waiting for a CPU (schedstat's run-queue time), and the
    longest in which it slept in a syscall other than epoll_wait
    (/proc/PID/syscall), which is wardend waiting on something."""

    EPOLL = {"232", "281", "441"}  # x86-64 epoll_wait, epoll_pwait, epoll_pwait2

    def __init__(self, pid):
        super().__init__(name="loopwatch", daemon=True)
        self.pid = pid
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.starved = []  # (start, ms) of stretches >= 50 ms
        self.blocked = []  # (start, ms, syscalls) of stretches >= 50 ms
        self.max_starved = self.max_blocked = (None, 0.0, None)

    def _read(self):
        with open("/proc/%d/task/%d/schedstat" % (self.pid, self.pid)) as f:
            run, wait = map(int, f.read().split()[:2])
        with open("/proc/%d/task/%d/syscall" % (self.pid, self.pid)) as f:
            sc = f.read().split()[0]
        return time.monotonic_ns(), run, wait, sc

    def run(self):
        try:
            prev = self._read()
        except OSError:
            return
        st = bl = None  # open stretches: [start_ns, syscalls]
        while not self.stop.wait(0.01):
            try:
                cur = self._read()
            except OSError:
                return
            dt = cur[0] - prev[0]
            dwait, drun = cur[2] - prev[2], cur[1] - prev[1]
            if dt > 0 and dwait >= 0.5 * dt:
                st = st or [prev[0]]
            elif st:
                self._close(self.starved, "max_starved", st, prev[0])
                st = None
            asleep = dt > 0 and dwait + drun <= 0.2 * dt
            if asleep and cur[3] != "running" and cur[3] not in self.EPOLL and prev[3] not in self.EPOLL:
                bl = bl or [prev[0], collections.Counter()]
                bl[1][cur[3]] += 1
            elif bl:
                self._close(self.blocked, "max_blocked", bl, prev[0])
                bl = None
            prev = cur

    def _close(self, where, top, stretch, end_ns):
        ms = (end_ns - stretch[0]) / 1e6
        calls = dict(stretch[1]) if len(stretch) > 1 else None
        with self.lock:
            if ms >= 50:
                where.append((stretch[0] / 1e9, ms, calls))
            if ms > getattr(self, top)[1]:
                setattr(self, top, (stretch[0] / 1e9, ms, calls))


def host_cpu():
    """/proc/stat's cpu line: (busy, steal, idle+iowait) in ticks."""
    with open("/proc/stat") as f:
        v = list(map(int, f.readline().split()[1:9]))
    user, nice, system, idle, iowait, irq, softirq, steal = v
    return user + nice + system + irq + softirq, steal, idle + iowait


def sched_wait_ns(pid):
    with open("/proc/%d/task/%d/schedstat" % (pid, pid)) as f:
        return int(f.read().split()[1])


# ---- the soak -------------------------------------------------------------------

def cell_config():
    recovery = {"on_panic": "restart", "on_stuck": "restart", "on_boot_timeout": "restart",
                "on_crash": "restart", "on_exit": "restart", "max_restarts": 1024, "window_s": 60,
                "backoff": {"initial_ms": 0, "max_ms": 1000, "factor": 2.0, "reset_after_s": 1}}
    cells = [harness.demo_cell("heartbeat", "heartbeat.bin", cpu=1, period=10, timeout=50),
             harness.demo_cell("faulty", "faulty.bin", cpu=1, phys=0x40400000, comm_phys=0x7f001000,
                               period=5, timeout=30, allow_inject=True, recovery=recovery)]
    return {"cpu_sharing": True, "root_cpus": [0], "limits": {"max_connections": MAX_CONNECTIONS}, "cells": cells}


class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.tally = Tally()
        self.gate = Gate()
        self.d = harness.Daemon(cell_config(), keep_dirs=tempfile.mkdtemp(prefix="warden-soak-", dir="/dev/shm"))
        self.wrk = []  # (window label, seconds, parsed, raw)
        self.floods = []
        self.snaps = []
        self.quiet = []  # (load paused -> clients idle, -> wardend holds no connection, -> quiet), s
        self.lingering = []  # quiet moments that did not come
        self.cells0 = self.cells1 = None
        self.leftovers = []
        self.rss_series = []
        self.cpu = []  # (window, seconds, wardend's CPU ticks, host (busy, steal, idle) ticks, loop's wait ns)
        self.loopwatch = None
        self.t_load = 0.0

    def pid(self):
        return self.d.proc.pid

    def alive(self):
        return self.d.proc.poll() is None

    def scrape(self):
        r = self.d.request("GET", "/metrics", tcp=True)
        self.tally.count("metrics")
        if r.status != 200:
            self.tally.error("metrics", "GET /metrics answered %r" % r)
        return Lag(r.body)

    def cells(self):
        r = self.d.request("GET", "/cells", tcp=True)
        self.tally.count("cells")
        return {c["name"]: c for c in r.json()}

    def run(self):
        a = self.args
        d = self.d
        d.start()
        self.client = Client(d, self.gate, self.tally)
        deadline = time.monotonic() + 30
        while True:
            cs = self.cells()
            if all(cs[n]["state"] == "running" for n in ("heartbeat", "faulty")):
                break
            if time.monotonic() > deadline:
                raise AssertionError("cells not running 30 s after start: %s\n%s" %
                                     ({n: c["state"] for n, c in cs.items()}, d.log()[-3000:]))
            time.sleep(0.1)
        total = a.minutes * 60.0
        warm = min(WARMUP_S, total / 2)
        say("wardend pid %d, dirs %s; %g min of load: %g s warm-up, then %g s measured; seed %d" %
            (self.pid(), d.dir, a.minutes, warm, total - warm, a.seed))
        self.snapshot("start")
        self.cells0 = self.cells()
        self.loopwatch = LoopWatch(self.pid())
        self.loopwatch.start()
        self.injector = Injector(self.client, d)
        self.sse = SseClients(d, self.gate, self.tally, self.rng)
        self.uploader = Uploader(self.client, self.rng)
        self.workers = [self.injector, self.sse, self.uploader]
        for w in self.workers:
            w.start()
        try:
            self.window("warm-up", warm)
            self.quiesce()
            self.snapshot("after warm-up")
            self.resume()
            self.window("measured", total - warm)
            self.injector.give_up_at = time.monotonic() + RECOVERY_LIMIT_S
            self.quiesce()
            self.snapshot("end")
            self.cells1 = self.cells()
            images = d.images_dir(UPLOAD_CELL)
            self.leftovers = sorted(f for f in (os.listdir(images) if os.path.isdir(images) else [])
                                    if f.startswith("soak-")) + harness.temp_leftovers(d.state_dir)
        finally:
            self.loopwatch.stop.set()
            for w in self.workers:
                w.stop.set()
            for w in self.workers:
                w.join(30)
            if self.injector.outstanding and self.injector.is_alive():
                self.injector.unrecovered.append((self.injector.outstanding[0], None))

    def resume(self):
        for w in self.workers:
            w.pause.clear()

    def quiesce(self):
        """Pauses the load and waits for a quiet wardend: no fault outstanding, no
        client, no TCP connection held, fd count steady for 2 s."""
        t0 = time.monotonic()
        for w in self.workers:
            w.pause.set()
        for w in self.workers:
            while not w.idle.wait(1) and w.is_alive():
                if time.monotonic() - t0 > 60:
                    say("!! %s still busy after 60 s" % w.name)
                    break
        t_idle = time.monotonic()
        pid, port = self.pid(), self.d.port
        held0 = connection_states(pid, port)
        deadline = time.monotonic() + QUIET_LIMIT_S
        steady, last, since, t_gone = False, None, time.monotonic(), None
        while time.monotonic() < deadline:
            held = connections(pid, port)
            if not held and t_gone is None:
                t_gone = time.monotonic()
            n = len(os.listdir("/proc/%d/fd" % pid))
            if n != last or held:
                last, since = n, time.monotonic()
            elif time.monotonic() - since >= 2:
                steady = True
                break
            time.sleep(0.1)
        if not steady:
            self.lingering.append("no quiet moment %.0f s after the load paused: wardend holds %d TCP connections, "
                                  "%s fds" % (QUIET_LIMIT_S, connections(pid, port), last))
            say("!! " + self.lingering[-1])
        self.quiet.append((t_idle - t0, sum(held0.values()),
                           ", ".join("%d %s" % (v, k) for k, v in sorted(held0.items())) or "-",
                           (t_gone or time.monotonic()) - t_idle, time.monotonic() - t0))

    def snapshot(self, label):
        pid = self.pid()
        s = Snapshot(label, pid, None, time.monotonic())  # fds and RSS before the scrape's connection
        s.lag = self.scrape()
        self.snaps.append(s)
        say("snapshot %s: %d fds, VmRSS %d KiB" % (label, s.fds, s.rss))

    def window(self, label, seconds):
        a, d = self.args, self.d
        say("== %s: %.0f s" % (label, seconds))
        t0 = time.monotonic()
        end = t0 + seconds
        wrk = subprocess.Popen(["wrk", "-t1", "-c%d" % a.wrk_connections, "-d%ds" % round(seconds), "--latency",
                                "-H", "Authorization: Bearer " + d.operator_token,
                                "http://127.0.0.1:%d/cells" % d.port],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        c0, h0, w0 = cpu_ticks(self.pid()), host_cpu(), sched_wait_ns(self.pid())
        next_flood = t0 + min(FLOOD_EVERY_S / 2, seconds / 2)
        next_progress = t0 + PROGRESS_S
        try:
            while time.monotonic() < end:
                now = time.monotonic()
                if not self.alive():
                    raise AssertionError("wardend exited with %s\n%s" % (self.d.proc.returncode, d.log()[-3000:]))
                if now >= next_flood:
                    f = flood(d, MAX_CONNECTIONS + FLOOD_EXTRA, self.gate, self.tally)
                    f["at"] = self.t_load + now - t0
                    self.floods.append(f)
                    say("  flood at %.0f s: %d connections, %d answered 200, %d 503 (median %.1f ms), %d other" %
                        (f["at"], f["opened"], f["ok"], f["503"], median(f["ms_503"]) if f["ms_503"] else 0,
                         len(f["other"])))
                    next_flood += FLOOD_EVERY_S
                if now >= next_progress:
                    self.progress(label, now - t0)
                    next_progress += PROGRESS_S
                time.sleep(min(0.2, max(0.0, min(end, next_flood, next_progress) - time.monotonic())))
            h1 = host_cpu()
            self.cpu.append((label, time.monotonic() - t0, cpu_ticks(self.pid()) - c0,
                             [b - a for a, b in zip(h0, h1)], sched_wait_ns(self.pid()) - w0))
            try:
                out = wrk.communicate(timeout=60)[0]
            except subprocess.TimeoutExpired:
                os.killpg(wrk.pid, 9)
                out = wrk.communicate()[0]
                self.tally.error("wrk", "wrk did not end 60 s after its duration")
        finally:
            if wrk.poll() is None:
                os.killpg(wrk.pid, 9)
                wrk.wait()
        w = parse_wrk(out)
        if w["requests"] is None:
            self.tally.error("wrk", "no figures from wrk (exit %s): %s" % (wrk.returncode, out[-500:]))
        self.wrk.append((label, seconds, w, out))
        self.t_load += seconds

    def progress(self, label, el):
        inj = self.injector
        pid = self.pid()
        rss = rss_kib(pid)
        self.rss_series.append((self.t_load + el, rss))
        say("  [%s %4.0f s] faults %d/%d recovered; sse %d joins, %d events; uploads %d; floods %d; "
            "errors %d; fds %d, VmRSS %d KiB" %
            (label, el, inj.total(inj.recovered), inj.total(inj.injected), self.sse.joins, self.sse.events,
             len(self.uploader.sizes), len(self.floods), self.tally.error_count(),
             len(os.listdir("/proc/%d/fd" % pid)), rss))


def parse_wrk(text):
    out = {"rps": None, "requests": None, "errors": {}, "non2xx": 0, "lat": {}, "max": None}
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", text)
    if m:
        out["requests"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
    m = re.search(r"^\s+Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m)\b", text, re.M)
    if m:
        out["max"] = float(m.group(1)) * unit[m.group(2)]
    for p, v, u in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M):
        out["lat"][p] = float(v) * unit[u]
    return out


# ---- report ---------------------------------------------------------------------

def expected_log(line):
    """Daemon lines at warning or worse that the soak causes on purpose."""
    return "cpu_sharing is ON" in line or (
        "cell faulty:" in line and ("Cell \"faulty\" failed (" in line or "running -> failed" in line))


def problem_lines(log):
    out = []
    for line in log.splitlines():
        m = re.match(r"^\S+ wardend\[\d+\] (\w+): (.*)$", line)
        if m:
            if m.group(1) in ("warning", "err", "error", "crit", "alert", "emerg") and not expected_log(line):
                out.append(line)
        elif line.strip():
            out.append(line)  # not the daemon's format: a crash, a sanitizer, a runner
    return out


def fmt_ms(xs):
    if not xs:
        return "-"
    return "%.1f / %.1f / %.1f (n %d)" % (median(xs), pct(xs, 99), max(xs), len(xs))


def report(s, elapsed, log):
    a = s.args
    inj, sse, up = s.injector, s.sse, s.uploader
    start, warm, end = (s.snaps + [None] * 3)[:3]
    wrk_req = sum(w["requests"] or 0 for _, _, w, _ in s.wrk)
    wrk_secs = sum(sec for _, sec, _, _ in s.wrk)
    wrk_sock = collections.Counter()
    for _, _, w, _ in s.wrk:
        wrk_sock.update(w["errors"])
    wrk_non2xx = sum(w["non2xx"] for _, _, w, _ in s.wrk)
    wrk_err = sum(wrk_sock.values()) + wrk_non2xx
    own_req = sum(s.tally.requests.values())
    own_err = s.tally.error_count()
    errors = wrk_err + own_err
    n_inj, n_rec = inj.total(inj.injected), inj.total(inj.recovered)
    unrec = n_inj - n_rec
    fd_drift = end.fds - warm.fds if end and warm else None
    rss_drift = end.rss - warm.rss if end and warm else None
    f503 = sum(f["503"] for f in s.floods)
    fok = sum(f["ok"] for f in s.floods)
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]

    print()
    print("== warden soak, %s: %g min of load (%.0f s warm-up + %.0f s measured), %.0f s in all ==" %
          (datetime.date.today().isoformat(), a.minutes, s.wrk[0][1] if s.wrk else 0,
           s.wrk[1][1] if len(s.wrk) > 1 else 0, elapsed))
    print("wardend %s; cells heartbeat 10/50 ms, faulty 5/30 ms (inject, restart on all, 1024 per 60 s) on CPU 1; "
          "cpu_sharing, root_cpus [0]; max_connections %d; TCP on 127.0.0.1; %d CPUs, load average now %s; seed %d" %
          (os.path.relpath(harness.WARDEND), MAX_CONNECTIONS, os.cpu_count() or 0, " ".join(load), a.seed))
    print()
    rows = []

    def row(what, figure, goal="", met=None):
        rows.append((what, figure, goal, "" if met is None else ("met" if met else "NOT MET")))

    row("requests", "%d: wrk %d + script %d (+ %d flood 503s)" % (wrk_req + own_req, wrk_req, own_req, f503))
    row("errors (the flood's 503s apart)", "%d: wrk socket %s, non-2xx %d; script %d" % (
        errors, "/".join(str(wrk_sock.get(k, 0)) for k in ("connect", "read", "write", "timeout")),
        wrk_non2xx, own_err), "0", errors == 0)
    lat = [w for label, _, w, _ in s.wrk if label == "measured"] or [w for _, _, w, _ in s.wrk]
    lw = lat[-1] if lat else {"lat": {}, "max": None}
    row("wrk -t1 -c%d GET /cells" % a.wrk_connections, "%.0f req/s; latency p50 %s / p99 %s / max %s ms" % (
        wrk_req / wrk_secs if wrk_secs else 0, fmt(lw["lat"].get("50")), fmt(lw["lat"].get("99")),
        fmt(lw["max"])))
    hz = os.sysconf("SC_CLK_TCK")
    row("wardend CPU under load", "; ".join("%s %.0f %%" % (label, ticks / hz / sec * 100)
                                            for label, sec, ticks, _, _ in s.cpu) +
        " of one core (utime+stime)")
    row("  its loop waiting for a CPU", "; ".join("%s %.0f %% of the time" % (label, wait / 1e9 / sec * 100)
                                                  for label, sec, _, _, wait in s.cpu) +
        " (schedstat run-queue wait)")
    row("host CPUs busy / steal / idle", "; ".join(
        "%s %.0f / %.1f / %.0f %%" % (label, h[0] * 100 / max(1, sum(h)), h[1] * 100 / max(1, sum(h)),
                                      h[2] * 100 / max(1, sum(h))) for label, _, _, h, _ in s.cpu) +
        " (all users' load; /proc/stat)")
    row("faults injected / recovered", "%d / %d (%s)" % (
        n_inj, n_rec, "%.1f %%" % (100.0 * n_rec / n_inj) if n_inj else "-"), "100 %", n_inj > 0 and unrec == 0)
    row("  POST inject -> running (ms)", "p50/p99/max %s" % fmt_ms(inj.seen_ms))
    row("  the daemon's recovery_ms", "p50/p99/max %s" % fmt_ms(inj.recovery_ms))
    row("fd drift (end - after warm-up)", "%s (start %d, after warm-up %d, end %d)" % (
        fmt(fd_drift, "%+d"), start.fds, warm.fds if warm else -1, end.fds if end else -1) if start else "-",
        "0", fd_drift == 0)
    row("RSS drift (end - after warm-up)", "%s KiB (VmRSS start %s, after warm-up %s, end %s KiB)" % (
        fmt(rss_drift, "%+d"), start.rss if start else "-", warm.rss if warm else "-", end.rss if end else "-"),
        "|d| <= %d KiB" % RSS_TOLERANCE_KIB, rss_drift is not None and abs(rss_drift) <= RSS_TOLERANCE_KIB)
    if warm and end:
        lw_ = lag_window(warm.lag, end.lag)
        row("loop lag, measured window", "p50 <=%s / p99 <=%s ms; max %s ms%s; %d > 10 ms of %d; mean %s ms" % (
            fmt(lw_[0.5], "%g"), fmt(lw_[0.99], "%g"), fmt(lw_["max"], "%.3f" if lw_["exact"] else "<=%g"),
            "" if lw_["exact"] else " (bucket)", lw_["over_10ms"], lw_["n"], fmt(lw_["mean"], "%.3f")))
    if start and end:
        la = lag_window(start.lag, end.lag)
        row("loop lag, whole load", "p50 <=%s / p99 <=%s ms; warden_loop_lag_max_seconds %s ms" % (
            fmt(la[0.5], "%g"), fmt(la[0.99], "%g"), fmt(end.lag.max_s * 1000 if end.lag.max_s is not None else None,
                                                          "%.3f")))
    lw = s.loopwatch
    if lw:
        row("  loop stalls: starved / blocked", "longest %s ms mostly waiting for a CPU (%d >= 50 ms); "
            "longest %s ms asleep in a syscall other than epoll_wait (%d >= 50 ms%s)" % (
                fmt(lw.max_starved[1], "%.0f"), len(lw.starved), fmt(lw.max_blocked[1], "%.0f"), len(lw.blocked),
                "; " + ", ".join("syscall %s x%d" % kv for kv in sorted(collections.Counter(
                    k for _, _, c in lw.blocked for k in c).items())) if lw.blocked else ""))
    row("SSE clients", "%d joins (%d resumed), %d events, %d streams without one; stays median %.1f s" % (
        sse.joins, sse.resumes, sse.events, sse.empty, median(sse.stays) if sse.stays else 0))
    row("image uploads", "%d (%.1f MiB; %s MB/s median), listed and deleted; leftovers %d" % (
        len(up.sizes), sum(up.sizes) / 2 ** 20, "%.0f" % median(up.mbps) if up.mbps else "-", len(s.leftovers)),
        "0 left", not s.leftovers)
    row("connection floods (%d + %d conns)" % (MAX_CONNECTIONS, FLOOD_EXTRA),
        "%d: %d answered 200, %d 503 (p50/p99/max %s ms); %d connects took > 500 ms; "
        "closed ones let go of after max %s ms" % (
            len(s.floods), fok, f503, fmt_ms([x for f in s.floods for x in f["ms_503"]]).split(" (")[0],
            sum(c > 500 for f in s.floods for c in f["connect_ms"]),
            fmt(max([f["reap_ms"] for f in s.floods if f["reap_ms"] is not None], default=None), "%.0f")))
    starved = collections.Counter(re.search(r"cell (\S+): ", l).group(1) for l in problem_lines(log)
                                  if "host starved" in l and re.search(r"cell (\S+): ", l))
    row("stalls forgiven as host starvation", "%d (%s; \"host starved\" log lines)" % (
        sum(starved.values()), ", ".join("%s %d" % kv for kv in sorted(starved.items())) or "none"))

    w1 = max(len(r[0]) for r in rows)
    w2 = max(len(r[1]) for r in rows)
    print("%-*s  %-*s  %-14s %s" % (w1, "", w2, "figure", "goal", ""))
    for what, figure, goal, met in rows:
        print("%-*s  %-*s  %-14s %s" % (w1, what, w2, figure, goal, met))

    print()
    print("details")
    for label, sec, w, _ in s.wrk:
        print("  wrk %-9s %.0f s: %s requests, %s req/s, latency p50 %s / p90 %s / p99 %s / max %s ms; "
              "socket errors %s, non-2xx %d" % (
                  label, sec, w["requests"], fmt(w["rps"], "%.0f"), fmt(w["lat"].get("50")),
                  fmt(w["lat"].get("90")), fmt(w["lat"].get("99")), fmt(w["max"]),
                  "/".join(str(w["errors"].get(k, 0)) for k in ("connect", "read", "write", "timeout")), w["non2xx"]))
    print("  script requests: %s" % ", ".join("%s %d" % kv for kv in sorted(s.tally.requests.items())))
    print("  faults by kind, injected/recovered: %s" % ", ".join(
        "%s %d/%d" % (f, inj.injected[f], inj.recovered[f]) for f in FAULTS))
    odd = {k: v for k, v in inj.declared.items() if DECLARED.get(k[0]) != k[1]}
    print("  declared as expected (hang/stall stuck, panic/crash panic, exit exit): %s" % (
        "all" if not odd else "NO: %s" % ", ".join("%s as %s x%d" % (k[0], k[1], v) for k, v in odd.items())))
    print("  ticks skipped (previous fault still recovering at the 200 ms tick): %d; inject refused (409): %d; "
          "recovered after > %.0f s: %d" % (inj.skipped, inj.refused, RECOVERY_LIMIT_S, len(inj.late)))
    if s.cells0 and s.cells1:
        for n in ("heartbeat", "faulty"):
            c0, c1 = s.cells0[n], s.cells1[n]
            print("  %s: restarts %+d, state %s%s" % (
                n, c1["restarts"] - c0["restarts"], c1["state"],
                "; restarts beyond one per injected fault: %d" % inj.extra_restarts if n == "faulty" else ""))
    if start and warm and end:
        kinds = sorted(set(start.kinds) | set(warm.kinds) | set(end.kinds))
        print("  fds by kind (start / after warm-up / end): %s" % "; ".join(
            "%s %d/%d/%d" % (k, start.kinds[k], warm.kinds[k], end.kinds[k]) for k in kinds))
    if s.rss_series:
        xs = [r for _, r in s.rss_series]
        print("  VmRSS under load, every %.0f s: min %d / max %d KiB; %s" % (
            PROGRESS_S, min(xs), max(xs), " ".join("%d" % r for _, r in s.rss_series[::6])))
    if s.loopwatch:
        for what, xs in (("starved", s.loopwatch.starved), ("blocked", s.loopwatch.blocked)):
            top = sorted(xs, key=lambda x: -x[1])[:5]
            if top:
                print("  longest loop stretches %s (at s since start: ms): %s" % (what, ", ".join(
                    "%.0f: %.0f%s" % (t - s.tally.t0, ms, " %s" % c if c else "") for t, ms, c in top)))
    print("  quiet moments (s): %s" % "; ".join(
        "clients idle after %.1f, wardend then still holding %d connections (%s), "
        "let go of the last %.1f later, quiet at %.1f" % q
        for q in s.quiet))
    for f in s.floods:
        print("  flood at %4.0f s: %d opened (connect max %.0f ms, %d over 500 ms), %d x 200 (median %.1f ms), "
              "%d x 503 (median %.1f, max %.1f ms), %d other; wardend let go of them %s ms after the close" % (
                  f["at"], f["opened"], max(f["connect_ms"]) if f["connect_ms"] else 0,
                  sum(c > 500 for c in f["connect_ms"]), f["ok"],
                  median(f["ms_ok"]) if f["ms_ok"] else 0, f["503"], median(f["ms_503"]) if f["ms_503"] else 0,
                  max(f["ms_503"]) if f["ms_503"] else 0, len(f["other"]), fmt(f["reap_ms"], "%.0f")))

    problems = []
    if errors:
        problems += ["error at %.0f s (%s): %s" % e for e in s.tally.errors[:20]]
        if own_err > 20:
            problems.append("... %d more errors of the script" % (own_err - 20))
        if wrk_err:
            problems.append("wrk: socket errors %s, non-2xx %d" % (dict(wrk_sock), wrk_non2xx))
    for fault, c in inj.unrecovered:
        problems.append("%s into faulty not recovered within %.0f s of the end: %s" % (
            fault, RECOVERY_LIMIT_S, json.dumps(c)[:600] if c else "-"))
    for fault, el in inj.late:
        problems.append("%s into faulty recovered only after %.1f s" % (fault, el))
    problems += s.lingering
    if s.leftovers:
        problems.append("files left in the state directory: %s" % s.leftovers[:10])
    if s.floods and not f503:
        problems.append("no flood got a 503: the connection limit did not show")
    lines = [l for l in problem_lines(log) if "host starved" not in l]
    if lines:
        problems.append("%d daemon log lines at warning or worse not caused on purpose, first: %s" % (
            len(lines), "\n    ".join(lines[:10])))
    if problems:
        print()
        print("PROBLEMS (%d):" % len(problems))
        for p in problems:
            print("  " + p)
    failed = errors > 0 or unrec > 0 or fd_drift != 0
    print()
    print("result: %s (exit %d: errors %d, faults not recovered %d, fd drift %s)" % (
        "FAILED" if failed else "held", 1 if failed else 0, errors, unrec, fmt(fd_drift, "%+d")))
    return 1 if failed else 0


def fmt(v, f="%.2f"):
    return "-" if v is None else f % v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--minutes", type=float, default=10, help="minutes of load, the warm-up included; default 10")
    ap.add_argument("--wrk-connections", type=int, default=4, help="wrk -c (one thread); default 4")
    ap.add_argument("--seed", type=int, default=None, help="random seed (SSE stays, upload sizes); default: time")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = int(time.time())
    if args.minutes <= 0:
        ap.error("--minutes must be positive")
    sys.stdout.reconfigure(line_buffering=True)

    if not harness.kvm_available():
        print("SKIP: /dev/kvm not available")
        return 0
    if not shutil.which("wrk"):
        print("SKIP: wrk not installed (apt-get install -y wrk)")
        return 0
    missing = [p for p in (harness.WARDEND, harness.WARDEN_KVM, os.path.join(harness.DEMOS, "heartbeat.bin"),
                           os.path.join(harness.DEMOS, "faulty.bin")) if not os.access(p, os.R_OK)]
    if missing:
        print("SKIP: %s missing (ninja -C build)" % ", ".join(missing))
        return 0

    t0 = time.monotonic()
    s = Soak(args)
    aborted = None
    try:
        s.run()
    except AssertionError as e:
        aborted = str(e)
        say("!! soak aborted: %s" % e)
    finally:
        log = s.d.log()
        s.d.cleanup()
    if aborted:
        print("ABORTED: %s" % aborted.splitlines()[0])
        return 1
    return report(s, time.monotonic() - t0, log)


if __name__ == "__main__":
    sys.exit(main())
