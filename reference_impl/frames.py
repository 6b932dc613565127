"""Ethernet/ARP/IPv4/ICMP/UDP frames for memif-ref's actions, built and answered in batches.

Default addresses come from 198.18.0.0/15, the benchmarking range (RFC 2544); nothing
here builds a frame for any other range unless the user passes one explicitly.
"""

from __future__ import annotations

import ipaddress
import re
import struct

import numpy as np
import numpy.typing as npt

from reference_impl.ring import PacketBatch

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
IPPROTO_ICMP = 1
IPPROTO_UDP = 17
ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8
BROADCAST_MAC = b"\xff" * 6
BENCHMARK_NETWORK = ipaddress.IPv4Network("198.18.0.0/15")
DEFAULT_SERVER_IP = "198.18.0.1"
DEFAULT_CLIENT_IP = "198.18.0.2"
ETHERNET_HEADER = 14
IPV4_HEADER = 20
UDP_HEADER = 8
MIN_FRAME = 60  # without FCS
_ETH = struct.Struct("!6s6sH")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_ICMP_ECHO = struct.Struct("!BBHHH")
_UDP = struct.Struct("!HHHH")
assert _UDP.size == UDP_HEADER
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_MAC = re.compile(r"[0-9A-Fa-f]{1,2}(?::[0-9A-Fa-f]{1,2}){5}")


class FrameError(ValueError):
    """Bad frame parameters (address, size)."""


def parse_mac(text: str) -> bytes:
    """'02:fe:00:00:00:01' -> 6 bytes."""
    if not _MAC.fullmatch(text):
        raise FrameError(f"MAC address {text!r} must be 6 colon-separated hex octets")
    return bytes(int(part, 16) for part in text.split(":"))


def format_mac(raw: bytes) -> str:
    """6 bytes -> '02:fe:00:00:00:01'."""
    return ":".join(f"{b:02x}" for b in raw)


def benchmark_ip(text: str) -> bytes:
    """Parse an IPv4 address and insist it is inside 198.18.0.0/15."""
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError as exc:
        raise FrameError(f"{text!r} is not an IPv4 address") from exc
    if address not in BENCHMARK_NETWORK:
        raise FrameError(f"{address} is outside {BENCHMARK_NETWORK} (benchmarking range only)")
    return address.packed


def internet_checksum(data: bytes) -> int:
    """RFC 1071 checksum."""
    if len(data) % 2:
        data += b"\0"
    total = int(np.frombuffer(data, dtype=">u2").sum(dtype=np.uint64))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ipv4_header(src: bytes, dst: bytes, protocol: int, payload_length: int, ident: int) -> bytes:
    header = _IPV4.pack(
        0x45, 0, IPV4_HEADER + payload_length, ident & 0xFFFF, 0x4000, 64, protocol, 0, src, dst
    )
    checksum = internet_checksum(header)
    return header[:10] + struct.pack("!H", checksum) + header[12:]


def udp_frame(
    size: int,
    src_mac: bytes,
    dst_mac: bytes,
    src_ip: bytes,
    dst_ip: bytes,
    *,
    sport: int = 9,
    dport: int = 9,
) -> bytes:
    """A UDP/IPv4 frame of exactly `size` bytes (no FCS), payload zero-filled."""
    overhead = ETHERNET_HEADER + IPV4_HEADER + _UDP.size
    if size < overhead:
        raise FrameError(f"frame size {size} is below the {overhead}-byte UDP minimum")
    payload = bytes(size - overhead)
    udp = _UDP.pack(sport, dport, _UDP.size + len(payload), 0) + payload
    ip = _ipv4_header(src_ip, dst_ip, IPPROTO_UDP, len(udp), 0)
    return _ETH.pack(dst_mac, src_mac, ETHERTYPE_IPV4) + ip + udp


def icmp_echo_request(
    src_mac: bytes,
    dst_mac: bytes,
    src_ip: bytes,
    dst_ip: bytes,
    ident: int,
    sequence: int,
    size: int,
) -> bytes:
    """An ICMP echo request frame of `size` bytes (at least 60)."""
    overhead = ETHERNET_HEADER + IPV4_HEADER + _ICMP_ECHO.size
    size = max(size, MIN_FRAME)
    payload = bytes(i & 0xFF for i in range(size - overhead))
    icmp = _ICMP_ECHO.pack(ICMP_ECHO_REQUEST, 0, 0, ident, sequence) + payload
    icmp = icmp[:2] + struct.pack("!H", internet_checksum(icmp)) + icmp[4:]
    ip = _ipv4_header(src_ip, dst_ip, IPPROTO_ICMP, len(icmp), sequence)
    return _ETH.pack(dst_mac, src_mac, ETHERTYPE_IPV4) + ip + icmp


def arp_request(src_mac: bytes, src_ip: bytes, target_ip: bytes) -> bytes:
    """A broadcast ARP who-has, padded to 60 bytes."""
    arp = _ARP.pack(1, ETHERTYPE_IPV4, 6, 4, 1, src_mac, src_ip, bytes(6), target_ip)
    frame = _ETH.pack(BROADCAST_MAC, src_mac, ETHERTYPE_ARP) + arp
    return frame + bytes(MIN_FRAME - len(frame))


def parse_arp(frame: bytes) -> tuple[int, bytes, bytes, bytes, bytes] | None:
    """(op, sender mac, sender ip, target mac, target ip) of an ARP frame, else None."""
    if len(frame) < ETHERNET_HEADER + _ARP.size:
        return None
    if struct.unpack_from("!H", frame, 12)[0] != ETHERTYPE_ARP:
        return None
    _, _, _, _, op, smac, sip, tmac, tip = _ARP.unpack_from(frame, ETHERNET_HEADER)
    return op, smac, sip, tmac, tip


def arp_reply(request: bytes, our_mac: bytes, our_ip: bytes) -> bytes | None:
    """Answer an ARP request for `our_ip`, else None."""
    parsed = parse_arp(request)
    if parsed is None or parsed[0] != 1 or parsed[4] != our_ip:
        return None
    _, smac, sip, _, _ = parsed
    arp = _ARP.pack(1, ETHERTYPE_IPV4, 6, 4, 2, our_mac, our_ip, smac, sip)
    frame = _ETH.pack(smac, our_mac, ETHERTYPE_ARP) + arp
    return frame + bytes(MIN_FRAME - len(frame))


def parse_echo_reply(frame: bytes) -> tuple[int, int] | None:
    """(identifier, sequence) of an ICMP echo reply frame, else None."""
    offset = ETHERNET_HEADER
    if len(frame) < offset + IPV4_HEADER + _ICMP_ECHO.size:
        return None
    if struct.unpack_from("!H", frame, 12)[0] != ETHERTYPE_IPV4:
        return None
    ihl = (frame[offset] & 0x0F) * 4
    if frame[offset + 9] != IPPROTO_ICMP or len(frame) < offset + ihl + _ICMP_ECHO.size:
        return None
    kind, _, _, ident, sequence = _ICMP_ECHO.unpack_from(frame, offset + ihl)
    if kind != ICMP_ECHO_REPLY:
        return None
    return ident, sequence


def echo_replies(batch: PacketBatch, our_ip: bytes | None) -> tuple[PacketBatch, int]:
    """Turn every ICMP echo request in `batch` (to `our_ip`, or any if None) into a reply.

    Vectorised over the batch: MACs and IPs swapped, type set to 0, ICMP checksum
    adjusted incrementally (RFC 1624); the IPv4 checksum is unchanged by the swap.

    Returns:
        (replies, how many requests were answered).
    """
    if not len(batch):
        return PacketBatch.empty(), 0
    starts = batch.starts
    data = batch.data
    long_enough = batch.lengths >= ETHERNET_HEADER + IPV4_HEADER + _ICMP_ECHO.size
    safe_starts = np.where(long_enough, starts, 0)

    def byte(at: int) -> npt.NDArray[np.uint8]:
        picked: npt.NDArray[np.uint8] = data[np.minimum(safe_starts + at, max(data.size - 1, 0))]
        return picked

    is_request = (
        long_enough
        & (byte(12) == 0x08)
        & (byte(13) == 0x00)
        & (byte(14) == 0x45)
        & (byte(23) == IPPROTO_ICMP)
        & (byte(34) == ICMP_ECHO_REQUEST)
    )
    if our_ip is not None:
        for index, octet in enumerate(our_ip):
            is_request &= byte(30 + index) == octet
    chosen = np.flatnonzero(is_request)
    if not chosen.size:
        return PacketBatch.empty(), 0
    lengths = batch.lengths[chosen]
    out_starts = np.cumsum(lengths) - lengths
    positions = np.repeat(starts[chosen] - out_starts, lengths) + np.arange(int(lengths.sum()))
    out = data[positions]
    base = out_starts[:, None]
    mac_dst = base + np.arange(0, 6)
    mac_src = base + np.arange(6, 12)
    out[mac_dst], out[mac_src] = out[mac_src], out[mac_dst].copy()
    ip_src = base + np.arange(26, 30)
    ip_dst = base + np.arange(30, 34)
    out[ip_src], out[ip_dst] = out[ip_dst], out[ip_src].copy()
    out[out_starts + 34] = ICMP_ECHO_REPLY
    old_checksum = (out[out_starts + 36].astype(np.uint32) << 8) | out[out_starts + 37]
    # RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), type word m 0x0800 -> m' 0x0000.
    summed = (~old_checksum & 0xFFFF) + (~np.uint32(0x0800) & 0xFFFF)
    summed = (summed & 0xFFFF) + (summed >> 16)
    checksum = ~summed & 0xFFFF
    out[out_starts + 36] = (checksum >> 8).astype(np.uint8)
    out[out_starts + 37] = (checksum & 0xFF).astype(np.uint8)
    return PacketBatch(out, lengths.astype(np.int64)), int(chosen.size)


ETHERTYPE_CHECK = 0x88B5  # IEEE 802 local experimental EtherType 1
_CHECK = struct.Struct("!II")  # sequence number, frame size
CHECK_MIN_FRAME = ETHERNET_HEADER + _CHECK.size


def check_frame(sequence: int, size: int, src_mac: bytes, dst_mac: bytes) -> bytes:
    """A numbered frame whose every byte after the MACs follows from (sequence, size).

    The payload after the 8-byte (sequence, size) header is a byte ramp starting at
    sequence * 7, so a fragment that lands in the wrong place or a stale byte shows.
    """
    if size < CHECK_MIN_FRAME:
        raise FrameError(f"a check frame needs at least {CHECK_MIN_FRAME} bytes, not {size}")
    ramp = (np.arange(size - CHECK_MIN_FRAME, dtype=np.int64) + sequence * 7) & 0xFF
    header = _ETH.pack(dst_mac, src_mac, ETHERTYPE_CHECK) + _CHECK.pack(sequence, size)
    return header + ramp.astype(np.uint8).tobytes()


def parse_check_header(frame: bytes) -> tuple[int, int] | None:
    """(sequence, size) of a check frame, or None if the frame is no check frame."""
    if len(frame) < CHECK_MIN_FRAME or _ETH.unpack_from(frame)[2] != ETHERTYPE_CHECK:
        return None
    sequence, size = _CHECK.unpack_from(frame, ETHERNET_HEADER)
    return int(sequence), int(size)


def first_difference(got: bytes, expected: bytes, skip: int = 12) -> int | None:
    """Offset of the first byte where `got` differs from `expected` after `skip` bytes
    (the MACs, which a forwarder may swap); the shorter length if one is a prefix."""
    if len(got) == len(expected) and got[skip:] == expected[skip:]:
        return None
    a = np.frombuffer(got, dtype=np.uint8)[skip:]
    b = np.frombuffer(expected, dtype=np.uint8)[skip:]
    common = min(a.size, b.size)
    differ = np.flatnonzero(a[:common] != b[:common])
    return skip + int(differ[0]) if differ.size else skip + common
