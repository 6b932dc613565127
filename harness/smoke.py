"""The smoke job: the reference implementation against real testpmd, both roles, one verdict each.

Each check starts testpmd (pinned to CPU 0) and memif-ref (pinned to CPU 1) over a
filesystem socket in a run-labelled private directory, and removes everything afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.peers.testpmd import (
    MemifRole,
    TestpmdConfig,
    TestpmdError,
    TestpmdMemifPort,
    TestpmdProcess,
)

TESTPMD_CPU = 0
REFERENCE_CPU = 1


@dataclasses.dataclass(frozen=True)
class Check:
    """One pairing: who serves, who connects, what flows, and what counts as a pass."""

    name: str
    reference_role: str  # "server" or "client"
    testpmd_mode: str
    reference_action: tuple[str, ...]
    testpmd_port: dict[str, Any] = dataclasses.field(default_factory=dict)
    testpmd_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    reference_options: tuple[str, ...] = ()
    verdict: Callable[[dict[str, Any]], str | None] = lambda report: None


def _replies(expected: int) -> Callable[[dict[str, Any]], str | None]:
    def verdict(report: dict[str, Any]) -> str | None:
        got = (report.get("result") or {}).get("replies", 0)
        return None if got == expected else f"{got}/{expected} echo replies"

    return verdict


def _whole_frames(size: int, chained: bool) -> Callable[[dict[str, Any]], str | None]:
    def verdict(report: dict[str, Any]) -> str | None:
        counters = report.get("counters") or {}
        frames, octets = counters.get("rx_frames", 0), counters.get("rx_bytes", 0)
        if not frames:
            return "no frames received"
        if octets != size * frames:
            return f"{octets} bytes in {frames} frames of {size}"
        if chained and counters.get("rx_chained") != frames:
            return f"{counters.get('rx_chained')} of {frames} frames chained"
        return None

    return verdict


CHECKS = (
    Check(
        "reference client pings testpmd server (icmpecho)",
        "client",
        "icmpecho",
        ("ping", "--count", "100"),
        verdict=_replies(100),
    ),
    Check(
        "reference server pings testpmd client (icmpecho)",
        "server",
        "icmpecho",
        ("ping", "--count", "100"),
        verdict=_replies(100),
    ),
    Check(
        "testpmd client txonly 64 B -> reference server sink",
        "server",
        "txonly",
        ("sink", "--count", "100000"),
        testpmd_options={"txpkts": "64"},
        verdict=_whole_frames(64, chained=False),
    ),
    Check(
        "testpmd server txonly 64 B -> reference client sink",
        "client",
        "txonly",
        ("sink", "--count", "100000"),
        testpmd_options={"txpkts": "64"},
        verdict=_whole_frames(64, chained=False),
    ),
    Check(
        "testpmd client bsize 256, 1024 B chained -> reference server sink",
        "server",
        "txonly",
        ("sink", "--count", "20000"),
        testpmd_port={"bsize": 256},
        testpmd_options={"txpkts": "1024"},
        verdict=_whole_frames(1024, chained=True),
    ),
)


@dataclasses.dataclass
class Outcome:
    """The verdict of one check."""

    check: str
    verdict: str  # PASS, FAIL, ERROR
    reason: str
    seconds: float
    report: dict[str, Any] | None


def _run_check(check: Check, run_id: str, workdir: Path, binary: str) -> Outcome:
    started = time.monotonic()
    sock = workdir / f"{check.reference_role}-{uuid.uuid4().hex[:6]}.sock"
    testpmd_role = MemifRole.CLIENT if check.reference_role == "server" else MemifRole.SERVER
    port = TestpmdMemifPort(role=testpmd_role, socket_path=sock, **check.testpmd_port)
    prefix = f"memif-{run_id}-{uuid.uuid4().hex[:6]}"
    config = TestpmdConfig(
        ports=(port,),
        file_prefix=prefix,
        cpu=TESTPMD_CPU,
        forward_mode=check.testpmd_mode,
        **check.testpmd_options,
    )
    argv = [
        "taskset", "-c", str(REFERENCE_CPU), sys.executable, "-m", "reference_impl.cli",
        check.reference_role, "--socket", str(sock), "--timeout", "20", "--json",
        *check.reference_options, *check.reference_action,
    ]  # fmt: skip
    testpmd = TestpmdProcess(config, workdir / f"{prefix}.log", binary=binary)
    reference: subprocess.Popen[str] | None = None
    try:
        if check.reference_role == "server":
            reference = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
            _wait_for_path(sock, 10.0)
            testpmd.start()
            testpmd.wait_for_link(0)
            testpmd.start_forwarding()
        else:
            testpmd.start()
            testpmd.start_forwarding()
            reference = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        out, _ = reference.communicate(timeout=60)
        report = json.loads(out.strip().splitlines()[-1])
    except (TestpmdError, OSError, ValueError, IndexError, subprocess.TimeoutExpired) as exc:
        testpmd.stop()
        if testpmd.crashed:
            return Outcome(check.name, "FAIL", "testpmd crashed", _since(started), None)
        return Outcome(check.name, "ERROR", str(exc).splitlines()[0], _since(started), None)
    finally:
        if reference is not None and reference.poll() is None:
            reference.kill()
            reference.communicate()
        testpmd.stop()
    if testpmd.crashed:
        return Outcome(check.name, "FAIL", "testpmd crashed", _since(started), report)
    if not report.get("link_up"):
        problem: str | None = f"link down: {report.get('disconnect_reason') or 'timeout'}"
    else:
        problem = check.verdict(report)
    verdict = "PASS" if problem is None else "FAIL"
    return Outcome(check.name, verdict, problem or "", _since(started), report)


def _since(started: float) -> float:
    return round(time.monotonic() - started, 2)


def _wait_for_path(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout} s")
        time.sleep(0.02)


def run_smoke(binary: str = "dpdk-testpmd") -> list[Outcome]:
    """Run every check; the socket directory is private (0700) and removed afterwards."""
    run_id = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix=f"memif-harness-{run_id}-"))
    workdir.chmod(0o700)
    try:
        return [_run_check(check, run_id, workdir, binary) for check in CHECKS]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
