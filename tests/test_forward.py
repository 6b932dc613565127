"""memif-ref `forward --iface` (reference_impl.forward): numbered frames, chained ones among
them, cross memif -> bridge -> veth -> echo -> veth -> bridge -> memif and come back byte for
byte, with the TPACKET ring port and with the per-frame socket baseline (root needed)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.topology import netns as tn
from harness.topology.labels import RunLabel
from reference_impl import forward
from reference_impl.ring import PacketBatch
from reference_impl.tpacket import TpacketPort
from tests.test_cli import MEMIF_REF, finish, start, wait_for

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CAP_NET_ADMIN)")


def test_rest_of_a_batch_keeps_order_and_segments() -> None:
    batch = PacketBatch.from_frames([b"a" * 60, b"b" * 61, b"c" * 62])
    rest = forward._rest(batch, 1)
    assert rest is not None and rest.frames() == [b"b" * 61, b"c" * 62]
    assert forward._rest(batch, 3) is None


def test_forward_iface_refuses_ip_mode(tmp_path: Path) -> None:
    server = start(
        "server", "--socket", str(tmp_path / "m.sock"), "--timeout", "10", "--once",
        "--mode", "ip", "--json", "forward", "--iface", "lo",
    )  # fmt: skip
    client = start("client", "--socket", str(tmp_path / "m.sock"), "--mode", "ip",
                   "--timeout", "10", "--json", "sink", "--seconds", "1")  # fmt: skip
    code, report, err = finish(server)
    finish(client)
    assert code == 1 and "needs --mode ethernet" in report["error"], err


def _echo(netns: str, ifname: str, stop: threading.Event, seconds: float) -> None:
    """Send back every frame arriving on `ifname`, until `stop` or `seconds` (bounded)."""
    port: TpacketPort = tn.run_in_netns(netns, TpacketPort, ifname)
    deadline = time.monotonic() + seconds
    pending: PacketBatch | None = None
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            if pending is None:
                got = port.receive(256)
                pending = got if len(got) else None
            if pending is None:
                time.sleep(0.0002)
                continue
            pending = forward._rest(pending, port.transmit(pending))
    finally:
        port.close()


@pytest.fixture
def bridged_veth() -> Iterator[tuple[str, str, str, Path]]:
    """(netns, bridge end, echo end, socket dir), all run-labelled, removed afterwards."""
    with tn.Topology(RunLabel.new()) as topo:
        netns = topo.add_netns("fw")
        pair = topo.add_veth("a", "b", netns=netns, peer_netns=netns)
        yield netns, pair.name, pair.peer, topo.add_socket_dir("fw")


@pytest.mark.integration
@needs_root
@pytest.mark.parametrize("io", [io.value for io in forward.PortIO])
def test_check_frames_cross_the_bridge_and_come_back(
    bridged_veth: tuple[str, str, str, Path], io: str
) -> None:
    netns, bridge_end, echo_end, directory = bridged_veth
    sock = directory / "m.sock"
    argv = [
        *MEMIF_REF, "server", "--socket", str(sock), "--timeout", "30", "--once", "--json",
        "forward", "--iface", bridge_end, "--iface-io", io,
    ]  # fmt: skip
    server = tn.popen_in_netns(
        netns, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    stop = threading.Event()
    echo = threading.Thread(target=_echo, args=(netns, echo_end, stop, 30.0), daemon=True)
    echo.start()
    try:
        wait_for(sock)
        client_argv = [
            "client", "--socket", str(sock), "--bsize", "1024", "--timeout", "30", "--json",
            "check", "--no-hold", "--count", "3000", "--sizes", "60,1000,1514,64",
            "--window", "128",
        ]  # fmt: skip
        code, report, err = finish(start(*client_argv), timeout=40)
        assert code == 0, (report, err)
        assert report["result"]["matched"] == 3000
        assert report["counters"]["tx_chained"] >= 750  # the 1514-byte frames: 2 buffers
        server_code, server_report, server_err = finish(server, timeout=40)
    finally:
        stop.set()
        echo.join(10)
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server_code == 0, server_err
    result = server_report["result"]
    assert result["iface"] == bridge_end and result["stopped_by"] == "link-down"
    assert result["to_iface"] >= 3000 and result["from_iface"] >= 3000
    assert result["iface_counters"]["tx_oversize"] == 0
    assert server_report["counters"]["rx_chained"] >= 750
