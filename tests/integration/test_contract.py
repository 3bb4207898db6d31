# SPDX-License-Identifier: MIT
"""api/openapi.yaml against a running wardend.

1. The document itself: OpenAPI 3.1 (swagger-parser), every schema compiled
   by Ajv in strict mode, and warden's house rules (validate-openapi.mjs lint).
2. Route agreement, from the server, not from a copy of its route table: for
   every path template of the document, instantiated with real resources
   (NAME an existing cell, FILE an uploaded image, ID a real operation),
   every documented method gets an answer other than 404/405, and every other
   method gets 405 with an Allow header naming exactly the documented methods
   (HEAD implied by GET). Plausible paths the document lacks get 404. Both
   directions together mean the server serves exactly the documented routes.
3. Responses: real exchanges for every route, successes and the errors that
   can be provoked here, each validated against the schema, media type and
   headers the document gives for that route and status (Ajv, draft 2020-12).

The npm tools (package.json, package-lock.json beside this file) are
installed into BUILD/npm on first use. Without npm the test fails, unless
WARDEN_OFFLINE=1, where it is skipped. WARDEN_CONTRACT_DUMP=FILE keeps every
exchange with its verdict as JSON.
"""
import base64
import hashlib
import http.client
import inspect
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import (BUILD, DEMOS, Daemon, UnixHTTPConnection, demo_cell, kvm_available, run_tests,  # noqa: E402
                     test)

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = os.path.normpath(os.path.join(HERE, "..", "..", "api", "openapi.yaml"))
SCRIPT = os.path.join(HERE, "validate-openapi.mjs")
NPM_DIR = os.path.join(os.path.abspath(BUILD), "npm")
OFFLINE = os.environ.get("WARDEN_OFFLINE") == "1"

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]
JSON_HDR = {"Content-Type": "application/json"}
BODY_LIMIT = 65536
WAIT = 10          # ?wait= in requests; a held reply must come within WAIT + SLACK
SLACK = 10


# --- npm tools ----------------------------------------------------------------

class NpmUnavailable(Exception):
    pass


def npm_installed():
    try:
        with open(os.path.join(NPM_DIR, "package-lock.json"), "rb") as a, \
                open(os.path.join(HERE, "package-lock.json"), "rb") as b:
            same = a.read() == b.read()
    except OSError:
        return False
    return same and os.path.exists(os.path.join(NPM_DIR, "node_modules", ".package-lock.json"))


def ensure_npm():
    """Installs the pinned tools into BUILD/npm unless they are there."""
    if not shutil.which("node"):
        raise NpmUnavailable("node is not installed (Debian: nodejs)")
    if npm_installed():
        return
    if OFFLINE:
        raise NpmUnavailable("WARDEN_OFFLINE=1 and the npm tools are not installed in " + NPM_DIR)
    npm = shutil.which("npm")
    if not npm:
        raise NpmUnavailable("npm is not installed (Debian: npm)")
    os.makedirs(NPM_DIR, exist_ok=True)
    for f in ("package.json", "package-lock.json"):
        shutil.copyfile(os.path.join(HERE, f), os.path.join(NPM_DIR, f))
    try:
        p = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
                           cwd=NPM_DIR, capture_output=True, timeout=300)
    except subprocess.TimeoutExpired:
        raise NpmUnavailable("npm ci in %s took more than 300 s" % NPM_DIR)
    if p.returncode != 0:
        # a half-installed tree must not pass for installed next time
        try:
            os.unlink(os.path.join(NPM_DIR, "package-lock.json"))
        except OSError:
            pass
        raise NpmUnavailable("npm ci in %s failed (%d):\n%s" % (NPM_DIR, p.returncode,
                                                               (p.stdout + p.stderr).decode(errors="replace")[-3000:]))


def node(*args, check=True):
    env = dict(os.environ, WARDEN_NPM_DIR=NPM_DIR)
    p = subprocess.run(["node", SCRIPT] + list(args), capture_output=True, env=env, timeout=300)
    if check and p.returncode not in (0, 1):
        raise AssertionError("validate-openapi.mjs %s failed (%d):\n%s" % (
            args[0], p.returncode, (p.stdout + p.stderr).decode(errors="replace")[-4000:]))
    return p


# --- HTTP -------------------------------------------------------------------

class Reply:
    def __init__(self, status, headers, body, transport=None):
        self.status = status  # 0: no answer; `transport` says why
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body
        self.transport = transport

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def __repr__(self):
        return "<%s %s %r>" % (self.status, self.header("content-type"), self.body[:300])


def _connect(d, tcp, timeout):
    if tcp:
        return http.client.HTTPConnection("127.0.0.1", d.port, timeout=timeout)
    return UnixHTTPConnection(d.sock, timeout=timeout)


def call(d, method, url, body=None, headers=None, tcp=False, timeout=WAIT + SLACK):
    """One request; a reply that does not come (in time) is status 0."""
    hdrs = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        hdrs.setdefault("Content-Type", "application/json")
    conn = _connect(d, tcp, timeout)
    try:
        try:
            conn.request(method, url, body=body, headers=hdrs)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered (413) and closed before the whole body was sent: read the answer
        r = conn.getresponse()
        return Reply(r.status, dict(r.getheaders()), r.read().decode(errors="replace"))
    except (socket.timeout, TimeoutError):
        return Reply(0, {}, "", "no answer within %d s" % timeout)
    except (http.client.HTTPException, OSError) as e:
        return Reply(0, {}, "", "%s: %s" % (type(e).__name__, e))
    finally:
        conn.close()


def call_stream(d, url, headers=None, seconds=1.5, tcp=False):
    """GET of a stream (server-sent events): what arrives within `seconds`."""
    conn = _connect(d, tcp, 10)
    chunks = []
    try:
        conn.request("GET", url, headers=dict(headers or {}))
        sock = conn.sock  # http.client forgets it when the reply says Connection: close
        try:
            r = conn.getresponse()
        except (socket.timeout, TimeoutError):
            return Reply(0, {}, "", "no response head within 10 s")
        sock.settimeout(0.3)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                b = r.read1(65536)
            except (socket.timeout, TimeoutError):
                continue
            except (http.client.HTTPException, OSError):
                break
            if not b:
                break
            chunks.append(b)
        return Reply(r.status, dict(r.getheaders()), b"".join(chunks).decode(errors="replace"))
    finally:
        conn.close()


def call_raw(d, data, timeout=10):
    """Raw bytes to the Unix socket (malformed paths, announced huge bodies)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    chunks = []
    try:
        s.connect(d.sock)
        s.sendall(data)
        while True:
            try:
                b = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not b:
                break
            chunks.append(b)
    finally:
        s.close()
    head, _, body = b"".join(chunks).decode(errors="replace").partition("\r\n\r\n")
    lines = head.split("\r\n")
    if not lines or len(lines[0].split()) < 2:
        return Reply(0, {}, "")
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip()] = v.strip()
    return Reply(int(lines[0].split()[1]), headers, body)


def digest(data):
    return "sha-256=:%s:" % base64.b64encode(hashlib.sha256(data).digest()).decode()


# --- the daemons --------------------------------------------------------------

def spec(name, image="heartbeat.bin", slot=0, **extra):
    """A spec whose partition addresses do not collide with other slots."""
    s = demo_cell(name, image, cpu=1, phys=0x40000000 + slot * 0x400000, comm_phys=0x7f000000 + slot * 0x1000,
                  autostart=False, **extra)
    return s


def config(extra=None):
    cfg = {
        "root_cpus": [0],
        "limits": {"max_body_bytes": BODY_LIMIT},
        "cells": [spec("alpha", slot=0), spec("beta", "faulty.bin", slot=1, allow_inject=True),
                  spec("victim", slot=2)],
    }
    cfg.update(extra or {})
    return cfg


_daemons = {}


_failed = {}


def daemon(key, **kw):
    """A daemon started once and shared by the tests that name `key`."""
    if key in _failed:
        raise AssertionError("wardend (%s) did not start, see above: %s" % (key, _failed[key]))
    if key not in _daemons:
        if "tokens" in inspect.signature(Daemon).parameters:
            kw.setdefault("tokens", False)  # this test writes its own tokens file where it wants one
        d = Daemon(kw.pop("cfg", None) or config(), tcp=kw.pop("tcp", False), **kw)
        _daemons[key] = d
        try:
            d.start()
        except AssertionError as e:
            _failed[key] = str(e).splitlines()[0]
            raise
    return _daemons[key]


def cleanup():
    for d in _daemons.values():
        d.cleanup()


# --- recordings -------------------------------------------------------------

RECORDINGS = []  # what the validator gets
VERDICTS = {}    # index -> verdict


def record(method, route, url, reply, expect=None, checks=(), label=None, source="scenario"):
    """Keeps an exchange for validation. `expect`: the statuses the scenario
    allows (None: any; {"not": (...)}: any other); `checks`: functions of the
    reply returning an error string or None."""
    problems = []
    if reply.status == 0:
        problems.append("no HTTP answer: %s" % reply.transport)
    elif isinstance(expect, dict):
        if reply.status in expect["not"]:
            problems.append("status %s, expected anything but %s" % (reply.status, ", ".join(map(str, expect["not"]))))
    elif expect is not None:
        allowed = {expect} if isinstance(expect, int) else set(expect)
        if reply.status not in allowed:
            problems.append("status %s, expected %s" % (reply.status, " or ".join(map(str, sorted(allowed)))))
    for c in checks:
        try:
            e = c(reply)
        except Exception as ex:  # a check must not break the run
            e = "check %s raised %r" % (getattr(c, "__name__", "?"), ex)
        if e:
            problems.append(e)
    RECORDINGS.append({
        "label": label or "%s %s" % (method, url),
        "source": source,
        "method": method,
        "route": route,
        "url": url,
        "status": reply.status,
        "transport": reply.transport,
        "headers": reply.headers,
        "body": reply.body,
        "problems": problems,
    })
    return reply


def op_id(reply):
    j = reply.json()
    if isinstance(j, dict) and isinstance(j.get("operation"), str):
        return j["operation"]
    return None


# checks
def has_header(name, value=None):
    def check(r):
        v = r.header(name)
        if v is None:
            return "no %s header" % name
        if value is not None and v != value:
            return "%s is %r, not %r" % (name, v, value)
        return None
    check.__name__ = "header_" + name
    return check


def etag_is_revision(r):
    j = r.json()
    if r.status != 200 or not isinstance(j, dict) or "name" not in j:
        return None
    if "revision" not in j:
        return "the cell has no revision"
    if r.header("ETag") != '"%s"' % j["revision"]:
        return "ETag %r does not match revision %r" % (r.header("ETag"), j["revision"])
    return None


def phase_matches_status(r):
    """With ?wait the status says whether the operation finished."""
    j = r.json()
    if r.status == 202 and isinstance(j, dict) and j.get("phase") not in (None, "running"):
        return "202 after ?wait for an operation that is %s (finished: 200)" % j.get("phase")
    return None


def location_is_operation(r):
    i = op_id(r)
    if r.status in (200, 202) and i and r.header("Location") != "/operations/" + i:
        return "Location %r is not /operations/%s" % (r.header("Location"), i)
    return None


def detail_mentions(*words):
    def check(r):
        j = r.json()
        j = j if isinstance(j, dict) else {}
        missing = [w for w in words if w not in str(j.get("detail", ""))]
        return "detail %r does not name %s" % (j.get("detail"), ", ".join(missing)) if missing else None
    check.__name__ = "detail_mentions"
    return check


def empty_body(r):
    return "HEAD answered with a body" if r.body else None


# --- 1. the document ----------------------------------------------------------

ROUTES = []  # [{"path", "methods", "params"}] from the document


def t_npm_tools():
    ensure_npm()
    p = subprocess.run(["node", "--version"], capture_output=True)
    print("# node %s, tools in %s" % (p.stdout.decode().strip(), NPM_DIR))


def t_document_lints():
    p = node("lint", SPEC)
    out = json.loads(p.stdout or b"{}")
    errors = out.get("errors") or [p.stderr.decode(errors="replace")]
    assert out.get("ok") and p.returncode == 0, "api/openapi.yaml:\n" + "\n".join(errors)


# --- 2. route agreement -------------------------------------------------------

OPS = {}  # daemon dir -> operation ids it returned


def known_op(d):
    if OPS.get(d.dir):
        return OPS[d.dir][-1]
    r = call(d, "GET", "/operations")
    j = r.json()
    if r.status == 200 and isinstance(j, list) and j and isinstance(j[0], dict) and j[0].get("operation"):
        return j[0]["operation"]
    return None


def instantiate(template, d, method):
    """A concrete URL for `template`, and a note on how it was made."""
    note = []
    url = template
    if "{name}" in url:
        name = "victim" if (method == "DELETE" and template == "/cells/{name}") else "alpha"
        if template == "/cells/{name}/inject":
            name = "beta"
        url = url.replace("{name}", name)
    if "{file}" in url:
        url = url.replace("{file}", "probe.bin")
    if "{id}" in url:
        i = known_op(d)
        if not i:
            note.append("no operation id could be obtained from the server (no operation was ever returned)")
            i = "op-0-0"
        url = url.replace("{id}", i)
    if "{" in url:
        note.append("the test does not know how to fill the parameters of " + template)
        url = url.replace("{", "").replace("}", "")
    return url, note


def probe_documented(d, template, method, url):
    """A valid request for (method, template)."""
    if method == "HEAD":
        return call(d, "HEAD", url)
    if method == "GET" and template == "/events":
        return call_stream(d, url, headers={"Last-Event-ID": "0"}, seconds=0.5)
    if method == "POST" and template == "/cells":
        return call(d, "POST", url, body=spec("zeta", slot=4))
    if method == "PUT" and template == "/cells/{name}":
        s = spec("alpha", slot=0)
        del s["name"]
        return call(d, "PUT", url, body=s)
    if method == "PUT" and template == "/cells/{name}/images/{file}":
        data = b"probe image\n"
        return call(d, "PUT", url, body=data, headers={"Content-Type": "application/octet-stream",
                                                      "Content-Digest": digest(data)})
    if method == "POST" and template == "/cells/{name}/inject":
        return call(d, "POST", url, body={"fault": "panic"})
    if method in ("POST", "DELETE") and template.startswith(("/hypervisor/", "/cells/{name}")):
        r = call(d, method, url + "?wait=%d" % WAIT)
        if op_id(r):
            OPS.setdefault(d.dir, []).append(op_id(r))
        if template == "/hypervisor/disable":
            call(d, "POST", "/hypervisor/enable?wait=%d" % WAIT)
        return r
    return call(d, method, url)


def route_test(route):
    template, documented = route["path"], list(route["methods"])
    allowed = set(documented) | ({"HEAD"} if "GET" in documented else set())

    def fn():
        d = daemon("routes")
        errors = []
        # documented methods, DELETE last: it may remove what the others use
        order = sorted(allowed, key=lambda m: (m == "DELETE", ALL_METHODS.index(m)))
        undocumented = [m for m in ALL_METHODS if m not in allowed]
        for m in order:
            if m == "DELETE":
                for u in undocumented:
                    errors += probe_undocumented(d, template, u, allowed)
                undocumented = []
            url, note = instantiate(template, d, m)
            r = probe_documented(d, template, m, url)
            record(m, template, url, r, source="routes")
            if r.status in (404, 405):
                j = r.json()
                errors.append("%s %s (documented) answered %s: %s%s" % (
                    m, url, r.status, j.get("detail") if isinstance(j, dict) else r.body[:120],
                    "".join("; " + n for n in note)))
            elif r.status == 0:
                errors.append("%s %s (documented): %s" % (m, url, r.transport))
        for u in undocumented:
            errors += probe_undocumented(d, template, u, allowed)
        assert not errors, "\n".join(errors)
    fn.__name__ = "route %s: %s answer, other methods 405" % (template, " ".join(documented))
    return fn


def probe_undocumented(d, template, method, allowed):
    url, note = instantiate(template, d, "PATCH")
    r = call(d, method, url, body=b"{}" if method in ("POST", "PUT", "PATCH") else None,
             headers=JSON_HDR if method in ("POST", "PUT", "PATCH") else None)
    record(method, template, url, r, source="routes")
    if r.status != 405:
        return ["%s %s (not documented) answered %s, not 405%s" % (method, url, r.status or r.transport,
                                                                "".join("; " + n for n in note))]
    got = {m.strip().upper() for m in (r.header("Allow") or "").split(",") if m.strip()}
    if got != allowed:
        return ["%s %s: Allow is %r; the document says %s" % (method, url, r.header("Allow"),
                                                             ", ".join(sorted(allowed)))]
    return []


UNDOCUMENTED_PATHS = [
    "/", "/v1/cells", "/api/cells", "/cell", "/images", "/image", "/operation", "/event",
    "/health/x", "/metrics/x", "/events/x", "/hypervisor/foo", "/hypervisor/enable/x", "/hypervisor/cells",
    "/cells/alpha/foo", "/cells/alpha/start/now", "/cells/alpha/console/x", "/cells/alpha/spec",
    "/cells/alpha/events", "/cells/alpha/operations", "/cells/alpha/images/probe.bin/x",
    "/cells/alpha/inject/panic", "/operations/{op}/x", "/operations/{op}/cancel",
    "/openapi.yaml", "/openapi.json",
]


def matches_template(path, template):
    a, b = path.strip("/").split("/"), template.strip("/").split("/")
    return len(a) == len(b) and all(t.startswith("{") or t == s for s, t in zip(a, b))


def t_undocumented_paths_404():
    d = daemon("routes")
    errors = []
    op = known_op(d) or "op-0-0"
    for p in UNDOCUMENTED_PATHS:
        p = p.replace("{op}", op)
        if any(matches_template(p, r["path"]) for r in ROUTES):
            continue  # the document has it now
        for m in ("GET", "POST"):
            r = call(d, m, p, body=b"{}" if m == "POST" else None, headers=JSON_HDR if m == "POST" else None)
            record(m, None, p, r, source="routes")
            if r.status != 404:
                errors.append("%s %s (no such route in the document) answered %s, not 404" % (m, p, r.status))
    assert not errors, "\n".join(errors)


# --- 3. recorded responses ----------------------------------------------------

def t_record_responses():
    """Drives a fresh daemon through every route; contract problems show up
    in the per-route tests, not here."""
    d = daemon("scenario")
    kvm = kvm_available()
    R = record

    def J(method, route, url, body=None, headers=None, **kw):
        r = call(d, method, url, body=body, headers=headers)
        if op_id(r):
            OPS.setdefault(d.dir, []).append(op_id(r))
        return R(method, route, url, r, **kw)

    # system
    J("GET", "/health", "/health", expect=200)
    J("HEAD", "/health", "/health", expect=200, checks=[empty_body])
    J("GET", "/metrics", "/metrics", expect=200)
    J("HEAD", "/metrics", "/metrics", expect=200, checks=[empty_body])
    J("GET", "/hypervisor", "/hypervisor", expect=200)
    J("GET", "/cells", "/cells", expect=200)
    J("GET", "/operations", "/operations", expect=200)

    # creating cells
    gamma = spec("gamma", slot=3)
    first = J("POST", "/cells", "/cells", body=gamma, headers={"Idempotency-Key": "contract-create-1"}, expect=201,
              checks=[has_header("Location", "/cells/gamma"), has_header("ETag", '"1"')])
    created = first.status == 201
    J("POST", "/cells", "/cells", body=gamma, headers={"Idempotency-Key": "contract-create-1"}, expect=201,
      checks=[has_header("Idempotent-Replayed", "true"),
              lambda r: None if r.body == first.body else "the replayed body differs from the first"],
      label="POST /cells replayed with the same Idempotency-Key")
    J("POST", "/cells/{name}/stop", "/cells/alpha/stop", headers={"Idempotency-Key": "contract-create-1"},
      expect=422, label="an Idempotency-Key reused on another path")
    J("POST", "/cells", "/cells", body=gamma, expect=409, checks=[detail_mentions("gamma")],
      label="POST /cells for a cell that exists")
    J("POST", "/cells", "/cells", body=spec("delta", slot=0), expect=409, checks=[detail_mentions("alpha", "delta")],
      label="POST /cells overlapping alpha's memory")
    J("POST", "/cells", "/cells", body='{"name": "eta", ', headers=JSON_HDR, expect=400, label="malformed JSON")
    J("POST", "/cells", "/cells", body=dict(spec("eta", slot=5), colour="blue"), expect=422,
      checks=[detail_mentions("colour")], label="an unknown field")
    J("POST", "/cells", "/cells", body=dict(spec("eta", slot=5), cpus="1"), expect=422,
      checks=[detail_mentions("cpus")],
      label="a field of the wrong type")
    J("POST", "/cells", "/cells", body=json.dumps(spec("eta", slot=5)) + " " * (BODY_LIMIT + 16), headers=JSON_HDR,
      expect=413, label="a body over limits.max_body_bytes")
    missing = spec("eta", slot=5)
    missing["images"] = [{"file": "missing.bin", "address": "0x100000"}]
    J("POST", "/cells", "/cells", body=missing, expect=201, label="a spec naming an image that is not uploaded yet")
    J("GET", "/cells/{name}", "/cells/eta", expect=200,
      checks=[lambda r: None if "missing.bin" in ((r.json() or {}).get("missing_images") or [])
              else "missing.bin is not in missing_images"], label="a cell with an image missing")
    J("POST", "/cells/{name}/start", "/cells/eta/start", expect=409, checks=[detail_mentions("missing.bin")],
      label="start a cell with an image missing")

    # a container cell (docs/containers.md): its spec, a refused rootfs, and
    # running where runc and the demo rootfs are there
    ctr = {"name": "ctr", "backend": "container", "cpus": [1], "args": "/bin/warden-demo", "autostart": False,
           "container": {"rootfs": "rootfs.tar", "memory_limit": 33554432}}
    J("POST", "/cells", "/cells", body=ctr, expect=201, label="POST /cells for a container cell")
    J("GET", "/cells/{name}", "/cells/ctr", expect=200, label="a container cell")
    bad = io.BytesIO()
    with tarfile.open(fileobj=bad, mode="w") as t:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    bad = bad.getvalue()
    J("PUT", "/cells/{name}/images/{file}", "/cells/ctr/images/rootfs.tar", body=bad,
      headers={"Content-Type": "application/octet-stream", "Content-Digest": digest(bad)}, expect=422,
      checks=[detail_mentions("container rootfs", "..")], label="a container rootfs with a .. entry")
    rootfs = os.path.join(BUILD, "driver", "container", "demo-rootfs.tar")
    if os.path.exists(rootfs) and os.access("/usr/sbin/runc", os.X_OK):
        with open(rootfs, "rb") as f:
            good = f.read()
        J("PUT", "/cells/{name}/images/{file}", "/cells/ctr/images/rootfs.tar", body=good,
          headers={"Content-Type": "application/octet-stream", "Content-Digest": digest(good)}, expect=201,
          label="a container rootfs")
        J("POST", "/cells/{name}/start", "/cells/ctr/start?wait=30", expect=200, label="start a container cell")
        J("GET", "/cells/{name}", "/cells/ctr", expect=200,
          checks=[lambda r: None if ((r.json() or {}).get("hypervisor") or {}).get("native_state") == "running"
                  else "no running container"], label="a running container cell")
        J("DELETE", "/cells/{name}", "/cells/ctr", expect=202, label="delete a container cell")

    # reading cells
    J("GET", "/cells/{name}", "/cells/alpha", expect=200, checks=[etag_is_revision])
    J("HEAD", "/cells/{name}", "/cells/alpha", expect=200, checks=[empty_body])
    J("GET", "/cells/{name}", "/cells/nope", expect=404, checks=[detail_mentions("nope")])
    J("GET", "/cells", "/cells", expect=200, label="GET /cells with gamma")

    # replacing a spec
    tgt = "gamma" if created else "alpha"
    tspec = gamma if created else spec("alpha", slot=0)
    cur = J("GET", "/cells/{name}", "/cells/" + tgt, expect=200, checks=[etag_is_revision])
    old_tag = cur.header("ETag") or '"1"'
    new = {k: v for k, v in tspec.items() if k != "name"}
    new["args"] = "replaced=1"
    put = J("PUT", "/cells/{name}", "/cells/" + tgt, body=new, headers={"If-Match": old_tag}, expect=200,
            checks=[etag_is_revision,
                    lambda r: None if r.header("ETag") != old_tag else "the ETag did not change"])
    J("PUT", "/cells/{name}", "/cells/" + tgt, body=new, headers={"If-Match": old_tag}, expect=412,
      label="PUT with a stale If-Match")
    J("PUT", "/cells/{name}", "/cells/" + tgt, body=dict(new, name="other"), expect=422,
      label="PUT whose name is not the cell's")
    bad = json.loads(json.dumps(new))
    bad["memory"][0]["colour"] = "blue"
    J("PUT", "/cells/{name}", "/cells/" + tgt, body=bad, expect=422, checks=[detail_mentions("memory[0]", "colour")],
      label="PUT with an unknown field in a memory region")
    J("PUT", "/cells/{name}", "/cells/" + tgt, body="[", headers=JSON_HDR, expect=400, label="PUT malformed JSON")
    J("PUT", "/cells/{name}", "/cells/%s?apply=bogus" % tgt, body=new, expect=400, label="PUT ?apply=bogus")
    J("PUT", "/cells/{name}", "/cells/nope", body=new, expect=404)
    clash = {k: v for k, v in spec(tgt, slot=0).items() if k != "name"}
    J("PUT", "/cells/{name}", "/cells/" + tgt, body=clash, expect=409, checks=[detail_mentions("alpha", tgt)],
      label="PUT a spec overlapping alpha's memory")
    J("PUT", "/cells/{name}", "/cells/" + tgt, body=json.dumps(new) + " " * (BODY_LIMIT + 16), headers=JSON_HDR,
      expect=413, label="PUT a body over limits.max_body_bytes")

    # images
    J("GET", "/cells/{name}/images", "/cells/%s/images" % tgt, expect=200)
    img = open(os.path.join(DEMOS, "heartbeat.bin"), "rb").read()
    sha = hashlib.sha256(img).hexdigest()
    octet = {"Content-Type": "application/octet-stream"}
    J("PUT", "/cells/{name}/images/{file}", "/cells/%s/images/app.bin" % tgt, body=img,
      headers=dict(octet, **{"Content-Digest": digest(img)}), expect=201,
      checks=[lambda r: None if (r.json() or {}).get("sha256") == sha else "sha256 is not the body's"])
    J("PUT", "/cells/{name}/images/{file}", "/cells/%s/images/app.bin" % tgt, body=img,
      headers=dict(octet, **{"Content-Digest": digest(img)}), expect=200, label="PUT an image again (replaced)")
    J("PUT", "/cells/{name}/images/{file}", "/cells/%s/images/x.bin" % tgt, body=img, headers=octet, expect=400,
      label="PUT an image without Content-Digest")
    J("PUT", "/cells/{name}/images/{file}", "/cells/%s/images/x.bin" % tgt, body=img,
      headers=dict(octet, **{"Content-Digest": digest(b"something else")}), expect=422,
      label="PUT an image with a wrong digest")
    url = "/cells/%s/images/big.bin" % tgt
    r = call_raw(d, ("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                     "Content-Digest: %s\r\nContent-Length: 1099511627776\r\nConnection: close\r\n\r\n"
                     % (url, digest(b""))).encode())
    R("PUT", "/cells/{name}/images/{file}", url, r, expect=413, label="PUT an image of an announced terabyte")
    J("GET", "/cells/{name}/images", "/cells/%s/images" % tgt, expect=200,
      checks=[lambda r: None if any(i.get("name") == "app.bin" for i in (r.json() or []) if isinstance(i, dict))
              else "app.bin is not listed"], label="GET images after the upload")
    uses = dict(new, images=[{"file": "app.bin", "address": "0x100000"}])
    J("PUT", "/cells/{name}", "/cells/" + tgt, body=uses, expect=200, label="PUT a spec naming the uploaded image")
    J("DELETE", "/cells/{name}/images/{file}", "/cells/%s/images/app.bin" % tgt, expect=409,
      label="DELETE an image the spec uses")
    spare = b"spare\n"
    J("PUT", "/cells/{name}/images/{file}", "/cells/%s/images/spare.bin" % tgt, body=spare,
      headers=dict(octet, **{"Content-Digest": digest(spare)}), expect=201, label="PUT a spare image")
    J("DELETE", "/cells/{name}/images/{file}", "/cells/%s/images/spare.bin" % tgt, expect=204)
    J("DELETE", "/cells/{name}/images/{file}", "/cells/%s/images/nope.bin" % tgt, expect=404)
    J("PUT", "/cells/{name}/images/{file}", "/cells/nope/images/app.bin", body=spare,
      headers=dict(octet, **{"Content-Digest": digest(spare)}), expect=404, label="PUT an image for no cell")
    J("GET", "/cells/{name}/images", "/cells/nope/images", expect=404)

    # lifecycle
    run = (200,) if kvm else (200, 202)
    op_checks = [location_is_operation, phase_matches_status]
    J("POST", "/cells/{name}/start", "/cells/alpha/start?wait=%d" % WAIT, expect=run, checks=op_checks)
    J("POST", "/cells/{name}/start", "/cells/alpha/start", expect=409 if kvm else None,
      label="start a running cell")
    J("POST", "/cells/{name}/start", "/cells/alpha/start?wait=301", expect=400, label="wait out of range")
    J("POST", "/cells/{name}/start", "/cells/alpha/start?wait=soon", expect=400, label="wait not a number")
    J("POST", "/cells/{name}/start", "/cells/nope/start", expect=404)
    J("GET", "/cells/{name}/console", "/cells/alpha/console", expect=200 if kvm else (200, 409))
    J("GET", "/cells/{name}/console", "/cells/alpha/console?bytes=100", expect=200 if kvm else (200, 409),
      checks=[lambda r: "more than 100 bytes" if r.status == 200 and len(r.body.encode()) > 100 else None])
    J("HEAD", "/cells/{name}/console", "/cells/alpha/console", expect=200 if kvm else (200, 409), checks=[empty_body])
    J("GET", "/cells/{name}/console", "/cells/alpha/console?bytes=0", expect=400)
    J("GET", "/cells/{name}/console", "/cells/alpha/console?bytes=65537", expect=400)
    J("GET", "/cells/{name}/console", "/cells/nope/console", expect=404)
    J("GET", "/cells/{name}/console", "/cells/beta/console", expect=409, label="console of a never started cell")
    alpha = {k: v for k, v in spec("alpha", slot=0).items() if k != "name"}
    J("PUT", "/cells/{name}", "/cells/alpha?apply=restart&wait=%d" % WAIT, body=alpha, expect=run,
      checks=[location_is_operation], label="PUT ?apply=restart&wait on a running cell")
    r = J("PUT", "/cells/{name}", "/cells/alpha?apply=restart", body=alpha, expect=202 if kvm else (200, 202),
          label="PUT ?apply=restart without wait")
    if op_id(r):
        J("GET", "/operations/{id}", "/operations/%s?wait=%d" % (op_id(r), WAIT), expect=200,
          label="GET the apply operation, waiting for it")
    J("POST", "/cells/{name}/restart", "/cells/alpha/restart?wait=%d" % WAIT, expect=run, checks=op_checks)
    J("POST", "/cells/{name}/restart", "/cells/alpha/restart", expect=(200, 202, 409), checks=[location_is_operation],
      label="restart without wait")
    J("POST", "/cells/{name}/stop", "/cells/alpha/stop?wait=%d" % WAIT, expect=(200, 202), checks=op_checks)
    J("POST", "/cells/{name}/stop", "/cells/alpha/stop", expect=409 if kvm else None, label="stop a stopped cell")
    J("POST", "/cells/{name}/shutdown", "/cells/alpha/shutdown", expect=409 if kvm else None,
      label="shut down a stopped cell")
    J("POST", "/cells/{name}/start", "/cells/alpha/start?wait=%d" % WAIT, expect=run, checks=op_checks,
      label="start again")
    J("POST", "/cells/{name}/shutdown", "/cells/alpha/shutdown?wait=%d" % WAIT, expect=(200, 202), checks=op_checks)
    J("POST", "/cells/{name}/restart", "/cells/nope/restart", expect=404)
    J("POST", "/cells/{name}/stop", "/cells/nope/stop", expect=404)
    J("POST", "/cells/{name}/shutdown", "/cells/nope/shutdown", expect=404)

    # idempotent actions: the replay runs nothing and answers the same operation
    once = J("POST", "/cells/{name}/start", "/cells/victim/start", headers={"Idempotency-Key": "contract-start-1"},
             expect=(200, 202), checks=op_checks, label="start victim with an Idempotency-Key")
    J("POST", "/cells/{name}/start", "/cells/victim/start", headers={"Idempotency-Key": "contract-start-1"},
      expect=once.status, checks=[has_header("Idempotent-Replayed", "true"),
                                  lambda r: None if op_id(r) == op_id(once) else "the replay is another operation"],
      label="the same start replayed")
    J("POST", "/cells/{name}/stop", "/cells/victim/stop", headers={"Idempotency-Key": "contract-start-1"},
      expect=422, label="the start's Idempotency-Key on stop")

    # fault injection
    J("POST", "/cells/{name}/inject", "/cells/beta/inject", body={"fault": "panic"}, expect=409,
      label="inject into a stopped cell")
    J("POST", "/cells/{name}/inject", "/cells/alpha/inject", body={"fault": "panic"}, expect=403,
      checks=[detail_mentions("allow_inject")], label="inject without allow_inject")
    J("POST", "/cells/{name}/inject", "/cells/beta/inject", body={"fault": "meltdown"}, expect=422)
    J("POST", "/cells/{name}/inject", "/cells/beta/inject", body={"fault": "hang", "extra": 1}, expect=422)
    J("POST", "/cells/{name}/inject", "/cells/beta/inject", body='{"fault": ', headers=JSON_HDR, expect=400)
    J("POST", "/cells/{name}/inject", "/cells/beta/inject", body='{"fault": "hang"}' + " " * BODY_LIMIT,
      headers=JSON_HDR, expect=413)
    J("POST", "/cells/{name}/inject", "/cells/nope/inject", body={"fault": "panic"}, expect=404)
    if kvm:
        J("POST", "/cells/{name}/start", "/cells/beta/start?wait=%d" % WAIT, expect=200, checks=op_checks)
        J("POST", "/cells/{name}/inject", "/cells/beta/inject", body={"fault": "panic"}, expect=202,
          checks=[lambda r: None if r.json() == {"cell": "beta", "fault": "panic"} else "not {cell, fault}"])
        # let the failure be declared, so that /events below carries a failure event
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and not (call(d, "GET", "/cells/beta").json() or {}).get("last_failure"):
            time.sleep(0.05)
        J("POST", "/cells/{name}/stop", "/cells/beta/stop", expect=202, label="stop without wait")

    # operations
    J("GET", "/operations", "/operations", expect=200,
      checks=[lambda r: None if isinstance(r.json(), list) and r.json() else "no operations listed"])
    oid = known_op(d)
    if oid:
        J("GET", "/operations/{id}", "/operations/" + oid, expect=(200, 202),
          checks=[lambda r: None if op_id(r) == oid else "not operation " + oid])
        J("GET", "/operations/{id}", "/operations/%s?wait=1" % oid, expect=(200, 202))
        J("HEAD", "/operations/{id}", "/operations/" + oid, expect=(200, 202), checks=[empty_body])
        J("GET", "/operations/{id}", "/operations/%s?wait=x" % oid, expect=400)
    else:
        R("GET", "/operations/{id}", "/operations/{id}", Reply(0, {}, "", "no operation id was ever returned"),
          expect=200, label="no operation id was ever returned to look up")
    J("GET", "/operations/{id}", "/operations/op-does-not-exist", expect=404)

    # deleting
    if created:
        J("DELETE", "/cells/{name}", "/cells/gamma", headers={"If-Match": '"1"'}, expect=412,
          label="DELETE with a stale If-Match")
    J("DELETE", "/cells/{name}", "/cells/victim?wait=%d" % WAIT, expect=(200, 202), checks=op_checks)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and call(d, "GET", "/cells/victim").status == 200:
        time.sleep(0.1)
    J("GET", "/cells/{name}", "/cells/victim", expect=404, label="GET a deleted cell")
    J("DELETE", "/cells/{name}", "/cells/nope", expect=404)
    J("DELETE", "/cells/{name}", "/cells/alpha?wait=later", expect=400, label="DELETE with a bad wait")
    J("DELETE", "/cells/{name}", "/cells/eta", expect=202, label="DELETE without wait")

    # the hypervisor as a whole
    J("POST", "/hypervisor/disable", "/hypervisor/disable?wait=%d" % WAIT, expect=(200, 202), checks=op_checks)
    J("GET", "/hypervisor", "/hypervisor", expect=200,
      checks=[lambda r: None if (r.json() or {}).get("state") == "disabled" else "state is not disabled"],
      label="GET /hypervisor while disabled")
    J("POST", "/cells/{name}/start", "/cells/alpha/start", expect=409, label="start while the hypervisor is disabled")
    J("POST", "/hypervisor/enable", "/hypervisor/enable?wait=%d" % WAIT, expect=(200, 202), checks=op_checks)
    J("POST", "/hypervisor/restart", "/hypervisor/restart?wait=%d" % WAIT, expect=(200, 202), checks=op_checks)
    J("POST", "/hypervisor/restart", "/hypervisor/restart?wait=1000", expect=400)

    # outside the routes
    J("GET", None, "/nope", expect=404)
    r = call_raw(d, b"GET /cells/al%01pha HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    R("GET", None, "/cells/al%01pha", r, expect=400, label="a malformed path")
    J("PATCH", "/metrics", "/metrics", expect=405, checks=[has_header("Allow")])

    # events: everything above left some
    R("GET", "/events", "/events", call(d, "GET", "/events", headers={"Last-Event-ID": "yesterday"}), expect=400,
      label="GET /events with a malformed Last-Event-ID")
    J("PUT", "/cells/{name}/images/{file}", "/cells/alpha/images/.hidden", body=spare,
      headers=dict(octet, **{"Content-Digest": digest(spare)}), expect=400, label="PUT an image with a bad name")
    ev = call_stream(d, "/events", headers={"Last-Event-ID": "0"}, seconds=1.5)
    R("GET", "/events", "/events", ev, expect=200,
      checks=[lambda r: None if "\nid:" in "\n" + r.body or "\nid: " in "\n" + r.body else "no event in the stream"],
      label="GET /events from Last-Event-ID 0")


def t_record_auth_responses():
    """Tokens on a TCP listener: 401, 403, anonymous /health and /metrics."""
    tmp = tempfile.mkdtemp(prefix="warden-contract-")
    try:
        tokens = {"mon": ("monitor", "monitor-token-0123456789"), "ops": ("operator", "operator-token-0123456789")}
        path = os.path.join(tmp, "tokens")
        with open(path, "w") as f:
            for name, (role, tok) in tokens.items():
                f.write("%s %s %s\n" % (name, role, hashlib.sha256(tok.encode()).hexdigest()))
        try:
            d = daemon("auth", cfg=config({"api": {"tokens_file": path, "anonymous_metrics": True}}), tcp=True)
        except AssertionError as e:
            raise AssertionError("wardend does not start with an \"api\" section (tokens_file, "
                                 "anonymous_metrics):\n" + str(e)[-1500:]) from None
        mon = {"Authorization": "Bearer " + tokens["mon"][1]}
        ops = {"Authorization": "Bearer " + tokens["ops"][1]}

        def T(method, route, url, headers=None, body=None, **kw):
            r = call(d, method, url, body=body, headers=headers, tcp=True)
            return record(method, route, url, r, **kw)

        www = has_header("WWW-Authenticate")
        T("GET", "/cells", "/cells", expect=401, checks=[www], label="TCP without a token")
        T("GET", "/cells", "/cells", headers={"Authorization": "Bearer wrong"}, expect=401, checks=[www],
          label="TCP with an unknown token")
        T("GET", "/hypervisor", "/hypervisor", expect=401, checks=[www], label="TCP GET /hypervisor without a token")
        T("GET", "/cells/{name}", "/cells/alpha", headers=mon, expect=200, label="monitor reads a cell")
        T("GET", "/operations", "/operations", headers=mon, expect=200, label="monitor reads operations")
        T("GET", "/health", "/health", expect=200, label="anonymous /health")
        T("GET", "/metrics", "/metrics", expect=200, label="anonymous /metrics")
        T("POST", "/cells/{name}/stop", "/cells/alpha/stop", headers=mon, expect=403, label="monitor stops a cell")
        T("POST", "/cells", "/cells", headers=mon, body=spec("gamma", slot=3), expect=403, label="monitor creates")
        T("PUT", "/cells/{name}", "/cells/alpha", headers=mon, body={}, expect=403, label="monitor replaces")
        T("DELETE", "/cells/{name}", "/cells/alpha", headers=mon, expect=403, label="monitor deletes")
        T("POST", "/hypervisor/restart", "/hypervisor/restart", headers=mon, expect=403,
          label="monitor restarts the hypervisor")
        T("POST", "/cells/{name}/stop", "/cells/alpha/stop", headers=ops, expect=(200, 202, 409),
          label="operator stops a cell")
        T("POST", "/cells/{name}/stop", "/cells/alpha/stop", expect=401, checks=[www], label="TCP stop without a token")
        record("GET", "/cells", "/cells", call(d, "GET", "/cells"), expect=200, label="the Unix socket needs no token")

        # without anonymous_metrics, /health and /metrics want a token too
        strict = daemon("auth-strict", cfg=config({"api": {"tokens_file": path}}), tcp=True)
        for u in ("/health", "/metrics"):
            record("GET", u, u, call(strict, "GET", u, tcp=True), expect=401, checks=[www],
                   label="GET %s without a token, anonymous_metrics off" % u)
            record("GET", u, u, call(strict, "GET", u, headers=mon, tcp=True), expect=200,
                   label="GET %s with a monitor token, anonymous_metrics off" % u)

        # every route as its security requirement says: without a token 401
        # unless anonymous callers are allowed; with a monitor token 403
        # where the operator role is asked, else neither 401 nor 403
        r = call(d, "POST", "/cells/beta/start", headers=ops, tcp=True)
        if op_id(r):
            OPS.setdefault(d.dir, []).append(op_id(r))
        for route in ROUTES:
            for m in route["methods"]:
                sec = route["security"][m]
                url, _ = instantiate(route["path"], d, "PATCH")  # existing resources, nothing removed
                send = (lambda hdrs: call_stream(d, url, headers=hdrs, seconds=0.3, tcp=True)) \
                    if route["path"] == "/events" else (lambda hdrs: call(d, m, url, headers=hdrs, tcp=True))
                bad = {"not": (401, 403)}
                record(m, route["path"], url, send({}), source="security",
                       expect=bad if sec["anonymous"] else 401, checks=[] if sec["anonymous"] else [www],
                       label="%s %s without a token" % (m, url))
                if "operator" in sec["roles"]:
                    record(m, route["path"], url, send(mon), source="security", expect=403,
                           label="%s %s with a monitor token" % (m, url))
                elif m == "GET":
                    record(m, route["path"], url, send(mon), source="security", expect=bad,
                           label="%s %s with a monitor token" % (m, url))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def t_validate_recordings():
    assert RECORDINGS, "nothing was recorded"
    fd, path = tempfile.mkstemp(prefix="warden-contract-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(RECORDINGS, f)
        p = node("validate", SPEC, path)
        assert p.returncode == 0, p.stderr.decode(errors="replace")[-3000:]
        for line in p.stdout.decode().splitlines():
            v = json.loads(line)
            VERDICTS[v["index"]] = v
    finally:
        if os.environ.get("WARDEN_CONTRACT_DUMP"):  # keep the exchanges and verdicts for a look
            with open(os.environ["WARDEN_CONTRACT_DUMP"], "w") as f:
                json.dump([dict(r, verdict=VERDICTS.get(i)) for i, r in enumerate(RECORDINGS)], f, indent=1)
        os.unlink(path)
    assert len(VERDICTS) == len(RECORDINGS), "%d verdicts for %d recordings" % (len(VERDICTS), len(RECORDINGS))
    print("# %d exchanges validated, %d against the schema failed" % (
        len(VERDICTS), sum(1 for v in VERDICTS.values() if not v["ok"])))


def describe(i):
    rec, v = RECORDINGS[i], VERDICTS.get(i, {"ok": False, "errors": ["not validated"]})
    issues = list(rec["problems"]) + list(v["errors"])
    if not issues:
        return None
    where = "" if rec["label"] == "%s %s" % (rec["method"], rec["url"]) else " (%s)" % rec["url"]
    return "%s%s -> %s [%s]:\n    %s" % (rec["label"], where, rec["status"], rec["source"],
                                        "\n    ".join(issues))


def documented(rec):
    """Whether the recording's method is one its route lists (HEAD as GET)."""
    m = "GET" if rec["method"] == "HEAD" else rec["method"]
    return any(r["path"] == rec["route"] and m in r["methods"] for r in ROUTES)


def responses_test(template, method, statuses):
    def fn():
        assert VERDICTS, "the recordings were not validated"
        as_doc = lambda r: "GET" if r["method"] == "HEAD" else r["method"]  # noqa: E731
        mine = [i for i, r in enumerate(RECORDINGS) if r["route"] == template and documented(r) and as_doc(r) == method]
        assert mine, "no exchange with %s %s was recorded" % (method, template)
        seen = sorted({str(RECORDINGS[i]["status"]) for i in mine})
        unseen = [s for s in statuses if s not in seen]
        bad = [d for d in (describe(i) for i in mine) if d]
        assert not bad, "%d of %d exchanges disagree with the document:\n%s\n(statuses seen: %s; documented, " \
            "not provoked: %s)" % (len(bad), len(mine), "\n".join(bad), " ".join(seen), " ".join(unseen) or "none")
    fn.__name__ = "responses %s %s" % (method, template)
    return fn


def t_responses_outside_routes():
    """Unknown paths (404), malformed ones (400) and methods a path does not
    list (405): the document's shared responses."""
    assert VERDICTS, "the recordings were not validated"
    mine = [i for i, r in enumerate(RECORDINGS) if not documented(r)]
    assert mine, "nothing recorded"
    bad = [d for d in (describe(i) for i in mine) if d]
    assert not bad, "%d of %d exchanges disagree with the document:\n%s" % (len(bad), len(mine), "\n".join(bad))


# --- main ---------------------------------------------------------------------

def main():
    try:
        ensure_npm()
    except NpmUnavailable as e:
        if OFFLINE:
            print("1..0 # SKIP WARDEN_OFFLINE=1: the npm tools are not available (%s)" % e, flush=True)
            sys.exit(0)
        msg = str(e)

        def npm_tools():
            raise AssertionError("the contract test needs node and npm (set WARDEN_OFFLINE=1 to skip it "
                                 "deliberately): " + msg) from None
        npm_tools.__name__ = "npm tools"
        test(npm_tools)
        run_tests()

    test(t_npm_tools).__name__ = "npm tools"
    test(t_document_lints).__name__ = "api/openapi.yaml lints"
    p = node("routes", SPEC)
    if p.returncode != 0:
        def routes_unreadable():
            raise AssertionError(p.stderr.decode(errors="replace")[-3000:])
        test(routes_unreadable)
        run_tests()
    ROUTES.extend(json.loads(p.stdout))
    for r in ROUTES:
        test(route_test(r))
    test(t_undocumented_paths_404).__name__ = "undocumented paths answer 404"
    test(t_record_responses).__name__ = "record responses"
    test(t_record_auth_responses).__name__ = "record responses with bearer tokens on TCP"
    test(t_validate_recordings).__name__ = "validate the recorded responses"
    for r in ROUTES:
        for m in r["methods"]:
            test(responses_test(r["path"], m, r["responses"].get(m, [])))
    test(t_responses_outside_routes).__name__ = "responses outside the documented routes and methods"
    try:
        run_tests()
    finally:
        cleanup()


if __name__ == "__main__":
    main()
