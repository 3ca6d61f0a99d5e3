#!/usr/bin/env bash
# A single-node Ceph cluster for Nimbus's storage tests: one mon, one mgr and one OSD on memstore
# (RAM), bound to 127.0.0.1, cephx on; an rbd pool "nimbus-test" and a cephx user
# "client.nimbus-test" with rbd caps on that pool only (what an operator gives Nimbus).
#
#   scripts/test-ceph.sh start    start it (idempotent: a healthy cluster is left alone, a broken
#                                 one is stopped and made anew)
#   scripts/test-ceph.sh stop     end the daemons this script started (pids in its state dir) and
#                                 remove the state; nothing else is touched
#   scripts/test-ceph.sh status   exit 0 when the cluster answers (an rbd listing of the pool)
#   scripts/test-ceph.sh env      print KEY=value lines for the tests (exit 1 when not running):
#                                 CEPH_CONF (admin config), NIMBUS_TEST_CEPH_MONITORS, _POOL, _USER,
#                                 _KEY (base64), _KEY_FILE, _KEYRING
#
# State (config, keyrings, mon store, logs, admin sockets, pid files) lives in
# /run/nimbus-test-ceph; memstore keeps the data in the OSD's memory, so a stop loses it. Every
# ceph/rbd call runs under `timeout`: they hang for ever while no mon or OSD answers.
# Recipe and pitfalls: ../shared/design/recipes/storage-backends.md (sections 1, 5, 6).
set -euo pipefail

D=${NIMBUS_TEST_CEPH_DIR:-/run/nimbus-test-ceph}
MON_IP=127.0.0.1
MON_PORT=${NIMBUS_TEST_CEPH_PORT:-6789}       # msgr v1; librbd and libvirt's <host port=> use it
MON_PORT_V2=${NIMBUS_TEST_CEPH_PORT_V2:-3300} # msgr v2
POOL=nimbus-test
USER=nimbus-test
CONF=$D/ceph.conf
C=(-c "$CONF")
DAEMONS=(osd.0 mgr.x mon.a) # stop order

die() {
    echo "test-ceph: $*" >&2
    exit 1
}

need_packages() {
    local missing=()
    for c in ceph ceph-mon ceph-mgr ceph-osd ceph-authtool monmaptool rbd timeout; do
        command -v "$c" >/dev/null || missing+=("$c")
    done
    [ ${#missing[@]} -eq 0 ] ||
        die "missing commands: ${missing[*]}" \
            "(scripts/install-deps.sh installs ceph-mon ceph-osd ceph-mgr ceph-common)"
}

# pid of daemon NAME (mon.a, ...) if it runs with our config, else nothing; a pid file can outlive
# its process and the pid be reused by something else.
daemon_pid() {
    local f=$D/run/$1.pid pid
    [ -s "$f" ] || return 0
    pid=$(cat "$f")
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    # (no pipe into grep -q: under pipefail the writer's SIGPIPE would read as "not ours")
    grep -qF -- "$CONF" <<<"$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" && echo "$pid"
    return 0
}

healthy() {
    [ -f "$CONF" ] && [ -s "$D/$USER.key" ] || return 1
    for n in "${DAEMONS[@]}"; do
        [ -n "$(daemon_pid "$n")" ] || return 1
    done
    # As the tests' user, not the admin: proves cephx, the caps and an OSD serving the pool.
    timeout 15 rbd "${C[@]}" --id "$USER" --keyring "$D/ceph.client.$USER.keyring" ls "$POOL" \
        >/dev/null 2>&1
}

do_stop() {
    local pid stopped=0
    for n in "${DAEMONS[@]}"; do
        pid=$(daemon_pid "$n")
        [ -n "$pid" ] || continue
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -9 "$pid" 2>/dev/null || true
        fi
        stopped=$((stopped + 1))
    done
    rm -rf "$D"
    echo "test-ceph: stopped ($stopped daemons)"
}

# Writes the config and keyrings and starts mon, mgr and OSD (recipe section 1).
bootstrap() {
    local fsid osd_uuid osd_id
    fsid=$(cat /proc/sys/kernel/random/uuid)
    mkdir -p "$D"/{mon/a,osd/0,mgr/x,run,log,crash}
    chmod 755 "$D"
    cat >"$CONF" <<CONF
[global]
fsid = $fsid
mon host = [v2:$MON_IP:$MON_PORT_V2,v1:$MON_IP:$MON_PORT]
public network = $MON_IP/32
auth allow insecure global id reclaim = false
keyring = $D/\$cluster.\$name.keyring
run dir = $D/run
crash dir = $D/crash
pid file = $D/run/\$name.pid
log file = $D/log/\$name.log
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
[mon.a]
mon data = $D/mon/a
[mgr.x]
mgr data = $D/mgr/x
# 54 MB instead of 300: the mgr is here for pool statistics (libvirt's capacity) only
mgr disabled modules = alerts balancer crash dashboard devicehealth diskprediction_local influx insights iostat localpool mirroring nfs orchestrator osd_perf_query osd_support pg_autoscaler progress prometheus restful selftest snap_schedule stats status telegraf telemetry test_orchestrator volumes zabbix
[osd.0]
osd data = $D/osd/0
osd objectstore = memstore
memstore device bytes = 2147483648
osd memory target = 939524096
CONF
    timeout 30 ceph-authtool --create-keyring "$D/ceph.mon.a.keyring" --gen-key -n mon. \
        --cap mon 'allow *' >/dev/null
    timeout 30 ceph-authtool --create-keyring "$D/ceph.client.admin.keyring" --gen-key \
        -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' \
        --cap mds 'allow *' >/dev/null
    timeout 30 ceph-authtool "$D/ceph.mon.a.keyring" --import-keyring \
        "$D/ceph.client.admin.keyring" >/dev/null
    timeout 30 monmaptool --create --fsid "$fsid" \
        --addv a "[v2:$MON_IP:$MON_PORT_V2,v1:$MON_IP:$MON_PORT]" "$D/monmap" >/dev/null
    timeout 60 ceph-mon "${C[@]}" --mkfs -i a --monmap "$D/monmap" \
        --keyring "$D/ceph.mon.a.keyring" >>"$D/log/mkfs.log" 2>&1
    # The daemons fork; their stdio goes to a file so that no caller's pipe stays open, and they
    # must not inherit the lock (fd 9).
    timeout 60 ceph-mon "${C[@]}" -i a </dev/null >>"$D/log/daemons.out" 2>&1 9>&-
    timeout 30 ceph "${C[@]}" auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' \
        mds 'allow *' -o "$D/ceph.mgr.x.keyring" >/dev/null
    timeout 60 ceph-mgr "${C[@]}" -i x </dev/null >>"$D/log/daemons.out" 2>&1 9>&-
    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    osd_id=$(timeout 30 ceph "${C[@]}" osd new "$osd_uuid")
    [ "$osd_id" = 0 ] || die "unexpected OSD id '$osd_id'"
    timeout 60 ceph-osd "${C[@]}" -i 0 --mkfs --mkkey --no-mon-config --osd-uuid "$osd_uuid" \
        </dev/null >>"$D/log/mkfs.log" 2>&1
    timeout 30 ceph "${C[@]}" auth add osd.0 osd 'allow *' mon 'allow profile osd' \
        mgr 'allow profile osd' -i "$D/ceph.osd.0.keyring" >/dev/null 2>&1
    timeout 60 ceph-osd "${C[@]}" -i 0 </dev/null >>"$D/log/daemons.out" 2>&1 9>&-
    for _ in $(seq 1 120); do
        grep -q '1 up.*1 in' <<<"$(timeout 10 ceph "${C[@]}" osd stat 2>/dev/null)" && return 0
        sleep 0.5
    done
    die "the OSD did not come up; logs in $D/log"
}

# The pool and the user Nimbus is given (docs/storage.md, "Backends: Ceph RBD").
setup_pool() {
    timeout 60 ceph "${C[@]}" osd pool create "$POOL" 8 8 >/dev/null 2>&1
    timeout 60 rbd "${C[@]}" pool init "$POOL"
    # The always-on mgr modules disabled above would read as HEALTH_ERR: mute that one check.
    timeout 30 ceph "${C[@]}" health mute MGR_MODULE_ERROR --sticky >/dev/null 2>&1 || true
    # RBD clone v2: clones of unprotected snapshots (libvirt's vol-clone protects its own anyway)
    timeout 30 ceph "${C[@]}" osd set-require-min-compat-client mimic >/dev/null 2>&1
    timeout 30 ceph "${C[@]}" auth get-or-create "client.$USER" mon 'profile rbd' \
        osd "profile rbd pool=$POOL" mgr "profile rbd pool=$POOL" \
        -o "$D/ceph.client.$USER.keyring"
    timeout 30 ceph "${C[@]}" auth get-key "client.$USER" >"$D/$USER.key.tmp"
    chmod 644 "$D/$USER.key.tmp" "$D/ceph.client.$USER.keyring"
    mv "$D/$USER.key.tmp" "$D/$USER.key"
}

port_taken() { # port: someone listens on it at our address or the wildcard one
    local out
    out=$(ss -Hltn "( sport = :$1 )" 2>/dev/null) || return 1
    [ -n "$out" ]
}

do_start() {
    need_packages
    if healthy; then
        echo "test-ceph: already running (monitors $MON_IP:$MON_PORT)"
        return 0
    fi
    if [ -e "$D" ]; then
        echo "test-ceph: stale or broken state in $D: stopping it first"
        do_stop
    fi
    for p in "$MON_PORT" "$MON_PORT_V2"; do
        if port_taken "$p"; then
            die "port $p is in use by another process (not this script's cluster):" \
                "$(ss -Hltnp "( sport = :$p )" | head -n 1)"
        fi
    done
    local t0=$SECONDS
    # A separate process, so that `set -e` holds inside (it does not in a tested subshell).
    if ! bash "$0" _create >"$D.start.log" 2>&1 || ! healthy; then
        cat "$D.start.log" >&2 || true
        tail -n 20 "$D"/log/*.log >&2 2>/dev/null || true
        do_stop >/dev/null 2>&1 || true
        rm -f "$D.start.log"
        die "start failed"
    fi
    mv "$D.start.log" "$D/log/start.log"
    echo "test-ceph: running (monitors $MON_IP:$MON_PORT, pool $POOL, user $USER;" \
        "$((SECONDS - t0)) s)"
}

do_status() {
    if healthy; then
        local pids=()
        for n in "${DAEMONS[@]}"; do pids+=("$n=$(daemon_pid "$n")"); done
        echo "test-ceph: running (monitors $MON_IP:$MON_PORT; ${pids[*]})"
        return 0
    fi
    if [ -e "$D" ]; then
        echo "test-ceph: not healthy (state in $D)"
    else
        echo "test-ceph: not running"
    fi
    return 1
}

do_env() {
    healthy || die "not running (scripts/test-ceph.sh start)"
    cat <<ENV
CEPH_CONF=$CONF
NIMBUS_TEST_CEPH_MONITORS=$MON_IP:$MON_PORT
NIMBUS_TEST_CEPH_POOL=$POOL
NIMBUS_TEST_CEPH_USER=$USER
NIMBUS_TEST_CEPH_KEY=$(cat "$D/$USER.key")
NIMBUS_TEST_CEPH_KEY_FILE=$D/$USER.key
NIMBUS_TEST_CEPH_KEYRING=$D/ceph.client.$USER.keyring
ENV
}

do__create() {
    bootstrap
    setup_pool
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
flock -w 300 9 || die "another test-ceph.sh did not finish within 300 s"
"do_$cmd"
