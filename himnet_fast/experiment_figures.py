"""The paper's Fig. 6 and Fig. 7 from finished runs (used by ``python -m himnet_fast.experiments``).

- :func:`background_uncertainty`: Eq. 9's self-centred U of a trained run on the test split's
  background snippets, cached per run (:func:`cached_background_uncertainty`).
- :func:`gaussian_kde` with :func:`scott_bandwidth`: a kernel density estimate in numpy.
- :func:`plot_alpha` (Fig. 6, AVG against alpha) and :func:`plot_kde` (Fig. 7, the densities of U).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

U_CACHE = "u_background.npy"


# --------------------------------------------------------------------------- Fig. 7: U on background


def background_uncertainty(folder: Path) -> np.ndarray:
    """U = exp(-alpha KL(a || 1 - b_bg)) (Eq. 9, variant "self", the run's alpha) on every
    background snippet of the test split, from ``folder/checkpoint.pt``.

    (p, q) = (a, 1 - b_bg) is the pair of SCL's attention branch (``reference.losses.scl_terms``:
    the attention a is the prediction, the background branch's 1 - b_bg its target); b_bg is the
    softmax of S over the C+1 classes, background column. Background snippets are those that no
    ground-truth segment covers (``data.snippet_labels``, the snippet clock of the data layer).
    The model runs on each full-length test video, as at inference.
    -> (N,) float64 in (0, 1], the videos' background snippets concatenated.
    """
    import torch

    from himnet_fast.checkpoint import load_checkpoint
    from himnet_fast.config import RunConfig, resolve_device, torch_threads
    from himnet_fast.data.snippets import snippet_labels
    from himnet_fast.inference import infer_videos
    from himnet_fast.model import trained_model
    from himnet_fast.reference.losses import uncertainty
    from himnet_fast.run_data import open_dataset

    state = load_checkpoint(Path(folder) / "checkpoint.pt")
    cfg = RunConfig.from_dict(state["config"])
    with torch_threads(1):
        dataset = open_dataset(cfg, log=lambda _: None)
        device = resolve_device(cfg.device)
        model = trained_model(state, cfg, dataset, device)
        outputs = infer_videos(model, dataset, list(dataset.test_indices), device)
    background_index = len(dataset.classlist)
    values = []
    for i, out in zip(dataset.test_indices, outputs):
        background = snippet_labels(dataset, int(i)) == background_index
        a = torch.from_numpy(out.attention[background].astype(np.float64))
        b = torch.from_numpy(out.background[background].astype(np.float64))
        values.append(uncertainty(a, 1.0 - b, cfg.loss.alpha, "self").numpy())
    return np.concatenate(values) if values else np.zeros(0)


def cached_background_uncertainty(folder: Path) -> np.ndarray:
    """:func:`background_uncertainty`, kept in ``folder/u_background.npy``; recomputed only when
    the checkpoint is newer than that file (the run was trained again)."""
    folder = Path(folder)
    cache, checkpoint = folder / U_CACHE, folder / "checkpoint.pt"
    if cache.is_file() and cache.stat().st_mtime_ns >= checkpoint.stat().st_mtime_ns:
        return np.load(cache)
    values = background_uncertainty(folder)
    tmp = folder / f".{U_CACHE}.tmp.npy"
    np.save(tmp, values)
    tmp.replace(cache)
    return values


def uncertainty_summary(values: np.ndarray) -> dict:
    """Per-run numbers of Fig. 7: ``u_mean`` (mean U) and ``u_above_half`` (fraction with U > 0.5)
    over the background snippets; NaN where there are none."""
    if len(values) == 0:
        return {"u_mean": float("nan"), "u_above_half": float("nan")}
    return {"u_mean": float(values.mean()), "u_above_half": float((values > 0.5).mean())}


# --------------------------------------------------------------------------- kernel density estimate


def scott_bandwidth(samples: np.ndarray) -> float:
    """Scott's rule in one dimension: h = sigma n^(-1/5), sigma the sample std (ddof = 1), as
    ``scipy.stats.gaussian_kde``'s default. samples: (n,), n >= 2 -> h (0 if they are all equal)."""
    x = np.asarray(samples, dtype=np.float64)
    if len(x) < 2:
        raise ValueError(f"samples: Scott's bandwidth needs at least 2 samples, got {len(x)}")
    return float(x.std(ddof=1) * len(x) ** (-0.2))


def gaussian_kde(samples: np.ndarray, grid: np.ndarray, bandwidth: Optional[float] = None,
                 chunk: int = 4096) -> np.ndarray:
    """Gaussian kernel density estimate: f(x) = mean_i N(x; s_i, h^2).

    samples: (n,), grid: (m,) points x; bandwidth h > 0 (default :func:`scott_bandwidth`).
    No boundary correction: on [0, 1] the mass beyond the ends is left out, not reflected.
    The samples are summed ``chunk`` at a time, so memory stays O(chunk m). -> (m,) float64.
    """
    x = np.asarray(samples, dtype=np.float64)
    grid = np.asarray(grid, dtype=np.float64)
    h = scott_bandwidth(x) if bandwidth is None else float(bandwidth)
    if not h > 0:
        raise ValueError(f"bandwidth: must be > 0, got {h} (all samples equal?)")
    density = np.zeros_like(grid)
    for start in range(0, len(x), chunk):
        z = (grid[None, :] - x[start:start + chunk, None]) / h
        density += np.exp(-0.5 * z * z).sum(axis=0)
    return density / (len(x) * h * np.sqrt(2.0 * np.pi))


# --------------------------------------------------------------------------- plots


def plot_alpha(alphas: Sequence[float], avgs: Sequence[Sequence[float]], path, best: float = 4.0) -> Path:
    """Fig. 6: mean AVG mAP (0.1:0.7) against alpha, sample-std error bars (0 for one seed),
    ``best`` (the paper's alpha = 4) marked. avgs: per alpha, the per-seed values."""
    from himnet_fast.plots import plt, save_figure

    means = [float(np.mean(v)) for v in avgs]
    stds = [float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for v in avgs]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.errorbar(alphas, means, yerr=stds, marker="o", color="tab:blue", capsize=3)
    label = f"$\\alpha$ = {best:g} (paper)"
    if best in alphas:
        ax.plot([best], [means[list(alphas).index(best)]], marker="*", markersize=14, color="tab:red",
                linestyle="none", label=label, zorder=3)
    else:
        ax.axvline(best, color="tab:red", linestyle="--", linewidth=1, label=label)
    ax.set_xlabel("$\\alpha$")
    ax.set_ylabel("AVG mAP 0.1:0.7 (%)")
    ax.set_title("Fig. 6: AVG against $\\alpha$")
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def plot_kde(curves: Dict[str, np.ndarray], colors: Dict[str, str], path, points: int = 201) -> Path:
    """Fig. 7: the density of U over background snippets, one curve per model (label -> samples),
    on [0, 1] (:func:`gaussian_kde`, Scott's bandwidth)."""
    from himnet_fast.plots import plt, save_figure

    grid = np.linspace(0.0, 1.0, points)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for label, samples in curves.items():
        if len(samples) >= 2 and np.ptp(samples) > 0:
            ax.plot(grid, gaussian_kde(samples, grid), color=colors.get(label), label=label)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("uncertainty U on background snippets")
    ax.set_ylabel("density")
    ax.set_title("Fig. 7: U(a || 1 - b) on background")
    if ax.lines:
        ax.legend(loc="upper left", fontsize=8)
    return save_figure(fig, path)
