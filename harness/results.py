"""The result model: one canonical results.json per run, the single source every report renders.

A run has host facts, the peers (with versions), and one `CaseResult` per (scenario,
server peer, client peer). Verdicts: PASS, FAIL (the peer under test broke a rule),
ERROR (the harness could not run the case: never a conformance verdict), SKIP (with the
missing capability named) and XFAIL (a known, cited deviation of a real implementation).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


class Verdict(enum.StrEnum):
    """Outcome of one case."""

    PASS = "PASS"
    FAIL = "FAIL"
    ERROR = "ERROR"
    SKIP = "SKIP"
    XFAIL = "XFAIL"

    @property
    def severity(self) -> int:
        """Order for 'worst verdict wins': ERROR > FAIL > the rest."""
        return {"ERROR": 2, "FAIL": 1}.get(self.value, 0)


@dataclasses.dataclass(frozen=True)
class Artifact:
    """A file a case produced (trace, pcap, peer log), relative to the report directory."""

    kind: str  # "trace", "pcap", "log"
    path: str
    description: str = ""


@dataclasses.dataclass(frozen=True)
class CaseResult:
    """One scenario run against one (server, client) pair."""

    suite: str
    scenario: str
    case_id: str  # readable pytest id, e.g. handshake[testpmd-server--reference-client]
    server_peer: str
    client_peer: str
    verdict: Verdict
    reason: str = ""
    expected: str = ""
    observed: str = ""
    steps: str = ""
    verify: str = ""
    duration: float = 0.0
    artifacts: tuple[Artifact, ...] = ()
    # Decoded control messages, both directions, in order. Each entry:
    # {"direction": "c2s" | "s2c", "type": "INIT", "time": seconds, "fields": {...}}.
    trace: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        data = dataclasses.asdict(self)
        data["verdict"] = self.verdict.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaseResult:
        """Inverse of to_json."""
        fields = dict(data)
        fields["verdict"] = Verdict(fields["verdict"])
        fields["artifacts"] = tuple(Artifact(**a) for a in fields.get("artifacts", ()))
        fields["trace"] = tuple(fields.get("trace", ()))
        return cls(**fields)


@dataclasses.dataclass(frozen=True)
class PeerInfo:
    """A peer kind that took part, with its version and where it ran."""

    name: str
    version: str
    runtime: str = "local"


@dataclasses.dataclass
class RunResult:
    """Everything about one run."""

    run_id: str
    started: float
    finished: float = 0.0
    host: dict[str, Any] = dataclasses.field(default_factory=dict)
    commit: str = ""
    peers: list[PeerInfo] = dataclasses.field(default_factory=list)
    placement: dict[str, Any] = dataclasses.field(default_factory=dict)
    cases: list[CaseResult] = dataclasses.field(default_factory=list)
    measurements: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def worst(self) -> Verdict:
        """The worst verdict of the run (PASS when there are no cases)."""
        return max((case.verdict for case in self.cases), key=lambda v: v.severity,
                   default=Verdict.PASS)  # fmt: skip

    def exit_code(self) -> int:
        """0 all passed/skipped/xfailed, 1 any FAIL, 2 any ERROR."""
        return self.worst.severity

    def counts(self) -> dict[str, int]:
        """How many cases got each verdict."""
        return {v.value: sum(case.verdict is v for case in self.cases) for v in Verdict}

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (the canonical results.json content)."""
        return {
            "schema": SCHEMA_VERSION,
            "run_id": self.run_id,
            "started": self.started,
            "finished": self.finished,
            "host": self.host,
            "commit": self.commit,
            "peers": [dataclasses.asdict(peer) for peer in self.peers],
            "placement": self.placement,
            "cases": [case.to_json() for case in self.cases],
            "measurements": self.measurements,
            "counts": self.counts(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunResult:
        """Inverse of to_json; refuses an unknown schema version."""
        if data.get("schema") != SCHEMA_VERSION:
            raise ValueError(
                f"results.json schema {data.get('schema')!r}, expected {SCHEMA_VERSION}"
            )
        return cls(
            run_id=data["run_id"],
            started=data["started"],
            finished=data.get("finished", 0.0),
            host=data.get("host", {}),
            commit=data.get("commit", ""),
            peers=[PeerInfo(**peer) for peer in data.get("peers", [])],
            placement=data.get("placement", {}),
            cases=[CaseResult.from_json(case) for case in data.get("cases", [])],
            measurements=data.get("measurements", []),
        )

    def write(self, path: Path) -> None:
        """Write results.json atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".json.tmp")
        # Key order is already deterministic; keeping it shows message fields in wire order.
        temporary.write_text(json.dumps(self.to_json(), indent=2))
        temporary.replace(path)

    @classmethod
    def read(cls, path: Path) -> RunResult:
        """Load a results.json."""
        return cls.from_json(json.loads(path.read_text()))


def host_facts() -> dict[str, Any]:
    """What the report says about the machine."""
    import os

    return {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def project_commit(root: Path | None = None) -> str:
    """The project's git commit, or '' outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root or Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""
