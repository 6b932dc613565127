"""Shared memory and interrupts: memfd regions, peer-region mappings, and eventfds.

A `Region` owns its fd and its mapping; closing it releases both. numpy views over a
region are handed out by `Region.bytes_view`; `ring.py` builds ring views on top.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os

import numpy as np
import numpy.typing as npt


class RegionError(OSError):
    """A region could not be created or mapped."""


class Region:
    """One shared-memory region: an fd and its MAP_SHARED mapping."""

    def __init__(self, fd: int, size: int, *, owns_fd: bool = True) -> None:
        """Map `size` bytes of `fd` read-write.

        Args:
            fd: the memory fd (memfd, hugepage file); closed by `close()` if owned.
            size: exact region size as announced by ADD_REGION.
            owns_fd: whether `close()` also closes `fd`.

        Raises:
            RegionError: size is not positive, or the fd cannot be mapped that large.
        """
        if size <= 0:
            raise RegionError(f"region size {size} must be positive")
        try:
            actual = os.fstat(fd).st_size
        except OSError as exc:
            raise RegionError(f"region fd {fd}: {exc.strerror}") from exc
        if actual and actual < size:
            raise RegionError(f"region fd holds {actual} bytes, {size} announced")
        page = huge_page_size(fd)
        self.mapped_size = -(-size // page) * page if page else size
        """Bytes mapped: `size`, rounded up to the huge page size on hugetlbfs."""
        try:
            self.mmap = mmap.mmap(
                fd, self.mapped_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
            )
        except (OSError, ValueError, OverflowError) as exc:  # u64 sizes overflow ssize_t
            raise RegionError(f"mmap of {self.mapped_size} bytes failed: {exc}") from exc
        self.fd = fd
        self.size = size
        self._owns_fd = owns_fd
        self.array: npt.NDArray[np.uint8] = np.frombuffer(self.mmap, dtype=np.uint8, count=size)

    @classmethod
    def create(cls, name: str, size: int) -> Region:
        """Create a sealed memfd region of `size` bytes (what a copy-mode client does)."""
        fd = os.memfd_create(name, os.MFD_ALLOW_SEALING | os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, size)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
            return cls(fd, size)
        except BaseException:
            os.close(fd)
            raise

    def bytes_view(self, offset: int, length: int) -> npt.NDArray[np.uint8]:
        """A writable uint8 view of [offset, offset+length), bounds-checked."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise IndexError(f"[{offset}, {offset + length}) outside region of {self.size}")
        return self.array[offset : offset + length]

    def take_fd_ownership(self) -> None:
        """From now on `close()` also closes the fd."""
        self._owns_fd = True

    def close(self) -> None:
        """Unmap and close the fd; safe to call twice.

        numpy views taken from the mapping must be dropped first; if one still holds
        the buffer the mapping is released when it goes (the fd is closed regardless).
        """
        if self.fd < 0:
            return
        self.array = np.empty(0, dtype=np.uint8)
        # A live view may still export the buffer; the GC unmaps it when it goes.
        with contextlib.suppress(BufferError):
            self.mmap.close()
        if self._owns_fd:
            os.close(self.fd)
        self.fd = -1


def huge_page_size(fd: int) -> int:
    """The huge page size of a hugetlbfs file (0 for memfds and any other file).

    hugetlbfs reports its page size as the file's block size and keeps file sizes a
    multiple of it; the kernel rounds a mapping up to it, and munmap() of a length that
    is not a multiple of it fails, so such a region is mapped (and unmapped) with its
    length rounded up (fact sheet §4.6 impl-note).
    """
    try:
        block = os.fstat(fd).st_blksize
    except OSError:
        return 0
    return block if block > mmap.PAGESIZE and _on_hugetlbfs(fd) else 0


def _on_hugetlbfs(fd: int) -> bool:
    """Whether `fd` is a hugetlbfs file (a hugepage file, or a MFD_HUGETLB memfd)."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return False
    if target.startswith("/memfd:"):
        return True  # a memfd with a block size above the base page is MFD_HUGETLB
    try:
        with open("/proc/self/mounts") as mounts:
            points = [line.split()[1] for line in mounts if line.split()[2:3] == ["hugetlbfs"]]
    except OSError:
        return False
    return any(target == point or target.startswith(point.rstrip("/") + "/") for point in points)


def create_eventfd() -> int:
    """A non-blocking, close-on-exec eventfd for one ring's interrupts."""
    return os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)


def signal_eventfd(fd: int) -> None:
    """Raise an interrupt: add 1 to the eventfd counter (never blocks)."""
    # A saturated counter means the peer already has an interrupt pending.
    with contextlib.suppress(BlockingIOError):
        os.eventfd_write(fd, 1)


def drain_eventfd(fd: int) -> int:
    """Clear an eventfd and return how many interrupts were pending (0 if none)."""
    try:
        return os.eventfd_read(fd)
    except BlockingIOError:
        return 0
