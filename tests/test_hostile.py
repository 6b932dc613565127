"""The hostile client against a reference ServerEndpoint (in a thread) and scripted fake servers;
its command line against a memif-ref server process."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reference_impl import wire
from reference_impl.endpoint import ClientEndpoint, ServerEndpoint
from reference_impl.hostile import (
    DESCRIPTIONS,
    LINK_ATTACKS,
    Answer,
    Attack,
    AttackReport,
    Target,
    run_attack,
)
from reference_impl.protocol import InterfaceConfig

TIMEOUT = 5.0


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="memif-hostile-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class ServedEndpoint:
    """A reference ServerEndpoint serviced by a background thread (which alone touches it)."""

    def __init__(self, path: str, config: InterfaceConfig) -> None:
        self.server = ServerEndpoint(path, [config])
        self.max_rx_errors = 0
        self.rx_frames = 0
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.server.service(0.005)
                for link in self.server.links.values():
                    link.receive(copy=False)
                    self.max_rx_errors = max(self.max_rx_errors, link.counters.rx_errors)
                    self.rx_frames = max(self.rx_frames, link.counters.rx_frames)
        except BaseException as exc:  # the test asserts the server never failed
            self.failure = exc

    def quiet(self) -> bool:
        """No session is left on the server (the attacker's connection is gone)."""
        return not self.server.sessions

    def close(self) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT)
        self.server.close()


@pytest.fixture
def served(sock_dir: Path) -> Iterator[ServedEndpoint]:
    endpoint = ServedEndpoint(str(sock_dir / "s.sock"), InterfaceConfig())
    yield endpoint
    endpoint.close()
    assert endpoint.failure is None, endpoint.failure


def wait_for(done: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def expect_correct_client_links(path: str) -> None:
    client = ClientEndpoint(path, InterfaceConfig())
    try:
        client.connect()
        assert client.wait_until(lambda: client.connected, TIMEOUT)
    finally:
        client.close()


CONTROL_ANSWERS = {
    Attack.MALFORMED: ("Invalid message size", []),
    Attack.TRUNCATED: ("Invalid message size", ["ACK"]),
    Attack.UNKNOWN_TYPE: ("Unknown message type", ["ACK"]),
    Attack.BEFORE_INIT: ("Unexpected message", []),
    Attack.MISSING_REGION_FD: ("Missing region fd", ["ACK"]),
    Attack.MISSING_RING_FD: ("Missing interrupt fd", ["ACK", "ACK"]),
}


def test_every_attack_is_described() -> None:
    assert set(DESCRIPTIONS) == set(Attack)
    assert set(CONTROL_ANSWERS) | LINK_ATTACKS | {Attack.CLOSE_MID_HANDSHAKE} == set(Attack)


@pytest.mark.parametrize("attack", list(CONTROL_ANSWERS), ids=str)
def test_reference_server_refuses_each_bad_message_then_serves(
    served: ServedEndpoint, attack: Attack
) -> None:
    path = served.server.path
    report = run_attack(attack, Target(path), timeout=TIMEOUT)
    reason, acks = CONTROL_ANSWERS[attack]
    assert report.error is None
    assert report.answer == Answer.DISCONNECT
    assert report.disconnect_reason == reason
    assert report.received == [*acks, "DISCONNECT"]
    assert report.server_name == "memif-ref"
    assert report.seconds < TIMEOUT
    assert wait_for(served.quiet)
    expect_correct_client_links(path)


DROPPED_DESCRIPTORS = [
    Attack.BAD_REGION,
    Attack.PAST_REGION,
    Attack.ZERO_LENGTH,
    Attack.OFFSET_OVERFLOW,
    Attack.OVERSIZED,
]


@pytest.mark.parametrize("attack", DROPPED_DESCRIPTORS, ids=str)
def test_reference_server_drops_bogus_descriptors_and_keeps_the_link(
    served: ServedEndpoint, attack: Attack
) -> None:
    path = served.server.path
    calls: list[bool] = []
    report = run_attack(
        attack,
        Target(path),
        timeout=TIMEOUT,
        descriptors=5,
        before_leaving=lambda: calls.append(served.server.link(0) is not None),
    )
    assert report.error is None
    assert calls == [True]  # called once, while the link was still up
    assert report.link_up
    assert report.published == 5
    assert report.consumed == 5  # the server moved its tail past them...
    assert wait_for(lambda: served.max_rx_errors == 5)  # ...dropping each one as an error
    assert served.rx_frames == 0
    assert report.answer == Answer.NONE and report.link_after
    assert wait_for(served.quiet)  # the attacker left with a DISCONNECT
    expect_correct_client_links(path)


RING_ANSWERS = {
    Attack.HEAD_JUMP: "C2S ring 0: head moved 1025 slots from 0, 1024 at most on a ring of 1024",
    Attack.ENDLESS_CHAIN: "a chain fills the whole ring and never ends",
}


@pytest.mark.parametrize("attack", list(RING_ANSWERS), ids=str)
def test_reference_server_disconnects_a_broken_ring_and_serves_the_next_client(
    served: ServedEndpoint, attack: Attack
) -> None:
    path = served.server.path
    report = run_attack(attack, Target(path), timeout=TIMEOUT)
    assert report.error is None and report.link_up
    assert report.answer == Answer.DISCONNECT
    assert report.disconnect_reason == RING_ANSWERS[attack]
    assert report.consumed == 0  # nothing was taken off the broken ring
    assert wait_for(served.quiet)
    expect_correct_client_links(path)


def test_close_mid_handshake_frees_the_interface(served: ServedEndpoint) -> None:
    path = served.server.path
    report = run_attack(Attack.CLOSE_MID_HANDSHAKE, Target(path), timeout=TIMEOUT)
    assert report.error is None
    assert report.answer == Answer.NOT_OBSERVED
    assert report.received == ["ACK", "ACK"]
    assert report.sent[-1] == "close (no DISCONNECT)"
    assert wait_for(served.quiet)
    assert not served.server.directory.is_claimed(0)
    expect_correct_client_links(path)


def test_close_mid_traffic_drops_the_connection_with_frames_in_flight(
    served: ServedEndpoint,
) -> None:
    path = served.server.path
    calls: list[str] = []
    report = run_attack(
        Attack.CLOSE_MID_TRAFFIC,
        Target(path),
        timeout=TIMEOUT,
        traffic_seconds=0.2,
        before_leaving=lambda: calls.append("called"),
    )
    assert not calls  # the abrupt departure is the attack: nothing runs before it
    assert report.error is None
    assert report.answer == Answer.NOT_OBSERVED
    assert report.frames_sent > 0
    assert report.in_flight_at_close is not None
    assert wait_for(lambda: served.quiet() and served.server.last_disconnect is not None)
    assert served.server.last_disconnect is not None
    assert served.server.last_disconnect.reason == "peer closed the connection"
    expect_correct_client_links(path)


def test_the_correct_part_uses_the_servers_id_and_secret(sock_dir: Path) -> None:
    path = str(sock_dir / "s.sock")
    endpoint = ServedEndpoint(path, InterfaceConfig(id=7, secret="sesame"))
    try:
        refused = run_attack(Attack.MISSING_REGION_FD, Target(path), timeout=TIMEOUT)
        assert refused.error is not None and "ID not found" in refused.error
        no_link = run_attack(Attack.ZERO_LENGTH, Target(path, interface_id=7), timeout=TIMEOUT)
        assert no_link.error is not None and "Secret required" in no_link.error
        done = run_attack(
            Attack.MISSING_REGION_FD, Target(path, interface_id=7, secret="sesame"), timeout=TIMEOUT
        )
        assert done.error is None and done.disconnect_reason == "Missing region fd"
    finally:
        endpoint.close()
    assert endpoint.failure is None


def test_nobody_listening_is_an_error_not_an_answer(sock_dir: Path) -> None:
    for attack in (Attack.MALFORMED, Attack.BAD_REGION):
        report = run_attack(attack, Target(str(sock_dir / "none.sock")), timeout=1.0)
        assert report.error is not None and "cannot connect" in report.error


# ----------------------------------------------------------------- scripted fake servers


class FakeServer:
    """Sends HELLO, then answers every datagram as `mode` says: ack, silent or close."""

    def __init__(self, path: str, mode: str, *, hello: bool = True) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(path)
        self.listener.listen(1)
        self.mode = mode
        self.hello = hello
        self.received: list[int] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            if self.hello:
                connection.send(wire.Hello(name="fake").pack())
            connection.settimeout(TIMEOUT)
            while True:
                try:
                    data, fds, _flags, _addr = socket.recv_fds(connection, 256, 4)
                except (OSError, TimeoutError):
                    return
                for fd in fds:
                    os.close(fd)
                if not data:
                    return
                self.received.append(wire.message_type_of(data))
                if wire.message_type_of(data) == wire.MessageType.INIT or self.mode == "ack":
                    connection.send(wire.Ack().pack())
                elif self.mode == "close":
                    return

    def close(self) -> None:
        self.listener.close()
        self._thread.join(TIMEOUT)


@pytest.mark.parametrize(
    ("mode", "answer", "received"),
    [
        ("ack", Answer.ACCEPTED, ["ACK", "ACK"]),
        ("silent", Answer.NONE, ["ACK"]),
        ("close", Answer.CLOSED, ["ACK", "EOF"]),
    ],
)
def test_answers_other_than_disconnect_are_told_apart(
    sock_dir: Path, mode: str, answer: Answer, received: list[str]
) -> None:
    path = str(sock_dir / "fake.sock")
    fake = FakeServer(path, mode)
    try:
        started = time.monotonic()
        report = run_attack(Attack.MISSING_REGION_FD, Target(path), timeout=TIMEOUT, settle=0.3)
        took = time.monotonic() - started
    finally:
        fake.close()
    assert report.error is None
    assert report.answer == answer
    assert report.received == received
    assert report.disconnect_reason is None
    assert took < 0.3 + 1.0  # the settle time bounds the wait for an answer
    assert fake.received[:2] == [wire.MessageType.INIT, wire.MessageType.ADD_REGION]


def test_a_server_without_hello_ends_the_attack_at_the_timeout(sock_dir: Path) -> None:
    path = str(sock_dir / "mute.sock")
    fake = FakeServer(path, "silent", hello=False)
    try:
        started = time.monotonic()
        report = run_attack(Attack.MALFORMED, Target(path), timeout=0.5)
        took = time.monotonic() - started
    finally:
        fake.close()
    assert report.error is not None and "expected HELLO" in report.error
    assert 0.4 < took < 2.0


# ----------------------------------------------------------------- command line


def memif_ref(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "reference_impl.cli", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def test_memif_ref_attack_prints_one_json_report(sock_dir: Path) -> None:
    path = str(sock_dir / "s.sock")
    status = sock_dir / "status.json"
    server = subprocess.Popen(
        [sys.executable, "-m", "reference_impl.cli", "server", "--socket", path,
         "--timeout", "20", "--status", str(status), "sink"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert wait_for(status.exists, 15.0)
        done = memif_ref("client", "--socket", path, "--json", "attack", "unknown-type")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert set(report) == {*AttackReport("x").as_dict(), "exit_code"}
        assert report["answer"] == "disconnect"
        assert report["disconnect_reason"] == "Unknown message type"
        human = memif_ref("client", "--socket", path, "attack", "zero-length", "--descriptors", "3")
        assert human.returncode == 0, human.stderr
        assert "answer: none" in human.stdout
        assert server.poll() is None  # the reference server survived both
    finally:
        server.terminate()
        server.wait(TIMEOUT)


def test_memif_ref_server_reports_the_ring_error_in_its_json(sock_dir: Path) -> None:
    """The ring_errors counter and the reason reach memif-ref's --json report."""
    path = str(sock_dir / "s.sock")
    server = subprocess.Popen(
        [sys.executable, "-m", "reference_impl.cli", "server", "--socket", path,
         "--timeout", "20", "--once", "--json", "sink"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert wait_for(lambda: os.path.exists(path), 15.0)
        done = memif_ref("client", "--socket", path, "--json", "attack", "head-jump")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["answer"] == "disconnect"
        out, _ = server.communicate(timeout=TIMEOUT)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(TIMEOUT)
    report = json.loads(out)
    assert report["counters"]["ring_errors"] == 1
    assert report["counters"]["rx_errors"] == 1
    assert report["disconnect_reason"].startswith("C2S ring 0: head moved 1025 slots")


def test_memif_ref_attack_usage_and_failures(sock_dir: Path) -> None:
    as_server = memif_ref("server", "--socket", str(sock_dir / "s.sock"), "attack", "malformed")
    assert as_server.returncode == 1
    assert "only a client attacks" in as_server.stderr
    unknown = memif_ref("client", "--socket", str(sock_dir / "s.sock"), "attack", "nonsense")
    assert unknown.returncode == 1
    nobody = memif_ref(
        "client", "--socket", str(sock_dir / "none.sock"), "--json", "attack", "malformed"
    )
    assert nobody.returncode == 1
    assert "cannot connect" in json.loads(nobody.stdout)["error"]
