"""OCP Microscaling (MX v1.0): shared exponent = floor(log2(amax)) - emax_elem, elements saturate.

Worked examples follow the conversion algorithm of the OCP MX spec (section 6.3) step by step.
"""

import numpy as np
import pytest
import torch

import quantscope as qs
from quantscope.core import kernels

PATHS = ["kernel", "reference"]


def quant(x, fmt, path):
    x = torch.as_tensor(x, dtype=torch.float32).reshape(1, -1)
    if path == "kernel":
        return qs.quantize(x, fmt)
    with kernels.disabled():
        return qs.quantize(x, fmt)


def block(*values):
    """A 32-element block: the given values followed by zeros."""
    out = np.zeros(32, dtype=np.float32)
    out[: len(values)] = values
    return out


@pytest.mark.parametrize("path", PATHS)
def test_mxfp4_worked_example(path):
    # amax 5.0: floor(log2 5) = 2, emax(E2M1) = 2 -> X = 2^0. Elements: 5 -> tie between 4 and 6 -> even
    # mantissa -> 4; 0.3 -> 0.5 (nearest of 0, 0.5); -1.25 -> tie between -1 and -1.5 -> -1; 2.9 -> 3.
    q = quant(block(5.0, 0.3, -1.25, 2.9, 0.2), qs.mxfp4(), path)
    assert q.scale.reshape(-1).tolist() == [1.0]
    assert q.dequantize().reshape(-1)[:5].tolist() == [4.0, 0.5, -1.0, 3.0, 0.0]
    assert q.codes.reshape(-1)[:4].tolist() == [0b0110, 0b0001, 0b1010, 0b0101]


@pytest.mark.parametrize("path", PATHS)
def test_mxfp4_amax_above_element_max_saturates(path):
    # amax 7.9: X = 2^(2 - 2) = 1, 7.9 / X = 7.9 > 6 (E2M1 max normal) -> clamped to 6
    q = quant(block(7.9, -7.0, 1.0), qs.mxfp4(), path)
    assert q.dequantize().reshape(-1)[:3].tolist() == [6.0, -6.0, 1.0]


@pytest.mark.parametrize("path", PATHS)
def test_mxfp8_e4m3_worked_example(path):
    # amax 1000: floor(log2 1000) = 9, emax(E4M3) = 8 -> X = 2; 1000/2 = 500 > 448 -> 448 -> 896
    q = quant(block(1000.0, 3.0, -0.01), qs.mxfp8_e4m3(), path)
    assert q.scale.reshape(-1).tolist() == [2.0]
    got = q.dequantize().reshape(-1)[:3].tolist()
    assert got[0] == 896.0 and got[1] == 3.0
    # -0.01/2 = -0.005 is below E4M3's min normal 2^-6: subnormal step 2^-9, 0.005 / 2^-9 = 2.56 -> 3
    assert got[2] == -3 * 2.0**-9 * 2


@pytest.mark.parametrize("path", PATHS)
def test_mxfp8_e5m2_and_fp6_shared_exponents(path):
    for fmt, emax in [(qs.mxfp8_e5m2(), 15), (qs.mxfp6_e3m2(), 4), (qs.mxfp6_e2m3(), 2), (qs.mxfp4(), 2)]:
        for amax in [1e-20, 0.3, 1.0, 5.0, 1e20]:
            q = quant(block(amax, -amax / 3), fmt, path)
            expect = 2.0 ** (np.floor(np.log2(np.float32(amax))) - emax)
            assert q.scale.reshape(-1)[0].item() == np.float32(expect), (fmt.name, amax)


@pytest.mark.parametrize("path", PATHS)
def test_mxint8_worked_example(path):
    # amax 3.0: floor(log2 3) = 1, emax(INT8) = 0 -> X = 2. Elements are 1.6 fixed point (step 2^-6):
    # 3.0/2 = 1.5 = 96/64 (exact); 0.1/2 = 0.05 -> round(3.2) = 3 -> 3/64*2 = 0.09375
    q = quant(block(3.0, 0.1, -2.99), qs.mxint8(), path)
    assert q.scale.reshape(-1).tolist() == [2.0]
    assert q.codes.reshape(-1)[:3].tolist() == [96, 3, -96]
    assert q.dequantize().reshape(-1)[:2].tolist() == [3.0, 0.09375]
    # codes are symmetric: -127..127 (sign-magnitude), never -128
    q = quant(block(-1.999, 1.0), qs.mxint8(), path)
    assert q.codes.min().item() >= -127


@pytest.mark.parametrize("path", PATHS)
def test_zero_block_and_e8m0_clamping(path):
    q = quant(block(), qs.mxfp4(), path)
    assert q.scale.reshape(-1).tolist() == [2.0**-127]
    assert q.dequantize().abs().max().item() == 0.0
    q = quant(block(3e38), qs.mxfp8_e4m3(), path)  # floor(log2 3e38) - 8 = 119: inside E8M0
    assert q.scale.item() == 2.0**119


def test_mx_storage_is_element_bits_plus_one_byte_per_block():
    x = torch.randn(128, 256)
    for fmt, bpv in [(qs.mxfp4(), 4.25), (qs.mxfp6_e3m2(), 6.25), (qs.mxfp8(), 8.25), (qs.mxint8(), 8.25)]:
        q = qs.quantize(x, fmt)
        assert q.bits_per_value == bpv
        assert q.packed()["scale"].dtype == torch.uint8


def test_mx_short_last_block_and_other_axis():
    x = torch.randn(8, 70, generator=torch.Generator().manual_seed(0))
    q = qs.quantize(x, qs.mxfp4())
    assert q.scale.shape == (8, 3)
    amax_last = x[:, 64:].abs().amax(dim=1)
    assert torch.equal(q.scale[:, 2], 2.0 ** (torch.floor(torch.log2(amax_last)) - 2))
    spec = qs.QuantSpec(qs.mxfp4(), granularity=qs.per_group(32, axis=0))
    y = qs.fake_quantize(x.T.contiguous(), spec)
    assert torch.equal(y, qs.fake_quantize(x, qs.mxfp4()).T)
