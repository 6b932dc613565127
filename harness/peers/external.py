"""Any other memif implementation as a peer, from a user-supplied command template.

Example: `mypeer --role {role} --socket {socket} --id {id} --secret {secret}`. Readiness
and link state come from regular expressions over the program's output; counters from
an optional regex with named groups (rx_frames, rx_bytes, tx_frames, tx_bytes).
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import string
import time
from pathlib import Path

from harness.peers.base import MemifSpec, Peer, PeerCounters, PeerError, PeerStatus, Role
from harness.peers.reasons import normalise
from harness.runtime.local import LocalProcess, ProcessError

PLACEHOLDERS = frozenset(
    {"role", "vpp_role", "socket", "id", "secret", "rsize", "ring_size", "bsize", "queues",
     "frame_size", "activity", "workdir", "rx_mode"}
)  # fmt: skip
_COUNTER_FIELDS = ("rx_frames", "rx_bytes", "tx_frames", "tx_bytes", "rx_errors", "tx_errors")


class TemplateError(ValueError):
    """The command template or one of its regexes is unusable."""


@dataclasses.dataclass(frozen=True)
class ExternalCommand:
    """How to run and read a user's memif program."""

    template: str
    ready: str = r"."  # printed once the program listens / has connected
    link_up: str | None = None  # printed when the link comes up (default: ready)
    counters: str | None = None  # named groups from _COUNTER_FIELDS; last match wins
    disconnect: str | None = r"(?i)disconnect(?:ed)?(?: reason)?:\s*(?P<reason>.+)$"
    name: str = "external"

    def __post_init__(self) -> None:
        fields = {name for _, name, _, _ in string.Formatter().parse(self.template) if name}
        unknown = fields - PLACEHOLDERS
        if unknown:
            raise TemplateError(
                f"unknown placeholder(s) {sorted(unknown)} in {self.template!r}; "
                f"known: {sorted(PLACEHOLDERS)}"
            )
        for label, pattern in (
            ("ready", self.ready),
            ("link_up", self.link_up),
            ("counters", self.counters),
            ("disconnect", self.disconnect),
        ):
            if pattern is None:
                continue
            try:
                compiled = re.compile(pattern, re.MULTILINE)
            except re.error as exc:
                raise TemplateError(f"{label} regex {pattern!r}: {exc}") from exc
            if label == "counters" and not set(compiled.groupindex) & set(_COUNTER_FIELDS):
                raise TemplateError(f"counters regex needs a group among {_COUNTER_FIELDS}")

    def argv(self, spec: MemifSpec, workdir: Path) -> list[str]:
        """The command for a spec: placeholders filled, then split like a shell would."""
        values = {
            "role": spec.role.value,
            "vpp_role": "master" if spec.role is Role.SERVER else "slave",
            "socket": spec.socket_path,
            "id": spec.interface_id,
            "secret": spec.secret or "",
            "rsize": spec.log2_ring_size,
            "ring_size": 1 << spec.log2_ring_size,
            "bsize": spec.buffer_size,
            "queues": spec.queues,
            "frame_size": spec.frame_size,
            "activity": spec.activity.value,
            "workdir": str(workdir),
            "rx_mode": "interrupt" if spec.interrupt else "poll",
        }
        quoted = {key: shlex.quote(str(value)) for key, value in values.items()}
        return shlex.split(self.template.format(**quoted))


class ExternalPeer(Peer):
    """A user's memif program run locally through a command template."""

    kind = "external"

    def __init__(
        self, spec: MemifSpec, workdir: Path, command: ExternalCommand, *, cpu: int | None = None
    ) -> None:
        super().__init__(spec, workdir, cpu=cpu)
        self.command = command
        self.process: LocalProcess | None = None

    def start(self) -> None:
        """Run the command and wait for its readiness line."""
        log = self.workdir / f"{self.command.name}-{self.spec.role.value}.log"
        try:
            self.process = LocalProcess(
                self.command.argv(self.spec, self.workdir), log, cpu=self.cpu
            )
            self.process.wait_for_output(self.command.ready, 15.0)
        except ProcessError as exc:
            raise PeerError(f"{self.command.name} did not start", str(exc)) from exc

    def wait_for_link(self, timeout: float) -> bool:
        """Poll the output for the link-up line."""
        pattern = re.compile(self.command.link_up or self.command.ready, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while not pattern.search(self.logs()):
            if time.monotonic() > deadline or not self._running():
                return False
            time.sleep(0.02)
        return True

    def _running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def status(self) -> PeerStatus:
        """What the output says: link line seen, last counters line, last disconnect line."""
        text = self.logs()
        counters = PeerCounters()
        if self.command.counters:
            matches = list(re.finditer(self.command.counters, text, re.MULTILINE))
            if matches:
                groups = {k: int(v) for k, v in matches[-1].groupdict().items() if v}
                counters = PeerCounters(**{k: groups.get(k, 0) for k in _COUNTER_FIELDS})
        reason = None
        if self.command.disconnect:
            found = re.findall(self.command.disconnect, text, re.MULTILINE)
            reason = found[-1].strip() if found else None
        up_pattern = self.command.link_up or self.command.ready
        link_seen = re.search(up_pattern, text, re.MULTILINE) is not None
        return PeerStatus(
            link_up=link_seen and self._running() and reason is None,
            counters=counters,
            disconnect=normalise(reason) if reason else None,
            disconnect_text=reason,
            running=self._running(),
        )

    def logs(self) -> str:
        """The program's output so far."""
        return self.process.log_text() if self.process else ""

    def version(self) -> str:
        """External programs report no version; the template names them."""
        return f"{self.command.name} ({shlex.split(self.command.template)[0]})"

    def stop(self) -> None:
        """Stop the program by its process group."""
        if self.process is not None:
            self.process.stop()

    @property
    def crashed(self) -> bool:
        """Whether the program died by a signal nobody sent."""
        return self.process is not None and self.process.crashed
