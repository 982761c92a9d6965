import os

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import quantscope as qs
from quantscope.core.packing import pack_4bit_u8, pack_bits, packed_nbytes, unpack_4bit_u8, unpack_bits


@given(bits=st.integers(1, 16), n=st.integers(1, 3000), signed=st.booleans(), seed=st.integers(0, 2**16))
def test_pack_unpack_round_trip(bits, n, signed, seed):
    g = torch.Generator().manual_seed(seed)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1)) if signed else (0, 2**bits)
    codes = torch.randint(lo, hi, (n,), generator=g, dtype=torch.int32)
    buf = pack_bits(codes, bits)
    assert buf.dtype == torch.uint8 and buf.numel() == packed_nbytes(n, bits) == (n * bits + 7) // 8
    assert torch.equal(unpack_bits(buf, bits, n, signed), codes)


def test_general_path_crosses_chunks():
    codes = torch.arange(3 * (1 << 20) + 5, dtype=torch.int32) % 61
    assert torch.equal(unpack_bits(pack_bits(codes, 6), 6, codes.numel()), codes)


def test_4bit_layout_low_nibble_first():
    buf = pack_4bit_u8(torch.tensor([1, 2, 15, 0, 7], dtype=torch.uint8))
    assert buf.tolist() == [0x21, 0x0F, 0x07]
    assert unpack_4bit_u8(buf, 5).tolist() == [1, 2, 15, 0, 7]


def test_bit_stream_is_lsb_first():
    assert pack_bits(torch.tensor([1, 0, 1, 1, 0, 0, 0, 0, 1]), 1).tolist() == [0b00001101, 0b1]
    assert pack_bits(torch.tensor([0b101, 0b011, 0b111]), 3).tolist() == [0b11011101, 0b1]
    assert pack_bits(torch.tensor([0x1234], dtype=torch.int32), 16).tolist() == [0x34, 0x12]


def test_unpack_rejects_wrong_sizes():
    with pytest.raises(ValueError, match="need 2 bytes"):
        unpack_bits(torch.zeros(3, dtype=torch.uint8), 4, 4)
    with pytest.raises(TypeError, match="uint8"):
        unpack_bits(torch.zeros(2, dtype=torch.int16), 4, 4)
    with pytest.raises(TypeError, match="integer"):
        pack_bits(torch.zeros(2), 4)


SPECS = [
    qs.QuantSpec(qs.int4(), granularity=qs.per_group(128, axis=1)),
    qs.QuantSpec(qs.int8(symmetric=False), granularity=qs.per_channel(0)),
    qs.QuantSpec(qs.integer(3), granularity=qs.per_channel(1)),
    qs.QuantSpec(qs.integer(12, symmetric=False), scale_dtype="float16"),
    qs.QuantSpec(qs.int8(power_of_two_scale=True), granularity=qs.per_channel(0)),
    qs.QuantSpec(qs.fixed(m=3, n=4)),
    qs.QuantSpec(qs.fp8_e4m3(), scale_dtype="bfloat16"),
    qs.QuantSpec(qs.fp6_e2m3(), granularity=qs.per_token()),
    qs.QuantSpec(qs.bf16()),
    qs.QuantSpec(qs.nf4()),
    qs.QuantSpec(qs.log2_codebook(3), granularity=qs.per_channel(0)),
    qs.QuantSpec(qs.mxfp4()),
    qs.QuantSpec(qs.mxint8()),
]


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_nbytes_equals_bytes_written_and_file_round_trips(spec, tmp_path):
    x = torch.randn(48, 300, generator=torch.Generator().manual_seed(9))
    q = qs.quantize(x, spec)
    path = tmp_path / "w.safetensors"
    q.to_safetensors(path)
    raw = path.read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    assert len(raw) - 8 - header_len == q.nbytes
    r = qs.QTensor.load(path)
    assert torch.equal(r.codes, q.codes)
    assert torch.equal(r.dequantize(), q.dequantize())
    assert r.spec == q.spec and r.shape == q.shape
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temporary file left behind


def test_nbytes_of_int4_per_group():
    x = torch.randn(256, 1024)
    q = qs.quantize(x, qs.QuantSpec(qs.int4(), granularity=qs.per_group(128, axis=1)))
    assert q.nbytes == 256 * 1024 // 2 + 256 * 8 * 4  # 4-bit codes + one fp32 scale per 128
    assert q.bits_per_value == 4.25


def test_numpy_round_trip_keeps_numpy(tmp_path):
    x = np.random.default_rng(0).standard_normal((10, 33)).astype(np.float64)
    q = qs.quantize(x, qs.int8())
    q.to_safetensors(tmp_path / "a.safetensors")
    y = qs.QTensor.load(tmp_path / "a.safetensors").dequantize()
    assert isinstance(y, np.ndarray) and y.dtype == np.float64
    np.testing.assert_array_equal(y, q.dequantize())


def test_corrupt_and_foreign_files_get_clear_errors(tmp_path):
    x = torch.randn(10, 64)
    q = qs.quantize(x, qs.int4())
    p = tmp_path / "q.safetensors"
    q.to_safetensors(p)
    data = p.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        qs.QTensor.load(tmp_path / "trunc.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(ValueError, match="corrupt"):
        qs.QTensor.load(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a quantscope QTensor"):
        qs.QTensor.load(tmp_path / "other.safetensors")
    with pytest.raises(FileNotFoundError):
        qs.QTensor.load(tmp_path / "missing.safetensors")


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import safetensors.torch

    def boom(*a, **k):
        path = a[1]
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    q = qs.quantize(torch.randn(4, 8), qs.int8())
    with pytest.raises(OSError, match="disk full"):
        q.to_safetensors(tmp_path / "x.safetensors")
    assert os.listdir(tmp_path) == []
