"""PSNR and SSIM against scikit-image, and the image rate-distortion sweep."""

import math

import numpy as np
import pytest
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from quantscope.signal.image import reduce_bit_depth
from quantscope.signal.image_metrics import image_quality, image_rate_distortion, psnr, ssim

TOL = 1e-10  # stated agreement with skimage (measured ~4e-15)


@pytest.fixture(scope="module")
def pair():
    a = np.ascontiguousarray(data.astronaut()[:96, :120])
    return a, reduce_bit_depth(a, 3, "bayer").image


def test_psnr_matches_skimage(pair):
    a, b = pair
    assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), rel=1e-12)
    assert psnr(a, a) == math.inf


@pytest.mark.parametrize("channel", [None, 0])
def test_gaussian_ssim_matches_skimage(pair, channel):
    a, b = pair
    if channel is not None:
        a, b = np.ascontiguousarray(a[:, :, channel]), np.ascontiguousarray(b[:, :, channel])
    ref = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                data_range=255, channel_axis=None if a.ndim == 2 else -1)
    assert abs(ssim(a, b) - ref) <= TOL


def test_uniform_ssim_and_float_images_match_skimage(pair):
    a, b = pair
    ref = structural_similarity(a, b, data_range=255, channel_axis=-1)
    assert abs(ssim(a, b, gaussian_weights=False) - ref) <= TOL
    x = a[:, :, 1].astype(np.float64) / 255
    y = np.clip(x + np.random.default_rng(0).normal(0, 0.05, x.shape), 0, 1)
    ref = structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
    assert abs(ssim(x, y, data_range=1.0) - ref) <= TOL


def test_ssim_properties(pair):
    a, b = pair
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert ssim(a, b) == pytest.approx(ssim(b, a), abs=1e-12)
    value, smap = ssim(a, b, full=True)
    assert smap.shape == a.shape and -1 <= value < 1


def test_metric_bad_input(pair):
    a, b = pair
    with pytest.raises(ValueError, match="smaller than"):
        ssim(a[:8, :8], b[:8, :8])
    with pytest.raises(ValueError, match="must match"):
        psnr(a, b[:10])
    with pytest.raises(ValueError, match="empty"):
        psnr(np.zeros((0, 3)), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="data_range"):
        psnr(a, b, data_range=0)
    with pytest.raises(ValueError, match="win_size"):
        ssim(a, b, gaussian_weights=False, win_size=4)
    q = image_quality(a[:8, :8], b[:8, :8])
    assert math.isnan(q.ssim) and q.psnr_db > 0


def test_rate_distortion_sweeps_follow_theory(pair):
    a = pair[0]
    bits = image_rate_distortion(a, "bits", [2, 3, 4, 5, 6])
    for p in bits.points:
        if p.setting >= 3:  # the additive-noise model holds once the step is small against the detail
            assert 0.75 <= p.mse / p.uniform_model_mse <= 1.35, p
    pal = image_rate_distortion(a, "palette", [4, 16, 64])
    jpg = image_rate_distortion(a, "jpeg", [10, 50, 90])
    for curve in (bits, pal, jpg):
        mses = [p.mse for p in curve.points]
        assert mses == sorted(mses, reverse=True), curve.kind
    # transform coding exploits the correlation of neighbouring pixels: it beats the memoryless Gaussian D(R)
    assert all(p.mse < p.gaussian_rd_mse for p in jpg.points)
    assert pal.points[1].rate == pytest.approx(4 / 3)
    with pytest.raises(ValueError, match="kind"):
        image_rate_distortion(a, "octree")
