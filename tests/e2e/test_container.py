# SPDX-License-Identifier: MIT
"""Container cells end to end: real wardend, real runc (crun where asked),
real containers from the busybox-static demo rootfs (driver/container).

Lifecycle without leftovers, every failure kind injected, declared and
recovered, re-adoption after wardend is killed, and the bad inputs: unsafe
or damaged tarballs, wrong digests, a missing runtime, overlapping CPUs.
Prints SKIP where runc (or the demo rootfs) is missing.
"""
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import BUILD, Daemon, Skip, poll, proc_cmdline, run_tests, test  # noqa: E402

ROOTFS = os.environ.get("WARDEN_CONTAINER_ROOTFS",
                        os.path.join(BUILD, "driver", "container", "demo-rootfs.tar"))
RUNC = shutil.which("runc") or "/usr/sbin/runc"
CRUN = shutil.which("crun") or "/usr/bin/crun"
CPU = 1 if (os.cpu_count() or 1) > 1 else 0


def require_runc():
    if not os.access(RUNC, os.X_OK):
        raise Skip("runc is not installed (apt-get install runc)")
    if not os.path.exists(ROOTFS):
        raise Skip("no demo rootfs at %s (busybox-static missing at build time?)" % ROOTFS)
    if os.geteuid() != 0:
        raise Skip("containers need root")


def recovery(**kw):
    r = {"on_panic": "restart", "on_stuck": "restart", "on_boot_timeout": "restart", "on_crash": "restart",
         "on_exit": "restart", "max_restarts": 100, "window_s": 60,
         "backoff": {"initial_ms": 0, "max_ms": 1000, "factor": 2.0, "reset_after_s": 1}}
    r.update(kw)
    return r


def container_cell(name="app", rootfs=ROOTFS, cpu=CPU, args="/bin/warden-demo", autostart=True, **kw):
    c = {"name": name, "backend": "container", "cpus": [cpu], "args": args,
         "container": {"rootfs": rootfs, "memory_limit": 32 << 20},
         "health": {"period_ms": 10, "timeout_ms": 100, "boot_timeout_ms": 5000},
         "autostart": autostart, "allow_inject": True, "recovery": recovery()}
    c.update(kw)
    return c


class ContainerDaemon(Daemon):
    """A Daemon that lists its containers (the harness's cleanup deletes
    them through the runtime)."""

    def runtime_roots(self):
        base = os.path.join(self.runtime_dir, "container")
        out = []
        for rt, binary in (("runc", RUNC), ("crun", CRUN)):
            p = os.path.join(base, rt)
            if os.path.isdir(p):
                out.append((binary, p))
        return out

    def containers(self):
        ids = []
        for binary, root in self.runtime_roots():
            r = subprocess.run([binary, "--root", root, "list", "-q"], capture_output=True, text=True)
            ids += [(binary, root, i) for i in r.stdout.split()]
        return ids


def tag_of(d):
    """The hash of the runtime dir that the backend puts in cgroup paths
    and container ids (FNV-1a, as container-backend.c)."""
    h = 2166136261
    for b in d.runtime_dir.encode():
        h = ((h ^ b) * 16777619) & 0xffffffff
    return "%08x" % h


def cgroups_of(d):
    tag = "warden-" + tag_of(d)
    found = []
    for ctl in os.listdir("/sys/fs/cgroup"):
        p = os.path.join("/sys/fs/cgroup", ctl)
        try:
            found += [os.path.join(p, e) for e in os.listdir(p) if e.startswith(tag)]
        except OSError:
            pass
    return found


def mounts_of(d):
    with open("/proc/self/mountinfo") as f:
        return [l for l in f if d.runtime_dir in l]


def demo_pids(d):
    """Processes of this daemon's containers: their inits run
    /bin/warden-demo in a cgroup carrying the daemon's tag."""
    tag = "warden-" + tag_of(d)
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cgroup" % p) as f:
                if tag in f.read():
                    pids.append(int(p))
        except OSError:
            pass
    return pids


def running(c):
    return c["state"] == "running"


def beating(d, name, n=3):
    c = d.wait_state(name, "running", 20)
    s = c["heartbeat"]["seq"]
    return d.wait_cell(name, lambda c: c["heartbeat"]["seq"] >= s + n, 10, "%d more beats" % n)


def problem(r, status, *words):
    assert r.status == status, r
    body = r.json()
    for w in words:
        assert w in body.get("detail", ""), (w, body)
    return body


def tarball(entries):
    """A tar in memory; entries are (TarInfo, data or None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for info, data in entries:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def file_entry(name, data=b"x"):
    i = tarfile.TarInfo(name)
    i.size = len(data)
    return i, data


@test
def lifecycle_on_runc_leaves_nothing_behind():
    require_runc()
    with ContainerDaemon({"cells": []}) as d:
        spec = container_cell(rootfs="rootfs.tar", autostart=False)
        r = d.post("/cells", body=spec)
        assert r.status == 201, r
        # the rootfs is an image like any other
        problem(d.post("/cells/app/start"), 409, "rootfs.tar", "not uploaded")
        with open(ROOTFS, "rb") as f:
            data = f.read()
        r = d.upload("app", "rootfs.tar", data)
        assert r.status == 201 and r.json()["sha256"] == hashlib.sha256(data).hexdigest(), r
        r = d.post("/cells/app/start?wait=30")
        assert r.status == 200 and r.json()["phase"] == "succeeded", r
        c = beating(d, "app")
        hv = c["hypervisor"]
        assert hv["native_state"] == "running" and hv["boots"] == 1, hv
        pid = hv["pid"]
        # the init is the demo, in namespaces of its own, on the cell's CPU
        assert proc_cmdline(pid)[0] == b"/bin/warden-demo", proc_cmdline(pid)
        for ns in ("pid", "net", "ipc", "uts", "mnt"):
            assert os.readlink("/proc/%d/ns/%s" % (pid, ns)) != os.readlink("/proc/self/ns/" + ns), ns
        with open("/proc/%d/status" % pid) as f:
            allowed = [l.split()[1] for l in f if l.startswith("Cpus_allowed_list")][0]
        assert allowed == str(CPU), allowed
        lim = [p for p in cgroups_of(d) if "/memory/" in p]
        assert lim, cgroups_of(d)
        with open(os.path.join(lim[0], "memory.limit_in_bytes")) as f:
            assert int(f.read()) == 32 << 20
        with open("/proc/%d/mountinfo" % pid) as f:
            mi = f.read()
        assert " /run/warden/comm " in mi, mi
        root = [l for l in mi.splitlines() if l.split()[4] == "/"][0]
        assert " ro," in root or " ro " in root, root  # read-only unless "writable"
        with open("/proc/%d/environ" % pid, "rb") as f:
            assert b"WARDEN_COMM=/run/warden/comm" in f.read().split(b"\0")
        r = d.get("/cells/app/console?bytes=4096")
        assert r.status == 200 and "warden-demo: registered" in r.body, r
        # the running rootfs cannot go away
        problem(d.request("DELETE", "/cells/app/images/rootfs.tar"), 409, "rootfs.tar")
        # stop: no container left, the console still readable
        r = d.post("/cells/app/stop?wait=30")
        assert r.status == 200 and r.json()["phase"] == "succeeded", r
        assert d.cell("app")["state"] == "stopped"
        poll(lambda: not d.containers() and not demo_pids(d), 10, "no container after the stop")
        logs = ""
        for n in ("console.log", "console.log.1"):
            p = os.path.join(d.runtime_dir, "cells", "app", n)
            logs += open(p).read() if os.path.exists(p) else ""
        assert "warden-demo: registered" in logs, logs
        # start again, then a restart: new inits each time
        r = d.post("/cells/app/start?wait=30")
        assert r.status == 200 and r.json()["phase"] == "succeeded", r
        pid2 = beating(d, "app")["hypervisor"]["pid"]
        assert pid2 != pid
        r = d.post("/cells/app/restart?wait=30")
        assert r.status == 200 and r.json()["phase"] == "succeeded", r
        c = beating(d, "app")
        assert c["hypervisor"]["pid"] not in (pid, pid2), c["hypervisor"]
        assert len(d.containers()) == 1
        # delete: no runtime state, cgroups, mounts or processes remain
        r = d.delete("/cells/app")
        assert r.status == 202, r
        poll(lambda: d.get("/cells/app").status == 404, 20, "cell deleted")
        poll(lambda: not d.containers(), 10, "runc list empty")
        poll(lambda: not cgroups_of(d), 10, "no cgroups")
        assert not mounts_of(d), mounts_of(d)
        assert not demo_pids(d) and not d.cell_pids(), (demo_pids(d), d.cell_pids())


def inject_and_recover(d, fault, name="app"):
    before = d.cell(name)
    r = d.post("/cells/%s/inject" % name, body={"fault": fault})
    assert r.status == 202, r
    return d.wait_cell(name, lambda c: c["restarts"] == before["restarts"] + 1 and running(c), 20,
                       "recovery from " + fault)


def report(what, c):
    t = c["timings"]
    print("# %-22s %-6s detection %7s ms, recovery %7s ms: %s" % (
        what, c["last_failure"]["kind"], t["detection_ms"], t["recovery_ms"], c["last_failure"]["reason"]),
        flush=True)


@test
def each_failure_kind_is_declared_and_recovered():
    require_runc()
    expected = {
        "panic": ("panic", "injected panic"),
        "exit": ("exit", "injected exit"),
        "hang": ("stuck", "no beat for"),
        "stall": ("stuck", "no beat for"),
        "crash": ("crash", "signal 11"),
    }
    # A 1 s timeout: a loaded 2-core host can keep the demo off the CPU
    # for longer than 100 ms, and a stuck verdict of its own would change
    # the counts this test checks to the unit.
    health = {"period_ms": 10, "timeout_ms": 1000, "boot_timeout_ms": 5000}
    with ContainerDaemon({"cells": [container_cell(health=health)]}) as d:
        beating(d, "app")
        for fault, (kind, reason) in expected.items():
            c = inject_and_recover(d, fault)
            lf = c["last_failure"]
            assert lf["kind"] == kind and reason in lf["reason"], (fault, lf)
            t = c["timings"]
            assert t["detection_ms"] is not None and t["recovery_ms"] is not None, t
            if kind == "stuck":
                assert t["detection_ms"] >= 1000, t
            types = [e["type"] for e in c["events"]]
            assert "failure" in types and "recovered" in types, types
            report(fault, c)
        # the init killed from outside is a crash too, seen through the pidfd
        c = beating(d, "app")
        pid = c["hypervisor"]["pid"]
        os.kill(pid, signal.SIGKILL)
        c = d.wait_cell("app", lambda c: c["restarts"] == 6 and running(c), 20, "recovery after SIGKILL")
        assert c["last_failure"]["kind"] == "crash", c["last_failure"]
        assert c["hypervisor"]["pid"] != pid
        report("SIGKILL of init", c)
        assert c["failures"] == {"panic": 1, "stuck": 2, "boot-timeout": 0, "crash": 2, "exit": 1}, c["failures"]
        m = d.get("/metrics").body
        assert 'warden_cell_restarts_total{cell="app"} 6' in m
        assert 'warden_cell_failures_total{cell="app",kind="crash"} 2' in m
        assert 'warden_cell_recovery_seconds_count{cell="app"} 6' in m
        assert len(d.containers()) == 1


@test
def a_container_that_ends_by_itself_exits():
    require_runc()
    cells = [container_cell("done", args="/bin/warden-demo --exit-after 20", recovery=recovery(on_exit="stop")),
             container_cell("quiet", args="/bin/true", recovery=recovery(on_exit="stop"))]
    with ContainerDaemon({"cells": cells}) as d:
        c = d.wait_cell("done", lambda c: c["last_failure"] is not None, 20, "the halt")
        assert c["last_failure"]["kind"] == "exit" and "work done" in c["last_failure"]["reason"], c
        # status 0 without a word in the comm region: an exit all the same
        c = d.wait_cell("quiet", lambda c: c["last_failure"] is not None, 20, "the exit")
        assert c["last_failure"]["kind"] == "exit", c["last_failure"]
        assert "exited with status 0" in c["last_failure"]["reason"], c["last_failure"]
        for n in ("done", "quiet"):
            d.wait_cell(n, lambda c: c["hypervisor"] is None and c["restarts"] == 0, 10, "stopped for good")
        poll(lambda: not d.containers(), 10, "no containers")


@test
def wardend_killed_readopts_running_containers():
    require_runc()
    with ContainerDaemon({"cells": [container_cell()]}) as d:
        c = beating(d, "app")
        pid = c["hypervisor"]["pid"]
        d.kill(signal.SIGKILL)
        # the container beats on without wardend
        time.sleep(0.3)
        assert os.path.exists("/proc/%d" % pid)
        d.logf.close()
        d.start()
        c = beating(d, "app", 5)
        assert c["hypervisor"]["pid"] == pid and c["restarts"] == 0, c
        assert c["hypervisor"]["native_state"] == "running", c["hypervisor"]
        assert "adopt" in d.log().lower(), d.log()[-2000:]
        # and it is supervised as before: a crash is seen and recovered
        c = inject_and_recover(d, "crash")
        assert c["last_failure"]["kind"] == "crash" and c["hypervisor"]["pid"] != pid, c
        report("crash after adoption", c)
        assert len(d.containers()) == 1


@test
def unsafe_or_damaged_rootfs_tarballs_are_refused():
    require_runc()
    dev = tarfile.TarInfo("dev/null")
    dev.type = tarfile.CHRTYPE
    dev.devmajor, dev.devminor = 1, 3
    up = file_entry("../escape")
    absolute = file_entry("/etc/passwd")
    inner = file_entry("bin/../../x")
    link = tarfile.TarInfo("bin/hl")
    link.type = tarfile.LNKTYPE
    link.linkname = "../../etc/shadow"
    sym = tarfile.TarInfo("evil")
    sym.type = tarfile.SYMTYPE
    sym.linkname = "/etc"
    cases = {
        "through-symlink": (tarball([(sym, None), file_entry("evil/passwd")]), 'below the symlink "evil"'),
        "absolute": (tarball([absolute]), "absolute path"),
        "dotdot": (tarball([up]), '".." component'),
        "inner-dotdot": (tarball([inner]), '".." component'),
        "device": (tarball([(dev, None)]), "character device"),
        "hardlink": (tarball([file_entry("bin/a"), (link, None)]), "outside the tree"),
    }
    with open(ROOTFS, "rb") as f:
        good = f.read()
    cases["truncated"] = (good[:len(good) // 2 + 100], "truncated")
    with ContainerDaemon({"cells": [container_cell(rootfs="rootfs.tar", autostart=False)]}) as d:
        for what, (data, words) in cases.items():
            r = d.upload("app", "rootfs.tar", data)
            problem(r, 422, "not a usable container rootfs", words)
            assert not os.path.exists(os.path.join(d.images_dir("app"), "rootfs.tar")), what
        # a wrong digest: refused, nothing stored
        r = d.upload("app", "rootfs.tar", good, digest="sha-256=:%s:" % ("A" * 43 + "="))
        problem(r, 422, "digest mismatch")
        assert d.get("/cells/app/images").json() == [] or all(
            i["name"] != "rootfs.tar" for i in d.get("/cells/app/images").json())
        # only the rootfs is checked: another image may be anything
        assert d.upload("app", "notes.bin", b"\0" * 10).status == 201
        # the good one is taken, and runs
        assert d.upload("app", "rootfs.tar", good).status == 201
        r = d.post("/cells/app/start?wait=30")
        assert r.status == 200 and r.json()["phase"] == "succeeded", r
        beating(d, "app")


@test
def a_digest_pinned_in_the_spec_is_enforced():
    require_runc()
    with open(ROOTFS, "rb") as f:
        hexd = hashlib.sha256(f.read()).hexdigest()
    wrong = container_cell("wrong", recovery=recovery(max_restarts=0))
    wrong["container"]["digest"] = "sha256:" + "0" * 64
    right = container_cell("right")
    right["container"]["digest"] = "sha256:" + hexd
    with ContainerDaemon({"cells": [wrong, right]}) as d:
        beating(d, "right")
        c = d.wait_cell("wrong", lambda c: c["state"] in ("failed", "stopped"), 20, "failure")
        log = open(os.path.join(d.runtime_dir, "cells", "wrong", "runtime.log")).read()
        assert "digest mismatch" in log and hexd in log, log


@test
def specs_and_runtime_problems_get_clear_errors():
    require_runc()
    with ContainerDaemon({"cells": [], "cpu_sharing": False, "root_cpus": [0]}) as d:
        problem(d.post("/cells", body=container_cell(cpu=0)), 409, "root set")
        assert d.post("/cells", body=container_cell("one", autostart=False)).status == 201
        problem(d.post("/cells", body=container_cell("two", autostart=False)), 409, "already assigned", "one")
        bad = container_cell("three", autostart=False)
        bad["memory"] = [{"name": "ram", "virt_start": 0, "size": 4096, "flags": ["read", "write"]}]
        problem(d.post("/cells", body=bad), 422, '"memory" is not for container cells')
        bad = container_cell("three", autostart=False)
        del bad["container"]
        problem(d.post("/cells", body=bad), 422, "rootfs tarball")
        bad = container_cell("three", autostart=False)
        del bad["args"]
        problem(d.post("/cells", body=bad), 422, '"args" is required')
        bad = container_cell("three", autostart=False)
        bad["container"]["digest"] = "md5:abc"
        problem(d.post("/cells", body=bad), 422, "64 hex digits")
        bad = container_cell("three", autostart=False, backend="kvm")
        problem(d.post("/cells", body=bad), 422, '"container" is for')
    # no runtime: the start says so, the daemon runs on
    cfg = {"cells": [container_cell(autostart=False)],
           "backends": {"container": {"binary": "/nonexistent/runc"}}}
    with ContainerDaemon(cfg) as d:
        problem(d.post("/cells/app/start"), 409, "OCI runtime", "/nonexistent/runc", "missing")
        hv = d.get("/hypervisor").json()
        assert {"kind": "container", "available": False} in [
            {"kind": b["kind"], "available": b["available"]} for b in hv["backends"]], hv
        assert "container backend is unavailable" in d.log()


@test
def a_writable_rootfs_is_the_cells_own():
    require_runc()
    w = container_cell("rw")
    w["container"]["writable"] = True
    ro = container_cell("ro", cpu=CPU)
    with ContainerDaemon({"cells": [w, ro]}) as d:
        roots = {}
        for name in ("rw", "ro"):
            pid = beating(d, name)["hypervisor"]["pid"]
            with open("/proc/%d/mountinfo" % pid) as f:
                roots[name] = [l for l in f.read().splitlines() if l.split()[4] == "/"][0]
        assert " rw," in roots["rw"] or " rw " in roots["rw"], roots
        assert " ro," in roots["ro"] or " ro " in roots["ro"], roots
        own = os.path.join(d.runtime_dir, "cells", "rw", "rootfs")
        assert os.path.exists(os.path.join(own, "bin", "warden-demo")), own
        # the read-only one shares the tree cached by digest
        cache = os.path.join(d.runtime_dir, "container", "rootfs")
        assert len([e for e in os.listdir(cache) if not e.startswith(".")]) == 1, os.listdir(cache)
        assert d.delete("/cells/rw").status == 202
        poll(lambda: d.get("/cells/rw").status == 404, 20, "cell deleted")
        # the cell is gone from the API before its destroy has run
        poll(lambda: not os.path.exists(own), 10, "the private rootfs removed with its cell")
        beating(d, "ro")


@test
def crun_runs_container_cells_too():
    require_runc()
    if not os.access(CRUN, os.X_OK):
        raise Skip("crun is not installed (apt-get install crun)")
    cfg = {"cells": [container_cell()], "backends": {"container": {"runtime": "crun"}}}
    with ContainerDaemon(cfg) as d:
        c = beating(d, "app")
        assert proc_cmdline(c["hypervisor"]["pid"])[0] == b"/bin/warden-demo"
        for fault, kind in (("panic", "panic"), ("crash", "crash")):
            c = inject_and_recover(d, fault)
            assert c["last_failure"]["kind"] == kind, c["last_failure"]
            report("crun " + fault, c)
        r = d.delete("/cells/app")
        assert r.status == 202, r
        poll(lambda: d.get("/cells/app").status == 404, 20, "cell deleted")
        poll(lambda: not d.containers() and not demo_pids(d), 10, "no container left")
        poll(lambda: not cgroups_of(d), 10, "no cgroups")


if __name__ == "__main__":
    run_tests()
