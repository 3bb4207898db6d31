# SPDX-License-Identifier: MIT
"""eval-quick: tests/eval/run --quick end to end (real wardend, real kvm
cells, the host's cyclictest and gnuplot), then tests/eval/check-report on
what it wrote: every table filled, the plots there, the raw CSV there.
It checks that the evaluation runs and reports, never the figures."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import Skip, require_kvm, run_tests, test  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


@test
def quick_run_fills_every_table_and_draws_the_plots():
    require_kvm()
    for tool in ("gnuplot", "cyclictest", "hackbench"):
        if not shutil.which(tool):
            raise Skip("%s not installed (.ci/setup: gnuplot-nox, rt-tests)" % tool)
    out = tempfile.mkdtemp(prefix="warden-eval-quick-")
    try:
        p = subprocess.run([os.path.join(HERE, "run"), "--quick", "--out", out], capture_output=True, text=True,
                           timeout=1500)
        assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-3000:])
        c = subprocess.run([os.path.join(HERE, "check-report"), out], capture_output=True, text=True)
        assert c.returncode == 0 and c.stdout.strip().endswith("ok"), c.stdout
    finally:
        if not os.environ.get("WARDEN_KEEP_TEST_DIRS"):
            shutil.rmtree(out, ignore_errors=True)


@test
def a_report_with_an_empty_cell_is_refused():
    """check-report is not a rubber stamp."""
    out = tempfile.mkdtemp(prefix="warden-eval-check-")
    try:
        with open(os.path.join(out, "report.md"), "w") as f:
            f.write("# r\n\n/dev/kvm: no, load average 1, not comparable\n\n| a | b |\n|---|---|\n| x |  |\n")
        c = subprocess.run([os.path.join(HERE, "check-report"), out], capture_output=True, text=True)
        assert c.returncode == 1, c.stdout
        assert "empty cell" in c.stdout and "plot" in c.stdout and "14200" in c.stdout, c.stdout
    finally:
        shutil.rmtree(out, ignore_errors=True)


def synthetic_results(board_rows):
    """A results.json as tests/eval/run writes it, with made-up figures."""
    boot = [{"experiment": e, "run": i, "command_s": 1.0 + i / 10, "first_beat_s": 1.2 + i / 10, "kind": k}
            for k in (("kvm", "linux", "board") if board_rows else ("kvm", "linux"))
            for e in ("eco_boot", "cell_reboot", "eco_reboot") for i in range(3)]
    nq = [{"env": env, "n": n, "threads": th, "ran": th, "solutions": 14200 if n == 12 else 365596, "run": i,
           "s": 0.01 + i / 100} for env in ("root_native", "cell_native", "cell_native_load") for n in (12, 14)
          for th in (1, 2) for i in range(2)]
    lat = {k: {"hist": {"3": 5, "4": 2}, "min_us": 3, "avg_us": 3.3, "max_us": 4, "samples": 7, "overflow": 0}
           for k in ("root_idle", "cell_idle", "cell_neighbour", "cell_load_root", "root_load")}
    return {"boot": boot, "nq": nq, "lat": lat, "elapsed_s": 1, "loadavg": [1.0], "board_prereqs": True,
            "na": dict({"container": "n/a: no container backend"}, **({} if board_rows else {"board": "n/a: skipped"})),
            "machine": {"cpu": "x", "cpus": 2, "kernel": "k", "virt": "kvm", "kvm": True},
            "params": {"board_runs": 3 if board_rows else 0, "boots": 3, "linux_boots": 3, "latency_s": 3,
                       "nq_iterations": 2}}


@test
def container_rows_are_required_where_container_cells_run():
    """A report that says container cells run here must fill their boot
    columns and the thesis's Docker rows."""
    if not shutil.which("gnuplot"):
        raise Skip("gnuplot not installed (.ci/setup: gnuplot-nox)")
    out = tempfile.mkdtemp(prefix="warden-eval-ct-")
    try:
        for with_rows, want in ((True, 0), (False, 1)):
            r = synthetic_results(True)
            r["container_ok"] = True
            del r["na"]["container"]
            if with_rows:
                r["boot"] += [dict(b, kind="container") for b in r["boot"] if b["kind"] == "kvm"]
                r["nq"] += [dict(q, env=q["env"].replace("native", "docker")) for q in r["nq"]
                            if q["env"].startswith("cell_native")]
            with open(os.path.join(out, "results.json"), "w") as f:
                json.dump(r, f)
            p = subprocess.run([os.path.join(HERE, "run"), "--replot", "--out", out], capture_output=True,
                               text=True, timeout=300)
            assert p.returncode == 0, p.stderr[-3000:]
            c = subprocess.run([os.path.join(HERE, "check-report"), out], capture_output=True, text=True)
            assert c.returncode == want, (with_rows, c.stdout)
            if want:
                assert "no container-cell figure" in c.stdout, c.stdout
            else:
                with open(os.path.join(out, "report.md")) as f:
                    assert "Docker rows map onto warden's container cells" in f.read()
    finally:
        shutil.rmtree(out, ignore_errors=True)


@test
def a_full_report_needs_the_board_rows_a_quick_one_does_not():
    """Where the board's prerequisites exist, a full report without its boot
    figures is refused; --quick (which skips the board) is accepted."""
    if not shutil.which("gnuplot"):
        raise Skip("gnuplot not installed (.ci/setup: gnuplot-nox)")
    out = tempfile.mkdtemp(prefix="warden-eval-board-")
    try:
        for board_rows, quick, want in ((True, False, 0), (False, False, 1), (False, True, 0)):
            with open(os.path.join(out, "results.json"), "w") as f:
                json.dump(synthetic_results(board_rows), f)
            p = subprocess.run([os.path.join(HERE, "run"), "--replot", "--out", out] + (["--quick"] if quick else []),
                               capture_output=True, text=True, timeout=300)
            assert p.returncode == 0, p.stderr[-3000:]
            with open(os.path.join(out, "report.md")) as f:
                text = f.read()
            assert ("Jailhouse board: first beat" in text and
                    ("Runs: 3 per figure (the thesis: 50" in text) == board_rows), text[:3000]
            c = subprocess.run([os.path.join(HERE, "check-report"), out], capture_output=True, text=True)
            assert c.returncode == want, (board_rows, quick, c.stdout)
            if want:
                assert "no Jailhouse board figure" in c.stdout, c.stdout
    finally:
        shutil.rmtree(out, ignore_errors=True)


run_tests()
