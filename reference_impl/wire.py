"""memif control messages: constants and every message struct, each declared once.

Each message is a frozen dataclass whose fields carry their C type in metadata; the
struct format, size check, pack, unpack, field validation and the type registry are all
derived from that single declaration (fact sheet section 2).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from enum import IntEnum, IntFlag
from typing import Any, ClassVar, TypeVar, dataclass_transform

COOKIE = 0x03E31F20
VERSION_MAJOR = 2
VERSION_MINOR = 0
VERSION = (VERSION_MAJOR << 8) | VERSION_MINOR
MESSAGE_SIZE = 128
NAME_SIZE = 32
SECRET_SIZE = 24
REASON_SIZE = 96
MAX_LOG2_RING_SIZE = 14
DEFAULT_LOG2_RING_SIZE = 10
DEFAULT_BUFFER_SIZE = 2048
MAX_REGIONS = 256
MAX_RINGS = 256
ETHERNET_MAX_FRAME = 9216
DESCRIPTOR_SIZE = 16

_HEADER = struct.Struct("<H")


class MessageType(IntEnum):
    """Control message type codes (`memif_msg_type_t`)."""

    NONE = 0
    ACK = 1
    HELLO = 2
    INIT = 3
    ADD_REGION = 4
    ADD_RING = 5
    CONNECT = 6
    CONNECTED = 7
    DISCONNECT = 8


class InterfaceMode(IntEnum):
    """Interface modes (`memif_interface_mode_t`)."""

    ETHERNET = 0
    IP = 1
    PUNT_INJECT = 2


class RingType(IntEnum):
    """Ring direction; the value doubles as the ADD_RING flag bit 0."""

    C2S = 0  # client to server; VPP calls it S2M
    S2C = 1  # server to client; VPP calls it M2S


class AddRingFlag(IntFlag):
    """ADD_RING flags: bit 0 set means the ring is C2S (S2M)."""

    C2S = 1


class DescriptorFlag(IntFlag):
    """Descriptor flags: NEXT means the packet continues in the next slot."""

    NEXT = 1


class RingFlag(IntFlag):
    """Ring header flags, owned by the ring's receiver."""

    MASK_INT = 1


class WireError(ValueError):
    """A datagram that is not a valid memif control message."""


class MessageSizeError(WireError):
    """The datagram is not 128 bytes long."""


class UnknownMessageTypeError(WireError):
    """The type field holds no known message type (0 = NONE included)."""

    def __init__(self, type_code: int) -> None:
        super().__init__(f"unknown message type {type_code:#x}")
        self.type_code = type_code


@dataclasses.dataclass(frozen=True)
class _FieldKind:
    """How one field is laid out: a struct code and, for strings, the field size."""

    code: str
    string_size: int = 0


def u8(*, default: int) -> Any:
    """Declare an unsigned 8-bit field."""
    return dataclasses.field(default=default, metadata={"wire": _FieldKind("B")})


def u16(*, default: int) -> Any:
    """Declare an unsigned 16-bit field."""
    return dataclasses.field(default=default, metadata={"wire": _FieldKind("H")})


def u32(*, default: int) -> Any:
    """Declare an unsigned 32-bit field."""
    return dataclasses.field(default=default, metadata={"wire": _FieldKind("I")})


def u64(*, default: int) -> Any:
    """Declare an unsigned 64-bit field."""
    return dataclasses.field(default=default, metadata={"wire": _FieldKind("Q")})


def cstring(size: int, *, default: str = "") -> Any:
    """Declare a NUL-terminated string field of `size` bytes."""
    return dataclasses.field(
        default=default, metadata={"wire": _FieldKind(f"{size}s", string_size=size)}
    )


def encode_cstring(text: str, size: int, *, require_nul: bool = True) -> bytes:
    """Encode `text` for a `size`-byte C string field.

    Raises:
        WireError: the text does not fit (it must leave room for a NUL unless
            `require_nul` is False, which the illegal-message escape hatch uses).
    """
    raw = text.encode("utf-8", "surrogateescape")
    if require_nul and b"\0" in raw:
        raise WireError(f"string {text!r} holds a NUL; the peer would read it shorter")
    limit = size - 1 if require_nul else size
    if len(raw) > limit:
        raise WireError(f"string of {len(raw)} bytes does not fit a {size}-byte field")
    return raw


def decode_cstring(raw: bytes) -> str:
    """Decode a C string field: bytes up to the first NUL, lossless for any byte."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


_INT_LIMITS = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFFFFFF, "Q": 0xFFFFFFFFFFFFFFFF}


class Message:
    """Base of every control message; subclasses are declared with `@message`."""

    TYPE: ClassVar[MessageType]
    CARRIES_FD: ClassVar[bool] = False
    _STRUCT: ClassVar[struct.Struct]
    _KINDS: ClassVar[tuple[tuple[str, _FieldKind], ...]]

    def pack(self, *, validate: bool = True) -> bytes:
        """Encode as one 128-byte datagram.

        Args:
            validate: when False, strings may fill their whole field without a NUL
                (for negative tests); integers must still fit their C type.
        """
        values: list[Any] = [int(self.TYPE)]
        for name, kind in self._KINDS:
            value = getattr(self, name)
            if kind.string_size:
                values.append(encode_cstring(value, kind.string_size, require_nul=validate))
            else:
                if not 0 <= int(value) <= _INT_LIMITS[kind.code]:
                    raise WireError(f"{type(self).__name__}.{name}={value} out of range")
                values.append(int(value))
        body = self._STRUCT.pack(*values)
        return body + bytes(MESSAGE_SIZE - len(body))

    @classmethod
    def unpack_fields(cls, datagram: bytes) -> Message:
        """Decode a 128-byte datagram already known to be of this type."""
        values = cls._STRUCT.unpack_from(datagram)[1:]
        kwargs: dict[str, Any] = {}
        for (name, kind), value in zip(cls._KINDS, values, strict=True):
            kwargs[name] = decode_cstring(value) if kind.string_size else value
        return cls(**kwargs)


M = TypeVar("M", bound=type[Message])

REGISTRY: dict[MessageType, type[Message]] = {}


@dataclass_transform(frozen_default=True, field_specifiers=(u8, u16, u32, u64, cstring))
def message(message_type: MessageType, *, carries_fd: bool = False) -> Callable[[M], M]:
    """Class decorator: make a frozen dataclass message and derive its codec."""

    def wrap(cls: M) -> M:
        data_cls = dataclasses.dataclass(frozen=True)(cls)
        kinds = tuple(
            (f.name, f.metadata["wire"])
            for f in dataclasses.fields(data_cls)  # type: ignore[arg-type]
        )
        fmt = "<H" + "".join(kind.code for _, kind in kinds)
        layout = struct.Struct(fmt)
        if layout.size > MESSAGE_SIZE:
            raise TypeError(f"{cls.__name__} is {layout.size} bytes, over {MESSAGE_SIZE}")
        data_cls.TYPE = message_type
        data_cls.CARRIES_FD = carries_fd
        data_cls._STRUCT = layout
        data_cls._KINDS = kinds
        REGISTRY[message_type] = data_cls
        return cls

    return wrap


@message(MessageType.ACK)
class Ack(Message):
    """ACK: the server accepted INIT, ADD_REGION or ADD_RING."""


@message(MessageType.HELLO)
class Hello(Message):
    """HELLO: sent by the server right after accept (fact sheet 2.3)."""

    name: str = cstring(NAME_SIZE, default="")
    min_version: int = u16(default=VERSION)
    max_version: int = u16(default=VERSION)
    max_region: int = u16(default=MAX_REGIONS - 1)
    max_s2c_ring: int = u16(default=MAX_RINGS - 1)  # highest index, VPP's max_m2s_ring
    max_c2s_ring: int = u16(default=MAX_RINGS - 1)  # highest index, VPP's max_s2m_ring
    max_log2_ring_size: int = u8(default=MAX_LOG2_RING_SIZE)


@message(MessageType.INIT)
class Init(Message):
    """INIT: the client names the interface id, mode and secret."""

    version: int = u16(default=VERSION)
    id: int = u32(default=0)
    mode: int = u8(default=InterfaceMode.ETHERNET)
    secret: str = cstring(SECRET_SIZE, default="")
    name: str = cstring(NAME_SIZE, default="")


@message(MessageType.ADD_REGION, carries_fd=True)
class AddRegion(Message):
    """ADD_REGION: one shared-memory region; its fd rides along."""

    index: int = u16(default=0)
    size: int = u64(default=0)


@message(MessageType.ADD_RING, carries_fd=True)
class AddRing(Message):
    """ADD_RING: one ring's place in a region; its interrupt eventfd rides along."""

    flags: int = u16(default=0)
    index: int = u16(default=0)
    region: int = u16(default=0)
    offset: int = u32(default=0)
    log2_ring_size: int = u8(default=DEFAULT_LOG2_RING_SIZE)
    private_hdr_size: int = u16(default=0)

    @property
    def ring_type(self) -> RingType:
        """The ring's direction, from flag bit 0."""
        return RingType.C2S if self.flags & AddRingFlag.C2S else RingType.S2C


@message(MessageType.CONNECT)
class Connect(Message):
    """CONNECT: the client has announced everything; carries its interface name."""

    if_name: str = cstring(NAME_SIZE, default="")


@message(MessageType.CONNECTED)
class Connected(Message):
    """CONNECTED: the server mapped everything; carries its interface name."""

    if_name: str = cstring(NAME_SIZE, default="")


@message(MessageType.DISCONNECT)
class Disconnect(Message):
    """DISCONNECT: either side gives up, with a reason."""

    code: int = u32(default=0)
    reason: str = cstring(REASON_SIZE, default="")


def message_type_of(datagram: bytes) -> int:
    """The raw 16-bit type code of a datagram (no validation beyond length >= 2)."""
    if len(datagram) < _HEADER.size:
        raise MessageSizeError(f"datagram of {len(datagram)} bytes has no type field")
    return int(_HEADER.unpack_from(datagram)[0])


def unpack(datagram: bytes) -> Message:
    """Decode one control datagram.

    A datagram longer than 128 bytes is accepted and cut to 128, as every real
    implementation does (fact sheet 1.3); a shorter one is refused.

    Raises:
        MessageSizeError: fewer than 128 bytes.
        UnknownMessageTypeError: type NONE or a code no message has.
    """
    if len(datagram) < MESSAGE_SIZE:
        raise MessageSizeError(f"message of {len(datagram)} bytes, expected {MESSAGE_SIZE}")
    code = message_type_of(datagram)
    try:
        cls = REGISTRY[MessageType(code)]
    except (ValueError, KeyError):
        raise UnknownMessageTypeError(code) from None
    return cls.unpack_fields(datagram[:MESSAGE_SIZE])


def truncate_reason(reason: str) -> str:
    """Cut a disconnect reason so that it fits the 96-byte field with its NUL."""
    try:
        raw = reason.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = reason.encode("utf-8", "replace")
    return raw.replace(b"\0", b" ")[: REASON_SIZE - 1].decode("utf-8", "surrogateescape")
