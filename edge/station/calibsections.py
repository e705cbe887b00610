"""Calibration file sections for the ROI, the station checks and the station's own thresholds.

`roi` is a RoiConfig that remembers the pixel space it was drawn in; `reference` is the baseline
`lineside calibrate check` compares frames with; `thresholds` are per-class reject confidences chosen
on this station's golden samples, valid only for the model they were chosen with.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge.errors import LinesideError
from edge.judge.rules import ClassRule, RoiConfig, RulesConfig
from edge.modelstore.card import ModelCard


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StationRoi(RoiConfig):
    """The ROI as a calibration file stores it: a RoiConfig, and the frames' pixel space it was drawn in."""

    intrinsics_id: str = Field(
        "", description="Fingerprint of the intrinsics of the undistorted frames it was drawn on; '' = raw."
    )

    def in_pixel_space(self, current_intrinsics_id: str, origin: str = "calibration") -> RoiConfig:
        """The region for frames in this pixel space; LinesideError if it was drawn in another."""
        if self.intrinsics_id != current_intrinsics_id:
            drawn = "undistorted frames" if self.intrinsics_id else "raw frames"
            if not current_intrinsics_id:
                now = "raw"
            else:
                now = "undistorted with other intrinsics" if self.intrinsics_id else "undistorted"
            raise LinesideError(
                f"{origin}: roi was drawn on {drawn}, the runtime's frames are {now}: "
                "re-run `lineside calibrate roi`"
            )
        return RoiConfig(rect=self.rect, polygon=self.polygon)


class CheckLimits(_Strict):
    """When a station check item warns or fails, compared with the stored reference frame."""

    focus_warn_ratio: float = Field(
        0.8, gt=0, le=1, description="WARN when focus (variance of Laplacian) falls below this x reference."
    )
    focus_fail_ratio: float = Field(0.6, gt=0, le=1, description="FAIL below this x the reference focus.")
    mean_warn: float = Field(20.0, gt=0, description="WARN when mean grey level moves this far (0-255).")
    mean_fail: float = Field(40.0, gt=0, description="FAIL when mean grey level moves this far (0-255).")
    clipped_warn_pct: float = Field(
        2.0, gt=0, description="WARN when clipped highlights or shadows grow by this many % of pixels."
    )
    clipped_fail_pct: float = Field(5.0, gt=0, description="FAIL at this growth in % clipped pixels.")
    shift_warn_px: float = Field(3.0, gt=0, description="WARN when the view moved this many pixels.")
    shift_fail_px: float = Field(10.0, gt=0, description="FAIL when the view moved this many pixels.")
    rotation_warn_deg: float = Field(0.5, gt=0, description="WARN when the view turned this many degrees.")
    rotation_fail_deg: float = Field(2.0, gt=0, description="FAIL when the view turned this many degrees.")
    scale_warn_pct: float = Field(
        1.0, gt=0, description="WARN when the view zoomed in or out by this % (camera moved along its axis)."
    )
    scale_fail_pct: float = Field(3.0, gt=0, description="FAIL when the view zoomed by this %.")
    min_matches: int = Field(
        20, ge=4, description="FAIL the pose when fewer reference features than this match the frame."
    )

    @model_validator(mode="after")
    def _warn_before_fail(self) -> CheckLimits:
        if self.focus_warn_ratio < self.focus_fail_ratio:
            raise ValueError("focus_warn_ratio must be >= focus_fail_ratio (focus falls as it blurs)")
        for warn_name in (
            "mean_warn",
            "clipped_warn_pct",
            "shift_warn_px",
            "rotation_warn_deg",
            "scale_warn_pct",
        ):
            fail_name = warn_name.replace("_warn", "_fail")
            if getattr(self, warn_name) > getattr(self, fail_name):
                raise ValueError(f"{warn_name} must be <= {fail_name}")
        return self


class ExposureStats(_Strict):
    """Grey-level statistics of a frame."""

    mean: float = Field(ge=0, le=255, description="Mean grey level, 0-255.")
    highlights_pct: float = Field(ge=0, le=100, description="% of pixels at 250 or above (clipped white).")
    shadows_pct: float = Field(ge=0, le=100, description="% of pixels at 5 or below (clipped black).")


class ReferenceSection(_Strict):
    """The station check baseline: one frame of the calibrated view and what was measured on it.

    The frame itself is a PNG next to the calibration file; its ORB features are recomputed from it.
    """

    image: str = Field(description="File name of the reference PNG, in the calibration file's folder.")
    image_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="sha256 of that PNG: a replaced file is refused."
    )
    focus: float = Field(ge=0, description="Variance of the Laplacian of the grey frame (sharpness).")
    exposure: ExposureStats = Field(description="Grey-level statistics of the reference frame.")
    features: int = Field(ge=0, description="ORB features found on the reference frame.")
    limits: CheckLimits = Field(default_factory=CheckLimits, description="When items WARN or FAIL.")
    taken: str = Field("", description="ISO time the reference was stored.")

    @field_validator("image")
    @classmethod
    def _plain_file_name(cls, name: str) -> str:
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise ValueError(f"image must be a plain file name next to the calibration file, got {name!r}")
        return name


class ThresholdsSection(_Strict):
    """Per-class reject confidences chosen on this station's golden samples, and what they gave there."""

    per_class: dict[str, float] = Field(description="Reject confidence per class name, 0-1.")
    model: str = Field(min_length=1, description="Name and version of the model they were chosen with.")
    model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of that model's ONNX file.")
    target_escape: float = Field(ge=0, le=1, description="Escape rate asked for.")
    escape_rate: float = Field(ge=0, le=1, description="Defective samples accepted / defective samples.")
    overkill_rate: float = Field(ge=0, le=1, description="Good samples rejected / good samples.")
    good_samples: int = Field(ge=1, description="Good parts they were chosen on.")
    bad_samples: int = Field(ge=1, description="Defective parts they were chosen on.")
    chosen: str = Field("", description="ISO time they were chosen.")

    @field_validator("per_class")
    @classmethod
    def _confidences(cls, per_class: dict[str, float]) -> dict[str, float]:
        if not per_class:
            raise ValueError("per_class needs at least one class")
        bad = {name: value for name, value in per_class.items() if not 0.0 <= value <= 1.0}
        if bad:
            raise ValueError(f"confidences must be in [0, 1], got {bad}")
        return per_class

    def rules_for(self, card: ModelCard, origin: str = "calibration") -> RulesConfig:
        """These thresholds as decision rules for `card`'s model; LinesideError if chosen for another."""
        if card.sha256 != self.model_sha256:
            raise LinesideError(
                f"{origin}: thresholds were chosen for model {self.model} ({self.model_sha256[:12]}), "
                f"not {card.name} {card.version} ({card.sha256[:12]}): run lineside calibrate thresholds"
            )
        unknown = sorted(set(self.per_class) - set(card.classes))
        if unknown:
            raise LinesideError(f"{origin}: thresholds name classes {unknown} the model does not have")
        return RulesConfig(
            classes={name: ClassRule(min_confidence=value) for name, value in self.per_class.items()}
        )
