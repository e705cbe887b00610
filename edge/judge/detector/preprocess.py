"""Frame to model input: letterbox like Ultralytics' LetterBox(auto=False), colour order, scale, NCHW.

The transform it returns maps boxes from model-input pixels back to original-frame pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge.modelstore.card import InputSpec

_DTYPES: dict[str, type[np.generic]] = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8}


@dataclass(frozen=True)
class LetterboxTransform:
    """How a frame was placed in the model input: scaled by `ratio`, then shifted by (pad_x, pad_y)."""

    ratio: float
    pad_x: int
    pad_y: int
    resized_width: int
    resized_height: int
    frame_width: int
    frame_height: int

    def boxes_to_frame(self, boxes_xyxy: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """Map (N, 4) x1,y1,x2,y2 boxes in model-input pixels to frame pixels, clipped to the frame."""
        out = np.array(boxes_xyxy, dtype=np.float64, copy=True).reshape(-1, 4)
        out[:, 0::2] -= self.pad_x
        out[:, 1::2] -= self.pad_y
        out /= self.ratio
        np.clip(out[:, 0::2], 0.0, float(self.frame_width), out=out[:, 0::2])
        np.clip(out[:, 1::2], 0.0, float(self.frame_height), out=out[:, 1::2])
        return out


def letterbox_transform(
    frame_width: int, frame_height: int, input_width: int, input_height: int
) -> LetterboxTransform:
    """The Ultralytics letterbox geometry (centred, scale up allowed), rounding exactly as it does."""
    ratio = min(input_height / frame_height, input_width / frame_width)
    resized_w = round(frame_width * ratio)
    resized_h = round(frame_height * ratio)
    # Ultralytics splits an odd pixel with round(d - 0.1) left/top and round(d + 0.1) right/bottom.
    pad_x = round((input_width - resized_w) / 2 - 0.1)
    pad_y = round((input_height - resized_h) / 2 - 0.1)
    return LetterboxTransform(ratio, pad_x, pad_y, resized_w, resized_h, frame_width, frame_height)


class Preprocessor:
    """Turns BGR uint8 frames into the tensor the card describes, reusing its buffers between frames.

    The returned tensor is this object's buffer: it is overwritten by the next call, so run the model
    on it before preprocessing another frame. For uint8 models the pixels are passed unscaled.
    """

    def __init__(self, spec: InputSpec) -> None:
        self._spec = spec
        self._canvas = np.full((spec.height, spec.width, 3), spec.pad_value, dtype=np.uint8)
        self._tensor = np.empty((1, 3, spec.height, spec.width), dtype=_DTYPES[spec.dtype])
        # Tensor channel c is taken from canvas channel _source[c]: frames arrive BGR.
        self._source = (2, 1, 0) if spec.color == "RGB" else (0, 1, 2)
        self._scale = np.float32(spec.scale)  # a float32 scalar keeps numpy in a float32 loop
        self._last: LetterboxTransform | None = None

    def __call__(
        self, frame_bgr: npt.NDArray[np.uint8]
    ) -> tuple[npt.NDArray[np.generic], LetterboxTransform]:
        spec = self._spec
        transform = self.letterbox(frame_bgr)
        for channel, source in enumerate(self._source):
            plane = self._canvas[:, :, source]
            if spec.dtype == "uint8":
                self._tensor[0, channel] = plane
            else:
                np.multiply(plane, self._scale, out=self._tensor[0, channel], casting="unsafe")
        return self._tensor, transform

    def letterbox(self, frame_bgr: npt.NDArray[np.uint8]) -> LetterboxTransform:
        """Place the frame in this object's canvas (BGR, `canvas`) as the model sees it; its geometry."""
        spec = self._spec
        height, width = frame_bgr.shape[:2]
        transform = self._last
        if transform is None or (transform.frame_width, transform.frame_height) != (width, height):
            transform = letterbox_transform(width, height, spec.width, spec.height)
            self._canvas.fill(spec.pad_value)  # the border changes with the frame's aspect ratio
            self._last = transform
        size = (transform.resized_width, transform.resized_height)
        top, left = transform.pad_y, transform.pad_x
        content = self._canvas[top : top + size[1], left : left + size[0]]
        if size == (width, height):
            content[...] = frame_bgr
        else:
            # straight into the canvas (OpenCV writes through the view's row stride): no temporary image
            written = cv2.resize(
                np.ascontiguousarray(frame_bgr), size, dst=content, interpolation=cv2.INTER_LINEAR
            )
            if written is not content:  # OpenCV made a new array: copy it, never judge stale pixels
                content[...] = written
        return transform

    @property
    def canvas(self) -> npt.NDArray[np.uint8]:
        """The letterboxed frame (BGR, the input's size): this object's buffer, overwritten by the next."""
        return self._canvas
