"""The HTML report is self-contained and every plot renders in a real (headless Chromium) browser."""

import os
import shutil

import pytest
import torch

import quantscope as qs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("QUANTSCOPE_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium and chromedriver are required (make test installs Debian's chromium, "
                        "chromium-driver)")
        pytest.skip("headless Chromium not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def test_every_plot_renders_in_headless_chromium(tmp_path):
    x = torch.randn(256, 128, generator=torch.Generator().manual_seed(0))
    q = qs.quantize(x, qs.QuantSpec(qs.int4(), granularity=qs.per_channel(0)), calibrator="mse")
    path = tmp_path / "report.html"
    qs.error(x, q).to_html(str(path), calibrator="mse")
    driver = browser()
    try:
        driver.get(path.as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.closest('figure').id, i.complete, i.naturalWidth,"
            " i.naturalHeight, i.src.slice(0, 21)])")
        rows = driver.execute_script("return document.querySelectorAll('table tr').length")
    finally:
        driver.quit()
    ids = [i[0] for i in images]
    assert ids == ["t0-histogram", "t0-error", "t0-bits", "t0-clipping", "t0-per-group"]
    for fig_id, complete, width, height, src in images:
        assert complete and width > 300 and height > 150, fig_id
        assert src == "data:image/png;base64", fig_id  # embedded, nothing fetched
    assert rows > 20
