# SPDX-License-Identifier: MIT
"""Counts test cases from meson's testlog.json (TAP output of each test).

A test program that produced no TAP plan counts as one case: passed,
failed or skipped as meson saw it.
"""
import json
import re
import sys

passed = failed = skipped = 0
rows = []
with open(sys.argv[1]) as f:
    for line in f:
        t = json.loads(line)
        out = t.get("stdout") or ""
        p = fl = s = 0
        for l in out.splitlines():
            m = re.match(r"^(not ok|ok)\b.*?(#\s*(SKIP|skip)\b.*)?$", l)
            if not m:
                continue
            if m.group(1) == "not ok":
                fl += 1
            elif m.group(2):
                s += 1
            else:
                p += 1
        if p + fl + s == 0:
            res = t.get("result")
            if res in ("OK", "EXPECTEDFAIL"):
                p = 1
            elif res == "SKIP":
                s = 1
            else:
                fl = 1
        elif t.get("result") not in ("OK", "SKIP", "EXPECTEDFAIL") and fl == 0:
            fl = 1  # crashed or timed out after its last TAP line
        rows.append((t["name"], p, fl, s))
        passed += p
        failed += fl
        skipped += s

for name, p, fl, s in rows:
    print("  %-28s %3d passed, %d failed, %d skipped" % (name, p, fl, s))
print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
sys.exit(1 if failed else 0)
