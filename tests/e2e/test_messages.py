# SPDX-License-Identifier: MIT
"""What wardend says on stderr, read as an operator reads it: real
wardend, real cells. ISO 8601 timestamps, a missing config without
":-1:-1:", an unavailable kvm backend that names what is missing, and no
line that names its cell twice.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import WARDEND, Daemon, demo_cell, kvm_available, require_kvm, run_tests, test  # noqa: E402

# 2026-12-02T13:59:28.123+00:00 wardend[42] info: ...
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d wardend\[\d+\] "
                  r"(emerg|alert|crit|error|warning|notice|info|debug): ")


def run_wardend(*args):
    env = dict(os.environ)
    for k in ("NOTIFY_SOCKET", "LISTEN_FDS", "JOURNAL_STREAM"):
        env.pop(k, None)
    return subprocess.run([WARDEND] + list(args), capture_output=True, text=True, timeout=60, env=env)


@test
def a_missing_config_names_the_file_without_line_numbers():
    p = run_wardend("--config", "/nonexistent/wardend.json")
    assert p.returncode != 0, p
    assert ":-1:-1:" not in p.stderr, p.stderr
    assert "/nonexistent/wardend.json: unable to open" in p.stderr and "No such file or directory" in p.stderr, \
        p.stderr
    assert all(LINE.match(l) for l in p.stderr.splitlines() if l), p.stderr


@test
def a_malformed_config_keeps_its_line_and_column():
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write('{"cells": [\n  {"name": }\n]}\n')
    try:
        p = run_wardend("--config", f.name)
        assert p.returncode != 0, p
        assert re.search(re.escape(f.name) + r":2:\d+: ", p.stderr), p.stderr
    finally:
        os.unlink(f.name)


@test
def an_unavailable_kvm_backend_names_what_is_missing():
    d = Daemon({"cells": [], "backends": {"kvm": {"runner": "/nonexistent/libexec/warden-kvm"}}}).start()
    try:
        log = d.log()
    finally:
        d.cleanup()
    if kvm_available():
        want = "The kvm backend is unavailable (runner /nonexistent/libexec/warden-kvm: No such file or directory)"
    else:
        want = "The kvm backend is unavailable (/dev/kvm: "
    assert want in log, log


@test
def log_lines_have_iso_timestamps_and_name_their_cell_once():
    require_kvm()
    health = {"period": 20, "timeout": 2000, "boot_timeout": 10000}
    cell = demo_cell("hb", "heartbeat.bin", cpu=1, **health)
    d = Daemon({"cells": [cell]}).start()
    try:
        d.wait_cell("hb", lambda c: c["state"] == "running", 20, "running")
        assert d.post("/cells/hb/restart?wait=30").status == 200
        d.stop()
        log = d.log()
    finally:
        d.cleanup()
    lines = [l for l in log.splitlines() if l.strip()]
    assert lines, log
    bad = [l for l in lines if not LINE.match(l)]
    assert not bad, bad
    twice = [l for l in lines if re.search(r'cell (\S+): Cell "\1"', l)]
    assert not twice, twice
    assert any('Cell "hb" booted' in l for l in lines), log


if __name__ == "__main__":
    run_tests()
