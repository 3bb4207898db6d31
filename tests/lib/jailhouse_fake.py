# SPDX-License-Identifier: MIT
"""The Jailhouse backend without Jailhouse, as the daemon tests run it.

wardend spawns warden-jailhouse-fake in place of warden-jailhouse: the real
helper on the fake driver of tests/lib/fake-jailhouse.h, which keeps a
sysfs tree the way the driver keeps /sys/devices/jailhouse and appends
every ioctl to SYSFS.calls ("CELL_LOAD demo images=1 0"). /dev/mem is a
sparse file: a comm region is the bytes at its physical address, and an
Inmate thread writes warden's beats there (api/warden/comm.h).

Used by tests/e2e/test_jailhouse.py and tests/jailhouse/test_board_configs.py.
"""
import json
import mmap
import os
import struct
import subprocess
import threading
import time

from harness import BUILD, WARDENCTL

FAKE = os.environ.get("WARDEN_JAILHOUSE_FAKE", os.path.join(BUILD, "tests", "warden-jailhouse-fake"))

COMM_MAGIC = 0x4d4d4f434e445257
INMATE_RUNNING = 2


def export(d, doc, name, revision=14):
    """Writes doc (warden's JSON form of a .cell) to D/NAME.json and
    exports it to D/NAME; returns that path."""
    src = os.path.join(d, name + ".json")
    with open(src, "w") as f:
        json.dump(doc, f)
    return export_file(src, os.path.join(d, name), revision)


def demo_configs(d, comm_phys, comm_virt):
    """The arm64 system config, a one-CPU .cell with a rootshared comm
    region at comm_phys (comm_virt in the cell) and a 1 KiB image, written
    into d, as the e2e tests against the fake driver use them; returns
    (system, cell, image) paths."""
    system = export(d, {
        "jailhouse": "system", "revision": 14, "architecture": "arm64",
        "hypervisor_memory": {"phys_start": "0x7fc00000", "virt_start": "0x0", "size": "0x400000", "flags": []},
        "platform_info": {"arm": {"maintenance_irq": 25, "gic_version": 3, "gicd_base": "0x8000000",
                                  "gicc_base": "0x0", "gich_base": "0x0", "gicv_base": "0x0",
                                  "gicr_base": "0x80a0000"}},
        "root_cell": {"name": "qemu-arm64", "cpus": [0, 1], "memory": [
            {"phys_start": "0x40000000", "virt_start": "0x40000000", "size": "0x3f000000",
             "flags": ["read", "write", "execute"]}]},
    }, "system.cell")
    cell = export(d, {
        "jailhouse": "cell", "revision": 14, "architecture": "arm64", "name": "inmate-demo", "cpus": [1],
        "cpu_reset_address": "0x0",
        "memory": [
            {"phys_start": "0x7fa00000", "virt_start": "0x0", "size": "0x10000",
             "flags": ["read", "write", "execute", "loadable"]},
            {"phys_start": hex(comm_phys), "virt_start": hex(comm_virt), "size": "0x2000",
             "flags": ["read", "write", "rootshared"]},
        ],
    }, "demo.cell")
    image = os.path.join(d, "inmate.bin")
    with open(image, "wb") as f:
        f.write(bytes(range(256)) * 4)
    return system, cell, image


def export_file(src, out, revision=None):
    """wardenctl jailhouse export SRC -o OUT (at the document's own
    revision unless one is given); returns out."""
    argv = [WARDENCTL, "jailhouse", "export", src, "-o", out]
    if revision is not None:
        argv[4:4] = ["--revision", str(revision)]
    subprocess.run(argv, check=True)
    return out


def subsequence(calls, want):
    """Whether want appears in calls in that order (other calls between)."""
    it = iter(calls)
    return all(any(c == w for c in it) for w in want)


def synthetic_image(path, size=0x200000):
    """A minimal arm64 Image: the header Linux's booting.rst describes
    (text_offset 0, image_size, flags, "ARM\\x64" at 56), then a pattern."""
    head = struct.pack("<IIQQQQQQI", 0x14000000, 0, 0, size, 0xa, 0, 0, 0, 0x644d5241) + b"\0" * 4
    with open(path, "wb") as f:
        f.write(head + bytes(range(256)) * ((size - len(head)) // 256))


class Inmate(threading.Thread):
    """Beats into the comm region at physical address `phys` of the mem
    file while self.beating; stops advancing seq (a stall) when it is
    cleared."""

    def __init__(self, mem_path, phys, period=0.01):
        super().__init__(daemon=True)
        self.fd = os.open(mem_path, os.O_RDWR)
        self.map = mmap.mmap(self.fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=phys)
        self.period = period
        self.beating = True
        self.done = False
        self.seq = 0

    def run(self):
        start = time.monotonic_ns()
        while not self.done:
            if self.beating:
                self.seq += 1
                m = self.map
                # magic, abi, size, state, period_ms; then uptime; seq last
                m[0:24] = struct.pack("<QIIII", COMM_MAGIC, 1, 4096, INMATE_RUNNING, int(self.period * 1000))
                m[32:40] = struct.pack("<Q", time.monotonic_ns() - start)
                m[24:32] = struct.pack("<Q", self.seq)
            time.sleep(self.period)

    def stop(self):
        self.done = True
        self.join(2)
        self.map.close()
        os.close(self.fd)


class FakeDriver:
    """The files the fake helper and wardend share, under directory d: the
    sysfs tree, its call log, the mem file (sparse, mem_size bytes) and a
    stand-in for /dev/jailhouse."""

    def __init__(self, d, mem_size):
        self.dir = d
        self.sysfs = os.path.join(d, "sysfs")
        self.calls_path = self.sysfs + ".calls"
        self.mem = os.path.join(d, "mem")
        with open(self.mem, "wb") as f:
            f.truncate(mem_size)
        self.device = os.path.join(d, "jailhouse-device")
        open(self.device, "w").close()

    def backend(self, system_config, **extra):
        """backends.jailhouse of a wardend config on this fake."""
        b = {"system_config": system_config, "helper": FAKE, "sysfs": self.sysfs, "device": self.device,
             "mem": self.mem}
        b.update(extra)
        return b

    def calls(self):
        try:
            with open(self.calls_path) as f:
                return [l.rstrip("\n") for l in f]
        except OSError:
            return []

    def cell_id(self, name):
        for e in os.listdir(os.path.join(self.sysfs, "cells")):
            with open(os.path.join(self.sysfs, "cells", e, "name")) as f:
                if f.read().strip() == name:
                    return int(e)
        return None

    def write(self, rel, text):
        """As the hypervisor would change it: the whole attribute at once."""
        path = os.path.join(self.sysfs, rel)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.rename(path + ".tmp", path)
