"""IMA ADPCM: bit-exact against audioop.lin2adpcm / adpcm2lin (packing order, state carried across chunks,
odd chunks), on speech-like and random signals; the error bound of the adaptive quantizer; speed."""

import time
import warnings

import numpy as np
import pytest

from quantscope.signal.adpcm import (
    INDEX_TABLE,
    STEP_TABLE,
    adpcm2lin,
    adpcm_decode,
    adpcm_encode,
    adpcm_roundtrip,
    lin2adpcm,
    pack_nibbles_high_first,
    unpack_nibbles_high_first,
)

RATE = 22_050


def speech_like(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Voiced bursts (harmonics of a gliding pitch under a syllable envelope) with pauses and some noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    pitch = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = np.clip(np.sin(2 * np.pi * 3.1 * t), 0, None) ** 2
    x = 9000 * env * voice + rng.normal(0, 150, t.size)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def random_pcm(n: int = 30_001, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(-32768, 32768, n).astype(np.int16)


@pytest.fixture(scope="module")
def audioop():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pytest.importorskip("audioop")


@pytest.mark.parametrize("signal", ["speech", "random", "silence", "full_scale_square"])
def test_encode_and_decode_bit_exact_with_audioop(audioop, signal):
    x = {"speech": speech_like(), "random": random_pcm(), "silence": np.zeros(1000, np.int16),
         "full_scale_square": np.tile(np.array([32767] * 20 + [-32768] * 20, np.int16), 50)}[signal]
    data, state = lin2adpcm(x)
    ref, ref_state = audioop.lin2adpcm(x.tobytes(), 2, None)
    assert data == ref and state == ref_state
    y, dstate = adpcm2lin(data)
    ref_y, ref_dstate = audioop.adpcm2lin(ref, 2, None)
    assert np.array_equal(y, np.frombuffer(ref_y, np.int16)) and dstate == ref_dstate


def test_state_carries_across_chunks_including_odd_ones(audioop):
    x = speech_like(0.5, seed=3)
    sizes = [1, 2, 333, 1000, 4097, 17, 10, 3]
    bounds = np.cumsum([0] + sizes)
    state = ref_state = dstate = ref_dstate = None
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        chunk = x[a:b]
        data, state = lin2adpcm(chunk, state)
        ref, ref_state = audioop.lin2adpcm(chunk.tobytes(), 2, ref_state)
        assert data == ref and state == ref_state  # odd chunks drop their last nibble, as audioop does
        y, dstate = adpcm2lin(data, dstate)
        ref_y, ref_dstate = audioop.adpcm2lin(ref, 2, ref_dstate)
        assert np.array_equal(y, np.frombuffer(ref_y, np.int16)) and dstate == ref_dstate


def test_nibble_packing_puts_the_first_sample_high():
    assert pack_nibbles_high_first([0x1, 0x2, 0x3, 0x4, 0x5]) == bytes([0x12, 0x34])
    assert unpack_nibbles_high_first(bytes([0xAB, 0x0F])).tolist() == [0xA, 0xB, 0x0, 0xF]
    codes = np.random.default_rng(0).integers(0, 16, 1000).astype(np.uint8)
    assert np.array_equal(unpack_nibbles_high_first(pack_nibbles_high_first(codes)), codes)


def test_error_bound_of_the_adaptive_quantizer():
    """Whenever |x − prediction| < s + (s>>1) + 2·(s>>2) (no slope overload), |x − x̂| <= (s>>3) + 2."""
    x = speech_like(1.0, seed=5)
    codes, _ = adpcm_encode(x)
    y, _ = adpcm_decode(codes)
    pred, index, checked = 0, 0, 0
    for xi, yi, c in zip(x.tolist(), y.tolist(), codes.tolist(), strict=True):
        s = STEP_TABLE[index]
        if abs(xi - pred) < s + (s >> 1) + 2 * (s >> 2):
            assert abs(xi - yi) <= (s >> 3) + 2
            checked += 1
        pred, index = yi, min(88, max(0, index + INDEX_TABLE[c]))
    assert checked > 0.9 * x.size
    e = x.astype(float) - y
    sqnr = 10 * np.log10(np.sum(x.astype(float) ** 2) / np.sum(e**2))
    assert 20 < sqnr < 40, sqnr


def test_three_seconds_of_audio_in_well_under_a_second():
    x = speech_like(3.0)
    t0 = time.perf_counter()
    adpcm_roundtrip(x)
    assert time.perf_counter() - t0 < 1.5  # about 0.1 s on one core; generous for a shared machine


def test_bad_input():
    with pytest.raises(ValueError, match="0..15"):
        adpcm_decode(np.array([16]))
    with pytest.raises(ValueError, match="index in 0..88"):
        adpcm_encode(np.zeros(4, np.int16), (0, 89))
    with pytest.raises(TypeError, match="state must be"):
        adpcm_encode(np.zeros(4, np.int16), "start")
    with pytest.raises(TypeError, match="16-bit PCM"):
        adpcm_encode(np.zeros(4))
