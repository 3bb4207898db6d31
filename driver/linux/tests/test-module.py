#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The built warden.ko: its .modinfo promises what README.md says; speaks TAP.

usage: test-module.py WARDEN_KO KVER
"""
import os
import shutil
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tests", "lib"))
from harness import Skip, run_tests, test  # noqa: E402  (the project's TAP runner)

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


@test
def test_elf_x86_64_relocatable():
    assert ELF[:4] == b"\x7fELF" and ELF[4] == 2
    e_type, e_machine = struct.unpack_from("<HH", ELF, 0x10)
    assert (e_type, e_machine) == (1, 62), (e_type, e_machine)


@test
def test_name_and_license():
    assert values("name") == ["warden"], values("name")
    # GPL-compatible, or the GPL-only symbols it uses would not resolve.
    assert values("license") == ["Dual MIT/GPL"], values("license")


@test
def test_vermagic_matches_kernel():
    vermagic = values("vermagic")
    assert len(vermagic) == 1 and vermagic[0].split()[0] == KVER, vermagic


@test
def test_parameters():
    types = dict(v.split(":", 1) for v in values("parmtype"))
    assert types == {"period_ms": "uint", "allow_inject": "bool",
                     "phys_addr": "ulong", "phys_size": "ulong"}, types


@test
def test_pci_aliases():
    aliases = values("alias")
    for dev in ("v00001AF4d00001110", "v0000110Ad00004106"):
        assert any(a.startswith("pci:" + dev) for a in aliases), aliases


@test
def test_modinfo_tool_agrees():
    modinfo = shutil.which("modinfo") or shutil.which("/sbin/modinfo")
    if not modinfo:
        raise Skip("no modinfo program")
    out = subprocess.run([modinfo, "-F", "license", KO], stdout=subprocess.PIPE,
                         text=True, check=True).stdout.strip()
    assert out == "Dual MIT/GPL", out
    return None


if __name__ == "__main__":
    run_tests()
