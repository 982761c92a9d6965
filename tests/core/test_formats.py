import math

import ml_dtypes
import numpy as np
import pytest
import torch

import quantscope as qs
from quantscope.core import grid
from quantscope.core.formats import format_from_dict, format_to_dict


@pytest.mark.parametrize("fmt, max_value, min_sub, bits", [
    (qs.fp8_e4m3(), 448.0, 2.0**-9, 8),
    (qs.fp8_e5m2(), 57344.0, 2.0**-16, 8),
    (qs.fp6_e3m2(), 28.0, 2.0**-4, 6),
    (qs.fp6_e2m3(), 7.5, 2.0**-3, 6),
    (qs.fp4_e2m1(), 6.0, 0.5, 4),
    (qs.fp16(), 65504.0, 2.0**-24, 16),
    (qs.bf16(), float(torch.finfo(torch.bfloat16).max), 2.0**-133, 16),
])
def test_float_format_constants(fmt, max_value, min_sub, bits):
    assert fmt.max_value == max_value
    assert fmt.min_subnormal == min_sub
    assert fmt.bits == bits


# Every code of every small float format decodes to the same value as the reference dtype.
@pytest.mark.parametrize("fmt, ref", [
    (qs.fp8_e4m3(), ml_dtypes.float8_e4m3fn), (qs.fp8_e5m2(), ml_dtypes.float8_e5m2),
    (qs.fp6_e3m2(), ml_dtypes.float6_e3m2fn), (qs.fp6_e2m3(), ml_dtypes.float6_e2m3fn),
    (qs.fp4_e2m1(), ml_dtypes.float4_e2m1fn), (qs.fp16(), np.float16), (qs.bf16(), ml_dtypes.bfloat16),
])
def test_decode_table_matches_reference_dtype(fmt, ref):
    table = grid.float_table(fmt).numpy()
    n = 2**fmt.bits
    raw = np.arange(n, dtype=np.uint16 if fmt.bits == 16 else np.uint8)
    expected = raw.view(ref).astype(np.float32) if fmt.bits in (8, 16) else raw.astype(np.uint8).view(ref).astype(
        np.float32)
    np.testing.assert_array_equal(table, expected)  # NaNs compare equal in assert_array_equal


def test_encode_inverts_decode_for_every_finite_code():
    for fmt in (qs.fp8_e4m3(), qs.fp8_e5m2(), qs.fp6_e3m2(), qs.fp6_e2m3(), qs.fp4_e2m1(), qs.fp16(), qs.bf16()):
        table = grid.float_table(fmt)
        codes = torch.arange(2**fmt.bits)
        finite = torch.isfinite(table)
        enc = grid.float_encode(table[finite], fmt).to(torch.int64) & (2**fmt.bits - 1)
        assert torch.equal(enc, codes[finite]), fmt.name


def test_nf4_levels_are_the_published_values():
    assert qs.nf4().levels == qs.NF4_LEVELS
    assert len(qs.NF4_LEVELS) == 16 and qs.NF4_LEVELS[7] == 0.0
    assert qs.NF4_LEVELS[0] == -1.0 and qs.NF4_LEVELS[-1] == 1.0
    assert qs.NF4_LEVELS[8] == 0.07958029955625534 and qs.NF4_LEVELS[1] == -0.6961928009986877
    assert qs.nf4().bits == 4


def test_log2_codebook_levels():
    f = qs.log2_codebook(4)
    mags = sorted({abs(v) for v in f.levels} - {0.0})
    assert mags == [2.0**-k for k in range(6, -1, -1)]
    assert len(f.levels) == 15 and f.bits == 4
    assert all(math.log2(m).is_integer() for m in mags)


def test_int_ranges():
    assert (qs.int8().qmin, qs.int8().qmax) == (-128, 127)
    assert (qs.int8(restricted_range=True).qmin, qs.int8(restricted_range=True).qmax) == (-127, 127)
    assert (qs.uint8().qmin, qs.uint8().qmax) == (0, 255)
    assert (qs.int4().qmin, qs.int4().qmax) == (-8, 7)
    assert (qs.integer(16, signed=False).qmax) == 65535
    assert qs.integer(1, signed=False).qmax == 1


def test_fixed_point_q_notation():
    f = qs.fixed(m=3, n=12)
    assert f.word_length == 16 and f.fraction_length == 12 and f.step == 2.0**-12
    g = qs.fixed(word_length=8, fraction_length=7)
    assert (g.qmin, g.qmax) == (-128, 127)


@pytest.mark.parametrize("make, exc, words", [
    (lambda: qs.integer(0), ValueError, "bits"),
    (lambda: qs.integer(17), ValueError, "bits"),
    (lambda: qs.integer(8.0), TypeError, "bits"),
    (lambda: qs.integer(1), ValueError, "no positive level"),
    (lambda: qs.uint8(restricted_range=True), ValueError, "restricted"),
    (lambda: qs.codebook([0.0, 1.0, 0.5]), ValueError, "increasing"),
    (lambda: qs.codebook([0.0, float("nan")]), ValueError, "finite"),
    (lambda: qs.codebook([1.0]), ValueError, "between 2"),
    (lambda: qs.codebook([-0.5, 0.5], normalized=True), ValueError, "max |level|"),
    (lambda: qs.minifloat(9, 2), ValueError, "exp_bits"),
    (lambda: qs.fixed(m=3), ValueError, "n"),
    (lambda: qs.QuantSpec(qs.int8(), rounding="banker"), ValueError, "unknown rounding"),
    (lambda: qs.QuantSpec(qs.fp8_e4m3(), overflow="wrap"), ValueError, "wrap"),
    (lambda: qs.QuantSpec(qs.fp4_e2m1(), overflow="nonsaturating"), ValueError, "nonsaturating"),
    (lambda: qs.QuantSpec(qs.mxfp4(), granularity=qs.per_tensor()), ValueError, "per_group(32"),
    (lambda: qs.QuantSpec("int8"), TypeError, "format"),
])
def test_bad_format_arguments_raise_clear_errors(make, exc, words):
    with pytest.raises(exc, match=None) as info:
        make()
    assert words in str(info.value)


@pytest.mark.parametrize("fmt", [qs.int8(), qs.int4(symmetric=False), qs.fixed(m=3, n=4), qs.fp8_e4m3(),
                                 qs.bf16(), qs.nf4(), qs.log2_codebook(3), qs.mxfp4(), qs.mxint8()])
def test_format_and_spec_serialization_round_trip(fmt):
    assert format_from_dict(format_to_dict(fmt)) == fmt
    spec = qs.QuantSpec(fmt, rounding="floor" if not isinstance(fmt, qs.MXFormat) else "nearest")
    assert qs.QuantSpec.from_dict(spec.to_dict()) == spec


def test_spec_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown QuantSpec keys"):
        qs.QuantSpec.from_dict({"format": format_to_dict(qs.int8()), "bits": 8})
    with pytest.raises(ValueError, match="unknown keys"):
        format_from_dict({"type": "IntFormat", "bits": 8, "colour": "red"})
