"""Palette quantization: colour spaces, median cut, k-means, nearest mapping, and PIL's methods."""

import numpy as np
import pytest
import torch
from skimage import color, data

from quantscope.signal.image_metrics import psnr
from quantscope.signal.palette import (
    median_cut,
    nearest,
    pil_methods,
    pil_quantize,
    quantize_palette,
    rgb_to_space,
    space_to_rgb,
)

PIXELS = np.random.default_rng(0).integers(0, 256, (4000, 3)).astype(np.uint8)


@pytest.fixture(scope="module")
def crop():
    return np.ascontiguousarray(data.chelsea()[80:208, 150:278])


def test_cielab_matches_skimage_and_spaces_round_trip():
    ours = rgb_to_space(PIXELS, "cielab").numpy()
    ref = color.rgb2lab(PIXELS[None].astype(np.float64) / 255)[0]
    assert np.abs(ours - ref).max() < 1e-9
    for space in ("rgb", "oklab", "cielab"):
        back = space_to_rgb(rgb_to_space(PIXELS, space), space).numpy()
        assert np.abs(back - PIXELS).max() < 1e-8, space
    white = rgb_to_space(np.array([[255, 255, 255]], np.uint8), "oklab")[0]
    assert torch.allclose(white, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), atol=1e-6)  # Ottosson


def test_nearest_is_the_brute_force_argmin():
    pts = torch.from_numpy(PIXELS.astype(np.float32))
    centers = torch.rand(37, 3, generator=torch.Generator().manual_seed(1)) * 255
    d = ((PIXELS[:, None, :].astype(np.float64) - centers.numpy()[None].astype(np.float64)) ** 2).sum(-1)
    got = nearest(pts, centers, chunk=1000).numpy()
    rows = np.arange(len(d))
    assert np.allclose(d[rows, got], d.min(1), rtol=0, atol=1e-2)  # float32 distances: ties within rounding


@pytest.mark.parametrize("method", ["kmeans", "mediancut"])
@pytest.mark.parametrize("space", ["rgb", "oklab", "cielab"])
def test_few_colours_are_reproduced_exactly(method, space):
    colours = np.array([[0, 0, 0], [255, 0, 0], [12, 200, 40], [90, 90, 250], [255, 255, 255]], np.uint8)
    idx = np.random.default_rng(3).integers(0, 5, (40, 30))
    img = colours[idx]
    r = quantize_palette(img, 8, method=method, space=space)
    assert len(r.palette) == 5 and r.colors == 8
    assert np.array_equal(r.image, img)
    assert np.array_equal(r.palette[r.indices], img)


@pytest.mark.parametrize("space", ["rgb", "oklab"])
def test_every_pixel_gets_its_nearest_palette_colour(crop, space):
    r = quantize_palette(crop, 16, space=space)
    assert len(r.palette) <= 16 and r.image.dtype == np.uint8
    assert np.array_equal(r.palette[r.indices], r.image)
    px = rgb_to_space(crop.reshape(-1, 3), space).numpy()
    pal = rgb_to_space(r.palette, space).numpy()
    d = ((px[:, None] - pal[None]) ** 2).sum(-1)
    chosen = d[np.arange(len(d)), r.indices.reshape(-1)]
    assert np.all(chosen <= d.min(1) + 1e-4 * max(1.0, float(d.max())))


def test_lloyd_improves_on_its_median_cut_start(crop):
    km = quantize_palette(crop, 16, method="kmeans", space="rgb", sample=None)
    mc = quantize_palette(crop, 16, method="mediancut", space="rgb", sample=None)
    mse = [float(((crop.astype(float) - r.image) ** 2).mean()) for r in (km, mc)]
    assert mse[0] <= mse[1] + 0.75  # Lloyd never increases the error; 0.75 covers the 8-bit rounding of centres
    assert km.iterations >= 1


def test_median_cut_splits_the_worst_box():
    pts = torch.tensor([[0.0], [1.0], [100.0], [101.0], [300.0]], dtype=torch.float64)
    # first cut at the median (100): {0, 1} | {100, 101, 300}; the second box has the larger squared error
    # and is cut at its median (101): {100} | {101, 300}
    assert sorted(median_cut(pts, 3).reshape(-1).tolist()) == [0.5, 100.0, 200.5]
    assert len(median_cut(torch.zeros(10, 3), 4)) == 1  # nothing to split


def test_seeded_and_deterministic(crop):
    a = quantize_palette(crop, 8, sample=2000, seed=5, init="kmeans++")
    b = quantize_palette(crop, 8, sample=2000, seed=5, init="kmeans++")
    assert np.array_equal(a.image, b.image) and np.array_equal(a.palette, b.palette)


@pytest.mark.parametrize("colors", [8, 16, 64])
def test_rgb_kmeans_beats_every_pil_method_on_a_crop(crop, colors):
    ours = psnr(crop, quantize_palette(crop, colors, space="rgb").image)
    for m in pil_methods():
        r = pil_quantize(crop, colors, m)
        assert len(r.palette) <= colors
        assert ours > psnr(crop, r.image), (m, colors)


def test_grey_images_and_pil_grey(crop):
    g = np.ascontiguousarray(crop[:, :, 0])
    r = quantize_palette(g, 4)
    assert r.image.shape == g.shape and r.space == "grey" and len(r.palette) == 4
    p = pil_quantize(g, 4, "mediancut")
    assert p.image.shape == g.shape


def test_palette_bad_input(crop):
    with pytest.raises(ValueError, match="from 2 to 256"):
        quantize_palette(crop, 1)
    with pytest.raises(ValueError, match="from 2 to 256"):
        quantize_palette(crop, 257)
    with pytest.raises(TypeError, match="colors"):
        quantize_palette(crop, "16")
    with pytest.raises(ValueError, match="method"):
        quantize_palette(crop, 16, method="octree")
    with pytest.raises(ValueError, match="space"):
        quantize_palette(crop, 16, space="hsv")
    with pytest.raises(ValueError, match="init"):
        quantize_palette(crop, 16, init="random")
    with pytest.raises(ValueError, match="sample"):
        quantize_palette(crop, 16, sample=0)
    with pytest.raises(ValueError, match="PIL method"):
        pil_quantize(crop, 16, "kmeans")
