#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""extract-vmlinux.py on synthetic bzImages; speaks TAP.

usage: test-extract-vmlinux.py EXTRACT_VMLINUX_PY
"""
import atexit
import bz2
import gzip
import lzma
import os
import shutil
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tests", "lib"))
from harness import Skip, run_tests, test  # noqa: E402  (the project's TAP runner)

SCRIPT = sys.argv[1]
WORK = tempfile.mkdtemp(prefix="test-extract-vmlinux.")


def elf64(pvh=True):
    """A minimal x86-64 ELF: a header, one PT_NOTE, optionally the Xen PVH
    entry note, and some bytes to compress."""
    name = b"Xen\0"
    desc = struct.pack("<I", 0x1000000)
    note = struct.pack("<III", len(name), len(desc), 18 if pvh else 1) + name + desc
    phoff, phnum = 64, 1
    notes_off = phoff + 56 * phnum
    ehdr = (b"\x7fELF\x02\x01\x01" + b"\0" * 9 +
            struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0x1000000, phoff, 0, 0,
                        64, 56, phnum, 64, 0, 0))
    phdr = struct.pack("<IIQQQQQQ", 4, 4, notes_off, 0, 0, len(note),
                       len(note), 4)
    return ehdr + phdr + note + bytes(range(256)) * 64


def bzimage(payload, header=True, setup_sects=3):
    """Setup sectors with a boot protocol 2.15 header describing `payload`,
    then the protected-mode part holding it after some decompressor code,
    then the 4-byte size the kernel appends."""
    setup = bytearray((setup_sects + 1) * 512)
    if header:
        setup[0x1F1] = setup_sects
        setup[0x202:0x206] = b"HdrS"
        struct.pack_into("<H", setup, 0x206, 0x20F)
        struct.pack_into("<II", setup, 0x248, 0x300, len(payload) + 4)
    code = os.urandom(0x300).replace(b"\x1f\x8b", b"\0\0")
    return bytes(setup) + code + payload + b"\x12\x34\x56\x78" + os.urandom(100)


def extract(name, image):
    src = os.path.join(WORK, name + ".bz")
    dst = os.path.join(WORK, name + ".elf")
    with open(src, "wb") as f:
        f.write(image)
    proc = subprocess.run([sys.executable, SCRIPT, src, dst],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    out = None
    if proc.returncode == 0:
        with open(dst, "rb") as f:
            out = f.read()
    return proc.returncode, out, proc.stderr


def roundtrip(name, compress, header=True):
    elf = elf64()
    rc, out, err = extract(name, bzimage(compress(elf), header))
    assert rc == 0, err
    assert out == elf, "extracted bytes differ"
    assert err == "", err


@test
def test_gzip_by_header():
    roundtrip("gzip", lambda d: gzip.compress(d, mtime=0))


@test
def test_xz_by_header():
    # As the kernel packs it: xz with the x86 BCJ filter and a CRC32.
    roundtrip("xz", lambda d: lzma.compress(
        d, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32,
        filters=[{"id": lzma.FILTER_X86}, {"id": lzma.FILTER_LZMA2}]))


@test
def test_bzip2_by_scan():
    roundtrip("bzip2", bz2.compress, header=False)


@test
def test_lzma_by_scan():
    roundtrip("lzma", lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
              header=False)


@test
def test_zstd_by_header():
    zstd = shutil.which("zstd")
    if not zstd:
        raise Skip("no zstd program")

    def compress(d):
        return subprocess.run([zstd, "-q", "-c"], input=d,
                              stdout=subprocess.PIPE, check=True).stdout
    roundtrip("zstd", compress)


@test
def test_warns_without_pvh_note():
    elf = elf64(pvh=False)
    rc, out, err = extract("nopvh", bzimage(gzip.compress(elf, mtime=0)))
    assert rc == 0 and out == elf, err
    assert "no PVH entry note" in err, err


@test
def test_rejects_non_elf_payload():
    rc, _, err = extract("notelf", bzimage(gzip.compress(b"hello" * 100)))
    assert rc == 1, rc
    assert "no compressed ELF" in err, err


@test
def test_rejects_garbage():
    rc, _, err = extract("garbage", b"MZ" + b"\0" * 4096)
    assert rc == 1, rc


if __name__ == "__main__":
    atexit.register(shutil.rmtree, WORK, ignore_errors=True)
    run_tests()
