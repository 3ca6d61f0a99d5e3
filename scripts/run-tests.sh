#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian 12 machine (as root): installs packages, builds
# with gcc (-Werror), runs the unit tests, starts libvirtd, builds the test guest image and runs
# the end-to-end tests against real TCG guests, under ASan+UBSan (built with clang) but for the
# crash tests. Ends with one "N passed, N failed" line; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

passed=0
failed=0
failures=()
run() { # name, command...
    local name=$1
    shift
    echo "=== $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
    fi
}

scripts/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }
# The web console's npm packages: the browser tests' puppeteer-core (no browser download: they
# drive Debian's chromium), and the check that the committed web/vendor is what the lock gives.
run "browser test packages (npm ci)" bash -c \
    'cd tests/web && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error'
run "web/vendor matches web/package-lock.json" scripts/web-vendor.sh --check

build() { # compiler, dir, meson args...
    local cc=$1 dir=$2
    shift 2
    [ -f "$dir/build.ninja" ] || CC=$cc meson setup "$dir" "$@" >/dev/null || return 1
    ninja -C "$dir"
}

run "build (gcc, -Werror)" build gcc build
run "build (gcc, -Werror, release: what scripts/aio.sh builds)" build gcc build-release \
    --buildtype=release -Dtests=false
run "build (clang, -Werror, ASan+UBSan)" build clang build-asan \
    -Db_sanitize=address,undefined -Db_lundef=false
run "clang-format" bash -c 'clang-format --dry-run -Werror $(git ls-files "src/*.c" "src/*.h" "tests/*.c" "bench/*.c")'
run "no banned calls" bash -c '! grep -nE "\b(strcpy|strcat|sprintf|vsprintf|strtok|atoi|gets|system|popen)\s*\(" $(git ls-files "src/*.c" "src/*.h")'
run "layer rule" scripts/check-layers.sh build
run "layer rule catches a slip" scripts/check-layers.sh --self-test build
# The Debian packages: built, lintian, installed into a fresh Debian 12 root, checked, purged
# (3 to 4.5 minutes here, measured). NIMBUS_TEST_PACKAGES=0 skips it.
[ "${NIMBUS_TEST_PACKAGES:-1}" = 0 ] || run "Debian packages" scripts/test-packages.sh

run "libvirtd" scripts/start-libvirt.sh
# On a machine given over to the tests (CI sets it), what an interrupted earlier run left in
# libvirt and the kernel goes first: a stale network's bridge keeps its addresses and the next
# run's network with the same range fails to start.
[ "${NIMBUS_CLEAN_STALE:-0}" = 1 ] && run "stale test state removed" scripts/clean-stale-test-state.sh
run "test image" scripts/build-test-image.sh
# The storage tests' backends: a single-node Ceph (memstore) and a tgtd iSCSI target on
# 127.0.0.1, started once for both e2e runs (the tests would start them too, only later).
run "ceph test cluster" scripts/test-ceph.sh start
run "iscsi test target" scripts/test-iscsi.sh start

export NIMBUS_TEST_LIBVIRT_URI=qemu:///system
run "unit tests (gcc)" meson test -C build --print-errorlogs
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run "unit tests (ASan+UBSan)" meson test -C build-asan --print-errorlogs

# libFuzzer on the JSON decoders, the router and the image header probe; the corpora also run
# as unit tests above. Bounded: 30 s per target.
run "fuzzing (30 s per target)" scripts/run-fuzz.sh 30

# Each end-to-end test runs once, against the ASan+UBSan build, so that every request, task and
# event path of the suite also runs under the sanitizers; the crash tests SIGKILL the daemon on
# purpose, which tells a sanitizer nothing, and run against the gcc build. (Both builds through
# the whole suite took 80 minutes here; NIMBUS_E2E_BOTH=1 still does that.) The slowest tests are
# listed, to keep the run's time in view.
asan_e2e() {
    env NIMBUS_BUILD_DIR="$repo/build-asan" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
        /usr/bin/python3 -m pytest -q -p no:cacheprovider --durations=15 tests/e2e "$@"
}
if [ "${NIMBUS_E2E_BOTH:-0}" = 1 ]; then
    run "end-to-end (gcc build)" env NIMBUS_BUILD_DIR="$repo/build" \
        /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e
    run "end-to-end (ASan+UBSan build)" asan_e2e
else
    # The crash tests run beside the ASan run, which saves their 6 minutes: both mostly wait on
    # guests, and they share nothing: each test module has its own nimbusd, each daemon a
    # default-network range held by a lock file (tests/e2e/nimbus_fixtures.py), and the crash
    # tests their own set of namespace test hosts (NIMBUS_TESTHOSTS_SET=1).
    crash_log=$(mktemp /tmp/nimbus-crash-tests.XXXXXX)
    env NIMBUS_BUILD_DIR="$repo/build" NIMBUS_TESTHOSTS_SET=1 \
        /usr/bin/python3 -m pytest -q -p no:cacheprovider -k crash tests/e2e >"$crash_log" 2>&1 &
    crash_pid=$!
    run "end-to-end (ASan+UBSan build)" asan_e2e -k "not crash"
    crash_ok() {
        wait "$crash_pid"
        local rc=$?
        cat "$crash_log"
        rm -f "$crash_log"
        return $rc
    }
    run "end-to-end (gcc build: the crash tests, run beside the ASan run)" crash_ok
fi
run "ceph test cluster stopped" scripts/test-ceph.sh stop
run "iscsi test target stopped" scripts/test-iscsi.sh stop

echo
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
