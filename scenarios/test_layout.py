"""Layout suite: the client's shared memory as a server finds it, and the reference
client's memory as each server accepts it.

Fact sheet (memif-protocol.md) §4.1 (regions: the client creates all memory), §4.2 (ring
header: cookie 0x03E31F20 at 0, head at 6, tail at one cache line, descriptors at two; the
cache line is on no wire, interop bug §9.5), §4.3 (16-byte descriptors), §4.4 (copy-mode
layout: rings, then buffers; region size), §4.7 and §9.18 (u16 slot arithmetic makes
buffers overlap once rings x ring size > 65536).

The reference server is the instrument of the first case: at CONNECT it maps the
client's regions and reports what it found, before any traffic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from scenarios.api import (
    Lab,
    Pair,
    Role,
    base_kind,
    client_layout_seen_by,
    expect_link_up,
    expect_round_trip,
    known_deviation,
    note,
    start_round_trip,
    verify,
)

CACHE_LINE = 64  # x86-64 builds of DPDK, VPP and libmemif (fact sheet §4.2)
INSPECTING_KINDS = ("reference",)

GEOMETRIES = {
    "1q-1024x2048": {"queues": 1, "log2_ring_size": 10, "buffer_size": 2048},
    "2q-4096x1024": {"queues": 2, "log2_ring_size": 12, "buffer_size": 1024},
    "1q-256x9216": {"queues": 1, "log2_ring_size": 8, "buffer_size": 9216},
    "4q-16384x128": {"queues": 4, "log2_ring_size": 14, "buffer_size": 128},
}
"""Client geometries (the server allows as much); the last has 8 x 16384 = 131072 slots."""

DPDK_U16_SLOTS = (
    "fact sheet §4.7/§9.18: DPDK memif_init_rings computes the buffer slot in a uint16_t, "
    "so with rings x ring size > 65536 buffers of different rings overlap"
)


def _server_limits(geometry: dict[str, int]) -> dict[str, int]:
    return {"queues": geometry["queues"], "log2_ring_size": geometry["log2_ring_size"]}


@known_deviation("testpmd", Role.CLIENT, DPDK_U16_SLOTS)
@pytest.mark.parametrize("geometry", list(GEOMETRIES), ids=list(GEOMETRIES))
def test_client_layout_checked_by_server(
    lab: Lab, start_pair: Callable[..., Pair], geometry: str
) -> None:
    """The server maps the client's regions and finds the layout the fact sheet describes.

    Steps:
        1. Start a reference server that allows the geometry's queues and ring size.
        2. Start the client (the peer under test) with the geometry: queue pairs, ring
           size, buffer size (1 x 1024 x 2048 up to 4 x 16384 x 128).
        3. Read the server's report of the client's memory, taken at CONNECT.
    Verify:
        - Every ring carries the cookie 0x03E31F20 (§4.2).
        - Rings are spaced for a 64-byte cache line: tail at 64, descriptors at 128 (§4.2).
        - Every descriptor points to a non-empty buffer inside an announced region, NEXT
          clear; every C2S slot offers the client's buffer size (§4.3, §4.4).
        - No buffer overlaps another buffer or a ring (§4.7).
        - The link comes up.
    """
    if base_kind(lab.server_kind) not in INSPECTING_KINDS:
        pytest.skip(f"{lab.server_kind} does not report its client's layout (the reference does)")
    shape = GEOMETRIES[geometry]
    pair = start_pair(_server_limits(shape), shape)
    report = client_layout_seen_by(pair.server)
    verify(
        report is not None,
        "server saw the client's layout",
        expected="a layout report within 5 s of starting the client",
        observed="none (did the client connect?)" if report is None else "reported",
    )
    assert report is not None
    note(_describe(report))
    verify(
        not report["violations"],
        "client layout follows §4",
        expected="no violation",
        observed="; ".join(report["violations"]) or "none",
    )
    verify(
        report["cache_line"] in (None, CACHE_LINE),
        "ring spacing",
        expected=f"rings spaced for a {CACHE_LINE}-byte cache line",
        observed=f"{report['cache_line']}-byte cache line",
    )
    verify(
        report["buffer_size"] == shape["buffer_size"],
        "buffer capacity offered",
        expected=f"every C2S slot offers {shape['buffer_size']} bytes",
        observed=f"{report['buffer_size']} bytes",
    )
    expect_link_up(pair)


def _describe(report: dict[str, Any]) -> str:
    rings = ", ".join(
        f"{ring['direction']}{ring['index']}@{ring['region']}:{ring['offset']}"
        for ring in report["rings"]
    )
    return (
        f"regions {list(report['region_sizes'])} bytes; rings {rings}; buffers in regions "
        f"{list(report['buffer_regions'])}; cache line {report['cache_line']}; buffer size "
        f"{report['buffer_size']}"
    )


@pytest.mark.parametrize("geometry", list(GEOMETRIES)[:3], ids=list(GEOMETRIES)[:3])
def test_reference_client_layout_accepted(lab: Lab, geometry: str) -> None:
    """A server accepts the reference client's memory and moves frames through it.

    Steps:
        1. Start the server (the peer under test) allowing the geometry's queues and ring
           size, forwarding what it receives back.
        2. Start a reference client with the geometry; it sends 200 numbered frames of 64
           and 1000 bytes (at most 32 in flight).
    Verify:
        - The link comes up (the server mapped the regions and found every cookie).
        - Every frame comes back byte for byte: the server read the client's C2S buffers
          and wrote into the S2C buffers the client posted.
    """
    shape = GEOMETRIES[geometry]
    pair = start_round_trip(
        lab,
        Role.CLIENT,
        sizes=(64, 1000),
        count=200,
        server=_server_limits(shape),
        client=shape,
    )
    expect_round_trip(pair, Role.CLIENT)
