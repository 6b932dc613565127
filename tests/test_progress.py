"""Progress of `memif-harness run`: the plugin's listener hooks and the displays, through
`run_suites` on throwaway scenarios (no peer is started)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness import run as harness_run
from harness.progress import LineProgress, RichProgress, case_line
from harness.results import CaseResult, RunResult, Verdict

if TYPE_CHECKING:
    from scenarios.plugin import CaseStarted

# Each run_suites call is a pytest session in this process: the plugin module is imported
# once, and the throwaway modules (same name, other directories) by path.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Module already imported so cannot be rewritten:pytest.PytestAssertRewriteWarning"
)

DOC = '''"""{summary}

    Steps:
        1. Do the thing.
    Verify:
        - It went as expected.
    """'''

SCENARIOS = f"""
import pytest

from scenarios.api import Role, known_deviation, verify


def test_passes():
    {DOC.format(summary="Passes.")}
    verify(True, "answer", expected=42, observed=42)


def test_fails():
    {DOC.format(summary="A check that does not hold.")}
    verify(False, "link", expected="up", observed="down")


def test_errors():
    {DOC.format(summary="A harness bug.")}
    raise RuntimeError("the harness broke")


def test_skips():
    {DOC.format(summary="Skips itself.")}
    pytest.skip("no reason to run")


@known_deviation("reference", Role.SERVER, "fact sheet: a cited deviation")
def test_deviates():
    {DOC.format(summary="A known deviation that shows.")}
    verify(False, "reason", expected="a", observed="b")
"""

PAIR = "reference-server--reference-client"
LINE = re.compile(
    r"^\[(?P<done>[ \d]+)/(?P<total>\d+)\] (?P<verdict>PASS |FAIL |ERROR|SKIP |XFAIL) "
    r"(?P<suite>\S+)  (?P<case>\S+)  \d+\.\d s(  \((?P<reason>.+)\))?$"
)


class Recorder:
    """A listener that keeps every call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def pytest_memif_collected(self, total: int) -> None:
        self.calls.append(("collected", total))

    def pytest_memif_case_started(self, case: CaseStarted) -> None:
        self.calls.append(("started", case))

    def pytest_memif_case_finished(self, case: CaseResult, done: int, total: int) -> None:
        self.calls.append(("finished", (case, done, total)))


class Broken:
    """A listener whose display fails on every case."""

    def pytest_memif_case_finished(self, case: CaseResult, done: int, total: int) -> None:
        raise ValueError("the display broke")


@pytest.fixture
def scenarios_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throwaway scenarios directory that run_suites runs instead of the real suites.

    Its name is the test's own: modules imported by path are named after it, and a module
    name already imported in this process would be reused.
    """
    directory = tmp_path / f"scenarios_{tmp_path.name}"
    directory.mkdir()
    (directory / "test_progress_outcomes.py").write_text(SCENARIOS)
    monkeypatch.setattr(harness_run, "SCENARIOS_DIR", directory)
    return directory


def run(report_dir: Path, progress: object | None) -> RunResult:
    return harness_run.run_suites(
        ["progress_outcomes"],
        ["reference"],
        report_dir,
        extra_pytest_args=["--import-mode=importlib"],
        progress=progress,
    )


def _plain(case: CaseResult) -> Any:
    return json.loads(json.dumps(case.to_json()))


def test_line_progress_prints_one_line_per_case_with_the_plugins_verdicts(
    scenarios_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    stream = io.StringIO()
    result = run(tmp_path / "report", LineProgress(stream))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "5 cases to run"
    matches = [LINE.match(line) for line in lines[1:]]
    assert all(matches), lines
    parsed = [match.groupdict() for match in matches if match]
    assert [int(p["done"]) for p in parsed] == [1, 2, 3, 4, 5]
    assert {p["total"] for p in parsed} == {"5"}
    assert {p["suite"] for p in parsed} == {"progress_outcomes"}
    # The same verdicts, cases and order as results.json.
    assert [(p["verdict"].strip(), p["case"]) for p in parsed] == [
        (case.verdict.value, case.case_id) for case in result.cases
    ]
    verdicts = {p["case"].split("[")[0]: p["verdict"].strip() for p in parsed}
    assert verdicts == {
        "test_passes": "PASS",
        "test_fails": "FAIL",
        "test_errors": "ERROR",
        "test_skips": "SKIP",
        "test_deviates": "XFAIL",
    }
    reasons = {p["case"].split("[")[0]: p["reason"] for p in parsed}
    assert reasons["test_passes"] is None
    assert reasons["test_fails"] == "link: expected up, observed down"
    assert reasons["test_skips"] == "no reason to run"
    assert all(p["case"].endswith(f"[{PAIR}]") for p in parsed)
    # pytest's own terminal output is silenced while a progress display runs.
    assert capfd.readouterr().out.strip() == ""


def test_listener_gets_every_case_result_as_it_is_made(scenarios_dir: Path, tmp_path: Path) -> None:
    recorder = Recorder()
    result = run(tmp_path / "report", recorder)
    kinds = [kind for kind, _ in recorder.calls]
    assert kinds == ["collected"] + ["started", "finished"] * 5
    assert recorder.calls[0] == ("collected", 5)
    started = [value for kind, value in recorder.calls if kind == "started"]
    finished = [value for kind, value in recorder.calls if kind == "finished"]
    assert [(s.number, s.total) for s in started] == [(n, 5) for n in range(1, 6)]
    assert [(done, total) for _, done, total in finished] == [(n, 5) for n in range(1, 6)]
    for start, (case, _, _) in zip(started, finished, strict=True):
        assert (start.suite, start.scenario, start.case_id) == (
            case.suite,
            case.scenario,
            case.case_id,
        )
        assert (start.server_peer, start.client_peer) == ("reference", "reference")
    # Exactly the results that results.json holds, not a re-classification.
    assert [_plain(case) for case, _, _ in finished] == [_plain(c) for c in result.cases]


def test_collection_error_reaches_the_listener_as_a_case(
    scenarios_dir: Path, tmp_path: Path
) -> None:
    (scenarios_dir / "test_progress_outcomes.py").write_text("import nonexistent_module\n")
    recorder = Recorder()
    result = run(tmp_path / "report", recorder)
    finished = [value for kind, value in recorder.calls if kind == "finished"]
    assert len(finished) == 1
    case, done, total = finished[0]
    assert (case.scenario, case.verdict, done, total) == ("(collection)", Verdict.ERROR, 1, 1)
    assert [c.case_id for c in result.cases] == [case.case_id]


def test_a_failing_listener_does_not_stop_the_run(
    scenarios_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    result = run(tmp_path / "report", Broken())
    assert len(result.cases) == 5
    assert result.exit_code() == 2
    err = capfd.readouterr().err
    assert err.count("the display broke") == 1, err


def test_rich_progress_shows_counts_and_cases_that_did_not_pass(
    scenarios_dir: Path, tmp_path: Path
) -> None:
    stream = io.StringIO()
    with RichProgress(stream) as display:
        run(tmp_path / "report", display)
    text = stream.getvalue()
    assert "PASS 1" in text and "FAIL 1" in text and "XFAIL 1" in text
    assert f"test_errors[{PAIR}]" in text  # printed above the live display
    assert f"test_passes[{PAIR}]" not in text


def test_case_line_format() -> None:
    case = CaseResult(
        "handshake", "test_x", "test_x[reference-testpmd]", "reference", "testpmd",
        Verdict.PASS, duration=1.234,
    )  # fmt: skip
    assert case_line(case, 12, 104) == "[ 12/104] PASS  handshake  test_x[reference-testpmd]  1.2 s"
    skipped = CaseResult(
        "handshake", "test_x", "test_x[a]", "a", "b", Verdict.SKIP,
        reason="missing capability DOCKER (engine down)\nmore", duration=0.0,
    )  # fmt: skip
    assert case_line(skipped, 3, 4) == (
        "[3/4] SKIP  handshake  test_x[a]  0.0 s  (missing capability DOCKER (engine down))"
    )
