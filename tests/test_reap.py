"""Tests of reap: only the leftovers of dead runs go; live runs and unlabelled objects stay."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.topology import labels
from harness.topology import netns as tn
from harness.topology.labels import RunLabel
from harness.topology.reap import Leftover, LeftoverKind, ReapPaths, leftovers, reap

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CAP_NET_ADMIN)")

# Every reap() here passes only_runs: namespaces and links are host-wide, and with a
# private registry other (possibly live) runs on this host would look unregistered.

# --------------------------------------------------------------------------- a fake Docker engine


@dataclass
class FakeContainer:
    name: str
    labels: dict[str, str]
    attrs: dict[str, Any]
    engine: FakeDocker
    removed_with: dict[str, bool] | None = None

    def remove(self, force: bool = False, v: bool = False) -> None:
        self.removed_with = {"force": force, "v": v}
        self.engine.containers.items.remove(self)


@dataclass
class FakeContainers:
    items: list[FakeContainer] = field(default_factory=list)

    def list(self, all: bool = False, filters: dict[str, str] | None = None) -> list[FakeContainer]:
        assert all, "stopped containers are leftovers too"
        key = (filters or {}).get("label")
        return [c for c in self.items if key is None or key in c.labels]


@dataclass
class FakeDocker:
    containers: FakeContainers = field(default_factory=FakeContainers)
    reachable: bool = True

    def ping(self) -> bool:
        if not self.reachable:
            raise ConnectionError("Cannot connect to the Docker daemon")
        return True

    def add(self, name: str, labels: dict[str, str], created: str) -> FakeContainer:
        container = FakeContainer(name, labels, {"Created": created}, self)
        self.containers.items.append(container)
        return container


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def paths(tmp_path: Path) -> ReapPaths:
    (tmp_path / "tmp").mkdir()
    (tmp_path / "dpdk").mkdir()
    (tmp_path / "huge").mkdir()
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "proc /proc proc rw 0 0\n"
        f"nodev {tmp_path / 'huge'} hugetlbfs rw,relatime,pagesize=2M 0 0\n"
        f"tmpfs {tmp_path / 'tmp'} tmpfs rw 0 0\n"
    )
    return ReapPaths(
        registry_dir=tmp_path / "registry",
        tmp_dir=tmp_path / "tmp",
        dpdk_runtime_dir=tmp_path / "dpdk",
        mounts_file=mounts,
    )


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


@dataclass
class RunObjects:
    """The filesystem objects made for one fake run."""

    label: RunLabel
    socket_dir: Path
    dpdk_dir: Path
    hugepage_file: Path


def make_files(paths: ReapPaths, label: RunLabel, *, age: float = 0.0) -> RunObjects:
    socket_dir = label.make_socket_dir("sock", paths.tmp_dir)
    (socket_dir / "memif.sock").write_bytes(b"")
    dpdk_dir = paths.dpdk_runtime_dir / label.dpdk_prefix("tpmd0")
    dpdk_dir.mkdir()
    (dpdk_dir / "config").write_bytes(b"x")
    hugepage_file = paths.mounts_file.parent / "huge" / f"{label.dpdk_prefix('tpmd0')}map_0"
    hugepage_file.write_bytes(b"\0" * 64)
    if age:
        stamp = time.time() - age
        for path in (socket_dir, dpdk_dir, hugepage_file):
            os.utime(path, (stamp, stamp))
    return RunObjects(label, socket_dir, dpdk_dir, hugepage_file)


def make_unlabelled(paths: ReapPaths) -> list[Path]:
    """Objects that look close to ours but carry no label: reap must never touch them."""
    made = [
        paths.tmp_dir / "memif-harness-notarun-sock",
        paths.tmp_dir / "some-other-tool",
        paths.dpdk_runtime_dir / "rte",
        paths.dpdk_runtime_dir / "it-4c5e1405f3a4",
        paths.dpdk_runtime_dir / "memif-zzzzzzzz-x",
    ]
    for path in made:
        path.mkdir()
    for name in ("rtemap_0", "memif-1234-map_0", "memifmap_3"):
        (paths.mounts_file.parent / "huge" / name).write_bytes(b"")
        made.append(paths.mounts_file.parent / "huge" / name)
    old = time.time() - 10 * 24 * 3600
    for path in made:
        os.utime(path, (old, old))
    return made


def register_dead(label: RunLabel, paths: ReapPaths) -> None:
    labels.register_run(label.run_id, paths.registry_dir, pid=dead_pid())


def register_live(label: RunLabel, paths: ReapPaths) -> None:
    labels.register_run(label.run_id, paths.registry_dir)


# --------------------------------------------------------------------------- filesystem + Docker


def test_reap_removes_only_the_dead_runs_files_and_containers(paths: ReapPaths) -> None:
    dead, live = RunLabel.new(), RunLabel.new()
    register_dead(dead, paths)
    register_live(live, paths)
    dead_files, live_files = make_files(paths, dead), make_files(paths, live)
    unlabelled = make_unlabelled(paths)
    docker = FakeDocker()
    now_iso = "2030-01-01T00:00:00.123456789Z"
    dead_ctr = docker.add(dead.container_name("vpp"), dead.container_labels(), now_iso)
    live_ctr = docker.add(live.container_name("vpp"), live.container_labels(), now_iso)
    stranger = docker.add("someone-elses", {"app": "db"}, now_iso)

    report = reap(paths, docker_client=docker, only_runs={dead.run_id, live.run_id})

    assert not dead_files.socket_dir.exists()
    assert not dead_files.dpdk_dir.exists()
    assert not dead_files.hugepage_file.exists()
    assert dead_ctr.removed_with == {"force": True, "v": True}
    assert labels.read_record(dead.run_id, paths.registry_dir) is None

    assert live_files.socket_dir.is_dir() and live_files.dpdk_dir.is_dir()
    assert live_files.hugepage_file.is_file()
    assert live_ctr.removed_with is None and stranger.removed_with is None
    assert labels.read_record(live.run_id, paths.registry_dir) is not None
    assert all(path.exists() for path in unlabelled)

    removed = {(item.kind, item.run_id) for item in report.removed}
    assert removed == {
        (LeftoverKind.CONTAINER, dead.run_id),
        (LeftoverKind.SOCKET_DIR, dead.run_id),
        (LeftoverKind.DPDK_RUNTIME_DIR, dead.run_id),
        (LeftoverKind.HUGEPAGE_FILE, dead.run_id),
        (LeftoverKind.REGISTRY, dead.run_id),
    }
    assert {item.run_id for item, _ in report.kept} == {live.run_id}
    assert all("is live" in why for _, why in report.kept)
    assert report.errors == []
    assert "removed: socket-dir" in report.summary()


def test_unregistered_objects_go_only_after_the_grace_period(paths: ReapPaths) -> None:
    old, young = RunLabel.new(), RunLabel.new()
    old_files = make_files(paths, old, age=3600)
    young_files = make_files(paths, young)

    report = reap(
        paths, grace_seconds=600, docker_client=None, only_runs={old.run_id, young.run_id}
    )

    assert not old_files.socket_dir.exists() and not old_files.hugepage_file.exists()
    assert young_files.socket_dir.exists() and young_files.dpdk_dir.exists()
    assert {item.run_id for item in report.removed} == {old.run_id}
    assert all("only" in why and "grace 600s" in why for _, why in report.kept)
    assert "docker: not checked (no client given)" in report.notes

    later = reap(
        paths,
        grace_seconds=600,
        docker_client=None,
        only_runs={old.run_id, young.run_id},
        now=time.time() + 601,
    )
    assert not young_files.socket_dir.exists()
    assert {item.run_id for item in later.removed} == {young.run_id}


def test_dry_run_removes_nothing(paths: ReapPaths) -> None:
    dead = RunLabel.new()
    register_dead(dead, paths)
    files = make_files(paths, dead)
    report = reap(paths, dry_run=True, docker_client=None, only_runs={dead.run_id})
    assert report.dry_run
    assert {item.kind for item in report.removed} >= {
        LeftoverKind.SOCKET_DIR,
        LeftoverKind.DPDK_RUNTIME_DIR,
        LeftoverKind.HUGEPAGE_FILE,
    }
    assert files.socket_dir.exists() and files.dpdk_dir.exists() and files.hugepage_file.exists()
    assert labels.read_record(dead.run_id, paths.registry_dir) is not None
    assert report.summary().startswith("would remove:")


def test_unreachable_docker_is_a_note_not_a_failure(paths: ReapPaths) -> None:
    dead = RunLabel.new()
    register_dead(dead, paths)
    files = make_files(paths, dead)
    docker = FakeDocker(reachable=False)
    container = docker.add(
        dead.container_name("x"), dead.container_labels(), "2030-01-01T00:00:00Z"
    )
    report = reap(paths, docker_client=docker, only_runs={dead.run_id})
    assert any("docker: engine not reachable" in note for note in report.notes)
    assert container.removed_with is None
    assert not files.socket_dir.exists(), "the rest is still reaped"


def test_symlinks_are_never_followed(paths: ReapPaths, tmp_path: Path) -> None:
    dead = RunLabel.new()
    register_dead(dead, paths)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep").write_text("data")
    trap = paths.tmp_dir / f"{dead.socket_dir_prefix('sock')}trap"
    trap.symlink_to(precious)
    reap(paths, docker_client=None, only_runs={dead.run_id})
    assert (precious / "keep").read_text() == "data"
    assert trap.is_symlink()


def test_leftovers_lists_every_labelled_object(paths: ReapPaths) -> None:
    dead, live = RunLabel.new(), RunLabel.new()
    register_dead(dead, paths)
    register_live(live, paths)
    make_files(paths, dead)
    make_files(paths, live)
    make_unlabelled(paths)
    docker = FakeDocker()
    docker.add(live.container_name("vpp"), live.container_labels(), "2030-01-01T00:00:00Z")

    found = leftovers(paths, docker_client=docker, only_runs={dead.run_id, live.run_id})
    assert {(item.kind, item.run_id) for item in found} == {
        (kind, run.run_id)
        for run in (dead, live)
        for kind in (
            LeftoverKind.SOCKET_DIR,
            LeftoverKind.DPDK_RUNTIME_DIR,
            LeftoverKind.HUGEPAGE_FILE,
        )
    } | {(LeftoverKind.CONTAINER, live.run_id)}
    container = next(item for item in found if item.kind is LeftoverKind.CONTAINER)
    assert container.created == pytest.approx(1893456000.0)

    with_registry = leftovers(paths, docker_client=None, include_registry=True)
    assert {i.run_id for i in with_registry if i.kind is LeftoverKind.REGISTRY} == {
        dead.run_id,
        live.run_id,
    }
    # Unlabelled objects are never listed (only_runs=None lists every run).
    assert all(labels.parse_run_id(item.name) for item in leftovers(paths, docker_client=None))


# --------------------------------------------------------------------------- kernel objects


@pytest.fixture
def kernel_labels() -> Iterator[list[RunLabel]]:
    made: list[RunLabel] = []
    yield made
    for label in made:
        for name in tn.list_netns():
            if labels.run_id_from_name(name) == label.run_id:
                tn.delete_netns(name)
        for name, _ in tn.list_links():
            if labels.run_id_from_link(name) == label.run_id:
                tn.delete_link(name)


@pytest.mark.integration
@needs_root
def test_reap_removes_dead_namespaces_and_links_only(
    paths: ReapPaths, kernel_labels: list[RunLabel]
) -> None:
    dead, live, old, unknown = (RunLabel.new() for _ in range(4))
    kernel_labels += [dead, live, old, unknown]
    register_dead(dead, paths)
    register_live(live, paths)
    for label in (dead, live):
        tn.create_netns(label.netns("host"))
        tn.create_veth(
            label.link("a0"),
            label.link("b0"),
            peer_netns=label.netns("host"),
            alias=label.link_alias(),
        )
        tn.create_veth(label.link("c0"), label.link("d0"), alias=label.link_alias())
    # No registry: one link whose alias says it is an hour old, one with no alias at all.
    tn.create_veth(
        old.link("a0"), old.link("b0"), alias=labels.link_alias(old.run_id, time.time() - 3600)
    )
    tn.create_veth(unknown.link("a0"), unknown.link("b0"))
    runs = {label.run_id for label in kernel_labels}

    before = leftovers(paths, docker_client=None, only_runs=runs)
    assert (LeftoverKind.NETNS, dead.netns("host")) in {(i.kind, i.name) for i in before}

    report = reap(paths, docker_client=None, only_runs=runs)

    assert not tn.netns_exists(dead.netns("host"))
    assert not tn.link_exists(dead.link("a0")) and not tn.link_exists(dead.link("c0"))
    assert not tn.link_exists(old.link("a0")) and not tn.link_exists(old.link("b0"))
    assert tn.netns_exists(live.netns("host"))
    assert tn.link_exists(live.link("a0")) and tn.link_exists(live.link("c0"))
    assert tn.link_exists(unknown.link("a0")), "unknown age without a record: kept"
    kept_unknown = [why for item, why in report.kept if item.run_id == unknown.run_id]
    assert kept_unknown and all("age is unknown" in why for why in kept_unknown)
    removed = {(item.kind, item.name) for item in report.removed}
    assert (LeftoverKind.NETNS, dead.netns("host")) in removed
    assert (LeftoverKind.LINK, old.link("a0")) in removed
    assert report.errors == []

    after = leftovers(paths, docker_client=None, only_runs=runs)
    assert {item.run_id for item in after} == {live.run_id, unknown.run_id}


@pytest.mark.integration
@needs_root
def test_reap_notes_processes_left_in_a_dead_namespace(
    paths: ReapPaths, kernel_labels: list[RunLabel]
) -> None:
    dead = RunLabel.new()
    kernel_labels.append(dead)
    register_dead(dead, paths)
    tn.create_netns(dead.netns("busy"))
    sleeper = tn.popen_in_netns(dead.netns("busy"), ["sleep", "60"])
    try:
        report = reap(paths, docker_client=None, only_runs={dead.run_id})
        assert not tn.netns_exists(dead.netns("busy"))
        assert any(str(sleeper.pid) in note for note in report.notes)
        assert sleeper.poll() is None, "reap never kills processes"
    finally:
        sleeper.kill()
        sleeper.wait(timeout=30)


@pytest.mark.integration
@needs_root
def test_link_with_a_foreign_alias_is_left_alone(
    paths: ReapPaths, kernel_labels: list[RunLabel]
) -> None:
    dead = RunLabel.new()
    kernel_labels.append(dead)
    register_dead(dead, paths)
    tn.create_veth(dead.link("z0"), dead.link("z1"), alias="uplink to rack 3")
    report = reap(paths, docker_client=None, only_runs={dead.run_id})
    assert tn.link_exists(dead.link("z0"))
    assert any("ifalias" in note for note in report.notes)
    assert not any(
        isinstance(item, Leftover) and item.name == dead.link("z0") for item in report.removed
    )


def test_docker_engine_not_reachable_from_the_environment(
    paths: ReapPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")
    dead = RunLabel.new()
    register_dead(dead, paths)
    files = make_files(paths, dead)
    report = reap(paths, only_runs={dead.run_id})  # docker_client defaults to AUTO
    assert any(
        note.startswith("docker: engine not reachable") and "containers not checked" in note
        for note in report.notes
    ), report.notes
    assert not files.socket_dir.exists()


def _docker_client_and_image() -> tuple[Any, str]:
    """A client of a reachable engine and a local image to create containers from, or skip."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:
        pytest.skip(f"Docker engine not reachable: {exc}")
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith("memif-harness/debian-base"):
                return client, tag
    pytest.skip("no local memif-harness/debian-base image (see ci/docker.sh)")


@pytest.mark.integration
def test_reap_removes_a_dead_runs_real_container_only(paths: ReapPaths) -> None:
    client, image = _docker_client_and_image()
    dead, live = RunLabel.new(), RunLabel.new()
    register_dead(dead, paths)
    register_live(live, paths)
    made = []
    try:
        for label in (dead, live):
            container = client.containers.create(
                image,
                command=["sleep", "60"],
                name=label.container_name("peer"),
                labels=label.container_labels(),
                network_mode="none",
            )
            made.append(container)
        made[0].start()  # a running container of a dead run goes too

        found = leftovers(paths, docker_client=client, only_runs={dead.run_id, live.run_id})
        assert {(i.kind, i.name) for i in found} == {
            (LeftoverKind.CONTAINER, dead.container_name("peer")),
            (LeftoverKind.CONTAINER, live.container_name("peer")),
        }
        report = reap(paths, docker_client=client, only_runs={dead.run_id, live.run_id})

        names = {c.name for c in client.containers.list(all=True)}
        assert dead.container_name("peer") not in names
        assert live.container_name("peer") in names
        assert [i.name for i in report.removed if i.kind is LeftoverKind.CONTAINER] == [
            dead.container_name("peer")
        ]
    finally:
        for container in made:
            with contextlib.suppress(Exception):
                container.remove(force=True)
