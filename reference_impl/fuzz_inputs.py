"""Fuzz inputs: the states each role's handshake reaches, and seeded datagrams with fds.

An input is a datagram of 0-200 bytes (a message with changed fields, flipped bytes, a type
code with noise, or plain noise) and the real fds that ride along, for one state of one role.
It derives from (seed, role, index) alone, so any input of a run can be made again by itself.
"""

from __future__ import annotations

import dataclasses
import enum
import random
import struct
from typing import Any

from reference_impl import wire
from reference_impl.layout import CopyLayout
from reference_impl.protocol import Role, State
from reference_impl.wire import MessageType

MAX_DATAGRAM = 200
"""Longest datagram generated (the endpoint reads 128 bytes; the rest is cut)."""
FUZZ_MEMFD_SIZE = 1 << 16
"""Size of the memfd that inputs carry."""
PEER_LOG2 = 4
PEER_BUFFER = 128
PEER_SHAPE = CopyLayout(1, 1, PEER_LOG2, PEER_BUFFER)
"""The honest client's memory: one region, one ring each way."""


class FdKind(enum.StrEnum):
    """Which real fd rides along with an input."""

    MEMFD = "memfd"
    """A 64 KiB sealed memfd holding zeros."""
    EVENTFD = "eventfd"
    """An eventfd (cannot be mapped)."""
    REGION = "region"
    """The honest peer's own region (rings with correct cookies)."""


# States a fresh connection reaches, by how many honest peer messages the endpoint has read.
SERVER_STATES: tuple[tuple[str, State], ...] = (
    ("wait-init", State.WAIT_INIT),
    ("handshake:init", State.HANDSHAKE),
    ("handshake:region", State.HANDSHAKE),
    ("handshake:c2s-ring", State.HANDSHAKE),
    ("handshake:s2c-ring", State.HANDSHAKE),
    ("connected", State.CONNECTED),
)
"""Server under test: the label names the last honest client message it accepted."""
CLIENT_STATES: tuple[tuple[str, State], ...] = (
    ("wait-hello", State.WAIT_HELLO),
    ("handshake:init", State.HANDSHAKE),
    ("handshake:region", State.HANDSHAKE),
    ("handshake:c2s-ring", State.HANDSHAKE),
    ("handshake:s2c-ring", State.HANDSHAKE),
    ("wait-connected", State.WAIT_CONNECTED),
    ("connected", State.CONNECTED),
)
"""Client under test: the label names the last message it sent (and waits an answer to)."""


def states_of(role: Role) -> tuple[tuple[str, State], ...]:
    """The reachable states of `role`, in handshake order."""
    return SERVER_STATES if role is Role.SERVER else CLIENT_STATES


@dataclasses.dataclass(frozen=True)
class FuzzInput:
    """One input: the state it is fed in, the datagram and the fds that ride along.

    `replaces` says whether the datagram stands in for the honest peer's next message
    (which is then never sent) or comes before it.
    """

    role: Role
    state: str
    datagram: bytes
    fds: tuple[FdKind, ...] = ()
    replaces: bool = False
    index: int = -1

    def as_dict(self) -> dict[str, Any]:
        """JSON form, with the datagram in hex."""
        return {
            "index": self.index,
            "role": self.role.value,
            "state": self.state,
            "hex": self.datagram.hex(),
            "length": len(self.datagram),
            "fds": [kind.value for kind in self.fds],
            "replaces": self.replaces,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FuzzInput:
        """Inverse of `as_dict` (what `--replay` reads)."""
        return cls(
            Role(data["role"]),
            str(data["state"]),
            bytes.fromhex(data["hex"]),
            tuple(FdKind(kind) for kind in data.get("fds", [])),
            bool(data.get("replaces", False)),
            int(data.get("index", -1)),
        )


_INTERESTING = {
    "B": (0, 1, 2, 0x7F, 0x80, 0xFF),
    "H": (0, 1, 2, 0xFF, 0x100, 0x0200, 0x0201, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF),
    "I": (0, 1, 2, 3, 4, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFF0, 0xFFFFFFFF),
    "Q": (0, 1, 4095, 1 << 32, (1 << 32) + 1, 1 << 62, 1 << 63, (1 << 64) - 1),
}
_CONTEXT = {
    "size": (
        PEER_SHAPE.region_sizes()[0],
        PEER_SHAPE.region_sizes()[0] + 1,
        FUZZ_MEMFD_SIZE,
        FUZZ_MEMFD_SIZE + 1,
    ),
    "offset": (
        PEER_SHAPE.ring_stride,
        PEER_SHAPE.ring_stride + 4,
        PEER_SHAPE.region_sizes()[0] - 64,
        FUZZ_MEMFD_SIZE - 64,
    ),
    "log2_ring_size": (0, 1, PEER_LOG2 - 1, PEER_LOG2, PEER_LOG2 + 1, 14, 15, 16),
    "index": (0, 1, 2, 255, 256),
    "region": (0, 1, 2),
    "flags": (0, 1, 2, 3),
    "mode": (0, 1, 2, 3),
    "version": (wire.VERSION, wire.VERSION - 1, wire.VERSION + 1),
    "min_version": (wire.VERSION, wire.VERSION + 1),
    "max_version": (wire.VERSION, wire.VERSION - 1),
}
_TYPE_CODES = (*range(0, 12), 0x0100, 0x0800, 0xFFFF)


def _int_field(rng: random.Random, name: str, code: str) -> int:
    limit = (1 << (8 * struct.calcsize(code))) - 1
    pick = rng.random()
    if pick < 0.35 and name in _CONTEXT:
        return min(limit, rng.choice(_CONTEXT[name]))
    if pick < 0.75:
        return rng.choice(_INTERESTING[code])
    if pick < 0.9:
        return rng.randrange(0, min(limit, 64) + 1)
    return rng.randrange(0, limit + 1)


def _text_field(rng: random.Random, size: int, honest: str) -> str:
    pick = rng.random()
    if pick < 0.3:
        return honest
    if pick < 0.45:
        return ""
    raw = bytes(rng.randrange(1, 256) for _ in range(rng.randrange(0, size + 1)))
    return raw.decode("utf-8", "surrogateescape")


def _mutated(rng: random.Random, message: wire.Message, fields: int) -> bytes:
    """`message` with up to `fields` fields set to generated values."""
    kinds = list(type(message)._KINDS)
    values: dict[str, Any] = {}
    for name, kind in rng.sample(kinds, min(fields, len(kinds))):
        if kind.string_size:
            values[name] = _text_field(rng, kind.string_size, getattr(message, name))
        else:
            values[name] = _int_field(rng, name, kind.code)
    return dataclasses.replace(message, **values).pack(validate=False)  # type: ignore[type-var]


def _random_message(rng: random.Random) -> bytes:
    cls = rng.choice(list(wire.REGISTRY.values()))
    return _mutated(rng, cls(), len(cls._KINDS))


def _flipped(rng: random.Random, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(rng.randrange(1, 9)):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    pick = rng.random()
    if pick < 0.3:
        del data[rng.randrange(0, wire.MESSAGE_SIZE) :]
    elif pick < 0.5:
        data += rng.randbytes(rng.randrange(1, MAX_DATAGRAM - len(data) + 1))
    return bytes(data[:MAX_DATAGRAM])


def _fd_kinds(rng: random.Random, honest: tuple[FdKind, ...]) -> tuple[FdKind, ...]:
    pick = rng.random()
    if honest and pick < 0.6:
        return honest
    if pick < 0.6:
        return ()
    if pick < 0.7:
        return (FdKind.MEMFD,)
    if pick < 0.8:
        return (FdKind.EVENTFD,)
    if pick < 0.86:
        return (FdKind.REGION,)
    if pick < 0.95:
        return (FdKind.MEMFD, FdKind.EVENTFD)
    return (FdKind.MEMFD, FdKind.EVENTFD, FdKind.REGION, FdKind.EVENTFD, FdKind.MEMFD)


def _honest_fds(datagram: bytes) -> tuple[FdKind, ...]:
    code = wire.message_type_of(datagram)
    if code == MessageType.ADD_REGION:
        return (FdKind.REGION,)
    if code == MessageType.ADD_RING:
        return (FdKind.EVENTFD,)
    return ()


def generate(role: Role, seed: int, index: int, honest_next: bytes | None) -> FuzzInput:
    """Input number `index` of a run: a state (in turn), a datagram and its fds.

    Args:
        role: The role under test.
        seed: The run's seed; with `index` it fixes the input.
        index: Which input.
        honest_next: The message the honest peer would send next in that state (None if
            it has nothing to send), the base of replacements and mutations.
    """
    rng = random.Random(f"{seed}:{role.value}:{index}")
    state = states_of(role)[index % len(states_of(role))][0]
    return _generate(rng, role, state, index, honest_next)


def _generate(
    rng: random.Random, role: Role, state: str, index: int, honest_next: bytes | None
) -> FuzzInput:
    pick = rng.random()
    fds: tuple[FdKind, ...] = ()
    if honest_next is not None and pick < 0.3:  # the honest message with a field changed
        message = wire.unpack(honest_next)
        fds = _fd_kinds(rng, _honest_fds(honest_next))
        fields = rng.choice((1, 1, 2))
        datagram = _mutated(rng, message, fields) if message._KINDS else _flipped(rng, honest_next)
        return FuzzInput(role, state, datagram, fds, replaces=True, index=index)
    if honest_next is not None and pick < 0.38:  # the honest message itself
        return FuzzInput(role, state, honest_next, _honest_fds(honest_next), True, index)
    if pick < 0.6:
        datagram = _random_message(rng)
    elif pick < 0.75:
        datagram = _flipped(rng, honest_next if honest_next and rng.random() < 0.5 else
                            _random_message(rng))  # fmt: skip
    elif pick < 0.9:
        code = rng.choice(_TYPE_CODES) if rng.random() < 0.8 else rng.randrange(1 << 16)
        body = rng.randbytes(rng.randrange(0, MAX_DATAGRAM - 1))
        datagram = code.to_bytes(2, "little") + body
    else:
        datagram = rng.randbytes(rng.choice((0, 1, 2, rng.randrange(0, MAX_DATAGRAM + 1))))
    fds = _fd_kinds(rng, _honest_fds(datagram) if len(datagram) >= 2 else ())
    return FuzzInput(role, state, datagram, fds, replaces=False, index=index)
