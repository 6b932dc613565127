"""Tests of reference_impl.frames: checksums, frame builders and batched responders."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_impl import frames
from reference_impl.frames import (
    FrameError,
    arp_reply,
    arp_request,
    benchmark_ip,
    echo_replies,
    format_mac,
    icmp_echo_request,
    internet_checksum,
    parse_arp,
    parse_echo_reply,
    parse_mac,
    udp_frame,
)
from reference_impl.ring import PacketBatch

SERVER_MAC = bytes.fromhex("02fe00000001")
CLIENT_MAC = bytes.fromhex("02fe00000002")
OTHER_MAC = bytes.fromhex("02fe000000aa")
SERVER_IP = benchmark_ip("198.18.0.1")
CLIENT_IP = benchmark_ip("198.18.0.2")
OTHER_IP = benchmark_ip("198.19.1.77")


# ------------------------------------------------------------------ helpers


def ip_header(frame: bytes) -> bytes:
    ihl = (frame[14] & 0x0F) * 4
    return frame[14 : 14 + ihl]


def ip_payload(frame: bytes) -> bytes:
    """The IPv4 payload as the total-length field delimits it (no Ethernet padding)."""
    ihl = (frame[14] & 0x0F) * 4
    total = struct.unpack_from("!H", frame, 16)[0]
    return frame[14 + ihl : 14 + total]


def checksum_from_scratch(data: bytes, at: int) -> int:
    """RFC 1071 checksum of `data` with its checksum field at `at` zeroed."""
    return internet_checksum(data[:at] + b"\0\0" + data[at + 2 :])


def stored_checksum(data: bytes, at: int) -> int:
    return int(struct.unpack_from("!H", data, at)[0])


def assert_ipv4_header_valid(frame: bytes) -> None:
    header = ip_header(frame)
    assert internet_checksum(header) == 0
    assert stored_checksum(header, 10) == checksum_from_scratch(header, 10)


def assert_icmp_checksum_valid(frame: bytes) -> None:
    icmp = ip_payload(frame)
    assert internet_checksum(icmp) == 0, "ICMP checksum does not verify"
    assert stored_checksum(icmp, 2) == checksum_from_scratch(icmp, 2)


def request(dst_ip: bytes, ident: int, sequence: int, size: int = 60) -> bytes:
    return icmp_echo_request(CLIENT_MAC, SERVER_MAC, CLIENT_IP, dst_ip, ident, sequence, size)


# ------------------------------------------------------------------ internet_checksum


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (bytes.fromhex("0001f203f4f5f6f7"), 0x220D),  # RFC 1071 section 3 example
        # the textbook IPv4 header (Wikipedia "IPv4 header checksum")
        (bytes.fromhex("450000730000400040110000c0a80001c0a800c7"), 0xB861),
        (b"", 0xFFFF),
        (b"\x00\x00", 0xFFFF),
        (b"\xff\xff", 0x0000),
        (b"\x01", 0xFEFF),  # odd length: padded with a zero byte
        (b"\x12\x34\x56", 0x97CB),  # ~(0x1234 + 0x5600)
    ],
)
def test_internet_checksum_known_values(data: bytes, expected: int) -> None:
    assert internet_checksum(data) == expected


def test_internet_checksum_folds_carries() -> None:
    data = b"\xff\xff" * 70000  # sum needs more than one fold
    assert internet_checksum(data) == 0
    assert internet_checksum(b"\xff\xfe\x00\x02") == ~0x0001 & 0xFFFF


@given(st.binary(max_size=3000))
def test_internet_checksum_verifies_when_inserted(data: bytes) -> None:
    """Appending the checksum of even-length data makes the whole sum verify."""
    if len(data) % 2:
        data += b"\0"
    checksum = internet_checksum(data)
    assert internet_checksum(data + struct.pack("!H", checksum)) == 0


# ------------------------------------------------------------------ builders


@pytest.mark.parametrize("size", [42, 60, 64, 1514, 9000])
def test_udp_frame_exact_size_and_valid_header(size: int) -> None:
    frame = udp_frame(size, CLIENT_MAC, SERVER_MAC, CLIENT_IP, SERVER_IP, sport=1234, dport=9)
    assert len(frame) == size
    assert frame[:6] == SERVER_MAC and frame[6:12] == CLIENT_MAC
    assert frame[12:14] == b"\x08\x00"
    header = ip_header(frame)
    assert header[0] == 0x45
    assert struct.unpack_from("!H", header, 2)[0] == size - 14
    assert header[9] == 17
    assert header[12:16] == CLIENT_IP and header[16:20] == SERVER_IP
    assert_ipv4_header_valid(frame)
    sport, dport, length, checksum = struct.unpack_from("!HHHH", frame, 34)
    assert (sport, dport, length, checksum) == (1234, 9, size - 34, 0)


def test_udp_frame_below_minimum_raises() -> None:
    with pytest.raises(FrameError):
        udp_frame(41, CLIENT_MAC, SERVER_MAC, CLIENT_IP, SERVER_IP)


@pytest.mark.parametrize(
    ("size", "expected"), [(0, 60), (42, 60), (60, 60), (98, 98), (1500, 1500)]
)
def test_icmp_echo_request_checksums(size: int, expected: int) -> None:
    frame = request(SERVER_IP, 0x1234, 7, size)
    assert len(frame) == expected
    assert_ipv4_header_valid(frame)
    assert_icmp_checksum_valid(frame)
    icmp = ip_payload(frame)
    assert len(icmp) == expected - 34
    assert struct.unpack_from("!BBHHH", icmp)[0:2] == (8, 0)
    assert struct.unpack_from("!HH", icmp, 4) == (0x1234, 7)
    assert parse_echo_reply(frame) is None  # a request is not a reply


@settings(max_examples=200)
@given(ident=st.integers(0, 0xFFFF), sequence=st.integers(0, 0xFFFF), size=st.integers(0, 1600))
def test_icmp_echo_request_checksums_property(ident: int, sequence: int, size: int) -> None:
    frame = request(SERVER_IP, ident, sequence, size)
    assert_ipv4_header_valid(frame)
    assert_icmp_checksum_valid(frame)


def test_arp_request_layout() -> None:
    frame = arp_request(CLIENT_MAC, CLIENT_IP, SERVER_IP)
    assert len(frame) == 60
    assert frame[:6] == b"\xff" * 6
    assert frame[12:14] == b"\x08\x06"
    assert parse_arp(frame) == (1, CLIENT_MAC, CLIENT_IP, bytes(6), SERVER_IP)


# ------------------------------------------------------------------ responders


def test_echo_replies_answers_only_requests_to_our_ip() -> None:
    to_us_small = request(SERVER_IP, 0x0101, 1)
    to_us_large = request(SERVER_IP, 0xBEEF, 2, 1000)
    to_other = request(OTHER_IP, 0x0303, 3)
    reply_to_us = icmp_echo_request(CLIENT_MAC, SERVER_MAC, CLIENT_IP, SERVER_IP, 4, 4, 60)
    reply_to_us = reply_to_us[:34] + b"\x00" + reply_to_us[35:]  # type 0: already a reply
    batch_frames = [
        arp_request(CLIENT_MAC, CLIENT_IP, SERVER_IP),
        to_us_small,
        udp_frame(60, CLIENT_MAC, SERVER_MAC, CLIENT_IP, SERVER_IP),
        to_other,
        b"\x01" * 20,  # runt
        reply_to_us,
        to_us_large,
    ]
    replies, answered = echo_replies(PacketBatch.from_frames(batch_frames), SERVER_IP)
    assert answered == 2
    assert len(replies) == 2
    for reply, original in zip(replies.frames(), [to_us_small, to_us_large], strict=True):
        assert len(reply) == len(original)
        assert reply[:6] == original[6:12] == CLIENT_MAC
        assert reply[6:12] == original[:6] == SERVER_MAC
        assert reply[12:14] == b"\x08\x00"
        assert reply[26:30] == SERVER_IP and reply[30:34] == CLIENT_IP
        assert reply[34] == 0  # echo reply
        assert reply[35] == 0
        assert reply[38:] == original[38:]  # identifier, sequence, payload
        assert reply[14:24] == original[14:24]  # IPv4 header up to the checksum
        assert_ipv4_header_valid(reply)
        assert_icmp_checksum_valid(reply)
    assert parse_echo_reply(replies.frames()[0]) == (0x0101, 1)
    assert parse_echo_reply(replies.frames()[1]) == (0xBEEF, 2)
    # the input batch is not modified
    assert PacketBatch.from_frames(batch_frames).frames() == batch_frames


def test_echo_replies_without_address_filter_answers_every_request() -> None:
    originals = [request(SERVER_IP, 1, 1), request(OTHER_IP, 2, 2, 200)]
    mixed = [originals[0], arp_request(CLIENT_MAC, CLIENT_IP, SERVER_IP), originals[1]]
    replies, answered = echo_replies(PacketBatch.from_frames(mixed), None)
    assert answered == 2
    assert [parse_echo_reply(r) for r in replies.frames()] == [(1, 1), (2, 2)]
    for reply in replies.frames():
        assert_icmp_checksum_valid(reply)


def test_echo_replies_empty_and_nothing_to_answer() -> None:
    replies, answered = echo_replies(PacketBatch.empty(), SERVER_IP)
    assert (len(replies), answered) == (0, 0)
    only_arp = PacketBatch.from_frames([arp_request(CLIENT_MAC, CLIENT_IP, SERVER_IP)])
    replies, answered = echo_replies(only_arp, SERVER_IP)
    assert (len(replies), answered) == (0, 0)
    runts = PacketBatch.from_frames([b"", b"\x08", b"\x00" * 41])
    assert echo_replies(runts, None)[1] == 0


@settings(max_examples=200)
@given(ident=st.integers(0, 0xFFFF), sequence=st.integers(0, 0xFFFF), size=st.integers(60, 400))
def test_echo_reply_checksum_verifies_property(ident: int, sequence: int, size: int) -> None:
    replies, answered = echo_replies(
        PacketBatch.from_frames([request(SERVER_IP, ident, sequence, size)]), SERVER_IP
    )
    assert answered == 1
    reply = replies.frames()[0]
    assert internet_checksum(ip_payload(reply)) == 0
    assert parse_echo_reply(reply) == (ident, sequence)


def _ident_with_request_checksum(value: int) -> int:
    """An identifier that makes a 60-byte request (sequence 1) carry checksum `value`."""
    for ident in range(0x10000):
        if stored_checksum(ip_payload(request(SERVER_IP, ident, 1)), 2) == value:
            return ident
    raise AssertionError(f"no identifier gives checksum {value:#06x}")  # pragma: no cover


def test_echo_reply_checksum_matches_from_scratch_when_it_should_be_zero() -> None:
    """A request with checksum 0xF7FF must be answered with checksum 0x0000.

    RFC 1624 section 3: the incremental update HC' = HC + m - m' (what echo_replies
    does, as HC + 0x0800 with end-around carry) yields 0xFFFF here, where a checksum
    computed from scratch (and RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m')) gives 0x0000.
    Both verify, but the reply then differs from what every other stack sends.
    """
    ident = _ident_with_request_checksum(0xF7FF)
    replies, answered = echo_replies(
        PacketBatch.from_frames([request(SERVER_IP, ident, 1)]), SERVER_IP
    )
    assert answered == 1
    icmp = ip_payload(replies.frames()[0])
    assert internet_checksum(icmp) == 0  # verifies either way
    assert stored_checksum(icmp, 2) == checksum_from_scratch(icmp, 2) == 0x0000


def test_arp_reply_answers_requests_for_our_ip_only() -> None:
    who_has_us = arp_request(CLIENT_MAC, CLIENT_IP, SERVER_IP)
    reply = arp_reply(who_has_us, SERVER_MAC, SERVER_IP)
    assert reply is not None
    assert len(reply) == 60
    assert reply[:6] == CLIENT_MAC and reply[6:12] == SERVER_MAC
    assert reply[12:14] == b"\x08\x06"
    assert parse_arp(reply) == (2, SERVER_MAC, SERVER_IP, CLIENT_MAC, CLIENT_IP)
    assert reply[14:22] == bytes.fromhex("0001080006040002")  # htype, ptype, sizes, op
    # requests for someone else, replies, and non-ARP frames are not answered
    assert arp_reply(arp_request(CLIENT_MAC, CLIENT_IP, OTHER_IP), SERVER_MAC, SERVER_IP) is None
    assert arp_reply(reply, SERVER_MAC, SERVER_IP) is None
    assert arp_reply(reply, CLIENT_MAC, CLIENT_IP) is None  # op 2 even though it names us
    assert arp_reply(request(SERVER_IP, 1, 1), SERVER_MAC, SERVER_IP) is None
    assert arp_reply(who_has_us[:30], SERVER_MAC, SERVER_IP) is None


def test_parse_helpers_reject_other_frames() -> None:
    assert parse_arp(udp_frame(60, CLIENT_MAC, SERVER_MAC, CLIENT_IP, SERVER_IP)) is None
    assert parse_arp(b"\x00" * 10) is None
    assert parse_echo_reply(udp_frame(60, CLIENT_MAC, SERVER_MAC, CLIENT_IP, SERVER_IP)) is None
    assert parse_echo_reply(arp_request(CLIENT_MAC, CLIENT_IP, SERVER_IP)) is None
    assert parse_echo_reply(b"\x00" * 20) is None


# ------------------------------------------------------------------ address parsing


@pytest.mark.parametrize("text", ["198.18.0.0", "198.18.0.1", "198.19.255.255", "198.18.200.3"])
def test_benchmark_ip_accepts_the_benchmark_range(text: str) -> None:
    assert benchmark_ip(text) == bytes(int(part) for part in text.split("."))


@pytest.mark.parametrize(
    "text",
    [
        "198.17.255.255",
        "198.20.0.0",
        "10.0.0.1",
        "192.168.1.1",
        "8.8.8.8",
        "127.0.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "198.18.0",
        "198.18.0.256",
        "",
        "::1",
        "not an address",
    ],
)
def test_benchmark_ip_refuses_everything_else(text: str) -> None:
    with pytest.raises(FrameError):
        benchmark_ip(text)
    assert issubclass(FrameError, ValueError)


def test_defaults_are_benchmark_addresses() -> None:
    assert benchmark_ip(frames.DEFAULT_SERVER_IP) == SERVER_IP
    assert benchmark_ip(frames.DEFAULT_CLIENT_IP) == CLIENT_IP


@pytest.mark.parametrize(
    ("text", "raw"),
    [
        ("02:fe:00:00:00:01", SERVER_MAC),
        ("FF:FF:FF:FF:FF:FF", b"\xff" * 6),
        ("02:FE:0a:0B:c0:01", bytes.fromhex("02fe0a0bc001")),
    ],
)
def test_parse_mac_round_trip(text: str, raw: bytes) -> None:
    assert parse_mac(text) == raw
    assert parse_mac(format_mac(raw)) == raw
    assert format_mac(raw) == text.lower()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "02:fe:00:00:00",
        "02:fe:00:00:00:01:02",
        "02-fe-00-00-00-01",
        "02fe.0000.0001",
        "02:fe:00:00:00:zz",
        "02:fe:00:00::01",
        "02:fe:00:00:00:100",  # octet above 255
        "02:fe:00:00:00:-1",
    ],
)
def test_parse_mac_refuses_malformed(text: str) -> None:
    with pytest.raises(FrameError):
        parse_mac(text)


@pytest.mark.parametrize(
    "text",
    [
        "0x2:fe:00:00:00:01",  # int(..., 16) accepts a 0x prefix
        "+2:fe:00:00:00:01",  # ... a sign
        " 2:fe:00:00:00:01",  # ... surrounding whitespace
        "0_2:fe:00:00:00:01",  # ... digit-group underscores
        "002:fe:00:00:00:01",  # ... any number of leading zeros
    ],
)
def test_parse_mac_refuses_non_hex_octet_spellings(text: str) -> None:
    """Octets are one or two hex digits; int(x, 16) leniency must not leak through."""
    with pytest.raises(FrameError):
        parse_mac(text)


# ------------------------------------------------------------------ scapy cross-check


def test_frames_checksums_agree_with_scapy() -> None:
    scapy = pytest.importorskip("scapy.all")
    ether, ip_layer, icmp_layer, udp_layer, arp_layer = (
        scapy.Ether,
        scapy.IP,
        scapy.ICMP,
        scapy.UDP,
        scapy.ARP,
    )

    def recomputed(frame: bytes, *layers: type) -> Any:
        packet = ether(frame)
        for layer in layers:
            del packet[layer].chksum
        return ether(bytes(packet))

    udp = udp_frame(1514, CLIENT_MAC, SERVER_MAC, CLIENT_IP, SERVER_IP, sport=7, dport=9)
    parsed = ether(udp)
    assert parsed[ip_layer].chksum == recomputed(udp, ip_layer)[ip_layer].chksum
    assert parsed[ip_layer].len == 1500 and parsed[udp_layer].len == 1480
    assert (parsed[udp_layer].sport, parsed[udp_layer].dport) == (7, 9)
    assert parsed[ip_layer].src == "198.18.0.2" and parsed[ip_layer].dst == "198.18.0.1"

    echo = request(SERVER_IP, 0x4242, 9, 200)
    replies, _ = echo_replies(PacketBatch.from_frames([echo]), SERVER_IP)
    for frame, kind in ((echo, 8), (replies.frames()[0], 0)):
        parsed = ether(frame)
        again = recomputed(frame, ip_layer, icmp_layer)
        assert parsed[icmp_layer].type == kind
        assert parsed[ip_layer].chksum == again[ip_layer].chksum
        assert parsed[icmp_layer].chksum == again[icmp_layer].chksum
        assert (parsed[icmp_layer].id, parsed[icmp_layer].seq) == (0x4242, 9)
    reply = ether(replies.frames()[0])
    assert (reply[ip_layer].src, reply[ip_layer].dst) == ("198.18.0.1", "198.18.0.2")
    assert (reply.src, reply.dst) == ("02:fe:00:00:00:01", "02:fe:00:00:00:02")

    answer = arp_reply(arp_request(CLIENT_MAC, CLIENT_IP, SERVER_IP), SERVER_MAC, SERVER_IP)
    assert answer is not None
    arp = ether(answer)[arp_layer]
    assert (arp.op, arp.hwsrc, arp.psrc) == (2, "02:fe:00:00:00:01", "198.18.0.1")
    assert (arp.hwdst, arp.pdst) == ("02:fe:00:00:00:02", "198.18.0.2")
