"""Reading and writing images, and checking image arrays.

An image in quantscope is a numpy ``uint8`` array of shape (H, W) (grey) or (H, W, 3) (RGB), values
0..255. Files are read with Pillow (imported lazily: ``pip install pillow``); anything Pillow cannot
decode, an empty (0-pixel) image or a truncated file is refused with a ``ValueError`` naming the file.
Files are written atomically (encoded in memory, then temporary file + rename), so a failed write
leaves nothing behind.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np

WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
                 ".webp": "WEBP", ".gif": "GIF", ".ppm": "PPM", ".pgm": "PPM"}


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow is a dependency of the image extra
        raise ImportError("reading and writing images needs Pillow: pip install pillow") from exc
    return Image


def check_image(image: Any, name: str = "image") -> np.ndarray:
    """Validate an image array and return it as a C-contiguous uint8 array of shape (H, W) or (H, W, 3).

    (H, W, 1) is squeezed to (H, W); (H, W, 4) is refused (drop or composite the alpha channel first).
    Raises TypeError for a non-array or a non-uint8 dtype, ValueError for a wrong shape or an empty image.
    """
    if hasattr(image, "detach"):  # a torch tensor
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy uint8 array of shape (H, W) or (H, W, 3), "
                        f"got {type(image).__name__}; read files with quantscope.signal.read_image")
    if image.dtype != np.uint8:
        raise TypeError(f"{name} must have dtype uint8 (values 0..255), got {image.dtype}; convert floats in "
                        "[0, 1] with (x * 255).round().clip(0, 255).astype(np.uint8)")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"{name} must have shape (H, W) or (H, W, 3), got {image.shape}; "
                         "for RGBA drop the alpha channel (image[..., :3])")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {image.shape}); an image needs at least one pixel")
    return np.ascontiguousarray(image)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file into a uint8 array, (H, W) for grey images, (H, W, 3) otherwise.

    Palette, RGBA, CMYK and other colour modes are converted to RGB (alpha is dropped); 16-bit grey
    keeps its 8 most significant bits. Raises ValueError for a missing, unreadable, truncated,
    non-image or empty file.
    """
    Image = _pil()
    from PIL import UnidentifiedImageError

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"image file {path!r} does not exist or is not a file")
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im).astype(np.int64)
                hi = 65535 if mode.startswith("I;16") else max(int(arr.max(initial=0)), 1)
                out = np.clip(np.round(arr * (255.0 / hi)), 0, 255).astype(np.uint8)
            elif mode in ("L", "1", "LA"):
                out = np.asarray(im.convert("L"))
            else:
                out = np.asarray(im.convert("RGB"))
    except UnidentifiedImageError as exc:
        raise ValueError(f"{path!r} is not an image Pillow can read (PNG, JPEG, BMP, TIFF, WebP, GIF, ...)") from exc
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"image file {path!r} could not be decoded ({exc}); it may be truncated or corrupt") from exc
    if out.size == 0:
        raise ValueError(f"image file {path!r} is empty ({out.shape[1] if out.ndim > 1 else 0}x{out.shape[0]} "
                         "pixels)")
    return check_image(np.array(out, dtype=np.uint8), "image")


def encode_image(image: np.ndarray, format: str = "PNG", **options: Any) -> bytes:
    """The image encoded in memory (``format``: a Pillow format name such as "PNG" or "JPEG")."""
    image = check_image(image)
    buf = io.BytesIO()
    _pil().fromarray(image).save(buf, format=format, **options)
    return buf.getvalue()


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write ``image`` atomically; the format follows the file extension (.png, .jpg, .bmp, .tif, .webp, ...).

    JPEG files are written at quality 95 without chroma subsampling; lossless formats keep every value.
    """
    from .._files import atomic_write_bytes

    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in WRITE_FORMATS:
        raise ValueError(f"cannot tell the image format of {path!r} from its extension {ext!r}; "
                         f"use one of {', '.join(sorted(WRITE_FORMATS))}")
    fmt = WRITE_FORMATS[ext]
    options: dict[str, Any] = {"quality": 95, "subsampling": 0} if fmt == "JPEG" else {}
    atomic_write_bytes(path, encode_image(image, fmt, **options))
