"""Quantized matmuls inside chosen modules (attention): both operands of every ``matmul`` / ``bmm`` /
``@`` (and q, k, v of ``scaled_dot_product_attention``) are fake-quantized at run time (dynamic).

It works on any module's own code, with no model-specific patching: while a matched module runs, a
``TorchFunctionMode`` intercepts the matrix products. Granularity ``tensor`` gives one scale per
operand; ``token`` one scale per row of the left operand and per column of the right one (both along
the contraction axis, so an integer kernel can apply them after the product). Hugging Face models are
switched to eager attention so that both products (Q·Kᵀ and P·V) are visible.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..core.formats import Format
from ..core.granularity import per_group, per_tensor, per_token
from ..core.ops import fake_quantize
from ..core.spec import QuantSpec

MATMULS = {torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.bmm}


class MatmulQuantizer(TorchFunctionMode):
    """Fake-quantizes the operands of matrix products run while it is active."""

    def __init__(self, fmt: Format, granularity: str = "tensor", rounding: str = "nearest_even") -> None:
        super().__init__()
        if granularity not in ("tensor", "token"):
            raise ValueError(f"matmul granularity must be 'tensor' or 'token', got {granularity!r}")
        self.fmt, self.granularity, self.rounding = fmt, granularity, rounding
        self.calls = 0

    def _q(self, t: Any, side: str) -> Any:
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.dim() < 2:
            return t
        if self.granularity == "tensor":
            gran = per_tensor()
        elif side == "left":
            gran = per_token()
        else:
            gran = per_group(t.shape[-2], axis=-2)
        return fake_quantize(t, QuantSpec(self.fmt, granularity=gran, rounding=self.rounding))

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in MATMULS and len(args) >= 2:
            self.calls += 1
            args = (self._q(args[0], "left"), self._q(args[1], "right")) + tuple(args[2:])
        elif func is F.scaled_dot_product_attention and len(args) >= 3:
            self.calls += 1
            args = (self._q(args[0], "left"), self._q(args[1], "left"), self._q(args[2], "left")) + tuple(args[3:])
        return func(*args, **kwargs)


class _Enter:
    """Forward pre-hook: activate the quantizer for this module's forward."""

    def __init__(self, fmt: Format, granularity: str, rounding: str) -> None:
        self.fmt, self.granularity, self.rounding = fmt, granularity, rounding

    def __call__(self, module: nn.Module, args: Any) -> None:
        mode = MatmulQuantizer(self.fmt, self.granularity, self.rounding)
        mode.__enter__()
        module.__dict__.setdefault("_quantscope_modes", []).append(mode)


class _Exit:
    """Forward hook (always called, also on errors): deactivate it again."""

    def __call__(self, module: nn.Module, args: Any, output: Any) -> None:
        modes = module.__dict__.get("_quantscope_modes")
        if modes:
            modes.pop().__exit__(None, None, None)


def quantize_matmuls(module: nn.Module, fmt: Format, granularity: str = "tensor",
                     rounding: str = "nearest_even") -> None:
    """Make every matrix product run by ``module``'s forward use fake-quantized operands."""
    module.register_forward_pre_hook(_Enter(fmt, granularity, rounding))
    module.register_forward_hook(_Exit(), always_call=True)
    module._quantscope_matmuls = (fmt, granularity)


def use_eager_attention(model: nn.Module) -> None:
    """Hugging Face models: compute attention with explicit matmuls (so both products are quantized)."""
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
