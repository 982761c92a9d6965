"""Reading and writing image files; refusing what is not an image."""

import numpy as np
import pytest
from PIL import Image

from quantscope.signal.image_io import check_image, read_image, write_image

RGB = np.random.default_rng(0).integers(0, 256, (20, 30, 3)).astype(np.uint8)


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".ppm"])
def test_lossless_round_trip(tmp_path, ext):
    path = tmp_path / f"x{ext}"
    write_image(path, RGB)
    assert np.array_equal(read_image(path), RGB)
    grey = np.ascontiguousarray(RGB[:, :, 0])
    write_image(tmp_path / "g.png", grey)
    assert np.array_equal(read_image(tmp_path / "g.png"), grey)


def test_modes_are_converted(tmp_path):
    Image.fromarray(np.dstack([RGB, np.full(RGB.shape[:2], 7, np.uint8)])).save(tmp_path / "a.png")
    assert np.array_equal(read_image(tmp_path / "a.png"), RGB)
    Image.fromarray(RGB).quantize(4).save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == RGB.shape
    Image.fromarray(RGB[:, :, 0].astype(np.uint16) * 257).save(tmp_path / "w.png")
    assert np.array_equal(read_image(tmp_path / "w.png"), RGB[:, :, 0])
    write_image(tmp_path / "j.jpg", RGB)
    assert read_image(tmp_path / "j.jpg").shape == RGB.shape


def test_unreadable_files_are_refused(tmp_path):
    (tmp_path / "t.png").write_text("not an image at all")
    with pytest.raises(ValueError, match="not an image"):
        read_image(tmp_path / "t.png")
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(ValueError, match="e.png"):
        read_image(tmp_path / "e.png")
    write_image(tmp_path / "ok.png", RGB)
    raw = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_image(tmp_path / "cut.png")
    with pytest.raises(ValueError, match="does not exist"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="does not exist"):
        read_image(tmp_path)


def test_check_image_and_failed_writes_leave_nothing(tmp_path):
    assert check_image(RGB[:, :, :1]).shape == (20, 30)
    with pytest.raises(ValueError, match="empty"):
        check_image(np.zeros((5, 0, 3), np.uint8))
    with pytest.raises(TypeError, match="numpy uint8"):
        check_image([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="extension"):
        write_image(tmp_path / "x.xyz", RGB)
    with pytest.raises(TypeError, match="uint8"):
        write_image(tmp_path / "x.png", RGB.astype(np.float64))
    assert list(tmp_path.iterdir()) == []
