"""An industrial GenICam camera (GigE Vision, USB3 Vision) through the Basler pylon SDK (`pypylon`).

The SDK is an optional extra (`lineside[genicam]`), imported only when a `kind: genicam` source is opened.
As in live.py, one grabber thread (grabber.py) owns the camera; `read()` waits on a condition with the
caller's timeout. A lost camera is released and reopened with exponential backoff while RECONNECTING.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.errors import LinesideError
from edge.sources.base import SourceState
from edge.sources.genicam_settings import CameraSettingRefused, apply_settings
from edge.sources.grabber import Grabbed, Grabber

if TYPE_CHECKING:
    from edge.sources.config import SourceConfig

log = logging.getLogger(__name__)

_POLL_MS = 50  # one RetrieveResult wait: bounds how long a stop or a trigger request waits
_TRIGGER_READY_MS = 200  # how long the grabber waits for the camera to accept a software trigger


def load_pylon() -> tuple[Any, Any]:
    """The SDK's `pylon` and `genicam` modules, or one LinesideError line saying how to install them."""
    try:
        from pypylon import genicam, pylon
    except ImportError as exc:
        raise LinesideError(
            "source.kind: 'genicam' needs the Basler pylon SDK, which is not installed "
            f"(pip install 'lineside[genicam]'; import failed: {exc})"
        ) from None
    return pylon, genicam


class GenicamSource(Grabber[Any]):
    """A GenICam camera found by serial number or DeviceUserID, configured from the `source:` section.

    trigger free_run: the camera streams; buffer latest returns the first frame retrieved after the read
    started (its timestamp: retrieval minus capture_latency_s). trigger software: a waiting read makes
    the grabber fire one software trigger; the frame it gives is stamped with the trigger time, so it
    serves only reads that started before it. trigger hardware: the camera exposes on a line edge.
    """

    _close_join_s = 3.0
    _open_wait_grace_s = 2.0  # on top of open_timeout_s: enumerating GigE cameras takes about a second
    _library = "the SDK"
    _running_message = "camera open and grabbing"
    _fatal_errors = (CameraSettingRefused,)  # a setting the camera refuses: retrying cannot help

    def __init__(self, cfg: SourceConfig) -> None:
        self._pylon, self._genicam = load_pylon()  # before any thread: a missing SDK is a config error
        if cfg.serial is not None:
            self._selector, origin = ("serial", cfg.serial), f"genicam:{cfg.serial}"
        elif cfg.user_id is not None:
            self._selector, origin = ("user_id", cfg.user_id), f"genicam:user_id={cfg.user_id}"
        else:
            raise LinesideError("source: kind 'genicam' needs serial or user_id")
        super().__init__(cfg, origin)
        self._trigger = cfg.trigger or "free_run"
        self._pending_trigger: float | None = None  # when the unanswered software trigger was fired
        self._applied: dict[str, str | float] = {}
        self._attempts = 0
        self._camera: Any = None  # the SDK's InstantCamera; only the grabber thread calls it

    # ---- the caller's side -------------------------------------------------------------------

    def open(self) -> None:
        """Start the grabber and wait (bounded) for its first attempt; a camera that is absent now is
        RECONNECTING, a setting it refuses is a LinesideError naming the field."""
        first = self._start_grabber()
        if first is None:
            return
        state, problem = first
        if state is SourceState.FAILED:
            self.close()
            raise LinesideError(f"{self._origin}: {problem}")
        log.info("opened %s", self.describe())

    def _on_read_waiting(self) -> None:
        self._cond.notify_all()  # software trigger: the grabber fires for this read

    def _timeout_detail(self) -> str:
        return f", trigger {self._trigger}"

    @property
    def open_attempts(self) -> int:
        """How many times the grabber has tried to find and open the camera (retries back off)."""
        with self._cond:
            return self._attempts

    @property
    def applied(self) -> dict[str, str | float]:
        """The settings read back from the camera after the last (re)connect (empty before one)."""
        with self._cond:
            return dict(self._applied)

    def describe(self) -> str:
        with self._cond:
            problem = f"; last problem: {self._problem}" if self._problem else ""
            settings = ", ".join(f"{k} {v}" for k, v in self._applied.items())
            counts = f"{self._delivered} frames read, {self._dropped} dropped, {self._reconnects} reconnects"
            head = f"genicam {self._origin} (trigger {self._trigger}, buffer {self._cfg.buffer})"
            return f"{head}, {self._state.value}, {counts}" + (f"; {settings}" if settings else "") + problem

    # ---- the grabber thread ------------------------------------------------------------------

    def _connect(self) -> Any:
        """An opened, configured, grabbing camera; None (with self._problem) when it cannot be had now."""
        pylon = self._pylon
        factory = pylon.TlFactory.GetInstance()
        key, wanted = self._selector
        with self._cond:
            self._attempts += 1
        try:
            found = [
                info
                for info in factory.EnumerateDevices()
                if (info.GetSerialNumber() if key == "serial" else info.GetUserDefinedName()) == wanted
            ]
            if not found:
                self._problem = (
                    f"no camera with {key} '{wanted}' found (unplugged, powered off or unreachable)"
                )
                return None
            camera = pylon.InstantCamera(factory.CreateDevice(found[0]))
            camera.Open()
        except self._genicam.GenericException as exc:
            self._problem = f"cannot open the camera: {_first_line(exc)}"
            return None
        try:
            self._configure(camera)
            strategy = pylon.GrabStrategy_OneByOne if self._cfg.buffer == "fifo" else None
            camera.StartGrabbing(strategy if strategy is not None else pylon.GrabStrategy_LatestImageOnly)
        except CameraSettingRefused:
            self._release(camera)
            raise
        except self._genicam.GenericException as exc:
            self._release(camera)
            self._problem = f"cannot configure the camera: {_first_line(exc)}"
            return None
        return camera

    def _configure(self, camera: Any) -> None:
        applied = apply_settings(camera.GetNodeMap(), self._cfg, self._genicam)
        with self._cond:
            self._applied = applied

    def _stream(self, camera: Any) -> bool:
        self._camera = camera  # set only while this connection streams (the unplug test reaches it)
        try:
            return self._retrieve(camera)
        finally:
            self._camera = None

    def _retrieve(self, camera: Any) -> bool:
        """Retrieve until the camera is lost or stop is set; True if the connection was worth keeping."""
        connected = last_frame = time.monotonic()
        streamed = False
        self._set_state(SourceState.RUNNING, "")
        try:
            while not self._stop.is_set():
                self._fire_if_wanted(camera)
                result = camera.RetrieveResult(_POLL_MS, self._pylon.TimeoutHandling_Return)
                now = time.monotonic()
                if result is not None and result.IsValid():
                    try:
                        self._handle(result, now)
                    finally:
                        result.Release()
                    streamed, last_frame = True, now
                elif silence := self._silence(now, last_frame):
                    self._problem = silence
                    break
                if camera.IsCameraDeviceRemoved():
                    self._problem = "camera lost: removed (unplugged, powered off or its link lost)"
                    break
                if not camera.IsGrabbing():  # the SDK stopped the grab engine (closed, or a fatal error)
                    self._problem = "camera lost: grabbing stopped"
                    break
        except self._genicam.GenericException as exc:
            self._problem = f"camera lost: {_first_line(exc)}"
        return streamed or time.monotonic() - connected > self._cfg.reconnect_max_s

    def _fire_if_wanted(self, camera: Any) -> None:
        """Software trigger: one trigger at a time, only while a read waits for a frame."""
        if self._trigger != "software":
            return
        with self._cond:
            if self._pending_trigger is not None or not self._waiting:
                return
        if not camera.WaitForFrameTriggerReady(_TRIGGER_READY_MS, self._pylon.TimeoutHandling_Return):
            return
        fired = time.monotonic()
        camera.ExecuteSoftwareTrigger()
        with self._cond:
            self._pending_trigger = fired

    def _silence(self, now: float, last_frame: float) -> str:
        """Why the camera counts as lost for want of frames, or '' (hardware triggers may never come)."""
        limit = self._cfg.read_timeout_s
        with self._cond:
            pending = self._pending_trigger
        if pending is not None and now - pending > limit:
            return f"no frame {limit:.1f} s after a software trigger"
        if self._trigger == "free_run" and now - last_frame > limit:
            return f"no frame for {limit:.1f} s while free-running"
        return ""

    def _handle(self, result: Any, now: float) -> None:
        with self._cond:
            fired, self._pending_trigger = self._pending_trigger, None
        timestamp = fired if fired is not None else now - self._cfg.capture_latency_s
        if not self._wanted(timestamp):
            return  # nobody waits for this frame: skip the conversion
        if not result.GrabSucceeded():
            why = f"camera delivered a failed frame: {result.GetErrorDescription()}"
            self._publish(Grabbed(None, timestamp, why))
            return
        try:
            self._publish(Grabbed(self._to_bgr(result), timestamp))
        except self._genicam.GenericException as exc:
            self._publish(Grabbed(None, timestamp, f"cannot convert the frame: {_first_line(exc)}"))

    def _to_bgr(self, result: Any) -> np.ndarray:
        pylon = self._pylon
        if result.GetPixelType() in (pylon.PixelType_Mono8, pylon.PixelType_BGR8packed):
            return np.array(result.GetArray(), copy=True)  # conform() makes Mono8 BGR
        converter = pylon.ImageFormatConverter()
        converter.OutputPixelFormat = pylon.PixelType_BGR8packed
        return np.array(converter.Convert(result).GetArray(), copy=True)

    def _release(self, camera: Any) -> None:
        try:
            if camera.IsGrabbing():
                camera.StopGrabbing()
            camera.Close()
            camera.DestroyDevice()
        except self._genicam.GenericException as exc:  # a lost camera may refuse even this
            log.debug("%s: release: %s", self._origin, _first_line(exc))

    def _forget_on_loss(self) -> None:
        self._pending_trigger = None  # a trigger fired on the lost connection will never be answered


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
