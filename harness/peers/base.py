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
from typing import Any, ClassVar, Self

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
    VERIFY = "verify"  # send numbered frames, check each comes back byte for byte (reference)


MODES = ("ethernet", "ip", "punt-inject")
"""memif interface modes by the names MemifSpec uses."""


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
    interrupt: bool = False
    """Receive in interrupt mode: MASK_INT clear on the peer's RX rings, woken by their
    eventfds (fact sheet §6); False: the peer polls (sets MASK_INT). A peer that cannot
    receive in interrupt mode (DPDK) refuses the spec rather than silently polling."""
    mode: str = "ethernet"
    """Interface mode: ethernet, ip or punt-inject (fact sheet §2.1)."""
    activity: Activity = Activity.IDLE
    frame_size: int = 64
    frame_sizes: tuple[int, ...] = ()
    """VERIFY: frame sizes used in turn (empty: `frame_size`)."""
    frame_count: int = 1000
    """VERIFY: numbered frames to send."""
    window: int = 32
    """VERIFY: frames in flight at most."""
    iface: str | None = None
    """FORWARD: the kernel interface (veth/TAP, the peer's "NIC") to bridge memif with, in
    both directions; None: send received frames back onto memif."""
    rate: float | None = None
    """SOURCE: frames per second to offer (None: as fast as the ring takes them). A peer
    that cannot pace its transmitter refuses a rate rather than ignoring it."""
    seconds: float | None = None
    """SOURCE: stop transmitting after this long (None: until stopped)."""
    lifetime: float | None = None
    """Seconds after which the peer stops by itself whatever happens (None: the adapter's
    default); a benchmark point sets its own budget."""
    capture: bool = True
    """Keep a pcap of the frames the peer moves, if it can (the reference can): evidence for
    conformance cases; benchmarks turn it off, recording costs speed."""
    trials: bool = False
    """SOURCE: transmit only in the trials the harness starts one by one with
    `Peer.run_trial` (each at its own rate, for its own time), the link staying up between
    them. A peer that cannot refuses the spec."""

    def __post_init__(self) -> None:
        if not self.socket_path:
            raise ValueError("socket_path must not be empty")
        if not 1 <= self.log2_ring_size <= 14:
            raise ValueError(f"log2_ring_size {self.log2_ring_size} not in 1..14")
        if self.buffer_size <= 0 or self.queues <= 0:
            raise ValueError("buffer_size and queues must be positive")
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r}: one of {', '.join(MODES)}")
        if self.rate is not None and not self.rate > 0:
            raise ValueError(f"rate {self.rate} must be a positive frames-per-second figure")
        if self.lifetime is not None and not self.lifetime > 0:
            raise ValueError(f"lifetime {self.lifetime} must be positive")
        if self.seconds is not None and not self.seconds > 0:
            raise ValueError(f"seconds {self.seconds} must be positive")
        if self.trials and (self.activity is not Activity.SOURCE or self.rate or self.seconds):
            raise ValueError("trials are for a SOURCE; rate and duration come with each trial")
        if self.iface is not None and self.activity is not Activity.FORWARD:
            raise ValueError("iface is where a FORWARD peer bridges to; other activities have none")
        if self.frame_count <= 0 or self.window <= 0:
            raise ValueError("frame_count and window must be positive")
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
class CheckReport:
    """How the numbered frames of a VERIFY peer came back (from its peer's forwarding).

    Attributes:
        count: Frames the check was to send.
        sent: Frames sent so far.
        matched: Frames back byte for byte (MAC addresses aside).
        mismatched: Frames back with another length or other bytes.
        missing: Frames sent that never came back (None while the check runs).
        foreign: Frames received that the check did not send.
        first_mismatch: The first mismatched frame (sequence, sizes, first bad byte).
        done: Whether the check is over.
    """

    count: int
    sent: int
    matched: int
    mismatched: int
    missing: int | None
    foreign: int
    first_mismatch: dict[str, Any] | None
    done: bool


@dataclasses.dataclass(frozen=True)
class TrialCounts:
    """What a SOURCE peer sent in one trial (`Peer.run_trial`).

    Attributes:
        sent: frames it put on the ring.
        unsent: frames due at the trial's rate that found no room (they count as lost).
        elapsed: seconds from its first to its last frame.
    """

    sent: int
    unsent: int
    elapsed: float


@dataclasses.dataclass(frozen=True)
class PeerStatus:
    """A snapshot of a peer: link, counters, and why it last disconnected."""

    link_up: bool
    counters: PeerCounters
    disconnect: DisconnectReason | None = None
    disconnect_text: str | None = None
    running: bool = True
    time: float | None = None
    """CLOCK_MONOTONIC seconds at which the counters were read (None: unknown)."""


class PeerError(LogTailError):
    """The harness could not run the peer (infrastructure, not a conformance verdict)."""

    log_label = "peer log"


class PacingUnsupported(PeerError):
    """The peer cannot pace, time-bound or run trials of its transmitter (NDR/PDR needs one
    that can): a property of the implementation, reported as SKIP, never a failure."""


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

    def check_report(self) -> CheckReport | None:
        """A VERIFY peer's tally of its numbered frames (None: this peer cannot check)."""
        return None

    def layout_report(self) -> dict[str, Any] | None:
        """A server's view of its client's memory layout at CONNECT, with the §4 rules the
        layout breaks (None: this peer does not inspect layouts)."""
        return None

    def violations_seen(self) -> dict[str, int] | None:
        """Datapath rule breaks this peer saw its peer commit, by rule (None: not observed)."""
        return None

    def frame_capture(self) -> Path | None:
        """The pcap file of the frames this peer sent and received, if it writes one."""
        return None

    def run_trial(self, seconds: float, rate: float | None) -> TrialCounts:
        """A SOURCE started with `trials`: transmit `rate` frames/s (None: as fast as the
        ring takes them) for `seconds`, wait until it is done, and say what went.

        Raises:
            PeerError: this kind of peer cannot run trials on request (the default), or
                the trial did not end in time.
        """
        raise PacingUnsupported(f"{self.kind} cannot run transmit trials on request")

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
