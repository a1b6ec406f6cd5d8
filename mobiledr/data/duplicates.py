"""Near-duplicate photographs across splits: a perceptual hash and a rotation-searching polar signature.

Augmenting before splitting (the thesis's flaw) puts rotated, flipped or re-exposed copies of one
photograph on both sides of a split. Two signals per image catch those copies:

- ``phash``: imagehash's DCT perceptual hash (copies, re-compression, resizing, exposure changes);
- ``polar``: the disc's fine detail (vessels, lesions) resampled on a polar grid around the disc
  centre. A rotation about the centre is a circular shift along the angle axis and a mirror
  reverses it, so two images are compared by the maximum normalised circular cross-correlation over
  all shifts, in both directions (computed with FFTs). Disc-centred photographs all show radial
  vessels, so a match also needs the same colour balance (``chroma``, the disc's mean chromaticity,
  which exposure changes, rotations and re-compression leave alone).

Distinct disc-centred photographs from low-resolution sources (frames of about 256 px) can still
match (9 of 79,800 pairs in the 400-image demo set); ``data split --merge-duplicates`` keeps flagged
pairs together, which costs nothing when a flag is false.

Measured separation on synthetic fundus images: ``benchmarks/results/duplicates.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import imagehash
import numpy as np
from PIL import Image

FINGERPRINT_SIZE = 256  # caches fingerprint the disc at this size, whatever their own size
SIDE = 256  # the polar signature is computed at this size
ANGLES = 128
RADII = 28  # rings from 0.12 R to 0.85 R; a signature is ANGLES x RADII float16 (7 KB)
PHASH_MAX_DISTANCE = 2  # fundus photographs share their low frequencies: only near-exact copies
POLAR_MIN_CORRELATION = 0.48
CHROMA_MAX_DISTANCE = 0.02


@dataclass(frozen=True)
class Fingerprint:
    phash: int
    polar: np.ndarray  # (ANGLES, RADII) float16, zero-mean per ring, unit norm overall
    chroma: tuple[float, float]  # mean r/(r+g+b) and g/(r+g+b) over the disc


def phash(rgb: np.ndarray) -> int:
    """64-bit DCT perceptual hash (imagehash), from a 64x64 copy: the hash only looks at 32x32."""
    small = cv2.resize(rgb, (64, 64), interpolation=cv2.INTER_AREA)
    return int(str(imagehash.phash(Image.fromarray(small))), 16)


def polar_signature(rgb: np.ndarray) -> np.ndarray:
    """Band-passed grey detail of a centred disc image on an (angle, radius) grid."""
    grey = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (SIDE, SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)
    detail = cv2.GaussianBlur(grey - cv2.GaussianBlur(grey, (0, 0), SIDE / 32), (0, 0), SIDE / 128)
    rings = RADII + 2
    polar = cv2.warpPolar(detail, (rings * 2, ANGLES), (SIDE / 2, SIDE / 2), 0.85 * SIDE / 2, cv2.INTER_AREA | cv2.WARP_POLAR_LINEAR)
    polar = polar.reshape(ANGLES, rings, 2).mean(axis=2)[:, 2:]  # drop the two innermost rings
    polar -= polar.mean(axis=0, keepdims=True)
    return (polar / (np.linalg.norm(polar) + 1e-6)).astype(np.float16)


def chromaticity(rgb: np.ndarray) -> tuple[float, float]:
    pixels = rgb.reshape(-1, 3).astype(np.float64)
    pixels = pixels[pixels.sum(axis=1) > 60]  # the disc, not the black border
    if len(pixels) == 0:
        return (1 / 3, 1 / 3)
    total = pixels.sum(axis=1, keepdims=True)
    r, g = (pixels[:, :2] / total).mean(axis=0)
    return (round(float(r), 5), round(float(g), 5))


def fingerprint(rgb: np.ndarray) -> Fingerprint:
    return Fingerprint(phash(rgb), polar_signature(rgb), chromaticity(rgb))


def _spectra(fingerprints: list[Fingerprint], mirrored: bool = False) -> np.ndarray:
    """Angular FFT of the polar signatures, (n, frequencies, radii) complex64."""
    polar = np.stack([f.polar for f in fingerprints]).astype(np.float32)
    return np.fft.rfft(polar[:, ::-1] if mirrored else polar, axis=1)


def _as_columns(spectra: np.ndarray) -> np.ndarray:
    """(frequencies, 2 radii, n): real parts stacked over imaginary parts."""
    return np.ascontiguousarray(np.concatenate([spectra.real, spectra.imag], axis=2).transpose(1, 2, 0), dtype=np.float32)


def _best_correlation(left: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """(l, r) maximum circular cross-correlation over angle shifts.

    The cross-spectra a * conj(b) come from one real batched matrix product (BLAS):
    [re; im] = [[ar, ai], [ai, -ar]] @ [br; bi]; an inverse FFT then gives every shift at once.
    """
    ar, ai = left.real.transpose(1, 0, 2), left.imag.transpose(1, 0, 2)  # (frequencies, l, radii)
    stacked = np.concatenate([np.concatenate([ar, ai], axis=2), np.concatenate([ai, -ar], axis=2)], axis=1).astype(np.float32)
    product = stacked @ columns  # (frequencies, 2 l, r)
    count = left.shape[0]
    cross = np.empty((count, product.shape[2], product.shape[0]), dtype=np.complex64)  # (l, r, frequencies)
    cross.real = product[:, :count].transpose(1, 2, 0)
    cross.imag = product[:, count:].transpose(1, 2, 0)
    return np.fft.irfft(cross, n=ANGLES, axis=2).max(axis=2)


def _correlation_blocks(left: list[Fingerprint], right: list[Fingerprint], chunk: int) -> Iterator[tuple[int, np.ndarray]]:
    """(start, block) with block = best correlations of ``left[start:start+chunk]`` against all of ``right``."""
    columns, mirrored = _as_columns(_spectra(right)), _as_columns(_spectra(right, mirrored=True))
    for start in range(0, len(left), chunk):
        spectra = _spectra(left[start : start + chunk])
        yield start, np.maximum(_best_correlation(spectra, columns), _best_correlation(spectra, mirrored))


def polar_correlations(left: list[Fingerprint], right: list[Fingerprint], chunk: int = 128) -> np.ndarray:
    """(len(left), len(right)) best correlation of the polar signatures over rotations and mirroring."""
    return np.concatenate([block for _, block in _correlation_blocks(left, right, chunk)]) if left else np.zeros((0, len(right)))


def _phash_pairs(fingerprints: list[Fingerprint], chunk: int = 2048) -> set[tuple[int, int]]:
    hashes = np.array([f.phash for f in fingerprints], dtype=np.uint64)
    chroma = np.array([f.chroma for f in fingerprints])
    pairs = set()
    for start in range(0, len(hashes), chunk):
        rows = slice(start, start + chunk)
        close = np.bitwise_count(hashes[rows, None] ^ hashes[None, :]) <= PHASH_MAX_DISTANCE
        close &= np.abs(chroma[rows, None, :] - chroma[None, :, :]).max(axis=2) <= CHROMA_MAX_DISTANCE
        pairs.update((start + int(i), int(j)) for i, j in zip(*np.nonzero(close)) if start + int(i) < int(j))
    return pairs


def _polar_pairs(fingerprints: list[Fingerprint], chunk: int) -> set[tuple[int, int]]:
    """Polar matches between images of the same colour balance: images are bucketed by
    chromaticity (cells of CHROMA_MAX_DISTANCE) and compared with the neighbouring cells only."""
    chroma = np.array([f.chroma for f in fingerprints])
    cells = np.floor(chroma / CHROMA_MAX_DISTANCE).astype(int)
    members: dict[tuple[int, int], list[int]] = {}
    for index, cell in enumerate(map(tuple, cells)):
        members.setdefault(cell, []).append(index)
    pairs = set()
    for (cr, cg), own in members.items():
        near = [i for dr in (-1, 0, 1) for dg in (-1, 0, 1) for i in members.get((cr + dr, cg + dg), [])]
        for start, correlation in _correlation_blocks([fingerprints[i] for i in own], [fingerprints[j] for j in near], chunk):
            rows = own[start : start + len(correlation)]
            same_colour = np.abs(chroma[rows][:, None, :] - chroma[near][None, :, :]).max(axis=2) <= CHROMA_MAX_DISTANCE
            for a, b in zip(*np.nonzero((correlation >= POLAR_MIN_CORRELATION) & same_colour)):
                i, j = rows[a], near[b]
                if i < j:
                    pairs.add((i, j))
    return pairs


def near_duplicate_pairs(fingerprints: list[Fingerprint], chunk: int = 128) -> list[tuple[int, int]]:
    """Sorted index pairs (i < j) of near-duplicate images."""
    if len(fingerprints) < 2:
        return []
    return sorted(_phash_pairs(fingerprints) | _polar_pairs(fingerprints, chunk))
