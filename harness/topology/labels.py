"""Run ids, the label every object a run creates carries, and the per-run registry of live runs."""

from __future__ import annotations

import contextlib
import enum
import json
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

RUN_ID_LENGTH = 8
LABEL_KEY = "memif-harness.run"
"""Docker label key (and ifalias key) whose value is the run id."""

IFNAMSIZ_MAX = 15
"""Longest Linux interface name (IFNAMSIZ 16 including the NUL)."""

LINK_PREFIX = "mh"
LINK_SUFFIX_MAX = IFNAMSIZ_MAX - len(LINK_PREFIX) - RUN_ID_LENGTH
"""Characters left for a link's suffix after ``mh`` and the full run id (5)."""

NAME_PREFIX = "memif"
SOCKET_DIR_PREFIX = "memif-harness"
DEFAULT_REGISTRY_DIR = Path("/run/memif-harness")
DEFAULT_TMP_DIR = Path("/tmp")

_RUN_ID_RE = re.compile(r"^[0-9a-f]{8}$")
_ROLE_RE = re.compile(r"^[a-z0-9][a-z0-9_.]{0,31}$")
_LINK_SUFFIX_RE = re.compile(rf"^[a-z0-9]{{1,{LINK_SUFFIX_MAX}}}$")
_NAME_RE = re.compile(r"^memif-([0-9a-f]{8})-[a-z0-9]")
_SOCKET_DIR_RE = re.compile(r"^memif-harness-([0-9a-f]{8})-")
_LINK_RE = re.compile(rf"^mh([0-9a-f]{{8}})[a-z0-9]{{1,{LINK_SUFFIX_MAX}}}$")
_ALIAS_RE = re.compile(r"^memif-harness\.run=([0-9a-f]{8})(?: created=(\d+(?:\.\d+)?))?$")


class LabelError(ValueError):
    """A run id, role or suffix does not fit the labelling scheme."""


_ISSUED: set[str] = set()


def new_run_id() -> str:
    """Return a fresh random run id (8 lowercase hex digits)."""
    run_id = secrets.token_hex(RUN_ID_LENGTH // 2)
    _ISSUED.add(run_id)
    return run_id


def issued_run_ids() -> frozenset[str]:
    """Every run id this process made (to check that it cleaned up after itself)."""
    return frozenset(_ISSUED)


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` unchanged if it is well formed.

    Raises:
        LabelError: if it is not exactly 8 lowercase hex digits.
    """
    if not _RUN_ID_RE.match(run_id):
        raise LabelError(f"run id must be {RUN_ID_LENGTH} lowercase hex digits, got {run_id!r}")
    return run_id


def _check_role(role: str) -> str:
    if not _ROLE_RE.match(role):
        raise LabelError(
            f"role must match {_ROLE_RE.pattern} (lowercase letters, digits, '_' or '.'),"
            f" got {role!r}"
        )
    return role


def parse_run_id(name: str) -> str | None:
    """Return the run id a labelled name carries, or None if it carries none.

    Understands every form this module produces: namespace, DPDK prefix and container
    names (``memif-<runid>-...``, including DPDK hugepage file names that start with the
    prefix), socket directory names (``memif-harness-<runid>-...``, bare or as a path) and
    link names (``mh<runid><suffix>``).

    Args:
        name: an object name, or a path whose last component is one.
    """
    base = os.path.basename(name.rstrip("/")) if "/" in name else name
    for pattern in (_SOCKET_DIR_RE, _NAME_RE, _LINK_RE):
        match = pattern.match(base)
        if match:
            return match.group(1)
    return None


def run_id_from_name(name: str) -> str | None:
    """Run id of a namespace, DPDK prefix (or hugepage file), or container name."""
    match = _NAME_RE.match(name)
    return match.group(1) if match else None


def run_id_from_socket_dir(name: str) -> str | None:
    """Run id of a socket directory's name (``memif-harness-<runid>-...``)."""
    match = _SOCKET_DIR_RE.match(name)
    return match.group(1) if match else None


def run_id_from_link(name: str) -> str | None:
    """Run id of an interface name (``mh<runid><suffix>``)."""
    match = _LINK_RE.match(name)
    return match.group(1) if match else None


def link_alias(run_id: str, created: float | None = None) -> str:
    """Return the ``ifalias`` a link of ``run_id`` carries (label plus creation time)."""
    check_run_id(run_id)
    stamp = int(time.time() if created is None else created)
    return f"{LABEL_KEY}={run_id} created={stamp}"


def parse_link_alias(alias: str | None) -> tuple[str, float | None] | None:
    """Return (run id, creation epoch or None) from a link alias, or None if not ours."""
    if not alias:
        return None
    match = _ALIAS_RE.match(alias)
    if not match:
        return None
    created = float(match.group(2)) if match.group(2) else None
    return match.group(1), created


@dataclass(frozen=True)
class RunLabel:
    """The names one run gives to everything it creates.

    Every name embeds the run id (8 lowercase hex digits), so `reap` can tell our objects
    from everyone else's and match them to the run that made them:

    - network namespace: ``memif-<runid>-<role>`` (memif-1a2b3c4d-server)
    - link (veth/TAP): ``mh<runid><suffix>``, at most 15 characters (mh1a2b3c4ds0)
    - socket directory: ``/tmp/memif-harness-<runid>-<purpose>-*``, mode 0700
    - DPDK file prefix: ``memif-<runid>-<role>`` (hugepage files start with it)
    - container: name ``memif-<runid>-<role>``, label ``memif-harness.run=<runid>``

    Links also carry the ifalias ``memif-harness.run=<runid> created=<epoch>`` (their age
    for `reap`).

    Attributes:
        run_id: 8 lowercase hex digits.
    """

    run_id: str

    def __post_init__(self) -> None:
        check_run_id(self.run_id)

    @classmethod
    def new(cls) -> RunLabel:
        """Return a label with a fresh random run id."""
        return cls(new_run_id())

    def netns(self, role: str) -> str:
        """Network namespace name for ``role``: ``memif-<runid>-<role>``."""
        return f"{NAME_PREFIX}-{self.run_id}-{_check_role(role)}"

    def link(self, suffix: str) -> str:
        """Interface name ``mh<runid><suffix>``; the suffix is 1-5 lowercase letters/digits.

        Raises:
            LabelError: if the suffix would break the 15-character kernel limit.
        """
        if not _LINK_SUFFIX_RE.match(suffix):
            raise LabelError(
                f"link suffix must be 1-{LINK_SUFFIX_MAX} lowercase letters/digits"
                f" (15-char interface name limit), got {suffix!r}"
            )
        return f"{LINK_PREFIX}{self.run_id}{suffix}"

    def link_alias(self) -> str:
        """The ``ifalias`` to set on every link this run creates."""
        return link_alias(self.run_id)

    def dpdk_prefix(self, role: str) -> str:
        """DPDK ``--file-prefix`` for ``role``: ``memif-<runid>-<role>``."""
        return f"{NAME_PREFIX}-{self.run_id}-{_check_role(role)}"

    def container_name(self, role: str) -> str:
        """Container name for ``role``: ``memif-<runid>-<role>``."""
        return f"{NAME_PREFIX}-{self.run_id}-{_check_role(role)}"

    def container_labels(self) -> dict[str, str]:
        """Docker labels for every container of this run."""
        return {LABEL_KEY: self.run_id}

    def socket_dir_prefix(self, purpose: str) -> str:
        """Directory name prefix ``memif-harness-<runid>-<purpose>-``."""
        return f"{SOCKET_DIR_PREFIX}-{self.run_id}-{_check_role(purpose)}-"

    def make_socket_dir(
        self, purpose: str = "sock", tmp_dir: Path = DEFAULT_TMP_DIR, group: int | None = None
    ) -> Path:
        """Create a fresh directory ``<tmp_dir>/memif-harness-<runid>-<purpose>-*``.

        Its mode is 0700 (only this user reaches the sockets in it), or 0750 with `group`
        as its group (members may reach them too: see `socket_group_id`).

        Args:
            purpose: what the directory is for (a role-like word).
            tmp_dir: parent directory, /tmp unless a test says otherwise.
            group: a group id that may use the directory, or None for nobody else.

        Returns:
            The new directory's path.
        """
        path = Path(tempfile.mkdtemp(prefix=self.socket_dir_prefix(purpose), dir=tmp_dir))
        if group is None:
            os.chmod(path, 0o700)  # mkdtemp already does; keep the promise explicit
        else:
            os.chown(path, -1, group)
            os.chmod(path, 0o750)
        return path


def socket_group_id(group: str | int) -> int:
    """The group id of a group name or number (for `--socket-group`).

    Raises:
        LabelError: there is no such group.
    """
    import grp

    try:
        entry = grp.getgrgid(group) if isinstance(group, int) else grp.getgrnam(group)
    except KeyError:
        if isinstance(group, str) and group.isdigit():
            return socket_group_id(int(group))
        raise LabelError(f"socket group {group!r}: no such group on this host") from None
    return entry.gr_gid


# --------------------------------------------------------------------------- registry
# /run/memif-harness/<runid>.json names the creating process (pid and its start time, so a
# recycled pid is not mistaken for the run): a run whose process is gone is dead.


class RunState(enum.Enum):
    """What the registry says about a run id."""

    LIVE = "live"
    """A registry record exists and its creator process is still running."""
    DEAD = "dead"
    """A registry record exists but its creator process is gone."""
    UNREGISTERED = "unregistered"
    """No (readable) registry record: only an age rule can decide."""


@dataclass(frozen=True)
class RunRecord:
    """One registry file's content.

    Attributes:
        run_id: the run.
        pid: the creating process.
        pid_start_time: the creator's start time in clock ticks since boot (field 22 of
            /proc/<pid>/stat), or None if unknown; guards against pid reuse.
        created: wall-clock epoch seconds when the run registered.
    """

    run_id: str
    pid: int
    pid_start_time: int | None
    created: float


def process_start_time(pid: int) -> int | None:
    """Return a process's start time (clock ticks since boot), or None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])  # field 22 overall; fields here start at field 3


def process_alive(pid: int, start_time: int | None = None) -> bool:
    """Return True if ``pid`` exists (and, if given, started at ``start_time``).

    A zombie counts as dead: it will never clean up anything again.
    """
    if pid <= 0:
        return False
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    for line in status.splitlines():
        if line.startswith("State:"):
            if line.split()[1] in ("Z", "X"):  # zombie or dead
                return False
            break
    return start_time is None or process_start_time(pid) == start_time


def registry_path(run_id: str, registry_dir: Path = DEFAULT_REGISTRY_DIR) -> Path:
    """Path of ``run_id``'s registry file."""
    return registry_dir / f"{check_run_id(run_id)}.json"


def register_run(
    run_id: str, registry_dir: Path = DEFAULT_REGISTRY_DIR, pid: int | None = None
) -> Path:
    """Write the registry file for ``run_id`` naming ``pid`` (default: this process).

    Returns:
        The registry file's path.
    """
    pid = os.getpid() if pid is None else pid
    record = RunRecord(
        run_id=check_run_id(run_id),
        pid=pid,
        pid_start_time=process_start_time(pid),
        created=time.time(),
    )
    registry_dir.mkdir(parents=True, exist_ok=True)
    path = registry_path(run_id, registry_dir)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(asdict(record)))
    tmp.replace(path)
    return path


def unregister_run(run_id: str, registry_dir: Path = DEFAULT_REGISTRY_DIR) -> None:
    """Remove ``run_id``'s registry file if present."""
    with contextlib.suppress(FileNotFoundError):
        registry_path(run_id, registry_dir).unlink()


def read_record(run_id: str, registry_dir: Path = DEFAULT_REGISTRY_DIR) -> RunRecord | None:
    """Return ``run_id``'s registry record, or None if missing or unreadable."""
    try:
        data = json.loads(registry_path(run_id, registry_dir).read_text())
        return RunRecord(
            run_id=str(data["run_id"]),
            pid=int(data["pid"]),
            pid_start_time=None
            if data.get("pid_start_time") is None
            else int(data["pid_start_time"]),
            created=float(data["created"]),
        )
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def registered_runs(registry_dir: Path = DEFAULT_REGISTRY_DIR) -> list[str]:
    """Return the run ids that have a registry file."""
    if not registry_dir.is_dir():
        return []
    return sorted(
        p.stem for p in registry_dir.glob("*.json") if _RUN_ID_RE.match(p.stem) is not None
    )


def run_state(run_id: str, registry_dir: Path = DEFAULT_REGISTRY_DIR) -> RunState:
    """Tell whether ``run_id`` is live, dead, or unknown to the registry."""
    record = read_record(run_id, registry_dir)
    if record is None:
        return RunState.UNREGISTERED
    if process_alive(record.pid, record.pid_start_time):
        return RunState.LIVE
    return RunState.DEAD


@contextlib.contextmanager
def registered_run(
    label: RunLabel | None = None, registry_dir: Path = DEFAULT_REGISTRY_DIR
) -> Iterator[RunLabel]:
    """Register a run for the duration of a ``with`` block and yield its label.

    The record is removed on exit. If the process dies instead, the record stays and
    names a dead pid, so `reap` removes the run's leftovers at once; leftovers of a run
    that exited normally but failed to clean up are reaped after the grace period.
    """
    label = RunLabel.new() if label is None else label
    register_run(label.run_id, registry_dir)
    try:
        yield label
    finally:
        unregister_run(label.run_id, registry_dir)
