"""Tests of reference_impl.protocol: the sans-I/O memif control state machine, both roles.

The expected DISCONNECT datagrams are laid out by hand (type 8 at byte 0, code at 2, reason
at 6, zero padding), so a codec mistake cannot hide a protocol mistake. Server reasons and
their order are DPDK's (fact sheet 3.3-3.6); the replay tests at the end compare the
reference server and client byte for byte with real testpmd transcripts in tests/vectors/.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_impl import wire
from reference_impl.protocol import (
    Connected,
    ConnectRequested,
    Disconnected,
    Event,
    HelloReceived,
    InitAccepted,
    InterfaceConfig,
    LocalProtocolError,
    MemifProtocol,
    Negotiated,
    RegionAdded,
    RingAdded,
    Role,
    State,
    StaticInterfaceDirectory,
    UnusedFds,
)
from reference_impl.wire import AddRegion, AddRing, Disconnect, Hello, Init, MessageType

VECTORS = Path(__file__).parent / "vectors"

Outgoing = tuple[bytes, tuple[int, ...]]

# --------------------------------------------------------------------------- helpers


def disconnect_bytes(reason: str, code: int = 0) -> bytes:
    """A DISCONNECT datagram laid out by hand from the fact sheet (2.3)."""
    raw = reason.encode()
    assert len(raw) < 96
    return b"\x08\x00" + code.to_bytes(4, "little") + raw + bytes(96 - len(raw)) + bytes(26)


ACK_BYTES = b"\x01\x00" + bytes(126)


def type_of(datagram: bytes) -> MessageType:
    return MessageType(int.from_bytes(datagram[:2], "little"))


def types_of(messages: Sequence[Outgoing]) -> list[MessageType]:
    return [type_of(datagram) for datagram, _ in messages]


def fds_in(event: Event) -> tuple[int, ...]:
    """The fds an event hands to the caller."""
    if isinstance(event, RegionAdded | RingAdded):
        return (event.fd,)
    if isinstance(event, UnusedFds):
        return event.fds
    return ()


def new_server(
    *configs: InterfaceConfig, directory: StaticInterfaceDirectory | None = None
) -> MemifProtocol:
    """A server whose HELLO has already been drained."""
    if directory is None:
        directory = StaticInterfaceDirectory(*(configs or (InterfaceConfig(),)))
    server = MemifProtocol(Role.SERVER, directory=directory)
    assert types_of(server.messages_to_send()) == [MessageType.HELLO]
    return server


def accepted_server(
    config: InterfaceConfig | None = None, directory: StaticInterfaceDirectory | None = None
) -> MemifProtocol:
    """A server that accepted INIT for `config` (HELLO and ACK drained)."""
    config = config or InterfaceConfig()
    server = new_server(config, directory=directory)
    events = server.receive(Init(id=config.id, secret=config.secret).pack())
    assert [type(e) for e in events] == [InitAccepted]
    assert server.messages_to_send() == [(ACK_BYTES, ())]
    return server


def assert_refused(
    proto: MemifProtocol, events: list[Event], reason: str, fds: tuple[int, ...] = ()
) -> None:
    """`proto` answered the last input with DISCONNECT `reason` and closed."""
    expected: list[Event] = [UnusedFds(fds)] if fds else []
    expected.append(Disconnected(reason, by_peer=False))
    assert events == expected
    assert proto.messages_to_send() == [(disconnect_bytes(reason), ())]
    assert proto.state is State.CLOSED
    assert proto.closed and not proto.connected
    assert proto.disconnect_reason == reason
    assert proto.disconnected_by_peer is False


def announcement(
    negotiated: Negotiated, fds: Iterator[int], regions: int = 1
) -> tuple[list[tuple[AddRegion, int]], list[tuple[AddRing, int]]]:
    """ADD_REGIONs and ADD_RINGs (C2S first, then S2C) for `negotiated`, with fake fds."""
    region_list = [(AddRegion(index=i, size=4096 * (i + 1)), next(fds)) for i in range(regions)]
    rings: list[tuple[AddRing, int]] = []
    for flags, count in ((1, negotiated.c2s_rings), (0, negotiated.s2c_rings)):
        for index in range(count):
            ring = AddRing(
                flags=flags,
                index=index,
                region=0,
                offset=0x100 * len(rings),
                log2_ring_size=negotiated.log2_ring_size,
            )
            rings.append((ring, next(fds)))
    return region_list, rings


@dataclass
class Pair:
    """A server and a client wired back to back in memory."""

    client_config: InterfaceConfig = field(default_factory=InterfaceConfig)
    directory: StaticInterfaceDirectory = field(
        default_factory=lambda: StaticInterfaceDirectory(InterfaceConfig())
    )
    auto_complete: bool = True
    regions: int = 1
    server: MemifProtocol = field(init=False)
    client: MemifProtocol = field(init=False)
    server_events: list[Event] = field(default_factory=list, init=False)
    client_events: list[Event] = field(default_factory=list, init=False)
    trace: list[tuple[str, bytes, tuple[int, ...]]] = field(default_factory=list, init=False)
    announced_fds: list[int] = field(default_factory=list, init=False)
    fds: Iterator[int] = field(default_factory=lambda: itertools.count(100), init=False)

    def __post_init__(self) -> None:
        self.server = MemifProtocol(Role.SERVER, directory=self.directory)
        self.client = MemifProtocol(Role.CLIENT, config=self.client_config)

    def pump(self) -> None:
        """Move datagrams both ways until neither side has anything to send."""
        for _ in range(10_000):
            moved = False
            for datagram, fds in self.server.messages_to_send():
                moved = True
                self.trace.append(("S->C", datagram, fds))
                events = self.client.receive(datagram, fds)
                self.client_events.extend(events)
                for event in events:
                    if isinstance(event, HelloReceived):
                        regions, rings = announcement(event.negotiated, self.fds, self.regions)
                        self.announced_fds = [fd for _, fd in regions] + [fd for _, fd in rings]
                        self.client.announce(regions, rings)
            for datagram, fds in self.client.messages_to_send():
                moved = True
                self.trace.append(("C->S", datagram, fds))
                events = self.server.receive(datagram, fds)
                self.server_events.extend(events)
                if self.auto_complete and any(isinstance(e, ConnectRequested) for e in events):
                    self.server_events.extend(self.server.complete_connect())
            if not moved:
                return
        raise AssertionError("the pair never settled")


# ------------------------------------------------------------------- in-memory pair


def test_pair_reaches_connected() -> None:
    server_config = InterfaceConfig(id=3, app_name="srv-app", if_name="srv0")
    client_config = InterfaceConfig(id=3, app_name="cli-app", if_name="cli0")
    pair = Pair(client_config, StaticInterfaceDirectory(server_config))
    pair.pump()

    assert pair.server.state is State.CONNECTED and pair.server.connected
    assert pair.client.state is State.CONNECTED and pair.client.connected
    assert pair.server.was_connected and pair.client.was_connected
    assert [(d, types_of([(b, f)])[0]) for d, b, f in pair.trace] == [
        ("S->C", MessageType.HELLO),
        ("C->S", MessageType.INIT),
        ("S->C", MessageType.ACK),
        ("C->S", MessageType.ADD_REGION),
        ("S->C", MessageType.ACK),
        ("C->S", MessageType.ADD_RING),
        ("S->C", MessageType.ACK),
        ("C->S", MessageType.ADD_RING),
        ("S->C", MessageType.ACK),
        ("C->S", MessageType.CONNECT),
        ("S->C", MessageType.CONNECTED),
    ]
    assert [type(e) for e in pair.server_events] == [
        InitAccepted,
        RegionAdded,
        RingAdded,
        RingAdded,
        ConnectRequested,
        Connected,
    ]
    assert [type(e) for e in pair.client_events] == [HelloReceived, Connected]
    assert [fd for e in pair.server_events for fd in fds_in(e)] == pair.announced_fds
    assert pair.server_events[-1] == Connected("cli0")
    assert pair.client_events[-1] == Connected("srv0")
    assert (pair.server.peer_name, pair.server.peer_if_name) == ("cli-app", "cli0")
    assert (pair.client.peer_name, pair.client.peer_if_name) == ("srv-app", "srv0")
    assert [r.ring_type for r in pair.server.rings] == [wire.RingType.C2S, wire.RingType.S2C]
    assert pair.server.regions == pair.client.regions


def test_pair_negotiates_down_to_the_server_ring_counts() -> None:
    server_config = InterfaceConfig(c2s_rings=2, s2c_rings=3, log2_ring_size=8)
    client_config = InterfaceConfig(c2s_rings=4, s2c_rings=1, log2_ring_size=12)
    pair = Pair(client_config, StaticInterfaceDirectory(server_config), regions=2)
    pair.pump()
    assert pair.client.negotiated == Negotiated(2, 1, 8, wire.DEFAULT_BUFFER_SIZE)
    assert pair.server.connected and pair.client.connected
    assert [(r.ring_type, r.index) for r in pair.server.rings] == [
        (wire.RingType.C2S, 0),
        (wire.RingType.C2S, 1),
        (wire.RingType.S2C, 0),
    ]
    assert [r.index for r in pair.server.regions] == [0, 1]
    assert {r.log2_ring_size for r in pair.server.rings} == {8}


def test_pair_with_secret_connects() -> None:
    config = InterfaceConfig(id=9, secret="s3cret")
    pair = Pair(config, StaticInterfaceDirectory(config))
    pair.pump()
    assert pair.server.connected and pair.client.connected


def test_pair_client_disconnect_reaches_server() -> None:
    pair = Pair()
    pair.pump()
    events = pair.client.disconnect("Device closed")
    assert events == [Disconnected("Device closed", by_peer=False)]
    pair.pump()
    assert pair.server_events[-1] == Disconnected("Device closed", by_peer=True)
    assert pair.server.closed and pair.client.closed
    assert pair.trace[-1] == ("C->S", disconnect_bytes("Device closed"), ())


# --------------------------------------------------------------- INIT refusals (DPDK)


def test_refuses_incompatible_version() -> None:
    server = new_server()
    assert_refused(
        server, server.receive(Init(version=0x0100).pack()), "Incompatible memif version"
    )


@pytest.mark.parametrize("version", [0, 0x0100, 0x0201, 0x0300, 0xFFFF])
def test_refuses_every_version_but_0x0200(version: int) -> None:
    server = new_server()
    events = server.receive(Init(version=version).pack())
    assert_refused(server, events, "Incompatible memif version")


def test_refuses_unknown_id() -> None:
    server = new_server(InterfaceConfig(id=0))
    assert_refused(server, server.receive(Init(id=7).pack()), "ID not found")


def test_refuses_already_connected_and_first_keeps_working() -> None:
    pair = Pair()
    pair.pump()
    assert pair.server.connected

    second = new_server(directory=pair.directory)
    assert_refused(second, second.receive(Init(id=0).pack()), "Already connected")

    # The refusal did not release the first connection's claim.
    assert pair.directory.is_claimed(0)
    third = new_server(directory=pair.directory)
    assert_refused(third, third.receive(Init(id=0).pack()), "Already connected")
    # And the first connection did not notice anything.
    assert pair.server.connected and pair.client.connected
    assert pair.server.messages_to_send() == [] and pair.client.messages_to_send() == []
    pair.client.disconnect("Device closed")
    pair.pump()
    assert pair.server_events[-1] == Disconnected("Device closed", by_peer=True)


def test_refuses_already_connected_while_first_is_mid_handshake() -> None:
    directory = StaticInterfaceDirectory(InterfaceConfig())
    first = accepted_server(directory=directory)
    assert first.state is State.HANDSHAKE
    second = new_server(directory=directory)
    assert_refused(second, second.receive(Init().pack()), "Already connected")
    assert first.state is State.HANDSHAKE
    assert [type(e) for e in first.receive(AddRegion(index=0).pack(), (5,))] == [RegionAdded]


@pytest.mark.parametrize(
    "end_first",
    [
        pytest.param(lambda p: p.client.disconnect("bye"), id="client-disconnects"),
        pytest.param(lambda p: p.server.disconnect("bye"), id="server-disconnects"),
        pytest.param(lambda p: p.server.connection_lost(), id="connection-lost"),
    ],
)
def test_new_client_can_claim_the_id_after_the_first_leaves(
    end_first: Callable[[Pair], object],
) -> None:
    directory = StaticInterfaceDirectory(InterfaceConfig())
    first = Pair(directory=directory)
    first.pump()
    end_first(first)
    first.pump()
    assert first.server.closed
    assert not directory.is_claimed(0)
    second = Pair(directory=directory)
    second.pump()
    assert second.server.connected and second.client.connected


@pytest.mark.parametrize("mode", [wire.InterfaceMode.IP, wire.InterfaceMode.PUNT_INJECT, 77])
def test_refuses_non_ethernet_mode(mode: int) -> None:
    server = new_server()
    events = server.receive(Init(mode=mode).pack())
    assert_refused(server, events, "Only ethernet mode supported")


def test_refuses_missing_secret() -> None:
    server = new_server(InterfaceConfig(secret="s3cret"))
    assert_refused(server, server.receive(Init().pack()), "Secret required")


@pytest.mark.parametrize("secret", ["wrong", "s3cre", "s3cret!", "S3CRET"])
def test_refuses_incorrect_secret(secret: str) -> None:
    server = new_server(InterfaceConfig(secret="s3cret"))
    assert_refused(server, server.receive(Init(secret=secret).pack()), "Incorrect secret")


def test_refused_init_releases_the_id() -> None:
    directory = StaticInterfaceDirectory(InterfaceConfig(secret="s3cret"))
    first = new_server(directory=directory)
    assert_refused(first, first.receive(Init(secret="nope").pack()), "Incorrect secret")
    assert not directory.is_claimed(0)
    second = new_server(directory=directory)
    assert [type(e) for e in second.receive(Init(secret="s3cret").pack())] == [InitAccepted]


def test_accepts_secret_sent_to_a_server_without_one() -> None:
    server = new_server(InterfaceConfig())
    assert [type(e) for e in server.receive(Init(secret="abc").pack())] == [InitAccepted]
    assert server.messages_to_send() == [(ACK_BYTES, ())]
    assert server.state is State.HANDSHAKE


def test_accepts_an_init_longer_than_128_bytes() -> None:
    server = new_server()
    events = server.receive(Init().pack() + b"\xee" * 128)
    assert events == [InitAccepted(Init(name=""))]
    assert server.messages_to_send() == [(ACK_BYTES, ())]


@pytest.mark.parametrize(
    ("claimed", "server_secret", "init", "reason"),
    [
        (False, "", Init(version=0x0100, id=7, mode=1), "Incompatible memif version"),
        (True, "s", Init(version=0x0100, mode=1), "Incompatible memif version"),
        (False, "s", Init(id=7, mode=1, secret="x"), "ID not found"),
        (True, "s", Init(id=0, mode=1, secret="x"), "Already connected"),
        (True, "s", Init(id=0, mode=1), "Already connected"),
        (False, "s", Init(id=0, mode=1), "Only ethernet mode supported"),
        (False, "s", Init(id=0, mode=2, secret="x"), "Only ethernet mode supported"),
    ],
    ids=[
        "version-before-id",
        "version-before-already-connected",
        "id-before-mode-and-secret",
        "already-connected-before-mode-and-secret",
        "already-connected-before-secret-required",
        "mode-before-secret-required",
        "mode-before-incorrect-secret",
    ],
)
def test_init_checks_run_in_dpdk_order(
    claimed: bool, server_secret: str, init: Init, reason: str
) -> None:
    directory = StaticInterfaceDirectory(InterfaceConfig(id=0, secret=server_secret))
    if claimed:
        accepted_server(InterfaceConfig(id=0, secret=server_secret), directory=directory)
    server = new_server(directory=directory)
    assert_refused(server, server.receive(init.pack()), reason)


@pytest.mark.parametrize("state", ["handshake", "connecting", "connected"])
def test_second_init_on_the_same_connection_is_already_connected(state: str) -> None:
    server = accepted_server()
    if state != "handshake":
        server.receive(AddRegion(index=0).pack(), (5,))
        server.receive(AddRing(flags=1).pack(), (6,))
        server.receive(wire.Connect(if_name="c").pack())
        server.messages_to_send()
        if state == "connected":
            server.complete_connect()
            server.messages_to_send()
    assert server.state.value == state
    assert_refused(server, server.receive(Init().pack()), "Already connected")


# ------------------------------------------------------------ region / ring refusals


@pytest.mark.parametrize(
    "indices",
    [[1], [0, 0], [0, 2], [0, 1, 1], [5]],
    ids=lambda v: "-".join(map(str, v)),
)
def test_region_index_must_be_sequential(indices: list[int]) -> None:
    server = accepted_server()
    fds = itertools.count(10)
    *good, bad = indices
    for index in good:
        fd = next(fds)
        assert server.receive(AddRegion(index=index).pack(), (fd,)) == [
            RegionAdded(AddRegion(index=index), fd)
        ]
        assert server.messages_to_send() == [(ACK_BYTES, ())]
    fd = next(fds)
    events = server.receive(AddRegion(index=bad).pack(), (fd,))
    assert_refused(server, events, "Invalid region index", (fd,))


def test_region_index_256_is_refused_after_256_regions() -> None:
    server = accepted_server()
    for index in range(256):
        assert [type(e) for e in server.receive(AddRegion(index=index).pack(), (index,))] == [
            RegionAdded
        ]
    server.messages_to_send()
    events = server.receive(AddRegion(index=256).pack(), (999,))
    assert_refused(server, events, "Invalid region index", (999,))


def test_refuses_missing_region_fd() -> None:
    server = accepted_server()
    assert_refused(server, server.receive(AddRegion(index=0).pack()), "Missing region fd")


def test_missing_region_fd_is_checked_before_the_index() -> None:
    server = accepted_server()
    assert_refused(server, server.receive(AddRegion(index=9).pack()), "Missing region fd")


def test_refuses_missing_interrupt_fd() -> None:
    server = accepted_server()
    server.receive(AddRegion(index=0).pack(), (5,))
    server.messages_to_send()
    events = server.receive(AddRing(flags=1, index=0).pack())
    assert_refused(server, events, "Missing interrupt fd")


@pytest.mark.parametrize(
    ("flags", "index"),
    [(1, 2), (1, 0xFFFF), (0, 1), (0, 7)],
    ids=["c2s-2", "c2s-65535", "s2c-1", "s2c-7"],
)
def test_refuses_ring_index_beyond_the_server_queue_count(flags: int, index: int) -> None:
    server = accepted_server(InterfaceConfig(c2s_rings=2, s2c_rings=1))
    server.receive(AddRegion(index=0).pack(), (5,))
    server.messages_to_send()
    events = server.receive(AddRing(flags=flags, index=index).pack(), (6,))
    assert_refused(server, events, "Invalid ring index", (6,))


def test_accepts_ring_indices_within_the_server_queue_count() -> None:
    server = accepted_server(InterfaceConfig(c2s_rings=2, s2c_rings=1))
    server.receive(AddRegion(index=0).pack(), (5,))
    server.messages_to_send()
    rings = [AddRing(flags=1, index=0), AddRing(flags=1, index=1), AddRing(flags=0, index=0)]
    for fd, ring in enumerate(rings, 6):
        assert server.receive(ring.pack(), (fd,)) == [RingAdded(ring, fd)]
        assert server.messages_to_send() == [(ACK_BYTES, ())]
    assert server.state is State.HANDSHAKE


@pytest.mark.parametrize(
    "first",
    [
        AddRegion(index=0),
        AddRing(flags=1),
        wire.Ack(),
        Hello(),
        wire.Connect(),
        wire.Connected(),
    ],
    ids=lambda m: type(m).__name__,
)
def test_refuses_any_message_before_init(first: wire.Message) -> None:
    server = new_server()
    fds = (42,) if first.CARRIES_FD else ()
    events = server.receive(first.pack(), fds)
    assert_refused(server, events, "Unexpected message", fds)


@pytest.mark.parametrize("code", [0, 9, 77, 0xFFFF])
def test_refuses_unknown_message_type_after_init(code: int) -> None:
    server = accepted_server()
    events = server.receive(code.to_bytes(2, "little") + bytes(126))
    assert_refused(server, events, "Unknown message type")


@pytest.mark.parametrize("code", [0, 77])
def test_unknown_message_type_as_first_message_is_unexpected(code: int) -> None:
    """DPDK checks "first message must be INIT" before the type (vector unknown_type_first)."""
    server = new_server()
    events = server.receive(code.to_bytes(2, "little") + bytes(126))
    assert_refused(server, events, "Unexpected message")


def test_refusal_goes_out_after_an_undrained_hello() -> None:
    server = MemifProtocol(Role.SERVER, directory=StaticInterfaceDirectory(InterfaceConfig()))
    events = server.receive(Init(id=7).pack())
    assert events == [Disconnected("ID not found", by_peer=False)]
    out = server.messages_to_send()
    assert types_of(out) == [MessageType.HELLO, MessageType.DISCONNECT]
    assert out[1] == (disconnect_bytes("ID not found"), ())


@pytest.mark.parametrize("length", [1, 2, 64, 127])
@pytest.mark.parametrize("after_init", [False, True], ids=["first", "after-init"])
def test_refuses_short_datagram(length: int, after_init: bool) -> None:
    server = accepted_server() if after_init else new_server()
    events = server.receive(Init().pack()[:length])
    assert_refused(server, events, "Invalid message size")


def test_refuses_short_datagram_at_the_client() -> None:
    client = MemifProtocol(Role.CLIENT, config=InterfaceConfig())
    events = client.receive(Hello().pack()[:100])
    assert_refused(client, events, "Invalid message size")


# ----------------------------------------------------------------- pipelined client


def test_server_accepts_a_pipelined_client() -> None:
    server = new_server(InterfaceConfig(if_name="srv0"))
    region = AddRegion(index=0, size=1 << 20)
    c2s = AddRing(flags=1, index=0, offset=0)
    s2c = AddRing(flags=0, index=0, offset=0x4000)
    events: list[Event] = []
    for datagram, fds in [
        (Init(name="pipe").pack(), ()),
        (region.pack(), (10,)),
        (c2s.pack(), (11,)),
        (s2c.pack(), (12,)),
        (wire.Connect(if_name="cli0").pack(), ()),
    ]:
        events += server.receive(datagram, fds)
    assert events == [
        InitAccepted(Init(name="pipe")),
        RegionAdded(region, 10),
        RingAdded(c2s, 11),
        RingAdded(s2c, 12),
        ConnectRequested("cli0"),
    ]
    assert server.messages_to_send() == [(ACK_BYTES, ())] * 4
    assert server.state is State.CONNECTING
    assert server.complete_connect() == [Connected("cli0")]
    connected = b"\x07\x00srv0" + bytes(122)
    assert server.messages_to_send() == [(connected, ())]
    assert server.state is State.CONNECTED


# ------------------------------------------------------------------- client side


def hello_received(config: InterfaceConfig, hello: Hello | None = None) -> MemifProtocol:
    client = MemifProtocol(Role.CLIENT, config=config)
    assert client.state is State.WAIT_HELLO
    assert client.messages_to_send() == []
    events = client.receive((hello or Hello()).pack())
    assert [type(e) for e in events] == [HelloReceived]
    assert client.state is State.HELLO_RECEIVED
    return client


def test_client_sends_lockstep_one_message_per_ack() -> None:
    config = InterfaceConfig(
        id=0x01020304, secret="abc", app_name="cli-app", if_name="cli0", c2s_rings=2, s2c_rings=2
    )
    client = hello_received(config)
    assert client.messages_to_send() == []  # nothing goes out before announce()
    assert client.negotiated is not None
    regions, rings = announcement(client.negotiated, itertools.count(50), regions=2)
    client.announce(regions, rings)

    init = b"\x03\x00\x00\x02\x04\x03\x02\x01\x00abc" + bytes(21) + b"cli-app" + bytes(25)
    assert client.messages_to_send() == [(init + bytes(128 - len(init)), ())]
    assert client.messages_to_send() == []  # nothing more until an ACK arrives

    expected = [(m.pack(), (fd,)) for m, fd in [*regions, *rings]]
    expected.append((b"\x06\x00cli0" + bytes(122), ()))
    for message in expected:
        assert client.state is State.HANDSHAKE
        assert client.receive(ACK_BYTES) == []
        assert client.messages_to_send() == [message]
        assert client.messages_to_send() == []
    assert client.state is State.WAIT_CONNECTED
    assert client.receive(b"\x07\x00srv0" + bytes(122)) == [Connected("srv0")]
    assert client.state is State.CONNECTED
    assert client.messages_to_send() == []


def test_client_announce_is_only_allowed_after_hello() -> None:
    client = MemifProtocol(Role.CLIENT, config=InterfaceConfig())
    with pytest.raises(LocalProtocolError):
        client.announce([], [])
    server = new_server()
    with pytest.raises(LocalProtocolError):
        server.announce([], [])
    with pytest.raises(LocalProtocolError):
        server.complete_connect()
    with pytest.raises(LocalProtocolError):
        MemifProtocol(Role.SERVER)
    with pytest.raises(LocalProtocolError):
        MemifProtocol(Role.CLIENT)


def test_client_negotiation_example() -> None:
    hello = Hello(max_c2s_ring=0, max_s2c_ring=3, max_log2_ring_size=8)
    config = InterfaceConfig(c2s_rings=2, s2c_rings=8, log2_ring_size=10, buffer_size=4096)
    client = MemifProtocol(Role.CLIENT, config=config)
    events = client.receive(hello.pack())
    assert events == [HelloReceived(hello, Negotiated(1, 4, 8, 4096))]
    assert client.negotiated == Negotiated(1, 4, 8, 4096)
    assert client.negotiated.ring_size == 256


@given(
    max_c2s=st.integers(0, 0xFFFF),
    max_s2c=st.integers(0, 0xFFFF),
    max_log2=st.integers(0, 255),
    c2s=st.integers(1, 256),
    s2c=st.integers(1, 256),
    log2=st.integers(1, 14),
    buffer_size=st.integers(1, 0xFFFFFFFF),
)
def test_client_negotiation_takes_the_minimum(
    max_c2s: int, max_s2c: int, max_log2: int, c2s: int, s2c: int, log2: int, buffer_size: int
) -> None:
    hello = Hello(max_c2s_ring=max_c2s, max_s2c_ring=max_s2c, max_log2_ring_size=max_log2)
    config = InterfaceConfig(
        c2s_rings=c2s, s2c_rings=s2c, log2_ring_size=log2, buffer_size=buffer_size
    )
    client = MemifProtocol(Role.CLIENT, config=config)
    client.receive(hello.pack())
    assert client.negotiated == Negotiated(
        c2s_rings=min(max_c2s + 1, c2s),
        s2c_rings=min(max_s2c + 1, s2c),
        log2_ring_size=min(max_log2, log2),
        buffer_size=buffer_size,
    )


@pytest.mark.parametrize(
    ("min_version", "max_version"),
    [(0x0201, 0x0300), (0x0100, 0x01FF), (0x0300, 0x0100), (0, 0)],
)
def test_client_refuses_incompatible_hello(min_version: int, max_version: int) -> None:
    client = MemifProtocol(Role.CLIENT, config=InterfaceConfig())
    hello = Hello(min_version=min_version, max_version=max_version)
    events = client.receive(hello.pack())
    assert_refused(client, events, "Incompatible memif version")


@pytest.mark.parametrize(("min_version", "max_version"), [(0x0100, 0x0300), (0x0200, 0x0200)])
def test_client_accepts_a_version_range_containing_0x0200(
    min_version: int, max_version: int
) -> None:
    hello = Hello(min_version=min_version, max_version=max_version)
    client = hello_received(InterfaceConfig(), hello)
    assert client.peer_name == ""


# ----------------------------------------------------------------- reachable states


SERVER_CONFIG = InterfaceConfig(id=0, c2s_rings=2, s2c_rings=2, if_name="srv0")
CLIENT_CONFIG = InterfaceConfig(id=0, c2s_rings=1, s2c_rings=1, if_name="cli0")


def machine_in(label: str) -> MemifProtocol:
    """A fresh machine driven into the state `label` names, with its output drained."""
    role, _, state = label.partition(":")
    if role == "server":
        server = new_server(SERVER_CONFIG)
        steps: list[tuple[bytes, tuple[int, ...]]] = []
        if state != "wait-init":
            steps.append((Init().pack(), ()))
        if state in ("handshake-regions", "connecting", "connected"):
            steps += [(AddRegion().pack(), (1,)), (AddRing(flags=1).pack(), (2,))]
        if state in ("connecting", "connected"):
            steps.append((wire.Connect(if_name="cli0").pack(), ()))
        if state == "closed":
            steps.append((b"\x01", ()))
        for datagram, fds in steps:
            server.receive(datagram, fds)
        if state == "connected":
            server.complete_connect()
        server.messages_to_send()
        return server
    client = MemifProtocol(Role.CLIENT, config=CLIENT_CONFIG)
    if state == "closed":
        client.receive(b"\x01")
    if state not in ("wait-hello", "closed"):
        client.receive(Hello().pack())
    if state not in ("wait-hello", "hello-received", "closed"):
        assert client.negotiated is not None
        client.announce(*announcement(client.negotiated, itertools.count(1)))
    acks = {"handshake-mid": 1, "wait-connected": 4, "connected": 4}.get(state, 0)
    for _ in range(acks):
        client.receive(ACK_BYTES)
    if state == "connected":
        client.receive(wire.Connected(if_name="srv0").pack())
    client.messages_to_send()
    return client


STATE_LABELS = {
    "server:wait-init": State.WAIT_INIT,
    "server:handshake": State.HANDSHAKE,
    "server:handshake-regions": State.HANDSHAKE,
    "server:connecting": State.CONNECTING,
    "server:connected": State.CONNECTED,
    "server:closed": State.CLOSED,
    "client:wait-hello": State.WAIT_HELLO,
    "client:hello-received": State.HELLO_RECEIVED,
    "client:handshake": State.HANDSHAKE,
    "client:handshake-mid": State.HANDSHAKE,
    "client:wait-connected": State.WAIT_CONNECTED,
    "client:connected": State.CONNECTED,
    "client:closed": State.CLOSED,
}
OPEN_LABELS = [label for label, state in STATE_LABELS.items() if state is not State.CLOSED]


@pytest.mark.parametrize("label", list(STATE_LABELS))
def test_machine_in_reaches_each_state(label: str) -> None:
    assert machine_in(label).state is STATE_LABELS[label]


@pytest.mark.parametrize("label", OPEN_LABELS)
def test_disconnect_from_peer_in_any_state(label: str) -> None:
    proto = machine_in(label)
    events = proto.receive(Disconnect(code=3, reason="peer says bye").pack())
    assert events == [Disconnected("peer says bye", by_peer=True)]
    assert proto.state is State.CLOSED
    assert proto.disconnect_reason == "peer says bye"
    assert proto.disconnected_by_peer is True
    assert proto.messages_to_send() == []  # DPDK does not answer a DISCONNECT


@pytest.mark.parametrize("label", OPEN_LABELS)
def test_disconnect_from_peer_with_a_stray_fd(label: str) -> None:
    proto = machine_in(label)
    events = proto.receive(Disconnect(reason="x").pack(), (77,))
    assert events == [UnusedFds((77,)), Disconnected("x", by_peer=True)]
    assert proto.state is State.CLOSED


def test_peer_disconnect_releases_the_server_claim() -> None:
    directory = StaticInterfaceDirectory(InterfaceConfig())
    server = accepted_server(directory=directory)
    assert directory.is_claimed(0)
    server.receive(Disconnect(reason="bye").pack())
    assert not directory.is_claimed(0)


@pytest.mark.parametrize("label", OPEN_LABELS)
def test_local_disconnect_drops_queued_messages(label: str) -> None:
    proto = machine_in(label)
    assert proto.disconnect("Device closed") == [Disconnected("Device closed", by_peer=False)]
    assert proto.messages_to_send() == [(disconnect_bytes("Device closed"), ())]
    assert proto.receive(ACK_BYTES) == []
    assert proto.messages_to_send() == []
    assert proto.disconnect("again") == []
    assert proto.messages_to_send() == []


def test_local_disconnect_truncates_a_long_reason() -> None:
    client = machine_in("client:handshake")
    events = client.disconnect("r" * 300)
    assert events == [Disconnected("r" * 95, by_peer=False)]
    assert client.messages_to_send() == [(disconnect_bytes("r" * 95), ())]


def test_connection_lost_closes_by_peer() -> None:
    proto = machine_in("server:connected")
    events = proto.connection_lost()
    assert len(events) == 1 and isinstance(events[0], Disconnected)
    assert events[0].by_peer is True and events[0].reason
    assert proto.closed and proto.messages_to_send() == []
    assert proto.connection_lost() == []


def test_closed_machine_hands_back_fds_and_says_nothing() -> None:
    proto = machine_in("server:closed")
    assert proto.receive(AddRegion().pack(), (8, 9)) == [UnusedFds((8, 9))]
    assert proto.receive(Init().pack()) == []
    assert proto.messages_to_send() == []


# ------------------------------------------------------------------ send_raw, fds


@given(
    label=st.sampled_from(list(STATE_LABELS)),
    datagram=st.binary(max_size=300),
    fds=st.lists(st.integers(0, 1 << 20), max_size=3).map(tuple),
)
def test_send_raw_sends_arbitrary_bytes(label: str, datagram: bytes, fds: tuple[int, ...]) -> None:
    proto = machine_in(label)
    state = proto.state
    proto.send_raw(datagram, fds)
    assert proto.messages_to_send() == [(datagram, fds)]
    assert proto.state is state


def test_send_raw_keeps_order_with_queued_messages() -> None:
    server = MemifProtocol(Role.SERVER, directory=StaticInterfaceDirectory(InterfaceConfig()))
    server.send_raw(b"\x20\x1f\xe3\x03", (4,))
    out = server.messages_to_send()
    assert types_of(out[:1]) == [MessageType.HELLO]
    assert out[1:] == [(b"\x20\x1f\xe3\x03", (4,))]


STRAY_FD_CASES = [
    ("server:wait-init", Init()),
    ("server:handshake", wire.Connect()),
    ("server:handshake", wire.Ack()),
    ("server:connected", Init()),
    ("client:wait-hello", Hello()),
    ("client:handshake", wire.Ack()),
    ("client:wait-connected", wire.Connected()),
    ("client:connected", Hello()),
]


@pytest.mark.parametrize(
    ("label", "message"),
    STRAY_FD_CASES,
    ids=[f"{label}-{type(m).__name__}" for label, m in STRAY_FD_CASES],
)
def test_fds_with_a_message_that_carries_none_are_unused(label: str, message: wire.Message) -> None:
    proto = machine_in(label)
    events = proto.receive(message.pack(), (31, 32))
    unused = [e for e in events if isinstance(e, UnusedFds)]
    assert unused == [UnusedFds((31, 32))]
    assert [fd for e in events for fd in fds_in(e)] == [31, 32]


@pytest.mark.parametrize("message", [AddRegion(), AddRing(flags=1)], ids=lambda m: type(m).__name__)
def test_two_fds_on_add_region_or_ring_are_both_handed_back(message: wire.Message) -> None:
    server = machine_in("server:handshake")
    if isinstance(message, AddRing):
        server.receive(AddRegion().pack(), (30,))
        server.messages_to_send()
    events = server.receive(message.pack(), (31, 32))
    assert [fd for e in events for fd in fds_in(e)] == [31, 32]
    assert not any(isinstance(e, RegionAdded | RingAdded) for e in events)


# ------------------------------------------------------- property: any input, any state

SERVER_STATES = {State.WAIT_INIT, State.HANDSHAKE, State.CONNECTING, State.CONNECTED}
CLIENT_STATES = {
    State.WAIT_HELLO,
    State.HELLO_RECEIVED,
    State.HANDSHAKE,
    State.WAIT_CONNECTED,
    State.CONNECTED,
}
SUCCESSORS: dict[tuple[Role, State], set[State]] = {
    (Role.SERVER, State.WAIT_INIT): {State.HANDSHAKE},
    (Role.SERVER, State.HANDSHAKE): {State.HANDSHAKE, State.CONNECTING},
    (Role.SERVER, State.CONNECTING): set(),
    (Role.SERVER, State.CONNECTED): set(),
    (Role.CLIENT, State.WAIT_HELLO): {State.HELLO_RECEIVED},
    (Role.CLIENT, State.HELLO_RECEIVED): set(),
    (Role.CLIENT, State.HANDSHAKE): {State.HANDSHAKE, State.WAIT_CONNECTED},
    (Role.CLIENT, State.WAIT_CONNECTED): {State.CONNECTED},
    (Role.CLIENT, State.CONNECTED): set(),
}


def ints(bits: int) -> st.SearchStrategy[int]:
    limit = (1 << bits) - 1
    special = [v for v in (0, 1, 2, 0x0200, limit) if v <= limit]
    return st.one_of(st.sampled_from(special), st.integers(0, limit))


def text(size: int) -> st.SearchStrategy[str]:
    return st.lists(st.integers(1, 255), max_size=size - 1).map(
        lambda values: bytes(values).decode("utf-8", "surrogateescape")
    )


def small_text(size: int) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(["", "s3cret"]), text(size))


MESSAGES: st.SearchStrategy[wire.Message] = st.one_of(
    st.builds(wire.Ack),
    st.builds(
        Hello,
        name=text(32),
        min_version=ints(16),
        max_version=ints(16),
        max_region=ints(16),
        max_s2c_ring=ints(16),
        max_c2s_ring=ints(16),
        max_log2_ring_size=ints(8),
    ),
    st.builds(
        Init, version=ints(16), id=ints(32), mode=ints(8), secret=small_text(24), name=text(32)
    ),
    st.builds(AddRegion, index=ints(16), size=ints(64)),
    st.builds(
        AddRing,
        flags=ints(16),
        index=ints(16),
        region=ints(16),
        offset=ints(32),
        log2_ring_size=ints(8),
        private_hdr_size=ints(16),
    ),
    st.builds(wire.Connect, if_name=text(32)),
    st.builds(wire.Connected, if_name=text(32)),
    st.builds(Disconnect, code=ints(32), reason=text(96)),
)
DATAGRAMS = st.one_of(
    MESSAGES.map(lambda m: m.pack()),
    st.binary(max_size=200),
    st.tuples(st.integers(0, 12), st.binary(min_size=0, max_size=198)).map(
        lambda t: t[0].to_bytes(2, "little") + t[1]
    ),
)
INPUTS = st.lists(st.tuples(DATAGRAMS, st.integers(0, 2)), min_size=1, max_size=6)


def check_one_receive(proto: MemifProtocol, datagram: bytes, fds: tuple[int, ...]) -> None:
    """Feed one input and check every invariant the machine promises."""
    before = proto.state
    events = proto.receive(datagram, fds)  # must never raise
    out = proto.messages_to_send()

    handed = [fd for event in events for fd in fds_in(event)]
    assert sorted(handed) == sorted(fds), (events, fds)  # none lost, none duplicated
    disconnects = [e for e in events if isinstance(e, Disconnected)]

    if before is State.CLOSED:
        assert events == ([UnusedFds(fds)] if fds else [])
        assert out == []
        assert proto.state is State.CLOSED
        return
    if proto.state is not State.CLOSED:
        legal = SERVER_STATES if proto.role is Role.SERVER else CLIENT_STATES
        assert proto.state in legal
        assert proto.state in SUCCESSORS[(proto.role, before)]
        assert disconnects == []
        assert len(out) <= 1  # one reply at most per message received
        for reply, reply_fds in out:
            assert len(reply) == 128
            if proto.role is Role.SERVER:
                assert (reply, reply_fds) == (ACK_BYTES, ())
            else:
                assert len(reply_fds) == (1 if wire.unpack(reply).CARRIES_FD else 0)
        return

    assert len(disconnects) == 1 and events[-1] is disconnects[0]
    closing = disconnects[0]
    assert proto.disconnect_reason == closing.reason
    assert proto.disconnected_by_peer is closing.by_peer
    if closing.by_peer:
        peer = wire.unpack(datagram)
        assert isinstance(peer, Disconnect) and peer.reason == closing.reason
        assert out == []
    else:
        assert closing.reason != ""
        assert len(out) == 1, out
        sent = wire.unpack(out[0][0])
        assert out[0][1] == ()
        assert isinstance(sent, Disconnect)
        assert sent.reason == closing.reason


@settings(max_examples=400)
@given(label=st.sampled_from(list(STATE_LABELS)), inputs=INPUTS)
def test_any_input_in_any_reachable_state(label: str, inputs: list[tuple[bytes, int]]) -> None:
    proto = machine_in(label)
    fd_source = itertools.count(10_000)
    for datagram, nfds in inputs:
        fds = tuple(next(fd_source) for _ in range(nfds))
        check_one_receive(proto, datagram, fds)


def honest_inputs(role: Role) -> list[tuple[bytes, tuple[int, ...]]]:
    """The well-formed handshake a peer of `role` would receive, in order."""
    if role is Role.SERVER:
        return [
            (Init().pack(), ()),
            (AddRegion().pack(), (1,)),
            (AddRing(flags=1).pack(), (2,)),
            (AddRing().pack(), (3,)),
            (wire.Connect().pack(), ()),
        ]
    return [(Hello().pack(), ()), (ACK_BYTES, ()), (ACK_BYTES, ()), (ACK_BYTES, ())]


@settings(max_examples=300)
@given(
    role=st.sampled_from(list(Role)),
    prefix=st.integers(0, 5),
    inputs=INPUTS,
)
def test_any_input_after_an_honest_prefix(
    role: Role, prefix: int, inputs: list[tuple[bytes, int]]
) -> None:
    """Reach states by a random-length honest prefix, then feed arbitrary input."""
    if role is Role.SERVER:
        proto = new_server(SERVER_CONFIG)
    else:
        proto = MemifProtocol(Role.CLIENT, config=CLIENT_CONFIG)
    for datagram, fds in honest_inputs(role)[:prefix]:
        events = proto.receive(datagram, fds)
        for event in events:
            if isinstance(event, HelloReceived):
                proto.announce(*announcement(event.negotiated, itertools.count(1)))
        proto.messages_to_send()
    fd_source = itertools.count(10_000)
    for datagram, nfds in inputs:
        fds = tuple(next(fd_source) for _ in range(nfds))
        check_one_receive(proto, datagram, fds)


# --------------------------------------------------------- replay of testpmd vectors


def load_vector(name: str) -> dict[str, Any]:
    path = VECTORS / name
    assert path.is_file(), f"missing byte-vector file {path} (see tests/vectors/README.md)"
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def capture_names(name: str) -> list[str]:
    path = VECTORS / name
    if not path.is_file():
        return [f"<{name} missing>"]  # the test then fails in load_vector
    return [capture["name"] for capture in json.loads(path.read_text())["captures"]]


def capture(name: str, capture_name: str) -> dict[str, Any]:
    doc = load_vector(name)
    for item in doc["captures"]:
        if item["name"] == capture_name:
            return dict(item)
    raise AssertionError(f"no capture {capture_name} in {name}")


def replay(
    proto: MemifProtocol,
    transcript: list[dict[str, Any]],
    inbound: str,
    react: Callable[[list[Event]], None] = lambda events: None,
) -> list[Event]:
    """Feed `proto` every `inbound` datagram; after each, its output must equal the
    captured datagrams that followed it (bytes and fd count), up to the next input."""
    steps: list[tuple[bytes, int, list[tuple[bytes, int]]]] = []
    for entry in transcript:
        data = bytes.fromhex(entry["hex"])
        if entry["direction"] == inbound:
            steps.append((data, entry["nfds"], []))
        elif steps:
            steps[-1][2].append((data, entry["nfds"]))
    assert steps, "nothing to replay"
    fds = itertools.count(500)
    all_events: list[Event] = []
    for data, nfds, expected in steps:
        events = proto.receive(data, tuple(next(fds) for _ in range(nfds)))
        react(events)
        all_events.extend(events)
        produced = [(datagram, len(out_fds)) for datagram, out_fds in proto.messages_to_send()]
        assert produced == expected, f"after input {data[:8].hex()}... ({len(data)} bytes)"
    return all_events


def complete_on_connect(server: MemifProtocol) -> Callable[[list[Event]], None]:
    def react(events: list[Event]) -> None:
        if any(isinstance(e, ConnectRequested) for e in events):
            server.complete_connect()

    return react


REFUSALS = "testpmd_server_refusals.json"


@pytest.mark.parametrize("case", capture_names(REFUSALS))
def test_reference_server_answers_like_testpmd(case: str) -> None:
    """Replay each refusal case; the reference server must send testpmd's exact bytes."""
    item = capture(REFUSALS, case)
    secret = "s3cret" if item["server"] == "secret" else ""
    directory = StaticInterfaceDirectory(InterfaceConfig(secret=secret, if_name="net_memif0"))
    if "first_client_transcript" in item:
        first = new_server(directory=directory)
        replay(first, item["first_client_transcript"], "to_testpmd", complete_on_connect(first))
        assert first.connected
    server = new_server(directory=directory)
    replay(server, item["transcript"], "to_testpmd", complete_on_connect(server))
    if item["observed_reason"] is None:
        assert not server.closed
    else:
        assert server.closed and server.disconnect_reason == item["observed_reason"]
    if "first_client_transcript" in item:
        assert first.connected and first.messages_to_send() == []
        assert item["first_client_after"] == []


CLIENT_HANDSHAKE = "testpmd_client_handshake.json"


@pytest.mark.parametrize("case", capture_names(CLIENT_HANDSHAKE))
def test_reference_server_serves_the_testpmd_client(case: str) -> None:
    """testpmd's client messages, fed to the reference server, get the captured replies."""
    item = capture(CLIENT_HANDSHAKE, case)
    queues = 2 if "2q" in case else 1
    secret = "abc" if "secret" in case else ""
    config = InterfaceConfig(if_name="capture", secret=secret, c2s_rings=queues, s2c_rings=queues)
    server = new_server(config)
    events = replay(server, item["transcript"], "from_testpmd", complete_on_connect(server))
    assert server.connected
    assert [type(e) for e in events] == [
        InitAccepted,
        RegionAdded,
        *[RingAdded] * (2 * queues),
        ConnectRequested,
    ]
    assert server.peer_if_name == "net_memif0"
    assert server.peer_name.startswith("DPDK ")
    for entry in item["teardown"]["transcript"]:
        if entry["direction"] == "to_testpmd":
            reason = entry["decoded"]["reason"]
            assert server.disconnect(reason) == [Disconnected(reason, by_peer=False)]
            assert server.messages_to_send() == [(bytes.fromhex(entry["hex"]), ())]


SERVER_HANDSHAKE = "testpmd_server_handshake.json"


@pytest.mark.parametrize("case", capture_names(SERVER_HANDSHAKE))
def test_reference_client_talks_to_the_testpmd_server(case: str) -> None:
    """testpmd's HELLO/ACKs/CONNECTED, fed to the reference client, get the captured
    client messages (INIT and CONNECT built by the reference client itself)."""
    item = capture(SERVER_HANDSHAKE, case)
    sent = [
        wire.unpack(bytes.fromhex(e["hex"]))
        for e in item["transcript"]
        if e["direction"] == "to_testpmd"
    ]
    regions = [m for m in sent if isinstance(m, AddRegion)]
    rings = [m for m in sent if isinstance(m, AddRing)]
    config = InterfaceConfig(app_name="capture", if_name="capture0", c2s_rings=1, s2c_rings=1)
    client = MemifProtocol(Role.CLIENT, config=config)
    fds = itertools.count(700)

    def react(events: list[Event]) -> None:
        for event in events:
            if isinstance(event, HelloReceived):
                assert event.negotiated == Negotiated(1, 1, 10, 2048)
                client.announce([(r, next(fds)) for r in regions], [(r, next(fds)) for r in rings])

    events = replay(client, item["transcript"], "from_testpmd", react)
    assert [type(e) for e in events] == [HelloReceived, Connected]
    assert client.connected
    assert client.peer_if_name == "net_memif0"
    assert client.peer_name == load_vector(SERVER_HANDSHAKE)["dpdk_version"]


def test_ack_already_released_is_still_sent_before_a_later_disconnect() -> None:
    """An ACK the machine released must go out even if the caller drains late."""
    server = MemifProtocol(Role.SERVER, directory=StaticInterfaceDirectory(InterfaceConfig()))
    server.messages_to_send()  # HELLO
    server.receive(wire.Init().pack())
    server.receive(wire.AddRegion(index=5, size=4096).pack(), [7])
    sent = [wire.unpack(datagram) for datagram, _ in server.messages_to_send()]
    assert sent == [wire.Ack(), wire.Disconnect(reason="Invalid region index")]


def test_local_disconnect_with_a_lone_surrogate_reason_does_not_raise() -> None:
    client = MemifProtocol(Role.CLIENT, config=InterfaceConfig())
    events = client.disconnect("broken \ud800")
    assert events == [Disconnected("broken ?", by_peer=False)]


def test_connect_refused_when_a_ring_names_an_unannounced_region_or_indices_have_gaps() -> None:
    def server_after(*messages: tuple[wire.Message, list[int]]) -> list[Event]:
        directory = StaticInterfaceDirectory(InterfaceConfig(c2s_rings=2, s2c_rings=2))
        server = MemifProtocol(Role.SERVER, directory=directory)
        server.receive(wire.Init().pack())
        events: list[Event] = []
        for message, fds in messages:
            events = server.receive(message.pack(), fds)
        return events

    region = (wire.AddRegion(index=0, size=4096), [5])
    stray = (wire.AddRing(flags=1, index=0, region=1), [6])
    assert server_after(region, stray, (wire.Connect(), [])) == [
        Disconnected("C2S ring 0 in unknown region 1", by_peer=False)
    ]
    gap = (wire.AddRing(flags=1, index=1, region=0), [6])
    assert server_after(region, gap, (wire.Connect(), [])) == [
        Disconnected("C2S ring indices [1] have gaps", by_peer=False)
    ]
