"""Docker runtime against a real engine: image builds, testpmd server and client containers."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

if not os.environ.get("CI"):
    pytest.importorskip("docker", reason="Docker SDK for Python (PyPI 'docker') not installed")

import docker

from harness.peers.testpmd import (
    PROMPT,
    MemifRole,
    TestpmdConfig,
    TestpmdMemifPort,
    hugepages_available,
    parse_all_port_stats,
    parse_forward_stats,
    parse_port_stats,
)
from harness.runtime.docker import (
    PEER_CAPABILITIES,
    RUN_LABEL,
    BindMount,
    ContainerExitedError,
    ContainerSpec,
    ContainerTimeoutError,
    DockerRuntime,
    EngineUnavailableError,
    engine_client,
    list_containers,
    new_run_id,
    remove_containers,
)
from harness.runtime.images import (
    BUILD_TIMEOUT,
    IMAGE_LABEL,
    RECIPE_LABEL,
    ImageSet,
    build_images,
)

pytestmark = [pytest.mark.docker, pytest.mark.integration]

SOCKET_DIR_IN_CONTAINER = "/run/memif"
HUGEPAGES = Path("/dev/hugepages")
LINE_BUFFERED = ("stdbuf", "-oL", "-eL")  # testpmd's stdout is a pipe in the container too
CAPABILITY_BITS = {"IPC_LOCK": 14, "SYS_NICE": 23}


@pytest.fixture(scope="module")
def docker_client() -> docker.DockerClient:
    """An engine client; under CI a missing engine fails the tests instead of skipping them."""
    try:
        return engine_client(timeout=BUILD_TIMEOUT)
    except EngineUnavailableError as error:
        if os.environ.get("CI"):
            pytest.fail(f"Docker engine unavailable on a CI machine (run ci/docker.sh): {error}")
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def images(docker_client: docker.DockerClient) -> ImageSet:
    """The base and testpmd images (built on first use, then reused by recipe hash)."""
    return build_images(client=docker_client)


@pytest.fixture
def runtime(docker_client: docker.DockerClient) -> Iterator[DockerRuntime]:
    """A runtime for one test; asserts that its cleanup leaves no container of the run."""
    runtime = DockerRuntime(new_run_id(), docker_client)
    try:
        yield runtime
    finally:
        runtime.cleanup()
        assert list_containers(docker_client, runtime.run_id) == []


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A host directory shared by both peers for the memif control socket."""
    path = Path(tempfile.mkdtemp(prefix="memif-dk-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _two_cpus() -> tuple[int, int]:
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[0], cpus[-1]


def _proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def _testpmd_spec(
    image: str, name: str, config: TestpmdConfig, socket_dir: Path, stdin_open: bool = False
) -> ContainerSpec:
    mounts = [BindMount(socket_dir, SOCKET_DIR_IN_CONTAINER)]
    if HUGEPAGES.is_dir():
        mounts.append(BindMount(HUGEPAGES))
    return ContainerSpec(
        image=image,
        command=(*LINE_BUFFERED, *config.argv()),
        name=name,
        cap_add=PEER_CAPABILITIES,
        mounts=tuple(mounts),
        cpuset_cpus=str(config.cpu),
        stdin_open=stdin_open,
    )


def test_build_images_reuses_tagged_images(
    docker_client: docker.DockerClient, images: ImageSet
) -> None:
    again = build_images(client=docker_client)
    assert again.tags == images.tags
    assert not again.base.built
    assert not again.testpmd.built
    for name, tag in again.tags.items():
        labels = docker_client.images.get(tag).labels
        assert labels[IMAGE_LABEL] == name
        assert tag.endswith(":" + labels[RECIPE_LABEL])


@pytest.mark.parametrize("hugepages", [False, True], ids=["no-huge", "hugepages"])
def test_testpmd_txonly_client_to_rxonly_server_in_containers(
    images: ImageSet, runtime: DockerRuntime, socket_dir: Path, hugepages: bool
) -> None:
    if hugepages and not hugepages_available():
        pytest.skip("no free hugepages or no hugetlbfs mount (ci/setup.sh sets them up)")
    server_cpu, client_cpu = _two_cpus()
    eal = ("--huge-unlink",) if hugepages else ()
    socket_path = f"{SOCKET_DIR_IN_CONTAINER}/memif.sock"
    server_config = TestpmdConfig(
        ports=(TestpmdMemifPort(MemifRole.SERVER, socket_path),),
        file_prefix=f"{runtime.run_id}-server",
        cpu=server_cpu,
        hugepages=hugepages,
        forward_mode="rxonly",
        interactive=True,
        extra_eal_args=eal,
    )
    client_config = TestpmdConfig(
        ports=(TestpmdMemifPort(MemifRole.CLIENT, socket_path),),
        file_prefix=f"{runtime.run_id}-client",
        cpu=client_cpu,
        hugepages=hugepages,
        forward_mode="txonly",
        txpkts="64",
        interactive=False,
        stats_period=1,
        extra_eal_args=eal,
    )
    prompt = re.escape(PROMPT)

    # Server: interactive testpmd driven through the attach socket (stdin stays open).
    server = runtime.start(
        _testpmd_spec(images.testpmd.tag, "server", server_config, socket_dir, stdin_open=True)
    )
    console = server.console()
    console.read_until(prompt, timeout=60)
    assert (socket_dir / "memif.sock").is_socket()
    console.send("start\n")
    console.read_until(prompt, timeout=10)

    # Client: non-interactive testpmd printing port statistics every second to its log.
    client = runtime.start(_testpmd_spec(images.testpmd.tag, "client", client_config, socket_dir))
    client.wait_for_log(r"packet forwarding - ports=1", timeout=60)
    client.wait_for_log(r"TX-packets:\s+[1-9]", timeout=30)

    # Isolation: own network namespace, pinned CPU, only the capabilities asked for.
    for peer, cpu in ((server, server_cpu), (client, client_cpu)):
        assert os.readlink(f"/proc/{peer.pid}/ns/net") != os.readlink("/proc/self/ns/net")
        status = _proc_status(peer.pid)
        assert status["Cpus_allowed_list"] == str(cpu)
        wanted = sum(1 << CAPABILITY_BITS[cap] for cap in PEER_CAPABILITIES)
        assert int(status["CapEff"], 16) == wanted
        assert peer.container.attrs["HostConfig"]["NetworkMode"] == "none"
        assert peer.container.labels[RUN_LABEL] == runtime.run_id

    console.send("show port stats 0\n")
    stats = parse_port_stats(console.read_until(prompt, timeout=10))
    assert stats.rx_packets > 0, console.transcript[-2000:]

    console.send("stop\n")
    forwarded = parse_forward_stats(console.read_until(prompt, timeout=10))
    assert forwarded.ports[0].rx_packets >= stats.rx_packets

    assert client.stop(timeout=10) == 0, client.log_tail()
    client_log = client.logs()
    assert "Bye..." in client_log
    periodic = parse_all_port_stats(client_log)[0]  # the last --stats-period block
    assert periodic.tx_packets > 0, client.log_tail()
    assert parse_forward_stats(client_log).ports[0].tx_packets > 0, client.log_tail()

    console.send("quit\n")
    assert server.wait(timeout=15) == 0, server.log_tail()


def test_readiness_errors_carry_the_log_tail(images: ImageSet, runtime: DockerRuntime) -> None:
    base = images.base.tag
    waiting = runtime.start(
        ContainerSpec(base, ("sh", "-c", "echo warming up; exec sleep 60"), "waiting", cap_add=())
    )
    with pytest.raises(ContainerTimeoutError, match="warming up"):
        waiting.wait_for_log("never printed", timeout=1.0)

    failing = runtime.start(
        ContainerSpec(base, ("sh", "-c", "echo boom >&2; exit 3"), "failing", cap_add=())
    )
    with pytest.raises(ContainerExitedError, match="boom") as excinfo:
        failing.wait_for_log("never printed", timeout=30.0)
    assert excinfo.value.exit_code == 3

    with pytest.raises(ContainerTimeoutError, match="still running"):
        waiting.wait(timeout=0.5)

    failing.remove()
    assert "boom" in failing.logs()  # kept after removal
    assert len(list_containers(runtime.client, runtime.run_id)) == 1


def test_remove_containers_sweeps_a_run_by_label(
    images: ImageSet, docker_client: docker.DockerClient
) -> None:
    run_id = new_run_id()
    docker_client.containers.create(
        images.base.tag, ["true"], labels={RUN_LABEL: run_id}, network_mode="none"
    )
    assert len(list_containers(docker_client, run_id)) == 1
    assert len(remove_containers(docker_client, run_id)) == 1
    assert list_containers(docker_client, run_id) == []


def test_reference_server_sinks_testpmd_client_in_a_container(
    images: ImageSet, runtime: DockerRuntime, socket_dir: Path
) -> None:
    """Steps: memif-ref server (local process, CPU 1) sinks; testpmd client txonly runs in a
    container (CPU 0, --network none) sharing only the socket directory.
    Verify: the reference counts whole 64-byte frames from the container."""
    reference = subprocess.Popen(
        [sys.executable, "-m", "reference_impl.cli", "server", "--socket",
         str(socket_dir / "memif.sock"), "--timeout", "60", "--json", "sink", "--count", "10000"],
        stdout=subprocess.PIPE, text=True, preexec_fn=lambda: os.sched_setaffinity(0, {1}),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not (socket_dir / "memif.sock").exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        client_config = TestpmdConfig(
            ports=(TestpmdMemifPort(MemifRole.CLIENT, f"{SOCKET_DIR_IN_CONTAINER}/memif.sock"),),
            file_prefix=f"memif-{runtime.run_id}-client",
            cpu=0,
            forward_mode="txonly",
            txpkts="64",
            interactive=False,
            stats_period=1,
        )
        runtime.start(_testpmd_spec(images.testpmd.tag, "client", client_config, socket_dir))
        out, _ = reference.communicate(timeout=60)
    finally:
        if reference.poll() is None:
            reference.kill()
            reference.communicate()
    report = json.loads(out)
    assert report["exit_code"] == 0
    assert report["peer_name"].startswith("DPDK 22.11")
    assert report["counters"]["rx_frames"] >= 10000
    assert report["counters"]["rx_bytes"] == 64 * report["counters"]["rx_frames"]
