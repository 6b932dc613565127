"""Peer containers are never privileged: no network, every capability dropped but the few
listed, no new privileges (the arguments the Docker runtime gives the engine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.peers.base import MemifSpec, Role
from harness.peers.testpmd_peer import TestpmdPeer
from harness.runtime.docker import PEER_CAPABILITIES, ContainerSpec, DockerRuntime

ALLOWED_CAPABILITIES = {"IPC_LOCK", "SYS_NICE", "NET_ADMIN", "NET_RAW"}
"""What DESIGN.md §5 lets a peer have."""


class Created(Exception):
    """Raised by the fake engine once it has the create arguments (nothing is started)."""


class FakeContainers:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    def create(self, image: str, **kwargs: Any) -> None:
        self.created.append({"image": image, **kwargs})
        raise Created


class FakeEngine:
    def __init__(self) -> None:
        self.containers = FakeContainers()


def create_arguments(spec: ContainerSpec) -> dict[str, Any]:
    engine = FakeEngine()
    with pytest.raises(Created):
        DockerRuntime("1a2b3c4d", client=engine).start(spec)  # type: ignore[arg-type]
    (arguments,) = engine.containers.created
    return arguments


def assert_unprivileged(arguments: dict[str, Any]) -> None:
    assert not arguments.get("privileged", False)
    assert arguments["network_mode"] == "none"
    assert arguments["cap_drop"] == ["ALL"]
    assert set(arguments["cap_add"]) <= ALLOWED_CAPABILITIES
    assert "no-new-privileges" in arguments["security_opt"]
    assert "pid_mode" not in arguments and "ipc_mode" not in arguments
    assert "devices" not in arguments  # /dev/hugepages comes as a bind mount, not a device


def test_a_container_gets_no_network_and_only_its_capabilities() -> None:
    arguments = create_arguments(ContainerSpec("img", ("true",), "peer", cap_add=("ipc_lock",)))
    assert_unprivileged(arguments)
    assert arguments["cap_add"] == ["IPC_LOCK"]
    assert arguments["labels"]["memif-harness.run"] == "1a2b3c4d"


def test_the_testpmd_container_asks_for_ipc_lock_and_sys_nice_only(tmp_path: Path) -> None:
    engine = FakeEngine()
    runtime = DockerRuntime("1a2b3c4d", client=engine)  # type: ignore[arg-type]
    spec = MemifSpec(Role.SERVER, str(tmp_path / "memif.sock"))
    peer = TestpmdPeer(spec, tmp_path, runtime=runtime, image="memif-testpmd:test")
    with pytest.raises(Created):
        peer.start()
    (arguments,) = engine.containers.created
    assert_unprivileged(arguments)
    assert sorted(arguments["cap_add"]) == sorted(PEER_CAPABILITIES)
    assert str(tmp_path) in arguments["volumes"]  # the socket directory, nothing wider


@pytest.mark.parametrize("cap_add", [("ALL",), ("all",)])
def test_all_capabilities_are_refused(cap_add: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="privileged"):
        ContainerSpec("img", ("true",), "peer", cap_add=cap_add)
