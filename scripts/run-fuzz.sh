#!/usr/bin/env bash
# Runs each libFuzzer target (tests/fuzz/fuzz_<target>.c) for a bounded time:
#   scripts/run-fuzz.sh [SECONDS_PER_TARGET]   (default 60)
# Builds them in build-fuzz (clang, ASan+UBSan, the whole project instrumented for coverage),
# fuzzes each one on a temporary copy of tests/fuzz/corpus/<target>/ (new inputs stay out of the
# repo), and prints "fuzz <target>: N runs, 0 crashes" per target. On a crash, leak, timeout or
# out-of-memory it prints the reproducer's path (kept under build-fuzz/fuzz-artifacts/<target>/,
# replay it with build-fuzz/tests/fuzz/fuzz_<target> FILE) and the end of the log, and exits 1.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
repo=$(pwd)
secs=${1:-60}
if ! [[ $secs =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi
dir=build-fuzz

if [ ! -f "$dir/build.ninja" ]; then
    CC=clang meson setup "$dir" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
        -Dc_args=-fsanitize=fuzzer-no-link >/dev/null || {
        echo "fuzz: meson setup $dir failed" >&2
        exit 1
    }
fi

targets=()
for src in tests/fuzz/fuzz_*.c; do
    t=$(basename "$src" .c)
    targets+=("${t#fuzz_}")
done
ninja -C "$dir" "${targets[@]/#/tests/fuzz/fuzz_}" || {
    echo "fuzz: build failed" >&2
    exit 1
}

tmp=$(mktemp -d /tmp/nimbus-fuzz.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

failed=0
for t in "${targets[@]}"; do
    exe=$dir/tests/fuzz/fuzz_$t
    art=$repo/$dir/fuzz-artifacts/$t
    log=$repo/$dir/fuzz-logs/$t.log
    mkdir -p "$tmp/$t" "$art" "$(dirname "$log")"
    rm -f "$art"/*
    cp -r "tests/fuzz/corpus/$t/." "$tmp/$t/"
    dict=()
    [ -f "tests/fuzz/$t.dict" ] && dict=("-dict=tests/fuzz/$t.dict")
    "$exe" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$art/" "${dict[@]}" "$tmp/$t" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(grep -oE 'exec/s: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2)
    found=$(find "$art" -type f | sort)
    if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
        failed=1
        echo "fuzz $t: ${runs:-?} runs, 1 crash (exit $rc)"
        [ -n "$found" ] && while IFS= read -r f; do echo "fuzz $t: crashing input: $f"; done <<<"$found"
        echo "fuzz $t: log: $log"
        # The report from its first line (the top of the stack is what matters).
        first=$(grep -nE 'invariant broken|==[0-9]+==ERROR|runtime error:|ERROR: libFuzzer' "$log" |
            head -n 1 | cut -d: -f1)
        if [ -n "$first" ]; then
            tail -n +"$first" "$log" | head -n 50
        else
            tail -n 50 "$log"
        fi
    else
        echo "  ($t: ${rate:-?} exec/s, corpus $(find "tests/fuzz/corpus/$t" -type f | wc -l)" \
            "-> $(find "$tmp/$t" -type f | wc -l) inputs, log $log)"
        echo "fuzz $t: ${runs:-0} runs, 0 crashes"
    fi
done
exit "$failed"
