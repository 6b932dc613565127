"""Tests of the soak loop: leaks per run and at the end, differing verdicts, soak.json, exit."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from harness import soak as soak_module
from harness.cli import build_parser
from harness.results import CaseResult, RunResult, Verdict
from harness.run import RunError
from harness.soak import differing_verdicts, soak
from harness.topology.resources import Resource, ResourceKind, Snapshot, Snapshotter

RUN_IDS = ["0000000a", "0000000b", "0000000c"]


@pytest.fixture(autouse=True)
def known_run_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """The soak's run ids, in order (it gives each run its id before the run)."""
    ids = iter(RUN_IDS)
    monkeypatch.setattr(soak_module, "new_run_id", lambda: next(ids))


class ScriptedHost(Snapshotter):
    """A snapshotter whose host changes as a test says after each run."""

    def __init__(self) -> None:  # the real host is never looked at
        self.resources: set[Resource] = {Resource(ResourceKind.FD, "fd 0", owner="self")}
        self.taken = 0

    def take(self) -> Snapshot:
        self.taken += 1
        return Snapshot(float(self.taken), frozenset(self.resources), ("a note",))


def fake_runs(
    monkeypatch: pytest.MonkeyPatch,
    verdicts: Sequence[Sequence[Verdict] | Exception],
    after_run: Callable[[int, str], None] = lambda number, run_id: None,
) -> list[list[str]]:
    """Make run_suites return one RunResult per entry (or raise it, after `after_run`);
    returns the arguments."""
    calls: list[list[str]] = []

    def run_suites(
        suites: Sequence[str],
        peers: Sequence[str],
        report_dir: Path,
        runtime: str = "local",
        extra: Sequence[str] = (),
        progress: object | None = None,
    ) -> RunResult:
        number = len(calls)
        calls.append([*suites, *peers, runtime, *extra])
        run_id = extra[list(extra).index("--run-id") + 1]
        outcome = verdicts[number]
        if isinstance(outcome, Exception):
            after_run(number, run_id)
            raise outcome
        cases = [
            CaseResult("handshake", "s", f"s[{i}]", "reference", "reference", verdict)
            for i, verdict in enumerate(outcome)
        ]
        result = RunResult(run_id, started=0.0, finished=1.0, cases=cases)
        report_dir.mkdir(parents=True, exist_ok=True)
        result.write(report_dir / "results.json")
        after_run(number, run_id)
        return result

    monkeypatch.setattr(soak_module, "run_suites", run_suites)
    return calls


def test_identical_runs_without_leaks_pass(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = fake_runs(monkeypatch, [[Verdict.PASS, Verdict.SKIP]] * 3)
    lines: list[str] = []
    host = ScriptedHost()
    result = soak(3, ["handshake"], ["reference"], tmp_path, snapshotter=host, echo=lines.append)
    assert result.exit_code() == 0
    assert [line.split(" in ")[0] for line in lines] == [
        "run 1/3: 1 PASS, 1 SKIP",
        "run 2/3: 1 PASS, 1 SKIP",
        "run 3/3: 1 PASS, 1 SKIP",
    ]
    assert all(line.endswith("leaks: 0") for line in lines)
    assert calls[0] == ["handshake", "reference", "local", "--run-id", RUN_IDS[0]]
    assert host.taken == 4  # before the first run and after each run
    written = json.loads((tmp_path / "soak.json").read_text())
    assert written["exit_code"] == 0 and written["total_leaks"] == 0
    assert [run["run_id"] for run in written["runs"]] == RUN_IDS
    assert (tmp_path / "run-1" / "results.json").is_file()
    assert (tmp_path / "run-3" / "index.html").is_file()  # the reports of `run`, per run


def test_a_leak_of_a_run_is_reported_once_and_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    host = ScriptedHost()
    leak = Resource(ResourceKind.NETNS, f"memif-{RUN_IDS[1]}-server", run_id=RUN_IDS[1])
    other = Resource(ResourceKind.NETNS, "someone-elses")

    def after_run(number: int, run_id: str) -> None:
        if number == 1:
            host.resources |= {leak, other}

    fake_runs(monkeypatch, [[Verdict.PASS]] * 3, after_run)
    lines: list[str] = []
    monkeypatch.setattr(soak_module, "SETTLE_SECONDS", 0.0)
    result = soak(3, [], ["reference"], tmp_path, snapshotter=host, echo=lines.append)
    assert [line.split("leaks: ")[1] for line in lines if "leaks: " in line] == [
        "0",
        "1 (1 new object(s) of others ignored)",
        "0",
    ]
    assert f"  leaked: netns {leak.key} [run {RUN_IDS[1]}]" in lines
    assert result.leaked == (leak,)
    assert result.total_leaks == 1
    assert result.exit_code() == 1
    assert f"leaked: netns {leak.key} [run {RUN_IDS[1]}]" in result.summary()


def test_differing_verdicts_fail_and_are_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_runs(monkeypatch, [[Verdict.PASS, Verdict.PASS], [Verdict.PASS, Verdict.FAIL]])
    result = soak(2, [], ["reference"], tmp_path, snapshotter=ScriptedHost(), echo=print)
    assert result.differing == {"handshake::s[1]": ["PASS", "FAIL"]}
    assert "differs: handshake::s[1]: PASS / FAIL" in result.summary()
    assert result.exit_code() == 1


def test_a_run_that_does_not_complete_fails_the_soak(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_runs(monkeypatch, [[Verdict.PASS], RunError("pytest exited with 4\nmore")])
    lines: list[str] = []
    result = soak(2, [], ["reference"], tmp_path, snapshotter=ScriptedHost(), echo=lines.append)
    assert lines[1].startswith("run 2/2: did not complete (pytest exited with 4)")
    assert result.differing == {}  # only completed runs are compared
    assert result.exit_code() == 1


def test_what_a_run_that_did_not_complete_left_is_a_leak(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The run id is the soak's, given before the run: no results.json is needed to know it."""
    host = ScriptedHost()
    leak = Resource(ResourceKind.NETNS, f"memif-{RUN_IDS[0]}-server", run_id=RUN_IDS[0])

    def after_run(number: int, run_id: str) -> None:
        host.resources.add(Resource(ResourceKind.NETNS, f"memif-{run_id}-server", run_id=run_id))

    fake_runs(monkeypatch, [RunError("pytest exited with 3")], after_run)
    monkeypatch.setattr(soak_module, "SETTLE_SECONDS", 0.0)
    result = soak(1, [], ["reference"], tmp_path, snapshotter=host, echo=print)
    assert result.leaked == (leak,)
    assert result.runs[0].leaked == (leak,) and result.runs[0].foreign == ()


def test_differing_verdicts_counts_a_missing_case() -> None:
    runs = [{"a": "PASS", "b": "PASS"}, {"a": "PASS"}, {"a": "PASS", "b": "PASS"}]
    assert differing_verdicts(runs) == {"b": ["PASS", "-", "PASS"]}
    assert differing_verdicts([{"a": "SKIP"}, {"a": "SKIP"}]) == {}


def test_runs_below_one_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one run"):
        soak(0, [], ["reference"], tmp_path, snapshotter=ScriptedHost())


def test_the_command_passes_pairs_and_socket_group_to_the_plugin(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = fake_runs(monkeypatch, [[Verdict.PASS]])
    monkeypatch.setattr(soak_module, "Snapshotter", ScriptedHost)
    args = build_parser().parse_args(
        ["soak", "--runs", "1", "--suite", "handshake", "--peers", "reference",
         "--pairs", "reference:reference", "--socket-group", "adm", "--report", str(tmp_path)]
    )  # fmt: skip
    assert args.handler(args) == 0
    assert calls == [
        ["handshake", "reference", "local", "--pairs", "reference:reference",
         "--socket-group", "adm", "--run-id", RUN_IDS[0]]
    ]  # fmt: skip
    out = capsys.readouterr().out
    assert "1 run(s) in" in out and "0 leak(s), 0 case(s) with differing verdicts" in out
    assert f"soak.json: {tmp_path / 'soak.json'}" in out
