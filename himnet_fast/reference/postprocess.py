"""Reference post-processing: the executable spec of DESIGN.md section 3 ("Inference").

Plain numpy, one video / group / step at a time. The native ops of
``himnet_fast.ops.postprocess`` reproduce these functions bit for bit on the CPU,
so every arithmetic choice below is part of the spec:

* everything is float64; means come from prefix sums accumulated left to right
  (``np.cumsum``), differences of which give the sum over any span;
* the IoU of [s1, e1] and [s2, e2] is ``himnet_fast.geometry.segment_iou`` (the official
  evaluator's, with ``offset`` 0 (continuous IoU) or 1 (the legacy inclusive "+1" convention)
  added to the intersection and to each length), 0 unless the segments overlap;
* the gaussian decay is ``score * portable_exp(-(iou * iou) / sigma)``, where
  ``portable_exp`` is an exp written as a fixed sequence of IEEE operations (numpy's
  SIMD exp and the C library's differ in the last bit on AVX-512 machines, and GPUs
  differ again; this one gives the same bits everywhere);
* (soft-)NMS picks the highest current score, ties to the lowest index.
"""
from __future__ import annotations

import math

import numpy as np

from himnet_fast import geometry

DEFAULT_THRESHOLDS = tuple(float(t) for t in np.linspace(0.1, 0.9, 10))
NMS_METHODS = ("hard", "linear", "gaussian")

# 1/k! for k = 0..13, the Taylor coefficients of portable_exp (correctly rounded).
_EXP_TAYLOR = tuple(1.0 / math.factorial(k) for k in range(14))
_SHIFT = 6755399441055744.0  # 1.5 * 2**52: adding it rounds a double to an integer
_SHIFT_BITS = 0x4338000000000000
_INV_LN2 = 1.4426950408889634
_LN2_HI = 0.6931471803691238  # ln 2 = _LN2_HI + _LN2_LO, _LN2_HI with 21 trailing zero bits
_LN2_LO = 1.9082149292705877e-10
_TWO_M54 = 2.0**-54


def portable_exp(x) -> np.ndarray:
    """exp(x) for x <= 0 as a fixed sequence of IEEE double operations.

    x = k ln2 + r with k = round(x / ln2); exp(r) by the degree-13 Taylor polynomial
    in Horner form (|r| <= 0.347, truncation below 1e-17); times 2^(k+54), then 2^-54.
    Within 2 ulp of exp down to -745, 0 below -745.5, exactly 1 at 0. The C++/CUDA
    ``decay_exp`` (csrc/common.h) performs the same operations.

    Args:
        x: array-like of float64, all <= 0.
    Returns:
        np.ndarray float64 of x's shape.
    """
    x = np.asarray(x, dtype=np.float64)
    x = np.where(x < -745.5, -745.5, x)  # exp(-745.5) rounds to 0, as the true exp does there
    t = x * _INV_LN2 + _SHIFT
    k = t - _SHIFT
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = np.full_like(r, _EXP_TAYLOR[13])
    for c in _EXP_TAYLOR[12::-1]:
        p = p * r + c
    scale = ((t.view(np.int64) - _SHIFT_BITS + 1077) << 52).view(np.float64)  # 2^(k + 54)
    return (p * scale) * _TWO_M54


# ----------------------------------------------------------------------------- classes


def video_class_scores(cas, r: int = 10) -> np.ndarray:
    """Video-level class scores: softmax over K of the top-k mean of S_hat, background dropped.

    The top k of a class are its k largest values, ties to the earlier snippet;
    they are summed in time order, left to right (``np.cumsum``); the softmax uses
    ``portable_exp`` and a left-to-right sum.

    Args:
        cas: (T, K) S_hat of one video (K = C + 1, background last), T >= 1.
        r: k = max(1, T // r).
    Returns:
        (C,) float64.
    """
    x = np.asarray(cas, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 2:
        raise ValueError(f"video_class_scores: cas must be (T >= 1, K >= 2), got {x.shape}")
    k = max(1, x.shape[0] // r)
    top = np.argsort(-x, axis=0, kind="stable")[:k]  # the k largest per class, ties to the earlier snippet
    in_time_order = np.take_along_axis(x, np.sort(top, axis=0), axis=0)
    gamma = np.cumsum(in_time_order, axis=0)[-1] / k
    z = portable_exp(gamma - gamma.max())
    return (z / np.cumsum(z)[-1])[:-1]


def video_scores_reference(cas, offsets, r: int = 10) -> np.ndarray:
    """video_class_scores of each of V videos packed along time: cas (S, K), offsets (V+1,) -> (V, K-1)."""
    x = np.asarray(cas, dtype=np.float64)
    off = np.asarray(offsets, dtype=np.int64)
    out = np.zeros((off.shape[0] - 1, x.shape[1] - 1))
    for v in range(off.shape[0] - 1):
        out[v] = video_class_scores(x[off[v] : off[v + 1]], r)
    return out


def select_classes(scores, threshold: float = 0.2) -> np.ndarray:
    """Classes with score >= threshold (ascending), else the single argmax: (n,) int64."""
    scores = np.asarray(scores, dtype=np.float64)
    chosen = np.flatnonzero(scores >= threshold)
    if chosen.size == 0:
        chosen = np.array([int(np.argmax(scores))])
    return chosen.astype(np.int64)


# ----------------------------------------------------------------------------- proposals


def connected_components(mask) -> list[tuple[int, int]]:
    """Maximal runs [start, end) of True in a 1D boolean mask, left to right."""
    mask = np.asarray(mask, dtype=bool)
    edges = np.diff(np.concatenate([[False], mask, [False]]).astype(np.int8))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def oic_score(prefix: np.ndarray, T: int, s: int, e: int, weight: float, video_score: float) -> float:
    """Outer-inner contrast of [s, e) from prefix sums P (P[t] = sum of x[:t]) plus weight * video score.

    inner = mean of x over [s, e); outer = mean over [o_s, s) and [e, o_e] together
    (0 when both are empty); L = e - s, o_s = max(0, floor(s - L/4)),
    o_e = min(T - 1, floor(e - 1 + L/4)).
    """
    L = e - s
    inner = (prefix[e] - prefix[s]) / L
    o_s = max(0, math.floor(s - L / 4))
    o_e = min(T - 1, math.floor(e - 1 + L / 4))
    n_outer = (s - o_s) + (o_e + 1 - e)
    outer = ((prefix[s] - prefix[o_s]) + (prefix[o_e + 1] - prefix[e])) / n_outer if n_outer > 0 else 0.0
    return float((inner - outer) + weight * video_score)


def proposals_reference(attention, cas, offsets, selected, video_scores, thresholds, weight: float = 0.2):
    """Connected-component proposals of every selected (video, class) row, OIC-scored.

    Args:
        attention: (S,) attention of V videos packed along time (S = sum T_v).
        cas: (S, K) S_hat packed the same way.
        offsets: (V+1,) int, video v spans [offsets[v], offsets[v+1]).
        selected: (R, 2) int rows (video, class).
        video_scores: (R,) the video score of each row's class.
        thresholds: (H,) proposals of threshold h are the runs of {t : a_t > thresholds[h]}.
        weight: weight of the video score in the proposal score.
    Returns:
        ids (P, 4) int64 rows (video, class, start, end) with end exclusive, ordered by
        row, threshold, start; scores (P,) float64.
    """
    att = np.asarray(attention, dtype=np.float64)
    x = np.asarray(cas, dtype=np.float64)
    off = np.asarray(offsets, dtype=np.int64)
    rows = np.asarray(selected, dtype=np.int64).reshape(-1, 2)
    vs = np.asarray(video_scores, dtype=np.float64)
    ids, scores = [], []
    for (v, c), w in zip(rows.tolist(), vs.tolist()):
        a = att[off[v] : off[v + 1]]
        T = a.shape[0]
        prefix = np.concatenate([[0.0], np.cumsum(x[off[v] : off[v + 1], c])])
        for theta in np.asarray(thresholds, dtype=np.float64).tolist():
            for s, e in connected_components(a > theta):
                ids.append((v, c, s, e))
                scores.append(oic_score(prefix, T, s, e, weight, w))
    return np.array(ids, dtype=np.int64).reshape(-1, 4), np.array(scores, dtype=np.float64)


# ----------------------------------------------------------------------------- (soft-)NMS


def segment_iou(s1: float, e1: float, s: np.ndarray, e: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """IoU of [s1, e1] with each [s[j], e[j]] (n,): (n,) float64, 0 where they do not overlap
    (where the official IoU is 0, -0 or 0/0 = NaN)."""
    iou = geometry.segment_iou(np.array([s1, e1], dtype=np.float64), np.stack([s, e], axis=1), offset)
    return np.where(iou > 0, iou, 0.0)


def soft_nms_reference(
    segments,
    scores,
    method: str = "gaussian",
    sigma: float = 0.3,
    iou_threshold: float = 0.7,
    min_score: float = -math.inf,
    offset: float = 0.0,
    pre_nms_topk: int | None = None,
):
    """(Soft-)NMS by the plain O(n^2) loop.

    With pre_nms_topk = k, only the k highest-scored segments take part (ties at the cut
    to the lower index); the others are dropped. Then repeat: pick the alive segment with
    the highest current score (ties: lowest index); stop if its score < min_score; keep it;
    then update every other alive j:
    hard: j dies if iou > iou_threshold; linear: score_j *= (1 - iou) if iou > iou_threshold;
    gaussian: score_j *= portable_exp(-(iou * iou) / sigma) where iou > 0 (where
    iou = 0 the factor is exactly 1).

    Args:
        segments: (n, 2) [start, end]; scores: (n,).
    Returns:
        keep (m,) int64 indices in selection order; kept_scores (m,) float64, each
        segment's score when it was picked.
    """
    seg = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    current = np.array(scores, dtype=np.float64).reshape(-1)
    if pre_nms_topk is not None and pre_nms_topk < current.shape[0]:
        members = np.sort(np.argsort(-current, kind="stable")[:pre_nms_topk])  # index order: the same tie rule
        keep, kept = soft_nms_reference(seg[members], current[members], method, sigma, iou_threshold, min_score,
                                        offset)
        return members[keep], kept
    s, e = seg[:, 0], seg[:, 1]
    alive = np.ones(current.shape[0], dtype=bool)
    keep, kept = [], []
    while alive.any():
        candidates = np.flatnonzero(alive)
        i = candidates[np.argmax(current[candidates])]  # argmax returns the first maximum
        if current[i] < min_score:
            break
        keep.append(i)
        kept.append(current[i])
        alive[i] = False
        rest = np.flatnonzero(alive)
        iou = segment_iou(s[i], e[i], s[rest], e[rest], offset)
        if method == "hard":
            alive[rest[iou > iou_threshold]] = False
        elif method == "linear":
            hit = iou > iou_threshold
            current[rest[hit]] = current[rest[hit]] * (1.0 - iou[hit])
        else:
            hit = iou > 0
            current[rest[hit]] = current[rest[hit]] * portable_exp(-(iou[hit] * iou[hit]) / sigma)
    return np.array(keep, dtype=np.int64), np.array(kept, dtype=np.float64)


def batched_soft_nms_reference(segments, scores, groups, **kwargs):
    """soft_nms_reference on each group (ascending group id) of segments (pre_nms_topk, if
    given, applies to each group).

    Returns:
        keep (m,) int64 indices into the inputs, grouped by ascending group id, each
        group in its selection order; kept_scores (m,) float64.
    """
    seg = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    sc = np.asarray(scores, dtype=np.float64).reshape(-1)
    grp = np.asarray(groups, dtype=np.int64).reshape(-1)
    keep, kept = [np.zeros(0, np.int64)], [np.zeros(0, np.float64)]
    for g in np.unique(grp):
        members = np.flatnonzero(grp == g)
        k, v = soft_nms_reference(seg[members], sc[members], **kwargs)
        keep.append(members[k])
        kept.append(v)
    return np.concatenate(keep), np.concatenate(kept)
