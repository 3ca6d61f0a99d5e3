#!/bin/bash
# Copies the web console's third-party browser code from npm into web/vendor/.
#
#   scripts/web-vendor.sh [--check]
#
# The packages and their exact versions are pinned in web/package.json and web/package-lock.json
# (integrity hashes included); `npm ci --ignore-scripts` installs exactly those, no install
# scripts run. Only what the browser loads is copied, with the licences: xterm.js's bundle and
# stylesheet, noVNC's ES modules (core/ and its vendored pako).
#
# web/vendor/ is committed: the package build and the tests then need neither npm nor a network,
# and a dependency update shows up as a reviewable diff. --check (CI) fails when web/vendor/
# differs from what the lock file gives.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
web=$root/web
check=false
[ "${1:-}" = "--check" ] && check=true

cd "$web"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null

out=$web/vendor
$check && out=$(mktemp -d) && trap 'rm -rf "$out"' EXIT
rm -rf "$out/xterm" "$out/novnc"
mkdir -p "$out/xterm" "$out/novnc"

xterm=node_modules/@xterm/xterm
cp "$xterm/lib/xterm.js" "$xterm/css/xterm.css" "$xterm/LICENSE" "$out/xterm/"
# The bundle names its source map; it is not shipped.
sed -i '/^\/\/# sourceMappingURL=/d' "$out/xterm/xterm.js"
node -e 'console.log(require(process.argv[1]).version)' "$PWD/$xterm/package.json" >"$out/xterm/VERSION"

novnc=node_modules/@novnc/novnc
cp -r "$novnc/core" "$novnc/vendor" "$novnc/LICENSE.txt" "$out/novnc/"
rm -f "$out/novnc/vendor/pako/README.md"
node -e 'console.log(require(process.argv[1]).version)' "$PWD/$novnc/package.json" >"$out/novnc/VERSION"

if $check; then
    if ! diff -r "$out" "$web/vendor" >/dev/null; then
        echo "web-vendor: web/vendor differs from web/package-lock.json; run scripts/web-vendor.sh" >&2
        exit 1
    fi
    echo "web-vendor: web/vendor matches the lock file"
fi
