#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Find what the Linux inmate is built from; run by meson at setup time.

Prints key=value lines, a value left empty when it was not found:
  kver     kernel release, e.g. 6.1.0-56-amd64
  kdir     its headers, /usr/src/linux-headers-KVER (Debian linux-headers-*)
  vmlinuz  /boot/vmlinuz-KVER, readable (Debian linux-image-*)
  busybox  a static busybox (Debian busybox-static)

Among several header trees, the newest one that has a matching kernel image
wins, so that the module loads into the kernel the image boots.
"""
import glob
import os
import re
import struct
import sys

HEADERS_GLOB = "/usr/src/linux-headers-*-amd64"
BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")


def version_key(kver):
    return [int(n) for n in re.findall(r"\d+", kver)]


def is_static_elf(path):
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 16)
        if data[:4] != b"\x7fELF" or data[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", data, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
        return all(struct.unpack_from("<I", data, phoff + i * phentsize)[0]
                   != 3 for i in range(phnum))  # PT_INTERP
    except (OSError, struct.error):
        return False


def main():
    trees = []
    for kdir in glob.glob(HEADERS_GLOB):
        if not (os.path.isfile(os.path.join(kdir, "Makefile")) and
                os.path.isfile(os.path.join(kdir, "Module.symvers"))):
            continue
        kver = os.path.basename(kdir)[len("linux-headers-"):]
        vmlinuz = "/boot/vmlinuz-" + kver
        has_image = os.access(vmlinuz, os.R_OK)
        trees.append((has_image, version_key(kver), kver, kdir,
                      vmlinuz if has_image else ""))
    kver = kdir = vmlinuz = ""
    if trees:
        _, _, kver, kdir, vmlinuz = max(trees)

    busybox = next((p for p in BUSYBOX_PATHS if is_static_elf(p)), "")
    print("kver=" + kver)
    print("kdir=" + kdir)
    print("vmlinuz=" + vmlinuz)
    print("busybox=" + busybox)
    return 0


if __name__ == "__main__":
    sys.exit(main())
