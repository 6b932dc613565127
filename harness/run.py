"""Run conformance suites: pytest on the scenarios package with the scenario plugin."""

from __future__ import annotations

from collections.abc import Generator, Sequence
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


BENCH_SUITES = ("throughput",)
"""Suites that measure rather than judge conformance: only run when asked for by name
(`memif-harness bench`, or `run --suite throughput`)."""


def functional_suites() -> list[str]:
    """Every conformance suite (the default of `run`), without the benchmark suites."""
    names = sorted(p.stem.removeprefix("test_") for p in SCENARIOS_DIR.glob("test_*.py"))
    return [name for name in names if name not in BENCH_SUITES]


QUIET_ARGS = ("-qq", "--tb=no", "-rN")
"""pytest options of a run with a progress display: no header, tracebacks or summary."""


def pytest_args(
    suites: Sequence[str],
    peers: Sequence[str],
    report_dir: Path,
    runtime: str = "local",
    extra: Sequence[str] = (),
    *,
    quiet: bool = False,
) -> list[str]:
    """The pytest command line `run_suites` uses (all functional suites when `suites` is
    empty).

    `quiet` (a progress display shows the cases) silences pytest's own terminal output.
    """
    paths = [str(suite_path(suite)) for suite in suites or functional_suites()]
    return [
        "-p",
        "scenarios.plugin",
        *(QUIET_ARGS if quiet else ("-q", "--tb=short")),
        "-p",
        "no:cacheprovider",
        # scenarios.plugin is imported already when the harness runs pytest in-process
        # a second time (tests, `memif-harness run` after a probe): nothing to rewrite.
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
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


class _NoTestStatus:
    """Keeps pytest's terminal from printing a letter or word per test (the progress display
    shows the cases); pytest still counts the outcomes."""

    @pytest.hookimpl(wrapper=True)
    def pytest_report_teststatus(
        self, report: pytest.TestReport
    ) -> Generator[None, tuple[str, str, str], tuple[str, str, str]]:
        category, _letter, _word = yield
        return category, "", ""


def run_suites(
    suites: Sequence[str],
    peers: Sequence[str],
    report_dir: Path,
    runtime: str = "local",
    extra_pytest_args: Sequence[str] = (),
    progress: object | None = None,
) -> RunResult:
    """Run the suites over every (server, client) pair of `peers`, in this process.

    Args:
        suites: Suite names ("handshake", "secret"); empty for all of them.
        peers: Peer kinds that take part ("reference", "testpmd").
        report_dir: Where results.json and the artifacts go (created if missing).
        runtime: Where peers run: "local", or "docker" (testpmd in containers).
        extra_pytest_args: More pytest arguments (e.g. `-k`, `-x`).
        progress: A listener of the scenario plugin's hooks (scenarios.hookspecs, e.g. a
            harness.progress display); pytest's own terminal output is then silenced.

    Returns:
        The RunResult the plugin wrote to `report_dir/results.json`.

    Raises:
        RunError: pytest ended without writing results.json (bad arguments, internal error).
    """
    report_dir = Path(report_dir).resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    results = report_dir / RESULTS_FILE
    results.unlink(missing_ok=True)
    quiet = progress is not None
    args = pytest_args(suites, peers, report_dir, runtime, extra_pytest_args, quiet=quiet)
    plugins = [progress, _NoTestStatus()] if progress is not None else []
    exit_code = pytest.main(args, plugins=plugins)
    if not results.is_file():
        raise RunError(
            f"pytest exited with {exit_code!s} and wrote no {results}: pytest {' '.join(args)}"
        )
    return RunResult.read(results)
