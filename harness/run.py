"""Run conformance suites: pytest on the scenarios package with the scenario plugin."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from harness.results import RunResult

SCENARIOS_DIR = Path(__file__).resolve().parent.parent / "scenarios"
RESULTS_FILE = "results.json"


class RunError(RuntimeError):
    """The suites could not be run at all (no results.json was written)."""


def suite_path(suite: str) -> Path:
    """The module of a suite: "handshake" -> scenarios/test_handshake.py.

    Raises:
        RunError: there is no such suite.
    """
    path = SCENARIOS_DIR / f"test_{suite.removeprefix('test_').removesuffix('.py')}.py"
    if not path.is_file():
        known = sorted(p.stem.removeprefix("test_") for p in SCENARIOS_DIR.glob("test_*.py"))
        raise RunError(f"no suite {suite!r}; known suites: {', '.join(known)}")
    return path


def pytest_args(
    suites: Sequence[str],
    peers: Sequence[str],
    report_dir: Path,
    runtime: str = "local",
    extra: Sequence[str] = (),
) -> list[str]:
    """The pytest command line `run_suites` uses (all suites when `suites` is empty)."""
    paths = [str(suite_path(suite)) for suite in suites] or [str(SCENARIOS_DIR)]
    return [
        "-p",
        "scenarios.plugin",
        "-q",
        "--tb=short",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(SCENARIOS_DIR.parent),
        "--peers",
        ",".join(peers),
        "--report-dir",
        str(report_dir),
        "--runtime",
        runtime,
        *extra,
        *paths,
    ]


def run_suites(
    suites: Sequence[str],
    peers: Sequence[str],
    report_dir: Path,
    runtime: str = "local",
    extra_pytest_args: Sequence[str] = (),
) -> RunResult:
    """Run the suites over every (server, client) pair of `peers`, in this process.

    Args:
        suites: Suite names ("handshake", "secret"); empty for all of them.
        peers: Peer kinds that take part ("reference", "testpmd").
        report_dir: Where results.json and the artifacts go (created if missing).
        runtime: Where peers run ("local").
        extra_pytest_args: More pytest arguments (e.g. `-k`, `-x`).

    Returns:
        The RunResult the plugin wrote to `report_dir/results.json`.

    Raises:
        RunError: pytest ended without writing results.json (bad arguments, internal error).
    """
    report_dir = Path(report_dir).resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    results = report_dir / RESULTS_FILE
    results.unlink(missing_ok=True)
    args = pytest_args(suites, peers, report_dir, runtime, extra_pytest_args)
    exit_code = pytest.main(args)
    if not results.is_file():
        raise RunError(
            f"pytest exited with {exit_code!s} and wrote no {results}: pytest {' '.join(args)}"
        )
    return RunResult.read(results)
