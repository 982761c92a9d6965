"""A vector-quantization layer for training: nearest-codeword lookup with a gradient that gets through.

Quantizing a vector to its nearest codeword is piecewise constant, so its true gradient is zero almost
everywhere. ``VQLayer`` offers two ways around that:

* ``estimator="ste"`` -- straight-through (van den Oord et al., 2017, "Neural Discrete Representation
  Learning"): the forward pass outputs the codeword ``q`` but the backward pass copies the gradient to the
  input unchanged, ``y = x + sg(q - x)``. The encoder is pulled toward its codewords by the commitment loss
  ``beta * mean((x - sg(q))^2)``. The codebook follows exponential moving averages of the vectors assigned to
  each code, with Laplace smoothing of the counts (van den Oord et al. appendix; Razavi et al., 2019), or,
  with ``ema_decay=None``, is trained by gradient through the codebook loss ``mean((sg(x) - q)^2)``.
* ``estimator="nsvq"`` -- noise substitution (Vali & Baeckstroem, 2022, "NSVQ: Noise Substitution in Vector
  Quantization for Machine Learning", IEEE Access 10): during training the quantization error ``q - x`` is
  replaced by noise of the same norm in a random direction, ``y = x + ||x - q|| * v / ||v||`` with
  ``v ~ N(0, I)``. The output is a differentiable function of ``x`` and, through the norm, of the codeword,
  so the codebook learns from the task loss alone (no auxiliary loss). At eval the output is exactly ``q``.

Both re-seed codes that no batch has used for ``dead_code_steps`` training steps with random vectors of
the current batch (the NSVQ paper's "codebook replacement"; Dhariwal et al., 2020 for the STE case).
Randomness (initial codebook, k-means++ seeding, NSVQ noise, re-seeding) comes from torch's global RNG, so
``torch.manual_seed`` makes a run repeatable, as with dropout.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from .kmeans import kmeans_plusplus

ESTIMATORS = ("ste", "nsvq")
INITS = ("kmeans++", "random", "normal")


class VQLayerOutput(NamedTuple):
    """What ``VQLayer.forward`` returns for an input of shape ``(..., dim)``.

    ``quantized``: ``(..., dim)``, the input's dtype -- feed it to the decoder. ``codes``: ``(...)`` int64
    codeword indices. ``loss``: scalar auxiliary loss to add to the task loss (STE: commitment, plus the
    codebook loss without EMA; NSVQ: zero). ``perplexity``: scalar ``exp(entropy)`` of this batch's code
    histogram, in ``[1, num_codes]`` (1 = one code used, ``num_codes`` = all used equally). ``usage``: scalar
    fraction of codes used at least once in this batch. ``distortion``: scalar ``mean((x - q)^2)`` per element,
    the hard quantization error whatever the estimator. The last three are detached.
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    loss: torch.Tensor
    perplexity: torch.Tensor
    usage: torch.Tensor
    distortion: torch.Tensor


class VQLayer(torch.nn.Module):
    """Vector quantizer of the last axis: ``num_codes`` codewords of length ``dim``, channels-last.

    Args:
        num_codes: codebook size K (>= 2); each vector costs log2(K) bits.
        dim: vector length D; the input's last axis must have this size.
        estimator: ``"ste"`` (straight-through) or ``"nsvq"`` (noise substitution); see the module docstring
            for the gradient each passes.
        commitment: beta >= 0, weight of the commitment loss ``beta * mean((x - sg(q))^2)`` (STE only; NSVQ
            needs no auxiliary loss and ignores it).
        ema_decay: gamma in (0, 1) for the STE codebook's moving averages, or ``None`` to train the STE codebook
            by gradient through the codebook loss. NSVQ always trains its codebook by gradient and ignores it.
        init: ``"kmeans++"`` (k-means++ seeding on the first training batch, Arthur & Vassilvitskii 2007),
            ``"random"`` (distinct random vectors of the first training batch) or ``"normal"`` (N(0, 1)
            entries at construction, the NSVQ paper's default). Until the first training batch the codebook
            holds N(0, 1) entries.
        dead_code_steps: a code unused for this many consecutive training steps is re-seeded from a random
            vector of the current batch; ``None`` disables re-seeding.
        eps: Laplace-smoothing constant of the EMA cluster sizes.

    Learnable state: ``codebook`` ``(num_codes, dim)`` (a parameter; frozen with ``requires_grad=False``
    when EMA updates it). Buffers: ``ema_cluster_size`` ``(num_codes,)``, ``ema_sum`` ``(num_codes, dim)``,
    ``steps_unused`` ``(num_codes,)``, ``initialized``, ``codes_replaced`` (running count of re-seeded codes).
    State changes (initialisation, EMA, re-seeding) happen only in training mode.
    """

    def __init__(self, num_codes: int, dim: int, estimator: str = "ste", commitment: float = 0.25,
                 ema_decay: float | None = 0.99, init: str = "kmeans++", dead_code_steps: int | None = 50,
                 eps: float = 1e-5) -> None:
        super().__init__()
        for name, value, low in (("num_codes", num_codes, 2), ("dim", dim, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
        if not isinstance(commitment, (int, float)) or not commitment >= 0 or commitment == float("inf"):
            raise ValueError(f"commitment must be a finite number >= 0 (e.g. 0.25), got {commitment!r}")
        if ema_decay is not None and (not isinstance(ema_decay, (int, float)) or not 0 < ema_decay < 1):
            raise ValueError(f"ema_decay must be in (0, 1) (e.g. 0.99) or None for a gradient-trained codebook, "
                             f"got {ema_decay!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if dead_code_steps is not None and (isinstance(dead_code_steps, bool) or not isinstance(dead_code_steps, int)
                                            or dead_code_steps < 1):
            raise ValueError(f"dead_code_steps must be an integer >= 1 or None to disable re-seeding, "
                             f"got {dead_code_steps!r}")
        if not isinstance(eps, (int, float)) or not eps > 0:
            raise ValueError(f"eps must be a number > 0 (e.g. 1e-5), got {eps!r}")
        self.num_codes, self.dim, self.estimator = num_codes, dim, estimator
        self.commitment, self.ema_decay, self.init = float(commitment), ema_decay, init
        self.dead_code_steps, self.eps = dead_code_steps, float(eps)
        self.codebook = torch.nn.Parameter(torch.randn(num_codes, dim), requires_grad=not self.uses_ema)
        self.register_buffer("ema_cluster_size", torch.ones(num_codes))
        self.register_buffer("ema_sum", self.codebook.detach().clone())
        self.register_buffer("steps_unused", torch.zeros(num_codes, dtype=torch.long))
        self.register_buffer("initialized", torch.tensor(init == "normal"))
        self.register_buffer("codes_replaced", torch.zeros((), dtype=torch.long))

    @property
    def uses_ema(self) -> bool:
        """True when EMA (not gradient) updates the codebook: straight-through with ``ema_decay`` set."""
        return self.estimator == "ste" and self.ema_decay is not None

    def extra_repr(self) -> str:
        return (f"num_codes={self.num_codes}, dim={self.dim}, estimator={self.estimator!r}, "
                f"commitment={self.commitment}, ema_decay={self.ema_decay}, init={self.init!r}, "
                f"dead_code_steps={self.dead_code_steps}")

    # -- input checks and lookups -------------------------------------------------------------------------

    def _flatten(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor of shape (..., {self.dim}), got {type(x).__name__}; "
                            f"convert with torch.as_tensor(x, dtype=torch.float32)")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}; convert with x.float()")
        if x.ndim == 0 or x.shape[-1] != self.dim:
            raise ValueError(f"x must have shape (..., {self.dim}) (channels-last, last axis = dim), got shape "
                             f"{tuple(x.shape)}; move the feature axis last (e.g. x.movedim(1, -1) for NCHW)")
        if x.numel() == 0:
            raise ValueError(f"x is empty (shape {tuple(x.shape)}); there is nothing to quantize")
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            first = tuple(int(i) for i in torch.nonzero(bad)[0].tolist())
            raise ValueError(f"x contains {int(bad.sum())} NaN/Inf value(s) out of {x.numel()} (first at index "
                             f"{first}); a diverged encoder or a bad input batch -- check upstream, or clean "
                             f"it with torch.nan_to_num")
        return x.reshape(-1, self.dim).to(self.codebook.dtype)

    def _nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest codeword (squared Euclidean distance) for each row of ``flat`` (N, D)."""
        c = self.codebook.detach()
        d2 = (flat * flat).sum(1, keepdim=True) - 2 * flat @ c.T + (c * c).sum(1)
        return d2.argmin(1)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes ``(...)`` int64 of the nearest codewords for ``x`` of shape ``(..., dim)``; changes no state."""
        return self._nearest(self._flatten(x).detach()).reshape(x.shape[:-1])

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codewords ``(..., dim)`` for integer ``codes`` of any shape ``(...)``, values in [0, num_codes)."""
        if not isinstance(codes, torch.Tensor) or codes.is_floating_point() or codes.is_complex():
            raise TypeError(f"codes must be an integer torch.Tensor, got "
                            f"{getattr(codes, 'dtype', type(codes).__name__)}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.num_codes):
            raise ValueError(f"codes must be in [0, {self.num_codes}), got values in [{int(codes.min())}, "
                             f"{int(codes.max())}]")
        return self.codebook[codes.long()]

    # -- state updates (training mode only) ---------------------------------------------------------------

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Seed the codebook from vectors ``x`` ``(..., dim)`` by ``self.init`` (done on the first training batch).

        k-means++ (greedy, ``quantscope.vq.kmeans.kmeans_plusplus``) picks the first codeword uniformly and each
        next one among a few candidates drawn with probability proportional to their squared distance to the
        nearest codeword so far (the candidate that lowers the total most wins); with fewer distinct vectors than
        codes the rest are drawn uniformly (duplicates are later re-seeded as dead codes).
        """
        flat = self._flatten(x).detach()
        n = flat.shape[0]
        if self.init == "normal":
            picked = torch.randn(self.num_codes, self.dim, device=flat.device, dtype=flat.dtype)
        elif self.init == "random":
            idx = torch.randperm(n, device=flat.device)[: self.num_codes]
            if n < self.num_codes:
                idx = torch.cat([idx, torch.randint(n, (self.num_codes - n,), device=flat.device)])
            picked = flat[idx]
        else:
            seed = int(torch.randint(2**62, (1,)))  # from the global RNG, so torch.manual_seed repeats it
            picked = kmeans_plusplus(flat[None], self.num_codes, torch.Generator().manual_seed(seed))[0]
        self.codebook.data.copy_(picked)
        self.ema_sum.copy_(picked)
        self.ema_cluster_size.fill_(1.0)
        self.steps_unused.zero_()
        self.initialized.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, codes: torch.Tensor, counts: torch.Tensor) -> None:
        """N_k <- g N_k + (1-g) n_k;  m_k <- g m_k + (1-g) sum_{i: code i = k} x_i;  e_k = m_k / N~_k, where
        N~_k = (N_k + eps) / (sum N + K eps) * sum N is the Laplace-smoothed count (never zero)."""
        g = self.ema_decay
        sums = torch.zeros_like(self.ema_sum).index_add_(0, codes, flat)
        self.ema_cluster_size.mul_(g).add_(counts, alpha=1 - g)
        self.ema_sum.mul_(g).add_(sums, alpha=1 - g)
        total = self.ema_cluster_size.sum()
        smoothed = (self.ema_cluster_size + self.eps) / (total + self.num_codes * self.eps) * total
        self.codebook.data.copy_(self.ema_sum / smoothed[:, None])

    @torch.no_grad()
    def _replace_dead(self, flat: torch.Tensor) -> None:
        """Re-seed codes unused for ``dead_code_steps`` steps from random rows of ``flat`` (before the lookup,
        so this step's gradient and EMA already see the new codeword)."""
        dead = torch.nonzero(self.steps_unused >= self.dead_code_steps).flatten()
        if dead.numel() == 0:
            return
        fresh = flat[torch.randint(flat.shape[0], (dead.numel(),), device=flat.device)]
        self.codebook.data[dead] = fresh
        self.ema_sum[dead] = fresh
        self.ema_cluster_size[dead] = 1.0
        self.steps_unused[dead] = 0
        self.codes_replaced.add_(dead.numel())

    # -- forward ------------------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> VQLayerOutput:
        """Quantize ``x`` of shape ``(..., dim)``; see ``VQLayerOutput`` for the shapes returned.

        Gradient of ``quantized`` w.r.t. ``x``: STE -- the identity (exactly); NSVQ in training --
        ``I + d(||x - q|| v/||v||)/dx`` (the noise direction is a constant), and the codebook receives
        gradient through ``||x - q||``; NSVQ at eval -- none to ``x`` (the output is exactly the codeword).
        In training mode the call also initialises the codebook (first batch), updates the EMA (STE) and
        re-seeds dead codes.
        """
        flat = self._flatten(x)
        if self.training and not bool(self.initialized):
            self.initialize(flat)
        if self.training and self.dead_code_steps is not None:
            self._replace_dead(flat.detach())
        codes = self._nearest(flat.detach())
        q = self.codebook[codes]
        counts = torch.bincount(codes, minlength=self.num_codes).to(flat.dtype)
        distortion = F.mse_loss(flat.detach(), q.detach())
        if self.estimator == "ste":
            out = flat + (q - flat).detach()
            loss = self.commitment * F.mse_loss(flat, q.detach())
            if not self.uses_ema:
                loss = loss + F.mse_loss(q, flat.detach())
        else:
            loss = flat.new_zeros(())
            if self.training:
                noise = torch.randn_like(flat)
                scale = torch.linalg.vector_norm(flat - q, dim=1, keepdim=True) / torch.linalg.vector_norm(
                    noise, dim=1, keepdim=True).clamp_min(torch.finfo(flat.dtype).tiny)
                out = flat + scale * noise
            else:
                out = q
        if self.training:
            if self.uses_ema:
                self._ema_update(flat.detach(), codes, counts)
            self.steps_unused.add_(1).masked_fill_(counts > 0, 0)
        p = counts / counts.sum()
        perplexity = torch.exp(-(p * torch.log(p.clamp_min(1e-30))).sum())
        usage = (counts > 0).to(flat.dtype).mean()
        return VQLayerOutput(out.reshape(x.shape).to(x.dtype), codes.reshape(x.shape[:-1]), loss,
                             perplexity, usage, distortion)
