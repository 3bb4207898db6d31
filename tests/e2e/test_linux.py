# SPDX-License-Identifier: MIT
"""A Linux cell end to end: real wardend, the qemu backend, QEMU (TCG, pc)
booting the Linux inmate of driver/linux (Debian's kernel, warden.ko,
busybox). Faults are injected through the API as in an FDIR campaign.

A TCG boot takes seconds, so one daemon and one `linux` cell serve the tests
in order: boot, panic (restarted in place), daemon killed and re-adopted,
hang (stuck), shutdown; then a second cell whose demo application stops
beating makes the cell degraded, and a third whose applications run in
containers (crun inside the cell) and register with /dev/warden from
there. Six boots in all. Every wait polls with a
generous deadline; nothing sleeps a fixed time for a result.

The panic round trip always runs; with WARDEN_SLOW_TESTS=0 the others are
skipped (they run by default: the file takes well under 90 s here).
Everything skips when QEMU or the Linux image is missing.
"""
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import BUILD, WARDENCTL, Daemon, Skip, run_tests, test  # noqa: E402

QEMU = os.environ.get("WARDEN_QEMU") or shutil.which("qemu-system-x86_64") or ""
LINUX = os.path.join(BUILD, "driver", "linux")
KERNEL = os.environ.get("WARDEN_LINUX_KERNEL") or os.path.join(LINUX, "vmlinux")
INITRD = os.environ.get("WARDEN_LINUX_INITRD") or os.path.join(LINUX, "initramfs.cpio.gz")
# The image with crun (driver/linux/meson.build: built where crun is installed)
INITRD_CONTAINERS = os.environ.get("WARDEN_LINUX_INITRD_CONTAINERS") or \
    os.path.join(LINUX, "initramfs-containers.cpio.gz")
SLOW = os.environ.get("WARDEN_SLOW_TESTS", "1") != "0"

BOOT_S = 120  # one TCG boot is 2-5 s; a loaded 2-core CI machine can be far slower
CPU = 1 if (os.cpu_count() or 1) > 1 else 0

COMM_MAGIC = 0x4d4d4f434e445257


def linux_cell(name, cmdline="console=ttyS0 quiet", ram_phys=0x80000000, comm_phys=0x7f010000, **extra):
    spec = {
        "name": name,
        "backend": "qemu",
        "cpus": [CPU],
        "memory": [{"name": "ram", "phys_start": hex(ram_phys), "virt_start": "0x0", "size": "0x10000000",
                    "flags": ["read", "write", "execute", "loadable"]}],
        # The guest finds the region as ivshmem BAR 2: the address here
        # only has to stay clear of the RAM region.
        "comm": {"phys_start": hex(comm_phys), "virt_start": "0xfe000000", "size": 4096},
        "linux": {"kernel": os.path.abspath(KERNEL), "initrd": os.path.abspath(extra.pop("initrd", INITRD)),
                  "cmdline": cmdline},
        "allow_inject": True,
        "health": {"period_ms": 100, "timeout_ms": 1000, "boot_timeout_ms": 60000},
        "recovery": {"on_panic": "restart", "on_stuck": "restart", "on_boot_timeout": "restart",
                     "on_crash": "restart", "on_exit": "restart", "max_restarts": 20, "window_s": 600,
                     "backoff": {"initial_ms": 0, "max_ms": 1000, "factor": 2.0, "reset_after_s": 60},
                     "shutdown_timeout_ms": 20000},
    }
    spec.update(extra)
    return spec


def require_linux():
    if not QEMU or not os.access(QEMU, os.X_OK):
        raise Skip("qemu-system-x86_64 not found")
    for p in (KERNEL, INITRD):
        if not os.access(p, os.R_OK):
            raise Skip("no Linux inmate image (%s): build driver/linux" % p)


def require_slow():
    if not SLOW:
        raise Skip("slow test; WARDEN_SLOW_TESTS=0")


def qemu_pids(runtime_dir):
    """QEMU processes of this daemon's cells: they run in runtime_dir/cells/NAME."""
    cells = os.path.join(runtime_dir, "cells") + "/"
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if (os.readlink("/proc/%s/cwd" % p) + "/").startswith(cells):
                pids.append(int(p))
        except OSError:
            pass
    return pids


class LinuxDaemon(Daemon):
    def cleanup(self):
        self.stop()
        # cells outlive the daemon by design: end this test's QEMUs by pid
        for pid in qemu_pids(self.runtime_dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        super().cleanup()


_daemon = None
_daemon_error = None


def daemon():
    """The shared daemon with the `linux` cell running (started on first use)."""
    global _daemon, _daemon_error
    if _daemon_error:
        raise AssertionError("wardend did not start (see the first failure)")
    if _daemon is None:
        cfg = {"backends": {"qemu": {"binary": QEMU, "accel": "tcg", "machine": "pc"}},
               "root_cpus": [0], "cpu_sharing": True,
               # WARDEN_LINUX_KERNEL/INITRD may be outside the build tree
               "api": {"image_dirs": sorted({os.path.dirname(os.path.abspath(p))
                                             for p in (KERNEL, INITRD, INITRD_CONTAINERS)})},
               "cells": [linux_cell("linux"),
                         linux_cell("app", cmdline="console=ttyS0 quiet warden_app=app,100,20",
                                    ram_phys=0x90000000, comm_phys=0x7f011000, autostart=False)]}
        if os.access(INITRD_CONTAINERS, os.R_OK):
            # two containers: "payload" on time for 30 periods, then
            # silent; "steady" on time for ever
            cfg["cells"].append(linux_cell(
                "pods", cmdline="console=ttyS0 quiet warden_container=payload,100,30 "
                                "warden_container=steady,100,0",
                initrd=INITRD_CONTAINERS, ram_phys=0xa0000000, comm_phys=0x7f012000, autostart=False))
        _daemon = LinuxDaemon(cfg)
        try:
            _daemon.start()
        except Exception:
            _daemon_error = True
            raise
    return _daemon


def running(c):
    return c["state"] == "running"


def cell_up(d, name="linux"):
    return d.wait_cell(name, lambda c: running(c) and c["heartbeat"]["seq"] >= 1, BOOT_S, "running")


def inject_and_recover(d, fault, cell="linux"):
    before = cell_up(d, cell)
    r = d.post("/cells/%s/inject" % cell, body={"fault": fault})
    assert r.status == 202, r
    c = d.wait_cell(cell, lambda c: c["restarts"] == before["restarts"] + 1 and running(c), BOOT_S,
                    "recovery from " + fault)
    return before, c


@test
def linux_cell_boots_and_beats():
    require_linux()
    d = daemon()
    c = cell_up(d)
    assert c["backend"] == "qemu"
    assert c["timings"]["boot_ms"] > 0, c["timings"]
    assert c["heartbeat"]["inmate_state"] == "running", c["heartbeat"]
    h = c["hypervisor"]
    assert h["state"] == "running" and h["boots"] == 1 and h["pid"] > 0, h
    s1 = c["heartbeat"]["seq"]
    d.wait_cell("linux", lambda c: c["heartbeat"]["seq"] >= s1 + 5, 30, "5 more beats")
    # every QEMU thread on the cell's CPU
    for tid in os.listdir("/proc/%d/task" % h["pid"]):
        with open("/proc/%d/task/%s/status" % (h["pid"], tid)) as f:
            allowed = [l.split()[1] for l in f if l.startswith("Cpus_allowed_list")][0]
        assert allowed == str(CPU), (tid, allowed)
    r = d.get("/cells/linux/console?bytes=65536")
    assert r.status == 200 and "warden: module loaded" in r.body, r
    print("# boot (start -> first running beat): %.0f ms" % c["timings"]["boot_ms"], flush=True)


@test
def panic_is_declared_and_restarted():
    require_linux()
    d = daemon()
    before, c = inject_and_recover(d, "panic")
    lf = c["last_failure"]
    assert lf["kind"] == "panic" and "sysrq triggered crash" in lf["reason"], lf
    t = c["timings"]
    assert t["detection_ms"] is not None and t["recovery_ms"] is not None, t
    # restarted the way the qemu backend does it by default: a new QEMU
    # (measured faster than system_reset), the old one gone
    assert c["hypervisor"]["pid"] != before["hypervisor"]["pid"], (c["hypervisor"], before["hypervisor"])
    assert not os.path.exists("/proc/%d/cmdline" % before["hypervisor"]["pid"]) or \
        b"qemu" not in open("/proc/%d/cmdline" % before["hypervisor"]["pid"], "rb").read()
    assert c["failures"]["panic"] == 1, c["failures"]
    types = [e["type"] for e in c["events"]]
    assert "failure" in types and "recovered" in types, types
    r = d.get("/cells/linux/console?bytes=65536")
    assert "Kernel panic - not syncing: sysrq triggered crash" in r.body, r.body[-2000:]
    m = d.get("/metrics").body
    assert 'warden_cell_detection_seconds_count{cell="linux",kind="panic"} 1' in m
    print("# panic: detection %.1f ms, recovery %.0f ms" % (t["detection_ms"], t["recovery_ms"]), flush=True)


@test
def daemon_killed_leaves_qemu_running_and_readopts():
    require_linux()
    require_slow()
    d = daemon()
    c = cell_up(d)
    pid, boots = c["hypervisor"]["pid"], c["hypervisor"]["boots"]
    d.kill(signal.SIGKILL)
    # the inmate keeps beating with no daemon
    comm = os.path.join(d.runtime_dir, "cells", "linux", "comm")

    def seq():
        with open(comm, "rb") as f:
            magic, s = struct.unpack_from("<Q16xQ", f.read(32))
        assert magic == COMM_MAGIC, hex(magic)
        return s
    s1, deadline = seq(), time.monotonic() + 10
    while seq() <= s1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seq() > s1
    assert pid in qemu_pids(d.runtime_dir)
    d.start()
    c = d.wait_state("linux", "running", timeout=30)
    assert c["hypervisor"]["pid"] == pid and c["hypervisor"]["boots"] == boots, (c["hypervisor"], pid, boots)
    assert any("adopted" in e["reason"] for e in c["events"]), c["events"]


@test
def hang_is_declared_stuck():
    require_linux()
    require_slow()
    d = daemon()
    before, c = inject_and_recover(d, "hang")
    lf = c["last_failure"]
    assert lf["kind"] == "stuck" and "no beat for" in lf["reason"], lf
    assert c["timings"]["detection_ms"] >= 1000, c["timings"]  # the cell's timeout_ms
    assert c["hypervisor"]["pid"] != before["hypervisor"]["pid"], c["hypervisor"]


@test
def shutdown_through_the_mailbox_stops_it():
    require_linux()
    require_slow()
    d = daemon()
    cell_up(d)
    pid = d.cell("linux")["hypervisor"]["pid"]
    r = d.post("/cells/linux/shutdown")
    assert r.status == 202, r
    c = d.wait_state("linux", "stopped", timeout=60)
    reasons = [e["reason"] for e in c["events"]]
    assert any("inmate halted after a shutdown request" in x for x in reasons), reasons
    assert c["hypervisor"] is None, c["hypervisor"]
    deadline = time.monotonic() + 10
    while pid in qemu_pids(d.runtime_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid not in qemu_pids(d.runtime_dir)


@test
def late_application_makes_the_cell_degraded():
    require_linux()
    require_slow()
    d = daemon()
    r = d.post("/cells/app/start")
    assert r.status == 202, r
    cell_up(d, "app")
    # warden_app=app,100,20: on time for 20 periods, then silent
    c = d.wait_state("app", "degraded", timeout=60)
    assert c["heartbeat"]["inmate_state"] == "degraded", c["heartbeat"]
    reasons = [e["reason"] for e in c["events"]]
    assert any("inmate reports degraded: app" in x for x in reasons), reasons
    assert c["last_failure"] is None, c["last_failure"]  # degraded is not a failure
    with open(os.path.join(d.runtime_dir, "cells", "app", "comm"), "rb") as f:
        assert f.read(4096)[136:139] == b"app"


def application(c, name):
    return next((a for a in c.get("applications") or [] if a["name"] == name), None)


@test
def containers_in_the_linux_cell_register_and_a_silent_one_degrades_it():
    require_linux()
    require_slow()
    if not os.access(INITRD_CONTAINERS, os.R_OK):
        raise Skip("no %s: it is built where crun is installed (apt install crun)" % INITRD_CONTAINERS)
    d = daemon()
    d.post("/cells/app/stop?wait=30")  # one TCG guest fewer on the CPU
    r = d.post("/cells/pods/start")
    assert r.status == 202, r
    cell_up(d, "pods")
    # both containers' applications are in the cell's applications table
    c = d.wait_cell("pods", lambda c: application(c, "payload") and application(c, "steady"), 60,
                    "both containers' applications registered")
    for name in ("payload", "steady"):
        a = application(c, name)
        assert a["period_ms"] == 100 and a["beats"] >= 1 and not a["closed"], a
    # "payload" stops beating after 30 periods: late, and the cell degraded
    c = d.wait_cell("pods", lambda c: c["state"] == "degraded" and application(c, "payload")["state"] == "late",
                    60, "payload late, cell degraded")
    assert c["heartbeat"]["inmate_state"] == "degraded", c["heartbeat"]
    assert c["last_failure"] is None, c["last_failure"]  # degraded is not a failure
    p = application(c, "payload")
    assert p["misses"] >= 1 and not p["closed"], p  # silent, its file still open
    # "steady" keeps beating
    s1 = application(c, "steady")["beats"]
    c = d.wait_cell("pods", lambda c: application(c, "steady")["beats"] >= s1 + 5, 30, "steady beats on")
    # the module names the silent one (once nothing else is late)
    deadline = time.monotonic() + 30
    while True:
        with open(os.path.join(d.runtime_dir, "cells", "pods", "comm"), "rb") as f:
            named = f.read(4096)[136:168].rstrip(b"\0")
        if named == b"payload" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert named == b"payload", named
    # each ran in a container of its own (PID 1 of its own pid namespace)
    r = d.get("/cells/pods/console?bytes=65536")
    for name in ("payload", "steady"):
        assert "warden: container %s starting" % name in r.body, r.body[-3000:]
        assert "warden: app %s registered, period 100 ms, pid 1" % name in r.body, r.body[-3000:]
    m = d.get("/metrics").body
    assert 'warden_cell_application_late{cell="pods",app="payload"} 1' in m
    assert 'warden_cell_application_misses_total{cell="pods",app="payload"}' in m
    assert 'warden_cell_application_late{cell="pods",app="steady"}' in m
    out = subprocess.run([WARDENCTL, "--socket", d.sock, "cell", "show", "pods"], capture_output=True, text=True,
                         timeout=60).stdout
    lines = [l.split(":", 1)[-1].strip() for l in out.splitlines()]
    at = next(i for i, l in enumerate(out.splitlines()) if l.startswith("applications:"))
    shown = lines[at:at + 2]  # one line each, in slot order
    assert any(l.startswith("payload late, period 100 ms") for l in shown), out
    assert any(l.startswith("steady ") for l in shown), out
    # the cell without containers or /dev/warden users lists none
    assert d.cell("linux")["applications"] in (None, []), "the linux cell lists applications"
    r = d.post("/cells/pods/stop?wait=30")
    assert r.status == 200, r


if __name__ == "__main__":
    t0 = time.monotonic()
    try:
        run_tests()
    finally:
        if _daemon is not None:
            _daemon.cleanup()
        print("# %.1f s" % (time.monotonic() - t0), flush=True)
