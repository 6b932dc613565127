"""memif-harness command line: smoke job, host check, image builds and reaping of dead runs."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from harness import doctor, smoke
from harness.peers import testpmd


def _doctor(args: argparse.Namespace) -> int:
    """Report what this host offers; exit 1 if testpmd (needed for everything) is missing."""
    capabilities = doctor.check(args.vpp_bin, args.vpp_image)
    if args.json:
        print(json.dumps(doctor.as_json(capabilities), indent=2))
    else:
        print(doctor.render(capabilities))
    return 0 if capabilities[0].available else 1


def _smoke(args: argparse.Namespace) -> int:
    binary = args.testpmd or shutil.which("dpdk-testpmd")
    if binary is None:
        print("memif-harness: dpdk-testpmd not found (run ci/setup.sh)", file=sys.stderr)
        return 1
    print(
        f"reference vs DPDK {testpmd.version(binary)} (testpmd on CPU {smoke.TESTPMD_CPU}, "
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


def _images(args: argparse.Namespace) -> int:
    from harness.runtime import images

    return images.main(["--force"] if args.force else [])


def _reap(args: argparse.Namespace) -> int:
    from harness.topology import reap

    report = reap.reap(grace_seconds=args.grace, dry_run=args.dry_run)
    print(report.summary())
    return 1 if report.errors else 0


def _run(args: argparse.Namespace) -> int:
    """Run the conformance suites over every pair of peers; exit with the worst verdict."""
    from harness.report import write
    from harness.run import RunError, run_suites

    peers = [p for p in (args.peers or "").split(",") if p] or _default_peers(args.runtime)
    suites = [s for s in (args.suite or "").split(",") if s]
    report_dir = Path(args.report)
    try:
        with _progress_display(args.progress) as progress:
            run = run_suites(suites, peers, report_dir, runtime=args.runtime, progress=progress)
    except RunError as exc:
        print(f"memif-harness: the run did not complete: {exc}", file=sys.stderr)
        return 2
    written = write.write_reports(run, report_dir)
    counts = ", ".join(f"{n} {v}" for v, n in run.counts().items() if n)
    seconds = max(0.0, run.finished - run.started)
    print(f"{len(run.cases)} cases in {seconds:.1f} s: {counts or 'none'}")
    print("\n".join(f"{kind}: {path}" for kind, path in written.items()))
    return run.exit_code()


BENCH_DEFAULT_PAIRS = "testpmd:testpmd,testpmd:reference"
"""The pairs `bench` measures when --pairs is not given (server:client)."""


def bench_pytest_args(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The peer kinds and the throughput suite's pytest options for `bench` arguments.

    Raises:
        ValueError: a malformed --pairs item, or option values the suite refuses.
    """
    from harness.traffic import bench_point as bp

    pairs = [p.strip() for p in args.pairs.split(",") if p.strip()]
    kinds: list[str] = []
    for item in pairs:
        server, colon, client = item.partition(":")
        if not colon or not server or not client:
            raise ValueError(f"--pairs {item!r}: expected SERVER:CLIENT, e.g. testpmd:reference")
        kinds += [server, client]
    if not pairs:
        raise ValueError("--pairs: no pair given")
    cases = bp.parse_cases(args.case)  # refuse bad values before any peer starts
    bp.parse_directions(args.direction)
    bp.parse_frame_sizes(args.frame_size)
    point = bp.BenchPoint(cases[0], bp.BenchTopology(args.topology), bp.Direction.C2S, 64,
                          bp.BenchMode(args.mode), args.duration, args.trials)  # fmt: skip
    bp.check_repeats(args.repeats, "--repeats")
    from harness.traffic.bench import BENCH_CASE_MARGIN, point_budget

    extra = [
        "--pairs", ",".join(pairs),
        "--bench-case", args.case,
        "--bench-topology", args.topology,
        "--bench-direction", args.direction,
        "--bench-frame-size", args.frame_size,
        "--bench-mode", args.mode,
        "--bench-duration", str(args.duration),
        "--bench-trials", str(args.trials),
        "--bench-repeats", str(args.repeats),
        # Traffic loops bound themselves; this bounds a whole point (searches included).
        "--case-timeout", str(point_budget(point, args.repeats) + BENCH_CASE_MARGIN),
    ]  # fmt: skip
    return list(dict.fromkeys(kinds)), extra


def _bench(args: argparse.Namespace) -> int:
    """Measure the throughput points; exit with the worst verdict (ERROR 2, FAIL 1)."""
    from harness.report import write
    from harness.run import RunError, run_suites

    try:
        kinds, extra = bench_pytest_args(args)
    except ValueError as exc:
        print(f"memif-harness bench: {exc}", file=sys.stderr)
        return 2
    report_dir = Path(args.report)
    try:
        with _progress_display(args.progress) as progress:
            run = run_suites(
                ["throughput"], kinds, report_dir, progress=progress, extra_pytest_args=extra
            )
    except RunError as exc:
        print(f"memif-harness: the benchmark did not complete: {exc}", file=sys.stderr)
        return 2
    written = write.write_reports(run, report_dir)
    for m in run.measurements:
        figure = (
            f"{m['pps'] / 1e6:.3f} Mpps {m['gbps']:.2f} Gbps loss {m['loss']:.4%}"
            if m["verdict"] == "PASS"
            else f"{m['verdict']}: {m['reason']}"
        )
        print(
            f"{m['case']:>15} {m['topology']:>5} {m['server_peer']}:{m['client_peer']}"
            f" {m['direction']} {m['frame_size']:>5}B {m['mode']}: {figure}"
        )
    print("\n".join(f"{kind}: {path}" for kind, path in written.items()))
    return run.exit_code()


@contextlib.contextmanager
def _progress_display(enabled: bool) -> Iterator[object | None]:
    """The run's progress listener: a live display on a terminal, else a line per case.

    None when disabled (pytest's own output then shows the run).
    """
    if not enabled:
        yield None
        return
    from harness import progress

    if not sys.stdout.isatty():
        yield progress.LineProgress(sys.stdout)
        return
    sys.stdout.flush()
    # A duplicate of the terminal's descriptor: pytest redirects fd 1 while a case runs.
    with (
        os.fdopen(os.dup(sys.stdout.fileno()), "w") as terminal,
        progress.RichProgress(terminal) as display,
    ):
        yield display


def _default_peers(runtime: str = "local") -> list[str]:
    """The embedded default matrix: the reference, plus testpmd when it is installed (in
    the docker runtime always: its cases skip naming DOCKER when no image can run)."""
    if runtime == "docker" or shutil.which("dpdk-testpmd"):
        return ["reference", "testpmd"]
    return ["reference"]


def _soak(args: argparse.Namespace) -> int:
    """Run the matrix --runs times; exit 1 on a leak or a verdict that differs between runs."""
    from harness import soak

    peers = [p for p in (args.peers or "").split(",") if p] or _default_peers(args.runtime)
    return soak.command(args, peers)


def _report(args: argparse.Namespace) -> int:
    from harness.report import write

    try:
        out = write.rerender(Path(args.results), Path(args.out) if args.out else None)
    except (OSError, ValueError) as exc:
        print(f"memif-harness: cannot render {args.results}: {exc}", file=sys.stderr)
        return 1
    print("\n".join(f"{kind}: {path}" for kind, path in out.items()))
    return 0


def _diff(args: argparse.Namespace) -> int:
    from harness.report import diff
    from harness.results import RunResult

    try:
        before, after = RunResult.read(Path(args.a)), RunResult.read(Path(args.b))
    except (OSError, ValueError, KeyError) as exc:
        print(f"memif-harness: cannot read results: {exc}", file=sys.stderr)
        return 1
    if not 0.0 <= args.threshold < 100.0:
        print(
            f"memif-harness: --threshold {args.threshold}: a percentage in [0, 100)",
            file=sys.stderr,
        )
        return 2
    try:
        throughput = diff.diff_measurements(before, after, args.threshold / 100.0)
    except ValueError as exc:
        print(f"memif-harness: cannot compare measurements: {exc}", file=sys.stderr)
        return 1
    changes = diff.diff_runs(before, after)
    if before.cases or after.cases or not throughput:
        print(diff.render_diff(changes, before, after))
    if throughput:
        print(diff.render_throughput_diff(throughput, args.threshold / 100.0))
    worse = any(change.worse for change in changes)
    regressed = any(change.worse or change.dropped for change in throughput)
    return 1 if worse or regressed else 0


def build_parser() -> argparse.ArgumentParser:
    """The memif-harness argument parser."""
    parser = argparse.ArgumentParser(prog="memif-harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    smoke_parser = sub.add_parser("smoke", help="reference vs real testpmd, both roles")
    smoke_parser.add_argument("--testpmd", help="dpdk-testpmd binary (default: on PATH)")
    smoke_parser.add_argument("--json", help="also write the outcomes to this file")
    smoke_parser.set_defaults(handler=_smoke)
    doctor_parser = sub.add_parser("doctor", help="what this host and each peer can do")
    doctor_parser.add_argument("--json", action="store_true")
    doctor_parser.add_argument("--vpp-bin", help="a vpp binary to use")
    doctor_parser.add_argument("--vpp-image", help="a container image with VPP")
    doctor_parser.set_defaults(handler=_doctor)
    images_parser = sub.add_parser("images", help="container images built from Debian packages")
    images_sub = images_parser.add_subparsers(dest="images_command", required=True)
    build = images_sub.add_parser("build", help="build (or reuse, by recipe hash) the images")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    build.set_defaults(handler=_images)
    reap_parser = sub.add_parser("reap", help="remove leftovers of dead runs")
    reap_parser.add_argument("--dry-run", action="store_true", help="only list what would go")
    reap_parser.add_argument(
        "--grace", type=float, default=600.0, help="age (s) before unregistered objects go"
    )
    reap_parser.set_defaults(handler=_reap)
    run_parser = sub.add_parser("run", help="conformance suites over every pair of peers")
    run_parser.add_argument("--suite", help="suites, comma separated (default: all)")
    run_parser.add_argument("--peers", help="peer kinds, e.g. reference,testpmd (default)")
    run_parser.add_argument(
        "--runtime",
        choices=["local", "docker"],
        default="local",
        help="where peers run: local processes, or docker (testpmd in containers of the "
        "images `images build` made; the reference stays a local process)",
    )
    run_parser.add_argument("--report", default="reports/latest", help="report directory")
    run_parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress display (live on a terminal, a line per case otherwise): "
        "pytest's own output instead",
    )
    run_parser.set_defaults(handler=_run)
    bench_parser = sub.add_parser(
        "bench", help="throughput: the four NUMA x zero-copy cases, MRR or NDR/PDR"
    )
    bench_parser.add_argument(
        "--case",
        default="same-node-zc,same-node-copy,cross-node-zc,cross-node-copy",
        help="cases, comma separated (default: all four)",
    )
    bench_parser.add_argument("--topology", choices=["memif", "nic"], default="memif")
    bench_parser.add_argument(
        "--pairs", default=BENCH_DEFAULT_PAIRS, help="SERVER:CLIENT peer pairs, comma separated"
    )
    bench_parser.add_argument("--direction", default="c2s", help="c2s, s2c or both")
    bench_parser.add_argument("--frame-size", default="64,1024,1518", help="bytes, comma separated")
    bench_parser.add_argument("--mode", choices=["mrr", "ndrpdr"], default="mrr")
    bench_parser.add_argument(
        "--duration", type=float, default=1.0, help="seconds per trial (CSIT: 1)"
    )
    bench_parser.add_argument("--trials", type=int, default=3, help="MRR trials per point")
    bench_parser.add_argument(
        "--repeats", type=int, default=1, help="NDR/PDR searches per point (median reported)"
    )
    bench_parser.add_argument("--report", default="reports/bench", help="report directory")
    bench_parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="pytest's own output"
    )
    bench_parser.set_defaults(handler=_bench)
    soak_parser = sub.add_parser("soak", help="the matrix N times: leaks and flaky verdicts")
    from harness import soak

    soak.add_arguments(soak_parser)
    soak_parser.set_defaults(handler=_soak)
    report_parser = sub.add_parser("report", help="re-render reports from a results.json")
    report_parser.add_argument("results", help="path of results.json")
    report_parser.add_argument("--out", help="directory (default: beside results.json)")
    report_parser.set_defaults(handler=_report)
    diff_parser = sub.add_parser(
        "diff",
        help="verdict and throughput changes between two runs "
        "(exit 1 when a verdict got worse or a rate dropped beyond --threshold)",
    )
    diff_parser.add_argument("a", help="the earlier results.json")
    diff_parser.add_argument("b", help="the later results.json")
    diff_parser.add_argument(
        "--threshold",
        type=float,
        default=10.0,
        metavar="PERCENT",
        help="flag a throughput drop of more than this many percent (default 10)",
    )
    diff_parser.set_defaults(handler=_diff)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `memif-harness`."""
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
