"""The part and its surroundings for the synthetic renders: outline and holes, machined metal, the belt.

Pure numpy and OpenCV, seeded by the caller's generator (training/synth.py draws in a fixed order, so a
seed always renders the same frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FloatImage = np.ndarray


@dataclass
class Part:
    """Signed distances (px, negative inside) of the part outline and its holes, and its pose."""

    outline_sdf: FloatImage
    holes_sdf: FloatImage
    center: tuple[float, float]
    angle: float
    turned: bool  # a lathe-turned flange (concentric marks) rather than a brushed plate


def grid(width: int, height: int) -> tuple[FloatImage, FloatImage]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs, ys


def _part_coords(
    part_center: tuple[float, float], angle: float, xs: FloatImage, ys: FloatImage
) -> tuple[FloatImage, FloatImage]:
    """Pixel grid in the part's own frame (rotated by `angle` about its centre)."""
    c, s = np.cos(angle), np.sin(angle)
    dx, dy = xs - part_center[0], ys - part_center[1]
    return (dx * c + dy * s).astype(np.float32), (-dx * s + dy * c).astype(np.float32)


def _holes_sdf(u: FloatImage, v: FloatImage, holes: list[tuple[float, float, float]]) -> FloatImage:
    sdf = np.full(u.shape, 1e4, np.float32)
    for hu, hv, radius in holes:
        np.minimum(sdf, np.sqrt((u - hu) ** 2 + (v - hv) ** 2) - radius, out=sdf)
    return sdf


def _flange(rng: np.random.Generator, u: FloatImage, v: FloatImage) -> tuple[FloatImage, FloatImage]:
    radius = rng.uniform(140, 180)
    bore = radius * rng.uniform(0.25, 0.38)
    pcd = radius * rng.uniform(0.66, 0.76)
    n_bolts = int(rng.choice([4, 6, 8]))
    bolt = radius * rng.uniform(0.055, 0.08)
    holes = [(0.0, 0.0, bore)]
    holes += [
        (pcd * np.cos(2 * np.pi * k / n_bolts), pcd * np.sin(2 * np.pi * k / n_bolts), bolt)
        for k in range(n_bolts)
    ]
    outline = np.sqrt(u**2 + v**2) - radius
    return outline.astype(np.float32), _holes_sdf(u, v, holes)


def _plate(rng: np.random.Generator, u: FloatImage, v: FloatImage) -> tuple[FloatImage, FloatImage]:
    half_w, half_h = rng.uniform(140, 190), rng.uniform(95, 130)
    corner = rng.uniform(6, 30)
    qx, qy = np.abs(u) - half_w + corner, np.abs(v) - half_h + corner
    outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
    outline = outside + np.minimum(np.maximum(qx, qy), 0) - corner
    inset = rng.uniform(22, 32)
    hole = rng.uniform(9, 14)
    holes = [(sx * (half_w - inset), sy * (half_h - inset), hole) for sx in (-1, 1) for sy in (-1, 1)]
    if rng.random() < 0.6:
        holes.append((rng.uniform(-0.3, 0.3) * half_w, 0.0, rng.uniform(20, 45)))
    return outline.astype(np.float32), _holes_sdf(u, v, holes)


def make_part(rng: np.random.Generator, width: int, height: int) -> Part:
    xs, ys = grid(width, height)
    center = (width / 2 + rng.uniform(-35, 35), height / 2 + rng.uniform(-20, 20))
    turned = bool(rng.random() < 0.5)
    angle = rng.uniform(0, 2 * np.pi) if turned else rng.uniform(-0.25, 0.25)
    u, v = _part_coords(center, angle, xs, ys)
    outline, holes = _flange(rng, u, v) if turned else _plate(rng, u, v)
    return Part(outline, holes, center, float(angle), turned)


def _profile(rng: np.random.Generator, length: int, sigma: float) -> FloatImage:
    """A smooth 1-D random profile: the stripes of brushing or turning, or a belt's weave."""
    raw = rng.normal(0, 1, length + 64).astype(np.float32).reshape(1, -1)
    smooth = cv2.GaussianBlur(raw, (0, 0), sigmaX=sigma)[0, 32 : 32 + length]
    profile: FloatImage = smooth / (smooth.std() + 1e-6)
    return profile


def background(rng: np.random.Generator, width: int, height: int) -> FloatImage:
    """A conveyor belt: dark rubber with a fine weave and optional bright guide rails."""
    base = rng.uniform(45, 85)
    weave = _profile(rng, width, 1.2)[None, :] * rng.uniform(2, 5)
    rows = _profile(rng, height, 6.0)[:, None] * rng.uniform(1, 3)
    grey = base + weave + rows
    if rng.random() < 0.5:
        rail = int(rng.uniform(14, 30))
        grey[:rail] = rng.uniform(120, 160) + _profile(rng, width, 30.0)[None, :] * 4
        grey[height - rail :] = rng.uniform(120, 160) + _profile(rng, width, 30.0)[None, :] * 4
    return grey


def metal_surface(rng: np.random.Generator, part: Part, width: int, height: int) -> FloatImage:
    """Turned or brushed metal with a specular band, as a float grey image over the whole frame."""
    xs, ys = grid(width, height)
    u, v = _part_coords(part.center, part.angle, xs, ys)
    base = rng.uniform(140, 185)
    if part.turned:
        radius = np.sqrt(u**2 + v**2)
        stripes = _profile(rng, 400, 1.5)[np.clip(radius, 0, 399).astype(np.int32)]
    else:
        stripes = _profile(rng, 500, 1.0)[np.clip(v + 250, 0, 499).astype(np.int32)]
    grain = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 1.5)
    band_angle = rng.uniform(0, np.pi)
    offset = (xs - part.center[0]) * np.cos(band_angle) + (ys - part.center[1]) * np.sin(band_angle)
    band = np.exp(-(((offset - rng.uniform(-120, 120)) / rng.uniform(40, 110)) ** 2))
    metal: FloatImage = base + stripes * rng.uniform(3, 7) + grain * 3 + band * rng.uniform(10, 45)
    return metal


def soft(sdf: FloatImage) -> FloatImage:
    """Anti-aliased coverage from a signed distance (inside is negative)."""
    return np.clip(0.5 - sdf, 0.0, 1.0)
