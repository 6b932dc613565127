"""ContainerTransport without an engine: a real ContainerConsole over a socketpair, a fake
container, and TestpmdProcess driving a scripted prompt through them."""

from __future__ import annotations

import os
import signal
import socket
import struct
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

if not os.environ.get("CI"):
    pytest.importorskip("docker", reason="Docker SDK for Python (PyPI 'docker') not installed")

from harness.peers.testpmd import (
    PROMPT,
    MemifRole,
    TestpmdConfig,
    TestpmdExitedError,
    TestpmdMemifPort,
    TestpmdProcess,
    TestpmdStartupError,
)
from harness.peers.testpmd_container import (
    VANISHED_EXIT_STATUS,
    ContainerTransport,
    exit_status,
)
from harness.runtime.docker import ContainerConsole, ContainerSpec, ContainerStartError

RECORDED = Path(__file__).parent / "recorded" / "testpmd"


def frame(text: str, stream: int = 1) -> bytes:
    """One frame of a non-tty attach stream."""
    payload = text.encode()
    return struct.pack(">BxxxL", stream, len(payload)) + payload


class FakeContainer:
    """The PeerContainer surface ContainerTransport uses; the test sets `status`."""

    def __init__(self, console: ContainerConsole) -> None:
        self._console = console
        self.status: int | None = None  # None: running
        self.removed = False
        self.signals: list[int] = []

    def console(self) -> ContainerConsole:
        return self._console

    @property
    def running(self) -> bool:
        return not self.removed and self.status is None

    @property
    def exit_code(self) -> int | None:
        return None if self.removed else self.status

    def wait(self, timeout: float) -> int:
        assert self.status is not None, "the fake only waits for an exited container"
        return self.status

    def kill(self, sig: int) -> None:
        self.signals.append(int(sig))
        if sig == signal.SIGKILL:
            self.status = 128 + signal.SIGKILL

    def remove(self) -> None:
        if self.status is None:
            self.status = 128 + signal.SIGKILL
        self.removed = True
        self._console.close()

    @property
    def pid(self) -> int:
        return 4242

    def logs(self) -> str:
        return ""


class FakeRuntime:
    """The DockerRuntime surface ContainerTransport uses."""

    run_id = "0123abcd"

    def __init__(self, container: FakeContainer | None, refuse: bool = False) -> None:
        self.container = container
        self.refuse = refuse
        self.specs: list[ContainerSpec] = []

    def container_name(self, name: str) -> str:
        return f"memif-{self.run_id}-{name}"

    def start(self, spec: ContainerSpec) -> FakeContainer:
        self.specs.append(spec)
        if self.refuse or self.container is None:
            raise ContainerStartError("cannot start x: Requested CPUs are not available", "tail")
        return self.container


@pytest.fixture
def wire() -> Iterator[tuple[socket.socket, FakeContainer, ContainerTransport, FakeRuntime]]:
    """(the container's end of the attach socket, the container, a started transport)."""
    ours, theirs = socket.socketpair()
    container = FakeContainer(ContainerConsole(ours, "memif-0123abcd-t"))
    runtime = FakeRuntime(container)
    transport = ContainerTransport(runtime, "img:tag", "t", cpuset_cpus="1")  # type: ignore[arg-type]
    transport.start(["stdbuf", "-oL", "dpdk-testpmd"])
    yield theirs, container, transport, runtime
    theirs.close()
    ours.close()


@pytest.mark.parametrize(
    ("status", "expected"),
    [(0, 0), (1, 1), (127, 127), (128, 128), (137, -9), (139, -11), (143, -15), (255, 255)],
)
def test_exit_status_maps_signal_deaths_back_to_negative(status: int, expected: int) -> None:
    assert exit_status(status) == expected


def test_start_builds_a_console_container_and_reads_demultiplexed_output(
    wire: tuple[socket.socket, FakeContainer, ContainerTransport, FakeRuntime],
) -> None:
    theirs, _, transport, runtime = wire
    (spec,) = runtime.specs
    assert spec.stdin_open and spec.cpuset_cpus == "1" and spec.command[0] == "stdbuf"
    assert transport.read(0.0) == ""  # nothing pending, no wait
    data = frame("EAL: hello\n") + frame("err\n", stream=2) + frame("testpmd> ")
    theirs.sendall(data[:5])  # a header split across reads
    theirs.sendall(data[5:])
    text = ""
    while PROMPT not in text:
        text += transport.read(1.0) or ""
    assert text == "EAL: hello\nerr\ntestpmd> "
    transport.write("show port info 0\n")
    assert theirs.recv(100) == b"show port info 0\n"
    theirs.shutdown(socket.SHUT_WR)
    assert transport.read(1.0) is None  # output ended


def test_exit_status_is_known_after_removal_and_a_kill_at_close_is_recorded(
    wire: tuple[socket.socket, FakeContainer, ContainerTransport, FakeRuntime],
) -> None:
    _, container, transport, _ = wire
    assert transport.poll() is None and transport.pid == 4242
    container.status = 128 + signal.SIGSEGV
    assert transport.wait(1.0) == -signal.SIGSEGV
    transport.close()
    assert container.removed and transport.poll() == -signal.SIGSEGV and transport.pid is None
    with pytest.raises(BrokenPipeError):
        transport.write("quit\n")

    ours, theirs = socket.socketpair()
    running = FakeContainer(ContainerConsole(ours, "r"))
    other = ContainerTransport(FakeRuntime(running), "img", "r")  # type: ignore[arg-type]
    other.start(["x"])
    other.send_signal(signal.SIGTERM)
    assert running.signals == [signal.SIGTERM]
    other.close()  # still running: remove() kills it
    assert other.poll() == -signal.SIGKILL
    theirs.close()


def test_a_container_removed_behind_our_back_is_not_running_and_not_a_signal(
    wire: tuple[socket.socket, FakeContainer, ContainerTransport, FakeRuntime],
) -> None:
    theirs, container, transport, _ = wire
    container.removed = True  # `docker rm -f` by someone else: no state, output ends
    theirs.close()
    assert transport.read(1.0) is None
    assert transport.poll() == VANISHED_EXIT_STATUS


def test_engine_refusal_is_a_startup_error_with_the_engines_words() -> None:
    transport = ContainerTransport(FakeRuntime(None, refuse=True), "img", "t")  # type: ignore[arg-type]
    with pytest.raises(TestpmdStartupError, match="Requested CPUs are not available") as raised:
        transport.start(["x"])
    assert raised.value.log_tail == "tail"


def _play_testpmd(
    theirs: socket.socket, container: FakeContainer, answers: dict[str, str], crash_on: str
) -> None:
    """The container's side: banner, then answer each command line, or die by SIGSEGV on
    `crash_on` (the engine then reports 128 + 11)."""
    theirs.sendall(frame("Port 0: 02:00:00:00:00:AA\nDone\n" + PROMPT))
    pending = b""
    while True:
        chunk = theirs.recv(4096)
        if not chunk:
            return
        pending += chunk
        while b"\n" in pending:
            line, _, pending = pending.partition(b"\n")
            command = line.decode()
            if command == crash_on:
                container.status = 128 + signal.SIGSEGV
                theirs.shutdown(socket.SHUT_WR)  # the output ends: it died
                return
            theirs.sendall(frame(command + "\r\n" + answers[command] + PROMPT))


def test_testpmd_process_drives_the_prompt_through_a_container(
    wire: tuple[socket.socket, FakeContainer, ContainerTransport, FakeRuntime], tmp_path: Path
) -> None:
    theirs, container, _, runtime = wire
    transport = ContainerTransport(runtime, "img", "t2")  # type: ignore[arg-type]
    answers = {"show port stats 0": (RECORDED / "port_stats_rxonly.txt").read_text()}
    player = threading.Thread(target=_play_testpmd, args=(theirs, container, answers, "crash"))
    player.start()
    config = TestpmdConfig(
        ports=(TestpmdMemifPort(MemifRole.SERVER, tmp_path / "m.sock"),), file_prefix="ct"
    )
    process = TestpmdProcess(config, tmp_path / "ct.log", transport=transport).start()
    assert process.running
    assert process.port_stats(0).rx_packets == 21497920
    with pytest.raises(TestpmdExitedError, match="running 'crash': killed by SIGSEGV") as raised:
        process.command("crash")
    player.join(5)
    assert not player.is_alive()
    assert raised.value.crashed and process.crashed
    assert process.stop() == -signal.SIGSEGV
    assert container.removed
    assert "show port stats 0" in (tmp_path / "ct.log").read_text()


def _argv_of(specs: Sequence[ContainerSpec]) -> list[str]:
    return [arg for spec in specs for arg in spec.command]


def test_no_program_lookup_on_the_host_for_a_container(
    wire: tuple[socket.socket, FakeContainer, ContainerTransport, FakeRuntime],
) -> None:
    _, _, transport, runtime = wire
    assert transport.program_exists("no-such-program-on-this-host")
    assert "dpdk-testpmd" in _argv_of(runtime.specs)
