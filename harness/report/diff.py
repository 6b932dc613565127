"""Comparison of two runs: verdicts that changed, cases added and removed, and throughput
per measurement point with drops beyond a threshold flagged."""

from __future__ import annotations

import dataclasses
import enum

from harness.report.html import verdict_rank
from harness.report.throughput import (
    RepeatKey,
    format_pps,
    measurement_id,
    measurements_of,
    with_repeats,
)
from harness.results import CaseResult, RunResult, Verdict
from harness.traffic.measurement import Measurement

#: A throughput drop beyond this fraction is flagged (new/old below 0.9).
DEFAULT_DROP_THRESHOLD = 0.10


class ChangeKind(enum.StrEnum):
    """How a case differs between the old and the new run."""

    CHANGED = "changed"
    ADDED = "added"
    REMOVED = "removed"


@dataclasses.dataclass(frozen=True)
class Change:
    """One case that differs between two runs.

    Attributes:
        kind: Changed verdict, added (only in the new run) or removed (only in the old).
        suite: The case's suite.
        case_id: The case's id.
        before: Its verdict in the old run (None when added).
        after: Its verdict in the new run (None when removed).
        reason: The new run's reason (the old one's when removed).
    """

    kind: ChangeKind
    suite: str
    case_id: str
    before: Verdict | None
    after: Verdict | None
    reason: str = ""

    @property
    def worse(self) -> bool:
        """A changed verdict that got worse (ERROR > FAIL > XFAIL > SKIP > PASS)."""
        return (
            self.before is not None
            and self.after is not None
            and verdict_rank(self.after) > verdict_rank(self.before)
        )

    @property
    def better(self) -> bool:
        """A changed verdict that got better."""
        return (
            self.before is not None
            and self.after is not None
            and verdict_rank(self.after) < verdict_rank(self.before)
        )


def _keyed(run: RunResult) -> dict[tuple[str, str], CaseResult]:
    """Cases by (suite, case_id); a case_id repeated within one suite keeps its last case."""
    return {(case.suite, case.case_id): case for case in run.cases}


def diff_runs(a: RunResult, b: RunResult) -> list[Change]:
    """The cases whose verdict differs between run `a` (old) and run `b` (new).

    Cases are matched by case_id (within their suite, so equal ids in two suites stay
    apart). The result lists, in the new run's order, changed verdicts and added cases,
    then the removed cases in the old run's order. Unchanged verdicts are left out, even
    when their reason text differs.

    Args:
        a: The old run.
        b: The new run.

    Returns:
        The changes; empty when every case has the same verdict in both runs.
    """
    old, new = _keyed(a), _keyed(b)
    changes = []
    for key, case in new.items():
        before = old.get(key)
        if before is None:
            changes.append(
                Change(ChangeKind.ADDED, case.suite, case.case_id, None, case.verdict, case.reason)
            )
        elif before.verdict is not case.verdict:
            changes.append(
                Change(
                    ChangeKind.CHANGED,
                    case.suite,
                    case.case_id,
                    before.verdict,
                    case.verdict,
                    case.reason,
                )
            )
    changes.extend(
        Change(ChangeKind.REMOVED, case.suite, case.case_id, case.verdict, None, case.reason)
        for key, case in old.items()
        if key not in new
    )
    return changes


def _label(change: Change) -> str:
    if change.kind is ChangeKind.CHANGED:
        return "worse" if change.worse else "better" if change.better else "changed"
    return change.kind.value


def render_diff(changes: list[Change], a: RunResult, b: RunResult) -> str:
    """The changes as plain text, one line per case.

    Args:
        changes: What `diff_runs(a, b)` returned.
        a: The old run (named in the heading).
        b: The new run (named in the heading).

    Returns:
        A heading with the two runs and the tallies, then lines such as
        ``worse    handshake  hello[testpmd-server--reference-client]  PASS -> FAIL  (reason)``.
    """

    def name(run: RunResult) -> str:
        return f"{run.run_id} ({run.commit[:12] or 'unknown commit'})"

    tally = {kind: sum(change.kind is kind for change in changes) for kind in ChangeKind}
    worse = sum(change.worse for change in changes)
    heading = (
        f"{name(a)} -> {name(b)}: {tally[ChangeKind.CHANGED]} changed ({worse} worse), "
        f"{tally[ChangeKind.ADDED]} added, {tally[ChangeKind.REMOVED]} removed"
    )
    if not changes:
        return heading + "\nno verdict changed\n"
    suite_width = max(len(change.suite) for change in changes)
    id_width = max(len(change.case_id) for change in changes)
    lines = [heading]
    for change in changes:
        before = change.before.value if change.before else "-"
        after = change.after.value if change.after else "-"
        reason = f"  ({' '.join(change.reason.split())})" if change.reason else ""
        lines.append(
            f"{_label(change):8} {change.suite:{suite_width}}  {change.case_id:{id_width}}  "
            f"{before:>5} -> {after:<5}{reason}".rstrip()
        )
    return "\n".join(lines) + "\n"


@dataclasses.dataclass(frozen=True)
class ThroughputChange:
    """One measurement point in either run: its rate before and after.

    Attributes:
        key: The point's `Measurement.key` and repeat (see `with_repeats`).
        before: Its measurement in the old run (None when added).
        after: Its measurement in the new run (None when removed).
        threshold: A drop of more than this fraction is flagged.
    """

    key: RepeatKey
    before: Measurement | None
    after: Measurement | None
    threshold: float = DEFAULT_DROP_THRESHOLD

    @property
    def label(self) -> str:
        """The point's id, with '(run N)' for a repeat."""
        m = self.after or self.before
        assert m is not None  # a change has at least one side
        repeat = self.key[1]
        return measurement_id(m) + (f" (run {repeat + 1})" if repeat else "")

    @property
    def ratio(self) -> float | None:
        """New rate / old rate when both runs measured it (PASS, old rate above 0)."""
        old, new = self.before, self.after
        if old is None or new is None or not old.pps or new.pps is None:
            return None
        if old.verdict is not Verdict.PASS or new.verdict is not Verdict.PASS:
            return None
        return new.pps / old.pps

    @property
    def dropped(self) -> bool:
        """The rate fell by more than the threshold."""
        return self.ratio is not None and self.ratio < 1.0 - self.threshold

    @property
    def worse(self) -> bool:
        """The measurement's verdict got worse (e.g. PASS -> ERROR)."""
        return (
            self.before is not None
            and self.after is not None
            and verdict_rank(self.after.verdict) > verdict_rank(self.before.verdict)
        )


def diff_measurements(
    a: RunResult, b: RunResult, threshold: float = DEFAULT_DROP_THRESHOLD
) -> list[ThroughputChange]:
    """Every measurement point of run `a` (old) and run `b` (new), compared.

    Points are matched by (case, topology, server, client, direction, frame size, mode)
    and repeat. The result lists the new run's points in its order (with the old
    measurement when there was one), then the points only the old run had.

    Args:
        a: The old run.
        b: The new run.
        threshold: Flag a drop of more than this fraction (0.10: new/old below 0.9).

    Returns:
        One entry per point; empty when neither run has measurements.

    Raises:
        ValueError: A threshold outside [0, 1), or a measurement outside the schema.
    """
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"drop threshold must be a fraction in [0, 1), got {threshold}")
    old, new = with_repeats(measurements_of(a)), with_repeats(measurements_of(b))
    changes = [ThroughputChange(key, old.get(key), m, threshold) for key, m in new.items()]
    changes += [
        ThroughputChange(key, m, None, threshold) for key, m in old.items() if key not in new
    ]
    return changes


def _figure(m: Measurement | None) -> str:
    if m is None:
        return "-"
    if m.verdict is Verdict.PASS and m.pps is not None:
        return format_pps(m.pps)
    return m.verdict.value


def _throughput_label(change: ThroughputChange) -> str:
    if change.before is None:
        return "added"
    if change.after is None:
        return "removed"
    if change.worse:
        return "worse"
    return "DROP" if change.dropped else ""


def render_throughput_diff(changes: list[ThroughputChange], threshold: float) -> str:
    """The throughput comparison as plain text, one line per measurement point.

    Args:
        changes: What `diff_measurements` returned.
        threshold: The drop threshold it used (named in the heading).

    Returns:
        A heading with the tallies, then lines such as
        ``DROP   same-node-zc[...]-memif-c2s-64B-mrr  9.12 Mpps -> 7.30 Mpps  x0.80 (-20.0 %)``.
    """
    compared = [change for change in changes if change.ratio is not None]
    dropped = sum(change.dropped for change in changes)
    worse = sum(change.worse for change in changes)
    added = sum(change.before is None for change in changes)
    removed = sum(change.after is None for change in changes)
    heading = (
        f"throughput: {len(compared)} compared, {dropped} dropped more than "
        f"{threshold * 100:g} %, {worse} worse, {added} added, {removed} removed"
    )
    if not changes:
        return heading + "\nno measurements\n"
    id_width = max(len(change.label) for change in changes)
    lines = [heading]
    for change in changes:
        ratio = change.ratio
        shown = f"  x{ratio:.2f} ({(ratio - 1) * 100:+.1f} %)" if ratio is not None else ""
        after = change.after
        reason = (
            f"  ({' '.join(after.reason.split())})"
            if after is not None and after.verdict is not Verdict.PASS
            else ""
        )
        lines.append(
            f"{_throughput_label(change):7} {change.label:{id_width}}  "
            f"{_figure(change.before):>9} -> {_figure(change.after):<9}{shown}{reason}".rstrip()
        )
    return "\n".join(lines) + "\n"
