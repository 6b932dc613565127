"""Tests of reference_impl.memory: sealed memfd regions, peer mappings, eventfds."""

from __future__ import annotations

import fcntl
import gc
import os
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from reference_impl.memory import (
    Region,
    RegionError,
    create_eventfd,
    drain_eventfd,
    signal_eventfd,
)


def _open_fds() -> int:
    """How many fds this process has open."""
    return len(os.listdir("/proc/self/fd"))


def _fd_is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


@pytest.fixture
def region() -> Iterator[Region]:
    created = Region.create("memif-test region", 8192)
    yield created
    created.close()


# ------------------------------------------------------------------ Region.create


def test_create_gives_sealed_memfd_of_exact_size(region: Region) -> None:
    assert region.size == 8192
    assert os.fstat(region.fd).st_size == 8192
    assert len(region.array) == 8192
    assert region.array.dtype == np.uint8
    seals = fcntl.fcntl(region.fd, fcntl.F_GET_SEALS)
    assert seals & fcntl.F_SEAL_SHRINK
    assert os.readlink(f"/proc/self/fd/{region.fd}").startswith("/memfd:memif-test region")


def test_sealed_region_cannot_shrink_but_contents_stay(region: Region) -> None:
    region.array[:4] = [1, 2, 3, 4]
    with pytest.raises(PermissionError):
        os.ftruncate(region.fd, 4096)
    assert os.fstat(region.fd).st_size == 8192
    assert bytes(region.array[:4]) == b"\x01\x02\x03\x04"


def test_create_is_zero_filled_and_close_on_exec(region: Region) -> None:
    assert not region.array.any()
    assert fcntl.fcntl(region.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC


def test_create_with_zero_size_raises_and_leaks_no_fd() -> None:
    before = _open_fds()
    with pytest.raises(RegionError):
        Region.create("memif-test empty", 0)
    assert _open_fds() == before


# ------------------------------------------------------------------ mapping a peer's fd


def test_mapping_shorter_fd_than_announced_raises() -> None:
    fd = os.memfd_create("memif-test short", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, 4096)
        with pytest.raises(RegionError):
            Region(fd, 8192, owns_fd=False)
        assert _fd_is_open(fd)  # a failed map leaves the fd to its owner
    finally:
        os.close(fd)


def test_mapping_empty_fd_raises() -> None:
    """A zero-size fd (st_size 0 skips the size check) still fails to map."""
    fd = os.memfd_create("memif-test empty", os.MFD_CLOEXEC)
    try:
        with pytest.raises(RegionError):
            Region(fd, 4096, owns_fd=False)
    finally:
        os.close(fd)


@pytest.mark.parametrize("size", [1 << 63, (1 << 64) - 1])
def test_u64_region_size_on_an_unsized_fd_is_a_region_error(size: int) -> None:
    """ADD_REGION sizes are u64; on an fd without a size (an eventfd) a size past ssize_t
    used to raise OverflowError out of CONNECT (found by `memif-ref fuzz`)."""
    fd = os.eventfd(0, os.EFD_CLOEXEC)
    try:
        with pytest.raises(RegionError, match="mmap of"):
            Region(fd, size, owns_fd=False)
        assert _fd_is_open(fd)
    finally:
        os.close(fd)


@pytest.mark.parametrize("size", [0, -1])
def test_non_positive_size_raises(region: Region, size: int) -> None:
    with pytest.raises(RegionError):
        Region(region.fd, size, owns_fd=False)


def test_closed_fd_raises_region_error() -> None:
    fd = os.memfd_create("memif-test closed", os.MFD_CLOEXEC)
    os.close(fd)
    with pytest.raises(RegionError):
        Region(fd, 4096)


def test_mapping_smaller_than_fd_is_allowed(region: Region) -> None:
    peer = Region(region.fd, 100, owns_fd=False)
    try:
        assert peer.size == 100
        region.array[99] = 7
        assert peer.array[99] == 7
    finally:
        peer.close()


def test_second_region_over_same_fd_shares_bytes(region: Region) -> None:
    peer = Region(region.fd, region.size, owns_fd=False)
    try:
        region.array[100:104] = [0xDE, 0xAD, 0xBE, 0xEF]
        assert bytes(peer.array[100:104]) == b"\xde\xad\xbe\xef"
        peer.bytes_view(8000, 3)[:] = [9, 8, 7]
        assert bytes(region.array[8000:8003]) == b"\x09\x08\x07"
        region.mmap[0:2] = b"xy"
        assert bytes(peer.array[:2]) == b"xy"
    finally:
        peer.close()
    assert _fd_is_open(region.fd)  # the non-owning peer left the fd alone


# ------------------------------------------------------------------ views and close


def test_bytes_view_is_a_writable_window(region: Region) -> None:
    view = region.bytes_view(10, 5)
    assert view.shape == (5,)
    view[:] = 0xAB
    assert bytes(region.array[9:16]) == b"\x00" + b"\xab" * 5 + b"\x00"
    assert region.bytes_view(8192, 0).size == 0
    del view


@pytest.mark.parametrize(("offset", "length"), [(-1, 1), (0, -1), (8190, 3), (8193, 0)])
def test_bytes_view_out_of_bounds_raises(region: Region, offset: int, length: int) -> None:
    with pytest.raises(IndexError):
        region.bytes_view(offset, length)


def test_close_closes_fd_and_is_idempotent() -> None:
    """close() releases every fd the region holds (its own and the mapping's)."""
    before = _open_fds()
    created = Region.create("memif-test close", 4096)
    fd = created.fd
    assert _open_fds() > before
    created.close()
    assert _open_fds() == before
    assert not _fd_is_open(fd)
    assert created.fd == -1
    assert created.mmap.closed
    created.close()  # second close: no error, nothing else closed
    assert _open_fds() == before


def test_close_without_ownership_keeps_fd_until_taken() -> None:
    fd = os.memfd_create("memif-test owned", os.MFD_CLOEXEC)
    os.ftruncate(fd, 4096)
    peer = Region(fd, 4096, owns_fd=False)
    peer.close()
    assert _fd_is_open(fd)
    peer = Region(fd, 4096, owns_fd=False)
    peer.take_fd_ownership()
    peer.close()
    assert not _fd_is_open(fd)


def test_close_with_live_view_still_closes_fd() -> None:
    """A live numpy view defers the unmap, but the region's own fd closes at once."""
    gc.collect()  # mappings earlier tests left to the collector must not close in between
    before = _open_fds()
    created = Region.create("memif-test view", 4096)
    fd = created.fd
    view = created.bytes_view(0, 16)
    created.close()  # must not raise BufferError
    assert not _fd_is_open(fd)
    assert created.fd == -1
    view[0] = 1  # the mapping survives until the view goes
    assert view[0] == 1
    del view, created
    gc.collect()
    assert _open_fds() == before


# ------------------------------------------------------------------ eventfds


@pytest.fixture
def eventfd() -> Iterator[int]:
    fd = create_eventfd()
    yield fd
    os.close(fd)


def test_eventfd_is_nonblocking_and_cloexec(eventfd: int) -> None:
    assert os.get_blocking(eventfd) is False
    assert fcntl.fcntl(eventfd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    assert os.readlink(f"/proc/self/fd/{eventfd}") == "anon_inode:[eventfd]"


def test_drain_on_empty_eventfd_returns_zero(eventfd: int) -> None:
    assert drain_eventfd(eventfd) == 0


def test_signal_then_drain_returns_count(eventfd: int) -> None:
    signal_eventfd(eventfd)
    assert drain_eventfd(eventfd) == 1
    for _ in range(3):
        signal_eventfd(eventfd)
    assert drain_eventfd(eventfd) == 3
    assert drain_eventfd(eventfd) == 0


def test_signal_writes_host_order_u64_one(eventfd: int) -> None:
    """The peer reads 8 bytes; the counter grows by exactly 1 per signal."""
    signal_eventfd(eventfd)
    assert os.read(eventfd, 8) == (1).to_bytes(8, sys.byteorder)


def test_signal_on_saturated_counter_does_not_raise(eventfd: int) -> None:
    os.eventfd_write(eventfd, 0xFFFFFFFFFFFFFFFE)  # the largest value a counter holds
    signal_eventfd(eventfd)  # would block: swallowed
    assert drain_eventfd(eventfd) == 0xFFFFFFFFFFFFFFFE


def test_signal_seen_through_a_duplicate_fd(eventfd: int) -> None:
    """The peer gets its own fd (SCM_RIGHTS); both name the same counter."""
    duplicate = os.dup(eventfd)
    try:
        signal_eventfd(eventfd)
        signal_eventfd(duplicate)
        assert drain_eventfd(duplicate) == 2
        assert drain_eventfd(eventfd) == 0
    finally:
        os.close(duplicate)
