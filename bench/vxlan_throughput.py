#!/usr/bin/python3
"""Throughput between two guests of a vxlan network, across two hosts against on one bridge.

    bench/vxlan_throughput.py [--mib 48] [--rounds 5] [--build DIR]

It runs tests/e2e/bench_vxlan_throughput.py (a pytest module the suite never collects) with its
own set of namespace test hosts (scripts/testhosts.sh, NIMBUS_TESTHOSTS_SET=5, each with its
nimbus-agent), one nimbusd, a source guest and a client guest, TCG; everything is torn down at
the end. It prints figures only. See docs/benchmarks.md.
"""

import argparse
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=48, help="MiB per pull (default 48)")
    ap.add_argument("--rounds", type=int, default=5, help="pulls each way (default 5)")
    ap.add_argument("--build", default=os.path.join(REPO, "build"), help="the build dir")
    a = ap.parse_args()
    if a.mib < 1 or a.rounds < 1:
        ap.error("--mib and --rounds must be at least 1")
    env = dict(os.environ, NIMBUS_BUILD_DIR=os.path.abspath(a.build), NIMBUS_TESTHOSTS_SET="5",
               BENCH_MIB=str(a.mib), BENCH_ROUNDS=str(a.rounds))
    return subprocess.call([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                            os.path.join(REPO, "tests", "e2e", "bench_vxlan_throughput.py")],
                           env=env, cwd=REPO)


if __name__ == "__main__":
    sys.exit(main())
