"""Publishes final inspection records to an MQTT broker, with a retained online/offline status topic.

paho's network thread connects, reconnects with backoff and holds QoS 1/2 records (bounded) while the
broker is away; `publish` never blocks. The broker sends the retained "offline" last will if this
process dies without saying goodbye.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edge.errors import LinesideError
from edge.fleet.config import FleetConfig
from edge.judge.inspection import Verdict
from edge.runtime.messages import AlarmState, LedgerEvent

log = logging.getLogger(__name__)

ONLINE, OFFLINE = b"online", b"offline"
CONNECT_TIMEOUT_S = 2.0  # one connect attempt, so a stop never waits long on an unreachable broker
GOODBYE_WAIT_S = 1.0  # at a clean stop: how long the last records and "offline" may take to leave


def record_payload(event: LedgerEvent, station: str) -> dict[str, Any]:
    """The published record: the final verdict with its reasons, detections, model and timings."""
    trigger, result = event.trigger, event.result
    verdict = event.verdict or Verdict.FAULT
    return {
        "station": station,
        "boot_id": trigger.boot_id,
        "seq": trigger.seq,
        "part_id": trigger.part_id,
        "recipe": trigger.recipe,
        "recipe_name": result.recipe_name if result is not None else "",
        "verdict": verdict.value,
        "reasons": list(event.reasons),
        "error_code": int(event.error_code),
        "error": event.error_code.kind if verdict is Verdict.FAULT else None,
        "late": event.late,
        "latency_ms": event.latency_ms,
        "triggered_at": trigger.wall_trigger,
        "decided_at": event.wall_decided,
        "detections": list(result.detections) if result is not None else [],
        "model": result.model.model_dump() if result is not None else None,
        "timings_ms": dict(result.timings_ms) if result is not None else {},
    }


class FleetPublisher:
    """One MQTT session for one station: `<prefix>/<station>/records`, the retained `.../status` and the
    retained `.../alarms` (line alarms in force, docs/spc.md)."""

    def __init__(self, cfg: FleetConfig, station: str) -> None:
        self.cfg = cfg
        self.station = station
        base = f"{cfg.topic_prefix.rstrip('/')}/{station}"
        self.records_topic, self.status_topic = f"{base}/records", f"{base}/status"
        self.alarms_topic = f"{base}/alarms"  # retained: a new subscriber learns the alarms in force
        self._connected = threading.Event()
        self.counts = {"published": 0, "dropped": 0, "connects": 0}
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id or f"lineside-{station}",
            protocol=mqtt.MQTTv311,
        )
        client.will_set(self.status_topic, OFFLINE, qos=1, retain=True)
        client.max_queued_messages_set(cfg.queue_size)
        client.reconnect_delay_set(min_delay=cfg.reconnect_min_s, max_delay=cfg.reconnect_max_s)
        client.connect_timeout = CONNECT_TIMEOUT_S
        if cfg.username is not None:
            client.username_pw_set(cfg.username, _password(cfg))
        if cfg.tls is not None:
            tls = cfg.tls
            client.tls_set(
                ca_certs=str(tls.ca_file),
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
            )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self.client = client

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        """Connect in the background (and keep reconnecting); returns at once."""
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        self.client.loop_start()

    def publish(self, event: LedgerEvent) -> bool:
        """Hand one final record to the session; False (counted) if it had to be dropped."""
        payload = json.dumps(record_payload(event, self.station)).encode("utf-8")
        if self.cfg.qos == 0 and not self.connected:
            self.counts["dropped"] += 1  # QoS 0 is never held for a broker that is away
            return False
        info = self.client.publish(self.records_topic, payload, qos=self.cfg.qos)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            self.counts["dropped"] += 1  # the bounded queue is full (or the client refused it)
            return False
        self.counts["published"] += 1
        return True

    def publish_alarms(self, state: AlarmState) -> bool:
        """The line alarms in force as a retained message (sent on change); False if not handed over."""
        payload = {"station": self.station, **state.model_dump(mode="json")}
        info = self.client.publish(self.alarms_topic, json.dumps(payload).encode("utf-8"), qos=1, retain=True)
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def close(self) -> None:
        """A clean goodbye: retained "offline" (so no last will is needed), then disconnect."""
        if self.connected:
            info = self.client.publish(self.status_topic, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(GOODBYE_WAIT_S)
            except (RuntimeError, ValueError):
                log.warning("fleet: the broker went away before 'offline' was sent; its last will says it")
        self.client.disconnect()
        # Joins paho's network thread: it leaves within one connect attempt (CONNECT_TIMEOUT_S) at most.
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("fleet: broker %s:%s refused the connection: %s", self.cfg.host, self.cfg.port, reason)
            return
        client.publish(self.status_topic, ONLINE, qos=1, retain=True)
        self.counts["connects"] += 1
        self._connected.set()
        log.info("fleet: connected to %s:%s, records on %s", self.cfg.host, self.cfg.port, self.records_topic)

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if self._connected.is_set():
            log.warning("fleet: lost the broker (%s); reconnecting with backoff", reason)
        self._connected.clear()


def _password(cfg: FleetConfig) -> str | None:
    if cfg.password_file is None:
        return None
    try:
        lines = cfg.password_file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise LinesideError(
            f"fleet.password_file: cannot read {cfg.password_file} ({exc.strerror})"
        ) from None
    return lines[0] if lines else ""
