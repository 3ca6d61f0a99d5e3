#!/usr/bin/env bash
# Test hypervisor hosts on one machine, for the cluster end-to-end tests (BLUEPRINT section 8).
#
#   scripts/testhosts.sh start N [--state DIR]     start kvm1..kvmN (1 <= N <= 8)
#   scripts/testhosts.sh stop [--state DIR]        stop everything, remove the state dir
#   scripts/testhosts.sh status [--state DIR]      one line per host: does its libvirtd answer
#   scripts/testhosts.sh kill-libvirtd I           SIGKILL host I's libvirtd (guests keep running)
#   scripts/testhosts.sh start-libvirtd I          start it again in the same namespaces
#   scripts/testhosts.sh exec I -- CMD [ARG...]    run CMD inside host I
#
# Host kvmI is:
#   - a network namespace nbhostI whose eth0 (10.77.0.<10+I>/24, default route via 10.77.0.1) is
#     one end of a veth pair; the other end, nbvI, is a port of the bridge nbtest0 (10.77.0.1/24)
#     in the root namespace, so the root namespace and every host reach each other;
#   - a mount + UTS namespace (hostname kvmI) in which per-host directories under the state dir
#     (default /run/nimbus-testhosts/kvmI/{run,lib,log,etc,cache}) are bind-mounted over
#     /run/libvirt, /var/lib/libvirt, /var/log/libvirt, /etc/libvirt and /var/cache/libvirt.
#     Its /etc/hosts names every test host (kvmJ -> 10.77.0.<10+J>); its /etc/resolv.conf is empty.
#     A "holder" process (sleep infinity, pid in kvmI/holder.pid) keeps these namespaces alive;
#     every later command for the host enters them with nsenter -t <holder>.
#   - its own virtlogd and libvirtd (libvirtd listens on TCP without auth or TLS:
#     qemu+tcp://10.77.0.<10+I>/system) and its own NAT network "default" (virbr0,
#     192.168.122.0/24, a separate one in each namespace);
#   - its own nimbus-agent (scripts/start-agent.sh, when the agent is built: $NIMBUS_AGENT, else
#     $NIMBUS_BUILD_DIR/src/agent/nimbus-agent) on https://10.77.0.<10+I>:8775, its secret, cert
#     and state under kvmI/agent/; every host's cert.pem is gathered in agents-ca.pem in the state
#     dir, the bundle to give nimbusd as agent-ca-file. The VXLAN underlay is eth0.
# Everything else (/tmp, /var/lib/nimbus, the source tree) is the root namespace's filesystem,
# the same path on every host: it plays shared storage, so live migration works between hosts.
#
# NIMBUS_TESTHOSTS_SET=S (1..9; default 0) makes a separate set that can run beside set 0:
# namespaces nbS_hostI, veths nbS_vI/nbS_pI, bridge nbtestS, subnet 10.(77+S).0.0/24, state dir
# /run/nimbus-testhosts-S. One set of each number can exist on a machine; start tears down
# whatever an earlier run of that set left behind first. Processes are only ever ended by
# pid, and only pids that live in one of our network namespaces.
#
# NIMBUS_TESTHOSTS_SECURE=1 (at start) makes every libvirtd of the set listen as production hosts
# should (docs/install.md), for test_host_security.py:
#   - TLS on port 16514 (qemu+tls://kvmI/system), verifying the client's certificate against a
#     CA the script makes with certtool under <state>/pki: ca-cert.pem and ca-key.pem, each
#     host's server certificate (CN and dnsName kvmI, ipAddress 10.(77+S).0.<10+I>), and one
#     client certificate laid out as libvirt's pkipath= wants it: <state>/pki/client/{cacert.pem,
#     clientcert.pem,clientkey.pem} (with pkipath= the key is not under private/);
#   - SASL SCRAM-SHA-256 from a per-host sasldb (/etc/sasl2 is the host's own) holding user
#     "nimbus" with a random password, in <state>/sasl/password; <state>/sasl/auth.conf is a
#     libvirt auth file with it (authfile= or LIBVIRT_AUTH_FILE). kvm1 takes TLS connections on
#     the client certificate alone (auth_tls = "none"); every other host asks for SASL after the
#     certificate (auth_tls = "sasl"). TCP on 16509 has auth_tcp = "sasl" too, but libvirt refuses
#     SCRAM there: on plain TCP it only offers mechanisms with an SSF of 56 or more (encryption,
#     in practice Kerberos), and SCRAM has none; so qemu+tcp is closed in this mode;
#   - QEMU's migration TLS (default_tls_x509_cert_dir in qemu.conf, <state>/kvmI/qemu-pki), so
#     VIR_MIGRATE_TLS works between the hosts.
# Its readiness and status checks then use qemu+tls with that pkipath and auth file; the URIs
# printed stay the qemu+tcp ones.
set -euo pipefail

MAX_HOSTS=8
REPO=$(cd "$(dirname "$0")/.." && pwd)
SET=${NIMBUS_TESTHOSTS_SET:-0}
[[ "$SET" =~ ^[0-9]$ ]] || { echo "testhosts: NIMBUS_TESTHOSTS_SET must be 0..9" >&2; exit 2; }
BRIDGE=nbtest$SET
SUBNET=10.$((77 + SET)).0
if [ "$SET" = 0 ]; then NS=nbhost VETH=nbv PEER=nbp; else NS=nb${SET}_host VETH=nb${SET}_v PEER=nb${SET}_p; fi
READY_TIMEOUT=30 # seconds for a libvirtd to answer over TCP
WARM_CAPS=/var/cache/nimbus-testhosts/qemu-capabilities

state=/run/nimbus-testhosts
[ "$SET" = 0 ] || state=/run/nimbus-testhosts-$SET
SECURE=${NIMBUS_TESTHOSTS_SECURE:-0}
SASL_USER=nimbus

die() {
    echo "testhosts: $*" >&2
    exit 1
}

usage() {
    sed -n '3,8p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

host_ip() { echo "$SUBNET.$((10 + $1))"; }
host_uri() { echo "qemu+tcp://$(host_ip "$1")/system"; }
host_dir() { echo "$state/kvm$1"; }

# The pid in a pidfile, if the file holds one and that process still exists.
pidfile_pid() { # pidfile
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    echo "$pid"
}

# True if pid exists and is not a zombie (a daemon's orphans may wait a while to be reaped).
alive() { # pid
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# True if pid runs in host I's network namespace: a pid read from a file is only ever signalled
# after this check, so a recycled pid never hits someone else's process.
pid_in_host() { # pid, i
    local ns
    ns=$(stat -L -c %i "/run/netns/$NS$2" 2>/dev/null) || return 1
    [ "$(stat -L -c %i "/proc/$1/ns/net" 2>/dev/null)" = "$ns" ]
}

# Sends a signal to the pid in a pidfile if that process lives in host I.
signal_pidfile() { # signal, pidfile, i
    local pid
    if pid=$(pidfile_pid "$2") && pid_in_host "$pid" "$3"; then
        kill -"$1" "$pid" 2>/dev/null || true
    fi
}

holder_pid() { # i
    local pid
    pid=$(pidfile_pid "$(host_dir "$1")/holder.pid") || return 1
    pid_in_host "$pid" "$1" || return 1
    echo "$pid"
}

in_host() { # i, command...
    local i=$1 pid
    shift
    pid=$(holder_pid "$i") || die "kvm$i is not running (no holder process)"
    nsenter -t "$pid" -n -m -u -- "$@"
}

answers() { # i
    if [ -s "$state/sasl/auth.conf" ]; then
        timeout 10 virsh -c "qemu+tls://$(host_ip "$1")/system?pkipath=$state/pki/client&authfile=$state/sasl/auth.conf" \
            version >/dev/null 2>&1
    else
        timeout 10 virsh -c "$(host_uri "$1")" version >/dev/null 2>&1
    fi
}

wait_answers() { # i
    local deadline=$((SECONDS + READY_TIMEOUT))
    until answers "$1"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "testhosts: kvm$1: libvirtd does not answer on $(host_uri "$1") after" \
                "${READY_TIMEOUT}s; see $(host_dir "$1")/log/libvirtd.log" >&2
            return 1
        fi
        sleep 0.1
    done
}

# Directories only (with owner and mode), no files: /var/lib/libvirt's qemu/ tree must belong to
# libvirt-qemu like the real one, but none of the root namespace's state must leak into a host.
copy_tree_skeleton() { # src, dst
    local mode owner group rel
    while read -r mode owner group rel; do
        install -d -m "$mode" -o "$owner" -g "$group" "$2/$rel"
    done < <(find "$1" -mindepth 1 -type d -printf '%m %u %g %P\n')
}

# Probing QEMU's capabilities takes libvirtd several seconds per emulator binary, a host each.
# Each host gets its own cache (no concurrent writers on one file), seeded from the one the last
# start left in WARM_CAPS, else from the root libvirtd's. libvirt checks every cached file
# (binary and libvirtd ctimes, kernel, microcode...) and probes again if it is stale.
seed_capabilities() { # dst dir
    local src
    for src in "$WARM_CAPS" /var/cache/libvirt/qemu/capabilities; do
        if compgen -G "$src/*.xml" >/dev/null; then
            mkdir -p "$1"
            cp -p "$src"/*.xml "$1/"
            return
        fi
    done
}

save_capabilities() { # src dir
    compgen -G "$1/*.xml" >/dev/null || return 0
    local tmp=$WARM_CAPS.tmp$SET # two sets may save at once
    rm -rf "$tmp"
    mkdir -p "$tmp"
    cp -p "$1"/*.xml "$tmp/"
    rm -rf "$WARM_CAPS"
    mv "$tmp" "$WARM_CAPS"
}

# Sets key = value in a libvirt config file, replacing any uncommented setting of key.
set_conf() { # file, key, value (already quoted as the file wants it)
    sed -i "/^[[:space:]]*$2[[:space:]]*=/d" "$1"
    printf '%s = %s\n' "$2" "$3" >>"$1"
}

# /etc/libvirt for host I: the real one minus every object definition (domains, networks,
# pools, secrets), plus our own libvirtd.conf, qemu.conf settings and network "default".
write_etc() { # i, etc dir
    local i=$1 etc=$2 ip
    ip=$(host_ip "$i")
    cp -a /etc/libvirt/. "$etc/"
    find "$etc/qemu" "$etc/storage" -mindepth 1 \( -name '*.xml' -o -type l \) -delete
    find "$etc/secrets" -mindepth 1 -delete

    cat >"$etc/libvirtd.conf" <<EOF
# Test host kvm$i (scripts/testhosts.sh).
listen_tls = 0
listen_tcp = 1
listen_addr = "$ip"
auth_tcp = "none"
host_uuid = "4e696d62-7573-4000-8000-0000000000$(printf '%02d' "$i")"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF

    # migration_host: the address the destination tells the source QEMU to connect to. The
    #   default is the hostname (kvmI), which only the hosts' own /etc/hosts resolve.
    # cgroup_controllers: none. The hosts share the machine's cgroup tree and two libvirtds
    #   would put a migrating domain (same name, and both number domains from 1) in the same
    #   cgroup; ip netns exec also hides /sys/fs/cgroup behind its fresh sysfs anyway.
    set_conf "$etc/qemu.conf" migration_host "\"$ip\""
    set_conf "$etc/qemu.conf" cgroup_controllers "[ ]"
    [ "$SECURE" != 1 ] || write_secure_etc "$i" "$etc"

    mkdir -p "$etc/qemu/networks/autostart"
    cat >"$etc/qemu/networks/default.xml" <<EOF
<network>
  <name>default</name>
  <uuid>4e696d62-7573-4000-8001-0000000000$(printf '%02d' "$i")</uuid>
  <forward mode='nat'/>
  <bridge name='virbr0' stp='on' delay='0'/>
  <mac address='52:54:00:4e:42:$(printf '%02x' "$i")'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>
EOF
    ln -s /etc/libvirt/qemu/networks/default.xml "$etc/qemu/networks/autostart/default.xml"
}

# certtool with a template given as text. Keys are RSA: libvirt wants the keyEncipherment usage,
# which certtool does not give an ECDSA key.
certtool_tpl() { # template text, certtool args...
    local tpl=$1
    shift
    certtool "$@" --template <(printf '%s\n' "$tpl") >/dev/null 2>&1 ||
        die "certtool $* failed"
}

# The set's CA, a client certificate for nimbusd and the SASL user's password, shared by every
# host (the per-host parts are in write_secure_etc).
make_secure_material() {
    local pki=$state/pki sasl=$state/sasl
    command -v certtool >/dev/null || die "missing certtool (gnutls-bin)"
    command -v saslpasswd2 >/dev/null || die "missing saslpasswd2 (sasl2-bin)"
    mkdir -p "$pki/client" "$sasl"
    chmod 700 "$sasl"
    certtool --generate-privkey --key-type=rsa --bits=2048 --outfile "$pki/ca-key.pem" >/dev/null 2>&1
    certtool_tpl "$(printf 'cn = Nimbus test CA set %s\nca\ncert_signing_key\nexpiration_days = 30' "$SET")" \
        --generate-self-signed --load-privkey "$pki/ca-key.pem" --outfile "$pki/ca-cert.pem"
    cp "$pki/ca-cert.pem" "$pki/client/cacert.pem"
    certtool --generate-privkey --key-type=rsa --bits=2048 --outfile "$pki/client/clientkey.pem" \
        >/dev/null 2>&1
    certtool_tpl "$(printf 'cn = nimbus-controller\ntls_www_client\nsigning_key\nencryption_key\nexpiration_days = 30')" \
        --generate-certificate --load-privkey "$pki/client/clientkey.pem" \
        --load-ca-certificate "$pki/ca-cert.pem" --load-ca-privkey "$pki/ca-key.pem" \
        --outfile "$pki/client/clientcert.pem"
    head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$sasl/password"
    cat >"$sasl/auth.conf" <<EOF
[credentials-nimbus]
authname=$SASL_USER
password=$(cat "$sasl/password")

[auth-libvirt-default]
credentials=nimbus
EOF
}

# Host I's TLS listener and certificates, its SASL config and sasldb, QEMU's migration TLS.
write_secure_etc() { # i, etc dir
    local i=$1 etc=$2 ip dir pki=$state/pki
    ip=$(host_ip "$i")
    dir=$(host_dir "$i")
    mkdir -p "$dir/pki" "$dir/qemu-pki" "$dir/sasl2"
    certtool --generate-privkey --key-type=rsa --bits=2048 --outfile "$dir/pki/serverkey.pem" >/dev/null 2>&1
    certtool_tpl "$(printf 'cn = kvm%s\ndns_name = kvm%s\nip_address = %s\ntls_www_server\ntls_www_client\nsigning_key\nencryption_key\nexpiration_days = 30' "$i" "$i" "$ip")" \
        --generate-certificate --load-privkey "$dir/pki/serverkey.pem" \
        --load-ca-certificate "$pki/ca-cert.pem" --load-ca-privkey "$pki/ca-key.pem" \
        --outfile "$dir/pki/servercert.pem"
    set_conf "$etc/libvirtd.conf" listen_tls 1
    set_conf "$etc/libvirtd.conf" key_file "\"$dir/pki/serverkey.pem\""
    set_conf "$etc/libvirtd.conf" cert_file "\"$dir/pki/servercert.pem\""
    set_conf "$etc/libvirtd.conf" ca_file "\"$pki/ca-cert.pem\""
    set_conf "$etc/libvirtd.conf" tls_no_verify_certificate 0
    if [ "$i" = 1 ]; then
        set_conf "$etc/libvirtd.conf" auth_tls '"none"'
    else
        set_conf "$etc/libvirtd.conf" auth_tls '"sasl"'
    fi
    set_conf "$etc/libvirtd.conf" auth_tcp '"sasl"'

    # QEMU of this host: the server side of an incoming migration and the client side of an
    # outgoing one, both with the host's certificate. QEMU runs as libvirt-qemu.
    cp "$pki/ca-cert.pem" "$dir/qemu-pki/ca-cert.pem"
    cp "$dir/pki/servercert.pem" "$dir/qemu-pki/server-cert.pem"
    cp "$dir/pki/serverkey.pem" "$dir/qemu-pki/server-key.pem"
    cp "$dir/pki/servercert.pem" "$dir/qemu-pki/client-cert.pem"
    cp "$dir/pki/serverkey.pem" "$dir/qemu-pki/client-key.pem"
    if getent group libvirt-qemu >/dev/null; then
        chgrp libvirt-qemu "$dir/qemu-pki"/*-key.pem
        chmod 640 "$dir/qemu-pki"/*-key.pem
    fi
    set_conf "$etc/qemu.conf" default_tls_x509_cert_dir "\"$dir/qemu-pki\""
    set_conf "$etc/qemu.conf" default_tls_x509_verify 1

    # The holder mounts this over /etc/sasl2. The realm is the host's name, as libvirtd's.
    cat >"$dir/sasl2/libvirt.conf" <<EOF
mech_list: scram-sha-256
sasldb_path: /etc/libvirt/passwd.db
EOF
    saslpasswd2 -p -c -a libvirt -u "kvm$i" -f "$etc/passwd.db" "$SASL_USER" <"$state/sasl/password"
    chmod 600 "$etc/passwd.db"
}

# /etc/hosts and /etc/resolv.conf for a host. libvirt resolves its own hostname (kvmI) during
# a migration, several times; through the machine's DNS server, unreachable from the namespace,
# each lookup took ~10 s and a migration a minute. The hosts file names every test host, and the
# empty resolv.conf makes other lookups fail at once (nothing listens on the namespace's port 53).
write_resolver() { # host dir
    local j
    {
        echo "127.0.0.1 localhost"
        echo "::1 localhost ip6-localhost ip6-loopback"
        echo "$SUBNET.1 nbtest-root"
        for j in $(seq 1 "$MAX_HOSTS"); do
            echo "$(host_ip "$j") kvm$j"
        done
    } >"$1/hosts"
    echo "# test host: no DNS (scripts/testhosts.sh)" >"$1/resolv.conf"
}

# Runs as the holder inside the new mount and UTS namespaces: hostname, bind mounts, then it
# becomes `sleep infinity` (same pid) and keeps the namespaces alive.
# shellcheck disable=SC2016 # expanded by the inner bash
HOLDER_SCRIPT='
set -eu
hostname "kvm$1"
mount --bind "$2/run" /run/libvirt
mount --bind "$2/lib" /var/lib/libvirt
mount --bind "$2/log" /var/log/libvirt
mount --bind "$2/etc" /etc/libvirt
mount --bind "$2/cache" /var/cache/libvirt
mount --bind "$2/hosts" /etc/hosts
mount --bind "$2/resolv.conf" /etc/resolv.conf
if [ -d "$2/sasl2" ]; then mount --bind "$2/sasl2" /etc/sasl2; fi
echo $$ >"$2/holder.pid.tmp"
mv "$2/holder.pid.tmp" "$2/holder.pid"
exec sleep infinity
'

start_daemons() { # i
    local dir
    dir=$(host_dir "$1")
    pidfile_pid "$dir/virtlogd.pid" >/dev/null ||
        in_host "$1" virtlogd -d -p "$dir/virtlogd.pid"
    # -d returns once the daemon has initialised (or failed to).
    in_host "$1" libvirtd -d --listen -p "$dir/libvirtd.pid"
    wait_answers "$1"
}

agent_binary() {
    echo "${NIMBUS_AGENT:-${NIMBUS_BUILD_DIR:-$REPO/build}/src/agent/nimbus-agent}"
}

# The host's nimbus-agent, in its network namespace (the bridges and VXLAN devices it makes are
# the host's). Without a built agent the host has none: it runs VMs, but no vxlan networks.
start_agent() { # i
    local ip
    ip=$(host_ip "$1")
    if [ ! -x "$(agent_binary)" ]; then
        echo "testhosts: kvm$1: no agent ($(agent_binary) is not built)" >&2
        return 0
    fi
    NIMBUS_AGENT=$(agent_binary) "$REPO/scripts/start-agent.sh" "$(host_dir "$1")/agent" \
        --netns "$NS$1" --listen "$ip:8775" --san "$ip" --san "kvm$1" --check-interval 5
}

start_host() { # i
    local i=$1 dir ns=$NS$1 ip d
    dir=$(host_dir "$i")
    ip=$(host_ip "$i")

    mkdir -p "$dir"/{run,lib,log,etc,cache}
    chmod 755 "$dir"
    copy_tree_skeleton /var/lib/libvirt "$dir/lib"
    copy_tree_skeleton /var/log/libvirt "$dir/log"
    copy_tree_skeleton /var/cache/libvirt "$dir/cache"
    seed_capabilities "$dir/cache/qemu/capabilities"
    write_etc "$i" "$dir/etc"
    write_resolver "$dir"

    ip netns add "$ns"
    ip link add "$VETH$i" type veth peer name "$PEER$i"
    ip link set "$PEER$i" netns "$ns"
    ip link set "$VETH$i" master "$BRIDGE" up
    ip -n "$ns" link set "$PEER$i" name eth0
    ip -n "$ns" addr add "$ip/24" dev eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "$SUBNET.1"

    # ip netns exec also mounts a sysfs of the namespace on /sys (libvirt's bridge code reads
    # and writes /sys/class/net). setsid and no inherited stdio: the holder outlives this script
    # and must not keep a caller's pipes open.
    setsid ip netns exec "$ns" unshare --mount --uts --propagation private -- \
        bash -c "$HOLDER_SCRIPT" holder "$i" "$dir" </dev/null >"$dir/holder.log" 2>&1 &
    for d in $(seq 1 100); do
        [ -s "$dir/holder.pid" ] && break
        [ "$d" = 100 ] && die "kvm$i: namespace holder did not start; see $dir/holder.log"
        sleep 0.05
    done

    start_daemons "$i"
    start_agent "$i"
    # Autostarted from the config written above; start it if libvirt did not.
    local info
    info=$(in_host "$i" virsh -q -c qemu:///system net-info default)
    if ! grep -Eq '^Active:\s+yes' <<<"$info"; then
        in_host "$i" virsh -q -c qemu:///system net-start default >/dev/null
    fi
}

# Host numbers that exist in any form: state dirs, namespaces, veths.
known_hosts() {
    {
        local d
        for d in "$state"/kvm*; do
            [ -d "$d" ] && echo "${d##*/kvm}"
        done
        ip netns list 2>/dev/null | sed -n "s/^$NS\\([0-9]\\+\\).*/\\1/p"
        ip -o link show 2>/dev/null | sed -n "s/^[0-9]*: $VETH\\([0-9]\\+\\)@.*/\\1/p"
    } | grep -E '^[0-9]+$' | sort -un
}

stop_host() { # i
    local i=$1 dir ns=$NS$1 pid f dom pids
    dir=$(host_dir "$i")

    if [ -e "/run/netns/$ns" ]; then
        # Destroy the guests through libvirt while it is there, so it restores disk ownership.
        if holder_pid "$i" >/dev/null && pidfile_pid "$dir/libvirtd.pid" >/dev/null; then
            while read -r dom; do
                [ -n "$dom" ] || continue
                in_host "$i" timeout 10 virsh -q -c qemu:///system destroy "$dom" \
                    >/dev/null 2>&1 || true
            done < <(in_host "$i" timeout 5 virsh -q -c qemu:///system list --name 2>/dev/null ||
                true)
        fi
        for f in "$dir"/run/qemu/*.pid; do
            # driver.pid is libvirtd's own (the QEMU driver's lock), the others are guests'.
            [ "${f##*/}" = driver.pid ] || signal_pidfile KILL "$f" "$i"
        done
        for f in "$dir/libvirtd.pid" "$dir/virtlogd.pid" "$dir"/run/network/*.pid \
            "$dir/agent/agent.pid"; do
            signal_pidfile TERM "$f" "$i"
        done
        # Give libvirtd a moment to exit cleanly, then SIGKILL whatever still lives in the
        # namespace: the holder, stragglers (dnsmasq, a QEMU without pidfile).
        for _ in $(seq 1 20); do
            pid=$(pidfile_pid "$dir/libvirtd.pid") || break
            sleep 0.1
        done
        for _ in $(seq 1 50); do
            pids=$(ip netns pids "$ns" 2>/dev/null || true)
            [ -n "$pids" ] || break
            # shellcheck disable=SC2086 # one pid per word
            kill -KILL $pids 2>/dev/null || true
            sleep 0.1
        done
        [ -z "$(ip netns pids "$ns" 2>/dev/null || true)" ] ||
            echo "testhosts: kvm$i: processes still in $ns: $(ip netns pids "$ns" | xargs)" >&2
        ip netns del "$ns" 2>/dev/null || true
    fi
    # Deleting the namespace destroys eth0 and so its peer; this is for half-made hosts.
    ip link del "$VETH$i" 2>/dev/null || true
}

cmd_stop() {
    local i pids=()
    for i in $(known_hosts); do
        stop_host "$i" &
        pids+=($!)
    done
    for i in "${pids[@]}"; do
        wait "$i" || true
    done
    ip link del "$BRIDGE" 2>/dev/null || true
    # Only what start made: the kvmI dirs, then the state dir if that leaves it empty.
    if [ -d "$state" ]; then
        rm -rf "${state:?}"/kvm[0-9]*
        rm -f "$state/agents-ca.pem"
        rm -rf "${state:?}/pki" "${state:?}/sasl"
        rmdir "$state" 2>/dev/null || true
    fi
}

cmd_start() { # n
    local n=$1 i c rc=0 pids=()
    if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt "$MAX_HOSTS" ]; then
        die "N must be 1..$MAX_HOSTS, not '$n'"
    fi
    cmd_stop # leftovers of an earlier run
    for c in ip nsenter unshare setsid virtlogd libvirtd virsh dnsmasq iptables; do
        command -v "$c" >/dev/null || die "missing $c"
    done

    mkdir -p "$state" /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt
    chmod 755 "$state"
    ip link add "$BRIDGE" type bridge
    ip addr add "$SUBNET.1/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    [ "$SECURE" != 1 ] || make_secure_material

    for i in $(seq 1 "$n"); do
        start_host "$i" &
        pids+=($!)
    done
    for i in "${pids[@]}"; do
        wait "$i" || rc=1
    done
    if [ "$rc" != 0 ]; then
        cmd_stop
        die "could not start the hosts (cleaned up)"
    fi
    save_capabilities "$(host_dir 1)/cache/qemu/capabilities"
    # One CA bundle for nimbusd: each agent's self-signed certificate.
    : >"$state/agents-ca.pem.tmp"
    for i in $(seq 1 "$n"); do
        c="$(host_dir "$i")/agent/cert.pem"
        [ -s "$c" ] && cat "$c" >>"$state/agents-ca.pem.tmp"
    done
    mv "$state/agents-ca.pem.tmp" "$state/agents-ca.pem"
    for i in $(seq 1 "$n"); do
        echo "kvm$i $(host_uri "$i")"
    done
}

cmd_status() {
    local i up=0
    for i in $(known_hosts); do
        if answers "$i"; then
            echo "kvm$i $(host_uri "$i") up (libvirtd pid $(cat "$(host_dir "$i")/libvirtd.pid"))"
            up=$((up + 1))
        else
            echo "kvm$i $(host_uri "$i") down"
        fi
    done
    [ "$up" -gt 0 ] || echo "no test host answers"
}

host_arg() { # i
    [[ "${1:-}" =~ ^[0-9]+$ ]] || die "expected a host number, not '${1:-}'"
    holder_pid "$1" >/dev/null || die "kvm$1 is not running"
}

cmd_kill_libvirtd() { # i
    local pid
    host_arg "$1"
    pid=$(pidfile_pid "$(host_dir "$1")/libvirtd.pid") || die "kvm$1: libvirtd is not running"
    pid_in_host "$pid" "$1" || die "kvm$1: pid $pid in libvirtd.pid is not in $NS$1"
    kill -KILL "$pid"
    while alive "$pid"; do sleep 0.05; done
}

cmd_start_libvirtd() { # i
    host_arg "$1"
    if pidfile_pid "$(host_dir "$1")/libvirtd.pid" >/dev/null; then
        wait_answers "$1"
        return
    fi
    start_daemons "$1"
}

# --- command line ----------------------------------------------------------------------------
args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --state) [ $# -ge 2 ] || usage; state=$2; shift 2 ;;
    --state=*) state=${1#--state=}; shift ;;
    --) args+=("$@"); break ;;
    -h | --help) usage ;;
    *) args+=("$1"); shift ;;
    esac
done
[ ${#args[@]} -gt 0 ] || usage
[ "$(id -u)" = 0 ] || die "must run as root"
state=$(realpath -m "$state")

case "${args[0]}" in
start) [ ${#args[@]} = 2 ] || usage; cmd_start "${args[1]}" ;;
stop) [ ${#args[@]} = 1 ] || usage; cmd_stop ;;
status) [ ${#args[@]} = 1 ] || usage; cmd_status ;;
kill-libvirtd) [ ${#args[@]} = 2 ] || usage; cmd_kill_libvirtd "${args[1]}" ;;
start-libvirtd) [ ${#args[@]} = 2 ] || usage; cmd_start_libvirtd "${args[1]}" ;;
exec)
    if [ ${#args[@]} -lt 4 ] || [ "${args[2]}" != -- ]; then usage; fi
    host_arg "${args[1]}"
    in_host "${args[1]}" "${args[@]:3}"
    ;;
*) usage ;;
esac
