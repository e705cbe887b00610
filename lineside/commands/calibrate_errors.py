"""How a `lineside calibrate STEP` ends on bad input: one line on stderr, in the technician's language
where it is a calibration message (calibration/errors.py), and exit status 2.

Inserted as they are, in English: a LinesideError from the runtime's own checks (a config or calibration
file that does not validate), and the words OpenCV or the OS gave.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import cv2

from calibration.errors import SaidError
from edge.errors import LinesideError
from edge.i18n import Message, render

BAD_INPUT = 2
Handler = Callable[[argparse.Namespace], int]


def reporting(name: str, handler: Handler) -> Handler:
    """Run a handler; a LinesideError, an OS or an OpenCV error becomes one line on stderr, exit 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except SaidError as exc:  # advice or a bad input, in the technician's language
            message = exc.said(args.lang)
        except LinesideError as exc:
            message = str(exc)
        except OSError as exc:
            message = render(os_message(exc), args.lang)
        except cv2.error as exc:
            opencv = str(exc).strip().splitlines()[-1]  # OpenCV's own words, as it said them
            message = render(Message("calib.input.opencv", {"error": opencv}), args.lang)
        print(f"lineside calibrate {name}: {message}", file=sys.stderr)
        return BAD_INPUT

    return run


def os_message(exc: OSError) -> Message:
    """An OS error with the file it names; the OS's own words (`strerror`) inserted as they are."""
    why = exc.strerror or str(exc)
    if not exc.filename:
        return Message("calib.input.os_unnamed", {"why": why})
    said = {"path": exc.filename, "why": why}
    return Message(
        "calib.input.os_missing" if isinstance(exc, FileNotFoundError) else "calib.input.os_error", said
    )
