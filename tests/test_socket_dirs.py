"""Socket directories: 0700 by default, 0750 with a configured group, bad groups refused."""

from __future__ import annotations

import grp
import os
import stat
from pathlib import Path

import pytest

from harness.run import RunError, run_suites
from harness.topology import labels
from harness.topology.labels import LabelError, RunLabel, socket_group_id
from scenarios.api import CaseRecord, HarnessSession, Lab

GROUP = "adm" if "adm" in {g.gr_name for g in grp.getgrall()} else grp.getgrgid(os.getgid()).gr_name


def mode_and_group(path: Path) -> tuple[int, int]:
    status = path.stat()
    return stat.S_IMODE(status.st_mode), status.st_gid


def test_a_socket_dir_is_private_by_default(tmp_path: Path) -> None:
    path = RunLabel.new().make_socket_dir("case", tmp_path)
    assert mode_and_group(path)[0] == 0o700


def test_a_socket_group_gives_0750_and_that_group(tmp_path: Path) -> None:
    gid = socket_group_id(GROUP)
    path = RunLabel.new().make_socket_dir("case", tmp_path, group=gid)
    assert mode_and_group(path) == (0o750, gid)


def test_socket_group_by_name_or_number_and_unknown_groups() -> None:
    gid = grp.getgrnam(GROUP).gr_gid
    assert socket_group_id(GROUP) == socket_group_id(str(gid)) == socket_group_id(gid) == gid
    with pytest.raises(LabelError, match="no such group"):
        socket_group_id("no-such-group-memif")


@pytest.mark.parametrize("group", [None, GROUP])
def test_the_case_socket_dir_of_a_lab(tmp_path: Path, group: str | None) -> None:
    gid = None if group is None else socket_group_id(group)
    session = HarnessSession(RunLabel.new(), socket_group=gid)
    lab = Lab(session, CaseRecord("case"), tmp_path, "reference", "reference")
    directory = lab.socket_dir
    try:
        assert directory.name.startswith(f"memif-harness-{session.label.run_id}-case-")
        expected = (0o700, os.getgid()) if gid is None else (0o750, gid)
        assert mode_and_group(directory) == expected
    finally:
        lab.close()
    assert not directory.exists()


def test_a_run_with_an_unknown_socket_group_is_refused_before_registering(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registered = set(labels.registered_runs())
    with pytest.raises(RunError, match="pytest exited with 4"):
        run_suites(["handshake"], ["reference"], tmp_path,
                   extra_pytest_args=["--socket-group", "no-such-group-memif"])  # fmt: skip
    assert "--socket-group: socket group 'no-such-group-memif': no such group" in (
        capsys.readouterr().err
    )
    new = set(labels.registered_runs()) - registered
    mine = [
        run
        for run in new
        if (labels.read_record(run) or labels.RunRecord(run, 0, None, 0)).pid == os.getpid()
    ]
    assert not mine, "the refused run left its registry record"
