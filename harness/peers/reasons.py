"""Disconnect reasons: every peer's DISCONNECT strings, normalised to one enum for scenarios."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


class DisconnectReason(enum.StrEnum):
    """Why a memif connection was refused or torn down, independent of who said it.

    Scenarios compare these values, never a peer's raw text (DESIGN.md §3). Peers disagree on
    spelling ("Secret required" vs "secret required") and sometimes on the check itself (fact
    sheet §3.3); the comments name what each value stands for.
    """

    SECRET_REQUIRED = "secret-required"
    """The server has a secret and the client sent none."""
    INCORRECT_SECRET = "incorrect-secret"
    """The client's secret does not match the server's."""
    ID_NOT_FOUND = "id-not-found"
    """No server interface with the requested id on that socket (VPP: also "the id is a slave")."""
    ALREADY_CONNECTED = "already-connected"
    """The server interface already has a client."""
    MODE_MISMATCH = "mode-mismatch"
    """Interface modes differ (DPDK: the client did not ask for ethernet mode)."""
    INCOMPATIBLE_VERSION = "incompatible-version"
    """The protocol versions do not overlap."""
    INVALID_RING_INDEX = "invalid-ring-index"
    """ADD_RING with an out-of-order or out-of-range index, or too many rings."""
    INVALID_REGION_INDEX = "invalid-region-index"
    """ADD_REGION with an out-of-order or out-of-range index, or too many regions."""
    INVALID_RING_SIZE = "invalid-ring-size"
    """ADD_RING with a log2 ring size the server refuses (only the reference peer checks)."""
    MISSING_FD = "missing-fd"
    """A message that must carry a file descriptor (region memfd, ring eventfd) came without."""
    INVALID_MESSAGE_SIZE = "invalid-message-size"
    """A control datagram was not 128 bytes long."""
    UNEXPECTED_MESSAGE = "unexpected-message"
    """A known message arrived where it is not allowed (or carried an fd it must not carry)."""
    UNKNOWN_MESSAGE_TYPE = "unknown-message-type"
    """The message type field holds no known type."""
    UNSUPPORTED_FEATURE = "unsupported-feature"
    """The peer asked for something the sender does not implement (private ring headers)."""
    MEMORY_ERROR = "memory-error"
    """The shared memory could not be mapped or does not hold a valid ring (wrong cookie)."""
    INTERNAL_ERROR = "internal-error"
    """The sender failed on its own side (allocation, device error)."""
    SHUTDOWN = "shutdown"
    """The sender is closing or deleting its interface."""
    DISCONNECT_RECEIVED = "disconnect-received"
    """The sender answers a DISCONNECT it received (VPP only; the real reason is the other one)."""
    PEER_CLOSED = "peer-closed"
    """The connection was closed (end of file or socket error) without a reason being given."""
    OTHER = "other"
    """Text that matches no known reason string."""


class ReasonSource(enum.StrEnum):
    """Which implementation a known reason string comes from."""

    DPDK = "dpdk"
    VPP = "vpp"
    LIBMEMIF_4 = "libmemif-4"
    LIBMEMIF_3 = "libmemif-3"
    GOMEMIF = "gomemif"
    REFERENCE = "reference"


@dataclass(frozen=True)
class KnownReason:
    """One reason string as an implementation writes it, and what it means.

    Attributes:
        source: The implementation that sends or logs it.
        text: The exact text (a description when `pattern` is set).
        reason: The normalised meaning.
        pattern: For texts with a variable part: a regex matched case-insensitively against
            the whole (stripped) text; None for fixed strings.
        on_wire: False if the implementation only logs it and never sends it in DISCONNECT.
    """

    source: ReasonSource
    text: str
    reason: DisconnectReason
    pattern: str | None = None
    on_wire: bool = True


def _fixed(
    source: ReasonSource, reason: DisconnectReason, *texts: str, on_wire: bool = True
) -> tuple[KnownReason, ...]:
    return tuple(KnownReason(source, text, reason, on_wire=on_wire) for text in texts)


_S = ReasonSource
_R = DisconnectReason

KNOWN_REASONS: Final[tuple[KnownReason, ...]] = (
    # DPDK drivers/net/memif (memif_socket.c, rte_eth_memif.c); fact sheet §7.2; since 19.08.
    *_fixed(_S.DPDK, _R.INCOMPATIBLE_VERSION, "Incompatible memif version"),
    *_fixed(_S.DPDK, _R.INTERNAL_ERROR, "Device error", "Failed to alloc memif region."),
    *_fixed(_S.DPDK, _R.ALREADY_CONNECTED, "Already connected"),
    *_fixed(_S.DPDK, _R.MODE_MISMATCH, "Only ethernet mode supported"),
    *_fixed(_S.DPDK, _R.SECRET_REQUIRED, "Secret required"),
    *_fixed(_S.DPDK, _R.INCORRECT_SECRET, "Incorrect secret"),
    *_fixed(_S.DPDK, _R.ID_NOT_FOUND, "ID not found"),
    *_fixed(_S.DPDK, _R.MISSING_FD, "Missing region fd", "Missing interrupt fd"),
    *_fixed(_S.DPDK, _R.INVALID_REGION_INDEX, "Invalid region index"),
    *_fixed(_S.DPDK, _R.INVALID_RING_INDEX, "Invalid ring index"),
    *_fixed(_S.DPDK, _R.INVALID_MESSAGE_SIZE, "Invalid message size"),
    *_fixed(_S.DPDK, _R.UNEXPECTED_MESSAGE, "Unexpected message"),
    *_fixed(_S.DPDK, _R.UNKNOWN_MESSAGE_TYPE, "Unknown message type"),
    *_fixed(_S.DPDK, _R.SHUTDOWN, "Device closed"),
    # VPP src/plugins/memif (socket.c, memif.c); fact sheet §7.2, unchanged since 17.07.
    *_fixed(_S.VPP, _R.INCOMPATIBLE_VERSION, "incompatible protocol version"),
    *_fixed(_S.VPP, _R.INCOMPATIBLE_VERSION, "unsupported version", on_wire=False),
    *_fixed(_S.VPP, _R.ID_NOT_FOUND, "unmatched interface id", "cannot connect to slave"),
    *_fixed(_S.VPP, _R.ALREADY_CONNECTED, "already connected"),
    *_fixed(_S.VPP, _R.MODE_MISMATCH, "mode mismatch"),
    *_fixed(_S.VPP, _R.SECRET_REQUIRED, "secret required"),
    *_fixed(_S.VPP, _R.INCORRECT_SECRET, "incorrect secret"),
    *_fixed(
        _S.VPP,
        _R.MISSING_FD,
        "missing memory region fd",
        "missing ring interrupt fd",
        "no memory region fd",
    ),
    *_fixed(_S.VPP, _R.INVALID_REGION_INDEX, "unexpected region index", "too many regions"),
    *_fixed(_S.VPP, _R.INVALID_RING_INDEX, "unexpected ring index", "too many rings"),
    *_fixed(_S.VPP, _R.UNSUPPORTED_FEATURE, "private headers not supported"),
    *_fixed(_S.VPP, _R.DISCONNECT_RECEIVED, "disconnect received"),
    *_fixed(_S.VPP, _R.UNEXPECTED_MESSAGE, "unexpected message received", on_wire=False),
    *_fixed(_S.VPP, _R.PEER_CLOSED, "connection fd error", "disconnected"),
    *_fixed(_S.VPP, _R.SHUTDOWN, "interface deleted"),
    KnownReason(
        _S.VPP,
        "unknown message type (0x<n>)",
        _R.UNKNOWN_MESSAGE_TYPE,
        pattern=r"unknown message type \(0x[0-9a-f]+\)",
    ),
    KnownReason(
        _S.VPP,
        "wrong cookie on tx ring <n> (VPP uses the same text for rx rings)",
        _R.MEMORY_ERROR,
        pattern=r"wrong cookie on [rt]x ring \d+",
    ),
    KnownReason(_S.VPP, "mmap: <errno text>", _R.MEMORY_ERROR, pattern=r"mmap\b.*"),
    KnownReason(
        _S.VPP,
        "recvmsg: malformed message (fd <n>, '<socket>')",
        _R.INVALID_MESSAGE_SIZE,
        pattern=r"recvmsg: malformed message\b.*",
    ),
    # libmemif 4.x (extras/libmemif/src/socket.c, socket.h).
    *_fixed(_S.LIBMEMIF_4, _R.INCOMPATIBLE_VERSION, "incompatible version"),
    *_fixed(_S.LIBMEMIF_4, _R.ALREADY_CONNECTED, "Already connected"),
    *_fixed(_S.LIBMEMIF_4, _R.INCORRECT_SECRET, "Incorrect secret"),
    *_fixed(_S.LIBMEMIF_4, _R.INTERNAL_ERROR, "Internal error"),
    # libmemif 3.x (socket.h at v21.01), typo included.
    *_fixed(_S.LIBMEMIF_3, _R.INCOMPATIBLE_VERSION, "incompatible version"),
    *_fixed(_S.LIBMEMIF_3, _R.ID_NOT_FOUND, "unmatched interface id", "cannot connect to salve"),
    *_fixed(_S.LIBMEMIF_3, _R.ALREADY_CONNECTED, "already connected"),
    *_fixed(_S.LIBMEMIF_3, _R.MODE_MISMATCH, "mode mismatch"),
    *_fixed(_S.LIBMEMIF_3, _R.INCORRECT_SECRET, "incorrect secret"),
    *_fixed(_S.LIBMEMIF_3, _R.SECRET_REQUIRED, "secret required"),
    # gomemif (historical; Go error text).
    *_fixed(_S.GOMEMIF, _R.INCOMPATIBLE_VERSION, "Incompatible memif driver version"),
    *_fixed(_S.GOMEMIF, _R.INCORRECT_SECRET, "Invalid secret"),
    *_fixed(_S.GOMEMIF, _R.ID_NOT_FOUND, "Invalid interface id"),
    *_fixed(_S.GOMEMIF, _R.INVALID_REGION_INDEX, "Invalid region index"),
    *_fixed(_S.GOMEMIF, _R.INVALID_RING_INDEX, "invalid ring index"),
    KnownReason(_S.GOMEMIF, "unknown message <n>", _R.UNKNOWN_MESSAGE_TYPE, r"unknown message \d+"),
    # This project's reference implementation (reference_impl/protocol.py, Reason).
    *_fixed(_S.REFERENCE, _R.MODE_MISMATCH, "Mode mismatch"),
    *_fixed(_S.REFERENCE, _R.UNSUPPORTED_FEATURE, "Private headers not supported"),
    *_fixed(_S.REFERENCE, _R.INVALID_RING_SIZE, "Invalid ring size"),
    *_fixed(_S.REFERENCE, _R.UNEXPECTED_MESSAGE, "Unexpected file descriptor"),
    *_fixed(_S.REFERENCE, _R.PEER_CLOSED, "peer closed the connection"),
    KnownReason(
        _S.REFERENCE,
        "Unexpected message <TYPE> in state <state>",
        _R.UNEXPECTED_MESSAGE,
        pattern=r"unexpected message \S+ in state \S+",
    ),
)
"""Every reason string known from the fact sheet (§3.3, §7.2) and this project's own peer."""


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()


def _build_exact() -> Mapping[str, DisconnectReason]:
    table: dict[str, DisconnectReason] = {}
    for known in KNOWN_REASONS:
        if known.pattern is not None:
            continue
        key = _key(known.text)
        if table.setdefault(key, known.reason) is not known.reason:
            raise AssertionError(f"{known.text!r} maps to two reasons")
    return MappingProxyType(table)


_EXACT: Final = _build_exact()
_PATTERNS: Final = tuple(
    (re.compile(known.pattern, re.IGNORECASE), known.reason)
    for known in KNOWN_REASONS
    if known.pattern is not None
)


def _text_of(raw: str | bytes) -> str:
    if isinstance(raw, bytes):
        raw = raw.split(b"\0", 1)[0].decode("latin-1")
    return raw.split("\0", 1)[0].strip()


def normalise(text: str | bytes | None) -> DisconnectReason:
    """Map a peer's disconnect reason text to a DisconnectReason.

    Matching ignores case, surrounding whitespace, runs of inner whitespace and anything from
    the first NUL on (the DISCONNECT string field is NUL-padded). Texts with a variable part
    (VPP's "unknown message type (0x7)", "wrong cookie on tx ring 1", errno texts) are matched
    by pattern.

    Args:
        text: The reason as sent in DISCONNECT or shown by the peer (`str` or raw `bytes`);
            None when the connection ended without any DISCONNECT message.

    Returns:
        The normalised reason; PEER_CLOSED for None; OTHER for empty or unknown text.
    """
    if text is None:
        return DisconnectReason.PEER_CLOSED
    cleaned = _text_of(text)
    if not cleaned:
        return DisconnectReason.OTHER
    exact = _EXACT.get(_key(cleaned))
    if exact is not None:
        return exact
    for pattern, reason in _PATTERNS:
        if pattern.fullmatch(cleaned):
            return reason
    return DisconnectReason.OTHER


def sources_of(text: str | bytes) -> tuple[ReasonSource, ...]:
    """Name the implementations whose spelling `text` matches exactly (case included).

    Args:
        text: A reason string.

    Returns:
        The matching sources in table order; empty if the exact spelling is unknown (a case
        variant of a known string, or an unknown text).
    """
    cleaned = " ".join(_text_of(text).split())
    found: list[ReasonSource] = []
    for known in KNOWN_REASONS:
        matched = (
            known.text == cleaned
            if known.pattern is None
            else re.fullmatch(known.pattern, cleaned, re.IGNORECASE) is not None
        )
        if matched and known.source not in found:
            found.append(known.source)
    return tuple(found)
