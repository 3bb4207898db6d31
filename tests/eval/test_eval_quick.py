# SPDX-License-Identifier: MIT
"""eval-quick: tests/eval/run --quick end to end (real wardend, real kvm
cells, the host's cyclictest and gnuplot), then tests/eval/check-report on
what it wrote: every table filled, the plots there, the raw CSV there.
It checks that the evaluation runs and reports, never the figures."""
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


run_tests()
