"""Synthetic colour fundus photographs with known DR grade, for tests, demos and benchmarks.

Nobody can download the real data sets here, so this module draws camera frames that look like real
captures closely enough for the data, preprocessing and training code to do real work on them:
a landscape frame (height ``size``, width ``round(size * 4 / 3)``) with a circular field of retina on
black that is sometimes cut off at the top and bottom, vignetting, an optic disc on the nasal side
(right of the image for a right eye, left for a left eye, as a fundus camera shows them), a darker
macula, a branching vessel tree with arcades, DR lesions that grow with the ICDR grade, findings that
are not DR (drusen, pigment, light reflexes, dust on the optics) in healthy and diseased eyes alike,
an occasional notch or tab on the field's rim, dim exposures, sensor noise and JPEG artefacts.

Every random choice comes from the ``np.random.Generator`` passed in: same generator state, same
image. :func:`make_dataset` writes a data set in the APTOS 2019 layout.

Sizes below are in units of the optic-disc diameter (``odd``) or the field radius (``R``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mobiledr.data.geometry import write_png
from mobiledr.errors import MobiledrError
from mobiledr.io import atomic_write_csv

EYES = ("left", "right")
#: Default grade mix: APTOS 2019's proportions (49/10/27/5/8 %) with grade 0 at 50 %.
DEFAULT_GRADE_WEIGHTS = (0.50, 0.10, 0.26, 0.06, 0.08)
NOTCH_RATE = 0.15
DIM_RATE = 0.12
CUT_OFF_RATE = 0.30

_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_ONE = 1 << _SHIFT
_VEIN_DARKEN = np.array([0.50, 0.72, 0.62], np.float32)  # fraction of R, G, B removed on a vein
_ARTERY_DARKEN = np.array([0.30, 0.55, 0.45], np.float32)
_BLOOD_DARKEN = np.array([0.52, 0.9, 0.86], np.float32)  # microaneurysms and haemorrhages
_EXUDATE = np.array([1.00, 0.90, 0.42], np.float32)
_COTTON_WOOL = np.array([0.97, 0.88, 0.74], np.float32)


@dataclass(frozen=True)
class FundusInfo:
    """Ground truth of one generated image (pixel coordinates, x to the right, y down).

    ``disc_*`` is the circular field of retina on the black frame; ``optic_disc_*`` the optic nerve
    head inside it. ``crop_box`` is ``(x0, y0, x1, y1)`` with exclusive ends: the bounding box of the
    disc clipped to the frame, so ``img[y0:y1, x0:x1]`` is what a circle crop should keep (a tab on
    the rim sticks out of it by at most 1 % of the frame height). Lesion counts are those drawn inside the
    visible field; ``hard_exudates`` counts single spots (they come in clusters).
    """

    grade: int
    eye: str
    width: int
    height: int
    disc_center: tuple[float, float]
    disc_radius: float
    crop_box: tuple[int, int, int, int]
    optic_disc_center: tuple[float, float]
    optic_disc_radius: float
    fovea_center: tuple[float, float]
    notch: bool
    dim: bool
    jpeg_quality: int
    microaneurysms: int = 0
    haemorrhages: int = 0
    hard_exudates: int = 0
    cotton_wool_spots: int = 0
    neovascularisations: int = 0
    preretinal_haemorrhages: int = 0

    @property
    def lesions(self) -> dict[str, int]:
        """Lesion counts per kind."""
        kinds = ("microaneurysms", "haemorrhages", "hard_exudates", "cotton_wool_spots", "neovascularisations", "preretinal_haemorrhages")
        return {kind: getattr(self, kind) for kind in kinds}

    @property
    def lesion_total(self) -> int:
        """All lesions drawn, of every kind."""
        return sum(self.lesions.values())


@dataclass(frozen=True)
class _Geometry:
    """Where things are in one frame."""

    h: int
    w: int
    cx: float
    cy: float
    r: float  # field radius
    side: int  # +1: optic disc right of the fovea (right eye), -1: left
    od: tuple[float, float]
    odd: float  # optic-disc diameter
    fovea: tuple[float, float]

    def inside(self, x: np.ndarray, y: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Points inside the field shrunk by ``margin`` * R and inside the frame."""
        in_disc = (x - self.cx) ** 2 + (y - self.cy) ** 2 < (self.r * (1 - margin)) ** 2
        return in_disc & (x >= 1) & (x <= self.w - 2) & (y >= 1) & (y <= self.h - 2)


# --------------------------------------------------------------------------------------------------
# geometry and background


def _geometry(rng: np.random.Generator, h: int, w: int, eye: str) -> _Geometry:
    """Field size and position, fovea and optic disc for one capture."""
    cut = rng.random() < CUT_OFF_RATE
    r = h * (rng.uniform(0.51, 0.57) if cut else rng.uniform(0.42, 0.49))
    cx = w / 2 + rng.uniform(-0.03, 0.03) * h
    cy = h / 2 + rng.uniform(-0.03, 0.03) * h
    side = 1 if eye == "right" else -1
    odd = 2 * r / rng.uniform(6.2, 7.2)
    # fovea -> optic disc: about 2.5 disc diameters nasal, the disc slightly higher
    vx, vy = side * rng.uniform(2.3, 2.7) * odd, -rng.uniform(-0.1, 0.4) * odd
    # fixation: where on the fovea -> disc line the field is centred (0: macula-centred, 1: disc-centred)
    fixation = rng.choice([rng.uniform(0.0, 0.15), rng.uniform(0.15, 0.5), rng.uniform(0.5, 0.85)], p=[0.7, 0.2, 0.1])
    fixation = max(fixation, 1.0 - 0.72 * r / math.hypot(vx, vy))  # the optic disc stays clear of the rim
    fovea = (cx - fixation * vx + side * rng.normal(0, 0.03) * r, cy - fixation * vy + rng.normal(0, 0.03) * r)
    od = (fovea[0] + vx, fovea[1] + vy)
    return _Geometry(h, w, cx, cy, r, side, od, odd, fovea)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Zero-mean, unit-ish Gaussian noise with features about ``cell`` pixels across."""
    gh, gw = max(2, round(h / cell)), max(2, round(w / cell))
    small = rng.standard_normal((gh, gw), dtype=np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _background(rng: np.random.Generator, g: _Geometry) -> np.ndarray:
    """Orange-red retina with vignetting, choroidal mottling and a darker macula (float32, HxWx3)."""
    pigment = rng.uniform(0.0, 1.0)  # light to dark fundus
    light, dark = np.array([0.95, 0.50, 0.20], np.float32), np.array([0.74, 0.28, 0.09], np.float32)
    base = (light * (1 - pigment) + dark * pigment) * rng.uniform(0.9, 1.1, 3).astype(np.float32)

    # everything here is smooth: compute it at half resolution and upsample
    h, w = (g.h + 1) // 2, (g.w + 1) // 2
    yy, xx = np.ogrid[:h, :w]
    dx = (xx.astype(np.float32) * 2 - (g.cx + rng.uniform(-0.2, 0.2) * g.r)) / g.r
    dy = (yy.astype(np.float32) * 2 - (g.cy + rng.uniform(-0.2, 0.2) * g.r)) / g.r
    r2 = dx * dx + dy * dy
    steep = rng.uniform(0.0, 1.0)  # falloff between r^2 and r^3
    vignette = np.maximum(1.0 - rng.uniform(0.4, 0.65) * r2 * ((1.0 - steep) + steep * np.sqrt(r2)), 0.2)
    tilt = rng.uniform(0.0, 0.25) * np.exp(1j * rng.uniform(0, math.tau))  # uneven illumination across the field
    light_field = vignette * np.maximum(1.0 + tilt.real * dx + tilt.imag * dy + 0.07 * _smooth_noise(rng, h, w, h / 4), 0.3)
    mottle = 0.02 * _smooth_noise(rng, h, w, max(2.0, h / 70)) + 0.03 * _smooth_noise(rng, h, w, max(2.0, h / 25))
    red = light_field * (1.0 + mottle)  # choroidal mottling
    green = red * np.sqrt(light_field)  # the periphery is redder than the posterior pole
    img = cv2.resize(cv2.merge([red * base[0], green * base[1], green * base[2]]), (g.w, g.h), interpolation=cv2.INTER_LINEAR)

    fx, fy = g.fovea
    half = int(3 * g.odd)
    x0, x1, y0, y1 = max(0, int(fx) - half), min(g.w, int(fx) + half), max(0, int(fy) - half), min(g.h, int(fy) + half)
    yy, xx = np.ogrid[y0:y1, x0:x1]
    d2 = ((xx - fx) ** 2 + (yy - fy) ** 2).astype(np.float32) / (g.odd * g.odd)
    macula = rng.uniform(0.2, 0.35) * np.exp(-d2 / (2 * 0.8**2)) + 0.12 * np.exp(-d2 / (2 * 0.15**2))
    img[y0:y1, x0:x1] *= 1.0 - macula[..., None] * np.array([0.6, 1.0, 1.2], np.float32)
    if rng.random() < 0.4:  # foveal light reflex
        cv2.circle(img, _pt(fx, fy), max(1, round(0.03 * g.odd * _ONE)), (0.8, 0.6, 0.4), -1, cv2.LINE_AA, _SHIFT)
    return img


def _optic_disc(rng: np.random.Generator, img: np.ndarray, g: _Geometry) -> None:
    """Paint the optic disc: yellow-orange rim, pale cup, peripapillary glow (in place)."""
    ox, oy = g.od
    half = int(1.6 * g.odd) + 2
    x0, x1 = max(0, int(ox) - half), min(g.w, int(ox) + half)
    y0, y1 = max(0, int(oy) - half), min(g.h, int(oy) + half)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.ogrid[y0:y1, x0:x1]
    ax, ay = g.odd / 2, g.odd / 2 * rng.uniform(1.03, 1.12)
    d = np.sqrt(((xx - ox) / ax) ** 2 + ((yy - oy) / ay) ** 2).astype(np.float32)
    cup_r = rng.uniform(0.3, 0.55)
    cup_shift = -g.side * rng.uniform(0.0, 0.15)  # cups sit towards the temporal side
    dc = np.sqrt(((xx - ox) / ax - cup_shift) ** 2 + ((yy - oy) / ay) ** 2).astype(np.float32) / cup_r

    rim = np.clip((1.0 - d) / 0.3 + 0.5, 0.0, 1.0)
    cup = np.clip((1.0 - dc) / 0.4 + 0.5, 0.0, 1.0) * rim
    glow = 0.12 * np.exp(-((d - 1.0) ** 2) / 0.15)
    patch = img[y0:y1, x0:x1]
    level = rng.uniform(0.85, 1.05)  # the brightest part of a fundus photograph, often saturated in red
    rim_colour = np.array([1.0, 0.78, 0.46], np.float32) * level
    cup_colour = np.array([1.0, 0.92, 0.7], np.float32) * level
    patch *= (1.0 + glow)[..., None]
    patch[:] = patch * (1 - rim[..., None]) + rim[..., None] * rim_colour
    patch[:] = patch * (1 - cup[..., None]) + cup[..., None] * cup_colour


def _pt(x: float, y: float) -> tuple[int, int]:
    """A point in OpenCV's fixed-point sub-pixel coordinates."""
    return round(x * _ONE), round(y * _ONE)


# --------------------------------------------------------------------------------------------------
# vessels


class _Strokes:
    """Polylines grouped by (thickness, intensity) so each group is one ``cv2.polylines`` call."""

    def __init__(self) -> None:
        self.groups: dict[tuple[int, int], list[np.ndarray]] = {}

    def add(self, pts: np.ndarray, width: float) -> None:
        """Add a polyline (N x 2 int32, fixed point) ``width`` pixels wide; sub-pixel widths draw fainter."""
        if len(pts) < 2 or width <= 0.15:
            return
        thickness = max(1, round(width))
        intensity = min(255, round(255 * width / thickness)) // 32 * 32 + 31
        self.groups.setdefault((thickness, intensity), []).append(pts)

    def draw(self, canvas: np.ndarray) -> None:
        """Draw every group onto a uint8 canvas, fainter groups first."""
        for (thickness, intensity), lines in sorted(self.groups.items(), key=lambda kv: kv[0][1]):
            cv2.polylines(canvas, lines, False, intensity, thickness, cv2.LINE_AA, _SHIFT)


def _fixed(z: np.ndarray) -> np.ndarray:
    """Complex pixel positions (any shape) to OpenCV fixed-point int32 points (shape + (2,))."""
    return np.round(np.stack([z.real, z.imag], axis=-1) * _ONE).astype(np.int32)


def _first_outside(z: np.ndarray, g: _Geometry) -> np.ndarray:
    """Per row of complex paths ``z``: the index of the first point outside the field or inside the
    foveal avascular zone (the row's length when there is none)."""
    bad = (np.abs(z - complex(g.cx, g.cy)) > 0.985 * g.r) | (np.abs(z - complex(*g.fovea)) < 0.22 * g.odd)
    bad = np.concatenate([bad, np.ones(bad.shape[:-1] + (1,), bool)], axis=-1)
    return np.argmax(bad, axis=-1)


@dataclass
class _Sprouts:
    """One generation of vessels to grow, as arrays (one entry per vessel).

    Each heading relaxes exponentially from ``heading`` to ``target`` at ``rate`` per pixel: the
    arcades bend round the macula this way and side branches turn away from the optic disc.
    """

    start: np.ndarray  # complex x + iy
    heading: np.ndarray
    target: np.ndarray
    rate: np.ndarray
    width: np.ndarray
    length: np.ndarray
    depth: np.ndarray  # generations of side branches still allowed
    artery: np.ndarray  # bool: artery or vein


def _grow(rng: np.random.Generator, g: _Geometry, sprouts: _Sprouts, min_width: float, veins: _Strokes, arteries: _Strokes) -> None:
    """Grow the vessels as smooth, tapering random walks, one generation of side branches at a time."""
    step = max(1.0, 0.012 * g.r)
    s = sprouts
    while len(s.start):
        count = len(s.start)
        n = np.maximum(3, (s.length / step).astype(int))
        steps = int(n.max())
        noise = np.cumsum(rng.normal(0.0, 0.018, (count, steps + 8)), axis=1)
        wiggle = (noise[:, 8:] - noise[:, :-8]) / 2  # moving sums: slow curvature changes
        delta = np.remainder(s.heading - s.target + math.pi, math.tau) - math.pi
        theta = s.target[:, None] + delta[:, None] * np.exp(-np.outer(s.rate * step, np.arange(steps))) + np.cumsum(wiggle, axis=1)
        z = np.empty((count, steps + 1), complex)
        z[:, 0] = s.start
        np.cumsum(step * np.exp(1j * theta), axis=1, out=z[:, 1:])
        z[:, 1:] += s.start[:, None]
        keep = np.minimum(_first_outside(z, g), n + 1)
        fixed = _fixed(z)
        for b in np.flatnonzero(keep >= 2):
            kb, nb, wb = int(keep[b]), int(n[b]), float(s.width[b])
            strokes = arteries if s.artery[b] else veins
            chunks = min(3, max(1, kb // 8))  # taper in a few constant-width pieces
            for i in range(chunks):
                a, e = i * (kb - 1) // chunks, (i + 1) * (kb - 1) // chunks
                strokes.add(fixed[b, a : e + 1], wb * (1.0 - 0.45 * (a + e) / (2 * nb)))

        spacing = rng.uniform(0.08, 0.16, count) * g.r
        m = np.where((s.depth > 0) & (keep >= 6), rng.poisson(keep * step / spacing), 0)
        parent = np.repeat(np.arange(count), m)
        at = 2 + (rng.random(len(parent)) * (keep[parent] - 5)).astype(int)
        width = s.width[parent] * (1.0 - 0.45 * at / n[parent]) * rng.uniform(0.4, 0.75, len(parent))
        origin = z[parent, at]
        ok = width >= min_width
        s = _Sprouts(
            start=origin[ok],
            heading=(theta[parent, at] + rng.uniform(0.4, 1.0, len(parent)) * rng.choice((-1.0, 1.0), len(parent)))[ok],
            target=np.angle(origin - complex(*g.od))[ok],
            rate=(1.0 / (rng.uniform(0.3, 0.8, len(parent)) * g.r))[ok],
            width=width[ok],
            length=(rng.uniform(0.25, 0.6, len(parent)) * g.r * np.sqrt(width / s.width[parent]))[ok],
            depth=(s.depth[parent] - 1)[ok],
            artery=s.artery[parent][ok],
        )


def _vessels(rng: np.random.Generator, img: np.ndarray, g: _Geometry) -> None:
    """Arteries and veins: temporal arcades, nasal vessels and small macular branches (in place)."""
    od = complex(*g.od)
    temporal = 0.0 if g.side < 0 else math.pi
    nasal = math.pi - temporal
    vein_w = g.odd * rng.uniform(0.075, 0.095)
    trunks: list[tuple[complex, float, float, float, float, float, int, bool]] = []  # start, heading, target, rate, width, length, depth, artery
    for vertical in (-1.0, 1.0):  # superior (up, -y) and inferior arcades and nasal trunks
        arcade_start = math.atan2(vertical, -g.side * rng.uniform(0.05, 0.35))
        arcade_target = math.atan2(-vertical * rng.uniform(0.02, 0.15), -g.side)
        nasal_start = math.atan2(vertical, g.side * rng.uniform(0.3, 0.9))
        nasal_target = math.atan2(vertical * 0.3, g.side)
        for artery, scale, offset in ((False, 1.0, 0.1), (True, 0.72, -0.1)):
            origin = od + complex(rng.normal(0, 0.1), vertical * rng.uniform(0.0, 0.2)) * g.odd
            arcade_rate = 1.0 / (rng.uniform(0.28, 0.42) * g.r)
            trunks.append((origin, arcade_start + offset * vertical, arcade_target, arcade_rate, vein_w * scale, 1.8 * g.r, 3, artery))
            trunks.append((origin, nasal_start - offset * vertical, nasal_target, 1.0 / g.r, 0.7 * vein_w * scale, 0.9 * g.r, 2, artery))
    for _ in range(rng.integers(2, 6)):  # thin vessels from the disc straight towards the macula, or nasally
        direction = (temporal if rng.random() < 0.65 else nasal) + rng.uniform(-0.6, 0.6)
        trunks.append((od, direction, direction, 0.0, vein_w * rng.uniform(0.25, 0.4), 0.8 * g.r, 1, bool(rng.random() < 0.5)))
    columns = list(zip(*trunks, strict=True))
    sprouts = _Sprouts(*(np.array(c) for c in columns))

    veins, arteries = _Strokes(), _Strokes()
    _grow(rng, g, sprouts, max(0.5, 0.012 * g.odd), veins, arteries)
    _darken(img, veins, _VEIN_DARKEN * rng.uniform(0.85, 1.05))
    _darken(img, arteries, _ARTERY_DARKEN * rng.uniform(0.85, 1.05))


def _darken(img: np.ndarray, strokes: _Strokes, darken: np.ndarray) -> None:
    """Darken ``img`` under the drawn strokes, with slightly soft edges (in place)."""
    canvas = np.zeros(img.shape[:2], np.uint8)
    strokes.draw(canvas)
    _blend(img, cv2.GaussianBlur(canvas, (3, 3), 0.6), darken=darken)


def _blend(img: np.ndarray, alpha: np.ndarray, *, darken: np.ndarray | None = None, colour: np.ndarray | None = None) -> None:
    """Where the uint8 ``alpha`` map is non-zero, multiply ``img`` by ``1 - alpha * darken`` or blend
    ``colour`` over it (in place; only the covered pixels are touched, which keeps sparse lesions cheap)."""
    ys, xs = np.nonzero(alpha)
    a = alpha[ys, xs].astype(np.float32)[:, None] * (1 / 255)
    px = img[ys, xs]
    if darken is not None:
        px *= 1.0 - a * darken
    if colour is not None:
        px += a * (colour - px)
    img[ys, xs] = px


# --------------------------------------------------------------------------------------------------
# findings that are not DR (a healthy eye has them too, so a model must tell them from lesions)

_DRUSEN = np.array([0.95, 0.86, 0.62], np.float32)
_PIGMENT_DARKEN = np.array([0.55, 0.6, 0.6], np.float32)
_SHEEN = np.array([0.95, 0.9, 0.85], np.float32)


def _mimics(rng: np.random.Generator, img: np.ndarray, g: _Geometry) -> None:
    """Drusen (soft pale dots near the macula), pigment clumps (dark, not red) and the light reflex of
    a young retina (pale arcs round the macula), each in some eyes only (in place)."""
    fovea = complex(*g.fovea)
    if rng.random() < 0.3:
        n = int(rng.integers(3, 20))
        z = fovea + rng.uniform(0.3, 2.0, n) * g.odd * np.exp(1j * rng.uniform(0, math.tau, n))
        ok = g.inside(z.real, z.imag, margin=0.05)
        canvas = np.zeros((g.h, g.w), np.uint8)
        for c, radius, value in zip(z[ok], rng.uniform(0.015, 0.035, n)[ok] * g.odd, rng.integers(70, 150, n)[ok], strict=True):
            cv2.circle(canvas, _pt(c.real, c.imag), _radius_fixed(radius, 0.6), int(value), -1, cv2.LINE_AA, _SHIFT)
        _blend(img, cv2.GaussianBlur(canvas, (0, 0), 0.5 + 0.02 * g.odd), colour=_DRUSEN)
    if rng.random() < 0.25:
        n = int(rng.integers(1, 7))
        xy = _lesion_sites(rng, g, n, spread=0.6)
        canvas = np.zeros((g.h, g.w), np.uint8)
        for (x, y), radius, value in zip(xy, rng.uniform(0.02, 0.05, len(xy)) * g.odd, rng.integers(120, 220, len(xy)), strict=True):
            cv2.circle(canvas, _pt(x, y), _radius_fixed(radius, 0.7), int(value), -1, cv2.LINE_AA, _SHIFT)
        _blend(img, cv2.GaussianBlur(canvas, (3, 3), 0.5), darken=_PIGMENT_DARKEN)
    if rng.random() < 0.35:
        canvas = np.zeros((g.h, g.w), np.uint8)
        for _ in range(rng.integers(2, 6)):
            axes = _pt(rng.uniform(0.8, 2.2) * g.odd, rng.uniform(0.6, 1.6) * g.odd)
            start = rng.uniform(0, 360)
            thickness = max(1, round(rng.uniform(0.08, 0.18) * g.odd))
            cv2.ellipse(canvas, _pt(*g.fovea), axes, 0, start, start + rng.uniform(30, 120), int(rng.integers(30, 70)), thickness, cv2.LINE_AA, _SHIFT)
        _blend(img, cv2.GaussianBlur(canvas, (0, 0), 0.5 + 0.08 * g.odd), colour=_SHEEN)


# --------------------------------------------------------------------------------------------------
# lesions

#: Per grade: inclusive ranges of microaneurysms, haemorrhages, exudate clusters, cotton-wool spots,
#: neovascular tangles, and the chance of a pre-retinal haemorrhage.
_LESION_PLAN: dict[int, tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int], float]] = {
    0: ((0, 0), (0, 0), (0, 0), (0, 0), (0, 0), 0.0),
    1: ((3, 10), (0, 0), (0, 0), (0, 0), (0, 0), 0.0),
    2: ((8, 25), (2, 10), (0, 3), (0, 1), (0, 0), 0.0),
    3: ((15, 40), (12, 35), (1, 5), (1, 5), (0, 0), 0.0),
    4: ((15, 45), (12, 40), (1, 6), (1, 6), (1, 3), 0.5),
}


def _lesion_sites(rng: np.random.Generator, g: _Geometry, n: int, spread: float = 0.45) -> np.ndarray:
    """``n`` points (n x 2) inside the field, clustered around the posterior pole, off the optic disc."""
    out = np.empty((0, 2))
    centre = np.array([(g.fovea[0] + g.od[0]) / 2, (g.fovea[1] + g.od[1]) / 2])
    for _ in range(20):
        if len(out) >= n:
            break
        m = 3 * (n - len(out)) + 8
        pole = centre + rng.normal(0.0, spread * g.r, (m, 2))
        anywhere = np.column_stack([g.cx, g.cy]) + rng.uniform(-g.r, g.r, (m, 2))
        pts = np.where(rng.random((m, 1)) < 0.75, pole, anywhere)
        ok = g.inside(pts[:, 0], pts[:, 1], margin=0.06)
        ok &= (pts[:, 0] - g.od[0]) ** 2 + (pts[:, 1] - g.od[1]) ** 2 > (0.65 * g.odd) ** 2
        out = np.concatenate([out, pts[ok]])
    return out[:n]


def _radius_fixed(radius: float, minimum: float = 0.8) -> int:
    """A drawing radius in fixed point, never below ``minimum`` pixels so tiny lesions stay visible."""
    return round(max(radius, minimum) * _ONE)


def _lesions(rng: np.random.Generator, img: np.ndarray, g: _Geometry, grade: int) -> dict[str, int]:
    """Draw the grade's lesions (in place) and return how many of each kind were drawn."""
    (ma_lo, ma_hi), (hm_lo, hm_hi), (ex_lo, ex_hi), (cw_lo, cw_hi), (nv_lo, nv_hi), p_pre = _LESION_PLAN[grade]
    counts = dict.fromkeys(("microaneurysms", "haemorrhages", "hard_exudates", "cotton_wool_spots", "neovascularisations", "preretinal_haemorrhages"), 0)
    if grade == 0:
        return counts
    odd = g.odd
    blood = np.zeros((g.h, g.w), np.uint8)

    mas = _lesion_sites(rng, g, int(rng.integers(ma_lo, ma_hi + 1)))
    for (x, y), radius, value in zip(mas, rng.uniform(0.018, 0.035, len(mas)) * odd, rng.integers(150, 240, len(mas)), strict=True):
        cv2.circle(blood, _pt(x, y), _radius_fixed(radius), int(value), -1, cv2.LINE_AA, _SHIFT)
    counts["microaneurysms"] = len(mas)

    haems = _lesion_sites(rng, g, int(rng.integers(hm_lo, hm_hi + 1)), spread=0.55)
    big = 0.25 if grade == 2 else 0.6  # share of blots and flames among haemorrhages
    for x, y in haems:
        value = int(rng.integers(150, 245))
        kind = rng.random()
        if kind > big:  # dot haemorrhage
            cv2.circle(blood, _pt(x, y), _radius_fixed(rng.uniform(0.04, 0.08) * odd, 1.0), value, -1, cv2.LINE_AA, _SHIFT)
        elif kind > big / 3:  # blot: a few overlapping ellipses
            size = rng.uniform(0.08, 0.2 if grade == 2 else 0.3) * odd
            for _ in range(rng.integers(2, 5)):
                cx, cy = x + rng.normal(0, 0.4) * size, y + rng.normal(0, 0.4) * size
                axes = _pt(max(1.0, size * rng.uniform(0.5, 1.0)), max(1.0, size * rng.uniform(0.4, 0.9)))
                cv2.ellipse(blood, _pt(cx, cy), axes, rng.uniform(0, 180), 0, 360, value, -1, cv2.LINE_AA, _SHIFT)
        else:  # flame: elongated along the nerve fibres, i.e. radially from the optic disc
            angle = math.degrees(math.atan2(y - g.od[1], x - g.od[0]))
            axes = _pt(max(1.5, rng.uniform(0.12, 0.3) * odd), max(0.8, rng.uniform(0.03, 0.06) * odd))
            cv2.ellipse(blood, _pt(x, y), axes, angle, 0, 360, value, -1, cv2.LINE_AA, _SHIFT)
    counts["haemorrhages"] = len(haems)

    if rng.random() < p_pre:  # pre-retinal haemorrhage: boat shaped, flat top (the fluid level)
        site = _lesion_sites(rng, g, 1, spread=0.35)
        if len(site):
            x, y = site[0]
            a, b = rng.uniform(0.5, 0.9) * odd, rng.uniform(0.4, 0.7) * odd
            boat = np.zeros_like(blood)
            cv2.ellipse(boat, _pt(x, y), _pt(a, b), 0, 0, 360, int(rng.integers(200, 240)), -1, cv2.LINE_AA, _SHIFT)
            boat[: max(0, int(y - 0.3 * b))] = 0
            np.maximum(blood, boat, out=blood)
            counts["preretinal_haemorrhages"] = 1
    _blend(img, cv2.GaussianBlur(blood, (0, 0), max(0.5, 0.015 * odd)), darken=_BLOOD_DARKEN * rng.uniform(0.9, 1.05))

    if nv_hi:
        counts["neovascularisations"] = _neovessels(rng, img, g, int(rng.integers(nv_lo, nv_hi + 1)))

    exudate = np.zeros((g.h, g.w), np.uint8)
    for x, y in _lesion_sites(rng, g, int(rng.integers(ex_lo, ex_hi + 1)), spread=0.3):
        spots = int(rng.integers(3, 16))
        radius = rng.uniform(0.1, 0.45) * odd
        if rng.random() < 0.4:  # circinate ring around a leaking point
            ang = rng.uniform(0, math.tau, spots)
            rad = radius * rng.uniform(0.8, 1.1, spots)
        else:
            ang, rad = rng.uniform(0, math.tau, spots), radius * np.sqrt(rng.random(spots))
        sx, sy = x + rad * np.cos(ang), y + rad * np.sin(ang)
        ok = g.inside(sx, sy, margin=0.05)
        radii, values = rng.uniform(0.015, 0.045, spots) * odd, rng.integers(170, 256, spots)
        for px, py, radius, value in zip(sx[ok], sy[ok], radii[ok], values[ok], strict=True):
            cv2.circle(exudate, _pt(px, py), _radius_fixed(radius, 0.7), int(value), -1, cv2.LINE_AA, _SHIFT)
        counts["hard_exudates"] += int(ok.sum())
    if counts["hard_exudates"]:
        _blend(img, cv2.GaussianBlur(exudate, (3, 3), 0.5), colour=_EXUDATE * rng.uniform(0.9, 1.05))

    cws = _lesion_sites(rng, g, int(rng.integers(cw_lo, cw_hi + 1)), spread=0.3)
    if len(cws):
        wool = np.zeros((g.h, g.w), np.uint8)
        for x, y in cws:
            axes = _pt(max(1.5, rng.uniform(0.12, 0.3) * odd), max(1.0, rng.uniform(0.08, 0.18) * odd))
            cv2.ellipse(wool, _pt(x, y), axes, rng.uniform(0, 180), 0, 360, int(rng.integers(150, 220)), -1, cv2.LINE_AA, _SHIFT)
        sigma = max(0.8, 0.05 * odd)
        _blend(img, cv2.GaussianBlur(wool, (0, 0), sigma), colour=_COTTON_WOOL)
        counts["cotton_wool_spots"] = len(cws)
    return counts


def _neovessels(rng: np.random.Generator, img: np.ndarray, g: _Geometry, n: int) -> int:
    """Tangles of fine, tortuous new vessels on or next to the optic disc; returns how many."""
    strokes = _Strokes()
    width = max(0.6, 0.025 * g.odd)
    step = max(1.0, 0.04 * g.odd)
    drawn = 0
    for _ in range(n):
        centre = complex(*g.od) + rng.uniform(0.2, 1.0) * g.odd * np.exp(1j * rng.uniform(0, math.tau))
        if not g.inside(np.array([centre.real]), np.array([centre.imag]), margin=0.05)[0]:
            continue
        for _ in range(rng.integers(4, 9)):  # loops of a tangle
            theta = rng.uniform(0, math.tau) + np.cumsum(rng.normal(0.35, 0.5, int(rng.integers(10, 25))))
            z = centre + np.cumsum(step * np.exp(1j * theta))
            strokes.add(_fixed(z[: _first_outside(z, g)]), width)
        drawn += 1
    _darken(img, strokes, _ARTERY_DARKEN * 1.2)
    return drawn


# --------------------------------------------------------------------------------------------------
# camera


def _field_mask(rng: np.random.Generator, g: _Geometry, notch: bool) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The illuminated field (uint8 0/255, anti-aliased), with a notch cut into or a small tab on its
    rim, and the bounding box ``(x0, y0, x1, y1)`` of the disc alone, clipped to the frame."""
    mask = np.zeros((g.h, g.w), np.uint8)
    cv2.circle(mask, _pt(g.cx, g.cy), round(g.r * _ONE), 255, -1, cv2.LINE_AA, _SHIFT)
    x, y, bw, bh = cv2.boundingRect(cv2.threshold(mask, 127, 255, cv2.THRESH_BINARY)[1])
    if notch:
        # a rim point inside the frame, preferring where cameras put it (sides, top, bottom); the
        # last candidate is used if none fits
        for ang in [*rng.permutation(np.radians([0.0, 90.0, 180.0, 270.0, 45.0, 315.0])), *rng.uniform(0, math.tau, 20)]:
            ux, uy = math.cos(ang), math.sin(ang)
            if 0.04 * g.h < g.cy + g.r * uy < 0.96 * g.h and 0.04 * g.w < g.cx + g.r * ux < 0.96 * g.w:
                break
        outward = rng.random() < 0.5  # tab sticking out (at most 1 % of the frame), else a notch cut in
        half = rng.uniform(0.015, 0.035) * g.h
        depth = rng.uniform(0.005, 0.01) * g.h if outward else rng.uniform(0.012, 0.025) * g.h
        inner, outer = (g.r - 2, g.r + depth) if outward else (g.r - depth, g.r + 2)
        if rng.random() < 0.5:  # rectangle
            local = [(inner, -half), (outer, -half), (outer, half), (inner, half)]
        else:  # triangle pointing away from the rim's base
            local = [(inner, -half), (outer, 0.0), (inner, half)] if outward else [(outer, -half), (inner, 0.0), (outer, half)]
        poly = np.array([_pt(g.cx + u * ux - v * uy, g.cy + u * uy + v * ux) for u, v in local], np.int32)
        cv2.fillPoly(mask, [poly], 255 if outward else 0, cv2.LINE_AA, _SHIFT)
    return mask, (x, y, x + bw, y + bh)


def _camera(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, g: _Geometry, dim: bool, quality: int) -> np.ndarray:
    """Exposure, defocus, field stop, sensor noise, 8-bit quantisation and a JPEG round trip."""
    gain = rng.uniform(0.45, 0.65) if dim else rng.uniform(0.88, 1.1)
    if rng.random() < 0.4:  # dust on the optics: soft, grey, out-of-focus shadows
        n = int(rng.integers(1, 6))
        xy = np.column_stack([rng.uniform(0, g.w, n), rng.uniform(0, g.h, n)])
        dust = np.zeros((g.h, g.w), np.uint8)
        for (x, y), radius, value in zip(xy, rng.uniform(0.008, 0.03, n) * g.h, rng.integers(25, 70, n), strict=True):
            cv2.circle(dust, _pt(x, y), _radius_fixed(radius, 1.0), int(value), -1, cv2.LINE_AA, _SHIFT)
        _blend(img, cv2.GaussianBlur(dust, (0, 0), max(0.7, 0.006 * g.h)), darken=np.ones(3, np.float32))
    blur = rng.uniform(0.0, 0.9) * g.h / 512
    if blur > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    noise = rng.random(img.shape, dtype=np.float32)  # uniform noise: peak-to-peak amplitude, sd = amplitude / sqrt(12)
    noise -= 0.5
    img += noise * (rng.uniform(4.0, 10.0) / (255 * gain))  # photon noise, in 8-bit levels after the gain
    img *= (cv2.GaussianBlur(mask, (3, 3), 0.7).astype(np.float32) * gain)[..., None]  # mask 0-255: to 8-bit levels
    img += noise * rng.uniform(1.0, 3.0)  # read noise, also on the black border
    img += rng.uniform(0.3, 1.5)  # black level
    np.clip(img, 0, 255, out=img)
    out = img.astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise MobiledrError("synthetic fundus: JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


# --------------------------------------------------------------------------------------------------
# public API


def generate_fundus(grade: int, size: int, rng: np.random.Generator, eye: str = "left", notch: bool | None = None) -> tuple[np.ndarray, FundusInfo]:
    """One synthetic fundus photograph: RGB uint8 of shape ``(size, round(size * 4 / 3), 3)``.

    ``grade`` is the ICDR DR grade 0-4; ``eye`` is "left" or "right" (mirrors the anatomy: the optic
    disc is on the image's left for a left eye); ``notch`` forces a notch or tab on the field's rim on
    or off (``None``: about 15 % of images get one). ``rng`` is only spawned from (``rng.spawn``), so
    the same generator state with another grade gives the same photograph with other lesions.
    """
    if not isinstance(grade, (int, np.integer)) or not 0 <= grade <= 4:
        raise MobiledrError(f"synthetic fundus: grade must be an integer 0-4, got {grade!r}")
    if size < 32:
        raise MobiledrError(f"synthetic fundus: size must be at least 32 pixels, got {size}")
    if eye not in EYES:
        raise MobiledrError(f"synthetic fundus: eye must be 'left' or 'right', got {eye!r}")
    h, w = int(size), round(size * 4 / 3)
    # independent streams: the same generator state gives the same eye and capture whatever the
    # grade, and the other eye's anatomy is the mirror image
    anatomy, pathology, camera = rng.spawn(3)
    g = _geometry(anatomy, h, w, eye)
    img = _background(anatomy, g)
    _optic_disc(anatomy, img, g)
    _vessels(anatomy, img, g)
    _mimics(anatomy, img, g)
    counts = _lesions(pathology, img, g, int(grade))
    has_notch = bool(camera.random() < NOTCH_RATE) if notch is None else bool(notch)
    dim = bool(camera.random() < DIM_RATE)
    quality = int(camera.integers(70, 96))
    mask, crop_box = _field_mask(camera, g, has_notch)
    out = _camera(camera, img, mask, g, dim, quality)
    info = FundusInfo(
        grade=int(grade),
        eye=eye,
        width=w,
        height=h,
        disc_center=(g.cx, g.cy),
        disc_radius=g.r,
        crop_box=crop_box,
        optic_disc_center=g.od,
        optic_disc_radius=g.odd / 2,
        fovea_center=g.fovea,
        notch=has_notch,
        dim=dim,
        jpeg_quality=quality,
        **counts,
    )
    return out, info


def _patient_grades(rng: np.random.Generator, weights: np.ndarray) -> tuple[int, int]:
    """Grades of a patient's two eyes: equal or one apart, the second drawn near the first."""
    first = int(rng.choice(5, p=weights))
    near = np.array([weights[k] * (4.0 if k == first else 1.0) if abs(k - first) <= 1 else 0.0 for k in range(5)])
    return first, int(rng.choice(5, p=near / near.sum()))


def make_dataset(
    out: Path,
    n: int,
    size: int,
    seed: int = 0,
    grade_weights: Sequence[float] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write ``n`` synthetic images in the APTOS 2019 layout under ``out``; return the CSV's path.

    ``train.csv`` has ``id_code,diagnosis,patient_id,eye`` (APTOS has the first two); images are
    ``train_images/{id_code}.png``. Images come from ``ceil(n / 2)`` patients with a left and a right
    eye each (the last has one eye when ``n`` is odd), whose grades are equal or one apart. The same
    seed gives a byte-identical data set; every file is written atomically.
    """
    if n < 1:
        raise MobiledrError(f"synthetic data set: n must be at least 1, got {n}")
    weights = np.asarray(DEFAULT_GRADE_WEIGHTS if grade_weights is None else grade_weights, dtype=float)
    if weights.shape != (5,) or (weights < 0).any() or weights.sum() <= 0:
        raise MobiledrError(f"synthetic data set: grade_weights must be 5 non-negative numbers, got {list(weights)}")
    weights = weights / weights.sum()
    out = Path(out)
    images = out / "train_images"
    images.mkdir(parents=True, exist_ok=True)

    plan_rng, *image_seeds = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n + 1))
    rows: list[tuple[str, int, str, str]] = []
    used: set[str] = set()
    for p in range((n + 1) // 2):
        eyes = list(EYES) if 2 * p + 1 < n else [str(plan_rng.choice(EYES))]
        grades = _patient_grades(plan_rng, weights)
        for eye, grade in zip(eyes, grades, strict=False):
            id_code = plan_rng.bytes(6).hex()
            while id_code in used:
                id_code = plan_rng.bytes(6).hex()
            used.add(id_code)
            rows.append((id_code, grade, f"synth-{seed}-{p:05d}", eye))

    for (id_code, grade, _, eye), rng in zip(rows, image_seeds, strict=True):
        img, _ = generate_fundus(grade, size, rng, eye=eye)
        write_png(images / f"{id_code}.png", img)
        if progress is not None:
            progress(1)

    csv_path = out / "train.csv"
    atomic_write_csv(csv_path, ("id_code", "diagnosis", "patient_id", "eye"), rows)
    return csv_path
