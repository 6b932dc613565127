"""A hostile memif client: one named attack on a server, and a record of what the server did.

Each attack breaks one rule of the fact sheet on purpose: message size (§1.3), mandatory fds
(§1.4), INIT first and known types only (§3.6), descriptors inside announced memory (§5.6,
§9.14), or leaves without DISCONNECT (§7.1). Control-message attacks are written straight to
a raw SEQPACKET connection; descriptor and traffic attacks first bring a real link up with
`ClientEndpoint`, then write the client-owned ring fields themselves. Every attack is bounded
by an overall deadline and by a settle time for the server's answer, and records the answer:
a DISCONNECT (with its reason), a close without one, messages as if nothing were wrong, or
nothing at all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
import select
import socket
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from reference_impl import endpoint, frames, protocol, wire
from reference_impl.endpoint import ClientEndpoint, ControlChannel, EndpointError
from reference_impl.link import Link
from reference_impl.memory import Region, signal_eventfd
from reference_impl.protocol import InterfaceConfig
from reference_impl.ring import PacketBatch

APP_NAME = "memif-hostile"
DEFAULT_SETTLE = 1.0
"""Seconds the attacker waits for the server's answer after the attack."""
DEFAULT_DESCRIPTORS = 8
"""Bogus descriptors published by a descriptor attack."""
DEFAULT_TRAFFIC_SECONDS = 0.3
"""How long close-mid-traffic transmits before it drops the connection."""
MAX_TRAFFIC_FRAMES = 200_000
"""close-mid-traffic never transmits more frames than this."""
MALFORMED_SIZE = 64
TRUNCATED_SIZE = 12  # ADD_REGION's own fields (type, index, size) without the padding
UNKNOWN_TYPE = 0xFFFF
PROBE_REGION_SIZE = 1 << 20  # memory announced by control attacks (never mapped by a server)
OVERRUN = 32  # past-region: bytes a descriptor reaches beyond the end of its region
BOGUS_LENGTH = 64
_INDEX_MASK = 0xFFFF
_TRAFFIC_BURST = 32
_DESCRIPTOR_GRACE = 0.1  # seconds to wait for a late disconnect once descriptors were consumed


class Attack(enum.StrEnum):
    """The attacks, by the names the command line and the scenarios use."""

    MALFORMED = "malformed"
    TRUNCATED = "truncated"
    UNKNOWN_TYPE = "unknown-type"
    BEFORE_INIT = "before-init"
    MISSING_REGION_FD = "missing-region-fd"
    MISSING_RING_FD = "missing-ring-fd"
    BAD_REGION = "bad-region"
    PAST_REGION = "past-region"
    ZERO_LENGTH = "zero-length"
    OFFSET_OVERFLOW = "offset-overflow"
    OVERSIZED = "oversized"
    HEAD_JUMP = "head-jump"
    ENDLESS_CHAIN = "endless-chain"
    CLOSE_MID_HANDSHAKE = "close-mid-handshake"
    CLOSE_MID_TRAFFIC = "close-mid-traffic"


DESCRIPTIONS: dict[Attack, str] = {
    Attack.MALFORMED: (
        f"first message is a {MALFORMED_SIZE}-byte datagram of 0xA5 bytes (not 128, §1.3)"
    ),
    Attack.TRUNCATED: (
        f"after INIT is accepted, ADD_REGION cut to its first {TRUNCATED_SIZE} bytes, "
        "with its memfd (§1.3)"
    ),
    Attack.UNKNOWN_TYPE: (
        f"after INIT is accepted, a 128-byte message of type {UNKNOWN_TYPE:#06x} (§3.6)"
    ),
    Attack.BEFORE_INIT: "ADD_REGION with a memfd as the first message, before INIT (§3.6, §9.10)",
    Attack.MISSING_REGION_FD: "after INIT is accepted, ADD_REGION without its memfd (§1.4)",
    Attack.MISSING_RING_FD: (
        "after INIT and ADD_REGION are accepted, ADD_RING without its eventfd (§1.4)"
    ),
    Attack.BAD_REGION: (
        f"link up, then {DEFAULT_DESCRIPTORS} C2S descriptors naming a region that was never "
        "announced (§5.6, §9.14)"
    ),
    Attack.PAST_REGION: (
        f"link up, then C2S descriptors whose offset+length ends {OVERRUN} bytes past the end "
        "of their region (§5.6, §9.14)"
    ),
    Attack.ZERO_LENGTH: "link up, then C2S descriptors of length 0 (§5.6, §9.14)",
    Attack.OFFSET_OVERFLOW: (
        f"link up, then C2S descriptors at offset 2^32-{BOGUS_LENGTH // 2} of length "
        f"{BOGUS_LENGTH}: offset+length wraps a u32 to {BOGUS_LENGTH // 2} (§5.6, §9.14)"
    ),
    Attack.OVERSIZED: (
        f"link up, then C2S descriptors of length {wire.ETHERNET_MAX_FRAME + 1} in Ethernet "
        "mode (over 9216, §5.6, §9.14)"
    ),
    Attack.HEAD_JUMP: (
        "link up, then the C2S head moved a whole ring and one slot past the server's tail (§5.1)"
    ),
    Attack.ENDLESS_CHAIN: (
        "link up, then every C2S slot flagged NEXT and the head a whole ring ahead: a chain "
        "that never ends (§5.5)"
    ),
    Attack.CLOSE_MID_HANDSHAKE: (
        "INIT and ADD_REGION accepted, then the socket is closed without DISCONNECT (§3.7, §7.1)"
    ),
    Attack.CLOSE_MID_TRAFFIC: (
        "link up, frames transmitted, then the socket is closed without DISCONNECT while "
        "frames are still on the ring (§7.1)"
    ),
}
"""What each attack does, with the fact-sheet rule it breaks."""

RING_ATTACKS = frozenset({Attack.HEAD_JUMP, Attack.ENDLESS_CHAIN})
"""Link attacks that leave the C2S ring in a state no conforming client produces."""
LINK_ATTACKS = frozenset(
    {
        Attack.BAD_REGION,
        Attack.PAST_REGION,
        Attack.ZERO_LENGTH,
        Attack.OFFSET_OVERFLOW,
        Attack.OVERSIZED,
        Attack.CLOSE_MID_TRAFFIC,
        *RING_ATTACKS,
    }
)
"""Attacks that bring a real link up first."""


class Answer(enum.StrEnum):
    """What the server did after the attack."""

    DISCONNECT = "disconnect"
    """It sent DISCONNECT (reason in the report)."""
    CLOSED = "closed"
    """It closed the connection without a DISCONNECT (or died)."""
    ACCEPTED = "accepted"
    """It went on as if the message were fine (ACK, CONNECTED...) and kept the connection."""
    NONE = "none"
    """Nothing within the settle time; the connection (and any link) stayed up."""
    NOT_OBSERVED = "not-observed"
    """The attacker closed the connection itself; the server's reaction is not visible here."""


class AttackError(Exception):
    """The attack could not be carried out (no server, the correct part was refused...)."""


@dataclasses.dataclass
class AttackReport:
    """The facts of one attack (printed as JSON by `memif-ref client ... attack NAME`).

    Attributes:
        attack: The attack's name.
        description: What the attack does.
        answer: What the server did afterwards.
        disconnect_reason: The reason of the server's DISCONNECT, if one came.
        sent: What the attacker sent, in order.
        received: What the server sent, in order ("EOF" for a close, "link up" once a
            link attack's handshake is done).
        server_name: The name in the server's HELLO.
        link_up: Whether a link came up before the attack (link attacks only).
        published: Bogus descriptors published (descriptor attacks).
        consumed: Slots of those the server consumed (its C2S tail moved past them).
        frames_sent: Valid frames transmitted before the attack (close-mid-traffic).
        in_flight_at_close: Frames still on the C2S ring when the connection was dropped.
        link_after: Whether the link was still up when the observation ended.
        seconds: Duration of the attack.
        error: Why the attack could not be carried out (None when it was).
    """

    attack: str
    description: str = ""
    answer: str = Answer.NONE.value
    disconnect_reason: str | None = None
    sent: list[str] = dataclasses.field(default_factory=list)
    received: list[str] = dataclasses.field(default_factory=list)
    server_name: str | None = None
    link_up: bool = False
    published: int = 0
    consumed: int | None = None
    frames_sent: int = 0
    in_flight_at_close: int | None = None
    link_after: bool | None = None
    seconds: float = 0.0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Target:
    """Where the server listens and what a correct client must say to it."""

    socket_path: str
    abstract: bool = False
    interface_id: int = 0
    secret: str = ""


# ----------------------------------------------------------------- raw control attacks


class _RawChannel:
    """A raw control connection: send any bytes and fds, read the server's datagrams."""

    def __init__(self, target: Target, report: AttackReport, deadline: float) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        sock.settimeout(max(0.01, deadline - time.monotonic()))  # a full backlog blocks connect
        try:
            sock.connect(endpoint.socket_address(target.socket_path, target.abstract))
        except OSError as exc:
            sock.close()
            raise AttackError(f"cannot connect to {target.socket_path!r}: {exc}") from exc
        self.channel = ControlChannel(sock)
        self.report = report
        self.eof = False

    def send(self, label: str, datagram: bytes, fds: Sequence[int] = ()) -> None:
        """Send one datagram; `label` is what the report lists."""
        try:
            self.channel.send(datagram, fds)
        except OSError as exc:  # the server already went away: that is its answer
            self.report.sent.append(f"{label} (send failed: {exc.strerror or exc})")
            return
        self.report.sent.append(label)

    def next(self, until: float) -> wire.Message | str | None:
        """The server's next datagram (a Message, or a description of a bad one), "EOF" at
        the end of the connection, or None if nothing came before `until`."""
        if self.eof:
            return "EOF"
        while True:
            try:
                received = self.channel.receive()
            except BlockingIOError:
                left = until - time.monotonic()
                if left <= 0:
                    return None
                select.select([self.channel.sock], [], [], left)
                continue
            except OSError:  # ECONNRESET: the server closed with our data unread
                received = None
            if received is None:
                self.eof = True
                return "EOF"
            datagram, fds = received
            for fd in fds:  # a server never sends fds; do not leak them
                with contextlib.suppress(OSError):
                    os.close(fd)
            try:
                return wire.unpack(datagram)
            except wire.WireError as exc:
                return f"MALFORMED ({exc})"

    def expect(self, wanted: type[wire.Message], what: str, until: float) -> wire.Message:
        """The next message must be `wanted`, or the attack cannot go on."""
        got = self.next(until)
        if isinstance(got, wanted):
            return got
        if isinstance(got, wire.Disconnect):
            raise AttackError(f"server refused {what}: DISCONNECT {got.reason!r}")
        seen = "nothing" if got is None else got if isinstance(got, str) else got.TYPE.name
        raise AttackError(f"expected {wanted.TYPE.name} after {what}, got {seen}")

    def observe(self, settle: float, deadline: float) -> None:
        """Read the server's answer for up to `settle` seconds and classify it."""
        until = min(deadline, time.monotonic() + settle)
        answered = False
        while True:
            got = self.next(until)
            if got is None:
                break
            if isinstance(got, wire.Disconnect):
                self.report.received.append("DISCONNECT")
                self.report.disconnect_reason = got.reason
                self.report.answer = Answer.DISCONNECT.value
                return
            if got == "EOF":
                self.report.received.append("EOF")
                self.report.answer = Answer.CLOSED.value
                return
            self.report.received.append(got if isinstance(got, str) else got.TYPE.name)
            answered = True
        self.report.answer = (Answer.ACCEPTED if answered else Answer.NONE).value

    def close(self) -> None:
        """Close the connection (no DISCONNECT is sent)."""
        self.channel.close()


def _init(target: Target) -> bytes:
    return wire.Init(id=target.interface_id, secret=target.secret, name=APP_NAME).pack()


def _add_region(region: Region) -> bytes:
    return wire.AddRegion(index=0, size=region.size).pack()


def _add_ring() -> bytes:
    return wire.AddRing(
        flags=int(wire.AddRingFlag.C2S),
        index=0,
        region=0,
        offset=0,
        log2_ring_size=wire.DEFAULT_LOG2_RING_SIZE,
    ).pack()


def _control_attack(
    attack: Attack, target: Target, report: AttackReport, settle: float, deadline: float
) -> None:
    channel = _RawChannel(target, report, deadline)
    region: Region | None = None
    try:
        hello = channel.expect(wire.Hello, "connect", deadline)
        assert isinstance(hello, wire.Hello)
        report.server_name = hello.name
        if attack is Attack.MALFORMED:
            channel.send(f"{MALFORMED_SIZE}-byte datagram", b"\xa5" * MALFORMED_SIZE)
        elif attack is Attack.BEFORE_INIT:
            region = Region.create(f"{APP_NAME} region", PROBE_REGION_SIZE)
            channel.send("ADD_REGION (with memfd) before INIT", _add_region(region), [region.fd])
        else:
            channel.send("INIT", _init(target))
            channel.expect(wire.Ack, "INIT", deadline)
            report.received.append("ACK")
            if attack is Attack.UNKNOWN_TYPE:
                datagram = struct.pack("<H", UNKNOWN_TYPE) + bytes(wire.MESSAGE_SIZE - 2)
                channel.send(f"message of type {UNKNOWN_TYPE:#06x}", datagram)
            elif attack is Attack.MISSING_REGION_FD:
                channel.send(
                    "ADD_REGION without fd", wire.AddRegion(index=0, size=PROBE_REGION_SIZE).pack()
                )
            else:
                region = Region.create(f"{APP_NAME} region", PROBE_REGION_SIZE)
                if attack is Attack.TRUNCATED:
                    channel.send(
                        f"ADD_REGION cut to {TRUNCATED_SIZE} bytes (with memfd)",
                        _add_region(region)[:TRUNCATED_SIZE],
                        [region.fd],
                    )
                else:
                    channel.send("ADD_REGION (with memfd)", _add_region(region), [region.fd])
                    channel.expect(wire.Ack, "ADD_REGION", deadline)
                    report.received.append("ACK")
                    if attack is Attack.CLOSE_MID_HANDSHAKE:
                        channel.close()
                        report.sent.append("close (no DISCONNECT)")
                        report.answer = Answer.NOT_OBSERVED.value
                        return
                    channel.send("ADD_RING without fd", _add_ring())
        channel.observe(settle, deadline)
    finally:
        channel.close()
        if region is not None:
            region.close()


# ----------------------------------------------------------------- link attacks


def _bring_link_up(target: Target, deadline: float) -> ClientEndpoint:
    config = InterfaceConfig(
        id=target.interface_id, secret=target.secret, app_name=APP_NAME, if_name=APP_NAME
    )
    client = ClientEndpoint(target.socket_path, config, abstract=target.abstract)
    try:
        client.connect()
    except EndpointError as exc:
        client.close()
        raise AttackError(str(exc)) from exc
    client.wait_until(
        lambda: client.connected or client.session is None, max(0.0, deadline - time.monotonic())
    )
    if not client.connected:
        seen = client.last_disconnect
        client.close()
        why = f"DISCONNECT {seen.reason!r}" if seen else "no link before the deadline"
        raise AttackError(f"the link needed for the attack did not come up: {why}")
    return client


def _ended(client: ClientEndpoint, report: AttackReport) -> bool:
    """Whether the server ended the connection; records how."""
    if client.session is not None:
        return False
    seen = client.last_disconnect
    if seen is None or seen.reason == protocol.Reason.PEER_CLOSED:
        report.received.append("EOF")
        report.answer = Answer.CLOSED.value
    else:
        report.received.append("DISCONNECT")
        report.answer = Answer.DISCONNECT.value
        report.disconnect_reason = seen.reason
    return True


def _publish_bogus(attack: Attack, link: Link, count: int) -> tuple[int, int]:
    """Write `count` bogus descriptors on C2S ring 0 and publish them; (first slot, count)."""
    queue = link.tx[0]
    view = queue.view
    count = view.size if attack in RING_ATTACKS else min(count, link.tx_space(0))
    start = queue.cursor
    slots = (start + np.arange(count)) & view.mask
    # The client initialised every slot with its own buffer (region, offset); keep those
    # and break only what the attack is about.
    if attack is Attack.BAD_REGION:
        view.region_column[slots] = len(link.regions)  # the first index never announced
        view.length_column[slots] = BOGUS_LENGTH
    elif attack is Attack.PAST_REGION:
        region_ids = view.region_column[slots].astype(np.int64)
        sizes = np.array([link.regions[int(r)].size for r in region_ids], dtype=np.int64)
        view.offset_column[slots] = (sizes + OVERRUN - BOGUS_LENGTH) & ~3
        view.length_column[slots] = BOGUS_LENGTH
    elif attack is Attack.OFFSET_OVERFLOW:
        view.offset_column[slots] = (1 << 32) - BOGUS_LENGTH // 2
        view.length_column[slots] = BOGUS_LENGTH
    elif attack is Attack.OVERSIZED:
        view.length_column[slots] = wire.ETHERNET_MAX_FRAME + 1
    elif attack is Attack.ZERO_LENGTH:
        view.length_column[slots] = 0
    endless = attack is Attack.ENDLESS_CHAIN
    view.flags_column[slots] = int(wire.DescriptorFlag.NEXT) if endless else 0
    jump = 1 if attack is Attack.HEAD_JUMP else 0  # a ring and one slot: no slot is filled
    queue.cursor = (start + count + jump) & _INDEX_MASK
    view.head = queue.cursor
    if not view.interrupts_masked:
        signal_eventfd(queue.eventfd)
    return start, count


def _descriptor_attack(
    attack: Attack,
    client: ClientEndpoint,
    report: AttackReport,
    settle: float,
    deadline: float,
    count: int,
    before_leaving: Callable[[], None] | None,
) -> None:
    link = client.link
    assert link is not None
    start, published = _publish_bogus(attack, link, count)
    report.published = published
    report.sent.append(f"{published} descriptors ({attack.value}) on C2S ring 0")
    view = link.tx[0].view
    report.consumed = 0
    until = min(deadline, time.monotonic() + settle)
    while time.monotonic() < until:
        client.service(0.005)
        if _ended(client, report):
            return
        report.consumed = (view.tail - start) & _INDEX_MASK
        if report.consumed >= published:
            until = min(until, time.monotonic() + _DESCRIPTOR_GRACE)
    report.answer = Answer.NONE.value
    report.link_after = client.connected
    if before_leaving is not None:
        before_leaving()


def _abort(client: ClientEndpoint) -> None:
    """Close the control socket without a DISCONNECT, then free the memory."""
    session = client.session
    if session is not None:
        with contextlib.suppress(KeyError, ValueError):
            client.selector.unregister(session.channel.sock)
        session.channel.close()
    client.close()  # the socket is gone: nothing more reaches the server


def _close_mid_traffic(
    client: ClientEndpoint, report: AttackReport, deadline: float, seconds: float
) -> None:
    link = client.link
    assert link is not None
    frame = frames.udp_frame(
        64,
        frames.parse_mac("02:fe:00:00:00:0e"),
        frames.BROADCAST_MAC,
        frames.benchmark_ip(frames.DEFAULT_CLIENT_IP),
        frames.benchmark_ip(frames.DEFAULT_SERVER_IP),
    )
    burst = PacketBatch.repeat(frame, _TRAFFIC_BURST)
    end = min(deadline, time.monotonic() + seconds)
    while time.monotonic() < end and report.frames_sent < MAX_TRAFFIC_FRAMES:
        report.frames_sent += link.transmit(burst)
        client.service(0.0)
        if _ended(client, report):
            report.sent.append(f"{report.frames_sent} frames of 64 bytes")
            return
    report.sent.append(f"{report.frames_sent} frames of 64 bytes")
    report.in_flight_at_close = link.tx_in_flight()
    report.link_after = client.connected
    _abort(client)
    report.sent.append("close (no DISCONNECT)")
    report.answer = Answer.NOT_OBSERVED.value


def _link_attack(
    attack: Attack,
    target: Target,
    report: AttackReport,
    settle: float,
    deadline: float,
    count: int,
    traffic_seconds: float,
    before_leaving: Callable[[], None] | None,
) -> None:
    client = _bring_link_up(target, deadline)
    try:
        report.link_up = True
        report.sent.append("correct handshake (INIT, ADD_REGION, ADD_RINGs, CONNECT)")
        report.received.append("link up")
        session = client.session
        report.server_name = session.protocol.peer_name if session else None
        if attack is Attack.CLOSE_MID_TRAFFIC:
            _close_mid_traffic(client, report, deadline, traffic_seconds)
        else:
            _descriptor_attack(attack, client, report, settle, deadline, count, before_leaving)
    finally:
        client.close()  # a clean DISCONNECT when the link is still up, else nothing


# ----------------------------------------------------------------- entry points


def run_attack(
    attack: Attack,
    target: Target,
    *,
    timeout: float,
    settle: float = DEFAULT_SETTLE,
    descriptors: int = DEFAULT_DESCRIPTORS,
    traffic_seconds: float = DEFAULT_TRAFFIC_SECONDS,
    before_leaving: Callable[[], None] | None = None,
) -> AttackReport:
    """Carry out one attack on the server at `target` and report what happened.

    Args:
        attack: Which attack.
        target: The server's socket, and the id and secret a correct client uses.
        timeout: Bound on the whole attack, seconds.
        settle: Seconds to wait for the server's answer after the attack.
        descriptors: Bogus descriptors to publish (descriptor attacks; at most a ring).
        traffic_seconds: How long close-mid-traffic transmits before it drops the connection.
        before_leaving: Called when a descriptor attack's observation is over, before the
            hostile client leaves the link it brought up (with a DISCONNECT), e.g. to stop
            the server's datapath first. Not called when the server ended the link, nor for
            close-mid-traffic, whose abrupt departure is the attack itself.

    Returns:
        The report; `error` is set when the attack could not be carried out (and then
        `answer` says nothing about the server).
    """
    started = time.monotonic()
    deadline = started + timeout
    report = AttackReport(attack.value, DESCRIPTIONS[attack])
    try:
        if attack in LINK_ATTACKS:
            _link_attack(
                attack,
                target,
                report,
                settle,
                deadline,
                max(1, descriptors),
                traffic_seconds,
                before_leaving,
            )
        else:
            _control_attack(attack, target, report, settle, deadline)
    except AttackError as exc:
        report.error = str(exc)
    report.seconds = round(time.monotonic() - started, 3)
    return report


__all__ = [
    "DESCRIPTIONS",
    "Answer",
    "Attack",
    "AttackError",
    "AttackReport",
    "Target",
    "run_attack",
]
