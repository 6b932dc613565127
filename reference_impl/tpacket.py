"""TPACKET_V2 rings over an AF_PACKET socket bound to one interface (a veth end, a TAP).

The kernel and this process share an RX and a TX ring of fixed-size frame slots in one
mmap. Each slot starts with a `tpacket2_hdr` whose status word says who owns it, so a
burst is a handful of numpy operations over a structured view of every slot's header:
find the run of slots the kernel filled (or freed), copy frames out (or in) through a
strided 2-D view of the slots, hand the slots back; TX costs one `send` per burst.

Ordering: the kernel publishes a slot's status after its data (smp_wmb), we read the status
before the data, and we store the status after the data: program order is enough on x86
(TSO). Weaker memory models would need fences that numpy does not give.
"""

from __future__ import annotations

import dataclasses
import fcntl
import mmap
import socket
import struct
from typing import Any

import numpy as np
import numpy.typing as npt

from reference_impl.fastpath import FrameFill
from reference_impl.ring import PacketBatch

# <linux/if_packet.h>, <linux/if_ether.h>, <linux/sockios.h>
SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_TX_RING = 13
PACKET_LOSS = 14
PACKET_QDISC_BYPASS = 20
PACKET_IGNORE_OUTGOING = 23
TPACKET_V2 = 1
ETH_P_ALL = 0x0003
SIOCGIFMTU = 0x8921

TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1 << 0
TP_STATUS_COPY = 1 << 1  # RX: the frame was longer than the slot (truncated)
TP_STATUS_LOSING = 1 << 2
TP_STATUS_CSUMNOTREADY = 1 << 3  # RX: checksum left to the receiver (CHECKSUM_PARTIAL)
TP_STATUS_AVAILABLE = 0
TP_STATUS_SEND_REQUEST = 1 << 0
TP_STATUS_SENDING = 1 << 1
TP_STATUS_WRONG_FORMAT = 1 << 2

TPACKET_ALIGNMENT = 16
MAX_RING_BYTES = 16 << 20  # per ring: 8192 slots of 2 KiB, 1024 of 16 KiB (MTU 9000)
ETHERNET_HEADER = 14
VLAN_HEADER = 4

# Every C structure this module touches, declared once.
TPACKET_REQ = struct.Struct("=IIII")  # block_size, block_nr, frame_size, frame_nr
TPACKET_STATS = struct.Struct("=II")  # tp_packets, tp_drops (the kernel resets them on read)
IFREQ_MTU = struct.Struct("=16si20x")  # struct ifreq: ifr_name, ifr_mtu (40 bytes)
SOCKADDR_LL_SIZE = 20  # struct sockaddr_ll
TPACKET2_HDR = np.dtype(
    [
        ("status", "<u4"),
        ("len", "<u4"),
        ("snaplen", "<u4"),
        ("mac", "<u2"),
        ("net", "<u2"),
        ("sec", "<u4"),
        ("nsec", "<u4"),
        ("vlan_tci", "<u2"),
        ("vlan_tpid", "<u2"),
        ("padding", "u1", (4,)),
    ]
)
assert TPACKET2_HDR.itemsize == 32
assert IFREQ_MTU.size == 40


def tpacket_align(value: int) -> int:
    """Round up to TPACKET_ALIGNMENT, like the kernel's TPACKET_ALIGN()."""
    return (value + TPACKET_ALIGNMENT - 1) & ~(TPACKET_ALIGNMENT - 1)


TPACKET2_HDRLEN = tpacket_align(TPACKET2_HDR.itemsize) + SOCKADDR_LL_SIZE
TX_DATA_OFFSET = TPACKET2_HDRLEN - SOCKADDR_LL_SIZE
"""Where a TX slot's frame starts (no PACKET_TX_HAS_OFF): right after the header."""
RX_HEADROOM = tpacket_align(TPACKET2_HDRLEN + 16)
"""Upper bound of where an RX slot's frame ends its headroom (tp_net for SOCK_RAW)."""

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]


class TpacketError(OSError):
    """The kernel refused the ring setup, or the interface cannot be used."""


def slot_dtype(frame_size: int) -> np.dtype[Any]:
    """A structured dtype with the tpacket2_hdr fields, one item per frame slot."""
    fields = TPACKET2_HDR.fields
    assert fields is not None
    names = list(fields)
    return np.dtype(
        {
            "names": names,
            "formats": [fields[name][0] for name in names],
            "offsets": [fields[name][1] for name in names],
            "itemsize": frame_size,
        }
    )


@dataclasses.dataclass(frozen=True)
class RingGeometry:
    """Shape of one TPACKET ring: equal slots, evenly spaced (block_size % frame_size == 0).

    Attributes:
        frame_size: bytes per slot (header, headroom and frame), a power of two.
        frame_count: slots, a power of two.
        block_size: bytes per block, a multiple of the page size and of frame_size.
    """

    frame_size: int
    frame_count: int
    block_size: int

    @property
    def block_count(self) -> int:
        """Blocks in the ring."""
        return self.frame_count * self.frame_size // self.block_size

    @property
    def size(self) -> int:
        """Bytes of the ring in the mapping."""
        return self.frame_count * self.frame_size

    def request(self) -> bytes:
        """The `struct tpacket_req` for PACKET_RX_RING / PACKET_TX_RING."""
        return TPACKET_REQ.pack(
            self.block_size, self.block_count, self.frame_size, self.frame_count
        )


def _power_of_two_at_least(value: int) -> int:
    return 1 << max(0, value - 1).bit_length()


def ring_geometry(max_frame: int, frames: int, page_size: int = mmap.PAGESIZE) -> RingGeometry:
    """The ring for frames of up to `max_frame` bytes, with at least `frames` slots.

    A slot holds the largest RX headroom plus the frame, rounded up to a power of two, so
    slots are evenly spaced over the whole mapping (one strided 2-D view reaches them all).
    """
    if max_frame <= 0 or frames <= 0:
        raise ValueError("max_frame and frames must be positive")
    frame_size = _power_of_two_at_least(RX_HEADROOM + max_frame)
    block_size = max(frame_size, _power_of_two_at_least(page_size))
    per_block = block_size // frame_size
    frame_count = max(_power_of_two_at_least(frames), per_block)
    return RingGeometry(frame_size, frame_count, block_size)


def interface_mtu(sock: socket.socket, ifname: str) -> int:
    """The MTU of `ifname` in the socket's network namespace (SIOCGIFMTU)."""
    request = IFREQ_MTU.pack(ifname.encode(), 0)
    try:
        answer = fcntl.ioctl(sock.fileno(), SIOCGIFMTU, request)
    except OSError as exc:
        raise TpacketError(exc.errno, f"{ifname}: {exc.strerror}") from exc
    return int(IFREQ_MTU.unpack(answer)[1])


def _ready_run(status: npt.NDArray[np.uint32], start: int, limit: int, free: bool) -> int:
    """Consecutive slots from `start` (wrapping) that are ours: filled (RX) or free (TX)."""
    size = status.size
    first = int(status[start])
    if (first != TP_STATUS_AVAILABLE) if free else not first & TP_STATUS_USER:
        return 0  # the common idle case, without building a window
    window = status[(start + np.arange(min(limit, size))) & (size - 1)]
    ours = window == TP_STATUS_AVAILABLE if free else (window & TP_STATUS_USER) != 0
    if ours.all():
        return int(ours.size)
    return int(np.argmin(ours))


def _wrap_runs(start: int, count: int, size: int) -> list[tuple[int, int, int]]:
    """(first slot, end slot, offset in the burst) of the non-wrapping parts of a window."""
    first = min(count, size - start)
    runs = [(start, start + first, 0)]
    if first < count:
        runs.append((0, count - first, first))
    return runs


@dataclasses.dataclass
class PortCounters:
    """What a packet port moved and lost."""

    rx_frames: int = 0
    rx_bytes: int = 0
    rx_truncated: int = 0  # longer than a slot: dropped
    rx_checksum_partial: int = 0  # TP_STATUS_CSUMNOTREADY: forwarded, checksum not filled
    rx_kernel_drops: int = 0  # the RX ring was full (PACKET_STATISTICS tp_drops)
    tx_frames: int = 0
    tx_bytes: int = 0
    tx_oversize: int = 0  # longer than the interface takes: dropped
    tx_errors: int = 0  # send() failed

    def as_dict(self) -> dict[str, int]:
        """Plain dict for JSON."""
        return dataclasses.asdict(self)


class TpacketPort:
    """An AF_PACKET socket on one interface with a TPACKET_V2 RX ring and TX ring.

    Open it in the network namespace that holds the interface (the socket stays there).
    """

    def __init__(
        self,
        ifname: str,
        *,
        rx_frames: int = 4096,
        tx_frames: int = 4096,
        qdisc_bypass: bool = True,
    ) -> None:
        """Bind to `ifname`, set up both rings and map them.

        Args:
            ifname: the interface (veth end, TAP) in the current network namespace.
            rx_frames: RX slots (rounded up to a power of two; at most MAX_RING_BYTES).
            tx_frames: TX slots (rounded up to a power of two; at most MAX_RING_BYTES).
            qdisc_bypass: send straight to the driver (PACKET_QDISC_BYPASS).

        Raises:
            TpacketError: the interface is missing or the kernel refused the rings.
        """
        self.ifname = ifname
        self.counters = PortCounters()
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # nothing yet
        self._map: mmap.mmap | None = None
        try:
            self.mtu = interface_mtu(self._sock, ifname)
            self.max_frame = self.mtu + ETHERNET_HEADER
            slot = ring_geometry(self.max_frame + VLAN_HEADER, 1).frame_size
            most = max(1, MAX_RING_BYTES // slot)  # jumbo MTUs get fewer, bigger slots
            self.rx_geometry = ring_geometry(self.max_frame + VLAN_HEADER, min(rx_frames, most))
            self.tx_geometry = ring_geometry(self.max_frame + VLAN_HEADER, min(tx_frames, most))
            self._setup(qdisc_bypass)
        except OSError as exc:
            self._sock.close()
            if isinstance(exc, TpacketError):
                raise
            raise TpacketError(exc.errno, f"{ifname}: TPACKET_V2 setup: {exc.strerror}") from exc
        self._rx_cursor = 0
        self._tx_cursor = 0

    def _setup(self, qdisc_bypass: bool) -> None:
        sock = self._sock
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
        sock.setsockopt(SOL_PACKET, PACKET_LOSS, 1)  # skip malformed TX slots, do not stall
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)  # only what arrives
        if qdisc_bypass:
            sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, self.rx_geometry.request())
        sock.setsockopt(SOL_PACKET, PACKET_TX_RING, self.tx_geometry.request())
        total = self.rx_geometry.size + self.tx_geometry.size
        self._map = mmap.mmap(
            sock.fileno(), total, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
        )
        raw = np.frombuffer(self._map, dtype=np.uint8)
        rx_end = self.rx_geometry.size
        frame_size = self.rx_geometry.frame_size
        self._rx_slots = raw[:rx_end].reshape(-1, frame_size)
        self._tx_slots = raw[rx_end:].reshape(-1, frame_size)
        self._rx_headers = raw[:rx_end].view(slot_dtype(frame_size))
        self._tx_headers = raw[rx_end:].view(slot_dtype(frame_size))
        self._rx_status: npt.NDArray[np.uint32] = self._rx_headers["status"]
        self._tx_status: npt.NDArray[np.uint32] = self._tx_headers["status"]
        self.tx_capacity = min(frame_size - TX_DATA_OFFSET, self.max_frame + VLAN_HEADER)
        sock.bind((self.ifname, ETH_P_ALL))
        sock.setblocking(False)

    def fileno(self) -> int:
        """The socket's fd (readable when RX slots are filled)."""
        return self._sock.fileno()

    # ------------------------------------------------------------------ receive

    def receive(self, limit: int = 256) -> PacketBatch:
        """Take up to `limit` frames the kernel put on the RX ring, in order."""
        status = self._rx_status
        start = self._rx_cursor
        count = _ready_run(status, start, limit, free=False)
        if not count:
            return PacketBatch.empty()
        size = status.size
        slots = (start + np.arange(count)) & (size - 1)
        headers = self._rx_headers  # index fields, never whole slots (a slot is kilobytes)
        lengths = headers["snaplen"][slots].astype(np.int64)
        flags = status[slots]
        keep = (lengths == headers["len"][slots]) & ((flags & TP_STATUS_COPY) == 0) & (lengths > 0)
        self.counters.rx_checksum_partial += int(np.count_nonzero(flags & TP_STATUS_CSUMNOTREADY))
        macs = headers["mac"][slots].astype(np.int64)
        data = self._gather(slots, macs, lengths, keep)
        for first, end, _ in _wrap_runs(start, count, size):
            status[first:end] = TP_STATUS_KERNEL  # give the slots back, after the copy
        self._rx_cursor = (start + count) & (size - 1)
        if not keep.all():
            self.counters.rx_truncated += int(keep.size - np.count_nonzero(keep))
            lengths = lengths[keep]
        self.counters.rx_frames += int(lengths.size)
        self.counters.rx_bytes += int(lengths.sum())
        return PacketBatch(data, lengths, np.ones(lengths.size, dtype=np.int64))

    def _gather(self, slots: I64, macs: I64, lengths: I64, keep: npt.NDArray[np.bool_]) -> U8:
        if not keep.all():
            slots, macs, lengths = slots[keep], macs[keep], lengths[keep]
        if not slots.size:
            return np.empty(0, dtype=np.uint8)
        mac = int(macs[0])
        width = int(lengths.max())
        if np.all(macs == mac):
            rows = self._rx_slots[slots, mac : mac + width]
            if int(lengths.min()) == width:
                return rows.reshape(-1)
            return rows[np.arange(width) < lengths[:, None]]
        frame_size = self._rx_slots.shape[1]
        starts = np.cumsum(lengths) - lengths
        index = np.repeat(slots * frame_size + macs - starts, lengths)
        index += np.arange(int(lengths.sum()), dtype=np.int64)
        flat: U8 = self._rx_slots.reshape(-1)
        picked: U8 = flat[index]
        return picked

    # ------------------------------------------------------------------ transmit

    def tx_space(self) -> int:
        """Free TX slots from the cursor on."""
        return _ready_run(self._tx_status, self._tx_cursor, self._tx_status.size, free=True)

    def transmit(self, batch: PacketBatch) -> int:
        """Queue as many frames of `batch` as there are free slots and send them (one syscall).

        Frames longer than the interface takes are dropped and counted (`tx_oversize`);
        they count as taken.

        Returns:
            How many frames of `batch`, from the first, were taken.
        """
        total = len(batch)
        if not total:
            return 0
        status = self._tx_status
        start = self._tx_cursor
        count = _ready_run(status, start, total, free=True)
        if not count:
            self._kick()  # slots may be waiting on an earlier send that failed
            return 0
        lengths = batch.lengths[:count]
        data = batch.data[: int(lengths.sum())]
        fits = lengths <= self.tx_capacity
        if not fits.all():
            self.counters.tx_oversize += int(fits.size - np.count_nonzero(fits))
            data = data[np.repeat(fits, lengths)]
            lengths = lengths[fits]
        queued = int(lengths.size)
        if queued:
            self._fill(start, lengths, data)
            self._tx_cursor = (start + queued) & (status.size - 1)
            self.counters.tx_frames += queued
            self.counters.tx_bytes += int(lengths.sum())
            self._kick()
        return count

    def _fill(self, start: int, lengths: I64, data: U8) -> None:
        size = self._tx_status.size
        width = int(lengths.max())
        uniform = int(lengths.min()) == width
        offset = 0
        for first, end, at in _wrap_runs(start, int(lengths.size), size):
            run_lengths = lengths[at : at + end - first]
            run_bytes = int(run_lengths.sum())
            rows = self._tx_slots[first:end, TX_DATA_OFFSET : TX_DATA_OFFSET + width]
            source = data[offset : offset + run_bytes]
            if uniform:
                rows[...] = source.reshape(end - first, width)
            else:
                rows[np.arange(width) < run_lengths[:, None]] = source
            offset += run_bytes
            self._tx_headers["len"][first:end] = run_lengths
        for first, end, _ in _wrap_runs(start, int(lengths.size), size):
            self._tx_status[first:end] = TP_STATUS_SEND_REQUEST  # after the data

    def transmit_copies(self, template: U8, count: int, *, fill: FrameFill | None = None) -> int:
        """Queue up to `count` copies of one frame in the free TX slots and send them.

        One broadcast copy of `template` per run of slots; `fill(rows, index)` then
        writes per-frame fields into the (n, len) rows (`index`: the run's first frame
        in this call). One syscall, as `transmit`.

        Returns:
            How many copies were queued.

        Raises:
            ValueError: the frame is empty or longer than the interface takes.
        """
        length = int(template.size)
        if not 0 < length <= self.tx_capacity:
            raise ValueError(f"frame of {length} bytes: {self.ifname} takes 1..{self.tx_capacity}")
        status = self._tx_status
        start = self._tx_cursor
        queued = _ready_run(status, start, count, free=True) if count > 0 else 0
        if not queued:
            self._kick()  # slots may be waiting on an earlier send that failed
            return 0
        runs = _wrap_runs(start, queued, status.size)
        for first, end, at in runs:
            rows = self._tx_slots[first:end, TX_DATA_OFFSET : TX_DATA_OFFSET + length]
            rows[...] = template
            if fill is not None:
                fill(rows, at)
            self._tx_headers["len"][first:end] = length
        for first, end, _ in runs:
            status[first:end] = TP_STATUS_SEND_REQUEST  # after the data
        self._tx_cursor = (start + queued) & (status.size - 1)
        self.counters.tx_frames += queued
        self.counters.tx_bytes += queued * length
        self._kick()
        return queued

    def _kick(self) -> None:
        """Ask the kernel to send every slot marked SEND_REQUEST (without waiting)."""
        try:
            self._sock.send(b"", socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.counters.tx_errors += 1

    def tx_pending(self) -> int:
        """TX slots the kernel has not finished with (queued or being sent)."""
        return int(np.count_nonzero(self._tx_status != TP_STATUS_AVAILABLE))

    # ------------------------------------------------------------------ statistics, teardown

    def statistics(self) -> dict[str, int]:
        """Counters, with the kernel's RX ring drops added up (PACKET_STATISTICS)."""
        if self._map is not None:
            raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, TPACKET_STATS.size)
            _, drops = TPACKET_STATS.unpack(raw)
            self.counters.rx_kernel_drops += drops
        return self.counters.as_dict()

    def close(self) -> None:
        """Unmap the rings and close the socket."""
        if self._map is not None:
            empty = np.zeros(0, dtype=np.uint8)
            self._rx_slots = self._tx_slots = empty.reshape(0, 1)
            self._rx_headers = self._tx_headers = np.zeros(0, dtype=slot_dtype(32))
            self._rx_status = self._tx_status = np.zeros(0, dtype=np.uint32)
            self._map.close()
            self._map = None
        self._sock.close()

    def __enter__(self) -> TpacketPort:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = [
    "TPACKET2_HDR",
    "PortCounters",
    "RingGeometry",
    "TpacketError",
    "TpacketPort",
    "interface_mtu",
    "ring_geometry",
    "slot_dtype",
]
