#!/usr/bin/env bash
# A userspace iSCSI target (tgtd) for Nimbus's storage tests, on 127.0.0.1:3260:
#   iqn.2026-12.io.nimbus:test       LUNs 1 and 2 (64 MiB each), open to initiators at 127.0.0.1
#   iqn.2026-12.io.nimbus:test-chap  LUN 1 (64 MiB), same address ACL, and CHAP: the initiator
#                                    must log in as user "nimbus-test" with the password below
# The LUNs are sparse files in the state dir. libvirt reaches them through its iscsi-direct pool
# (libiscsi, no kernel initiator) and QEMU as iscsi:// network disks.
#
#   scripts/test-iscsi.sh start    start it (idempotent: a healthy target is left alone, a broken
#                                  one is stopped and made anew)
#   scripts/test-iscsi.sh stop     end the tgtd this script started (pid in its state dir) and
#                                  remove the state; nothing else is touched
#   scripts/test-iscsi.sh status   exit 0 when tgtd answers and serves both targets
#   scripts/test-iscsi.sh env      print KEY=value lines for the tests (exit 1 when not running):
#                                  NIMBUS_TEST_ISCSI_PORTAL, _TARGET, _INITIATOR, _LUNS,
#                                  _CHAP_TARGET, _CHAP_USER, _CHAP_PASSWORD, _CHAP_PASSWORD_FILE
#
# State: /run/nimbus-test-iscsi (pid file, LUN files, CHAP password, log). tgtd's control socket
# is /var/run/tgtd/socket.<control port> (default 3260, NIMBUS_TEST_ISCSI_CONTROL_PORT), so a
# tgtd of the system (control port 0) is not disturbed; the iSCSI port itself must be free.
# Recipe: ../shared/design/recipes/storage-backends.md (sections 2, 5).
set -euo pipefail

D=${NIMBUS_TEST_ISCSI_DIR:-/run/nimbus-test-iscsi}
CTL=${NIMBUS_TEST_ISCSI_CONTROL_PORT:-3260}
ADDR=127.0.0.1
PORT=3260
TARGET=iqn.2026-12.io.nimbus:test
CHAP_TARGET=iqn.2026-12.io.nimbus:test-chap
INITIATOR=iqn.2026-12.io.nimbus:test-initiator
CHAP_USER=nimbus-test
LUN_MIB=64
T=(timeout 10 tgtadm -C "$CTL" --lld iscsi)

die() {
    echo "test-iscsi: $*" >&2
    exit 1
}

need_packages() {
    local missing=()
    for c in tgtd tgtadm timeout; do
        command -v "$c" >/dev/null || missing+=("$c")
    done
    [ ${#missing[@]} -eq 0 ] ||
        die "missing commands: ${missing[*]} (scripts/install-deps.sh installs tgt)"
}

# tgtd's pid if the pid file names a live tgtd on our control port, else nothing.
tgtd_pid() {
    local pid
    [ -s "$D/tgtd.pid" ] || return 0
    pid=$(cat "$D/tgtd.pid")
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = tgtd ] || return 0
    grep -qE -- "(-C|--control-port) $CTL( |$)" \
        <<<"$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" && echo "$pid"
    return 0
}

healthy() {
    [ -n "$(tgtd_pid)" ] && [ -s "$D/chap-password" ] || return 1
    local out
    out=$("${T[@]}" --op show --mode target 2>/dev/null) || return 1
    grep -qF "Target 1: $TARGET" <<<"$out" && grep -qF "Target 2: $CHAP_TARGET" <<<"$out"
}

do_stop() {
    local pid
    pid=$(tgtd_pid)
    if [ -n "$pid" ]; then
        # tgtd refuses to leave while a target exists (recipe section 5).
        for tid in 1 2; do
            "${T[@]}" --op delete --mode target --tid "$tid" --force >/dev/null 2>&1 || true
        done
        timeout 10 tgtadm -C "$CTL" --op delete --mode system >/dev/null 2>&1 || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            sleep 0.5
            kill -9 "$pid" 2>/dev/null || true
        fi
        # tgtd's control socket and its lock, only once our tgtd is gone (ours by the port).
        rm -f "/var/run/tgtd/socket.$CTL" "/var/run/tgtd/socket.$CTL.lock"
        rmdir /var/run/tgtd 2>/dev/null || true
    fi
    rm -rf "$D"
    echo "test-iscsi: stopped${pid:+ (tgtd $pid)}"
}

do__create() {
    mkdir -p "$D"
    chmod 755 "$D"
    for f in lun1 lun2 chap-lun1; do
        truncate -s "${LUN_MIB}M" "$D/$f.img"
    done
    # 16 characters: some initiators (Windows) accept CHAP secrets of 12 to 16 only.
    od -An -N8 -tx1 /dev/urandom | tr -d ' \n' >"$D/chap-password"
    chmod 600 "$D/chap-password"
    # Forks; stdio to a file so that no caller's pipe stays open, and no inherited lock (fd 9).
    timeout 30 tgtd -C "$CTL" --iscsi "portal=$ADDR:$PORT" -p "$D/tgtd.pid" \
        </dev/null >>"$D/tgtd.log" 2>&1 9>&-
    for _ in $(seq 1 50); do
        "${T[@]}" --op show --mode target >/dev/null 2>&1 && break
        sleep 0.1
    done
    "${T[@]}" --op new --mode target --tid 1 -T "$TARGET"
    "${T[@]}" --op new --mode logicalunit --tid 1 --lun 1 -b "$D/lun1.img"
    "${T[@]}" --op new --mode logicalunit --tid 1 --lun 2 -b "$D/lun2.img"
    "${T[@]}" --op bind --mode target --tid 1 -I "$ADDR"
    "${T[@]}" --op new --mode target --tid 2 -T "$CHAP_TARGET"
    "${T[@]}" --op new --mode logicalunit --tid 2 --lun 1 -b "$D/chap-lun1.img"
    "${T[@]}" --op bind --mode target --tid 2 -I "$ADDR"
    "${T[@]}" --op new --mode account --user "$CHAP_USER" --password "$(cat "$D/chap-password")"
    # An incoming account on a target makes CHAP mandatory for it.
    "${T[@]}" --op bind --mode account --tid 2 --user "$CHAP_USER"
}

port_taken() {
    [ -n "$(ss -Hltn "( sport = :$1 )" 2>/dev/null)" ]
}

do_start() {
    need_packages
    if healthy; then
        echo "test-iscsi: already running (portal $ADDR:$PORT)"
        return 0
    fi
    if [ -e "$D" ]; then
        echo "test-iscsi: stale or broken state in $D: stopping it first"
        do_stop
    fi
    if port_taken "$PORT"; then
        die "port $PORT is in use by another process (not this script's tgtd):" \
            "$(ss -Hltnp "( sport = :$PORT )" | head -n 1)"
    fi
    if [ -S "/var/run/tgtd/socket.$CTL" ] &&
        timeout 5 tgtadm -C "$CTL" --op show --mode sys >/dev/null 2>&1; then
        die "a tgtd not started by this script answers on control port $CTL" \
            "(set NIMBUS_TEST_ISCSI_CONTROL_PORT)"
    fi
    local t0=$SECONDS
    # A separate process, so that `set -e` holds inside (it does not in a tested subshell).
    if ! bash "$0" _create >"$D.start.log" 2>&1 || ! healthy; then
        cat "$D.start.log" >&2 || true
        do_stop >/dev/null 2>&1 || true
        rm -f "$D.start.log"
        die "start failed"
    fi
    mv "$D.start.log" "$D/start.log"
    echo "test-iscsi: running (portal $ADDR:$PORT, targets $TARGET and $CHAP_TARGET;" \
        "$((SECONDS - t0)) s)"
}

do_status() {
    if healthy; then
        echo "test-iscsi: running (portal $ADDR:$PORT; tgtd $(tgtd_pid))"
        return 0
    fi
    if [ -e "$D" ]; then
        echo "test-iscsi: not healthy (state in $D)"
    else
        echo "test-iscsi: not running"
    fi
    return 1
}

do_env() {
    healthy || die "not running (scripts/test-iscsi.sh start)"
    cat <<ENV
NIMBUS_TEST_ISCSI_PORTAL=$ADDR:$PORT
NIMBUS_TEST_ISCSI_TARGET=$TARGET
NIMBUS_TEST_ISCSI_INITIATOR=$INITIATOR
NIMBUS_TEST_ISCSI_LUNS=1,2
NIMBUS_TEST_ISCSI_LUN_BYTES=$((LUN_MIB * 1024 * 1024))
NIMBUS_TEST_ISCSI_CHAP_TARGET=$CHAP_TARGET
NIMBUS_TEST_ISCSI_CHAP_USER=$CHAP_USER
NIMBUS_TEST_ISCSI_CHAP_PASSWORD=$(cat "$D/chap-password")
NIMBUS_TEST_ISCSI_CHAP_PASSWORD_FILE=$D/chap-password
ENV
}

cmd=${1:-}
case "$cmd" in
start | stop | status | env) ;;
_create) # internal: do_start runs it under its lock
    do__create
    exit 0
    ;;
*)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac

[ "$(id -u)" = 0 ] || die "must run as root"
# One caller at a time: concurrent test sessions each call start. The lock file lies beside the
# state dir, which stop removes.
mkdir -p "$(dirname "$D")"
exec 9>"$D.lock"
flock -w 120 9 || die "another test-iscsi.sh did not finish within 120 s"
"do_$cmd"
