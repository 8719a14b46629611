"""VOC-style interpolated average precision from true-positive flags, bit-exact to the official code.

The official ``interpolated_prec_rec`` ends with ``np.sum`` of the terms
``(mrec[i] - mrec[i-1]) * mprec[i]``, a pairwise summation whose rounding a plain loop
does not reproduce. So numba writes the terms (exact elementwise arithmetic: integer
cumulative counts, the same divisions, a running maximum) and numpy sums each slice.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _ap_terms(tp, class_offsets, npos):
    """Interpolation terms of every (class, threshold) curve.

    tp: (n_tiou, n) uint8 in processing order; class_offsets: (C+1,); npos: (C,) float64.
    Returns terms (flat float64) and bounds (C, n_tiou, 2): the terms of class c at threshold t
    are ``terms[bounds[c, t, 0]:bounds[c, t, 1]]`` (empty where the class has no prediction).
    """
    # Official (per class): ``for tidx ...: ap[tidx] = interpolated_prec_rec(precision_cumsum[tidx, :], ...)``.
    n_thr, n = tp.shape
    num_classes = len(class_offsets) - 1
    terms = np.empty(n_thr * (n + num_classes))
    bounds = np.zeros((num_classes, n_thr, 2), dtype=np.int64)
    mprec = np.empty(n + 2)
    mrec = np.empty(n + 2)
    w = 0
    for c in range(num_classes):
        a, m = class_offsets[c], class_offsets[c + 1] - class_offsets[c]
        for t in range(n_thr):
            bounds[c, t, 0] = w
            if m > 0:
                _curve(tp[t, a:a + m], npos[c], mprec, mrec)
                w = _write_terms(mprec[:m + 2], mrec[:m + 2], terms, w)
            bounds[c, t, 1] = w
    return terms[:w], bounds


@njit(cache=True)
def _curve(tp, npos, mprec, mrec):
    """Official precision/recall with the [0, ..., 0] and [0, ..., 1] sentinels, precision
    made non-increasing from the right."""
    # Official: ``tp_cumsum / npos``, ``tp_cumsum / (tp_cumsum + fp_cumsum)``, then interpolated_prec_rec's
    # ``np.hstack`` sentinels and ``for i in range(len(mprec) - 1)[::-1]: mprec[i] = max(mprec[i], mprec[i + 1])``.
    m = len(tp)
    tpc = 0.0
    fpc = 0.0
    mprec[0] = 0.0
    mrec[0] = 0.0
    for k in range(m):
        if tp[k]:
            tpc += 1.0
        else:
            fpc += 1.0
        mprec[k + 1] = tpc / (tpc + fpc)
        mrec[k + 1] = tpc / npos
    mprec[m + 1] = 0.0
    mrec[m + 1] = 1.0
    for i in range(m, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])


@njit(cache=True)
def _write_terms(mprec, mrec, terms, w):
    # Official interpolated_prec_rec: ``(mrec[idx] - mrec[idx - 1]) * mprec[idx]`` at
    # ``idx = np.where(mrec[1::] != mrec[0:-1])[0] + 1``, appended to terms from w (numpy sums them).
    for i in range(1, len(mrec)):
        if mrec[i] != mrec[i - 1]:
            terms[w] = (mrec[i] - mrec[i - 1]) * mprec[i]
            w += 1
    return w


def average_precision(tp: np.ndarray, class_offsets: np.ndarray, npos: np.ndarray) -> np.ndarray:
    """AP (n_tiou, C) float64 of each class at each threshold (0 where a class has no prediction).

    tp: (n_tiou, n) uint8 true positives in processing order (see ``matching.match``);
    class_offsets: (C+1,) int64; npos: (C,) ground-truth instances per class.
    """
    n_thr = tp.shape[0]
    num_classes = len(class_offsets) - 1
    terms, bounds = _ap_terms(np.ascontiguousarray(tp), class_offsets, npos.astype(np.float64))
    ap = np.zeros((n_thr, num_classes))
    for c in range(num_classes):
        for t in range(n_thr):
            lo, hi = bounds[c, t]
            if hi > lo:
                ap[t, c] = terms[lo:hi].sum()  # numpy's pairwise sum, as official np.sum
    return ap
