"""The `spc:` section (line alarms): subgroups, baselines, which run rules, latching, EWMA limits.

Part of the line's config file (`LinesideConfig.spc`, the live alarms worker); `lineside records alarms`
reads it from there, from a YAML file of this section alone, or uses its defaults.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

RuleId = Literal["beyond_3sigma", "2of3_beyond_2sigma", "4of5_beyond_1sigma", "run_one_side", "trend"]
# A line's default: a point beyond 3 sigma, and a long run on one side (a small lasting shift).
DEFAULT_RULES: tuple[RuleId, ...] = ("beyond_3sigma", "run_one_side")
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
        DEFAULT_RULES,
        description="Run rules tested on the reject-rate chart (Western Electric / Nelson). The default, a "
        "point beyond 3 sigma and a long run on one side, keeps a stable line of 2,000 parts silent in about "
        "19 of 20 runs (docs/spc.md); every further rule adds its own false alarms.",
    )
    class_rules: tuple[RuleId, ...] = Field(
        ("beyond_3sigma",),
        description="Run rules tested on each class's chart: fewer than on the reject rate, because every "
        "class is one more chart that can raise a false alarm.",
    )
    run_length: int = Field(
        12,
        ge=7,
        le=15,
        description="Points in a row on one side of the centre (Nelson's 9 fired on a stable line about "
        "three times as often as 12, docs/spc.md: a count lands on one side or the other almost every time).",
    )
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
    release: int = Field(
        3,
        ge=0,
        le=1000,
        description="After an alarm the chart stays latched (quiet) until acknowledged or until this many "
        "subgroups in a row lie inside 2 sigma: the process returned (0: no latch, every firing alarms).",
    )
    class_bonferroni: bool = Field(
        True,
        description="Class charts share one chart's tail probability (Bonferroni: each tests at 1/k of it, k "
        "the number of classes), so that a line with many classes raises no more false alarms than one.",
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
    release: int = Field(
        10,
        ge=1,
        le=100_000,
        description="After an alarm the chart stays latched (quiet) until acknowledged or until the EWMA has "
        "been inside its limits for this many points in a row: the process returned.",
    )


class ScoreDriftConfig(EwmaConfig):
    """Top score / threshold on ACCEPTed parts: an upper EWMA alarms before the verdicts change."""

    min_sigma: float = Field(0.01, ge=0, description="Floor on the baseline's sigma of score / threshold.")


class SpcConfig(_Strict):
    """Line alarms. An alarm warns (records, chart, the robot's STATUS bit and ALARM register, metrics,
    MQTT, the status page); it never changes a verdict."""

    enabled: bool = Field(
        True,
        description="Run the alarms worker on the live line. On by default: it only listens to the final "
        "verdicts (an observer, like the status page), so it cannot change or delay one, and the first "
        "alarm needs a baseline of `pchart.subgroup * pchart.baseline_subgroups` parts anyway.",
    )
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
