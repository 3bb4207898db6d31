#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""mkinitramfs.py: layout, reproducibility, and the built image; speaks TAP.

usage: test-mkinitramfs.py MKINITRAMFS_PY
           [INITRAMFS INIT_SH BUSYBOX WARDEN_KO]

With the last four, the built initramfs must be byte-identical to a fresh
build from the same inputs.
"""
import atexit
import gzip
import importlib.util
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tests", "lib"))
from harness import Skip, run_tests, test  # noqa: E402  (the project's TAP runner)

sys.dont_write_bytecode = True
_spec = importlib.util.spec_from_file_location("mkinitramfs", sys.argv[1])
mk = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mk)

WORK = tempfile.mkdtemp(prefix="test-mkinitramfs.")


def elf64(interp=False):
    """An ELF64 header with one program header: PT_INTERP or PT_LOAD."""
    ehdr = (b"\x7fELF\x02\x01\x01" + b"\0" * 9 +
            struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, 64, 0, 0, 64, 56, 1,
                        64, 0, 0))
    phdr = struct.pack("<IIQQQQQQ", 3 if interp else 1, 4, 0, 0, 0, 0, 0, 1)
    return ehdr + phdr + b"busybox" * 100


def inputs(busybox=None):
    paths = {}
    for name, data in (("init.sh", b"#!/bin/sh\necho hi\n"),
                       ("busybox", busybox or elf64()),
                       ("warden.ko", b"\x7fELF module")):
        paths[name] = os.path.join(WORK, name)
        with open(paths[name], "wb") as f:
            f.write(data)
    return paths["init.sh"], paths["busybox"], paths["warden.ko"]


def unpack(blob):
    return mk.read_cpio(gzip.decompress(blob))


@test
def test_reproducible():
    a = mk.build(*inputs())
    os.utime(os.path.join(WORK, "init.sh"), (1, 1))  # mtimes must not matter
    b = mk.build(*inputs())
    assert a == b, "two builds differ"


@test
def test_layout():
    entries = unpack(mk.build(*inputs()))
    mode, data, _, _ = entries["init"]
    assert stat.S_ISREG(mode) and mode & 0o777 == 0o755, oct(mode)
    assert data == b"#!/bin/sh\necho hi\n"
    mode, data, _, _ = entries["bin/sh"]
    assert stat.S_ISLNK(mode) and data == b"busybox", (oct(mode), data)
    mode, _, major, minor = entries["dev/console"]
    assert stat.S_ISCHR(mode) and (major, minor) == (5, 1)
    assert entries["lib/modules/warden.ko"][1] == b"\x7fELF module"
    assert entries["bin/busybox"][1] == elf64()
    for path in entries:
        assert not path.startswith("/"), path
        parent = os.path.dirname(path)
        assert parent == "" or stat.S_ISDIR(entries[parent][0]), path


@test
def test_sorted_root_owned():
    blob = gzip.decompress(mk.build(*inputs()))
    names, pos = [], 0
    while True:
        f = [int(blob[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        name = blob[pos + 110:pos + 110 + f[11] - 1].decode()
        if name == mk.TRAILER:
            break
        assert f[2] == f[3] == 0, "uid/gid of %s" % name
        assert f[5] == 0, "mtime of %s" % name
        names.append(name)
        pos += 110 + f[11] + (-(110 + f[11]) % 4)
        pos += f[6] + (-f[6] % 4)
    assert names == sorted(names), names
    assert len(blob) % 512 == 0


@test
def test_rejects_dynamic_busybox():
    try:
        mk.build(*inputs(busybox=elf64(interp=True)))
    except SystemExit as e:
        assert "busybox-static" in str(e), e
        return None
    raise AssertionError("a dynamic busybox was accepted")


@test
def test_cpio_tool_agrees():
    cpio = shutil.which("cpio")
    if not cpio:
        raise Skip("no cpio program")
    raw = gzip.decompress(mk.build(*inputs()))
    listed = subprocess.run([cpio, "-it", "--quiet"], input=raw,
                            stdout=subprocess.PIPE, check=True).stdout
    assert sorted(listed.decode().split()) == sorted(mk.read_cpio(raw)), listed
    return None


@test
def test_dynamic_program_brings_its_libraries():
    # /bin/sh of this machine: dynamically linked on Debian (dash)
    sh = os.path.realpath("/bin/sh")
    libs = mk.shared_libraries(sh)
    if not libs:
        raise Skip("%s is not dynamically linked here" % sh)
    blob = mk.build(*inputs(), dynamic=[sh], container_root=True)
    entries = unpack(blob)
    with open(sh, "rb") as f:
        assert entries["bin/" + os.path.basename(sh)][1] == f.read()
    for lib in libs:
        mode, data, _, _ = entries[lib.lstrip("/")]
        assert stat.S_ISREG(mode), lib  # a file, never a dangling link
        with open(lib, "rb") as f:
            assert data == f.read(), lib
        # every parent directory is in the archive, before it
        parent = os.path.dirname(lib.lstrip("/"))
        assert stat.S_ISDIR(entries[parent][0]), parent
    assert any("ld-linux" in lib for lib in libs), libs  # the loader too
    # the containers' root: mount points and the file /init binds onto
    for d in ("bin", "dev", "proc", "tmp", "usr"):
        assert stat.S_ISDIR(entries["containers/rootfs/" + d][0]), d
    assert entries["containers/rootfs/init"][1] == b""
    assert blob == mk.build(*inputs(), dynamic=[sh], container_root=True)  # reproducible too
    return None


@test
def test_missing_library_is_an_error():
    prog = os.path.join(WORK, "needs-missing")
    fake_ldd = os.path.join(WORK, "ldd")
    with open(fake_ldd, "w") as f:
        f.write("#!/bin/sh\necho '\tlibnothere.so.1 => not found'\n")
    os.chmod(fake_ldd, 0o755)
    with open(prog, "wb") as f:
        f.write(elf64(interp=True))
    old = os.environ["PATH"]
    os.environ["PATH"] = WORK + ":" + old
    try:
        mk.build(*inputs(), dynamic=[prog])
    except SystemExit as e:
        assert "libnothere.so.1" in str(e), e
    else:
        raise AssertionError("a program whose library is missing was packed")
    finally:
        os.environ["PATH"] = old
    return None


@test
def test_built_image():
    if len(sys.argv) < 6:
        raise Skip("no built initramfs")
    image, init, busybox, module = sys.argv[2:6]
    # the pvpanic modules, where the kernel has them, "--program PATH" pairs
    # (nqueens-host) and "--dynamic PATH" pairs
    extra, programs, dynamic, rest = [], [], [], sys.argv[6:]
    while rest:
        if rest[0] in ("--program", "--dynamic") and len(rest) > 1:
            (programs if rest[0] == "--program" else dynamic).append(rest[1])
            rest = rest[2:]
        else:
            extra.append(rest.pop(0))
    with open(image, "rb") as f:
        built = f.read()
    assert built == mk.build(init, busybox, module, extra, programs, dynamic), \
        "the built initramfs differs from a fresh build of the same inputs"
    entries = unpack(built)
    with open(init, "rb") as f:
        assert entries["init"][1] == f.read()
    with open(module, "rb") as f:
        assert entries["lib/modules/warden.ko"][1] == f.read()
    return None


if __name__ == "__main__":
    atexit.register(shutil.rmtree, WORK, ignore_errors=True)
    run_tests()
