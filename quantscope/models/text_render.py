"""Seeded synthetic text-line and page images with ground truth, for evaluating OCR models.

The words come from real prose that quantscope did not write: the docstrings of a fixed list of
Python standard-library modules. They are filtered to ASCII letters, digits and common punctuation
(all in the PP-OCRv4 recognizer's dictionary). Lines are drawn with the DejaVu / Liberation
TrueType fonts found on the system (Debian ``fonts-dejavu-core``, ``fonts-liberation``), or with
Pillow's built-in font when none is installed; dark ink on a light background, mild Gaussian noise.

Output is deterministic for a given ``seed`` on a given Python version, Pillow version and set of
installed fonts (the vocabulary depends on the standard-library docstrings of the running Python).
"""

from __future__ import annotations

import glob
import importlib
import string
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

DOC_MODULES = (
    "argparse", "base64", "bisect", "calendar", "collections", "contextlib", "copy", "csv",
    "dataclasses", "datetime", "decimal", "difflib", "enum", "fractions", "functools", "gettext",
    "glob", "gzip", "heapq", "hmac", "inspect", "ipaddress", "json", "locale", "logging", "mailbox",
    "optparse", "pickle", "pprint", "queue", "random", "re", "sched", "secrets", "selectors",
    "shlex", "shutil", "smtplib", "socket", "statistics", "string", "struct", "subprocess",
    "tarfile", "tempfile", "textwrap", "threading", "timeit", "tokenize", "typing", "unittest",
    "uuid", "warnings", "weakref", "zipfile",
)  # fmt: skip
"""Standard-library modules whose ``__doc__`` supplies the vocabulary."""

FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation")
"""Folders searched (by glob, ``*.ttf``) for fonts."""

PUNCTUATION = ".,:;()'-/"
"""Punctuation allowed inside words (besides ASCII letters and digits)."""

_ALLOWED = frozenset(string.ascii_letters + string.digits + PUNCTUATION)
_SKIP_FONTS = ("MathTeXGyre", "ExtraLight")  # symbol font; strokes too thin to be typical print
_MAX_WORD_CHARS = 14


@dataclass(eq=False)
class TextLine:
    """One rendered text line.

    Attributes:
        image: RGB image, height about ``1.2 * size`` plus margins, width fitted to the text.
        text: ground truth, single spaces between words.
        font: font file name (e.g. ``"DejaVuSans.ttf"``) or ``"default"`` for Pillow's built-in font.
        size: font size in pixels.
    """

    image: Image.Image
    text: str
    font: str
    size: int


@dataclass(eq=False)
class TextPage:
    """A page with several text lines, for a text detector.

    Attributes:
        image: RGB page image (width, height multiples of 32).
        boxes: one ``(left, top, right, bottom)`` pixel box per line (right/bottom exclusive).
        texts: the ground-truth text of each line, in the order of ``boxes``.
    """

    image: Image.Image
    boxes: list[tuple[int, int, int, int]]
    texts: list[str]


def _clean_token(token: str) -> str | None:
    """The token with unusable edge characters removed, or None when it is not a plain word."""
    token = token.strip("\"'`*[]{}<>!?=_|#~&%$@^+\\")
    if not token or len(token) > _MAX_WORD_CHARS or not set(token) <= _ALLOWED:
        return None
    if "()" in token or "--" in token:  # code notation the recognizer was not trained on
        return None
    if not any(ch.isalnum() for ch in token):
        return None
    return token


@lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """Words of the docstrings of :data:`DOC_MODULES`, in order of appearance (with repeats).

    Raises:
        RuntimeError: when docstrings are unavailable (e.g. ``python -OO``).
    """
    words: list[str] = []
    for name in DOC_MODULES:
        try:
            doc = importlib.import_module(name).__doc__ or ""
        except ImportError:
            continue
        words.extend(w for w in map(_clean_token, doc.split()) if w is not None)
    if len(set(words)) < 200:
        raise RuntimeError(
            f"only {len(set(words))} distinct words found in standard-library docstrings; "
            "text rendering needs docstrings (do not run with python -OO)"
        )
    return tuple(words)


@lru_cache(maxsize=1)
def font_files() -> tuple[str, ...]:
    """Sorted paths of the usable TrueType fonts in :data:`FONT_DIRS` (may be empty)."""
    found = (path for folder in FONT_DIRS for path in glob.glob(f"{folder}/*.ttf"))
    return tuple(sorted(p for p in found if not any(skip in p for skip in _SKIP_FONTS)))


@lru_cache(maxsize=256)
def _load_font(path: str | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The font at ``path`` in ``size`` pixels; Pillow's built-in font when ``path`` is None."""
    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(path, size=size)


def _random_text(rng: np.random.Generator, words: tuple[str, ...], max_chars: int) -> str:
    """2-6 consecutive-ish words drawn from ``words``, joined by spaces, at most ``max_chars`` long."""
    n_words = int(rng.integers(2, 7))
    start = int(rng.integers(0, len(words)))
    chosen: list[str] = []
    for k in range(n_words):
        word = words[(start + k) % len(words)] if rng.random() < 0.5 else words[int(rng.integers(len(words)))]
        if len(" ".join([*chosen, word])) > max_chars:
            break
        chosen.append(word)
    return " ".join(chosen) if chosen else words[start][:max_chars]


def _random_font(rng: np.random.Generator, sizes: tuple[int, int]) -> tuple[str | None, int]:
    """A (font path or None, size in pixels) pair; ``sizes`` is an inclusive range."""
    fonts = font_files()
    path = fonts[int(rng.integers(len(fonts)))] if fonts else None
    return path, int(rng.integers(sizes[0], sizes[1] + 1))


def _font_name(path: str | None) -> str:
    return "default" if path is None else path.rsplit("/", 1)[-1]


def _add_noise(gray: np.ndarray, rng: np.random.Generator, sigma: float) -> Image.Image:
    """RGB image of the uint8 ``gray`` array plus Gaussian noise of std ``sigma`` (grey levels)."""
    noisy = gray.astype(np.float32) + rng.normal(0.0, sigma, size=gray.shape).astype(np.float32)
    channel = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return Image.fromarray(np.stack([channel] * 3, axis=-1), mode="RGB")


def _render_line(rng: np.random.Generator, text: str, path: str | None, size: int, noise: float) -> Image.Image:
    """Text drawn on a canvas fitted to it, with a few pixels of margin, ink/paper varied slightly."""
    font = _load_font(path, size)
    left, _, right, _ = font.getbbox(text)
    ascent, descent = font.getmetrics()
    margin_x, margin_y = (int(m) for m in rng.integers(3, 9, size=2))
    width, height = right - left + 2 * margin_x, ascent + descent + 2 * margin_y
    paper, ink = int(rng.integers(215, 256)), int(rng.integers(0, 70))
    canvas = Image.new("L", (width, height), color=paper)
    ImageDraw.Draw(canvas).text((margin_x - left, margin_y), text, font=font, fill=ink)
    return _add_noise(np.asarray(canvas), rng, noise)


def render_lines(
    n: int = 300,
    seed: int = 0,
    sizes: tuple[int, int] = (24, 40),
    max_chars: int = 40,
    noise: float = 6.0,
) -> list[TextLine]:
    """``n`` synthetic text-line images with their ground truth.

    Args:
        n: number of lines (>= 1).
        seed: seed of the numpy generator that picks words, fonts, sizes, margins, shades and noise.
        sizes: inclusive range of font sizes in pixels.
        max_chars: longest line in characters.
        noise: standard deviation of the added Gaussian noise, in grey levels (0-255 scale).

    Returns:
        ``n`` :class:`TextLine` objects; the same list (pixel for pixel) for the same arguments.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    words = vocabulary()
    lines = []
    for _ in range(n):
        text = _random_text(rng, words, max_chars)
        path, size = _random_font(rng, sizes)
        lines.append(TextLine(_render_line(rng, text, path, size, noise), text, _font_name(path), size))
    return lines


def _draw_page_lines(
    rng: np.random.Generator, canvas: Image.Image, n_lines: int, sizes: tuple[int, int]
) -> tuple[list[tuple[int, int, int, int]], list[str]]:
    """Draw up to ``n_lines`` lines top to bottom on ``canvas``; their boxes and texts."""
    draw, words = ImageDraw.Draw(canvas), vocabulary()
    page_w, page_h = canvas.size
    boxes, texts = [], []
    y = int(rng.integers(8, 40))
    for _ in range(n_lines):
        path, size = _random_font(rng, sizes)
        font, text = _load_font(path, size), _random_text(rng, words, 40)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        if right - left > page_w - 16 or y + bottom > page_h - 8:
            continue
        x = int(rng.integers(8, page_w - (right - left) - 7))
        draw.text((x - left, y), text, font=font, fill=int(rng.integers(0, 70)))
        boxes.append((x, y + top, x + right - left, y + bottom))
        texts.append(text)
        y += bottom + int(rng.integers(10, 40))
    return boxes, texts


def render_pages(
    n: int = 8,
    seed: int = 0,
    size: tuple[int, int] = (640, 480),
    lines_per_page: tuple[int, int] = (3, 6),
    font_sizes: tuple[int, int] = (20, 36),
    noise: float = 6.0,
) -> list[TextPage]:
    """``n`` pages, each with a few text lines at random positions, for a text detector.

    Args:
        n: number of pages (>= 1).
        seed: seed of the numpy generator; the same arguments give the same pages.
        size: page ``(width, height)`` in pixels, both multiples of 32.
        lines_per_page: inclusive range of the number of lines tried per page (lines that do not
            fit are skipped, so a page may hold fewer).
        font_sizes: inclusive range of font sizes in pixels.
        noise: standard deviation of the Gaussian noise, in grey levels.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if size[0] % 32 or size[1] % 32 or min(size) < 64:
        raise ValueError(f"size must be two multiples of 32 (>= 64), got {size}")
    rng = np.random.default_rng(seed)
    pages = []
    for _ in range(n):
        canvas = Image.new("L", size, color=int(rng.integers(215, 256)))
        n_lines = int(rng.integers(lines_per_page[0], lines_per_page[1] + 1))
        boxes, texts = _draw_page_lines(rng, canvas, n_lines, font_sizes)
        pages.append(TextPage(_add_noise(np.asarray(canvas), rng, noise), boxes, texts))
    return pages
