"""Server and client endpoints over real SEQPACKET sockets, in one process."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reference_impl import protocol, wire
from reference_impl.endpoint import ClientEndpoint, EndpointError, ServerEndpoint
from reference_impl.protocol import InterfaceConfig
from reference_impl.ring import PacketBatch

TIMEOUT = 5.0


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="memif-ep-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def pump_until(server: ServerEndpoint, client: ClientEndpoint, done: object) -> bool:
    """Service both ends until `done()` or TIMEOUT."""
    assert callable(done)

    def step() -> bool:
        server.service(0)
        client.service(0)
        return bool(done())

    return server.wait_until(step, TIMEOUT)


def connect_pair(
    path: str,
    server_config: InterfaceConfig | None = None,
    client_config: InterfaceConfig | None = None,
    **options: bool,
) -> tuple[ServerEndpoint, ClientEndpoint]:
    server = ServerEndpoint(path, [server_config or InterfaceConfig()], **options)
    client = ClientEndpoint(path, client_config or InterfaceConfig(), **options)
    client.connect()
    return server, client


def test_handshake_then_traffic_both_ways(sock_dir: Path) -> None:
    server, client = connect_pair(str(sock_dir / "m.sock"))
    try:
        assert pump_until(server, client, lambda: client.connected and server.link(0))
        frame = bytes(range(100))
        assert client.link is not None
        assert client.link.transmit(PacketBatch.from_frames([frame])) == 1
        server_link = server.link(0)
        assert server_link is not None
        assert server_link.receive().frames() == [frame]
        assert server_link.transmit(PacketBatch.from_frames([frame[::-1]])) == 1
        assert client.link.receive().frames() == [frame[::-1]]
        assert client.session is not None
        assert client.session.protocol.peer_name == "memif-ref"
    finally:
        client.close()
        server.close()


def test_abstract_socket_leaves_no_file(sock_dir: Path) -> None:
    name = f"memif-ref-test-{uuid.uuid4().hex}"
    server, client = connect_pair(name, abstract=True)
    try:
        assert pump_until(server, client, lambda: client.connected)
        assert not Path(name).exists()
    finally:
        client.close()
        server.close()


@pytest.mark.parametrize("log2", [1, 5, 10, 14])
def test_ring_sizes(sock_dir: Path, log2: int) -> None:
    config = InterfaceConfig(log2_ring_size=log2, buffer_size=128)
    server, client = connect_pair(str(sock_dir / "m.sock"), config, config)
    try:
        assert pump_until(server, client, lambda: client.connected and server.link(0))
        link = client.link
        assert link is not None
        assert link.tx[0].view.size == 1 << log2
        frames = [bytes([i % 256]) * (64 + i % 200) for i in range(3 * (1 << log2))]
        sent: list[bytes] = []
        received: list[bytes] = []
        server_link = server.link(0)
        assert server_link is not None
        while len(received) < len(frames):  # several laps of the ring
            went = link.transmit(PacketBatch.from_frames(frames[len(sent) :]))
            sent.extend(frames[len(sent) : len(sent) + went])
            received.extend(server_link.receive().frames())
        assert received == frames
    finally:
        client.close()
        server.close()


def test_asymmetric_queue_counts_are_negotiated_down(sock_dir: Path) -> None:
    server_config = InterfaceConfig(c2s_rings=3, s2c_rings=1)
    client_config = InterfaceConfig(c2s_rings=4, s2c_rings=2)
    server, client = connect_pair(str(sock_dir / "m.sock"), server_config, client_config)
    try:
        assert pump_until(server, client, lambda: client.connected and server.link(0))
        assert client.link is not None
        server_link = server.link(0)
        assert server_link is not None
        assert (len(client.link.tx), len(client.link.rx)) == (3, 1)
        assert (len(server_link.rx), len(server_link.tx)) == (3, 1)
        for queue in range(3):
            client.link.transmit(PacketBatch.from_frames([bytes([queue]) * 60]), queue)
        assert [server_link.receive(q).frames() for q in range(3)] == [
            [bytes([q]) * 60] for q in range(3)
        ]
    finally:
        client.close()
        server.close()


def test_second_client_refused_while_first_keeps_working(sock_dir: Path) -> None:
    path = str(sock_dir / "m.sock")
    server, first = connect_pair(path)
    second = ClientEndpoint(path, InterfaceConfig())
    try:
        assert pump_until(server, first, lambda: first.connected)
        second.connect()
        assert pump_until(server, second, lambda: second.last_disconnect is not None)
        assert second.last_disconnect == protocol.Disconnected(
            protocol.Reason.ALREADY_CONNECTED, by_peer=True
        )
        assert first.connected and first.link is not None
        assert first.link.transmit(PacketBatch.from_frames([b"x" * 60])) == 1
        server_link = server.link(0)
        assert server_link is not None
        assert server_link.receive().frames() == [b"x" * 60]
    finally:
        second.close()
        first.close()
        server.close()


def test_server_keeps_listening_and_client_reconnects(sock_dir: Path) -> None:
    server, client = connect_pair(str(sock_dir / "m.sock"))
    try:
        for _ in range(3):
            assert pump_until(server, client, lambda: client.connected and server.link(0))
            client.disconnect_all()
            assert pump_until(server, client, lambda: server.link(0) is None)
            assert server.last_disconnect is not None
            assert server.last_disconnect.by_peer
            assert not client.connected
            client.connect()
    finally:
        client.close()
        server.close()


def test_refused_client_sees_the_reason_and_releases_memory(sock_dir: Path) -> None:
    before = open_fds()
    server, client = connect_pair(
        str(sock_dir / "m.sock"), InterfaceConfig(secret="right"), InterfaceConfig(secret="nope")
    )
    try:
        assert pump_until(server, client, lambda: client.last_disconnect is not None)
        assert client.last_disconnect == protocol.Disconnected("Incorrect secret", by_peer=True)
        assert client.link is None
    finally:
        client.close()
        server.close()
    assert open_fds() == before


def test_no_fd_or_socket_file_left_after_a_session(sock_dir: Path) -> None:
    path = sock_dir / "m.sock"
    before = open_fds()
    server, client = connect_pair(str(path))
    assert pump_until(server, client, lambda: client.connected and server.link(0))
    client.close()
    server.close()
    assert open_fds() == before
    assert not path.exists()


def test_stale_socket_file_is_replaced_but_a_live_one_is_not(sock_dir: Path) -> None:
    path = sock_dir / "m.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    server = ServerEndpoint(str(path), [InterfaceConfig()])
    try:
        with pytest.raises(EndpointError, match="another server is listening"):
            ServerEndpoint(str(path), [InterfaceConfig()])
    finally:
        server.close()
    path.write_text("not a socket")
    with pytest.raises(EndpointError, match="not a socket"):
        ServerEndpoint(str(path), [InterfaceConfig()])


def test_client_without_server_gets_a_clear_error(sock_dir: Path) -> None:
    client = ClientEndpoint(str(sock_dir / "absent.sock"), InterfaceConfig())
    with pytest.raises(EndpointError, match="cannot connect"):
        client.connect()
    client.close()


def test_a_peer_that_closes_with_our_hello_unread_still_gets_its_reason_heard(
    sock_dir: Path,
) -> None:
    """Closing with unread data makes the kernel report ECONNRESET once, ahead of what the
    peer sent before: the DISCONNECT reason must not be lost to it."""
    path = str(sock_dir / "m.sock")
    server = ServerEndpoint(path, [InterfaceConfig()])
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        raw.connect(path)
        assert server.wait_until(lambda: bool(server.sessions), TIMEOUT)  # HELLO sent
        raw.send(wire.Disconnect(reason="bye").pack())
        raw.close()  # HELLO never read
        assert server.wait_until(lambda: not server.sessions, TIMEOUT)
        assert server.last_disconnect == protocol.Disconnected("bye", by_peer=True)
    finally:
        raw.close()
        server.close()


def test_garbage_from_a_raw_client_is_refused_and_server_survives(sock_dir: Path) -> None:
    path = str(sock_dir / "m.sock")
    server = ServerEndpoint(path, [InterfaceConfig()])
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        raw.connect(path)
        server.service(0.1)
        hello = wire.unpack(raw.recv(256))
        assert isinstance(hello, wire.Hello)
        raw.send(b"\x03\x00" + b"\xff" * 20)  # short INIT
        server.service(0.1)
        reply = wire.unpack(raw.recv(256))
        assert reply == wire.Disconnect(reason=protocol.Reason.INVALID_MESSAGE_SIZE)
        assert raw.recv(256) == b""  # and the server closed it
        assert server.sessions == []
        client = ClientEndpoint(path, InterfaceConfig())
        client.connect()
        assert pump_until(server, client, lambda: client.connected)
        client.close()
    finally:
        raw.close()
        server.close()


def test_bad_socket_paths_are_refused() -> None:
    with pytest.raises(EndpointError, match="empty"):
        ServerEndpoint("", [InterfaceConfig()])
    with pytest.raises(EndpointError, match="longer than"):
        ServerEndpoint("/tmp/" + "x" * 120, [InterfaceConfig()])
