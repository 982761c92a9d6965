"""Audio files: WAV round trips at every depth (checked against soundfile and the stdlib wave module),
FLAC through soundfile, and clear errors for missing, non-audio, corrupt and empty files."""

import struct
import wave

import numpy as np
import pytest

from quantscope.signal.audio import AudioFileError, encode_wav, read_audio, to_pcm_codes, write_audio

RNG = np.random.default_rng(0)
STEREO = RNG.uniform(-1, 1, (1001, 2))
MONO = RNG.uniform(-1, 1, 777)


@pytest.mark.parametrize("bits", [8, 16, 24, 32])
@pytest.mark.parametrize("x", [MONO, STEREO], ids=["mono", "stereo"])
def test_pcm_wav_round_trip_is_exact_at_every_depth(tmp_path, bits, x):
    path = tmp_path / f"a{bits}.wav"
    write_audio(path, x, 8000, bits=bits)
    a = read_audio(path)
    expected = (to_pcm_codes(x, bits) / 2.0 ** (bits - 1)).reshape(a.samples.shape)
    assert (a.sample_rate, a.bits, a.encoding, a.frames) == (8000, bits, "pcm", x.shape[0])
    assert np.array_equal(a.samples, expected)
    assert np.max(np.abs(a.samples - x.reshape(a.samples.shape))) <= 2.0 ** -bits * (1 + 1e-9) + 2.0 ** -(bits - 1)
    write_audio(tmp_path / "again.wav", a.samples, 8000, bits=bits)  # codes survive a second trip unchanged
    assert (tmp_path / "again.wav").read_bytes() == path.read_bytes()
    with wave.open(str(path)) as w:  # the stdlib reads our files
        assert (w.getnchannels(), w.getsampwidth() * 8, w.getframerate(), w.getnframes()) == (
            a.channels, bits, 8000, a.frames)


@pytest.mark.parametrize("bits", [8, 16, 24, 32])
def test_our_wav_matches_soundfile(tmp_path, bits):
    sf = pytest.importorskip("soundfile")
    path = tmp_path / "a.wav"
    write_audio(path, STEREO, 44100, bits=bits)
    ref, rate = sf.read(str(path), dtype="float64", always_2d=True)
    assert rate == 44100 and np.array_equal(read_audio(path).samples, ref)


@pytest.mark.parametrize("subtype,bits,encoding", [("PCM_U8", 8, "pcm"), ("PCM_16", 16, "pcm"), ("PCM_24", 24, "pcm"),
                                                  ("PCM_32", 32, "pcm"), ("FLOAT", 32, "float"),
                                                  ("DOUBLE", 64, "float")])
@pytest.mark.parametrize("container", ["WAV", "WAVEX"])
def test_we_read_wav_files_written_by_soundfile(tmp_path, subtype, bits, encoding, container):
    sf = pytest.importorskip("soundfile")
    path = tmp_path / "b.wav"
    sf.write(str(path), STEREO * 0.9, 16000, subtype=subtype, format=container)
    ref, _ = sf.read(str(path), dtype="float64", always_2d=True)
    a = read_audio(path)
    assert (a.bits, a.encoding, a.channels) == (bits, encoding, 2)
    assert np.array_equal(a.samples, ref)


def test_float_wav_round_trip(tmp_path):
    write_audio(tmp_path / "f.wav", STEREO, 48000, bits=32, encoding="float")
    a = read_audio(tmp_path / "f.wav")
    assert a.encoding == "float" and np.array_equal(a.samples, STEREO.astype(np.float32).astype(np.float64))
    write_audio(tmp_path / "d.wav", STEREO, 48000, bits=64, encoding="float")
    assert np.array_equal(read_audio(tmp_path / "d.wav").samples, STEREO)


@pytest.mark.parametrize("bits", [16, 24])
def test_flac_round_trip_through_soundfile(tmp_path, bits):
    pytest.importorskip("soundfile")
    write_audio(tmp_path / "a.flac", STEREO, 22050, bits=bits)
    a = read_audio(tmp_path / "a.flac")
    assert (a.bits, a.sample_rate) == (bits, 22050)
    assert np.array_equal(a.samples, to_pcm_codes(STEREO, bits) / 2.0 ** (bits - 1))


def test_streamed_wav_with_an_oversized_data_chunk_keeps_the_frames_there(tmp_path):
    data = bytearray(encode_wav(MONO, 8000, 16))
    pos = data.index(b"data")
    data[pos + 4:pos + 8] = struct.pack("<I", 0xFFFFFFFF)  # as streaming writers leave it
    (tmp_path / "s.wav").write_bytes(bytes(data))
    assert read_audio(tmp_path / "s.wav").frames == MONO.size


def test_unreadable_and_non_audio_files(tmp_path):
    with pytest.raises(AudioFileError, match="no such audio file"):
        read_audio(tmp_path / "missing.wav")
    (tmp_path / "text.wav").write_text("hello, I am not audio")
    with pytest.raises(AudioFileError, match="not a readable audio file"):
        read_audio(tmp_path / "text.wav")
    (tmp_path / "noise.flac").write_bytes(bytes(RNG.integers(0, 256, 500, dtype=np.uint8)))
    with pytest.raises(AudioFileError, match="not a readable audio file"):
        read_audio(tmp_path / "noise.flac")
    good = encode_wav(MONO, 8000, 16)
    (tmp_path / "nofmt.wav").write_bytes(b"RIFF" + struct.pack("<I", 4) + b"WAVE")
    with pytest.raises(AudioFileError, match="no 'fmt' chunk"):
        read_audio(tmp_path / "nofmt.wav")
    (tmp_path / "cut.wav").write_bytes(good[:40])  # header cut before the data chunk
    with pytest.raises(AudioFileError, match="no 'data' chunk"):
        read_audio(tmp_path / "cut.wav")
    bad_align = bytearray(good)
    bad_align[32:34] = struct.pack("<H", 3)
    (tmp_path / "align.wav").write_bytes(bytes(bad_align))
    with pytest.raises(AudioFileError, match="block align"):
        read_audio(tmp_path / "align.wav")


def test_zero_length_and_unsupported_encodings(tmp_path):
    write_audio(tmp_path / "empty.wav", np.zeros((0, 1)), 8000)
    with pytest.raises(AudioFileError, match="zero-length"):
        read_audio(tmp_path / "empty.wav")
    sf = pytest.importorskip("soundfile")
    sf.write(str(tmp_path / "mu.wav"), MONO * 0.5, 8000, subtype="ULAW")
    with pytest.raises(AudioFileError, match="mu-law is not supported"):
        read_audio(tmp_path / "mu.wav")


def test_write_errors(tmp_path):
    with pytest.raises(ValueError, match="PCM WAV bits must be one of"):
        write_audio(tmp_path / "x.wav", MONO, 8000, bits=12)
    with pytest.raises(ValueError, match="sample_rate"):
        write_audio(tmp_path / "x.wav", MONO, 0)
    with pytest.raises(ValueError, match="NaN"):
        write_audio(tmp_path / "x.wav", np.array([0.1, np.nan]), 8000)
    assert not (tmp_path / "x.wav").exists()
