"""Peer adapters through the one Peer interface: reference, testpmd, external, real processes."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.peers.base import Activity, MemifSpec, Peer, PeerError, PeerStatus, Role
from harness.peers.external import ExternalCommand, ExternalPeer, TemplateError
from harness.peers.reasons import DisconnectReason
from harness.peers.reference import ReferencePeer
from harness.peers.testpmd_peer import TestpmdPeer
from harness.topology.labels import RunLabel

pytestmark = [pytest.mark.integration]

MEMIF_REF_TEMPLATE = (
    f"{sys.executable} -m reference_impl.cli {{role}} --socket {{socket}} --id {{id}} "
    "--rsize {rsize} --bsize {bsize} --timeout 60 --once responder"
)


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[list[Peer]]:
    """Peers to stop at teardown whatever happened."""
    started: list[Peer] = []
    yield started
    for peer in started:
        peer.quiesce()
    for peer in started:
        peer.stop()
        assert not peer.crashed, peer.logs()[-2000:]


def spec(role: Role, sock: Path, activity: Activity, **options: object) -> MemifSpec:
    return MemifSpec(role=role, socket_path=str(sock), activity=activity, **options)  # type: ignore[arg-type]


def poll_status(
    peer: Peer, done: Callable[[PeerStatus], bool], timeout: float = 10.0
) -> PeerStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = peer.status()
        if done(status) or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


@pytest.mark.testpmd
@pytest.mark.parametrize(
    ("server_kind", "client_kind"),
    [("reference", "testpmd"), ("testpmd", "reference"), ("testpmd", "testpmd")],
)
def test_pairs_connect_and_pass_traffic(
    testpmd_binary: str,
    socket_dir: Path,
    tmp_path: Path,
    peers: list[Peer],
    server_kind: str,
    client_kind: str,
    run_label: RunLabel,
) -> None:
    """Steps: start the server peer as a sink, the client peer as a source, local processes
    pinned to different CPUs. Verify: both links up, the server counts frames."""
    sock = socket_dir / "m.sock"

    def make(kind: str, role: Role, activity: Activity, cpu: int) -> Peer:
        the_spec = spec(role, sock, activity)
        if kind == "reference":
            return ReferencePeer(the_spec, tmp_path, cpu=cpu)
        prefix = run_label.dpdk_prefix(f"{role.value}{cpu}")
        return TestpmdPeer(the_spec, tmp_path, cpu=cpu, binary=testpmd_binary, file_prefix=prefix)

    server = make(server_kind, Role.SERVER, Activity.SINK, 0)
    peers.append(server)
    server.start()
    client = make(client_kind, Role.CLIENT, Activity.SOURCE, 1)
    peers.append(client)
    client.start()
    assert client.wait_for_link(15.0), client.logs()[-2000:]
    assert server.wait_for_link(15.0), server.logs()[-2000:]
    status = poll_status(server, lambda s: s.counters.rx_frames > 1000)
    assert status.link_up
    assert status.counters.rx_frames > 1000
    # testpmd reads its packet and byte counters one after the other while forwarding,
    # so they may be a burst apart; both must still describe whole 64-byte frames.
    assert status.counters.rx_bytes % 64 == 0
    assert abs(status.counters.rx_bytes // 64 - status.counters.rx_frames) <= 64


def test_external_adapter_runs_memif_ref_through_a_template(
    socket_dir: Path, tmp_path: Path, peers: list[Peer]
) -> None:
    """Self-test of the external adapter: memif-ref as the 'user program', both roles."""
    sock = socket_dir / "m.sock"
    server = ExternalPeer(
        spec(Role.SERVER, sock, Activity.ECHO),
        tmp_path,
        ExternalCommand(
            MEMIF_REF_TEMPLATE, ready="listening on", link_up="link up", name="memif-ref-ext"
        ),
    )
    peers.append(server)
    server.start()
    deadline = time.monotonic() + 10
    while not sock.exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    client = ReferencePeer(spec(Role.CLIENT, sock, Activity.ECHO), tmp_path)
    peers.append(client)
    client.start()
    assert client.wait_for_link(10.0)
    client.stop()
    server_exit = server.process.wait(10.0) if server.process else None
    assert server_exit is None or server_exit == 0
    assert "Device closed" in server.logs() or server.status().running


def test_external_template_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="unknown placeholder"):
        ExternalCommand("prog --sock {sockett}")
    with pytest.raises(TemplateError, match="ready regex"):
        ExternalCommand("prog {socket}", ready="(")
    with pytest.raises(TemplateError, match="counters regex needs a group"):
        ExternalCommand("prog {socket}", counters=r"rx=(\d+)")
    argv = ExternalCommand("prog --secret {secret} --role {vpp_role}").argv(
        MemifSpec(role=Role.SERVER, socket_path="/s", secret="a b"), tmp_path
    )
    assert argv == ["prog", "--secret", "a b", "--role", "master"]


def test_peer_dying_during_start_up_is_an_error_with_its_log(tmp_path: Path) -> None:
    command = ExternalCommand(
        "sh -c 'echo starting; echo fatal: no hugepages >&2; exit 7' {socket}",
        ready="listening",
        name="dies",
    )
    peer = ExternalPeer(spec(Role.SERVER, tmp_path / "m.sock", Activity.IDLE), tmp_path, command)
    started = time.monotonic()
    with pytest.raises(PeerError) as raised:
        peer.start()
    assert time.monotonic() - started < 10
    assert "fatal: no hugepages" in raised.value.log_tail
    assert "exited (7)" in raised.value.log_tail
    peer.stop()


def test_external_counters_and_disconnect_are_parsed(tmp_path: Path) -> None:
    script = (
        "sh -c 'echo ready; echo link up; echo rx_frames=10 rx_bytes=640; "
        "echo rx_frames=20 rx_bytes=1280; "
        'echo "disconnected: Incorrect secret"; sleep 30\' {socket}'
    )
    command = ExternalCommand(
        script,
        ready="ready",
        link_up="link up",
        counters=r"rx_frames=(?P<rx_frames>\d+) rx_bytes=(?P<rx_bytes>\d+)",
    )
    peer = ExternalPeer(spec(Role.CLIENT, tmp_path / "m.sock", Activity.IDLE), tmp_path, command)
    try:
        peer.start()
        status = poll_status(peer, lambda s: s.disconnect is not None)
        assert status.counters.rx_frames == 20
        assert status.counters.rx_bytes == 1280
        assert status.disconnect is DisconnectReason.INCORRECT_SECRET
        assert status.link_up is False
    finally:
        peer.stop()
    assert peer.process is not None and peer.process.returncode is not None
    assert not peer.crashed
