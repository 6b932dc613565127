"""Tests of the run labelling scheme and the run registry."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness.topology import labels
from harness.topology.labels import LabelError, RunLabel, RunState

RUN = "1a2b3c4d"


def test_new_run_ids_are_8_hex_and_distinct() -> None:
    ids = {labels.new_run_id() for _ in range(200)}
    assert len(ids) == 200
    for run_id in ids:
        assert labels.check_run_id(run_id) == run_id


@pytest.mark.parametrize("bad", ["", "1a2b3c4", "1a2b3c4d5", "1A2B3C4D", "zzzzzzzz", "1a2b-c4d"])
def test_bad_run_ids_are_refused(bad: str) -> None:
    with pytest.raises(LabelError):
        RunLabel(bad)


def test_names_follow_the_scheme() -> None:
    label = RunLabel(RUN)
    assert label.netns("server") == "memif-1a2b3c4d-server"
    assert label.dpdk_prefix("tpmd0") == "memif-1a2b3c4d-tpmd0"
    assert label.container_name("vpp") == "memif-1a2b3c4d-vpp"
    assert label.container_labels() == {"memif-harness.run": RUN}
    assert label.link("s0") == "mh1a2b3c4ds0"
    assert label.socket_dir_prefix("sock") == "memif-harness-1a2b3c4d-sock-"


def test_link_names_fit_the_kernel_limit() -> None:
    label = RunLabel(RUN)
    longest = label.link("a" * labels.LINK_SUFFIX_MAX)
    assert len(longest) == labels.IFNAMSIZ_MAX
    with pytest.raises(LabelError, match="15-char"):
        label.link("a" * (labels.LINK_SUFFIX_MAX + 1))
    with pytest.raises(LabelError):
        label.link("A0")


@pytest.mark.parametrize("role", ["", "Server", "a b", "../x", "-x"])
def test_bad_roles_are_refused(role: str) -> None:
    with pytest.raises(LabelError):
        RunLabel(RUN).netns(role)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("memif-1a2b3c4d-server", RUN),  # netns / DPDK prefix / container
        ("memif-1a2b3c4d-tpmd0map_0", RUN),  # DPDK hugepage file
        ("memif-harness-1a2b3c4d-sock-x8y9", RUN),  # socket dir
        ("/tmp/memif-harness-1a2b3c4d-sock-x8y9", RUN),
        ("/tmp/memif-harness-1a2b3c4d-sock-x8y9/", RUN),
        ("mh1a2b3c4ds0", RUN),  # link
        ("mh1a2b3c4dabcdef", None),  # link suffix too long: not ours
        ("memif-1a2b3c4-server", None),
        ("memif-harness-zz-sock", None),
        ("rtemap_0", None),
        ("eth0", None),
        ("memif-harness.run", None),
    ],
)
def test_parse_run_id(name: str, expected: str | None) -> None:
    assert labels.parse_run_id(name) == expected


def test_every_generated_name_parses_back() -> None:
    label = RunLabel.new()
    names = [
        label.netns("client"),
        label.dpdk_prefix("p1"),
        label.container_name("vpp"),
        label.link("tap0"),
        label.socket_dir_prefix("sock") + "abc",
    ]
    assert {labels.parse_run_id(name) for name in names} == {label.run_id}


def test_link_alias_round_trip() -> None:
    alias = labels.link_alias(RUN, created=1700000000.7)
    assert alias == "memif-harness.run=1a2b3c4d created=1700000000"
    assert labels.parse_link_alias(alias) == (RUN, 1700000000.0)
    assert labels.parse_link_alias("memif-harness.run=1a2b3c4d") == (RUN, None)
    assert labels.parse_link_alias("uplink to rack 3") is None
    assert labels.parse_link_alias(None) is None


def test_socket_dir_is_private(tmp_path: Path) -> None:
    path = RunLabel(RUN).make_socket_dir("sock", tmp_dir=tmp_path)
    assert path.parent == tmp_path
    assert path.name.startswith("memif-harness-1a2b3c4d-sock-")
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert labels.run_id_from_socket_dir(path.name) == RUN


def test_registry_of_this_process_is_live(tmp_path: Path) -> None:
    path = labels.register_run(RUN, tmp_path)
    data = json.loads(path.read_text())
    assert data["pid"] == os.getpid()
    assert data["pid_start_time"] == labels.process_start_time(os.getpid())
    assert labels.run_state(RUN, tmp_path) is RunState.LIVE
    assert labels.registered_runs(tmp_path) == [RUN]
    labels.unregister_run(RUN, tmp_path)
    assert labels.run_state(RUN, tmp_path) is RunState.UNREGISTERED


def test_registry_of_an_exited_process_is_dead(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    labels.register_run(RUN, tmp_path, pid=child.pid)
    child.wait(timeout=30)
    assert labels.run_state(RUN, tmp_path) is RunState.DEAD


def test_recycled_pid_is_not_mistaken_for_the_run(tmp_path: Path) -> None:
    labels.register_run(RUN, tmp_path)
    path = labels.registry_path(RUN, tmp_path)
    data = json.loads(path.read_text())
    data["pid_start_time"] -= 1  # same pid, different process start: a recycled pid
    path.write_text(json.dumps(data))
    assert labels.run_state(RUN, tmp_path) is RunState.DEAD


def test_zombie_counts_as_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # Wait for the exit without reaping it: the child is now a zombie.
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        assert Path(f"/proc/{child.pid}").exists()
        assert not labels.process_alive(child.pid)
    finally:
        child.wait(timeout=30)


def test_unreadable_registry_counts_as_unregistered(tmp_path: Path) -> None:
    labels.registry_path(RUN, tmp_path).write_text("{not json")
    assert labels.read_record(RUN, tmp_path) is None
    assert labels.run_state(RUN, tmp_path) is RunState.UNREGISTERED


def test_registered_run_context_removes_its_record(tmp_path: Path) -> None:
    with labels.registered_run(registry_dir=tmp_path) as label:
        assert labels.run_state(label.run_id, tmp_path) is RunState.LIVE
    assert labels.read_record(label.run_id, tmp_path) is None


def test_registered_run_removes_its_record_after_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), labels.registered_run(registry_dir=tmp_path) as label:
        raise RuntimeError("boom")
    # Only a killed process leaves its record behind.
    assert labels.read_record(label.run_id, tmp_path) is None
