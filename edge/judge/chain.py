"""A recipe's judges as one verdict: every stage judges the part, any FAULT or REJECT wins.

FAULT outranks REJECT (both reject the part; a FAULT also says the line needs attention), REJECT outranks
ACCEPT, and only a part every stage accepted is accepted. The deciding stage is the first stage in the
recipe's order with the winning verdict: its class and score go to the robot (DEFECT_CODE, SCORE). With
more than one stage each reason names its stage; a lone stage's reasons are its own, unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge.judge.inspection import Decision, Verdict
from edge.judge.stage import StageResult

_RANK = {Verdict.ACCEPT: 0, Verdict.REJECT: 1, Verdict.FAULT: 2}


def deciding_stage(results: Sequence[StageResult]) -> StageResult:
    """The first stage with the worst verdict (FAULT > REJECT > ACCEPT)."""
    if not results:
        raise ValueError("a chain needs at least one stage result")
    worst = max(_RANK[r.verdict] for r in results)
    return next(r for r in results if _RANK[r.verdict] == worst)


def combine(results: Sequence[StageResult]) -> Decision:
    """The part's decision from its stages' decisions; reasons of the deciding verdict first."""
    decider = deciding_stage(results)
    if len(results) == 1:
        return decider.decision
    ordered = sorted(results, key=lambda r: -_RANK[r.verdict])  # stable: the recipe's order within a rank
    reasons = tuple(f"{r.stage}: {reason}" for r in ordered for reason in r.decision.reasons)
    decision = decider.decision
    return Decision(
        decision.verdict,
        reasons,
        top_class_id=decision.top_class_id,
        top_confidence=decision.top_confidence,
        error=decision.error,
        robot_position=decision.robot_position,
    )
