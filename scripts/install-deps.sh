#!/usr/bin/env bash
# Installs every Debian 12 package Nimbus needs to build, run and test. Idempotent.
set -euo pipefail

packages=(
    # build
    gcc clang meson ninja-build pkg-config clang-format libclang-rt-14-dev
    libvirt-dev libsqlite3-dev libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev
    libsodium-dev libyaml-dev libxml2-dev libcmocka-dev libgnutls28-dev
    libnl-3-dev libnl-route-3-dev libipset-dev
    # browser consoles: WebSocket framing (nimbusd), a WebSocket client (tests, bench)
    libwslay-dev python3-websocket
    # run: libvirt, QEMU, the NoCloud seed
    qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
    dnsmasq-base iptables genisoimage
    # test: the guest image, end-to-end tests
    syslinux syslinux-common mtools fdisk dosfstools linux-image-amd64 busybox-static kmod
    python3 python3-pytest libxml2-utils iproute2 procps
    # the web console's browser tests (tests/web): Debian's Chromium and Firefox ESR driven by
    # puppeteer-core, which npm installs with no browser download (scripts/run-tests.sh)
    chromium firefox-esr nodejs
    # a daemon found stuck in a test: every thread's backtrace in the failure (nimbus_fixtures.py)
    gdb
    # nimbus-agent: its certificate and secret (start-agent.sh), its e2e test
    openssl curl iputils-ping
    # metrics: a real Prometheus scrapes nimbusd; promtool checks the shipped alert rules
    prometheus
    # hardened host connections: certtool makes the test CA and certificates, the sasldb and
    # SCRAM for libvirtd's SASL (test_host_security.py)
    gnutls-bin sasl2-bin libsasl2-modules
    # storage pools and volumes: the test backends (scripts/test-ceph.sh, scripts/test-iscsi.sh)
    # and QEMU's rbd/iscsi block drivers; libvirtd loads its rbd and iscsi-direct storage drivers
    # only when it starts, so these must be installed before it (run-tests.sh runs this script
    # before scripts/start-libvirt.sh)
    ceph-mon ceph-osd ceph-mgr ceph-common tgt libiscsi-bin qemu-block-extra
    libvirt-daemon-driver-storage-rbd libvirt-daemon-driver-storage-iscsi-direct
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Debian's nodejs comes without npm (its own package); a NodeSource nodejs has it built in.
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # No daemon starts from a package's scripts during the install (containers have this policy
    # already): tgt's would start the system's tgtd on 0.0.0.0:3260, the port of the test target,
    # and libvirt's a libvirtd that may miss the storage drivers of the same install.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [[ " ${missing[*]} " == *" libvirt-daemon-driver-storage-"* ]] &&
        virsh -c qemu:///system version >/dev/null 2>&1; then
        echo "install-deps: libvirtd was already running: restart it to load the new storage" \
            "drivers (virsh pool-capabilities shows rbd and iscsi-direct supported='yes')" >&2
    fi
fi
