"""Faults during a run: a peer killed mid-handshake or mid-traffic, a stopped peer, a full or
read-only socket directory, hugepages taken away. Each case must end as a clear ERROR or FAIL
whose reason names the cause, with the peer's log kept, and the next case of the same run
(a plain pair) must pass, with nothing of the run left on the host.

The faulty cases are tests/integration/fault_scenarios/memif_fault_cases.py, run through
the scenario plugin as `memif-harness run` runs the suites.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from harness.results import CaseResult, RunResult, Verdict
from harness.run import pytest_args
from harness.topology import reap

pytestmark = [pytest.mark.integration]

CASES = Path(__file__).resolve().parent / "fault_scenarios" / "memif_fault_cases.py"
HEALTHY = "test_healthy_link_after_the_fault"
TESTPMD = pytest.param(
    "testpmd:reference",
    marks=[
        pytest.mark.testpmd,
        pytest.mark.skipif(shutil.which("dpdk-testpmd") is None, reason="no dpdk-testpmd"),
    ],
    id="testpmd-server",
)
REFERENCE = pytest.param("reference:reference", id="reference-server")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mounts, hugepages)")


def run_fault(report_dir: Path, scenario: str, pair: str) -> RunResult:
    """Run the fault case and the healthy case after it, in one run of the plugin."""
    kinds = list(dict.fromkeys(pair.split(":")))
    extra = ["--pairs", pair, "--case-timeout", "90", "-k", f"{scenario} or {HEALTHY}"]
    args = pytest_args(["handshake"], kinds, report_dir, extra=extra, quiet=True)
    args[-1] = str(CASES)  # the fault cases instead of the suite
    args[-1:-1] = ["--confcutdir", str(CASES.parent)]  # none of the project's test fixtures
    pytest.main(args)
    return RunResult.read(report_dir / "results.json")


def check_run(run: RunResult, report_dir: Path, scenario: str) -> CaseResult:
    """The fault case (returned) kept its peers' logs; the healthy case after it passed;
    nothing labelled with the run is left."""
    by_scenario = {case.scenario: case for case in run.cases}
    assert [case.scenario for case in run.cases] == [scenario, HEALTHY], run.cases
    fault = by_scenario[scenario]
    logs = [artifact for artifact in fault.artifacts if artifact.kind == "log"]
    assert logs, f"no peer log kept for {fault.case_id}"
    for log in logs:
        assert (report_dir / log.path).stat().st_size > 0, log
    healthy = by_scenario[HEALTHY]
    assert healthy.verdict is Verdict.PASS, (healthy.reason, healthy.observed)
    assert not reap.leftovers(only_runs={run.run_id}), "the run left labelled objects"
    return fault


@pytest.mark.parametrize("pair", [REFERENCE, TESTPMD])
@pytest.mark.parametrize(
    ("scenario", "verdict", "cause"),
    [
        ("test_server_killed_mid_handshake", Verdict.FAIL, r"crashed \(killed by SIGKILL\)"),
        ("test_server_killed_mid_traffic", Verdict.FAIL, r"crashed.*killed by SIGKILL"),
        pytest.param(
            "test_socket_directory_is_full",
            Verdict.ERROR,
            r"^PeerError: socket directory \S+/full is full \(no free inode\)",
            marks=needs_root,
        ),
        pytest.param(
            "test_socket_path_is_read_only",
            Verdict.ERROR,
            r"^PeerError: socket directory \S+/ro is on a read-only file system",
            marks=needs_root,
        ),
    ],
)
def test_a_fault_is_named_and_the_next_case_passes(
    tmp_path: Path, pair: str, scenario: str, verdict: Verdict, cause: str
) -> None:
    run = run_fault(tmp_path, scenario, pair)
    fault = check_run(run, tmp_path, scenario)
    assert fault.verdict is verdict, (fault.reason, fault.observed)
    assert re.search(cause, fault.reason), fault.reason


def test_a_stopped_server_is_named_and_stopped_for_good(tmp_path: Path) -> None:
    scenario = "test_server_stops_reading_its_socket"
    run = run_fault(tmp_path, scenario, "reference:reference")
    fault = check_run(run, tmp_path, scenario)
    assert fault.verdict is Verdict.FAIL, (fault.reason, fault.observed)
    assert "server: link down, reason none, process stopped (SIGSTOP)" in fault.reason


@needs_root
@pytest.mark.testpmd
@pytest.mark.skipif(shutil.which("dpdk-testpmd") is None, reason="no dpdk-testpmd")
def test_hugepages_taken_from_a_zero_copy_client_is_named(tmp_path: Path) -> None:
    scenario = "test_hugepages_exhausted_before_a_zero_copy_client_starts"
    run = run_fault(tmp_path, scenario, "reference:testpmd")
    fault = check_run(run, tmp_path, scenario)
    assert fault.verdict is Verdict.ERROR, (fault.reason, fault.observed)
    cause = r"No free 2048 kB hugepages.*host: 0 of \d+ hugepages"
    assert re.search(cause, fault.reason), fault.reason
