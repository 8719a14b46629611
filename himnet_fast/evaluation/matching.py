"""Greedy matching of predictions to ground truth, all tIoU thresholds in one numba pass.

The official algorithm (``compute_average_precision_detection``, ported in
``himnet_fast.reference.evaluation``), per class: predictions in the order
``np.argsort(scores)[::-1]``; for each, its video's ground truths of the class in the order
``tiou.argsort()[::-1]``; per threshold, the first one that is not locked is matched unless a
tIoU below the threshold comes first. Equivalently: among the unlocked ground truths with
``not (tiou < thr)``, the first in that order.

numpy's ``argsort`` is not stable (its SIMD sorts break ties by the CPU's sorting
network), so ties are resolved by numpy itself, never by numba:

* the prediction order per class is computed with ``np.argsort`` on the very array the
  official code sorts (the class's scores in table order);
* a prediction whose tIoUs hold a tie among values >= the lowest threshold, or a NaN
  (0/0 for two zero-length segments, which numpy sorts first in descending order), gets
  its ground-truth ranks from ``np.argsort`` of its official tIoU array. Every other
  prediction has a unique best candidate: the largest tIoU, found in numba.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np
from numba import njit

from himnet_fast.geometry import segment_iou

from .io import GroundTruth, Predictions


@dataclass(frozen=True)
class MatchInputs:
    """Predictions in processing order with their ground-truth candidates.

    Attributes:
        order: (n,) prediction rows, class by class, each class in official score order.
        class_offsets: (C+1,) class c's predictions are ``order[class_offsets[c]:class_offsets[c+1]]``.
        gt_segments: (g, 2) ground-truth segments grouped by (class, video), table order inside.
        group_start, group_stop: (n,) candidates of ``order[i]`` are ``gt_segments[start[i]:stop[i]]``
            (an empty range: no ground truth of the class in the video, a false positive).
    """

    order: np.ndarray
    class_offsets: np.ndarray
    gt_segments: np.ndarray
    group_start: np.ndarray
    group_stop: np.ndarray


def score_order(pred: Predictions, num_classes: int) -> Tuple[np.ndarray, np.ndarray]:
    """Prediction rows class by class, each class sorted as official: ``argsort(scores)[::-1]``.

    Returns order (n,) int64 and class_offsets (C+1,) int64.
    """
    order = np.argsort(pred.label, kind="stable")  # rows of a class keep table order
    offsets = np.zeros(num_classes + 1, dtype=np.int64)
    np.cumsum(np.bincount(pred.label, minlength=num_classes), out=offsets[1:])
    for c in range(num_classes):
        rows = order[offsets[c]:offsets[c + 1]]
        if len(rows) > 1:
            order[offsets[c]:offsets[c + 1]] = rows[pred.score[rows].argsort()[::-1]]
    return order, offsets


def match_inputs(gt: GroundTruth, pred: Predictions) -> MatchInputs:
    """Group the ground truth by (class, video) and give each prediction its group."""
    num_videos = max(len(gt.videos), 1)
    gt_key = gt.label * num_videos + gt.video
    gt_perm = np.argsort(gt_key, kind="stable")
    keys, first = np.unique(gt_key[gt_perm], return_index=True)
    last = np.append(first[1:], len(gt_perm))

    order, offsets = score_order(pred, len(gt.classes))
    video, label = pred.video[order], pred.label[order]
    pkey = label * num_videos + video
    pos = np.minimum(np.searchsorted(keys, pkey), len(keys) - 1)
    found = (keys[pos] == pkey) & (video >= 0)
    start = np.where(found, first[pos], 0)
    stop = np.where(found, last[pos], 0)
    return MatchInputs(order, offsets, np.ascontiguousarray(gt.segments[gt_perm]), start, stop)


@njit(cache=True, error_model="numpy")
def _iou(ps: float, pe: float, gs: float, ge: float) -> float:
    """Scalar twin of the official ``segment_iou`` (``himnet_fast.geometry``): the same operations
    in the same order (numba without fastmath keeps IEEE order), so the same bits."""
    inter = min(pe, ge) - max(ps, gs)
    if inter < 0.0:
        inter = 0.0
    return inter / ((ge - gs) + (pe - ps) - inter)


@njit(cache=True)
def _scratch(start, stop):
    """A buffer as long as the largest candidate group (no official counterpart)."""
    width = 1
    for i in range(len(start)):
        width = max(width, stop[i] - start[i])
    return np.empty(width)


@njit(cache=True, error_model="numpy")
def _ambiguous_rows(order, segments, gt_segments, start, stop, min_thr):
    """(n,) bool: the tIoUs of order[i] hold a NaN or a tie among values >= min_thr."""
    # Where official ``tiou_sorted_idx = tiou_arr.argsort()[::-1]`` depends on numpy's tie order.
    n = len(order)
    out = np.zeros(n, dtype=np.bool_)
    seen = _scratch(start, stop)
    for i in range(n):
        r = order[i]
        k = 0
        for j in range(start[i], stop[i]):
            v = _iou(segments[r, 0], segments[r, 1], gt_segments[j, 0], gt_segments[j, 1])
            if v != v:
                out[i] = True
                break
            if v >= min_thr:
                for q in range(k):
                    if seen[q] == v:
                        out[i] = True
                seen[k] = v
                k += 1
    return out


def numpy_ranks(inputs: MatchInputs, segments: np.ndarray, rows: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Ranks of the candidates of the predictions ``rows`` (positions in processing order) in
    the official order ``tiou.argsort()[::-1]``.

    Returns rank_offset (n,) int64 (-1 = not ranked) and ranks (sum of group sizes,) int64:
    candidate ``start[i] + j`` of prediction i has rank ``ranks[rank_offset[i] + j]``.
    """
    rank_offset = np.full(len(inputs.order), -1, dtype=np.int64)
    sizes = inputs.group_stop[rows] - inputs.group_start[rows]
    rank_offset[rows] = np.cumsum(sizes) - sizes
    ranks = np.empty(int(sizes.sum()), dtype=np.int64)
    for i, offset, size in zip(rows, rank_offset[rows], sizes):
        a = inputs.group_start[i]
        tiou = segment_iou(segments[inputs.order[i]], inputs.gt_segments[a:a + size])
        ranks[offset + tiou.argsort()[::-1]] = np.arange(size)
    return rank_offset, ranks


@njit(cache=True, error_model="numpy")
def _match(order, segments, gt_segments, start, stop, tious, rank_offset, ranks):
    """(n_tiou, n) uint8 true positives (the rest are false positives), processing order.

    Per prediction and threshold, the chosen ground truth is the unlocked candidate with
    ``not (tiou < thr)`` that comes first: smallest numpy rank where ranked, else largest tIoU.
    """
    # Official: ``for tidx, tiou_thr in enumerate(tiou_thresholds): for jdx in tiou_sorted_idx:``
    # (fp on ``tiou_arr[jdx] < tiou_thr``, skip ``lock_gt >= 0``, else tp and lock); no candidate: fp.
    n, n_thr = len(order), len(tious)
    tp = np.zeros((n_thr, n), dtype=np.uint8)
    locked = np.zeros((n_thr, len(gt_segments)), dtype=np.bool_)
    iou = _scratch(start, stop)
    for i in range(n):
        r, a, m = order[i], start[i], stop[i] - start[i]
        for j in range(m):
            iou[j] = _iou(segments[r, 0], segments[r, 1], gt_segments[a + j, 0], gt_segments[a + j, 1])
        off = rank_offset[i]
        for t in range(n_thr):
            best = -1
            for j in range(m):
                if iou[j] < tious[t] or locked[t, a + j]:
                    continue
                if best < 0 or (ranks[off + j] < ranks[off + best] if off >= 0 else iou[j] > iou[best]):
                    best = j
            if best >= 0:
                tp[t, i] = 1
                locked[t, a + best] = True
    return tp


def match(gt: GroundTruth, pred: Predictions, tious: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Official greedy matching at every threshold.

    Returns tp (n_tiou, n) uint8 in processing order and class_offsets (C+1,) int64.
    """
    inputs = match_inputs(gt, pred)
    min_thr = float(tious.min()) if len(tious) else 0.0
    tied = np.flatnonzero(_ambiguous_rows(inputs.order, pred.segments, inputs.gt_segments,
                                          inputs.group_start, inputs.group_stop, min_thr))
    rank_offset, ranks = numpy_ranks(inputs, pred.segments, tied)
    tp = _match(inputs.order, pred.segments, inputs.gt_segments, inputs.group_start, inputs.group_stop,
                tious, rank_offset, ranks)
    return tp, inputs.class_offsets
