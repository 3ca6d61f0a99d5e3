#!/usr/bin/env bash
# The Debian packages' test: builds nimbusd, nimbus-client and nimbus-agent with
# dpkg-buildpackage from a copy of this tree (what git tracks plus new files it does not ignore:
# the working tree, uncommitted changes included), runs lintian on them, installs them into a
# fresh Debian 12 root (mmdebstrap --variant=apt, then chroot; no systemd runs there), checks
# the programs, the user, the units (systemd-analyze verify), conffiles, man pages and the bash
# completion, installs libvirt-daemon-system afterwards (nimbus must stay in its group libvirt),
# then purges everything and checks that only what policy keeps is left.
# Needs root and the Debian mirror apt uses. Ends with "N passed, N failed"; exits non-zero on any
# failure. NIMBUS_PKG_KEEP=1 keeps the work directory (its path is printed).
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "test-packages.sh: run as root (chroot, mmdebstrap)" >&2; exit 2; }

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
# check DESCRIPTION COMMAND...: passes when the command succeeds; its output shown on failure
check() {
    local what=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$what"; else bad "$what"; printf '%s\n' "$out" | tail -n 20 | sed 's/^/     /'; fi
}
# check_silent DESCRIPTION COMMAND...: passes when the command succeeds and prints nothing
check_silent() {
    local what=$1 out
    shift
    out=$("$@" 2>&1)
    local rc=$?
    if [ $rc = 0 ] && [ -z "$out" ]; then ok "$what"; else bad "$what (exit $rc)"; printf '%s\n' "$out" | tail -n 30 | sed 's/^/     /'; fi
}
summary() {
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
}

work=$(mktemp -d /tmp/nimbus-pkg.XXXXXX)
root=$work/root
daemon_pid=
cleanup() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill "$daemon_pid"
        wait "$daemon_pid" 2>/dev/null
    fi
    # Whatever was mounted inside the root goes before the root itself.
    for m in "$root/proc"; do
        mountpoint -q "$m" 2>/dev/null && umount -l "$m"
    done
    if [ "${NIMBUS_PKG_KEEP:-0}" = 1 ]; then
        echo "kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
started=$(date +%s)

# Tools: debhelper and lintian to build and check, mmdebstrap for the root.
need=()
for p in debhelper dpkg-dev fakeroot lintian mmdebstrap systemd man-db; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" \
        >/dev/null || { echo "cannot install ${need[*]}"; exit 1; }
fi

# --- build ---------------------------------------------------------------------------------
src=$work/nimbus
mkdir -p "$src"
# Build products someone left in the tree (an in-tree dpkg-buildpackage) are not sources.
(cd "$repo" && git ls-files -z -co --exclude-standard |
    grep -zvE '^(obj-[^/]*/|debian/(\.debhelper|tmp|generated|nimbusd|nimbus-client|nimbus-agent)/|debian/(files|debhelper-build-stamp)$|debian/.*\.(substvars|debhelper\.log)$)' |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf -) | tar -xf - -C "$src"
check "dpkg-checkbuilddeps: the build dependencies are installed" sh -c "cd '$src' && dpkg-checkbuilddeps"

meson_version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$repo/meson.build" | head -n 1)
deb_version=$(cd "$src" && dpkg-parsechangelog -SVersion)
check "debian/changelog's version ($deb_version) is meson.build's ($meson_version)" \
    test "$deb_version" = "$meson_version"

# The source package too (lintian below reads it): made before the build touches the tree.
check "dpkg-source -b (3.0 native)" sh -c "cd '$work' && dpkg-source -b nimbus"

build_start=$(date +%s)
if (cd "$src" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
    ok "dpkg-buildpackage -us -uc -b ($(($(date +%s) - build_start)) s)"
else
    bad "dpkg-buildpackage -us -uc -b"
    tail -n 40 "$work/build.log" | sed 's/^/     /'
    summary
    exit 1
fi
debs=()
for p in nimbusd nimbus-client nimbus-agent; do
    debs+=("$work/${p}_${deb_version}_$(dpkg --print-architecture).deb")
done
check "three packages built" ls "${debs[@]}"
check "no warning from the build (dpkg-shlibdeps, dh_missing, gcc)" \
    sh -c "! grep -E 'warning:|dh_missing:' '$work/build.log'"

# Every tag counts, info included: each one is fixed or overridden with its reason
# (debian/*.lintian-overrides).
check "lintian: no error, warning or info tag (source and binaries)" \
    lintian --fail-on error,warning,info --info "$work/nimbus_$deb_version.dsc" "${debs[@]}"

# --- install into a fresh Debian 12 root -------------------------------------------------------
if ! mmdebstrap --quiet --variant=apt bookworm "$root" >"$work/mmdebstrap.log" 2>&1; then
    bad "mmdebstrap --variant=apt bookworm"
    tail -n 20 "$work/mmdebstrap.log" | sed 's/^/     /'
    summary
    exit 1
fi
ok "mmdebstrap --variant=apt bookworm"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive "$@"; }
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
mkdir -p "$root/tmp/debs"
cp "${debs[@]}" "$root/tmp/debs/"
check "apt-get update in the root" in_root apt-get update -qq
# Without recommends: a controller that drives only remote hosts has no libvirt here.
if in_root apt-get install -y -qq --no-install-recommends "${debs[@]/#$work//tmp/debs}" \
    >"$work/install.log" 2>&1; then
    ok "apt-get install ./nimbus*.deb (no recommends)"
else
    bad "apt-get install ./nimbus*.deb (no recommends)"
    tail -n 20 "$work/install.log" | sed 's/^/     /'
    summary
    exit 1
fi

check "nimbusd --version says $deb_version" sh -c "chroot '$root' nimbusd --version | grep -qx 'nimbusd $deb_version'"
check "nimbusd is in /usr/sbin" test -x "$root/usr/sbin/nimbusd"
check "nimbus --help lists the commands" sh -c "chroot '$root' nimbus --help | grep -q '^Commands:'"
check "nimbus-agent --help" sh -c "chroot '$root' nimbus-agent --help | grep -q '^Usage: nimbus-agent'"
check "qemu-img and genisoimage (run by nimbusd) came as dependencies" \
    in_root sh -c 'command -v qemu-img && command -v genisoimage'

pw=$(in_root getent passwd nimbus)
check "user nimbus exists" test -n "$pw"
IFS=: read -r _ _ uid _ _ home shell <<<"$pw"
check "nimbus is a system user (uid $uid < 1000), home /var/lib/nimbus, no login shell" \
    sh -c "[ '$uid' -lt 1000 ] && [ '$home' = /var/lib/nimbus ] && [ '$shell' = /usr/sbin/nologin ]"
check "group nimbus exists" in_root getent group nimbus

for u in nimbusd nimbus-agent; do
    check "unit $u.service installed" test -f "$root/lib/systemd/system/$u.service"
    check "unit $u.service enabled (multi-user.target.wants)" \
        test -L "$root/etc/systemd/system/multi-user.target.wants/$u.service"
done
check "conffile /etc/nimbus/nimbusd.conf" \
    sh -c "chroot '$root' dpkg-query -W -f='\${Conffiles}' nimbusd | grep -q '^ /etc/nimbus/nimbusd.conf '"
check "conffile /etc/default/nimbus-agent" \
    sh -c "chroot '$root' dpkg-query -W -f='\${Conffiles}' nimbus-agent | grep -q '^ /etc/default/nimbus-agent '"
# Every setting nimbusd --help names is in the conffile with its default, commented out.
keys=$(in_root nimbusd --help | grep -oE -- '--[a-z][a-z0-9-]*' | sed 's/^--//' |
    grep -vxE 'config|help|version' | sort -u)
missing=$(for k in $keys; do grep -q "^#$k = " "$root/etc/nimbus/nimbusd.conf" || echo "$k"; done)
nkeys=$(echo "$keys" | wc -l)
check "nimbusd.conf lists every setting of nimbusd --help ($nkeys)" test -z "$missing" -a "$nkeys" -gt 20
[ -z "$missing" ] || echo "     missing: $missing"
check "nimbusd.conf: every line is a comment or blank (defaults come from nimbusd)" \
    sh -c "! grep -vE '^(#|[[:space:]]*$)' '$root/etc/nimbus/nimbusd.conf'"
# The commented defaults are values nimbusd accepts: uncommented (but the file settings whose
# files do not exist here), then a last bad line. Refused at that line = the rest was read.
grep -E '^#[a-z-]+ = ' "$root/etc/nimbus/nimbusd.conf" | sed 's/^#//' |
    grep -vE '^(tls-|agent-|tunnel-)' >"$root/tmp/defaults.conf"
echo "workers = 0" >>"$root/tmp/defaults.conf"
n=$(wc -l <"$root/tmp/defaults.conf")
check "nimbusd reads the conffile's defaults (refused only at line $n, the bad one)" \
    sh -c "chroot '$root' nimbusd --config /tmp/defaults.conf 2>&1 | grep -q 'defaults.conf:$n: workers must be'"

for m in man8/nimbusd.8 man5/nimbusd.conf.5 man1/nimbus.1 man8/nimbus-agent.8; do
    f=$root/usr/share/man/$m.gz
    check "man page $m" test -s "$f"
    check_silent "man page $m renders without warnings" \
        sh -c "zcat '$f' | MANWIDTH=80 man --warnings -l - 2>&1 >/dev/null"
done
check "nimbusd(8) lists the options of nimbusd --help" \
    sh -c "zcat '$root/usr/share/man/man8/nimbusd.8.gz' | grep -q 'log\\\\-format'"

comp=/usr/share/bash-completion/completions/nimbus
check "bash completion $comp" test -s "$root$comp"
complete_words() { # WORD...: what completing the last word offers
    in_root bash -c 'source '"$comp"'; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _nimbus;
        echo "${COMPREPLY[*]}"' _ "$@"
}
check "completion: nimbus vm st -> start stop" test "$(complete_words nimbus vm st)" = "start stop"
check "completion: nimbus --json vm create x --im -> --image" \
    test "$(complete_words nimbus --json vm create x --im)" = "--image"
check "completion: nimbus secgroup rule '' -> add list delete" \
    test "$(complete_words nimbus secgroup rule '')" = "add list delete"

# The agent's first-start script makes its credentials as the unit runs it, and keeps them.
check "nimbus-agent-init makes cert, key and secret" \
    in_root /usr/libexec/nimbus-agent/nimbus-agent-init /var/lib/nimbus-agent 127.0.0.1:8775 agent.example
check "agent secret: 64 hex, mode 0600" sh -c "grep -qxE '[0-9a-f]{64}' '$root/var/lib/nimbus-agent/secret' &&
    [ \"\$(stat -c %a '$root/var/lib/nimbus-agent/secret')\" = 600 ] && [ \"\$(stat -c %a '$root/var/lib/nimbus-agent/key.pem')\" = 600 ]"
check "agent certificate names 127.0.0.1 and agent.example" \
    sh -c "openssl x509 -in '$root/var/lib/nimbus-agent/cert.pem' -noout -ext subjectAltName | grep -q 'DNS:agent.example'"
sum=$(cat "$root/var/lib/nimbus-agent/secret" "$root/var/lib/nimbus-agent/cert.pem" | md5sum)
in_root /usr/libexec/nimbus-agent/nimbus-agent-init /var/lib/nimbus-agent 127.0.0.1:8775 >/dev/null
check "nimbus-agent-init keeps existing credentials" \
    test -s "$root/var/lib/nimbus-agent/secret" -a \
    "$(cat "$root/var/lib/nimbus-agent/secret" "$root/var/lib/nimbus-agent/cert.pem" | md5sum)" = "$sum"

# The packaged nimbusd really runs as the user nimbus, as the unit starts it (the state directory
# made as StateDirectory= makes it), here on libvirt's test driver: it makes its store and admin
# token, serves the API, and the packaged CLI talks to it.
in_root install -d -m 0711 -o nimbus -g nimbus /var/lib/nimbus
chroot "$root" env -i PATH=/usr/sbin:/usr/bin HOME=/var/lib/nimbus \
    setpriv --reuid nimbus --regid nimbus --init-groups --no-new-privs \
    nimbusd --config /etc/nimbus/nimbusd.conf --libvirt-uri test:///default \
    --listen 127.0.0.1:0 >"$work/nimbusd.log" 2>&1 &
daemon_pid=$!
url=
for _ in $(seq 1 100); do
    url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/nimbusd.log")
    [ -n "$url" ] || ! kill -0 "$daemon_pid" 2>/dev/null && break
    sleep 0.1
done
if [ -n "$url" ]; then ok "nimbusd starts as nimbus with the packaged config ($url)"; else
    bad "nimbusd starts as nimbus with the packaged config"; tail -n 20 "$work/nimbusd.log" | sed 's/^/     /'; fi
# What the unit's watchdog and a load balancer look at: alive, and ready (its local host is
# the test driver, connected).
http_status() { # url -> the JSON body's "status"
    python3 -c 'import json, sys, urllib.request
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=10)
except urllib.error.HTTPError as e:
    r = e
print(json.load(r).get("status"))' "$1" 2>/dev/null
}
check "GET /v1/health answers ok" test "$(http_status "$url/v1/health")" = ok
for _ in $(seq 1 50); do
    [ "$(http_status "$url/v1/ready")" = ready ] && break
    sleep 0.2
done
check "GET /v1/ready answers ready" test "$(http_status "$url/v1/ready")" = ready
check "admin token written by nimbus, mode 0600" \
    test "$(in_root stat -c '%a %U' /var/lib/nimbus/admin.token)" = "600 nimbus"
token=$(cat "$root/var/lib/nimbus/admin.token" 2>/dev/null)
check "nimbus (packaged CLI) creates a flavor through it" in_root env NIMBUS_URL="$url" \
    NIMBUS_TOKEN="$token" nimbus flavor create pkg-small --vcpus 1 --ram 256 --disk 1
check "nimbus lists it" sh -c "chroot '$root' env NIMBUS_URL='$url' NIMBUS_TOKEN='$token' \
    nimbus flavor list | grep -q pkg-small"
kill "$daemon_pid" 2>/dev/null
wait "$daemon_pid"
rc=$?
check "nimbusd stops on SIGTERM (status $rc) and logged no error" \
    sh -c "[ $rc = 0 ] && ! grep -E ' (error|warn) ' '$work/nimbusd.log'"
daemon_pid=

# systemd-analyze verify needs systemd's own units (sysinit.target) in the root: systemd is
# installed into it for that (it does not run). Its complaints are warnings with exit status 0,
# so any output fails.
if in_root apt-get install -y -qq --no-install-recommends systemd >/dev/null 2>&1; then
    check_silent "systemd-analyze verify nimbusd.service nimbus-agent.service" \
        in_root systemd-analyze verify --man=no nimbusd.service nimbus-agent.service
else
    bad "installing systemd into the root (for systemd-analyze verify)"
fi

# The group libvirt: made by the postinst when libvirt is absent (so nimbus is in it whatever
# the order), then libvirt-daemon-system's own postinst must accept it as its group.
check "nimbus is in the group libvirt (made by the postinst, no libvirt installed)" \
    sh -c "chroot '$root' id -nG nimbus | grep -qw libvirt"
check "apt-get install libvirt-daemon-system (after nimbusd)" \
    in_root apt-get install -y -qq --no-install-recommends libvirt-daemon-system
check "nimbus still in the group libvirt, which libvirt's files use" \
    sh -c "chroot '$root' id -nG nimbus | grep -qw libvirt &&
        grep -q 'isInGroup(\"libvirt\")' '$root/usr/share/polkit-1/rules.d/60-libvirt.rules'"

# --- purge -------------------------------------------------------------------------------------
# A state directory with a store in it, as a first start makes it: purge must keep it.
mkdir -p "$root/var/lib/nimbus"
echo store >"$root/var/lib/nimbus/nimbus.db"
check "apt-get purge nimbusd nimbus-client nimbus-agent" \
    in_root apt-get purge -y -qq nimbusd nimbus-client nimbus-agent
check "no package left" sh -c "! chroot '$root' dpkg-query -W -f='\${db:Status-Abbrev} \${Package}\n' nimbusd nimbus-client nimbus-agent 2>/dev/null | grep -v '^un '"
left=$(cd "$root" && ls -d usr/sbin/nimbusd usr/sbin/nimbus-agent usr/bin/nimbus usr/libexec/nimbus-agent \
    etc/nimbus etc/default/nimbus-agent lib/systemd/system/nimbusd.service \
    lib/systemd/system/nimbus-agent.service etc/systemd/system/multi-user.target.wants/nimbusd.service \
    etc/systemd/system/multi-user.target.wants/nimbus-agent.service \
    usr/share/bash-completion/completions/nimbus usr/share/man/man8/nimbusd.8.gz \
    usr/share/doc/nimbusd var/lib/nimbus-agent 2>/dev/null)
check "purge removed programs, units, conffiles, man pages and the agent's credentials" test -z "$left"
[ -z "$left" ] || echo "     left: $left"
check "purge kept /var/lib/nimbus with its store (VM disks and the store outlive the package)" \
    test -s "$root/var/lib/nimbus/nimbus.db"
check "purge kept the user nimbus (files may still be owned by it)" in_root getent passwd nimbus
# Anything else under /etc or /var/lib with nimbus in its name was left behind by mistake.
stray=$(cd "$root" && find etc var/lib usr lib -name '*nimbus*' ! -path 'var/lib/nimbus' \
    ! -path 'var/lib/nimbus/*' 2>/dev/null)
check "nothing else named nimbus left" test -z "$stray"
[ -z "$stray" ] || echo "     left: $stray"

echo "packaging test took $(($(date +%s) - started)) s"
summary
