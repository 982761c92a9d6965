"""Image quality metrics: PSNR and SSIM.

* PSNR = 10·log10(R² / MSE) dB, R the data range (255 for 8-bit images), MSE over every pixel and
  channel in float64; inf for identical images.
* SSIM (Wang, Bovik, Sheikh, Simoncelli 2004): local means, variances and covariance under a window,
  S = (2μxμy + C1)(2σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)), C1 = (0.01R)², C2 = (0.03R)²,
  averaged over the pixels at least half a window from the border, then over channels. The default is
  the paper's definition: an 11x11 Gaussian window of σ = 1.5 (truncated at 3.5σ) with weighted
  (population) moments; ``gaussian_weights=False`` gives a 7x7 uniform window with sample covariance.
  Borders are mirrored (d c b a | a b c d). Matches ``skimage.metrics.structural_similarity`` with the
  same settings (``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=R``, or its
  defaults) to within 1e-10 (tested).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


def _pair(reference: Any, test: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(reference), np.asarray(test)
    for name, v in (("reference", a), ("test", b)):
        if not (np.issubdtype(v.dtype, np.integer) or np.issubdtype(v.dtype, np.floating)) or v.dtype == np.bool_:
            raise TypeError(f"{name} must be a numeric image array, got dtype {v.dtype}")
        if v.ndim not in (2, 3):
            raise ValueError(f"{name} must have shape (H, W) or (H, W, C), got {v.shape}")
        if v.size == 0:
            raise ValueError(f"{name} is empty (shape {v.shape}); nothing to compare")
    if a.shape != b.shape:
        raise ValueError(f"reference has shape {a.shape} but test has shape {b.shape}; they must match")
    return a.astype(np.float64), b.astype(np.float64)


def _check_range(data_range: float) -> float:
    if not isinstance(data_range, (int, float)) or isinstance(data_range, bool) or not data_range > 0:
        raise ValueError(f"data_range must be a positive number (255 for uint8 images), got {data_range!r}")
    return float(data_range)


def psnr(reference: Any, test: Any, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB (inf when the images are identical)."""
    a, b = _pair(reference, test)
    r = _check_range(data_range)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(r * r / mse)


def gaussian_window(sigma: float = 1.5, truncate: float = 3.5) -> np.ndarray:
    """Normalised 1-D Gaussian weights of radius int(truncate·σ + 0.5) (11 taps for σ = 1.5)."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * x * x / (sigma * sigma))
    return w / w.sum()


def _filter(stack: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Separable correlation of every (H, W) plane of ``stack`` (..., H, W) with the 1-D weights ``w``
    along both image axes, mirrored borders (scipy's "reflect": d c b a | a b c d)."""
    from scipy.ndimage import correlate1d

    return correlate1d(correlate1d(stack, w, axis=-2, mode="reflect"), w, axis=-1, mode="reflect")


def ssim(reference: Any, test: Any, data_range: float = 255.0, gaussian_weights: bool = True, sigma: float = 1.5,
         win_size: int | None = None, use_sample_covariance: bool | None = None, k1: float = 0.01, k2: float = 0.03,
         full: bool = False) -> float | tuple[float, np.ndarray]:
    """Mean structural similarity of two images (H, W) or (H, W, C) (channels last, averaged).

    Defaults: Wang et al.'s Gaussian window (σ = 1.5, 11x11) with population moments. With
    ``gaussian_weights=False``: a uniform ``win_size`` window (default 7) and, unless told otherwise,
    sample covariance (skimage's default). ``full=True`` also returns the SSIM map (H, W[, C]).
    Values lie in [-1, 1]; 1 means identical.
    """
    a, b = _pair(reference, test)
    r = _check_range(data_range)
    if gaussian_weights:
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma!r}")
        w = gaussian_window(sigma)
    else:
        size = 7 if win_size is None else win_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 3 or size % 2 == 0:
            raise ValueError(f"win_size must be an odd integer ≥ 3, got {win_size!r}")
        w = np.full(size, 1.0 / size)
    size = len(w)
    if min(a.shape[:2]) < size:
        raise ValueError(f"the images ({a.shape[0]}x{a.shape[1]}) are smaller than the {size}x{size} SSIM window; "
                         "use larger images or, with gaussian_weights=False, a smaller odd win_size")
    sample = (not gaussian_weights) if use_sample_covariance is None else bool(use_sample_covariance)
    cov_norm = size * size / (size * size - 1) if sample else 1.0
    if a.ndim == 2:
        a, b = a[:, :, None], b[:, :, None]
    # (5, C, H, W): x, y, x², y², xy filtered in one pass
    stack = np.stack([a, b, a * a, b * b, a * b]).transpose(0, 3, 1, 2)
    ux, uy, uxx, uyy, uxy = _filter(stack, w)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1, c2 = (k1 * r) ** 2, (k2 * r) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    pad = (size - 1) // 2
    inner = s[:, pad:s.shape[1] - pad, pad:s.shape[2] - pad]
    value = float(np.mean([inner[c].mean(dtype=np.float64) for c in range(inner.shape[0])]))
    if full:
        smap = s.transpose(1, 2, 0)
        return value, smap[:, :, 0] if np.ndim(reference) == 2 else smap
    return value


@dataclass(frozen=True)
class ImageQuality:
    """How close a quantized image is to the original: PSNR (dB), SSIM (Gaussian window), MSE and the
    largest absolute difference, in 8-bit units."""

    psnr_db: float
    ssim: float
    mse: float
    max_abs_error: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def image_quality(reference: Any, test: Any, data_range: float = 255.0) -> ImageQuality:
    """PSNR, SSIM, MSE and max |error| of ``test`` against ``reference`` (same shape). SSIM is left as
    nan for images smaller than its 11x11 window."""
    a, b = _pair(reference, test)
    e = a - b
    try:
        s = ssim(reference, test, data_range)
    except ValueError:
        if min(a.shape[:2]) >= 11:
            raise
        s = math.nan
    return ImageQuality(psnr(reference, test, data_range), float(s), float(np.mean(e * e)), float(np.abs(e).max()))


# ------------------------------------------------------------------------------- rate–distortion
RD_KINDS = ("bits", "palette", "jpeg")


@dataclass(frozen=True)
class ImageRDPoint:
    """One setting of an image quantizer: ``rate`` in bits per sample (per channel value), the measured
    MSE / PSNR / SSIM, the uniform scalar model at that rate ((255/(2^R - 1))²/12, None below 1 bit)
    and Shannon's Gaussian bound σ²·2^(-2R) for the image's variance σ²."""

    setting: int
    rate: float
    mse: float
    psnr_db: float
    ssim: float
    uniform_model_mse: float | None
    gaussian_rd_mse: float


@dataclass(frozen=True)
class ImageRDCurve:
    """A sweep of one image quantizer: ``kind`` is "bits" (settings = bits per channel), "palette"
    (settings = colours, rate log2(k)/C) or "jpeg" (settings = quality, rate = entropy estimate / C)."""

    kind: str
    variance: float
    points: tuple[ImageRDPoint, ...]

    COLUMNS = ("setting", "rate bits/sample", "MSE", "PSNR dB", "SSIM", "uniform Δ²/12", "σ²·2^(-2R)")

    def rows(self) -> list[list[Any]]:
        return [[p.setting, p.rate, p.mse, p.psnr_db, p.ssim, p.uniform_model_mse, p.gaussian_rd_mse]
                for p in self.points]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "variance": self.variance, "points": [asdict(p) for p in self.points]}


DEFAULT_SETTINGS = {"bits": (1, 2, 3, 4, 5, 6, 7), "palette": (2, 4, 8, 16, 32, 64, 128, 256),
                    "jpeg": (5, 10, 25, 50, 75, 90, 95)}


def image_rate_distortion(image: np.ndarray, kind: str, settings: Any = None, dither: str = "none",
                          method: str = "kmeans", space: str = "rgb",
                          on_step: Any = None) -> ImageRDCurve:
    """Sweep bit depth, palette size or JPEG quality over ``settings`` (defaults: ``DEFAULT_SETTINGS``)
    and measure distortion against rate beside the uniform Δ²/12 model and the Gaussian D(R) =
    σ²·2^(-2R) (``quantscope.error.theory.rate_distortion_mse``). The bits sweep runs through
    :func:`quantscope.signal.rate_distortion_sweep`. ``on_step(label)`` is called after each point."""
    from ..error.theory import rate_distortion_mse
    from .image import jpeg_quantize, reduce_bit_depth
    from .image_io import check_image
    from .palette import quantize_palette
    from .ratedistortion import rate_distortion_sweep

    img = check_image(image)
    if kind not in RD_KINDS:
        raise ValueError(f"kind must be one of {RD_KINDS}, got {kind!r}")
    values = [int(v) for v in (DEFAULT_SETTINGS[kind] if settings is None else settings)]
    channels = 1 if img.ndim == 2 else img.shape[2]
    var = float(img.astype(np.float64).var())

    def uniform(rate: float) -> float | None:
        return None if rate < 1 else (255.0 / (2.0**rate - 1)) ** 2 / 12

    outputs: dict[int, tuple[np.ndarray, float]] = {}
    if kind == "bits":
        def quantize(x: np.ndarray, b: int) -> np.ndarray:
            out = reduce_bit_depth(x.astype(np.uint8), b, dither).image
            outputs[b] = (out, float(b))
            return out

        rate_distortion_sweep(img, quantize, values, step=lambda b: 255.0 / (2**b - 1), name="bit depth",
                              on_step=on_step)
    for v in values:
        if kind == "palette":
            r = quantize_palette(img, v, method=method, space=space)
            outputs[v] = (r.image, r.bits_per_pixel / channels)
        elif kind == "jpeg":
            j = jpeg_quantize(img, v)
            outputs[v] = (j.image, j.bits_per_pixel / channels)
        if kind != "bits" and on_step:
            on_step(f"{kind} {v}")
    points = []
    for v in values:
        out, rate = outputs[v]
        q = image_quality(img, out)
        points.append(ImageRDPoint(v, rate, q.mse, q.psnr_db, q.ssim, uniform(rate), rate_distortion_mse(var, rate)))
    return ImageRDCurve(kind, var, tuple(points))
