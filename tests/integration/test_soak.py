"""`memif-harness soak` on a small matrix: no leak, identical verdicts; and a leak that a run
leaves behind (a namespace labelled with its run id) is reported and fails the soak."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from harness import soak as soak_module
from harness.results import RunResult
from harness.topology import netns as tn
from harness.topology.labels import RunLabel

pytestmark = pytest.mark.integration


def test_two_runs_of_the_handshake_suite_leak_nothing(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli", "soak", "--runs", "2", "--suite", "handshake",
         "--peers", "reference", "--report", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    runs = [line for line in lines if line.startswith("run ")]
    assert len(runs) == 2 and all("; leaks: 0" in line for line in runs), lines
    assert "0 leak(s), 0 case(s) with differing verdicts" in result.stdout
    written = json.loads((tmp_path / "soak.json").read_text())
    assert written["total_leaks"] == 0 and written["differing"] == {}
    first, second = (run["verdicts"] for run in written["runs"])
    assert first == second and len(first) >= 5


@pytest.fixture
def leaked_namespaces() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        tn.delete_netns(name)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")
def test_a_namespace_a_run_leaves_behind_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, leaked_namespaces: list[str]
) -> None:
    real_run_suites = soak_module.run_suites

    def leaky_run_suites(*args: Any, **kwargs: Any) -> RunResult:
        run = real_run_suites(*args, **kwargs)
        name = RunLabel(run.run_id).netns("leak")  # what a forgetful topology would leave
        tn.create_netns(name)
        leaked_namespaces.append(name)
        return run

    monkeypatch.setattr(soak_module, "run_suites", leaky_run_suites)
    monkeypatch.setattr(soak_module, "SETTLE_SECONDS", 0.5)
    lines: list[str] = []
    result = soak_module.soak(
        1, ["handshake"], ["reference"], tmp_path, extra_pytest_args=_one_case(), echo=lines.append
    )
    (name,) = leaked_namespaces
    assert result.exit_code() == 1
    assert "; leaks: 1" in lines[0], lines
    assert any(line.startswith(f"  leaked: netns {name}") for line in lines), lines
    assert [resource.key for resource in result.leaked] == [name]


def _one_case() -> Sequence[str]:
    return ["-k", "test_link_up_with_negotiated_parameters"]
