"""Handshake suite: link up, negotiation, reconnect, a second client, socket kinds.

Fact sheet (memif-protocol.md) §3.1-3.3 (sequence, negotiation, INIT checks), §3.7 and §7.3
(after a disconnect the server accepts a new client), §9.17 (a newcomer on a connected id is
refused, the live session is kept), §1.2 (filesystem and abstract sockets).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from scenarios.api import (
    Activity,
    DisconnectReason,
    Pair,
    expect_link_down,
    expect_link_up,
    expect_refused,
    expect_serving,
    files_in_socket_dir,
    listening,
    negotiated,
    note,
    poll,
    verify,
)

# Server limits above what the client asks for, so every server negotiates down to the
# client (DPDK advertises 255 rings and 2^14 slots; memif-ref advertises its own config).
SERVER_LIMITS = {"queues": 2, "log2_ring_size": 11}
CLIENT_ASKS = {"queues": 1, "log2_ring_size": 9, "buffer_size": 1024}


def test_link_up_with_negotiated_parameters(start_pair: Callable[..., Pair]) -> None:
    """A client and a server of the pair's kinds bring the link up and agree on run parameters.

    Steps:
        1. Start the server with 2 queue pairs and 2^11-slot rings.
        2. Start the client with 1 queue pair, 2^9-slot rings and 1024-byte buffers.
        3. Wait for both links.
    Verify:
        - Both peers report the link up.
        - Every peer that reports its run parameters shows 1 C2S ring, 1 S2C ring, 512
          slots per ring (the minimum of both sides, fact sheet §3.2) and 1024-byte buffers
          (the client's own size: buffer size is not negotiated).
    """
    pair = start_pair(SERVER_LIMITS, CLIENT_ASKS)
    expect_link_up(pair)
    expected = "c2s_rings=1 s2c_rings=1 ring_size=512 buffer_size=1024"
    reported = False
    assert pair.client is not None
    peers = (("server", pair.server_kind, pair.server), ("client", pair.client_kind, pair.client))
    for role, kind, peer in peers:
        facts = negotiated(peer)
        if facts is None:
            note(f"{role} ({kind}) does not report its run parameters")
            continue
        reported = True
        seen = (
            f"c2s_rings={facts.c2s_rings} s2c_rings={facts.s2c_rings} "
            f"ring_size={facts.ring_size} buffer_size={facts.buffer_size}"
        )
        verify(seen == expected, f"{role} run parameters", expected=expected, observed=seen)
    if not reported:
        note("neither peer reports run parameters: only the link was checked")


def test_disconnect_and_reconnect(pair: Pair) -> None:
    """After its client leaves, a server keeps listening and takes a new client.

    Steps:
        1. Start server and client; wait for the link.
        2. Quiesce the server (testpmd: stop forwarding; a departure under a polling
           datapath is the robustness suite's close-mid-traffic case), then stop the client.
        3. Wait for the server's link to go down.
        4. Start a new client of the same kind on the same socket.
    Verify:
        - The server's link goes down when the client leaves (the reason it saw is noted).
        - The server is still running and still listening on its socket.
        - The new client's link and the server's link come up again.
    """
    expect_link_up(pair)
    assert pair.client is not None
    pair.server.quiesce()
    pair.client.stop()
    status = expect_link_down(pair.server, what="server")
    note(f"server's disconnect reason after the client left: {status.disconnect_text!r}")
    expect_serving(pair, status, "after its client left")
    expect_link_up(pair.with_client(pair.start_client()))


def test_second_client_on_connected_id_is_refused(start_pair: Callable[..., Pair]) -> None:
    """A second client on an id that already has a client is refused; the first goes on.

    Steps:
        1. Start the server as a sink and the first client as a source; wait for the link.
        2. Start a second client (the pair's client kind) on the same socket and id.
        3. Stop the second client.
    Verify:
        - The second client's link never comes up; a peer reports "already connected"
          (fact sheet §3.3, §9.17: DPDK >= 20.05 keeps the live session).
        - While the second client is refused and after it left, both ends of the first
          session keep their link up and the server keeps receiving the first client's frames.
    """
    pair = start_pair({"activity": Activity.SINK}, {"activity": Activity.SOURCE})
    expect_link_up(pair)
    second = pair.start_client(activity=Activity.IDLE)
    expect_refused(pair.with_client(second), DisconnectReason.ALREADY_CONNECTED)
    _expect_first_session_alive(pair, "while the second client is refused")
    second.stop()
    _expect_first_session_alive(pair, "after the second client left")


def _expect_first_session_alive(pair: Pair, when: str) -> None:
    assert pair.client is not None
    before = pair.server.status().counters.rx_frames
    grew = poll(lambda: pair.server.status().counters.rx_frames > before, timeout=5.0)
    server, client = pair.server.status(), pair.client.status()
    verify(
        server.link_up and client.link_up,
        f"first session up {when}",
        expected="server and first client link up",
        observed=f"server link {server.link_up}, first client link {client.link_up}",
    )
    verify(
        grew,
        f"first session carries frames {when}",
        expected=f"server rx_frames grows past {before} within 5 s",
        observed=f"server rx_frames {server.counters.rx_frames}",
    )


@pytest.mark.parametrize("abstract", [False, True], ids=["filesystem", "abstract"])
def test_socket_kinds(start_pair: Callable[..., Pair], abstract: bool) -> None:
    """Server and client meet on a filesystem socket and on an abstract socket.

    Steps:
        1. Start the server on a socket file in a private directory (filesystem), or on an
           abstract socket named after that same path (DPDK `socket-abstract=yes`,
           memif-ref `--abstract`, VPP `abstract:`).
        2. Start the client on the same address; wait for the link.
    Verify:
        - The server listens at the requested address (a socket file, or `@name` in
          /proc/net/unix).
        - An abstract server creates no file in the socket directory (not even at the
          path its name spells).
        - Both links come up.
    """
    pair = start_pair(abstract=abstract)
    kind = "abstract name @" if abstract else "socket file "
    verify(
        listening(pair),
        "server listens at the address",
        expected=f"listening on {kind}{pair.socket_path}",
        observed="listening" if listening(pair) else "no listener at that address",
    )
    if abstract:
        files = files_in_socket_dir(pair)
        verify(not files, "no socket file", expected="empty socket directory", observed=files)
    expect_link_up(pair)
