"""Dispatchers of the post-processing ops: ``video_scores``, ``proposals``, ``nms``, ``soft_nms``,
``batched_soft_nms``.

Backends: ``"reference"`` (numpy, ``himnet_fast.reference.postprocess``) and ``"cpp"``
(the extension ops ``torch.ops.himnet_fast.proposals`` / ``batched_soft_nms``, CPU
and CUDA kernels; ``video_scores`` has a CPU kernel only); ``"auto"`` = ``"cpp"`` when
the extension loads. The native ops return the reference's bits on the CPU; the CUDA
kernels perform the same IEEE operations (no FMA contraction, the portable exp), so
they should too (checked by bench/gpu_postprocess_report.py).

Inputs may be tensors or array-likes; outputs are tensors on the input device.
Scores are computed and returned in float64. The native ops check their inputs
themselves (csrc/ops/<op>/<op>_op.cpp, for CPU and CUDA alike); the functions here
convert them and check only what the ops cannot see (Python types, casts that would
truncate), and run the same checks in Python for the reference backend.
"""
from __future__ import annotations

import math
import numbers
import threading

import numpy as np
import torch

from himnet_fast.ops._dispatch import native_available, resolve_backend
from himnet_fast.reference import postprocess as ref

_METHOD_IDS = {"hard": 0, "linear": 1, "gaussian": 2}

def _native_has(name: str) -> bool:
    """The loaded extension registers op ``name`` (a stale build may lack a newer one)."""
    try:
        getattr(torch.ops.himnet_fast, name)
    except (AttributeError, RuntimeError):
        return False
    return True


if native_available() and all(_native_has(n) for n in ("proposals", "video_scores", "batched_soft_nms")):

    @torch.library.register_fake("himnet_fast::proposals")
    def _proposals_fake(attention, cas, offsets, selected, video_scores, thresholds, weight):
        count = torch.library.get_ctx().new_dynamic_size()
        return offsets.new_empty((count, 4)), video_scores.new_empty((count,))

    @torch.library.register_fake("himnet_fast::video_scores")
    def _video_scores_fake(cas, offsets, r):
        return cas.new_empty((offsets.shape[0] - 1, cas.shape[1] - 1), dtype=torch.float64)

    @torch.library.register_fake("himnet_fast::batched_soft_nms")
    def _batched_soft_nms_fake(segments, scores, groups, method, sigma, iou_threshold, min_score, offset,
                               pre_nms_topk=None, cancel=None):
        count = torch.library.get_ctx().new_dynamic_size()
        return groups.new_empty((count,)), segments.new_empty((count,), dtype=torch.float64)


def _tensor(name: str, op: str, value, dtype=None, device=None) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        t = value.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{op}: {name} must be a tensor or array-like, got {type(value).__name__}") from exc
    if device is not None:
        t = t.to(device)
    if dtype is not None and not dtype.is_floating_point and t.is_floating_point():
        bad = ~(torch.isfinite(t) & (t == t.trunc()))  # the cast would truncate (or garble) these
        if bool(bad.any()):
            raise ValueError(f"{op}: {name} must hold integers, got {t[bad][0].item()}")
    if dtype is not None:
        t = t.to(dtype)
    return t


def _choose(op: str, backend: str) -> str:
    return resolve_backend(op, backend, ("reference", "cpp"), "cpp" if native_available() else "reference")


def video_scores(cas, offsets, r: int = 10, backend: str = "auto") -> torch.Tensor:
    """Video-level class scores of V ragged videos (softmax of top-k means, background dropped).

    Args:
        cas: (S, K) S_hat of V videos packed along time (float32/64, K = C + 1, background last).
        offsets: (V+1,) int64, video v spans rows [offsets[v], offsets[v+1]), each T_v >= 1.
        r: k = max(1, T_v // r) per video.
        backend: "auto" | "reference" | "cpp" (the native kernel runs on the CPU; CUDA inputs are
            copied there and the result copied back).

    Returns:
        (V, K-1) float64 (see ``reference.postprocess.video_class_scores``).
    """
    op = "video_scores"
    cas = _tensor("cas", op, cas)
    device = cas.device
    if cas.is_floating_point() and cas.dtype not in (torch.float32, torch.float64):
        cas = cas.to(torch.float64)
    off = _tensor("offsets", op, offsets, torch.int64, torch.device("cpu"))
    if not isinstance(r, int):
        raise ValueError(f"{op}: r must be a positive integer, got {r!r}")
    if _choose(op, backend) == "cpp":  # the op checks the rest
        return torch.ops.himnet_fast.video_scores(cas.cpu(), off, r).to(device)
    if cas.dim() != 2 or cas.shape[1] < 2 or not cas.is_floating_point():
        raise ValueError(f"{op}: cas must be a float (S, K >= 2) tensor, got {cas.dtype} {tuple(cas.shape)}")
    if off.dim() != 1 or off.numel() < 1 or int(off[0]) != 0 or int(off[-1]) != cas.shape[0] \
            or bool((off[1:] <= off[:-1]).any()):
        raise ValueError(f"{op}: offsets must rise strictly from 0 to len(cas) = {cas.shape[0]} (every T_v >= 1)")
    if r < 1:
        raise ValueError(f"{op}: r must be a positive integer, got {r!r}")
    x = cas.cpu().numpy()
    if not np.isfinite(x).all():
        raise ValueError(f"{op}: cas must be finite (found NaN or infinity)")
    return torch.from_numpy(ref.video_scores_reference(x, off.numpy(), r)).to(device)


def proposals(
    attention,
    cas,
    offsets,
    selected,
    video_scores,
    thresholds=ref.DEFAULT_THRESHOLDS,
    weight: float = 0.2,
    backend: str = "auto",
):
    """Connected-component proposals of selected (video, class) rows with OIC scores.

    Args:
        attention: (S,) float attention of V videos packed along time (S = sum T_v).
        cas: (S, K) float S_hat packed the same way (same dtype as attention; float32/64).
        offsets: (V+1,) int64, video v spans rows [offsets[v], offsets[v+1]).
        selected: (R, 2) int64 rows (video, class).
        video_scores: (R,) the video score of each row's class.
        thresholds: (H,) attention thresholds (default linspace(0.1, 0.9, 10)).
        weight: weight of the video score in the OIC score (0.2).
        backend: "auto" | "reference" | "cpp".

    Returns:
        ids (P, 4) int64 rows (video, class, start, end), end exclusive, ordered by row,
        threshold, start; scores (P,) float64 (see ``reference.postprocess.oic_score``).
    """
    op = "proposals"
    attention = _tensor("attention", op, attention)
    device = attention.device
    cas = _tensor("cas", op, cas, device=device)
    if attention.is_floating_point() and cas.is_floating_point() and (
            attention.dtype != cas.dtype or attention.dtype not in (torch.float32, torch.float64)):
        dtype = torch.float64 if torch.float64 in (attention.dtype, cas.dtype) else torch.float32
        attention, cas = attention.to(dtype), cas.to(dtype)
    offsets = _tensor("offsets", op, offsets, torch.int64, device)
    selected = _tensor("selected", op, selected, torch.int64, device).reshape(-1, 2)
    video_scores = _tensor("video_scores", op, video_scores, torch.float64, device).reshape(-1)
    thresholds = _tensor("thresholds", op, thresholds, torch.float64, device).reshape(-1)
    weight = float(weight)
    if _choose(op, backend) == "cpp":  # the op checks the rest
        return torch.ops.himnet_fast.proposals(attention, cas, offsets, selected, video_scores, thresholds, weight)
    if attention.dim() != 1:
        raise ValueError(f"{op}: attention must be 1D (S,), got shape {tuple(attention.shape)}")
    if cas.dim() != 2 or cas.shape[0] != attention.shape[0]:
        raise ValueError(
            f"{op}: cas must be (S, K) with S = len(attention) = {attention.shape[0]}, got {tuple(cas.shape)}"
        )
    if not (attention.is_floating_point() and cas.is_floating_point()):
        raise ValueError(f"{op}: attention and cas must be floating point")
    if not (bool(torch.isfinite(attention).all()) and bool(torch.isfinite(cas).all())):
        raise ValueError(f"{op}: attention and cas must be finite (found NaN or infinity)")
    if offsets.dim() != 1 or offsets.numel() < 1:
        raise ValueError(f"{op}: offsets must be 1D (V+1,), got shape {tuple(offsets.shape)}")
    off = offsets.cpu()
    if int(off[0]) != 0 or int(off[-1]) != attention.shape[0] or bool((off[1:] < off[:-1]).any()):
        raise ValueError(f"{op}: offsets must rise from 0 to len(attention) = {attention.shape[0]}")
    if video_scores.shape[0] != selected.shape[0]:
        raise ValueError(f"{op}: video_scores must have one entry per selected row ({selected.shape[0]}), "
                         f"got {video_scores.shape[0]}")
    if selected.numel():
        v, c = selected[:, 0], selected[:, 1]
        videos, K = off.numel() - 1, cas.shape[1]
        if int(v.min()) < 0 or int(v.max()) >= videos or int(c.min()) < 0 or int(c.max()) >= K:
            raise ValueError(f"{op}: selected rows must name videos in [0, {videos}) and classes in [0, {K})")
    if not bool(torch.isfinite(video_scores).all()) or not bool(torch.isfinite(thresholds).all()):
        raise ValueError(f"{op}: video_scores and thresholds must be finite")
    if not math.isfinite(weight):
        raise ValueError(f"{op}: weight must be a finite number, got {weight}")
    ids, scores = ref.proposals_reference(attention.cpu().numpy(), cas.cpu().numpy(), off.numpy(),
                                          selected.cpu().numpy(), video_scores.cpu().numpy(),
                                          thresholds.cpu().numpy(), weight)
    return torch.from_numpy(ids).to(device), torch.from_numpy(scores).to(device)


def _check_nms_reference(op, segments, scores, groups, sigma, iou_threshold, min_score, offset, pre_nms_topk):
    """The native op's checks, for the reference backend."""
    if segments.dim() != 2 or segments.shape[1] != 2:
        raise ValueError(f"{op}: segments must be (N, 2), got shape {tuple(segments.shape)}")
    n = segments.shape[0]
    if scores.dim() != 1 or scores.shape[0] != n:
        raise ValueError(f"{op}: scores must be (N,) with N = {n} (one per segment), got shape {tuple(scores.shape)}")
    if groups.dim() != 1 or groups.shape[0] != n:
        raise ValueError(f"{op}: groups must be (N,) with N = {n}, got shape {tuple(groups.shape)}")
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"{op}: sigma must be a positive finite number, got {sigma}")
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"{op}: iou_threshold must lie in [0, 1], got {iou_threshold}")
    if offset not in (0, 1):
        raise ValueError(f"{op}: offset must be 0 (continuous IoU) or 1 (legacy +1 IoU), got {offset}")
    if math.isnan(min_score):
        raise ValueError(f"{op}: min_score must not be NaN")
    if pre_nms_topk is not None and pre_nms_topk < 1:
        raise ValueError(f"{op}: pre_nms_topk must be a positive integer or None, got {pre_nms_topk!r}")
    if not bool(torch.isfinite(scores).all()):
        raise ValueError(f"{op}: scores contain NaN or infinity")
    if not bool(torch.isfinite(segments).all()):
        raise ValueError(f"{op}: segments contain NaN or infinity")
    if bool((segments[:, 1] < segments[:, 0]).any()):
        raise ValueError(f"{op}: every segment must end at or after its start (segments[:, 1] >= segments[:, 0])")
    if not bool(torch.isfinite(segments[:, 1] - segments[:, 0]).all()):
        raise ValueError(f"{op}: segment lengths must be finite (end - start overflows)")


def batched_soft_nms(
    segments,
    scores,
    groups,
    sigma: float = 0.3,
    iou_threshold: float = 0.7,
    min_score: float | None = None,
    method: str = "gaussian",
    offset: int = 0,
    backend: str = "auto",
    pre_nms_topk: int | None = None,
):
    """(Soft-)NMS of every group of segments in one call.

    The native sweep's work follows the number of overlapping pairs, so it is quadratic when
    every segment overlaps every other. Dense worst case: one group, starts uniform in [0, 100],
    lengths ~ Exp(20), gaussian, seconds of one run (``python bench/bench_postprocess.py
    --dense-growth`` on the 2-core development CPU, shared with other jobs at the time; the
    CUDA kernel on an H200; BENCHMARKS.md):

        n               25k     50k    100k    200k    exponent
        CPU (1 thread)  0.58    2.14    8.24   38.96    2.01
        CUDA (H200)     1.77    7.22   30.2             2.05

    Bound it with ``pre_nms_topk``. Ctrl-C stops a CPU call within one selection (calls of at
    least _INTERRUPTIBLE_MIN_SEGMENTS segments from the main thread run in a worker thread that
    the main thread stops); a CUDA call is not interruptible: Ctrl-C takes effect when it returns.

    Args:
        segments: (N, 2) [start, end], end >= start, finite, end - start finite (float32 /
            float64 / int64 are read in place by the native op, any strides; other dtypes are
            converted to float64).
        scores: (N,) finite scores.
        groups: (N,) integer group ids (any order; segments only interact within a group).
        sigma: gaussian width (decay exp(-iou^2 / sigma)).
        iou_threshold: hard / linear threshold (decay 1 - iou when iou > threshold).
        min_score: stop a group when its best remaining score is below it (None: never).
        method: "gaussian" | "linear" | "hard".
        offset: 0 continuous IoU, 1 legacy inclusive "+1" IoU.
        backend: "auto" | "reference" | "cpp".
        pre_nms_topk: keep only the k highest-scored segments of each group before the NMS
            (ties at the cut to the lower index), as ActionFormer / OpenTAD cap their
            candidates; None (default): all.

    Returns:
        keep (M,) int64 indices, grouped by ascending group id, each group in selection
        order (highest current score first, ties to the lowest index); kept_scores (M,)
        float64, the score each kept segment had when picked.
    """
    return _run_nms("batched_soft_nms", segments, scores, groups, sigma, iou_threshold, min_score, method, offset,
                    backend, pre_nms_topk)


# Native CPU calls with at least this many segments run in a worker thread that Ctrl-C can
# stop (_interruptible): below it even the dense worst case ends within about a quarter of a
# second (0.58 s at 25k, quadratic), and small calls (one video) are spared the thread's start.
_INTERRUPTIBLE_MIN_SEGMENTS = 16_384
# How often the waiting main thread wakes up, so that Python runs its SIGINT handler even
# when the kernel delivered the signal to the worker thread (which does not end the wait).
_INTERRUPT_POLL_SECONDS = 0.1


def _interruptible(op, *args, **kwargs):
    """op(*args, **kwargs, cancel=flag) in a worker thread (torch ops release the GIL), the
    main thread waiting. On Ctrl-C it sets the flag, which the native loops read once per
    selection, waits for the op to return, and re-raises the KeyboardInterrupt.

    The wait is on an Event set once the op has returned: an interrupted Thread.join() may
    mark a running thread as stopped (CPython 3.11), and the interpreter must not shut down
    while the op is still in C++ (its worker would abort the process).
    """
    flag = torch.zeros(1, dtype=torch.int32)
    outcome, done = {}, threading.Event()

    def work():
        try:
            outcome["result"] = op(*args, **kwargs, cancel=flag)
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="himnet_fast-soft-nms", daemon=True).start()
    try:
        while not done.wait(_INTERRUPT_POLL_SECONDS):
            pass
    except KeyboardInterrupt:
        flag[0] = 1
        done.wait()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _run_nms(op, segments, scores, groups, sigma, iou_threshold, min_score, method, offset, backend, pre_nms_topk):
    native = _choose(op, backend) == "cpp"
    segments = _tensor("segments", op, segments)
    device = segments.device
    scores = _tensor("scores", op, scores, torch.float64, device)
    if groups is None:
        groups = torch.zeros(len(segments) if segments.dim() else 0, dtype=torch.int64, device=device)
    groups = _tensor("groups", op, groups, device=device)
    if groups.is_floating_point() or groups.is_complex() or groups.dtype == torch.bool:
        raise ValueError(f"{op}: groups must be integer, got {groups.dtype}")  # the int64 cast would truncate
    groups = groups.to(torch.int64)
    if method not in _METHOD_IDS:
        raise ValueError(f"{op}: method must be one of {tuple(_METHOD_IDS)}, got {method!r}")
    if pre_nms_topk is not None and (isinstance(pre_nms_topk, bool) or not isinstance(pre_nms_topk, numbers.Integral)):
        raise ValueError(f"{op}: pre_nms_topk must be a positive integer or None, got {pre_nms_topk!r}")
    topk = None if pre_nms_topk is None else int(pre_nms_topk)
    min_score = -math.inf if min_score is None else float(min_score)
    sigma, iou_threshold, offset = float(sigma), float(iou_threshold), float(offset)
    if native:  # the op checks the rest (it reads float32 / float64 / int64 segments in place)
        args = (segments, scores, groups, _METHOD_IDS[method], sigma, iou_threshold, min_score, offset)
        if (device.type == "cpu" and scores.numel() >= _INTERRUPTIBLE_MIN_SEGMENTS
                and threading.current_thread() is threading.main_thread()):  # only it receives Ctrl-C
            return _interruptible(torch.ops.himnet_fast.batched_soft_nms, *args, pre_nms_topk=topk)
        return torch.ops.himnet_fast.batched_soft_nms(*args, pre_nms_topk=topk)
    segments = segments.to(torch.float64)
    _check_nms_reference(op, segments, scores, groups, sigma, iou_threshold, min_score, offset, topk)
    keep, kept = ref.batched_soft_nms_reference(
        segments.cpu().numpy(), scores.cpu().numpy(), groups.cpu().numpy(), method=method, sigma=sigma,
        iou_threshold=iou_threshold, min_score=min_score, offset=offset, pre_nms_topk=topk)
    return torch.from_numpy(keep).to(device), torch.from_numpy(kept).to(device)


def soft_nms(
    segments,
    scores,
    sigma: float = 0.3,
    iou_threshold: float = 0.7,
    min_score: float | None = None,
    method: str = "gaussian",
    offset: int = 0,
    backend: str = "auto",
    pre_nms_topk: int | None = None,
):
    """Soft-NMS of one set of segments: ``batched_soft_nms`` with a single group.

    Args and returns as ``batched_soft_nms`` (segments (N, 2), scores (N,) ->
    keep (M,) int64 in selection order, kept_scores (M,) float64).
    """
    return _run_nms("soft_nms", segments, scores, None, sigma, iou_threshold, min_score, method, offset, backend,
                    pre_nms_topk)


def nms(
    segments,
    scores,
    iou_threshold: float = 0.7,
    offset: int = 0,
    min_score: float | None = None,
    groups=None,
    backend: str = "auto",
    pre_nms_topk: int | None = None,
) -> torch.Tensor:
    """Hard NMS: keep the best segment, drop those with IoU > iou_threshold with it, repeat.

    Args:
        segments: (N, 2); scores: (N,); groups: optional (N,) group ids (per-group NMS);
        pre_nms_topk: as ``batched_soft_nms``.
    Returns:
        keep (M,) int64 indices in selection order (descending score, ties to the lowest
        index; grouped by ascending group id when groups are given).
    """
    keep, _ = _run_nms("nms", segments, scores, groups, 0.3, iou_threshold, min_score, "hard", offset, backend,
                       pre_nms_topk)
    return keep
