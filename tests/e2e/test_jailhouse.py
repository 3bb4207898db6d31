# SPDX-License-Identifier: MIT
"""The jailhouse backend through the real wardend, without a board.

wardend runs its real jailhouse backend and spawns, in place of
warden-jailhouse, warden-jailhouse-fake: the real helper (the same socket
protocol, the same checks) with the fake driver of tests/lib/fake-jailhouse.h
behind the ioctl seam. The fake keeps a sysfs tree the way the driver keeps
/sys/devices/jailhouse and logs every ioctl to SYSFS.calls. /dev/mem is a
sparse file: the comm region is the bytes at its physical address, and this
test is the inmate, writing warden comm-region beats there (api/warden/comm.h).
It also plays the hypervisor where the fake cannot: a cell's "failed" state
and failed CPUs, "Comm ABI mismatch", the vmexit counters.

The .cell and the system config are built with `wardenctl jailhouse export`.
Real Jailhouse runs on the emulated arm64 board (another test).
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import WARDENCTL, WARDEN_KVM, Daemon, poll, run_tests, test  # noqa: E402
from jailhouse_fake import FAKE, FakeDriver, Inmate, demo_configs, export, subsequence, synthetic_image  # noqa: E402

COMM_PHYS = 0x7f900000
COMM_VIRT = 0x80000000
LINUX_COMM = COMM_PHYS + 0x80000


class Board(FakeDriver):
    """The fake driver's files, and the system config, the .cell, an image
    and a broken .cell for the tests below."""

    def __init__(self, d):
        super().__init__(d, COMM_PHYS + 0x100000)
        self.system, self.cell, self.image = demo_configs(d, COMM_PHYS, COMM_VIRT)
        self.bad = os.path.join(d, "bad.cell")
        with open(self.bad, "wb") as f:
            f.write(b"JHCLL\x02\x0e\x00" + b"\x00" * 20)

    def config(self, cells):
        return {
            "backends": {"kvm": {"runner": os.path.abspath(WARDEN_KVM)},
                         "jailhouse": self.backend(self.system)},
            "api": {"image_dirs": [self.dir]},
            "cells": cells,
        }

    def spec(self, name="demo", cell=None, **extra):
        s = {"name": name, "backend": "jailhouse", "jailhouse": {"cell_config": cell or self.cell},
             "comm": {"virt_start": hex(COMM_VIRT), "size": 8192},
             "images": [{"file": self.image, "address": "0x1000"}],
             "health": {"period_ms": 20, "timeout_ms": 300, "boot_timeout_ms": 3000},
             "recovery": {"max_restarts": 100, "window_s": 60,
                          "backoff": {"initial_ms": 0, "max_ms": 100, "factor": 2.0, "reset_after_s": 1}}}
        s.update(extra)
        return s

    def cell_id(self, name="inmate-demo"):
        return super().cell_id(name)


def with_board(fn):
    def run():
        if not os.path.exists(FAKE):
            raise AssertionError("no %s: build it first" % FAKE)
        d = tempfile.mkdtemp(prefix="warden-jh-")
        b = Board(d)
        inmate = Inmate(b.mem, COMM_PHYS)
        inmate.start()
        try:
            with Daemon(b.config([b.spec()])) as dm:
                fn(dm, b, inmate)
        finally:
            inmate.stop()
            shutil.rmtree(d, ignore_errors=True)
    run.__name__ = fn.__name__
    return run


@test
@with_board
def cell_runs_and_shows_jailhouse_figures(d, b, inmate):
    c = d.wait_state("demo", "running", timeout=15)
    assert c["hypervisor"]["state"] == "running", c["hypervisor"]
    # the spec took its CPUs and regions from the .cell
    assert c["spec"]["cpus"] == [1], c["spec"]
    regions = c["spec"]["memory"]
    assert [(r["phys_start"], r["virt_start"]) for r in regions] == [("0x7fa00000", "0x0")], regions
    assert c["spec"]["comm"]["phys_start"] == hex(COMM_PHYS), c["spec"]["comm"]
    assert subsequence(b.calls(), ["ENABLE 0", "CELL_CREATE inmate-demo 0", "CELL_LOAD inmate-demo images=1 0",
                                   "CELL_START inmate-demo 0"]), b.calls()
    # The cell's console ring behind its comm page (api/warden/comm.h):
    # the daemon said the region's size; the test writes as an inmate does,
    # past the end once, so the ring wraps.
    with open(b.mem, "r+b") as f:
        f.seek(COMM_PHYS + 2064)
        assert struct.unpack("<I", f.read(4))[0] == 8192
        size = 8192 - 4096 - 32
        text = b"".join(b"line %04d of the cell's own console\n" % i for i in range(200))
        data = bytearray(size)
        for i, ch in enumerate(text):
            data[i % size] = ch
        f.seek(COMM_PHYS + 4096)
        f.write(struct.pack("<QIIQQ", 0x534E4F434E445257, size, 0, len(text), 0) + bytes(data))
    r = d.get("/cells/demo/console?bytes=100")
    assert r.status == 200 and r.body.encode() == text[-100:], r
    r = d.get("/cells/demo/console?bytes=65536")
    assert r.status == 200 and r.body.encode() == text[-size:], (len(r.body), size)
    # vmexit counters, as the hypervisor counts them
    cid = b.cell_id()
    b.write("cells/%d/statistics/vmexits_total" % cid, "1234\n")
    b.write("cells/%d/statistics/vmexits_psci" % cid, "7\n")
    c = d.wait_cell("demo", lambda c: c["hypervisor"]["exits"].get("total") == 1234, what="vmexits_total")
    assert c["hypervisor"]["exits"]["psci"] == 7, c["hypervisor"]
    # the driver's own id and state word of the cell
    assert c["hypervisor"]["cell_id"] == cid and c["hypervisor"]["native_state"] == "running", c["hypervisor"]
    m = d.get("/metrics").body
    # vmexits_total is no kind of its own: the kinds (its remainder as
    # "other") sum to it, so that sum() over kind counts nothing twice
    assert 'kind="total"' not in m, m
    exits = [int(line.rsplit(" ", 1)[1]) for line in m.splitlines()
             if line.startswith('warden_cell_vmexits_total{cell="demo",')]
    assert sum(exits) == 1234, m
    assert 'warden_cell_vmexits_total{cell="demo",kind="other"} ' in m, m
    assert 'warden_cell_vmexits_total{cell="demo",kind="psci"} 7' in m, m
    assert 'warden_cell_hypervisor_state{cell="demo",id="%d",state="running"} 1' % cid in m, m
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required (Debian package prometheus)"
    p = subprocess.run([promtool, "check", "metrics"], input=m.encode(), capture_output=True)
    assert p.returncode == 0, p.stdout + p.stderr
    # the hypervisor's own console, its newest bytes
    b.write("console", "Initializing Jailhouse hypervisor v0.12 on CPU 2\nActivating hypervisor\n")
    r = d.get("/hypervisor/console")
    assert r.status == 200 and r.body.endswith("Activating hypervisor\n") and "CPU 2" in r.body, r
    r = d.get("/hypervisor/console?bytes=11")
    assert r.status == 200 and r.body == "hypervisor\n", r
    assert d.get("/hypervisor/console?bytes=0").status == 400
    h = d.get("/hypervisor").json()
    jh = [x for x in h["backends"] if x["kind"] == "jailhouse"][0]
    assert jh["available"] is True, jh
    assert jh["stats"]["enabled"] == 1 and jh["stats"]["mem_pool_size"] > 0, jh
    assert jh["stats"]["mem_pool_used"] > 0 and jh["stats"]["remap_pool_size"] > 0, jh


@test
@with_board
def stall_is_stuck_and_restarts_without_destroy(d, b, inmate):
    d.wait_state("demo", "running", timeout=15)
    n = len(b.calls())
    inmate.beating = False
    c = d.wait_cell("demo", lambda c: c["failures"]["stuck"] >= 1, timeout=10, what="stuck")
    inmate.beating = True
    c = d.wait_cell("demo", lambda c: c["state"] == "running" and c["restarts"] >= 1, timeout=10,
                    what="running again")
    assert c["last_failure"]["kind"] == "stuck", c["last_failure"]
    after = b.calls()[n:]
    assert after[:2] == ["CELL_LOAD inmate-demo images=1 0", "CELL_START inmate-demo 0"], after
    assert not [l for l in after if l.startswith("CELL_DESTROY") or l.startswith("CELL_CREATE")], after


@test
@with_board
def failed_cpus_and_comm_abi_mismatch_are_panics(d, b, inmate):
    d.wait_state("demo", "running", timeout=15)
    cid = b.cell_id()
    b.write("cells/%d/cpus_failed" % cid, "0002\n")
    b.write("cells/%d/cpus_failed_list" % cid, "1\n")
    b.write("cells/%d/state" % cid, "failed\n")
    c = d.wait_cell("demo", lambda c: c["failures"]["panic"] == 1 and c["state"] == "running", timeout=10,
                    what="panic on failed CPUs, recovered")
    assert "CPU 1 failed" in c["last_failure"]["reason"], c["last_failure"]
    b.write("cells/%d/state" % cid, "Comm ABI mismatch\n")
    c = d.wait_cell("demo", lambda c: c["failures"]["panic"] == 2 and c["state"] == "running", timeout=10,
                    what="panic on Comm ABI mismatch, recovered")
    assert "Comm ABI mismatch" in c["last_failure"]["reason"], c["last_failure"]
    assert not [l for l in b.calls() if l.startswith("CELL_DESTROY")], b.calls()


@test
@with_board
def cell_that_does_not_decode_is_refused(d, b, inmate):
    r = d.post("/cells", body=b.spec("other", cell=b.bad))
    assert r.status == 422, r
    assert "jailhouse.cell_config" in r.body and "not a Jailhouse cell config" in r.body, r.body
    # CPUs the spec states must be the .cell's
    r = d.post("/cells", body=b.spec("other", cpus=[0]))
    assert r.status == 422 and ".cpus" in r.body and "disagree" in r.body, r.body
    # and so must the regions
    r = d.post("/cells", body=b.spec("other", memory=[{"name": "ram", "phys_start": "0x7fb00000", "virt_start": "0x0",
                                                        "size": "0x10000", "flags": ["read", "write", "loadable"]}]))
    assert r.status == 422 and ".memory[0]" in r.body, r.body


@test
@with_board
def cell_of_another_revision_or_arch_is_refused(d, b, inmate):
    doc = {"jailhouse": "cell", "revision": 14, "architecture": "arm64", "name": "old", "cpus": [1],
           "memory": [{"phys_start": "0x7fa00000", "virt_start": "0x0", "size": "0x10000",
                       "flags": ["read", "write", "execute", "loadable"]},
                      {"phys_start": hex(COMM_PHYS), "virt_start": hex(COMM_VIRT), "size": "0x1000",
                       "flags": ["read", "write", "rootshared"]}]}
    src = os.path.join(b.dir, "old.json")
    with open(src, "w") as f:
        json.dump(doc, f)
    for rev, arch, want in (("13", "arm64", "revision 13"), ("14", "x86", "for x86")):
        out = os.path.join(b.dir, "old-%s-%s.cell" % (rev, arch))
        subprocess.run([WARDENCTL, "jailhouse", "export", src, "--revision", rev, "--arch", arch, "-o", out],
                       check=True)
        r = d.post("/cells", body=b.spec("old", cell=out))
        assert r.status == 422, r
        assert want in r.body and "jailhouse.cell_config" in r.body, r.body


@test
@with_board
def cell_generated_from_the_spec_runs(d, b, inmate):
    """"jailhouse": {"cell": DOC}: wardend encodes warden's JSON form of the
    .cell itself; the driver gets the same bytes wardenctl export writes."""
    d.wait_state("demo", "running", timeout=15)
    doc = json.loads(subprocess.run([WARDENCTL, "jailhouse", "import", b.cell], capture_output=True, text=True,
                                    check=True).stdout)
    r = d.delete("/cells/demo")
    assert r.status == 202, r
    poll(lambda: d.get("/cells/demo").status == 404, timeout=15, what="demo deleted")
    spec = b.spec("gen")
    spec["jailhouse"] = {"cell": doc}
    bad = json.loads(json.dumps(spec))
    bad["jailhouse"]["cell"]["memory"][0]["flags"] = ["read", "bogus"]
    r = d.post("/cells", body=bad)
    assert r.status == 422 and "$.jailhouse.cell" in r.body, r
    both = json.loads(json.dumps(spec))
    both["jailhouse"]["cell_config"] = b.cell
    r = d.post("/cells", body=both)
    assert r.status == 422 and "exclude each other" in r.body, r
    r = d.post("/cells", body=spec)
    assert r.status == 201, r
    assert d.post("/cells/gen/start").status == 202
    c = d.wait_state("gen", "running", timeout=15)
    assert c["spec"]["jailhouse"] == {"cell": doc}, c["spec"]
    assert c["spec"]["cpus"] == [1], c["spec"]
    # the bytes CELL_CREATE took (the backend keeps them for adopt)
    with open(os.path.join(d.runtime_dir, "jailhouse", "gen.cell"), "rb") as f, open(b.cell, "rb") as g:
        assert f.read() == g.read()
    assert subsequence(b.calls(), ["CELL_CREATE inmate-demo 0", "CELL_LOAD inmate-demo images=1 0",
                                   "CELL_START inmate-demo 0"]), b.calls()


@test
@with_board
def linux_cell_is_placed_and_loaded(d, b, inmate):
    """A Linux cell as `jailhouse cell linux` places it: loader, kernel,
    DTB, initrd and parameter page in one CELL_LOAD; the fake driver holds
    every image to a loadable region of the .cell, as the real one does."""
    cell = export(b.dir, {
        "jailhouse": "cell", "revision": 14, "architecture": "arm64", "name": "linux-demo", "cpus": [1],
        "cpu_reset_address": "0x0",
        "memory": [
            {"phys_start": "0x7f800000", "virt_start": "0x0", "size": "0x10000",
             "flags": ["read", "write", "execute", "loadable"]},
            {"phys_start": "0x70000000", "virt_start": "0x70000000", "size": "0x8000000",
             "flags": ["read", "write", "execute", "dma", "loadable"]},
            {"phys_start": hex(LINUX_COMM), "virt_start": hex(LINUX_COMM), "size": "0x1000",
             "flags": ["read", "write", "rootshared"]},
        ]}, "linux.cell")
    kernel, initrd, loader = (os.path.join(b.dir, n) for n in ("Image", "initrd", "loader.bin"))
    synthetic_image(kernel)
    with open(initrd, "wb") as f:
        f.write(b"\x1f\x8b" + b"\0" * 4094)
    with open(loader, "wb") as f:
        f.write(b"\x00\x00\x00\x14" * 64)
    dtb = os.path.join(b.dir, "inmate.dtb")
    subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", dtb, "-"], check=True, input=b"""
        /dts-v1/;
        / { #address-cells = <2>; #size-cells = <2>; compatible = "linux,dummy-virt";
            chosen { };
            memory@0 { device_type = "memory"; reg = <0 0 0 0>; }; };""")
    spec = b.spec("linux", cell=cell, comm={"virt_start": hex(LINUX_COMM), "size": 4096},
                  linux={"kernel": kernel, "initrd": initrd, "dtb": dtb, "cmdline": "console=ttyAMA0"})
    del spec["images"]
    # a Linux cell on Jailhouse needs its device tree
    nodtb = dict(spec, linux={"kernel": kernel})
    r = d.post("/cells", body=nodtb)
    assert r.status == 422 and "dtb" in r.body, r
    # the loader is the backend's (default: Jailhouse's install path)
    cfg = b.config([b.spec()])
    cfg["backends"]["jailhouse"]["linux_loader"] = loader
    d.stop()
    d.config = cfg
    d.start()
    r = d.post("/cells", body=spec)
    assert r.status == 201, r
    r = d.post("/cells/linux/start")
    assert r.status == 202, r
    # CELL_START follows the load: wait for both, not for the load alone
    want = ["CELL_CREATE linux-demo 0", "CELL_LOAD linux-demo images=5 0", "CELL_START linux-demo 0"]
    try:
        poll(lambda: subsequence(b.calls(), want), timeout=15,
             what="CELL_LOAD with loader, kernel, DTB, initrd and parameters, then CELL_START")
    except AssertionError:
        raise AssertionError("no CELL_LOAD of 5 images and start: calls %s, cell %s" % (b.calls(), d.cell("linux")))


@test
@with_board
def hypervisor_restart_is_destroy_disable_enable_boot(d, b, inmate):
    d.wait_state("demo", "running", timeout=15)
    n = len(b.calls())
    r = d.post("/hypervisor/restart")
    assert r.status == 202, r
    op = d.wait_operation(r.json()["operation"], timeout=30)
    assert op["phase"] == "succeeded", op
    d.wait_state("demo", "running", timeout=15)
    after = b.calls()[n:]
    assert subsequence(after, ["CELL_DESTROY inmate-demo 0", "DISABLE 0", "ENABLE 0", "CELL_CREATE inmate-demo 0",
                               "CELL_LOAD inmate-demo images=1 0", "CELL_START inmate-demo 0"]), after
    assert after.index("DISABLE 0") < after.index("ENABLE 0"), after


if __name__ == "__main__":
    run_tests()
