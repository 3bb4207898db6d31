#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the Linux inmate's initramfs: a gzip'ed cpio (newc) archive.

The output depends on nothing but the input files' contents: entries are
sorted, inode numbers assigned in that order, owners root, mtimes 0, and
gzip carries neither a name nor a time, so two builds are byte-identical.

usage: mkinitramfs.py --init init.sh --busybox /bin/busybox
                      --module warden.ko --output initramfs.cpio.gz
                      [--dynamic /usr/bin/crun --container-root]
"""
import argparse
import gzip
import os
import re
import stat
import struct
import subprocess
import sys

CPIO_MAGIC = b"070701"
TRAILER = "TRAILER!!!"

# Everything /init needs before `busybox --install` made the applet links.
DIRS = ["bin", "dev", "etc", "lib", "lib/modules", "proc", "root", "run",
        "sbin", "sys", "tmp", "usr", "usr/bin", "usr/sbin"]
SYMLINKS = {"bin/sh": "busybox"}
# The kernel opens /dev/console for /init before anything is mounted.
CHARDEVS = {"dev/console": (5, 1, 0o600), "dev/null": (1, 3, 0o666)}
# The root of the containers init.sh starts with crun (warden_container=):
# empty mount points, and the file /init is bind-mounted onto.
CONTAINER_ROOT = "containers/rootfs"
CONTAINER_DIRS = ["bin", "dev", "proc", "sbin", "tmp", "usr", "usr/bin", "usr/sbin"]


class Archive:
    """Entries by path; written sorted, so insertion order does not matter."""

    def __init__(self):
        self.entries = {}

    def add_dir(self, path, mode=0o755):
        self.entries[path] = (stat.S_IFDIR | mode, b"", 0, 0)

    def add_file(self, path, data, mode):
        self.entries[path] = (stat.S_IFREG | mode, data, 0, 0)

    def add_symlink(self, path, target):
        self.entries[path] = (stat.S_IFLNK | 0o777, target.encode(), 0, 0)

    def add_chardev(self, path, major, minor, mode):
        self.entries[path] = (stat.S_IFCHR | mode, b"", major, minor)

    def cpio(self):
        out = bytearray()
        for ino, path in enumerate(sorted(self.entries), start=1):
            mode, data, major, minor = self.entries[path]
            nlink = 2 if stat.S_ISDIR(mode) else 1
            out += entry(path, ino, mode, nlink, data, major, minor)
        out += entry(TRAILER, 0, 0, 1, b"", 0, 0)
        out += b"\0" * (-len(out) % 512)
        return bytes(out)


def pad4(n):
    return b"\0" * (-n % 4)


def entry(name, ino, mode, nlink, data, rmajor, rminor):
    name_bytes = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmajor, rminor,
              len(name_bytes), 0)
    head = CPIO_MAGIC + b"".join(b"%08X" % f for f in fields) + name_bytes
    return head + pad4(len(head)) + data + pad4(len(data))


def read_cpio(blob):
    """Parse a newc archive into {path: (mode, data, rmajor, rminor)}; for
    the tests."""
    entries, pos = {}, 0
    while True:
        if blob[pos:pos + 6] != CPIO_MAGIC:
            raise ValueError("bad cpio magic at %d" % pos)
        f = [int(blob[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rmajor, rminor, namesize = f[1], f[6], f[9], f[10], f[11]
        pos += 110
        name = blob[pos:pos + namesize - 1].decode()
        pos += namesize + (-(110 + namesize) % 4)
        data = blob[pos:pos + size]
        pos += size + (-size % 4)
        if name == TRAILER:
            return entries
        entries[name] = (mode, data, rmajor, rminor)


def is_static_elf(data):
    """True for an ELF without a program interpreter (PT_INTERP)."""
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return False
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return all(struct.unpack_from("<I", data, phoff + i * phentsize)[0] != 3
               for i in range(phnum))


def shared_libraries(path):
    """The absolute paths of the libraries (the dynamic loader included)
    that `path` loads, as ldd resolves them on this machine, sorted."""
    out = subprocess.run(["ldd", path], check=True, capture_output=True, text=True).stdout
    libs = set()
    for line in out.splitlines():
        m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if m:
            libs.add(m.group(1))
        elif "not found" in line:
            raise SystemExit("mkinitramfs.py: %s: %s" % (path, line.strip()))
    return sorted(libs)


def add_parents(a, path):
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        d = "/".join(parts[:i])
        if d not in a.entries:
            a.add_dir(d)


def build(init, busybox, module, extra_modules=(), programs=(), dynamic=(), container_root=False):
    with open(busybox, "rb") as f:
        bb = f.read()
    if not is_static_elf(bb):
        raise SystemExit("mkinitramfs.py: %s is not a static 64-bit ELF "
                         "(install busybox-static)" % busybox)
    a = Archive()
    for d in DIRS:
        a.add_dir(d)
    for path, target in SYMLINKS.items():
        a.add_symlink(path, target)
    for path, (major, minor, mode) in CHARDEVS.items():
        a.add_chardev(path, major, minor, mode)
    with open(init, "rb") as f:
        a.add_file("init", f.read(), 0o755)
    a.add_file("bin/busybox", bb, 0o755)
    with open(module, "rb") as f:
        a.add_file("lib/modules/warden.ko", f.read(), 0o644)
    for path in sorted(extra_modules, key=os.path.basename):
        with open(path, "rb") as f:
            a.add_file("lib/modules/" + os.path.basename(path), f.read(), 0o644)
    for path in sorted(programs, key=os.path.basename):
        with open(path, "rb") as f:
            data = f.read()
        if not is_static_elf(data):
            raise SystemExit("mkinitramfs.py: %s is not a static 64-bit ELF" % path)
        a.add_file("bin/" + os.path.basename(path), data, 0o755)
    # Dynamically linked programs (crun) with their libraries at the paths
    # the loader looks for them, each as a regular file.
    for path in sorted(dynamic, key=os.path.basename):
        with open(path, "rb") as f:
            a.add_file("bin/" + os.path.basename(path), f.read(), 0o755)
        for lib in shared_libraries(path):
            with open(lib, "rb") as f:
                data = f.read()
            add_parents(a, lib.lstrip("/"))
            a.add_file(lib.lstrip("/"), data, 0o755)
    if container_root:
        add_parents(a, CONTAINER_ROOT + "/x")
        for d in CONTAINER_DIRS:
            a.add_dir(CONTAINER_ROOT + "/" + d)
        a.add_file(CONTAINER_ROOT + "/init", b"", 0o644)
    return gzip.compress(a.cpio(), compresslevel=9, mtime=0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--init", required=True)
    ap.add_argument("--busybox", required=True)
    ap.add_argument("--module", required=True)
    ap.add_argument("--extra-module", action="append", default=[],
                    help="another module to put into /lib/modules (init.sh loads pvpanic*.ko)")
    ap.add_argument("--program", action="append", default=[],
                    help="a static program to put into /bin (init.sh's warden_run= runs it)")
    ap.add_argument("--dynamic", action="append", default=[],
                    help="a dynamically linked program to put into /bin, with its libraries (crun)")
    ap.add_argument("--container-root", action="store_true",
                    help="add the root of init.sh's warden_container= containers")
    ap.add_argument("--output", required=True)
    args = ap.parse_args()

    blob = build(args.init, args.busybox, args.module, args.extra_module, args.program,
                 args.dynamic, args.container_root)
    tmp = args.output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
    os.replace(tmp, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
