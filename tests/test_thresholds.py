"""Threshold choice for the line: the target escape rate first, then the lowest overkill."""

from __future__ import annotations

import pytest

from edge.judge.thresholds import LOWEST, ScoredPart, choose_thresholds, evaluate


def part(name: str, defective: bool, **best: float) -> ScoredPart:
    return ScoredPart(name, defective, best)


PARTS = [
    part("bad-scratch", True, scratch=0.42),
    part("bad-pit", True, pit=0.80),
    part("bad-weak-pit", True, pit=0.35, scratch=0.05),
    part("good-clean", False),
    part("good-noisy-scratch", False, scratch=0.30),
    part("good-noisy-pit", False, pit=0.20),
]


def test_evaluate_counts_escapes_and_overkill_per_part() -> None:
    op = evaluate(PARTS, {"scratch": 0.5, "pit": 0.5})
    assert op.escapes == ("bad-scratch", "bad-weak-pit") and op.overkills == ()
    assert op.escape_rate == pytest.approx(2 / 3) and op.overkill_rate == 0.0
    op = evaluate(PARTS, {"scratch": 0.1, "pit": 0.1})
    assert op.escapes == () and op.overkills == ("good-noisy-scratch", "good-noisy-pit")


def test_zero_escape_target_is_met_with_the_least_overkill_and_the_lowest_such_thresholds() -> None:
    op = choose_thresholds(PARTS, ["scratch", "pit"], target_escape=0.0)
    assert op.escape_rate == 0.0 and op.overkill_rate == 0.0
    # Just above the good parts' noise: as low as possible, the most margin for weak defects.
    assert 0.30 < op.thresholds["scratch"] <= 0.3001 and 0.20 < op.thresholds["pit"] <= 0.2001


def test_when_defects_and_good_parts_overlap_escapes_win_over_overkill() -> None:
    overlapping = [*PARTS, part("good-very-noisy", False, pit=0.50)]
    op = choose_thresholds(overlapping, ["scratch", "pit"], target_escape=0.0)
    # Either one noisy good part is rejected, whichever the thresholds give up: the price of no escape.
    assert op.escape_rate == 0.0 and len(op.overkills) == 1


def test_a_looser_escape_target_buys_less_overkill() -> None:
    overlapping = [*PARTS, part("good-very-noisy", False, pit=0.50)]
    strict = choose_thresholds(overlapping, ["scratch", "pit"], target_escape=0.0)
    loose = choose_thresholds(overlapping, ["scratch", "pit"], target_escape=0.34)
    assert loose.overkill_rate < strict.overkill_rate and loose.escape_rate <= 0.34


def test_an_unreachable_target_is_reported_not_hidden() -> None:
    missed = [part("bad-unseen", True), part("good", False)]
    op = choose_thresholds(missed, ["scratch"], target_escape=0.0)
    assert op.escape_rate == 1.0 and op.escapes == ("bad-unseen",)
    assert op.thresholds == {"scratch": LOWEST}
