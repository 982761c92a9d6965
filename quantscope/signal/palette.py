"""Colour palette quantization: k-means (Lloyd) and median cut, in RGB or a perceptual colour space.

A palette of k colours stores an image as log2(k) bits per pixel plus the palette. Both methods
work on the pixel vectors in ``space``:

* ``"rgb"``: the 0..255 sRGB values themselves; k-means then minimises the RGB mean squared error,
  the quantity PSNR measures.
* ``"oklab"`` (Ottosson 2020) or ``"cielab"`` (CIE 1976 L*a*b*, D65): perceptual spaces where
  Euclidean distance follows perceived colour difference (ΔE); better looking palettes, slightly
  lower RGB PSNR.

Median cut (Heckbert 1982): start with one box holding every pixel and repeatedly split the box with
the largest squared error along its widest-spread axis at the median; a colour is the mean of a box.
k-means starts from the median-cut palette (or k-means++), runs Lloyd iterations on a seeded random
sample of the pixels, then every pixel goes to its nearest palette colour (a torch matmul:
|x - c|² = |x|² - 2x·c + |c|², chunked). Lloyd iterations never increase the sample's squared error.
Results are deterministic for a given ``seed``. Grey images are quantized on their intensity
(``space`` does not apply).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from .image_io import check_image

SPACES = ("rgb", "oklab", "cielab")
METHODS = ("kmeans", "mediancut")
INITS = ("mediancut", "kmeans++")
PIL_METHODS = ("mediancut", "maxcoverage", "fastoctree", "libimagequant")

# Ottosson's OKLab: linear sRGB -> LMS, then cube roots -> Lab
_OK_M1 = torch.tensor([[0.4122214708, 0.5363325363, 0.0514459929], [0.2119034982, 0.6806995451, 0.1073969566],
                       [0.0883024619, 0.2817188376, 0.6299787005]], dtype=torch.float64)
_OK_M2 = torch.tensor([[0.2104542553, 0.7936177850, -0.0040720468], [1.9779984951, -2.4285922050, 0.4505937099],
                       [0.0259040371, 0.7827717662, -0.8086757660]], dtype=torch.float64)
# CIE XYZ (D65) from linear sRGB, and the D65 white point (2° observer)
_XYZ_FROM_RGB = torch.tensor([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                              [0.019334, 0.119193, 0.950227]], dtype=torch.float64)
_D65 = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)


def srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    """sRGB values in 0..1 to linear light (IEC 61966-2-1)."""
    return torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    """Linear light to sRGB values in 0..1 (inverse of :func:`srgb_to_linear`)."""
    c = c.clamp_min(0)
    return torch.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


@lru_cache(maxsize=1)
def _srgb_lut() -> torch.Tensor:
    return srgb_to_linear(torch.arange(256, dtype=torch.float64) / 255.0)


def _cbrt(t: torch.Tensor) -> torch.Tensor:
    return torch.sign(t) * t.abs() ** (1 / 3)


def rgb_to_space(rgb: Any, space: str) -> torch.Tensor:
    """RGB vectors (N, 3), 0..255 (uint8 or float) -> float64 coordinates in ``space`` (rgb is returned as is)."""
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    arr = np.asarray(rgb)
    if space == "rgb":
        return torch.from_numpy(arr.astype(np.float64))
    if arr.dtype == np.uint8:  # a 256-entry lookup table instead of a power per value
        lin = _srgb_lut()[torch.from_numpy(arr.astype(np.int64))]
    else:
        lin = srgb_to_linear(torch.from_numpy(arr.astype(np.float64)) / 255.0)
    if space == "oklab":
        return _cbrt(lin @ _OK_M1.T) @ _OK_M2.T
    xyz = (lin @ _XYZ_FROM_RGB.T) / _D65
    f = torch.where(xyz > 0.008856, _cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], dim=1)


def space_to_rgb(v: torch.Tensor, space: str) -> torch.Tensor:
    """Inverse of :func:`rgb_to_space`: float64 RGB 0..255 (neither rounded nor clipped)."""
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    v = v.to(torch.float64)
    if space == "rgb":
        return v
    if space == "oklab":
        lin = (v @ torch.linalg.inv(_OK_M2).T) ** 3 @ torch.linalg.inv(_OK_M1).T
    else:
        fy = (v[:, 0] + 16) / 116
        f = torch.stack([fy + v[:, 1] / 500, fy, fy - v[:, 2] / 200], dim=1)
        xyz = torch.where(f > 0.2068966, f**3, (f - 16.0 / 116.0) / 7.787) * _D65
        lin = xyz @ torch.linalg.inv(_XYZ_FROM_RGB).T
    return linear_to_srgb(lin) * 255.0


def nearest(points: torch.Tensor, centers: torch.Tensor, chunk: int = 1 << 16) -> torch.Tensor:
    """Index (int64, (N,)) of the nearest center (squared Euclidean) for every row of ``points``; ties
    go to the lower index. Computed as argmin(|c|² - 2x·c) in chunks of ``chunk`` rows."""
    pts = points.to(torch.float32)
    ct = centers.to(torch.float32).T.contiguous()
    cc = (ct * ct).sum(0)
    out = torch.empty(pts.shape[0], dtype=torch.int64)
    for i in range(0, pts.shape[0], chunk):
        out[i:i + chunk] = torch.addmm(cc, pts[i:i + chunk], ct, alpha=-2).argmin(1)
    return out


def median_cut(points: torch.Tensor, k: int) -> torch.Tensor:
    """Median-cut palette of ``points`` (N, C): at most ``k`` box means (float64, (k', C)); fewer when
    the points have fewer than k distinct values. Splits the box with the largest squared error along
    its axis of largest variance, between the distinct values next to the median."""
    pts = np.asarray(points.to(torch.float64))

    def sse(b: np.ndarray) -> float:  # 0 for a box of identical points (not rounding noise of the mean)
        if b.shape[0] < 2 or not bool((b.max(0) > b.min(0)).any()):
            return 0.0
        return float(((b - b.mean(0)) ** 2).sum())

    boxes, errs = [pts], [sse(pts)]
    while len(boxes) < k:
        i = int(np.argmax(errs))
        if errs[i] <= 0:
            break
        b = boxes[i]
        axis = int(np.where(b.max(0) > b.min(0), b.var(0), -1.0).argmax())
        b = b[np.argsort(b[:, axis], kind="stable")]
        vals = b[:, axis]
        cut = int(np.searchsorted(vals, vals[b.shape[0] // 2], side="left"))
        if cut == 0:  # the median is the smallest value: cut after its run instead
            cut = int(np.searchsorted(vals, vals[0], side="right"))
        boxes[i:i + 1] = [b[:cut], b[cut:]]
        errs[i:i + 1] = [sse(b[:cut]), sse(b[cut:])]
    return torch.from_numpy(np.stack([b.mean(0) for b in boxes]))


def kmeans_pp(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): centers drawn with probability ∝ D(x)²."""
    pts = points.to(torch.float64)
    first = int(torch.randint(pts.shape[0], (1,), generator=generator))
    centers = [pts[first]]
    d2 = ((pts - pts[first]) ** 2).sum(1)
    for _ in range(1, k):
        if float(d2.sum()) <= 0:
            break
        j = int(torch.multinomial(d2 / d2.sum(), 1, generator=generator))
        centers.append(pts[j])
        d2 = torch.minimum(d2, ((pts - pts[j]) ** 2).sum(1))
    return torch.stack(centers)


def lloyd(points: torch.Tensor, centers: torch.Tensor, iters: int) -> tuple[torch.Tensor, int]:
    """Lloyd iterations from ``centers``; empty clusters take the points farthest from their center.
    Stops early when no assignment changes. Returns (centers float64, iterations run)."""
    pts = points.to(torch.float64)
    c = centers.to(torch.float64).clone()
    k, dim = c.shape
    labels = None
    done = 0
    for it in range(1, iters + 1):
        done = it
        new = nearest(pts, c)
        if labels is not None and bool(torch.equal(new, labels)):
            break
        labels = new
        counts = torch.bincount(labels, minlength=k).to(torch.float64)
        sums = torch.stack([torch.bincount(labels, weights=pts[:, j], minlength=k) for j in range(dim)], 1)
        empty = counts == 0
        c = torch.where(empty[:, None], c, sums / counts.clamp_min(1)[:, None])
        if bool(empty.any()):
            far = torch.argsort(((pts - c[labels]) ** 2).sum(1), descending=True, stable=True)
            c[empty] = pts[far[: int(empty.sum())]]
    return c, done


@dataclass(frozen=True)
class PaletteResult:
    """A palette quantization: ``image`` (uint8, input shape), ``indices`` (int64 (H, W)), ``palette``
    (uint8 (k, C) with k ≤ the colours asked for), the method, the space and the Lloyd iterations run."""

    image: np.ndarray = field(repr=False)
    indices: np.ndarray = field(repr=False)
    palette: np.ndarray = field(repr=False)
    method: str
    space: str
    colors: int
    iterations: int = 0

    @property
    def bits_per_pixel(self) -> float:
        """log2 of the palette size (what an index costs, the palette itself not counted)."""
        return float(np.log2(max(len(self.palette), 1)))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "space": self.space, "colors": self.colors, "palette_size": len(self.palette),
                "iterations": self.iterations, "bits_per_pixel": self.bits_per_pixel,
                "palette": self.palette.tolist()}


def _check_colors(colors: Any) -> int:
    if isinstance(colors, bool) or not isinstance(colors, (int, np.integer)):
        raise TypeError(f"colors must be an integer from 2 to 256, got {type(colors).__name__} {colors!r}")
    if not 2 <= int(colors) <= 256:
        raise ValueError(f"colors (the palette size) must be from 2 to 256, got {colors}")
    return int(colors)


def quantize_palette(image: np.ndarray, colors: int, method: str = "kmeans", space: str = "oklab",
                     sample: int | None = 20_000, iters: int = 12, init: str = "mediancut",
                     seed: int = 0) -> PaletteResult:
    """Reduce ``image`` to a palette of at most ``colors`` (2..256) colours.

    ``method``: "kmeans" or "mediancut"; ``space``: "rgb" (minimises RGB MSE, best PSNR), "oklab" or
    "cielab" (perceptual); ``sample``: pixels the palette is fitted on (None = all); ``iters``: Lloyd
    iterations at most; ``init``: "mediancut" or "kmeans++"; ``seed``: the sample and k-means++ draws.
    Every pixel is then mapped to its nearest palette colour in ``space``.
    """
    img = check_image(image)
    k = _check_colors(colors)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int) or sample < 1):
        raise ValueError(f"sample must be a positive number of pixels or None (all), got {sample!r}")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 0:
        raise ValueError(f"iters must be a non-negative integer, got {iters!r}")
    grey = img.ndim == 2
    space_used = "grey" if grey else space
    flat = img.reshape(-1, 1 if grey else 3)
    n = flat.shape[0]
    gen = torch.Generator().manual_seed(seed)
    if sample is not None and n > sample:
        idx = torch.randint(n, (sample,), generator=gen).numpy()
        fit_rgb = flat[idx]
    else:
        fit_rgb = flat
    conv = "rgb" if grey else space
    fit = rgb_to_space(fit_rgb, conv)
    centers = median_cut(fit, k) if init == "mediancut" or method == "mediancut" else kmeans_pp(fit, k, gen)
    iterations = 0
    if method == "kmeans" and iters > 0:
        centers, iterations = lloyd(fit, centers, iters)
    rgb = space_to_rgb(centers, conv)
    palette = np.unique(np.clip(np.rint(rgb.numpy()), 0, 255).astype(np.uint8), axis=0)
    table = rgb_to_space(palette, conv)
    if conv == "rgb":
        pixels = torch.from_numpy(flat).to(torch.float32)
    else:
        pixels = rgb_to_space(flat, conv).to(torch.float32)
    labels = nearest(pixels, table)
    out = palette[labels.numpy()].reshape(img.shape)
    return PaletteResult(out, labels.numpy().reshape(img.shape[:2]), palette, method, space_used, k, iterations)


def pil_methods() -> tuple[str, ...]:
    """The PIL ``Image.quantize`` methods this Pillow supports (libimagequant only when compiled in)."""
    from PIL import features

    return tuple(m for m in PIL_METHODS if m != "libimagequant" or features.check("libimagequant"))


def pil_quantize(image: np.ndarray, colors: int, method: str = "mediancut") -> PaletteResult:
    """Pillow's ``Image.quantize(colors, method)`` (no dithering, as Pillow does without a palette),
    as a :class:`PaletteResult` for side-by-side comparisons. Grey images use Pillow's default."""
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover
        raise ImportError("comparing with PIL needs Pillow: pip install pillow") from exc
    img = check_image(image)
    k = _check_colors(colors)
    if method not in PIL_METHODS:
        raise ValueError(f"PIL method must be one of {PIL_METHODS}, got {method!r}")
    if method not in pil_methods():
        raise ValueError(f"this Pillow was built without {method}; available: {', '.join(pil_methods())}")
    rgb = img if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)
    q = Image.fromarray(rgb).quantize(k, method=getattr(Image.Quantize, method.upper()))
    indices = np.asarray(q, dtype=np.int64)
    pal = np.asarray(q.getpalette(), dtype=np.uint8).reshape(-1, 3)[: int(indices.max()) + 1]
    out = pal[indices]
    if img.ndim == 2:
        out, pal = out[:, :, 0], pal[:, :1]
    return PaletteResult(out, indices, pal, f"PIL {method}", "rgb", k)
