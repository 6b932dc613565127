"""Chained suite: frames longer than one buffer, carried as NEXT-linked descriptors.

Fact sheet (memif-protocol.md) §5.5 (every fragment but the last has NEXT; producers
assign flags on every slot and publish only at packet boundaries), §5.3-§5.4 (who fills
which ring), §9.13 (the long history of chain bugs: truncation with 3+ segments, stale
NEXT after a ring wrap, chains that exactly fill the ring, jumbo frames).

Every case is a round trip: one peer (a reference, the checker) sends numbered frames,
the other sends each one back; the checker compares every byte after the MAC addresses.
The checker plays each role in turn, so each peer under test produces and consumes
chains on both ring types.
"""

from __future__ import annotations

import pytest

from scenarios.api import Lab, Role, expect_round_trip, known_deviation, start_round_trip

DPDK_STALE_NEXT = (
    "fact sheet §5.5/§9.13: DPDK copy-mode TX (eth_memif_tx) OR-s NEXT into the old flags "
    "and never clears the first descriptor of a packet, so after a ring wrap a slot keeps "
    "NEXT from an earlier lap (fixed by f7a52200d4 in DPDK 26.03); seen as a client, whose "
    "C2S descriptors the server never rewrites"
)

CHECKER = pytest.mark.parametrize("checker", [Role.CLIENT, Role.SERVER], ids=lambda r: r.value)


@CHECKER
def test_chains_of_2_3_and_5_descriptors(lab: Lab, checker: Role) -> None:
    """Frames of 1, 2, 3 and 5 descriptors cross both rings intact.

    Steps:
        1. Both sides use 2048-byte buffers and 1024-slot rings.
        2. The checker sends 200 numbered frames of 64, 3000, 5000 and 9000 bytes in turn
           (1, 2, 3 and 5 descriptors); the other peer sends each back.
    Verify:
        - Every frame comes back with its length and every byte (MACs aside).
        - No reference peer saw an index published inside a chain.
    """
    pair = start_round_trip(lab, checker, sizes=(64, 3000, 5000, 9000), count=200)
    expect_round_trip(pair, checker)


@CHECKER
def test_jumbo_frames_at_buffer_2048(lab: Lab, checker: Role) -> None:
    """9000-byte frames over 2048-byte buffers (5 descriptors each) cross intact.

    Steps:
        1. Both sides use 2048-byte buffers.
        2. The checker sends 200 numbered 9000-byte frames; the other peer sends each back.
    Verify:
        - Every frame comes back whole, byte for byte (MACs aside).
    """
    pair = start_round_trip(lab, checker, sizes=(9000,), count=200)
    expect_round_trip(pair, checker)


@known_deviation("testpmd", Role.CLIENT, DPDK_STALE_NEXT)
@CHECKER
def test_chains_across_ring_wrap(lab: Lab, checker: Role) -> None:
    """Chains that straddle the end of the ring, lap after lap, with single frames between.

    Steps:
        1. Both sides use 32-slot rings and 2048-byte buffers.
        2. The checker sends 400 numbered frames of 64, 3000, 64, 5000 and 9000 bytes in
           turn, at most 4 in flight (20 slots: no forwarder ever lacks room): the ring
           wraps about 50 times and a slot holds a middle fragment on one lap and a single
           frame on another.
    Verify:
        - Every frame comes back byte for byte: no fragment of another frame, no frame
          merged with the next (a stale NEXT flag from an earlier lap, §5.5, DPDK f7a52200d4).
        - No reference peer saw an index published inside a chain.
    """
    ring = {"log2_ring_size": 5}
    pair = start_round_trip(
        lab,
        checker,
        sizes=(64, 3000, 64, 5000, 9000),
        count=400,
        window=4,
        server=ring,
        client=ring,
    )
    expect_round_trip(pair, checker)


@CHECKER
def test_chain_exactly_fills_free_space(lab: Lab, checker: Role) -> None:
    """A chain that takes every free slot of the ring (VPP 76d102d1ad2 class of bug).

    Steps:
        1. Both sides use 16-slot rings and 256-byte buffers.
        2. The checker sends 50 numbered 4096-byte frames, one at a time: each is a chain
           of exactly 16 descriptors into an empty ring.
    Verify:
        - Every frame comes back byte for byte.
        - No reference peer saw an index published inside a chain.
    """
    small = {"log2_ring_size": 4, "buffer_size": 256}
    pair = start_round_trip(
        lab, checker, sizes=(4096,), count=50, window=1, server=small, client=small
    )
    expect_round_trip(pair, checker)
