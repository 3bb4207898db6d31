#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Build warden.ko out of tree without writing into the source directory.

Kbuild writes its objects next to the sources given as M=, so the sources
are copied into a private work directory first (only when they changed, so
make stays incremental) and only the finished module is copied to the
output path.
"""
import argparse
import os
import shutil
import subprocess
import sys

# Printed by Kbuild for every module when the kernel tree has no vmlinux;
# BTF for a module loaded with insmod is no loss.
NOISE = ("Skipping BTF generation",)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kdir", required=True, help="kernel build tree (headers)")
    ap.add_argument("--api", required=True, help="directory holding warden/comm.h")
    ap.add_argument("--workdir", required=True, help="private directory for Kbuild")
    ap.add_argument("--output", required=True, help="where warden.ko goes")
    ap.add_argument("--werror", action="store_true")
    ap.add_argument("--arch", help="kernel ARCH= (cross builds; default: the host's)")
    ap.add_argument("--cross-compile", help="CROSS_COMPILE= toolchain prefix, "
                    "e.g. aarch64-linux-gnu-")
    ap.add_argument("--sysroot", help="the headers are unpacked into this "
                    "directory, not installed: follow their Makefile's "
                    "absolute include into it")
    ap.add_argument("sources", nargs="+", help="warden.c and Kbuild")
    args = ap.parse_args()

    os.makedirs(args.workdir, exist_ok=True)
    for src in args.sources:
        dst = os.path.join(args.workdir, os.path.basename(src))
        if not os.path.exists(dst) or not same_file(src, dst):
            # A new mtime, whatever the source had: make must see it.
            shutil.copyfile(src, dst)

    workdir, api = os.path.abspath(args.workdir), os.path.abspath(args.api)
    kdir = os.path.abspath(args.kdir)
    cmd = ["make", "-s", "-C", kdir]
    if args.sysroot:
        top = sysroot_makefile(kdir, os.path.abspath(args.sysroot))
        if not top:
            print("build-module.py: %s/Makefile includes no absolute path "
                  "to follow into %s" % (kdir, args.sysroot), file=sys.stderr)
            return 1
        cmd += ["-f", top]
    if args.arch:
        cmd.append("ARCH=" + args.arch)
    if args.cross_compile:
        cmd.append("CROSS_COMPILE=" + args.cross_compile)
    cmd += [
        "M=" + workdir,
        "WARDEN_API=" + api,
        # Debug info names the sources relative to where they live (also
        # in the modpost-generated warden.mod.c, hence KCFLAGS), so the
        # module does not depend on the build or checkout directory.
        "KCFLAGS=-ffile-prefix-map=%s/= -ffile-prefix-map=%s/=api/"
        % (workdir, api),
        "modules",
    ]
    if args.werror:
        cmd.insert(-1, "WARDEN_WERROR=1")
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    for line in proc.stdout.splitlines():
        if not line.startswith(NOISE):
            print(line)
    if proc.returncode:
        print("build-module.py: failed: " + " ".join(cmd), file=sys.stderr)
        return proc.returncode

    tmp = args.output + ".tmp"
    shutil.copyfile(os.path.join(args.workdir, "warden.ko"), tmp)
    os.replace(tmp, args.output)
    return 0


def sysroot_makefile(kdir, sysroot):
    """The kernel Makefile a Debian flavour's headers include, in the sysroot.

    linux-headers-VER-FLAVOUR/Makefile is one line,
    `include /usr/src/linux-headers-VER-common/Makefile`: unpacked into a
    sysroot it still names the host's tree, which may be missing or of
    another version. Run with `-f` on the sysroot's copy instead; the top
    Makefile takes its source tree from where it lies and reads the
    flavour's .kernelvariables from the directory make runs in (kdir), as
    through the one-line Makefile.
    """
    with open(os.path.join(kdir, "Makefile")) as f:
        for line in f:
            words = line.split()
            if len(words) == 2 and words[0] == "include" and words[1].startswith("/"):
                path = os.path.join(sysroot, words[1].lstrip("/"))
                return path if os.path.isfile(path) else None
    return None


def same_file(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


if __name__ == "__main__":
    sys.exit(main())
