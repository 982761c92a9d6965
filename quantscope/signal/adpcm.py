"""IMA (DVI) ADPCM: the classic adaptive quantizer, 4 bits per 16-bit sample.

Each sample's difference from the running prediction is quantized to 3 magnitude bits + sign with a
step taken from an 89-entry table; the step index moves down by 1 after small codes and up by 2..8 after
large ones, so the step tracks the signal's local slope (backward adaptation: the decoder recomputes
it from the codes, nothing else is sent). The difference reconstructed from code c with step s is
``(s>>3) + (s if c&4) + (s>>1 if c&2) + (s>>2 if c&1)`` in integers, negated when c&8.

Bit-exact with Python's ``audioop.lin2adpcm`` / ``adpcm2lin`` (the Intel/DVI reference code):
* state = (predicted value, step index), (0, 0) at the start, returned so that chunks chain;
* packing: two codes per byte, the *first* sample in the high nibble; an odd trailing code of a chunk is
  dropped by the encoder (as audioop does) — use even-length chunks to keep every sample.
Error bound (no slope overload): with step s in use, whenever |x − prediction| < s + (s>>1) + 2·(s>>2)
the decoded sample satisfies |x − x̂| <= (s>>3) + 2 (integer shifts of odd steps cost the +2); larger differences
(fast transients, before the step has grown) overload the quantizer. Expect SQNR of roughly 20-35 dB
on speech.
"""

from __future__ import annotations

from typing import Any

import numpy as np

INDEX_TABLE = (-1, -1, -1, -1, 2, 4, 6, 8, -1, -1, -1, -1, 2, 4, 6, 8)
STEP_TABLE = (
    7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 19, 21, 23, 25, 28, 31, 34, 37, 41, 45, 50, 55, 60, 66, 73, 80, 88, 97,
    107, 118, 130, 143, 157, 173, 190, 209, 230, 253, 279, 307, 337, 371, 408, 449, 494, 544, 598, 658, 724, 796,
    876, 963, 1060, 1166, 1282, 1411, 1552, 1707, 1878, 2066, 2272, 2499, 2749, 3024, 3327, 3660, 4026, 4428,
    4871, 5358, 5894, 6484, 7132, 7845, 8630, 9493, 10442, 11487, 12635, 13899, 15289, 16818, 18500, 20350,
    22385, 24623, 27086, 29794, 32767,
)  # fmt: skip

State = tuple[int, int]


def _check_state(state: Any) -> State:
    if state is None:
        return 0, 0
    try:
        valpred, index = (int(v) for v in state)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"state must be None or (predicted value, step index), got {state!r}") from exc
    if not -32768 <= valpred <= 32767 or not 0 <= index <= 88:
        raise ValueError(f"state must have a predicted value in -32768..32767 and an index in 0..88, got {state}")
    return valpred, index


def adpcm_encode(pcm: Any, state: State | None = None) -> tuple[np.ndarray, State]:
    """4-bit codes (uint8 0..15, one per sample) of 16-bit PCM, and the state after the last sample."""
    from .companding import _pcm16

    samples = _pcm16(pcm).reshape(-1).tolist()
    valpred, index = _check_state(state)
    step = STEP_TABLE[index]
    out = bytearray(len(samples))
    idx_t, step_t = INDEX_TABLE, STEP_TABLE
    for i, val in enumerate(samples):
        if val < valpred:
            diff, sign = valpred - val, 8
        else:
            diff, sign = val - valpred, 0
        delta = 0
        vpdiff = step >> 3
        if diff >= step:
            delta = 4
            diff -= step
            vpdiff += step
        half = step >> 1
        if diff >= half:
            delta |= 2
            diff -= half
            vpdiff += half
        quarter = half >> 1
        if diff >= quarter:
            delta |= 1
            vpdiff += quarter
        if sign:
            valpred -= vpdiff
            if valpred < -32768:
                valpred = -32768
        else:
            valpred += vpdiff
            if valpred > 32767:
                valpred = 32767
        delta |= sign
        index += idx_t[delta]
        if index < 0:
            index = 0
        elif index > 88:
            index = 88
        step = step_t[index]
        out[i] = delta
    return np.frombuffer(bytes(out), dtype=np.uint8), (valpred, index)


def adpcm_decode(codes: Any, state: State | None = None) -> tuple[np.ndarray, State]:
    """16-bit PCM (int16) of 4-bit codes (0..15), and the state after the last code."""
    c = np.asarray(codes)
    if c.dtype.kind not in "iu" or (c.size and (c.min() < 0 or c.max() > 15)):
        raise ValueError("codes must be integers in 0..15 (one 4-bit ADPCM code per sample); "
                         "unpack bytes with unpack_nibbles first")
    valpred, index = _check_state(state)
    step = STEP_TABLE[index]
    out = [0] * c.size
    idx_t, step_t = INDEX_TABLE, STEP_TABLE
    for i, delta in enumerate(c.reshape(-1).tolist()):
        index += idx_t[delta]
        if index < 0:
            index = 0
        elif index > 88:
            index = 88
        vpdiff = step >> 3
        if delta & 4:
            vpdiff += step
        if delta & 2:
            vpdiff += step >> 1
        if delta & 1:
            vpdiff += step >> 2
        if delta & 8:
            valpred -= vpdiff
            if valpred < -32768:
                valpred = -32768
        else:
            valpred += vpdiff
            if valpred > 32767:
                valpred = 32767
        step = step_t[index]
        out[i] = valpred
    return np.asarray(out, dtype=np.int16), (valpred, index)


def pack_nibbles_high_first(codes: Any) -> bytes:
    """Two 4-bit codes per byte, the first in the high nibble; an odd last code is dropped (audioop's
    layout)."""
    c = np.asarray(codes, dtype=np.uint8).reshape(-1)
    c = c[: c.size - c.size % 2]
    return ((c[0::2] << 4) | (c[1::2] & 0x0F)).astype(np.uint8).tobytes()


def unpack_nibbles_high_first(data: bytes) -> np.ndarray:
    """The codes of :func:`pack_nibbles_high_first` (two per byte, high nibble first)."""
    b = np.frombuffer(bytes(data), dtype=np.uint8)
    out = np.empty(b.size * 2, dtype=np.uint8)
    out[0::2], out[1::2] = b >> 4, b & 0x0F
    return out


def lin2adpcm(pcm: Any, state: State | None = None) -> tuple[bytes, State]:
    """Drop-in for ``audioop.lin2adpcm(fragment, 2, state)`` on an int16 array: (packed bytes, state)."""
    codes, new_state = adpcm_encode(pcm, state)
    return pack_nibbles_high_first(codes), new_state


def adpcm2lin(data: bytes, state: State | None = None) -> tuple[np.ndarray, State]:
    """Drop-in for ``audioop.adpcm2lin(data, 2, state)``: (int16 samples, two per byte, state)."""
    return adpcm_decode(unpack_nibbles_high_first(data), state)


def adpcm_roundtrip(pcm: Any) -> tuple[np.ndarray, np.ndarray]:
    """(4-bit codes, decoded int16 PCM) of a whole 16-bit PCM signal, every sample kept."""
    codes, _ = adpcm_encode(pcm)
    decoded, _ = adpcm_decode(codes)
    return codes, decoded


__all__ = ["INDEX_TABLE", "STEP_TABLE", "adpcm2lin", "adpcm_decode", "adpcm_encode", "adpcm_roundtrip",
           "lin2adpcm", "pack_nibbles_high_first", "unpack_nibbles_high_first"]
