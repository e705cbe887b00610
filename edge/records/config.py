"""Configuration of the inspection records: where they live, how much disk the images may use, and
which images are kept."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RecordsConfig(BaseModel):
    """The `records:` section of the appliance config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dir: Path = Field(
        ...,
        description=(
            "Folder holding records.db, images/ and quarantine/. No default: the appliance resolves it "
            "from systemd's StateDirectory= (e.g. /var/lib/lineside/records)."
        ),
    )
    quota_mb: float = Field(
        1024.0,
        gt=0,
        description=(
            "Most disk space (MiB) the kept images may use. Above it the oldest plain ACCEPT images go "
            "first, then near-threshold ACCEPT images, then the oldest REJECT/FAULT images. The "
            "database itself is not counted: its rows are small and never deleted."
        ),
    )
    save_rejects: bool = Field(True, description="Keep the image of every REJECT.")
    save_faults: bool = Field(True, description="Keep the image of every FAULT that has a frame.")
    save_near_threshold: bool = Field(
        True, description="Keep the image of every ACCEPT whose decision was near a threshold."
    )
    accept_sample_rate: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description=(
            "Fraction of plain ACCEPT images to keep (0 = none, 1 = all). Sampling is an even, "
            "deterministic spread (every 1/rate-th accept), not random."
        ),
    )
    image_format: Literal["jpg", "png"] = Field(
        "jpg", description="Image file format: jpg is small, png is lossless (retraining on fine defects)."
    )
    jpeg_quality: int = Field(90, ge=1, le=100, description="JPEG quality 1..100 when image_format is jpg.")
    synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        description=(
            "SQLite synchronous mode. FULL fsyncs the WAL on every commit: each stored record survives "
            "a power loss. NORMAL in WAL mode fsyncs only at checkpoints: faster, never corrupts the "
            "database, but a power loss (not a process crash) can lose the last few records. Eviction "
            "commits always run FULL so that no image is deleted before its row says so."
        ),
    )
    busy_timeout_s: float = Field(
        5.0,
        gt=0,
        le=60,
        description="How long an SQLite call waits for a lock (e.g. a reader's checkpoint) before failing.",
    )
