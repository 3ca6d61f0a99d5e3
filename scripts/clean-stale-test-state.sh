#!/usr/bin/env bash
# Removes what an interrupted earlier run of this project's tests left behind in libvirt and in the
# kernel: a run killed half-way (a CI job cancelled, a machine image taken while tests ran) leaves
# defined domains, active networks whose bridges still hold their addresses, port filters, pools
# and test namespaces, and the next run then fails on "Network is already in use".
#
# Only for a machine given over to the tests (CI runs it; scripts/run-tests.sh calls it when
# NIMBUS_CLEAN_STALE=1). It touches nothing but objects with the names the tests use:
#   - domains nimbus-* whose every disk lies under /tmp (the tests' state dirs), destroyed and
#     undefined; a domain with a disk elsewhere (an all-in-one install) is left alone;
#   - networks nimbus-net-*, nimbus-e2e-*, nimbus-test-*, nimbus-bench-* no remaining domain uses;
#   - network filters nimbus-port-*, nimbus-sg-*, nimbus-sgr-* no remaining domain refers to
#     (ports' filters first: the others are referenced by them);
#   - storage pools whose target directory lies under /tmp;
#   - bridges nbr<12 hex> left with no port and no libvirt network behind them, and the agent's
#     IFB, VXLAN and VLAN devices nbi/nbx/nbv<12 hex>;
#   - the namespaces of scripts/testhosts.sh (nbhostN, nbS_hostN) and tests/e2e/test_agent.py
#     (nagN), with the processes still inside them (from the earlier run, by definition);
#   - the storage tests' pools nimbus-test-* (rbd, iscsi-direct: no directory), test daemons'
#     nimbus-pool-<id> pools on 127.0.0.1 backends with their secrets (UUID = the id), and
#     libvirt secrets whose usage is nimbus-test-*, then their backends (scripts/test-ceph.sh and
#     scripts/test-iscsi.sh stop: only the daemons those scripts started, by their pid files).
# Prints what it removed; exits 0 unless libvirtd does not answer.
set -uo pipefail
V=(virsh -q -c qemu:///system)
"${V[@]}" version >/dev/null || {
    echo "clean-stale-test-state: libvirtd does not answer" >&2
    exit 1
}
removed=0
say() {
    echo "clean-stale-test-state: $*"
    removed=$((removed + 1))
}

# Domains first: they hold networks, filters and pools.
for d in $("${V[@]}" list --all --name | grep '^nimbus-' || true); do
    disks=$("${V[@]}" domblklist "$d" --details 2>/dev/null | awk '$1 == "file" {print $4}')
    [ -n "$disks" ] || continue
    if grep -qv '^/tmp/' <<<"$disks"; then
        continue
    fi
    "${V[@]}" destroy "$d" >/dev/null 2>&1
    "${V[@]}" undefine "$d" --managed-save --snapshots-metadata >/dev/null 2>&1 &&
        say "domain $d"
done

used_nets=""
used_filters=""
for d in $("${V[@]}" list --all --name); do
    xml=$("${V[@]}" dumpxml --inactive "$d" 2>/dev/null)
    used_nets+=$(grep -oE "<source network='[^']+'" <<<"$xml" | cut -d"'" -f2)$'\n'
    used_filters+=$(grep -oE "<filterref filter='[^']+'" <<<"$xml" | cut -d"'" -f2)$'\n'
done

for n in $("${V[@]}" net-list --all --name | grep -E '^nimbus-(net|e2e|test|bench)-' || true); do
    grep -qxF "$n" <<<"$used_nets" && continue
    "${V[@]}" net-destroy "$n" >/dev/null 2>&1
    "${V[@]}" net-undefine "$n" >/dev/null 2>&1
    say "network $n"
done

for f in $("${V[@]}" nwfilter-list | awk '{print $2}' | grep -E '^nimbus-(port|sg|sgr)-' || true); do
    grep -qxF "$f" <<<"$used_filters" && continue
    "${V[@]}" nwfilter-undefine "$f" >/dev/null 2>&1 && say "network filter $f"
done

for p in $("${V[@]}" pool-list --all --name); do
    xml=$("${V[@]}" pool-dumpxml "$p" 2>/dev/null)
    path=$(sed -n 's:.*<path>\(.*\)</path>.*:\1:p' <<<"$xml" | head -n 1)
    # A test daemon's rbd or iscsi pool: Nimbus's name, a backend on this machine (the test
    # Ceph or tgt); its secret's UUID is the pool's id.
    testbackend=""
    [[ "$p" =~ ^nimbus-pool-([0-9a-f-]{36})$ ]] && grep -q "<host name='127.0.0.1'" <<<"$xml" &&
        testbackend=${BASH_REMATCH[1]}
    case "$path" in /tmp/*) ;; *) [ -n "$testbackend" ] || continue ;; esac
    "${V[@]}" pool-destroy "$p" >/dev/null 2>&1
    "${V[@]}" pool-undefine "$p" >/dev/null 2>&1 && say "storage pool $p (${path:-127.0.0.1})"
    if [ -n "$testbackend" ]; then
        "${V[@]}" secret-undefine "$testbackend" >/dev/null 2>&1 && say "secret $testbackend"
    fi
done

live_bridges=""
for n in $("${V[@]}" net-list --name); do
    live_bridges+=$("${V[@]}" net-info "$n" 2>/dev/null | awk '$1 == "Bridge:" {print $2}')$'\n'
done
for br in $(ip -o link show type bridge | awk -F': ' '{print $2}' | cut -d@ -f1 |
    grep -E '^nbr[0-9a-f]{12}$' || true); do
    grep -qxF "$br" <<<"$live_bridges" && continue
    [ -z "$(ls "/sys/class/net/$br/brif" 2>/dev/null)" ] || continue
    ip link delete "$br" 2>/dev/null && say "bridge $br"
done

# The local agent's other devices (IFB for a NIC's ingress limit, VXLAN, VLAN uplinks): on a
# machine where no agent runs yet, every one is a leftover.
for dev in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 |
    grep -E '^nb[ixv][0-9a-f]{12}$' || true); do
    ip link delete "$dev" 2>/dev/null && say "device $dev"
done

for ns in $(ip netns list | awk '{print $1}' | grep -E '^(nbhost[0-9]+|nb[0-9]_host[0-9]+|nag[0-9]+)$' || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
        kill -9 "$pid" 2>/dev/null
    done
    ip netns delete "$ns" 2>/dev/null && say "namespace $ns"
done

for p in $("${V[@]}" pool-list --all --name | grep '^nimbus-test-' || true); do
    "${V[@]}" pool-destroy "$p" >/dev/null 2>&1
    "${V[@]}" pool-undefine "$p" >/dev/null 2>&1 && say "storage pool $p"
done
for s in $("${V[@]}" secret-list | awk '$3 ~ /^nimbus-test-/ {print $1}'); do
    "${V[@]}" secret-undefine "$s" >/dev/null 2>&1 && say "secret $s"
done
for b in ceph iscsi; do
    if [ -e "/run/nimbus-test-$b" ]; then
        "$(dirname "$0")/test-$b.sh" stop >/dev/null 2>&1 && say "$b test backend"
    fi
done

echo "clean-stale-test-state: $removed stale objects removed"
