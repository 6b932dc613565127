"""Faults injected into cases of a harness run (run by tests/integration/test_fault_injection.py
through the scenario plugin, never collected on their own): each must end as a clear ERROR or
FAIL naming its cause, with the peer's log kept, and the case after it must pass.

Every fault is undone by the case itself (a stopped peer is stopped for good by the lab, a
mount is unmounted, the hugepage mapping is released) before the next case starts.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.topology.hugepages import hugetlbfs_mounts
from reference_impl import wire
from scenarios.api import (
    Lab,
    Pair,
    Role,
    expect_link_down,
    expect_link_up,
    expect_round_trip,
    poll,
    start_round_trip,
)

HANDSHAKE_TIMEOUT = 5.0
"""Seconds a raw client waits for each message of the server."""
HUGEPAGE_SIZE = 2 * 1024 * 1024


def _pid(peer: object) -> int:
    pid = getattr(getattr(peer, "process", None), "pid", None)
    if not isinstance(pid, int):
        pytest.skip(f"{type(peer).__name__} runs no local process to signal")
    return pid


def test_server_killed_mid_handshake(lab: Lab) -> None:
    """The server is killed (SIGKILL) half way through a handshake.

    Steps:
        1. Start the server; a raw client connects, reads HELLO, sends INIT, reads ACK.
        2. Kill the server with SIGKILL while it waits for the client's ADD_REGION.
    Verify:
        - The server's link is down (the harness must tell that it crashed, and how).
    """
    pair = lab.start_pair(client=False)
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as raw:
        raw.settimeout(HANDSHAKE_TIMEOUT)
        raw.connect(pair.socket_path)
        assert isinstance(wire.unpack(raw.recv(4096)), wire.Hello)
        raw.send(wire.Init(id=0, name="fault-client").pack())
        assert isinstance(wire.unpack(raw.recv(4096)), wire.Ack)
        os.kill(_pid(pair.server), signal.SIGKILL)
        expect_link_down(pair.server, what="server")


def test_server_killed_mid_traffic(lab: Lab) -> None:
    """The forwarding server is killed (SIGKILL) while numbered frames cross the link.

    Steps:
        1. A reference client sends 10^6 numbered frames; the server sends them back.
        2. Once 1000 frames went out, kill the server with SIGKILL.
    Verify:
        - Every frame comes back (it cannot: the harness must name the server's crash).
    """
    pair = start_round_trip(lab, Role.CLIENT, sizes=(64,), count=10**6)
    expect_link_up(pair)
    assert pair.client is not None
    client = pair.client
    poll(lambda: (report := client.check_report()) is not None and report.sent >= 1000, 10.0)
    os.kill(_pid(pair.server), signal.SIGKILL)
    expect_round_trip(pair, Role.CLIENT)


def test_server_stops_reading_its_socket(lab: Lab) -> None:
    """The server is stopped (SIGSTOP) before a client connects: it reads nothing any more.

    Steps:
        1. Start the server and stop it with SIGSTOP.
        2. Start a client (the kernel queues its connection; nobody answers it).
    Verify:
        - Both links come up within 3 s (they cannot: the harness must say the server is
          stopped). The lab stops the stopped server at the end of the case.
    """
    pair = lab.start_pair(client=False)
    os.kill(_pid(pair.server), signal.SIGSTOP)
    expect_link_up(pair.with_client(pair.start_client()), timeout=3.0)


@contextlib.contextmanager
def _tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A small tmpfs mounted at `path` for the block, unmounted whatever happens."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "memif-fault", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_socket_directory_is_full(lab: Lab) -> None:
    """The server's socket directory has no free inode left.

    Steps:
        1. Mount a tmpfs of 8 inodes in the case's socket directory; fill it with files.
        2. Start the server with its socket there.
    Verify:
        - The server starts (it cannot bind: the harness must name the full directory).
    """
    with _tmpfs(lab.socket_dir / "full", "size=64k,nr_inodes=8,mode=0700") as full:
        for number in range(64):
            try:
                (full / f"filler-{number}").touch()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        lab.start(lab.server_kind, Role.SERVER, socket_path=str(full / "memif.sock"))


def test_socket_path_is_read_only(lab: Lab) -> None:
    """The server's socket directory is on a read-only filesystem.

    Steps:
        1. Mount a read-only tmpfs in the case's socket directory.
        2. Start the server with its socket there.
    Verify:
        - The server starts (it cannot bind: the harness must name the read-only path).
    """
    with _tmpfs(lab.socket_dir / "ro", "ro,size=64k,mode=0700") as read_only:
        lab.start(lab.server_kind, Role.SERVER, socket_path=str(read_only / "memif.sock"))


@contextlib.contextmanager
def _hugepages_taken(name: str) -> Iterator[int]:
    """Map and touch every free default-size hugepage for the block; yields how many."""
    mounts = hugetlbfs_mounts()
    if not mounts:
        pytest.skip("no hugetlbfs mount")
    free = int(Path("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages").read_text())
    path = mounts[0] / name
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        os.unlink(path)  # nothing to leave behind: the pages go with the mapping
        os.ftruncate(fd, free * HUGEPAGE_SIZE)
        with mmap.mmap(fd, free * HUGEPAGE_SIZE) as mapping:
            for page in range(free):
                mapping[page * HUGEPAGE_SIZE] = 1
            yield free
    finally:
        os.close(fd)


def test_hugepages_exhausted_before_a_zero_copy_client_starts(lab: Lab) -> None:
    """Every free hugepage is taken between configuring a zero-copy client and starting it.

    Steps:
        1. Start the server; configure a zero-copy client (it will map hugepages).
        2. Map and touch every free hugepage; start the client; release the pages.
    Verify:
        - The client starts (it cannot get its memory: the harness must say so).
    """
    if lab.client_kind != "testpmd":
        pytest.skip("only testpmd's zero-copy client needs hugepages")
    pair = lab.start_pair(client=False)
    client = lab.create(
        lab.client_kind, Role.CLIENT, socket_path=pair.client_socket_path, zero_copy=True
    )
    if not getattr(getattr(client, "config", None), "hugepages", False):
        pytest.skip("too few free hugepages to configure a zero-copy testpmd client")
    with _hugepages_taken(lab.session.label.dpdk_prefix("exhaust")):
        client.start()


def test_healthy_link_after_the_fault(pair: Pair) -> None:
    """A plain pair after a faulty case: nothing of the fault may remain.

    Steps:
        1. Start the server and the client.
    Verify:
        - Both links come up.
    """
    expect_link_up(pair)
