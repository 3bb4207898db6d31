# SPDX-License-Identifier: MIT
"""wardenctl with the habits of docker and kubectl, against a real wardend
with real KVM cells: -o json|yaml|wide|name, --no-headers, -w, per-command
--help, no-ops that succeed, logs [-f] [--tail N], events with filters,
ages and tails, an unusable local socket answered at once, and the bash
completion. The daemon's side of it too: GET /events?tail=N, no replay by
default, "at" on every event, GET /cells/NAME/console?lines=N&follow=1.

No test waits for a time: each waits for what it expects, bounded.
"""
import json
import os
import re
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import WARDENCTL, Daemon, EventStream, Skip, demo_cell, poll, require_kvm, run_tests, test  # noqa: E402

SRC = os.path.join(os.path.dirname(__file__), "..", "..")
COMPLETION = os.path.join(SRC, "daemon", "wardenctl", "wardenctl.bash")
HEALTH = {"period": 20, "timeout": 2000, "boot_timeout": 10000}
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def slot(i):
    return {"phys": 0x40000000 + i * 0x400000, "comm_phys": 0x7f000000 + i * 0x1000}


def cells():
    rec = {"on_panic": "restart", "on_stuck": "restart", "max_restarts": 100, "window_s": 60,
           "backoff": {"initial_ms": 0, "max_ms": 0, "factor": 1.0, "reset_after_s": 60}}
    return [demo_cell("hb", "heartbeat.bin", cpu=1, **slot(0), **HEALTH),
            demo_cell("f", "faulty.bin", cpu=1, allow_inject=True, recovery=rec, **slot(1),
                      **dict(HEALTH, timeout=1000))]


class Ctl:
    def __init__(self, d):
        self.d = d

    def __call__(self, *args, expect=0, timeout=60):
        p = subprocess.run([WARDENCTL, "--socket", self.d.sock] + list(args), capture_output=True, text=True,
                           timeout=timeout)
        assert p.returncode == expect, ("wardenctl %s: exit %d, expected %d\nstdout:\n%s\nstderr:\n%s" %
                                        (" ".join(args), p.returncode, expect, p.stdout, p.stderr))
        return p

    def popen(self, *args):
        return subprocess.Popen([WARDENCTL, "--socket", self.d.sock] + list(args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)


class Lines:
    """Reads a process's stdout a line at a time, with a bound."""

    def __init__(self, proc):
        self.proc = proc
        self.buf = b""
        self.lines = []
        self.sel = selectors.DefaultSelector()
        self.sel.register(proc.stdout, selectors.EVENT_READ)

    def until(self, pred, timeout=30, what="a line"):
        deadline = time.monotonic() + timeout
        while True:
            for i, l in enumerate(self.lines):
                if pred(l):
                    return l
            if time.monotonic() > deadline:
                raise AssertionError("%s not seen in %ss; got:\n%s" % (what, timeout, "\n".join(self.lines)))
            if not self.sel.select(timeout=0.2):
                continue
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                if self.proc.poll() is not None and not any(pred(l) for l in self.lines):
                    raise AssertionError("%s: the process ended (%s); got:\n%s\nstderr: %s" % (
                        what, self.proc.returncode, "\n".join(self.lines), self.proc.stderr.read()))
                continue
            self.buf += chunk
            *done, self.buf = self.buf.split(b"\n")
            self.lines += [l.decode(errors="replace").rstrip("\r") for l in done]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def running(d):
    for name in ("hb", "f"):
        d.wait_cell(name, lambda c: c["state"] == "running" and c["heartbeat"]["seq"] >= 1, 30, name + " running")


@test
def output_formats_and_headers():
    require_kvm()
    with Daemon({"cells": cells()}) as d:
        running(d)
        ctl = Ctl(d)
        want = {c["name"]: c["state"] for c in d.get("/cells").json()}
        as_json = json.loads(ctl("cells", "-o", "json").stdout)
        assert {c["name"]: c["state"] for c in as_json} == want
        for alias in (["--json"], ["--output=json"]):
            assert {c["name"]: c["state"] for c in json.loads(ctl("cells", *alias).stdout)} == want, alias
        names = ctl("cells", "-o", "name").stdout.split()
        assert sorted(names) == sorted(want), names
        table = ctl("cells").stdout.splitlines()
        assert table[0].split()[:3] == ["NAME", "STATE", "BACKEND"], table
        bare = ctl("cells", "--no-headers").stdout.splitlines()
        assert len(bare) == len(want) and not any(l.startswith("NAME") for l in bare), bare
        wide = ctl("cells", "-o", "wide").stdout.splitlines()
        assert "REVISION" in wide[0].split() and "HEARTBEAT" in wide[0].split(), wide[0]
        assert len(wide[0].split()) > len(table[0].split())
        assert ctl("cell", "show", "hb", "-o", "name").stdout == "hb\n"
        y = ctl("cell", "show", "hb", "-o", "yaml").stdout
        try:
            import yaml
        except ImportError:
            yaml = None
        if yaml:
            doc = yaml.safe_load(y)
            cell = d.cell("hb")
            assert doc["spec"] == cell["spec"] and doc["events"] == cell["events"], (doc, cell)
            assert set(doc) == set(cell), (set(doc), set(cell))
            assert doc["spec"]["memory"][0]["phys_start"] == "0x40000000", doc["spec"]  # quoted: a string
            assert doc["spec"]["allow_inject"] is False
        else:
            assert re.search(r"^name: hb$", y, re.M) and re.search(r'^  - name: ram$', y, re.M), y
        # operations: the same options
        ctl("cell", "restart", "hb", "--wait", "30")
        ops = ctl("operations", "-o", "name").stdout.split()
        assert ops and all(o.startswith("op-") for o in ops), ops
        assert "op-" in ctl("operations", "--no-headers").stdout.splitlines()[0]
        # refused formats
        p = ctl("cells", "-o", "xml", expect=2)
        assert "json, yaml, wide or name" in p.stderr, p.stderr
        p = ctl("health", "-o", "name", expect=2)
        assert "-o name" in p.stderr, p.stderr


@test
def help_per_command_needs_no_daemon():
    p = subprocess.run([WARDENCTL, "--socket", "/nonexistent/sock", "cell", "start", "--help"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p
    assert p.stdout.startswith("Usage: wardenctl cell start NAME"), p.stdout
    assert "cell stop" not in p.stdout, p.stdout
    p = subprocess.run([WARDENCTL, "hypervisor", "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.count("Usage: wardenctl hypervisor") == 4, p.stdout
    p = subprocess.run([WARDENCTL, "logs", "-h"], capture_output=True, text=True, timeout=30)
    assert "logs CELL [-f] [--tail N]" in p.stdout, p.stdout
    p = subprocess.run([WARDENCTL, "--help"], capture_output=True, text=True, timeout=30)
    assert "Commands:" in p.stdout and "-o --output" in p.stdout, p.stdout


@test
def no_ops_succeed_and_say_so():
    require_kvm()
    with Daemon({"cells": cells()}) as d:
        running(d)
        ctl = Ctl(d)
        p = ctl("cell", "start", "hb")
        assert "already running, nothing to do" in p.stdout, p.stdout
        ctl("cell", "stop", "hb", "--wait", "30")
        p = ctl("cell", "stop", "hb")
        assert "already stopped, nothing to do" in p.stdout, p.stdout
        j = json.loads(ctl("cell", "stop", "hb", "-o", "json").stdout)
        assert j == {"cell": "hb", "state": "stopped", "changed": False}, j
        # and what is not a no-op still is an error
        ctl("cell", "shutdown", "hb", expect=5)
        # no operation was made for the no-ops
        stops = [o for o in d.get("/operations").json() if o["kind"] == "stop"]
        assert len(stops) == 1, stops


def bound_socket(path, listen):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    if listen:
        s.listen(1)
    return s


@test
def an_unusable_local_socket_fails_at_once_with_a_hint():
    tmp = tempfile.mkdtemp(prefix="warden-ctl-")
    try:
        os.chmod(tmp, 0o755)
        # nothing listens: refused, no retries
        path = os.path.join(tmp, "refused.sock")
        s = bound_socket(path, listen=False)
        s.close()
        p = subprocess.run([WARDENCTL, "--socket", path, "cells"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 3, p
        assert "retrying" not in p.stderr and "is wardend running" in p.stderr, p.stderr
        # a mutation, which would otherwise be retried with its key, too
        p = subprocess.run([WARDENCTL, "--socket", path, "cell", "restart", "x"], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 3 and "retrying" not in p.stderr, p.stderr
        # permission denied: the socket is root's, 0600, and we are nobody
        if os.geteuid() != 0:
            raise Skip("needs root to run wardenctl as another user")
        path = os.path.join(tmp, "private.sock")
        s = bound_socket(path, listen=True)
        try:
            os.chmod(path, 0o600)
            p = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", WARDENCTL,
                                "--socket", path, "cells"], capture_output=True, text=True, timeout=60)
        finally:
            s.close()
        assert p.returncode == 3, p
        assert "Permission denied" in p.stderr and "api.socket_group" in p.stderr, p.stderr
        assert "retrying" not in p.stderr, p.stderr
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def events_have_timestamps_filters_and_no_replay_unless_asked():
    require_kvm()
    with Daemon({"cells": cells()}) as d:
        running(d)
        ctl = Ctl(d)
        # the daemon: no replay by default, ?tail=N the newest N, "at" on each
        held = len([l for l in ctl("events", "-o", "json").stdout.splitlines() if l])
        assert held >= 6, held
        with EventStream(d, query="?tail=3") as es:
            poll(lambda: len(es.events) >= 3, 10, "the newest three")
            assert len(es.events) == 3, es.events
            assert all(re.fullmatch(ISO, e["data"]["at"]) for e in es.events), es.events
        with EventStream(d) as es:
            ctl("cell", "inject", "f", "hang")
            es.wait_for(lambda e: e["event"] == "failure", 30, "the failure")
            assert not any(e["event"] == "state" and e["data"]["reason"] == "start requested"
                           for e in es.events), es.events
        r = d.get("/events?tail=x")
        assert r.status == 400, r
        d.wait_cell("f", lambda c: c["restarts"] >= 1 and c["state"] == "running", 30, "f recovered")
        # the CLI: timestamps, the cell, the kind said once
        out = ctl("events", "--filter", "cell=f", "--filter", "type=failure", "--since", "10m").stdout
        lines = out.splitlines()
        assert len(lines) == 1, out
        assert re.match(ISO + r"\s+failure\s+f\s+stuck: ", lines[0]), lines[0]
        assert "stuck: stuck" not in out, out
        out = ctl("events", "--filter", "type=state,failure", "--filter", "cell=hb").stdout
        assert out and all(l.split()[1] in ("state", "failure") and l.split()[2] == "hb" for l in out.splitlines()), out
        assert len(ctl("events", "--tail", "2").stdout.splitlines()) == 2
        assert ctl("events", "--tail", "0").stdout == ""
        # an age in the future of every event: nothing; a wide one: everything held
        assert ctl("events", "--since", "1s").stdout.count("\n") < held
        wide = ctl("events", "-o", "wide", "--tail", "1").stdout.split()
        assert re.fullmatch(ISO, wide[0]) and wide[1].isdigit(), wide
        # with filters the tail is of what matches, not of everything
        ctl("cell", "restart", "hb", "--wait", "30")
        out = ctl("events", "--filter", "type=failure", "--tail", "1").stdout.splitlines()
        assert len(out) == 1 and out[0].split()[1:3] == ["failure", "f"], out
        ctl("events", "--filter", "colour=red", expect=2)
        ctl("events", "--since", "yesterday", expect=2)
        # -f: only what comes next. The follower may connect after a first
        # panic (it says nothing when it does): panic until it sees one.
        last = max(json.loads(l)["id"] for l in ctl("events", "-o", "json").stdout.splitlines())
        follow = Lines(ctl.popen("events", "-f", "-o", "wide", "--filter", "cell=f"))
        try:
            for attempt in range(10):
                restarts = d.cell("f")["restarts"]
                ctl("cell", "inject", "f", "panic")
                d.wait_cell("f", lambda c: c["restarts"] > restarts and c["state"] == "running", 30, "f recovered")
                try:
                    l = follow.until(lambda l: " failure " in l, 2 if attempt < 9 else 30, "the panic, followed")
                    break
                except AssertionError:
                    continue
            assert "panic: inmate panicked" in l, l
            assert all(int(l.split()[1]) > last for l in follow.lines), (last, follow.lines)
        finally:
            follow.stop()


@test
def logs_tail_and_follow_the_console():
    require_kvm()
    with Daemon({"cells": cells()}) as d:
        running(d)
        ctl = Ctl(d)
        # the inmates print CRLF; text mode reads it as LF
        full = d.get("/cells/f/console?bytes=65536").body.replace("\r\n", "\n")
        assert "faulty: up" in full, full
        out = ctl("logs", "f", "--tail", "1").stdout
        assert out.count("\n") == 1 and full.endswith(out), (out, full)
        assert ctl("logs", "f").stdout == full
        r = d.get("/cells/f/console?lines=1")
        assert r.status == 200 and r.body.replace("\r\n", "\n") == out, r
        assert d.get("/cells/f/console?lines=-1").status == 400
        assert d.get("/cells/f/console?follow=maybe").status == 400
        assert d.get("/cells/f/console?lines=2&bytes=10").status == 400
        follow = Lines(ctl.popen("logs", "-f", "--tail", "1", "f"))
        try:
            follow.until(lambda l: full.rstrip("\n").endswith(l) and l, 30, "the last line first")
            ctl("cell", "inject", "f", "panic")
            follow.until(lambda l: "PANIC" in l, 30, "the panic on the console")
            # (the end of the panic's line may be lost when the restart
            # replaces the console between two reads: api-console.c)
            follow.until(lambda l: l.endswith("faulty: up"), 30, "the next boot's first line")
            n = len(follow.lines)
            assert n <= 8, follow.lines  # the tail of one line, then only what was printed since
            # a deleted cell ends the stream
            ctl("cell", "stop", "f", "--wait", "30")
            ctl("cell", "delete", "f", "--wait", "30")
            assert follow.proc.wait(30) == 0
            assert "ended" in follow.proc.stderr.read().decode(), "no word of the end"
        finally:
            follow.stop()
        ctl("logs", "nosuch", expect=4)


@test
def watch_prints_a_line_again_when_a_cell_changes():
    require_kvm()
    with Daemon({"cells": cells()}) as d:
        running(d)
        ctl = Ctl(d)
        w = Lines(ctl.popen("cells", "-w"))
        try:
            w.until(lambda l: l.startswith("NAME"), 30, "the header")
            w.until(lambda l: l.split()[:2] == ["hb", "running"], 30, "hb running")
            ctl("cell", "stop", "hb", "--wait", "30")
            w.until(lambda l: l.split()[:2] == ["hb", "stopped"], 30, "hb stopped, watched")
            # a restart passes through starting, however fast; the line after it says running
            n = len(w.lines)
            ctl("cell", "restart", "f", "--wait", "30")
            w.until(lambda l: w.lines.index(l) >= n and l.split()[:2] == ["f", "starting"], 30, "f starting")
            w.until(lambda l: w.lines.index(l) > n and l.split()[:2] == ["f", "running"], 30, "f running again")
            assert sum(1 for l in w.lines if l.startswith("NAME")) == 1, w.lines
            assert not any(l.startswith("f ") for l in w.lines[3:n]), w.lines  # f did not change
        finally:
            w.stop()
        ctl("cells", "-w", "-o", "json", expect=2)
        ctl("health", "-w", expect=2)


@test
def bash_completion_completes_commands_and_cells():
    require_kvm()
    if not shutil.which("bash"):
        raise Skip("no bash")
    with Daemon({"cells": cells()}) as d:
        running(d)

        def complete(line):
            script = ('source %s; COMP_WORDS=(%s); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
                      '[[ "%s" == *" " ]] && { COMP_WORDS+=(""); COMP_CWORD=$((COMP_CWORD + 1)); }; '
                      '_wardenctl; printf "%%s\\n" "${COMPREPLY[@]}"') % (COMPLETION, line, line)
            p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
            assert p.returncode == 0, p
            return sorted(x for x in p.stdout.split("\n") if x)

        ctl = "%s --socket %s" % (WARDENCTL, d.sock)
        assert complete("%s ce" % ctl) == ["cell", "cells"]
        assert "restart" in complete("%s cell " % ctl)
        assert complete("%s cell restart " % ctl) == ["f", "hb"]
        assert complete("%s logs h" % ctl) == ["hb"]
        assert complete("%s cells -o " % ctl) == ["json", "name", "wide", "yaml"]
        assert complete("%s cell inject f p" % ctl) == ["panic"]


if __name__ == "__main__":
    run_tests()
