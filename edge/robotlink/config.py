"""Configuration of the robot link: where it listens, its timing budget and what it demands of the robot."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.robotlink.interlock import InterlockConfig, NoInterlockConfig
from edge.robotlink.registers import BLOCK_COUNT
from edge.robotlink.security import AllowEntry, HmiConfig, TlsConfig


class RobotLinkConfig(BaseModel):
    """The Modbus TCP robot link (docs/ROBOT-LINK.md). Defaults suit a robot polling a lineside server."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["server", "client"] = Field(
        "server",
        description="server: lineside serves holding registers and the robot/PLC polls and writes them. "
        "client: lineside connects to the robot's Modbus server (robot_host:robot_port), writes its block "
        "into the robot's general-purpose registers at `base` (UR: 128) and polls the robot's block.",
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
        0,
        ge=0,
        le=255,
        description="role server: Modbus unit id to answer; 0 answers any unit id (UR uses 255). "
        "role client: the unit id sent to the robot, 1..255 (0 is the broadcast address: no reply).",
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
    robot_host: str | None = Field(
        None,
        min_length=1,
        description="role client: the robot's address (its Modbus TCP server); required in role client.",
    )
    robot_port: int = Field(
        502, ge=1, le=65535, description="role client: the robot's Modbus TCP port (UR: 502)."
    )
    poll_period_ms: int = Field(
        15,
        ge=5,
        le=1000,
        description="role client: one FC3 read of the robot block per period (10-20 ms); a changed lineside "
        "block follows in one FC16 write. Also samples ROBOT_HEARTBEAT, so it counts for the staleness rule.",
    )
    timeout_s: float = Field(
        0.3,
        ge=0.2,
        le=0.5,
        description="role client: bound on one connect attempt and on one request; a request without a reply "
        "in time drops the connection, which is rebuilt with a cleared block first.",
    )
    reconnect_delay_s: float = Field(
        0.2, ge=0.05, le=10.0, description="role client: wait after a failed connect; doubles per failure."
    )
    reconnect_delay_max_s: float = Field(
        2.0, ge=0.05, le=60.0, description="role client: the longest wait between connect attempts."
    )

    allow: list[AllowEntry] = Field(
        default_factory=list,
        description="Client IPs or networks (192.168.10.5, 192.168.10.0/24) allowed to connect; others are "
        "refused and logged. Empty: any peer that can reach `host`.",
    )
    max_connections: int = Field(
        8, ge=1, le=256, description="Client connections beyond this are refused (a robot needs one or two)."
    )
    idle_timeout_ms: int = Field(
        60000,
        ge=0,
        le=3_600_000,
        description="Close a client connection that sent nothing this long; 0: never. TCP keepalive "
        "(about 25 s) also drops dead peers.",
    )
    tls: TlsConfig | None = Field(
        None,
        description="Modbus/TCP Security: serve TLS on `port` (802 by convention) instead of plain TCP.",
    )
    hmi: HmiConfig | None = Field(
        None, description="A second listener serving the same registers entirely read-only (HMI, SCADA)."
    )
    interlock: InterlockConfig = Field(
        default_factory=NoInterlockConfig,
        description="The line interlock output raised while the robot heartbeat is stale "
        "(kind: none | modbus | command).",
    )

    @model_validator(mode="after")
    def _check_client(self) -> RobotLinkConfig:
        if self.role != "client":
            return self
        if self.robot_host is None:
            raise ValueError("robot_host is required when role is client (the robot's Modbus server address)")
        if self.unit_id == 0:
            raise ValueError(
                "unit_id 0 is the Modbus broadcast address and gets no reply in role client: use "
                "the robot's unit id (255 for Modbus/TCP devices such as UR)"
            )
        if self.reconnect_delay_s > self.reconnect_delay_max_s:
            raise ValueError(
                f"reconnect_delay_s ({self.reconnect_delay_s}) must be <= reconnect_delay_max_s "
                f"({self.reconnect_delay_max_s})"
            )
        if self.poll_period_ms >= self.publish_budget_ms:
            raise ValueError(
                f"poll_period_ms ({self.poll_period_ms}) must be below publish_budget_ms "
                f"({self.publish_budget_ms}), or no result is published in time"
            )
        if self.robot_heartbeat_timeout_ms < 3 * self.poll_period_ms:
            raise ValueError(
                f"robot_heartbeat_timeout_ms ({self.robot_heartbeat_timeout_ms}) must be >= 3 x "
                f"poll_period_ms ({self.poll_period_ms}), or a live robot can look frozen"
            )
        return self

    @model_validator(mode="after")
    def _check_timing(self) -> RobotLinkConfig:
        slower = max(self.heartbeat_period_ms, self.robot_heartbeat_period_ms)
        if self.robot_heartbeat_timeout_ms < 3 * slower:
            raise ValueError(
                f"robot_heartbeat_timeout_ms ({self.robot_heartbeat_timeout_ms}) must be >= 3 x the slower "
                f"heartbeat period ({slower} ms), or a live peer can look frozen"
            )
        return self

    @model_validator(mode="after")
    def _check_interlock(self) -> RobotLinkConfig:
        if self.interlock.kind != "none" and not self.robot_heartbeat_required:
            raise ValueError(
                "interlock needs robot_heartbeat_required: true (without a heartbeat it is never raised)"
            )
        return self
