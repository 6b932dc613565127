"""TestpmdPeer in Docker containers, through the Peer interface only, next to local peers."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

if not os.environ.get("CI"):
    pytest.importorskip("docker", reason="Docker SDK for Python (PyPI 'docker') not installed")

import docker

from harness.peers.base import Activity, MemifSpec, Peer, PeerCrashed, PeerError, PeerStatus, Role
from harness.peers.reference import ReferencePeer
from harness.peers.testpmd_peer import TestpmdPeer
from harness.runtime.docker import (
    PEER_CAPABILITIES,
    PEER_LABEL,
    RUN_LABEL,
    DockerRuntime,
    EngineUnavailableError,
    engine_client,
    list_containers,
)
from harness.runtime.images import BUILD_TIMEOUT, build_images
from harness.topology.labels import RunLabel
from harness.topology.reap import Leftover, LeftoverKind, leftovers

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.testpmd]

SERVER_CPU = 0
CLIENT_CPU = 1
FRAME_SIZE = 64


@pytest.fixture(scope="module")
def engine() -> docker.DockerClient | EngineUnavailableError:
    """An engine client, or why there is none (reported in the test body: FAIL under CI)."""
    try:
        return engine_client(timeout=BUILD_TIMEOUT)
    except EngineUnavailableError as error:
        return error


@dataclass
class ContainerPeers:
    """Makes peers for one test (testpmd in containers, the reference locally) and stops
    them all afterwards."""

    engine: docker.DockerClient | EngineUnavailableError
    label: RunLabel
    workdir: Path
    socket: Path
    started: list[Peer] = field(default_factory=list)
    may_crash: list[Peer] = field(default_factory=list)
    _runtime: DockerRuntime | None = None
    _image: str | None = None

    def runtime(self) -> DockerRuntime:
        """The run's Docker runtime; a missing engine fails the test under CI, else skips."""
        if self._runtime is None:
            if isinstance(self.engine, EngineUnavailableError):
                if os.environ.get("CI"):
                    pytest.fail(f"Docker engine unavailable on a CI machine: {self.engine}")
                pytest.skip(f"Docker engine not available: {self.engine}")
            self._image = build_images(client=self.engine).testpmd.tag
            self._runtime = DockerRuntime(self.label.run_id, self.engine)
        return self._runtime

    def spec(self, role: Role, activity: Activity, **options: object) -> MemifSpec:
        """A spec on the test's socket."""
        return MemifSpec(role=role, socket_path=str(self.socket), activity=activity, **options)  # type: ignore[arg-type]

    def testpmd(self, the_spec: MemifSpec, cpu: int) -> TestpmdPeer:
        """testpmd in a container of the run (not started)."""
        runtime = self.runtime()
        peer = TestpmdPeer(the_spec, self.workdir, cpu=cpu, runtime=runtime, image=self._image)
        self.started.append(peer)
        return peer

    def reference(self, the_spec: MemifSpec, cpu: int) -> ReferencePeer:
        """memif-ref as a local process (not started)."""
        peer = ReferencePeer(the_spec, self.workdir, cpu=cpu)
        self.started.append(peer)
        return peer

    def containers_left(self) -> list[Leftover]:
        """Containers labelled with the run that are still there."""
        if self._runtime is None:
            return []
        found = leftovers(docker_client=self._runtime.client, only_runs={self.label.run_id})
        return [item for item in found if item.kind is LeftoverKind.CONTAINER]


@pytest.fixture
def container_peers(
    engine: docker.DockerClient | EngineUnavailableError,
    run_label: RunLabel,
    socket_dir: Path,
    tmp_path: Path,
) -> Iterator[ContainerPeers]:
    """Peers of one test; at teardown each is stopped through the Peer interface (in start
    order: servers first), none may have crashed (unless the test said so) and no container
    of the run may remain."""
    peers = ContainerPeers(engine, run_label, tmp_path, socket_dir / "m.sock")
    yield peers
    for peer in peers.started:
        peer.quiesce()
    for peer in peers.started:
        peer.stop()
    left = peers.containers_left()
    if peers._runtime is not None:
        peers._runtime.cleanup()  # sweep what a failure left, then report it
    crashed = [peer for peer in peers.started if peer.crashed and peer not in peers.may_crash]
    assert not crashed, "\n".join(peer.logs()[-2000:] for peer in crashed)
    assert not left, f"containers left after Peer.stop(): {left}"


def poll_status(
    peer: Peer, done: Callable[[PeerStatus], bool], timeout: float = 15.0
) -> PeerStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = peer.status()
        if done(status) or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("server_kind", "client_kind"),
    [("reference", "testpmd"), ("testpmd", "reference"), ("testpmd", "testpmd")],
    ids=["ref-server_testpmd-container-client", "testpmd-container-server_ref-client",
         "testpmd-container_testpmd-container"],
)  # fmt: skip
def test_container_pairs_connect_and_pass_traffic(
    container_peers: ContainerPeers, server_kind: str, client_kind: str
) -> None:
    """Steps: start the server as a sink on CPU 0, then the client as a source of 64-byte
    frames on CPU 1; testpmd runs in a container sharing only the socket's directory (bind-
    mounted at the same path), the reference as a local process. Quiesce both (no datapath
    polls the rings any more), then stop both via Peer.stop(), server first.
    Verify: both links up; the server counts whole frames, the client counts sent ones;
    each container has no network, only IPC_LOCK and SYS_NICE, its CPU, the run's name and
    labels; after stop no container of the run remains; no peer crashed. (Without the
    quiesce step DPDK 22.11's memif driver died by SIGSEGV right after memif_disconnect()
    in 2-4 of 10 container pairs here; with it, 0 of 27.)"""

    def make(kind: str, role: Role, activity: Activity, cpu: int) -> Peer:
        the_spec = container_peers.spec(role, activity, frame_size=FRAME_SIZE)
        if kind == "testpmd":
            return container_peers.testpmd(the_spec, cpu)
        return container_peers.reference(the_spec, cpu)

    server = make(server_kind, Role.SERVER, Activity.SINK, SERVER_CPU)
    server.start()
    assert container_peers.socket.is_socket()  # on the host, whoever listens
    client = make(client_kind, Role.CLIENT, Activity.SOURCE, CLIENT_CPU)
    client.start()
    assert client.wait_for_link(20.0), client.logs()[-2000:]
    assert server.wait_for_link(20.0), server.logs()[-2000:]

    status = poll_status(server, lambda s: s.counters.rx_frames > 1000)
    assert status.link_up
    assert status.counters.rx_frames > 1000, server.logs()[-2000:]
    # testpmd reads its packet and byte counters one after the other while forwarding, so
    # they may be a burst apart; both must still describe whole frames.
    assert status.counters.rx_bytes % FRAME_SIZE == 0
    assert abs(status.counters.rx_bytes // FRAME_SIZE - status.counters.rx_frames) <= 64
    sent = poll_status(client, lambda s: s.counters.tx_frames > 0)
    assert sent.counters.tx_frames > 0, client.logs()[-2000:]
    assert server.version().startswith(("DPDK ", "memif-ref"))
    assert client.version().startswith(("DPDK ", "memif-ref"))

    runtime = container_peers.runtime()
    cpus = {"server": SERVER_CPU, "client": CLIENT_CPU}
    containers = list_containers(runtime.client, runtime.run_id)
    assert len(containers) == [server_kind, client_kind].count("testpmd")
    for container in containers:
        host = container.attrs["HostConfig"]
        role = container.labels[PEER_LABEL].split("_")[1]
        assert container.name == f"memif-{runtime.run_id}-{container.labels[PEER_LABEL]}"
        assert container.labels[RUN_LABEL] == runtime.run_id
        assert host["NetworkMode"] == "none"
        assert host["Privileged"] is False
        assert sorted(host["CapAdd"]) == sorted(PEER_CAPABILITIES)
        assert host["CapDrop"] == ["ALL"]
        assert host["CpusetCpus"] == str(cpus[role])
        binds = {bind.split(":")[0]: bind.split(":")[1] for bind in host["Binds"]}
        assert binds[str(container_peers.socket.parent)] == str(container_peers.socket.parent)
        if Path("/dev/hugepages").is_dir():
            assert binds["/dev/hugepages"] == "/dev/hugepages"

    for peer in (server, client):
        peer.quiesce()  # nobody polls the rings while the other side goes away
    server.stop()
    client.stop()
    assert container_peers.containers_left() == []


@pytest.mark.parametrize(
    ("options", "cpu", "expected"),
    [
        ({"buffer_size": 100_000}, SERVER_CPU, "Invalid buffer size"),
        ({}, 4096, "4096"),
    ],
    ids=["bad-vdev-argument", "cpu-the-host-lacks"],
)
def test_container_failing_at_start_up_is_a_peer_error_with_its_log(
    container_peers: ContainerPeers, options: dict[str, object], cpu: int, expected: str
) -> None:
    """Steps: start a testpmd container whose memif vdev testpmd rejects (bsize above
    65535), or pinned to a CPU the host does not have (the engine refuses it).
    Verify: start() raises PeerError (not a crash) within seconds, carrying the reason in
    its message or log tail; nothing of the container remains."""
    peer = container_peers.testpmd(container_peers.spec(Role.SERVER, Activity.SINK, **options), cpu)
    started = time.monotonic()
    with pytest.raises(PeerError) as raised:
        peer.start()
    assert time.monotonic() - started < 20
    assert not isinstance(raised.value, PeerCrashed)
    assert expected in str(raised.value), str(raised.value)
    assert not peer.crashed
    assert container_peers.containers_left() == []
    assert not container_peers.socket.exists()


def _testpmd_host_pid(init_pid: int) -> int:
    """Host pid of testpmd: the child of the container's init (tini)."""
    children = Path(f"/proc/{init_pid}/task/{init_pid}/children").read_text().split()
    for child in map(int, children):
        if Path(f"/proc/{child}/comm").read_text().strip() == "dpdk-testpmd":
            return child
    raise AssertionError(f"no dpdk-testpmd among the children {children} of {init_pid}")


def test_container_killed_by_a_signal_nobody_sent_is_a_crash(
    container_peers: ContainerPeers,
) -> None:
    """Steps: start a testpmd server container; deliver SIGSEGV to its testpmd process
    (as a segfault would); ask for its status.
    Verify: status() raises PeerCrashed with the log tail; crashed is True, also after
    the container is removed; a second peer stopped by signals the harness sends (SIGTERM
    through the engine, SIGKILL) is not a crash."""
    peer = container_peers.testpmd(container_peers.spec(Role.SERVER, Activity.SINK), SERVER_CPU)
    container_peers.may_crash.append(peer)
    peer.start()
    assert peer.status().running
    init_pid = peer.process.pid
    assert init_pid is not None
    os.kill(_testpmd_host_pid(init_pid), signal.SIGSEGV)
    with pytest.raises(PeerCrashed) as raised:
        poll_status(peer, lambda s: not s.running)
    assert "testpmd crashed" in str(raised.value)
    assert peer.crashed
    assert peer.process.returncode == -signal.SIGSEGV
    peer.stop()
    assert peer.crashed  # still known after the container is removed

    other = container_peers.testpmd(container_peers.spec(Role.SERVER, Activity.SINK), CLIENT_CPU)
    other.start()
    # SIGTERM through the engine and tini: testpmd quits cleanly (0), or dies by it, or
    # ignores it at the prompt until the SIGKILL that follows; never a crash.
    other.process.stop(graceful=False, term_timeout=5.0)
    assert other.process.returncode in (0, -signal.SIGTERM, -signal.SIGKILL)
    assert not other.crashed
