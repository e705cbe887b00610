"""Whether the robot's heartbeat register is moving, and the line interlock that follows from it (rule 3)."""

from __future__ import annotations

from edge.robotlink.events import InterlockChanged


class RobotHeartbeatWatch:
    """Tracks ROBOT_HEARTBEAT moves on an injected clock's timestamps.

    When the heartbeat is required, the interlock starts raised (no robot seen yet), is lowered when the
    heartbeat moves, and is raised again when it stays unchanged longer than the timeout. When it is not
    required (free-running demo), `ok` still reports what is seen but the interlock is never raised.
    """

    def __init__(self, timeout_ms: int, required: bool) -> None:
        self._timeout_s = timeout_ms / 1000.0
        self._required = required
        self._seen_once = False
        self._last_move: float | None = None
        self.ok = False
        self.interlock_raised = required
        self._announced = False

    def initial_state(self) -> InterlockChanged | None:
        """The interlock's state at start, reported once (so a listener never has to guess it)."""
        if self._announced or not self.interlock_raised:
            return None
        self._announced = True
        return InterlockChanged(True, "no robot heartbeat seen since start")

    def written(self, now: float, moved: bool) -> InterlockChanged | None:
        """The robot wrote ROBOT_HEARTBEAT; `moved` when the value differs from the previous one."""
        if not self._seen_once:
            # The first value proves nothing: a frozen robot program writes it too.
            self._seen_once = True
            return None
        if not moved:
            return None
        self._last_move = now
        if self.ok:
            return None
        self.ok = True
        if not self.interlock_raised:
            return None
        self.interlock_raised = False
        self._announced = True
        return InterlockChanged(False, "robot heartbeat moving")

    def check(self, now: float) -> InterlockChanged | None:
        """Called often; returns the raise event when a required heartbeat has just gone stale."""
        if not self.ok or self._last_move is None or now - self._last_move <= self._timeout_s:
            return None
        self.ok = False
        if not self._required:
            return None
        self.interlock_raised = True
        self._announced = True
        return InterlockChanged(
            True, f"robot heartbeat unchanged for more than {self._timeout_s * 1000:.0f} ms"
        )
