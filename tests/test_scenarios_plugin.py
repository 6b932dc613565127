"""The scenario plugin on throwaway scenarios: pairs and ids, verdicts, results.json; and the
real handshake and secret suites over reference x testpmd."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy  # noqa: F401  # loaded once here: pytester's in-process runs cannot reload it
import pytest

from harness.results import RunResult, Verdict
from harness.run import RunError, suite_path
from harness.topology.labels import RunLabel, registered_run

pytest_plugins = ["pytester"]

DOC = '''"""{summary}

    Steps:
        1. Do the thing.
    Verify:
        - It went as expected.
    """'''

OUTCOMES = f"""
import time

import pytest

from scenarios.api import (
    Capability, PeerCrashed, PeerError, Role, known_deviation, requires, verify,
)

MISSING = Capability("FAKE_CAPABILITY", lambda: (False, "not on this host"))


def test_passes():
    {DOC.format(summary="Passes.")}
    verify(True, "answer", expected=42, observed=42)


def test_verify_fails():
    {DOC.format(summary="A check that does not hold.")}
    verify(True, "first", expected="a", observed="a")
    verify(False, "second", expected="up", observed="down")


def test_raises():
    {DOC.format(summary="A harness bug.")}
    raise RuntimeError("the harness broke")


def test_peer_error():
    {DOC.format(summary="A peer that cannot run.")}
    raise PeerError("testpmd did not start", "EAL: no hugepages")


def test_plain_assert():
    {DOC.format(summary="An assert outside verify().")}
    assert 1 == 2


def test_peer_crashed():
    {DOC.format(summary="A peer crash.")}
    raise PeerCrashed("testpmd crashed", "Segmentation fault")


def test_skips():
    {DOC.format(summary="Skips itself.")}
    pytest.skip("no reason to run")


@requires(MISSING)
def test_requires_missing():
    {DOC.format(summary="Needs what is not here.")}
    raise AssertionError("must not run")


@known_deviation("reference", Role.SERVER, "fact sheet §9.8: a cited deviation")
def test_known_deviation():
    {DOC.format(summary="A known deviation that shows.")}
    verify(False, "reason", expected="secret-required", observed="incorrect-secret")


@known_deviation("reference", Role.SERVER, "fact sheet §9.8: not seen")
def test_known_deviation_absent():
    {DOC.format(summary="A known deviation that does not show.")}
    verify(True, "reason", expected="x", observed="x")


@known_deviation("reference", Role.SERVER, "fact sheet: excuses FAILs only")
def test_known_deviation_keeps_errors():
    {DOC.format(summary="A harness error under a known deviation.")}
    raise RuntimeError("still the harness's fault")


@known_deviation("vpp", None, "only for vpp")
def test_deviation_of_another_kind():
    {DOC.format(summary="A deviation of a kind not in the pair.")}
    verify(False, "reason", expected="x", observed="y")


def test_too_slow():
    {DOC.format(summary="Outlives the case timeout.")}
    time.sleep(30)


@pytest.fixture
def broken_teardown():
    yield
    raise OSError("cannot remove the socket directory")


def test_teardown_error(broken_teardown):
    {DOC.format(summary="Its fixture fails at teardown.")}
    verify(True, "body", expected=1, observed=1)
"""

EXPECTED = {
    "test_passes": (Verdict.PASS, ""),
    "test_verify_fails": (Verdict.FAIL, "second: expected up, observed down"),
    "test_raises": (Verdict.ERROR, "RuntimeError: the harness broke"),
    "test_peer_error": (Verdict.ERROR, "PeerError: testpmd did not start"),
    "test_plain_assert": (Verdict.ERROR, "assertion outside verify()"),
    "test_peer_crashed": (Verdict.FAIL, "testpmd crashed"),
    "test_skips": (Verdict.SKIP, "no reason to run"),
    "test_requires_missing": (Verdict.SKIP, "FAKE_CAPABILITY (not on this host)"),
    "test_known_deviation": (Verdict.XFAIL, "fact sheet §9.8: a cited deviation"),
    "test_known_deviation_absent": (Verdict.PASS, "known deviation did not show"),
    "test_known_deviation_keeps_errors": (Verdict.ERROR, "still the harness's fault"),
    "test_deviation_of_another_kind": (Verdict.FAIL, "reason: expected x, observed y"),
    "test_too_slow": (Verdict.ERROR, "HarnessTimeout: call of"),
    "test_teardown_error": (Verdict.ERROR, "teardown: OSError: cannot remove"),
}


def run_plugin(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess("-p", "scenarios.plugin", "-p", "no:cacheprovider", *args)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """The throwaway outcome scenarios, run once in a pytest subprocess."""
    directory = tmp_path_factory.mktemp("outcomes")
    (directory / "test_outcomes.py").write_text(OUTCOMES)
    report_dir = directory / "report"
    argv = [sys.executable, "-m", "pytest", "-p", "scenarios.plugin", "-p", "no:cacheprovider"]
    argv += ["--rootdir", str(directory), "--peers", "reference", "--case-timeout", "2"]
    argv += ["--report-dir", str(report_dir), str(directory)]
    done = subprocess.run(argv, cwd=directory, capture_output=True, text=True, timeout=120)
    assert (report_dir / "results.json").is_file(), done.stdout + done.stderr
    return RunResult.read(report_dir / "results.json")


def test_every_outcome_maps_to_its_verdict(report: RunResult) -> None:
    by_scenario = {case.scenario: case for case in report.cases}
    assert set(by_scenario) == set(EXPECTED)
    for scenario, (verdict, reason) in EXPECTED.items():
        case = by_scenario[scenario]
        assert case.verdict is verdict, (scenario, case.verdict, case.reason)
        assert reason in case.reason, (scenario, case.reason)


def test_cases_carry_checks_plan_and_pair(report: RunResult) -> None:
    case = next(c for c in report.cases if c.scenario == "test_verify_fails")
    assert case.case_id == "test_verify_fails[reference-server--reference-client]"
    assert case.suite == "outcomes"
    assert (case.server_peer, case.client_peer) == ("reference", "reference")
    assert case.expected == "first: a\nsecond: up"
    assert case.observed == "first: a\nNOT MET: second: down"
    assert case.steps == "1. Do the thing."
    assert case.verify == "- It went as expected."
    crash = next(c for c in report.cases if c.scenario == "test_peer_crashed")
    assert "Segmentation fault" in crash.observed


def test_results_json_has_run_facts(report: RunResult) -> None:
    assert len(report.run_id) == 8
    assert report.finished >= report.started > 0
    assert report.host["cpus"] >= 1
    assert [peer.name for peer in report.peers] == ["reference"]
    assert report.peers[0].version.startswith("memif-ref")
    assert report.placement == {"server_cpu": 0, "client_cpu": 1}
    assert report.counts()["ERROR"] == 6
    assert report.exit_code() == 2


def test_pairs_have_readable_ids(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_ids=f"""
import pytest

def test_link_up():
    {DOC.format(summary="Ids.")}

@pytest.mark.parametrize("abstract", [False, True], ids=["filesystem", "abstract"])
def test_sockets(abstract):
    {DOC.format(summary="Ids with a parameter of its own.")}
"""
    )
    result = run_plugin(pytester, "--peers", "reference,testpmd", "--collect-only", "-q")
    ids = [line for line in result.outlines if "::" in line]
    assert ids[:4] == [
        "test_ids.py::test_link_up[reference-server--reference-client]",
        "test_ids.py::test_link_up[reference-server--testpmd-client]",
        "test_ids.py::test_link_up[testpmd-server--reference-client]",
        "test_ids.py::test_link_up[testpmd-server--testpmd-client]",
    ]
    assert "test_ids.py::test_sockets[testpmd-server--reference-client-abstract]" in ids
    assert len(ids) == 12


def test_testpmd_pairs_skip_naming_the_capability_without_testpmd(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(pytester.path))  # no dpdk-testpmd on this PATH
    pytester.makepyfile(test_skip=f"def test_up():\n    {DOC.format(summary='Up.')}\n")
    report_dir = pytester.path / "report"
    run_plugin(pytester, "--peers", "reference,testpmd", "--report-dir", str(report_dir))
    cases = {c.case_id: c for c in RunResult.read(report_dir / "results.json").cases}
    assert cases["test_up[reference-server--reference-client]"].verdict is Verdict.PASS
    skipped = cases["test_up[reference-server--testpmd-client]"]
    assert skipped.verdict is Verdict.SKIP
    assert "missing capability TESTPMD" in skipped.reason


@pytest.mark.parametrize("missing", ["engine", "images"])
def test_runtime_docker_without_docker_skips_naming_the_capability(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    from harness import doctor
    from scenarios.api import NO_CONTAINER_IMAGE

    if missing == "engine":
        monkeypatch.setenv("DOCKER_HOST", f"unix://{pytester.path}/no-engine.sock")
    else:
        monkeypatch.setattr(doctor, "image_exists", lambda client, tag: False)
    pytester.makepyfile(test_docker_skip=f"def test_up(pair):\n    {DOC.format(summary='Up.')}\n")
    report_dir = pytester.path / "report"
    run_plugin(
        pytester, "--peers", "reference,testpmd", "--runtime", "docker",
        "--report-dir", str(report_dir),
    )  # fmt: skip
    result = RunResult.read(report_dir / "results.json")
    cases = {c.case_id: c for c in result.cases}
    assert cases["test_up[reference-server--reference-client]"].verdict is Verdict.PASS
    for pair in ("reference-server--testpmd-client", "testpmd-server--reference-client",
                 "testpmd-server--testpmd-client"):  # fmt: skip
        case = cases[f"test_up[{pair}]"]
        assert case.verdict is Verdict.SKIP, case.reason
        assert "missing capability DOCKER (" in case.reason
        assert "TESTPMD" not in case.reason  # the container needs no local testpmd
    if missing == "engine":
        assert "docker-engine" in cases["test_up[testpmd-server--testpmd-client]"].reason
    peers = {peer.name: peer for peer in result.peers}
    assert peers["testpmd"].runtime == "docker"
    assert peers["testpmd"].version.startswith("unavailable: missing capability DOCKER")
    assert peers["reference"].runtime == NO_CONTAINER_IMAGE


def test_scenario_without_steps_or_verify_is_a_collection_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_undocumented='''
def test_no_plan():
    """Only a summary."""

def test_documented():
    """Steps:
        1. x
    Verify:
        - y
    """
'''
    )
    report_dir = pytester.path / "report"
    result = run_plugin(pytester, "--peers", "reference", "--report-dir", str(report_dir))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*test_no_plan*needs Steps: and Verify: section(s)*"])
    cases = RunResult.read(report_dir / "results.json").cases
    assert [(c.scenario, c.verdict) for c in cases] == [("(collection)", Verdict.ERROR)]
    assert "test_no_plan" in cases[0].reason


def test_unknown_peer_kind_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x=f"def test_x():\n    {DOC.format(summary='x')}\n")
    result = run_plugin(pytester, "--peers", "reference,libmemif")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown kind(s)*libmemif*known: reference, testpmd*"])


def test_unknown_suite_is_refused() -> None:
    assert suite_path("handshake").name == "test_handshake.py"
    with pytest.raises(RunError, match=r"known suites: .*handshake"):
        suite_path("nonsense")


@pytest.mark.integration
def test_a_crashed_reference_peer_is_a_fail_with_its_log(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_crash=f"""
import os
import signal

from scenarios.api import expect_link_up

def test_server_dies(pair):
    {DOC.format(summary="The server segfaults.")}
    expect_link_up(pair)
    os.kill(pair.server.process.pid, signal.SIGSEGV)
"""
    )
    report_dir = pytester.path / "report"
    run_plugin(pytester, "--peers", "reference", "--report-dir", str(report_dir))
    (case,) = RunResult.read(report_dir / "results.json").cases
    assert case.verdict is Verdict.FAIL
    assert "reference server crashed" in case.reason
    logs = {
        artifact.path.rsplit("/", 1)[-1] for artifact in case.artifacts if artifact.kind == "log"
    }
    assert logs == {"server-reference.log", "client-reference.log"}
    assert all((report_dir / artifact.path).is_file() for artifact in case.artifacts)


TRACED = f"""
from scenarios.api import Activity, expect_link_up, files_in_socket_dir, listening, poll, verify

def test_frames_cross(start_pair):
    {DOC.format(summary="A source client and a sink server, through the control tap.")}
    pair = start_pair({{"activity": Activity.SINK}}, {{"activity": Activity.SOURCE}})
    verify(listening(pair), "server listens", expected="listening", observed="")
    expect_link_up(pair)
    got = poll(lambda: pair.server.status().counters.rx_frames > 0, timeout=10.0)
    verify(got, "frames", expected="received", observed=pair.server.status().counters)

def test_abstract(start_pair):
    {DOC.format(summary="An abstract socket, through the control tap.")}
    pair = start_pair(abstract=True)
    verify(listening(pair), "server listens", expected="listening", observed="")
    verify(not files_in_socket_dir(pair), "no file", expected=[], observed="")
    expect_link_up(pair)

def test_tap_breaks(pair):
    {DOC.format(summary="The tap fails: the case is the harness's ERROR, even with a FAIL.")}
    expect_link_up(pair)  # the whole handshake went through the tap before it "breaks"
    pair.lab._taps[0].error = "RuntimeError: relay thread died"
    verify(False, "link", expected="up", observed="down (because the relay died)")
"""


@pytest.mark.integration
def test_cases_record_their_control_trace_and_pcaps(pytester: pytest.Pytester) -> None:
    from scapy.utils import rdpcap

    pytester.makepyfile(test_traced=TRACED)
    report_dir = pytester.path / "report"
    run_plugin(pytester, "--peers", "reference", "--report-dir", str(report_dir))
    cases = {c.scenario: c for c in RunResult.read(report_dir / "results.json").cases}
    assert {name: c.verdict for name, c in cases.items()} == {
        "test_frames_cross": Verdict.PASS,
        "test_abstract": Verdict.PASS,
        "test_tap_breaks": Verdict.ERROR,
    }, [c.reason for c in cases.values()]
    assert "ControlTapError" in cases["test_tap_breaks"].reason
    assert "relay thread died" in cases["test_tap_breaks"].reason
    for case in cases.values():
        kinds = [(entry["direction"], entry["type"]) for entry in case.trace]
        assert kinds[:3] == [("s2c", "HELLO"), ("c2s", "INIT"), ("s2c", "ACK")], kinds
        assert ("c2s", "ADD_REGION") in kinds, kinds
        assert ("c2s", "ADD_RING") in kinds, kinds
        assert kinds.index(("c2s", "CONNECT")) < kinds.index(("s2c", "CONNECTED")), kinds
        assert ("c2s", "DISCONNECT") in kinds, kinds  # the client left first, saying so
        assert case.trace[1]["fields"]["name"] == "memif-ref"
        by_kind: dict[str, list[str]] = {}
        for artifact in case.artifacts:
            assert (report_dir / artifact.path).is_file(), (artifact, case.artifacts)
            by_kind.setdefault(artifact.kind, []).append(artifact.path.rsplit("/", 1)[-1])
        assert sorted(by_kind["log"]) == ["client-reference.log", "server-reference.log"]
        (trace_file,) = (a.path for a in case.artifacts if a.kind == "trace")
        assert json.loads((report_dir / trace_file).read_text()) == list(case.trace)
    pcaps = {a.path.rsplit("/", 1)[-1]: a for a in cases["test_frames_cross"].artifacts}
    assert {"client-reference.pcap", "server-reference.pcap"} <= set(pcaps), pcaps
    assert "one file" in pcaps["server-reference.pcap"].description
    sent = rdpcap(str(report_dir / pcaps["client-reference.pcap"].path))
    received = rdpcap(str(report_dir / pcaps["server-reference.pcap"].path))
    assert len(sent) > 0, pcaps
    assert len(received) > 0, pcaps
    assert bytes(received[0]) == bytes(sent[0])
    assert not any(a.kind == "pcap" for a in cases["test_abstract"].artifacts)  # no frames


MAIN_JOB_SUITES = {"handshake", "secret", "layout", "chained", "negotiation", "robustness"}


@pytest.mark.integration
@pytest.mark.testpmd
def test_main_job_twice_completes_fast_with_identical_verdicts(tmp_path: Path) -> None:
    """`memif-harness run` with no arguments (the README's main job): every functional suite
    over reference x testpmd, with 0 ERROR, in under 5 minutes, writing all four reports;
    a second run gives the same verdict for every case."""
    if shutil.which("dpdk-testpmd") is None:
        if os.environ.get("CI"):
            pytest.fail("dpdk-testpmd is missing on a CI machine (run ci/setup.sh)")
        pytest.skip("dpdk-testpmd not installed (Debian package dpdk-dev)")
    runs = []
    for number in (1, 2):
        report_dir = tmp_path / f"run{number}"
        started = time.monotonic()
        done = subprocess.run(
            [str(Path(sys.executable).with_name("memif-harness")), "run", "--report",
             str(report_dir)],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        elapsed = time.monotonic() - started
        result = RunResult.read(report_dir / "results.json")
        errors = [f"{c.case_id}: {c.reason}" for c in result.cases if c.verdict is Verdict.ERROR]
        assert not errors, errors
        assert done.returncode == result.exit_code(), done.stderr
        assert elapsed < 300, f"run {number} took {elapsed:.0f} s"
        for name in ("results.json", "index.html", "summary.md", "junit.xml"):
            assert (report_dir / name).is_file(), name
        assert {c.suite for c in result.cases} == MAIN_JOB_SUITES
        assert {(c.server_peer, c.client_peer) for c in result.cases} == {
            (s, c) for s in ("reference", "testpmd") for c in ("reference", "testpmd")
        }
        assert {p.name: p.version.split()[0] for p in result.peers} == {
            "reference": "memif-ref",
            "testpmd": "DPDK",
        }
        runs.append({case.case_id: case.verdict for case in result.cases})
    changed = {
        case: (runs[0][case], runs[1].get(case))
        for case in runs[0]
        if runs[0][case] is not runs[1].get(case)
    }
    assert runs[0].keys() == runs[1].keys()
    assert not changed, changed


def test_run_id_option_names_the_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_up=f"def test_up():\n    {DOC.format(summary='Up.')}\n")
    report_dir = pytester.path / "report"
    run_plugin(pytester, "--peers", "reference", "--run-id", "0123abcd", "--report-dir",
               str(report_dir))  # fmt: skip
    assert RunResult.read(report_dir / "results.json").run_id == "0123abcd"


def test_a_bad_run_id_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_up=f"def test_up():\n    {DOC.format(summary='Up.')}\n")
    result = run_plugin(pytester, "--peers", "reference", "--run-id", "../etc")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--run-id:" in "\n".join(result.errlines)


def test_a_run_id_that_is_registered_already_is_refused(pytester: pytest.Pytester) -> None:
    """Two runs with one id would share every name, and one's `reap` would hit the other."""
    pytester.makepyfile(test_up=f"def test_up():\n    {DOC.format(summary='Up.')}\n")
    with registered_run(RunLabel("0123abce")):
        result = run_plugin(pytester, "--peers", "reference", "--run-id", "0123abce")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "run 0123abce is registered already" in "\n".join(result.errlines)
