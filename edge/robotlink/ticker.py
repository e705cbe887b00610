"""The handshake's clock tick, shared by both roles: heartbeat, publish budget and robot staleness."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from edge.robotlink.events import Event
from edge.robotlink.handshake import Handshake

TICK_PERIOD_S = 0.01  # well under the 100 ms heartbeat and any publish budget


async def run_ticks(
    handshake: Handshake, on_events: Callable[[list[Event]], None], stop: asyncio.Event, period_s: float
) -> None:
    """Call `handshake.tick()` every `period_s` until `stop` is set, handing its events on."""
    while not stop.is_set():
        events = handshake.tick()
        if events:
            on_events(events)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), period_s)
