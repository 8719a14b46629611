"""Detection post-processing: class selection, proposals, (soft-)NMS, results JSON.

``detect_videos`` turns per-video attention A and class activations S_hat into
detections by DESIGN.md section 3 ("Inference"). The three ops it runs, video class
scores, proposals and (soft-)NMS, go through their dispatchers in ``himnet_fast.ops.postprocess`` for all
videos at once (one call each, after the ``video_scores`` op); ``backend="reference"`` runs the numpy spec of
``himnet_fast.reference.postprocess`` instead, with the same glue around it, so both
backends return the same bits on the CPU.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from himnet_fast.geometry import SNIPPET_SECONDS
from himnet_fast.ops import postprocess as ops
from himnet_fast.reference.postprocess import DEFAULT_THRESHOLDS

__all__ = ["DetectionConfig", "detect_videos", "to_results_json", "select_video_classes", "synthetic_video_outputs"]


ATTENTION_NORMS = ("none", "minmax")


@dataclass
class DetectionConfig:
    """Settings of ``detect_videos``, and the ``detect`` section of a run's config (each field is
    an option of ``python -m himnet_fast.train``; defaults: DESIGN.md section 3 and the base
    code, CO2-Net).

    r: top-k ratio of the video scores, k = max(1, T // r) (option ``--infer-r``).
    class_threshold: keep classes whose video score >= it (else the argmax).
    thresholds: attention thresholds of the proposals (option: comma-separated numbers).
    attention_norm: what the thresholds cut: "none" (A itself, the base code's choice, the
    default) or "minmax" (each video's A rescaled to [0, 1] by its min and max; a constant A is
    left as it is). Only the proposals' extents change: their scores come from S_hat.
    oic_weight: weight of the video score added to the OIC score.
    nms: "soft" or "hard"; iou_threshold (hard, and linear soft), sigma (gaussian),
    soft_method "gaussian" | "linear".
    min_score: drop detections scored below it; None (the base code's choice, the default)
    keeps every one: dropping the tail of a ranking can only lower AP.
    offset: 1 (the base code's "+1" IoU on snippet indices, the default) or 0 (continuous IoU).
    seconds_per_snippet: 16 frames at 25 fps.
    max_per_video: keep only the highest-scored detections of each video (None: all).
    pre_nms_topk: keep only the k highest-scored proposals of each (video, class) before the
    NMS (ties to the earlier proposal), bounding its cost; None (the default): all of them.
    backend: "auto" | "cpp" | "reference" for the proposal and NMS ops (option ``--post-backend``).
    """

    r: int = 10
    class_threshold: float = 0.2
    thresholds: tuple = field(default_factory=lambda: DEFAULT_THRESHOLDS)
    attention_norm: str = "none"
    oic_weight: float = 0.2
    nms: str = "soft"
    iou_threshold: float = 0.7
    sigma: float = 0.3
    soft_method: str = "gaussian"
    min_score: Optional[float] = None
    offset: int = 1
    seconds_per_snippet: float = SNIPPET_SECONDS
    max_per_video: Optional[int] = None
    pre_nms_topk: Optional[int] = None
    backend: str = "auto"

    def __post_init__(self):
        self.thresholds = tuple(float(t) for t in np.asarray(self.thresholds, dtype=np.float64).reshape(-1))
        if not all(math.isfinite(t) for t in self.thresholds):
            raise ValueError(f"DetectionConfig: thresholds must be finite, got {self.thresholds}")
        if not (isinstance(self.r, int) and self.r >= 1):
            raise ValueError(f"DetectionConfig: r must be a positive integer, got {self.r!r}")
        if self.attention_norm not in ATTENTION_NORMS:
            raise ValueError(f"DetectionConfig: attention_norm must be one of {ATTENTION_NORMS}, got {self.attention_norm!r}")
        if self.nms not in ("soft", "hard"):
            raise ValueError(f"DetectionConfig: nms must be 'soft' or 'hard', got {self.nms!r}")
        if self.soft_method not in ("gaussian", "linear"):
            raise ValueError(f"DetectionConfig: soft_method must be 'gaussian' or 'linear', got {self.soft_method!r}")
        if not 0.0 <= self.iou_threshold <= 1.0:
            raise ValueError(f"DetectionConfig: iou_threshold must lie in [0, 1], got {self.iou_threshold}")
        if not self.sigma > 0:
            raise ValueError(f"DetectionConfig: sigma must be > 0, got {self.sigma}")
        if self.offset not in (0, 1):
            raise ValueError(f"DetectionConfig: offset must be 0 or 1, got {self.offset}")
        if self.max_per_video is not None and self.max_per_video < 0:
            raise ValueError(f"DetectionConfig: max_per_video must be >= 0 or None, got {self.max_per_video}")
        k = self.pre_nms_topk
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ValueError(f"DetectionConfig: pre_nms_topk must be a positive integer or None, got {k!r}")
        if self.min_score is not None and math.isnan(self.min_score):
            raise ValueError("DetectionConfig: min_score must be a number or None, got NaN")
        if self.backend not in ("auto", "cpp", "reference"):
            raise ValueError(f"DetectionConfig: backend must be 'auto', 'cpp' or 'reference', got {self.backend!r}")

    @property
    def nms_method(self) -> str:
        return "hard" if self.nms == "hard" else self.soft_method


def _as_numpy(name: str, i: int, x, ndim: int) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim != ndim or a.dtype.kind != "f":
        raise ValueError(f"detect_videos: {name}[{i}] must be a {ndim}D float array, got {a.dtype} {a.shape}")
    return a


_SCRATCH = threading.local()  # per thread: reusable packing buffers of detect_videos
_SCRATCH_MAX_BYTES = 64 << 20


def _scratch(name: str, shape: tuple, dtype) -> np.ndarray:
    """An uninitialized array of `shape`, from a per-thread buffer reused across calls.

    For the intermediates of detect_videos (every result is a fresh array): reusing
    them saves the page faults of fresh multi-MB allocations on every call. Buffers
    above _SCRATCH_MAX_BYTES are not kept.
    """
    buf = getattr(_SCRATCH, name, None)
    if buf is None or buf.dtype != dtype or buf.shape[1:] != shape[1:] or buf.shape[0] < shape[0]:
        buf = np.empty(shape, dtype=dtype)
        if buf.nbytes <= _SCRATCH_MAX_BYTES:
            setattr(_SCRATCH, name, buf)
    return buf[: shape[0]]


def _pack(name: str, arrays, dtype) -> np.ndarray:
    """np.concatenate(arrays) as dtype, into a reused per-thread buffer (_scratch)."""
    out = _scratch(name, (sum(a.shape[0] for a in arrays),) + arrays[0].shape[1:], dtype)
    np.concatenate(arrays, out=out, casting="same_kind")
    return out


def minmax_attention(a: np.ndarray) -> np.ndarray:
    """(T,) -> (T,): ``a`` rescaled to [0, 1] by its min and max, same dtype; a constant ``a``
    (nothing to rescale) is returned as it is."""
    lo, hi = a.min(), a.max()
    return a if hi <= lo else (a - lo) / (hi - lo)


def select_video_classes(scores, threshold: float = 0.2):
    """Selected (video, class) rows: classes scored >= threshold, else each video's argmax.

    Args:
        scores: (V, C) video-level class scores.
    Returns:
        selected (R, 2) int64 rows (video, class), ascending; video_scores (R,) float64.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(len(scores), -1)
    keep = scores >= threshold
    none = np.flatnonzero(~keep.any(axis=1))
    keep[none, np.argmax(scores[none], axis=1)] = True
    rows = np.argwhere(keep).astype(np.int64).reshape(-1, 2)
    return rows, scores[rows[:, 0], rows[:, 1]]


def detect_videos(attention, cas, cfg: DetectionConfig | None = None, backend: str | None = None) -> list[np.ndarray]:
    """Detections of a list of videos.

    Args:
        attention: list of V arrays/tensors (T_i,), the attention A of each video.
        cas: list of V arrays/tensors (T_i, K), S_hat = S * A (background last), same T_i.
        cfg: DetectionConfig (defaults when None).
        backend: "auto" | "cpp" | "reference" for the proposal and NMS ops (None: cfg.backend).

    Returns:
        list of V float64 arrays (n_i, 4), rows (class, start_s, end_s, score): classes
        ascending, each class in NMS selection order (descending score); with
        cfg.max_per_video, the top detections of the video by score instead.
    """
    cfg = cfg or DetectionConfig()
    backend = backend or cfg.backend
    if len(attention) != len(cas):
        raise ValueError(f"detect_videos: got {len(attention)} attention arrays but {len(cas)} cas arrays")
    att = [_as_numpy("attention", i, a, 1) for i, a in enumerate(attention)]
    xs = [_as_numpy("cas", i, x, 2) for i, x in enumerate(cas)]
    V = len(att)
    if V == 0:
        return []
    K = xs[0].shape[1]
    for i, (a, x) in enumerate(zip(att, xs)):
        if x.shape[0] != a.shape[0] or x.shape[1] != K or x.shape[0] < 1:
            raise ValueError(f"detect_videos: cas[{i}] must be (T, K={K}) with T = len(attention[{i}]) = "
                             f"{a.shape[0]} >= 1, got {x.shape}")
    if cfg.attention_norm == "minmax":  # before any backend, so that every backend cuts the same A
        att = [minmax_attention(a) for a in att]
    dtype = np.float64 if any(a.dtype == np.float64 for a in att + xs) else np.float32
    offsets = np.zeros(V + 1, dtype=np.int64)
    np.cumsum([a.shape[0] for a in att], out=offsets[1:])
    att_all = torch.from_numpy(_pack("attention", att, dtype))
    cas_all = torch.from_numpy(_pack("cas", xs, dtype))
    class_scores = ops.video_scores(cas_all, torch.from_numpy(offsets), cfg.r, backend=backend)
    selected, video_scores = select_video_classes(class_scores.numpy(), cfg.class_threshold)
    ids, scores = ops.proposals(att_all, cas_all, torch.from_numpy(offsets), torch.from_numpy(selected),
                                torch.from_numpy(video_scores), cfg.thresholds, cfg.oic_weight, backend=backend)
    groups = ids[:, 0] * K + ids[:, 1]
    keep, kept = ops.batched_soft_nms(ids[:, 2:4], scores, groups, sigma=cfg.sigma,
                                      iou_threshold=cfg.iou_threshold, min_score=cfg.min_score,
                                      method=cfg.nms_method, offset=cfg.offset, backend=backend,
                                      pre_nms_topk=cfg.pre_nms_topk)
    # mode="clip" (the indices are valid) writes straight into the reused buffer; "raise" buffers.
    kept_ids = np.take(ids.numpy(), keep.numpy(), axis=0, out=_scratch("kept_ids", (keep.shape[0], 4), np.int64),
                       mode="clip")
    rows = np.empty((kept_ids.shape[0], 4), dtype=np.float64)
    rows[:, :3] = kept_ids[:, 1:]  # class, start, end (in place: no temporaries)
    rows[:, 1:3] *= cfg.seconds_per_snippet
    rows[:, 3] = kept.numpy()
    bounds = np.searchsorted(kept_ids[:, 0], np.arange(V + 1))  # kept rows are grouped by video
    out = [rows[bounds[v] : bounds[v + 1]] for v in range(V)]
    if cfg.max_per_video is not None:
        out = [d[np.argsort(-d[:, 3], kind="stable")[: cfg.max_per_video]] for d in out]
    return out


def to_results_json(names, detections, classlist) -> dict:
    """ActivityNet results format: {"version", "results": {name: [{label, score, segment}]}, "external_data"}.

    Args:
        names: V video names (str or bytes).
        detections: V arrays (n_i, 4) rows (class, start_s, end_s, score), as detect_videos returns.
        classlist: class names (str or bytes), index = class id.
    """
    if len(names) != len(detections):
        raise ValueError(f"to_results_json: {len(names)} names but {len(detections)} detection arrays")

    def text(x) -> str:
        return x.decode() if isinstance(x, (bytes, np.bytes_)) else str(x)

    labels = [text(c) for c in classlist]
    results = {}
    for name, det in zip(names, detections):
        det = np.asarray(det, dtype=np.float64).reshape(-1, 4)
        results[text(name)] = [
            {"label": labels[int(c)], "score": float(s), "segment": [float(a), float(b)]} for c, a, b, s in det
        ]
    return {"version": "VERSION 1.3", "results": results, "external_data": {}}


def synthetic_video_outputs(lengths, segments=None, num_classes: int = 20, seed: int = 0):
    """Model-like (attention, S_hat) pairs for tests and benchmarks of the post-processing.

    Each ground-truth segment [start, end) (snippets) of class c becomes a smooth
    bump of attention and of class c's activation, plus noise; the background
    activation falls where the attention rises.

    Args:
        lengths: V video lengths T_i (snippets).
        segments: optional V lists of (start, end, class) in snippets; random ones
            (about a third of each video) when None.
        num_classes: C (K = C + 1 columns, background last).
        seed: RNG seed.
    Returns:
        attention list of (T_i,) float32 in [0, 1], cas list of (T_i, C+1) float32.
    """
    rng = np.random.default_rng(seed)
    attention, cas = [], []
    for i, T in enumerate(int(t) for t in lengths):
        if segments is None:
            count = max(1, int(rng.poisson(max(1.0, T / 40))))
            c = int(rng.integers(num_classes))
            starts = rng.integers(0, T, count)
            spans = [(int(s), int(min(T, s + 1 + rng.exponential(T / (3 * count) + 1))), c) for s in starts]
        else:
            spans = [(int(s), int(e), int(c)) for s, e, c in segments[i]]
        t = np.arange(T, dtype=np.float64)
        bump = np.zeros(T)
        x = rng.normal(0.0, 0.5, (T, num_classes + 1))
        for s, e, c in spans:
            mid, half = (s + e) / 2, max(0.5, (e - s) / 2)
            shape = np.clip(1.2 - np.abs(t - mid) / (half + 1.0), 0.0, 1.0)
            bump = np.maximum(bump, shape)
            x[:, c] += 4.0 * shape
        a = np.clip(0.05 + 0.9 * bump + rng.normal(0.0, 0.08, T), 0.0, 1.0)
        x[:, num_classes] += 3.0 * (1.0 - a)
        attention.append(a.astype(np.float32))
        cas.append((x * a[:, None]).astype(np.float32))
    return attention, cas
