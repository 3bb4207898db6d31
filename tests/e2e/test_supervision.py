# SPDX-License-Identifier: MIT
"""Supervision end to end: real wardend, real warden-kvm runners, real
inmates on KVM. Faults are injected through the API, as operators do in an
FDIR campaign, and the daemon must classify, act and measure.

Every test needs /dev/kvm and says so (SKIP) where it is missing.
"""
import json
import os
import resource
import signal
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import Daemon, demo_cell, poll, require_kvm, run_tests, test  # noqa: E402


def faulty(name="faulty", **recovery):
    rec = {"on_panic": "restart", "on_stuck": "restart", "on_boot_timeout": "restart", "on_crash": "restart",
           "on_exit": "restart", "max_restarts": 100, "window_s": 60,
           "backoff": {"initial_ms": 0, "max_ms": 1000, "factor": 2.0, "reset_after_s": 1}}
    rec.update(recovery)
    return demo_cell(name, "faulty.bin", cpu=1, phys=0x40400000, comm_phys=0x7f001000, period=5, timeout=30,
                     allow_inject=True, recovery=rec)


def heartbeat(name="heartbeat", **kw):
    return demo_cell(name, "heartbeat.bin", cpu=1, **kw)


def running(c):
    return c["state"] == "running"


@test
def demo_cells_run_with_advancing_heartbeats():
    require_kvm()
    with Daemon({"cells": [heartbeat(), faulty()]}) as d:
        for name in ("heartbeat", "faulty"):
            c = d.wait_state(name, "running")
            assert c["timings"]["boot_ms"] is not None and c["timings"]["boot_ms"] > 0, c
            assert c["heartbeat"]["inmate_state"] == "running"
        s1 = d.cell("heartbeat")["heartbeat"]["seq"]
        c = d.wait_cell("heartbeat", lambda c: c["heartbeat"]["seq"] >= s1 + 5, what="5 more beats")
        assert c["heartbeat"]["age_ms"] < 1000, c
        # the vCPU thread is pinned to the cell's CPU
        pid = c["hypervisor"]["pid"]
        cpus = set()
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                st = f.read()
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                comm = f.read().strip()
            if "vcpu" in comm:
                cpus.add([l for l in st.splitlines() if l.startswith("Cpus_allowed_list")][0].split()[1])
        assert cpus == {"1"}, cpus
        r = d.get("/cells/heartbeat/console?bytes=4096")
        assert r.status == 200 and r.ctype.startswith("text/plain") and "heartbeat: up" in r.body, r
        # curl -X POST .../restart: in place, same runner, fresh boot
        before = d.cell("heartbeat")
        r = d.post("/cells/heartbeat/restart")
        assert r.status == 202, r
        c = d.wait_cell("heartbeat", lambda c: running(c) and c["hypervisor"]["boots"] == before["hypervisor"]["boots"] + 1,
                        what="running after restart")
        assert c["hypervisor"]["pid"] == pid, (c["hypervisor"], pid)
        assert c["heartbeat"]["uptime_ms"] < before["heartbeat"]["uptime_ms"] or c["heartbeat"]["seq"] < before["heartbeat"]["seq"]
        m = d.get("/metrics").body
        assert 'warden_cell_up{cell="heartbeat"} 1' in m
        assert 'warden_cell_boot_seconds_count{cell="heartbeat"} 2' in m, [l for l in m.splitlines() if "boot_seconds_count" in l]


def nofile_limits(pid):
    with open("/proc/%d/limits" % pid) as f:
        line = [l for l in f if l.startswith("Max open files")][0].split()
    return int(line[3]), int(line[4])


@test
def wardend_raises_its_fd_limit_and_its_runners_start_with_the_old_one():
    require_kvm()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(1024, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        with Daemon({"cells": [heartbeat()]}) as d:
            c = d.wait_state("heartbeat", "running")
            # epoll only: no select() to keep below 1024
            assert nofile_limits(d.proc.pid) == (hard, hard), (nofile_limits(d.proc.pid), hard)
            # a child might select(): it gets the limit wardend was given
            runner = c["hypervisor"]["pid"]
            assert nofile_limits(runner) == (low, hard), (nofile_limits(runner), low, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def inject_and_recover(d, fault, cell="faulty"):
    before = d.cell(cell)
    r = d.post("/cells/%s/inject" % cell, body={"fault": fault})
    assert r.status == 202, r
    c = d.wait_cell(cell, lambda c: c["restarts"] == before["restarts"] + 1 and running(c), timeout=15,
                    what="recovery from " + fault)
    return c


@test
def each_fault_is_classified_and_recovered():
    require_kvm()
    expected = {
        "panic": ("panic", "injected panic"),
        "crash": ("panic", "triple fault"),
        "exit": ("exit", "injected exit"),
        "hang": ("stuck", "no beat for"),
        "stall": ("stuck", "no beat for"),
    }
    with Daemon({"cells": [faulty()]}) as d:
        d.wait_state("faulty", "running")
        for fault, (kind, reason) in expected.items():
            c = inject_and_recover(d, fault)
            lf = c["last_failure"]
            assert lf["kind"] == kind and reason in lf["reason"], (fault, lf)
            t = c["timings"]
            assert t["detection_ms"] is not None and t["recovery_ms"] is not None, t
            if kind == "stuck":
                # declared no earlier than the timeout after the last beat
                assert t["detection_ms"] >= 30, t
            types = [e["type"] for e in c["events"]]
            assert "failure" in types and "recovered" in types, types
        c = d.cell("faulty")
        assert c["restarts"] == 5
        assert c["failures"] == {"panic": 2, "stuck": 2, "boot-timeout": 0, "crash": 0, "exit": 1}, c["failures"]
        m = d.get("/metrics").body
        assert 'warden_cell_restarts_total{cell="faulty"} 5' in m
        assert 'warden_cell_failures_total{cell="faulty",kind="stuck"} 2' in m
        assert 'warden_cell_detection_seconds_count{cell="faulty",kind="panic"} 2' in m
        assert 'warden_cell_recovery_seconds_count{cell="faulty"} 5' in m


@test
def runner_killed_is_a_crash_and_recovers():
    require_kvm()
    with Daemon({"cells": [faulty()]}) as d:
        c = d.wait_state("faulty", "running")
        pid = c["hypervisor"]["pid"]
        os.kill(pid, signal.SIGKILL)
        c = d.wait_cell("faulty", lambda c: c["restarts"] == 1 and running(c), what="recovery after SIGKILL")
        assert c["last_failure"]["kind"] == "crash", c["last_failure"]
        assert c["hypervisor"]["pid"] != pid


@test
def budget_exhaustion_stops_the_cell():
    require_kvm()
    with Daemon({"cells": [faulty(max_restarts=2, window_s=600)]}) as d:
        d.wait_state("faulty", "running")
        inject_and_recover(d, "panic")
        inject_and_recover(d, "panic")
        assert d.post("/cells/faulty/inject", body={"fault": "panic"}).status == 202
        c = d.wait_state("faulty", "failed")
        time.sleep(0.2)
        c = d.cell("faulty")
        assert c["state"] == "failed" and c["restarts"] == 2, c
        assert "restart budget exhausted" in c["last_failure"]["reason"], c["last_failure"]
        assert c["hypervisor"] is None  # torn down
        m = d.get("/metrics").body
        assert 'warden_cell_state{cell="faulty",state="failed"} 1' in m


@test
def preserve_keeps_console_and_comm_readable():
    require_kvm()
    with Daemon({"cells": [faulty(on_panic="preserve")]}) as d:
        d.wait_state("faulty", "running")
        assert d.post("/cells/faulty/inject", body={"fault": "panic"}).status == 202
        c = d.wait_state("faulty", "failed")
        time.sleep(0.2)
        c = d.cell("faulty")
        assert c["restarts"] == 0 and c["last_failure"]["kind"] == "panic", c
        assert c["hypervisor"] is not None and c["hypervisor"]["state"] in ("stopped", "halted"), c["hypervisor"]
        r = d.get("/cells/faulty/console")
        assert r.status == 200 and len(r.body) > 0, r
        # the comm region is still there, with the inmate's panic in it
        with open(os.path.join(d.runtime_dir, "cells", "faulty", "comm"), "rb") as f:
            comm = f.read(4096)
        magic, abi, size, state = struct.unpack_from("<QIII", comm, 0)
        assert magic == 0x4d4d4f434e445257 and state == 5, (hex(magic), state)
        assert b"injected panic" in comm[168:168 + 256]


@test
def garbage_comm_region_is_a_failure_not_a_crash():
    require_kvm()
    with Daemon({"cells": [heartbeat(recovery={"on_panic": "stop"})]}) as d:
        d.wait_state("heartbeat", "running")
        path = os.path.join(d.runtime_dir, "cells", "heartbeat", "comm")
        with open(path, "r+b") as f:
            f.write(b"GARBAGE!")
        c = d.wait_state("heartbeat", "failed")
        assert c["last_failure"]["kind"] == "panic" and "comm region invalid: bad magic" in c["last_failure"]["reason"], c
        assert d.get("/health").status == 200 and d.proc.poll() is None


@test
def boot_timeout():
    require_kvm()
    img = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spin.tmp.bin")
    with open(img, "wb") as f:
        f.write(b"\xeb\xfe" * 8)  # jmp $: never beats
    try:
        spec = heartbeat("spinner", boot_timeout=300, recovery={"on_boot_timeout": "stop"})
        spec["images"][0]["file"] = img
        # absolute image paths must be inside api.image_dirs, and this one is in the source tree
        with Daemon({"api": {"image_dirs": [os.path.dirname(img)]}, "cells": [spec]}) as d:
            c = d.wait_state("spinner", "failed", timeout=10)
            assert c["last_failure"]["kind"] == "boot-timeout", c["last_failure"]
            assert "no running beat 300 ms after start" in c["last_failure"]["reason"]
    finally:
        os.unlink(img)


@test
def graceful_shutdown_through_the_mailbox():
    require_kvm()
    with Daemon({"cells": [heartbeat()]}) as d:
        d.wait_state("heartbeat", "running")
        r = d.post("/cells/heartbeat/shutdown")
        assert r.status == 202, r
        c = d.wait_state("heartbeat", "stopped")
        reasons = [e["reason"] for e in c["events"]]
        assert any("shutdown requested" in x for x in reasons), reasons
        assert any("halted after a shutdown request" in x for x in reasons), reasons
        assert c["last_failure"] is None
        # the runner process may outlive the "stopped" state by a moment
        poll(lambda: not d.runner_pids(), 10, "no runner after the shutdown")
        assert d.post("/cells/heartbeat/start").status == 202
        d.wait_state("heartbeat", "running")


@test
def shutdown_deadline_destroys_a_hung_cell():
    require_kvm()
    with Daemon({"cells": [faulty(on_stuck="none", shutdown_timeout_ms=300)]}) as d:
        d.wait_state("faulty", "running")
        assert d.post("/cells/faulty/inject", body={"fault": "hang"}).status == 202
        d.wait_state("faulty", "failed")
        assert d.post("/cells/faulty/shutdown").status == 202
        c = d.wait_state("faulty", "stopped")
        assert any("shutdown deadline of 300 ms passed" in e["reason"] for e in c["events"]), c["events"]


@test
def daemon_killed_leaves_cells_running_and_readopts():
    require_kvm()
    d = Daemon({"cells": [heartbeat(), faulty()]})
    try:
        d.start()
        d.wait_state("heartbeat", "running")
        d.wait_state("faulty", "running")
        pids = {n: d.cell(n)["hypervisor"]["pid"] for n in ("heartbeat", "faulty")}
        d.kill(signal.SIGKILL)
        # cells keep beating with no daemon
        comm = os.path.join(d.runtime_dir, "cells", "heartbeat", "comm")
        with open(comm, "rb") as f:
            s1 = struct.unpack_from("<Q", f.read(32), 24)[0]
        time.sleep(0.2)
        with open(comm, "rb") as f:
            s2 = struct.unpack_from("<Q", f.read(32), 24)[0]
        assert s2 > s1, (s1, s2)
        d.start()
        for n in ("heartbeat", "faulty"):
            c = d.wait_state(n, "running")
            assert c["hypervisor"]["pid"] == pids[n], (n, c["hypervisor"], pids)
            assert any("adopted" in e["reason"] for e in c["events"]), c["events"]
        # the adopted cell is supervised: a fault is still caught
        c = inject_and_recover(d, "panic")
        assert c["last_failure"]["kind"] == "panic"
    finally:
        d.cleanup()


@test
def daemon_restart_during_backoff_keeps_history_and_restarts_once():
    require_kvm()
    d = Daemon({"cells": [faulty(backoff={"initial_ms": 2000, "max_ms": 2000, "factor": 2.0, "reset_after_s": 60})]})
    try:
        d.start()
        c = d.wait_state("faulty", "running")
        boots = c["hypervisor"]["boots"]
        assert d.post("/cells/faulty/inject", body={"fault": "panic"}).status == 202
        d.wait_state("faulty", "failed")
        time.sleep(0.3)  # let the idle-time save land
        d.kill(signal.SIGKILL)
        d.start()
        c = d.cell("faulty")
        assert c["last_failure"] and c["last_failure"]["kind"] == "panic", c
        assert c["failures"]["panic"] == 1
        assert c["state"] == "failed", c["state"]  # still waiting for its backoff
        c = d.wait_cell("faulty", lambda c: running(c) and c["restarts"] == 1, timeout=10, what="one restart")
        time.sleep(1.0)
        c = d.cell("faulty")
        assert c["restarts"] == 1 and c["hypervisor"]["boots"] == boots + 1, (c["restarts"], c["hypervisor"])
    finally:
        d.cleanup()


if __name__ == "__main__":
    run_tests()
