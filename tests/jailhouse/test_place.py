# SPDX-License-Identifier: MIT
"""Jailhouse's own tools/jailhouse-cell-linux as the oracle of `wardenctl
jailhouse place` (hypervisor/jailhouse/linux-place.c).

Both run on the same inputs: the cell configs qemu-arm64-linux-demo.cell and
rpi4-linux-demo.cell (built from the tarball's configs/arm64 as
test_configs.py builds them), the DTBs of configs/arm64/dts/inmate-*.dts
(cpp + dtc, as Kbuild does), kernels, an initrd and a command line. The
reference runs as shipped, with --write-params (-w), which parses, patches
and prints the `jailhouse cell load` commands without /dev/jailhouse; its
addresses are read from those commands. Compared: loader, kernel, DTB,
initrd and params addresses, the params string, whether the kernel had to
be inflated, and the patched DTBs as `dtc -I dtb -O dts` prints them.

Kernels: synthetic arm64 Images (text_offset 0 and 0x80000, a size that is
no page multiple), one gzipped, and Debian's arm64 kernel when it is cached
in build/jailhouse-oracles/arm64-kernel/ (tests/jailhouse/fetch-arm64-kernel.sh
puts it there) or named by $JH_ARM64_KERNEL, raw and gzipped. A kernel too
big for the cell must make both refuse.

Without the tarball, dtc or cpp the cases say SKIP and why. Inputs are
cached under build/jailhouse-oracles/place/.
"""
import glob
import gzip
import json
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_configs as tc  # noqa: E402  the oracle build and its Skip

PLACE = os.path.join(tc.CACHE, "place")
REV, TARBALL, COMMIT = tc.TARBALLS[0]
CELLS = [("qemu-arm64-linux-demo", "inmate-qemu-arm64"), ("rpi4-linux-demo", "inmate-rpi4")]
CMDLINE = "console=ttyAMA0,115200 root=/dev/ram0 ip=192.168.19.2"
GIC_BINDINGS = """\
/* The constants of Linux's dt-bindings/interrupt-controller/arm-gic.h that
 * the inmate device trees use; only for machines without kernel headers. */
#define GIC_SPI 0
#define GIC_PPI 1
#define IRQ_TYPE_NONE 0
#define IRQ_TYPE_EDGE_RISING 1
#define IRQ_TYPE_EDGE_FALLING 2
#define IRQ_TYPE_EDGE_BOTH 3
#define IRQ_TYPE_LEVEL_HIGH 4
#define IRQ_TYPE_LEVEL_LOW 8
"""


def tarball_path():
    path = os.path.join(tc.SRC, TARBALL) if tc.SRC else ""
    if not os.path.isfile(path):
        stem = TARBALL[:-len(".tar.gz")]
        raise tc.Skip("Jailhouse source %s not found in %s; %s" % (
            TARBALL, tc.SRC or "(JAILHOUSE_SRC unset)", tc.UPSTREAM % (COMMIT, stem, COMMIT, stem)))
    return path


def extract_tool(tarball):
    """tools/jailhouse-cell-linux and the pyjailhouse package it imports."""
    dest = os.path.join(PLACE, "tool")
    stamp = os.path.join(dest, ".extracted")
    st = os.stat(tarball)
    key = "%d %d" % (st.st_size, st.st_mtime)
    tool = os.path.join(dest, "tools", "jailhouse-cell-linux")
    if os.path.exists(stamp) and open(stamp).read() == key:
        return tool
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    with tarfile.open(tarball) as t:
        members = []
        for m in t.getmembers():
            parts = m.name.split("/", 1)
            if len(parts) < 2 or ".." in m.name.split("/") or not (m.isfile() or m.isdir()):
                continue
            if parts[1] == "tools/jailhouse-cell-linux" or parts[1].startswith("pyjailhouse/"):
                m.name = parts[1]
                members.append(m)
        t.extractall(dest, members=members)
    with open(stamp, "w") as f:
        f.write(key)
    return tool


def dt_include():
    """Debian's kernel headers carry dt-bindings; else the few constants."""
    for d in sorted(glob.glob("/usr/src/linux-headers-*/include")):
        if os.path.exists(os.path.join(d, "dt-bindings", "interrupt-controller", "arm-gic.h")):
            return d
    d = os.path.join(PLACE, "dt-include")
    h = os.path.join(d, "dt-bindings", "interrupt-controller", "arm-gic.h")
    os.makedirs(os.path.dirname(h), exist_ok=True)
    with open(h, "w") as f:
        f.write(GIC_BINDINGS)
    return d


def build_dtb(tree, stem):
    for tool in ("dtc", "cpp"):
        if not shutil.which(tool):
            raise tc.Skip("%s not installed (Debian: apt-get install device-tree-compiler cpp)" % tool)
    src = os.path.join(tree, "configs", "arm64", "dts", stem + ".dts")
    out = os.path.join(PLACE, stem + ".dtb")
    if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(src):
        return out
    pre = subprocess.run(["cpp", "-nostdinc", "-I", dt_include(), "-undef", "-D__DTS__", "-x",
                          "assembler-with-cpp", src], capture_output=True, check=True)
    subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", out, "-"], input=pre.stdout, check=True)
    return out


def synthetic_image(name, text_offset, size):
    """An arm64 Image header (Linux's booting.rst) and a patterned body."""
    path = os.path.join(PLACE, name)
    if os.path.exists(path) and os.path.getsize(path) == size:
        return path
    head = bytearray(64)
    head[0:4] = b"MZ@\xfa"                       # code0, as EFI stubs have it
    head[8:16] = text_offset.to_bytes(8, "little")
    head[16:24] = size.to_bytes(8, "little")     # image_size
    head[24:32] = (0xa).to_bytes(8, "little")    # LE, 4K pages
    head[0x38:0x3c] = b"ARM\x64"
    body = bytes(range(256)) * ((size - 64) // 256 + 1)
    with open(path + ".tmp", "wb") as f:
        f.write(bytes(head) + body[:size - 64])
    os.replace(path + ".tmp", path)
    return path


def huge_image():
    """Bigger than the cells' RAM once the initrd's room doubles it; sparse."""
    path = os.path.join(PLACE, "Image-huge")
    size = 0x4000000 + 0x1001
    if not (os.path.exists(path) and os.path.getsize(path) == size):
        with open(path, "wb") as f:
            f.write(open(synthetic_image("Image-small", 0, 0x10000), "rb").read(64))
            f.truncate(size)
    return path


def gzipped(path):
    out = os.path.join(PLACE, os.path.basename(path) + ".gz")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(path):
        with open(path, "rb") as f, gzip.open(out + ".tmp", "wb", compresslevel=1) as g:
            shutil.copyfileobj(f, g)
        os.replace(out + ".tmp", out)
    return out


def debian_kernel():
    k = os.environ.get("JH_ARM64_KERNEL")
    if k:
        return k
    found = sorted(glob.glob(os.path.join(tc.CACHE, "arm64-kernel", "vmlinuz-*")))
    return found[-1] if found else None


def initrd():
    path = os.path.join(PLACE, "initrd.img")
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(bytes((i * 7 + 3) & 0xff for i in range(1234567)))  # not a page multiple
    return path


def reference(tool, cell, kernel, dtb, initrd_file, cmdline, out):
    cmd = [sys.executable, tool, "-a", "arm64", cell, kernel, "-d", dtb, "-w", out]
    if initrd_file:
        cmd += ["-i", initrd_file]
    if cmdline:
        cmd += ["-c", cmdline]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": (r.stderr or r.stdout).strip()}
    load = next(l for l in r.stdout.splitlines() if l.startswith("jailhouse cell load "))
    t = shlex.split(load)[4:]
    # linux-loader.bin -a L -s PARAMS -a P KERNEL -a K [INITRD -a I] DTB -a D
    assert t[0] == "linux-loader.bin" and t[1] == t[5] == t[8] == "-a" and t[3] == "-s", load
    res = {"loader_address": t[2], "params_string": t[4], "params_address": t[6],
           "kernel_gzipped": t[7].endswith("-unzipped"), "kernel_address": t[9], "initrd_address": None}
    rest = t[10:]
    if initrd_file:
        res["initrd_address"] = rest[2]
        rest = rest[3:]
    res["dtb_address"] = rest[2]
    return res


def ours(cell, kernel, dtb, initrd_file, cmdline, out):
    cmd = [tc.WARDENCTL, "jailhouse", "place", "--cell", cell, "--kernel", kernel, "--dtb", dtb,
           "--write-dtb", out]
    if initrd_file:
        cmd += ["--initrd", initrd_file]
    if cmdline:
        cmd += ["--cmdline", cmdline]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": r.stderr.strip(), "exit": r.returncode}
    doc = json.loads(r.stdout)
    return {k: doc[k] for k in ("loader_address", "kernel_address", "dtb_address", "initrd_address",
                                "params_address", "params_string", "kernel_gzipped")}


def dts(path):
    return subprocess.run(["dtc", "-q", "-I", "dtb", "-O", "dts", path], capture_output=True, text=True,
                          check=True).stdout


def fdt_canon(blob):
    """A DTB with every name offset replaced by its name: header fields but
    the layout's, the reserve map, and the structure block token by token.
    Equal for two DTBs that differ only in how the strings block is laid out."""
    (magic, total, off_struct, off_strings, off_rsv, version, last_comp, cpuid, size_strings,
     size_struct) = struct.unpack_from(">10I", blob)
    assert magic == 0xd00dfeed and total == len(blob), "not a DTB"
    rsv, pos = [], off_rsv
    while True:
        entry = struct.unpack_from(">QQ", blob, pos)
        rsv.append(entry)
        pos += 16
        if entry == (0, 0):
            break
    strings = blob[off_strings:off_strings + size_strings]
    toks, pos, end = [], off_struct, off_struct + size_struct
    while pos < end:
        (tag,) = struct.unpack_from(">I", blob, pos)
        pos += 4
        if tag == 1:
            name = blob[pos:blob.index(b"\0", pos)]
            pos += (len(name) + 4) & ~3
            toks.append(("node", name))
        elif tag == 3:
            size, nameoff = struct.unpack_from(">II", blob, pos)
            pos += 8
            toks.append(("prop", strings[nameoff:strings.index(b"\0", nameoff)], blob[pos:pos + size]))
            pos += (size + 3) & ~3
        else:
            toks.append(tag)
    return (version, last_comp, cpuid, rsv, toks, off_rsv, off_struct, size_struct)


def compare(tool, cell, kernel, dtb, initrd_file, cmdline, tmp):
    ref_out, our_out = os.path.join(tmp, "ref.dtb"), os.path.join(tmp, "ours.dtb")
    for f in (ref_out, our_out):
        if os.path.exists(f):
            os.unlink(f)
    ref = reference(tool, cell, kernel, dtb, initrd_file, cmdline, ref_out)
    mine = ours(cell, kernel, dtb, initrd_file, cmdline, our_out)
    if "error" in ref or "error" in mine:
        if "error" in ref and "error" in mine:
            return "both refuse: %s | %s" % (ref["error"].splitlines()[-1], mine["error"])
        raise AssertionError("reference %s, wardenctl %s" % (ref, mine))
    diff = ["%s: reference %s, wardenctl %s" % (k, ref[k], mine[k]) for k in ref if ref[k] != mine[k]]
    a, b = dts(ref_out), dts(our_out)
    if a != b:
        lines = [l for l in __import__("difflib").unified_diff(a.splitlines(), b.splitlines(), "reference",
                                                                "wardenctl", lineterm="")]
        diff.append("the DTBs differ (dtc -O dts):\n" + "\n".join(lines[:40]))
    if diff:
        raise AssertionError("\n".join(diff))
    ref_blob, our_blob = open(ref_out, "rb").read(), open(our_out, "rb").read()
    if fdt_canon(ref_blob) != fdt_canon(our_blob):
        raise AssertionError("the DTBs print alike but differ beyond the strings block")
    same_bytes = ref_blob == our_blob
    return "%s, DTB dts-identical (%s)" % (", ".join("%s=%s" % (k.replace("_address", ""), mine[k]) for k in (
        "kernel_address", "dtb_address", "initrd_address") if mine[k]),
        "byte-identical" if same_bytes else
        "header, reserve map and structure block identical token by token; the strings blocks differ in layout")


def kernels():
    ks = [("Image-t0", lambda: synthetic_image("Image-t0", 0, 0x5a3123)),
          ("Image-t80000", lambda: synthetic_image("Image-t80000", 0x80000, 0x1234567)),
          ("Image-t0.gz", lambda: gzipped(synthetic_image("Image-t0", 0, 0x5a3123)))]
    deb = debian_kernel()
    if deb:
        ks += [(os.path.basename(deb), lambda: deb), (os.path.basename(deb) + ".gz", lambda: gzipped(deb))]
    return ks, deb


def main():
    ks, deb = kernels()
    variants = [("initrd+cmdline", True, CMDLINE), ("bare", False, None), ("cmdline", False, CMDLINE)]
    cases = [(c, d, kn, kf, vn, vi, vc) for c, d in CELLS for kn, kf in ks for vn, vi, vc in variants]
    cases += [(c, d, "Image-huge", huge_image, "too-big", True, CMDLINE) for c, d in CELLS]
    print("1..%d" % len(cases), flush=True)
    if not deb:
        print("# Debian's arm64 kernel is not cached: synthetic Images only "
              "(tests/jailhouse/fetch-arm64-kernel.sh fetches it)", flush=True)
    failed, told, matched = 0, set(), 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (cell, dtsname, kname, kfile, vname, with_initrd, cmdline) in enumerate(cases, 1):
            name = "%s %s %s" % (cell, kname, vname)
            try:
                tool = extract_tool(tarball_path())
                cells = tc.oracle(REV, TARBALL, COMMIT, "arm64", "aarch64-linux-gnu-gcc")
                cell_file = next(c for c in cells if os.path.basename(c) == cell + ".cell")
                tree = os.path.join(tc.CACHE, TARBALL[:-len(".tar.gz")])
                os.makedirs(PLACE, exist_ok=True)
                dtb = build_dtb(tree, dtsname)
                what = compare(tool, cell_file, kfile(), dtb, initrd() if with_initrd else None, cmdline, tmp)
                if vname == "too-big" and not what.startswith("both refuse"):
                    raise AssertionError("a kernel too big for the cell was placed: " + what)
                matched += 1
                print("# %s: %s" % (name, what), flush=True)
                print("ok %d - %s" % (i, name), flush=True)
            except tc.Skip as e:
                if str(e) not in told:
                    print("SKIP: %s" % e, file=sys.stderr, flush=True)
                    told.add(str(e))
                print("ok %d - %s # SKIP %s" % (i, name, ";".join(str(e).split(";")[:2])), flush=True)
            except Exception as e:  # noqa: BLE001 - every failure is a test failure
                failed += 1
                print("not ok %d - %s" % (i, name), flush=True)
                for line in str(e).splitlines():
                    print("# " + line, flush=True)
    print("# %d of %d placements match jailhouse-cell-linux" % (matched, len(cases)), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
