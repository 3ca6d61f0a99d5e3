#!/usr/bin/env bash
# The layer rule (docs/architecture.md "Layers"), checked on what was built: every symbol a
# layer's objects reference must be defined by that layer or by one it may use.
#
#   util < model < store < hv < core < api < daemon;  cli: util + model
#
# The API may also call the store's read-only queries, the functions declared in
# src/store/store_query.h; its writes go through core. Outside libraries belong to one layer
# each: SQLite to the store, libvirt to hv, libmicrohttpd to the API's HTTP library (and to
# nimbus-agent, a program of its own), libcurl to the CLI and to hv's client of the agent,
# netlink (libnl) to the agent.
#
# Usage: scripts/check-layers.sh [BUILDDIR]              (default: build)
#        scripts/check-layers.sh --self-test [BUILDDIR]
# Prints each offending reference as "file: symbol (defined in layer X)" and exits 1 on any.
# The self-test links deliberate slips into a temporary copy of the API library and of the CLI's
# objects (a store write, an hv call, a SQLite call) and fails unless the check catches each.
set -euo pipefail
cd "$(dirname "$0")/.."

self_test=0
if [ "${1:-}" = "--self-test" ]; then
    self_test=1
    shift
fi
build=${1:-build}
[ -d "$build" ] || { echo "check-layers: no build directory $build" >&2; exit 2; }

# unit | source folder | what it may use besides itself (comma-separated) | its archive or objects
units=(
    "util|src/util||src/util/libnb_util.a"
    "model|src/model|util|src/model/libnb_model.a"
    "store|src/store|model,util|src/store/libnb_store.a"
    "hv_xml|src/hv|model,util|src/hv/libnb_hv_xml.a"
    "agent_client|src/hv|util|src/hv/libnb_agent_client.a"
    "hv|src/hv|hv_xml,agent_client,model,util|src/hv/libnb_hv.a"
    "core_pure|src/core|model,util|src/core/libnb_core_pure.a"
    "core|src/core|core_pure,store,hv,hv_xml,agent_client,model,util|src/core/libnb_core.a"
    "api_http|src/api|model,util|src/api/libnb_api_http.a"
    "api|src/api|api_http,core,core_pure,model,util,store_query|src/api/libnb_api.a"
    "daemon|src/daemon|*|src/daemon/nimbusd.p/*.o"
    "cli|src/cli|model,util|src/cli/nimbus.p/*.o"
    "agent_model|src/agent|model,util|src/agent/libnb_agent_model.a"
    "agent|src/agent|agent_model,model,util|src/agent/nimbus-agent.p/*.o"
)
# Outside libraries: symbol pattern and the only units that may use it (comma-separated).
externals=(
    "^sqlite3_|store"
    "^vir[A-Z]|hv"
    "^MHD_|api_http,agent"
    "^curl_|cli,agent_client"
    "^rtnl_|agent"
    "^nl_|agent"
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The store_query allowance: every function store_query.h declares, as the compiler sees it.
query_functions() {
    local aux=$tmp/aux.txt
    echo '#include "store/store_query.h"' >"$tmp/q.c"
    # shellcheck disable=SC2046
    gcc -std=gnu11 -D_GNU_SOURCE -Isrc $(pkg-config --cflags jansson sqlite3 2>/dev/null) \
        -aux-info "$aux" -fsyntax-only "$tmp/q.c"
    grep -F 'src/store/store_query.h:' "$aux" |
        sed -E 's|^/\*[^*]*\*/ *||; s/ *\(.*$//; s/.*[ *]//' | sort -u
}

# check INPUTS_FILE: lines "unit|folder|allowed|file"; prints offences, returns 1 on any.
check() {
    local inputs=$1 defs=$tmp/defs.txt undefs=$tmp/undefs.txt
    : >"$defs"
    : >"$undefs"
    while IFS='|' read -r unit folder allowed file; do
        [ -e "$file" ] || { echo "check-layers: $file is missing (build first)" >&2; return 2; }
        nm -A -P -g --defined-only "$file" 2>/dev/null |
            awk -v u="$unit" '$3 !~ /^[Uw]$/ { print u, $2 }' >>"$defs"
        nm -A -P -u "$file" 2>/dev/null |
            awk -v u="$unit" -v d="$folder" -v a="$allowed" '{
                obj = $1; sub(/:$/, "", obj)
                if (match(obj, /\[[^]]*\]$/)) obj = substr(obj, RSTART + 1, RLENGTH - 2)
                n = split(obj, parts, "/"); obj = parts[n]; sub(/\.o$/, "", obj)
                print u, d "/" obj, $2, (a == "" ? "-" : a) }' >>"$undefs"
    done <"$inputs"
    query_functions >"$tmp/query.txt"
    awk -v ext="$(printf '%s\n' "${externals[@]}")" '
        BEGIN { n = split(ext, e, "\n"); for (i = 1; i <= n; i++) { split(e[i], p, "|"); pat[i] = p[1]; who[i] = p[2] } }
        FILENAME == ARGV[1] { query[$1] = 1; next }
        FILENAME == ARGV[2] { if (!($2 in owner)) owner[$2] = $1; next }
        {
            unit = $1; file = $2; sym = $3; allowed = "," $4 ","
            if (sym in owner) {
                o = owner[sym]
                if (o == unit || index(allowed, ",*,") || index(allowed, "," o ",")) next
                if (o == "store" && index(allowed, ",store_query,") && (sym in query)) next
                printf "%s: %s (%s may not use %s%s)\n", file, sym, unit, o,
                       o == "store" && index(allowed, ",store_query,") ? \
                       ": not a read-only query of src/store/store_query.h" : ""
                bad = 1
                next
            }
            for (i = 1; i <= n; i++)
                if (sym ~ pat[i] && !index(allowed, ",*,") && !index("," who[i] ",", "," unit ",")) {
                    printf "%s: %s (only %s may use this library)\n", file, sym, who[i]
                    bad = 1
                }
        }
        END {
            for (q in query)
                if (owner[q] != "store") {
                    printf "src/store/store_query.h: %s is not a function of the store\n", q
                    bad = 1
                }
            exit bad
        }' "$tmp/query.txt" "$defs" "$undefs"
}

inputs=$tmp/inputs.txt
: >"$inputs"
for u in "${units[@]}"; do
    IFS='|' read -r unit folder allowed pattern <<<"$u"
    for f in $build/$pattern; do
        echo "$unit|$folder|$allowed|$f" >>"$inputs"
    done
done

if [ "$self_test" = 0 ]; then
    if check "$inputs"; then
        echo "layer rule: ok ($(wc -l <"$inputs") archives and objects)"
        exit 0
    fi
    echo "layer rule: FAILED (see docs/architecture.md \"Layers\")" >&2
    exit 1
fi

# ---- self-test ----
# A store function that is not a read-only query (e.g. flavor_store_insert), an hv function,
# and SQLite, called from a copy of the API library; a store function called from the CLI.
store_write=$(nm -P -g --defined-only "$build/src/store/libnb_store.a" | awk '$2 == "T" { print $1 }' |
    grep -vxF -f <(query_functions) | grep '_store_' | head -1)
hv_fn=$(nm -P -g --defined-only "$build/src/hv/libnb_hv.a" | awk '$2 == "T" { print $1 }' | head -1)
if [ -z "$store_write" ] || [ -z "$hv_fn" ]; then
    echo "self-test: no store or hv symbols found" >&2
    exit 2
fi
mkdir -p "$tmp/slip"
cat >"$tmp/slip/check_layers_slip.c" <<EOF
/* A deliberate layering slip: the API calling the store's writer, hv and SQLite directly. */
void $store_write(void);
void $hv_fn(void);
void sqlite3_exec(void);
void check_layers_slip(void);
void check_layers_slip(void) { $store_write(); $hv_fn(); sqlite3_exec(); }
EOF
cat >"$tmp/slip/cli_slip.c" <<EOF
void $store_write(void);
void cli_slip(void);
void cli_slip(void) { $store_write(); }
EOF
gcc -c -o "$tmp/slip/check_layers_slip.c.o" "$tmp/slip/check_layers_slip.c"
gcc -c -o "$tmp/slip/cli_slip.c.o" "$tmp/slip/cli_slip.c"
# shellcheck disable=SC2046
ar rcs "$tmp/slip/libnb_api.a" $(ar t "$build/src/api/libnb_api.a") "$tmp/slip/check_layers_slip.c.o"

echo "self-test: the tree as built must pass"
check "$inputs" || { echo "self-test: FAILED: the check fails on the tree as built" >&2; exit 1; }
slipped=$tmp/slipped.txt
sed "s#|$build/src/api/libnb_api.a\$#|$tmp/slip/libnb_api.a#" "$inputs" >"$slipped"
echo "cli|src/cli|model,util|$tmp/slip/cli_slip.c.o" >>"$slipped"
grep -q "$tmp/slip/libnb_api.a" "$slipped" || { echo "self-test: no API library to copy" >&2; exit 2; }
echo "self-test: with slips linked into a copy of the API library and the CLI, the check must fail"
set +e
out=$(check "$slipped")
rc=$?
set -e
echo "$out"
fail=0
[ "$rc" = 1 ] || { echo "self-test: FAILED: the check exited $rc on a slip" >&2; fail=1; }
for want in "src/api/check_layers_slip.c: $store_write " "src/api/check_layers_slip.c: $hv_fn " \
    "src/api/check_layers_slip.c: sqlite3_exec " "src/cli/cli_slip.c: $store_write "; do
    grep -qF "$want" <<<"$out" || { echo "self-test: FAILED: not reported: $want" >&2; fail=1; }
done
[ "$fail" = 0 ] && echo "self-test: ok (each slip reported)"
exit "$fail"
