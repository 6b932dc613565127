"""memif <-> AF_PACKET forwarding: an L2 cross-connect between a memif link and an interface.

`bridge` moves every frame received on the memif link out of the interface and every frame
the interface receives onto the memif link, unchanged, both directions in one bounded
polling loop. The interface side is a `PacketPort`: `TpacketPort` (TPACKET_V2 rings,
batched, reference_impl.tpacket) or `SocketPort` (one recv/send per frame: the pure-Python
baseline it is measured against). Frames longer than the memif buffer size go out as
chains (the link chains and reassembles them).
"""

from __future__ import annotations

import enum
import errno
import socket
import time
from typing import Any, Protocol

import numpy as np

from reference_impl import tpacket
from reference_impl.actions import ActionResult, LinkDriver, _Loop
from reference_impl.link import Link
from reference_impl.ring import PacketBatch

_BURST = 256


class PortIO(enum.StrEnum):
    """How the interface side moves frames."""

    TPACKET = "tpacket"  # TPACKET_V2 rings, one syscall per TX burst
    SOCKET = "socket"  # recv/send per frame (the baseline)


class PacketPort(Protocol):
    """The interface side of a bridge."""

    ifname: str

    def receive(self, limit: int = _BURST) -> PacketBatch:
        """Up to `limit` frames that arrived, in order (an empty batch if none)."""
        ...

    def transmit(self, batch: PacketBatch) -> int:
        """Send frames of `batch` from the first; returns how many were taken."""
        ...

    def statistics(self) -> dict[str, int]:
        """Counters of frames moved and lost."""
        ...

    def close(self) -> None:
        """Release the socket (and rings)."""
        ...


class SocketPort:
    """A plain non-blocking AF_PACKET socket: one recv or send syscall per frame."""

    def __init__(self, ifname: str) -> None:
        """Bind to `ifname` in the current network namespace."""
        self.ifname = ifname
        self.counters = tpacket.PortCounters()
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            self.max_frame = tpacket.interface_mtu(self._sock, ifname) + tpacket.ETHERNET_HEADER
            self._sock.setsockopt(tpacket.SOL_PACKET, tpacket.PACKET_IGNORE_OUTGOING, 1)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self._sock.bind((ifname, tpacket.ETH_P_ALL))
            self._sock.setblocking(False)
        except OSError as exc:
            self._sock.close()
            if isinstance(exc, tpacket.TpacketError):
                raise
            raise tpacket.TpacketError(exc.errno, f"{ifname}: {exc.strerror}") from exc
        self._buffer = bytearray(self.max_frame + tpacket.VLAN_HEADER + 64)

    def fileno(self) -> int:
        """The socket's fd."""
        return self._sock.fileno()

    def receive(self, limit: int = _BURST) -> PacketBatch:
        """Read frames one syscall each until none is waiting or `limit` is reached."""
        frames: list[bytes] = []
        view = memoryview(self._buffer)
        while len(frames) < limit:
            try:
                got = self._sock.recv_into(self._buffer, 0, socket.MSG_TRUNC)
            except (BlockingIOError, InterruptedError):
                break
            if got > len(self._buffer):
                self.counters.rx_truncated += 1
                continue
            frames.append(bytes(view[:got]))
        if not frames:
            return PacketBatch.empty()
        self.counters.rx_frames += len(frames)
        self.counters.rx_bytes += sum(len(frame) for frame in frames)
        batch = PacketBatch.from_frames(frames)
        batch.segments = np.ones(len(frames), dtype=np.int64)
        return batch

    def transmit(self, batch: PacketBatch) -> int:
        """Send frames one syscall each until the socket would block."""
        data = memoryview(batch.data.tobytes())
        offset = taken = 0
        for length in batch.lengths.tolist():
            frame = data[offset : offset + length]
            if length > self.max_frame + tpacket.VLAN_HEADER:
                self.counters.tx_oversize += 1
            else:
                try:
                    self._sock.send(frame)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    if exc.errno == errno.ENOBUFS:  # the device queue is full: try later
                        break
                    self.counters.tx_errors += 1
                else:
                    self.counters.tx_frames += 1
                    self.counters.tx_bytes += length
            offset += length
            taken += 1
        return taken

    def statistics(self) -> dict[str, int]:
        """Counters."""
        return self.counters.as_dict()

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()


def open_port(ifname: str, io: PortIO = PortIO.TPACKET) -> PacketPort:
    """Open the interface side of a bridge in the current network namespace.

    Raises:
        tpacket.TpacketError: the interface is missing or the kernel refused the setup.
    """
    if io is PortIO.TPACKET:
        return tpacket.TpacketPort(ifname)
    return SocketPort(ifname)


def _rest(batch: PacketBatch, taken: int) -> PacketBatch | None:
    """The frames of `batch` after the first `taken`, or None if nothing is left."""
    if taken >= len(batch):
        return None
    begin = int(batch.lengths[:taken].sum())
    segments = None if batch.segments is None else batch.segments[taken:]
    return PacketBatch(batch.data[begin:], batch.lengths[taken:], segments)


def bridge(
    driver: LinkDriver,
    port: PacketPort,
    deadline: float,
    *,
    count: int | None = None,
    keep_serving: bool = False,
    burst: int = _BURST,
) -> ActionResult:
    """Cross-connect the memif link and `port` until the deadline (or `count` frames).

    Frames a side cannot take yet wait (in order, one burst at most per direction) and
    nothing more is read from the other side meanwhile, so back-pressure reaches the
    sender's ring instead of growing a queue here. Frames from the interface go out on
    memif queue 0; frames of every memif RX queue go out of the interface.

    Args:
        driver: the memif link and its control-socket pump.
        port: the interface side (opened by the caller, closed by the caller).
        deadline: monotonic time at which the bridge stops.
        count: stop once this many frames were forwarded (both directions together).
        keep_serving: a server bridges the next client after a link goes down.
        burst: frames read per side per round at most.
    """
    loop = _Loop(driver, deadline, keep_serving=keep_serving)
    to_port: PacketBatch | None = None
    to_memif: PacketBatch | None = None
    to_port_frames = to_memif_frames = dropped_at_link_down = 0
    started = time.monotonic()
    progressed = True
    last_link: Link | None = None
    busy = 0.0  # seconds spent in rounds that moved frames (idle polls left out)
    # wait=0: never sleep on memif interrupts alone, frames may arrive on the NIC side
    while (link := loop.link(progressed, wait=0.0)) is not None:
        progressed = False
        round_start = time.perf_counter()
        moved_before = to_port_frames + to_memif_frames
        if link is not last_link:
            if to_memif is not None:
                dropped_at_link_down += len(to_memif)
                to_memif = None
            last_link = link
        if to_port is None:
            for queue in range(len(link.rx)):
                received = link.receive(queue)
                if len(received):
                    to_port = received
                    break
        if to_port is not None:
            taken = port.transmit(to_port)
            progressed = True  # even if nothing went: a full TX ring drains in microseconds
            to_port_frames += taken
            to_port = _rest(to_port, taken)
        if to_memif is None:
            received = port.receive(burst)
            if len(received):
                to_memif = received
        if to_memif is not None:
            taken = link.transmit(to_memif, 0)
            progressed = True
            to_memif_frames += taken
            to_memif = _rest(to_memif, taken)
        if to_port_frames + to_memif_frames > moved_before:
            busy += time.perf_counter() - round_start
        if count is not None and to_port_frames + to_memif_frames >= count:
            loop.stopped_by = "count"
            break
    elapsed = time.monotonic() - started
    facts: dict[str, Any] = {
        "iface": port.ifname,
        "to_iface": to_port_frames,
        "from_iface": to_memif_frames,
        "forwarded": to_port_frames + to_memif_frames,
        "dropped_at_link_down": dropped_at_link_down,
        "iface_counters": port.statistics(),
        "sessions": loop.sessions,
        "seconds": elapsed,
        "busy_seconds": busy,
        # what this core could forward if it never waited for frames: its own cost only
        "capacity_pps": (to_port_frames + to_memif_frames) / busy if busy > 0 else None,
    }
    ok = count is None or to_port_frames + to_memif_frames >= count
    return ActionResult(ok, loop.stopped_by, facts)


__all__ = ["PacketPort", "PortIO", "SocketPort", "bridge", "open_port"]
