# SPDX-License-Identifier: MIT
"""wardend's HTTP front end under abuse: more connections than it takes,
wake-ups from requests on the same listener, bytes that are not UTF-8,
and the unix socket's mode from the moment it exists.
"""
import json
import os
import shutil
import socket
import stat
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import harness  # noqa: E402
from harness import (Daemon, EventStream, Skip, demo_cell, poll, raw_request, raw_unix, require_kvm,  # noqa: E402
                     run_tests, test)

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


if __name__ == "__main__":
    run_tests()
