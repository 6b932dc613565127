"""The control-channel tap relays a real handshake (fds included) and records it decoded."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.traffic.control_tap import ControlTap, decode
from reference_impl import wire
from reference_impl.endpoint import ClientEndpoint, ServerEndpoint
from reference_impl.protocol import InterfaceConfig
from reference_impl.ring import PacketBatch


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="memif-tap-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_handshake_and_traffic_through_the_tap_with_a_decoded_trace(sock_dir: Path) -> None:
    server = ServerEndpoint(str(sock_dir / "server.sock"), [InterfaceConfig(secret="s")])
    tap = ControlTap(sock_dir / "front.sock", sock_dir / "server.sock").start()
    client = ClientEndpoint(str(sock_dir / "front.sock"), InterfaceConfig(secret="s"))
    try:
        client.connect()

        def up() -> bool:
            server.service(0)
            client.service(0)
            return client.connected and server.link(0) is not None

        assert server.wait_until(up, 5.0)
        assert client.link is not None
        assert client.link.transmit(PacketBatch.from_frames([b"z" * 80])) == 1
        server_link = server.link(0)
        assert server_link is not None
        assert server_link.receive().frames() == [b"z" * 80]  # memory shared via relayed fds
    finally:
        client.close()
        server.wait_until(lambda: server.link(0) is None, 5.0)
        trace = tap.stop()
        server.close()
    kinds = [(entry["direction"], entry["type"]) for entry in trace]
    assert kinds[:9] == [
        ("s2c", "HELLO"),
        ("c2s", "INIT"),
        ("s2c", "ACK"),
        ("c2s", "ADD_REGION"),
        ("s2c", "ACK"),
        ("c2s", "ADD_RING"),
        ("s2c", "ACK"),
        ("c2s", "ADD_RING"),
        ("s2c", "ACK"),
    ]
    assert kinds[9:11] == [("c2s", "CONNECT"), ("s2c", "CONNECTED")]
    assert ("c2s", "DISCONNECT") in kinds
    init = trace[1]
    assert init["fields"]["secret"] == "s"
    assert [entry["fds"] for entry in trace if entry["type"] in ("ADD_REGION", "ADD_RING")] == [
        1,
        1,
        1,
    ]
    assert not (sock_dir / "front.sock").exists()


def test_decode_names_malformed_datagrams() -> None:
    kind, fields = decode(b"\x03\x00short")
    assert kind == "MALFORMED"
    assert "expected 128" in fields["error"]
    kind, fields = decode(wire.Disconnect(reason="bye").pack())
    assert (kind, fields["reason"]) == ("DISCONNECT", "bye")


def test_tap_records_a_failed_connection_to_an_absent_server(sock_dir: Path) -> None:
    tap = ControlTap(sock_dir / "front.sock", sock_dir / "absent.sock").start()
    client = ClientEndpoint(str(sock_dir / "front.sock"), InterfaceConfig())
    try:
        client.connect()
        assert client.wait_until(lambda: client.session is None, 5.0)  # closed by the tap
    finally:
        client.close()
        trace = tap.stop()
    assert trace[0]["type"] == "CONNECT_FAILED"


def test_abstract_names_are_relayed_without_a_file(sock_dir: Path) -> None:
    back, front = sock_dir / "server.sock", sock_dir / "front.sock"
    server = ServerEndpoint(str(back), [InterfaceConfig()], abstract=True)
    tap = ControlTap(front, back, abstract=True).start()
    client = ClientEndpoint(str(front), InterfaceConfig(), abstract=True)
    try:
        assert list(sock_dir.iterdir()) == []
        client.connect()

        def up() -> bool:
            server.service(0)
            client.service(0)
            return client.connected and server.link(0) is not None

        assert server.wait_until(up, 5.0)
    finally:
        client.close()
        trace = tap.stop()
        server.close()
    kinds = [(entry["direction"], entry["type"]) for entry in trace]
    assert kinds[:2] == [("s2c", "HELLO"), ("c2s", "INIT")]
    assert ("s2c", "CONNECTED") in kinds
    assert tap.error is None


def test_a_server_that_is_not_there_is_recorded(sock_dir: Path) -> None:
    tap = ControlTap(sock_dir / "front.sock", sock_dir / "absent.sock").start()
    client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        client.connect(str(sock_dir / "front.sock"))
        client.settimeout(5.0)
        assert client.recv(128) == b""  # the tap closes the client it cannot relay
    finally:
        client.close()
        trace = tap.stop()
    assert [entry["type"] for entry in trace] == ["CONNECT_FAILED"]
    assert tap.error is None
