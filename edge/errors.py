"""Fault kinds and the error codes the robot link publishes for them (ERROR_CODE register).

The numbers are part of the robot/PLC contract (docs/robot-link.md): never renumber, only add.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.IntEnum):
    """Why an inspection could not give a valid verdict. 0 means no error."""

    NONE = 0
    CAMERA = 1  # no frame: camera lost, reconnecting, source ended or failed
    FRAME = 2  # a frame arrived but is corrupt, empty or of the wrong size
    MODEL = 3  # model missing, refused, or inference raised
    TIMEOUT = 4  # no result within the publish budget
    DISABLED = 5  # the robot/PLC has not enabled inspection
    OVERLOAD = 6  # a queue was full; the part was not inspected
    SHUTDOWN = 7  # the appliance is stopping
    WORKER = 8  # a worker died or was restarted while the part was in flight
    RECIPE = 9  # unknown or unusable recipe requested
    LINK = 10  # robot link problem (heartbeat stale, session changed)
    CALIBRATION = 11  # station check failed (focus, exposure, pose)
    NOT_READY = 12  # triggered before the appliance was READY
    INTERNAL = 99  # an unexpected exception; see the logs

    @property
    def kind(self) -> str:
        return self.name.lower()


class LinesideError(Exception):
    """A problem a user can fix, reported as one line naming the file, field or register."""
