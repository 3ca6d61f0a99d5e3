#!/usr/bin/env bash
# Starts nimbus-agent (the host networking daemon) with its credentials in one directory.
#
# Usage: scripts/start-agent.sh DIR [--netns NS] [--listen ADDR:PORT] [--san IP|DNS]...
#                               [--check-interval SECONDS] [--log-level LEVEL]
#
#   DIR/cert.pem, DIR/key.pem   a self-signed TLS certificate and key, made if missing (its
#                               subjectAltName: the listen address, 127.0.0.1, localhost and
#                               every --san); nimbusd verifies the agent against cert.pem
#   DIR/secret                  the per-host secret, 64 hex chars, mode 0600, made if missing;
#                               nimbusd sends it as "Authorization: Bearer <secret>"
#   DIR/state/                  the agent's state (--state-dir)
#   DIR/agent.pid, agent.log    its pid and log
#
# --netns NS runs the agent inside "ip netns exec NS" (namespace test hosts). The agent binary is
# $NIMBUS_AGENT, else $NIMBUS_BUILD_DIR/src/agent/nimbus-agent (default build dir: <repo>/build).
# Idempotent: an agent whose pid file names a live process is left alone. Exits non-zero (with
# the log's tail) when the agent does not answer /v1/health within 10 s. Stop it with
# kill "$(cat DIR/agent.pid)": it leaves the devices in place.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] || { sed -n '4,20p' "$0" >&2; exit 2; }
dir=$1
shift
netns='' listen=0.0.0.0:8775 interval=30 level=info sans=()
while [ $# -gt 0 ]; do
    case "$1" in
        --netns) netns=$2; shift 2 ;;
        --listen) listen=$2; shift 2 ;;
        --san) sans+=("$2"); shift 2 ;;
        --check-interval) interval=$2; shift 2 ;;
        --log-level) level=$2; shift 2 ;;
        *) echo "start-agent.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
agent=${NIMBUS_AGENT:-${NIMBUS_BUILD_DIR:-$repo/build}/src/agent/nimbus-agent}
[ -x "$agent" ] || { echo "start-agent.sh: $agent not built" >&2; exit 1; }

mkdir -p "$dir/state"
chmod 700 "$dir"
in_ns() { if [ -n "$netns" ]; then ip netns exec "$netns" "$@"; else "$@"; fi; }

if [ -s "$dir/agent.pid" ] && kill -0 "$(cat "$dir/agent.pid")" 2>/dev/null; then
    exit 0
fi

host=${listen%:*}
port=${listen##*:}
if [ ! -s "$dir/cert.pem" ] || [ ! -s "$dir/key.pem" ]; then
    san="IP:127.0.0.1,DNS:localhost"
    [ "$host" != 0.0.0.0 ] && [ "$host" != 127.0.0.1 ] && san="$san,IP:$host"
    for s in "${sans[@]}"; do
        if [[ $s =~ ^[0-9.]+$ ]]; then san="$san,IP:$s"; else san="$san,DNS:$s"; fi
    done
    (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 3650 -subj "/CN=nimbus-agent" \
        -addext "subjectAltName=$san" 2>/dev/null)
fi
if [ ! -s "$dir/secret" ]; then
    (umask 077 && openssl rand -hex 32 > "$dir/secret")
fi
chmod 600 "$dir/secret" "$dir/key.pem"
chmod 644 "$dir/cert.pem"

pre=()
[ -n "$netns" ] && pre=(ip netns exec "$netns")
# Not through in_ns: a function in the background is a subshell, and $! would be its pid.
"${pre[@]}" "$agent" --tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem" \
    --secret-file "$dir/secret" --state-dir "$dir/state" --listen "$listen" \
    --check-interval "$interval" --log-level "$level" </dev/null >>"$dir/agent.log" 2>&1 &
pid=$!
echo "$pid" > "$dir/agent.pid"

probe=$host
[ "$probe" = 0.0.0.0 ] && probe=127.0.0.1
for _ in $(seq 1 50); do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "start-agent.sh: the agent exited; its log:" >&2
        tail -n 20 "$dir/agent.log" >&2
        exit 1
    fi
    # The secret goes through a header file, never the command line (ps shows argv).
    if in_ns curl -sf -o /dev/null --cacert "$dir/cert.pem" -H @<(printf 'Authorization: Bearer %s\n' "$(cat "$dir/secret")") \
        --connect-to "localhost:$port:$probe:$port" "https://localhost:$port/v1/health"; then
        exit 0
    fi
    sleep 0.2
done
echo "start-agent.sh: the agent does not answer on $listen; its log:" >&2
tail -n 20 "$dir/agent.log" >&2
exit 1
