"""Tests of host resource snapshots: a fake /proc tree and real files, sockets and namespaces."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.topology import netns as tn
from harness.topology.labels import RunLabel
from harness.topology.reap import ReapPaths
from harness.topology.resources import (
    Resource,
    ResourceKind,
    Snapshot,
    Snapshotter,
    growth,
    run_id_in_command,
)

ME = 100
OURS = "1a2b3c4d"
THEIRS = "5e6f7a8b"


class FakeProc:
    """A /proc tree with the files the snapshotter reads: stat, cmdline and fd links."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def add(self, pid: int, ppid: int, command: str, state: str = "S") -> None:
        directory = self.root / str(pid)
        (directory / "fd").mkdir(parents=True)
        comm = command.split()[0].rsplit("/", 1)[-1][:15]
        fields = [state, str(ppid)] + ["0"] * 17 + [str(1000 + pid)]
        (directory / "stat").write_text(f"{pid} ({comm}) {' '.join(fields)}\n")
        (directory / "cmdline").write_bytes(command.replace(" ", "\0").encode() + b"\0")

    def open_fd(self, pid: int, fd: int, target: str) -> None:
        os.symlink(target, self.root / str(pid) / "fd" / str(fd))

    def close_fd(self, pid: int, fd: int) -> None:
        (self.root / str(pid) / "fd" / str(fd)).unlink()


@pytest.fixture
def host(tmp_path: Path) -> tuple[FakeProc, ReapPaths]:
    for name in ("proc", "tmp", "dpdk", "huge"):
        (tmp_path / name).mkdir()
    mounts = tmp_path / "mounts"
    mounts.write_text(f"nodev {tmp_path / 'huge'} hugetlbfs rw,relatime,pagesize=2M 0 0\n")
    proc = FakeProc(tmp_path / "proc")
    proc.add(1, 0, "/sbin/init")
    proc.add(ME, 1, "python -m harness.cli soak")
    proc.open_fd(ME, 0, "/dev/null")
    proc.open_fd(ME, 3, "socket:[42]")
    proc.add(300, 1, "python someone-elses-benchmark.py")
    proc.open_fd(300, 4, "/memfd:their-region (deleted)")
    paths = ReapPaths(
        registry_dir=tmp_path / "registry",
        tmp_dir=tmp_path / "tmp",
        dpdk_runtime_dir=tmp_path / "dpdk",
        mounts_file=mounts,
    )
    return proc, paths


def snapshotter(proc: FakeProc, paths: ReapPaths) -> Snapshotter:
    return Snapshotter(paths, proc=proc.root, pid=ME, network=False, docker_client=None)


def keys(resources: tuple[Resource, ...]) -> set[tuple[ResourceKind, str]]:
    return {(r.kind, r.key) for r in resources}


def test_an_unchanged_host_has_no_growth(host: tuple[FakeProc, ReapPaths]) -> None:
    proc, paths = host
    shots = snapshotter(proc, paths)
    first = shots.take()
    assert growth(first, shots.take()) == growth(first, first)
    assert not growth(first, shots.take()).leaked
    assert first.counts()["fd"] == 2
    assert first.counts()["memfd"] == 1  # the other process's, seen but not ours
    assert "containers: not checked (no Docker client given)" in first.notes


def test_fds_memfds_eventfds_and_processes_of_ours_are_leaks(
    host: tuple[FakeProc, ReapPaths],
) -> None:
    proc, paths = host
    shots = snapshotter(proc, paths)
    before = shots.take()
    proc.open_fd(ME, 7, "pipe:[99]")
    proc.open_fd(ME, 8, "anon_inode:[eventfd]")
    proc.add(101, ME, "python -m reference_impl.cli server --socket /x/memif.sock")
    proc.add(102, 101, "sleep 600")  # a grandchild is ours too
    proc.open_fd(101, 5, "/memfd:memif-region (deleted)")
    proc.add(200, 1, f"dpdk-testpmd --file-prefix memif-{OURS}-server3 -a 0000:00:00.0")
    proc.open_fd(200, 9, "anon_inode:[eventfd]")
    proc.add(
        201,
        1,
        f"memif-ref client --socket /tmp/memif-harness-{THEIRS}-case-x/memif.sock",
    )
    proc.open_fd(300, 6, "anon_inode:[eventfd]")
    grown = growth(before, shots.take(), run_ids=[OURS])
    assert keys(grown.leaked) == {
        (ResourceKind.FD, "fd 7"),
        (ResourceKind.EVENTFD, f"pid {ME} fd 8"),
        (ResourceKind.PROCESS, "pid 101 started 1101"),
        (ResourceKind.PROCESS, "pid 102 started 1102"),
        (ResourceKind.MEMFD, "pid 101 fd 5"),
        (ResourceKind.PROCESS, "pid 200 started 1200"),  # labelled with our run, reparented
        (ResourceKind.EVENTFD, "pid 200 fd 9"),
    }
    assert keys(grown.foreign) == {
        (ResourceKind.PROCESS, "pid 201 started 1201"),  # another run's
        (ResourceKind.EVENTFD, "pid 300 fd 6"),  # someone else's process
    }
    testpmd = next(r for r in grown.leaked if r.key == "pid 200 started 1200")
    assert testpmd.run_id == OURS and "--file-prefix" in testpmd.detail


def test_a_closed_fd_and_an_exited_child_are_no_growth(host: tuple[FakeProc, ReapPaths]) -> None:
    proc, paths = host
    shots = snapshotter(proc, paths)
    proc.add(101, ME, "memif-ref")
    before = shots.take()
    proc.close_fd(ME, 3)
    (proc.root / "101" / "stat").unlink()  # the child is gone
    assert growth(before, shots.take(), [OURS]) == growth(before, before)


def test_a_zombie_child_is_named_as_such(host: tuple[FakeProc, ReapPaths]) -> None:
    proc, paths = host
    shots = snapshotter(proc, paths)
    before = shots.take()
    proc.add(101, ME, "memif-ref", state="Z")
    (leaked,) = growth(before, shots.take()).leaked
    assert leaked.detail.endswith("(zombie)")


def test_socket_dirs_sockets_dpdk_dirs_and_hugepage_files(
    host: tuple[FakeProc, ReapPaths], tmp_path: Path
) -> None:
    proc, paths = host
    shots = snapshotter(proc, paths)
    (paths.tmp_dir / "unrelated").mkdir()
    before = shots.take()
    ours = RunLabel(OURS).make_socket_dir("case", paths.tmp_dir)
    theirs = RunLabel(THEIRS).make_socket_dir("case", paths.tmp_dir)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    cwd = os.getcwd()
    os.chdir(ours)  # a relative bind keeps the address under 108 bytes
    try:
        listener.bind("m.sock")
    finally:
        os.chdir(cwd)
        listener.close()
    (ours / "not-a-socket.log").write_text("")
    (paths.dpdk_runtime_dir / f"memif-{OURS}-server1").mkdir()
    (paths.dpdk_runtime_dir / "rte").mkdir()
    (tmp_path / "huge" / f"memif-{OURS}-client2map_0").write_bytes(b"")
    grown = growth(before, shots.take(), [OURS])
    assert keys(grown.leaked) == {
        (ResourceKind.SOCKET_DIR, str(ours)),
        (ResourceKind.SOCKET_FILE, str(ours / "m.sock")),
        (ResourceKind.DPDK_DIR, str(paths.dpdk_runtime_dir / f"memif-{OURS}-server1")),
        (ResourceKind.HUGEPAGE_FILE, str(tmp_path / "huge" / f"memif-{OURS}-client2map_0")),
    }
    assert keys(grown.foreign) == {
        (ResourceKind.SOCKET_DIR, str(theirs)),
        (ResourceKind.DPDK_DIR, str(paths.dpdk_runtime_dir / "rte")),
    }


def test_a_kind_that_cannot_be_read_is_a_note(host: tuple[FakeProc, ReapPaths]) -> None:
    _, paths = host
    missing = paths.tmp_dir / "missing"
    shots = Snapshotter(paths, proc=missing, pid=ME, network=False, docker_client=None)
    snapshot = shots.take()
    assert any(note.startswith("processes and fds: not read") for note in snapshot.notes)


def test_containers_come_from_the_docker_client(host: tuple[FakeProc, ReapPaths]) -> None:
    proc, paths = host

    class Container:
        def __init__(self, name: str, run_id: str) -> None:
            self.name, self.labels, self.status = name, {"memif-harness.run": run_id}, "exited"

    class Containers:
        def __init__(self) -> None:
            self.items: list[Container] = []

        def list(self, all: bool, filters: dict[str, str]) -> list[Container]:
            assert all and filters == {"label": "memif-harness.run"}
            return list(self.items)

    class Client:
        def __init__(self) -> None:
            self.containers = Containers()
            self.closed = 0

        def close(self) -> None:  # the keep-alive socket must not linger between snapshots
            self.closed += 1

    client = Client()
    shots = Snapshotter(paths, proc=proc.root, pid=ME, network=False, docker_client=client)
    before = shots.take()
    client.containers.items.append(Container(f"memif-{OURS}-testpmd", OURS))
    (leaked,) = growth(before, shots.take(), [OURS]).leaked
    assert client.closed == 2
    assert (leaked.kind, leaked.key, leaked.detail) == (
        ResourceKind.CONTAINER,
        f"memif-{OURS}-testpmd",
        "exited",
    )


@pytest.mark.parametrize(
    ("command", "run_id"),
    [
        (f"dpdk-testpmd --file-prefix=memif-{OURS}-server3 --vdev=net_memif0,role=server", OURS),
        (f"python -m reference_impl.cli client --socket /tmp/memif-harness-{OURS}-case-ab/m", OURS),
        (f"ip netns exec memif-{OURS}-server ping 198.18.0.2", OURS),
        ("python -m pytest tests/test_memory.py", None),
        ("memif-ref server --socket /run/memif.sock", None),
    ],
)
def test_run_id_in_command(command: str, run_id: str | None) -> None:
    assert run_id_in_command(command) == run_id


def test_snapshot_counts_every_kind() -> None:
    snapshot = Snapshot(0.0, frozenset({Resource(ResourceKind.NETNS, "x")}))
    assert snapshot.counts()["netns"] == 1
    assert set(snapshot.counts()) == {kind.value for kind in ResourceKind}


@pytest.fixture
def leaked_netns() -> Iterator[str]:
    name = RunLabel(OURS).netns("leak")
    yield name
    tn.delete_netns(name)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CAP_SYS_ADMIN) for namespaces")
def test_a_namespace_created_between_snapshots_is_reported(
    host: tuple[FakeProc, ReapPaths], leaked_netns: str
) -> None:
    proc, paths = host
    shots = Snapshotter(paths, proc=proc.root, pid=ME, docker_client=None)
    before = shots.take()
    tn.create_netns(leaked_netns)
    after = shots.take()
    assert (ResourceKind.NETNS, leaked_netns) in keys(growth(before, after, [OURS]).leaked)
    assert (ResourceKind.NETNS, leaked_netns) in keys(growth(before, after, []).foreign)
    tn.delete_netns(leaked_netns)
    assert not growth(before, shots.take(), [OURS]).leaked
