"""Image quantization: bit depth per channel (with ordered or error-diffusion dither) and JPEG-style
8x8 DCT coefficient quantization.

Images are uint8 arrays, (H, W) or (H, W, 3) (see :func:`quantscope.signal.image_io.check_image`).

* **Bit depth**: each channel value x in 0..255 is quantized to ``2**bits`` evenly spaced levels over
  0..255, step Δ = 255 / (2**bits - 1), codes from :func:`quantscope.quantize` (round to nearest even),
  reconstructed as round(code·Δ). Without dither |x - x̂| ≤ Δ/2 + 1/2 (the 1/2 is the rounding of the
  level to 8 bits). Ordered dither adds a Bayer threshold in (-Δ/2, Δ/2) before rounding:
  |x - x̂| < Δ + 1/2, and over each n x n tile of a flat region the mean is kept to 1/n² of a step.
  Floyd–Steinberg diffuses each pixel's error to its unquantized neighbours (7/16 right, 3/16, 5/16,
  1/16 below) in raster order; it bounds no single pixel but keeps local means.
* **JPEG-style**: RGB → YCbCr (JFIF, full range), level shift by 128, 8x8 orthonormal DCT-II,
  coefficients divided by the IJG tables (Annex K) scaled by quality exactly as libjpeg does
  (``jpeg_tables``), rounded half away from zero, multiplied back, inverse DCT. No chroma
  subsampling (4:4:4). By Parseval, each 8x8 block of each YCbCr plane is within ½·‖Q‖_F (L2) of the
  original before the final colour conversion and 8-bit rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .image_io import check_image

DITHERS = ("none", "bayer", "floyd-steinberg")

# ITU-T T.81 Annex K, tables K.1 (luminance) and K.2 (chrominance), natural (row-major) order
JPEG_LUMA = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55], [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62], [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], dtype=np.int64)
JPEG_CHROMA = np.full((8, 8), 99, dtype=np.int64)
JPEG_CHROMA[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]

# JFIF full-range RGB -> YCbCr (before the +128 offset of Cb, Cr)
_RGB_TO_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_YCC_TO_RGB = np.linalg.inv(_RGB_TO_YCC)


def _check_bits(bits: Any) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"bits must be an integer from 1 to 8, got {type(bits).__name__} {bits!r}")
    if not 1 <= int(bits) <= 8:
        raise ValueError(f"bits must be from 1 to 8 (levels per channel = 2**bits), got {bits}; "
                         "8 keeps the image unchanged, 1 leaves two levels per channel")
    return int(bits)


def bayer_matrix(n: int) -> np.ndarray:
    """The n x n Bayer index matrix (n a power of two, 2..64): a permutation of 0..n²-1 whose every
    prefix of thresholds is spread as evenly as possible over the tile."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2 or n > 64 or n & (n - 1):
        raise ValueError(f"bayer size must be a power of two from 2 to 64, got {n!r}")
    m = np.zeros((1, 1), dtype=np.int64)
    while m.shape[0] < n:
        m = np.block([[4 * m, 4 * m + 2], [4 * m + 3, 4 * m + 1]])
    return m


def floyd_steinberg_codes(values: np.ndarray, levels: int) -> np.ndarray:
    """Floyd–Steinberg error diffusion of ``values`` (float, shape (H, W) or (H, W, C), in units of
    the quantization step) onto the integer codes 0..levels-1; returns int64 codes of the same shape.

    Raster order, weights 7/16 (right), 3/16 (below left), 5/16 (below), 1/16 (below right); error
    pushed outside the image is dropped. Vectorised over anti-diagonal wavefronts x + 2y = t (every
    pixel a wavefront depends on lies on an earlier one); the error terms reach each pixel in the same
    order as in a plain raster loop, so the result is bit-identical to it.
    """
    v = np.asarray(values, dtype=np.float64)
    squeeze = v.ndim == 2
    if squeeze:
        v = v[:, :, None]
    h, w, c = v.shape
    err = np.zeros((h + 1, w + 2, c))  # column j + 1 holds pixel column j
    codes = np.zeros((h, w, c), dtype=np.int64)
    hi = float(levels - 1)
    for t in range(w + 2 * (h - 1)):
        ys = np.arange(max(0, (t - w + 2) // 2), min(h - 1, t // 2) + 1)
        xs = t - 2 * ys
        val = v[ys, xs] + err[ys, xs + 1]
        q = np.clip(np.rint(val), 0.0, hi)
        e = val - q
        codes[ys, xs] = q.astype(np.int64)
        err[ys + 1, xs] += e * (3 / 16)      # below left (before "right": the raster order)
        err[ys + 1, xs + 1] += e * (5 / 16)  # below
        err[ys + 1, xs + 2] += e * (1 / 16)  # below right
        err[ys, xs + 2] += e * (7 / 16)      # right
    return codes[:, :, 0] if squeeze else codes


@dataclass(frozen=True)
class BitDepthResult:
    """A bit-depth reduction: ``image`` (uint8 reconstruction), ``codes`` (uint8, 0..2**bits-1),
    ``step`` Δ in 8-bit units."""

    image: np.ndarray = field(repr=False)
    codes: np.ndarray = field(repr=False)
    bits: int
    dither: str
    step: float

    @property
    def bits_per_pixel(self) -> float:
        """Stored bits per pixel: bits x channels."""
        return float(self.bits * (1 if self.image.ndim == 2 else self.image.shape[2]))

    def to_dict(self) -> dict[str, Any]:
        return {"bits": self.bits, "dither": self.dither, "step": self.step, "bits_per_pixel": self.bits_per_pixel,
                "shape": list(self.image.shape)}


def reduce_bit_depth(image: np.ndarray, bits: int, dither: str = "none", bayer_size: int = 8) -> BitDepthResult:
    """Quantize every channel of ``image`` to ``bits`` bits (1..8); ``dither`` is "none", "bayer"
    (ordered, ``bayer_size`` x ``bayer_size`` matrix) or "floyd-steinberg" (error diffusion).
    Bounds in the module docstring."""
    import quantscope as qs

    img = check_image(image)
    bits = _check_bits(bits)
    if dither not in DITHERS:
        raise ValueError(f"dither must be one of {DITHERS}, got {dither!r}")
    levels = 2**bits
    step = 255.0 / (levels - 1)
    x = img.astype(np.float32)
    if dither == "floyd-steinberg":
        codes = floyd_steinberg_codes(img.astype(np.float64) / step, levels).astype(np.uint8)
    else:
        if dither == "bayer":
            m = bayer_matrix(bayer_size)
            n = m.shape[0]
            thr = ((m + 0.5) / (n * n) - 0.5).astype(np.float32) * np.float32(step)
            tile = np.tile(thr, (-(-img.shape[0] // n), -(-img.shape[1] // n)))[:img.shape[0], :img.shape[1]]
            x = x + (tile if img.ndim == 2 else tile[:, :, None])
        q = qs.quantize(x, qs.QuantSpec(qs.integer(bits, signed=False), rounding="nearest_even"),
                        qparams=qs.QParams(step))
        codes = q.codes.numpy().astype(np.uint8).reshape(img.shape)
    out = np.rint(codes.astype(np.float64) * step).astype(np.uint8)
    return BitDepthResult(out, codes, bits, dither, step)


# ----------------------------------------------------------------------------------- JPEG-style DCT
def rgb_to_ycbcr(image: np.ndarray) -> np.ndarray:
    """JFIF full-range YCbCr (float64, Y in 0..255, Cb and Cr centred on 128) of a uint8 RGB image."""
    img = check_image(image)
    if img.ndim != 3:
        raise ValueError(f"rgb_to_ycbcr needs an RGB image of shape (H, W, 3), got {img.shape}")
    ycc = img.astype(np.float64) @ _RGB_TO_YCC.T
    ycc[..., 1:] += 128.0
    return ycc


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr` (float64 in, float64 RGB out, not rounded or clipped)."""
    ycc = np.asarray(ycc, dtype=np.float64)
    if ycc.ndim != 3 or ycc.shape[2] != 3:
        raise ValueError(f"ycc must have shape (H, W, 3), got {ycc.shape}")
    shifted = ycc.copy()
    shifted[..., 1:] -= 128.0
    return shifted @ _YCC_TO_RGB.T


def _check_quality(quality: Any) -> int:
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)):
        raise TypeError(f"quality must be an integer from 1 to 100, got {type(quality).__name__} {quality!r}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be from 1 (smallest file) to 100 (finest tables), got {quality}")
    return int(quality)


def jpeg_tables(quality: int) -> tuple[np.ndarray, np.ndarray]:
    """The (luminance, chrominance) 8x8 quantization tables libjpeg uses at ``quality`` (1..100):
    scale = 5000/q for q < 50, else 200 - 2q; entry = clamp((base·scale + 50) // 100, 1, 255)."""
    q = _check_quality(quality)
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return tuple(np.clip((base * scale + 50) // 100, 1, 255) for base in (JPEG_LUMA, JPEG_CHROMA))  # type: ignore


def dct_matrix(n: int = 8) -> torch.Tensor:
    """Orthonormal DCT-II matrix D (float64): coefficients = D @ block @ D.T, block = D.T @ coefs @ D."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos((2 * i + 1) * k * math.pi / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d


def dct_quantize_plane(plane: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quantize one plane (float, (H, W), already level-shifted) in 8x8 DCT blocks with ``table``.

    Edges are padded by repeating the last row/column (as libjpeg does). Returns the reconstruction
    (float64, (H, W)) and the integer coefficient codes, int64 of shape (H8/8, W8/8, 8, 8).
    Guarantee: every full block's reconstruction error has L2 norm ≤ ½·‖table‖_F (Parseval).
    """
    from ..core.rounding import round_nearest_away

    p = np.asarray(plane, dtype=np.float64)
    h, w = p.shape
    p = np.pad(p, ((0, -h % 8), (0, -w % 8)), mode="edge")
    blocks = torch.from_numpy(p).reshape(p.shape[0] // 8, 8, p.shape[1] // 8, 8).permute(0, 2, 1, 3)
    d = dct_matrix(8)
    coefs = d @ blocks @ d.T
    qt = torch.from_numpy(np.asarray(table, dtype=np.float64))
    codes = round_nearest_away(coefs / qt)
    recon = d.T @ (codes * qt) @ d
    recon = recon.permute(0, 2, 1, 3).reshape(p.shape)[:h, :w]
    return recon.numpy(), codes.to(torch.int64).numpy()


def code_entropy_bits(codes: np.ndarray) -> float:
    """Total bits an ideal adaptive coder needs for DCT codes (shape (..., 8, 8)): the zeroth-order
    entropy of each of the 64 coefficient positions, times the number of blocks, summed."""
    flat = codes.reshape(-1, 64).astype(np.int64)
    if flat.shape[0] == 0:
        return 0.0
    flat = flat - flat.min()
    span = int(flat.max()) + 1
    counts = np.bincount((flat + span * np.arange(64)).reshape(-1), minlength=64 * span).reshape(64, span)
    p = counts[counts > 0] / flat.shape[0]
    return float(-(p * np.log2(p)).sum()) * flat.shape[0]


@dataclass(frozen=True)
class JpegResult:
    """JPEG-style quantization: ``image`` (uint8), the quality, the tables used, the coefficient codes
    per plane (Y, Cb, Cr or grey) and ``bits_per_pixel``, the entropy estimate of the codes (an ideal
    coder per coefficient position; a real JPEG Huffman coder spends somewhat more)."""

    image: np.ndarray = field(repr=False)
    quality: int
    luma_table: np.ndarray = field(repr=False)
    chroma_table: np.ndarray = field(repr=False)
    codes: tuple[np.ndarray, ...] = field(repr=False)
    bits_per_pixel: float

    def to_dict(self) -> dict[str, Any]:
        return {"quality": self.quality, "bits_per_pixel": self.bits_per_pixel,
                "luma_table": self.luma_table.tolist(), "chroma_table": self.chroma_table.tolist(),
                "shape": list(self.image.shape)}


def jpeg_quantize(image: np.ndarray, quality: int = 75) -> JpegResult:
    """JPEG-style lossy coding of ``image`` at ``quality`` 1..100 (no entropy coding, no subsampling);
    grey images use the luminance table only. See the module docstring for the guarantee."""
    img = check_image(image)
    luma, chroma = jpeg_tables(quality)
    planes = img.astype(np.float64)[:, :, None] if img.ndim == 2 else rgb_to_ycbcr(img)
    recon = np.empty_like(planes)
    codes = []
    for c in range(planes.shape[2]):
        r, k = dct_quantize_plane(planes[:, :, c] - 128.0, luma if c == 0 else chroma)
        recon[:, :, c] = r + 128.0
        codes.append(k)
    rgb = recon[:, :, 0] if img.ndim == 2 else ycbcr_to_rgb(recon)
    out = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    bpp = sum(code_entropy_bits(k) for k in codes) / (img.shape[0] * img.shape[1])
    return JpegResult(out, int(quality), luma, chroma, tuple(codes), bpp)
