"""Lists every object labelled with a run id, and removes the leftovers of dead runs only."""

from __future__ import annotations

import contextlib
import datetime
import enum
import os
import shutil
import stat
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from pyroute2 import netns as pyroute2_netns

from harness.topology import netns as topo_netns
from harness.topology.hugepages import hugetlbfs_mounts
from harness.topology.labels import (
    DEFAULT_REGISTRY_DIR,
    DEFAULT_TMP_DIR,
    LABEL_KEY,
    RunState,
    check_run_id,
    parse_link_alias,
    process_alive,
    read_record,
    registered_runs,
    registry_path,
    run_id_from_link,
    run_id_from_name,
    run_id_from_socket_dir,
    run_state,
    unregister_run,
)

DEFAULT_GRACE_SECONDS = 600.0
"""Unregistered objects younger than this are left alone (a run may be starting)."""


class LeftoverKind(enum.StrEnum):
    """Kinds of labelled objects, in the order `reap` removes them."""

    CONTAINER = "container"
    NETNS = "netns"
    LINK = "link"
    HUGEPAGE_FILE = "hugepage-file"
    DPDK_RUNTIME_DIR = "dpdk-runtime-dir"
    SOCKET_DIR = "socket-dir"
    REGISTRY = "registry"


@dataclass(frozen=True)
class Leftover:
    """One labelled object present on the host.

    Attributes:
        kind: what it is.
        name: its name (container/netns/link name, or file name).
        run_id: the run it belongs to.
        location: a path, or "root netns" for links, or "docker" for containers.
        created: creation (or last-modification) epoch seconds, None if unknown.
    """

    kind: LeftoverKind
    name: str
    run_id: str
    location: str
    created: float | None = None

    def __str__(self) -> str:
        return f"{self.kind.value} {self.name} (run {self.run_id}, {self.location})"


@dataclass(frozen=True)
class ReapPaths:
    """Where `leftovers` and `reap` look; tests point these into tmp_path.

    Attributes:
        registry_dir: run registry files.
        tmp_dir: parent of socket directories.
        dpdk_runtime_dir: DPDK's per-prefix runtime directories.
        mounts_file: mount table listing hugetlbfs mounts.
    """

    registry_dir: Path = DEFAULT_REGISTRY_DIR
    tmp_dir: Path = DEFAULT_TMP_DIR
    dpdk_runtime_dir: Path = Path("/var/run/dpdk")
    mounts_file: Path = Path("/proc/mounts")


@dataclass
class ReapReport:
    """What `reap` did.

    Attributes:
        removed: objects removed (or that would be, in a dry run).
        kept: objects left alone, with the reason.
        errors: objects whose removal failed, with the error.
        notes: anything else worth saying (Docker not reachable, processes still inside
            a removed namespace...).
        dry_run: True if nothing was actually removed.
    """

    removed: list[Leftover] = field(default_factory=list)
    kept: list[tuple[Leftover, str]] = field(default_factory=list)
    errors: list[tuple[Leftover, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False

    def summary(self) -> str:
        """Human-readable multi-line summary."""
        verb = "would remove" if self.dry_run else "removed"
        lines = [f"{verb}: {item}" for item in self.removed]
        lines += [f"kept: {item}: {why}" for item, why in self.kept]
        lines += [f"ERROR: {item}: {why}" for item, why in self.errors]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines) if lines else "nothing labelled found"


class _Auto(enum.Enum):
    AUTO = "auto"


AUTO = _Auto.AUTO
"""Default for ``docker_client``: connect with ``docker.from_env()`` if the engine answers."""


# --------------------------------------------------------------------------- scanning


def _mtime(path: Path) -> float | None:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:
        return None


def _scan_netns() -> Iterator[Leftover]:
    for name in topo_netns.list_netns():
        run_id = run_id_from_name(name)
        if run_id is None:
            continue
        path = topo_netns.NETNS_RUN_DIR / name
        created = None
        with contextlib.suppress(OSError):
            created = path.stat().st_ctime
        yield Leftover(LeftoverKind.NETNS, name, run_id, str(path), created)


def _scan_links(notes: list[str]) -> Iterator[Leftover]:
    for name, alias in topo_netns.list_links():
        run_id = run_id_from_link(name)
        if run_id is None:
            continue
        parsed = parse_link_alias(alias)
        if alias and (parsed is None or parsed[0] != run_id):
            notes.append(f"link {name}: name looks labelled but ifalias {alias!r} disagrees; left")
            continue
        yield Leftover(LeftoverKind.LINK, name, run_id, "root netns", parsed[1] if parsed else None)


def _scan_hugepage_files(paths: ReapPaths) -> Iterator[Leftover]:
    for mount in hugetlbfs_mounts(paths.mounts_file):
        try:
            entries = list(os.scandir(mount))
        except (FileNotFoundError, PermissionError, NotADirectoryError):
            continue
        for entry in entries:
            run_id = run_id_from_name(entry.name)
            if run_id is None or not entry.is_file(follow_symlinks=False):
                continue
            yield Leftover(
                LeftoverKind.HUGEPAGE_FILE,
                entry.name,
                run_id,
                entry.path,
                entry.stat(follow_symlinks=False).st_mtime,
            )


def _scan_dirs(
    parent: Path, kind: LeftoverKind, parse: Callable[[str], str | None]
) -> Iterator[Leftover]:
    try:
        entries = list(os.scandir(parent))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        run_id = parse(entry.name)
        if run_id is None or not entry.is_dir(follow_symlinks=False):
            continue  # never follow a symlink out of the directory
        yield Leftover(
            kind, entry.name, run_id, entry.path, entry.stat(follow_symlinks=False).st_mtime
        )


def _docker_created(attrs: dict[str, Any]) -> float | None:
    text = attrs.get("Created")
    if not isinstance(text, str):
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _connect_docker(docker_client: Any, notes: list[str]) -> Any | None:
    if docker_client is None:
        notes.append("docker: not checked (no client given)")
        return None
    if docker_client is AUTO:
        try:
            import docker
        except ImportError:
            notes.append("docker: SDK not installed (pip install docker); containers not checked")
            return None
        try:
            docker_client = docker.from_env(timeout=5)
        except Exception as exc:
            notes.append(f"docker: engine not reachable ({exc}); containers not checked")
            return None
    try:
        docker_client.ping()
    except Exception as exc:
        notes.append(f"docker: engine not reachable ({exc}); containers not checked")
        return None
    return docker_client


def _scan_containers(client: Any) -> Iterator[tuple[Leftover, Any]]:
    for container in client.containers.list(all=True, filters={"label": LABEL_KEY}):
        run_id = (container.labels or {}).get(LABEL_KEY, "")
        try:
            check_run_id(run_id)
        except ValueError:
            continue
        created = _docker_created(container.attrs or {})
        yield Leftover(LeftoverKind.CONTAINER, container.name, run_id, "docker", created), container


def _scan_registry(paths: ReapPaths) -> Iterator[Leftover]:
    for run_id in registered_runs(paths.registry_dir):
        path = registry_path(run_id, paths.registry_dir)
        yield Leftover(LeftoverKind.REGISTRY, path.name, run_id, str(path), _mtime(path))


def _wanted(item: Leftover, only_runs: Collection[str] | None) -> bool:
    return only_runs is None or item.run_id in only_runs


def leftovers(
    paths: ReapPaths = ReapPaths(),
    *,
    docker_client: Any = AUTO,
    only_runs: Collection[str] | None = None,
    include_registry: bool = False,
    notes: list[str] | None = None,
) -> list[Leftover]:
    """List every labelled object present on the host, live run or not.

    Links are looked for in the caller's network namespace; links inside a labelled
    namespace belong to that namespace and go with it.

    Args:
        paths: where to look.
        docker_client: a docker SDK client, AUTO to connect from the environment, or None
            to skip containers.
        only_runs: restrict to these run ids.
        include_registry: also list registry records.
        notes: if given, receives notes (e.g. Docker not reachable).

    Returns:
        The objects, grouped by kind in `LeftoverKind` order.
    """
    notes = [] if notes is None else notes
    found: list[Leftover] = []
    client = _connect_docker(docker_client, notes)
    if client is not None:
        found += [item for item, _ in _scan_containers(client)]
    found += list(_scan_netns())
    found += list(_scan_links(notes))
    found += list(_scan_hugepage_files(paths))
    found += list(
        _scan_dirs(paths.dpdk_runtime_dir, LeftoverKind.DPDK_RUNTIME_DIR, run_id_from_name)
    )
    found += list(_scan_dirs(paths.tmp_dir, LeftoverKind.SOCKET_DIR, run_id_from_socket_dir))
    if include_registry:
        found += list(_scan_registry(paths))
    return [item for item in found if _wanted(item, only_runs)]


# --------------------------------------------------------------------------- reaping


def _verdict(
    item: Leftover, paths: ReapPaths, now: float, grace_seconds: float
) -> tuple[bool, str]:
    record = read_record(item.run_id, paths.registry_dir)
    if record is not None:
        if process_alive(record.pid, record.pid_start_time):
            return False, f"run {item.run_id} is live (pid {record.pid})"
        return True, f"run {item.run_id} is dead (pid {record.pid} gone)"
    if item.created is None:
        return False, f"run {item.run_id} has no registry record and the object's age is unknown"
    age = now - item.created
    if age >= grace_seconds:
        return True, f"run {item.run_id} has no registry record and the object is {age:.0f}s old"
    return False, (
        f"run {item.run_id} has no registry record and the object is only {age:.0f}s old"
        f" (grace {grace_seconds:.0f}s)"
    )


def _remove_path(path: Path) -> None:
    st = path.lstat()
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        path.unlink()


def reap(
    paths: ReapPaths = ReapPaths(),
    *,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    dry_run: bool = False,
    docker_client: Any = AUTO,
    only_runs: Collection[str] | None = None,
    now: float | None = None,
) -> ReapReport:
    """Remove the leftovers of dead runs; never anything unlabelled or of a live run.

    An object is ours only if its name (or Docker label) carries a run id. It is removed
    only when its run is dead: the registry names a process that is gone, or there is no
    registry record and the object is older than the grace period. Objects whose age
    cannot be known (a link without our ifalias) are kept when there is no record.

    Order: containers (they hold sockets and hugepages), namespaces (their links and
    addresses go with them), links left in this namespace, hugepage files, DPDK runtime
    directories, socket directories, and finally the registry records of dead runs that
    have nothing left.

    Args:
        paths: where to look.
        grace_seconds: minimum age of an object with no registry record.
        dry_run: report only.
        docker_client: a docker SDK client, AUTO, or None to skip containers.
        only_runs: restrict to these run ids.
        now: the current epoch time (tests).

    Returns:
        The report.
    """
    now = time.time() if now is None else now
    report = ReapReport(dry_run=dry_run)

    def handle(item: Leftover, remove: Callable[[], None]) -> None:
        if not _wanted(item, only_runs):
            return
        doomed, why = _verdict(item, paths, now, grace_seconds)
        if not doomed:
            report.kept.append((item, why))
            return
        if dry_run:
            report.removed.append(item)
            return
        try:
            remove()
        except FileNotFoundError:
            pass  # gone meanwhile (e.g. the other end of a veth)
        except Exception as exc:
            report.errors.append((item, f"{exc!r} ({why})"))
            return
        report.removed.append(item)

    client = _connect_docker(docker_client, report.notes)
    if client is not None:
        for item, container in list(_scan_containers(client)):
            handle(item, partial(container.remove, force=True, v=True))

    pids_by_netns = pyroute2_netns.ns_pids() if os.path.isdir(topo_netns.NETNS_RUN_DIR) else {}
    for item in list(_scan_netns()):
        before = len(report.removed)
        handle(item, partial(topo_netns.delete_netns, item.name))
        inside = pids_by_netns.get(item.name)
        if inside and len(report.removed) > before:
            report.notes.append(
                f"netns {item.name}: processes {sorted(inside)} were still inside (not killed);"
                " the namespace lives on until they exit"
            )

    for item in list(_scan_links(report.notes)):
        handle(item, partial(topo_netns.delete_link, item.name))
    for item in list(_scan_hugepage_files(paths)):
        handle(item, partial(_remove_path, Path(item.location)))
    for item in list(
        _scan_dirs(paths.dpdk_runtime_dir, LeftoverKind.DPDK_RUNTIME_DIR, run_id_from_name)
    ):
        handle(item, partial(_remove_path, Path(item.location)))
    for item in list(_scan_dirs(paths.tmp_dir, LeftoverKind.SOCKET_DIR, run_id_from_socket_dir)):
        handle(item, partial(_remove_path, Path(item.location)))

    # Registry records of dead runs with nothing left. Dropping a record is safe even if
    # something was not visible (e.g. Docker down): unregistered objects are still reaped
    # once older than the grace period.
    remaining: set[str] = set()
    if not dry_run:
        remaining = {
            item.run_id for item in leftovers(paths, docker_client=client, only_runs=only_runs)
        }
    for item in list(_scan_registry(paths)):
        if not _wanted(item, only_runs):
            continue
        if run_state(item.run_id, paths.registry_dir) is not RunState.DEAD:
            continue
        if item.run_id in remaining:
            report.kept.append((item, f"run {item.run_id} is dead but some objects remain"))
            continue
        if not dry_run:
            unregister_run(item.run_id, paths.registry_dir)
        report.removed.append(item)
    return report
