"""Snapshots of the host resources a harness run can leave behind, and what grew between two."""

from __future__ import annotations

import contextlib
import enum
import os
import re
import stat
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.topology import netns as topo_netns
from harness.topology.hugepages import hugetlbfs_mounts
from harness.topology.labels import (
    LABEL_KEY,
    parse_run_id,
    run_id_from_link,
    run_id_from_name,
    run_id_from_socket_dir,
)
from harness.topology.reap import ReapPaths

PROC = Path("/proc")
MEMFD_PREFIX = "/memfd:"
EVENTFD_TARGET = "anon_inode:[eventfd]"
SELF = "self"
CHILD = "child"
_CMDLINE_SPLIT = re.compile(r"[\x00\s=,:]+")


class ResourceKind(enum.StrEnum):
    """What a snapshot counts. Each open fd is counted once: memfds and eventfds (of any
    process) under their own kinds, every other fd of this process under FD."""

    FD = "fd"
    MEMFD = "memfd"
    EVENTFD = "eventfd"
    PROCESS = "process"
    NETNS = "netns"
    LINK = "link"
    CONTAINER = "container"
    SOCKET_DIR = "socket-dir"
    SOCKET_FILE = "socket-file"
    DPDK_DIR = "dpdk-dir"
    HUGEPAGE_FILE = "hugepage-file"


@dataclass(frozen=True, order=True)
class Resource:
    """One thing on the host; two snapshots hold the same thing when kind and key agree.

    Attributes:
        kind: What it is.
        key: Its identity within the kind ("fd 7", "pid 12 fd 9", a name or a path).
        detail: What a person needs to find it (fd target, command line...).
        owner: "self" (this process), "child" (a descendant of it) or "" (another
            process, or no process).
        run_id: The run whose label it carries, if any.
    """

    kind: ResourceKind
    key: str
    detail: str = field(default="", compare=False)
    owner: str = field(default="", compare=False)
    run_id: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        whose = f"run {self.run_id}" if self.run_id else (self.owner or "not ours")
        detail = f" {self.detail}" if self.detail else ""
        return f"{self.kind.value} {self.key}{detail} [{whose}]"

    def as_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "kind": self.kind.value,
            "key": self.key,
            "detail": self.detail,
            "owner": self.owner,
            "run_id": self.run_id,
        }


@dataclass(frozen=True)
class Snapshot:
    """The resources present at one moment.

    Attributes:
        taken: Epoch seconds.
        resources: What was found.
        notes: What could not be looked at, and why (e.g. no Docker engine).
    """

    taken: float
    resources: frozenset[Resource]
    notes: tuple[str, ...] = ()

    def counts(self) -> dict[str, int]:
        """How many resources of each kind."""
        return {kind.value: sum(r.kind is kind for r in self.resources) for kind in ResourceKind}


@dataclass(frozen=True)
class Growth:
    """What a later snapshot has that an earlier one had not.

    Attributes:
        leaked: New resources of ours: held by this process or a descendant, or carrying
            the label of one of our runs.
        foreign: New resources of anyone else (other users of the host, other runs).
    """

    leaked: tuple[Resource, ...]
    foreign: tuple[Resource, ...]


def is_ours(resource: Resource, run_ids: Collection[str]) -> bool:
    """Whether a resource belongs to this process, its descendants or one of `run_ids`."""
    return resource.owner in (SELF, CHILD) or (
        resource.run_id is not None and resource.run_id in run_ids
    )


def growth(before: Snapshot, after: Snapshot, run_ids: Collection[str] = ()) -> Growth:
    """The resources in `after` that were not in `before`, split into ours and not ours.

    Args:
        before: The earlier snapshot.
        after: The later snapshot.
        run_ids: Run ids whose labelled objects are ours.
    """
    new = sorted(after.resources - before.resources)
    return Growth(
        leaked=tuple(r for r in new if is_ours(r, run_ids)),
        foreign=tuple(r for r in new if not is_ours(r, run_ids)),
    )


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class _Process:
    pid: int
    ppid: int
    comm: str
    state: str
    start_time: int


def _read_processes(proc: Path) -> dict[int, _Process]:
    found: dict[int, _Process] = {}
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: split after the last ')'.
        comm = text[text.find("(") + 1 : text.rfind(")")]
        fields = text[text.rfind(")") + 2 :].split()
        with contextlib.suppress(IndexError, ValueError):
            pid = int(entry.name)
            found[pid] = _Process(pid, int(fields[1]), comm, fields[0], int(fields[19]))
    return found


def _descendants(processes: dict[int, _Process], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for process in processes.values():
        children.setdefault(process.ppid, []).append(process.pid)
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _cmdline(proc: Path, pid: int) -> str:
    try:
        raw = Path(proc, str(pid), "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")


def process_commands(proc: Path = PROC) -> Iterator[tuple[int, str]]:
    """(pid, command line with spaces between arguments) of every process that has one."""
    try:
        pids = sorted(int(name) for name in os.listdir(proc) if name.isdigit())
    except OSError:
        return
    for pid in pids:
        command = _cmdline(proc, pid)
        if command:
            yield pid, command


def run_id_in_command(cmdline: str) -> str | None:
    """The run id a labelled name in a command line carries (a socket path, a DPDK
    --file-prefix, a namespace or container name), or None."""
    for token in _CMDLINE_SPLIT.split(cmdline):
        for part in filter(None, token.split("/")):
            run_id = parse_run_id(part)
            if run_id is not None:
                return run_id
    return None


def _fd_targets(proc: Path, pid: int) -> Iterator[tuple[int, str]]:
    fd_dir = Path(proc, str(pid), "fd")
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return
    for name in names:
        with contextlib.suppress(OSError, ValueError):
            yield int(name), os.readlink(fd_dir / name)


def _fd_kind(target: str) -> ResourceKind | None:
    if target.startswith(MEMFD_PREFIX):
        return ResourceKind.MEMFD
    if target == EVENTFD_TARGET:
        return ResourceKind.EVENTFD
    return None


def _scan_processes(proc: Path, me: int) -> Iterator[Resource]:
    """This process's fds; memfds and eventfds of every process; our and labelled processes."""
    processes = _read_processes(proc)
    descendants = _descendants(processes, me)
    for pid, process in sorted(processes.items()):
        owner = SELF if pid == me else CHILD if pid in descendants else ""
        command = _cmdline(proc, pid)
        run_id = run_id_in_command(command)
        if owner == CHILD or run_id is not None:
            state = " (zombie)" if process.state == "Z" else ""
            yield Resource(
                ResourceKind.PROCESS,
                f"pid {pid} started {process.start_time}",
                f"{command or process.comm}{state}",
                owner,
                run_id,
            )
        for fd, target in _fd_targets(proc, pid):
            kind = _fd_kind(target)
            if kind is not None:
                detail = f"{process.comm}: {target}"
                yield Resource(kind, f"pid {pid} fd {fd}", detail, owner, run_id)
            elif pid == me:
                yield Resource(ResourceKind.FD, f"fd {fd}", f"-> {target}", SELF)


# --------------------------------------------------------------------------- host objects


def _scan_network() -> Iterator[Resource]:
    for name in topo_netns.list_netns():
        yield Resource(ResourceKind.NETNS, name, run_id=run_id_from_name(name))
    for name, alias in topo_netns.list_links():
        yield Resource(ResourceKind.LINK, name, alias or "", run_id=run_id_from_link(name))


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        return list(os.scandir(directory))
    except OSError:
        return []


def _scan_socket_dirs(tmp_dir: Path) -> Iterator[Resource]:
    """Run-labelled socket directories in `tmp_dir`, and every socket file inside them."""
    for entry in _entries(tmp_dir):
        run_id = run_id_from_socket_dir(entry.name)
        if run_id is None or not entry.is_dir(follow_symlinks=False):
            continue
        yield Resource(ResourceKind.SOCKET_DIR, entry.path, run_id=run_id)
        for parent, _dirs, files in os.walk(entry.path):
            for name in files:
                path = os.path.join(parent, name)
                with contextlib.suppress(OSError):
                    if stat.S_ISSOCK(os.lstat(path).st_mode):
                        yield Resource(ResourceKind.SOCKET_FILE, path, run_id=run_id)


def _scan_dpdk(paths: ReapPaths) -> Iterator[Resource]:
    for entry in _entries(paths.dpdk_runtime_dir):
        yield Resource(ResourceKind.DPDK_DIR, entry.path, run_id=run_id_from_name(entry.name))
    for mount in hugetlbfs_mounts(paths.mounts_file):
        for entry in _entries(mount):
            yield Resource(
                ResourceKind.HUGEPAGE_FILE, entry.path, run_id=run_id_from_name(entry.name)
            )


def _scan_containers(client: Any) -> list[Resource]:
    """Labelled containers; the client's keep-alive connection is closed afterwards, so the
    snapshot's own socket is never counted as this process's fd (it came and went with the
    engine's idle timeout: a "leak" in the first run of a soak)."""
    from harness.runtime.docker import list_containers

    try:
        return [
            Resource(
                ResourceKind.CONTAINER,
                container.name,
                container.status,
                run_id=(container.labels or {}).get(LABEL_KEY),
            )
            for container in list_containers(client)
        ]
    finally:
        client.close()


# --------------------------------------------------------------------------- snapshots


class _Auto(enum.Enum):
    AUTO = "auto"


AUTO = _Auto.AUTO
"""Default docker client: connect once if an engine answers, else leave containers out."""


class Snapshotter:
    """Takes snapshots of one host, the same way each time.

    Args:
        paths: Where socket directories, DPDK runtime directories and the mount table are
            (default: this host's).
        proc: The proc filesystem (tests give a fake tree).
        pid: The process whose fds and descendants count as "self" (default: this one).
        network: Also list network namespaces and links (pyroute2).
        docker_client: A docker SDK client, AUTO to connect if an engine answers, or None to
            leave containers out.
    """

    def __init__(
        self,
        paths: ReapPaths | None = None,
        *,
        proc: Path = PROC,
        pid: int | None = None,
        network: bool = True,
        docker_client: Any = AUTO,
    ) -> None:
        self.paths = paths or ReapPaths()
        self.proc = proc
        self.pid = os.getpid() if pid is None else pid
        self.network = network
        self._notes: list[str] = []
        self.docker = self._connect(docker_client)

    def _connect(self, docker_client: Any) -> Any:
        """The client is made once, before the first snapshot: its socket is then part of
        every snapshot of this process's fds, not growth."""
        if docker_client is not AUTO:
            if docker_client is None:
                self._notes.append("containers: not checked (no Docker client given)")
            return docker_client
        from harness.runtime.docker import DockerError, engine_client

        try:
            return engine_client(timeout=5)
        except DockerError as exc:
            self._notes.append(f"containers: not checked ({str(exc).splitlines()[0]})")
            return None

    def take(self) -> Snapshot:
        """Snapshot every resource kind now; a kind that cannot be read becomes a note."""
        notes = list(self._notes)
        found: list[Resource] = []
        scans: list[tuple[str, Callable[[], Iterable[Resource]]]] = [
            ("socket directories", lambda: _scan_socket_dirs(self.paths.tmp_dir)),
            ("DPDK files", lambda: _scan_dpdk(self.paths)),
        ]
        if self.network:
            scans.append(("namespaces and links", _scan_network))
        if self.docker is not None:
            scans.append(("containers", lambda: _scan_containers(self.docker)))
        # Last: the other scans' own sockets (netlink, the engine's) are closed by then.
        scans.append(("processes and fds", lambda: _scan_processes(self.proc, self.pid)))
        for what, scan in scans:
            try:
                found.extend(scan())
            except Exception as exc:
                notes.append(f"{what}: not read ({type(exc).__name__}: {exc})")
        return Snapshot(time.time(), frozenset(found), tuple(notes))
