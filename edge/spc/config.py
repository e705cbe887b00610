"""The `spc:` section (line alarms): subgroups, baselines, which run rules, EWMA limits.

Not yet part of `LinesideConfig`: `lineside records alarms` uses it with its defaults (or a YAML file of
this section alone); wiring it into the live line is a later change.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

RuleId = Literal["beyond_3sigma", "2of3_beyond_2sigma", "4of5_beyond_1sigma", "run_one_side", "trend"]
ALL_RULES: tuple[RuleId, ...] = (
    "beyond_3sigma",
    "2of3_beyond_2sigma",
    "4of5_beyond_1sigma",
    "run_one_side",
    "trend",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PChartConfig(_Strict):
    """p-charts of the reject rate and of each class's rate (the class that decided a reject)."""

    enabled: bool = Field(True, description="Chart the reject rate and the per-class rates.")
    subgroup: int = Field(
        100,
        ge=5,
        le=10_000,
        description="Parts per subgroup (one point on the chart). Larger: fewer false alarms per part, "
        "slower to see a shift (docs/spc.md has the false alarm rates measured at the demo's rates).",
    )
    baseline_subgroups: int = Field(
        10,
        ge=2,
        le=10_000,
        description="Subgroups whose pooled rate is the centre line when `baseline_rate` is not given; "
        "they are not themselves tested (a shift inside them is not seen).",
    )
    baseline_rate: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="The reject rate's centre line, when known (else learnt from the baseline).",
    )
    rules: tuple[RuleId, ...] = Field(
        ALL_RULES, description="Run rules tested on the reject-rate chart (Western Electric / Nelson)."
    )
    class_rules: tuple[RuleId, ...] = Field(
        ("beyond_3sigma",),
        description="Run rules tested on each class's chart: fewer than on the reject rate, because every "
        "class is one more chart that can raise a false alarm.",
    )
    run_length: int = Field(9, ge=7, le=15, description="Points in a row on one side of the centre (8 or 9).")
    trend_length: int = Field(6, ge=5, le=10, description="Points in a row steadily rising or falling.")
    sides: Literal["both", "upper"] = Field(
        "both",
        description="`upper` tests only rates above the centre (a falling reject rate is not alarmed): "
        "useful when rates are so low that most subgroups have no reject and the run rule below the "
        "centre fires on chance.",
    )
    class_sides: Literal["both", "upper"] = Field(
        "upper",
        description="Sides tested on each class's chart: a class's rate is small (most subgroups hold none "
        "of it), so below its centre there is little to see and much chance to fire on.",
    )
    new_class_counts: float = Field(
        0.5,
        gt=0,
        le=5,
        description="A class never seen in the baseline is charted as if it had this many rejects there, "
        "so that a new defect class alarms on its first few parts instead of dividing by zero.",
    )


class EwmaConfig(_Strict):
    """An EWMA chart: centre and sigma from a baseline window, limits at `width` sigma of the EWMA."""

    enabled: bool = Field(True, description="Chart this measure.")
    baseline: int = Field(
        200,
        ge=5,
        le=100_000,
        description="Points whose mean and spread are the baseline (fewer: a noisier sigma, more false "
        "alarms).",
    )
    smoothing: float = Field(
        0.1, gt=0, le=1, description="EWMA weight of the newest point (lambda): small sees small drifts."
    )
    width: float = Field(
        3.5,
        gt=0,
        le=10,
        description="Control limits at this many sigma of the EWMA (3.5, not 3: with a sigma learnt from "
        "the baseline, 3 gave about 1.3 false alarms per 1,000 points on one side, 3.5 about 0.4).",
    )
    min_sigma: float = Field(
        0.0,
        ge=0,
        description="Floor on the baseline's sigma, in the measure's units (identical frames have none).",
    )
    min_sigma_ratio: float = Field(
        0.02, ge=0, le=1, description="Floor on the baseline's sigma as a share of its mean."
    )


class ScoreDriftConfig(EwmaConfig):
    """Top score / threshold on ACCEPTed parts: an upper EWMA alarms before the verdicts change."""

    min_sigma: float = Field(0.01, ge=0, description="Floor on the baseline's sigma of score / threshold.")


class SpcConfig(_Strict):
    """Line alarms. An alarm warns (list, chart, later the robot's STATUS bit); it never changes a verdict."""

    pchart: PChartConfig = Field(default_factory=PChartConfig)
    brightness: EwmaConfig = Field(
        default_factory=lambda: EwmaConfig(min_sigma=1.0), description="Mean grey of the frame."
    )
    contrast: EwmaConfig = Field(
        default_factory=lambda: EwmaConfig(min_sigma=0.5), description="Standard deviation of the grey."
    )
    sharpness: EwmaConfig = Field(
        default_factory=lambda: EwmaConfig(min_sigma=1.0, min_sigma_ratio=0.05),
        description="Variance of the Laplacian of the grey frame.",
    )
    score: ScoreDriftConfig = Field(default_factory=ScoreDriftConfig)
    history: int = Field(
        5000, ge=10, le=1_000_000, description="Points kept per chart (for the chart pictures)."
    )

    @model_validator(mode="after")
    def _rules_known(self) -> SpcConfig:
        if len(set(self.pchart.rules)) != len(self.pchart.rules):
            raise ValueError("spc.pchart.rules: a rule is listed twice")
        return self
