# SPDX-License-Identifier: MIT
"""/metrics as Prometheus reads it, and monitoring/ against it: real
wardend, real KVM cells, real scrapes.

- the exposition parses strictly (tests/lib/promtext.py) and holds the
  operator metrics (cell info, heartbeat timeout, budget exhaustion,
  operations, process start time) with the values the daemon's state says;
- monitoring/warden-rules.yml passes `promtool check rules` and its unit
  tests (`promtool test rules`);
- every metric that the rules and the Grafana dashboard query is one a
  running wardend exports.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import promtext  # noqa: E402
from harness import Daemon, Skip, demo_cell, poll, require_kvm, run_tests, test  # noqa: E402

MONITORING = os.path.join(os.path.dirname(__file__), "..", "..", "monitoring")
RULES = os.path.join(MONITORING, "warden-rules.yml")
RULE_TESTS = os.path.join(MONITORING, "warden-rules.test.yml")
DASHBOARD = os.path.join(MONITORING, "grafana-dashboard.json")

HEALTH = {"period": 20, "timeout": 2000, "boot_timeout": 10000}


def slot(i):
    return {"phys": 0x40000000 + i * 0x400000, "comm_phys": 0x7f000000 + i * 0x1000}


def faulty(name, i, **recovery):
    rec = {"on_panic": "restart", "max_restarts": 1, "window_s": 600, "on_exhausted": "stop",
           "backoff": {"initial_ms": 0, "max_ms": 0, "factor": 1.0, "reset_after_s": 600}}
    rec.update(recovery)
    return demo_cell(name, "faulty.bin", cpu=1, allow_inject=True, recovery=rec, **slot(i), **HEALTH)


def scrape(d, tcp=True):
    r = d.get("/metrics", tcp=tcp, token=d.monitor_token)
    assert r.status == 200, r
    assert r.ctype.startswith("text/plain"), r.ctype
    return promtext.parse(r.body if isinstance(r.body, str) else r.body.decode())


def promtool():
    p = shutil.which("promtool")
    if not p:
        raise Skip("promtool not installed (Debian package prometheus)")
    return p


@test
def parser_refuses_what_prometheus_refuses():
    """The checker itself: a test that passes on a broken exposition
    proves nothing."""
    good = ("# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n"
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n")
    fam = promtext.parse(good)
    assert fam["a_total"].value(x="1") == 2 and fam["h"].type == "histogram"
    for bad in ("a 1\n",                                              # no TYPE
                "# TYPE a counter\na 1\n",                            # counter without _total
                "# TYPE a gauge\n# TYPE a gauge\na 1\n",              # TYPE twice
                "# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n",             # label twice
                "# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n",       # sample twice
                "# TYPE a gauge\na one\n",                            # value
                "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",  # no +Inf
                "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
                "# TYPE a gauge\na 1"):                               # no final newline
        try:
            promtext.parse(bad)
        except ValueError:
            continue
        raise AssertionError("accepted: %r" % bad)


@test
def exposition_parses_and_holds_the_operator_metrics():
    require_kvm()
    cell = demo_cell("hb", "heartbeat.bin", cpu=1, **slot(0), **HEALTH)
    d = Daemon({"cells": [cell]}).start()
    try:
        d.wait_cell("hb", lambda c: c["state"] == "running" and c["heartbeat"]["seq"] >= 1, 20, "running")
        fam = scrape(d)
        assert fam["warden_hypervisor_enabled"].type == "gauge"
        assert fam["warden_hypervisor_enabled"].value() == 1
        info = fam["warden_cell_info"]
        rev = d.cell("hb")["revision"]
        assert info.value(cell="hb", backend="kvm", revision=str(rev)) == 1, info.samples
        assert fam["warden_cell_heartbeat_timeout_seconds"].value(cell="hb") == 2.0
        assert fam["warden_cell_restart_budget_exhausted_total"].type == "counter"
        assert fam["warden_cell_restart_budget_exhausted_total"].value(cell="hb") == 0
        exits = fam["warden_cell_vmexits_total"]
        assert exits.type == "counter"
        # the kvm runner's own counts, by kind; they sum to the cell's total
        hv = d.cell("hb")["hypervisor"]["exits"]
        kinds = {ls["kind"]: v for n, ls, v in exits.samples if ls["cell"] == "hb"}
        assert set(kinds) == {"io", "mmio", "hlt", "sleep", "other"}, kinds
        assert kinds["io"] > 0 and sum(kinds.values()) <= hv["total"], (kinds, hv)
        lag = fam["warden_loop_lag_seconds"]
        assert lag.type == "histogram" and any(n.endswith("_count") for n, _, _ in lag.samples)
        # every family has its HELP, and units end the names they measure
        for f in fam.values():
            assert f.help, f.name
            if f.type == "histogram" and f.name.startswith("warden_"):
                assert f.name.endswith("_seconds"), f.name

        # the start time does not move between scrapes and agrees with the uptime
        start = fam["process_start_time_seconds"].value()
        uptime = fam["warden_uptime_seconds"].value()
        assert abs((time.time() - uptime) - start) < 2.0, (start, uptime, time.time())
        assert scrape(d)["process_start_time_seconds"].value() == start

        # an operation counts once it finishes, by kind and outcome
        r = d.post("/cells/hb/restart?wait=30")
        assert r.status == 200 and r.json()["phase"] == "succeeded", r
        r = d.post("/cells/hb/stop?wait=30")
        assert r.status == 200 and r.json()["phase"] == "succeeded", r
        fam = scrape(d)
        ops = fam["warden_operations_total"]
        assert ops.value(kind="restart", outcome="succeeded") == 1, ops.samples
        assert ops.value(kind="restart", outcome="failed") == 0, ops.samples
        assert ops.value(kind="stop", outcome="succeeded") == 1, ops.samples
    finally:
        d.cleanup()


@test
def budget_exhaustion_is_counted():
    """Two panics against a budget of one restart: the first is restarted,
    the second finds the budget spent. The counters say so although the
    cell was down for only a moment the first time."""
    require_kvm()
    d = Daemon({"cells": [faulty("f", 0)]}).start()
    try:
        d.wait_cell("f", lambda c: c["state"] == "running" and c["heartbeat"]["seq"] >= 1, 20, "running")
        assert d.post("/cells/f/inject", {"fault": "panic"}).status == 202
        d.wait_cell("f", lambda c: c["restarts"] == 1 and c["state"] == "running" and c["heartbeat"]["seq"] >= 1,
                    30, "restarted once")
        assert d.post("/cells/f/inject", {"fault": "panic"}).status == 202
        d.wait_cell("f", lambda c: c["failures"]["panic"] == 2 and c["state"] in ("failed", "stopped"), 30,
                    "second panic")
        fam = scrape(d)
        assert fam["warden_cell_restart_budget_exhausted_total"].value(cell="f") == 1
        assert fam["warden_cell_failures_total"].value(cell="f", kind="panic") == 2
        assert fam["warden_cell_restarts_total"].value(cell="f") == 1
        assert fam["warden_cell_up"].value(cell="f") == 0
    finally:
        d.cleanup()


@test
def rules_pass_promtool_check_and_their_unit_tests():
    tool = promtool()
    r = subprocess.run([tool, "check", "rules", RULES], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout, r.stdout
    r = subprocess.run([tool, "test", "rules", os.path.basename(RULE_TESTS)], capture_output=True, text=True,
                       cwd=MONITORING)
    print("# " + "\n# ".join((r.stdout + r.stderr).strip().splitlines()))
    assert r.returncode == 0, r.stdout + r.stderr


# PromQL words that are not metric names.
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
    "inf", "nan", "le",
}


def metric_names(expr):
    """The metric names an expression selects: identifiers that are neither
    function calls, label names (inside {...} and by/on/without (...)),
    ranges, strings nor Grafana variables."""
    e = re.sub(r'"(\\.|[^"\\])*"', '""', expr)          # strings
    e = re.sub(r"\{[^}]*\}", " ", e)                    # matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)                   # ranges
    e = re.sub(r"\$\{?\w+\}?", " ", e)                  # $__rate_interval, ${cell}
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if rest.startswith("(") or word.lower() in PROMQL_WORDS:
            continue
        if re.fullmatch(r"\d+(e\d+)?", word) or re.fullmatch(r"[0-9.]+[smhdwy]", word):
            continue
        names.add(word)
    return names


def rule_exprs():
    """(recorded names, [exprs]) of the rule file, read without a YAML
    library: every rule's expr is a one-line scalar or a '|' block."""
    with open(RULES) as f:
        lines = f.read().splitlines()
    records, exprs = set(), []
    i = 0
    while i < len(lines):
        s = lines[i].strip()
        if s.startswith("- record:"):
            records.add(s.split(":", 1)[1].strip())
        if s.startswith("expr:"):
            v = s.split(":", 1)[1].strip()
            if v == "|":
                indent = len(lines[i + 1]) - len(lines[i + 1].lstrip())
                block = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) >= indent):
                    block.append(lines[i].strip())
                    i += 1
                exprs.append(" ".join(block))
                continue
            exprs.append(v)
        i += 1
    return records, exprs


def dashboard_exprs():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    assert dash.get("schemaVersion", 0) >= 36, dash.get("schemaVersion")
    assert dash["panels"], "no panels"
    exprs = []
    ids = set()
    for p in dash["panels"]:
        assert p["id"] not in ids, p["id"]
        ids.add(p["id"])
        assert p["targets"], p["title"]
        exprs += [t["expr"] for t in p["targets"]]
    types = {p["type"] for p in dash["panels"]}
    assert {"state-timeline", "heatmap", "timeseries"} <= types, types
    heatmaps = [p for p in dash["panels"] if p["type"] == "heatmap"]
    heat_metrics = set()
    for p in heatmaps:
        for t in p["targets"]:
            assert t.get("format") == "heatmap", p["title"]
            heat_metrics |= metric_names(t["expr"])
    assert {"warden_cell_detection_seconds_bucket", "warden_cell_recovery_seconds_bucket",
            "warden_cell_boot_seconds_bucket"} <= heat_metrics, heat_metrics
    for v in dash["templating"]["list"]:
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        m = re.match(r"label_values\((.*),\s*\w+\)$", q or "")
        if m:
            exprs.append(m.group(1))
    return exprs


@test
def rules_and_dashboard_query_only_metrics_wardend_exports():
    require_kvm()
    records, rexprs = rule_exprs()
    assert len(rexprs) >= 10, rexprs
    dexprs = dashboard_exprs()
    cell = demo_cell("hb", "heartbeat.bin", cpu=1, **slot(0), **HEALTH)
    d = Daemon({"cells": [cell]}).start()
    try:
        d.wait_cell("hb", lambda c: c["state"] == "running", 20, "running")
        exported = promtext.sample_names(scrape(d))
    finally:
        d.cleanup()
    # "up" is Prometheus' own series of every target
    known = exported | records | {"up"}
    for where, exprs in (("rules", rexprs), ("dashboard", dexprs)):
        used = set()
        for e in exprs:
            used |= metric_names(e)
        assert used, where
        missing = sorted(used - known)
        assert not missing, "%s query metrics wardend does not export: %s" % (where, missing)
        print("# %s: %d metrics, all exported: %s" % (where, len(used), " ".join(sorted(used))))
    # the extractor finds what it must (a broken one would pass vacuously)
    assert metric_names('sum by (cell, le) (rate(x_bucket{cell=~"$cell"}[$__rate_interval])) > on (cell) y') == \
        {"x_bucket", "y"}


if __name__ == "__main__":
    run_tests()
