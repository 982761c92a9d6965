"""Audio files: WAV of any PCM bit depth (8, 16, 24, 32) and 32/64-bit float, FLAC and others through
``soundfile`` when it is installed.

WAV is parsed here (RIFF chunks, PCM / IEEE-float / WAVE_FORMAT_EXTENSIBLE) with the standard library and
numpy, since ``wave`` reads neither float nor extensible files before Python 3.12. Samples come back as
float64 in [-1, 1): a b-bit PCM code k is k / 2^(b−1) (8-bit WAV is unsigned, offset 128), so writing
them back at the same depth is lossless. Everything written goes through an atomic temporary file.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PCM_BITS = (8, 16, 24, 32)
_FMT_PCM, _FMT_FLOAT, _FMT_EXTENSIBLE = 1, 3, 0xFFFE
_NAMES = {6: "A-law", 7: "mu-law", 0x11: "IMA ADPCM", 2: "MS ADPCM", 0x55: "MP3"}


class AudioFileError(ValueError):
    """A file that is missing, not audio, corrupt or in an encoding this reader does not handle."""


@dataclass(frozen=True)
class Audio:
    """Decoded audio: ``samples`` float64 of shape (frames, channels) in [-1, 1), ``sample_rate`` in Hz,
    ``bits`` the file's sample depth, ``encoding`` "pcm" or "float"."""

    samples: np.ndarray = field(repr=False)
    sample_rate: int
    bits: int
    encoding: str = "pcm"

    @property
    def frames(self) -> int:
        return int(self.samples.shape[0])

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "channels": self.channels, "sample_rate": self.sample_rate,
                "bits": self.bits, "encoding": self.encoding, "duration_s": self.duration_s}


# ------------------------------------------------------------------------------------------------- WAV
def _chunks(data: bytes, path: str) -> dict[bytes, bytes]:
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        raise AudioFileError(f"{path} is not a WAV file (no RIFF/WAVE header)")
    if data[:4] == b"RIFX":
        raise AudioFileError(f"{path} is a big-endian RIFX file; convert it to little-endian WAV")
    out: dict[bytes, bytes] = {}
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        # a data chunk longer than the file (streamed writers leave 0xFFFFFFFF) keeps the frames that are there
        out.setdefault(cid, data[pos + 8:pos + 8 + size])
        pos += 8 + size + (size & 1)
    for need in (b"fmt ", b"data"):
        if need not in out:
            raise AudioFileError(f"{path} is a corrupt WAV file: no {need.decode().strip()!r} chunk")
    return out


def _decode_wav(data: bytes, path: str) -> Audio:
    ch = _chunks(data, path)
    fmt = ch[b"fmt "]
    if len(fmt) < 16:
        raise AudioFileError(f"{path}: the WAV 'fmt' chunk is {len(fmt)} bytes, expected at least 16")
    tag, channels, rate, _, align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == _FMT_EXTENSIBLE:
        if len(fmt) < 40:
            raise AudioFileError(f"{path}: truncated WAVE_FORMAT_EXTENSIBLE header")
        tag = struct.unpack("<H", fmt[24:26])[0]  # first two bytes of the sub-format GUID
    if tag not in (_FMT_PCM, _FMT_FLOAT):
        name = _NAMES.get(tag, f"format code {tag}")
        raise AudioFileError(f"{path}: WAV encoding {name} is not supported; PCM (8/16/24/32-bit) and float "
                             f"WAV are (convert with e.g. `sox in.wav -e signed -b 16 out.wav`)")
    if channels < 1 or rate < 1:
        raise AudioFileError(f"{path}: invalid WAV header ({channels} channels, {rate} Hz)")
    width = (bits + 7) // 8
    if tag == _FMT_PCM and bits not in PCM_BITS or tag == _FMT_FLOAT and bits not in (32, 64):
        raise AudioFileError(f"{path}: {bits}-bit {'PCM' if tag == 1 else 'float'} WAV is not supported")
    if align != width * channels:
        raise AudioFileError(f"{path}: corrupt WAV header (block align {align} for {channels} x {bits} bits)")
    raw = ch[b"data"]
    frames = len(raw) // align
    raw = raw[: frames * align]
    if tag == _FMT_FLOAT:
        x = np.frombuffer(raw, dtype="<f4" if bits == 32 else "<f8").astype(np.float64)
        if not np.isfinite(x).all():
            raise AudioFileError(f"{path}: the float WAV holds NaN or Inf samples")
        return Audio(x.reshape(frames, channels), rate, bits, "float")
    if bits == 8:
        k = np.frombuffer(raw, dtype=np.uint8).astype(np.int64) - 128
    elif bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int64)
        k = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        k = np.where(k >= 1 << 23, k - (1 << 24), k)
    else:
        k = np.frombuffer(raw, dtype=f"<i{width}").astype(np.int64)
    return Audio((k / 2.0 ** (bits - 1)).reshape(frames, channels), rate, bits, "pcm")


def to_pcm_codes(samples: np.ndarray, bits: int) -> np.ndarray:
    """Integer PCM codes round(x · 2^(b−1)), saturated to the b-bit range (int64)."""
    scale = 2.0 ** (bits - 1)
    return np.clip(np.round(np.asarray(samples, dtype=np.float64) * scale), -scale, scale - 1).astype(np.int64)


def encode_wav(samples: np.ndarray, sample_rate: int, bits: int = 16, encoding: str = "pcm") -> bytes:
    """The bytes of a WAV file holding ``samples`` (frames, channels) or (frames,) in [-1, 1)."""
    x = _as_frames(samples)
    frames, channels = x.shape
    if encoding == "float":
        if bits not in (32, 64):
            raise ValueError(f"float WAV has 32 or 64 bits per sample, got bits={bits}")
        payload = x.astype("<f4" if bits == 32 else "<f8").tobytes()
        tag = _FMT_FLOAT
    elif encoding == "pcm":
        if bits not in PCM_BITS:
            raise ValueError(f"PCM WAV bits must be one of {PCM_BITS}, got {bits}; store other depths in the next "
                             f"larger container (their codes stay exact)")
        k = to_pcm_codes(x, bits).reshape(-1)
        if bits == 8:
            payload = (k + 128).astype(np.uint8).tobytes()
        elif bits == 24:
            u = (k & 0xFFFFFF).astype(np.uint32)
            payload = np.stack([u & 0xFF, (u >> 8) & 0xFF, u >> 16], axis=1).astype(np.uint8).tobytes()
        else:
            payload = k.astype(f"<i{bits // 8}").tobytes()
        tag = _FMT_PCM
    else:
        raise ValueError(f"encoding must be 'pcm' or 'float', got {encoding!r}")
    width = bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, int(sample_rate), int(sample_rate) * channels * width,
                      channels * width, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(payload)) + payload
    if len(payload) & 1:
        body += b"\x00"
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _as_frames(samples: Any) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"samples must have shape (frames,) or (frames, channels), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("samples hold NaN or Inf values")
    return x


# ------------------------------------------------------------------------------------------- public API
def read_audio(path: str | os.PathLike) -> Audio:
    """Read a WAV file (parsed here) or any format ``soundfile`` reads (FLAC, OGG, AIFF...).

    Raises :class:`AudioFileError` (a ValueError) for missing, unreadable, non-audio or empty files.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AudioFileError(f"no such audio file: {path}")
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] in (b"RIFF", b"RIFX"):
            audio = _decode_wav(head + f.read(), path)
        else:
            audio = _read_soundfile(path)
    if audio.frames == 0:
        raise AudioFileError(f"{path} holds no samples (zero-length audio)")
    return audio


def _soundfile() -> Any:
    try:
        import soundfile
    except (ImportError, OSError) as exc:
        raise AudioFileError("reading/writing FLAC and other non-WAV formats needs soundfile: "
                             "pip install soundfile") from exc
    return soundfile


def _read_soundfile(path: str) -> Audio:
    sf = _soundfile()
    try:
        info = sf.info(path)
        data, rate = sf.read(path, dtype="float64", always_2d=True)
    except Exception as exc:  # soundfile raises its own LibsndfileError / RuntimeError types
        raise AudioFileError(f"{path} is not a readable audio file ({exc})") from exc
    sub = info.subtype
    digits = "".join(c for c in sub if c.isdigit())
    bits = int(digits) if digits else 16
    encoding = "float" if sub in ("FLOAT", "DOUBLE") else "pcm"
    if sub == "FLOAT":
        bits = 32
    elif sub == "DOUBLE":
        bits = 64
    return Audio(np.asarray(data, dtype=np.float64), int(rate), bits, encoding)


def write_audio(path: str | os.PathLike, samples: Any, sample_rate: int, bits: int = 16,
                encoding: str = "pcm") -> None:
    """Write ``samples`` (frames[, channels], values in [-1, 1)) atomically: WAV (any of 8/16/24/32-bit
    PCM, 32/64-bit float) by extension .wav, otherwise through soundfile (FLAC: 8/16/24-bit PCM).
    PCM values are rounded to the nearest code and saturated."""
    from .._files import atomic_write_bytes

    path = os.fspath(path)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate < 1:
        raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    if path.lower().endswith((".wav", ".wave")):
        atomic_write_bytes(path, encode_wav(samples, int(sample_rate), bits, encoding))
        return
    sf = _soundfile()
    x = _as_frames(samples)
    fmt = os.path.splitext(path)[1].lstrip(".").upper()
    subtype = ("FLOAT" if bits == 32 else "DOUBLE") if encoding == "float" else f"PCM_{bits if bits != 8 else 'S8'}"
    if encoding == "pcm":
        x = to_pcm_codes(x, bits) / 2.0 ** (bits - 1)
    buf = io.BytesIO()
    try:
        sf.write(buf, x, int(sample_rate), subtype=subtype, format=fmt)
    except Exception as exc:
        raise ValueError(f"soundfile cannot write {fmt} with {subtype}: {exc}") from exc
    atomic_write_bytes(path, buf.getvalue())


__all__ = ["Audio", "AudioFileError", "PCM_BITS", "encode_wav", "read_audio", "to_pcm_codes", "write_audio"]
