"""Interrupt mode (fact sheet §6): MASK_INT owned by the receiver, eventfds read to clear,
the endpoint waking on them, memif-ref --interrupt/--poll, and the idle-CPU check."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_impl import frames
from reference_impl.endpoint import ClientEndpoint, ServerEndpoint, _RxInterrupt
from reference_impl.link import Link
from reference_impl.memory import drain_eventfd
from reference_impl.protocol import InterfaceConfig
from reference_impl.ring import PacketBatch
from reference_impl.wire import RingFlag
from tests.test_link import memif_pair

MEMIF_REF = [sys.executable, "-m", "reference_impl.cli"]
FRAME = b"\x02" * 60


def burst(count: int) -> PacketBatch:
    return PacketBatch.from_frames([FRAME] * count)


# ------------------------------------------------------------------ Link


def test_transmitter_signals_once_per_burst_only_while_the_receiver_is_unmasked() -> None:
    with memif_pair(server_polling=False) as pair:
        client, server = pair.client_link, pair.server_link
        assert client.transmit(burst(3)) == 3
        assert client.transmit(burst(2)) == 2
        assert server.transmit(burst(4)) == 4  # the client polls: it set MASK_INT
        assert client.counters.tx_interrupts == 2
        assert server.counters.tx_interrupts == 0
        assert drain_eventfd(pair.client_link.rx_eventfds[0]) == 0


def test_acknowledge_reads_the_eventfd_to_clear_it_and_counts() -> None:
    with memif_pair(server_polling=False) as pair:
        client, server = pair.client_link, pair.server_link
        client.transmit(burst(1))
        client.transmit(burst(1))
        assert server.acknowledge_interrupt(0) == 2
        assert server.acknowledge_interrupt(0) == 0  # cleared
        assert server.counters.rx_interrupts == 2
        assert len(server.receive()) == 2  # the frames wait on the ring: drain after clearing
        assert server.acknowledge_interrupt(7) == 0  # no such queue


def test_set_polling_writes_the_flag_the_peer_reads() -> None:
    with memif_pair() as pair:
        client, server = pair.client_link, pair.server_link
        assert server.polling and client.tx[0].view.interrupts_masked
        server.set_polling(False)
        assert not server.polling
        assert client.tx[0].view.flags == 0
        client.transmit(burst(1))
        assert drain_eventfd(server.rx_eventfds[0]) == 1
        server.set_polling(True)
        assert client.tx[0].view.flags == int(RingFlag.MASK_INT)
        client.transmit(burst(1))
        assert drain_eventfd(server.rx_eventfds[0]) == 0


# ------------------------------------------------------------------ endpoint


def _receiver(pair: Any, receiver: str) -> tuple[ServerEndpoint | ClientEndpoint, Link, Link]:
    if receiver == "server":
        return pair.server, pair.server_link, pair.client_link
    return pair.client, pair.client_link, pair.server_link


@pytest.mark.parametrize("receiver", ["server", "client"])
def test_an_interrupt_mode_endpoint_sleeps_until_the_peer_signals(receiver: str) -> None:
    """Steps: the receiver's endpoint waits (up to 5 s) on its sockets; another thread
    transmits after 0.2 s. Verify: the wait ends at the signal, the eventfd was read to
    clear it, and the frame is on the ring."""
    polling = {"server_polling": receiver != "server", "client_polling": receiver != "client"}
    with memif_pair(**polling) as pair:
        endpoint, rx_link, tx_link = _receiver(pair, receiver)
        sender = threading.Timer(0.2, lambda: tx_link.transmit(burst(5)))
        sender.start()
        started = time.monotonic()
        try:
            endpoint.service(5.0)
        finally:
            sender.join()
        assert 0.1 < time.monotonic() - started < 2.0
        assert rx_link.counters.rx_interrupts == 1
        assert drain_eventfd(rx_link.rx_eventfds[0]) == 0  # already cleared
        assert len(rx_link.receive()) == 5


def test_a_polling_endpoint_does_not_wait_on_eventfds() -> None:
    with memif_pair(server_polling=True) as pair:
        pair.server_link.set_polling(False)  # the peer signals, but we never listen
        pair.client_link.transmit(burst(1))
        started = time.monotonic()
        pair.server.service(0.3)
        assert time.monotonic() - started >= 0.25
        assert pair.server_link.counters.rx_interrupts == 0
        assert drain_eventfd(pair.server_link.rx_eventfds[0]) == 1


def _interrupt_keys(endpoint: ServerEndpoint | ClientEndpoint) -> list[_RxInterrupt]:
    return [
        k.data for k in endpoint.selector.get_map().values() if isinstance(k.data, _RxInterrupt)
    ]


@pytest.fixture
def socket_path() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="memif-i")
    yield os.path.join(directory, "m.sock")
    shutil.rmtree(directory, ignore_errors=True)


def _until(condition: Callable[[], bool], *endpoints: ServerEndpoint | ClientEndpoint) -> None:
    deadline = time.monotonic() + 5.0
    while not condition():
        assert time.monotonic() < deadline, "the endpoints did not reach the expected state"
        for endpoint in endpoints:
            endpoint.service(0.01)


def test_a_server_watches_each_clients_eventfds_only_while_its_link_is_up(
    socket_path: str,
) -> None:
    """Steps: an interrupt-mode server with 2 RX rings serves two clients in turn.
    Verify: 2 eventfds watched per link, none between clients (fds are reused, so a stale
    registration would break the next client), and the second client's frames wake it."""
    server = ServerEndpoint(socket_path, [InterfaceConfig(c2s_rings=2, s2c_rings=2)], polling=False)
    before = len(os.listdir("/proc/self/fd"))
    try:
        for _ in range(2):
            client = ClientEndpoint(socket_path, InterfaceConfig(c2s_rings=2, s2c_rings=2))
            client.connect()
            _until(lambda c=client: server.link(0) is not None and c.connected, server, client)
            link = server.link(0)
            assert link is not None and not link.polling
            assert sorted(key.queue for key in _interrupt_keys(server)) == [0, 1]
            assert client.link is not None
            client.link.transmit(burst(3), queue=1)
            server.service(2.0)
            assert link.counters.rx_interrupts == 1
            assert len(link.receive(1)) == 3
            client.close()
            _until(lambda: server.link(0) is None, server)
            assert _interrupt_keys(server) == []
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        server.close()


def test_an_fd_that_cannot_be_watched_turns_the_link_to_polling(socket_path: str) -> None:
    """A peer may pass any fd as a ring's eventfd; one epoll refuses (a memfd) must not
    break the server: the link polls instead and tells the peer so with MASK_INT."""

    class FakeLink:
        polling = False

        def __init__(self, fds: list[int]) -> None:
            self.rx_eventfds = fds

        def set_polling(self, polling: bool) -> None:
            self.polling = polling

    server = ServerEndpoint(socket_path, [InterfaceConfig()], polling=False)
    good = os.eventfd(0, os.EFD_NONBLOCK)
    bad = os.memfd_create("not-an-eventfd")
    try:
        fake = FakeLink([good, bad])
        server._watch_interrupts(fake)  # type: ignore[arg-type]
        assert fake.polling is True
        assert _interrupt_keys(server) == []
    finally:
        server.close()
        os.close(good)
        os.close(bad)


# ------------------------------------------------------------------ memif-ref


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*MEMIF_REF, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen[str], timeout: float = 30.0) -> tuple[int, Any, str]:
    out, err = process.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, f"stdout must be exactly one JSON object: {out!r} / {err}"
    return process.returncode, json.loads(lines[0]), err


def wait_for(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


@pytest.fixture
def sock(socket_path: str) -> Path:
    return Path(socket_path)


@pytest.mark.parametrize("sender_mode", ["--interrupt", "--poll"])
def test_interrupt_mode_sink_receives_every_frame(sock: Path, sender_mode: str) -> None:
    """Steps: memif-ref server sink --interrupt; memif-ref client source (either mode), 5000
    frames of 300 bytes with 256-byte buffers (chained). Verify: exactly 5000 frames
    arrive, woken by interrupts; the source signalled (the sink's flag is clear) and saw
    the sink's mode; the sink never signalled.

    (A client sink is covered by the idle test: a memif-ref server source cannot see when
    its client has read the last frames, so it may leave before they are read.)
    """
    common = ["--socket", str(sock), "--timeout", "20", "--json", "--bsize", "256"]
    sink = start("server", *common, "--interrupt", "sink", "--count", "5000")
    wait_for(sock)
    source = start("client", *common, sender_mode, "source", "--count", "5000", "--size", "300")
    code, report, err = finish(sink)
    assert code == 0, err
    assert report["result"]["received"] == 5000
    assert report["result"]["stopped_by"] == "count"
    counters = report["counters"]
    assert counters["rx_frames"] == 5000
    assert counters["rx_bytes"] == 5000 * 300
    assert counters["rx_chained"] == 5000
    assert counters["rx_interrupts"] > 0
    assert counters["tx_interrupts"] == 0
    assert report["rx_mode"] == "interrupt"
    assert report["peer_rx_mode"] == ("interrupt" if sender_mode == "--interrupt" else "poll")
    source_code, source_report, err = finish(source)
    assert source_code == 0, err
    assert source_report["counters"]["tx_frames"] == 5000
    assert source_report["counters"]["tx_interrupts"] > 0
    assert source_report["peer_rx_mode"] == "interrupt"
    assert source_report["rx_mode"] == sender_mode.removeprefix("--")


def test_interrupt_mode_forward_returns_every_checked_frame(sock: Path) -> None:
    """Steps: memif-ref server forward --interrupt; client check --interrupt of 3000
    numbered frames (64 and 1500 bytes, 256-byte buffers). Verify: all come back."""
    common = ["--socket", str(sock), "--timeout", "20", "--json", "--interrupt"]
    server = start("server", *common, "--once", "forward")
    wait_for(sock)
    client = start(
        "client", *common, "--bsize", "256", "check", "--count", "3000", "--sizes", "64,1500",
        "--window", "64", "--no-hold",
    )  # fmt: skip
    code, report, err = finish(client)
    assert code == 0, err
    assert report["result"]["matched"] == 3000
    assert report["counters"]["rx_interrupts"] > 0
    assert report["counters"]["tx_interrupts"] > 0
    server_code, server_report, err = finish(server)
    assert server_code == 0, err
    assert server_report["result"]["forwarded"] >= 3000
    assert server_report["counters"]["rx_interrupts"] > 0


def test_interrupt_mode_responder_answers_ping(sock: Path) -> None:
    common = ["--socket", str(sock), "--timeout", "20", "--json", "--interrupt"]
    server = start("server", *common, "--once", "responder")
    wait_for(sock)
    code, report, err = finish(start("client", *common, "ping", "--count", "20"))
    assert code == 0, err
    assert report["result"]["replies"] == 20
    server_code, server_report, err = finish(server)
    assert server_code == 0, err
    assert server_report["result"]["echo_replies_sent"] == 20
    assert server_report["counters"]["rx_interrupts"] > 0


def test_poll_is_the_default_and_excludes_interrupt(sock: Path) -> None:
    refused = subprocess.run(
        [*MEMIF_REF, "client", "--socket", str(sock), "--interrupt", "--poll", "sink"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 1
    assert "not allowed with argument" in refused.stderr
    server = start("server", "--socket", str(sock), "--timeout", "20", "--json", "--once", "sink")
    wait_for(sock)
    code, report, err = finish(
        start("client", "--socket", str(sock), "--timeout", "20", "--json", "source",
              "--count", "100")
    )  # fmt: skip
    assert code == 0, err
    assert (report["rx_mode"], report["peer_rx_mode"]) == ("poll", "poll")
    assert report["counters"]["tx_interrupts"] == 0
    server_code, server_report, _ = finish(server)
    assert server_code == 0
    assert server_report["rx_mode"] == "poll"
    assert server_report["counters"]["rx_interrupts"] == 0


# ------------------------------------------------------------------ idle CPU

IDLE_SECONDS = 2.0
BURST_FRAMES = 20000


def cpu_seconds(pid: int) -> float:
    """CPU time of a process so far (all its threads): ns-precise from schedstat where the
    kernel has it, else utime+stime in clock ticks."""
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return sum(int((task / "schedstat").read_text().split()[0]) for task in tasks) / 1e9
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status(path: Path) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = json.loads(path.read_text())
        return loaded
    except (OSError, ValueError):
        return {}


def idle_then_burst(sock: Path, receiver: str, mode: str) -> tuple[float, dict[str, Any]]:
    """Run a memif-ref sink (`receiver` role, `mode`) against an in-process peer: hold the
    link idle for IDLE_SECONDS, then send exactly BURST_FRAMES frames.

    Returns:
        The sink's CPU share while idle (1.0 = one CPU) and its JSON report.
    """
    status = sock.with_suffix(".status.json")
    sink_args = (
        receiver, "--socket", str(sock), "--timeout", "30", "--json", "--status", str(status),
        mode, "sink", "--count", str(BURST_FRAMES),
    )  # fmt: skip
    peer: ServerEndpoint | ClientEndpoint
    if receiver == "server":
        sink = start(*sink_args)
        wait_for(sock)
        peer = ClientEndpoint(str(sock), InterfaceConfig())
        peer.connect()
    else:
        peer = ServerEndpoint(str(sock), [InterfaceConfig()])
        sink = start(*sink_args)
    try:
        deadline = time.monotonic() + 10.0
        while not _status(status).get("link_up"):
            assert time.monotonic() < deadline, "the link never came up"
            assert sink.poll() is None, sink.communicate()
            peer.service(0.02)
        link = peer.link if isinstance(peer, ClientEndpoint) else peer.link(0)
        assert link is not None
        settle = time.monotonic() + 0.3  # let the sink reach its idle loop
        while time.monotonic() < settle:
            peer.service(0.05)
        before, started = cpu_seconds(sink.pid), time.monotonic()
        while time.monotonic() - started < IDLE_SECONDS:
            peer.service(0.05)
        share = (cpu_seconds(sink.pid) - before) / (time.monotonic() - started)
        frame = frames.udp_frame(
            128,
            frames.parse_mac("02:fe:00:00:00:03"),
            frames.BROADCAST_MAC,
            frames.benchmark_ip("198.18.0.2"),
            frames.benchmark_ip("198.18.0.1"),
        )
        sent, stop = 0, time.monotonic() + 10.0
        while sent < BURST_FRAMES and time.monotonic() < stop:
            sent += link.transmit(PacketBatch.repeat(frame, min(256, BURST_FRAMES - sent)))
            peer.service(0.0005)
        assert sent == BURST_FRAMES
        code, report, err = finish(sink)
        assert code == 0, err
        assert _status(status).get("rx_mode") == mode.removeprefix("--")
        return share, report
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.communicate()
        peer.close()
        status.unlink(missing_ok=True)


@pytest.mark.parametrize("receiver", ["server", "client"])
def test_an_idle_interrupt_mode_receiver_uses_almost_no_cpu_and_misses_no_frame(
    sock: Path, receiver: str
) -> None:
    """Steps: a memif-ref sink with the link up and no traffic for 2 s, then a burst of
    20000 frames; once in interrupt mode, once polling. Verify: idle, the interrupt-mode
    sink uses under 5% of a CPU and far less than the polling one; both count exactly
    20000 frames."""
    interrupt_share, interrupt_report = idle_then_burst(sock, receiver, "--interrupt")
    poll_share, poll_report = idle_then_burst(sock, receiver, "--poll")
    print(
        f"idle CPU share ({receiver} sink): interrupt {interrupt_share:.4f}, poll {poll_share:.4f}"
    )
    for report in (interrupt_report, poll_report):
        assert report["result"]["received"] == BURST_FRAMES
        assert report["counters"]["rx_frames"] == BURST_FRAMES
        assert report["counters"]["rx_errors"] == 0
    assert interrupt_report["counters"]["rx_interrupts"] > 0
    assert poll_report["counters"]["rx_interrupts"] == 0
    assert interrupt_share < 0.05
    assert poll_share > 5 * max(interrupt_share, 0.002)
