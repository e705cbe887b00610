"""The fleet feed against a real MQTT broker (Debian mosquitto on 127.0.0.1): every final record arrives
with its verdict, and the retained status says "offline" when the fleet worker or the whole run dies."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.fleet.config import FleetConfig
from edge.fleet.publisher import FleetPublisher
from edge.judge.inspection import Verdict
from edge.runtime.messages import LedgerEvent, Trigger
from tests.debian import require_debian
from tests.line import free_port, make_station, running_line

STATUS = "plant/test-line/status"
RECORDS = "plant/test-line/records"


@dataclass
class Subscriber:
    """A client of the broker collecting what the fleet topics carry."""

    client: mqtt.Client
    records: list[dict[str, object]] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_message(self, _client: object, _userdata: object, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            if message.topic == RECORDS:
                self.records.append(json.loads(message.payload))
            elif message.topic == STATUS:
                self.statuses.append(message.payload.decode())

    def wait(self, predicate: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate():  # type: ignore[operator]
                    return
            time.sleep(0.05)
        raise AssertionError(
            f"timed out waiting for {what}: statuses {self.statuses}, {len(self.records)} records"
        )


@dataclass
class Broker:
    """A mosquitto on 127.0.0.1 that a test can stop and start again on the same port."""

    port: int
    conf: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(shutil.which("mosquitto")), "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = mqtt.Client(CallbackAPIVersion.VERSION2)
            try:
                probe.connect("127.0.0.1", self.port, keepalive=5)
                probe.disconnect()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("mosquitto did not start")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    require_debian("mosquitto", programs=("mosquitto",))
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n", encoding="utf-8")
    broker = Broker(port, conf)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def broker(mosquitto: Broker) -> int:
    return mosquitto.port


@pytest.fixture
def subscriber(broker: int) -> Iterator[Subscriber]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fleet-test-subscriber")
    sub = Subscriber(client)
    client.on_message = sub.on_message
    subscribed = threading.Event()
    client.on_subscribe = lambda *_args: subscribed.set()
    # (Re)subscribe on every connect: the broker may be restarted by a test.
    client.on_connect = lambda c, *_args: c.subscribe("plant/test-line/#", qos=1)
    client.reconnect_delay_set(min_delay=1, max_delay=1)
    client.connect("127.0.0.1", broker, keepalive=10)
    client.loop_start()
    assert subscribed.wait(5), "subscription not acknowledged"
    try:
        yield sub
    finally:
        client.disconnect()
        client.loop_stop()


def _fleet(broker: int) -> dict[str, object]:
    return {"fleet": {"enabled": True, "port": broker, "topic_prefix": "plant", "qos": 1, "keepalive_s": 5}}


@pytest.mark.slow
def test_every_final_record_arrives_with_its_verdict_and_a_clean_stop_says_offline(
    tmp_path: Path, broker: int, subscriber: Subscriber
) -> None:
    config, _ = make_station(tmp_path, "gd", takt_ms=30, extra=_fleet(broker))
    with running_line(config, "--max-parts", "12") as line:
        assert line.process.wait(60) == 0
    subscriber.wait(lambda: subscriber.statuses[-1:] == ["offline"], 5, "the goodbye")
    assert subscriber.statuses == ["online", "offline"]
    assert [r["seq"] for r in subscriber.records] == list(range(1, 13))
    assert [r["verdict"] for r in subscriber.records] == ["ACCEPT", "REJECT"] * 6
    first_reject = subscriber.records[1]
    assert first_reject["station"] == "test-line" and first_reject["recipe_name"] == "test-part"
    assert first_reject["detections"] and first_reject["model"]["sha256"]  # type: ignore[index]


@pytest.mark.slow
def test_killing_the_fleet_worker_or_the_whole_run_makes_the_broker_say_offline(
    tmp_path: Path, broker: int, subscriber: Subscriber
) -> None:
    config, _ = make_station(tmp_path, "gd", takt_ms=50, extra=_fleet(broker))
    with running_line(config) as line:
        subscriber.wait(lambda: len(subscriber.records) >= 3, 30, "the first records")
        fleet_pid = line.worker_pid("fleet")
        assert fleet_pid is not None and subscriber.statuses == ["online"]
        os.kill(fleet_pid, signal.SIGKILL)
        # The last will, from the broker: the connection dropped without a goodbye.
        subscriber.wait(lambda: subscriber.statuses[1:2] == ["offline"], 10, "the last will")
        # Restarted by the supervisor (an observer: the line never stopped), it is back online.
        subscriber.wait(lambda: subscriber.statuses[2:3] == ["online"], 30, "the restarted feed")
        seen = len(subscriber.records)
        subscriber.wait(lambda: len(subscriber.records) > seen + 2, 20, "records after the restart")
        with subscriber.lock:
            before_kill = len(subscriber.records)
        os.kill(line.process.pid, signal.SIGKILL)
        subscriber.wait(lambda: subscriber.statuses[3:4] == ["offline"], 15, "offline after the run died")
    seqs = [int(r["seq"]) for r in subscriber.records]  # type: ignore[call-overload]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # never a duplicate, never out of order
    # Until the run was killed every part was judged as usual (those caught in its stop may be FAULTs).
    judged = [(int(r["seq"]), r["verdict"]) for r in subscriber.records[:before_kill]]  # type: ignore[call-overload]
    assert [v for _, v in judged] == [("ACCEPT" if seq % 2 else "REJECT") for seq, _ in judged]


def test_publishing_never_blocks_and_the_queue_is_bounded_while_the_broker_is_away() -> None:
    cfg = FleetConfig(
        enabled=True, port=free_port(), qos=1, queue_size=5, reconnect_min_s=1, reconnect_max_s=2
    )
    publisher = FleetPublisher(cfg, "test-line")
    publisher.start()  # nothing listens on that port
    trigger = Trigger(
        boot_id=1, seq=1, trigger_seq=1, recipe=1, t_trigger=0.0, wall_trigger=0.0, budget_ms=100
    )
    event = LedgerEvent(kind="finalised", trigger=trigger, verdict=Verdict.REJECT, reasons=("REJECT: x",))
    try:
        started = time.monotonic()
        accepted = [publisher.publish(event) for _ in range(200)]
        elapsed = time.monotonic() - started
    finally:
        publisher.close()
    assert elapsed < 1.0
    assert accepted.count(True) == 5 and publisher.counts == {"published": 5, "dropped": 195, "connects": 0}


@pytest.mark.slow
def test_the_feed_reconnects_after_the_broker_was_away_and_the_line_never_waited(
    tmp_path: Path, mosquitto: Broker, subscriber: Subscriber
) -> None:
    fleet = _fleet(mosquitto.port)
    fleet["fleet"] = {**fleet["fleet"], "reconnect_min_s": 1, "reconnect_max_s": 2}  # type: ignore[dict-item]
    config, _ = make_station(tmp_path, "gd", takt_ms=50, extra=fleet)
    with running_line(config) as line:
        subscriber.wait(lambda: len(subscriber.records) >= 3, 30, "the first records")
        mosquitto.stop()
        parts_before = len(line.part_lines())
        line.wait_for(
            lambda: len(line.part_lines()) >= parts_before + 20, 20, "parts while the broker is away"
        )
        mosquitto.start()
        subscriber.wait(lambda: "online" in subscriber.statuses[1:], 20, "the feed back online")
        seen = len(subscriber.records)
        subscriber.wait(lambda: len(subscriber.records) >= seen + 5, 20, "records after the reconnect")
        assert line.worker_pid("fleet") is not None
    assert "restarting" not in "".join(line.stderr)  # the same fleet worker reconnected: never restarted


def _retained(broker: int, topic: str, timeout: float = 5.0) -> dict[str, object]:
    """What a new subscriber gets on `topic` at once: the broker's retained message."""
    got: list[bytes | bytearray] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fleet-test-late-subscriber")
    client.on_message = lambda _c, _u, message: got.append(message.payload)
    client.on_connect = lambda c, *_args: c.subscribe(topic, qos=1)
    client.connect("127.0.0.1", broker, keepalive=10)
    client.loop_start()
    try:
        deadline = time.monotonic() + timeout
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
    assert got, f"nothing retained on {topic}"
    payload: dict[str, object] = json.loads(got[-1])
    return payload


@pytest.mark.slow
def test_line_alarms_are_retained_on_the_alarms_topic(tmp_path: Path, broker: int) -> None:
    # 5 subgroups of 10 at 1 defective in 10, then 8 in 10: the reject-rate alarm (docs/spc.md).
    pattern = "ggggdggggg" * 5 + "ddgddddgdd" * 5
    spc = {"spc": {"pchart": {"subgroup": 10, "baseline_subgroups": 5}}}
    config, _ = make_station(tmp_path, pattern, takt_ms=30, loop=False, extra={**_fleet(broker), **spc})
    with running_line(config) as line:
        assert line.process.wait(90) == 0, "".join(line.stderr[-30:])
    state = _retained(broker, "plant/test-line/alarms")  # after the run: the last state, retained
    assert state["station"] == "test-line"
    assert state["raised"] == {"reject_rate beyond_3sigma": 1, "class_rate:scratch beyond_3sigma": 1}
    assert state["word"] == 0b11 and state["active"] == ["reject_rate", "class_rate:scratch"]
    latest = state["latest"]
    assert isinstance(latest, list) and latest[0]["chart"] == "reject_rate" and latest[0]["parts"] == 10
