#!/usr/bin/env bash
# Nimbus all-in-one on this host: installs packages, builds and installs nimbusd and nimbus,
# starts virtlogd/libvirtd (no systemd needed), starts nimbusd on 127.0.0.1:8773 with its state
# in /var/lib/nimbus, writes the CLI config, and builds the small test image for the tour.
# It also starts this host's nimbus-agent (scripts/start-agent.sh, credentials in
# /var/lib/nimbus-agent, listening on 127.0.0.1:8775) and gives nimbusd its URL, secret and
# certificate, so vxlan networks and NIC bandwidth limits work on the all-in-one host too.
#   NIMBUS_VIRT_TYPE=qemu scripts/aio.sh   # software emulation where KVM is unusable
set -euo pipefail
cd "$(dirname "$0")/.."

virt_type=${NIMBUS_VIRT_TYPE:-kvm}
listen=${NIMBUS_LISTEN:-127.0.0.1:8773}
state_dir=${NIMBUS_STATE_DIR:-/var/lib/nimbus}

scripts/install-deps.sh
[ -f build-release/build.ninja ] || meson setup build-release --buildtype=release -Dtests=false \
    --prefix=/usr/local >/dev/null
ninja -C build-release
ninja -C build-release install >/dev/null
scripts/start-libvirt.sh

mkdir -p /etc/nimbus /var/log/nimbus "$state_dir"
chmod 0711 "$state_dir" # libvirt-qemu must reach the pool inside it
agent_dir=${NIMBUS_AGENT_DIR:-/var/lib/nimbus-agent}
NIMBUS_AGENT=/usr/local/bin/nimbus-agent scripts/start-agent.sh "$agent_dir" \
    --listen 127.0.0.1:8775
pidfile=/run/nimbusd.pid
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "nimbusd already running (pid $(cat "$pidfile"))"
else
    nohup /usr/local/bin/nimbusd --listen "$listen" --state-dir "$state_dir" \
        --libvirt-uri qemu:///system --virt-type "$virt_type" \
        --agent-url https://127.0.0.1:8775 --agent-secret-file "$agent_dir/secret" \
        --agent-ca-file "$agent_dir/cert.pem" \
        >>/var/log/nimbus/nimbusd.log 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 100); do
        [ -s "$state_dir/admin.token" ] && grep -q 'listening on' /var/log/nimbus/nimbusd.log && break
        kill -0 "$(cat "$pidfile")" 2>/dev/null || { tail -20 /var/log/nimbus/nimbusd.log; exit 1; }
        sleep 0.1
    done
fi

umask 077
printf 'url = http://%s\ntoken = %s\n' "$listen" "$(cat "$state_dir/admin.token")" \
    >/etc/nimbus/cli.conf
scripts/build-test-image.sh "$PWD/tiny.qcow2" >/dev/null

cat <<MSG

Nimbus is running: http://$listen (virt-type $virt_type, pid $(cat "$pidfile"))
  log:        /var/log/nimbus/nimbusd.log
  state:      $state_dir (store, storage pool, admin.token)
  agent:      https://127.0.0.1:8775 (pid $(cat "$agent_dir/agent.pid"), log $agent_dir/agent.log)
  CLI config: /etc/nimbus/cli.conf (url and admin token)
  test image: $PWD/tiny.qcow2

Try:
  nimbus image create tiny --file ./tiny.qcow2
  nimbus flavor create small --vcpus 1 --ram 256 --disk 1
  nimbus vm create web1 --image tiny --flavor small --wait
  nimbus vm console-log web1
MSG
