"""The geometric stage: decode, 8-bit RGB, circle crop, pad to square, bicubic resize.

This is the part of preprocessing a phone app must reproduce before calling an exported model, so it
stays small and deterministic (OpenCV and numpy only, after Pillow's decoding).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mobiledr.data.spec import PreprocessSpec
from mobiledr.io import atomic_write_bytes

MAX_PIXELS = 100_000_000  # 10k x 10k; real fundus cameras stay below 25 MP
ANALYSIS_SIDE = 512  # the disc is located on a copy downscaled to at most this side


class ImageRejected(Exception):
    """The image cannot be used; the message is the reason (a rejects-list entry)."""


@dataclass(frozen=True)
class Circle:
    cx: float
    cy: float
    r: float


@dataclass(frozen=True)
class GeometricResult:
    """The model-size RGB image and where it came from in the original frame."""

    image: np.ndarray  # (size, size, 3) uint8 RGB
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) of the visible disc in the original image
    circle: Circle | None  # fitted disc in original pixels (None for OCT)
    original_size: tuple[int, int]  # (width, height)


def decode(path: str | Path) -> np.ndarray:
    """Decode to 8-bit RGB honouring EXIF orientation; grey, RGBA, palette, 16-bit and CMYK handled."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageRejected(f"unreadable: {exc.strerror}") from None
    if size == 0:
        raise ImageRejected("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise ImageRejected(f"decompression bomb: {width}x{height} pixels exceeds the {MAX_PIXELS:,} limit")
                img.load()
                img = ImageOps.exif_transpose(img)
                return _to_rgb8(img)
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected("decompression bomb: too many pixels") from None
    except UnidentifiedImageError:
        raise ImageRejected("not an image (format not recognised)") from None
    except OSError as exc:
        message = str(exc)
        if "truncated" in message or "broken" in message or "premature" in message.lower():
            raise ImageRejected("truncated image") from None
        raise ImageRejected(f"cannot decode: {message.splitlines()[0] if message else type(exc).__name__}") from None
    except (ValueError, SyntaxError) as exc:
        raise ImageRejected(f"cannot decode: {exc}") from None


def _to_rgb8(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        data = np.asarray(img, dtype=np.float64)
        scale = 65535.0 if data.max() > 255 else 255.0
        grey = np.clip(np.rint(data * 255.0 / scale), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if img.mode == "F":
        grey = np.clip(np.rint(np.asarray(img)), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composite on black: transparent parts of a fundus photograph are background.
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, rgba)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def find_disc(rgb: np.ndarray, tolerance: int = 7) -> Circle:
    """Fit the fundus disc: threshold, largest component, robust circle fit to its outline.

    The fit ignores outline points on the frame's edge (discs cut off by the sensor) and trims
    outliers, so a notch or tab on the rim, JPEG noise in the border, or a dim exposure do not move it.
    """
    height, width = rgb.shape[:2]
    scale = min(1.0, ANALYSIS_SIDE / max(height, width))
    small = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    grey = cv2.medianBlur(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), 5)
    if int(grey.max()) <= tolerance:
        raise ImageRejected("no fundus disc found (image is black)")
    # Dim exposures: never let the threshold exceed a quarter of the disc's own brightness.
    threshold = min(tolerance, max(1, int(0.25 * np.percentile(grey[grey > 0], 90))))
    mask = (grey > threshold).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count < 2:
        raise ImageRejected("no fundus disc found (nothing above the black level)")
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[largest, cv2.CC_STAT_AREA] < 0.02 * mask.size:
        raise ImageRejected("no fundus disc found (bright region too small)")
    blob = (labels == largest).astype(np.uint8)
    blob = cv2.morphologyEx(blob, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    points = max(contours, key=len)[:, 0, :].astype(np.float64)
    h, w = blob.shape
    inside = (points[:, 0] > 1) & (points[:, 0] < w - 2) & (points[:, 1] > 1) & (points[:, 1] < h - 2)
    if inside.sum() < 20:  # the disc fills the whole frame: fall back to the frame itself
        return Circle(width / 2, height / 2, max(width, height) / 2)
    cx, cy, r = _robust_circle(points[inside])
    return Circle(cx / scale, cy / scale, r / scale)


def _robust_circle(points: np.ndarray, rounds: int = 4) -> tuple[float, float, float]:
    """Algebraic (Kasa) least-squares circle, refitted on the points nearest the circle each round."""
    keep = np.ones(len(points), dtype=bool)
    cx = cy = r = 0.0
    for _ in range(rounds):
        x, y = points[keep, 0], points[keep, 1]
        design = np.column_stack([x, y, np.ones_like(x)])
        solution, *_ = np.linalg.lstsq(design, x * x + y * y, rcond=None)
        cx, cy = solution[0] / 2, solution[1] / 2
        r = float(np.sqrt(max(solution[2] + cx * cx + cy * cy, 1e-9)))
        residual = np.abs(np.hypot(points[:, 0] - cx, points[:, 1] - cy) - r)
        cutoff = max(1.5, 2.5 * float(np.median(residual[keep])) * 1.4826)
        keep = residual <= cutoff
        if keep.sum() < 10:
            break
    return float(cx), float(cy), r


def crop_to_circle(rgb: np.ndarray, circle: Circle) -> np.ndarray:
    """The square of side 2r centred on the disc, black where it leaves the frame."""
    side = max(2, int(round(2 * circle.r)))
    x0, y0 = int(round(circle.cx - side / 2)), int(round(circle.cy - side / 2))
    height, width = rgb.shape[:2]
    out = np.zeros((side, side, 3), dtype=np.uint8)
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(width, x0 + side), min(height, y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    return out


def geometric(rgb: np.ndarray, spec: PreprocessSpec, size: int | None = None) -> GeometricResult:
    """Apply the geometric stage to a decoded RGB image (at ``size`` instead of ``spec.size`` if given)."""
    height, width = rgb.shape[:2]
    side = size or spec.size
    if spec.mode == "oct":
        resized = cv2.resize(rgb, (side, side), interpolation=cv2.INTER_CUBIC)
        return GeometricResult(resized, (0, 0, width, height), None, (width, height))
    circle = find_disc(rgb, spec.crop_tolerance)
    resized = cv2.resize(crop_to_circle(rgb, circle), (side, side), interpolation=cv2.INTER_CUBIC)
    box = (
        max(0, int(round(circle.cx - circle.r))),
        max(0, int(round(circle.cy - circle.r))),
        min(width, int(round(circle.cx + circle.r))),
        min(height, int(round(circle.cy + circle.r))),
    )
    return GeometricResult(resized, box, circle, (width, height))


def resize_square(square: np.ndarray, size: int) -> np.ndarray:
    """Resize to ``size`` x ``size``: area averaging when shrinking, bicubic when enlarging."""
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA if size < square.shape[0] else cv2.INTER_CUBIC)


def resample(result: GeometricResult, rgb: np.ndarray, size: int) -> np.ndarray:
    """The same crop as ``result`` (from the decoded original ``rgb``) at another size."""
    return resize_square(crop_to_circle(rgb, result.circle) if result.circle is not None else rgb, size)


def write_png(path: str | Path, rgb: np.ndarray, compression: int = 1) -> None:
    """Write an RGB image losslessly and atomically."""
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise OSError(f"{path}: cannot encode PNG")
    atomic_write_bytes(path, png.tobytes())


def load_geometric(path: str | Path, spec: PreprocessSpec) -> GeometricResult:
    """Decode a file and apply the geometric stage; raises ImageRejected with the reason."""
    return geometric(decode(path), spec)


def load_folder(folder: Path, spec: PreprocessSpec, on_progress: Callable[[int, int], None] | None = None) -> tuple[list[tuple[str, np.ndarray]], dict[str, str]]:
    """Every non-hidden file under ``folder`` through the geometric stage, in name order: (relative name,
    image) for the usable ones and relative name -> reason for the rejected ones. ``on_progress(done,
    total)`` after each file."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    accepted: list[tuple[str, np.ndarray]] = []
    rejected: dict[str, str] = {}
    for done, path in enumerate(files, start=1):
        name = path.relative_to(folder).as_posix()
        try:
            accepted.append((name, load_geometric(path, spec).image))
        except ImageRejected as exc:
            rejected[name] = str(exc)
        if on_progress is not None:
            on_progress(done, len(files))
    return accepted, rejected
