"""``quantscope audio`` end to end: speech from Debian's espeak-ng (skipped without it) through the uniform
quantizer with TPDF dither and noise shaping, μ-law and IMA ADPCM; synthetic files; bad input."""

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

from quantscope.cli import main
from quantscope.error.theory import sine_sqnr_db
from quantscope.signal.adc import adc_step, quantize_samples
from quantscope.signal.audio import read_audio, write_audio


def _metric(out: str, name: str) -> float | None:
    m = re.search(rf"^{name}: (\S+)", out, re.M)
    assert m, f"no {name} line in:\n{out}"
    return None if m.group(1) == "undefined" else float(m.group(1))


class _Figures(HTMLParser):
    def __init__(self):
        super().__init__()
        self.figures, self.images = [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "figure":
            self.figures.append(a.get("id"))
        if tag == "img" and a.get("src", "").startswith("data:image/png;base64,"):
            self.images += 1


def _figures(path) -> _Figures:
    p = _Figures()
    p.feed(path.read_text(encoding="utf-8"))
    return p


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is not installed (make test installs it)")
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run([exe, "-w", str(path), "Quantization error, made visible, bounded and small."], check=True,
                   capture_output=True, timeout=60)
    return path


def test_speech_through_the_whole_path(speech, tmp_path, capsys):
    src = read_audio(speech)
    assert (src.sample_rate, src.bits, src.channels) == (22050, 16, 1) and src.frames > 10_000

    out, html, js = tmp_path / "q8.wav", tmp_path / "q8.html", tmp_path / "q8.json"
    assert main(["audio", str(speech), "--bits", "8", "--dither", "tpdf", "--shape", "--out", str(out),
                 "--html", str(html), "--json", str(js), "--quiet"]) == 0
    text = capsys.readouterr().out
    sqnr, enob = _metric(text, "SQNR"), _metric(text, "ENOB")
    # TPDF (Δ²/4) shaped by (1 − z⁻¹)² (noise power x6): ENOB = 8 − log2(√3·√6) ≈ 5.9 bits
    assert sqnr > 15 and 5.6 < enob < 6.2, text
    q = read_audio(out)
    assert (q.bits, q.frames, q.sample_rate) == (8, src.frames, 22050)
    data = json.loads(js.read_text())
    r = data["result"]
    assert r["noise_model_var"] == pytest.approx(adc_step(8) ** 2 / 4 * 6)
    assert r["error_var"] == pytest.approx(r["noise_model_var"], rel=0.05)
    assert r["band_sqnr_db"] > r["sqnr_db"] + 10  # the shaped noise left the speech band
    assert len(data["rate_distortion"]["points"]) == 16
    page = _figures(html)
    assert page.figures == ["audio-waveform", "audio-error", "audio-spectrum", "audio-rd"] and page.images == 4

    for codec, floor, bits in (("mulaw", 30.0, 16), ("adpcm", 18.0, 16)):
        out = tmp_path / f"{codec}.wav"
        assert main(["audio", str(speech), "--companding", codec, "--out", str(out), "--quiet"]) == 0
        text = capsys.readouterr().out
        assert _metric(text, "SQNR") > floor, text
        q = read_audio(out)
        assert (q.bits, q.frames) == (bits, src.frames)

    # plain 8 bits: the file holds exactly the core's codes
    out = tmp_path / "plain.wav"
    assert main(["audio", str(speech), "--bits", "8", "--out", str(out), "--quiet"]) == 0
    assert _metric(capsys.readouterr().out, "ENOB") > 7.5
    codes, values = quantize_samples(src.samples[:, 0], 8)
    assert np.array_equal(read_audio(out).samples[:, 0], values)


def test_full_scale_sine_file_meets_theory(tmp_path, capsys):
    n = 1 << 15
    t = np.arange(n) / 48000
    bits = 12
    x = (1 - adc_step(bits)) * np.sin(2 * np.pi * 3707.3 * t + 0.3)
    write_audio(tmp_path / "sine.wav", np.stack([x, -x], axis=1), 48000, bits=32, encoding="float")
    out = tmp_path / "sine12.wav"
    assert main(["audio", str(tmp_path / "sine.wav"), "--bits", str(bits), "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert abs(_metric(text, "SQNR") - sine_sqnr_db(bits)) < 0.2
    assert abs(_metric(text, "ENOB") - bits) < 0.05
    q = read_audio(out)
    assert q.bits == 16 and q.channels == 2  # 12-bit codes in a 16-bit container, exactly
    assert np.array_equal(q.samples[:, 0], quantize_samples(x.astype(np.float32), bits)[1])


def test_silent_file_says_sqnr_is_undefined(tmp_path, capsys):
    write_audio(tmp_path / "silence.wav", np.zeros(4000), 8000)
    assert main(["audio", str(tmp_path / "silence.wav"), "--bits", "8", "--html", str(tmp_path / "s.html"),
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "SQNR: undefined (the signal is all zero)" in text and _metric(text, "ENOB") is None
    assert "undefined: the signal is all zero" in (tmp_path / "s.html").read_text(encoding="utf-8")


def test_bad_input_exits_2_with_a_message(tmp_path, capsys):
    (tmp_path / "notes.wav").write_text("not audio")
    write_audio(tmp_path / "empty.wav", np.zeros((0, 1)), 8000)
    write_audio(tmp_path / "ok.wav", np.full(100, 0.1), 8000)
    cases = [
        (["audio", str(tmp_path / "missing.wav")], "no such audio file"),
        (["audio", str(tmp_path / "notes.wav")], "not a readable audio file"),
        (["audio", str(tmp_path / "empty.wav")], "zero-length"),
        (["audio", str(tmp_path / "ok.wav"), "--bits", "0"], "bits must be in 1..16"),
        (["audio", str(tmp_path / "ok.wav"), "--bits", "24"], "bits must be in 1..16"),
        (["audio", str(tmp_path / "ok.wav"), "--companding", "mulaw", "--dither", "tpdf"], "not with a codec"),
        (["audio", str(tmp_path / "ok.wav"), "--shape", "ninth"], "unknown noise-shaping filter"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "quantscope audio: error:" in err and message in err, (argv, err)
    assert main(["audio", str(tmp_path / "ok.wav"), "--companding", "adpcm", "--bits", "8", "--quiet"]) == 0
    assert "ignoring --bits 8" in capsys.readouterr().err
