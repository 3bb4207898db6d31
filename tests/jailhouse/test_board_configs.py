# SPDX-License-Identifier: MIT
"""wardend's configs for the two Jailhouse boards hold up as shipped.

configs/qemu-arm64-jailhouse.json (the emulated board) and
configs/rpi4-jailhouse.json (the Raspberry Pi 4, docs/rpi4.md) name their
Jailhouse configs, images and tokens under /usr/share/warden and
/etc/warden. Here those paths move into a temporary directory, where:
  - each .cell is `wardenctl jailhouse export` of configs/jailhouse/NAME.json,
  - the bare-metal images are the build's driver/inmate-arm64/*.bin,
  - a Linux cell gets a synthetic arm64 Image, a small initrd and the DTB
    of Jailhouse's configs/arm64/dts/inmate-BOARD.dts (the emulated
    board's own build of it when build/board has one), and a dummy file as
    linux-loader.bin (nobody runs it),
and the real wardend runs the real jailhouse backend on the fake driver
(tests/lib/jailhouse_fake.py, as tests/e2e/test_jailhouse.py does). The
fake driver refuses what the real one refuses (CPUs the root cell lacks,
images outside a loadable region), so both cells being created, loaded
with their images and started says the configs agree with each other.
This test writes the bare-metal cell's beats at its comm page's physical
address; the Linux cell does not beat (it stays booting).

A static check holds the cells' memory to what the root kernel leaves
alone on each board and the bare-metal cell's comm page to a page of the
root cell that no other config of that board uses.

Skips, saying why, without dtc, cpp, the arm64 cross compiler (the
inmates) or the Jailhouse tarball (the inmate DTS).
"""
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
from harness import BUILD, Daemon, Skip, poll, run_tests, test  # noqa: E402
from jailhouse_fake import FAKE, FakeDriver, Inmate, export_file, subsequence, synthetic_image  # noqa: E402
import test_configs as tc  # noqa: E402  the oracle tree's extraction
import test_place as tp  # noqa: E402  its DTB build

TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
DOCS = os.path.join(TOP, "configs", "jailhouse")
INMATES = os.path.join(BUILD, "driver", "inmate-arm64")
SRC = tc.SRC or os.path.join(TOP, "..", "shared", "jailhouse")
PREFIXES = ("/usr/share/warden/", "/etc/warden/")

# board config -> (its configs' prefix in configs/jailhouse, the inmate
# DTS, the physical memory the root kernel must leave to Jailhouse)
BOARDS = {
    # hypervisor/jailhouse/board: mem=768M of the RAM at 0x40000000
    "qemu-arm64-jailhouse.json": ("qemu-arm64", "inmate-qemu-arm64", (0x70000000, 0x80000000)),
    # docs/rpi4.md: the reserved-memory node of the root's device tree
    "rpi4-jailhouse.json": ("rpi4", "inmate-rpi4", (0x10000000, 0x20000000)),
}


def load(path):
    with open(path) as f:
        return json.load(f)


def regions(doc):
    return doc["root_cell"]["memory"] if doc["jailhouse"] == "system" else doc["memory"]


def span(m):
    start = int(m["phys_start"], 16)
    return start, start + int(m["size"], 16)


def doc_of(cell_path):
    """configs/jailhouse/NAME.json of /usr/share/warden/jailhouse/NAME.cell."""
    return os.path.join(DOCS, os.path.basename(cell_path)[:-len(".cell")] + ".json")


def comm_phys(spec):
    """The physical address of a cell's comm page, from its .cell's document."""
    virt = int(spec["comm"]["virt_start"], 16)
    for m in regions(load(doc_of(spec["jailhouse"]["cell_config"]))):
        if int(m["virt_start"], 16) == virt and int(m["size"], 16):
            return int(m["phys_start"], 16)
    raise AssertionError("%s: no region at comm virt_start %#x" % (spec["name"], virt))


def cell_name(spec):
    return load(doc_of(spec["jailhouse"]["cell_config"]))["name"]


def require_tools():
    if not os.path.exists(FAKE):
        raise AssertionError("no %s: build it first (ninja -C build)" % FAKE)
    if not shutil.which("aarch64-linux-gnu-gcc"):
        raise Skip("aarch64-linux-gnu-gcc not installed (Debian: gcc-aarch64-linux-gnu): no arm64 inmates")


def inmate_dtb(stem):
    """Jailhouse's configs/arm64/dts/STEM.dts compiled: the emulated board's
    build of it if there is one, else cpp + dtc of the tarball's (cached)."""
    built = os.path.join(BUILD, "board", "jailhouse", stem + ".dtb")
    if os.path.exists(built):
        return built
    tarball = os.path.join(SRC, tp.TARBALL)
    if not os.path.isfile(tarball):
        raise Skip("no Jailhouse source for %s.dts: %s (set JAILHOUSE_SRC)" % (stem, tarball))
    tree = os.path.join(tc.CACHE, tp.TARBALL[:-len(".tar.gz")])
    try:
        tc.extract(tarball, tree)
        os.makedirs(tp.PLACE, exist_ok=True)
        return tp.build_dtb(tree, stem)
    except tc.Skip as e:
        raise Skip(str(e))


def board_cpus(root, system):
    """argv that runs wardend on a machine with the board's CPUs.

    wardend refuses a cell CPU that this machine lacks (sysconf's count of
    configured CPUs, which glibc reads from /sys/devices/system/cpu/possible),
    and the boards have more CPUs (the Pi 4 four, the emulated board 16)
    than a small build machine. Where this one has fewer, wardend runs in a
    private mount namespace (a user namespace too when not root) in which
    that file lists the root cell's CPUs of the board's system config."""
    n = max(system["root_cell"]["cpus"]) + 1
    if (os.sysconf("SC_NPROCESSORS_CONF") or 1) >= n:
        return []
    if not shutil.which("unshare"):
        raise Skip("the board has %d CPUs, this machine fewer, and there is no unshare (util-linux)" % n)
    possible = os.path.join(root, "cpu-possible")
    with open(possible, "w") as f:
        f.write("0-%d\n" % (n - 1))
    wrap = ["unshare", "--mount"] + ([] if os.geteuid() == 0 else ["--map-root-user"]) + [
        "sh", "-c", 'mount --bind "$0" /sys/devices/system/cpu/possible && exec "$@"', possible]
    probe = subprocess.run(wrap + ["python3", "-c", "import os; print(os.sysconf('SC_NPROCESSORS_CONF'))"],
                           capture_output=True, text=True)
    if probe.returncode != 0 or probe.stdout.strip() != str(n):
        raise Skip("the board has %d CPUs, this machine fewer, and a mount namespace cannot show %d: %s" % (
            n, n, (probe.stderr or probe.stdout).strip()[-300:]))
    return wrap


def local(root, value):
    """A /usr/share/warden or /etc/warden path moved below root; anything
    else as it is."""
    if isinstance(value, str) and (value.startswith(PREFIXES) or value + "/" in PREFIXES):
        return os.path.join(root, value.lstrip("/"))
    if isinstance(value, dict):
        return {k: local(root, v) for k, v in value.items()}
    if isinstance(value, list):
        return [local(root, v) for v in value]
    return value


def stage(board, root):
    """The files the board config names, made below root; returns the
    config with its paths moved there and the fake's backend, the fake,
    and the physical address of the bare-metal cell's comm page."""
    shipped = load(os.path.join(TOP, "configs", board))
    cfg = local(root, shipped)
    stem = BOARDS[board][1]
    for path in (root + "/usr/share/warden/jailhouse", root + "/etc/warden"):
        os.makedirs(path, exist_ok=True)
    jh = shipped["backends"]["jailhouse"]
    export_file(doc_of(jh["system_config"]), local(root, jh["system_config"]))
    hb_phys, top = None, 0
    for spec, cell in zip(shipped["cells"], cfg["cells"]):
        export_file(doc_of(spec["jailhouse"]["cell_config"]), cell["jailhouse"]["cell_config"])
        phys = comm_phys(spec)
        top = max(top, phys)
        for img in cell.get("images", []):
            src = os.path.join(INMATES, os.path.basename(img["file"]))
            assert os.path.exists(src), "no %s: build it first (ninja -C build)" % src
            os.makedirs(os.path.dirname(img["file"]), exist_ok=True)
            shutil.copy(src, img["file"])
            hb_phys = phys
        if "linux" in cell:
            lx = cell["linux"]
            os.makedirs(os.path.dirname(lx["kernel"]), exist_ok=True)
            synthetic_image(lx["kernel"])
            with gzip.open(lx["initrd"], "wb") as f:
                f.write(b"070701" + b"0" * 4090)
            shutil.copy(inmate_dtb(stem), lx["dtb"])
    assert hb_phys is not None, "%s: no bare-metal cell" % board
    loader = os.path.join(root, "linux-loader.bin")
    with open(loader, "wb") as f:
        f.write(b"\x00\x00\x00\x14" * 64)  # "b ." : never run here
    os.makedirs(os.path.join(root, "fake"))
    fake = FakeDriver(os.path.join(root, "fake"), top + 0x100000)
    cfg["backends"]["jailhouse"] = fake.backend(local(root, jh["system_config"]), linux_loader=loader)
    return cfg, fake, hb_phys


def boots(board):
    require_tools()
    root = tempfile.mkdtemp(prefix="warden-boardcfg-")
    inmate = None
    try:
        cfg, fake, hb_phys = stage(board, root)
        shipped = load(os.path.join(TOP, "configs", board))
        system = load(doc_of(shipped["backends"]["jailhouse"]["system_config"]))
        d = Daemon(cfg, wrap=board_cpus(root, system))
        # the config names its own tokens file: give it the harness's tokens
        shutil.copy(d.tokens_path, cfg["api"]["tokens_file"])
        inmate = Inmate(fake.mem, hb_phys)
        inmate.start()
        with d:
            r = d.get("/cells")
            assert r.status == 200, r
            names = sorted(c["name"] for c in r.json())
            assert names == sorted(s["name"] for s in shipped["cells"]), (names, d.log())
            health = d.get("/health").json()
            assert not health["broken_specs"], health
            for spec in shipped["cells"]:
                c = d.cell(spec["name"])
                doc = load(doc_of(spec["jailhouse"]["cell_config"]))
                assert c["spec"]["cpus"] == doc["cpus"], c["spec"]
                assert c["spec"]["comm"]["phys_start"] == hex(comm_phys(spec)), c["spec"]["comm"]
            hb = next(s for s in shipped["cells"] if "images" in s)
            lx = next(s for s in shipped["cells"] if "linux" in s)
            d.wait_state(hb["name"], "running", timeout=20)
            want = {cell_name(hb): 1, cell_name(lx): 5}  # loader, kernel, DTB, initrd, params
            for name, n in want.items():
                seq = ["ENABLE 0", "CELL_CREATE %s 0" % name, "CELL_LOAD %s images=%d 0" % (name, n),
                       "CELL_START %s 0" % name]
                try:
                    poll(lambda: subsequence(fake.calls(), seq), timeout=20, what=" then ".join(seq))
                except AssertionError:
                    raise AssertionError("%s: calls %s\nlog:\n%s" % (name, fake.calls(), d.log()[-3000:]))
            refused = [l for l in fake.calls() if not l.endswith(" 0")]
            assert not refused, fake.calls()
            errors = [l for l in d.log().splitlines() if " error: " in l]
            assert not errors, errors
            print("# %s: %s" % (board, ", ".join(fake.calls())), flush=True)
    finally:
        if inmate:
            inmate.stop()
        shutil.rmtree(root, ignore_errors=True)


@test
def qemu_arm64_config_boots_on_the_fake_driver():
    boots("qemu-arm64-jailhouse.json")


@test
def rpi4_config_boots_on_the_fake_driver():
    boots("rpi4-jailhouse.json")


@test
def cells_keep_to_the_memory_the_root_kernel_leaves_alone():
    """Every RAM region of the board's cells, and the hypervisor's, lie in
    the range its guide reserves; the bare-metal cell's comm page is root
    cell RAM that no other Jailhouse config of the board maps."""
    for board, (prefix, _, (lo, hi)) in BOARDS.items():
        shipped = load(os.path.join(TOP, "configs", board))
        system = load(doc_of(shipped["backends"]["jailhouse"]["system_config"]))
        start, end = span(system["hypervisor_memory"])
        assert lo <= start and end <= hi, "%s: hypervisor memory %#x..%#x" % (board, start, end)
        for spec in shipped["cells"]:
            for m in regions(load(doc_of(spec["jailhouse"]["cell_config"]))):
                start, end = span(m)
                if end == start or {"io", "comm_region"} & set(m["flags"]):
                    continue
                assert lo <= start and end <= hi, "%s: %s region %#x..%#x outside %#x..%#x" % (
                    board, spec["name"], start, end, lo, hi)
        hb = next(s for s in shipped["cells"] if "images" in s)
        page = comm_phys(hb)
        assert any(span(m)[0] <= page and page + 0x1000 <= span(m)[1] and "write" in m["flags"]
                   and "io" not in m["flags"] for m in regions(system)), "%s: %#x is not root RAM" % (board, page)
        own = os.path.basename(doc_of(hb["jailhouse"]["cell_config"]))
        others = [f for f in os.listdir(DOCS) if f.startswith(prefix + "-") and f != own]
        assert others, "%s: no other cell configs of %s" % (board, prefix)
        for f in others:
            for m in regions(load(os.path.join(DOCS, f))):
                start, end = span(m)
                assert end <= page or page + 0x1000 <= start, "%s: comm page %#x is in %s's %#x..%#x" % (
                    board, page, f, start, end)


if __name__ == "__main__":
    run_tests()
