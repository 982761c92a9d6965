"""quantize, dequantize, fake_quantize: the three operations everything else is built on.

For a uniform format the whole story is

    q = clamp(round(x / Δ) + z, qmin, qmax)        x̂ = (q - z) · Δ        |x - x̂| <= Δ/2 in range

(computed as ``x * (1/Δ)`` in float32, exactly as ``torch.fake_quantize_per_*_affine`` does).
Float formats round to the nearest representable float, codebooks to the nearest level, MX formats
first derive a power-of-two scale per block. On CPU a fused C kernel does each in one pass; the torch
code below is the reference it is tested against, and runs everywhere else (GPU, stochastic rounding,
wrap-around overflow).
"""

from __future__ import annotations

from typing import Any

import torch

from . import grid, kernels
from .arrays import as_float_tensor, describe_nonfinite
from .formats import CodebookFormat, FixedFormat, FloatFormat, Format, IntFormat, MXFormat
from .granularity import Layout, PerTokenNormalized
from .qtensor import QTensor, _flat_layout, code_dtype
from .scales import pow2
from .spec import QParams, QuantSpec, as_spec

# A histogram calibrator named by string and fitted on this one tensor keeps groups of up to this many
# values exact (a weight row of up to 64k inputs): the range search then evaluates the true error.
EXACT_GROUP_LIMIT = 1 << 16


# ------------------------------------------------------------------------------------ parameters
def _check_qparams(qp: QParams, spec: QuantSpec, layout: Layout, device: torch.device
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """User-given parameters as float32 / int32 tensors of the layout's 3-d parameter shape, on ``device``."""
    if not isinstance(qp, QParams):
        raise TypeError(f"qparams must be a qs.QParams, got {type(qp).__name__}")
    scale = torch.as_tensor(qp.scale, dtype=torch.float32).to(device)
    n = layout.p_outer * layout.n_groups * layout.p_inner
    if scale.numel() == 1:
        scale = scale.reshape(1).expand(n).contiguous()
    if scale.numel() != n:
        raise ValueError(f"qparams.scale has {scale.numel()} values but {spec.granularity} on shape "
                         f"{layout.shape} needs {n} (parameter shape {layout.param_shape})")
    if not bool(torch.isfinite(scale).all()) or bool((scale <= 0).any()):
        raise ValueError("qparams.scale must be positive and finite everywhere")
    zp = None
    fmt = spec.format
    if qp.zero_point is not None:
        if not (isinstance(fmt, IntFormat) and not fmt.symmetric):
            raise ValueError(f"{fmt.name} is symmetric: leave qparams.zero_point as None "
                             f"(use qs.int8(symmetric=False) for a zero point)")
        zp = torch.as_tensor(qp.zero_point).to(device)
        if zp.dtype.is_floating_point and not bool((zp == zp.round()).all()):
            raise ValueError("qparams.zero_point must hold integers")
        zp = zp.to(torch.int32)
        if zp.numel() == 1:
            zp = zp.reshape(1).expand(n).contiguous()
        if zp.numel() != n:
            raise ValueError(f"qparams.zero_point has {zp.numel()} values, expected {n}")
        if bool((zp < fmt.qmin).any()) or bool((zp > fmt.qmax).any()):
            raise ValueError(f"qparams.zero_point must lie in [{fmt.qmin}, {fmt.qmax}]")
    elif isinstance(fmt, IntFormat) and not fmt.symmetric:
        zp = torch.zeros(n, dtype=torch.int32, device=device)
    shape3 = layout.param_shape3
    return scale.reshape(shape3).contiguous(), None if zp is None else zp.reshape(shape3).contiguous()


# ---------------------------------------------------------------------------------- the one path
class _Prepared:
    """Input, layout and parameters, ready for the kernel or the reference path."""

    def __init__(self, x: Any, spec: QuantSpec | Format, calibrator: Any, qparams: QParams | None):
        self.spec = spec = as_spec(spec)
        t, self.origin = as_float_tensor(x)
        self.layout = layout = spec.granularity.layout(tuple(t.shape))
        work = t.detach().to(torch.float32).contiguous()
        self.nonfinite: torch.Tensor | None = None
        if spec.nonfinite == "propagate":
            mask = ~torch.isfinite(work)
            if bool(mask.any()):
                self.nonfinite = mask
        self.clean = work if self.nonfinite is None else torch.where(self.nonfinite, 0.0, work)
        self.row_max: torch.Tensor | None = None
        if isinstance(spec.granularity, PerTokenNormalized):  # quantize x / max|x_row|, multiply back later
            self.row_max = spec.granularity.row_max(self.clean)  # NaN/Inf show up here (clean has none else)
            if not bool(torch.isfinite(self.row_max).all()):
                self.raise_nonfinite_in(work)  # name them before an Inf turns its whole row into NaN
            work = work / self.row_max
            self.clean = work if self.nonfinite is None else torch.where(self.nonfinite, 0.0, work)
        self.work = work
        self.checked = False  # have we already proven there is no NaN/Inf?
        fmt = spec.format
        self.scale: torch.Tensor | None = None
        self.zero_point: torch.Tensor | None = None
        self.mx_fused = False
        if (qparams is not None or calibrator is not None) and (isinstance(fmt, FixedFormat) or not fmt.scaled):
            what = "qparams" if qparams is not None else "a calibrator"
            raise ValueError(f"{fmt.name} has a fixed scale; do not pass {what} (for a fitted scale use "
                             f"a scaled format, e.g. qs.fp8_e4m3(scaled=True) or qs.codebook(..., normalized=True))")
        if qparams is not None:
            self.scale, self.zero_point = _check_qparams(qparams, spec, layout, work.device)
        elif isinstance(fmt, FixedFormat):
            self.scale = torch.tensor([fmt.step], dtype=torch.float32, device=work.device)
            self.layout = _flat_layout(layout)
        elif not fmt.scaled:
            self.layout = _flat_layout(layout)
        elif (isinstance(fmt, MXFormat) and calibrator in (None, "minmax")
              and layout.inner == 1 and kernels.usable(work, spec.rounding)):
            self.mx_fused = True  # the kernel derives the block scales in the same pass
        else:
            from ..calibrate import resolve_calibrator

            cal = resolve_calibrator(calibrator, spec)
            fitted_here = not cal.is_fitted
            per_group = layout.numel // max(1, layout.n_params)
            if (fitted_here and isinstance(calibrator, str) and hasattr(cal, "raw_limit")
                    and per_group <= EXACT_GROUP_LIMIT):
                cal.raw_limit = max(cal.raw_limit, per_group)  # seen once: search on the exact values, not bins
            if fitted_here:
                cal.update(self.clean)  # raises on NaN/Inf (unless nonfinite='propagate')
            self.scale, self.zero_point = _check_qparams(cal.qparams(), spec, layout, work.device)
            self.checked = fitted_here

    def raise_nonfinite(self) -> None:
        self.raise_nonfinite_in(self.work)

    @staticmethod
    def raise_nonfinite_in(t: torch.Tensor) -> None:
        msg = describe_nonfinite(t)
        if msg:
            raise ValueError(msg)

    def after_kernel(self, bad: int) -> None:
        if bad and self.spec.nonfinite == "error":
            self.raise_nonfinite()

    def before_reference(self) -> None:
        if not self.checked and self.spec.nonfinite == "error":
            self.raise_nonfinite()

    def user_scale(self) -> torch.Tensor | None:
        fmt = self.spec.format
        if self.scale is None or isinstance(fmt, FixedFormat):
            return None
        return self.scale.reshape(self.spec.granularity.layout(self.layout.shape).param_shape)

    def user_zero_point(self) -> torch.Tensor | None:
        if self.zero_point is None:
            return None
        return self.zero_point.reshape(self.spec.granularity.layout(self.layout.shape).param_shape)


def _keep_tiny(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A nonzero x never scales to 0 (floor/ceil of tiny values stay on the right side of zero)."""
    tiny = torch.copysign(torch.full_like(t, torch.finfo(torch.float32).smallest_normal * 2.0**-23), x)
    return torch.where((t == 0) & (x != 0), tiny, t)


def _reference(p: _Prepared, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, codes) by the torch reference path."""
    spec, fmt, layout = p.spec, p.spec.format, p.layout
    x4 = layout.grouped(p.clean)
    s4 = None if p.scale is None else layout.params4(p.scale)
    if isinstance(fmt, (IntFormat, FixedFormat)):
        z4 = 0.0 if p.zero_point is None else layout.params4(p.zero_point.float())
        q = grid.int_round(_keep_tiny(x4 * (1.0 / s4), x4), fmt, spec.rounding, spec.overflow, z4, generator,
                           x4, s4)
        values, codes = (q - z4) * s4, q.to(grid.int_code_dtype(fmt))
    elif isinstance(fmt, FloatFormat):
        y = x4 if s4 is None else _keep_tiny(x4 * (1.0 / s4), x4)
        q = grid.float_round(y, fmt, spec.rounding, spec.overflow, generator, x4, 1.0 if s4 is None else s4)
        values, codes = (q if s4 is None else q * s4), grid.float_encode(q, fmt)
    elif isinstance(fmt, CodebookFormat):
        y = x4 if s4 is None else x4 * (1.0 / s4)
        idx = grid.codebook_index(y, fmt, spec.rounding, generator, x4, 1.0 if s4 is None else s4)
        q = torch.tensor(fmt.levels, dtype=torch.float32, device=idx.device)[idx]
        values, codes = (q if s4 is None else q * s4), idx.to(grid.codebook_code_dtype(fmt))
    else:
        v = grid.mx_element_round(_keep_tiny(x4 / s4, x4), fmt, spec.rounding, generator)
        values, codes = v * s4, grid.mx_element_encode(v, fmt)
    return layout.ungroup(values), layout.ungroup(codes)


def _kernel_ok(p: _Prepared) -> bool:
    fmt, spec = p.spec.format, p.spec
    if not kernels.usable(p.work, spec.rounding) or spec.overflow == "wrap":
        return False
    if isinstance(fmt, MXFormat):
        return p.mx_fused
    return isinstance(fmt, (IntFormat, FixedFormat, FloatFormat))


def _run(p: _Prepared, want: str, generator: torch.Generator | None, out: torch.Tensor | None = None
         ) -> tuple[torch.Tensor, Any]:
    """``want='values'`` -> fake-quantized float32 values (written into ``out`` when the kernel can);
    ``'codes'`` -> codes."""
    fmt, spec, layout = p.spec.format, p.spec, p.layout
    passthrough = p.nonfinite is not None
    if _kernel_ok(p):
        if isinstance(fmt, MXFormat):
            values, codes, scodes, bad = kernels.mx_quant(p.work, layout, fmt, spec.rounding, want == "values",
                                                          want == "codes", code_dtype(spec), passthrough, out)
            p.after_kernel(bad)
            if want == "values":
                return values, None
            p.scale = pow2(scodes.to(torch.int32) - 127)
            return codes, None
        out_dtype = torch.float32 if want == "values" else code_dtype(spec)
        if isinstance(fmt, FloatFormat):
            res, bad = kernels.float_quant(p.work, layout, p.scale, fmt, spec.rounding, spec.overflow, out_dtype,
                                           passthrough, out)
        else:
            res, bad = kernels.int_quant(p.work, layout, p.scale, p.zero_point, fmt, spec.rounding, out_dtype,
                                         passthrough, out)
        p.after_kernel(bad)
        return res, None
    p.before_reference()
    values, codes = _reference(p, generator)
    if want == "values":
        if p.nonfinite is not None:
            values = torch.where(p.nonfinite, p.work, values)
        return values, None
    return codes, None


# ------------------------------------------------------------------------------------ public API
def quantize(x: Any, spec: QuantSpec | Format, *, calibrator: Any = None, qparams: QParams | None = None,
             generator: torch.Generator | None = None) -> QTensor:
    """Quantize ``x`` (numpy array or torch tensor, any float dtype) to a :class:`QTensor`.

    Args:
        spec: a :class:`QuantSpec` or a bare format (``qs.int8()``) with default granularity.
        calibrator: how the range is chosen for scaled formats: a name (``"minmax"``, the default)
            or a calibrator object (fitted objects are used as they are; unfitted ones are fitted on x).
        qparams: explicit scale / zero point (skips calibration), e.g. to reproduce another tool.
        generator: ``torch.Generator`` for ``rounding="stochastic"`` (reproducible draws).

    Guarantee: with round-to-nearest, every element inside the representable range is within half a
    local step of its reconstruction (Δ/2 for integer formats); see :func:`quantscope.error`.
    """
    if isinstance(as_spec(spec).granularity, PerTokenNormalized):
        raise ValueError("per_token_normalized codes need the run-time row maxima to mean anything, and a QTensor "
                         "has no place for them: use qs.fake_quantize for such activations, or per_token()")
    p = _Prepared(x, spec, calibrator, qparams)
    codes, _ = _run(p, "codes", generator)
    nf_index = nf_value = None
    if p.nonfinite is not None:
        nf_index = torch.nonzero(p.nonfinite.reshape(-1)).reshape(-1)
        nf_value = p.work.reshape(-1)[nf_index]
    return QTensor(codes.reshape(p.layout.shape), p.spec, p.user_scale(), p.user_zero_point(), p.origin,
                   nf_index, nf_value)


def dequantize(q: QTensor) -> Any:
    """Values represented by ``q``, in the dtype, device and array type ``q`` was made from."""
    if not isinstance(q, QTensor):
        raise TypeError(f"dequantize expects a QTensor (from qs.quantize), got {type(q).__name__}")
    return q.dequantize()


class _StraightThrough(torch.autograd.Function):
    """Forward: the fake-quantized values. Backward: the gradient passes where x was not clipped."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(keep)
        return values

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (keep,) = ctx.saved_tensors
        return grad * keep.to(grad.dtype), None, None


def _out_buffer(x: Any, out: Any) -> torch.Tensor:
    """Validate ``out`` against ``x`` and return a torch view of it."""
    if isinstance(x, torch.Tensor) != isinstance(out, torch.Tensor):
        raise TypeError(f"out must be the same kind of array as x ({type(x).__name__}), got {type(out).__name__}")
    t = out if isinstance(out, torch.Tensor) else torch.from_numpy(out)
    if tuple(t.shape) != tuple(x.shape) or t.dtype != (x.dtype if isinstance(x, torch.Tensor)
                                                       else torch.from_numpy(x[:0]).dtype):
        raise ValueError(f"out must have x's shape {tuple(x.shape)} and dtype {x.dtype}, "
                         f"got shape {tuple(t.shape)} and dtype {out.dtype}")
    if isinstance(out, torch.Tensor) and out.requires_grad:
        raise ValueError("out= does not support autograd; call fake_quantize without out to get gradients")
    return t


def fake_quantize(x: Any, spec: QuantSpec | Format, *, calibrator: Any = None, qparams: QParams | None = None,
                  generator: torch.Generator | None = None, out: Any = None) -> Any:
    """Quantize then dequantize in one fused pass; same type, dtype and device as ``x``.

    Bit-identical to ``quantize(x, spec).dequantize()``. ``out``: a preallocated array of x's shape and
    dtype to write into (``out=x`` works in place); it is returned. For tensors that require grad, the
    backward pass is the straight-through estimator: gradient 1 where x lies inside the representable
    range, 0 where it was clipped (as in ``torch.fake_quantize_per_tensor_affine``).
    """
    grad = isinstance(x, torch.Tensor) and x.requires_grad and torch.is_grad_enabled()
    if out is not None:
        if grad:
            raise ValueError("out= does not support autograd; call fake_quantize without out to get gradients")
        buf = _out_buffer(x, out)
    p = _Prepared(x, spec, calibrator, qparams)
    direct = out is not None and buf.dtype == torch.float32 and buf.device.type == "cpu" and buf.is_contiguous()
    values, _ = _run(p, "values", generator, buf if direct else None)
    if p.row_max is not None:
        values = values.reshape(p.layout.shape)
        values.mul_(p.row_max.to(values.device))
    if out is not None:
        if values.data_ptr() != buf.data_ptr():
            buf.copy_(values.reshape(buf.shape))
        return out
    values = values.reshape(p.layout.shape)
    result = p.origin.restore(values)
    if grad:
        from .bounds import clip_range

        lo, hi = clip_range(p.spec, p.scale, p.zero_point, p.layout)
        lo, hi = lo.to(p.work.device), hi.to(p.work.device)
        xv = p.work
        keep = (xv >= p.layout.expand(lo)) & (xv <= p.layout.expand(hi))
        return _StraightThrough.apply(x, result, keep.reshape(x.shape).to(x.device))
    return result


__all__ = ["quantize", "dequantize", "fake_quantize"]
