# SPDX-License-Identifier: MIT
"""Jailhouse's own configs as the oracle of warden's config codec.

Every config in configs/arm64 and configs/x86 of a Jailhouse source tarball
is compiled the way that tarball's configs/Makefile does it (its
KBUILD_CFLAGS and include paths, gcc -c, then objcopy with its
OBJCOPYFLAGS; arm64 with aarch64-linux-gnu-gcc), and then
  - decode -> encode (jh-roundtrip, the codec alone) and
  - wardenctl jailhouse import -> export (through the JSON form)
must give the same bytes. Revision 14 comes from jailhouse-e57d1eff6d55,
13 from jailhouse-76aa7ef29366, 12 from jailhouse-v0.12.

The tarballs are read from $JAILHOUSE_SRC, else from the meson option
jailhouse_src (default ../shared/jailhouse next to the source tree). They
are only oracles: nothing of them ends up in warden. Extracted trees and
built configs are cached under build/jailhouse-oracles/ so reruns are fast.
Without a tarball (or a cross compiler) the tests say SKIP and why.
"""
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

BUILD = os.environ.get("WARDEN_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
WARDENCTL = os.environ.get("WARDENCTL", os.path.join(BUILD, "daemon", "wardenctl"))
ROUNDTRIP = os.environ.get("JH_ROUNDTRIP", os.path.join(BUILD, "tests", "jailhouse", "jh-roundtrip"))
SRC = os.environ.get("JAILHOUSE_SRC") or os.environ.get("WARDEN_JAILHOUSE_SRC_DEFAULT", "")
CACHE = os.path.join(BUILD, "jailhouse-oracles")
UPSTREAM = ("get it from upstream siemens/jailhouse at commit %s; git clone https://github.com/siemens/jailhouse"
            " && git -C jailhouse archive --prefix=%s/ %s | gzip > %s.tar.gz, then set JAILHOUSE_SRC to its directory")

TARBALLS = [  # (revision, tarball name, upstream commit or tag)
    (14, "jailhouse-e57d1eff6d55.tar.gz", "e57d1eff6d55"),
    (13, "jailhouse-76aa7ef29366.tar.gz", "76aa7ef29366"),
    (12, "jailhouse-v0.12.tar.gz", "v0.12"),
]
ARCHES = [  # (configs subdirectory, compiler, --arch)
    ("arm64", "aarch64-linux-gnu-gcc", "arm64"),
    ("x86", "gcc", "x86"),
]


class Skip(Exception):
    pass


def extract(tarball, dest):
    """The parts a config build needs: include/, hypervisor/ headers, configs/."""
    stamp = os.path.join(dest, ".extracted")
    st = os.stat(tarball)
    key = "%d %d" % (st.st_size, st.st_mtime)
    if os.path.exists(stamp) and open(stamp).read() == key:
        return
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    with tarfile.open(tarball) as t:
        members = []
        for m in t.getmembers():
            parts = m.name.split("/", 1)
            if len(parts) < 2 or m.name.startswith("/") or ".." in m.name.split("/"):
                continue
            rel = parts[1]
            if not (rel.startswith("include/") or rel.startswith("configs/") or
                    (rel.startswith("hypervisor/") and "/include/" in "/" + rel)):
                continue
            if not (m.isfile() or m.isdir()):
                continue
            m.name = rel
            members.append(m)
        t.extractall(dest, members=members)
    with open(stamp, "w") as f:
        f.write(key)


def makefile_flags(tree):
    """KBUILD_CFLAGS and OBJCOPYFLAGS as this tree's configs/Makefile sets them."""
    mk = open(os.path.join(tree, "configs", "Makefile")).read()
    cflags = re.search(r"^KBUILD_CFLAGS\s*:=\s*(.*)$", mk, re.M).group(1).split()
    objcopy = re.search(r"^OBJCOPYFLAGS\s*:=\s*(.*)$", mk, re.M).group(1).split()
    return cflags, objcopy


def build_one(cc, objcopy, args):
    src, obj, cell = args
    r = subprocess.run(cc + ["-c", "-o", obj, src], capture_output=True, text=True)
    if r.returncode != 0:
        return "%s: %s" % (src, r.stderr.strip()[-400:])
    r = subprocess.run(objcopy + [obj, cell], capture_output=True, text=True)
    if r.returncode != 0:
        return "%s: objcopy: %s" % (src, r.stderr.strip()[-400:])
    return None


def build_configs(tree, arch, compiler):
    """Builds configs/ARCH/*.c into .cell files once; returns their paths."""
    if not shutil.which(compiler):
        raise Skip("%s not installed (Debian: apt-get install gcc-aarch64-linux-gnu)" % compiler)
    objcopy = "aarch64-linux-gnu-objcopy" if compiler.startswith("aarch64") else "objcopy"
    cflags, objcopy_flags = makefile_flags(tree)
    inc = ["-I" + os.path.join(tree, "hypervisor", "arch", arch, "include"),
           "-I" + os.path.join(tree, "hypervisor", "include"),
           "-I" + os.path.join(tree, "include")]
    config_h = os.path.join(tree, "include", "jailhouse", "config.h")
    if os.path.exists(config_h):
        inc += ["-include", config_h]
    cc = [compiler] + inc + cflags
    srcdir = os.path.join(tree, "configs", arch)
    outdir = os.path.join(tree, "cells", arch)
    sources = sorted(f for f in os.listdir(srcdir) if f.endswith(".c"))
    key = hashlib.sha256(json.dumps([cc, objcopy_flags, sources]).encode()).hexdigest()
    stamp = os.path.join(outdir, ".built")
    cells = [os.path.join(outdir, f[:-2] + ".cell") for f in sources]
    if os.path.exists(stamp) and open(stamp).read() == key and all(map(os.path.exists, cells)):
        return cells
    shutil.rmtree(outdir, ignore_errors=True)
    os.makedirs(outdir)
    jobs = [(os.path.join(srcdir, f), os.path.join(outdir, f[:-2] + ".o"), os.path.join(outdir, f[:-2] + ".cell"))
            for f in sources]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
        errors = [e for e in ex.map(lambda j: build_one(cc, [objcopy] + objcopy_flags, j), jobs) if e]
    if errors:
        raise AssertionError("building the oracle configs failed:\n" + "\n".join(errors))
    with open(stamp, "w") as f:
        f.write(key)
    return cells


def oracle(rev, tarball, commit, arch, compiler):
    if not SRC or not os.path.isfile(os.path.join(SRC, tarball)):
        stem = tarball[:-len(".tar.gz")]
        raise Skip("Jailhouse source %s not found in %s; %s" % (tarball, SRC or "(JAILHOUSE_SRC unset)",
                                                                 UPSTREAM % (commit, stem, commit, stem)))
    tree = os.path.join(CACHE, tarball[:-len(".tar.gz")])
    extract(os.path.join(SRC, tarball), tree)
    cells = build_configs(tree, arch, compiler)
    assert cells, "no configs in %s/configs/%s" % (tree, arch)
    return cells


def check_codec(cells, rev):
    r = subprocess.run([ROUNDTRIP] + cells, capture_output=True, text=True)
    lines = r.stdout.splitlines()
    bad = [l for l in lines if not l.startswith("same ")]
    assert len(lines) == len(cells), r.stdout + r.stderr
    revs = set()
    for c in cells:
        with open(c, "rb") as f:
            revs.add(int.from_bytes(f.read(8)[6:8], "little"))
    assert revs == {rev}, "revisions %s in the built configs, expected %d" % (revs, rev)
    return len(cells) - len(bad), bad


def cli_one(c, rev, arch, tmp):
    """import then export of one config; None when the bytes came back."""
    base = os.path.join(tmp, os.path.basename(c))
    spec, out = base + ".json", base + ".out"
    # Revisions 12 and 13 do not record the architecture: say it, as an
    # operator would, so the JSON carries it.
    imp = [WARDENCTL, "jailhouse", "import", c] + (["--arch", arch] if rev < 14 else [])
    r = subprocess.run(imp, capture_output=True, text=True)
    if r.returncode != 0:
        return "%s: import: %s" % (c, r.stderr.strip())
    doc = json.loads(r.stdout)
    if doc.get("revision") != rev:
        return "%s: import says revision %s" % (c, doc.get("revision"))
    with open(spec, "w") as f:
        f.write(r.stdout)
    r = subprocess.run([WARDENCTL, "jailhouse", "export", spec, "--revision", str(rev), "-o", out],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return "%s: export: %s" % (c, r.stderr.strip())
    with open(c, "rb") as a, open(out, "rb") as b:
        if a.read() != b.read():
            return "%s: export differs from the original" % c
    return None


def check_cli(cells, rev, arch):
    with tempfile.TemporaryDirectory() as tmp:
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
            bad = [e for e in ex.map(lambda c: cli_one(c, rev, arch, tmp), cells) if e]
    return len(cells) - len(bad), bad


DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "jailhouse")


def check_documents(cells):
    """The board documents warden ships (configs/jailhouse/*.json) export
    to exactly the bytes of Jailhouse's own config of the same name; those
    without a Jailhouse twin (warden's own cells) import back unchanged."""
    by_name = {os.path.basename(c)[:-len(".cell")]: c for c in cells}
    docs = sorted(f for f in os.listdir(DOCS) if f.endswith(".json"))
    bad, twins = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for doc in docs:
            name, out = doc[:-len(".json")], os.path.join(tmp, doc + ".cell")
            r = subprocess.run([WARDENCTL, "jailhouse", "export", os.path.join(DOCS, doc), "-o", out],
                               capture_output=True, text=True)
            if r.returncode != 0:
                bad.append("%s: export: %s" % (doc, r.stderr.strip()))
                continue
            if name in by_name:
                twins += 1
                with open(by_name[name], "rb") as a, open(out, "rb") as b:
                    if a.read() != b.read():
                        bad.append("%s: export differs from Jailhouse's %s.cell" % (doc, name))
                continue
            r = subprocess.run([WARDENCTL, "jailhouse", "import", out], capture_output=True, text=True)
            with open(os.path.join(DOCS, doc)) as f:
                if r.returncode != 0 or json.loads(r.stdout) != json.load(f):
                    bad.append("%s: import of its export differs: %s" % (doc, r.stderr.strip()))
    assert twins >= 5, "only %d of %s have a Jailhouse twin" % (twins, docs)
    return len(docs) - len(bad), bad


def main():
    cases = [(rev, tb, commit, arch, cc, a, kind) for rev, tb, commit in TARBALLS for arch, cc, a in ARCHES
             for kind in ("decode-encode", "import-export")]
    cases.append((14, TARBALLS[0][1], TARBALLS[0][2], "arm64", "aarch64-linux-gnu-gcc", "arm64", "documents"))
    print("1..%d" % len(cases), flush=True)
    failed = 0
    totals = {}
    told = set()
    for i, (rev, tb, commit, arch, cc, a, kind) in enumerate(cases, 1):
        name = "rev%d-%s-%s" % (rev, arch, kind)
        try:
            cells = oracle(rev, tb, commit, arch, cc)
            if kind == "documents":
                ok, bad = check_documents(cells)
                cells = [None] * (ok + len(bad))  # what "of N" counts: the documents
            else:
                ok, bad = check_codec(cells, rev) if kind == "decode-encode" else check_cli(cells, rev, a)
            totals[(rev, kind)] = totals.get((rev, kind), 0) + ok
            print("# %s: %d of %d configs byte-identical" % (name, ok, len(cells)), flush=True)
            for b in bad:
                print("#   " + b, flush=True)
            if bad:
                raise AssertionError("%d configs differ" % len(bad))
            print("ok %d - %s" % (i, name), flush=True)
        except Skip as e:
            if str(e) not in told:  # once per cause, not per case
                print("SKIP: %s" % e, file=sys.stderr, flush=True)
                told.add(str(e))
            # The TAP line carries the short form (up to the second ";").
            print("ok %d - %s # SKIP %s" % (i, name, ";".join(str(e).split(";")[:2])), flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is a test failure
            failed += 1
            print("not ok %d - %s" % (i, name), flush=True)
            for line in str(e).splitlines():
                print("# " + line, flush=True)
    for (rev, kind), n in sorted(totals.items(), reverse=True):
        print("# revision %d %s: %d configs byte-identical" % (rev, kind, n), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
