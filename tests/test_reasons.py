"""Tests of harness.peers.reasons: every known disconnect reason string and its normalisation."""

from __future__ import annotations

import itertools
import re

import pytest

from harness.peers.reasons import (
    KNOWN_REASONS,
    DisconnectReason,
    KnownReason,
    ReasonSource,
    normalise,
    sources_of,
)

R = DisconnectReason

# Written out independently of the module's table (fact sheet §3.3 and §7.2), so that an edit
# to the table that drops or remaps a string fails here.
DPDK_STRINGS = [
    ("Incompatible memif version", R.INCOMPATIBLE_VERSION),
    ("Device error", R.INTERNAL_ERROR),
    ("Already connected", R.ALREADY_CONNECTED),
    ("Only ethernet mode supported", R.MODE_MISMATCH),
    ("Secret required", R.SECRET_REQUIRED),
    ("Incorrect secret", R.INCORRECT_SECRET),
    ("ID not found", R.ID_NOT_FOUND),
    ("Missing region fd", R.MISSING_FD),
    ("Invalid region index", R.INVALID_REGION_INDEX),
    ("Failed to alloc memif region.", R.INTERNAL_ERROR),
    ("Missing interrupt fd", R.MISSING_FD),
    ("Invalid ring index", R.INVALID_RING_INDEX),
    ("Invalid message size", R.INVALID_MESSAGE_SIZE),
    ("Unexpected message", R.UNEXPECTED_MESSAGE),
    ("Unknown message type", R.UNKNOWN_MESSAGE_TYPE),
    ("Device closed", R.SHUTDOWN),
]
VPP_STRINGS = [
    ("incompatible protocol version", R.INCOMPATIBLE_VERSION),
    ("unsupported version", R.INCOMPATIBLE_VERSION),
    ("unmatched interface id", R.ID_NOT_FOUND),
    ("cannot connect to slave", R.ID_NOT_FOUND),
    ("already connected", R.ALREADY_CONNECTED),
    ("mode mismatch", R.MODE_MISMATCH),
    ("secret required", R.SECRET_REQUIRED),
    ("incorrect secret", R.INCORRECT_SECRET),
    ("missing memory region fd", R.MISSING_FD),
    ("unexpected region index", R.INVALID_REGION_INDEX),
    ("too many regions", R.INVALID_REGION_INDEX),
    ("missing ring interrupt fd", R.MISSING_FD),
    ("private headers not supported", R.UNSUPPORTED_FEATURE),
    ("unexpected ring index", R.INVALID_RING_INDEX),
    ("too many rings", R.INVALID_RING_INDEX),
    ("disconnect received", R.DISCONNECT_RECEIVED),
    ("unexpected message received", R.UNEXPECTED_MESSAGE),
    ("unknown message type (0x7)", R.UNKNOWN_MESSAGE_TYPE),
    ("unknown message type (0xff)", R.UNKNOWN_MESSAGE_TYPE),
    ("connection fd error", R.PEER_CLOSED),
    ("interface deleted", R.SHUTDOWN),
    ("disconnected", R.PEER_CLOSED),
    ("no memory region fd", R.MISSING_FD),
    ("wrong cookie on tx ring 0", R.MEMORY_ERROR),
    ("wrong cookie on tx ring 17", R.MEMORY_ERROR),
    ("mmap", R.MEMORY_ERROR),
    ("mmap: Cannot allocate memory", R.MEMORY_ERROR),
    ("recvmsg: malformed message (fd 12, '/run/vpp/memif.sock')", R.INVALID_MESSAGE_SIZE),
]
LIBMEMIF_4_STRINGS = [
    ("incompatible version", R.INCOMPATIBLE_VERSION),
    ("Already connected", R.ALREADY_CONNECTED),
    ("Incorrect secret", R.INCORRECT_SECRET),
    ("Internal error", R.INTERNAL_ERROR),
]
LIBMEMIF_3_STRINGS = [
    ("incompatible version", R.INCOMPATIBLE_VERSION),
    ("unmatched interface id", R.ID_NOT_FOUND),
    ("cannot connect to salve", R.ID_NOT_FOUND),
    ("already connected", R.ALREADY_CONNECTED),
    ("mode mismatch", R.MODE_MISMATCH),
    ("incorrect secret", R.INCORRECT_SECRET),
    ("secret required", R.SECRET_REQUIRED),
]
GOMEMIF_STRINGS = [
    ("Incompatible memif driver version", R.INCOMPATIBLE_VERSION),
    ("Invalid secret", R.INCORRECT_SECRET),
    ("Invalid interface id", R.ID_NOT_FOUND),
    ("Invalid region index", R.INVALID_REGION_INDEX),
    ("invalid ring index", R.INVALID_RING_INDEX),
    ("unknown message 9", R.UNKNOWN_MESSAGE_TYPE),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    DPDK_STRINGS + VPP_STRINGS + LIBMEMIF_4_STRINGS + LIBMEMIF_3_STRINGS + GOMEMIF_STRINGS,
)
def test_every_known_peer_string_normalises(text: str, expected: DisconnectReason) -> None:
    assert normalise(text) is expected


@pytest.mark.parametrize(
    "known",
    [k for k in KNOWN_REASONS if k.pattern is None],
    ids=lambda known: f"{known.source}:{known.text}",
)
def test_every_fixed_table_entry_normalises_to_its_reason(known: KnownReason) -> None:
    assert normalise(known.text) is known.reason


def test_every_fixed_string_listed_here_is_a_table_entry() -> None:
    fixed = {(k.text, k.reason) for k in KNOWN_REASONS if k.pattern is None}
    patterns = [k.pattern for k in KNOWN_REASONS if k.pattern is not None]
    listed = DPDK_STRINGS + VPP_STRINGS + LIBMEMIF_4_STRINGS + LIBMEMIF_3_STRINGS + GOMEMIF_STRINGS
    for text, reason in listed:
        if any(re.fullmatch(pattern, text, re.IGNORECASE) for pattern in patterns):
            continue
        assert (text, reason) in fixed, text


def test_spellings_that_differ_only_in_case_agree() -> None:
    def key(known: KnownReason) -> str:
        return " ".join(known.text.split()).casefold()

    fixed = sorted((k for k in KNOWN_REASONS if k.pattern is None), key=key)
    for _, group in itertools.groupby(fixed, key=key):
        assert len({known.reason for known in group}) == 1


def test_every_reason_but_other_has_a_known_string() -> None:
    covered = {known.reason for known in KNOWN_REASONS}
    assert covered == set(DisconnectReason) - {DisconnectReason.OTHER}


def test_reference_implementation_reasons_are_all_known() -> None:
    protocol = pytest.importorskip("reference_impl.protocol")
    texts = [
        value
        for name, value in vars(protocol.Reason).items()
        if name.isupper() and isinstance(value, str)
    ]
    assert texts
    unknown = [text for text in texts if normalise(text) is DisconnectReason.OTHER]
    assert unknown == []
    assert normalise(protocol.Reason.LOCAL_CLOSE) is R.SHUTDOWN
    assert normalise(protocol.Reason.MODE_MISMATCH) is R.MODE_MISMATCH
    assert normalise("Unexpected message CONNECT in state wait-init") is R.UNEXPECTED_MESSAGE


def test_matching_ignores_case_spacing_and_nul_padding() -> None:
    assert normalise("  INCORRECT   secret \n") is R.INCORRECT_SECRET
    assert normalise("Secret required\0garbage after the NUL") is R.SECRET_REQUIRED
    wire_field = b"ID not found".ljust(96, b"\0")
    assert normalise(wire_field) is R.ID_NOT_FOUND
    assert normalise(b"Unknown Message Type (0x1F)\0") is R.UNKNOWN_MESSAGE_TYPE


def test_missing_empty_and_unknown_texts() -> None:
    assert normalise(None) is R.PEER_CLOSED
    assert normalise("") is R.OTHER
    assert normalise(b"\0" * 96) is R.OTHER
    assert normalise("the moon is made of cheese") is R.OTHER
    # A prefix of a known string is not that string.
    assert normalise("Incorrect") is R.OTHER
    assert normalise("wrong cookie on tx ring") is R.OTHER


def test_sources_of_tells_who_spells_a_string_that_way() -> None:
    assert sources_of("Incorrect secret") == (ReasonSource.DPDK, ReasonSource.LIBMEMIF_4)
    assert sources_of("incorrect secret") == (ReasonSource.VPP, ReasonSource.LIBMEMIF_3)
    assert sources_of("Secret required") == (ReasonSource.DPDK,)
    assert sources_of("cannot connect to salve") == (ReasonSource.LIBMEMIF_3,)
    assert sources_of("unknown message type (0x7)") == (ReasonSource.VPP,)
    assert sources_of("INCORRECT SECRET") == ()
    assert sources_of("nonsense") == ()


def test_reason_values_are_stable_strings() -> None:
    assert str(R.SECRET_REQUIRED) == "secret-required"
    assert R("incorrect-secret") is R.INCORRECT_SECRET
