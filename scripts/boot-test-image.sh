#!/bin/bash
# Manual check of the test guest image under QEMU (TCG, user-mode network).
#
#   scripts/boot-test-image.sh [-m q35|pc] [-n] [IMAGE]
#
# Builds a NoCloud seed in a temp dir, boots IMAGE (default
# tests/image/out/tiny.qcow2) with it, waits for NIMBUS-READY, then presses
# the ACPI power button over QMP and checks that QEMU exits.  -n boots
# without a seed.  Prints the console and timings; exits non-zero on failure.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
machine=q35
seed=yes
while getopts 'm:n' opt; do
	case "$opt" in
	m) machine=$OPTARG ;;
	n) seed=no ;;
	*) echo "usage: $0 [-m q35|pc] [-n] [IMAGE]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
image=${1:-"$repo/tests/image/out/tiny.qcow2"}
[ -r "$image" ] || { echo "no image $image (run scripts/build-test-image.sh)" >&2; exit 1; }

work=$(mktemp -d /tmp/nimbus-boot.XXXXXX)
qpid=
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
	# Only the QEMU this script started.
	if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then kill "$qpid"; fi
	rm -rf "$work"
}
trap cleanup EXIT

# shellcheck disable=SC2054 # the commas are QEMU option syntax
args=(-machine "$machine,accel=tcg" -m 256 -display none -no-reboot
	-drive "file=$image,if=virtio,format=qcow2,snapshot=on"
	-nic user,model=virtio-net-pci
	-serial "file:$work/console.log"
	-qmp "unix:$work/qmp.sock,server,nowait")
if [ "$seed" = yes ]; then
	mkdir "$work/seed"
	printf 'instance-id: iid-boot-test-0001\nlocal-hostname: boot-test\n' >"$work/seed/meta-data"
	printf '#!/bin/sh\necho hello-from-userdata\n' >"$work/seed/user-data"
	printf 'version: 2\n' >"$work/seed/network-config"
	(cd "$work/seed" && genisoimage -quiet -output "$work/seed.iso" -volid cidata \
		-joliet -rock user-data meta-data network-config)
	args+=(-drive "file=$work/seed.iso,media=cdrom")
fi

now() { date +%s%N; }
ms_since() { echo $((($(now) - $1) / 1000000)); }

start=$(now)
qemu-system-x86_64 "${args[@]}" &
qpid=$!

wait_for() { # pattern, timeout in quarter seconds
	local i
	for ((i = 0; i < $2; i++)); do
		grep -q "$1" "$work/console.log" 2>/dev/null && return 0
		kill -0 "$qpid" 2>/dev/null || return 1
		sleep 0.25
	done
	return 1
}

rc=0
if wait_for NIMBUS-READY 360; then
	echo "== ready after $(ms_since "$start") ms"
else
	echo "== no NIMBUS-READY"; rc=1
fi
wait_for NIMBUS-IP 40 || { echo "== no NIMBUS-IP"; rc=1; }

# QMP: greeting, capabilities, then the power button.
python3 - "$work/qmp.sock" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.readline()
for cmd in ("qmp_capabilities", "system_powerdown"):
    f.write(json.dumps({"execute": cmd}) + "\n")
    f.flush()
    f.readline()
EOF
down=$(now)
for ((i = 0; i < 60; i++)); do
	kill -0 "$qpid" 2>/dev/null || break
	sleep 0.25
done
if kill -0 "$qpid" 2>/dev/null; then
	echo "== still running 15 s after system_powerdown"; rc=1
else
	wait "$qpid" || true
	qpid=
	echo "== powered off $(ms_since "$down") ms after system_powerdown"
fi
echo "== console:"
tr -d '\r' <"$work/console.log"
exit "$rc"
