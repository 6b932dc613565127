"""Hypothesis state machine over a server and a client core wired back to back (protocol.py).

tests/test_protocol.py feeds arbitrary input to machines put in fixed states by hand. Here
Hypothesis drives the pair itself: it delivers the honest messages in flight one by one,
and at any point injects any message or any bytes (with fake fds) into either side, or
ends a side. Every input is judged against the one TRANSITIONS table: a (role, state,
message) pair in the table advances to a successor that handler may reach, is refused by
it with a reason, or (DISCONNECT) closes the machine; anything else is refused with
DISCONNECT "Unexpected message <MESSAGE> in state <state>" (DPDK's bare "Unexpected
message" for a first message that is not INIT, §3.6), "Unknown message type" or "Invalid
message size". Nothing ever raises, every fd comes back exactly once, and the server's
claim on its interface lasts exactly as long as its connection.
"""

from __future__ import annotations

import itertools
from collections import deque

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from reference_impl import wire
from reference_impl.protocol import (
    TRANSITIONS,
    ConnectRequested,
    Disconnected,
    Event,
    HelloReceived,
    InterfaceConfig,
    MemifProtocol,
    Reason,
    Role,
    State,
    StaticInterfaceDirectory,
)
from reference_impl.wire import MessageType
from tests.test_protocol import MESSAGES, announcement, fds_in

_S, _C, _M = Role.SERVER, Role.CLIENT, MessageType

ADVANCES: dict[tuple[Role, State, MessageType], frozenset[State]] = {
    (_C, State.WAIT_HELLO, _M.HELLO): frozenset({State.HELLO_RECEIVED}),
    (_C, State.HANDSHAKE, _M.ACK): frozenset({State.HANDSHAKE, State.WAIT_CONNECTED}),
    (_C, State.WAIT_CONNECTED, _M.CONNECTED): frozenset({State.CONNECTED}),
    (_S, State.WAIT_INIT, _M.INIT): frozenset({State.HANDSHAKE}),
    (_S, State.HANDSHAKE, _M.ADD_REGION): frozenset({State.HANDSHAKE}),
    (_S, State.HANDSHAKE, _M.ADD_RING): frozenset({State.HANDSHAKE}),
    (_S, State.HANDSHAKE, _M.CONNECT): frozenset({State.CONNECTING}),
}
"""Where each table entry may move its machine when it accepts the message."""
REFUSE_ONLY = frozenset(
    {
        (_S, State.HANDSHAKE, _M.INIT),
        (_S, State.CONNECTING, _M.INIT),
        (_S, State.CONNECTED, _M.INIT),
    }
)
"""Table entries that exist to refuse with their own reason (a second INIT)."""

SERVER_CONFIG = InterfaceConfig(id=0, c2s_rings=2, s2c_rings=2, if_name="srv0")
CLIENT_CONFIG = InterfaceConfig(id=0, c2s_rings=2, s2c_rings=1, if_name="cli0")
Outgoing = tuple[bytes, tuple[int, ...]]


def test_the_model_covers_the_transition_table_exactly() -> None:
    disconnects = {key for key in TRANSITIONS if key[2] is _M.DISCONNECT}
    assert set(TRANSITIONS) == set(ADVANCES) | REFUSE_ONLY | disconnects
    assert disconnects == {(role, state, _M.DISCONNECT) for role in Role for state in State} - {
        (role, State.CLOSED, _M.DISCONNECT) for role in Role
    }


def expected_refusal(role: Role, state: State, datagram: bytes) -> str | None:
    """The reason the machine must give for an input the table does not take (else None)."""
    if len(datagram) < wire.MESSAGE_SIZE:
        return Reason.INVALID_MESSAGE_SIZE
    code = wire.message_type_of(datagram)
    if role is Role.SERVER and state is State.WAIT_INIT and code not in (_M.INIT, _M.DISCONNECT):
        return "Unexpected message"
    if code not in wire.REGISTRY:  # NONE and codes no message has
        return Reason.UNKNOWN_MESSAGE_TYPE
    if (role, state, MessageType(code)) not in TRANSITIONS:
        return f"Unexpected message {MessageType(code).name} in state {state.value}"
    return None


def judge(
    proto: MemifProtocol, before: State, datagram: bytes, fds: tuple[int, ...], events: list[Event]
) -> None:
    """Check one input's effect against the table; the machine's output is still queued."""
    handed = sorted(fd for event in events for fd in fds_in(event))
    assert handed == sorted(fds), (events, fds)  # every fd back, exactly once
    disconnects = [e for e in events if isinstance(e, Disconnected)]
    if before is State.CLOSED:
        assert not disconnects and proto.state is State.CLOSED
        return
    refusal = expected_refusal(proto.role, before, datagram)
    if refusal is not None:
        assert disconnects == [Disconnected(refusal, by_peer=False)], (before, events)
        assert proto.state is State.CLOSED
        return
    key = (proto.role, before, MessageType(wire.message_type_of(datagram)))
    if key[2] is _M.DISCONNECT:
        reason = wire.unpack(datagram)
        assert isinstance(reason, wire.Disconnect)
        assert disconnects == [Disconnected(reason.reason, by_peer=True)]
        assert proto.state is State.CLOSED
        return
    if disconnects:  # the handler refused: a reason of its own, and DISCONNECT goes out
        (refused,) = disconnects
        assert refused.reason and not refused.by_peer
        assert proto.state is State.CLOSED and proto.disconnect_reason == refused.reason
        return
    assert key not in REFUSE_ONLY, f"{key} was accepted"
    assert proto.state in ADVANCES[key], (key, proto.state)


class HandshakeMachine(RuleBasedStateMachine):
    """A server and a client core; honest messages in flight, and injected ones."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = StaticInterfaceDirectory(SERVER_CONFIG)
        self.server = MemifProtocol(Role.SERVER, directory=self.directory)
        self.client = MemifProtocol(Role.CLIENT, config=CLIENT_CONFIG)
        self.fds = itertools.count(1000)
        self.in_flight: dict[Role, deque[Outgoing]] = {Role.SERVER: deque(), Role.CLIENT: deque()}
        self.collect(self.server)
        self.inputs = 0

    def machine(self, role: Role) -> MemifProtocol:
        return self.server if role is Role.SERVER else self.client

    def collect(self, sender: MemifProtocol) -> None:
        """Queue what `sender` sends for the other side."""
        receiver = Role.CLIENT if sender.role is Role.SERVER else Role.SERVER
        out = sender.messages_to_send()
        for datagram, _ in out:
            assert len(datagram) == wire.MESSAGE_SIZE
        self.in_flight[receiver].extend(out)

    def feed(self, role: Role, datagram: bytes, fds: tuple[int, ...], complete: bool) -> None:
        """Give `role` one input, judge it, and let it react as an honest side would."""
        proto = self.machine(role)
        before = proto.state
        events = proto.receive(datagram, fds)  # must never raise
        judge(proto, before, datagram, fds, events)
        self.inputs += 1
        for event in events:
            if isinstance(event, HelloReceived):
                proto.announce(*announcement(event.negotiated, self.fds))
            elif isinstance(event, ConnectRequested):
                if complete:
                    proto.complete_connect()
                else:  # the memory would not map: the endpoint disconnects with a reason
                    proto.disconnect("mmap failed")
        self.collect(proto)

    @rule(steps=st.integers(1, 16), complete=st.booleans())
    def advance(self, steps: int, complete: bool) -> None:
        """Up to `steps` honest messages in flight arrive, in order (one handshake is ~11)."""
        for _ in range(steps):
            role = next((r for r in (Role.CLIENT, Role.SERVER) if self.in_flight[r]), None)
            if role is None:
                return
            datagram, fds = self.in_flight[role].popleft()
            self.feed(role, datagram, fds, complete)

    @rule(
        role=st.sampled_from(list(Role)),
        datagram=st.one_of(
            MESSAGES.map(lambda message: message.pack()),
            st.binary(max_size=200),
            st.tuples(st.integers(0, 12), st.binary(max_size=198)).map(
                lambda t: t[0].to_bytes(2, "little") + t[1]
            ),
        ),
        nfds=st.integers(0, 2),
        complete=st.booleans(),
    )
    def inject(self, role: Role, datagram: bytes, nfds: int, complete: bool) -> None:
        """Any message (well-formed or not for this state) or any 0-200 bytes, 0-2 fds."""
        fds = tuple(next(self.fds) for _ in range(nfds))
        self.feed(role, datagram, fds, complete)

    @precondition(lambda self: self.inputs > 0)
    @rule(role=st.sampled_from(list(Role)), lost=st.booleans())
    def end(self, role: Role, lost: bool) -> None:
        """One side gives up (local DISCONNECT) or its socket breaks."""
        proto = self.machine(role)
        was_closed = proto.closed
        events = proto.connection_lost() if lost else proto.disconnect(Reason.LOCAL_CLOSE)
        assert proto.closed
        assert (events == []) is was_closed
        self.collect(proto)

    @invariant()
    def states_are_reachable_ones(self) -> None:
        assert self.server.state in {
            State.WAIT_INIT,
            State.HANDSHAKE,
            State.CONNECTED,
            State.CLOSED,
        }  # CONNECTING lasts only until the endpoint maps the memory
        assert self.client.state is not State.CONNECTING
        assert self.server.state not in (State.WAIT_HELLO, State.HELLO_RECEIVED)

    @invariant()
    def the_claim_lasts_as_long_as_the_connection(self) -> None:
        holding = self.server.state in (State.HANDSHAKE, State.CONNECTED)
        assert self.directory.is_claimed(SERVER_CONFIG.id) is holding

    @invariant()
    def a_closed_side_says_nothing_more(self) -> None:
        for proto in (self.server, self.client):
            if proto.closed:
                assert proto.messages_to_send() == []


HandshakeMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=20, deadline=None
)
test_handshake_machine = HandshakeMachine.TestCase
