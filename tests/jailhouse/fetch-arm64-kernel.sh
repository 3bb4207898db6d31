#!/usr/bin/env bash
# Puts Debian's arm64 kernel Image (/boot/vmlinuz-*) where test_place.py
# looks for it: build/jailhouse-oracles/arm64-kernel/. Optional: without it
# the placement test uses synthetic Images only.
#
# Usage: tests/jailhouse/fetch-arm64-kernel.sh [BUILD_DIR [PACKAGE.deb]]
# Given a .deb it only unpacks it. Else apt-get fetches the arm64 package
# index and the package into a private directory, so the machine's dpkg
# architectures and apt state stay as they are.
set -euo pipefail
build=${1:-"$(dirname "$0")/../../build"}
dest="$build/jailhouse-oracles/arm64-kernel"
deb=${2:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$dest"

if [ -z "$deb" ]; then
	mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/dl"
	apt=(-o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Architecture=arm64
	     -o APT::Architectures::=arm64 -o Debug::NoLocking=1)
	apt-get "${apt[@]}" update -qq
	pkg=$(apt-cache "${apt[@]}" depends linux-image-arm64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*-arm64\)$/\1/p' | head -1)
	[ -n "$pkg" ] || { echo "fetch-arm64-kernel: no linux-image-*-arm64 behind linux-image-arm64" >&2; exit 1; }
	(cd "$work/dl" && apt-get "${apt[@]}" download "$pkg")
	deb=$(ls "$work"/dl/*.deb)
fi
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" --wildcards './boot/vmlinuz-*'
mv "$work"/boot/vmlinuz-* "$dest/"
ls -l "$dest"
