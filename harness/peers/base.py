"""The one Peer interface every memif implementation adapter provides, and what it reports.

A peer is *what* runs (reference, testpmd, vpp, external); where it runs is its
runtime's business. Scenarios see only this interface: start as server or client with a
`MemifSpec`, wait for the link, read status and counters, and stop — whatever happened.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from harness.errors import LogTailError
from harness.peers.reasons import DisconnectReason
from harness.topology.numa import Placement
from reference_impl.wire import SECRET_SIZE


class Role(enum.StrEnum):
    """memif role in the harness's words (VPP/libmemif: master/slave)."""

    SERVER = "server"
    CLIENT = "client"


class Activity(enum.StrEnum):
    """What a peer does with the link once it is up."""

    ECHO = "echo"  # answer ARP and ICMP echo (testpmd icmpecho, memif-ref responder)
    SINK = "sink"  # count what arrives (testpmd rxonly)
    SOURCE = "source"  # transmit as fast as it can (testpmd txonly)
    FORWARD = "forward"  # send back what arrives (testpmd io / macswap)
    IDLE = "idle"  # hold the link up and do nothing


@dataclasses.dataclass(frozen=True)
class MemifSpec:
    """Everything a scenario asks of one memif interface, in implementation-neutral words."""

    role: Role
    socket_path: str
    abstract: bool = False
    interface_id: int = 0
    secret: str | None = None
    log2_ring_size: int = 10
    buffer_size: int = 2048
    queues: int = 1
    zero_copy: bool = False
    activity: Activity = Activity.IDLE
    frame_size: int = 64

    def __post_init__(self) -> None:
        if not self.socket_path:
            raise ValueError("socket_path must not be empty")
        if not 1 <= self.log2_ring_size <= 14:
            raise ValueError(f"log2_ring_size {self.log2_ring_size} not in 1..14")
        if self.buffer_size <= 0 or self.queues <= 0:
            raise ValueError("buffer_size and queues must be positive")
        if self.secret is not None and len(self.secret.encode()) > SECRET_SIZE - 1:
            raise ValueError(
                f"secret is {len(self.secret.encode())} bytes; the memif secret field holds "
                f"at most {SECRET_SIZE - 1} (a longer one would be cut short, not refused)"
            )


@dataclasses.dataclass(frozen=True)
class PeerCounters:
    """Frames and bytes one peer saw on its memif interface."""

    rx_frames: int = 0
    rx_bytes: int = 0
    tx_frames: int = 0
    tx_bytes: int = 0
    rx_errors: int = 0
    tx_errors: int = 0


@dataclasses.dataclass(frozen=True)
class LinkParameters:
    """Run parameters a peer reports for its link (buffer size: what the client uses)."""

    c2s_rings: int
    s2c_rings: int
    ring_size: int
    buffer_size: int | None


@dataclasses.dataclass(frozen=True)
class PeerStatus:
    """A snapshot of a peer: link, counters, and why it last disconnected."""

    link_up: bool
    counters: PeerCounters
    disconnect: DisconnectReason | None = None
    disconnect_text: str | None = None
    running: bool = True


class PeerError(LogTailError):
    """The harness could not run the peer (infrastructure, not a conformance verdict)."""

    log_label = "peer log"


class PeerCrashed(PeerError):
    """The peer process died by a signal it was not sent: a FAIL of the peer, with its log."""


class Peer(abc.ABC):
    """A memif implementation under the harness's control."""

    kind: ClassVar[str]

    def __init__(
        self,
        spec: MemifSpec,
        workdir: Path,
        *,
        cpu: int | None = None,
        placement: Placement | None = None,
    ) -> None:
        """Prepare (not start) a peer.

        Args:
            spec: the interface to create.
            workdir: private directory for logs and config files.
            cpu: CPU to pin the peer's polling threads to, if any.
            placement: NUMA placement (CPUs and memory node) from harness.topology.numa;
                when given, its first CPU is the peer's `cpu`.
        """
        self.spec = spec
        self.workdir = workdir
        self.placement = placement
        self.cpu = placement.cpus[0] if placement is not None else cpu

    @abc.abstractmethod
    def start(self) -> None:
        """Start the peer; raises PeerError (with log tail) if it does not come up."""

    @abc.abstractmethod
    def wait_for_link(self, timeout: float) -> bool:
        """Poll until the memif link is up; False after `timeout` seconds."""

    @abc.abstractmethod
    def status(self) -> PeerStatus:
        """Link state, counters and the last disconnect reason, right now."""

    @abc.abstractmethod
    def logs(self) -> str:
        """Everything the peer printed so far."""

    @abc.abstractmethod
    def version(self) -> str:
        """The implementation's version string."""

    def negotiated(self) -> LinkParameters | None:
        """The link's run parameters, if this kind of peer reports them (default: no)."""
        return None

    def quiesce(self) -> None:
        """Stop moving traffic but keep the link up (before any peer of a pair stops).

        DPDK 22.11's memif driver can crash when its peer disconnects while its
        datapath is still polling the rings; pairs quiesce every peer before stopping
        any. Peers with nothing to stop keep this default.
        """
        return None

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop the peer and remove what it created; safe to call twice."""

    @property
    @abc.abstractmethod
    def crashed(self) -> bool:
        """Whether the peer died by a signal nobody sent it."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
