"""The pytest plugin that makes scenarios a conformance run: pairs, verdicts, results.json.

Use: `pytest -p scenarios.plugin scenarios/ --peers reference,testpmd --report-dir DIR`.
Every scenario runs once per (server kind, client kind) pair; its outcome becomes a Verdict
and `DIR/results.json` (harness.results.RunResult) is written when the session ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import signal
import sys
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from harness.errors import LogTailError
from harness.peers.base import MemifSpec, PeerCrashed, Role
from harness.results import (
    CaseResult,
    PeerInfo,
    RunResult,
    Verdict,
    host_facts,
    project_commit,
)
from harness.topology.labels import (
    LabelError,
    RunLabel,
    RunState,
    registered_run,
    run_state,
    socket_group_id,
)
from harness.traffic.bench import BENCH_CASE_MARGIN, point_budget
from harness.traffic.bench_point import (
    DEFAULT_FRAME_SIZES,
    BenchCase,
    BenchMode,
    BenchPoint,
    BenchTopology,
    bench_points,
    parse_cases,
    parse_directions,
    parse_frame_sizes,
)
from scenarios import api

RESULTS_FILE = "results.json"
RUNTIMES = api.RUNTIMES
DEFAULT_CASE_TIMEOUT = 120.0
_LOG_LINE_MAX = 200
"""Characters of a program's last log line quoted in an ERROR's reason."""
_VERDICT_ORDER = (Verdict.PASS, Verdict.SKIP, Verdict.XFAIL, Verdict.FAIL, Verdict.ERROR)


def pytest_addoption(parser: pytest.Parser) -> None:
    """--peers, --report-dir, --runtime, --case-timeout."""
    group = parser.getgroup("memif", "memif conformance scenarios")
    group.addoption(
        "--peers",
        default=None,
        help="comma-separated peer kinds that take part "
        f"({', '.join(api.PEER_KINDS)}); default: reference, plus testpmd when "
        "dpdk-testpmd is on PATH",
    )
    group.addoption(
        "--pairs",
        default=None,
        help="comma-separated SERVER:CLIENT kind pairs to run (default: every pair of --peers)",
    )
    group.addoption("--report-dir", default=None, help="write results.json and artifacts here")
    group.addoption("--runtime", default="local", help=f"where peers run: {', '.join(RUNTIMES)}")
    group.addoption(
        "--run-id",
        default=None,
        help="use this run id (8 lowercase hex digits) instead of a fresh one, so a caller "
        "knows what the run labels even when it fails (memif-harness soak)",
    )
    group.addoption(
        "--socket-group",
        default=None,
        help="group (name or id) that may reach the cases' sockets: their directories get "
        "mode 0750 and this group instead of mode 0700",
    )
    bench = parser.getgroup("memif-throughput", "memif throughput suite (memif-harness bench)")
    bench.addoption(
        "--bench-case",
        default=",".join(c.value for c in BenchCase),
        help="comma-separated cases: " + ", ".join(c.value for c in BenchCase),
    )
    bench.addoption("--bench-topology", default="memif", choices=[t.value for t in BenchTopology])
    bench.addoption("--bench-direction", default="c2s", help="c2s, s2c or both")
    bench.addoption("--bench-frame-size", default=",".join(map(str, DEFAULT_FRAME_SIZES)))
    bench.addoption("--bench-mode", default="mrr", choices=[m.value for m in BenchMode])
    bench.addoption("--bench-duration", type=float, default=1.0, help="seconds per trial")
    bench.addoption("--bench-trials", type=int, default=3, help="MRR trials per point")
    bench.addoption(
        "--bench-repeats",
        type=int,
        default=1,
        help="NDR/PDR searches per point (the median is reported, the spread kept)",
    )
    group.addoption(
        "--case-timeout",
        type=float,
        default=DEFAULT_CASE_TIMEOUT,
        help="seconds each setup and call phase may take before it is a harness ERROR",
    )


def parse_peer_kinds(text: str | None) -> tuple[str, ...]:
    """The peer kinds of `--peers` (default kinds when not given).

    Raises:
        pytest.UsageError: an unknown kind, or none at all.
    """
    if text is None:
        return api.default_peer_kinds()
    kinds = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [kind for kind in kinds if not api.is_peer_kind(kind)]
    if unknown or not kinds:
        raise pytest.UsageError(
            f"--peers {text!r}: unknown kind(s) {unknown or '(none given)'}; "
            f"known: {', '.join(api.PEER_KINDS)}"
        )
    return kinds


def selected_pairs(kinds: tuple[str, ...], text: str | None) -> list[tuple[str, str]]:
    """Every (server, client) pair of `kinds`, or the `--pairs` among them, in that order.

    Raises:
        pytest.UsageError: a pair is malformed or names a kind that is not in --peers.
    """
    every = [(server, client) for server in kinds for client in kinds]
    if text is None:
        return every
    chosen = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        server, colon, client = item.partition(":")
        if not colon or (server, client) not in every:
            raise pytest.UsageError(
                f"--pairs {item!r}: expected SERVER:CLIENT with both kinds in --peers "
                f"({', '.join(kinds)})"
            )
        chosen.append((server, client))
    if not chosen:
        raise pytest.UsageError(f"--pairs {text!r}: no pair given")
    return chosen


def pair_id(server_kind: str, client_kind: str) -> str:
    """The readable id of a pair: `testpmd-server--reference-client`."""
    return f"{server_kind}-server--{client_kind}-client"


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers, the scenario API's fixtures and this run's state."""
    config.addinivalue_line(
        "markers", f"{api.REQUIRES_MARK}(*capabilities): the scenario needs these capabilities"
    )
    config.addinivalue_line(
        "markers",
        f"{api.DEVIATION_MARK}(peer_kind, role, citation, crash=False): a known, cited peer "
        "deviation (crash=True: a crash of that peer is excused too)",
    )
    config.addinivalue_line(
        "markers",
        f"{api.FIXED_CLIENT_MARK}(kind): the client is a tool of the scenario, always of this "
        "kind; the scenario runs once per server kind",
    )
    runtime = config.getoption("--runtime")
    if runtime not in RUNTIMES:
        raise pytest.UsageError(f"--runtime {runtime!r}: peers run {' or '.join(RUNTIMES)}")
    kinds = parse_peer_kinds(config.getoption("--peers"))
    report_dir = config.getoption("--report-dir")
    run = ScenarioRun(
        config,
        kinds,
        Path(report_dir).resolve() if report_dir else None,
        runtime,
        config.getoption("--case-timeout"),
    )
    config.pluginmanager.register(api, "scenarios.api")
    config.pluginmanager.register(run, "scenarios.run")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """The hooks this plugin calls on listeners (scenarios.hookspecs)."""
    from scenarios import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the run's containers, unregister the run id (other objects went case by case)."""
    run = config.pluginmanager.get_plugin("scenarios.run")
    if isinstance(run, ScenarioRun):
        run.close()


@dataclasses.dataclass
class _Phase:
    """The verdict one phase (setup, call, teardown) of a case produced."""

    verdict: Verdict
    reason: str = ""
    observed: str = ""


@dataclasses.dataclass(frozen=True)
class CaseStarted:
    """A case that begins, as listeners see it (scenarios.hookspecs).

    Attributes:
        suite: Suite name ("handshake").
        scenario: Scenario function name.
        case_id: The readable case id (scenario and pair), as in its CaseResult.
        server_peer: Server peer kind ("" for a case that is not a pair).
        client_peer: Client peer kind.
        number: Its position in the run, from 1.
        total: How many cases the run has, as far as known.
    """

    suite: str
    scenario: str
    case_id: str
    server_peer: str
    client_peer: str
    number: int
    total: int


_PHASES_KEY = pytest.StashKey[dict[str, _Phase]]()
_DURATION_KEY = pytest.StashKey[float]()
_SECTIONS_KEY = pytest.StashKey[dict[str, str]]()


class ScenarioRun:
    """One run's state and hooks (one instance per pytest session)."""

    def __init__(
        self,
        config: pytest.Config,
        kinds: tuple[str, ...],
        report_dir: Path | None,
        runtime: str,
        case_timeout: float,
    ) -> None:
        socket_group = _socket_group(config)  # refuse a bad group before registering
        label = _run_label(config)
        self.config = config
        self.kinds = kinds
        self.report_dir = report_dir
        self.case_timeout = case_timeout
        self.started = time.time()
        self._registration = registered_run(label)
        label = self._registration.__enter__()
        self.session = api.HarnessSession(label, runtime, socket_group=socket_group)
        config.stash[api.SESSION_KEY] = self.session
        self.cases: list[CaseResult] = []
        self.measurements: list[dict[str, Any]] = []
        self.total = 0
        self.result: RunResult | None = None
        self._closed = False
        self._listener_failed = False

    def close(self) -> None:
        """Remove what the session made for all cases, then leave the run registry."""
        if not self._closed:
            self._closed = True
            try:
                self.session.close()
            finally:
                self._registration.__exit__(None, None, None)

    # ----------------------------------------------------------------- collection

    @pytest.hookimpl(tryfirst=True)
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Reject a scenario without Steps:/Verify:, then parametrize it over the pairs."""
        sections = api.docstring_sections(metafunc.function.__doc__)
        missing = [name for name in ("Steps", "Verify") if not sections.get(name)]
        if missing:
            raise pytest.Collector.CollectError(
                f"scenario {metafunc.definition.nodeid}: its docstring needs "
                f"{' and '.join(name + ':' for name in missing)} section(s) "
                "(the report shows them as the test plan)"
            )
        pairs = selected_pairs(self.kinds, self.config.getoption("--pairs"))
        client = api.fixed_client_kind(metafunc.definition)
        if client is not None:  # the client is a tool: once per server kind, with that client
            pairs = [(server, client) for server in dict.fromkeys(s for s, _ in pairs)]
        metafunc.parametrize(
            "pair_kinds", pairs, ids=[pair_id(*pair) for pair in pairs], indirect=True
        )
        if "bench_point" in metafunc.fixturenames:
            points = self.bench_points()
            metafunc.parametrize("bench_point", points, ids=[point.id for point in points])

    def bench_points(self) -> list[BenchPoint]:
        """The throughput points of the --bench-* options.

        Raises:
            pytest.UsageError: an option names an unknown case, direction or size.
        """
        option = self.config.getoption
        try:
            return bench_points(
                parse_cases(option("--bench-case")),
                BenchTopology(option("--bench-topology")),
                parse_directions(option("--bench-direction")),
                parse_frame_sizes(option("--bench-frame-size")),
                BenchMode(option("--bench-mode")),
                duration=option("--bench-duration"),
                trials=option("--bench-trials"),
            )
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Keep each case's Steps/Verify; turn known deviations of its pair into xfail."""
        for item in items:
            function = getattr(item, "function", None)
            item.stash[_SECTIONS_KEY] = api.docstring_sections(getattr(function, "__doc__", ""))
            server_kind, client_kind = _kinds(item)
            citation = api.deviation_for(item, server_kind, client_kind)
            if citation is not None:
                item.add_marker(
                    pytest.mark.xfail(reason=citation, raises=api.VerifyFailed, strict=False)
                )

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """A module that cannot be collected is an ERROR in the results too."""
        if report.failed:
            self.cases.append(
                CaseResult(
                    suite=_suite_of(report.nodeid),
                    scenario="(collection)",
                    case_id=report.nodeid,
                    server_peer="",
                    client_peer="",
                    verdict=Verdict.ERROR,
                    reason=f"collection error: {_collect_error_text(report)}",
                )
            )
            self._finished(self.cases[-1])

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Tell listeners how many cases will run."""
        self.total = len(session.items)
        self._notify("pytest_memif_collected", total=self.total)

    # ----------------------------------------------------------------- listeners

    def _notify(self, hook: str, **kwargs: Any) -> None:
        """Call a listener hook (scenarios.hookspecs); a failing listener never stops a run."""
        try:
            getattr(self.config.hook, hook)(**kwargs)
        except Exception as exc:
            if not self._listener_failed:
                self._listener_failed = True
                sys.stderr.write(
                    f"memif: a listener of {hook} failed ({type(exc).__name__}: {exc}); "
                    "the run goes on without its updates\n"
                )

    def _finished(self, case: CaseResult) -> None:
        done = len(self.cases)
        self._notify(
            "pytest_memif_case_finished", case=case, done=done, total=max(done, self.total)
        )

    # ----------------------------------------------------------------- running

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> None:
        """Tell listeners which case begins (the default protocol then runs it)."""
        server_kind, client_kind = _kinds(item)
        self._notify(
            "pytest_memif_case_started",
            case=CaseStarted(
                suite=_suite_of(item.nodeid),
                scenario=getattr(item, "originalname", item.name),
                case_id=item.name,
                server_peer=server_kind,
                client_peer=client_kind,
                number=len(self.cases) + 1,
                total=max(len(self.cases) + 1, self.total),
            ),
        )

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, object, object]:
        """Open the case record and bound the phase by --case-timeout."""
        record = api.CaseRecord(item.nodeid)
        if self.report_dir is not None:
            record.artifact_base = self.report_dir
            record.artifact_dir = self.report_dir / "artifacts" / _safe(item.nodeid)
        item.stash[api.RECORD_KEY] = record
        item.stash[_PHASES_KEY] = {}
        item.stash[_DURATION_KEY] = 0.0
        api.begin_case(record)
        with self._bounded(item, "setup"):
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        """Bound the scenario body by --case-timeout."""
        with self._bounded(item, "call"):
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, object, object]:
        """Close the case record after the fixtures stopped the peers."""
        try:
            return (yield)
        finally:
            api.end_case()

    @contextlib.contextmanager
    def _bounded(self, item: pytest.Item, phase: str) -> Iterator[None]:
        timeout = self.case_timeout
        point = getattr(getattr(item, "callspec", None), "params", {}).get("bench_point")
        if isinstance(point, BenchPoint) and timeout > 0:  # a throughput point has its budget
            repeats = int(self.config.getoption("--bench-repeats"))
            timeout = max(timeout, point_budget(point, repeats) + BENCH_CASE_MARGIN)

        def expire(signum: int, frame: FrameType | None) -> None:
            raise api.HarnessTimeout(f"{phase} of {item.nodeid} took longer than {timeout:g} s")

        if timeout <= 0:
            yield
            return
        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Turn each phase's report into a verdict; after teardown, make the CaseResult."""
        report = yield
        if _PHASES_KEY not in item.stash:  # setup hook of another plugin failed first
            item.stash[_PHASES_KEY] = {}
            item.stash[_DURATION_KEY] = 0.0
            item.stash[api.RECORD_KEY] = api.CaseRecord(item.nodeid)
        record = item.stash[api.RECORD_KEY]
        item.stash[_DURATION_KEY] += report.duration
        phase = _classify(report, call, record, item)
        if phase is not None:
            item.stash[_PHASES_KEY][report.when] = phase
        if report.when == "teardown":
            self.measurements.extend(record.measurements)
            self.cases.append(self._case_result(item, record))
            self._finished(self.cases[-1])
        return report

    def _case_result(self, item: pytest.Item, record: api.CaseRecord) -> CaseResult:
        phases = item.stash[_PHASES_KEY]
        verdict = max(
            (phase.verdict for phase in phases.values()),
            key=_VERDICT_ORDER.index,
            default=Verdict.ERROR,
        )
        reasons = [
            f"{when}: {phase.reason}" if when != "call" and phase.reason else phase.reason
            for when, phase in phases.items()
            if phase.reason
        ]
        if not phases:
            reasons.append("the case produced no report")
        observed = [
            f"{'' if check.ok else 'NOT MET: '}{check.what}: {check.observed}"
            for check in record.checks
        ]
        observed += [f"note: {text}" for text in record.notes]
        observed += [phase.observed for phase in phases.values() if phase.observed]
        sections = item.stash.get(_SECTIONS_KEY, {})
        server_kind, client_kind = _kinds(item)
        return CaseResult(
            suite=_suite_of(item.nodeid),
            scenario=getattr(item, "originalname", item.name),
            case_id=item.name,
            server_peer=server_kind,
            client_peer=client_kind,
            verdict=verdict,
            reason=record.mask("; ".join(reasons)),
            expected=record.mask("\n".join(f"{c.what}: {c.expected}" for c in record.checks)),
            observed=record.mask("\n".join(observed)),
            steps=sections.get("Steps", ""),
            verify=sections.get("Verify", ""),
            duration=round(float(item.stash[_DURATION_KEY]), 3),
            artifacts=tuple(sorted(record.artifacts, key=lambda artifact: artifact.path)),
            trace=tuple(record.trace),
        )

    # ----------------------------------------------------------------- the end

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Write results.json (when --report-dir is given)."""
        self.result = RunResult(
            run_id=self.session.label.run_id,
            started=self.started,
            finished=time.time(),
            host=host_facts(),
            commit=project_commit(),
            peers=[
                PeerInfo(kind, self._version(kind), self.session.runtime_of(kind))
                for kind in self.kinds
            ],
            placement={
                "server_cpu": self.session.server_cpu,
                "client_cpu": self.session.client_cpu,
            },
            cases=self.cases,
            measurements=self.measurements,
        )
        if self.report_dir is not None:
            self.result.write(self.report_dir / RESULTS_FILE)

    def _version(self, kind: str) -> str:
        """The version of a peer kind, asked of an unstarted peer once all cases are over.

        (testpmd answers `-v` only after initialising its EAL, which is slow while other
        testpmds poll the CPUs.)
        """
        missing = self.session.probe.missing(self.session.needs(kind))
        if missing is not None:
            return f"unavailable: {missing}"
        prefix = self.session.label.dpdk_prefix("version")
        with _labelled_dir(self.session.label, "version") as workdir:
            try:
                spec = MemifSpec(Role.SERVER, str(Path(workdir) / "unused.sock"))
                peer = self.session.make_peer(kind, spec, Path(workdir), 0, prefix)
                return peer.version()
            except Exception as exc:
                return f"unknown ({type(exc).__name__}: {str(exc).splitlines()[0]})"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """One line of verdict counts, and where results.json went (none with -qq)."""
        if self.result is None or self.config.get_verbosity() < -1:
            return
        counts = ", ".join(f"{count} {name}" for name, count in self.result.counts().items())
        where = f" -> {self.report_dir / RESULTS_FILE}" if self.report_dir else ""
        terminalreporter.write_line(f"memif verdicts: {counts}{where}")


# --------------------------------------------------------------------------- helpers


def _socket_group(config: pytest.Config) -> int | None:
    """The group id of --socket-group (None without it).

    Raises:
        pytest.UsageError: no such group.
    """
    group = config.getoption("--socket-group")
    if group is None:
        return None
    try:
        return socket_group_id(group)
    except LabelError as exc:
        raise pytest.UsageError(f"--socket-group: {exc}") from None


def _run_label(config: pytest.Config) -> RunLabel | None:
    """The label of --run-id (None without it: a fresh one).

    Raises:
        pytest.UsageError: not a run id, or one a run (live or dead) has registered.
    """
    run_id = config.getoption("--run-id")
    if run_id is None:
        return None
    try:
        label = RunLabel(run_id)
    except LabelError as exc:
        raise pytest.UsageError(f"--run-id: {exc}") from None
    if run_state(run_id) is not RunState.UNREGISTERED:  # two runs must never share names
        raise pytest.UsageError(f"--run-id: run {run_id} is registered already (`reap` it)")
    return label


@contextlib.contextmanager
def _labelled_dir(label: RunLabel, purpose: str) -> Iterator[Path]:
    """A run-labelled 0700 directory for the block (`reap` finds it if the run dies)."""
    path = label.make_socket_dir(purpose)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _kinds(item: pytest.Item) -> tuple[str, str]:
    callspec = getattr(item, "callspec", None)
    kinds = callspec.params.get("pair_kinds") if callspec is not None else None
    if kinds is None:
        return "", ""
    return str(kinds[0]), str(kinds[1])


def _suite_of(nodeid: str) -> str:
    module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
    return module.removeprefix("test_")


def _safe(nodeid: str) -> str:
    name = nodeid.split("/")[-1]
    return "".join(char if char.isalnum() or char in "._-" else "_" for char in name)


def _longrepr_text(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # (path, lineno, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    text = getattr(longrepr, "reprcrash", None)
    if text is not None:
        return str(text.message)
    return str(longrepr).strip().splitlines()[-1] if longrepr else ""


def _collect_error_text(report: pytest.CollectReport, lines: int = 20) -> str:
    return "\n".join(str(report.longrepr).strip().splitlines()[-lines:])


def _classify(
    report: pytest.TestReport,
    call: pytest.CallInfo[None],
    record: api.CaseRecord,
    item: pytest.Item | None = None,
) -> _Phase | None:
    """The verdict of one phase; None for a phase that passed quietly (setup, teardown).

    A crash is a FAIL, unless the case's `known_deviation(..., crash=True)` covers every
    crashed peer: then it is an XFAIL whose reason says the crash was excused.
    """
    xfail_reason = getattr(report, "wasxfail", None)
    if report.passed:
        if report.when != "call":
            return None
        if xfail_reason is not None:
            if item is not None and api.intermittent_deviation_for(item, *_kinds(item)):
                return _Phase(
                    Verdict.XFAIL,
                    f"known intermittent deviation, did not show in this run ({xfail_reason})",
                )
            return _Phase(Verdict.PASS, f"known deviation did not show ({xfail_reason})")
        return _Phase(Verdict.PASS)
    if report.skipped:
        if xfail_reason is not None:
            return _Phase(Verdict.XFAIL, str(xfail_reason))
        return _Phase(Verdict.SKIP, _longrepr_text(report))
    error = call.excinfo.value if call.excinfo is not None else None
    crashed = record.crashed_peers()
    if isinstance(error, PeerCrashed) or crashed:
        if isinstance(error, PeerCrashed):
            reason, tail = error.args[0].splitlines()[0], error.log_tail
        else:
            errors = [api.crash_error(f"{p.kind} {p.name}", p.peer) for p in crashed]
            reason = ", ".join(crash.summary for crash in errors)
            tail = errors[0].log_tail
        observed = f"crash log tail:\n{tail}" if tail else ""
        excused = api.crash_deviation_for(item, crashed) if item is not None else None
        if excused is not None:
            return _Phase(
                Verdict.XFAIL, f"known deviation, crash excused: {reason} ({excused})", observed
            )
        return _Phase(Verdict.FAIL, reason, observed=observed)
    if isinstance(error, api.VerifyFailed):
        return _Phase(Verdict.FAIL, str(error))
    if error is None:
        return _Phase(Verdict.ERROR, _longrepr_text(report))
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, AssertionError):
        first_line = f"assertion outside verify(): {first_line}"
    if isinstance(error, LogTailError) and error.log_tail.strip():
        # The program's last words usually name the cause ("No space left on device").
        last = error.log_tail.strip().splitlines()[-1].strip()
        said = f" (its log ends: {last[:_LOG_LINE_MAX]})" if last not in first_line else ""
        reason = f"{type(error).__name__}: {first_line}{said}"
        return _Phase(Verdict.ERROR, reason, observed=f"log tail:\n{error.log_tail}")
    return _Phase(Verdict.ERROR, f"{type(error).__name__}: {first_line}")
