#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Extract the uncompressed ELF vmlinux from an x86 bzImage (/boot/vmlinuz-*).

QEMU boots an ELF vmlinux through its PVH entry note without firmware
setup, which is what the Linux inmate image uses.

The payload is found through the boot protocol header (payload_offset and
payload_length, boot protocol 2.08 and later) and, failing that, by
scanning for the magic of each compression format the kernel supports.
gzip, xz, bzip2 and lzma are decompressed with the standard library; zstd,
lz4 and lzo need the `zstd`, `lz4` or `lzop` program.

usage: extract-vmlinux.py VMLINUZ OUTPUT
"""
import bz2
import lzma
import os
import shutil
import struct
import subprocess
import sys
import zlib

ELF_MAGIC = b"\x7fELF"
PT_NOTE = 4
XEN_ELFNOTE_PHYS32_ENTRY = 18


def gunzip(data):
    return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)


# A false match of a magic may announce any dictionary size.
LZMA_MEMLIMIT = 1 << 30


def unxz(data):
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ,
                                 memlimit=LZMA_MEMLIMIT).decompress(data)


def unlzma(data):
    return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE,
                                 memlimit=LZMA_MEMLIMIT).decompress(data)


def bunzip2(data):
    return bz2.BZ2Decompressor().decompress(data)


def external(*argv):
    def run(data):
        if not shutil.which(argv[0]):
            raise RuntimeError("needs the '%s' program" % argv[0])
        # The kernel appends the uncompressed size (4 bytes) to the stream;
        # command-line tools may reject it as trailing garbage.
        data = bytes(data)
        for blob in (data, data[:-4]):
            proc = subprocess.run(argv, input=blob, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
            if proc.stdout.startswith(ELF_MAGIC):
                return proc.stdout
        raise RuntimeError("%s failed" % " ".join(argv))

    return run


# (name, magic, decompressor), in the order the kernel lists them.
FORMATS = [
    ("gzip", b"\x1f\x8b\x08", gunzip),
    ("bzip2", b"BZh", bunzip2),
    ("lzma", b"\x5d\x00\x00", unlzma),
    ("xz", b"\xfd7zXZ\x00", unxz),
    ("lzo", b"\x89LZO\x00", external("lzop", "-dc")),
    ("lz4", b"\x02\x21\x4c\x18", external("lz4", "-dc")),
    ("zstd", b"\x28\xb5\x2f\xfd", external("zstd", "-dc")),
]


def header_payload(image):
    """The payload as the boot protocol header describes it, or None."""
    if len(image) < 0x250 or image[0x202:0x206] != b"HdrS":
        return None
    version = struct.unpack_from("<H", image, 0x206)[0]
    if version < 0x208:
        return None
    setup_sects = image[0x1F1] or 4
    offset, length = struct.unpack_from("<II", image, 0x248)
    start = (setup_sects + 1) * 512 + offset
    if length == 0 or start + length > len(image):
        return None
    return memoryview(image)[start:start + length]


def candidates(image):
    """(format name, bytes from a candidate start, decompressor), the
    header's payload first."""
    payload = header_payload(image)
    if payload is not None:
        for name, magic, fn in FORMATS:
            if payload[:len(magic)] == magic:
                yield name, payload, fn
    for name, magic, fn in FORMATS:
        pos = image.find(magic)
        while pos >= 0:
            yield name, memoryview(image)[pos:], fn
            pos = image.find(magic, pos + 1)


def pvh_entry(elf):
    """True if the ELF carries the Xen PVH entry note QEMU boots through."""
    try:
        return find_pvh_note(elf)
    except struct.error:  # truncated headers
        return False


def find_pvh_note(elf):
    if elf[4] != 2 or elf[5] != 1:  # ELFCLASS64, little-endian
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != PT_NOTE:
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            pos += 12 + (namesz + 3 & ~3) + (descsz + 3 & ~3)
    return False


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    src, dst = argv[1], argv[2]
    with open(src, "rb") as f:
        image = f.read()

    errors = []
    for name, data, fn in candidates(image):
        try:
            elf = fn(data)
        except (OSError, EOFError, ValueError, MemoryError, lzma.LZMAError,
                zlib.error, RuntimeError) as e:
            errors.append("%s: %s" % (name, e))
            continue
        if elf.startswith(ELF_MAGIC):
            break
    else:
        print("extract-vmlinux.py: no compressed ELF found in %s" % src,
              file=sys.stderr)
        for e in sorted(set(errors)):
            print("  " + e, file=sys.stderr)
        return 1

    if not pvh_entry(elf):
        print("extract-vmlinux.py: warning: %s has no PVH entry note; "
              "QEMU cannot boot it with -kernel" % dst, file=sys.stderr)
    tmp = dst + ".tmp"
    with open(tmp, "wb") as f:
        f.write(elf)
    os.replace(tmp, dst)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
