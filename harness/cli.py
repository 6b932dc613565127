"""memif-harness command line: the smoke job against real peers, and a host check."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from harness import smoke
from harness.peers import testpmd


def _doctor() -> int:
    """Report what this host offers the harness; exit 1 if testpmd is missing."""
    binary = shutil.which("dpdk-testpmd")
    print(f"dpdk-testpmd: {binary or 'MISSING (apt-get install dpdk-dev)'}")
    if binary:
        print(f"DPDK version: {testpmd.version(binary)}")
    mounts = testpmd.hugetlbfs_mounts()
    pages = Path("/proc/sys/vm/nr_hugepages").read_text().strip()
    print(f"hugepages: {pages} configured; hugetlbfs mounts: {[str(m) for m in mounts] or 'none'}")
    print(f"zero-copy capable (free hugepages): {testpmd.hugepages_available()}")
    return 0 if binary else 1


def _smoke(args: argparse.Namespace) -> int:
    binary = args.testpmd or shutil.which("dpdk-testpmd")
    if binary is None:
        print("memif-harness: dpdk-testpmd not found (run ci/setup.sh)", file=sys.stderr)
        return 1
    print(
        f"reference vs {testpmd.version(binary)} (testpmd on CPU {smoke.TESTPMD_CPU}, "
        f"memif-ref on CPU {smoke.REFERENCE_CPU})"
    )
    outcomes = smoke.run_smoke(binary)
    width = max(len(o.check) for o in outcomes)
    for outcome in outcomes:
        detail = f"  ({outcome.reason})" if outcome.reason else ""
        print(f"{outcome.verdict:5}  {outcome.check:{width}}  {outcome.seconds:6.2f}s{detail}")
    if args.json:
        Path(args.json).write_text(
            json.dumps([o.__dict__ for o in outcomes], indent=2, sort_keys=True)
        )
    passed = sum(o.verdict == "PASS" for o in outcomes)
    print(f"{passed} passed, {len(outcomes) - passed} failed")
    return 0 if passed == len(outcomes) else 1


def build_parser() -> argparse.ArgumentParser:
    """The memif-harness argument parser."""
    parser = argparse.ArgumentParser(prog="memif-harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    smoke_parser = sub.add_parser("smoke", help="reference vs real testpmd, both roles")
    smoke_parser.add_argument("--testpmd", help="dpdk-testpmd binary (default: on PATH)")
    smoke_parser.add_argument("--json", help="also write the outcomes to this file")
    sub.add_parser("doctor", help="what this host offers: testpmd, hugepages")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `memif-harness`."""
    args = build_parser().parse_args(argv)
    if args.command == "doctor":
        return _doctor()
    return _smoke(args)


if __name__ == "__main__":
    raise SystemExit(main())
