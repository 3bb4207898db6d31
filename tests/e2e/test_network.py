# SPDX-License-Identifier: MIT
"""Cell networks end to end (docs/networks.md): a real wardend, a QEMU
Linux cell with a virtio-net NIC on the tap wardend makes, NAT through
libnftables to an "uplink" that is another network namespace.

Network traffic rule: the test first moves itself into a network
namespace of its own (unshare(CLONE_NEWNET)); wardend, QEMU and the cell
inherit it, and the uplink is one more namespace it creates, joined by a
veth pair. Nothing outside them is ever addressed, and nothing the test
makes survives it: the namespaces die with their last process.

Order: bad input (no boot needed), then one cell that boots once and is
used by the tests after it: NAT, link down/up, 20 restarts, daemon kill
and re-adoption, and last the cleanup of stop and delete. The jailhouse
path's root-side logic (a veth standing in for ivshmem-net) is tested by
test-netif. Everything skips without root, QEMU or the Linux image.
"""
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import BUILD, Daemon, Skip, poll, run_tests, test  # noqa: E402

QEMU = os.environ.get("WARDEN_QEMU") or shutil.which("qemu-system-x86_64") or ""
LINUX = os.path.join(BUILD, "driver", "linux")
KERNEL = os.environ.get("WARDEN_LINUX_KERNEL") or os.path.join(LINUX, "vmlinux")
INITRD = os.environ.get("WARDEN_LINUX_INITRD") or os.path.join(LINUX, "initramfs.cpio.gz")
IP = shutil.which("ip") or "/usr/sbin/ip"
NFT = shutil.which("nft") or "/usr/sbin/nft"
# ping from busybox-static (the inmate image's), which every build host has
BUSYBOX = shutil.which("busybox") or "/bin/busybox"
BOOT_S = 180
RESTARTS = int(os.environ.get("WARDEN_NET_RESTARTS", "20"))
CPU = 1 if (os.cpu_count() or 1) > 1 else 0
CLONE_NEWNET = 0x40000000

UPLINK_ROOT, UPLINK_FAR = "192.0.2.1", "192.0.2.2"  # TEST-NET-1, inside the namespaces only
HTTP_PORT = 8080

_netns_error = None


def enter_netns():
    """This process (and so every child) into a network namespace of its own."""
    global _netns_error
    if os.geteuid() != 0:
        _netns_error = "needs root (network namespaces, CAP_NET_ADMIN)"
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        _netns_error = "unshare(CLONE_NEWNET): %s" % os.strerror(ctypes.get_errno())
        return
    sh(IP, "link", "set", "lo", "up")


def sh(*argv, check=True):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and r.returncode != 0:
        raise AssertionError("%s: %s" % (" ".join(argv), r.stdout))
    return r


def links():
    """{name: {"alias":..., "master":..., "kind":...}} of this namespace."""
    out = json.loads(sh(IP, "-d", "-j", "link", "show").stdout or "[]")
    return {l["ifname"]: {"alias": l.get("ifalias"), "master": l.get("master"),
                          "kind": (l.get("linkinfo") or {}).get("info_kind"), "flags": l.get("flags", [])}
            for l in out}


def nft_table():
    if not os.access(NFT, os.X_OK):
        return None
    r = sh(NFT, "list", "table", "ip", "warden", check=False)
    return r.stdout if r.returncode == 0 else None


def ping(addr, count=1, wait=3):
    return subprocess.run([BUSYBOX, "ping", "-c", str(count), "-W", str(wait), addr], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def require_env():
    if _netns_error:
        raise Skip(_netns_error)


def require_linux():
    require_env()
    if not QEMU or not os.access(QEMU, os.X_OK):
        raise Skip("qemu-system-x86_64 not found")
    for p in (KERNEL, INITRD):
        if not os.access(p, os.R_OK):
            raise Skip("no Linux inmate image (%s): build driver/linux" % p)
    if not os.path.exists("/dev/net/tun"):
        raise Skip("no /dev/net/tun")


class Uplink:
    """Another network namespace behind a veth pair, with a small HTTP
    server that answers with the client's address (so NAT shows)."""

    SERVER = r"""
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("warden-uplink-client=%s\n" % self.client_address[0]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
"""

    def __init__(self):
        # a holder process owns the far namespace; nsenter joins it
        self.holder = subprocess.Popen(["unshare", "--net", "sleep", "100000"])
        pid = self.holder.pid
        poll(lambda: os.readlink("/proc/%d/ns/net" % pid) != os.readlink("/proc/self/ns/net"), 5,
             "the uplink namespace")
        sh(IP, "link", "add", "up0", "type", "veth", "peer", "name", "up1")
        sh(IP, "link", "set", "up1", "netns", str(pid))
        sh(IP, "addr", "add", UPLINK_ROOT + "/24", "dev", "up0")
        sh(IP, "link", "set", "up0", "up")
        ns = ["nsenter", "-t", str(pid), "-n"]
        sh(*ns, IP, "link", "set", "lo", "up")
        sh(*ns, IP, "addr", "add", UPLINK_FAR + "/24", "dev", "up1")
        sh(*ns, IP, "link", "set", "up1", "up")
        # no route back to the cells' subnet: only NAT gets an answer home
        self.server = subprocess.Popen(ns + [sys.executable, "-c", self.SERVER, UPLINK_FAR, str(HTTP_PORT)])
        poll(lambda: sh(*ns, "ss", "-ltn", check=False).stdout.find(":%d" % HTTP_PORT) >= 0, 10,
             "the uplink's HTTP server")

    def close(self):
        for p in (self.server, self.holder):
            p.kill()
            p.wait()
        sh(IP, "link", "del", "up0", check=False)


def linux_cell(name, network, probe=True, ram_phys=0x80000000, comm_phys=0x7f010000, **extra):
    cmdline = "console=ttyS0 quiet"
    if probe:
        cmdline += " warden_net_probe=http://%s:%d/" % (UPLINK_FAR, HTTP_PORT)
    spec = {
        "name": name,
        "backend": "qemu",
        "cpus": [CPU],
        "memory": [{"name": "ram", "phys_start": hex(ram_phys), "virt_start": "0x0", "size": "0x10000000",
                    "flags": ["read", "write", "execute", "loadable"]}],
        "comm": {"phys_start": hex(comm_phys), "virt_start": "0xfe000000", "size": 4096},
        "linux": {"kernel": os.path.abspath(KERNEL), "initrd": os.path.abspath(INITRD), "cmdline": cmdline},
        "health": {"period_ms": 100, "timeout_ms": 2000, "boot_timeout_ms": 120000},
        "recovery": {"max_restarts": 50, "window_s": 600,
                     "backoff": {"initial_ms": 0, "max_ms": 1000, "factor": 2.0, "reset_after_s": 60},
                     "shutdown_timeout_ms": 20000},
        "network": network,
    }
    spec.update(extra)
    return spec


NET = {"bridge": "warden0", "address": "10.77.0.1/24", "cell_address": "10.77.0.2", "nat": {"uplink": "up0"}}


def config(cells):
    return {"backends": {"qemu": {"binary": QEMU, "accel": "tcg", "machine": "pc"}},
            "root_cpus": [0], "cpu_sharing": True,
            "api": {"image_dirs": sorted({os.path.dirname(os.path.abspath(p)) for p in (KERNEL, INITRD)})},
            "cells": cells}


class NetDaemon(Daemon):
    def cleanup(self):
        self.stop()
        for pid in self.cell_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        super().cleanup()


def running(c):
    return c["state"] in ("running", "degraded")


def console(d, name="linux"):
    r = d.get("/cells/%s/console?bytes=65536" % name)
    assert r.status == 200, r
    return r.body


_shared = {}


def shared():
    """The daemon with the `linux` cell up and the uplink (made on first use)."""
    if "error" in _shared:
        raise AssertionError("the shared cell did not come up (see the first failure)")
    if "d" not in _shared:
        try:
            _shared["uplink"] = Uplink()
            d = NetDaemon(config([linux_cell("linux", NET)]))
            _shared["d"] = d
            d.start()
            d.wait_cell("linux", lambda c: c["state"] == "running" and c["heartbeat"]["seq"] >= 1, BOOT_S, "running")
        except Exception:
            _shared["error"] = True
            raise
    return _shared["d"]


# ---- bad input: refused with a reason, nothing taken over ----------------

@test
def bad_network_specs_are_refused():
    require_env()
    with NetDaemon(config([])) as d:
        base = linux_cell("a", NET, probe=False, autostart=False)
        cases = [
            ({"interface": "a-very-long-tap-name"}, "too long for an interface name"),
            ({"bridge": "br 0"}, "is not a valid interface name"),
            ({"address": "10.77.0.300/24"}, "is not an IPv4 address"),
            ({"cell_address": "10.78.0.2"}, "is not in the root side's subnet"),
            ({"nat": {"uplink": "a/b"}}, "is not a valid interface name"),
        ]
        for change, why in cases:
            spec = json.loads(json.dumps(base))
            spec["network"].update(change)
            r = d.post("/cells", body=spec)
            assert r.status == 422 and why in r.body, (change, r)
        assert d.post("/cells", body=base).status == 201
        # a second cell on another bridge whose subnet overlaps
        other = linux_cell("b", {"bridge": "br1", "address": "10.77.0.129/25", "cell_address": "10.77.0.130"},
                           probe=False, autostart=False, ram_phys=0x90000000, comm_phys=0x7f011000)
        r = d.post("/cells", body=other)
        assert r.status in (409, 422) and "overlaps" in r.body, r
        assert d.get("/cells/b").status == 404


@test
def foreign_bridge_is_refused_not_taken_over():
    require_linux()
    sh(IP, "link", "add", "warden0", "type", "bridge")
    try:
        with NetDaemon(config([linux_cell("x", NET, probe=False)])) as d:
            c = d.wait_cell("x", lambda c: any(e["type"] == "network" for e in c["events"]), 30,
                            "the network event")
            ev = [e for e in c["events"] if e["type"] == "network"][-1]
            assert "network set-up failed" in ev["reason"], ev
            assert "bridge \"warden0\" exists and is not warden's" in d.log(), d.log()[-2000:]
            assert c["state"] != "running", c["state"]
            l = links()
            assert l["warden0"]["alias"] is None and "wd-x" not in l, l
            assert not d.cell_pids(), "QEMU started without its network"
            d.post("/cells/x/stop")
    finally:
        sh(IP, "link", "del", "warden0", check=False)


# ---- a Jailhouse cell: a veth stands in for its ivshmem-net interface -------

JH_COMM_PHYS, JH_COMM_VIRT = 0x7f900000, 0x80000000


class JailhouseBoard:
    """The fake Jailhouse driver of tests/lib (jailhouse_fake.py), a system
    config and a .cell, as test_jailhouse.py builds them."""

    def __init__(self, d):
        from jailhouse_fake import FakeDriver, demo_configs
        self.fake = FakeDriver(d, JH_COMM_PHYS + 0x100000)
        self.system, self.cell, self.image = demo_configs(d, JH_COMM_PHYS, JH_COMM_VIRT)
        self.dir = d

    def config(self, network):
        return {
            "backends": {"jailhouse": self.fake.backend(self.system)},
            "api": {"image_dirs": [self.dir]},
            "cells": [{"name": "jh", "backend": "jailhouse", "jailhouse": {"cell_config": self.cell},
                       "comm": {"virt_start": hex(JH_COMM_VIRT), "size": 8192},
                       "images": [{"file": self.image, "address": "0x1000"}],
                       "health": {"period_ms": 20, "timeout_ms": 300, "boot_timeout_ms": 3000},
                       "network": network}],
        }


@test
def jailhouse_cell_claims_its_ivshmem_net_stand_in():
    require_env()
    from jailhouse_fake import FAKE, Inmate
    if not os.path.exists(FAKE):
        raise Skip("no %s: build it first" % FAKE)
    import tempfile
    d = tempfile.mkdtemp(prefix="warden-jh-net-")
    # the "cell's" side of the link lives in a namespace of its own, so
    # ivsh0 is the one veth wardend finds by driver
    holder = subprocess.Popen(["unshare", "--net", "sleep", "100000"])
    inmate = None
    try:
        poll(lambda: os.readlink("/proc/%d/ns/net" % holder.pid) != os.readlink("/proc/self/ns/net"), 5,
             "the cell-side namespace")
        ns = ["nsenter", "-t", str(holder.pid), "-n"]
        sh(IP, "link", "add", "ivsh0", "type", "veth", "peer", "name", "ivcell0")
        sh(IP, "link", "set", "ivcell0", "netns", str(holder.pid))
        sh(*ns, IP, "addr", "add", "10.88.0.2/24", "dev", "ivcell0")
        sh(*ns, IP, "link", "set", "ivcell0", "up")
        b = JailhouseBoard(d)
        inmate = Inmate(b.fake.mem, JH_COMM_PHYS)
        inmate.start()
        net = {"match": {"driver": "veth"}, "address": "10.88.0.1/24", "cell_address": "10.88.0.2"}
        with NetDaemon(b.config(net)) as dm:
            dm.wait_state("jh", "running", 15)
            c = dm.wait_cell("jh", lambda c: c["network"]["present"] and c["network"]["carrier"], 20,
                             "the interface claimed")
            assert c["network"]["interface"] == "ivsh0" and c["network"]["match"] == {"driver": "veth"}, c
            l = links()
            assert l["ivsh0"]["alias"] == "warden:cell:jh", l
            assert "10.88.0.1/24" in sh(IP, "-o", "addr", "show", "dev", "ivsh0").stdout
            assert poll(lambda: ping("10.88.0.2", wait=1), 10, "an answer through the stand-in")
            # the cell's side goes down: carrier lost on ours
            sh(*ns, IP, "link", "set", "ivcell0", "down")
            c = dm.wait_state("jh", "degraded", 20)
            ev = [e for e in c["events"] if e["type"] == "state" and e["state"] == "degraded"][-1]
            assert "carrier lost on ivsh0" in ev["reason"], ev
            sh(*ns, IP, "link", "set", "ivcell0", "up")
            c = dm.wait_state("jh", "running", 20)
            ev = [e for e in c["events"] if e["type"] == "state" and e["state"] == "running"][-1]
            assert ev["reason"] == "network link restored", ev
            # stopped: the interface is the driver's and stays, unclaimed
            assert dm.post("/cells/jh/stop").status == 202
            dm.wait_state("jh", "stopped", 20)
            poll(lambda: links()["ivsh0"]["alias"] is None, 10, "the marker gone")
            assert "10.88.0.1" not in sh(IP, "-o", "addr", "show", "dev", "ivsh0").stdout
            assert "ivsh0" in links()
    finally:
        if inmate:
            inmate.stop()
        holder.kill()
        holder.wait()
        sh(IP, "link", "del", "ivsh0", check=False)
        shutil.rmtree(d, ignore_errors=True)


# ---- one cell, booted once -------------------------------------------------

@test
def cell_gets_its_address_and_reaches_the_uplink_through_nat():
    require_linux()
    d = shared()
    l = links()
    assert l["wd-linux"]["alias"] == "warden:cell:linux" and l["wd-linux"]["master"] == "warden0", l
    assert l["warden0"]["alias"] == "warden:bridge" and l["warden0"]["kind"] == "bridge", l
    # the first beat comes from warden.ko, before /init sets the address
    assert poll(lambda: ping("10.77.0.2", wait=1), 60, "the cell answering at 10.77.0.2")
    body = poll(lambda: (lambda b: b if "warden: probe fetch" in b else None)(console(d)), 120, "the probe")
    assert "warden: network eth0 10.77.0.2 gateway 10.77.0.1" in body, body[-2000:]
    assert "warden: probe ping 10.77.0.1 ok" in body, body[-2000:]
    # the uplink saw the root side's uplink address: masqueraded
    assert "warden: probe fetch ok: warden-uplink-client=%s" % UPLINK_ROOT in body, body[-2000:]
    t = nft_table()
    if t is not None:
        assert "masquerade" in t and "10.77.0.0/24" in t and "up0" in t, t
    c = d.wait_cell("linux", lambda c: c["network"]["rx"]["packets"] > 0 and c["network"]["tx"]["packets"] > 0, 10,
                    "counters")
    n = c["network"]
    assert n["interface"] == "wd-linux" and n["bridge"] == "warden0" and n["carrier"] and n["up"], n
    assert n["address"] == "10.77.0.1/24" and n["cell_address"] == "10.77.0.2", n
    assert n["nat"] == {"uplink": "up0"} and n["operstate"] in ("up", "unknown"), n
    m = d.get("/metrics").body
    assert re.search(r'warden_cell_network_receive_bytes_total\{cell="linux",interface="wd-linux"\} [1-9]', m), m
    assert 'warden_cell_network_carrier{cell="linux",interface="wd-linux"} 1' in m, m
    p = subprocess.run([os.path.join(BUILD, "daemon", "wardenctl"), "--socket", d.sock, "cell", "show", "linux"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "wd-linux on warden0, 10.77.0.1/24 -> 10.77.0.2, NAT via up0, carrier up" in p.stdout, p
    promtool = shutil.which("promtool")
    if promtool:
        p = subprocess.run([promtool, "check", "metrics"], input=m.encode(), capture_output=True)
        assert p.returncode == 0, p.stdout + p.stderr


@test
def link_down_degrades_and_up_clears():
    require_linux()
    d = shared()
    sh(IP, "link", "set", "wd-linux", "down")
    c = d.wait_cell("linux", lambda c: c["state"] == "degraded", 30, "degraded")
    ev = [e for e in c["events"] if e["type"] == "state" and e["state"] == "degraded"][-1]
    assert "wd-linux" in ev["reason"] and "down" in ev["reason"], ev
    assert not c["network"]["up"], c["network"]
    assert 'warden_cell_network_carrier{cell="linux",interface="wd-linux"} 0' in d.get("/metrics").body
    sh(IP, "link", "set", "wd-linux", "up")
    c = d.wait_cell("linux", lambda c: c["state"] == "running", 30, "running again")
    ev = [e for e in c["events"] if e["type"] == "state" and e["state"] == "running"][-1]
    assert ev["reason"] == "network link restored", ev
    assert poll(lambda: ping("10.77.0.2", wait=1), 30, "an answer after the link came back")


def one_interface_set():
    l = links()
    taps = [n for n, v in l.items() if (v["alias"] or "").startswith("warden:cell:")]
    ports = [n for n, v in l.items() if v["master"] == "warden0"]
    assert taps == ["wd-linux"] and ports == ["wd-linux"], l
    return l


@test
def restarts_keep_the_cell_reachable_without_leaks():
    require_linux()
    d = shared()
    before = links()
    for i in range(RESTARTS):
        pid = d.cell("linux")["hypervisor"]["pid"]
        r = d.post("/cells/linux/restart")
        assert r.status == 202, r
        d.wait_cell("linux", lambda c: c["state"] == "running" and c["hypervisor"] and
                    c["hypervisor"]["pid"] != pid and c["heartbeat"]["seq"] >= 1, BOOT_S, "restart %d" % i)
        assert poll(lambda: ping("10.77.0.2", wait=1), 60, "ping after restart %d" % i)
        one_interface_set()
    after = links()
    assert sorted(after) == sorted(before), (before, after)
    print("# %d restarts, the cell answered after each, one tap throughout" % RESTARTS, flush=True)


@test
def daemon_kill_and_restart_readopts_the_network():
    require_linux()
    d = shared()
    pid = d.cell("linux")["hypervisor"]["pid"]
    d.kill(signal.SIGKILL)
    # a dead daemon tears nothing down: the cell stays reachable
    one_interface_set()
    assert poll(lambda: ping("10.77.0.2", wait=1), 10, "the cell reachable with no daemon")
    d.logf.close()
    d.start()
    c = d.wait_cell("linux", lambda c: c["state"] == "running" and c["network"]["present"], 60, "adopted")
    assert c["hypervisor"]["pid"] == pid, c["hypervisor"]
    assert c["network"]["carrier"] and c["network"]["interface"] == "wd-linux", c["network"]
    one_interface_set()
    t = nft_table()
    if t is not None:
        assert t.count("masquerade") == 1, t
    # the new daemon's monitor watches the link it found
    sh(IP, "link", "set", "wd-linux", "down")
    d.wait_state("linux", "degraded", 30)
    sh(IP, "link", "set", "wd-linux", "up")
    d.wait_state("linux", "running", 30)
    assert poll(lambda: ping("10.77.0.2", wait=1), 30, "ping after re-adoption")


@test
def stop_and_delete_leave_nothing_behind():
    require_linux()
    d = shared()
    r = d.post("/cells/linux/stop")
    assert r.status == 202, r
    d.wait_state("linux", "stopped", 60)
    poll(lambda: "wd-linux" not in links() and "warden0" not in links() and nft_table() is None, 10,
         "links and NAT table gone after stop")
    # started again, it all comes back; deleted, it all goes
    assert d.post("/cells/linux/start").status == 202
    d.wait_cell("linux", lambda c: c["state"] == "running", BOOT_S, "running again")
    one_interface_set()
    assert poll(lambda: ping("10.77.0.2", wait=1), 60, "ping after start")
    r = d.delete("/cells/linux")
    assert r.status in (200, 202, 204), r
    poll(lambda: "wd-linux" not in links() and "warden0" not in links() and nft_table() is None, 30,
         "links and NAT table gone after delete")
    poll(lambda: not d.cell_pids(), 30, "QEMU gone")
    left = [n for n, v in links().items() if (v["alias"] or "").startswith("warden:")]
    assert not left, left


def teardown():
    d = _shared.get("d")
    if d:
        d.cleanup()
    u = _shared.get("uplink")
    if u:
        u.close()


if __name__ == "__main__":
    enter_netns()
    import atexit
    atexit.register(teardown)
    run_tests()
