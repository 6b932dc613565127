"""Tests of reference_impl.wire: constants, layouts, pack/unpack and real testpmd byte vectors.

Expected byte offsets are written out by hand from the fact sheet (memif-protocol.md 2.3),
not derived from the codec, so a wrong struct declaration fails here.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference_impl import wire
from reference_impl.wire import (
    Ack,
    AddRegion,
    AddRing,
    Connect,
    Connected,
    Disconnect,
    Hello,
    Init,
    Message,
    MessageSizeError,
    MessageType,
    UnknownMessageTypeError,
    WireError,
)

VECTORS = Path(__file__).parent / "vectors"
EXPECTED_VECTOR_FILES = (
    "testpmd_client_handshake.json",
    "testpmd_server_handshake.json",
    "testpmd_server_refusals.json",
)

# ------------------------------------------------------------------------ layout tables

# (field name, absolute offset, size, is_string): fact sheet 2.3, typed in by hand.
LAYOUT: dict[type[Message], tuple[tuple[str, int, int, bool], ...]] = {
    Ack: (),
    Hello: (
        ("name", 2, 32, True),
        ("min_version", 34, 2, False),
        ("max_version", 36, 2, False),
        ("max_region", 38, 2, False),
        ("max_s2c_ring", 40, 2, False),
        ("max_c2s_ring", 42, 2, False),
        ("max_log2_ring_size", 44, 1, False),
    ),
    Init: (
        ("version", 2, 2, False),
        ("id", 4, 4, False),
        ("mode", 8, 1, False),
        ("secret", 9, 24, True),
        ("name", 33, 32, True),
    ),
    AddRegion: (
        ("index", 2, 2, False),
        ("size", 4, 8, False),
    ),
    AddRing: (
        ("flags", 2, 2, False),
        ("index", 4, 2, False),
        ("region", 6, 2, False),
        ("offset", 8, 4, False),
        ("log2_ring_size", 12, 1, False),
        ("private_hdr_size", 13, 2, False),
    ),
    Connect: (("if_name", 2, 32, True),),
    Connected: (("if_name", 2, 32, True),),
    Disconnect: (
        ("code", 2, 4, False),
        ("reason", 6, 96, True),
    ),
}

# Payload end (first padding byte), from the fact sheet sizes: hello 43, init 63, ...
PAYLOAD_END: dict[type[Message], int] = {
    Ack: 2,
    Hello: 45,
    Init: 65,
    AddRegion: 12,
    AddRing: 15,
    Connect: 34,
    Connected: 34,
    Disconnect: 102,
}

TYPE_CODES: dict[type[Message], int] = {
    Ack: 1,
    Hello: 2,
    Init: 3,
    AddRegion: 4,
    AddRing: 5,
    Connect: 6,
    Connected: 7,
    Disconnect: 8,
}

ALL_MESSAGES = tuple(LAYOUT)


def field_value(message: Message, name: str) -> Any:
    return getattr(message, name)


# --------------------------------------------------------------------------- strategies


def cstring_text(size: int) -> st.SearchStrategy[str]:
    """Text whose encoding is 0..size-1 arbitrary non-NUL bytes (surrogateescape)."""
    return st.lists(st.integers(1, 255), max_size=size - 1).map(
        lambda values: bytes(values).decode("utf-8", "surrogateescape")
    )


def messages_of(cls: type[Message]) -> st.SearchStrategy[Message]:
    """Any message of `cls` with arbitrary field values that fit their field."""
    kwargs: dict[str, st.SearchStrategy[Any]] = {}
    for name, _offset, size, is_string in LAYOUT[cls]:
        if is_string:
            kwargs[name] = cstring_text(size)
        else:
            limit = (1 << (8 * size)) - 1
            kwargs[name] = st.one_of(st.sampled_from([0, 1, limit]), st.integers(0, limit))
    return st.builds(cls, **kwargs)


any_message = st.sampled_from(ALL_MESSAGES).flatmap(messages_of)


# ---------------------------------------------------------------------------- constants


def test_cookie_value_and_little_endian_bytes() -> None:
    assert wire.COOKIE == 0x03E31F20
    assert struct.pack("<I", wire.COOKIE) == bytes([0x20, 0x1F, 0xE3, 0x03])


def test_version_is_0x0200() -> None:
    assert (wire.VERSION_MAJOR, wire.VERSION_MINOR) == (2, 0)
    assert wire.VERSION == 0x0200 == 512
    assert Init().pack()[2:4] == bytes([0x00, 0x02])
    hello = Hello().pack()
    assert hello[34:36] == hello[36:38] == bytes([0x00, 0x02])


def test_sizes_and_limits() -> None:
    assert wire.MESSAGE_SIZE == 128
    assert (wire.NAME_SIZE, wire.SECRET_SIZE, wire.REASON_SIZE) == (32, 24, 96)
    assert wire.MAX_LOG2_RING_SIZE == 14
    assert wire.DEFAULT_LOG2_RING_SIZE == 10
    assert wire.DEFAULT_BUFFER_SIZE == 2048


def test_message_type_codes() -> None:
    assert {t.name: int(t) for t in MessageType} == {
        "NONE": 0,
        "ACK": 1,
        "HELLO": 2,
        "INIT": 3,
        "ADD_REGION": 4,
        "ADD_RING": 5,
        "CONNECT": 6,
        "CONNECTED": 7,
        "DISCONNECT": 8,
    }
    assert {cls: int(cls.TYPE) for cls in ALL_MESSAGES} == TYPE_CODES


def test_registry_has_every_type_but_none() -> None:
    assert set(wire.REGISTRY) == set(MessageType) - {MessageType.NONE}
    assert {wire.REGISTRY[MessageType(code)] for code in TYPE_CODES.values()} == set(ALL_MESSAGES)


def test_only_add_region_and_add_ring_carry_an_fd() -> None:
    assert {cls for cls in ALL_MESSAGES if cls.CARRIES_FD} == {AddRegion, AddRing}


def test_enums_match_fact_sheet() -> None:
    assert [int(m) for m in wire.InterfaceMode] == [0, 1, 2]
    assert (int(wire.RingType.C2S), int(wire.RingType.S2C)) == (0, 1)
    assert int(wire.AddRingFlag.C2S) == 1
    assert int(wire.DescriptorFlag.NEXT) == 1
    assert int(wire.RingFlag.MASK_INT) == 1


def test_add_ring_direction_comes_from_flag_bit_0() -> None:
    assert AddRing(flags=1).ring_type is wire.RingType.C2S
    assert AddRing(flags=0).ring_type is wire.RingType.S2C
    assert AddRing(flags=0xFFFE).ring_type is wire.RingType.S2C
    assert AddRing(flags=0xFFFF).ring_type is wire.RingType.C2S


# ------------------------------------------------------------------------------ layouts


def test_layout_table_is_complete() -> None:
    """The hand-written table names exactly the fields each message declares."""
    for cls, fields in LAYOUT.items():
        declared = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        assert declared == [name for name, *_ in fields], cls.__name__


@pytest.mark.parametrize("cls", ALL_MESSAGES, ids=lambda c: c.__name__)
def test_default_message_is_128_bytes_with_type_at_byte_0(cls: type[Message]) -> None:
    data = cls().pack()
    assert len(data) == 128
    assert data[0:2] == struct.pack("<H", TYPE_CODES[cls])
    assert data[PAYLOAD_END[cls] :] == bytes(128 - PAYLOAD_END[cls])


def test_named_offsets_from_the_brief() -> None:
    hello = Hello(max_log2_ring_size=0x5A).pack()
    assert hello[44] == 0x5A
    init = Init(secret="s3cret", name="client").pack()
    assert init[9:15] == b"s3cret" and init[15] == 0
    assert init[33:39] == b"client" and init[39] == 0
    ring = AddRing(log2_ring_size=0x0C, private_hdr_size=0xBEEF).pack()
    assert ring[12] == 0x0C
    assert ring[13:15] == bytes([0xEF, 0xBE])
    disconnect = Disconnect(code=0x01020304, reason="bye").pack()
    assert disconnect[2:6] == bytes([4, 3, 2, 1])
    assert disconnect[6:10] == b"bye\0"


@given(any_message)
def test_every_field_sits_at_its_fact_sheet_offset(message: Message) -> None:
    cls = type(message)
    data = message.pack()
    assert len(data) == 128
    assert data[0:2] == struct.pack("<H", TYPE_CODES[cls])
    for name, offset, size, is_string in LAYOUT[cls]:
        chunk = data[offset : offset + size]
        value = field_value(message, name)
        if is_string:
            raw = value.encode("utf-8", "surrogateescape")
            assert chunk == raw + bytes(size - len(raw)), name
        else:
            assert int.from_bytes(chunk, "little") == value, name
    assert data[PAYLOAD_END[cls] :] == bytes(128 - PAYLOAD_END[cls])


def build_by_hand(cls: type[Message], values: dict[str, Any]) -> bytes:
    """Lay out a datagram from the fact sheet table, without the codec."""
    data = bytearray(128)
    data[0:2] = TYPE_CODES[cls].to_bytes(2, "little")
    for name, offset, size, is_string in LAYOUT[cls]:
        value = values[name]
        if is_string:
            raw = value.encode("utf-8", "surrogateescape")
            data[offset : offset + len(raw)] = raw
        else:
            data[offset : offset + size] = value.to_bytes(size, "little")
    return bytes(data)


@given(any_message)
def test_unpack_reads_a_hand_built_datagram(message: Message) -> None:
    cls = type(message)
    values = {name: field_value(message, name) for name, *_ in LAYOUT[cls]}
    decoded = wire.unpack(build_by_hand(cls, values))
    assert type(decoded) is cls
    assert {name: field_value(decoded, name) for name in values} == values


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("cls", ALL_MESSAGES, ids=lambda c: c.__name__)
@given(data=st.data())
def test_round_trip_every_type(cls: type[Message], data: st.DataObject) -> None:
    message = data.draw(messages_of(cls))
    packed = message.pack()
    assert len(packed) == 128
    assert wire.unpack(packed) == message
    assert wire.unpack(packed).pack() == packed


@pytest.mark.parametrize(
    ("cls", "field", "size"),
    [
        (Hello, "name", 32),
        (Init, "secret", 24),
        (Init, "name", 32),
        (Connect, "if_name", 32),
        (Connected, "if_name", 32),
        (Disconnect, "reason", 96),
    ],
)
@given(data=st.data())
def test_strings_up_to_field_size_minus_one_round_trip(
    cls: type[Message], field: str, size: int, data: st.DataObject
) -> None:
    raw = bytes(data.draw(st.lists(st.integers(1, 255), min_size=size - 1, max_size=size - 1)))
    text = raw.decode("utf-8", "surrogateescape")
    packed = cls(**{field: text}).pack()
    assert field_value(wire.unpack(packed), field) == text
    offset = next(off for name, off, *_ in LAYOUT[cls] if name == field)
    assert packed[offset : offset + size] == raw + b"\0"


@given(any_message, st.binary(min_size=1, max_size=300))
def test_longer_datagrams_use_the_first_128_bytes(message: Message, tail: bytes) -> None:
    packed = message.pack()
    assert wire.unpack(packed + tail) == message


def test_256_byte_datagram_with_garbage_tail() -> None:
    init = Init(id=7, name="x")
    assert wire.unpack(init.pack() + b"\xee" * 128) == init


# ------------------------------------------------------------------------------ refusals


@given(st.binary(max_size=127))
def test_short_datagrams_raise_message_size_error(datagram: bytes) -> None:
    with pytest.raises(MessageSizeError):
        wire.unpack(datagram)


@pytest.mark.parametrize("cls", ALL_MESSAGES, ids=lambda c: c.__name__)
def test_truncated_valid_message_is_a_size_error(cls: type[Message]) -> None:
    packed = cls().pack()
    for length in (0, 1, 2, 64, 127):
        with pytest.raises(MessageSizeError):
            wire.unpack(packed[:length])


def test_size_and_type_errors_are_wire_errors() -> None:
    assert issubclass(MessageSizeError, WireError)
    assert issubclass(UnknownMessageTypeError, WireError)
    assert issubclass(WireError, ValueError)


def test_message_type_of_needs_two_bytes() -> None:
    assert wire.message_type_of(b"\x4d\x00") == 77
    with pytest.raises(MessageSizeError):
        wire.message_type_of(b"\x01")


@pytest.mark.parametrize("code", [0, 9, 77, 0x0100, 0xFFFF])
def test_type_none_and_unknown_types_raise(code: int) -> None:
    datagram = code.to_bytes(2, "little") + bytes(126)
    with pytest.raises(UnknownMessageTypeError) as info:
        wire.unpack(datagram)
    assert info.value.type_code == code


@given(st.integers(0, 0xFFFF).filter(lambda c: not 1 <= c <= 8), st.binary(min_size=126))
def test_any_unknown_type_raises(code: int, rest: bytes) -> None:
    with pytest.raises(UnknownMessageTypeError) as info:
        wire.unpack(code.to_bytes(2, "little") + rest)
    assert info.value.type_code == code


@pytest.mark.parametrize(
    ("cls", "field", "size"),
    [
        (Hello, "name", 32),
        (Init, "secret", 24),
        (Init, "name", 32),
        (Connect, "if_name", 32),
        (Connected, "if_name", 32),
        (Disconnect, "reason", 96),
    ],
)
def test_string_without_room_for_nul(cls: type[Message], field: str, size: int) -> None:
    full = "A" * size
    with pytest.raises(WireError):
        cls(**{field: full}).pack()
    packed = cls(**{field: full}).pack(validate=False)
    assert len(packed) == 128
    offset = next(off for name, off, *_ in LAYOUT[cls] if name == field)
    assert packed[offset : offset + size] == b"A" * size
    # With no NUL the decoder stops at the end of the field, not in the next field.
    assert field_value(wire.unpack(packed), field) == full
    with pytest.raises(WireError):
        cls(**{field: "A" * (size + 1)}).pack(validate=False)


def test_string_limit_counts_encoded_bytes() -> None:
    assert len(Hello(name="\u00e9" * 15).pack()) == 128  # 30 bytes
    with pytest.raises(WireError):
        Hello(name="\u00e9" * 16).pack()  # 32 bytes, no room for the NUL


def test_decoding_stops_at_first_nul() -> None:
    data = bytearray(Hello().pack())
    data[2:12] = b"abc\0def\0gh"
    assert wire.unpack(bytes(data)).name == "abc"  # type: ignore[attr-defined]
    data = bytearray(Disconnect().pack())
    data[6:13] = b"\0reason"
    assert wire.unpack(bytes(data)).reason == ""  # type: ignore[attr-defined]


def test_decoding_keeps_non_utf8_bytes() -> None:
    data = bytearray(Connect().pack())
    data[2:6] = b"\xff\xfe\x80a"
    decoded = wire.unpack(bytes(data))
    assert isinstance(decoded, Connect)
    assert decoded.if_name.encode("utf-8", "surrogateescape") == b"\xff\xfe\x80a"
    assert decoded.pack() == bytes(data)


@pytest.mark.parametrize(
    "message",
    [
        AddRegion(index=0x10000),
        AddRegion(size=1 << 64),
        AddRing(log2_ring_size=256),
        AddRing(offset=-1),
        Init(id=1 << 32),
        Init(mode=256),
        Hello(max_log2_ring_size=-1),
        Disconnect(code=1 << 32),
    ],
    ids=repr,
)
def test_integers_out_of_range_are_refused(message: Message) -> None:
    with pytest.raises(WireError):
        message.pack()
    with pytest.raises(WireError):
        message.pack(validate=False)


def test_truncate_reason_fits_the_field() -> None:
    assert wire.truncate_reason("x" * 200) == "x" * 95
    assert len(Disconnect(reason=wire.truncate_reason("x" * 200)).pack()) == 128
    assert wire.truncate_reason("short") == "short"
    # A multi-byte character cut in half is dropped, never half-encoded.
    cut = wire.truncate_reason("a" + "\u00e9" * 60)
    assert cut == "a" + "\u00e9" * 47
    assert len(cut.encode()) == 95


# ------------------------------------------------------------------------ testpmd vectors


@dataclasses.dataclass(frozen=True)
class Captured:
    """One datagram from a vector file."""

    file: str
    where: str
    direction: str
    nfds: int
    data: bytes
    decoded: dict[str, Any]

    @property
    def from_testpmd(self) -> bool:
        return self.direction == "from_testpmd"


def load_vector(name: str) -> dict[str, Any]:
    path = VECTORS / name
    assert path.is_file(), f"missing byte-vector file {path} (see tests/vectors/README.md)"
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def walk_datagrams(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every dict with a `hex` key, with a readable path to it."""
    if isinstance(node, dict):
        if "hex" in node:
            yield where, node
        for key, value in node.items():
            yield from walk_datagrams(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            label = value.get("name", index) if isinstance(value, dict) else index
            yield from walk_datagrams(value, f"{where}[{label}]")


def vector_files() -> list[str]:
    present = {path.name for path in VECTORS.glob("*.json")}
    return sorted(present | set(EXPECTED_VECTOR_FILES))


def captured_datagrams() -> list[Captured]:
    found: list[Captured] = []
    for name in vector_files():
        path = VECTORS / name
        if not path.is_file():
            continue  # test_vector_file_present fails for it
        doc = json.loads(path.read_text())
        for where, entry in walk_datagrams(doc["captures"], ""):
            decoded = entry.get("decoded")
            if decoded is None:  # a "disconnect" summary: type, code, reason
                decoded = {key: entry[key] for key in ("code", "reason") if key in entry}
            found.append(
                Captured(
                    file=name,
                    where=where,
                    # "hello" / "disconnect" summaries carry no direction: testpmd sent them.
                    direction=entry.get("direction", "from_testpmd"),
                    nfds=int(entry.get("nfds", 0)),
                    data=bytes.fromhex(entry["hex"]),
                    decoded=dict(decoded),
                )
            )
    return found


CAPTURED = captured_datagrams()
WELL_FORMED = [c for c in CAPTURED if len(c.data) >= 128 and 1 <= c.data[0] <= 8 and not c.data[1]]


def captured_id(captured: Captured) -> str:
    kind = captured.decoded.get("type", "")
    return f"{captured.file.removesuffix('.json')}{captured.where}-{kind}"


@pytest.mark.parametrize("name", vector_files())
def test_vector_file_present(name: str) -> None:
    doc = load_vector(name)
    assert doc["dpdk_version"].startswith("DPDK ")
    assert doc["captures"], name
    assert any(c.file == name and c.from_testpmd for c in CAPTURED), name


def test_vectors_hold_datagrams_from_testpmd_of_every_type() -> None:
    seen = {c.data[0] for c in WELL_FORMED if c.from_testpmd}
    assert seen >= {int(t) for t in MessageType if t is not MessageType.NONE}


@pytest.mark.parametrize("captured", WELL_FORMED, ids=captured_id)
def test_captured_datagram_round_trips_byte_for_byte(captured: Captured) -> None:
    message = wire.unpack(captured.data)
    assert message.TYPE.name == captured.decoded.get("type", message.TYPE.name)
    # Every captured 128-byte message has all-zero padding (DPDK zero-allocates its
    # messages; the capture script zero-fills), so re-packing is exact.
    end = PAYLOAD_END[type(message)]
    assert captured.data[end:128] == bytes(128 - end)
    assert message.pack() == captured.data[:128]


@pytest.mark.parametrize("captured", WELL_FORMED, ids=captured_id)
def test_captured_datagram_decodes_like_the_capture_script(captured: Captured) -> None:
    message = wire.unpack(captured.data)
    expected = {
        key: value
        for key, value in captured.decoded.items()
        if key not in ("type", "direction", "padding_all_zero")
    }
    if len(captured.data) != 128:
        assert expected == {}  # the capture script only decodes 128-byte datagrams
        return
    assert expected or isinstance(message, Ack), "the capture script decoded no field"
    assert {key: field_value(message, key) for key in expected} == expected


@pytest.mark.parametrize("captured", WELL_FORMED, ids=captured_id)
def test_captured_fd_count_matches_carries_fd(captured: Captured) -> None:
    message = wire.unpack(captured.data)
    if captured.from_testpmd:
        assert captured.nfds == (1 if message.CARRIES_FD else 0)
    else:
        # The capture script deliberately omits fds in the "missing fd" cases.
        assert captured.nfds <= (1 if message.CARRIES_FD else 0)


def test_captured_malformed_datagrams_are_refused() -> None:
    short = [c for c in CAPTURED if len(c.data) < 128]
    unknown = [c for c in CAPTURED if len(c.data) >= 128 and c not in WELL_FORMED]
    long = [c for c in WELL_FORMED if len(c.data) > 128]
    assert short and unknown and long, "refusal vectors lost their malformed cases"
    for captured in short:
        with pytest.raises(MessageSizeError):
            wire.unpack(captured.data)
    for captured in unknown:
        with pytest.raises(UnknownMessageTypeError) as info:
            wire.unpack(captured.data)
        assert info.value.type_code == 77
    for captured in long:
        assert len(captured.data) == 256
        assert captured.data[128:] == b"\xee" * 128
        assert wire.unpack(captured.data) == wire.unpack(captured.data[:128])
        assert wire.unpack(captured.data).pack() == captured.data[:128]


def from_testpmd(cls: type[Message]) -> list[tuple[Captured, Message]]:
    result = []
    for captured in WELL_FORMED:
        if captured.from_testpmd and captured.data[0] == TYPE_CODES[cls]:
            result.append((captured, wire.unpack(captured.data)))
    assert result, f"no {cls.__name__} from testpmd in the vectors"
    return result


def test_testpmd_hello_values() -> None:
    for captured, hello in from_testpmd(Hello):
        assert isinstance(hello, Hello)
        assert hello.name.startswith("DPDK "), captured.where
        assert hello.name == load_vector(captured.file)["dpdk_version"]
        assert (hello.min_version, hello.max_version) == (0x0200, 0x0200)
        assert (hello.max_region, hello.max_s2c_ring, hello.max_c2s_ring) == (255, 255, 255)
        assert hello.max_log2_ring_size == 14


def test_testpmd_init_values() -> None:
    secrets = set()
    for _captured, init in from_testpmd(Init):
        assert isinstance(init, Init)
        assert (init.version, init.id, init.mode) == (0x0200, 0, 0)
        assert init.name.startswith("DPDK ")
        secrets.add(init.secret)
    assert secrets == {"", "abc"}


def test_testpmd_regions_and_rings() -> None:
    for _captured, region in from_testpmd(AddRegion):
        assert isinstance(region, AddRegion)
        assert region.index == 0 and region.size > 0
    doc = load_vector("testpmd_client_handshake.json")
    for capture in doc["captures"]:
        rings = [
            wire.unpack(bytes.fromhex(e["hex"]))
            for e in capture["transcript"]
            if e["direction"] == "from_testpmd" and e["type"] == "ADD_RING"
        ]
        assert rings, capture["name"]
        order = [(ring.ring_type, ring.index) for ring in rings]  # type: ignore[attr-defined]
        count = len(rings) // 2
        assert order == [(wire.RingType.C2S, i) for i in range(count)] + [
            (wire.RingType.S2C, i) for i in range(count)
        ]
        for ring in rings:
            assert isinstance(ring, AddRing)
            assert (ring.region, ring.log2_ring_size, ring.private_hdr_size) == (0, 10, 0)


def test_testpmd_interface_names() -> None:
    for _captured, connect in from_testpmd(Connect):
        assert connect == Connect(if_name="net_memif0")
    for _captured, connected in from_testpmd(Connected):
        assert connected == Connected(if_name="net_memif0")


DPDK_REASONS = {
    "Incompatible memif version",
    "Device error",
    "Already connected",
    "Only ethernet mode supported",
    "Secret required",
    "Incorrect secret",
    "ID not found",
    "Missing region fd",
    "Invalid region index",
    "Failed to alloc memif region.",
    "Missing interrupt fd",
    "Invalid ring index",
    "Invalid message size",
    "Unexpected message",
    "Unknown message type",
    "Device closed",
}


def test_testpmd_disconnect_values() -> None:
    doc = load_vector("testpmd_server_refusals.json")
    observed = {reason for reason in doc["observed_reasons"].values() if reason is not None}
    reasons = set()
    for _captured, disconnect in from_testpmd(Disconnect):
        assert isinstance(disconnect, Disconnect)
        assert disconnect.code == 0
        assert disconnect.reason in DPDK_REASONS
        reasons.add(disconnect.reason)
    assert reasons == observed
    assert len(reasons) >= 10


def test_embedded_nul_is_refused_unless_validation_is_off() -> None:
    with pytest.raises(wire.WireError, match="NUL"):
        wire.Init(secret="ab\0cd").pack()
    assert wire.Init(secret="ab\0cd").pack(validate=False)[9:14] == b"ab\0cd"


def test_truncate_reason_keeps_escaped_bytes_and_survives_lone_surrogates() -> None:
    assert wire.truncate_reason("ok\udcff").encode("utf-8", "surrogateescape") == b"ok\xff"
    assert wire.truncate_reason("bad \ud800 text") == "bad ? text"
    assert len(wire.truncate_reason("x" * 500).encode()) == wire.REASON_SIZE - 1
