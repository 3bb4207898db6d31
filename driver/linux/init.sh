#!/bin/sh
# SPDX-License-Identifier: MIT
#
# /init of the warden Linux inmate image (see README.md): mount the pseudo
# file systems, load warden.ko with the warden.* parameters of the kernel
# command line, start the demo application if asked to, then wait. halt,
# poweroff and reboot (and the module's orderly_poweroff() on SHUTDOWN)
# signal this process, which then stops the machine.
#
# Kernel command line:
#   warden.period_ms=N warden.allow_inject=0|1 warden.phys_addr=A
#   warden.phys_size=N    passed to insmod as period_ms=N ...
#   warden_app=NAME,PERIOD_MS,PERIODS
#                         demo application: registers NAME, stays on time
#                         for PERIODS periods, then stops beating with
#                         /dev/warden still open (the cell goes DEGRADED)
#   warden_shell          a shell on the console
#   ip=CLIENT::GATEWAY:NETMASK::eth0:off
#                         the cell's network (wardend adds it for a cell
#                         with one): the kernel's own syntax, but set here
#                         with busybox, since Debian's kernel has no
#                         IP_PNP; the virtio-net modules are loaded first
#   warden_net_probe=URL  after the network is up, once: ping the gateway
#                         and fetch URL, each result on the console
#                         ("warden: probe ...": the network tests read it)
#   warden_load           load in the cell (the evaluation's): 4 MiB of
#                         random data written to a file and read back,
#                         in a loop, and a process spawned per turn
#   warden_run=PROG,ARG,...  runs /bin/PROG ARG ... once the module is
#                         loaded (commas become spaces), output on the
#                         console; e.g. warden_run=nqueens-host,n=12,threads=2
#   warden_container=NAME,PERIOD_MS,PERIODS
#                         the demo application of warden_app=, but in a
#                         container of its own that crun starts (images
#                         built with crun only: initramfs-containers); it
#                         opens /dev/warden from inside. PERIODS 0: on
#                         time for ever. May be given more than once.
#
# Run as `/init --app NAME,PERIOD_MS,PERIODS` (as the containers do), it is
# the demo application alone: nothing is mounted or loaded.

set -f
export PATH=/sbin:/bin:/usr/sbin:/usr/bin

is_number() {
	case "$1" in
	'' | *[!0-9]*) return 1 ;;
	esac
	[ "$1" -ge "${2:-1}" ]
}

# Beats twice per period so that shell and scheduling delays never make it
# late while it is meant to be on time. PERIODS 0 (allowed with --app
# only): for ever.
demo_app() {
	name=${1%%,*}
	rest=${1#*,}
	period=${rest%%,*}
	periods=${rest#*,}
	if ! is_number "$period" || ! is_number "$periods" "${2:-1}" ||
		[ "$name" = "$1" ]; then
		echo "warden: bad application NAME,PERIOD_MS,PERIODS: $1"
		return 1
	fi
	exec 3>/dev/warden || return 1
	echo "register $name $period" >&3 || return 1
	echo "warden: app $name registered, period $period ms, pid $$"
	i=0
	while [ "$periods" -eq 0 ] || [ $i -lt $((periods * 2)) ]; do
		echo beat >&3 || return 1
		usleep $((period * 500))
		i=$((i + 1))
	done
	echo "warden: app $name stopped beating"
	# Keep the registration (and the file) open, silent.
	while :; do
		sleep 3600
	done
}

if [ "$1" = --app ]; then
	demo_app "$2" 0
	exit 1
fi

/bin/busybox --install -s

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

params=
app=
containers=
run=
load=
shell=
ipconf=
probe=
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	warden.period_ms=* | warden.allow_inject=* | warden.phys_addr=* | \
	warden.phys_size=*)
		params="$params ${arg#warden.}"
		;;
	warden_app=*)
		app=${arg#warden_app=}
		;;
	warden_container=*)
		containers="$containers ${arg#warden_container=}"
		;;
	warden_shell | warden_shell=1)
		shell=1
		;;
	ip=*)
		ipconf=${arg#ip=}
		;;
	warden_net_probe=*)
		probe=${arg#warden_net_probe=}
		;;
	warden_run=*)
		run=${arg#warden_run=}
		;;
	warden_load | warden_load=1)
		load=1
		;;
	esac
done

if insmod /lib/modules/warden.ko $params; then
	echo "warden: module loaded"
else
	echo "warden: module failed to load"
fi
# After warden.ko, so that its panic notifier runs first (see meson.build).
for m in pvpanic pvpanic-mmio; do
	[ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko 2>/dev/null
done

# ip=CLIENT::GATEWAY:NETMASK::DEVICE:off, the fields wardend writes.
net_up() {
	old_ifs=$IFS
	IFS=:
	set -- $1
	IFS=$old_ifs
	client=$1 gw=$3 mask=$4 dev=${6:-eth0}
	for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev \
		virtio_pci failover net_failover virtio_net; do
		[ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko 2>/dev/null
	done
	i=0
	while [ ! -e /sys/class/net/$dev ] && [ $i -lt 50 ]; do
		usleep 20000
		i=$((i + 1))
	done
	ip link set lo up
	if ifconfig "$dev" "$client" netmask "$mask" up &&
		{ [ -z "$gw" ] || route add default gw "$gw"; }; then
		echo "warden: network $dev $client gateway ${gw:-none}"
	else
		echo "warden: network $dev not configured"
	fi
}

net_probe() {
	if ping -c 1 -W 5 "$gw" >/dev/null 2>&1; then
		echo "warden: probe ping $gw ok"
	else
		echo "warden: probe ping $gw failed"
	fi
	# no -T: Debian's static busybox 1.35 wget crashes with it
	body=$(wget -q -O - "$1" 2>/dev/null | head -n 1)
	if [ -n "$body" ]; then
		echo "warden: probe fetch ok: $body"
	else
		echo "warden: probe fetch failed"
	fi
}

if [ -n "$ipconf" ]; then
	net_up "$ipconf"
	[ -n "$probe" ] && net_probe "$probe" &
fi

if [ -n "$app" ]; then
	demo_app "$app" &
fi

# One container per warden_container=: crun's own pid, ipc, uts, mount and
# network namespaces, a read-only root of empty mount points with this
# image's /bin, /sbin and /usr bound read-only (busybox and its applets)
# and /init as the application, and /dev/warden as its only extra device
# (the cgroup v2 device rules allow it and nothing else beyond crun's
# defaults). --no-pivot: the root here is the initramfs, which cannot be
# pivoted away from.
container_start() {
	name=${1%%,*}
	case "$name,$1" in
	,* | *[!A-Za-z0-9.,_-]*)
		echo "warden: bad warden_container=$1"
		return 1
		;;
	esac
	if [ ! -x /bin/crun ]; then
		echo "warden: warden_container=$1: no crun in this image (use initramfs-containers.cpio.gz)"
		return 1
	fi
	dev=$(cat /sys/class/misc/warden/dev 2>/dev/null)
	major=${dev%%:*}
	minor=${dev#*:}
	if ! is_number "$major" 0 || ! is_number "$minor" 0; then
		echo "warden: warden_container=$1: no /dev/warden"
		return 1
	fi
	bundle=/run/containers/$name
	mkdir -p "$bundle"
	cat >"$bundle/config.json" <<-EOF
	{
	  "ociVersion": "1.0.2",
	  "hostname": "$name",
	  "root": {"path": "/containers/rootfs", "readonly": true},
	  "process": {
	    "terminal": false,
	    "user": {"uid": 0, "gid": 0},
	    "cwd": "/",
	    "args": ["/init", "--app", "$1"],
	    "env": ["PATH=/bin:/sbin:/usr/bin:/usr/sbin"],
	    "noNewPrivileges": true
	  },
	  "mounts": [
	    {"destination": "/proc", "type": "proc", "source": "proc"},
	    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
	     "options": ["nosuid", "strictatime", "mode=755", "size=64k"]},
	    {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "size=1m"]},
	    {"destination": "/init", "type": "bind", "source": "/init", "options": ["bind", "ro"]},
	    {"destination": "/bin", "type": "bind", "source": "/bin", "options": ["rbind", "ro"]},
	    {"destination": "/sbin", "type": "bind", "source": "/sbin", "options": ["rbind", "ro"]},
	    {"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]}
	  ],
	  "linux": {
	    "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
	                   {"type": "network"}],
	    "devices": [{"path": "/dev/warden", "type": "c", "major": $major, "minor": $minor,
	                 "fileMode": 384, "uid": 0, "gid": 0}],
	    "resources": {"devices": [{"allow": false, "access": "rwm"},
	                              {"allow": true, "type": "c", "major": $major, "minor": $minor,
	                               "access": "rw"}]}
	  }
	}
	EOF
	echo "warden: container $name starting"
	crun run --no-pivot --bundle "$bundle" "$name" </dev/null
	echo "warden: container $name exited $?"
}

if [ -n "$containers" ] && [ -x /bin/crun ] &&
	[ ! -e /sys/fs/cgroup/cgroup.controllers ]; then
	mount -t cgroup2 cgroup2 /sys/fs/cgroup ||
		echo "warden: no cgroup2 for the containers"
fi
for c in $containers; do
	container_start "$c" &
done

if [ -n "$load" ]; then
	echo "warden: load on"
	(while :; do
		dd if=/dev/urandom of=/tmp/load.dat bs=64k count=64 2>/dev/null
		cat /tmp/load.dat >/dev/null
		sync
	done) &
fi

if [ -n "$run" ]; then
	prog=${run%%,*}
	case "$prog" in
	*/* | '') echo "warden: bad warden_run=$run" ;;
	*)
		if [ -x "/bin/$prog" ]; then
			# shellcheck disable=SC2086 # the arguments are words
			(/bin/$(echo "$run" | tr ',' ' '); echo "warden: $prog exited $?") &
		else
			echo "warden: warden_run: no /bin/$prog"
		fi
		;;
	esac
fi

trap 'sync; halt -f' USR1
trap 'sync; poweroff -f' USR2
trap 'sync; reboot -f' TERM

if [ -n "$shell" ]; then
	(while :; do setsid cttyhack sh; done) &
fi

# PID 1 must never exit; `wait` returns to run the traps at once.
while :; do
	sleep 3600 &
	wait $!
done
