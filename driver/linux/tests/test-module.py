#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The built warden.ko: its .modinfo promises what README.md says; speaks TAP.

usage: test-module.py WARDEN_KO KVER
"""
import shutil
import struct
import subprocess
import sys

KO, KVER = sys.argv[1], sys.argv[2]


def section(elf, wanted):
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)

    def header(i):
        return struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize)

    strtab = header(shstrndx)
    for i in range(shnum):
        h = header(i)
        name_at = strtab[4] + h[0]
        name = elf[name_at:elf.index(b"\0", name_at)].decode()
        if name == wanted:
            return elf[h[4]:h[4] + h[5]]
    raise AssertionError("no section " + wanted)


with open(KO, "rb") as _f:
    ELF = _f.read()
MODINFO = [kv.decode() for kv in section(ELF, ".modinfo").split(b"\0") if kv]


def values(key):
    return [kv.split("=", 1)[1] for kv in MODINFO if kv.startswith(key + "=")]


def test_elf_x86_64_relocatable():
    assert ELF[:4] == b"\x7fELF" and ELF[4] == 2
    e_type, e_machine = struct.unpack_from("<HH", ELF, 0x10)
    assert (e_type, e_machine) == (1, 62), (e_type, e_machine)


def test_name_and_license():
    assert values("name") == ["warden"], values("name")
    # GPL-compatible, or the GPL-only symbols it uses would not resolve.
    assert values("license") == ["Dual MIT/GPL"], values("license")


def test_vermagic_matches_kernel():
    vermagic = values("vermagic")
    assert len(vermagic) == 1 and vermagic[0].split()[0] == KVER, vermagic


def test_parameters():
    types = dict(v.split(":", 1) for v in values("parmtype"))
    assert types == {"period_ms": "uint", "allow_inject": "bool",
                     "phys_addr": "ulong", "phys_size": "ulong"}, types


def test_pci_aliases():
    aliases = values("alias")
    for dev in ("v00001AF4d00001110", "v0000110Ad00004106"):
        assert any(a.startswith("pci:" + dev) for a in aliases), aliases


def test_modinfo_tool_agrees():
    modinfo = shutil.which("modinfo") or shutil.which("/sbin/modinfo")
    if not modinfo:
        return "SKIP no modinfo program"
    out = subprocess.run([modinfo, "-F", "license", KO], stdout=subprocess.PIPE,
                         text=True, check=True).stdout.strip()
    assert out == "Dual MIT/GPL", out
    return None


def main():
    tests = [(n, f) for n, f in globals().items() if n.startswith("test_")]
    print("1..%d" % len(tests))
    failed = 0
    for i, (name, fn) in enumerate(tests, start=1):
        try:
            skip = fn()
        except Exception as e:  # noqa: BLE001 -- report every failure
            failed += 1
            print("not ok %d - %s" % (i, name))
            print("# %s: %s" % (type(e).__name__, e))
            continue
        print("ok %d - %s%s" % (i, name, " # " + skip if skip else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
