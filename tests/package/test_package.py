#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The Debian package on this machine: build, install, run, purge.

Builds warden_*.deb with dpkg-buildpackage from a copy of the source tree
in a temporary directory (its outputs go to the copy's parent, never into
the tree), checks it with lintian, installs it with apt-get, runs
systemd-analyze verify on the installed units, starts the installed
wardend with the installed /etc/warden/wardend.json and sees its cells run
through the API, and purges it: nothing of the package may be left, not
/etc/warden and not the system user.

wardend is started directly, not through systemctl: the shipped config is
meant for a host where systemd is PID 1, and this test must also run where
it is not (a container) and beside other tests. So it replaces the
config's listeners and directories on the command line (a free TCP port, a
temporary runtime and state directory) and keeps everything else of the
installed config: the runner in /usr/libexec/warden, the inmates in
/usr/share/warden/inmates, the tokens file in /etc/warden.

The package is purged whatever happens (try/finally). The test refuses to
run (SKIP) where it could hurt: not root, no dpkg-buildpackage, a warden
package or user already there, or a file the package would take over.
"""
import grp
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness  # noqa: E402
from harness import Skip, test  # noqa: E402

SOURCE = os.path.abspath(os.environ.get("WARDEN_SOURCE",
                                        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")))
PKG = "warden"
CONFIG = "/etc/warden/wardend.json"
UNITS = ["/lib/systemd/system/wardend.socket", "/lib/systemd/system/wardend.service"]
# Directories that are the package's alone: gone after a purge.
OWN_DIRS = ["/etc/warden", "/usr/libexec/warden", "/usr/share/warden", "/usr/share/doc/warden"]
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
# Other engineers' .ci/setup may hold the dpkg lock for a while.
APT_LOCK = ["-o", "DPkg::Lock::Timeout=600"]

state = {"work": None, "deb": None, "changes": None, "installed": False, "files": [],
         "clear": False}


def run(argv, timeout=600, check=True, env=None):
    e = dict(os.environ, LC_ALL="C.UTF-8")
    e.update(env or {})
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, env=e,
                       text=True, errors="replace")
    if check and p.returncode != 0:
        raise AssertionError("%s exited with %d:\n%s" % (" ".join(argv), p.returncode, p.stdout[-6000:]))
    return p


def note(text):
    for line in text.rstrip("\n").splitlines():
        print("# " + line, flush=True)


def package_installed():
    """Installed, half-installed or its conffiles left: anything but gone."""
    p = run(["dpkg-query", "-W", "-f=${db:Status-Status}", PKG], check=False)
    return p.returncode == 0 and p.stdout.strip() not in ("", "not-installed")


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def why_not():
    if os.geteuid() != 0:
        return "not root (the test installs a package on this machine)"
    for tool, pkg in (("dpkg-buildpackage", "dpkg-dev"), ("dh", "debhelper"), ("apt-get", "apt"),
                      ("systemd-analyze", "systemd")):
        if not shutil.which(tool):
            return "%s missing (apt-get install %s; .ci/setup does)" % (tool, pkg)
    if package_installed():
        return "a %s package is already on this machine; not replacing it" % PKG
    if os.path.lexists("/etc/warden"):
        return "/etc/warden exists and is no package's; its purge would be unprovable"
    if user_exists("warden") or group_exists("warden"):
        return "a user or group \"warden\" exists; the package's purge would remove it"
    return None


def need(key, why):
    if not state[key]:
        raise Skip(why)


def ignore(src, names):
    """What the copy of the tree leaves out: build trees, git, caches and
    anything a package build in the tree itself would have left."""
    rel = os.path.relpath(src, SOURCE)
    out = {n for n in names if n in (".git", "node_modules", "__pycache__")}
    if rel == ".":
        out |= {n for n in names if n == "build" or n.startswith("build-") or n.startswith("obj-")}
    if rel == "debian":
        out |= {n for n in names if n in ("warden", ".debhelper", "tmp", "files", "debhelper-build-stamp")
                or n.endswith(".substvars") or n.endswith(".debhelper") or n.endswith(".debhelper.log")}
    return out


@test
def deb_builds_from_a_copy_of_the_tree():
    why = why_not()
    if why:
        raise Skip(why)
    state["work"] = tempfile.mkdtemp(prefix="warden-pkg-")
    tree = os.path.join(state["work"], "warden")
    shutil.copytree(SOURCE, tree, symlinks=True, ignore=ignore)
    t0 = time.monotonic()
    p = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=tree, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, errors="replace", timeout=1500,
                       env=dict(os.environ, LC_ALL="C.UTF-8"))
    if p.returncode != 0:
        raise AssertionError("dpkg-buildpackage exited with %d:\n%s" % (p.returncode, p.stdout[-8000:]))
    note("dpkg-buildpackage: %.1f s" % (time.monotonic() - t0))
    debs = [f for f in os.listdir(state["work"]) if f.startswith(PKG + "_") and f.endswith(".deb")]
    changes = [f for f in os.listdir(state["work"]) if f.endswith(".changes")]
    assert len(debs) == 1, os.listdir(state["work"])
    state["deb"] = os.path.join(state["work"], debs[0])
    state["changes"] = os.path.join(state["work"], changes[0]) if changes else None
    note("built " + debs[0])
    # The build happened in the copy: the tree itself got none of it.
    for leftover in ("debian/warden", "debian/.debhelper", "debian/files", "debian/tmp"):
        assert not os.path.lexists(os.path.join(SOURCE, leftover)), leftover + " in the source tree"


@test
def deb_holds_the_installed_layout():
    need("deb", "no package was built")
    p = run(["dpkg-deb", "-c", state["deb"]])
    files = set()
    for line in p.stdout.splitlines():
        path = line.split()[5]
        if path.startswith("./"):
            path = path[1:]
        files.add(path.rstrip("/") or "/")
    for want in ("/usr/bin/wardend", "/usr/bin/wardenctl", "/usr/libexec/warden/warden-kvm",
                 "/usr/libexec/warden/warden-jailhouse", "/etc/warden/wardend.json", "/etc/warden/tokens",
                 "/usr/share/warden/inmates/heartbeat.bin", "/usr/share/warden/inmates/faulty.bin",
                 "/usr/share/warden/containers/demo-rootfs.tar",
                 "/usr/share/man/man8/wardend.8.gz", "/usr/share/man/man1/wardenctl.1.gz",
                 "/usr/share/doc/warden/README.md", "/usr/share/doc/warden/examples/demo-tokens",
                 "/usr/lib/sysusers.d/warden.conf") + tuple(UNITS):
        assert want in files, "%s not in the package:\n%s" % (want, "\n".join(sorted(files)))
    if os.path.exists(os.path.join(SOURCE, "daemon", "wardenctl", "wardenctl.bash")):
        assert "/usr/share/bash-completion/completions/wardenctl" in files
    ctrl = tempfile.mkdtemp(dir=state["work"])
    run(["dpkg-deb", "-e", state["deb"], ctrl])
    with open(os.path.join(ctrl, "conffiles")) as f:
        conffiles = f.read().split()
    assert "/etc/warden/wardend.json" in conffiles and "/etc/warden/tokens" in conffiles, conffiles
    # dpkg takes over files no package owns, and a purge would delete them:
    # where one of the package's files already exists, stop here.
    state["files"] = sorted(files)
    taken = [f for f in state["files"] if os.path.lexists(f) and not os.path.isdir(f)]
    if taken:
        raise Skip("files of the package exist already (a meson install?): " + ", ".join(taken[:5]))
    state["clear"] = True


@test
def lintian_finds_no_errors():
    need("deb", "no package to check")
    if not shutil.which("lintian"):
        raise Skip("lintian missing (apt-get install lintian)")
    p = run(["lintian", "--pedantic", "--fail-on", "error", state["changes"] or state["deb"]],
            timeout=900, check=False)
    tags = [l for l in p.stdout.splitlines() if l[:2] in ("E:", "W:", "I:", "P:")]
    note("lintian: %d tags\n%s" % (len(tags), "\n".join(tags)))
    errors = [l for l in tags if l.startswith("E:")]
    assert not errors and p.returncode == 0, p.stdout


@test
def deb_installs():
    need("clear", "no package to install, or files of it on the machine already")
    state["installed"] = True  # from here on, the finally below purges
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends"] + APT_LOCK + [state["deb"]],
        env=APT_ENV, timeout=900)
    for path in ("/usr/libexec/warden/warden-kvm", "/usr/bin/wardend", CONFIG):
        assert os.path.exists(path), path
    u = pwd.getpwnam("warden")
    assert u.pw_dir == "/var/lib/warden" and u.pw_shell.endswith("nologin"), u
    if group_exists("kvm"):
        assert "warden" in grp.getgrnam("kvm").gr_mem, grp.getgrnam("kvm")
    st = os.stat("/etc/warden/tokens")
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_uid == 0 and st.st_gid == grp.getgrnam("warden").gr_gid, \
        oct(st.st_mode)
    note(run(["dpkg", "-s", PKG]).stdout.split("\nDescription")[0])


@test
def installed_units_verify():
    need("installed", "the package is not installed")
    p = run(["systemd-analyze", "verify"] + UNITS, check=False)
    note("systemd-analyze verify %s: exit %d%s" % (" ".join(UNITS), p.returncode,
                                                  (":\n" + p.stdout) if p.stdout.strip() else ""))
    assert p.returncode == 0 and not p.stdout.strip(), p.stdout


class InstalledDaemon(harness.Daemon):
    """The installed wardend with the installed config; only the listeners
    and directories come from the command line."""

    def __init__(self, user=None):
        super().__init__(config={}, tokens=False)
        if user:
            # As the unit runs it: its user, with the groups postinst gave it
            # (kvm for /dev/kvm).
            u = pwd.getpwnam(user)
            os.chown(self.dir, u.pw_uid, u.pw_gid)
            self.wrap = ["setpriv", "--reuid=" + user, "--regid=" + user, "--init-groups", "--"]

    def start(self, wait=True):
        argv = self.wrap + ["/usr/bin/wardend", "--config", CONFIG,
                "--listen", "unix:" + self.sock, "--listen", "tcp:127.0.0.1:%d" % self.port,
                "--state-dir", self.state_dir, "--runtime-dir", self.runtime_dir]
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "LISTEN_FDS", "JOURNAL_STREAM")}
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.logf, stderr=self.logf, env=env)
        if wait:
            self.wait_ready()
        return self


@test
def installed_daemon_runs_the_installed_config():
    need("installed", "the package is not installed")
    harness.require_kvm()
    with InstalledDaemon() as d:
        for name in ("heartbeat", "faulty"):  # the config's autostart cells
            c = d.wait_state(name, "running", timeout=30)
            assert c["heartbeat"]["seq"] > 0, c
        cells = {c["name"]: c["state"] for c in d.get("/cells").json()}
        # the container cell runs where runc is installed (a Recommends)
        container = cells.pop("container", None)
        assert container is not None, cells
        if os.access("/usr/sbin/runc", os.X_OK):
            c = d.wait_state("container", "running", timeout=30)
            assert c["backend"] == "container" and c["heartbeat"]["seq"] > 0, c
        assert cells == {"heartbeat": "running", "faulty": "running", "nqueens": "stopped",
                         "jitter": "stopped"}, cells
        # The installed runner and inmates, not a build tree's.
        runners = d.runner_pids()
        assert len(runners) == 2, runners
        for pid in runners:
            assert os.readlink("/proc/%d/exe" % pid) == "/usr/libexec/warden/warden-kvm"
        spec = d.cell("heartbeat")["spec"]
        assert spec["images"][0]["file"] == "/usr/share/warden/inmates/heartbeat.bin", spec
        # TCP: metrics for anyone, as the config says; changes need a token,
        # and the shipped tokens file has none.
        m = d.get("/metrics", tcp=True)
        assert m.status == 200 and 'warden_cell_up{cell="heartbeat"} ' in m.body, m
        note("\n".join(l for l in m.body.splitlines() if l.startswith(("warden_cell_up", "warden_cell_restarts"))))
        for name in ("heartbeat", "faulty"):
            if 'warden_cell_up{cell="%s"} 0' % name in m.body:  # seen once, on a loaded host: say why
                c = d.cell(name)
                note("%s not up: %s, last failure %s" % (name, c["state"], c.get("last_failure")))
        r = d.post("/cells/heartbeat/restart", tcp=True)
        assert r.status == 401, r
        r = d.post("/cells/heartbeat/restart?wait=10")
        assert r.status == 200, r
        out = run(["/usr/bin/wardenctl", "--socket", d.sock, "cells"]).stdout
        note(out)
        assert "heartbeat" in out and "running" in out, out
        d.stop()
        log = d.log()
        assert "Loaded 0 API tokens from /etc/warden/tokens" in log, log[-3000:]


@test
def installed_daemon_runs_as_the_units_user():
    """wardend.service runs wardend as the user warden with the kvm group;
    without systemd as PID 1 here, setpriv stands in for User= and
    SupplementaryGroups=."""
    need("installed", "the package is not installed")
    harness.require_kvm()
    if not shutil.which("setpriv"):
        raise Skip("setpriv missing (util-linux)")
    with InstalledDaemon(user="warden") as d:
        for name in ("heartbeat", "faulty"):
            d.wait_state(name, "running", timeout=30)
        uid = pwd.getpwnam("warden").pw_uid
        for pid in [d.proc.pid] + d.runner_pids():
            assert os.stat("/proc/%d" % pid).st_uid == uid, pid
        m = d.get("/metrics", tcp=True)
        assert m.status == 200 and 'warden_cell_up{cell="faulty"} ' in m.body, m


def purge():
    p = run(["apt-get", "purge", "-y", "-q"] + APT_LOCK + [PKG], env=APT_ENV, timeout=900, check=False)
    if p.returncode != 0:
        sys.stderr.write(p.stdout)
        run(["dpkg", "--purge", PKG], check=False)
    return p


@test
def purge_leaves_nothing():
    need("installed", "the package is not installed")
    purge()
    state["installed"] = False
    assert not package_installed(), run(["dpkg", "-l", PKG], check=False).stdout
    left = [f for f in state["files"] if os.path.lexists(f) and not os.path.isdir(f)]
    left += [d for d in OWN_DIRS if os.path.lexists(d)]
    assert not left, "left behind: %s" % left
    assert not user_exists("warden") and not group_exists("warden"), "the warden user or group is still there"
    if group_exists("kvm"):
        assert "warden" not in grp.getgrnam("kvm").gr_mem


if __name__ == "__main__":
    try:
        harness.run_tests()
    finally:
        if state["installed"]:
            purge()
        if state["work"] and os.environ.get("WARDEN_KEEP_TEST_DIRS") != "1":
            shutil.rmtree(state["work"], ignore_errors=True)
