"""Tests of sysfs topology reading (fake trees of 1, 2 and 4 nodes) and of peer placement."""

from __future__ import annotations

import errno
import os
import subprocess
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.topology import numa
from harness.topology.numa import MemoryPolicy, NumaCase, PeerNeeds

T = TypeVar("T")

Hugepages = Mapping[int, tuple[int, int]]  # size_kb -> (total, free)


def make_sysfs(
    root: Path,
    nodes: Mapping[int, str],
    *,
    online: str | None = None,
    hugepages: Mapping[int, Hugepages] | None = None,
    nics: Mapping[str, int | None] | None = None,
    node_online: str | None = None,
) -> Path:
    """Build a fake sysfs tree.

    Args:
        root: where to build it.
        nodes: node id -> cpulist.
        online: online CPU list (default: union of the node lists).
        hugepages: node id -> {page size kB: (total, free)}.
        nics: device name -> numa_node (-1 allowed); None means a virtual device.
        node_online: content of devices/system/node/online.
    """
    sysfs = root / "sys"
    cpu_dir = sysfs / "devices" / "system" / "cpu"
    cpu_dir.mkdir(parents=True)
    all_cpus = sorted({c for text in nodes.values() for c in numa.parse_cpulist(text)})
    (cpu_dir / "online").write_text((online or numa.format_cpulist(all_cpus)) + "\n")
    for cpu in all_cpus:
        (cpu_dir / f"cpu{cpu}").mkdir()
    node_root = sysfs / "devices" / "system" / "node"
    node_root.mkdir(parents=True)
    if node_online is not None:
        (node_root / "online").write_text(node_online + "\n")
    for node_id, cpulist in nodes.items():
        node_dir = node_root / f"node{node_id}"
        node_dir.mkdir()
        (node_dir / "cpulist").write_text(cpulist + "\n")
        for size_kb, (total, free) in (hugepages or {}).get(node_id, {}).items():
            pool = node_dir / "hugepages" / f"hugepages-{size_kb}kB"
            pool.mkdir(parents=True)
            (pool / "nr_hugepages").write_text(f"{total}\n")
            (pool / "free_hugepages").write_text(f"{free}\n")
            (pool / "surplus_hugepages").write_text("0\n")
    net = sysfs / "class" / "net"
    net.mkdir(parents=True)
    for name, node in (nics or {}).items():
        (net / name).mkdir()
        if node is not None:
            (net / name / "device").mkdir()
            (net / name / "device" / "numa_node").write_text(f"{node}\n")
    return sysfs


@pytest.fixture
def one_node(tmp_path: Path) -> numa.HostTopology:
    sysfs = make_sysfs(
        tmp_path,
        {0: "0-1"},
        hugepages={0: {2048: (512, 512), 1048576: (0, 0)}},
        nics={"eth0": -1, "lo": None},
    )
    return numa.read_host_topology(sysfs)


@pytest.fixture
def two_nodes(tmp_path: Path) -> numa.HostTopology:
    sysfs = make_sysfs(
        tmp_path,
        {0: "0-3,8-11", 1: "4-7,12-15"},
        hugepages={0: {2048: (1024, 1000)}, 1: {2048: (1024, 200)}},
        nics={"ens1f0": 1, "ens2f0": 0, "veth0": None},
    )
    return numa.read_host_topology(sysfs)


@pytest.fixture
def four_nodes(tmp_path: Path) -> numa.HostTopology:
    sysfs = make_sysfs(
        tmp_path,
        {0: "0-1", 1: "2-3", 2: "4-7", 3: "8-9", 4: ""},  # node 4: memory only
        online="0-8",  # CPU 9 offline
        hugepages={n: {2048: (512, 512)} for n in range(4)},
        nics={"ens3": 2},
    )
    return numa.read_host_topology(sysfs)


# --------------------------------------------------------------------------- cpulists


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("0-3,8-11", (0, 1, 2, 3, 8, 9, 10, 11)),
        ("0", (0,)),
        ("", ()),
        ("\n", ()),
        ("5,1-2", (1, 2, 5)),
        ("0-0", (0,)),
    ],
)
def test_parse_cpulist(text: str, cpus: tuple[int, ...]) -> None:
    assert numa.parse_cpulist(text) == cpus


@pytest.mark.parametrize("text", ["a", "3-1", "1,,2", "1-", "-1", "0-3:2"])
def test_parse_cpulist_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        numa.parse_cpulist(text)


@given(st.sets(st.integers(min_value=0, max_value=300)))
def test_cpulist_round_trip(cpus: set[int]) -> None:
    assert numa.parse_cpulist(numa.format_cpulist(cpus)) == tuple(sorted(cpus))


def test_format_cpulist_is_compact() -> None:
    assert numa.format_cpulist([11, 0, 1, 2, 3, 8, 9, 10]) == "0-3,8-11"
    assert numa.format_cpulist([4]) == "4"
    assert numa.format_cpulist([]) == ""


# --------------------------------------------------------------------------- reading sysfs


def test_read_one_node(one_node: numa.HostTopology) -> None:
    assert one_node.node_ids == (0,)
    assert one_node.online_cpus == (0, 1)
    assert one_node.node(0).cpus == (0, 1)
    assert one_node.node(0).free_hugepage_mb == 1024
    sizes = [pool.size_kb for pool in one_node.node(0).hugepages]
    assert sizes == [2048, 1048576]
    assert one_node.net_devices["eth0"] == numa.NetDevice("eth0", None, virtual=False)
    assert one_node.net_devices["lo"].virtual
    assert one_node.nic_node("eth0") is None
    assert one_node.nic_node("missing0") is None


def test_read_two_nodes(two_nodes: numa.HostTopology) -> None:
    assert two_nodes.node_ids == (0, 1)
    assert two_nodes.node(1).cpus == (4, 5, 6, 7, 12, 13, 14, 15)
    assert two_nodes.node_of_cpu(9) == 0
    assert two_nodes.node_of_cpu(13) == 1
    assert two_nodes.nic_node("ens1f0") == 1
    assert two_nodes.nic_node("veth0") is None
    assert two_nodes.node(1).hugepages == (numa.HugepagePool(2048, 1024, 200, 0),)
    assert two_nodes.node(1).free_hugepage_mb == 400
    with pytest.raises(KeyError):
        two_nodes.node_of_cpu(99)


def test_read_four_nodes_skips_offline_cpus_and_memory_only_nodes(
    four_nodes: numa.HostTopology,
) -> None:
    assert four_nodes.node_ids == (0, 1, 2, 3)
    assert four_nodes.node(3).cpus == (8,)
    assert 9 not in four_nodes.online_cpus
    with pytest.raises(KeyError):
        four_nodes.node(4)


def test_offline_nodes_are_ignored(tmp_path: Path) -> None:
    sysfs = make_sysfs(tmp_path, {0: "0-1", 1: "2-3"}, node_online="0")
    host = numa.read_host_topology(sysfs)
    assert host.node_ids == (0,)


def test_kernel_without_numa_is_one_node(tmp_path: Path) -> None:
    sysfs = make_sysfs(tmp_path, {0: "0-3"})
    for node_dir in (sysfs / "devices" / "system" / "node").iterdir():
        (node_dir / "cpulist").unlink()
        node_dir.rmdir()
    (sysfs / "devices" / "system" / "node").rmdir()
    host = numa.read_host_topology(sysfs)
    assert host.node_ids == (0,)
    assert host.node(0).cpus == (0, 1, 2, 3)


def test_real_host_is_readable() -> None:
    host = numa.read_host_topology()
    assert host.nodes, "every Linux host has at least one node"
    assert set(host.online_cpus) >= set(os.sched_getaffinity(0))
    for node in host.nodes:
        assert set(node.cpus) <= set(host.online_cpus)


# --------------------------------------------------------------------------- placement


def test_same_node_on_one_node_host(one_node: numa.HostTopology) -> None:
    plan = numa.plan_placement(
        one_node, NumaCase.SAME_NODE, [PeerNeeds.testpmd("server"), PeerNeeds.testpmd("client")]
    )
    assert plan.available, plan.reason
    server, client = plan["server"], plan["client"]
    assert {server.memory_node, client.memory_node} == {0}
    assert set(server.cpus).isdisjoint(client.cpus), "polling peers must not share a CPU"
    # CPU 0 is handed out last; main and forwarding lcore share the peer's one CPU.
    assert server.cpus == (1,) and client.cpus == (0,)
    assert server.dpdk_args() == ["--lcores", "0@1,1@1", "--socket-mem", "256"]
    assert client.lcore_map() == "0@0,1@0"


def test_cross_node_on_one_node_host_is_not_available(one_node: numa.HostTopology) -> None:
    plan = numa.plan_placement(
        one_node, NumaCase.CROSS_NODE, [PeerNeeds.polling("a"), PeerNeeds.polling("b")]
    )
    assert not plan.available
    assert "2 NUMA nodes" in plan.reason and "has 1" in plan.reason
    assert "would use: all peers on node 0" in plan.reason
    # The placement it would use is still given, and still on distinct CPUs.
    assert [p.memory_node for p in plan.placements] == [0, 0]
    assert set(plan["a"].cpus).isdisjoint(plan["b"].cpus)


def test_same_node_follows_the_nic(two_nodes: numa.HostTopology) -> None:
    plan = numa.plan_placement(
        two_nodes,
        NumaCase.SAME_NODE,
        [PeerNeeds.testpmd("server", hugepage_mb=128), PeerNeeds.polling("client")],
        nic="ens1f0",
    )
    assert plan.available, plan.reason
    assert all(p.memory_node == 1 and p.nic_node == 1 for p in plan.placements)
    assert all(two_nodes.node_of_cpu(c) == 1 for p in plan.placements for c in p.cpus)
    assert plan["server"].socket_mem() == "0,128"
    assert plan["client"].socket_mem() is None
    assert "NIC ens1f0 on node 1" in plan.reason


def test_same_node_without_nic_takes_the_biggest_node(tmp_path: Path) -> None:
    host = numa.read_host_topology(make_sysfs(tmp_path, {0: "0-1", 1: "2-5"}))
    plan = numa.plan_placement(host, NumaCase.SAME_NODE, [PeerNeeds.polling("a")])
    assert plan["a"].memory_node == 1


def test_cross_node_puts_peers_on_two_nodes(two_nodes: numa.HostTopology) -> None:
    plan = numa.plan_placement(
        two_nodes,
        NumaCase.CROSS_NODE,
        [PeerNeeds.testpmd("server", cpus=2, hugepage_mb=128), PeerNeeds.testpmd("client")],
        nic="ens1f0",
    )
    assert plan.available, plan.reason
    server, client = plan["server"], plan["client"]
    assert server.memory_node == 1, "first peer sits next to the NIC"
    assert client.memory_node == 0
    assert {two_nodes.node_of_cpu(c) for c in server.cpus} == {1}
    assert {two_nodes.node_of_cpu(c) for c in client.cpus} == {0}
    assert len(server.cpus) == 2
    assert server.lcore_map() == f"0@{server.cpus[0]},1@{server.cpus[1]}"
    assert server.dpdk_args()[-2:] == ["--socket-mem", "0,128"]
    assert client.dpdk_args()[-1] == "256,0"


def test_four_nodes_cross_node(four_nodes: numa.HostTopology) -> None:
    plan = numa.plan_placement(
        four_nodes,
        NumaCase.CROSS_NODE,
        [PeerNeeds.testpmd("a", hugepage_mb=64), PeerNeeds.testpmd("b", hugepage_mb=64)],
        nic="ens3",
    )
    assert plan.available, plan.reason
    assert plan["a"].memory_node == 2
    assert plan["b"].memory_node not in (2, 4)
    assert plan["a"].socket_mem() == "0,0,64,0"
    assert plan["b"].docker_cpuset()["cpuset_mems"] == str(plan["b"].memory_node)


def test_four_nodes_three_peers_alternate(four_nodes: numa.HostTopology) -> None:
    peers = [PeerNeeds.polling("a"), PeerNeeds.polling("b"), PeerNeeds.polling("c")]
    plan = numa.plan_placement(four_nodes, NumaCase.CROSS_NODE, peers, nic="ens3")
    assert plan.available, plan.reason
    assert plan["a"].memory_node == plan["c"].memory_node == 2
    assert plan["b"].memory_node != 2
    assert plan["a"].cpus != plan["c"].cpus


def test_too_few_cpus_is_not_available(one_node: numa.HostTopology) -> None:
    peers = [PeerNeeds.polling(name) for name in ("a", "b", "c")]
    plan = numa.plan_placement(one_node, NumaCase.SAME_NODE, peers)
    assert not plan.available
    assert "c needs 1 dedicated CPU(s) on node 0" in plan.reason
    assert len(plan.placements) == 3  # would share CPUs


def test_non_polling_peer_shares_the_node(one_node: numa.HostTopology) -> None:
    plan = numa.plan_placement(
        one_node,
        NumaCase.SAME_NODE,
        [PeerNeeds.polling("a"), PeerNeeds.polling("b"), PeerNeeds("logger", cpus=0)],
    )
    assert plan.available, plan.reason
    assert plan["logger"].cpus == (0, 1)


def test_hugepage_shortage_is_not_available(two_nodes: numa.HostTopology) -> None:
    peers = [PeerNeeds.testpmd("a", hugepage_mb=256), PeerNeeds.testpmd("b", hugepage_mb=256)]
    plan = numa.plan_placement(two_nodes, NumaCase.SAME_NODE, peers, nic="ens1f0")
    assert not plan.available  # node 1 has 400 MiB free, the peers need 512
    assert "b needs 256 MiB of hugepages on node 1, 144 MiB left" in plan.reason


def test_allowed_cpus_limit_the_plan(two_nodes: numa.HostTopology) -> None:
    plan = numa.plan_placement(
        two_nodes,
        NumaCase.SAME_NODE,
        [PeerNeeds.polling("a"), PeerNeeds.polling("b")],
        allowed_cpus={2, 3, 4},
    )
    assert plan.available, plan.reason
    assert {c for p in plan.placements for c in p.cpus} == {2, 3}


def test_no_peers_or_no_cpus_is_an_error(one_node: numa.HostTopology) -> None:
    with pytest.raises(ValueError):
        numa.plan_placement(one_node, NumaCase.SAME_NODE, [])
    with pytest.raises(ValueError, match="no usable CPUs"):
        numa.plan_placement(
            one_node, NumaCase.SAME_NODE, [PeerNeeds.polling("a")], allowed_cpus={7}
        )


def test_plan_lookup_by_unknown_peer(one_node: numa.HostTopology) -> None:
    plan = numa.plan_placement(one_node, NumaCase.SAME_NODE, [PeerNeeds.polling("a")])
    with pytest.raises(KeyError):
        plan["nobody"]


# --------------------------------------------------------------------------- applying a placement


def _on_thread(fn: Callable[[], T]) -> T:
    """Run fn on a fresh thread (per-thread policy must not leak into the test's thread)."""
    result: list[T] = []
    error: list[BaseException] = []

    def body() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


@pytest.fixture
def real_placement() -> numa.Placement:
    cpu = max(os.sched_getaffinity(0))
    host = numa.read_host_topology()
    node = host.node_of_cpu(cpu)
    try:
        _on_thread(lambda: numa.set_memory_policy(MemoryPolicy.DEFAULT, []))
    except OSError as exc:
        if exc.errno == errno.ENOSYS:
            pytest.skip("kernel without NUMA memory policy support")
        raise
    return numa.Placement("probe", (cpu,), node, None, "test", node_count=node + 1)


def test_memory_policy_round_trip_on_a_thread(real_placement: numa.Placement) -> None:
    def apply_and_read() -> tuple[MemoryPolicy, frozenset[int], set[int]]:
        real_placement.apply_to_current_thread(MemoryPolicy.BIND)
        policy, nodes = numa.get_memory_policy()
        return policy, nodes, os.sched_getaffinity(0)

    policy, nodes, affinity = _on_thread(apply_and_read)
    assert policy is MemoryPolicy.BIND
    assert nodes == {real_placement.memory_node}
    assert affinity == set(real_placement.cpus)
    # The caller's own thread is untouched.
    assert numa.get_memory_policy()[0] is MemoryPolicy.DEFAULT


def test_popen_placed_child_inherits_affinity_and_policy(real_placement: numa.Placement) -> None:
    before = os.sched_getaffinity(0)
    child = numa.popen_placed(
        ["sh", "-c", "grep Cpus_allowed_list /proc/self/status; cat /proc/self/numa_maps"],
        real_placement,
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = child.communicate(timeout=30)
    assert child.returncode == 0
    assert f"Cpus_allowed_list:\t{real_placement.cpus[0]}\n" in out
    assert f"bind:{real_placement.memory_node}" in out
    assert os.sched_getaffinity(0) == before


def test_bad_memory_node_is_refused() -> None:
    with pytest.raises(OSError):
        _on_thread(lambda: numa.set_memory_policy(MemoryPolicy.BIND, [1000]))
