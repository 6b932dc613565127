"""Soak: the functional matrix run N times, host resources checked around every run, and the
verdicts of every case compared across runs (a case whose verdict changes is a flaky case)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.results import RunResult
from harness.run import RunError, run_suites
from harness.topology.labels import new_run_id
from harness.topology.resources import Growth, Resource, Snapshot, Snapshotter, growth

SOAK_FILE = "soak.json"
SETTLE_SECONDS = 5.0
"""How long a run's leftovers may take to go away (processes exiting, namespaces going)."""
_SETTLE_POLL = 0.2
MISSING = "-"
"""The verdict shown for a case that a run did not have."""


@dataclasses.dataclass
class SoakRun:
    """One run of the matrix within a soak.

    Attributes:
        number: From 1.
        report_dir: Where its results.json and reports went.
        seconds: Wall time of the run (reports included).
        run_id: The run id the soak gave the run (its results.json's, if it completed).
        counts: Cases per verdict.
        verdicts: Verdict per case ("suite::case_id").
        leaked: Resources of ours that appeared during this run and stayed.
        foreign: Resources of others that appeared meanwhile (not counted as leaks).
        error: Why the run did not complete, if it did not.
    """

    number: int
    report_dir: Path
    seconds: float = 0.0
    run_id: str = ""
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    verdicts: dict[str, str] = dataclasses.field(default_factory=dict)
    leaked: tuple[Resource, ...] = ()
    foreign: tuple[Resource, ...] = ()
    error: str = ""

    def line(self, total: int) -> str:
        """The run's one line: verdict counts, seconds, leaks."""
        counts = ", ".join(f"{n} {verdict}" for verdict, n in self.counts.items() if n)
        outcome = f"did not complete ({self.error})" if self.error else counts or "no cases"
        others = f" ({len(self.foreign)} new object(s) of others ignored)" if self.foreign else ""
        seconds, leaks = f"{self.seconds:.1f} s", len(self.leaked)
        return f"run {self.number}/{total}: {outcome} in {seconds}; leaks: {leaks}{others}"

    def as_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "number": self.number,
            "report_dir": str(self.report_dir),
            "seconds": round(self.seconds, 3),
            "run_id": self.run_id,
            "counts": self.counts,
            "verdicts": self.verdicts,
            "leaked": [r.as_json() for r in self.leaked],
            "foreign": [r.as_json() for r in self.foreign],
            "error": self.error,
        }


@dataclasses.dataclass
class SoakResult:
    """A whole soak: its runs, what stayed behind, and the cases whose verdict changed.

    Attributes:
        runs: Every run, in order.
        baseline: The snapshot before the first run.
        final: The snapshot after the last run.
        leaked: Resources of ours in `final` that were not in `baseline`.
        differing: Verdict per run (MISSING where a run lacks it) of every case whose
            verdict was not the same in all runs.
    """

    runs: list[SoakRun]
    baseline: Snapshot
    final: Snapshot
    leaked: tuple[Resource, ...]
    differing: dict[str, list[str]]

    @property
    def total_leaks(self) -> int:
        """Leaks seen by any run, or still there at the end (each counted once)."""
        return len({*self.leaked, *(r for run in self.runs for r in run.leaked)})

    def exit_code(self) -> int:
        """0: no leak, every run completed, identical verdicts; 1 otherwise."""
        failed = any(run.error for run in self.runs)
        return 1 if self.total_leaks or self.differing or failed else 0

    def summary(self) -> list[str]:
        """The closing lines: leaks, differing verdicts, notes."""
        seconds = sum(run.seconds for run in self.runs)
        lines = [
            f"{len(self.runs)} run(s) in {seconds:.1f} s: {self.total_leaks} leak(s), "
            f"{len(self.differing)} case(s) with differing verdicts"
        ]
        for resource in sorted({*self.leaked, *(r for run in self.runs for r in run.leaked)}):
            lines.append(f"leaked: {resource}")
        for case, verdicts in self.differing.items():
            lines.append(f"differs: {case}: {' / '.join(verdicts)}")
        lines += [f"note: {note}" for note in dict.fromkeys(self.baseline.notes + self.final.notes)]
        return lines

    def as_json(self) -> dict[str, Any]:
        """The soak.json content."""
        return {
            "runs": [run.as_json() for run in self.runs],
            "baseline": self.baseline.counts(),
            "final": self.final.counts(),
            "leaked": [r.as_json() for r in self.leaked],
            "total_leaks": self.total_leaks,
            "differing": self.differing,
            "notes": list(dict.fromkeys(self.baseline.notes + self.final.notes)),
            "exit_code": self.exit_code(),
        }


def case_verdicts(run: RunResult) -> dict[str, str]:
    """Verdict of every case of a run, keyed "suite::case_id" (the case id names the pair)."""
    return {f"{case.suite}::{case.case_id}": case.verdict.value for case in run.cases}


def differing_verdicts(runs: Sequence[dict[str, str]]) -> dict[str, list[str]]:
    """Cases whose verdict is not the same in every run, with their verdict per run.

    Args:
        runs: Verdict per case of each run (`case_verdicts`).
    """
    cases = dict.fromkeys(case for verdicts in runs for case in verdicts)
    table = {case: [verdicts.get(case, MISSING) for verdicts in runs] for case in cases}
    return {case: seen for case, seen in table.items() if len(set(seen)) > 1}


class _Silent:
    """A listener of no scenario hook: silences pytest's terminal (a soak prints its lines)."""


def settled_growth(
    snapshotter: Snapshotter,
    before: Snapshot,
    run_ids: Sequence[str],
    settle: float = SETTLE_SECONDS,
) -> tuple[Snapshot, Growth]:
    """Snapshot until nothing of ours has grown since `before`, for at most `settle` seconds.

    Returns:
        The last snapshot and its growth over `before`.
    """
    deadline = time.monotonic() + settle
    while True:
        after = snapshotter.take()
        grown = growth(before, after, run_ids)
        if not grown.leaked or time.monotonic() >= deadline:
            return after, grown
        time.sleep(_SETTLE_POLL)


def soak(
    runs: int,
    suites: Sequence[str],
    peers: Sequence[str],
    report_dir: Path,
    *,
    runtime: str = "local",
    extra_pytest_args: Sequence[str] = (),
    snapshotter: Snapshotter | None = None,
    echo: Callable[[str], None] = print,
) -> SoakResult:
    """Run the suites `runs` times (as `memif-harness run` does) and check for leaks.

    Each run writes its reports to `report_dir/run-NN`; `report_dir/soak.json` gets the
    whole soak. Before the first run and after each run the host is snapshotted: what
    grew and is ours (this process, its descendants, objects labelled with the soak's run
    ids) is a leak.

    Args:
        runs: How many runs (at least 1).
        suites: Suite names; empty for all.
        peers: Peer kinds that take part.
        report_dir: Where everything goes.
        runtime: Where peers run ("local" or "docker").
        extra_pytest_args: More scenario plugin arguments (--pairs, --socket-group...).
        snapshotter: Takes the snapshots (default: this host).
        echo: Receives each run's line as soon as the run is over.

    Raises:
        ValueError: `runs` is less than 1.
    """
    if runs < 1:
        raise ValueError(f"--runs {runs}: at least one run")
    from harness.report import write

    snapshotter = snapshotter or Snapshotter()
    report_dir = Path(report_dir).resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    baseline = previous = snapshotter.take()
    done: list[SoakRun] = []
    run_ids: list[str] = []
    width = len(str(runs))
    for number in range(1, runs + 1):
        run = SoakRun(number, report_dir / f"run-{number:0{width}d}")
        run.run_id = new_run_id()  # known before the run: what a run that fails left is a leak
        run_ids.append(run.run_id)
        started = time.monotonic()
        try:
            outcome = run_suites(
                suites,
                peers,
                run.report_dir,
                runtime,
                (*extra_pytest_args, "--run-id", run.run_id),
                progress=_Silent(),
            )
            write.write_reports(outcome, run.report_dir)
            run.counts = outcome.counts()
            run.verdicts = case_verdicts(outcome)
        except RunError as exc:
            run.error = str(exc).splitlines()[0]
        run.seconds = time.monotonic() - started
        previous, grown = settled_growth(snapshotter, previous, run_ids)
        run.leaked, run.foreign = grown.leaked, grown.foreign
        done.append(run)
        echo(run.line(runs))
        for resource in run.leaked:
            echo(f"  leaked: {resource}")
    completed = [run.verdicts for run in done if not run.error]
    result = SoakResult(
        runs=done,
        baseline=baseline,
        final=previous,
        leaked=growth(baseline, previous, run_ids).leaked,
        differing=differing_verdicts(completed),
    )
    (report_dir / SOAK_FILE).write_text(json.dumps(result.as_json(), indent=2))
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `memif-harness soak` options (besides those it shares with `run`)."""
    parser.add_argument("--runs", type=int, required=True, help="how many runs of the matrix")
    parser.add_argument("--suite", help="suites, comma separated (default: all)")
    parser.add_argument("--peers", help="peer kinds, e.g. reference,testpmd (default)")
    parser.add_argument("--pairs", help="SERVER:CLIENT pairs, comma separated (default: all)")
    parser.add_argument(
        "--runtime", choices=["local", "docker"], default="local", help="where peers run"
    )
    parser.add_argument("--socket-group", help="group of the socket directories (mode 0750)")
    parser.add_argument("--report", default="reports/soak", help="report directory")


def command(args: argparse.Namespace, peers: Sequence[str]) -> int:
    """Run `memif-harness soak`: one line per run, a summary, soak.json; exit 1 on a leak,
    a run that did not complete, or a case whose verdict differs between runs."""
    suites = [s for s in (args.suite or "").split(",") if s]
    extra = ["--pairs", args.pairs] if args.pairs else []
    if args.socket_group:
        extra += ["--socket-group", args.socket_group]
    report_dir = Path(args.report)
    try:
        result = soak(
            args.runs,
            suites,
            peers,
            report_dir,
            runtime=args.runtime,
            extra_pytest_args=extra,
            echo=lambda line: print(line, flush=True),
        )
    except (ValueError, RunError) as exc:
        print(f"memif-harness soak: {exc}", file=sys.stderr)
        return 2
    print("\n".join(result.summary()))
    print(f"{SOAK_FILE}: {report_dir / SOAK_FILE}")
    return result.exit_code()
