"""Negotiation suite: what HELLO limits, what the client picks, what is never negotiated.

Fact sheet (memif-protocol.md) §3.2 (the client takes the minimum of its own wish and the
server's HELLO maxima), §3.4 and §9.6 (a client with more rings than a DPDK server has
queues is refused, "Invalid ring index"; a VPP master accepts it), §9.12 (buffer size is
not negotiated: each side uses the client's buffers as posted), §3.3 and §9.7 (DPDK
accepts only Ethernet mode; VPP requires equal modes).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from scenarios.api import (
    DisconnectReason,
    Lab,
    Pair,
    Role,
    base_kind,
    expect_link_up,
    expect_refused,
    expect_round_trip,
    negotiated,
    note,
    start_round_trip,
    verify,
)

REFUSE_EXTRA_RINGS = {"testpmd": "DPDK", "libmemif": "libmemif"}
"""Servers that advertise more rings in HELLO than they have queues, then refuse the
rings beyond their queues (fact sheet §3.4, §9.6)."""


def test_smallest_ring(start_pair: Callable[..., Pair]) -> None:
    """Rings of 2 slots (log2 size 1, the smallest) work.

    Steps:
        1. Start the server allowing 2^10-slot rings.
        2. Start the client asking for 2-slot rings.
    Verify:
        - Both links come up.
        - Every peer that reports its run parameters shows 2-slot rings.
    """
    pair = start_pair({"log2_ring_size": 10}, {"log2_ring_size": 1})
    expect_link_up(pair)
    _expect_ring_size(pair, 2)


def test_smallest_ring_carries_frames(lab: Lab) -> None:
    """Frames round-trip through 2-slot rings (one frame in flight at a time).

    Steps:
        1. Both sides use 2-slot rings; the client (a reference) sends 100 numbered
           64-byte frames, one at a time; the server sends each one back.
    Verify:
        - Every frame comes back byte for byte.
    """
    tiny = {"log2_ring_size": 1}
    pair = start_round_trip(
        lab, Role.CLIENT, sizes=(64,), count=100, window=1, server=tiny, client=tiny
    )
    expect_round_trip(pair, Role.CLIENT)


def _expect_ring_size(pair: Pair, slots: int) -> None:
    assert pair.client is not None
    for role, peer in (("server", pair.server), ("client", pair.client)):
        facts = negotiated(peer)
        if facts is None:
            note(f"the {role} does not report its run parameters")
            continue
        verify(
            facts.ring_size == slots,
            f"{role} ring size",
            expected=f"{slots} slots",
            observed=f"{facts.ring_size} slots",
        )


def test_client_with_more_queues_than_server(lab: Lab, start_pair: Callable[..., Pair]) -> None:
    """A client asks for 2 queue pairs from a server configured with 1.

    Steps:
        1. Start the server with 1 queue pair.
        2. Start the client with 2 queue pairs.
    Verify:
        - A DPDK (or libmemif) server refuses the client, "invalid ring index": it
          advertised up to 255 rings in HELLO but has 1 queue (fact sheet §3.4, §9.6).
        - Any other server brings the link up; one that reports its run parameters shows
          1 ring each way when it advertised 1 (the reference), 2 when it takes what the
          client asks (VPP).
    """
    server_kind = base_kind(lab.server_kind)
    pair = start_pair({"queues": 1}, {"queues": 2})
    if server_kind in REFUSE_EXTRA_RINGS:
        expect_refused(pair, DisconnectReason.INVALID_RING_INDEX)
        return
    expect_link_up(pair)
    rings = 1 if server_kind == "reference" else 2
    for role, peer in (("server", pair.server), ("client", pair.client)):
        facts = negotiated(peer) if peer is not None else None
        if facts is None:
            note(f"the {role} does not report its run parameters")
            continue
        seen = f"c2s_rings={facts.c2s_rings} s2c_rings={facts.s2c_rings}"
        expected = f"c2s_rings={rings} s2c_rings={rings}"
        verify(seen == expected, f"{role} ring counts", expected=expected, observed=seen)


def test_buffer_size_not_negotiated(lab: Lab) -> None:
    """Client and server with different buffer sizes: the client's buffers rule.

    Steps:
        1. Start the server with 4096-byte buffers (its own setting, never sent), forwarding.
        2. Start a reference client with 1024-byte buffers; it sends 200 numbered frames
           of 64, 1000, 1500 and 4000 bytes (1, 1, 2 and 4 of its buffers).
    Verify:
        - Both links come up; the client reports 1024-byte buffers.
        - Every frame comes back byte for byte: the server wrote no more into a posted
          buffer than the client offered (DPDK >= 23.03 fast paths assume their own bsize,
          fact sheet §5.8, §9.12).
    """
    pair = start_round_trip(
        lab,
        Role.CLIENT,
        sizes=(64, 1000, 1500, 4000),
        count=200,
        server={"buffer_size": 4096},
        client={"buffer_size": 1024},
    )
    expect_round_trip(pair, Role.CLIENT)
    assert pair.client is not None
    facts = negotiated(pair.client)
    if facts is not None:
        verify(
            facts.buffer_size == 1024,
            "client buffer size",
            expected="1024 bytes (its own)",
            observed=f"{facts.buffer_size} bytes",
        )


def test_client_buffers_larger_than_server_setting(lab: Lab) -> None:
    """The client's buffers are larger than the server's own setting.

    Steps:
        1. Start the server with 1024-byte buffers, forwarding.
        2. Start a reference client with 4096-byte buffers; it sends 200 numbered frames
           of 64, 3000 and 4000 bytes (each in one of its buffers).
    Verify:
        - Every frame comes back byte for byte (a server must read `desc.length` bytes,
          not its own buffer size).
    """
    pair = start_round_trip(
        lab,
        Role.CLIENT,
        sizes=(64, 3000, 4000),
        count=200,
        server={"buffer_size": 1024},
        client={"buffer_size": 4096},
    )
    expect_round_trip(pair, Role.CLIENT)


def test_ip_mode_client(lab: Lab) -> None:
    """A client in IP mode meets an Ethernet-mode server.

    Steps:
        1. Start the server in Ethernet mode.
        2. Start the client in IP mode (skipped if the client's adapter refuses: the kind
           has no IP mode, e.g. DPDK's memif driver).
    Verify:
        - The client's link never comes up; a peer reports a mode mismatch (DPDK: "Only
          ethernet mode supported"; VPP: "mode mismatch").
    """
    pair = lab.start_pair(client=False)
    attempt = pair.try_start_client(mode="ip")
    if attempt.peer is None:
        pytest.skip(f"{lab.client_kind} cannot be an IP-mode client: {attempt.error}")
    expect_refused(pair.with_client(attempt.peer), DisconnectReason.MODE_MISMATCH)
