"""The reference implementation (memif-ref) as a harness peer, run as a local process.

memif-ref keeps a status file (link state, counters, disconnect reason) that this
adapter reads; its activity maps to a memif-ref action, always bounded by a timeout.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from harness.peers.base import (
    Activity,
    CheckReport,
    LinkParameters,
    MemifSpec,
    Peer,
    PeerCounters,
    PeerError,
    PeerStatus,
    Role,
    TrialCounts,
)
from harness.peers.reasons import normalise
from harness.runtime.local import LocalProcess, ProcessError
from harness.topology.numa import Placement

LIFETIME = 600.0  # seconds; memif-ref stops by itself after this whatever happens
SOURCE_COUNT_BOUND = 10**12  # frames; a source also stops at its lifetime (or --seconds)
TRIAL_GRACE = 20.0  # seconds a trial may take beyond its duration (drain, status update)
_POLL = 0.02


def memif_ref_argv(
    spec: MemifSpec,
    status_path: Path,
    lifetime: float = LIFETIME,
    pcap_path: Path | None = None,
    faults: tuple[str, ...] = (),
    trial_plan: Path | None = None,
) -> list[str]:
    """The memif-ref command line for a spec (memif-ref's own CLI contract).

    With `pcap_path`, memif-ref writes the frames it sends and receives there (at most
    memif-ref's default --pcap-limit frames).
    """
    argv = [
        sys.executable, "-m", "reference_impl.cli", spec.role.value,
        "--socket", spec.socket_path,
        "--id", str(spec.interface_id),
        "--rsize", str(spec.log2_ring_size),
        "--bsize", str(spec.buffer_size),
        "--queues", str(spec.queues),
        "--timeout", str(spec.lifetime or lifetime),
        "--status", str(status_path),
        "--json",
    ]  # fmt: skip
    if spec.abstract:
        argv.append("--abstract")
    if spec.interrupt:
        argv.append("--interrupt")
    if spec.mode != "ethernet":
        argv += ["--mode", spec.mode]
    if pcap_path is not None:
        argv += ["--pcap", str(pcap_path)]
    for fault in faults:
        argv += ["--fault", fault]
    if spec.secret:
        argv += ["--secret", spec.secret]
    if spec.zero_copy and spec.role is Role.CLIENT:
        # A server has no zero-copy mode of its own (DPDK's server ignores the devarg
        # too): it maps whatever memory the client announces, zero-copy layouts included.
        argv.append("--zero-copy")
    action = {
        Activity.ECHO: ["responder"],
        Activity.IDLE: ["responder"],
        Activity.SINK: ["sink"],
        Activity.SOURCE: _source_args(spec, trial_plan),
        Activity.FORWARD: ["forward", "--iface", spec.iface] if spec.iface else ["forward"],
        Activity.VERIFY: [
            "check",
            "--count",
            str(spec.frame_count),
            "--sizes",
            ",".join(str(size) for size in spec.frame_sizes or (spec.frame_size,)),
            "--window",
            str(spec.window),
        ],
    }.get(spec.activity)
    if action is None:
        raise PeerError(f"memif-ref cannot {spec.activity.value}")
    return argv + action


def _source_args(spec: MemifSpec, trial_plan: Path | None) -> list[str]:
    """memif-ref `source`: as fast as the ring takes frames, or paced, bounded in time, or
    in trials on request (`--trials PLAN`)."""
    args = ["source", "--count", str(SOURCE_COUNT_BOUND), "--size", str(spec.frame_size)]
    if spec.trials:
        if trial_plan is None:
            raise PeerError("a trial source needs the path of its trial plan")
        return [*args, "--trials", str(trial_plan)]
    if spec.rate is not None:
        args += ["--rate", f"{spec.rate:.3f}"]
    if spec.seconds is not None:
        args += ["--seconds", f"{spec.seconds:.3f}"]
    return args


def _write_atomically(path: Path, content: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(content))
    temporary.replace(path)


class ReferencePeer(Peer):
    """memif-ref in a local process."""

    kind = "reference"

    def __init__(
        self,
        spec: MemifSpec,
        workdir: Path,
        *,
        cpu: int | None = None,
        placement: Placement | None = None,
        faults: tuple[str, ...] = (),
    ) -> None:
        """See Peer; `faults` are memif-ref's deliberate misbehaviours (test-only)."""
        super().__init__(spec, workdir, cpu=cpu, placement=placement)
        self.faults = faults
        self.status_path = workdir / f"reference-{spec.role.value}.status.json"
        self.pcap_path = workdir / f"reference-{spec.role.value}.pcap"
        self.trial_plan = workdir / f"reference-{spec.role.value}.trials.json"
        self._trial_id = 0
        self.process: LocalProcess | None = None

    def start(self) -> None:
        """Start memif-ref; a server is ready once its socket exists, a client at once."""
        argv = memif_ref_argv(
            self.spec,
            self.status_path,
            pcap_path=self._capture_path(),
            faults=self.faults,
            trial_plan=self.trial_plan,
        )
        log = self.workdir / f"reference-{self.spec.role.value}.log"
        try:
            self.process = LocalProcess(argv, log, cpu=self.cpu, placement=self.placement)
            self.process.wait_for(self.status_path.exists, 15.0, "a status file")
        except ProcessError as exc:
            raise PeerError("memif-ref did not start", str(exc)) from exc

    def _capture_path(self) -> Path | None:
        """Where memif-ref writes its pcap (None: the spec asks for no capture)."""
        return self.pcap_path if self.spec.capture else None

    def _status(self) -> dict[str, Any]:
        try:
            loaded: dict[str, Any] = json.loads(self.status_path.read_text())
            return loaded
        except (OSError, ValueError):
            return {}

    def wait_for_link(self, timeout: float) -> bool:
        """Poll the status file until the link is up."""
        deadline = time.monotonic() + timeout
        while not self._status().get("link_up"):
            if time.monotonic() > deadline or (
                self.process and self.process.returncode is not None
            ):
                return False
            time.sleep(_POLL)
        return True

    def status(self) -> PeerStatus:
        """What memif-ref last published."""
        raw = self._status()
        counters = raw.get("counters") or {}
        text = raw.get("disconnect_reason") or ((raw.get("refusals") or [None])[-1])
        return PeerStatus(
            link_up=bool(raw.get("link_up")),
            counters=PeerCounters(
                rx_frames=counters.get("rx_frames", 0),
                rx_bytes=counters.get("rx_bytes", 0),
                tx_frames=counters.get("tx_frames", 0),
                tx_bytes=counters.get("tx_bytes", 0),
                rx_errors=counters.get("rx_errors", 0),
                tx_errors=counters.get("tx_errors", 0),
            ),
            disconnect=normalise(text) if text else None,
            disconnect_text=text,
            running=self.process is not None and self.process.returncode is None,
            time=raw.get("time"),
        )

    def run_trial(self, seconds: float, rate: float | None) -> TrialCounts:
        """Ask memif-ref's trial source for one trial and wait for its counts.

        Raises:
            PeerError: the spec is no trial source, or no result within the trial's
                time plus TRIAL_GRACE (the log tail says why).
        """
        if not self.spec.trials or self.process is None:
            raise PeerError("run_trial needs a started SOURCE with trials=True")
        self._trial_id += 1
        _write_atomically(self.trial_plan, {"id": self._trial_id, "rate": rate, "seconds": seconds})
        deadline = time.monotonic() + seconds + TRIAL_GRACE
        while True:
            trial = self._status().get("trial") or {}
            if trial.get("id") == self._trial_id:
                return TrialCounts(
                    int(trial["sent"]), int(trial["unsent"]), float(trial["elapsed"])
                )
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise PeerError(
                    f"memif-ref ran no trial {self._trial_id} ({seconds:g} s at "
                    f"{rate or 'full'} fps)",
                    self.process.log_tail(),
                )
            time.sleep(_POLL)

    def negotiated(self) -> LinkParameters | None:
        """What memif-ref published for its link (rings, ring size, buffer size)."""
        raw = self._status().get("negotiated")
        if not raw:
            return None
        return LinkParameters(
            raw["c2s_rings"], raw["s2c_rings"], raw["ring_size"], raw.get("buffer_size")
        )

    def check_report(self) -> CheckReport | None:
        """The tally memif-ref's `check` action published (None before it started)."""
        raw = self._status().get("check")
        if not raw:
            return None
        return CheckReport(
            count=raw["count"],
            sent=raw["sent"],
            matched=raw["matched"],
            mismatched=raw["mismatched"],
            missing=raw["missing"],
            foreign=raw["foreign"],
            first_mismatch=raw["first_mismatch"],
            done=raw["done"],
        )

    def layout_report(self) -> dict[str, Any] | None:
        """A memif-ref server's report on its last client's memory (None for a client)."""
        report: dict[str, Any] | None = self._status().get("peer_layout")
        return report

    def violations_seen(self) -> dict[str, int] | None:
        """Indices memif-ref saw its peer publish inside a chain (fact sheet §5.5)."""
        counters = self._status().get("counters")
        if not counters:
            return None
        return {"index published inside a chain": int(counters.get("rx_open_chains", 0))}

    def frame_capture(self) -> Path | None:
        """The pcap memif-ref writes (every frame both ways, in order), once it started."""
        if self.process is None or self._capture_path() is None:
            return None
        return self.pcap_path

    def logs(self) -> str:
        """memif-ref's output so far."""
        return self.process.log_text() if self.process else ""

    def version(self) -> str:
        """The package version of the reference implementation."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"memif-ref {version('memif-harness')}"
        except PackageNotFoundError:
            return "memif-ref (not installed)"

    def stop(self) -> None:
        """Stop memif-ref (it sends DISCONNECT on SIGTERM) and remove its status file."""
        if self.process is not None:
            self.process.stop()
        self.status_path.unlink(missing_ok=True)
        self.trial_plan.unlink(missing_ok=True)

    @property
    def crashed(self) -> bool:
        """Whether memif-ref died by a signal nobody sent."""
        return self.process is not None and self.process.crashed
