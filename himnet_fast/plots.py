"""Figures of a run (matplotlib, Agg backend: no display needed).

- :func:`plot_curves`: loss terms per iteration and the evaluated mAP -> curves.png.
- :func:`plot_timeline`: one test video in the style of the paper's Fig. 8: ground truth,
  class activation S_hat, detections, attention A and background score B_bg on one time axis.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402

from himnet_fast.geometry import SNIPPET_SECONDS  # noqa: E402

LOSS_COLORS = {"total": "black", "mil": "tab:blue", "cll": "tab:orange", "vcl": "tab:green", "scl": "tab:red",
               "norm": "tab:purple", "guide": "tab:brown", "ml": "tab:pink", "mutual": "tab:olive"}


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average over ``window`` points (shorter at the start)."""
    x = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(x) == 0:
        return x
    c = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_curves(history: dict, evaluations: Sequence[dict], path, title: str = "") -> Path:
    """Loss terms (raw, faint; smoothed, solid) and mAP over iterations, saved to ``path``."""
    it = np.asarray(history.get("iteration", []))
    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(11, 4))
    window = max(1, len(it) // 50)
    for key, color in LOSS_COLORS.items():
        values = np.asarray(history.get(key, []), dtype=np.float64)
        if len(values) == 0 or not np.any(values):
            continue  # a switched-off loss is logged as 0
        ax_loss.plot(it, values, color=color, alpha=0.2, linewidth=0.7)
        ax_loss.plot(it, smooth(values, window), color=color, label=key)
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("loss (unweighted terms)")
    ax_loss.set_yscale("log")
    if ax_loss.lines:
        ax_loss.legend(loc="upper right", fontsize=8)
    ax_loss.set_title("training losses")
    if evaluations:
        e_it = [e["iteration"] for e in evaluations]
        for key in sorted({k for e in evaluations for k in e if k.startswith("avg_")}):
            lo, hi = key[4:].split("_")
            ax_map.plot(e_it, [e.get(key, np.nan) for e in evaluations], marker="o", label=f"mAP avg {lo}:{hi}")
        tious = list(evaluations[-1].get("mAP", {}))
        for t in (tious[0], tious[-1]) if tious else ():
            ax_map.plot(e_it, [e["mAP"].get(t, np.nan) for e in evaluations], linestyle="--", alpha=0.6,
                        label=f"mAP@{float(t):g}")
        ax_map.legend(loc="lower right", fontsize=8)
    ax_map.set_xlabel("iteration")
    ax_map.set_ylabel("mAP (%)")
    ax_map.set_title("test mAP")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_timeline(output, detections: np.ndarray, ground_truth: Sequence[dict], classlist: Sequence[str], path,
                  seconds_per_snippet: float = SNIPPET_SECONDS, class_id: Optional[int] = None,
                  max_boxes: int = 10) -> Path:
    """Fig. 8-style timeline of one video.

    output: ``inference.VideoOutput``; detections: (n, 4) rows (class, start_s, end_s,
    score); ground_truth: ActivityNet annotation dicts (``segment`` in seconds, ``label``).
    ``class_id``: the class drawn (default: the first ground-truth class, else the best
    detected one). Up to ``max_boxes`` top-scoring detections of that class are drawn.
    """
    T = len(output.attention)
    t = (np.arange(T) + 0.5) * seconds_per_snippet
    if class_id is None:
        gt_classes = [list(classlist).index(a["label"]) for a in ground_truth if a["label"] in classlist]
        if gt_classes:
            class_id = gt_classes[0]
        elif len(detections):
            class_id = int(detections[np.argmax(detections[:, 3]), 0])
        else:
            class_id = int(output.cas_hat[:, :-1].max(axis=0).argmax())
    name = classlist[class_id]
    fig, axes = plt.subplots(5, 1, figsize=(12, 4.8), sharex=True,
                             gridspec_kw={"height_ratios": [0.6, 2, 1.2, 0.6, 0.6]})
    ax_gt, ax_cas, ax_det, ax_att, ax_bg = axes
    for a in ground_truth:
        if a["label"] == name:
            s, e = a["segment"]
            ax_gt.axvspan(s, e, color="tab:blue")
    ax_gt.set_ylabel("GT", rotation=0, ha="right", va="center")
    ax_cas.fill_between(t, output.cas_hat[:, class_id], color="tab:orange", alpha=0.8, step="mid")
    ax_cas.set_ylabel("$\\hat{S}$", rotation=0, ha="right", va="center")
    mine = detections[detections[:, 0] == class_id] if len(detections) else np.zeros((0, 4))
    mine = mine[np.argsort(-mine[:, 3])][:max_boxes]
    top = mine[:, 3].max() if len(mine) else 1.0
    for row in mine:
        ax_det.add_patch(plt.Rectangle((row[1], 0), row[2] - row[1], row[3] / top if top > 0 else 0,
                                       fill=False, edgecolor="tab:green", linewidth=1.2))
    ax_det.set_ylim(0, 1.05)
    ax_det.set_ylabel("detections", rotation=0, ha="right", va="center")
    _strip(ax_att, output.attention, "Greens", "$\\mathcal{A}$", seconds_per_snippet)
    _strip(ax_bg, output.background, "Greys", "$\\mathcal{B}_{BG}$", seconds_per_snippet)
    for ax in axes:
        ax.set_yticks([])
        ax.set_xlim(0, T * seconds_per_snippet)
    ax_bg.set_xlabel("time (s)")
    fig.suptitle(f"{output.name}: {name}")
    return save_figure(fig, path)


def _strip(ax, values: np.ndarray, cmap: str, label: str, seconds_per_snippet: float) -> None:
    """A one-row heat strip of per-snippet ``values`` in [0, 1] on a time axis in seconds."""
    ax.imshow(np.asarray(values)[None], aspect="auto", cmap=cmap, vmin=0.0, vmax=1.0,
              extent=(0, len(values) * seconds_per_snippet, 0, 1), interpolation="nearest")
    ax.set_ylabel(label, rotation=0, ha="right", va="center")


def save_figure(fig, path) -> Path:
    """Write ``fig`` to ``path`` (folders created), then close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
