"""``quantscope image``: the three modes, the files it writes, and its errors."""

import json

import numpy as np
import pytest
from skimage import data

from quantscope.cli import main
from quantscope.signal.image import jpeg_quantize, reduce_bit_depth
from quantscope.signal.image_io import read_image, write_image


@pytest.fixture(scope="module")
def png(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "cat.png"
    write_image(path, np.ascontiguousarray(data.chelsea()[60:140, 150:250]))
    return path


def test_bits_writes_the_exact_result(png, tmp_path, capsys):
    out = tmp_path / "o.png"
    assert main(["image", str(png), "--bits", "3", "--dither", "bayer", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "PSNR dB" in text and "SSIM" in text and "wrote" in text
    assert np.array_equal(read_image(out), reduce_bit_depth(read_image(png), 3, "bayer").image)


def test_palette_html_report_is_self_contained(png, tmp_path, capsys):
    html = tmp_path / "r.html"
    assert main(["image", str(png), "--palette", "8", "--space", "rgb", "--html", str(html), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "PIL mediancut" in out and "PIL fastoctree" in out
    page = html.read_text()
    for anchor in ('id="original"', 'id="quantized"', 'id="error-map"', 'id="palette"', 'id="rate-distortion"',
                   "Against PIL", "σ²·2^(-2R)"):
        assert anchor in page, anchor
    assert "data:image/png;base64," in page and 'src="http' not in page


def test_jpeg_json(png, tmp_path, capsys):
    js = tmp_path / "r.json"
    out = tmp_path / "o.png"
    assert main(["image", str(png), "--jpeg-quality", "50", "--json", str(js), "--out", str(out), "--quiet"]) == 0
    d = json.loads(js.read_text())
    assert d["kind"] == "jpeg" and d["result"]["quality"] == 50
    assert float(d["quality"]["psnr_db"]) > 25 and d["rate_distortion"][0]["kind"] == "jpeg"
    assert np.array_equal(read_image(out), jpeg_quantize(read_image(png), 50).image)


def test_errors(png, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_text("hello")
    assert main(["image", str(bad), "--bits", "3"]) == 2
    assert "not an image" in capsys.readouterr().err
    assert main(["image", str(png), "--bits", "9"]) == 2
    assert "from 1 to 8" in capsys.readouterr().err
    assert main(["image", str(png), "--palette", "1"]) == 2
    assert "from 2 to 256" in capsys.readouterr().err
    assert main(["image", str(png), "--palette", "8", "--dither", "bayer"]) == 2
    assert "--bits only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["image", str(png)])  # one of --bits / --palette / --jpeg-quality is required
    with pytest.raises(SystemExit):
        main(["image", str(png), "--bits", "3", "--palette", "8"])
