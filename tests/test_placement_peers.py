"""NUMA placements reach the peers: testpmd's lcores/socket-mem and a local process's CPUs and
memory policy."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from harness.peers.base import Activity, MemifSpec, Role
from harness.peers.testpmd_peer import testpmd_config as build_testpmd_config
from harness.runtime.local import LocalProcess
from harness.topology.numa import Placement

PLACED = Placement(
    peer="server", cpus=(1,), memory_node=0, nic_node=None, reason="test", lcores=2,
    hugepage_mb=256,
)  # fmt: skip


def test_testpmd_lcores_follow_the_placement() -> None:
    spec = MemifSpec(role=Role.SERVER, socket_path="/tmp/x.sock", activity=Activity.SINK)
    config = build_testpmd_config(spec, cpu=0, file_prefix="memif-0123abcd-p", placement=PLACED)
    argv = config.argv()
    assert argv[argv.index("--lcores") + 1] == "0@1,1@1"
    unplaced = build_testpmd_config(spec, cpu=0, file_prefix="memif-0123abcd-p").argv()
    assert unplaced[unplaced.index("--lcores") + 1] == "0@0,1@0"


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 or 1 not in os.sched_getaffinity(0),
                    reason="needs CPU 1")  # fmt: skip
def test_local_process_runs_pinned_with_memory_bound_to_the_node(tmp_path: Path) -> None:
    process = LocalProcess(
        [sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "p.log",
        placement=PLACED,
    )  # fmt: skip
    try:
        status = Path(f"/proc/{process.pid}/status").read_text()
        allowed = next(line for line in status.splitlines() if line.startswith("Cpus_allowed_list"))
        assert allowed.split(":")[1].strip() == "1"
        maps = Path(f"/proc/{process.pid}/numa_maps").read_text().splitlines()
        assert any("bind:0" in line for line in maps)
    finally:
        process.stop()
