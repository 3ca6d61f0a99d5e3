#!/usr/bin/env bash
# Installs every Debian 12 package Nimbus needs to build, run and test. Idempotent.
set -euo pipefail

packages=(
    # build
    gcc clang meson ninja-build pkg-config clang-format libclang-rt-14-dev
    libvirt-dev libsqlite3-dev libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev
    libsodium-dev libyaml-dev libxml2-dev libcmocka-dev libgnutls28-dev
    libnl-3-dev libnl-route-3-dev
    # run: libvirt, QEMU, the NoCloud seed
    qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
    dnsmasq-base iptables genisoimage
    # test: the guest image, end-to-end tests
    syslinux syslinux-common mtools fdisk dosfstools linux-image-amd64 busybox-static kmod
    python3 python3-pytest libxml2-utils iproute2 procps
    # nimbus-agent: its certificate and secret (start-agent.sh), its e2e test
    openssl curl iputils-ping
    # metrics: a real Prometheus scrapes nimbusd; promtool checks the shipped alert rules
    prometheus
    # hardened host connections: certtool makes the test CA and certificates, the sasldb and
    # SCRAM for libvirtd's SASL (test_host_security.py)
    gnutls-bin sasl2-bin libsasl2-modules
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
