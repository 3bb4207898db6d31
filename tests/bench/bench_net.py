#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Cell networks: what a network costs a Linux cell (docs/networks.md).

In a network namespace of its own (nothing outside is addressed), one
wardend runs two qemu Linux cells on TCG, `net` with a network (tap on
warden0, 10.77.0.2) and `plain` without, and measures, in the same run:

- start -> first ping answered from inside the cell: POST start of the
  stopped `net` cell (its tap is made anew) until an ICMP echo reply from
  10.77.0.2 (a raw socket, one request every 5 ms);
- restart -> running, `net` against `plain` (the baseline): the network's
  share of a whole restart;
- the network set-up inside each restart: the worker's tap + bridge work
  as wardend logs it ("network set up in X ms", debug level), goal < 5 ms.

usage: bench_net.py [--runs 10]
"""
import argparse
import ctypes
import os
import re
import select
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
from benchstats import median, pct  # noqa: E402
import test_network as tn  # noqa: E402

CELL_ADDR = "10.77.0.2"


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff


def first_echo(addr, deadline_s=300):
    """Seconds until addr answers an ICMP echo, asking every 5 ms."""
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident, seq, t0 = os.getpid() & 0xffff, 0, time.monotonic()
    try:
        while time.monotonic() - t0 < deadline_s:
            seq = (seq + 1) & 0xffff
            hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            pkt = struct.pack("!BBHHH", 8, 0, checksum(hdr + b"warden"), ident, seq) + b"warden"
            try:
                s.sendto(pkt, (addr, 0))
            except OSError:
                pass  # no neighbour yet
            end = time.monotonic() + 0.005
            while True:
                left = end - time.monotonic()
                if left <= 0 or not select.select([s], [], [], left)[0]:
                    break
                data, src = s.recvfrom(2048)
                ihl = (data[0] & 0xf) * 4
                typ, _, _, rid, _ = struct.unpack("!BBHHH", data[ihl:ihl + 8])
                if src[0] == addr and typ == 0 and rid == ident:
                    return time.monotonic() - t0
        raise AssertionError("no echo from %s in %d s" % (addr, deadline_s))
    finally:
        s.close()


def row(name, xs, unit=1e3):
    xs = [x * unit for x in xs]
    print("%-44s %9.3f %9.3f %9.3f %4d" % (name, median(xs), pct(xs, 90), max(xs), len(xs)))


def wait_running_new(d, name, pid):
    return d.wait_cell(name, lambda c: c["state"] == "running" and c["hypervisor"] and
                       c["hypervisor"]["pid"] != pid and c["heartbeat"]["seq"] >= 1, tn.BOOT_S, name + " running")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    tn.enter_netns()
    try:
        tn.require_linux()
    except tn.Skip as e:
        print("SKIP: %s" % e)
        return 0
    net = dict(tn.NET)
    net.pop("nat")
    cells = [tn.linux_cell("net", net, probe=False),
             tn.linux_cell("plain", None, probe=False, ram_phys=0x90000000, comm_phys=0x7f011000)]
    cells[1].pop("network")
    d = tn.NetDaemon(tn.config(cells), args=["--verbose"])
    try:
        d.start()
        for n in ("net", "plain"):
            d.wait_cell(n, lambda c: c["state"] == "running" and c["heartbeat"]["seq"] >= 1, tn.BOOT_S, n + " up")
        first_echo(CELL_ADDR)
        to_ping, restart = [], {"net": [], "plain": []}
        setup = {"fresh": [], "restart": []}

        def setups():
            return [float(x) / 1e3 for x in re.findall(r'Cell "net": network set up in ([0-9.]+) ms', d.log())]
        for i in range(args.runs):
            sys.stderr.write("run %d/%d\n" % (i + 1, args.runs))
            # start -> first echo, the tap made anew
            assert d.post("/cells/net/stop").status == 202
            d.wait_state("net", "stopped", 60)
            tn.poll(lambda: "wd-net" not in tn.links(), 10, "tap gone")
            seen = len(setups())
            t0 = time.monotonic()
            assert d.post("/cells/net/start").status == 202
            to_ping.append(time.monotonic() - t0 + first_echo(CELL_ADDR))
            d.wait_cell("net", lambda c: c["state"] == "running" and c["heartbeat"]["seq"] >= 1, tn.BOOT_S, "net up")
            setup["fresh"] += setups()[seen:]
            seen = len(setups())
            # restarts, alternating, the same boot otherwise
            for n in ("net", "plain"):
                pid = d.cell(n)["hypervisor"]["pid"]
                t0 = time.monotonic()
                assert d.post("/cells/%s/restart" % n).status == 202
                wait_running_new(d, n, pid)
                restart[n].append(time.monotonic() - t0)
            setup["restart"] += setups()[seen:]
        print("# bench_net: %d runs, TCG, times in ms: median p90 max n" % args.runs)
        row("start -> first echo from the cell", to_ping)
        row("restart -> running, with a network", restart["net"])
        row("restart -> running, without (baseline)", restart["plain"])
        row("network set-up in a restart (tap there)", setup["restart"])
        row("network set-up in a start (tap, bridge made)", setup["fresh"])
        print("# restart with/without network, medians: %.3f" % (median(restart["net"]) / median(restart["plain"])))
        r = setup["restart"]
        print("# network set-up in a restart: median %.3f ms of a %.0f ms restart (%.2f%%); goal < 5 ms: %s" %
              (median(r) * 1e3, median(restart["net"]) * 1e3, 100 * median(r) / median(restart["net"]),
               "met (max %.3f ms)" % (max(r) * 1e3) if max(r) * 1e3 < 5 else "not met (max %.3f ms)" % (max(r) * 1e3)))
    finally:
        d.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
