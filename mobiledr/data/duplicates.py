"""Near-duplicate photographs across splits: cheap signals propose candidate pairs, keypoints decide.

Augmenting before splitting (the thesis's flaw) puts rotated, flipped, re-exposed, re-compressed or
rescaled copies of one photograph on both sides of a split. The check runs in two stages.

**Candidates** come from two cheap signals computed when the cache is prepared (``Fingerprint``):

- ``phash``: imagehash's DCT perceptual hash (copies, re-compression, resizing, exposure changes);
- ``polar``: the disc's fine detail (vessels, lesions) resampled on a polar grid around the disc
  centre. A rotation about the centre is a circular shift along the angle axis and a mirror
  reverses it, so two images are compared by the maximum normalised circular cross-correlation over
  all shifts, in both directions (computed with FFTs).

Comparing every pair's polar signatures that way costs too much at EyePACS scale, so a shortlist
comes first: the magnitudes of each ring's angular spectrum do not change under rotation or mirroring,
and one matrix product per block of images gives every image's ``SHORTLIST`` most similar ones.
A pair is a candidate when its pHash distance is small, or, within the shortlist, when its polar
correlation is high or it is among either image's ``POLAR_TOP_K`` best: the number of candidates
grows linearly with the data set. These signals alone confuse distinct disc-centred photographs
(all show radial vessels from a disc), so none of them flags a pair by itself. (``chroma``, the
disc's mean chromaticity, is reported as evidence only: a gamma change moves it.)

**Verification**: SIFT keypoints (OpenCV) of both cached images, inside the field (the rim and
the cut-off edges, which every photograph shares, are masked out), are matched with Lowe's ratio
test and a similarity transform (rotation, scale, shift) is fitted with RANSAC
(``cv2.estimateAffinePartial2D``), once against the second image and once against its mirror
image. Copies share tens to hundreds of inliers; distinct photographs a handful. A pair is flagged when the
best transform has at least ``MIN_INLIERS`` inliers, a scale near 1 and keeps the disc centre near
the centre (the cached images are disc-centred crops of one size). Keypoints are computed once per
image in a candidate pair (a mirror image's are a permutation of them), in an order that keeps
each image's keypoints in a bounded cache.

Measured separation: ``benchmarks/results/duplicates.md``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import imagehash
import numpy as np
from PIL import Image

FINGERPRINT_SIZE = 256  # caches fingerprint the disc at this size, whatever their own size
SIDE = 256  # the polar signature is computed at this size
ANGLES = 128
RADII = 28  # rings from 0.12 R to 0.85 R; a signature is ANGLES x RADII float16 (7 KB)
# candidates (cheap signals)
PHASH_MAX_DISTANCE = 6  # fundus photographs share their low frequencies: distinct ones can come close
POLAR_MIN_CORRELATION = 0.40  # a candidate whatever its rank
POLAR_TOP_K = 3  # and each image's best polar matches down to POLAR_FLOOR
POLAR_FLOOR = 0.20
SHORTLIST = 24  # each image's most similar rotation-invariant spectra, whose polar correlation is then computed
SHORTLIST_FREQUENCIES = 32
# verification (keypoints)
VERIFY_SIDE = 256  # keypoints are found on the cached image resized to this side
SIFT_FEATURES = 500
RATIO = 0.8  # Lowe's ratio test
RANSAC_PIXELS = 3.0  # at VERIFY_SIDE
MIN_INLIERS = 20  # distinct photographs: at most ~10 under a plausible transform; copies: ~40-400 (benchmarks/results)
SCALE_RANGE = (0.67, 1.5)
MAX_CENTRE_SHIFT = 0.25  # of the side: where the transform moves the image centre (a copy the circle fit crops otherwise: ~0.15)
FEW_KEYPOINTS = 3 * MIN_INLIERS  # an image with fewer (blurred, featureless) cannot be verified by keypoints:
FEW_KEYPOINTS_POLAR = 0.85  # such a pair is flagged on its polar correlation alone (copies ~0.95, distinct < 0.55)
KEYPOINT_CACHE = 1024  # images whose keypoints are kept while verifying (about 70 KB each)


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


@dataclass(frozen=True)
class Signals:
    """The cheap evidence of a candidate pair."""

    phash_distance: int
    polar_correlation: float  # best over rotations and mirroring
    chroma_distance: float  # largest difference of the two chromaticity coordinates


# A SIFT descriptor is a 4 x 4 grid (rows, columns in the keypoint's frame) of 8-bin gradient-orientation
# histograms. Mirroring the image left-right mirrors each keypoint's frame: the grid's rows reverse and
# every orientation bin o becomes -o. Checked against SIFT run on mirrored images: tests/test_duplicates.py.
_MIRRORED_DESCRIPTOR = np.arange(128).reshape(4, 4, 8)[::-1][:, :, (-np.arange(8)) % 8].ravel()


@dataclass(frozen=True)
class Keypoints:
    points: np.ndarray  # (k, 2) float32, pixels at VERIFY_SIDE
    descriptors: np.ndarray  # (k, 128) uint8 SIFT descriptors

    def mirrored(self) -> Keypoints:
        """The keypoints SIFT finds in the left-right mirror image, without running it again."""
        points = self.points.copy()
        points[:, 0] = VERIFY_SIDE - 0.5 - points[:, 0]  # OpenCV's SIFT locates points a quarter pixel off centre
        return Keypoints(points, np.ascontiguousarray(self.descriptors[:, _MIRRORED_DESCRIPTOR]))


@dataclass(frozen=True)
class Match:
    """The best similarity transform between two images' keypoints (the second maybe mirrored)."""

    keypoints: int  # the fewer of the two images' keypoint counts
    matches: int  # keypoint matches passing the ratio test
    inliers: int  # of those, consistent with the transform
    mirrored: bool  # the second image was mirrored (left-right) first
    rotation: float  # degrees
    scale: float
    centre_shift: float  # where the transform moves the image centre, as a fraction of the side
    matrix: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # the 2x3 transform, row-major, pixels at VERIFY_SIDE

    @property
    def plausible(self) -> bool:
        """A transform between two disc-centred crops of one size: scale near 1, centre near the centre."""
        return SCALE_RANGE[0] <= self.scale <= SCALE_RANGE[1] and self.centre_shift <= MAX_CENTRE_SHIFT

    @property
    def verified(self) -> bool:
        return self.inliers >= MIN_INLIERS and self.plausible


NO_MATCH = Match(0, 0, 0, False, 0.0, 1.0, 0.0)


@dataclass(frozen=True)
class Candidate:
    """A candidate pair (i < j), its signals and, once verified, its keypoint match."""

    i: int
    j: int
    signals: Signals
    match: Match = NO_MATCH

    @property
    def rule(self) -> str:
        """Why the pair is flagged: 'keypoints', 'polar (few keypoints)', or '' (not flagged)."""
        if self.match.verified:
            return "keypoints"
        if self.match.keypoints < FEW_KEYPOINTS and self.signals.polar_correlation >= FEW_KEYPOINTS_POLAR:
            return "polar (few keypoints)"
        return ""

    @property
    def verified(self) -> bool:
        return bool(self.rule)


@dataclass(frozen=True)
class Search:
    """Every candidate pair with its evidence; ``pairs`` are the verified ones."""

    candidates: list[Candidate]
    keypoint_images: int  # images whose keypoints were computed (some twice when the cache was full)

    @property
    def pairs(self) -> list[Candidate]:
        return [c for c in self.candidates if c.verified]


def _phash_candidates(fingerprints: list[Fingerprint], chunk: int = 2048) -> set[tuple[int, int]]:
    hashes = np.array([f.phash for f in fingerprints], dtype=np.uint64)
    pairs = set()
    for start in range(0, len(hashes), chunk):
        close = np.bitwise_count(hashes[start : start + chunk, None] ^ hashes[None, :]) <= PHASH_MAX_DISTANCE
        pairs.update((start + int(i), int(j)) for i, j in zip(*np.nonzero(close)) if start + int(i) < int(j))
    return pairs


def _spectral_features(fingerprints: list[Fingerprint]) -> np.ndarray:
    """(n, d) unit vectors: the magnitudes of each ring's angular spectrum (frequencies 1..SHORTLIST_FREQUENCIES),
    which a rotation (a circular shift along the angle) and a mirror (a reversal) leave unchanged,
    centred on the data set's mean so that what all fundi share does not count."""
    polar = np.stack([f.polar for f in fingerprints]).astype(np.float32)
    magnitude = np.sqrt(np.abs(np.fft.rfft(polar, axis=1))[:, 1 : SHORTLIST_FREQUENCIES + 1, :]).reshape(len(polar), -1)
    magnitude -= magnitude.mean(axis=0, keepdims=True)
    return magnitude / (np.linalg.norm(magnitude, axis=1, keepdims=True) + 1e-6)


def _shortlist(fingerprints: list[Fingerprint], chunk: int = 1024) -> set[tuple[int, int]]:
    """Pairs (i < j) with j among i's SHORTLIST most similar spectra or i among j's: one matrix
    product per chunk of rows, so the whole set costs n^2 * d multiply-adds (BLAS) and n * SHORTLIST pairs."""
    features = _spectral_features(fingerprints)
    n = len(features)
    m = min(SHORTLIST, n - 1)
    pairs: set[tuple[int, int]] = set()
    for start in range(0, n, chunk):
        similarity = features[start : start + chunk] @ features.T
        rows = np.arange(start, min(start + chunk, n))
        similarity[rows - start, rows] = -np.inf
        best = np.argpartition(-similarity, m - 1, axis=1)[:, :m]
        for i, row in zip(rows, best):
            pairs.update((min(int(i), int(j)), max(int(i), int(j))) for j in row)
    return pairs


def _pair_correlations(fingerprints: list[Fingerprint], pairs: list[tuple[int, int]], chunk: int = 4096) -> np.ndarray:
    """Best polar correlation over rotations and mirroring for each (i, j) in ``pairs``."""
    straight, mirrored = _spectra(fingerprints), _spectra(fingerprints, mirrored=True)
    out = np.empty(len(pairs), dtype=np.float32)
    index = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    for start in range(0, len(index), chunk):
        i, j = index[start : start + chunk, 0], index[start : start + chunk, 1]
        a = straight[i]
        best = [np.fft.irfft((a * np.conj(b[j])).sum(axis=2), n=ANGLES, axis=1).max(axis=1) for b in (straight, mirrored)]
        out[start : start + len(i)] = np.maximum(*best)
    return out


def _polar_candidates(fingerprints: list[Fingerprint]) -> dict[tuple[int, int], float]:
    """Polar candidates (i < j) with their correlation: from the spectral shortlist, the pairs
    correlating at POLAR_MIN_CORRELATION or more, and each image's POLAR_TOP_K best down to POLAR_FLOOR."""
    shortlist = sorted(_shortlist(fingerprints))
    correlation = _pair_correlations(fingerprints, shortlist)
    keep = {pair: float(c) for pair, c in zip(shortlist, correlation) if c >= POLAR_MIN_CORRELATION}
    ranked: dict[int, list[tuple[float, tuple[int, int]]]] = {}
    for pair, c in zip(shortlist, correlation):
        if c >= POLAR_FLOOR:
            for image in pair:
                ranked.setdefault(image, []).append((float(c), pair))
    for options in ranked.values():
        for c, pair in sorted(options, reverse=True)[:POLAR_TOP_K]:
            keep[pair] = c
    return keep


def candidate_pairs(fingerprints: list[Fingerprint]) -> list[Candidate]:
    """Sorted candidate pairs (i < j) from the cheap signals, with those signals."""
    if len(fingerprints) < 2:
        return []
    polar = _polar_candidates(fingerprints)
    keys = sorted(set(polar) | _phash_candidates(fingerprints))
    missing = [pair for pair in keys if pair not in polar]  # pHash candidates outside the polar ones
    polar.update(zip(missing, map(float, _pair_correlations(fingerprints, missing))))
    candidates = []
    for i, j in keys:
        a, b = fingerprints[i], fingerprints[j]
        correlation = polar[(i, j)]
        chroma = max(abs(a.chroma[0] - b.chroma[0]), abs(a.chroma[1] - b.chroma[1]))
        candidates.append(Candidate(i, j, Signals((a.phash ^ b.phash).bit_count(), round(correlation, 4), round(chroma, 5))))
    return candidates


_SIFT: cv2.SIFT | None = None


def keypoints(rgb: np.ndarray) -> Keypoints:
    """SIFT keypoints of a disc-centred RGB image inside its field, at VERIFY_SIDE.

    The green channel (where vessels and lesions show best), equalised locally (CLAHE) so an exposure
    change moves few keypoints; the field's rim and cut-off edges are masked out: every photograph
    has them, so they match between any two.
    """
    global _SIFT
    if _SIFT is None:
        _SIFT = cv2.SIFT_create(SIFT_FEATURES, 3, 0.04, 10, 1.6, cv2.CV_8U)  # OpenCV's defaults, uint8 descriptors
    side = VERIFY_SIDE
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"keypoints need an RGB image, got shape {rgb.shape}")
    shrink = rgb.shape[0] > side or rgb.shape[1] > side
    image = cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    field = (image.max(axis=2) > 20).astype(np.uint8)
    field = cv2.erode(field, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side // 16 + 1, side // 16 + 1)))
    green = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(np.ascontiguousarray(image[:, :, 1]))
    found, descriptors = _SIFT.detectAndCompute(green, field)
    if descriptors is None or not found:
        return Keypoints(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8))
    return Keypoints(np.array([k.pt for k in found], np.float32), descriptors.astype(np.uint8))


def _match_one(a: Keypoints, b: Keypoints, mirrored: bool) -> Match:
    fewer = min(len(a.points), len(b.points))
    if fewer < 3:
        return Match(fewer, 0, 0, mirrored, 0.0, 1.0, 0.0)
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(a.descriptors.astype(np.float32), b.descriptors.astype(np.float32), k=2)
    best: dict[int, cv2.DMatch] = {}  # one match per keypoint of b: many onto one fit degenerate transforms
    for m in pairs:
        if len(m) == 2 and m[0].distance < RATIO * m[1].distance and (m[0].trainIdx not in best or m[0].distance < best[m[0].trainIdx].distance):
            best[m[0].trainIdx] = m[0]
    good = list(best.values())
    if len(good) < 3:
        return Match(fewer, len(good), 0, mirrored, 0.0, 1.0, 0.0)
    source = a.points[[m.queryIdx for m in good]]
    target = b.points[[m.trainIdx for m in good]]
    matrix, inliers = cv2.estimateAffinePartial2D(source, target, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PIXELS, maxIters=2000, confidence=0.995)
    if matrix is None:
        return Match(fewer, len(good), 0, mirrored, 0.0, 1.0, 0.0)
    centre = (VERIFY_SIDE - 1) / 2
    moved = matrix @ np.array([centre, centre, 1.0])
    return Match(
        keypoints=fewer,
        matches=len(good),
        inliers=int(inliers.sum()),
        mirrored=mirrored,
        rotation=round(math.degrees(math.atan2(matrix[1, 0], matrix[0, 0])), 2),
        scale=round(math.hypot(matrix[0, 0], matrix[1, 0]), 4),
        centre_shift=round(float(np.hypot(*(moved - centre))) / VERIFY_SIDE, 4),
        matrix=tuple(round(float(v), 5) for v in matrix.ravel()),
    )


def match_keypoints(a: Keypoints, b: Keypoints, b_mirrored: Keypoints) -> Match:
    """The better (more inliers) of ``a`` against ``b`` and against ``b``'s mirror image."""
    straight, flipped = _match_one(a, b, False), _match_one(a, b_mirrored, True)
    return flipped if flipped.inliers > straight.inliers else straight


class KeypointCache:
    """Keypoints of images by index, the least recently used dropped."""

    def __init__(self, image: Callable[[int], np.ndarray], capacity: int = KEYPOINT_CACHE) -> None:
        self._image, self._capacity = image, capacity
        self._entries: OrderedDict[int, Keypoints] = OrderedDict()
        self.computed = 0

    def get(self, index: int, mirrored: bool = False) -> Keypoints:
        if index in self._entries:
            self._entries.move_to_end(index)
            found = self._entries[index]
        else:
            found = keypoints(self._image(index))
            self.computed += 1
            self._entries[index] = found
            if len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
        return found.mirrored() if mirrored else found


def _visiting_order(candidates: list[Candidate], n: int) -> list[Candidate]:
    """Candidates ordered so that each image's pairs come close together (reverse Cuthill-McKee on
    the candidate graph): keypoints then stay in a bounded cache instead of being recomputed."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    if not candidates:
        return []
    rows = np.array([c.i for c in candidates])
    cols = np.array([c.j for c in candidates])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)).tocsr()
    rank = np.empty(n, dtype=int)
    rank[reverse_cuthill_mckee(graph + graph.T, symmetric_mode=True)] = np.arange(n)
    return sorted(candidates, key=lambda c: (min(rank[c.i], rank[c.j]), max(rank[c.i], rank[c.j])))


def find_near_duplicates(
    fingerprints: list[Fingerprint],
    image: Callable[[int], np.ndarray],
    keypoint_cache: KeypointCache | None = None,
) -> Search:
    """Candidate pairs from the fingerprints, each verified on the images (``image(index)`` gives
    the disc-centred RGB image of ``fingerprints[index]``)."""
    candidates = candidate_pairs(fingerprints)
    cache = keypoint_cache or KeypointCache(image)
    before = cache.computed
    verified = []
    for c in _visiting_order(candidates, len(fingerprints)):
        verified.append(Candidate(c.i, c.j, c.signals, match_keypoints(cache.get(c.i), cache.get(c.j), cache.get(c.j, mirrored=True))))
    verified.sort(key=lambda c: (c.i, c.j))
    return Search(verified, cache.computed - before)


def near_duplicate_pairs(fingerprints: list[Fingerprint], image: Callable[[int], np.ndarray]) -> list[tuple[int, int]]:
    """Sorted index pairs (i < j) of verified near-duplicate images."""
    return [(c.i, c.j) for c in find_near_duplicates(fingerprints, image).pairs]


# --------------------------------------------------------------------------------------------------
# what a user looks at before deciding: the evidence CSV and a contact sheet

EVIDENCE_COLUMNS = [
    "key_a", "key_b", "split_a", "split_b", "crosses_splits", "patient_a", "patient_b", "rule",
    "phash_distance", "polar_correlation", "chroma_distance",
    "keypoints", "matches", "inliers", "mirrored", "rotation_deg", "scale", "centre_shift", "transform",
]  # fmt: skip
SHEET_PAIRS = 60  # pairs drawn on a contact sheet (those crossing splits first)
SHEET_TILE = 200


@dataclass(frozen=True)
class PairRow:
    """A flagged pair as a split sees it: which images, where they went, and the evidence."""

    key_a: str
    key_b: str
    split_a: str
    split_b: str
    patient_a: str
    patient_b: str
    candidate: Candidate

    @property
    def crosses_splits(self) -> bool:
        return self.split_a != self.split_b


def write_evidence(path: str | Path, rows: list[PairRow]) -> None:
    """One CSV row per flagged pair (those crossing splits first), written atomically; header only when none."""
    from mobiledr.io import atomic_write_csv

    def line(r: PairRow) -> list:
        s, m = r.candidate.signals, r.candidate.match
        return [
            r.key_a, r.key_b, r.split_a, r.split_b, "yes" if r.crosses_splits else "no", r.patient_a, r.patient_b, r.candidate.rule,
            s.phash_distance, s.polar_correlation, s.chroma_distance,
            m.keypoints, m.matches, m.inliers, "yes" if m.mirrored else "no", m.rotation, m.scale, m.centre_shift, " ".join(map(str, m.matrix)),
        ]  # fmt: skip

    atomic_write_csv(path, EVIDENCE_COLUMNS, (line(r) for r in sorted(rows, key=lambda r: not r.crosses_splits)))


def _tile(rgb: np.ndarray, side: int = VERIFY_SIDE) -> np.ndarray:
    shrink = rgb.shape[0] > side
    return cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def _caption(width: int, lines: list[str], colour: tuple[int, int, int]) -> np.ndarray:
    strip = np.full((18 * len(lines) + 6, width, 3), 255, np.uint8)
    for number, text in enumerate(lines):
        cv2.putText(strip, text, (6, 18 * number + 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return strip


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else "..." + text[-(limit - 3) :]


def draw_sheet(path: str | Path, rows: list[PairRow], image: Callable[[int], np.ndarray], limit: int = SHEET_PAIRS) -> int:
    """A PNG with one row per flagged pair: image a | image b | b moved onto a by the fitted transform,
    over a (a in magenta, b in green: what matches turns grey). Returns the number of pairs drawn."""
    from mobiledr.io import atomic_write_bytes

    chosen = sorted(rows, key=lambda r: not r.crosses_splits)[:limit]
    width = 3 * SHEET_TILE
    blocks = [_caption(width, [f"{len(rows)} flagged near-duplicate pairs, {sum(r.crosses_splits for r in rows)} across splits; "
                               f"{len(chosen)} shown", "a | b | b moved onto a (magenta a, green b)"], (0, 0, 0))]  # fmt: skip
    for number, r in enumerate(chosen, start=1):
        c, m = r.candidate, r.candidate.match
        a, b = _tile(image(c.i)), _tile(image(c.j))
        moved = np.ascontiguousarray(b[:, ::-1]) if m.mirrored else b
        inverse = cv2.invertAffineTransform(np.array(m.matrix, np.float64).reshape(2, 3))
        moved = cv2.warpAffine(moved, inverse, (VERIFY_SIDE, VERIFY_SIDE))
        grey_a, grey_b = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(moved, cv2.COLOR_RGB2GRAY)
        overlay = np.dstack([grey_a, grey_b, grey_a])
        panels = np.concatenate([cv2.resize(x, (SHEET_TILE, SHEET_TILE), interpolation=cv2.INTER_AREA) for x in (a, b, overlay)], axis=1)
        colour = (200, 0, 0) if r.crosses_splits else (0, 110, 0)
        lines = [
            f"{number}. {_shorten(r.key_a, 34)} ({r.split_a})",
            f"   ~ {_shorten(r.key_b, 34)} ({r.split_b})",
            f"{c.rule}: {m.inliers} inliers of {m.matches}, rot {m.rotation:.0f} deg, scale {m.scale:.2f}{', mirrored' if m.mirrored else ''}",
        ]
        blocks.append(_caption(width, lines, colour))
        blocks.append(panels)
    sheet = np.concatenate(blocks, axis=0)
    ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"{path}: PNG encoding failed")
    atomic_write_bytes(path, png.tobytes())
    return len(chosen)
