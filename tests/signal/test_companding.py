"""G.711 μ-law and A-law: bit-exact against Python's audioop over all 65536 16-bit inputs and all 256 codes
(skipped where audioop is gone, Python >= 3.13), plus the properties of the law itself."""

import warnings

import numpy as np
import pytest

from quantscope.signal.companding import (
    alaw_decode,
    alaw_encode,
    companded_quantize,
    compress,
    expand,
    g711_roundtrip,
    ulaw_decode,
    ulaw_encode,
)

ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = np.arange(256, dtype=np.uint8)


@pytest.fixture(scope="module")
def audioop():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pytest.importorskip("audioop")


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_encode_bit_exact_with_audioop_for_every_16_bit_input(audioop, law):
    ours = (ulaw_encode if law == "ulaw" else alaw_encode)(ALL_PCM)
    ref = np.frombuffer(getattr(audioop, f"lin2{law}")(ALL_PCM.tobytes(), 2), dtype=np.uint8)
    mismatch = np.flatnonzero(ours != ref)
    assert mismatch.size == 0, f"{mismatch.size} differ, first at PCM {ALL_PCM[mismatch[0]]}"


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_decode_bit_exact_with_audioop_for_every_code(audioop, law):
    ours = (ulaw_decode if law == "ulaw" else alaw_decode)(ALL_CODES)
    ref = np.frombuffer(getattr(audioop, f"{law}2lin")(ALL_CODES.tobytes(), 2), dtype=np.int16)
    assert np.array_equal(ours, ref)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_roundtrip_of_every_input_bit_exact_with_audioop(audioop, law):
    name = "mulaw" if law == "ulaw" else "alaw"
    _, decoded = g711_roundtrip(ALL_PCM, name)
    ref = getattr(audioop, f"{law}2lin")(getattr(audioop, f"lin2{law}")(ALL_PCM.tobytes(), 2), 2)
    assert np.array_equal(decoded, np.frombuffer(ref, dtype=np.int16))


def test_g711_properties_without_a_reference():
    for law, enc, dec in (("mulaw", ulaw_encode, ulaw_decode), ("alaw", alaw_encode, alaw_decode)):
        levels = dec(ALL_CODES).astype(np.int64)
        assert np.unique(levels).size == (255 if law == "mulaw" else 256)  # μ-law has +0 and -0
        _, y = g711_roundtrip(ALL_PCM, law)
        assert np.all(np.diff(y.astype(np.int64)) >= 0)  # monotone
        assert np.array_equal(enc(dec(ALL_CODES)), enc(dec(enc(dec(ALL_CODES)))))  # decoding is a fixed point
        # above 1024 the error is at most half a step (16 steps per segment: 1/32 of the value) plus the
        # low bits dropped before coding (< 8 in 16-bit units), i.e. relative error <= 1/32 + 8/1024
        x = ALL_PCM.astype(np.int64)
        mid = np.abs(x) > 1024
        rel = np.abs(x[mid] - y.astype(np.int64)[mid]) / np.abs(x[mid])
        assert rel.max() <= 1 / 32 + 8 / 1024, (law, rel.max())


def test_near_constant_sqnr_over_a_wide_range_of_levels():
    """μ-law keeps ~38 dB SQNR over 40 dB of input levels; uniform 8 bits drops 6 dB per halving."""
    t = np.arange(20_000) / 8000
    sqnr = []
    for level_db in range(0, -41, -10):
        amp = 0.9 * 10 ** (level_db / 20)
        x = np.round(amp * 32767 * np.sin(2 * np.pi * 441.3 * t)).astype(np.int16)
        _, y = g711_roundtrip(x, "mulaw")
        e = x.astype(float) - y
        sqnr.append(10 * np.log10(np.sum(x.astype(float) ** 2) / np.sum(e**2)))
    assert min(sqnr) > 30 and max(sqnr) - min(sqnr) < 9


def test_continuous_curves_invert_and_model_g711():
    x = np.linspace(-1, 1, 2001)
    for law in ("mulaw", "alaw"):
        assert np.allclose(expand(compress(x, law), law), x, atol=1e-12)
    xq = companded_quantize(x * 0.9, 8, "mulaw")
    assert np.max(np.abs(xq - x * 0.9)) < 0.02


def test_bad_input():
    with pytest.raises(TypeError, match="integer 16-bit PCM"):
        ulaw_encode(np.array([0.5]))
    with pytest.raises(ValueError, match="-32768..32767"):
        alaw_encode(np.array([40000]))
    with pytest.raises(ValueError, match="0..255"):
        ulaw_decode(np.array([256]))
    with pytest.raises(ValueError, match="law must be one of"):
        g711_roundtrip(np.zeros(3, dtype=np.int16), "blaw")
