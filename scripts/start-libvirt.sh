#!/usr/bin/env bash
# Starts virtlogd and libvirtd on a machine without systemd (CI, containers), and the "default"
# NAT network. Idempotent: a daemon that already answers is left alone.
set -euo pipefail

mkdir -p /var/log/libvirt /run/libvirt /var/lib/libvirt

running() { # pidfile
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

if ! running /run/virtlogd.pid; then
    virtlogd -d -p /run/virtlogd.pid
fi
if ! running /run/libvirtd.pid; then
    libvirtd -d -p /run/libvirtd.pid
fi

for _ in $(seq 1 50); do
    virsh -c qemu:///system version >/dev/null 2>&1 && break
    sleep 0.2
done
virsh -c qemu:///system version >/dev/null

if virsh -c qemu:///system net-info default >/dev/null 2>&1; then
    if ! virsh -c qemu:///system net-info default | grep -E '^Active:\s+yes' >/dev/null; then
        virsh -c qemu:///system net-start default >/dev/null
    fi
    virsh -c qemu:///system net-autostart default >/dev/null 2>&1 || true
fi
echo "libvirtd running (pid $(cat /run/libvirtd.pid)), network default active"
