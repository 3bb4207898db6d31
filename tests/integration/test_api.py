# SPDX-License-Identifier: MIT
"""The operator API (api/README.md) route by route and error by error:
tokens and roles, problem+json, Idempotency-Key, ETag/If-Match, uploads
with Content-Digest, operations with ?wait=, the hypervisor, events, the
unix socket's permissions, TLS and the audit log.

Tests whose cells must run need /dev/kvm and skip without it.
"""
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import (DEMOS, Daemon, EventStream, WARDENCTL, content_digest, demo_cell, poll, raw_unix,  # noqa: E402
                     require_kvm, run_tests, temp_leftovers, test)

HEARTBEAT = os.path.join(DEMOS, "heartbeat.bin")
FAULTY = os.path.join(DEMOS, "faulty.bin")


def slot(i):
    """Memory of the i-th cell, apart from the others."""
    return {"phys": 0x40000000 + i * 0x400000, "comm_phys": 0x7f000000 + i * 0x1000}


def cell_spec(name, i=0, image="heartbeat.bin", **extra):
    """A kvm cell on CPU 1 (sharing is on in the harness), stopped at first.
    Its stall timeout is generous: these tests are about the API, and on a
    loaded host an emulated inmate's slow beat must not become a failure
    that ends a restart budget under them."""
    extra.setdefault("autostart", False)
    extra.setdefault("timeout", 2000)
    return demo_cell(name, image, cpu=1, **slot(i), **extra)


def uploaded_spec(name, i=0, file="app.bin", **extra):
    """A cell whose image is an uploaded one, referred to by bare name."""
    s = cell_spec(name, i, **extra)
    s["images"] = [{"file": file, "address": "0x100000"}]
    return s


def problem(r, status, *words):
    """Asserts an application/problem+json answer with that status whose
    detail contains every word; returns the problem."""
    assert r.status == status, (status, r)
    assert r.ctype == "application/problem+json", r
    p = r.json()
    for k in ("type", "title", "status", "detail"):
        assert k in p, (k, p)
    assert p["status"] == status and p["type"].endswith("/%d" % status), p
    assert p["title"] and p["detail"], p
    for w in words:
        assert w in p["detail"], (w, p)
    return p


def read(path):
    with open(path, "rb") as f:
        return f.read()


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return [a.decode() for a in f.read().split(b"\0") if a]


def runner_arg(d, cell, prefix):
    """The value of the cell's runner argument --PREFIX=..."""
    pid = d.cell(cell)["hypervisor"]["pid"]
    for a in cmdline(pid):
        if a.startswith(prefix + "="):
            return a[len(prefix) + 1:]
    return None


def beats(d, name, n=3, timeout=20):
    s = d.wait_state(name, "running", timeout)["heartbeat"]["seq"]
    return d.wait_cell(name, lambda c: c["state"] == "running" and c["heartbeat"]["seq"] >= s + n, timeout,
                       "%d more beats" % n)


# --- access ------------------------------------------------------------------


@test
def tokens_and_roles_on_tcp():
    with Daemon({"cells": [cell_spec("alpha")]}) as d:
        # no token: 401 with WWW-Authenticate, for reads and changes alike
        for method, path in (("GET", "/cells"), ("GET", "/health"), ("GET", "/metrics"), ("GET", "/events"),
                             ("GET", "/hypervisor"), ("GET", "/operations"), ("POST", "/cells/alpha/start"),
                             ("DELETE", "/cells/alpha")):
            r = d.request(method, path, tcp=True, token=None)
            problem(r, 401, "Authorization: Bearer")
            assert r.headers.get("WWW-Authenticate") == 'Bearer realm="warden"', r.headers
        # an unknown token, or another scheme
        r = d.get("/cells", tcp=True, token="not-a-token")
        problem(r, 401, "not valid")
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), r.headers
        r = d.get("/cells", tcp=True, headers={"Authorization": "Basic " + d.operator_token})
        problem(r, 401)
        # the hash of a token is not a token
        r = d.get("/cells", tcp=True, token=hashlib.sha256(d.operator_token.encode()).hexdigest())
        problem(r, 401)
        # monitor: reads yes, changes no (403, not 401)
        for path in ("/cells", "/cells/alpha", "/health", "/metrics", "/hypervisor", "/operations",
                     "/cells/alpha/images"):
            r = d.get(path, tcp=True, token=d.monitor_token)
            assert r.status == 200, (path, r)
        r = d.request("HEAD", "/cells", tcp=True, token=d.monitor_token)
        assert r.status == 200 and r.body == "", r
        for method, path, body in (("POST", "/cells/alpha/start", None), ("POST", "/cells", cell_spec("beta", 1)),
                                   ("PUT", "/cells/alpha", cell_spec("alpha")), ("DELETE", "/cells/alpha", None),
                                   ("POST", "/hypervisor/disable", None)):
            r = d.request(method, path, body=body, tcp=True, token=d.monitor_token)
            problem(r, 403, "monitor", "operator")
        r = d.upload("alpha", "app.bin", b"x" * 100, tcp=True, token=d.monitor_token)
        problem(r, 403, "monitor")
        assert not os.path.exists(d.images_dir("alpha")) or not os.listdir(d.images_dir("alpha"))
        # nothing happened
        assert [c["name"] for c in d.get("/cells").json()] == ["alpha"]
        assert d.cell("alpha")["revision"] == 1
        assert d.get("/hypervisor").json()["state"] == "enabled"
        # operator: everything
        r = d.post("/cells", body=cell_spec("beta", 1), tcp=True)
        assert r.status == 201, r
        # the unix socket needs none
        assert d.get("/cells").status == 200
        assert d.request("DELETE", "/cells/beta").status == 202


@test
def anonymous_metrics_and_health():
    with Daemon({"cells": [cell_spec("alpha")], "api": {"anonymous_metrics": True}}) as d:
        r = d.get("/health", tcp=True, token=None)
        assert r.status == 200 and r.json()["status"] == "ok", r
        r = d.get("/metrics", tcp=True, token=None)
        assert r.status == 200 and "warden_cells 1" in r.body, r
        # only those two, only reads
        problem(d.get("/cells", tcp=True, token=None), 401)
        problem(d.get("/hypervisor", tcp=True, token=None), 401)
        problem(d.request("DELETE", "/health", tcp=True, token=None), 401)
        # a token is still accepted there
        assert d.get("/metrics", tcp=True, token=d.monitor_token).status == 200
    with Daemon({"cells": [], "api": {"anonymous_metrics": False}}) as d:
        problem(d.get("/health", tcp=True, token=None), 401)
        problem(d.get("/metrics", tcp=True, token=None), 401)
        assert d.get("/metrics", tcp=True, token=d.monitor_token).status == 200


# --- bodies --------------------------------------------------------------------


@test
def malformed_and_invalid_specs():
    with Daemon({"cells": [cell_spec("alpha")]}) as d:
        p = problem(d.post("/cells", body='{"name": "x", '), 400, "malformed JSON")
        assert p["instance"] == "/cells", p
        problem(d.post("/cells", body=""), 400, "JSON body")
        problem(d.post("/cells", body="[1, 2"), 400, "malformed JSON")
        problem(d.post("/cells", body='{"name": "x", "name": "y"}'), 400, "duplicate")
        # unknown fields, named by their JSON path
        s = cell_spec("beta", 1)
        s["bogus"] = 1
        problem(d.post("/cells", body=s), 422, "$", "bogus")
        s = cell_spec("beta", 1)
        s["health"]["perio_ms"] = 10
        problem(d.post("/cells", body=s), 422, "$.health", "perio_ms")
        s = cell_spec("beta", 1)
        s["memory"][0]["colour"] = "red"
        problem(d.post("/cells", body=s), 422, "$.memory[0]", "colour")
        # wrong types
        s = cell_spec("beta", 1)
        s["cpus"] = "1"
        problem(d.post("/cells", body=s), 422, "$.cpus")
        s = cell_spec("beta", 1)
        s["autostart"] = "yes"
        problem(d.post("/cells", body=s), 422, "autostart")
        s = cell_spec("beta", 1)
        s["health"]["period_ms"] = "fast"
        problem(d.post("/cells", body=s), 422, "$.health", "period_ms")
        problem(d.post("/cells", body=["alpha"]), 422)
        s = cell_spec("Beta", 1)
        problem(d.post("/cells", body=s), 422, "Beta")
        # the same on PUT
        s = cell_spec("alpha")
        s["recovery"] = {"on_panic": "explode"}
        problem(d.put("/cells/alpha", body=s), 422, "$.recovery", "explode")
        problem(d.put("/cells/alpha", body="{"), 400, "malformed JSON")
        problem(d.put("/cells/alpha", body=cell_spec("beta")), 422, "alpha", "renamed")
        # nothing was created or changed
        assert [c["name"] for c in d.get("/cells").json()] == ["alpha"]
        assert d.cell("alpha")["revision"] == 1
        assert sorted(os.listdir(os.path.join(d.state_dir, "cells"))) == ["alpha"]
        # bad query parameters
        problem(d.post("/cells/alpha/start?wait=x"), 400, "wait")
        problem(d.post("/cells/alpha/start?wait=301"), 400, "wait")
        problem(d.put("/cells/alpha?apply=later", body=cell_spec("alpha")), 400, "apply")
        problem(d.get("/cells/alpha/console?bytes=0"), 400, "bytes")
        problem(d.get("/cells/alpha/console?bytes=65537"), 400, "bytes")
        problem(d.get("/events", headers={"Last-Event-ID": "abc"}), 400, "event id")
        problem(d.post("/cells", body=cell_spec("beta", 1), headers={"Idempotency-Key": "x" * 129}), 400,
                "Idempotency-Key")
        problem(d.post("/cells", body=cell_spec("beta", 1), headers={"Idempotency-Key": "a b"}), 400,
                "Idempotency-Key")
        assert [c["name"] for c in d.get("/cells").json()] == ["alpha"]


@test
def oversized_bodies_are_refused():
    with Daemon({"cells": [cell_spec("alpha")], "limits": {"max_body_bytes": 4096}}) as d:
        big = json.dumps(dict(cell_spec("beta", 1), args="x" * 8000)).encode()
        # announced
        st, hdr, body = raw_unix(d.sock, b"POST /cells HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(big) + big)
        assert st == 413, (st, body)
        assert hdr.get("content-type") == "application/problem+json", hdr
        p = json.loads(body)
        assert p["status"] == 413 and "4096" in p["detail"], p
        # announced, over TCP, without sending it
        r = d.request("PUT", "/cells/alpha", body=big, tcp=True)
        problem(r, 413, "4096")
        # chunked: not announced, found out while reading
        data = b"POST /cells HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        for i in range(0, len(big), 1000):
            c = big[i:i + 1000]
            data += b"%x\r\n" % len(c) + c + b"\r\n"
        st, hdr, body = raw_unix(d.sock, data + b"0\r\n\r\n")
        assert st == 413, (st, body)
        assert json.loads(body)["status"] == 413
        # nothing created, still up; a body under the limit is fine
        assert [c["name"] for c in d.get("/cells").json()] == ["alpha"]
        assert d.post("/cells", body=cell_spec("beta", 1)).status == 201


# --- cells ---------------------------------------------------------------------


@test
def create_get_list_and_conflicts():
    with Daemon({"cells": [cell_spec("alpha")]}) as d:
        s = uploaded_spec("beta", 1)
        r = d.post("/cells", body=s)
        assert r.status == 201, r
        assert r.headers.get("Location") == "/cells/beta", r.headers
        assert r.headers.get("ETag") == '"1"', r.headers
        c = r.json()
        assert c["name"] == "beta" and c["state"] == "stopped" and c["revision"] == 1, c
        assert c["spec"]["images"] == [{"file": "app.bin", "address": "0x100000"}], c["spec"]
        assert c["missing_images"] == ["app.bin"] and c["spec_pending"] is False, c
        # stored
        stored = json.loads(read(os.path.join(d.state_dir, "cells", "beta", "spec.json")))
        assert stored["revision"] == 1 and stored["spec"]["name"] == "beta", stored
        r = d.get("/cells/beta")
        assert r.status == 200 and r.headers.get("ETag") == '"1"' and r.json()["missing_images"] == ["app.bin"], r
        assert [x["name"] for x in d.get("/cells").json()] == ["alpha", "beta"]
        assert "beta" in d.get("/hypervisor").json()["cells"]
        # the same name again
        problem(d.post("/cells", body=cell_spec("beta", 2)), 409, '"beta"', "already exists")
        problem(d.post("/cells", body=cell_spec("alpha", 2)), 409, '"alpha"', "already exists")
        # memory that overlaps another cell's: both are named
        p = problem(d.post("/cells", body=cell_spec("gamma", 1)), 409, '"gamma"', '"beta"')
        assert "overlap" in p["detail"], p
        # start with an image missing: named
        problem(d.post("/cells/beta/start"), 409, "app.bin", "beta")
        assert d.cell("beta")["state"] == "stopped"
        # a stopped cell cannot be stopped or shut down
        problem(d.post("/cells/beta/stop"), 409, "beta", "stopped")
        problem(d.post("/cells/beta/shutdown"), 409, "beta", "stopped")
        # a stopped cell has no console and takes no faults
        problem(d.get("/cells/beta/console"), 409, "beta")
        # methods
        r = d.request("PATCH", "/cells/beta")
        problem(r, 405)
        assert set(r.headers.get("Allow", "").replace(" ", "").split(",")) == {"GET", "HEAD", "PUT", "DELETE"}, r
        r = d.request("DELETE", "/cells/beta/images")
        problem(r, 405)
        assert r.headers.get("Allow") == "GET, HEAD", r.headers
        r = d.request("POST", "/cells/beta/images/app.bin")
        problem(r, 405)
        assert r.headers.get("Allow") == "PUT, DELETE", r.headers
        r = d.request("PUT", "/operations")
        problem(r, 405)


@test
def cpu_overlap_names_both_cells():
    cfg = {"cpu_sharing": False, "root_cpus": [0], "cells": [cell_spec("alpha", 0)]}
    with Daemon(cfg) as d:
        p = problem(d.post("/cells", body=cell_spec("beta", 1)), 409, "CPU 1", '"beta"', '"alpha"')
        assert p["instance"] == "/cells", p
        s = cell_spec("beta", 1)
        s["cpus"] = [0]
        problem(d.post("/cells", body=s), 409, "CPU 0", "root")
        assert [c["name"] for c in d.get("/cells").json()] == ["alpha"]
        assert not os.path.exists(os.path.join(d.state_dir, "cells", "beta"))


@test
def unknown_things_are_404():
    with Daemon({"cells": [cell_spec("alpha")]}) as d:
        for method, path in (("GET", "/cells/nope"), ("PUT", "/cells/nope"), ("DELETE", "/cells/nope"),
                             ("POST", "/cells/nope/start"), ("POST", "/cells/nope/restart"),
                             ("POST", "/cells/nope/inject"), ("GET", "/cells/nope/console"),
                             ("GET", "/cells/nope/images"), ("DELETE", "/cells/nope/images/a.bin")):
            body = cell_spec("nope") if method == "PUT" else None
            problem(d.request(method, path, body=body), 404, '"nope"')
        problem(d.upload("nope", "a.bin", b"abc"), 404, '"nope"')
        problem(d.get("/operations/op-00000000-1"), 404, "op-00000000-1")
        problem(d.get("/operations/op-00000000-1?wait=1"), 404, "op-00000000-1")
        problem(d.request("DELETE", "/cells/alpha/images/none.bin"), 404, "none.bin")
        problem(d.get("/cells/alpha/frob"), 404, "frob")
        problem(d.get("/nothing/here"), 404, "/nothing/here")
        # over TCP too, with a token
        problem(d.get("/cells/nope", tcp=True), 404, '"nope"')


@test
def if_match_and_etags():
    with Daemon({"cells": [cell_spec("alpha")]}) as d:
        s = cell_spec("alpha")
        s["health"]["period_ms"] = 20
        r = d.put("/cells/alpha", body=s, headers={"If-Match": '"1"'})
        assert r.status == 200 and r.headers.get("ETag") == '"2"', r
        c = r.json()
        assert c["revision"] == 2 and c["spec"]["health"]["period_ms"] == 20, c
        # a stopped cell takes the new spec at once: nothing pending
        assert c["spec_pending"] is False, c
        # stale: 412 with the current ETag, nothing stored
        s["health"]["period_ms"] = 30
        r = d.put("/cells/alpha", body=s, headers={"If-Match": '"1"'})
        problem(r, 412, "revision 2", '"1"')
        assert r.headers.get("ETag") == '"2"', r.headers
        assert d.cell("alpha")["spec"]["health"]["period_ms"] == 20
        assert json.loads(read(os.path.join(d.state_dir, "cells", "alpha", "spec.json")))["revision"] == 2
        # weak tags, lists and * match
        r = d.put("/cells/alpha", body=s, headers={"If-Match": 'W/"2"'})
        assert r.status == 200 and r.headers.get("ETag") == '"3"', r
        r = d.put("/cells/alpha", body=s, headers={"If-Match": '"1", "3"'})
        assert r.status == 200 and r.headers.get("ETag") == '"4"', r
        r = d.put("/cells/alpha", body=s, headers={"If-Match": "*"})
        assert r.status == 200 and r.headers.get("ETag") == '"5"', r
        # no If-Match: unconditional; the name may be left out
        del s["name"]
        r = d.put("/cells/alpha", body=s)
        assert r.status == 200 and r.json()["revision"] == 6 and r.json()["name"] == "alpha", r
        assert d.get("/cells/alpha").headers.get("ETag") == '"6"'
        # the stale check comes before the body is looked at
        problem(d.put("/cells/alpha", body="{", headers={"If-Match": '"5"'}), 412)
        # DELETE with a stale If-Match is refused too; the cell stays
        r = d.request("DELETE", "/cells/alpha", headers={"If-Match": '"5"'})
        problem(r, 412, "revision 6")
        assert r.headers.get("ETag") == '"6"'
        assert d.get("/cells/alpha").status == 200
        r = d.request("DELETE", "/cells/alpha?wait=10", headers={"If-Match": '"6"'})
        assert r.status == 200 and r.json()["phase"] == "succeeded", r
        problem(d.get("/cells/alpha"), 404)


@test
def idempotency_keys():
    with Daemon({"cells": [cell_spec("alpha")]}) as d:
        key = {"Idempotency-Key": "create-beta-1"}
        r1 = d.post("/cells", body=cell_spec("beta", 1), headers=key)
        assert r1.status == 201 and "Idempotent-Replayed" not in r1.headers, r1
        # the retry: the stored answer, and nothing runs (the cell changed meanwhile)
        s = cell_spec("beta", 1)
        s["health"]["period_ms"] = 25
        assert d.put("/cells/beta", body=s).status == 200
        r2 = d.post("/cells", body=cell_spec("beta", 1), headers=key)
        assert r2.status == 201, r2
        assert r2.headers.get("Idempotent-Replayed") == "true", r2.headers
        assert r2.body == r1.body, (r1.body, r2.body)
        assert r2.headers.get("Location") == "/cells/beta" and r2.headers.get("ETag") == '"1"', r2.headers
        assert r2.ctype == "application/json"
        assert d.cell("beta")["revision"] == 2
        # the same key with another body is another request: 422, nothing runs
        problem(d.post("/cells", body=cell_spec("delta", 2), headers=key), 422, "create-beta-1", "another body")
        problem(d.get("/cells/delta"), 404)
        # the same key elsewhere: 422, nothing runs
        problem(d.put("/cells/beta", body=cell_spec("beta", 1), headers=key), 422, "create-beta-1", "POST /cells")
        problem(d.post("/cells/beta/start", headers=key), 422, "create-beta-1")
        assert d.cell("beta")["revision"] == 2
        # an error answer is stored too (4xx are answers)
        k2 = {"Idempotency-Key": "dup"}
        r = d.post("/cells", body=cell_spec("alpha", 3), headers=k2)
        problem(r, 409)
        assert d.request("DELETE", "/cells/alpha?wait=10").status == 200
        r = d.post("/cells", body=cell_spec("alpha", 3), headers=k2)
        problem(r, 409)
        assert r.headers.get("Idempotent-Replayed") == "true", r.headers
        problem(d.get("/cells/alpha"), 404)
        # keys are per daemon state: they survive a restart
        d.restart()
        r4 = d.post("/cells", body=cell_spec("beta", 1), headers=key)
        assert r4.status == 201 and r4.body == r1.body and r4.headers.get("Idempotent-Replayed") == "true", r4
        assert d.cell("beta")["revision"] == 2
        # and are the principal's own: the token "ops" on TCP makes its own request
        problem(d.post("/cells", body=cell_spec("beta", 1), headers=key, tcp=True), 409)
        # a fresh key runs again: here it is a conflict
        problem(d.post("/cells", body=cell_spec("beta", 1), headers={"Idempotency-Key": "other"}), 409)
        # the audit log says it was a replay
        assert "replayed the stored response" in d.log(), d.log()[-2000:]


@test
def idempotent_restart_runs_once():
    require_kvm()
    with Daemon({"cells": [cell_spec("alpha", autostart=True)]}) as d:
        d.wait_state("alpha", "running", 20)
        boots = d.cell("alpha")["hypervisor"]["boots"]
        key = {"Idempotency-Key": "restart-alpha-42"}
        r1 = d.post("/cells/alpha/restart?wait=30", headers=key)
        assert r1.status == 200, r1
        op = r1.json()
        assert op["kind"] == "restart" and op["phase"] == "succeeded" and op["cell"] == "alpha", op
        assert r1.headers.get("Location") == "/operations/" + op["operation"], r1.headers
        c = beats(d, "alpha")
        assert c["hypervisor"]["boots"] == boots + 1, (boots, c["hypervisor"])
        # the retry: same operation, replayed; nothing restarts (the status: see
        # replayed_wait_keeps_its_status). By the same principal: keys are
        # each principal's own (test_hardening.py).
        for _ in range(2):
            r2 = d.post("/cells/alpha/restart?wait=30", headers=key)
            assert r2.status in (200, 202), r2
            assert r2.headers.get("Idempotent-Replayed") == "true", r2.headers
            assert r2.json()["operation"] == op["operation"] and r2.json()["phase"] == "succeeded", r2
            assert r2.headers.get("Location") == r1.headers.get("Location"), r2.headers
        c = beats(d, "alpha")
        assert c["hypervisor"]["boots"] == boots + 1, (boots, c["hypervisor"])
        assert c["restarts"] == 0, c
        requested = [e for e in c["events"] if e["reason"] == "restart requested" and e["type"] == "action"]
        assert len(requested) == 1, c["events"]
        ops = [o for o in d.get("/operations").json() if o["kind"] == "restart"]
        assert len(ops) == 1, ops


# --- images --------------------------------------------------------------------


@test
def image_uploads():
    with Daemon({"cells": [uploaded_spec("alpha")], "api": {"max_image_bytes": 65536}}) as d:
        imgs = d.images_dir("alpha")
        data = os.urandom(50000)
        problem(d.post("/cells/alpha/start"), 409, "app.bin")
        r = d.upload("alpha", "app.bin", data, headers={"Idempotency-Key": "up-1"})
        assert r.status == 201 and r.ctype == "application/json", r
        assert r.json() == {"name": "app.bin", "size": 50000, "sha256": hashlib.sha256(data).hexdigest()}, r
        assert read(os.path.join(imgs, "app.bin")) == data
        assert d.cell("alpha")["missing_images"] == []
        assert d.get("/cells/alpha/images").json() == [r.json()]
        # replay of the upload: stored answer, nothing written again
        r2 = d.upload("alpha", "app.bin", data, headers={"Idempotency-Key": "up-1"})
        assert r2.status == 201 and r2.json() == r.json() and r2.headers.get("Idempotent-Replayed") == "true", r2
        assert read(os.path.join(imgs, "app.bin")) == data
        # the key with other bytes is another request (422), not a replay
        problem(d.upload("alpha", "app.bin", b"whatever", headers={"Idempotency-Key": "up-1"}), 422, "another body")
        assert read(os.path.join(imgs, "app.bin")) == data
        # replacing: 200
        data2 = os.urandom(1000)
        r = d.upload("alpha", "app.bin", data2)
        assert r.status == 200 and r.json()["sha256"] == hashlib.sha256(data2).hexdigest(), r
        assert read(os.path.join(imgs, "app.bin")) == data2
        # a wrong digest: 422, nothing stored (the old image stays), no temp file
        r = d.upload("alpha", "app.bin", data, digest=content_digest(b"something else"))
        problem(r, 422, "digest mismatch", hashlib.sha256(data).hexdigest(), "nothing was stored")
        assert read(os.path.join(imgs, "app.bin")) == data2
        r = d.upload("alpha", "other.bin", data, digest=content_digest(b"something else"))
        problem(r, 422, "digest mismatch")
        assert sorted(os.listdir(imgs)) == ["app.bin"], os.listdir(imgs)
        # digest missing or malformed: 400, nothing stored
        problem(d.upload("alpha", "other.bin", data, digest=False), 400, "Content-Digest")
        problem(d.upload("alpha", "other.bin", data, digest="sha-256=:bm90IGJhc2U2NA==:"), 400, "Content-Digest")
        problem(d.upload("alpha", "other.bin", data, digest="md5=:AAAAAAAAAAAAAAAAAAAAAA==:"), 400,
                "Content-Digest")
        # other digests may come along
        r = d.upload("alpha", "multi.bin", b"abc", digest="sha-512=:AAAA:, " + content_digest(b"abc"))
        assert r.status == 201, r
        # bad names
        for name in (".hidden", "a%20b", "x" * 65, ".upload-x"):
            problem(d.upload("alpha", name, b"abc"), 400, "not an image name")
        # too large: announced, and chunked
        big = os.urandom(70000)
        r = d.upload("alpha", "big.bin", big)
        problem(r, 413, "65536")
        hdr = ("PUT /cells/alpha/images/big.bin HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               "Content-Digest: %s\r\nConnection: close\r\n\r\n" % content_digest(big)).encode()
        body = b"".join(b"%x\r\n" % len(big[i:i + 8192]) + big[i:i + 8192] + b"\r\n"
                        for i in range(0, len(big), 8192)) + b"0\r\n\r\n"
        st, h, b = raw_unix(d.sock, hdr + body)
        assert st == 413, (st, b)
        assert "max_image_bytes" in json.loads(b)["detail"] or "65536" in json.loads(b)["detail"], b
        # exactly at the limit is fine
        edge = os.urandom(65536)
        assert d.upload("alpha", "edge.bin", edge).status == 201
        poll(lambda: not temp_leftovers(d.state_dir), 10, "no temp files")
        assert sorted(os.listdir(imgs)) == ["app.bin", "edge.bin", "multi.bin"], os.listdir(imgs)
        names = {i["name"]: i for i in d.get("/cells/alpha/images").json()}
        assert set(names) == {"app.bin", "edge.bin", "multi.bin"}
        assert names["edge.bin"] == {"name": "edge.bin", "size": 65536, "sha256": hashlib.sha256(edge).hexdigest()}
        # deleting: in use 409, unused 204, unknown 404
        problem(d.request("DELETE", "/cells/alpha/images/app.bin"), 409, "app.bin", "alpha")
        r = d.request("DELETE", "/cells/alpha/images/edge.bin")
        assert r.status == 204 and r.body == "", r
        assert not os.path.exists(os.path.join(imgs, "edge.bin"))
        problem(d.request("DELETE", "/cells/alpha/images/edge.bin"), 404, "edge.bin")
        # an image named by a pending spec is in use as well
        s = uploaded_spec("alpha", file="multi.bin")
        assert d.put("/cells/alpha", body=s).status == 200
        problem(d.request("DELETE", "/cells/alpha/images/multi.bin"), 409, "multi.bin")
        assert d.get("/health").status == 200


@test
def truncated_upload_leaves_nothing():
    with Daemon({"cells": [uploaded_spec("alpha")]}) as d:
        imgs = d.images_dir("alpha")
        data = os.urandom(1 << 20)
        for sent in (0, 1, 300000):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(d.sock)
            s.sendall(("PUT /cells/alpha/images/app.bin HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                       "Content-Type: application/octet-stream\r\nContent-Digest: %s\r\n\r\n" %
                       (len(data), content_digest(data))).encode())
            s.sendall(data[:sent])
            # the daemon is writing it, hidden
            if sent:
                poll(lambda: temp_leftovers(imgs), 10, "the upload's temp file")
                assert not os.path.exists(os.path.join(imgs, "app.bin"))
                assert d.get("/cells/alpha/images").json() == []
            s.close()
            poll(lambda: not temp_leftovers(d.state_dir), 15, "the temp file removed after the client left")
            assert not os.path.exists(os.path.join(imgs, "app.bin"))
            assert d.get("/cells/alpha/images").json() == []
            assert d.proc.poll() is None
        # over TCP, once the daemon has taken what was sent (with bytes still in
        # flight at the close: truncated_tcp_upload_noticed_at_once)
        s = tcp_upload_start(d, data, 500000)
        poll(lambda: upload_temp_size(imgs) == 500000, 10, "the daemon read the 500000 bytes")
        s.close()
        poll(lambda: not temp_leftovers(d.state_dir), 15, "the temp file removed")
        assert not os.path.exists(os.path.join(imgs, "app.bin"))
        # and a whole upload works after all that
        r = d.upload("alpha", "app.bin", data)
        assert r.status == 201 and r.json()["size"] == len(data), r
        assert read(os.path.join(imgs, "app.bin")) == data


def tcp_upload_start(d, data, n, name="app.bin"):
    """Starts an upload of data over TCP announcing all of it, sends n bytes."""
    s = socket.create_connection(("127.0.0.1", d.port))
    s.sendall(("PUT /cells/alpha/images/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "Content-Length: %d\r\nContent-Digest: %s\r\n\r\n" % (name, d.operator_token, len(data),
                                                                    content_digest(data))).encode())
    s.sendall(data[:n])
    return s


def upload_temp_size(imgs):
    t = [p for p in temp_leftovers(imgs)]
    try:
        return sum(os.path.getsize(p) for p in t) if t else None
    except OSError:
        return None


# --- server bugs found by these tests: one case each, failing until fixed ----------


@test
def truncated_tcp_upload_noticed_at_once():
    """A client that closes with part of its body still in flight: the
    daemon must notice the close, drop the temp file and free the
    connection. (It misses the end of stream and waits for libmicrohttpd's
    60-second connection timeout.)"""
    with Daemon({"cells": [uploaded_spec("alpha")]}) as d:
        imgs = d.images_dir("alpha")
        data = os.urandom(1 << 20)
        s = tcp_upload_start(d, data, 500000)
        poll(lambda: temp_leftovers(imgs), 10, "the upload's temp file", interval=0.001)
        s.close()
        poll(lambda: not temp_leftovers(d.state_dir), 15, "the temp file removed after the client closed")
        assert not os.path.exists(os.path.join(imgs, "app.bin"))
        assert d.proc.poll() is None


@test
def image_paths_are_held_to_the_image_dirs():
    """An operator token could read any file root can read: a spec's
    absolute image path was loaded by the root runner into guest memory,
    and an inmate can copy that to the console a monitor token reads. Only
    uploaded images (bare names) and files below api.image_dirs are good,
    after symlinks and ".."; relative paths (acknowledged, never startable)
    are refused as well. The config file is held to the same rule."""
    tmp = tempfile.mkdtemp(prefix="warden-test-images-")
    try:
        allowed = os.path.join(tmp, "allowed")
        os.mkdir(allowed)
        good = os.path.join(allowed, "hb.bin")
        shutil.copy(HEARTBEAT, good)
        secret = os.path.join(tmp, "secret")
        with open(secret, "w") as f:
            f.write("root only\n")
        os.symlink(secret, os.path.join(allowed, "link.bin"))

        def spec(name, file, i=0):
            s = cell_spec(name, i)
            s["images"][0]["file"] = file
            return s

        with Daemon({"api": {"image_dirs": [allowed]}, "cells": []}) as d:
            for f in ("/etc/shadow", "/proc/self/environ", secret, os.path.join(allowed, "..", "secret"),
                      os.path.join(allowed, "link.bin"), HEARTBEAT):
                problem(d.post("/cells", body=spec("x", f)), 422, "$.images[0].file", "api.image_dirs", f)
            for f in ("../../etc/passwd", "sub/app.bin", ".hidden"):
                problem(d.post("/cells", body=spec("x", f)), 422, "$.images[0]", "nor an absolute path")
            lin = cell_spec("lin", backend="qemu", linux={"kernel": good, "initrd": "/etc/shadow"})
            del lin["images"]
            problem(d.post("/cells", body=lin), 422, "$.linux.initrd", "api.image_dirs")
            assert d.get("/cells").json() == []
            # inside, and uploaded: fine; a replacement is held to the rule too
            assert d.post("/cells", body=spec("ok", good)).status == 201
            assert d.post("/cells", body=uploaded_spec("up", 1)).status == 201
            problem(d.put("/cells/ok", body=spec("ok", "/etc/shadow")), 422, "$.images[0].file", "api.image_dirs")
            assert d.cell("ok")["spec"]["images"][0]["file"] == good and d.cell("ok")["revision"] == 1
            # a file swapped for a symlink after it was accepted does not start
            os.unlink(good)
            os.symlink(secret, good)
            problem(d.post("/cells/ok/start"), 409, '"ok"', "$.images[0].file", "api.image_dirs")
            assert d.cell("ok")["state"] == "stopped"
        # the config file: the same rule, the daemon does not start
        d = Daemon({"api": {"image_dirs": [allowed]}, "cells": [spec("cfg", "/etc/passwd")]})
        try:
            d.start(wait=False)
            assert d.proc.wait(timeout=20) != 0
            assert "$.cells[0].images[0].file" in d.log() and "api.image_dirs" in d.log(), d.log()
        finally:
            d.cleanup()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def stored_spec_that_does_not_load_is_kept_and_reported():
    """A region size of 2^63 or more was acknowledged (201) and stored as a
    negative integer; at the next start the spec did not load and the cell
    was gone without a word in the API. Such numbers are refused now, and a
    stored spec that does not load stays on disk and is in /health."""
    with Daemon({"cells": []}) as d:
        s = uploaded_spec("big")
        s["memory"][0]["size"] = "0x8000000000000000"  # from 0, so the comm region goes above it
        s["comm"]["virt_start"] = "0x8000000000000000"
        del s["comm"]["phys_start"]
        problem(d.post("/cells", body=s), 422, "$.memory[0]", "\"size\" must be below 2^63")
        s["memory"][0]["size"] = "0x400000"
        problem(d.post("/cells", body=s), 422, "$.comm", "\"virt_start\" must be below 2^63")
        assert d.get("/cells").json() == []
        h = d.get("/health").json()
        assert h["broken_specs"] == [] and h["status"] == "ok", h

        # what a daemon before the fix stored for a size of 2^63
        assert d.post("/cells", body=uploaded_spec("lost")).status == 201
        d.stop()
        path = os.path.join(d.state_dir, "cells", "lost", "spec.json")
        stored = json.loads(read(path))
        stored["spec"]["memory"][0]["size"] = -(2 ** 63)
        with open(path, "w") as f:
            json.dump(stored, f)
        text = read(path)
        for _ in range(2):
            d.restart()
            assert d.get("/cells").json() == []
            h = d.get("/health").json()
            assert h["status"] == "degraded", h
            assert [(b["name"], b["path"]) for b in h["broken_specs"]] == [("lost", path)], h
            assert "$.spec.memory[0]" in h["broken_specs"][0]["reason"], h
            assert "negative" in h["broken_specs"][0]["reason"], h
            assert read(path) == text
            assert "Ignoring a stored cell spec" in d.log()
        # a new spec of that name is the operator's way out
        assert d.post("/cells", body=uploaded_spec("lost")).status == 201
        assert d.get("/health").json()["broken_specs"] == []


@test
def scalar_json_body_is_422():
    """api/README.md: 400 is for malformed JSON, 422 for well-formed JSON
    that is not a valid spec. 42 is well-formed JSON (RFC 8259); the daemon
    answers 400 "malformed JSON ... '[' or '{' expected"."""
    with Daemon({"cells": []}) as d:
        for body in ("42", '"alpha"', "null", "true"):
            problem(d.post("/cells", body=body), 422)


@test
def replayed_wait_keeps_its_status():
    """An Idempotency-Key retry returns the stored response's status. A
    request held with ?wait= that answered 200 (finished) is stored as 202
    (the record is taken when the request is parked), so the retry of a
    200 gets 202 with "phase": "succeeded", which ?wait= never answers."""
    require_kvm()
    with Daemon({"cells": [cell_spec("alpha", autostart=True)]}) as d:
        d.wait_state("alpha", "running", 20)
        key = {"Idempotency-Key": "restart-wait"}
        r1 = d.post("/cells/alpha/restart?wait=30", headers=key)
        assert r1.status == 200 and r1.json()["phase"] == "succeeded", r1
        r2 = d.post("/cells/alpha/restart?wait=30", headers=key)
        assert r2.headers.get("Idempotent-Replayed") == "true", r2.headers
        assert r2.json()["phase"] == "succeeded", r2
        assert r2.status == r1.status, (r1.status, r2)


@test
def pending_spec_survives_a_daemon_restart():
    """A spec replaced while the cell runs takes effect at the next restart
    (api/README.md). If wardend restarts in between (crash, upgrade), the
    adopted cell still runs the old spec, but the daemon forgets that:
    spec_pending turns false, and a restart resets the runner in place with
    the old spec, so the new one never reaches the backend."""
    require_kvm()
    with Daemon({"cells": [cell_spec("alpha", autostart=True, period=10)]}) as d:
        d.wait_state("alpha", "running", 20)
        pid = d.cell("alpha")["hypervisor"]["pid"]
        r = d.put("/cells/alpha", body=cell_spec("alpha", autostart=True, period=40, args="mode=two"))
        assert r.status == 200 and r.json()["spec_pending"] is True, r
        d.restart(signal.SIGKILL)
        c = d.wait_state("alpha", "running", 20)
        assert c["hypervisor"]["pid"] == pid and runner_arg(d, "alpha", "--period-ms") == "10", c
        wrong = []
        if c["spec_pending"] is not True:
            wrong.append("spec_pending is %s after the daemon restart, but the cell runs the old spec" %
                         c["spec_pending"])
        # whatever it says, the next restart must apply the stored spec
        r = d.post("/cells/alpha/restart?wait=30")
        assert r.status == 200 and r.json()["phase"] == "succeeded", r
        beats(d, "alpha")
        if runner_arg(d, "alpha", "--period-ms") != "40" or runner_arg(d, "alpha", "--args") != "mode=two":
            wrong.append("after a restart the runner still has the old spec: %s" %
                         " ".join(cmdline(d.cell("alpha")["hypervisor"]["pid"])[3:]))
        assert not wrong, "; ".join(wrong)


@test
def operation_ids_are_unique_across_restarts():
    """Operation ids are op-BOOTTAG-N with BOOTTAG the start time in
    seconds: two daemons started within the same second hand out the same
    ids. An Idempotency-Key replay then answers with another request's
    operation (here: the delete of "b" for the key that deleted "a")."""
    d = Daemon({"cells": [cell_spec("a", 0), cell_spec("b", 1)]}, tcp=False)
    try:
        # both daemons within one second of the wall clock
        poll(lambda: time.time() % 1 < 0.2, 2, "the start of a second", interval=0.005)
        d.start()
        r1 = d.request("DELETE", "/cells/a", headers={"Idempotency-Key": "delete-a"})
        assert r1.status == 202, r1
        d.restart(signal.SIGKILL)
        r = d.request("DELETE", "/cells/b")
        assert r.status == 202, r
        assert r.json()["operation"] != r1.json()["operation"], (r1.json(), r.json())
        r2 = d.request("DELETE", "/cells/a", headers={"Idempotency-Key": "delete-a"})
        assert r2.headers.get("Idempotent-Replayed") == "true", r2
        assert r2.json()["cell"] == "a" and r2.json()["operation"] == r1.json()["operation"], (r1.json(), r2.json())
    finally:
        d.cleanup()


@test
def concurrent_requests_with_one_key_run_once():
    """"The daemon runs a request at most once per key" (docs/wardenctl.md).
    A retry that arrives while the first request is still being received
    (a slow upload, the client gave up and retried) is not recognised: the
    record is written only when the first one ends, so both run (201, then
    200 "replaced"), two image events, two audit lines."""
    with Daemon({"cells": [uploaded_spec("alpha")]}, tcp=False) as d:
        data = os.urandom(2 << 20)
        res = []

        def upload():
            conn = d.connection(False)

            def pieces():
                for i in range(0, len(data), 65536):
                    yield data[i:i + 65536]
                    time.sleep(0.005)
            try:
                conn.request("PUT", "/cells/alpha/images/x.bin", body=pieces(),
                             headers={"Content-Length": str(len(data)), "Content-Digest": content_digest(data),
                                      "Idempotency-Key": "one-upload"})
                r = conn.getresponse()
                res.append((r.status, r.getheader("Idempotent-Replayed"), r.read()))
            except OSError as e:
                res.append((None, None, repr(e)))
            finally:
                conn.close()
        with EventStream(d) as es:
            first = threading.Thread(target=upload)
            first.start()
            poll(lambda: temp_leftovers(d.images_dir("alpha")), 10, "the first upload under way", interval=0.002)
            second = threading.Thread(target=upload)
            second.start()
            first.join(30)
            second.join(30)
            time.sleep(0.2)  # not an assertion on timing: let the events arrive
            uploaded = [e for e in es.events if e["event"] == "image"]
        ran = [r for r in res if r[0] in (200, 201) and r[1] != "true"]
        assert len(ran) == 1 and len(uploaded) == 1, (res, uploaded)


@test
def idempotency_keys_expire():
    with Daemon({"cells": [cell_spec("alpha")], "api": {"idempotency_ttl_s": 1}}, tcp=False) as d:
        s = cell_spec("alpha")
        key = {"Idempotency-Key": "short-lived"}
        assert d.put("/cells/alpha", body=s, headers=key).json()["revision"] == 2
        r = d.put("/cells/alpha", body=s, headers=key)
        assert r.headers.get("Idempotent-Replayed") == "true" and r.json()["revision"] == 2, r
        # once the record expires, the key is a new request
        r = poll(lambda: (lambda r: r if r.headers.get("Idempotent-Replayed") != "true" else None)(
            d.put("/cells/alpha", body=s, headers=key)), 10, "the key expired")
        assert r.status == 200 and r.json()["revision"] == 3, r
        assert d.put("/cells/alpha", body=s, headers=key).headers.get("Idempotent-Replayed") == "true"


@test
def wardenctl_refuses_locally_the_names_the_daemon_refuses():
    """One rule per kind of name (daemon/names.c), in the daemon and in
    wardenctl: what the daemon would refuse, wardenctl refuses before it
    sends anything (exit 2), and says what the rule is."""
    with Daemon({"cells": [uploaded_spec("alpha")]}, tcp=False) as d:
        long_name = "x" * 255
        img = os.path.join(d.dir, long_name)
        with open(img, "wb") as f:
            f.write(b"abc")
        # the daemon's side of the rules
        problem(d.post("/cells/alpha/start", headers={"Idempotency-Key": "a b"}), 400, "Idempotency-Key", "no spaces")
        problem(d.upload("alpha", "x" * 65, b"abc"), 400, "not an image name")
        ops, images = d.get("/operations").json(), d.get("/cells/alpha/images").json()

        def ctl(*args):
            return subprocess.run([WARDENCTL, "--socket", d.sock] + list(args), capture_output=True, timeout=30)
        p = ctl("cell", "start", "alpha", "--idempotency-key", "a b")
        assert p.returncode == 2 and b"--idempotency-key" in p.stderr and b"no spaces" in p.stderr, p
        p = ctl("cell", "upload", "alpha", img)
        assert p.returncode == 2 and b"is not an image name: 1 to 64 of" in p.stderr and b"--as" in p.stderr, p
        p = ctl("cell", "upload", "alpha", "/etc/hostname", "--as", long_name)
        assert p.returncode == 2 and b"is not an image name" in p.stderr, p
        # nothing reached the daemon
        assert d.get("/operations").json() == ops and d.get("/cells/alpha/images").json() == images
        # and what the rules allow still goes through
        p = ctl("cell", "upload", "alpha", img, "--as", "x" * 64, "--idempotency-key", "ground-1")
        assert p.returncode == 0, p


@test
def failed_operation_carries_a_problem():
    require_kvm()
    with Daemon({"cells": [uploaded_spec("alpha", boot_timeout=1000)]}) as d:
        assert d.upload("alpha", "app.bin", os.urandom(5000)).status == 201  # not a program
        r = d.post("/cells/alpha/start?wait=30")
        assert r.status == 200, r
        op = r.json()
        assert op["phase"] == "failed", op
        err = op["error"]
        assert set(err) >= {"title", "status", "detail"} and err["status"] >= 400 and '"alpha"' in err["detail"], err
        assert d.operation(op["operation"]).json()["error"] == err
        assert d.cell("alpha")["state"] == "failed"
        # wardenctl exits 1 and says why
        p = subprocess.run([WARDENCTL, "--socket", d.sock, "cell", "restart", "alpha", "--wait", "30"],
                           capture_output=True, timeout=60)
        assert p.returncode == 1 and b"alpha" in p.stderr, p


@test
def parked_requests_get_their_operation_at_shutdown():
    require_kvm()
    spec = cell_spec("hung", image="faulty.bin", autostart=True, allow_inject=True, timeout=50,
                     recovery={"on_stuck": "none", "shutdown_timeout_ms": 30000})
    with Daemon({"cells": [spec]}) as d:
        d.wait_state("hung", "running", 20)
        assert d.post("/cells/hung/inject", body={"fault": "hang"}).status == 202
        d.wait_state("hung", "failed", 20)
        res = []
        t = threading.Thread(target=lambda: res.append(d.post("/cells/hung/shutdown?wait=120")))
        t.start()
        poll(lambda: any(o["kind"] == "shutdown" for o in d.get("/operations").json()), 10, "the shutdown operation")
        d.proc.terminate()
        assert d.proc.wait(20) == 0
        t.join(20)
        assert res, "the parked request got no answer"
        # the operation as it stands: still running, so 202
        r = res[0]
        assert r.status == 202 and r.ctype == "application/json", r
        op = r.json()
        assert op["kind"] == "shutdown" and op["cell"] == "hung" and op["phase"] == "running", op


@test
def startup_log_is_clean():
    """Every non-TLS listener makes libmicrohttpd print "MHD HTTPS option 9
    passed to MHD but MHD_USE_TLS not set." (twice) straight to stderr:
    http_listen_fd() passes MHD_OPTION_HTTPS_MEM_CERT/KEY (NULL) to plain
    listeners. Outside the daemon's log format and the journal's fields."""
    with Daemon({"cells": []}) as d:
        text = d.log()
        assert "MHD HTTPS option" not in text, text


# --- lifecycle (KVM) ---------------------------------------------------------------


@test
def lifecycle_with_an_uploaded_image():
    require_kvm()
    with Daemon({"cells": []}) as d:
        r = d.post("/cells", body=uploaded_spec("app"))
        assert r.status == 201, r
        problem(d.post("/cells/app/start"), 409, '"app.bin"', "not uploaded")
        assert d.upload("app", "app.bin", read(HEARTBEAT)).status == 201
        r = d.post("/cells/app/start?wait=30")
        assert r.status == 200, r
        op = r.json()
        assert op["kind"] == "start" and op["phase"] == "succeeded" and op["error"] is None, op
        assert op["timings_ms"]["boot"] >= 0 and op["timings_ms"]["total"] >= op["timings_ms"]["boot"], op
        assert r.headers.get("Location") == "/operations/" + op["operation"], r.headers
        c = beats(d, "app")
        assert c["state"] == "running" and c["hypervisor"]["pid"] in d.runner_pids(), c
        # start a running cell: 409
        problem(d.post("/cells/app/start"), 409, '"app"', "already running")
        # the running image cannot go away
        problem(d.request("DELETE", "/cells/app/images/app.bin"), 409, "app.bin")
        # console
        r = d.get("/cells/app/console?bytes=100")
        assert r.status == 200 and r.ctype.startswith("text/plain") and 0 < len(r.body) <= 100, r
        # stop: an operation, then 409 on a second stop
        r = d.post("/cells/app/stop")
        assert r.status == 202 and r.json()["kind"] == "stop", r
        loc = r.headers.get("Location")
        assert loc == "/operations/" + r.json()["operation"], r.headers
        op = d.wait_operation(r.json()["operation"])
        assert op["phase"] == "succeeded" and "stop" in op["timings_ms"], op
        assert d.cell("app")["state"] == "stopped"
        problem(d.post("/cells/app/stop"), 409, "already stopped")
        # the runner process may outlive the "stopped" state by a moment
        poll(lambda: not d.runner_pids(), 10, "no runner after the stop")
        # inject: not allowed on this cell (403), not running (409 for one that allows)
        problem(d.post("/cells/app/inject", body={"fault": "panic"}), 403, "allow_inject")


@test
def replace_spec_while_running_takes_effect_at_restart():
    require_kvm()
    with Daemon({"cells": [cell_spec("alpha", autostart=True, period=10)]}) as d:
        d.wait_state("alpha", "running", 20)
        assert runner_arg(d, "alpha", "--period-ms") == "10"
        assert runner_arg(d, "alpha", "--args") is None
        pid = d.cell("alpha")["hypervisor"]["pid"]
        s = cell_spec("alpha", autostart=True, period=40, args="mode=two")
        r = d.put("/cells/alpha", body=s, headers={"If-Match": '"1"'})
        assert r.status == 200 and r.headers.get("ETag") == '"2"', r
        c = r.json()
        assert c["revision"] == 2 and c["spec_pending"] is True and c["state"] == "running", c
        assert c["spec"]["health"]["period_ms"] == 40 and c["spec"]["args"] == "mode=two", c["spec"]
        # the running cell is untouched
        c = beats(d, "alpha")
        assert c["hypervisor"]["pid"] == pid and c["spec_pending"] is True, c
        assert runner_arg(d, "alpha", "--period-ms") == "10"
        # the next restart takes it
        r = d.post("/cells/alpha/restart?wait=30")
        assert r.status == 200 and r.json()["phase"] == "succeeded", r
        c = beats(d, "alpha")
        assert c["spec_pending"] is False and c["revision"] == 2, c
        assert runner_arg(d, "alpha", "--period-ms") == "40"
        assert runner_arg(d, "alpha", "--args") == "mode=two"


@test
def replace_spec_with_apply_restart():
    require_kvm()
    with Daemon({"cells": [cell_spec("alpha", autostart=True, period=10),
                           cell_spec("beta", 1, autostart=False)]}) as d:
        d.wait_state("alpha", "running", 20)
        s = cell_spec("alpha", autostart=True, period=30)
        r = d.put("/cells/alpha?apply=restart", body=s, headers={"If-Match": '"1"', "Idempotency-Key": "apply-1"})
        assert r.status == 202, r
        op = r.json()
        assert op["kind"] == "apply" and op["cell"] == "alpha", op
        assert r.headers.get("Location") == "/operations/" + op["operation"], r.headers
        assert r.headers.get("ETag") == '"2"', r.headers
        op = d.wait_operation(op["operation"])
        assert op["phase"] == "succeeded" and op["error"] is None, op
        c = beats(d, "alpha")
        assert c["revision"] == 2 and c["spec_pending"] is False, c
        assert runner_arg(d, "alpha", "--period-ms") == "30"
        # replayed: the operation, not a second restart
        boots = c["hypervisor"]["boots"]
        pid = c["hypervisor"]["pid"]
        r2 = d.put("/cells/alpha?apply=restart", body=s, headers={"If-Match": '"1"', "Idempotency-Key": "apply-1"})
        assert r2.status == 202 and r2.headers.get("Idempotent-Replayed") == "true", r2
        assert r2.json()["operation"] == op["operation"] and r2.json()["phase"] == "succeeded", r2
        c = d.cell("alpha")
        assert c["revision"] == 2 and c["hypervisor"]["pid"] == pid and c["hypervisor"]["boots"] == boots, c
        # ?wait= on the same route
        s["health"]["period_ms"] = 20
        r = d.put("/cells/alpha?apply=restart&wait=30", body=s)
        assert r.status == 200 and r.json()["phase"] == "succeeded", r
        assert runner_arg(d, "alpha", "--period-ms") == "20"
        # apply on a stopped cell: stored, nothing to restart, a plain 200
        r = d.put("/cells/beta?apply=restart", body=cell_spec("beta", 1, period=20))
        assert r.status == 200 and r.json()["revision"] == 2 and r.json()["state"] == "stopped", r


@test
def delete_a_running_cell():
    require_kvm()
    with Daemon({"cells": [uploaded_spec("alpha", autostart=False)]}) as d:
        assert d.upload("alpha", "app.bin", read(HEARTBEAT)).status == 201
        assert d.post("/cells/alpha/start?wait=30").json()["phase"] == "succeeded"
        pid = d.cell("alpha")["hypervisor"]["pid"]
        cdir = os.path.join(d.state_dir, "cells", "alpha")
        assert os.path.exists(os.path.join(cdir, "spec.json")) and os.path.exists(os.path.join(cdir, "images"))
        r = d.request("DELETE", "/cells/alpha", headers={"Idempotency-Key": "del-alpha"})
        assert r.status == 202, r
        op = r.json()
        assert op["kind"] == "delete" and r.headers.get("Location") == "/operations/" + op["operation"], r
        op = d.wait_operation(op["operation"])
        assert op["phase"] == "succeeded", op
        problem(d.get("/cells/alpha"), 404)
        problem(d.get("/cells/alpha/images"), 404)
        assert "alpha" not in [c["name"] for c in d.get("/cells").json()]
        assert not os.path.exists(cdir), os.listdir(cdir)
        poll(lambda: not os.path.exists("/proc/%d" % pid) or "Z" in read("/proc/%d/stat" % pid).decode().split()[2],
             10, "the runner gone")
        # replay: the stored answer, still the same operation
        r2 = d.request("DELETE", "/cells/alpha", headers={"Idempotency-Key": "del-alpha"})
        assert r2.status == 202 and r2.headers.get("Idempotent-Replayed") == "true", r2
        # a daemon restart does not bring it back
        d.restart()
        problem(d.get("/cells/alpha"), 404)
        # the name is free again
        assert d.post("/cells", body=uploaded_spec("alpha")).status == 201
        assert d.get("/cells/alpha/images").json() == []


# --- operations ------------------------------------------------------------------


@test
def operations_wait_and_list():
    require_kvm()
    spec = cell_spec("hung", image="faulty.bin", autostart=True, allow_inject=True, timeout=50,
                     recovery={"on_stuck": "none", "shutdown_timeout_ms": 4000})
    with Daemon({"cells": [spec, cell_spec("quick", 1, autostart=True)]}) as d:
        d.wait_state("hung", "running", 20)
        d.wait_state("quick", "running", 20)
        # a quick one: 200 and finished, well before the wait is over
        r = d.post("/cells/quick/restart?wait=60")
        assert r.status == 200 and r.json()["phase"] == "succeeded", r
        quick = r.json()["operation"]
        r = d.operation(quick, wait=60)
        assert r.status == 200 and r.json()["phase"] == "succeeded", r
        r = d.operation(quick)
        assert r.status == 200 and r.json()["operation"] == quick, r
        # a slow one: the hung cell does not answer the shutdown request
        assert d.post("/cells/hung/inject", body={"fault": "hang"}).status == 202
        d.wait_state("hung", "failed", 20)
        t0 = time.monotonic()
        r = d.post("/cells/hung/shutdown?wait=1")
        waited = time.monotonic() - t0
        assert r.status == 202, r
        op = r.json()
        assert op["phase"] == "running" and op["kind"] == "shutdown" and op["cell"] == "hung", op
        assert waited >= 0.9, waited
        r = d.operation(op["operation"], wait=0.5)
        assert r.status == 202 and r.json()["phase"] == "running", r
        # without ?wait: 200 whatever the phase
        r = d.operation(op["operation"])
        assert r.status == 200 and r.json()["phase"] == "running", r
        # the list, newest first
        ops = d.get("/operations").json()
        ids = [o["operation"] for o in ops]
        assert op["operation"] in ids and quick in ids and ids.index(op["operation"]) < ids.index(quick), ids
        # the deadline destroys it: the operation ends (stopped is what it wanted)
        done = d.wait_operation(op["operation"], 30)
        assert done["phase"] in ("succeeded", "failed") and "total" in done["timings_ms"], done
        assert d.cell("hung")["state"] == "stopped"
        assert done["phase"] == "succeeded", done


@test
def hypervisor_enable_disable_restart():
    require_kvm()
    cfg = {"cells": [cell_spec("auto", 0, autostart=True), cell_spec("manual", 1, autostart=False)]}
    d = Daemon(cfg)
    try:
        d.start()
        h = d.get("/hypervisor").json()
        assert h["state"] == "enabled" and h["cells"] == ["auto", "manual"], h
        assert {"kind": "kvm", "available": True} in h["backends"], h
        d.wait_state("auto", "running", 20)
        assert d.post("/cells/manual/start?wait=30").json()["phase"] == "succeeded"
        # disable: every cell stops
        r = d.post("/hypervisor/disable")
        assert r.status == 202 and r.json()["kind"] == "hypervisor-disable", r
        assert r.headers.get("Location") == "/operations/" + r.json()["operation"]
        op = d.wait_operation(r.json()["operation"])
        assert op["phase"] == "succeeded" and sorted(op["cells"]) == ["auto", "manual"], op
        assert [c["state"] for c in d.get("/cells").json()] == ["stopped", "stopped"]
        assert d.get("/hypervisor").json()["state"] == "disabled"
        poll(lambda: not d.runner_pids(), 10, "no runners")
        problem(d.post("/cells/auto/start"), 409, "disabled")
        problem(d.post("/cells/manual/restart"), 409, "disabled")
        # survives a daemon restart; autostart does not apply while disabled
        d.restart()
        assert d.get("/hypervisor").json()["state"] == "disabled"
        time.sleep(0.5)  # not an assertion on timing: give autostart a chance to (wrongly) happen
        assert d.cell("auto")["state"] == "stopped" and not d.runner_pids()
        problem(d.post("/cells/auto/start"), 409, "disabled")
        # enable: autostart cells come back, the others stay stopped
        r = d.post("/hypervisor/enable?wait=60")
        assert r.status == 200, r
        op = r.json()
        assert op["kind"] == "hypervisor-enable" and op["phase"] == "succeeded" and op["cells"] == ["auto"], op
        assert d.cell("auto")["state"] == "running" and d.cell("manual")["state"] == "stopped"
        assert d.get("/hypervisor").json()["state"] == "enabled"
        beats(d, "auto")
        # restart: autostart cells again, on new runners
        pid = d.cell("auto")["hypervisor"]["pid"]
        r = d.post("/hypervisor/restart?wait=60")
        assert r.status == 200 and r.json()["kind"] == "hypervisor-restart" and r.json()["phase"] == "succeeded", r
        c = beats(d, "auto")
        assert c["hypervisor"]["pid"] != pid, c["hypervisor"]
        assert d.cell("manual")["state"] == "stopped"
        problem(d.request("GET", "/hypervisor/enable"), 405)
        # enabled survives a restart too, and the cell is adopted
        pid = c["hypervisor"]["pid"]
        d.restart()
        assert d.get("/hypervisor").json()["state"] == "enabled"
        assert d.wait_state("auto", "running", 20)["hypervisor"]["pid"] == pid
    finally:
        d.cleanup()


# --- events ----------------------------------------------------------------------


@test
def events_stream_and_resume():
    require_kvm()
    with Daemon({"cells": []}) as d:
        with EventStream(d, tcp=True, token=d.monitor_token) as es:
            assert es.status == 200 and es.headers.get("Content-Type", "").startswith("text/event-stream"), es.headers
            assert d.post("/cells", body=uploaded_spec("app")).status == 201
            assert d.upload("app", "app.bin", read(HEARTBEAT)).status == 201
            r = d.post("/cells/app/start")
            assert r.status == 202
            op_id = r.json()["operation"]
            s = uploaded_spec("app", period=20)
            assert d.put("/cells/app", body=s).status == 200
            # every event says when it happened; the rest is compared exactly
            def when_and_rest(e):
                rest = dict(e["data"])
                at = rest.pop("at")
                assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", at), at
                return rest
            es.wait_for(lambda e: e["event"] == "spec" and when_and_rest(e) == {"cell": "app", "change": "created",
                                                                                "revision": 1}, 10, "spec created")
            img = when_and_rest(es.wait_for(lambda e: e["event"] == "image", 10, "image event"))
            assert img == {"cell": "app", "name": "app.bin", "size": os.path.getsize(HEARTBEAT),
                           "sha256": hashlib.sha256(read(HEARTBEAT)).hexdigest(), "change": "uploaded"}, img
            es.wait_for(lambda e: e["event"] == "state" and e["data"]["cell"] == "app" and
                        e["data"]["state"] == "running", 20, "state running")
            fin = es.wait_for(lambda e: e["event"] == "operation" and e["data"]["operation"] == op_id and
                              e["data"]["phase"] == "succeeded", 20, "the operation succeeded")
            es.wait_for(lambda e: e["event"] == "operation" and e["data"]["operation"] == op_id and
                        e["data"]["phase"] == "running", 1, "the operation running")
            es.wait_for(lambda e: e["event"] == "spec" and e["data"]["change"] == "replaced" and
                        e["data"]["revision"] == 2, 10, "spec replaced")
            ids = [e["id"] for e in es.events]
            assert all(isinstance(i, int) for i in ids) and ids == sorted(set(ids)), ids
            mid = fin["id"]
        # resume after the operation event: only newer ones
        assert d.request("DELETE", "/cells/app/images/app.bin").status == 409
        assert d.request("DELETE", "/cells/app?wait=20").status == 200
        with EventStream(d, last_id=mid) as es2:
            es2.wait_for(lambda e: e["event"] == "spec" and e["data"]["change"] == "deleted", 10, "spec deleted")
            assert es2.events and min(e["id"] for e in es2.events) > mid, es2.events
            assert [e["id"] for e in es2.events if e["id"] <= max(ids)] == [i for i in ids if i > mid]
        # ?since= works the same
        with EventStream(d, query="?since=%d" % mid) as es3:
            es3.wait_for(lambda e: e["event"] == "spec" and e["data"]["change"] == "deleted", 10, "spec deleted")
            assert min(e["id"] for e in es3.events) > mid
        # from the start: everything held, in order
        with EventStream(d, query="?since=0") as es4:
            es4.wait_for(lambda e: e["event"] == "spec" and e["data"]["change"] == "deleted", 10, "spec deleted")
            assert [e["id"] for e in es4.events][:len(ids)] == ids
        last = es4.events[-1]["id"]
        # ids keep growing across a daemon restart
        d.restart()
        assert d.post("/cells", body=uploaded_spec("app2")).status == 201
        with EventStream(d, last_id=last) as es5:
            ev = es5.wait_for(lambda e: e["event"] == "spec" and e["data"]["cell"] == "app2", 10, "spec after restart")
            assert ev["id"] > last, (ev, last)
        # no token: 401
        es6 = EventStream(d, tcp=True, token=None)
        assert es6.status == 401, es6.status


# --- transport -------------------------------------------------------------------


@test
def unix_socket_mode_and_group():
    import grp
    try:
        group = grp.getgrnam("adm")
    except KeyError:
        subprocess.run(["groupadd", "-f", "warden-test"], check=True)
        group = grp.getgrnam("warden-test")
    with Daemon({"cells": [], "api": {"socket_mode": "0660", "socket_group": group.gr_name}}, tcp=False) as d:
        st = os.stat(d.sock)
        assert st.st_mode & 0o7777 == 0o660, oct(st.st_mode)
        assert st.st_gid == group.gr_gid, (st.st_gid, group)
    with Daemon({"cells": [], "api": {"socket_mode": "0600"}}, tcp=False) as d:
        st = os.stat(d.sock)
        assert st.st_mode & 0o7777 == 0o600, oct(st.st_mode)
    # the default is 0660, the group the daemon's
    with Daemon({"cells": []}, tcp=False) as d:
        st = os.stat(d.sock)
        assert st.st_mode & 0o7777 == 0o660, oct(st.st_mode)
        assert st.st_gid == os.getgid()
    # a group that does not exist: a clear refusal to start
    d = Daemon({"cells": [], "api": {"socket_group": "no-such-group-xyz"}}, tcp=False)
    try:
        d.start(wait=False)
        assert d.proc.wait(timeout=10) != 0
        assert "no-such-group-xyz" in d.log(), d.log()
    finally:
        d.cleanup()


def make_cert(tmp):
    openssl = shutil.which("openssl")
    assert openssl, "the openssl command is required (Debian package openssl)"
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@test
def tls_listener():
    tmp = tempfile.mkdtemp()
    try:
        cert, key = make_cert(tmp)
        with Daemon({"cells": [cell_spec("alpha")], "api": {"tls": {"cert": cert, "key": key}}}) as d:
            assert any(l.startswith("tls:127.0.0.1:") for l in d.get("/health").json()["listeners"]), \
                d.get("/health").json()
            r = d.get("/cells", tcp=True)
            assert r.status == 200 and r.json()[0]["name"] == "alpha", r
            problem(d.get("/cells", tcp=True, token=None), 401)
            problem(d.post("/cells/alpha/stop", tcp=True, token=d.monitor_token), 403)
            r = d.post("/cells", body=cell_spec("beta", 1), tcp=True)
            assert r.status == 201, r
            # plain HTTP to the TLS port gets no HTTP answer
            c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
            try:
                c.request("GET", "/health", headers=d.auth_headers())
                resp = c.getresponse()
                got = resp.status
            except (http.client.HTTPException, OSError) as e:
                got = e
            finally:
                c.close()
            assert not isinstance(got, int), got
            # a client that does not trust the certificate refuses it
            c = http.client.HTTPSConnection("127.0.0.1", d.port, timeout=10, context=ssl.create_default_context())
            try:
                c.request("GET", "/health")
                raise AssertionError("an untrusted certificate was accepted")
            except ssl.SSLError:
                pass
            finally:
                c.close()
            # wardenctl with --cacert
            tf = d.token_file()
            p = subprocess.run([WARDENCTL, "--url", d.url, "--cacert", cert, "--token-file", tf, "--json", "cells"],
                               capture_output=True, timeout=60)
            assert p.returncode == 0 and [c["name"] for c in json.loads(p.stdout)] == ["alpha", "beta"], p
            p = subprocess.run([WARDENCTL, "--url", d.url, "--token-file", tf, "--timeout", "5", "cells"],
                               capture_output=True, timeout=60)
            assert p.returncode == 3, p
            assert d.proc.poll() is None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def audit_log_names_principal_and_outcome():
    with Daemon({"cells": [cell_spec("alpha")]}) as d:
        assert d.post("/cells", body=cell_spec("beta", 1), tcp=True).status == 201
        assert d.put("/cells/beta", body=cell_spec("beta", 1)).status == 200
        problem(d.post("/cells/beta/stop", tcp=True), 409)
        problem(d.post("/cells/beta/stop", tcp=True, token=d.monitor_token), 403)
        problem(d.post("/cells/beta/stop", tcp=True, token=None), 401)
        problem(d.put("/cells/beta", body=cell_spec("beta", 1), headers={"If-Match": '"1"'}, tcp=True), 412)
        assert d.request("DELETE", "/cells/beta", tcp=True).status == 202
        # reads are not audited
        d.get("/cells", tcp=True)

        def lines():
            return [l for l in d.log().splitlines() if " API " in l]

        want = [("POST /cells by ops (tcp): 201",),
                ("PUT /cells/beta by unix:uid=%d (unix socket): 200" % os.getuid(),),
                ("POST /cells/beta/stop by ops (tcp): 409",),
                ("POST /cells/beta/stop by mon (tcp): 403",),
                ("POST /cells/beta/stop by anonymous (tcp): 401",),
                ("PUT /cells/beta by ops (tcp): 412",),
                ("DELETE /cells/beta by ops (tcp): 202",)]
        got = poll(lambda: len(lines()) >= len(want) and lines(), 10, "audit lines")
        for (w,) in want:
            assert any(w in l for l in got), (w, got)
        assert not any("GET /cells" in l for l in got), got
        # the principal is never the token
        assert d.operator_token not in d.log() and d.monitor_token not in d.log()


if __name__ == "__main__":
    run_tests()
