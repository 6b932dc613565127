"""Host NUMA topology from sysfs, and CPU/memory placement of peers for same/cross-node cases."""

from __future__ import annotations

import ctypes
import enum
import os
import platform
import re
import subprocess
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_SYSFS = Path("/sys")


# --------------------------------------------------------------------------- cpulists


_CPULIST_ITEM = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_cpulist(text: str) -> tuple[int, ...]:
    """Parse a kernel cpulist such as ``"0-3,8-11"`` into sorted CPU ids.

    Args:
        text: the list; empty (or whitespace) means no CPUs.

    Raises:
        ValueError: on anything that is not comma-separated ids and ascending ranges.
    """
    cpus: set[int] = set()
    text = text.strip()
    if not text:
        return ()
    for item in text.split(","):
        match = _CPULIST_ITEM.match(item.strip())
        if not match:
            raise ValueError(f"bad cpulist item {item!r} in {text!r}")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise ValueError(f"descending range {item!r} in {text!r}")
        cpus.update(range(first, last + 1))
    return tuple(sorted(cpus))


def format_cpulist(cpus: Iterable[int]) -> str:
    """Format CPU ids as a compact cpulist (``[0, 1, 2, 3, 8]`` -> ``"0-3,8"``)."""
    ordered = sorted(set(cpus))
    parts: list[str] = []
    start = prev = None
    for cpu in ordered:
        if start is None:
            start = prev = cpu
        elif cpu == prev + 1:  # type: ignore[operator]
            prev = cpu
        else:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = cpu
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ",".join(parts)


# --------------------------------------------------------------------------- host topology


@dataclass(frozen=True)
class HugepagePool:
    """Hugepages of one size on one node.

    Attributes:
        size_kb: page size in KiB (2048, 1048576, ...).
        total: nr_hugepages.
        free: free_hugepages.
        surplus: surplus_hugepages.
    """

    size_kb: int
    total: int
    free: int
    surplus: int = 0

    @property
    def free_mb(self) -> int:
        """Free memory in this pool, in MiB."""
        return self.free * self.size_kb // 1024


@dataclass(frozen=True)
class NumaNode:
    """One NUMA node.

    Attributes:
        node_id: the node number.
        cpus: its online CPUs.
        hugepages: its hugepage pools, one per page size.
    """

    node_id: int
    cpus: tuple[int, ...]
    hugepages: tuple[HugepagePool, ...] = ()

    @property
    def free_hugepage_mb(self) -> int:
        """Free hugepage memory on this node over all page sizes, in MiB."""
        return sum(pool.free_mb for pool in self.hugepages)


@dataclass(frozen=True)
class NetDevice:
    """A network device and where it sits.

    Attributes:
        name: interface name.
        numa_node: its node, or None when unknown (sysfs says -1, or it has no device).
        virtual: True if it has no backing device (veth, TAP, bridge, lo...).
    """

    name: str
    numa_node: int | None
    virtual: bool


@dataclass(frozen=True)
class HostTopology:
    """What sysfs says about nodes, CPUs, hugepages and network devices.

    Attributes:
        nodes: NUMA nodes that have at least one online CPU, by id.
        online_cpus: every online CPU.
        net_devices: network devices by name.
    """

    nodes: tuple[NumaNode, ...]
    online_cpus: tuple[int, ...]
    net_devices: Mapping[str, NetDevice] = field(default_factory=dict)

    @property
    def node_ids(self) -> tuple[int, ...]:
        """Ids of the nodes."""
        return tuple(node.node_id for node in self.nodes)

    def node(self, node_id: int) -> NumaNode:
        """Return node ``node_id``.

        Raises:
            KeyError: if there is no such node.
        """
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(f"no NUMA node {node_id}")

    def node_of_cpu(self, cpu: int) -> int:
        """Return the node CPU ``cpu`` belongs to.

        Raises:
            KeyError: if no node lists that CPU.
        """
        for node in self.nodes:
            if cpu in node.cpus:
                return node.node_id
        raise KeyError(f"CPU {cpu} is on no known node")

    def nic_node(self, ifname: str) -> int | None:
        """Return the node of a network device, or None if unknown or not present."""
        device = self.net_devices.get(ifname)
        return None if device is None else device.numa_node

    def describe(self) -> str:
        """One line per node, e.g. ``node 0: CPUs 0-3, hugepages free 1024 MiB``."""
        return "; ".join(
            f"node {n.node_id}: CPUs {format_cpulist(n.cpus) or 'none'},"
            f" hugepages free {n.free_hugepage_mb} MiB"
            for n in self.nodes
        )


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError, PermissionError, OSError):
        return None


def _read_int(path: Path, default: int = 0) -> int:
    text = _read(path)
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _read_hugepages(node_dir: Path) -> tuple[HugepagePool, ...]:
    pools: list[HugepagePool] = []
    base = node_dir / "hugepages"
    if not base.is_dir():
        return ()
    for pool_dir in sorted(base.iterdir()):
        match = re.match(r"^hugepages-(\d+)kB$", pool_dir.name)
        if not match:
            continue
        pools.append(
            HugepagePool(
                size_kb=int(match.group(1)),
                total=_read_int(pool_dir / "nr_hugepages"),
                free=_read_int(pool_dir / "free_hugepages"),
                surplus=_read_int(pool_dir / "surplus_hugepages"),
            )
        )
    return tuple(sorted(pools, key=lambda p: p.size_kb))


def _read_net_devices(sysfs: Path) -> dict[str, NetDevice]:
    devices: dict[str, NetDevice] = {}
    net_dir = sysfs / "class" / "net"
    if not net_dir.is_dir():
        return devices
    for entry in sorted(net_dir.iterdir()):
        device_dir = entry / "device"
        if not device_dir.exists():
            devices[entry.name] = NetDevice(entry.name, None, virtual=True)
            continue
        node = _read_int(device_dir / "numa_node", default=-1)
        devices[entry.name] = NetDevice(entry.name, node if node >= 0 else None, virtual=False)
    return devices


def read_host_topology(sysfs: Path = DEFAULT_SYSFS) -> HostTopology:
    """Read NUMA nodes, CPUs, hugepages and network devices from a sysfs tree.

    A kernel without NUMA support has no ``devices/system/node``: then the host is one
    node 0 holding every online CPU (and the global hugepage pools).

    Args:
        sysfs: the sysfs root; tests pass a fake tree.
    """
    cpu_dir = sysfs / "devices" / "system" / "cpu"
    online_text = _read(cpu_dir / "online")
    if online_text is not None:
        online = parse_cpulist(online_text)
    else:
        online = tuple(
            sorted(
                int(p.name[3:])
                for p in (cpu_dir.iterdir() if cpu_dir.is_dir() else [])
                if re.match(r"^cpu\d+$", p.name)
            )
        )
    online_set = set(online)

    node_root = sysfs / "devices" / "system" / "node"
    nodes: list[NumaNode] = []
    if node_root.is_dir():
        online_nodes_text = _read(node_root / "online")
        online_nodes = set(parse_cpulist(online_nodes_text)) if online_nodes_text else None
        for node_dir in node_root.iterdir():
            match = re.match(r"^node(\d+)$", node_dir.name)
            if not match:
                continue
            node_id = int(match.group(1))
            if online_nodes is not None and node_id not in online_nodes:
                continue
            cpus = tuple(
                c for c in parse_cpulist(_read(node_dir / "cpulist") or "") if c in online_set
            )
            if not cpus:
                continue  # memory-only node: nothing to place on it
            nodes.append(NumaNode(node_id, cpus, _read_hugepages(node_dir)))
    if not nodes:
        nodes.append(NumaNode(0, online, _read_hugepages(sysfs / "kernel" / "mm")))
    return HostTopology(
        nodes=tuple(sorted(nodes, key=lambda n: n.node_id)),
        online_cpus=online,
        net_devices=_read_net_devices(sysfs),
    )


# --------------------------------------------------------------------------- placement


class NumaCase(enum.StrEnum):
    """Where the peers of one case go relative to each other."""

    SAME_NODE = "same-node"
    CROSS_NODE = "cross-node"


class MemoryPolicy(enum.IntEnum):
    """set_mempolicy(2) modes the harness uses."""

    DEFAULT = 0
    PREFERRED = 1
    """Allocate on the node if possible, silently fall back elsewhere."""
    BIND = 2
    """Allocate only on the node (a cross-node measurement cannot silently turn local)."""
    INTERLEAVE = 3
    LOCAL = 4
    PREFERRED_MANY = 5
    WEIGHTED_INTERLEAVE = 6


@dataclass(frozen=True)
class PeerNeeds:
    """What one peer process needs from the host.

    Attributes:
        name: the peer's name in the plan ("server", "testpmd-client"...).
        lcores: threads it runs (DPDK lcores; 1 for a plain process).
        cpus: CPUs it must own; 0 means it can share any CPU of its node (not polling).
        hugepage_mb: hugepage memory it needs on its memory node (0: none).
    """

    name: str
    lcores: int = 1
    cpus: int = 1
    hugepage_mb: int = 0

    @classmethod
    def testpmd(cls, name: str = "testpmd", *, cpus: int = 1, hugepage_mb: int = 256) -> PeerNeeds:
        """testpmd: 2 lcores (main + forwarding); its polling needs a CPU of its own."""
        return cls(name=name, lcores=2, cpus=cpus, hugepage_mb=hugepage_mb)

    @classmethod
    def polling(cls, name: str, *, hugepage_mb: int = 0) -> PeerNeeds:
        """A single polling thread that must not share its CPU."""
        return cls(name=name, lcores=1, cpus=1, hugepage_mb=hugepage_mb)


@dataclass(frozen=True)
class Placement:
    """Where one peer runs.

    Renders as DPDK EAL arguments (``--lcores`` pinning every lcore to a CPU,
    ``--socket-mem`` on the memory node) or Docker cpuset options, or is applied to a
    thread (CPU affinity with ``os.sched_setaffinity``, memory policy with the
    ``set_mempolicy`` system call through ctypes, so no ``numactl`` binary is needed) from
    which a child process is spawned and inherits both.

    Attributes:
        peer: the peer's name.
        cpus: CPUs it is pinned to (lcore i runs on ``cpus[i % len(cpus)]``).
        memory_node: node its memory comes from.
        nic_node: node of the NIC the case uses, or None if none/unknown.
        reason: why it is placed there, in words.
        lcores: how many lcores/threads it runs.
        hugepage_mb: hugepage memory to reserve on ``memory_node``.
        node_count: highest node id + 1 on the host (length of ``--socket-mem``).
    """

    peer: str
    cpus: tuple[int, ...]
    memory_node: int
    nic_node: int | None
    reason: str
    lcores: int = 1
    hugepage_mb: int = 0
    node_count: int = 1

    @property
    def affinity(self) -> frozenset[int]:
        """The CPU set for ``os.sched_setaffinity``."""
        return frozenset(self.cpus)

    def lcore_map(self) -> str:
        """DPDK ``--lcores`` value, e.g. ``"0@1,1@1"``: lcore 0 (main) is the lowest id."""
        return ",".join(
            f"{lcore}@{self.cpus[lcore % len(self.cpus)]}" for lcore in range(self.lcores)
        )

    def socket_mem(self) -> str | None:
        """DPDK ``--socket-mem`` value (MiB per node), or None when no hugepages are needed."""
        if self.hugepage_mb <= 0:
            return None
        per_node = [0] * max(self.node_count, self.memory_node + 1)
        per_node[self.memory_node] = self.hugepage_mb
        return ",".join(str(mb) for mb in per_node)

    def dpdk_args(self) -> list[str]:
        """EAL arguments pinning lcores and placing hugepage memory."""
        args = ["--lcores", self.lcore_map()]
        socket_mem = self.socket_mem()
        if socket_mem is not None:
            args += ["--socket-mem", socket_mem]
        return args

    def docker_cpuset(self) -> dict[str, str]:
        """Docker SDK ``containers.run`` options pinning the container."""
        return {"cpuset_cpus": format_cpulist(self.cpus), "cpuset_mems": str(self.memory_node)}

    def apply_to_current_thread(self, policy: MemoryPolicy = MemoryPolicy.BIND) -> None:
        """Pin the calling thread to ``cpus`` and set its memory policy to ``memory_node``.

        Both are per-thread and inherited by children forked from this thread, which is
        how `popen_placed` and ``netns.popen_in_netns(prepare=...)`` place a child
        without a preexec_fn.
        """
        os.sched_setaffinity(0, self.affinity)
        set_memory_policy(policy, [self.memory_node])


@dataclass(frozen=True)
class PlacementPlan:
    """The placement of every peer of a case, or why the case cannot be placed.

    Attributes:
        case: same-node or cross-node.
        available: False if this host cannot give the case what it asks for.
        reason: why (always set; a skip reason when not available).
        placements: one per peer, in the order asked; when not available, the placement
            that would be used anyway (e.g. everything on node 0).
    """

    case: NumaCase
    available: bool
    reason: str
    placements: tuple[Placement, ...]

    def __getitem__(self, peer: str) -> Placement:
        for placement in self.placements:
            if placement.peer == peer:
                return placement
        raise KeyError(peer)


def _cpu_order(cpus: Iterable[int]) -> list[int]:
    """CPUs in allocation order: ascending, with CPU 0 (housekeeping, IRQs) last."""
    ordered = sorted(cpus)
    return [c for c in ordered if c != 0] + [c for c in ordered if c == 0]


def plan_placement(
    host: HostTopology,
    case: NumaCase,
    peers: Sequence[PeerNeeds],
    *,
    nic: str | None = None,
    allowed_cpus: Iterable[int] | None = None,
) -> PlacementPlan:
    """Place peers on nodes and CPUs for a same-node or cross-node case.

    Same-node: every peer on one node (the NIC's node when known, else the node with
    most usable CPUs). Cross-node: peers alternate between two different nodes (the
    first on the NIC's node when known), each with its memory on its own node.
    Every peer gets ``needs.cpus`` CPUs nobody else in the plan gets.

    Args:
        host: the host topology.
        case: same-node or cross-node.
        peers: what each peer needs, in order (e.g. server, client).
        nic: a network device the case uses, to keep the first peer near it.
        allowed_cpus: CPUs the harness may use (default: all online CPUs; pass
            ``os.sched_getaffinity(0)`` on a real host).

    Returns:
        The plan; ``available`` is False (with the reason and the placement that would
        be used) on a one-node host for cross-node, or when CPUs or hugepages run short.
    """
    if not peers:
        raise ValueError("no peers to place")
    allowed = set(host.online_cpus if allowed_cpus is None else allowed_cpus)
    usable = {n.node_id: _cpu_order(c for c in n.cpus if c in allowed) for n in host.nodes}
    candidates = [nid for nid in host.node_ids if usable[nid]]
    if not candidates:
        raise ValueError(f"no usable CPUs (allowed {format_cpulist(allowed)}; {host.describe()})")
    nic_node = host.nic_node(nic) if nic is not None else None
    node_count = max(host.node_ids) + 1
    problems: list[str] = []

    def by_size(nid: int) -> tuple[int, int]:
        return (-len(usable[nid]), nid)

    first = nic_node if nic_node in candidates else min(candidates, key=by_size)
    if case is NumaCase.SAME_NODE:
        assignment = [first] * len(peers)
        where = f"all peers on node {first}"
    else:
        others = sorted((nid for nid in candidates if nid != first), key=by_size)
        if not others:
            problems.append(
                f"cross-node needs 2 NUMA nodes with usable CPUs; this host has"
                f" {len(candidates)} ({host.describe()})"
            )
            second = first
            where = f"all peers on node {first}"
        else:
            second = others[0]
            where = f"peers alternate between node {first} and node {second}"
        assignment = [first if i % 2 == 0 else second for i in range(len(peers))]
    if nic is not None:
        where += f"; NIC {nic} on node {nic_node if nic_node is not None else 'unknown'}"

    # Hand out dedicated CPUs node by node, in peer order.
    next_free = {nid: 0 for nid in candidates}
    hugepage_left = {nid: host.node(nid).free_hugepage_mb for nid in candidates}
    placements: list[Placement] = []
    for needs, nid in zip(peers, assignment, strict=True):
        pool = usable[nid]
        if needs.cpus <= 0:
            cpus = tuple(sorted(pool))
            detail = f"shares node {nid} CPUs"
        else:
            start = next_free[nid]
            wanted = [pool[(start + k) % len(pool)] for k in range(needs.cpus)]
            if start + needs.cpus > len(pool):
                problems.append(
                    f"{needs.name} needs {needs.cpus} dedicated CPU(s) on node {nid} but only"
                    f" {max(len(pool) - start, 0)} of {format_cpulist(pool)} are left"
                )
            next_free[nid] = start + needs.cpus
            cpus = tuple(sorted(set(wanted)))
            detail = f"CPU(s) {format_cpulist(cpus)} of node {nid}"
        if needs.hugepage_mb > 0:
            if hugepage_left[nid] < needs.hugepage_mb:
                problems.append(
                    f"{needs.name} needs {needs.hugepage_mb} MiB of hugepages on node {nid},"
                    f" {max(hugepage_left[nid], 0)} MiB left"
                )
            hugepage_left[nid] -= needs.hugepage_mb
        placements.append(
            Placement(
                peer=needs.name,
                cpus=cpus,
                memory_node=nid,
                nic_node=nic_node,
                reason=f"{case.value}: {detail}, memory on node {nid}",
                lcores=needs.lcores,
                hugepage_mb=needs.hugepage_mb,
                node_count=node_count,
            )
        )
    if problems:
        reason = f"{case.value} placement not available: " + "; ".join(problems)
        reason += f" (would use: {where})"
        return PlacementPlan(case, False, reason, tuple(placements))
    return PlacementPlan(case, True, f"{case.value}: {where}", tuple(placements))


def plan_for_this_host(
    case: NumaCase, peers: Sequence[PeerNeeds], *, nic: str | None = None
) -> PlacementPlan:
    """`plan_placement` on the real /sys, limited to the CPUs this process may use."""
    return plan_placement(
        read_host_topology(), case, peers, nic=nic, allowed_cpus=os.sched_getaffinity(0)
    )


# --------------------------------------------------------------------------- memory policy


# (set_mempolicy, get_mempolicy) system call numbers; libc has no wrapper (libnuma does).
_MEMPOLICY_SYSCALLS = {
    "x86_64": (238, 239),
    "aarch64": (237, 236),
    "arm64": (237, 236),
    "riscv64": (237, 236),
    "ppc64le": (261, 260),
    "s390x": (270, 269),
}
_BITS_PER_LONG = ctypes.sizeof(ctypes.c_ulong) * 8
_MAX_NODES = 1024


def _mempolicy_syscalls() -> tuple[int, int]:
    machine = platform.machine()
    try:
        return _MEMPOLICY_SYSCALLS[machine]
    except KeyError:
        raise NotImplementedError(
            f"set_mempolicy system call number unknown for {machine}; use numactl"
        ) from None


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def set_memory_policy(policy: MemoryPolicy, nodes: Iterable[int]) -> None:
    """Set the calling thread's NUMA memory policy (set_mempolicy(2)).

    Args:
        policy: BIND, PREFERRED or DEFAULT (DEFAULT ignores ``nodes``).
        nodes: node ids (PREFERRED uses exactly one).

    Raises:
        OSError: from the kernel (ENOSYS without NUMA support, EINVAL for a bad node).
    """
    set_nr, _ = _mempolicy_syscalls()
    words = _MAX_NODES // _BITS_PER_LONG
    mask = (ctypes.c_ulong * words)()
    node_list = [] if policy is MemoryPolicy.DEFAULT else list(nodes)
    for node in node_list:
        if not 0 <= node < _MAX_NODES:
            raise ValueError(f"node {node} out of range")
        mask[node // _BITS_PER_LONG] |= 1 << (node % _BITS_PER_LONG)
    mask_ptr = mask if node_list else None
    # The kernel reads maxnode - 1 bits (a historical off-by-one that libnuma also follows).
    result = _libc().syscall(
        set_nr, ctypes.c_int(int(policy)), mask_ptr, ctypes.c_ulong(_MAX_NODES + 1)
    )
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"set_mempolicy({policy.name}, {node_list}): {os.strerror(err)}")


def get_memory_policy() -> tuple[MemoryPolicy, frozenset[int]]:
    """Return the calling thread's memory policy and node set (get_mempolicy(2))."""
    _, get_nr = _mempolicy_syscalls()
    words = _MAX_NODES // _BITS_PER_LONG
    mask = (ctypes.c_ulong * words)()
    mode = ctypes.c_int(0)
    result = _libc().syscall(
        get_nr, ctypes.byref(mode), mask, ctypes.c_ulong(_MAX_NODES + 1), None, ctypes.c_ulong(0)
    )
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"get_mempolicy: {os.strerror(err)}")
    nodes = frozenset(
        word * _BITS_PER_LONG + bit
        for word in range(words)
        for bit in range(_BITS_PER_LONG)
        if mask[word] >> bit & 1
    )
    return MemoryPolicy(mode.value & 0xFF), nodes


def popen_placed(
    argv: Sequence[str],
    placement: Placement,
    *,
    policy: MemoryPolicy = MemoryPolicy.BIND,
    **popen_kwargs: Any,
) -> subprocess.Popen[Any]:
    """Start ``argv`` pinned to ``placement``'s CPUs with its memory on the placement's node.

    The affinity and memory policy are set on a throw-away thread that then spawns the
    child, which inherits both; the caller's own threads are not touched. To also enter a
    network namespace use ``netns.popen_in_netns(ns, argv,
    prepare=placement.apply_to_current_thread)``.
    """
    outcome: dict[str, Any] = {}

    def spawn() -> None:
        try:
            placement.apply_to_current_thread(policy)
            outcome["process"] = subprocess.Popen(list(argv), **popen_kwargs)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=spawn, name=f"placed-{placement.peer}", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    process: subprocess.Popen[Any] = outcome["process"]
    return process
