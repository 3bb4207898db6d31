#!/bin/sh
# mkrootfs.sh OUT.tar BUSYBOX DEMO [NQUEENS]: the demo container's rootfs, a
# tarball of busybox-static (its applets as symlinks), the demo binary as
# /bin/warden-demo (and nqueens-container as /bin/nqueens when given) and
# the empty mount points the OCI bundle needs. Owned
# by root, relative paths, no device nodes: what the backend accepts.
set -eu
out=$1 busybox=$2 demo=$3 nqueens=${4:-}
tmp=$(mktemp -d "${out}.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/root/bin" "$tmp/root/sbin" "$tmp/root/etc" "$tmp/root/proc" "$tmp/root/sys" \
	"$tmp/root/dev" "$tmp/root/run" "$tmp/root/tmp"
cp "$busybox" "$tmp/root/bin/busybox"
cp "$demo" "$tmp/root/bin/warden-demo"
if [ -n "$nqueens" ]; then
	cp "$nqueens" "$tmp/root/bin/nqueens"
fi
for a in sh ls cat echo sleep ps kill mount df true false; do
	ln -s busybox "$tmp/root/bin/$a"
done
echo "root:x:0:0:root:/:/bin/sh" >"$tmp/root/etc/passwd"
echo "root:x:0:" >"$tmp/root/etc/group"
tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$tmp/root" -cf "$tmp/out.tar" .
mv "$tmp/out.tar" "$out"
