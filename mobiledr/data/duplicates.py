"""Near-duplicate photographs across splits: a perceptual hash and a rotation-searching polar signature.

Augmenting before splitting (the thesis's flaw) puts rotated, flipped or re-exposed copies of one
photograph on both sides of a split. Two signals per image catch those copies:

- ``phash``: imagehash's DCT perceptual hash (copies, re-compression, resizing, exposure changes);
- ``polar``: the disc's fine detail (vessels, lesions) resampled on a polar grid around the disc
  centre. A rotation about the centre is a circular shift along the angle axis and a mirror
  reverses it, so two images are compared by the maximum normalised circular cross-correlation over
  all shifts, in both directions (computed with FFTs).

Measured separation on synthetic fundus images: ``benchmarks/results/duplicates.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import imagehash
import numpy as np
import torch
from PIL import Image

SIDE = 128  # the disc image is analysed at this size
ANGLES = 64
RADII = 14  # rings from 0.12 R to 0.85 R
PHASH_MAX_DISTANCE = 4
POLAR_MIN_CORRELATION = 0.5


@dataclass(frozen=True)
class Fingerprint:
    phash: int
    polar: np.ndarray  # (ANGLES, RADII) float16, zero-mean per ring, unit norm overall


def phash(rgb: np.ndarray) -> int:
    return int(str(imagehash.phash(Image.fromarray(rgb))), 16)


def polar_signature(rgb: np.ndarray) -> np.ndarray:
    """Band-passed grey detail of a centred disc image on an (angle, radius) grid."""
    grey = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (SIDE, SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)
    detail = cv2.GaussianBlur(grey - cv2.GaussianBlur(grey, (0, 0), 4), (0, 0), 1)
    rings = RADII + 2
    polar = cv2.warpPolar(detail, (rings * 2, ANGLES), (SIDE / 2, SIDE / 2), 0.85 * SIDE / 2, cv2.INTER_AREA | cv2.WARP_POLAR_LINEAR)
    polar = polar.reshape(ANGLES, rings, 2).mean(axis=2)[:, 2:]  # drop the two innermost rings
    polar -= polar.mean(axis=0, keepdims=True)
    return (polar / (np.linalg.norm(polar) + 1e-6)).astype(np.float16)


def fingerprint(rgb: np.ndarray) -> Fingerprint:
    return Fingerprint(phash(rgb), polar_signature(rgb))


def _spectra(fingerprints: list[Fingerprint], mirrored: bool = False) -> torch.Tensor:
    polar = torch.from_numpy(np.stack([f.polar for f in fingerprints]).astype(np.float32))
    if mirrored:
        polar = polar.flip(1)
    return torch.fft.rfft(polar, dim=1)  # (n, frequencies, radii)


def _best_correlation(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """(l, r) maximum circular cross-correlation over angle shifts."""
    cross = torch.einsum("lfr,nfr->lnf", left, right.conj())
    return torch.fft.irfft(cross, n=ANGLES, dim=2).amax(dim=2)


def near_duplicate_pairs(fingerprints: list[Fingerprint], chunk: int = 64) -> list[tuple[int, int]]:
    """Index pairs (i < j) of near-duplicate images."""
    if len(fingerprints) < 2:
        return []
    hashes = np.array([f.phash for f in fingerprints], dtype=np.uint64)
    spectra = _spectra(fingerprints)
    mirrored = _spectra(fingerprints, mirrored=True)
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(fingerprints), chunk):
        stop = min(start + chunk, len(fingerprints))
        close = np.bitwise_count(hashes[start:stop, None] ^ hashes[None, :]) <= PHASH_MAX_DISTANCE
        correlation = torch.maximum(_best_correlation(spectra[start:stop], spectra), _best_correlation(spectra[start:stop], mirrored))
        close |= (correlation >= POLAR_MIN_CORRELATION).numpy()
        for i, j in zip(*np.nonzero(close)):
            if start + int(i) < int(j):
                pairs.append((start + int(i), int(j)))
    return pairs
