#!/bin/bash
# Build the tiny test guest disk used by Nimbus' end-to-end tests.
#
#   scripts/build-test-image.sh [OUTPUT]    (default tests/image/out/tiny.qcow2)
#
# Everything comes from Debian packages already on the build machine
# (linux-image-amd64, busybox-static, syslinux, syslinux-common, mtools,
# fdisk, qemu-utils, kmod, cpio); nothing is downloaded.  The result is an
# MBR disk with one FAT partition holding syslinux, the Debian kernel and a
# busybox initramfs.  The initramfs is the whole root filesystem; the guest
# never mounts the disk.  No mounting or loop devices are needed to build it.
#
# Environment: KVER=<version> picks a kernel other than the newest one.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src="$repo/tests/image"
out=${1:-"$repo/tests/image/out/tiny.qcow2"}

# Modules the guest init needs; dependencies are added below.
#   ahci            SATA CD-ROM on q35        ata_piix  IDE CD-ROM on pc
#   sr_mod          SCSI CD-ROM (cdrom)       isofs     the NoCloud seed
#   virtio_pci, virtio_net                    the NIC
#   button          ACPI power button         evdev     /dev/input/event* for acpid
#   virtio_blk      volumes (vdb...; the guest reports them, vda is never mounted)
modules=(ahci ata_piix sr_mod isofs virtio_pci virtio_net button evdev virtio_blk)

die() {
	echo "build-test-image: $*" >&2
	exit 1
}

# command -> Debian package, so a missing tool says what to install.
need() {
	command -v "$1" >/dev/null 2>&1 || die "missing $1 (apt-get install $2)"
}
need sfdisk fdisk
need mformat mtools
need mcopy mtools
need syslinux syslinux
need qemu-img qemu-utils
need modprobe kmod
need cpio cpio
need gzip gzip
busybox=/bin/busybox
[ -x "$busybox" ] || die "missing $busybox (apt-get install busybox-static)"
# A dynamic busybox would need a libc in the initramfs.
if file -L "$busybox" 2>/dev/null | grep -q 'dynamically linked'; then
	die "$busybox is dynamically linked (apt-get install busybox-static)"
fi
mbr=/usr/lib/syslinux/mbr/mbr.bin
[ -r "$mbr" ] || die "missing $mbr (apt-get install syslinux-common)"

# Newest installed Debian kernel that also has its modules installed (the
# machine may run a different kernel whose modules sit in /lib/modules too).
if [ -z "${KVER:-}" ]; then
	KVER=
	while read -r k; do
		v=${k#/boot/vmlinuz-}
		[ -f "/lib/modules/$v/modules.dep" ] && KVER=$v
	done < <(find /boot -maxdepth 1 -name 'vmlinuz-*' | sort -V)
	[ -n "$KVER" ] || die "no /boot/vmlinuz-* with modules (apt-get install linux-image-amd64)"
fi
kernel=/boot/vmlinuz-$KVER
[ -r "$kernel" ] || die "cannot read $kernel"

work=$(mktemp -d /tmp/nimbus-image.XXXXXX)
trap 'rm -rf "$work"' EXIT

# --- initramfs root --------------------------------------------------------
root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,etc/acpi,lib/modules,seed}
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
# One symlink per applet, at the path busybox itself reports.
while read -r applet; do
	[ "$applet" = bin/busybox ] && continue
	[ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done < <("$busybox" --list-full)

# The kernel opens /dev/console before running /init; without the node
# init starts with no stdio.  mknod needs root; init reopens the console
# after mounting devtmpfs anyway, so skipping it as non-root is survivable.
if [ "$(id -u)" = 0 ]; then
	mknod -m 600 "$root/dev/console" c 5 1
fi

install -m 755 "$src/init" "$root/init"
install -m 755 "$src/udhcpc.script" "$root/etc/udhcpc.script"
install -m 644 "$src/acpid.conf" "$root/etc/acpid.conf"
install -m 755 "$src/acpi-power" "$root/etc/acpi/power"
echo tiny >"$root/etc/hostname"
: >"$root/etc/resolv.conf"

# Modules in dependency order, each once.  modprobe --show-depends prints
# "insmod <path>" lines in load order ("builtin <name>" for built-ins, which
# need nothing).  Compressed modules are unpacked here so the guest's busybox
# insmod only ever sees plain .ko files.
declare -A seen=()
order=()
for m in "${modules[@]}"; do
	deps=$(modprobe -S "$KVER" --show-depends "$m") || die "modprobe cannot resolve $m for $KVER"
	while read -r kind path _; do
		[ "$kind" = insmod ] || continue
		[ -z "${seen[$path]:-}" ] || continue
		seen[$path]=1
		name=$(basename "$path")
		case "$name" in
		*.ko.xz) xz -dc "$path" >"$root/lib/modules/${name%.xz}"; name=${name%.xz} ;;
		*.ko.zst) zstd -qdc "$path" >"$root/lib/modules/${name%.zst}"; name=${name%.zst} ;;
		*.ko.gz) gzip -dc "$path" >"$root/lib/modules/${name%.gz}"; name=${name%.gz} ;;
		*.ko) cp "$path" "$root/lib/modules/$name" ;;
		*) die "unexpected module file $path" ;;
		esac
		order+=("$name")
	done <<<"$deps"
done
printf '%s\n' "${order[@]}" >"$root/lib/modules/load-order"

initrd=$work/initrd.gz
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9n >"$initrd"

# --- disk ------------------------------------------------------------------
# 32 MiB raw: 1 MiB for the MBR gap, the rest one bootable FAT partition.
# qcow2 only stores what was written, so the result is ~kernel+initrd size.
raw=$work/tiny.raw
size_mib=32
part_off=1048576
truncate -s "${size_mib}M" "$raw"
printf 'label: dos\nstart=2048, type=e, bootable\n' | sfdisk --quiet "$raw"
dd if="$mbr" of="$raw" bs=440 count=1 conv=notrunc status=none

part_sectors=$(((size_mib * 1048576 - part_off) / 512))
# -H: hidden sectors before the partition, which the boot sector must know.
mformat -i "$raw@@$part_off" -T "$part_sectors" -H 2048 -h 64 -s 32 -v NIMBUS ::
mcopy -i "$raw@@$part_off" "$kernel" ::/vmlinuz
mcopy -i "$raw@@$part_off" "$initrd" ::/initrd.gz
mcopy -i "$raw@@$part_off" "$src/syslinux.cfg" ::/syslinux.cfg
syslinux --install --offset "$part_off" "$raw"

mkdir -p "$(dirname "$out")"
qemu-img convert -O qcow2 "$raw" "$out.tmp"
mv "$out.tmp" "$out"

echo "build-test-image: $out (kernel $KVER, modules: ${order[*]%.ko})"
