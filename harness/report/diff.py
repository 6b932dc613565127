"""Comparison of two runs case by case: verdicts that changed, cases added and removed."""

from __future__ import annotations

import dataclasses
import enum

from harness.report.html import verdict_rank
from harness.results import CaseResult, RunResult, Verdict


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
