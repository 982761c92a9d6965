"""Question: which gradient estimator trains a VQ layer better -- straight-through or NSVQ -- and by how much?

Same tiny VQ autoencoder on scikit-learn's digits (8x8 images scaled to [0, 1]; 1437 train / 360 held out):
64 pixels -> MLP (128) -> 4 latent vectors of dim 8 -> ``quantscope.vq.VQLayer`` -> MLP (128) -> 64 pixels.
Same budget (STEPS Adam steps, lr 2e-3, batch 128), same seeds (each seed fixes the weights, the codebook
initialisation and the batch order, identically for every estimator), same k-means++ init and dead-code
re-seeding. Estimators: straight-through with commitment loss (beta 0.25) and EMA codebook (decay 0.99) --
the VQ-VAE recipe; straight-through with a gradient-trained codebook (codebook loss); NSVQ (Vali & Baeckstroem
2022: the quantization error replaced by noise of the same norm; no auxiliary loss). Codebooks of 32 and 128
codes (20 and 28 bits per image). Metric: held-out pixel MSE with hard quantization (eval mode), lower is
better, after STEPS/8 steps (early) and after STEPS (final); held-out codebook usage and perplexity; wall time
of training (one thread: the model is too small for more to help).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table  # noqa: E402

from quantscope._files import atomic_write_text  # noqa: E402
from quantscope.vq import VQLayer  # noqa: E402

STEPS, BATCH, LR, LATENTS, DIM = 1600, 128, 2e-3, 4, 8
SEEDS = (0, 1, 2, 3, 4)
CODEBOOKS = (32, 128)
ESTIMATORS = {"STE + EMA codebook": dict(estimator="ste"),
              "STE, gradient codebook": dict(estimator="ste", ema_decay=None),
              "NSVQ": dict(estimator="nsvq")}


class VQAutoencoder(torch.nn.Module):
    def __init__(self, num_codes: int, **vq_kwargs) -> None:
        super().__init__()
        self.enc = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, LATENTS * DIM))
        self.vq = VQLayer(num_codes, DIM, **vq_kwargs)
        self.dec = torch.nn.Sequential(torch.nn.Linear(LATENTS * DIM, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64),
                                       torch.nn.Sigmoid())

    def forward(self, x: torch.Tensor):
        out = self.vq(self.enc(x).reshape(-1, LATENTS, DIM))
        return self.dec(out.quantized.reshape(-1, LATENTS * DIM)), out


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().data, dtype=torch.float32) / 16.0
    x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))]
    return x[:1437], x[1437:]


def held_out(model: VQAutoencoder, x: torch.Tensor) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        y, out = model(x)
    model.train()
    return {"mse": float(((y - x) ** 2).mean()), "usage": torch.unique(out.codes).numel() / model.vq.num_codes,
            "perplexity": float(out.perplexity)}


def train(num_codes: int, vq_kwargs: dict, seed: int, data: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
    train_x, test_x = data
    torch.manual_seed(seed)
    model = VQAutoencoder(num_codes, **vq_kwargs)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    g = torch.Generator().manual_seed(seed)
    early = {}
    t0 = time.perf_counter()
    for step in range(1, STEPS + 1):
        x = train_x[torch.randint(len(train_x), (BATCH,), generator=g)]
        y, out = model(x)
        loss = ((y - x) ** 2).mean() + out.loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == STEPS // 8:
            t_pause = time.perf_counter()
            early = held_out(model, test_x)
            t0 += time.perf_counter() - t_pause
    seconds = time.perf_counter() - t0
    final = held_out(model, test_x)
    return {"early_mse": early["mse"], **final, "seconds": seconds, "replaced": int(model.vq.codes_replaced)}


def mean_std(values: list[float], fmt: str) -> str:
    return f"{statistics.mean(values):{fmt}} ± {statistics.stdev(values):{fmt}}"


def main() -> str:
    torch.set_num_threads(1)
    data = digits()
    mean_image_mse = float(((data[1] - data[0].mean(0)) ** 2).mean())
    runs: dict[tuple[int, str], list[dict[str, float]]] = {}
    for num_codes in CODEBOOKS:
        for name, kwargs in ESTIMATORS.items():
            runs[num_codes, name] = [train(num_codes, kwargs, seed, data) for seed in SEEDS]
    rows, conclusions = [], []
    for (num_codes, name), rs in runs.items():
        rows.append([num_codes, name, mean_std([r["early_mse"] * 1e3 for r in rs], ".2f"),
                     mean_std([r["mse"] * 1e3 for r in rs], ".2f"), f"{statistics.mean(r['usage'] for r in rs):.0%}",
                     f"{statistics.mean(r['perplexity'] for r in rs):.1f}",
                     f"{statistics.mean(r['replaced'] for r in rs):.0f}",
                     f"{statistics.mean(r['seconds'] for r in rs):.2f}"])
    final_ratios: dict[int, float] = {}
    for num_codes in CODEBOOKS:
        ste, nsvq = runs[num_codes, "STE + EMA codebook"], runs[num_codes, "NSVQ"]
        for stage, key in (("final", "mse"), ("early", "early_mse")):
            ratio = [n[key] / s[key] for s, n in zip(ste, nsvq, strict=True)]  # paired by seed
            wins, gm = sum(r < 1 for r in ratio), statistics.geometric_mean(ratio)
            if wins in (0, len(ratio)):
                verdict = f"**{'NSVQ' if wins else 'STE + EMA'}** wins on every seed"
            else:
                verdict = f"no consistent winner (NSVQ better on {wins} of {len(ratio)} seeds)"
            if stage == "final":
                final_ratios[num_codes] = gm
            conclusions.append(f"{num_codes} codes, {stage} ({STEPS if stage == 'final' else STEPS // 8} steps): "
                               f"{verdict} -- NSVQ's held-out MSE / STE + EMA's = {gm:.3f} (geometric mean of "
                               f"the per-seed ratios, range {min(ratio):.2f}-{max(ratio):.2f})")
    best = {k: min(ESTIMATORS, key=lambda n, k=k: statistics.mean(r["mse"] for r in runs[k, n])) for k in CODEBOOKS}
    if all(g > 1 for g in final_ratios.values()) or all(g < 1 for g in final_ratios.values()):
        lo, hi = min(final_ratios.values()), max(final_ratios.values())
        ahead = "STE + EMA" if lo > 1 else "NSVQ"
        summary = (f"Conclusion: after {STEPS} steps {ahead} reaches the lower held-out MSE at every codebook size "
                   f"(NSVQ / STE + EMA = {lo:.2f}-{hi:.2f})")
    else:
        summary = f"Conclusion: the winner depends on the codebook size ({final_ratios})"
    summary += "; lowest mean final MSE of all three: " + ", ".join(f"{k} codes: {n}" for k, n in best.items()) + "."
    conclusions.append(summary)
    records = [dict(num_codes=k, estimator=n, seed=s, **r) for (k, n), rs in runs.items()
               for s, r in zip(SEEDS, rs, strict=True)]
    atomic_write_text(Path(__file__).resolve().parent / "vq_training.json", json.dumps(records, indent=2))
    md = ["### vq_training.py: training a VQ layer -- straight-through vs NSVQ (lower MSE is better)", "",
          "`python benchmarks/vq_training.py` -- tiny VQ autoencoder on scikit-learn's digits (4 latent vectors of "
          f"dim 8 per image), {STEPS} Adam steps, {len(SEEDS)} seeds paired across estimators, k-means++ init and "
          "dead-code re-seeding for all. Held-out pixel MSE ×1e3 (mean ± std over seeds) with hard codes; "
          f"predicting the mean image gives {mean_image_mse * 1e3:.1f}. `early` = after {STEPS // 8} steps; "
          "usage and perplexity on the 360 held-out images; `re-seeded` = dead codes replaced during training; "
          "time = training seconds per run (1 thread).", "",
          markdown_table(["codes", "estimator", f"early MSE ×1e3 ({STEPS // 8} steps)",
                          f"final MSE ×1e3 ({STEPS} steps)", "usage", "perplexity", "re-seeded", "time s"], rows),
          "", *[f"- {c}" for c in conclusions[:-1]], "", conclusions[-1], ""]
    return "\n".join(md)


if __name__ == "__main__":
    print(main())
