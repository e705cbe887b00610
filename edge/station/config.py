"""The appliance configuration: one YAML file validated by pydantic models that reject unknown keys.

Relative paths in the file are taken relative to the file's folder. `load_config` raises
LinesideError with one line naming the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.aas.config import AasConfig
from edge.errors import LinesideError
from edge.fleet.config import FleetConfig
from edge.judge.detector.config import DetectorConfig
from edge.judge.rules import RoiConfig, RulesConfig
from edge.locale import LANGUAGES
from edge.opcua.config import OpcUaConfig
from edge.records.config import RecordsConfig
from edge.robotlink.config import RobotLinkConfig
from edge.sources.config import SourceConfig
from edge.spc.config import SpcConfig
from edge.status.config import StatusConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


NAME_MAX = 40  # the plant's word for a class or stage: a label in a sentence, on a page, on a picture


def _plant_word(text: str) -> str:
    if not text.strip() or len(text) > NAME_MAX or any(ord(c) < 32 for c in text):
        raise ValueError(f"a name must be 1 to {NAME_MAX} characters on one line")
    return text


def _language(code: str) -> str:
    if code not in LANGUAGES:
        raise ValueError(f"expected a language: {' or '.join(LANGUAGES)}")
    return code


PlantWord = Annotated[str, AfterValidator(_plant_word)]
Language = Annotated[str, AfterValidator(_language)]


class StationConfig(_Section):
    """Who this appliance is and where it keeps its files."""

    name: str = Field("station-1", min_length=1, description="Station name, shown in records and status.")
    runtime_dir: Path | None = Field(
        None,
        description="Folder for sockets; default $RUNTIME_DIRECTORY (systemd) or a private temporary folder.",
    )
    language: Literal["en", "ko"] | None = Field(
        None,
        description="Language of what people read (status page, sentences): en or ko; default: the locale "
        "(LANG), else en. Never changes a verdict or what the robot gets (docs/i18n.md).",
    )
    names: dict[Language, dict[PlantWord, PlantWord]] = Field(
        default_factory=dict,
        description="The plant's words for class and stage names, per language, e.g. "
        "{ko: {scratch: 스크래치}}: said in reasons, evidence, summaries and the status page; records "
        "keep the card's and the recipe's names. A name without an entry is said as it is (docs/i18n.md).",
    )


class TriggerConfig(_Section):
    """What starts an inspection."""

    mode: Literal["free_run", "robot", "hardware"] = Field(
        "robot",
        description="free_run: trigger itself every takt; robot: each new TRIGGER_SEQ over Modbus; "
        "hardware: every frame a hardware-triggered camera delivers is a part (live sources, buffer fifo).",
    )
    takt_ms: float = Field(
        200.0, ge=0.0, description="free_run: minimum time between triggers (0 = as fast as parts finish)."
    )


class RegistryModelConfig(_Section):
    """A recipe's model from a registry (`lineside models`): whichever version is promoted."""

    dir: Path = Field(description="Registry folder holding <name>/<version>/ and <name>/promoted.json.")
    name: str = Field(min_length=1, description="Model name in the registry.")
    poll_s: float = Field(
        2.0, ge=0.1, le=300.0, description="How often the inference worker reads the pointer, between parts."
    )
    allow_class_change: bool = Field(
        False,
        description="Accept a new version whose class list differs from the running model's, provided the "
        "recipe's rules still fit it; default: such a version is refused and the old model keeps judging.",
    )


class JudgeSettings(_Section):
    """A stage's name and its overrides of the card's thresholds (classify and anomaly kinds)."""

    name: str | None = Field(
        None,
        min_length=1,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The stage's name in reasons and records; default: detector, classifier or anomaly.",
    )
    threshold: float | None = Field(
        None, ge=0.0, description="classify/anomaly: reject at a score >= this; default: the card's."
    )
    pixel_threshold: float | None = Field(
        None, ge=0.0, description="anomaly: heat-map level counted as defect area; default: the card's."
    )
    min_area_px: float | None = Field(
        None, ge=0.0, description="anomaly: least defect area in frame px to reject; default: the card's."
    )
    min_area_mm2: float | None = Field(
        None, ge=0.0, description="anomaly: least defect area in mm^2, used instead of px once calibrated."
    )


class StageConfig(JudgeSettings):
    """One more judge of the part after the recipe's `model`: a detect, classify or anomaly model folder."""

    model: Path = Field(description="Model folder with model.onnx and card.json (the card names the kind).")


class RecipeConfig(_Section):
    """A product: the model, region of interest, rules and calibration used to judge it."""

    number: int = Field(ge=0, le=32767, description="Number the robot/PLC selects it by (RECIPE register).")
    name: str = Field(min_length=1, description="Product name, stored in every record.")
    model: Path = Field(
        Path(),
        description="Model folder holding model.onnx and card.json. With model_registry leave it out: it is "
        "set to the promoted version's folder when the file is loaded.",
    )
    model_registry: RegistryModelConfig | None = Field(
        None, description="Take the model from a registry: its promoted version, picked up between parts."
    )
    roi: RoiConfig = Field(default_factory=RoiConfig, description="Region of interest in frame pixels.")
    rules: RulesConfig | None = Field(
        None, description="Per-class reject rules; default: the model card's per-class thresholds."
    )
    calibration: Path | None = Field(None, description="Calibration file giving mm per pixel (optional).")
    stages: list[StageConfig] = Field(
        default_factory=list,
        max_length=7,
        description="More judges after `model` (a chain): every stage judges the part, any REJECT or FAULT "
        "wins, a stage that fails or is late is a FAULT. The frame is shared, never copied.",
    )
    model_settings: JudgeSettings = Field(
        default_factory=JudgeSettings,
        description="Name and thresholds for `model` itself when it is a classify or anomaly model.",
    )
    stage_timeout_ms: float | None = Field(
        None,
        gt=0,
        description="A stage that takes longer than this on one part makes it a FAULT (timeout); default: "
        "only the robot link's publish budget bounds the part.",
    )

    @model_validator(mode="after")
    def _promoted_model(self) -> RecipeConfig:
        # `model` stays a plain folder for everything that reads it; a registry recipe gets the folder of
        # the version promoted now, and the inference worker follows the pointer from there.
        if self.model_registry is None:
            if "model" not in self.model_fields_set:
                raise ValueError("set model (a model folder) or model_registry")
            return self
        if "model" in self.model_fields_set:
            raise ValueError("set model or model_registry, not both")
        from edge.modelstore.registry import promoted_model_dir

        try:
            self.model = promoted_model_dir(self.model_registry.dir, self.model_registry.name)
        except LinesideError as exc:
            raise ValueError(f"model_registry: {exc}") from None
        return self


class StationCheckConfig(_Section):
    """The check of focus, exposure and pose against the calibration's reference, at start."""

    mode: Literal["block", "warn", "off"] = Field(
        "block",
        description="block: a FAIL keeps the line out of READY (every trigger is an ERROR) until restarted "
        "after the station is fixed; warn: log it and run; off: no check. Applies when the default "
        "recipe's calibration file has a reference (lineside calibrate check --set-reference).",
    )


class RestartBudget(_Section):
    count: int = Field(5, ge=0, description="Restarts allowed per worker within the window.")
    window_s: float = Field(60.0, gt=0, description="Sliding window for the restart budget.")


class SupervisorConfig(_Section):
    """How the supervisor watches its workers."""

    heartbeat_interval_s: float = Field(0.25, gt=0, le=5, description="How often workers report.")
    stuck_after_s: float = Field(3.0, gt=0, description="A started worker silent this long is killed.")
    start_grace_s: float = Field(60.0, gt=0, description="Time a worker may take to start (model warm-up).")
    stop_timeout_s: float = Field(3.0, gt=0, description="Bounded wait per worker at shutdown before kill.")
    restart_budget: RestartBudget = Field(default_factory=RestartBudget)
    not_ready_warn_s: float = Field(10.0, gt=0, description="Log why the line is not READY this often.")
    cpu_placement: Literal["auto", "off"] = Field(
        "auto",
        description=(
            "auto: when detector.threads (auto: every usable CPU but one) is fewer than the usable CPUs,"
            " onnxruntime's threads run on the last CPUs and every other worker on the rest"
            " (runtime/placement.py); off: the OS places everything, and auto threads are every CPU. Either"
            " way the recorder, status and fleet workers run at nice +10."
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> SupervisorConfig:
        if self.stuck_after_s < 4 * self.heartbeat_interval_s:
            raise ValueError("stuck_after_s must be at least 4 x heartbeat_interval_s")
        return self


class PublishConfig(_Section):
    """The JSON stream of final inspections for other consumers (ZeroMQ PUB)."""

    endpoint: str | None = Field(
        None, description="ZeroMQ endpoint to bind, e.g. tcp://127.0.0.1:5571; default ipc in runtime_dir."
    )
    resubscribe_grace_ms: int = Field(
        500,
        ge=0,
        le=10000,
        description=(
            "After the robot link (re)starts and binds the stream, READY waits this long, so that subscribers"
            " reconnecting to it see the new BOOT_ID's first parts (a ZeroMQ SUB misses what is published"
            " before it is back; by default it retries every 100-200 ms: its interval plus a random jitter"
            " of up to one interval). Subscribers must reconnect within it."
        ),
    )


class LinesideConfig(_Section):
    """The whole appliance."""

    station: StationConfig = Field(default_factory=StationConfig)
    source: SourceConfig
    trigger: TriggerConfig = Field(default_factory=TriggerConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    recipes: list[RecipeConfig] = Field(min_length=1, description="Products this station inspects.")
    default_recipe: int = Field(description="Recipe number active at start.")
    robot_link: RobotLinkConfig = Field(default_factory=RobotLinkConfig)
    records: RecordsConfig
    supervisor: SupervisorConfig = Field(default_factory=SupervisorConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    station_check: StationCheckConfig = Field(default_factory=StationCheckConfig)
    status: StatusConfig = Field(default_factory=StatusConfig, description="Local status page and /metrics.")
    fleet: FleetConfig = Field(default_factory=FleetConfig, description="Final records to an MQTT broker.")
    aas: AasConfig = Field(default_factory=AasConfig, description="Asset Administration Shell, live API.")
    opcua: OpcUaConfig = Field(default_factory=OpcUaConfig, description="OPC UA Machine Vision server.")
    spc: SpcConfig = Field(default_factory=SpcConfig, description="Line alarms (docs/spc.md); warn only.")
    max_parts: int | None = Field(None, ge=1, description="Stop cleanly after this many inspections.")

    @model_validator(mode="after")
    def _check(self) -> LinesideConfig:
        numbers = [r.number for r in self.recipes]
        if len(set(numbers)) != len(numbers):
            raise ValueError("recipe numbers must be unique")
        if self.trigger.mode == "hardware" and (
            self.source.kind not in ("camera", "stream", "genicam") or self.source.buffer != "fifo"
        ):
            raise ValueError(
                "trigger.mode hardware needs a camera, stream or genicam source with buffer: fifo"
            )
        if self.default_recipe not in numbers:
            raise ValueError(f"default_recipe {self.default_recipe} is not one of the recipes {numbers}")
        return self

    def recipe(self, number: int) -> RecipeConfig | None:
        return next((r for r in self.recipes if r.number == number), None)


def _resolve_paths(raw: Any, base: Path) -> Any:
    """Make the known path fields absolute, relative to the config file's folder."""
    if not isinstance(raw, dict):
        return raw
    for recipe in raw.get("recipes", []) or []:
        if isinstance(recipe, dict):
            for key in ("model", "calibration"):
                if isinstance(recipe.get(key), str):
                    recipe[key] = str((base / recipe[key]).resolve())
            for stage in recipe.get("stages", []) or []:
                if isinstance(stage, dict) and isinstance(stage.get("model"), str):
                    stage["model"] = str((base / stage["model"]).resolve())
            registry = recipe.get("model_registry")
            if isinstance(registry, dict) and isinstance(registry.get("dir"), str):
                registry["dir"] = str((base / registry["dir"]).resolve())
    sections = (
        ("source", "path"),
        ("records", "dir"),
        ("station", "runtime_dir"),
        ("aas", "token_file"),
        ("status", "users_file"),
        ("status", "token_file"),
    )
    for section, key in sections:
        part = raw.get(section)
        if isinstance(part, dict) and isinstance(part.get(key), str):
            part[key] = str((base / part[key]).resolve())
    fleet = raw.get("fleet")
    if isinstance(fleet, dict):  # the broker password and TLS files, relative to the config too
        tls = fleet.get("tls")
        files = ("ca_file", "cert_file", "key_file")
        for part, key in ((fleet, "password_file"), *((tls, k) for k in files)):
            if isinstance(part, dict) and isinstance(part.get(key), str):
                part[key] = str((base / part[key]).resolve())
    opcua = raw.get("opcua")
    if isinstance(opcua, dict):  # the server's certificate, trusted clients and users, relative too
        for key in ("state_dir", "certificate_file", "private_key_file", "trusted_dir", "users_file"):
            if isinstance(opcua.get(key), str):
                opcua[key] = str((base / opcua[key]).resolve())
    return raw


def parse_config(raw: Any, origin: str, base: Path) -> LinesideConfig:
    """Validate an already-parsed YAML document; errors name `origin` and the field."""
    if not isinstance(raw, dict):
        raise LinesideError(f"{origin}: expected a mapping at the top level")
    try:
        return LinesideConfig.model_validate(_resolve_paths(raw, base))
    except ValidationError as exc:
        raise LinesideError(f"{origin}: {describe_validation_error(exc)}") from None


def load_config(path: Path) -> LinesideConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LinesideError(f"{path}: cannot read config ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise LinesideError(f"{path}:{where} invalid YAML") from None
    return parse_config(raw, str(path), path.parent)


def describe_validation_error(exc: ValidationError) -> str:
    """One line: the first failing field and why, plus how many more there are."""
    errors = exc.errors()
    first = errors[0]
    field = ".".join(str(p) for p in first["loc"]) or "(top level)"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"field '{field}': {message}{more}"
