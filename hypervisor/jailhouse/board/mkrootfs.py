#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Pack a staged directory into the board's root initramfs (gzip'ed newc).

Deterministic like driver/linux/mkinitramfs.py, whose archive writer it
uses: entries sorted, owners root, mtimes 0, so the same stage gives the
same bytes. Symlinks are kept as links; /dev/console and /dev/null are
added, since the kernel opens the console before /init mounts devtmpfs.

usage: mkrootfs.py STAGE_DIR OUTPUT.cpio.gz
"""
import gzip
import os
import stat
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "driver", "linux"))
from mkinitramfs import CHARDEVS, Archive  # noqa: E402


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.strip().splitlines()[-1])
    stage, output = sys.argv[1], sys.argv[2]
    a = Archive()
    for root, dirs, files in os.walk(stage):
        dirs.sort()
        for name in dirs + files:
            full = os.path.join(root, name)
            rel = os.path.relpath(full, stage)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                a.add_symlink(rel, os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                a.add_dir(rel, stat.S_IMODE(st.st_mode))
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    a.add_file(rel, f.read(), stat.S_IMODE(st.st_mode))
    a.add_dir("dev")
    for path, (major, minor, mode) in CHARDEVS.items():
        a.add_chardev(path, major, minor, mode)
    tmp = output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(gzip.compress(a.cpio(), compresslevel=6, mtime=0))
    os.replace(tmp, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
