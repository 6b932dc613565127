"""Sans-I/O memif control state machine for both roles, driven by one transition table.

The core never touches sockets, memory or clocks: `receive()` takes one datagram and the
fds that came with it and returns events; replies are queued and drained with
`messages_to_send()`. Server-side validation follows DPDK's server (fact sheet 3.3-3.6):
same order of checks and the same reason strings.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Protocol as TypingProtocol

from reference_impl import wire
from reference_impl.faults import Fault
from reference_impl.wire import InterfaceMode, MessageType, RingType


class Role(Enum):
    """Which end of the control channel this is."""

    SERVER = "server"  # VPP "master"
    CLIENT = "client"  # VPP "slave"


class State(Enum):
    """Control-channel states of either role."""

    WAIT_HELLO = "wait-hello"  # client: connected, HELLO not yet seen
    HELLO_RECEIVED = "hello-received"  # client: waiting for the memory to announce
    WAIT_INIT = "wait-init"  # server: HELLO sent
    HANDSHAKE = "handshake"  # INIT accepted; regions and rings flowing
    CONNECTING = "connecting"  # server: CONNECT seen, memory being mapped
    WAIT_CONNECTED = "wait-connected"  # client: CONNECT sent
    CONNECTED = "connected"
    CLOSED = "closed"


class Reason:
    """Disconnect reasons, spelled as DPDK's server and client spell them."""

    INCOMPATIBLE_VERSION = "Incompatible memif version"
    ID_NOT_FOUND = "ID not found"
    ALREADY_CONNECTED = "Already connected"
    ONLY_ETHERNET = "Only ethernet mode supported"
    MODE_MISMATCH = "Mode mismatch"
    SECRET_REQUIRED = "Secret required"
    INCORRECT_SECRET = "Incorrect secret"
    MISSING_REGION_FD = "Missing region fd"
    INVALID_REGION_INDEX = "Invalid region index"
    MISSING_INTERRUPT_FD = "Missing interrupt fd"
    INVALID_RING_INDEX = "Invalid ring index"
    PRIVATE_HEADERS = "Private headers not supported"
    INVALID_RING_SIZE = "Invalid ring size"
    INVALID_MESSAGE_SIZE = "Invalid message size"
    UNEXPECTED_MESSAGE = "Unexpected message"
    UNKNOWN_MESSAGE_TYPE = "Unknown message type"
    UNEXPECTED_FD = "Unexpected file descriptor"
    PEER_CLOSED = "peer closed the connection"
    LOCAL_CLOSE = "Device closed"


@dataclasses.dataclass(frozen=True)
class InterfaceConfig:
    """What one side asks for. A server's ring counts are the most it accepts."""

    id: int = 0
    secret: str = ""
    mode: InterfaceMode = InterfaceMode.ETHERNET
    app_name: str = "memif-ref"
    if_name: str = "memif0"
    c2s_rings: int = 1
    s2c_rings: int = 1
    log2_ring_size: int = wire.DEFAULT_LOG2_RING_SIZE
    buffer_size: int = wire.DEFAULT_BUFFER_SIZE
    faults: frozenset[Fault] = frozenset()
    """Deliberate misbehaviour (test-only, see reference_impl.faults); empty by default."""

    def __post_init__(self) -> None:
        if not 0 <= self.id <= 0xFFFFFFFF:
            raise ValueError(f"interface id {self.id} is not a u32")
        wire.encode_cstring(self.secret, wire.SECRET_SIZE)
        wire.encode_cstring(self.app_name, wire.NAME_SIZE)
        wire.encode_cstring(self.if_name, wire.NAME_SIZE)
        for name in ("c2s_rings", "s2c_rings"):
            count = getattr(self, name)
            if not 1 <= count <= wire.MAX_RINGS:
                raise ValueError(f"{name}={count}: must be 1..{wire.MAX_RINGS}")
        if not 1 <= self.log2_ring_size <= wire.MAX_LOG2_RING_SIZE:
            raise ValueError(
                f"log2 ring size {self.log2_ring_size}: must be 1..{wire.MAX_LOG2_RING_SIZE}"
            )
        if not 1 <= self.buffer_size <= 0xFFFFFFFF:
            raise ValueError(f"buffer size {self.buffer_size} must be a positive u32")


@dataclasses.dataclass(frozen=True)
class Negotiated:
    """Run parameters a client derives from HELLO and its own configuration."""

    c2s_rings: int
    s2c_rings: int
    log2_ring_size: int
    buffer_size: int

    @property
    def ring_size(self) -> int:
        """Slots per ring."""
        return 1 << self.log2_ring_size


def negotiate(hello: wire.Hello, config: InterfaceConfig) -> Negotiated:
    """Apply the client's negotiation rule (fact sheet 3.2): the minimum of both sides.

    HELLO ring limits are highest indices, so a count is limit + 1.
    """
    return Negotiated(
        c2s_rings=min(hello.max_c2s_ring + 1, config.c2s_rings),
        s2c_rings=min(hello.max_s2c_ring + 1, config.s2c_rings),
        log2_ring_size=min(hello.max_log2_ring_size, config.log2_ring_size),
        buffer_size=config.buffer_size,
    )


# ----------------------------------------------------------------------------- events


@dataclasses.dataclass(frozen=True)
class Event:
    """Something the I/O layer must know about."""


@dataclasses.dataclass(frozen=True)
class HelloReceived(Event):
    """Client: the server's HELLO arrived; build memory for `negotiated`, then announce."""

    hello: wire.Hello
    negotiated: Negotiated


@dataclasses.dataclass(frozen=True)
class InitAccepted(Event):
    """Server: a client's INIT passed every check."""

    init: wire.Init


@dataclasses.dataclass(frozen=True)
class RegionAdded(Event):
    """Server: the client announced a region; `fd` is now owned by the receiver."""

    region: wire.AddRegion
    fd: int


@dataclasses.dataclass(frozen=True)
class RingAdded(Event):
    """Server: the client announced a ring; `fd` is its interrupt eventfd."""

    ring: wire.AddRing
    fd: int


@dataclasses.dataclass(frozen=True)
class ConnectRequested(Event):
    """Server: CONNECT arrived; map memory, then call `complete_connect` or `disconnect`."""

    peer_if_name: str


@dataclasses.dataclass(frozen=True)
class Connected(Event):
    """The link is up."""

    peer_if_name: str


@dataclasses.dataclass(frozen=True)
class Disconnected(Event):
    """The connection ended. `by_peer` tells who gave the reason."""

    reason: str
    by_peer: bool


@dataclasses.dataclass(frozen=True)
class UnusedFds(Event):
    """fds that arrived with a message that does not carry one; the caller closes them."""

    fds: tuple[int, ...]


# --------------------------------------------------------------------------- errors


class LocalProtocolError(RuntimeError):
    """This side asked the state machine for something its state does not allow."""


class RemoteProtocolError(Exception):
    """The peer broke a rule; `reason` is what goes into our DISCONNECT."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InterfaceDirectory(TypingProtocol):
    """The server's interfaces on one socket (who is configured, who is connected)."""

    def lookup(self, interface_id: int) -> InterfaceConfig | None:
        """The configuration of interface `interface_id`, or None."""
        ...

    def claim(self, interface_id: int, owner: object) -> bool:
        """Mark the interface connecting for `owner`; False if someone else holds it."""
        ...

    def release(self, interface_id: int, owner: object) -> None:
        """Give the interface back if `owner` holds it."""
        ...

    def hello(self) -> wire.Hello:
        """The HELLO this socket sends to every new client."""
        ...


class StaticInterfaceDirectory:
    """A directory with fixed interfaces and in-memory claims."""

    def __init__(self, *configs: InterfaceConfig) -> None:
        self._configs = {config.id: config for config in configs}
        self._owners: dict[int, object] = {}

    def lookup(self, interface_id: int) -> InterfaceConfig | None:
        """The configuration of interface `interface_id`, or None."""
        return self._configs.get(interface_id)

    def claim(self, interface_id: int, owner: object) -> bool:
        """Mark the interface connecting for `owner`; False if someone else holds it."""
        holder = self._owners.setdefault(interface_id, owner)
        return holder is owner

    def release(self, interface_id: int, owner: object) -> None:
        """Give the interface back if `owner` holds it."""
        if self._owners.get(interface_id) is owner:
            del self._owners[interface_id]

    def hello(self) -> wire.Hello:
        """HELLO with the interface's own limits when the socket serves only one.

        Advertising real ring counts and ring size lets a client negotiate down (the
        minimum of both sides) instead of being refused at ADD_RING; with several
        interfaces the protocol maxima are sent.
        """
        if len(self._configs) == 1:
            (only,) = self._configs.values()
            return wire.Hello(
                name=only.app_name,
                max_c2s_ring=only.c2s_rings - 1,
                max_s2c_ring=only.s2c_rings - 1,
                max_log2_ring_size=only.log2_ring_size,
            )
        return wire.Hello(name="memif-ref")

    def is_claimed(self, interface_id: int) -> bool:
        """Whether a connection holds the interface."""
        return interface_id in self._owners


# ---------------------------------------------------------------------- state machine

Outgoing = tuple[bytes, tuple[int, ...]]
Handler = Callable[["MemifProtocol", wire.Message, tuple[int, ...]], list[Event]]


class MemifProtocol:
    """The control state machine of one memif connection, either role."""

    def __init__(
        self,
        role: Role,
        *,
        config: InterfaceConfig | None = None,
        directory: InterfaceDirectory | None = None,
    ) -> None:
        """Start a connection.

        Args:
            role: SERVER (sends HELLO at once) or CLIENT (waits for HELLO).
            config: the client's configuration (required for CLIENT).
            directory: the server's interfaces (required for SERVER).
        """
        self.role = role
        self._queue: deque[Outgoing] = deque()  # waiting for lockstep release
        self._ready: list[Outgoing] = []  # released, to be written by the I/O layer
        self.config = config
        self._directory = directory
        self.negotiated: Negotiated | None = None
        self.peer_name = ""
        self.peer_if_name = ""
        self.was_connected = False
        self.disconnect_reason: str | None = None
        self.disconnected_by_peer = False
        self.regions: list[wire.AddRegion] = []
        self.rings: list[wire.AddRing] = []
        if role is Role.SERVER:
            if directory is None:
                raise LocalProtocolError("a server needs an interface directory")
            self.state = State.WAIT_INIT
            self._ready.append((self._hello().pack(), ()))
        else:
            if config is None:
                raise LocalProtocolError("a client needs an interface configuration")
            self.state = State.WAIT_HELLO

    # ------------------------------------------------------------------ public API

    def receive(self, datagram: bytes, fds: Sequence[int] = ()) -> list[Event]:
        """Feed one received datagram and the fds that came with it."""
        fds = tuple(fds)
        if self.state is State.CLOSED:
            return [UnusedFds(fds)] if fds else []
        try:
            # DPDK's order: size, then "first message must be INIT", then the type.
            # A DISCONNECT is always heard, so a client may give up before INIT.
            if len(datagram) < wire.MESSAGE_SIZE:
                raise RemoteProtocolError(Reason.INVALID_MESSAGE_SIZE)
            code = wire.message_type_of(datagram)
            first_not_init = code not in (MessageType.INIT, MessageType.DISCONNECT)
            if self.role is Role.SERVER and self.state is State.WAIT_INIT and first_not_init:
                raise RemoteProtocolError(Reason.UNEXPECTED_MESSAGE)
            try:
                message = wire.unpack(datagram)
            except wire.UnknownMessageTypeError as exc:
                raise RemoteProtocolError(Reason.UNKNOWN_MESSAGE_TYPE) from exc
            handler = TRANSITIONS.get((self.role, self.state, message.TYPE))
            if handler is None:
                raise RemoteProtocolError(self._unexpected(message.TYPE))
            events = handler(self, message, fds)
        except RemoteProtocolError as error:
            events = [UnusedFds(fds)] if fds else []
            events.append(self._fail(error.reason))
        return events

    def connection_lost(self) -> list[Event]:
        """The socket reached EOF or failed."""
        if self.state is State.CLOSED:
            return []
        self._close(Reason.PEER_CLOSED, by_peer=True)
        return [Disconnected(Reason.PEER_CLOSED, by_peer=True)]

    def announce(
        self,
        regions: Sequence[tuple[wire.AddRegion, int]],
        rings: Sequence[tuple[wire.AddRing, int]],
    ) -> None:
        """Client: queue INIT, regions, rings and CONNECT after HELLO; INIT goes out now.

        Args:
            regions: each ADD_REGION with the fd of its memory.
            rings: each ADD_RING (C2S rings first, then S2C) with its eventfd.
        """
        self._require(Role.CLIENT, State.HELLO_RECEIVED, "announce")
        assert self.config is not None
        init = wire.Init(
            id=self.config.id,
            mode=self.config.mode,
            secret="" if Fault.IGNORE_SECRET in self.config.faults else self.config.secret,
            name=self.config.app_name,
        )
        self._queue.append((init.pack(), ()))
        for region, fd in regions:
            self._queue.append((region.pack(), (fd,)))
        for ring, fd in rings:
            self._queue.append((ring.pack(), (fd,)))
        self._queue.append((wire.Connect(if_name=self.config.if_name).pack(), ()))
        self.regions = [region for region, _ in regions]
        self.rings = [ring for ring, _ in rings]
        self.state = State.HANDSHAKE
        self._release_one()

    def complete_connect(self) -> list[Event]:
        """Server: memory is mapped and checked; send CONNECTED, link up."""
        self._require(Role.SERVER, State.CONNECTING, "complete_connect")
        assert self.config is not None
        self._ready.append((wire.Connected(if_name=self.config.if_name).pack(), ()))
        self.state = State.CONNECTED
        self.was_connected = True
        return [Connected(self.peer_if_name)]

    def disconnect(self, reason: str) -> list[Event]:
        """Send DISCONNECT with `reason` (queued messages are dropped) and close."""
        if self.state is State.CLOSED:
            return []
        return [self._fail(reason)]

    def send_raw(self, datagram: bytes, fds: Sequence[int] = ()) -> None:
        """Escape hatch for negative tests: queue any bytes, bypassing every check."""
        self._ready.append((bytes(datagram), tuple(fds)))

    def messages_to_send(self) -> list[Outgoing]:
        """Drain the datagrams (with fds) that the I/O layer must send, in order."""
        ready, self._ready = self._ready, []
        return ready

    @property
    def connected(self) -> bool:
        """Whether the link is up."""
        return self.state is State.CONNECTED

    @property
    def closed(self) -> bool:
        """Whether the connection is over (a DISCONNECT may still wait to be sent)."""
        return self.state is State.CLOSED

    # ------------------------------------------------------------------ internals

    def _hello(self) -> wire.Hello:
        assert self._directory is not None
        return self._directory.hello()

    def _require(self, role: Role, state: State, action: str) -> None:
        if self.role is not role or self.state is not state:
            raise LocalProtocolError(
                f"{action} is not allowed for a {self.role.value} in state {self.state.value}"
            )

    def _unexpected(self, message_type: MessageType) -> str:
        if self.role is Role.SERVER and self.state is State.WAIT_INIT:
            return Reason.UNEXPECTED_MESSAGE  # DPDK's exact text for "first message not INIT"
        return f"{Reason.UNEXPECTED_MESSAGE} {message_type.name} in state {self.state.value}"

    def _release_one(self) -> None:
        if self._queue:
            datagram, fds = self._queue.popleft()
            self._ready.append((datagram, fds))
            if wire.message_type_of(datagram) == MessageType.CONNECT:
                self.state = State.WAIT_CONNECTED

    def _fail(self, reason: str) -> Disconnected:
        reason = wire.truncate_reason(reason)
        self._queue.clear()  # what lockstep had not released yet is never sent
        self._ready.append((wire.Disconnect(reason=reason).pack(), ()))
        self._close(reason, by_peer=False)
        return Disconnected(reason, by_peer=False)

    def _close(self, reason: str, *, by_peer: bool) -> None:
        self.disconnect_reason = reason
        self.disconnected_by_peer = by_peer
        self.state = State.CLOSED
        if self.role is Role.SERVER and self.config is not None and self._directory is not None:
            self._directory.release(self.config.id, self)

    @staticmethod
    def _single_fd(fds: tuple[int, ...], missing_reason: str) -> int:
        if not fds:
            raise RemoteProtocolError(missing_reason)
        if len(fds) > 1:
            raise RemoteProtocolError(Reason.UNEXPECTED_FD)
        return fds[0]

    # ------------------------------------------------------------------ handlers

    def _on_hello(self, message: wire.Message, fds: tuple[int, ...]) -> list[Event]:
        assert isinstance(message, wire.Hello) and self.config is not None
        self._no_fds(fds)
        if not message.min_version <= wire.VERSION <= message.max_version:
            raise RemoteProtocolError(Reason.INCOMPATIBLE_VERSION)
        self.peer_name = message.name
        self.negotiated = negotiate(message, self.config)
        self.state = State.HELLO_RECEIVED
        return [HelloReceived(message, self.negotiated)]

    def _on_init(self, message: wire.Message, fds: tuple[int, ...]) -> list[Event]:
        assert isinstance(message, wire.Init) and self._directory is not None
        self._no_fds(fds)
        if message.version != wire.VERSION:
            raise RemoteProtocolError(Reason.INCOMPATIBLE_VERSION)
        config = self._directory.lookup(message.id)
        if config is None:
            raise RemoteProtocolError(Reason.ID_NOT_FOUND)
        if not self._directory.claim(message.id, self):
            raise RemoteProtocolError(Reason.ALREADY_CONNECTED)
        self.config = config
        if message.mode != config.mode:
            raise RemoteProtocolError(
                Reason.ONLY_ETHERNET
                if config.mode is InterfaceMode.ETHERNET
                else Reason.MODE_MISMATCH
            )
        if config.secret and Fault.IGNORE_SECRET not in config.faults:
            if not message.secret:
                raise RemoteProtocolError(Reason.SECRET_REQUIRED)
            if message.secret != config.secret:
                raise RemoteProtocolError(Reason.INCORRECT_SECRET)
        self.peer_name = message.name
        self.state = State.HANDSHAKE
        self._ready.append((wire.Ack().pack(), ()))
        return [InitAccepted(message)]

    def _on_init_again(self, message: wire.Message, fds: tuple[int, ...]) -> list[Event]:
        raise RemoteProtocolError(Reason.ALREADY_CONNECTED)

    def _on_add_region(self, message: wire.Message, fds: tuple[int, ...]) -> list[Event]:
        assert isinstance(message, wire.AddRegion)
        fd = self._single_fd(fds, Reason.MISSING_REGION_FD)
        if message.index >= wire.MAX_REGIONS or message.index != len(self.regions):
            raise RemoteProtocolError(Reason.INVALID_REGION_INDEX)
        self.regions.append(message)
        self._ready.append((wire.Ack().pack(), ()))
        return [RegionAdded(message, fd)]

    def _on_add_ring(self, message: wire.Message, fds: tuple[int, ...]) -> list[Event]:
        assert isinstance(message, wire.AddRing) and self.config is not None
        fd = self._single_fd(fds, Reason.MISSING_INTERRUPT_FD)
        limit = (
            self.config.c2s_rings if message.ring_type is RingType.C2S else self.config.s2c_rings
        )
        duplicate = any(
            ring.ring_type is message.ring_type and ring.index == message.index
            for ring in self.rings
        )
        if message.index >= limit or duplicate:
            raise RemoteProtocolError(Reason.INVALID_RING_INDEX)
        if message.private_hdr_size != 0:
            raise RemoteProtocolError(Reason.PRIVATE_HEADERS)
        if not 0 <= message.log2_ring_size <= wire.MAX_LOG2_RING_SIZE:
            raise RemoteProtocolError(Reason.INVALID_RING_SIZE)
        self.rings.append(message)
        self._ready.append((wire.Ack().pack(), ()))
        return [RingAdded(message, fd)]

    def _on_connect(self, message: wire.Message, fds: tuple[int, ...]) -> list[Event]:
        assert isinstance(message, wire.Connect)
        self._no_fds(fds)
        self._check_announced_rings()
        self.peer_if_name = message.if_name
        self.state = State.CONNECTING
        return [ConnectRequested(message.if_name)]

    def _check_announced_rings(self) -> None:
        """At CONNECT: every ring lies in an announced region; indices run 0..n-1 per way."""
        for announced in self.rings:
            if announced.region >= len(self.regions):
                raise RemoteProtocolError(
                    f"{announced.ring_type.name} ring {announced.index} in unknown region "
                    f"{announced.region}"
                )
        for ring_type in RingType:
            indices = sorted(r.index for r in self.rings if r.ring_type is ring_type)
            if indices != list(range(len(indices))):
                raise RemoteProtocolError(f"{ring_type.name} ring indices {indices} have gaps")

    def _on_ack(self, message: wire.Message, fds: tuple[int, ...]) -> list[Event]:
        self._no_fds(fds)
        if not self._queue:
            raise RemoteProtocolError(self._unexpected(MessageType.ACK))
        self._release_one()
        return []

    def _on_connected(self, message: wire.Message, fds: tuple[int, ...]) -> list[Event]:
        assert isinstance(message, wire.Connected)
        self._no_fds(fds)
        self.peer_if_name = message.if_name
        self.state = State.CONNECTED
        self.was_connected = True
        return [Connected(message.if_name)]

    def _on_disconnect(self, message: wire.Message, fds: tuple[int, ...]) -> list[Event]:
        assert isinstance(message, wire.Disconnect)
        self._queue.clear()
        self._ready.clear()
        self._close(message.reason, by_peer=True)
        events: list[Event] = [UnusedFds(fds)] if fds else []
        events.append(Disconnected(message.reason, by_peer=True))
        return events

    @staticmethod
    def _no_fds(fds: tuple[int, ...]) -> None:
        if fds:
            raise RemoteProtocolError(Reason.UNEXPECTED_FD)


# ------------------------------------------------------------------ transition table

_S, _C = Role.SERVER, Role.CLIENT
_M = MessageType

TRANSITIONS: dict[tuple[Role, State, MessageType], Handler] = {
    (_C, State.WAIT_HELLO, _M.HELLO): MemifProtocol._on_hello,
    (_C, State.HANDSHAKE, _M.ACK): MemifProtocol._on_ack,
    (_C, State.WAIT_CONNECTED, _M.CONNECTED): MemifProtocol._on_connected,
    (_S, State.WAIT_INIT, _M.INIT): MemifProtocol._on_init,
    (_S, State.HANDSHAKE, _M.INIT): MemifProtocol._on_init_again,
    (_S, State.HANDSHAKE, _M.ADD_REGION): MemifProtocol._on_add_region,
    (_S, State.HANDSHAKE, _M.ADD_RING): MemifProtocol._on_add_ring,
    (_S, State.HANDSHAKE, _M.CONNECT): MemifProtocol._on_connect,
    (_S, State.CONNECTING, _M.INIT): MemifProtocol._on_init_again,
    (_S, State.CONNECTED, _M.INIT): MemifProtocol._on_init_again,
}
"""Every legal (role, state, message) -> handler. Anything else is a protocol error."""

for _role in Role:
    for _state in State:
        if _state is not State.CLOSED:
            TRANSITIONS[(_role, _state, _M.DISCONNECT)] = MemifProtocol._on_disconnect
