# SPDX-License-Identifier: MIT
"""A ground station drives a board through the whole operator flow, the way
an operator's script would: with wardenctl over TCP (--url, --token-file),
with wardenctl over the unix socket, and with plain curl.

The flow: list the cells, create a new cell from a spec file, upload its
image (heartbeat.bin, named by bare name in the spec), start it and wait,
see it run and beat, replace its spec with If-Match and apply it with a
restart, watch the events for that operation, inject a fault into an
allow_inject cell and see it recover, shut the new cell down, delete it.
wardenctl's exit codes are checked on the way (0, 4, 5, 6).

Needs /dev/kvm (the cells run).
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import (DEMOS, Daemon, WARDENCTL, content_digest, demo_cell, poll, require_kvm, run_tests,  # noqa: E402
                     test)

IMAGE = os.path.join(DEMOS, "heartbeat.bin")
WAIT = 60


def slot(i):
    return {"phys": 0x40000000 + i * 0x400000, "comm_phys": 0x7f000000 + i * 0x1000}


def board():
    fdir_recovery = {"on_panic": "restart", "max_restarts": 100, "window_s": 60,
                     "backoff": {"initial_ms": 0, "max_ms": 100, "factor": 2.0, "reset_after_s": 1}}
    return {"cells": [demo_cell("beacon", "heartbeat.bin", cpu=1, **slot(0)),
                      demo_cell("fdir", "faulty.bin", cpu=1, allow_inject=True, recovery=fdir_recovery, **slot(1))]}


def payload_spec(period=10):
    s = demo_cell("payload", "heartbeat.bin", cpu=1, period=period, timeout=200, autostart=False, **slot(2))
    s["images"] = [{"file": "payload.bin", "address": "0x100000"}]
    return s


def runner_period(d, cell):
    pid = d.cell(cell)["hypervisor"]["pid"]
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        args = [a.decode() for a in f.read().split(b"\0")]
    return [a.split("=", 1)[1] for a in args if a.startswith("--period-ms=")][0]


def beating(get_cell, name, timeout=30):
    """Polls until the cell runs and its heartbeat advanced by 3."""
    first = poll(lambda: (lambda c: c if c["state"] == "running" else None)(get_cell(name)), timeout,
                 name + " running")
    seq = first["heartbeat"]["seq"]
    return poll(lambda: (lambda c: c if c["state"] == "running" and c["heartbeat"]["seq"] >= seq + 3 else None)(
        get_cell(name)), timeout, name + " beating")


# --- wardenctl ---------------------------------------------------------------------


class Ctl:
    def __init__(self, d, tmp, tcp):
        self.d, self.tmp, self.tcp = d, tmp, tcp
        if tcp:
            self.where = ["--url", d.url, "--token-file", d.token_file()]
        else:
            self.where = ["--socket", d.sock]

    def __call__(self, *args, expect=0, where=None, timeout=WAIT + 60):
        argv = [WARDENCTL] + (self.where if where is None else where) + [str(a) for a in args]
        p = subprocess.run(argv, capture_output=True, timeout=timeout)
        p.out, p.err = p.stdout.decode(), p.stderr.decode()
        assert p.returncode == expect, "%s: exit %d, expected %d\nstdout: %s\nstderr: %s" % (
            " ".join(argv[1:]), p.returncode, expect, p.out[-2000:], p.err[-2000:])
        return p

    def json(self, *args, **kw):
        return json.loads(self("--json", *args, **kw).out)

    def show(self, name):
        return self.json("cell", "show", name)


def wardenctl_flow(tcp):
    require_kvm()
    tmp = tempfile.mkdtemp(prefix="warden-ground-")
    try:
        with Daemon(board()) as d:
            ctl = Ctl(d, tmp, tcp)
            d.wait_state("beacon", "running", 30)
            d.wait_state("fdir", "running", 30)
            # 1. look around
            p = ctl("cells")
            lines = p.out.splitlines()
            assert lines[0].split()[:2] == ["NAME", "STATE"], p.out
            assert [l.split()[0] for l in lines[1:]] == ["beacon", "fdir"], p.out
            assert [c["name"] for c in ctl.json("cells")] == ["beacon", "fdir"]
            assert ctl.json("health")["status"] == "ok"
            # 2. a new cell from a spec file
            spec_file = os.path.join(tmp, "payload.json")
            with open(spec_file, "w") as f:
                json.dump(payload_spec(10), f, indent=2)
            ctl("cell", "create", spec_file, "--idempotency-key", "gs-create")
            p = ctl("cell", "create", spec_file, "--idempotency-key", "gs-create")
            assert "already handled" in p.err, p.err
            c = ctl.show("payload")
            assert c["state"] == "stopped" and c["missing_images"] == ["payload.bin"] and c["revision"] == 1, c
            p = ctl("cell", "start", "payload", expect=5)
            assert "payload.bin" in p.err, p.err
            # 3. its image, checked by SHA-256 on both ends
            ctl("cell", "upload", "payload", IMAGE, "--as", "payload.bin", "--idempotency-key", "gs-upload")
            p = ctl("cell", "upload", "payload", IMAGE, "--as", "payload.bin", "--idempotency-key", "gs-upload")
            assert "already handled" in p.err, p.err
            sha = hashlib.sha256(open(IMAGE, "rb").read()).hexdigest()
            assert ctl.json("cell", "images", "payload") == [
                {"name": "payload.bin", "size": os.path.getsize(IMAGE), "sha256": sha}]
            p = ctl("cell", "images", "payload")
            assert "payload.bin" in p.out and sha[:16] in p.out, p.out
            # 4. start and wait
            p = ctl("cell", "start", "payload", "--wait", WAIT)
            assert "start payload: succeeded" in p.out + p.err, (p.out, p.err)
            # starting a running cell is no error, as systemctl has it
            p = ctl("cell", "start", "payload")
            assert "already running, nothing to do" in p.out, p.out
            # 5. it runs and beats
            c = beating(ctl.show, "payload")
            assert c["hypervisor"]["pid"] in d.runner_pids()
            p = ctl("cell", "show", "payload")
            assert "running" in p.out, p.out
            since = max(e["id"] for e in events_of(ctl("--json", "events").out))
            # 6. a new spec, only if nobody changed it meanwhile, applied at once
            rev = ctl.show("payload")["revision"]
            with open(spec_file, "w") as f:
                json.dump(payload_spec(20), f, indent=2)
            p = ctl("cell", "replace", spec_file, "--if-match", rev, "--apply", "--wait", WAIT,
                    "--idempotency-key", "gs-replace")
            assert "succeeded" in p.out + p.err, (p.out, p.err)
            p = ctl("cell", "replace", spec_file, "--if-match", rev, expect=5)
            assert "revision %d" % (rev + 1) in p.err, p.err
            c = beating(ctl.show, "payload")
            assert c["revision"] == rev + 1 and c["spec"]["health"]["period_ms"] == 20 and not c["spec_pending"], c
            assert runner_period(d, "payload") == "20"
            # 7. the events tell the story: the spec, the restart's operation
            evs = events_of(ctl("--json", "events", "--since", since).out)
            assert evs and min(e["id"] for e in evs) > since, evs
            assert any(e["event"] == "spec" and e["data"]["cell"] == "payload" and e["data"]["change"] == "replaced"
                       for e in evs), evs
            apply_op = [e for e in evs if e["event"] == "operation" and e["data"]["kind"] == "apply" and
                        e["data"]["cell"] == "payload" and e["data"]["phase"] == "succeeded"]
            assert apply_op, evs
            op_id = apply_op[0]["data"]["operation"]
            p = ctl("events", "--since", since)
            assert any(l.split()[1:2] == ["operation"] and op_id in l for l in p.out.splitlines()), p.out
            assert ctl.json("operation", "show", op_id)["phase"] == "succeeded"
            p = ctl("operations")
            assert op_id in p.out, p.out
            # 8. a fault, followed live: detected, recovered
            follow = subprocess.Popen([WARDENCTL] + ctl.where + ["--json", "events", "--follow", "--since",
                                                                 str(max(e["id"] for e in evs))],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                restarts = ctl.show("fdir")["restarts"]
                p = ctl("cell", "inject", "fdir", "panic")
                c = poll(lambda: (lambda c: c if c["restarts"] > restarts and c["state"] == "running" else None)(
                    ctl.show("fdir")), WAIT, "fdir recovered")
                assert c["last_failure"]["kind"] == "panic", c
                beating(ctl.show, "fdir")
                # the failure arrives on the live stream
                seen = read_events_until(follow, lambda e: e["event"] == "failure" and e["data"]["cell"] == "fdir",
                                         30)
                assert seen, "no failure event for fdir on events --follow"
            finally:
                follow.terminate()
                follow.wait(10)
            # 9. shut the new cell down, 10. delete it
            p = ctl("cell", "shutdown", "payload", "--wait", WAIT)
            assert "succeeded" in p.out + p.err, (p.out, p.err)
            assert ctl.show("payload")["state"] == "stopped"
            ctl("cell", "shutdown", "payload", expect=5)
            p = ctl("cell", "delete", "payload", "--if-match", rev, "--wait", WAIT, expect=5)
            p = ctl("cell", "delete", "payload", "--if-match", rev + 1, "--wait", WAIT)
            assert "succeeded" in p.out + p.err, (p.out, p.err)
            ctl("cell", "show", "payload", expect=4)
            ctl("cell", "images", "payload", expect=4)
            ctl("operation", "show", "op-00000000-0", expect=4)
            assert not os.path.exists(os.path.join(d.state_dir, "cells", "payload"))
            assert [c["name"] for c in ctl.json("cells")] == ["beacon", "fdir"]
            # exit code 6: a bad token (TCP) / a change that is not allowed
            if tcp:
                bad = os.path.join(tmp, "bad.token")
                with open(bad, "w") as f:
                    f.write("not-the-token\n")
                p = ctl("cells", expect=6, where=["--url", d.url, "--token-file", bad])
                assert "not valid" in p.err and "not-the-token" not in p.err, p.err
                ctl("cells", expect=6, where=["--url", d.url])
                mon = ["--url", d.url, "--token-file", d.token_file("monitor")]
                assert ctl("--json", "cells", where=mon).returncode == 0
                ctl("cell", "stop", "beacon", expect=6, where=mon)
                assert d.cell("beacon")["state"] == "running"
            ctl("cell", "inject", "beacon", "panic", expect=6)
            beating(ctl.show, "beacon")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def events_of(text):
    return [json.loads(l) for l in text.splitlines() if l.strip()]


def read_events_until(proc, pred, timeout):
    """Reads JSON Lines from a wardenctl events --follow until pred."""
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        if not sel.select(timeout=0.5):
            continue
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            return None
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                e = json.loads(line)
                if pred(e):
                    return e
    return None


@test
def ground_station_with_wardenctl_over_tcp():
    wardenctl_flow(tcp=True)


@test
def ground_station_with_wardenctl_over_the_unix_socket():
    wardenctl_flow(tcp=False)


# --- curl ---------------------------------------------------------------------------


class Curl:
    def __init__(self, d, tmp, tcp=True):
        self.d, self.tmp, self.tcp = d, tmp, tcp
        self.curl = shutil.which("curl")
        assert self.curl, "curl is required (Debian package curl)"
        self.n = 0

    def base(self, token=True):
        if self.tcp:
            argv = [self.curl, "-sS"]
            if token:
                argv += ["-H", "Authorization: Bearer " + (token if isinstance(token, str) else self.d.operator_token)]
            return argv, self.d.url
        return [self.curl, "-sS", "--unix-socket", self.d.sock], "http://localhost"

    def __call__(self, method, path, data_file=None, upload_file=None, headers=(), token=True, max_time=WAIT + 30):
        """Returns (status, headers dict, body text)."""
        self.n += 1
        out = os.path.join(self.tmp, "body.%d" % self.n)
        hdr = os.path.join(self.tmp, "headers.%d" % self.n)
        argv, url = self.base(token)
        argv += ["-X", method, "-o", out, "-D", hdr, "-w", "%{http_code}", "--max-time", str(max_time)]
        for h in headers:
            argv += ["-H", h]
        if data_file:
            argv += ["-H", "Content-Type: application/json", "--data-binary", "@" + data_file]
        if upload_file:
            argv += ["-H", "Content-Type: application/octet-stream", "--data-binary", "@" + upload_file]
        p = subprocess.run(argv + [url + path], capture_output=True, timeout=max_time + 30)
        assert p.returncode == 0, (argv, p.stderr.decode())
        status = int(p.stdout.decode())
        hd = {}
        with open(hdr, newline="") as f:
            for l in f.read().split("\r\n\r\n")[-2].splitlines()[1:]:
                k, _, v = l.partition(":")
                hd[k.strip().lower()] = v.strip()
        with open(out) as f:
            body = f.read()
        return status, hd, body

    def json(self, method, path, expect=200, **kw):
        st, hd, body = self(method, path, **kw)
        assert st == expect, (method, path, st, body)
        return json.loads(body) if body else None

    def show(self, name):
        return self.json("GET", "/cells/" + name)

    def events(self, last_id=None, seconds=2):
        argv, url = self.base()
        argv += ["-N", "--max-time", str(seconds)]
        if last_id is not None:
            argv += ["-H", "Last-Event-ID: %d" % last_id]
        # without Last-Event-ID only new events come: ?since=0 asks for all held
        query = "" if last_id is not None else "?since=0"
        p = subprocess.run(argv + [url + "/events" + query], capture_output=True, timeout=seconds + 30)
        assert p.returncode == 28, (p.returncode, p.stderr)  # the time was up: the stream stays open
        evs, cur = [], {}
        for l in p.stdout.decode().splitlines():
            if not l:
                if "data" in cur:
                    evs.append({"id": int(cur["id"]), "event": cur["event"], "data": json.loads(cur["data"])})
                cur = {}
            elif not l.startswith(":"):
                k, _, v = l.partition(": ")
                cur[k] = v
        return evs


def problem_of(st, body, status):
    assert st == status, (st, body)
    p = json.loads(body)
    assert p["status"] == status and p["detail"], p
    return p


def curl_flow(tcp):
    require_kvm()
    tmp = tempfile.mkdtemp(prefix="warden-ground-")
    try:
        with Daemon(board()) as d:
            cu = Curl(d, tmp, tcp)
            d.wait_state("beacon", "running", 30)
            d.wait_state("fdir", "running", 30)
            # 1. look around
            assert [c["name"] for c in cu.json("GET", "/cells")] == ["beacon", "fdir"]
            # 2. create from a spec file
            spec_file = os.path.join(tmp, "payload.json")
            with open(spec_file, "w") as f:
                json.dump(payload_spec(10), f)
            st, hd, body = cu("POST", "/cells", data_file=spec_file, headers=["Idempotency-Key: curl-create"])
            assert st == 201 and hd.get("location") == "/cells/payload" and hd.get("etag") == '"1"', (st, hd, body)
            st, hd, body2 = cu("POST", "/cells", data_file=spec_file, headers=["Idempotency-Key: curl-create"])
            assert st == 201 and body2 == body and hd.get("idempotent-replayed") == "true", (st, hd)
            p = problem_of(*cu("POST", "/cells/payload/start")[::2], 409)
            assert "payload.bin" in p["detail"], p
            # 3. upload, with its digest
            digest = content_digest(open(IMAGE, "rb").read())
            sha = hashlib.sha256(open(IMAGE, "rb").read()).hexdigest()
            img = cu.json("PUT", "/cells/payload/images/payload.bin", expect=201, upload_file=IMAGE,
                          headers=["Content-Digest: " + digest, "Idempotency-Key: curl-upload"])
            assert img == {"name": "payload.bin", "size": os.path.getsize(IMAGE), "sha256": sha}, img
            st, hd, body = cu("PUT", "/cells/payload/images/payload.bin", upload_file=IMAGE,
                              headers=["Content-Digest: " + digest, "Idempotency-Key: curl-upload"])
            assert st == 201 and hd.get("idempotent-replayed") == "true" and json.loads(body) == img, (st, hd, body)
            problem_of(*cu("PUT", "/cells/payload/images/other.bin", upload_file=IMAGE,
                           headers=["Content-Digest: " + content_digest(b"x")])[::2], 422)
            # 4. start and wait
            op = cu.json("POST", "/cells/payload/start?wait=%d" % WAIT)
            assert op["kind"] == "start" and op["phase"] == "succeeded", op
            problem_of(*cu("POST", "/cells/payload/start")[::2], 409)
            # 5. running and beating
            beating(cu.show, "payload")
            since = max(e["id"] for e in cu.events(seconds=1))
            # 6. replace with If-Match, apply with a restart
            st, hd, _ = cu("GET", "/cells/payload")
            etag = hd["etag"]
            with open(spec_file, "w") as f:
                json.dump(payload_spec(20), f)
            st, hd, body = cu("PUT", "/cells/payload?apply=restart&wait=%d" % WAIT, data_file=spec_file,
                              headers=["If-Match: " + etag])
            assert st == 200, (st, body)
            op = json.loads(body)
            assert op["kind"] == "apply" and op["phase"] == "succeeded", op
            st, hd, body = cu("PUT", "/cells/payload", data_file=spec_file, headers=["If-Match: " + etag])
            problem_of(st, body, 412)
            assert hd.get("etag") == '"%d"' % (int(etag.strip('"')) + 1), hd
            c = beating(cu.show, "payload")
            assert c["spec"]["health"]["period_ms"] == 20 and c["revision"] == int(etag.strip('"')) + 1, c
            assert runner_period(d, "payload") == "20"
            # 7. events after `since`: the restart's operation among them
            evs = cu.events(since, seconds=1)
            assert evs and min(e["id"] for e in evs) > since, evs
            assert any(e["event"] == "operation" and e["data"]["operation"] == op["operation"] and
                       e["data"]["phase"] == "succeeded" for e in evs), evs
            ids = [e["id"] for e in evs]
            assert ids == sorted(ids), ids
            # 8. a fault into the allow_inject cell, recovered
            restarts = cu.show("fdir")["restarts"]
            assert cu.json("POST", "/cells/fdir/inject", expect=202, data_file=write(tmp, "f.json", {"fault": "panic"})) \
                == {"cell": "fdir", "fault": "panic"}
            c = poll(lambda: (lambda c: c if c["restarts"] > restarts and c["state"] == "running" else None)(
                cu.show("fdir")), WAIT, "fdir recovered")
            assert c["last_failure"]["kind"] == "panic", c
            evs = cu.events(max(ids), seconds=1)
            assert any(e["event"] == "failure" and e["data"]["cell"] == "fdir" for e in evs), evs
            problem_of(*cu("POST", "/cells/beacon/inject", data_file=write(tmp, "f.json", {"fault": "panic"}))[::2],
                       403)
            # 9. shutdown, 10. delete
            op = cu.json("POST", "/cells/payload/shutdown?wait=%d" % WAIT)
            assert op["kind"] == "shutdown" and op["phase"] == "succeeded", op
            assert cu.show("payload")["state"] == "stopped"
            op = cu.json("DELETE", "/cells/payload?wait=%d" % WAIT)
            assert op["kind"] == "delete" and op["phase"] == "succeeded", op
            problem_of(*cu("GET", "/cells/payload")[::2], 404)
            assert cu.json("GET", "/operations/" + op["operation"])["phase"] == "succeeded"
            if tcp:
                st, hd, body = cu("GET", "/cells", token="wrong")
                problem_of(st, body, 401)
                assert hd.get("www-authenticate") == 'Bearer realm="warden"', hd
                st, hd, body = cu("GET", "/cells", token=False)
                problem_of(st, body, 401)
                problem_of(*cu("POST", "/cells/beacon/stop", token=d.monitor_token)[::2], 403)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write(tmp, name, obj):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        json.dump(obj, f)
    return path


@test
def ground_station_with_curl():
    curl_flow(tcp=True)


@test
def ground_station_with_curl_over_the_unix_socket():
    curl_flow(tcp=False)


if __name__ == "__main__":
    run_tests()
