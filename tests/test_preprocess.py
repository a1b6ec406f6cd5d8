"""Preprocessing: decoding, circle crop, the photometric module and the spec."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from mobiledr.data.geometry import ImageRejected, decode, find_disc, geometric, load_geometric
from mobiledr.data.geometry import resize_square
from mobiledr.data.photometric import MIN_LOW_SIGMA, Photometric, opencv_reference
from mobiledr.data.samples import sample_photographs
from mobiledr.data.synth import generate_fundus
from mobiledr.data.spec import PreprocessSpec
from mobiledr.errors import MobiledrError


def disc_frame(
    width: int = 900, height: int = 640, cx: float = 450, cy: float = 320, r: float = 290, brightness: float = 1.0,
    noise: float = 0.0, notch: bool = False, seed: int = 0,
) -> np.ndarray:
    """A textured bright disc on black at a known position, JPEG-compressed like a camera frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    texture = cv2.GaussianBlur(rng.uniform(0, 1, (height, width)).astype(np.float32), (0, 0), 6)
    base = np.stack([150 + 60 * texture, 70 + 30 * texture, 30 + 10 * texture], axis=2) * brightness
    image = np.where(inside[..., None], base, 0.0)
    if notch:  # a rectangular notch cut into the rim at the top, as many cameras have
        image[int(cy - r) - 2 : int(cy - r + 0.06 * r), int(cx - 0.05 * r) : int(cx + 0.05 * r)] = 0
    if noise:
        image = image + rng.normal(0, noise, image.shape)
    image = np.clip(image, 0, 255).astype(np.uint8)
    ok, jpg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return cv2.imdecode(jpg, cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize(
    "case",
    [
        {},
        {"noise": 4.0},
        {"notch": True},
        {"brightness": 0.12},
        {"cx": 300, "cy": 360, "r": 250},
        {"cx": 520, "cy": 330, "r": 360},  # taller than the frame: cut off at top and bottom
        {"notch": True, "noise": 3.0, "brightness": 0.2, "cx": 380},
    ],
)
def test_crop_box_within_one_percent(case: dict) -> None:
    params = {"width": 900, "height": 640, "cx": 450, "cy": 320, "r": 290, **case}
    frame = disc_frame(**params)
    result = geometric(frame, PreprocessSpec(size=128))
    cx, cy, r = params["cx"], params["cy"], params["r"]
    expected = (max(0, cx - r), max(0, cy - r), min(900, cx + r), min(640, cy + r))
    tolerance = 0.01 * max(900, 640)
    assert np.abs(np.array(result.box) - np.array(expected)).max() <= tolerance, (result.box, expected)
    assert result.image.shape == (128, 128, 3) and result.image.dtype == np.uint8


def test_synthetic_fundus_crop_matches_ground_truth() -> None:
    from mobiledr.data.synth import generate_fundus

    rng = np.random.default_rng(3)
    for grade in range(5):
        for notch in (False, True):
            image, info = generate_fundus(grade, 320, rng, eye="left" if grade % 2 else "right", notch=notch)
            box = geometric(image, PreprocessSpec(size=64)).box
            tolerance = 0.01 * max(image.shape[:2])
            assert np.abs(np.array(box) - np.array(info.crop_box)).max() <= tolerance, (grade, notch, box, info.crop_box)


def test_black_image_is_rejected_clearly() -> None:
    with pytest.raises(ImageRejected, match="no fundus disc found"):
        find_disc(np.zeros((300, 400, 3), np.uint8))
    with pytest.raises(ImageRejected, match="no fundus disc found"):
        find_disc(np.random.default_rng(0).integers(0, 5, (300, 400, 3)).astype(np.uint8))


def test_oct_resizes_without_crop() -> None:
    scan = np.random.default_rng(0).integers(0, 255, (496, 512, 3)).astype(np.uint8)
    result = geometric(scan, PreprocessSpec.for_oct(224))
    assert result.box == (0, 0, 512, 496) and result.circle is None
    assert result.image.shape == (224, 224, 3)


def _save(img: Image.Image, path: Path, **kwargs) -> Path:
    img.save(path, **kwargs)
    return path


def test_decode_modes(tmp_path: Path) -> None:
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[:, :10] = (200, 100, 50)
    grey = decode(_save(Image.fromarray(rgb[:, :, 0]), tmp_path / "grey.png"))
    assert grey.shape == (20, 30, 3) and grey[0, 0].tolist() == [200, 200, 200]
    rgba = np.dstack([rgb, np.full((20, 30), 255, np.uint8)])
    rgba[:, 20:, 3] = 0  # transparent part composites on black
    out = decode(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "rgba.png"))
    assert out[0, 0].tolist() == [200, 100, 50] and out[0, 25].tolist() == [0, 0, 0]
    sixteen = (rgb[:, :, 0].astype(np.uint16) * 257)
    out = decode(_save(Image.fromarray(sixteen), tmp_path / "deep.png"))
    assert out[0, 0].tolist() == [200, 200, 200]
    cmyk = decode(_save(Image.fromarray(rgb).convert("CMYK"), tmp_path / "cmyk.jpg", quality=95))
    assert np.abs(cmyk[0, 0].astype(int) - [200, 100, 50]).max() < 12
    assert cmyk.dtype == np.uint8 and cmyk.shape == (20, 30, 3)


def test_decode_honours_exif_orientation(tmp_path: Path) -> None:
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, :20] = 255  # left half white
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif, quality=95)
    out = decode(path)
    assert out.shape == (40, 20, 3)
    assert out[:20].mean() > 200 and out[20:].mean() < 50  # the white half is now on top


def test_photometric_ben_graham_flat_image_is_128() -> None:
    stage = Photometric(PreprocessSpec(size=96))
    flat = torch.full((2, 3, 96, 96), 93.0)
    torch.testing.assert_close(stage.enhance(flat), torch.full_like(flat, 128.0), atol=1e-3, rtol=0)


@pytest.mark.parametrize("size", [128, 256, 512])
def test_photometric_blur_stays_within_bound_of_the_exact_gaussian(size: int) -> None:
    """The reduced-resolution blur (XNNPACK-friendly) against OpenCV's exact Gaussian: inside the mask
    the Ben Graham output is off by at most 0.5 grey levels on average and 3 at worst, on synthetic
    photographs and on real ones; the normalised output is exactly that image normalised."""
    spec = PreprocessSpec(size=size)
    stage = Photometric(spec)
    rng = np.random.default_rng(size)
    images = [geometric(generate_fundus(grade, 400, rng)[0], spec).image for grade in (0, 2, 4)]
    images += [resize_square(rgb, size) for _, rgb in sample_photographs()]
    for image in images:
        expected, inside = opencv_reference(image, spec)
        tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        ours = stage.enhance(tensor)[0].permute(1, 2, 0).numpy()
        error = np.abs(ours - expected)[inside]
        assert error.mean() <= 0.5 and error.max() <= 3.0, (error.mean(), error.max())
        np.testing.assert_array_equal(ours[~inside], 128.0)
        normalised = stage(tensor)[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(normalised, (ours / 255 - np.array(spec.mean)) / np.array(spec.std), atol=1e-4)
    assert stage.low_sigma >= MIN_LOW_SIGMA or stage.factor == 1


def test_photometric_oct_zscore() -> None:
    stage = Photometric(PreprocessSpec.for_oct(64))
    x = torch.rand(2, 3, 64, 64) * 255
    out = stage(x)
    assert out.shape == (2, 3, 64, 64)
    torch.testing.assert_close(out.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.std(dim=(1, 2, 3)), torch.ones(2), atol=1e-3, rtol=0)
    assert torch.equal(out[:, 0], out[:, 1])


def test_spec_round_trip_and_validation() -> None:
    spec = PreprocessSpec(size=256, mask_radius=0.95)
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec
    assert spec.blur_sigma == pytest.approx(256 / 2 / 30)
    assert PreprocessSpec(size=256, ben_graham=False).geometric_key == spec.geometric_key
    assert PreprocessSpec(size=512).geometric_key != spec.geometric_key
    with pytest.raises(MobiledrError, match="mode must be one of"):
        PreprocessSpec(mode="xray")
    with pytest.raises(MobiledrError, match="unknown key"):
        PreprocessSpec.from_dict({"size": 3, "gamma": 1})


def test_load_geometric_on_file(tmp_path: Path) -> None:
    path = tmp_path / "frame.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(disc_frame(), cv2.COLOR_RGB2BGR))
    result = load_geometric(path, PreprocessSpec(size=64))
    assert result.original_size == (900, 640)
    # The disc is centred in the output: the corners are black, the centre bright.
    assert result.image[0, 0].max() < 10 and result.image[32, 32].max() > 100
