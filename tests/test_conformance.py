"""Every built-in format x granularity x rounding mode through the same contract.

A format added to ``builtin_formats()`` is covered here the moment it is registered:
round trip (fake_quantize == dequantize(quantize)), fused kernel == torch reference bit for bit,
the guaranteed error bound holds for every in-range element, Q(Q(x)) == Q(x), storage accounting,
and NaN input is rejected with a clear message.
"""

import itertools

import pytest
import torch

import quantscope as qs
from quantscope.core import kernels
from quantscope.core.formats import builtin_formats
from tests.conftest import bits_equal

FORMATS = builtin_formats()
GRANULARITIES = {"tensor": qs.per_tensor(), "channel0": qs.per_channel(0), "channel1": qs.per_channel(1),
                 "group32": qs.per_group(32, axis=-1), "group16_axis0": qs.per_group(16, axis=0),
                 "token": qs.per_token()}
MODES = ["nearest_even", "nearest_away", "floor", "ceil", "toward_zero", "stochastic"]


def cases():
    for (fname, fmt), (gname, gran), mode in itertools.product(FORMATS.items(), GRANULARITIES.items(), MODES):
        if isinstance(fmt, qs.MXFormat):
            if gname not in ("group32",):
                continue
            gran = None
        yield pytest.param(fmt, gran, mode, id=f"{fname}-{gname}-{mode}")


def data(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(40, 3, 70, generator=g) * torch.logspace(-3, 2, 40)[:, None, None]
    x[0, 0, :5] = 0.0
    x[1, 1, :] = 0.37  # a constant row
    return x


@pytest.mark.parametrize("fmt, gran, mode", list(cases()))
def test_contract(fmt, gran, mode):
    x = data()
    spec = qs.QuantSpec(fmt, granularity=gran, rounding=mode)
    gen = lambda: torch.Generator().manual_seed(11)  # noqa: E731
    q = qs.quantize(x, spec, generator=gen())
    y = qs.fake_quantize(x, spec, generator=gen())
    assert bits_equal(q.dequantize(), y)  # round trip
    if mode != "stochastic":
        with kernels.disabled():
            y_ref = qs.fake_quantize(x, spec)
            q_ref = qs.quantize(x, spec)
        assert bits_equal(y, y_ref) and torch.equal(q.codes, q_ref.codes)  # kernel == reference
    report = qs.error(x, q, theory=False)
    assert report.bound_holds, report
    if mode != "stochastic":  # idempotent with the same parameters
        params = None if q.scale is None or isinstance(fmt, qs.FixedFormat) else qs.QParams(q.scale, q.zero_point)
        assert bits_equal(qs.fake_quantize(y, spec, qparams=params), y)
    assert q.nbytes >= x.numel() * fmt.bits // 8
    assert q.codes.shape == x.shape


@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=list(FORMATS))
def test_nan_rejected(fmt):
    x = data()
    x[3, 1, 4] = float("nan")
    with pytest.raises(ValueError, match=r"1 NaN and 0 Inf .*\(3, 1, 4\)"):
        qs.quantize(x, fmt)


@pytest.mark.parametrize("fmt", list(FORMATS.values()), ids=list(FORMATS))
def test_round_to_nearest_beats_directed_modes(fmt):
    x = data(1)
    mse = {m: qs.error(x, qs.quantize(x, qs.QuantSpec(fmt, rounding=m)), theory=False).mse
           for m in ("nearest_even", "floor")}
    assert mse["nearest_even"] <= mse["floor"]
