"""The words a fault's verdict is given: how a process ended or stands, what is wrong with a
socket directory, the hugepage state, a driver's failure line, a program's last log line."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from harness.peers.base import PeerError
from harness.runtime.local import LocalProcess, exit_description
from harness.topology.hugepages import hugepage_state
from scenarios.api import exit_cause, poll, socket_dir_problem


@pytest.mark.parametrize(
    ("code", "text"),
    [(None, ""), (0, "exited with status 0"), (3, "exited with status 3"),
     (-9, "killed by SIGKILL"), (-11, "killed by SIGSEGV"), (-200, "killed by signal 200")],
)  # fmt: skip
def test_exit_description(code: int | None, text: str) -> None:
    assert exit_description(code) == text


class _Peer:
    def __init__(self, process: LocalProcess) -> None:
        self.process = process


def test_exit_cause_of_a_stopped_then_killed_process(tmp_path: Path) -> None:
    process = LocalProcess(["sleep", "60"], tmp_path / "sleep.log")
    peer = _Peer(process)
    try:
        assert exit_cause(peer) == ""  # type: ignore[arg-type]
        os.kill(process.pid, signal.SIGSTOP)  # delivered asynchronously: poll for it
        assert poll(lambda: exit_cause(peer) != "", 5.0)  # type: ignore[arg-type]
        assert exit_cause(peer).startswith("process stopped (SIGSTOP)")  # type: ignore[arg-type]
    finally:
        process.stop(grace=5.0)  # SIGTERM, then SIGCONT: a stopped process ends at once
    assert process.returncode == -signal.SIGTERM and not process.crashed
    assert exit_cause(peer) == "killed by SIGTERM"  # type: ignore[arg-type]


def test_socket_dir_problem(tmp_path: Path) -> None:
    assert socket_dir_problem(str(tmp_path / "memif.sock")) == ""
    missing = tmp_path / "missing"
    assert socket_dir_problem(str(missing / "memif.sock")) == (
        f"socket directory {missing}: No such file or directory"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount")
def test_socket_dir_problem_on_read_only_and_full_mounts(tmp_path: Path) -> None:
    for name, options in (("ro", "ro,size=64k"), ("full", "size=64k,nr_inodes=2")):
        (tmp_path / name).mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "t", str(tmp_path / name)],
                       check=True)  # fmt: skip
    try:
        (tmp_path / "full" / "a").touch()  # the root directory and this: no inode left
        assert socket_dir_problem(str(tmp_path / "ro" / "m.sock")) == (
            f"socket directory {tmp_path / 'ro'} is on a read-only file system"
        )
        assert socket_dir_problem(str(tmp_path / "full" / "m.sock")) == (
            f"socket directory {tmp_path / 'full'} is full (no free inode)"
        )
    finally:
        for name in ("ro", "full"):
            subprocess.run(["umount", "-l", str(tmp_path / name)], check=True)


def test_hugepage_state(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(
        "MemTotal: 1 kB\nHugePages_Total:     512\nHugePages_Free:        0\n"
        "Hugepagesize:       2048 kB\n"
    )
    assert hugepage_state(meminfo) == "0 of 512 hugepages of 2048 kB free"
    meminfo.write_text("MemTotal: 1 kB\n")
    assert hugepage_state(meminfo) == ""


def test_an_error_reason_quotes_the_program_s_last_log_line() -> None:
    from scenarios.plugin import _classify

    class Report:
        passed = skipped = False
        when = "call"

    class Call:
        class excinfo:  # mimics pytest.CallInfo.excinfo
            value = PeerError("memif-ref did not start", "line 1\nEndpointError: No space left")

    from scenarios.api import CaseRecord

    phase = _classify(Report(), Call(), CaseRecord("x"))  # type: ignore[arg-type]
    assert phase is not None
    assert phase.reason == (
        "PeerError: memif-ref did not start (its log ends: EndpointError: No space left)"
    )
    assert phase.observed.startswith("log tail:\nline 1")
