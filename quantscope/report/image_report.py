"""The HTML report of an image quantization: original and quantized images (whole and a 1:1 crop),
the error map, the palette, PIL's palette methods side by side, and distortion against rate next to
the uniform Δ²/12 model and the Gaussian D(R) = σ²·2^(-2R). One self-contained page."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .html import _img, _table, html_document
from .plots import _png, _pyplot

THUMB = 480   # longest side of the whole-image views, pixels
CROP = 96     # side of the 1:1 crop, shown enlarged 4x (nearest neighbour)


def _png_of(image: np.ndarray) -> bytes:
    from ..signal.image_io import encode_image

    return encode_image(image, "PNG")


def thumbnail(image: np.ndarray, longest: int = THUMB) -> np.ndarray:
    """Nearest-neighbour downscale so the longest side is at most ``longest`` (keeps the exact colours)."""
    h, w = image.shape[:2]
    f = max(1, math.ceil(max(h, w) / longest))
    return np.ascontiguousarray(image[::f, ::f])


def crop_view(image: np.ndarray, top: int, left: int, size: int = CROP, zoom: int = 4) -> np.ndarray:
    """A size x size crop enlarged ``zoom`` times by pixel repetition (dither patterns stay visible)."""
    c = image[top:top + size, left:left + size]
    return np.ascontiguousarray(np.repeat(np.repeat(c, zoom, axis=0), zoom, axis=1))


def busiest_crop(image: np.ndarray, size: int = CROP) -> tuple[int, int]:
    """(top, left) of the size x size tile with the largest variance (where quantization shows most)."""
    g = image.astype(np.float64) if image.ndim == 2 else image.astype(np.float64).mean(2)
    h, w = g.shape
    if h <= size or w <= size:
        return 0, 0
    best, pos = -1.0, (0, 0)
    for top in range(0, h - size + 1, max(size // 2, 1)):
        for left in range(0, w - size + 1, max(size // 2, 1)):
            v = float(g[top:top + size, left:left + size].var())
            if v > best:
                best, pos = v, (top, left)
    return pos


def error_map_plot(original: np.ndarray, quantized: np.ndarray) -> bytes:
    """|x - x̂| per pixel (mean over channels, 8-bit units) as a heat map with a colour bar."""
    plt = _pyplot()
    e = np.abs(original.astype(np.float64) - quantized.astype(np.float64))
    if e.ndim == 3:
        e = e.mean(2)
    e = thumbnail(e)
    fig, ax = plt.subplots(figsize=(6.5, 6.5 * e.shape[0] / max(e.shape[1], 1) + 0.4))
    im = ax.imshow(e, cmap="magma", interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label="|x - x̂| (8-bit units)")
    ax.set_axis_off()
    ax.set_title(f"error map (mean {e.mean():.2f}, max {e.max():.0f})", fontsize=10)
    return _png(fig)


def palette_swatch(palette: np.ndarray, cell: int = 24, per_row: int = 32) -> np.ndarray:
    """The palette colours as a grid of squares (uint8 RGB image)."""
    pal = palette if palette.ndim == 2 and palette.shape[1] == 3 else np.repeat(palette.reshape(-1, 1), 3, 1)
    n = len(pal)
    cols = min(per_row, n)
    rows = -(-n // cols)
    out = np.full((rows * cell, cols * cell, 3), 255, dtype=np.uint8)
    for i, c in enumerate(pal):
        r, k = divmod(i, cols)
        out[r * cell + 1:(r + 1) * cell - 1, k * cell + 1:(k + 1) * cell - 1] = c
    return out


def rate_distortion_plot(curves: Sequence[Any], here: tuple[float, float] | None = None) -> bytes:
    """MSE (dB) against rate (bits per sample) for :class:`ImageRDCurve` sweeps, with the uniform Δ²/12
    model and the Gaussian D(R) = σ²·2^(-2R) over the same rates; ``here`` marks (rate, mse) of this run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.8))

    def db(v: float | None) -> float:
        return 10 * math.log10(v) if v is not None and v > 0 else float("nan")

    names = {"bits": "bit depth", "palette": "palette", "jpeg": "JPEG-style DCT"}
    rates: list[float] = []
    variance = curves[0].variance if curves else 0.0
    for c in curves:
        ax.plot([p.rate for p in c.points], [db(p.mse) for p in c.points], marker="o", ms=3,
                label=f"measured: {names.get(c.kind, c.kind)}")
        rates += [p.rate for p in c.points]
    if rates:
        from ..error.theory import rate_distortion_mse

        grid = np.linspace(min(min(rates), 0.05), max(rates), 200)
        ax.plot(grid, [db(rate_distortion_mse(variance, float(r))) for r in grid], ls="-.", color="#8e44ad",
                label="Gaussian D(R) = σ²·2^(−2R)")
        g1 = grid[grid >= 1]
        ax.plot(g1, [db((255 / (2**r - 1)) ** 2 / 12) for r in g1], ls="--", color="#555555",
                label="uniform Δ²/12, Δ = 255/(2^R − 1)")
    if here is not None:
        ax.plot([here[0]], [db(here[1])], marker="*", ms=13, ls="none", color="#c0392b", label="this image")
    ax.set_xlabel("rate R (bits per sample)")
    ax.set_ylabel("distortion: MSE (dB, 8-bit units)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("rate-distortion", fontsize=10)
    return _png(fig)


def image_report(original: np.ndarray, quantized: np.ndarray, title: str, summary_rows: list[tuple[str, Any]],
                 palette: np.ndarray | None = None, comparison: list[tuple[Any, ...]] | None = None,
                 curves: Sequence[Any] = (), here: tuple[float, float] | None = None) -> str:
    """The page: summary table, images, error map, palette swatch, ``comparison`` rows (method, colours,
    PSNR dB, SSIM, ms) against PIL's ``Image.quantize`` methods, and the rate-distortion plot and table."""
    top, left = busiest_crop(original)
    body = ["<h2>Summary</h2>", _table(summary_rows), "<h2>Images</h2>",
            _img("original", _png_of(thumbnail(original)), "Original."),
            _img("quantized", _png_of(thumbnail(quantized)), "Quantized."),
            _img("crop-original", _png_of(crop_view(original, top, left)),
                 f"Original, {CROP}x{CROP} crop at row {top}, column {left}, enlarged 4x."),
            _img("crop-quantized", _png_of(crop_view(quantized, top, left)), "Quantized, the same crop."),
            "<h2>Error</h2>", _img("error-map", error_map_plot(original, quantized),
                                   "Absolute error per pixel, mean over channels.")]
    if palette is not None:
        body += ["<h2>Palette</h2>", _img("palette", _png_of(palette_swatch(palette)),
                                          f"The {len(palette)} palette colours.")]
    if comparison:
        body += ["<h2>Against PIL</h2>",
                 '<p class="note">PIL: <code>Image.quantize(colors, method)</code>, no dithering; same image, '
                 "same run. Time: median of the runs, milliseconds.</p>",
                 _table(comparison, ("method", "colours", "PSNR dB", "SSIM", "time ms"))]
    if curves:
        body += ["<h2>Rate-distortion</h2>", _img("rate-distortion", rate_distortion_plot(curves, here),
                                                  "MSE against rate beside the uniform Δ²/12 model and the "
                                                  "Gaussian rate-distortion function of the image's variance.")]
        for c in curves:
            body += [f"<h3>{html.escape(c.kind)} sweep</h3>", _table(c.rows(), c.COLUMNS)]
        body.append('<p class="note">Rate: bits per channel value (bit depth: bits; palette: log2(colours) / '
                    "channels; JPEG: the zeroth-order entropy of the DCT codes per coefficient position / "
                    "channels). D(R) treats the pixels as independent Gaussian samples; transform coding beats "
                    "it because neighbouring pixels are correlated.</p>")
    return html_document(title, body, intro="Images: 8-bit values; PSNR = 10·log10(255²/MSE); SSIM: Gaussian "
                                            "window σ = 1.5 (Wang et al. 2004).")
