"""Configuration of the robot link: where it listens, its timing budget and what it demands of the robot."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.robotlink.registers import BLOCK_COUNT


class RobotLinkConfig(BaseModel):
    """The Modbus TCP robot link (docs/ROBOT-LINK.md). Defaults suit a robot polling a lineside server."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["server"] = Field(
        "server",
        description="server: lineside serves holding registers and the robot/PLC polls and writes them.",
    )
    host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="Address to bind: the robot-facing interface in production, not all interfaces.",
    )
    port: int = Field(
        5020,
        ge=0,
        le=65535,
        description="TCP port; 502 in production (UR signals have no port setting); 0: the OS picks (tests).",
    )
    base: int = Field(
        0,
        ge=0,
        le=65536 - BLOCK_COUNT,
        description="PDU address (0-based) of offset 0 of the register map; the map spans 22 registers.",
    )
    unit_id: int = Field(
        0, ge=0, le=255, description="Modbus unit id to answer; 0 answers any unit id (UR uses 255)."
    )
    publish_budget_ms: int = Field(
        450,
        ge=10,
        le=30000,
        description="Trigger-to-publish budget; a later result is published as LATE, never as a verdict. "
        "Keep it below the robot's deadline minus its poll period and a network margin.",
    )
    heartbeat_period_ms: int = Field(
        100, ge=20, le=10000, description="HEARTBEAT advances by one every period (1..32767, then 1)."
    )
    robot_heartbeat_period_ms: int = Field(
        200,
        ge=10,
        le=10000,
        description="The robot program's ROBOT_HEARTBEAT cycle (>= 5 Hz); checks the staleness threshold.",
    )
    robot_heartbeat_timeout_ms: int = Field(
        1000,
        ge=30,
        le=60000,
        description="ROBOT_HEARTBEAT unchanged this long is stale: result cleared, sequence forgotten, "
        "interlock raised. Must be >= 3 x the slower of the two heartbeat periods (aliasing).",
    )
    robot_heartbeat_required: bool = Field(
        True,
        description="Demand a moving robot heartbeat before accepting triggers; False only for the "
        "free-running demo with no robot (STATUS bit4 stays 0 and no interlock is raised).",
    )
    require_enable: bool = Field(
        True,
        description="Refuse triggers unless the robot set CONTROL bit0 ENABLE; the free-running demo: False.",
    )

    @model_validator(mode="after")
    def _check_timing(self) -> RobotLinkConfig:
        slower = max(self.heartbeat_period_ms, self.robot_heartbeat_period_ms)
        if self.robot_heartbeat_timeout_ms < 3 * slower:
            raise ValueError(
                f"robot_heartbeat_timeout_ms ({self.robot_heartbeat_timeout_ms}) must be >= 3 x the slower "
                f"heartbeat period ({slower} ms), or a live peer can look frozen"
            )
        return self
