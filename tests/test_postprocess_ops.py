"""Native post-processing ops (himnet_fast._C) against the reference: fresh random inputs,
real THUMOS14 lengths, hypothesis properties, errors, fake (meta) kernels.

On the CPU the native ops promise the reference's bits, so equality is exact
(stricter than the 1e-6 of the acceptance criteria)."""
import math
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from himnet_fast.ops import postprocess as P
from himnet_fast.ops._dispatch import native_available
from himnet_fast.postprocess import DetectionConfig, detect_videos, synthetic_video_outputs
from himnet_fast.reference import postprocess as ref

pytestmark = pytest.mark.skipif(not native_available(), reason="himnet_fast._C is not built")

METHODS = ("gaussian", "linear", "hard")
HYPOTHESIS = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_same(a, b):
    """Same tensors: dtype, shape and bits."""
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert torch.equal(x, y), (x, y)


def both(fn, *args, **kwargs):
    """fn with backend cpp and reference; asserts they agree and returns the result."""
    out = fn(*args, backend="cpp", **kwargs)
    want = fn(*args, backend="reference", **kwargs)
    assert_same(out if isinstance(out, tuple) else (out,), want if isinstance(want, tuple) else (want,))
    return out


def random_segments(rng, n, span=100.0, mean_length=5.0, integer=False):
    s = rng.uniform(0, span, n)
    length = rng.exponential(mean_length, n)
    if integer:
        s, length = np.floor(s / 10), np.floor(length / 2)
    return np.stack([s, s + length], 1)


# ----------------------------------------------------------------------------- (soft-)NMS


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("offset", [0, 1])
def test_soft_nms_matches_reference_on_random_inputs(seed, method, offset):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 400))
    integer = seed % 2 == 0  # snippet-like: ties, duplicates, touching and empty segments
    seg = random_segments(rng, n, integer=integer)
    scores = np.round(rng.random(n), 1) if integer else rng.random(n) - (0.3 if seed == 3 else 0.0)
    for min_score in (None, 0.0, 0.05):
        keep, kept = both(P.soft_nms, seg, scores, sigma=0.2 + seed / 10, iou_threshold=0.1 * seed,
                          min_score=min_score, method=method, offset=offset)
        assert keep.dtype == torch.int64 and kept.dtype == torch.float64
        assert len(set(keep.tolist())) == len(keep)


@pytest.mark.parametrize("n", [1000, 3000])
def test_soft_nms_matches_reference_at_benchmark_distribution(n):
    # starts uniform over 3,000 s, lengths exponential with mean 20 s (the Soft-NMS benchmark).
    rng = np.random.default_rng(n)
    seg = random_segments(rng, n, span=3000.0, mean_length=20.0)
    keep, kept = both(P.soft_nms, seg, rng.random(n), sigma=0.3)
    assert len(keep) == n  # min_score None keeps everything, re-ordered and decayed
    keep, _ = both(P.soft_nms, seg, rng.random(n), min_score=0.001, offset=1)
    assert len(keep) < n


@pytest.mark.parametrize("seed", range(4))
def test_batched_soft_nms_matches_reference(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 600))
    seg = random_segments(rng, n, integer=seed % 2 == 0)
    groups = rng.integers(-3, 40, n)  # unsorted, negative ids, gaps
    for method in METHODS:
        keep, _ = both(P.batched_soft_nms, seg, rng.random(n), groups, method=method, min_score=0.01,
                       offset=seed % 2)
        kept_groups = groups[keep.numpy()]
        assert np.all(np.diff(kept_groups) >= 0)  # grouped by ascending id


def test_native_nms_reads_int64_float32_and_strided_segments_in_place():
    # The detector passes ids[:, 2:4] (an int64 view with row stride 4): the same result
    # as the float64 copy, for every dtype the native op reads without converting.
    rng = np.random.default_rng(11)
    ids = torch.from_numpy(rng.integers(0, 60, (500, 4)))
    ids[:, 3] = ids[:, 2] + torch.from_numpy(rng.integers(0, 12, 500))
    scores, groups = torch.from_numpy(rng.random(500) - 0.1), ids[:, 0] % 7
    want = P.batched_soft_nms(ids[:, 2:4].to(torch.float64).contiguous(), scores, groups, min_score=0.0,
                              backend="reference")
    for seg in (ids[:, 2:4], ids[:, 2:4].to(torch.float32), ids[:, 2:4].to(torch.float64).t().contiguous().t()):
        got = P.batched_soft_nms(seg, scores, groups, min_score=0.0, backend="cpp")
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    bad = ids[:, 2:4].clone()
    bad[3] = torch.tensor([9, 2])
    with pytest.raises(ValueError, match=r"end at or after its start \(segments\[3\]\)"):
        P.batched_soft_nms(bad, scores, groups, backend="cpp")


def test_nms_matches_reference_and_groups():
    rng = np.random.default_rng(7)
    seg = random_segments(rng, 300, integer=True)
    scores = rng.random(300)
    keep = both(P.nms, seg, scores, iou_threshold=0.5)
    assert torch.all(torch.from_numpy(scores)[keep].diff() <= 0)  # hard NMS keeps a score-sorted subset
    both(P.nms, seg, scores, iou_threshold=0.5, groups=rng.integers(0, 5, 300), offset=1)


def test_soft_nms_huge_n_disjoint_and_clustered():
    # 300k disjoint segments: nothing decays, so the order is the stable descending sort.
    n = 300_000
    rng = np.random.default_rng(0)
    start = np.arange(n) * 10.0
    seg = np.stack([start, start + rng.uniform(0.0, 9.0, n)], 1)
    scores = np.round(rng.random(n), 3)  # many ties
    keep, kept = P.soft_nms(seg, scores, backend="cpp")
    order = np.argsort(-scores, kind="stable")
    np.testing.assert_array_equal(keep.numpy(), order)
    np.testing.assert_array_equal(kept.numpy(), scores[order])
    # 200 far-apart clusters of 100 overlapping segments: each cluster is its own problem.
    clusters, size = 200, 100
    seg = np.concatenate([random_segments(rng, size, span=50.0) + 1e4 * k for k in range(clusters)])
    scores = rng.random(clusters * size)
    keep, kept = P.soft_nms(seg, scores, backend="cpp")
    final = np.empty(clusters * size)
    final[keep.numpy()] = kept.numpy()
    assert np.all(np.diff(kept.numpy()) <= 0)  # non-negative scores: picks only fall
    for k in (0, 57, 199):
        members = np.arange(k * size, (k + 1) * size)
        ck, cv = ref.soft_nms_reference(seg[members], scores[members])
        np.testing.assert_array_equal(final[members[ck]], cv)


# ----------------------------------------------------------------------------- proposals


def packed_videos(rng, lengths, K, dtype):
    att, cas = synthetic_video_outputs(lengths, num_classes=K - 1, seed=int(rng.integers(1 << 30)))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return (torch.from_numpy(np.concatenate(att)).to(dtype), torch.from_numpy(np.concatenate(cas)).to(dtype),
            torch.from_numpy(offsets))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_proposals_match_reference_on_random_inputs(seed, dtype):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 300, int(rng.integers(1, 8)))
    K = int(rng.integers(2, 8))
    att, cas, offsets = packed_videos(rng, lengths, K, dtype)
    if seed == 0:
        att = torch.round(att * 10) / 10  # attention exactly on the thresholds
    rows = np.array([(v, c) for v in range(len(lengths)) for c in range(K) if rng.random() < 0.4] or [(0, 0)])
    thresholds = ref.DEFAULT_THRESHOLDS if seed % 2 else np.sort(rng.random(int(rng.integers(1, 6))))
    ids, scores = both(P.proposals, att, cas, offsets, rows, rng.random(len(rows)), thresholds, 0.1 * seed)
    assert ids.shape[1] == 4 and scores.shape == (ids.shape[0],)
    assert torch.all(ids[:, 3] > ids[:, 2])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_video_scores_match_reference(seed, dtype):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 400, int(rng.integers(1, 10)))
    _, cas, offsets = packed_videos(rng, lengths, int(rng.integers(2, 22)), dtype)
    if seed == 0:
        cas = torch.round(cas)  # ties inside the top k
    scores = both(P.video_scores, cas, offsets, r=int(rng.integers(1, 12)))
    assert scores.shape == (len(lengths), cas.shape[1] - 1) and scores.dtype == torch.float64
    assert torch.all(scores >= 0) and torch.all(scores.sum(1) <= 1 + 1e-12)


@HYPOTHESIS
@given(st.lists(st.integers(1, 12), min_size=1, max_size=3), st.integers(2, 4), st.integers(1, 12), st.data())
def test_video_scores_property(lengths, K, r, data):
    S = sum(lengths)
    values = data.draw(st.lists(VALUES | st.floats(-30, 30), min_size=S * K, max_size=S * K))
    cas = torch.tensor(values, dtype=torch.float64).reshape(S, K)
    offsets = torch.tensor(np.concatenate([[0], np.cumsum(lengths)]))
    scores = both(P.video_scores, cas, offsets, r=r)
    assert scores.shape == (len(lengths), K - 1)
    if data.draw(st.booleans()):
        cas[data.draw(st.integers(0, S - 1)), 0] = math.nan
        raises_in_both_backends(lambda b: P.video_scores(cas, offsets, r=r, backend=b), "finite")


@pytest.fixture(scope="module")
def thumos_test_lengths(shared_data):
    root = shared_data / "thumos14"
    subset = np.load(root / "subset.npy", allow_pickle=True)
    duration = np.load(root / "duration.npy", allow_pickle=True).reshape(-1).astype(np.float64)
    return np.floor(duration[subset == b"test"] * 25 / 16).astype(np.int64)


@pytest.mark.parametrize("nms", ["soft", "hard"])
def test_detect_videos_matches_reference_at_real_thumos14_lengths(thumos_test_lengths, nms):
    lengths = thumos_test_lengths
    assert len(lengths) == 212
    pick = np.concatenate([np.argsort(lengths)[[0, 1, -1]], np.arange(0, 212, 12)])  # shortest, longest, spread
    att, cas = synthetic_video_outputs(lengths[pick], seed=3)
    for offset, norm in ((0, "none"), (1, "none"), (1, "minmax")):
        cfg = DetectionConfig(nms=nms, offset=offset, attention_norm=norm)
        got = detect_videos(att, cas, cfg, backend="cpp")
        want = detect_videos(att, cas, cfg, backend="reference")
        assert len(got) == len(want) == len(pick)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
        assert sum(len(g) for g in got) > 0


@pytest.mark.parametrize("backend", ["cpp", "reference"])
def test_minmax_attention_cuts_the_rescaled_attention(backend):
    # A in [0.60, 0.80]: a threshold of 0.5 keeps the whole video; rescaled, A = (0, 0.1, 1, 0.9,
    # 0.05, 0), so 0.5 keeps snippets 2-3 only: [2, 4) snippets = [1.28, 2.56) s.
    a = np.array([0.60, 0.62, 0.80, 0.78, 0.61, 0.60])
    cas = np.zeros((6, 3))
    cas[:, 0] = 2.0  # one class, far above the other and the background
    common = dict(thresholds=(0.5,), nms="hard", offset=0)
    whole, = detect_videos([a], [cas], DetectionConfig(**common), backend=backend)
    cut, = detect_videos([a], [cas], DetectionConfig(attention_norm="minmax", **common), backend=backend)
    np.testing.assert_allclose(whole[:, 1:3], [[0.0, 6 * 0.64]])
    np.testing.assert_allclose(cut[:, 1:3], [[2 * 0.64, 4 * 0.64]])
    assert cut[0, 0] == whole[0, 0] == 0
    # A constant A is left as it is: 0.3 stays below the threshold (rescaled to 0 or 1 it would not).
    flat, = detect_videos([np.full(6, 0.3)], [cas], DetectionConfig(attention_norm="minmax", **common), backend=backend)
    assert flat.shape == (0, 4)


def test_detect_videos_default_backend_is_native(monkeypatch):
    att, cas = synthetic_video_outputs([50, 80], seed=1)
    calls = []
    original = torch.ops.himnet_fast.batched_soft_nms

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(P.torch.ops.himnet_fast, "batched_soft_nms", spy, raising=False)
    detect_videos(att, cas)
    assert len(calls) == 1


# ----------------------------------------------------------------------------- hypothesis

VALUES = st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.5, 0.9, 1.0, 0.25, 0.7])


@st.composite
def proposal_inputs(draw):
    lengths = draw(st.lists(st.integers(0, 9), min_size=1, max_size=3))
    K = draw(st.integers(1, 3))
    S = sum(lengths)
    att = draw(st.lists(VALUES | st.floats(0, 1), min_size=S, max_size=S))
    fill = draw(st.sampled_from(["mixed", "above", "below"]))  # all-above / all-below the thresholds
    if fill != "mixed":
        att = [2.0 if fill == "above" else -1.0] * S
    cas = draw(st.lists(st.floats(-5, 5, width=32), min_size=S * K, max_size=S * K))
    rows = draw(st.lists(st.tuples(st.integers(0, len(lengths) - 1), st.integers(0, K - 1)), max_size=4))
    thresholds = draw(st.lists(VALUES, min_size=0, max_size=3))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    return (torch.tensor(att, dtype=dtype), torch.tensor(cas, dtype=dtype).reshape(S, K),
            torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.int64),
            torch.tensor(rows, dtype=torch.int64).reshape(-1, 2),
            torch.tensor(draw(st.lists(st.floats(0, 1), min_size=len(rows), max_size=len(rows))),
                         dtype=torch.float64),
            thresholds, draw(st.floats(0, 1)))


@HYPOTHESIS
@given(proposal_inputs())
def test_proposals_property(inputs):
    ids, scores = both(P.proposals, *inputs)
    att, _, offsets, rows, _, thresholds, _ = inputs
    assert len(ids) == len(scores)
    if len(ids):
        lengths = (offsets[1:] - offsets[:-1])[ids[:, 0]]
        assert torch.all((0 <= ids[:, 2]) & (ids[:, 2] < ids[:, 3]) & (ids[:, 3] <= lengths))
    if torch.all(att < 0) or len(thresholds) == 0:
        assert len(ids) == 0
    if torch.all(att > 1.5):  # one proposal = the whole video per (row, threshold) with T > 0
        lengths = (offsets[1:] - offsets[:-1])[rows[:, 0]] if len(rows) else torch.zeros(0)
        assert len(ids) == int((lengths > 0).sum()) * len(thresholds)


@st.composite
def nms_inputs(draw, grouped=False):
    n = draw(st.integers(0, 12))
    integer = draw(st.booleans())
    if integer:
        starts = draw(st.lists(st.integers(0, 8), min_size=n, max_size=n))
        ends = [s + draw(st.integers(0, 4)) for s in starts]  # zero-length segments included
    else:
        starts = draw(st.lists(st.floats(0, 20), min_size=n, max_size=n))
        ends = [s + draw(st.floats(0, 8)) for s in starts]
    scores = draw(st.lists(VALUES | st.floats(-1, 1), min_size=n, max_size=n))  # ties, negatives
    kwargs = dict(
        method=draw(st.sampled_from(METHODS)),
        sigma=draw(st.sampled_from([0.05, 0.3, 1.0])),
        iou_threshold=draw(st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0])),
        min_score=draw(st.sampled_from([None, 0.0, 0.2, -0.5])),
        offset=draw(st.sampled_from([0, 1])),
    )
    seg = torch.tensor([starts, ends], dtype=torch.float64).T.reshape(-1, 2)
    groups = torch.tensor(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), dtype=torch.int64)
    corrupt = draw(st.sampled_from([None] * 8 + ["nan", "length"]))
    return seg, torch.tensor(scores, dtype=torch.float64), groups, kwargs, corrupt


def corrupted(seg, scores, corrupt):
    if corrupt == "nan" and len(scores):
        scores = scores.clone()
        scores[len(scores) // 2] = math.nan
        return seg, scores, "NaN"
    if corrupt == "length":
        return seg, torch.cat([scores, torch.zeros(1, dtype=scores.dtype)]), "one per segment"
    return seg, scores, None


def raises_in_both_backends(call, error) -> bool:
    """With an expected error message, asserts both backends raise it and returns True."""
    if error is None:
        return False
    for backend in ("cpp", "reference"):
        with pytest.raises(ValueError, match=error):
            call(backend)
    return True


def check_kept(seg, scores, keep, kept, kwargs):
    assert len(set(keep.tolist())) == len(keep)
    if kwargs["min_score"] is not None:
        assert torch.all(kept >= kwargs["min_score"])
    if kwargs["method"] == "hard":
        assert torch.equal(kept, scores[keep])


@HYPOTHESIS
@given(nms_inputs())
def test_soft_nms_property(inputs):
    seg, scores, _, kwargs, corrupt = inputs
    seg, scores, error = corrupted(seg, scores, corrupt)
    if raises_in_both_backends(lambda b: P.soft_nms(seg, scores, backend=b, **kwargs), error):
        return
    keep, kept = both(P.soft_nms, seg, scores, **kwargs)
    check_kept(seg, scores, keep, kept, kwargs)
    if kwargs["min_score"] is None and kwargs["method"] != "hard":
        assert len(keep) == len(scores)  # soft-NMS re-orders and decays, never drops


@HYPOTHESIS
@given(nms_inputs())
def test_nms_property(inputs):
    seg, scores, _, kwargs, corrupt = inputs
    seg, scores, error = corrupted(seg, scores, corrupt)
    args = dict(iou_threshold=kwargs["iou_threshold"], min_score=kwargs["min_score"], offset=kwargs["offset"])
    if raises_in_both_backends(lambda b: P.nms(seg, scores, backend=b, **args), error):
        return
    keep = both(P.nms, seg, scores, **args)
    for a in range(len(keep)):  # no two kept segments overlap by more than the threshold
        iou = ref.segment_iou(*seg[keep[a]].tolist(), seg[keep[a + 1:], 0].numpy(), seg[keep[a + 1:], 1].numpy(),
                              float(kwargs["offset"]))
        assert np.all(iou <= kwargs["iou_threshold"])


@HYPOTHESIS
@given(nms_inputs())
def test_batched_soft_nms_property(inputs):
    seg, scores, groups, kwargs, corrupt = inputs
    seg, scores, error = corrupted(seg, scores, corrupt)
    if raises_in_both_backends(lambda b: P.batched_soft_nms(seg, scores, groups, backend=b, **kwargs), error):
        return
    keep, kept = both(P.batched_soft_nms, seg, scores, groups, **kwargs)
    check_kept(seg, scores, keep, kept, kwargs)
    assert torch.all(groups[keep].diff() >= 0)
    for g in groups.unique().tolist():  # each group alone gives the same picks
        members = torch.nonzero(groups == g).reshape(-1)
        k, v = P.soft_nms(seg[members], scores[members], backend="cpp", **kwargs)
        assert torch.equal(members[k], keep[groups[keep] == g]) and torch.equal(v, kept[groups[keep] == g])


# ----------------------------------------------------------------------------- errors, fake kernels


@pytest.mark.parametrize("backend", ["cpp", "reference"])
def test_clear_errors(backend):
    seg, scores = torch.tensor([[0.0, 1.0], [2.0, 3.0]]), torch.tensor([0.5, 0.4])
    with pytest.raises(ValueError, match="scores contain NaN"):
        P.soft_nms(seg, torch.tensor([0.5, math.nan]), backend=backend)
    with pytest.raises(ValueError, match="segments contain NaN"):
        P.nms(torch.tensor([[0.0, math.inf]]), torch.tensor([1.0]), backend=backend)
    with pytest.raises(ValueError, match="end at or after"):
        P.soft_nms(torch.tensor([[2.0, 1.0]]), torch.tensor([1.0]), backend=backend)
    with pytest.raises(ValueError, match="scores must be"):
        P.soft_nms(seg, scores[:1], backend=backend)
    with pytest.raises(ValueError, match="groups must be"):
        P.batched_soft_nms(seg, scores, torch.zeros(3, dtype=torch.int64), backend=backend)
    with pytest.raises(ValueError, match="method"):
        P.soft_nms(seg, scores, method="cosine", backend=backend)
    with pytest.raises(ValueError, match="sigma"):
        P.soft_nms(seg, scores, sigma=0.0, backend=backend)
    with pytest.raises(ValueError, match="offset"):
        P.soft_nms(seg, scores, offset=2, backend=backend)
    att, cas = torch.rand(5), torch.rand(5, 3)
    off, rows = torch.tensor([0, 5]), torch.tensor([[0, 1]])
    with pytest.raises(ValueError, match="cas must be"):
        P.proposals(att, cas[:4], off, rows, [0.5], backend=backend)
    with pytest.raises(ValueError, match="finite"):
        P.proposals(torch.tensor([0.5, math.nan, 0, 0, 0]), cas, off, rows, [0.5], backend=backend)
    with pytest.raises(ValueError, match="offsets"):
        P.proposals(att, cas, torch.tensor([0, 4]), rows, [0.5], backend=backend)
    with pytest.raises(ValueError, match="selected rows"):
        P.proposals(att, cas, off, torch.tensor([[0, 3]]), [0.5], backend=backend)
    with pytest.raises(ValueError, match="one entry per selected row"):
        P.proposals(att, cas, off, rows, [0.5, 0.2], backend=backend)
    with pytest.raises(ValueError, match="offsets must rise"):
        P.video_scores(cas, torch.tensor([0, 0, 5]), backend=backend)
    with pytest.raises(ValueError, match="cas must be"):
        P.video_scores(torch.rand(5), off, backend=backend)


def test_raw_ops_check_their_inputs():
    op = torch.ops.himnet_fast.batched_soft_nms
    with pytest.raises(ValueError, match="segments contain NaN"):
        op(torch.tensor([[0.0, math.nan]]), torch.ones(1), torch.zeros(1, dtype=torch.int64), 2, 0.3, 0.7, 0.0, 0.0)
    with pytest.raises(ValueError, match="method"):
        op(torch.zeros(1, 2), torch.ones(1), torch.zeros(1, dtype=torch.int64), 5, 0.3, 0.7, 0.0, 0.0)
    with pytest.raises(ValueError, match="selected"):
        torch.ops.himnet_fast.proposals(torch.rand(4), torch.rand(4, 2), torch.tensor([0, 4]),
                                        torch.tensor([[1, 0]]), torch.ones(1, dtype=torch.float64),
                                        torch.tensor([0.5], dtype=torch.float64), 0.2)


def test_quadratic_baseline_matches_sweep():
    rng = np.random.default_rng(5)
    seg = torch.from_numpy(random_segments(rng, 2000, span=1000.0, mean_length=20.0))
    scores, groups = torch.from_numpy(rng.random(2000)), torch.zeros(2000, dtype=torch.int64)
    quadratic, op = torch.ops.himnet_fast._soft_nms_quadratic, torch.ops.himnet_fast.batched_soft_nms
    for method in (0, 1, 2):
        assert_same(quadratic(seg, scores, groups, method, 0.3, 0.5, 0.01, 0.0),
                    op(seg, scores, groups, method, 0.3, 0.5, 0.01, 0.0))


def test_raw_op_cancel_flag_and_pre_nms_topk():
    op = torch.ops.himnet_fast.batched_soft_nms
    rng = np.random.default_rng(2)
    seg = torch.from_numpy(random_segments(rng, 3000, span=50.0, mean_length=20.0))  # dense: no pair lists
    args = (seg, torch.from_numpy(rng.random(3000)), torch.zeros(3000, dtype=torch.int64), 2, 0.3, 0.7, -math.inf,
            0.0)
    for run in (op, torch.ops.himnet_fast._soft_nms_quadratic):  # a flag set before the call stops the first selection
        with pytest.raises(RuntimeError, match="cancelled"):
            run(*args, cancel=torch.ones(1, dtype=torch.int32))
    with pytest.raises(RuntimeError, match="cancelled"):  # small groups (pair lists) stop between groups
        op(seg, args[1], torch.arange(3000) % 500, *args[3:], cancel=torch.ones(1, dtype=torch.int32))
    assert_same(op(*args, cancel=torch.zeros(1, dtype=torch.int32)), op(*args))
    with pytest.raises(ValueError, match="cancel must be"):
        op(*args, cancel=torch.zeros(1))
    with pytest.raises(ValueError, match="pre_nms_topk must be a positive integer"):
        op(*args, pre_nms_topk=0)

def test_fake_kernels_pass_opcheck():
    seg = torch.tensor([[0.0, 4.0], [2.0, 6.0], [9.0, 12.0]], dtype=torch.float64)
    args = (seg, torch.tensor([0.9, 0.8, 0.3], dtype=torch.float64), torch.tensor([0, 0, 1]), 2, 0.3, 0.7, 0.0, 0.0)
    for extra in ((), (1, torch.zeros(1, dtype=torch.int32))):  # pre_nms_topk, cancel
        torch.library.opcheck(torch.ops.himnet_fast.batched_soft_nms.default, args + extra,
                              test_utils=("test_schema", "test_faketensor"))
    att = torch.tensor([0.9, 0.2, 0.8, 0.7])
    pargs = (att, torch.rand(4, 2), torch.tensor([0, 4]), torch.tensor([[0, 1]]),
             torch.tensor([0.5], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64), 0.2)
    torch.library.opcheck(torch.ops.himnet_fast.proposals.default, pargs,
                          test_utils=("test_schema", "test_faketensor"))
    torch.library.opcheck(torch.ops.himnet_fast.video_scores.default, (torch.rand(6, 3), torch.tensor([0, 2, 6]), 10),
                          test_utils=("test_schema", "test_faketensor"))



# ----------------------------------------------------------------------------- bounds, Ctrl-C (issue 13)


@pytest.mark.parametrize("backend", ["cpp", "reference"])
def test_proposals_reject_non_integer_indices_and_non_finite_weight(backend):
    att, cas = torch.rand(5), torch.rand(5, 3)
    off, rows = torch.tensor([0, 5]), torch.tensor([[0, 1]])
    want = P.proposals(att, cas, off, rows, [0.5], backend=backend)
    assert_same(P.proposals(att, cas, off.double(), rows.double(), [0.5], backend=backend), want)  # 5.0 is 5
    with pytest.raises(ValueError, match=r"offsets must hold integers, got 2\.5"):
        P.proposals(att, cas, torch.tensor([0, 2.5, 5]), rows, [0.5], backend=backend)  # was read as [0, 2, 5]
    with pytest.raises(ValueError, match=r"selected must hold integers, got 1\.5"):
        P.proposals(att, cas, off, torch.tensor([[0, 1.5]]), [0.5], backend=backend)
    with pytest.raises(ValueError, match="selected must hold integers, got nan"):
        P.proposals(att, cas, off, np.array([[0, math.nan]]), [0.5], backend=backend)
    with pytest.raises(ValueError, match=r"offsets must hold integers, got 2\.5"):
        P.video_scores(cas, np.array([0, 2.5, 5]), backend=backend)
    for weight in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="weight must be a finite number"):
            P.proposals(att, cas, off, rows, [0.5], weight=weight, backend=backend)


@pytest.mark.parametrize("backend", ["cpp", "reference"])
def test_soft_nms_rejects_segments_whose_length_overflows(backend):
    seg = torch.tensor([[0.0, 1.0], [-1e308, 1e308], [-1e308, 1e308]], dtype=torch.float64)
    groups = torch.zeros(3, dtype=torch.int64)
    for method in METHODS:  # the native sweep used to drop one of the two long segments
        with pytest.raises(ValueError, match=r"segment lengths must be finite \(end - start overflows"):
            P.batched_soft_nms(seg, torch.tensor([0.5, 0.9, 0.4]), groups, method=method, backend=backend)
    many = torch.cat([torch.zeros(P._INTERRUPTIBLE_MIN_SEGMENTS, 2), seg[1:2]])  # the worker thread re-raises
    with pytest.raises(ValueError, match=r"segment lengths must be finite"):
        P.soft_nms(many, torch.ones(len(many)), backend=backend)
    if backend == "cpp":
        with pytest.raises(ValueError, match=r"end - start overflows at segments\[1\]"):
            torch.ops.himnet_fast.batched_soft_nms(seg, torch.ones(3), torch.zeros(3, dtype=torch.int64), 2, 0.3,
                                                   0.7, 0.0, 0.0)


def test_soft_nms_huge_finite_coordinates_match_reference():
    # Lengths up to ~1.6e308 (finite, but sums of two overflow): the pair-list, per-overlap
    # and length-bucket paths all agree with the reference.
    rng = np.random.default_rng(13)
    for n in (40, 2500):
        start = rng.uniform(-1.0, 0.1, n) * 1e308
        seg = np.stack([start, start + rng.uniform(0.0, 1.5, n) * 1e308], 1)
        seg[: n // 4] = rng.uniform(-5.0, 5.0, (n // 4, 1)) + [0.0, 1.0]  # and some short ones
        with np.errstate(over="ignore", invalid="ignore"):
            for method, offset in (("gaussian", 0), ("linear", 1), ("hard", 0)):
                both(P.soft_nms, seg, rng.random(n), method=method, offset=offset, iou_threshold=0.3)


def test_pre_nms_topk_keeps_the_best_of_each_group_ties_to_the_lower_index():
    seg = torch.tensor([[10.0 * i, 10.0 * i + 5] for i in range(7)], dtype=torch.float64)  # disjoint
    scores = torch.tensor([0.5, 0.9, 0.5, 0.5, 0.7, 0.1, 0.5], dtype=torch.float64)
    keep, kept = both(P.batched_soft_nms, seg, scores, torch.tensor([3, 3, 3, 3, -1, -1, -1]), pre_nms_topk=2)
    assert keep.tolist() == [4, 6, 1, 0] and kept.tolist() == [0.7, 0.5, 0.9, 0.5]


@pytest.mark.parametrize("seed", range(4))
def test_pre_nms_topk_matches_reference(seed):
    rng = np.random.default_rng(300 + seed)
    n = int(rng.integers(1, 3000))
    seg = random_segments(rng, n, span=300.0, integer=seed % 2 == 0)
    scores = np.round(rng.random(n), 2)  # ties at the cut
    groups = rng.integers(0, 1 + 3 * seed, n)
    sizes = np.bincount(groups)
    for k in (1, 7, 400, int(sizes.max())):
        for method in METHODS:
            keep, kept = both(P.batched_soft_nms, seg, scores, groups, method=method, pre_nms_topk=k,
                              min_score=0.05 if seed == 1 else None, offset=seed % 2)
            assert np.all(np.bincount(groups[keep.numpy()]) <= k)
    assert_same(P.batched_soft_nms(seg, scores, groups, pre_nms_topk=int(sizes.max())),
                P.batched_soft_nms(seg, scores, groups))  # a cut above every group changes nothing
    for bad in (0, -3, 2.5, True):
        raises_in_both_backends(lambda b: P.soft_nms(seg, scores, pre_nms_topk=bad, backend=b),
                                "pre_nms_topk must be a positive integer")


def test_detect_videos_pre_nms_topk_matches_reference():
    att, cas = synthetic_video_outputs([300, 41, 700], seed=4)
    cfg = DetectionConfig(pre_nms_topk=5)
    got, want = detect_videos(att, cas, cfg, backend="cpp"), detect_videos(att, cas, cfg, backend="reference")
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    full = detect_videos(att, cas, DetectionConfig(), backend="cpp")
    assert sum(len(g) for g in got) < sum(len(f) for f in full)


# A dense Soft-NMS (every segment overlaps every other: O(n^2), 39 s at n = 200k on the
# 2-core development machine, BENCHMARKS.md), interrupted one second after it starts; the
# child reports how the native op itself ended (cancelled by the flag, or not) and that the
# KeyboardInterrupt came out of the call.
INTERRUPTED_CHILD = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
import numpy as np, torch
from himnet_fast.ops import postprocess as P
run_with_flag = P._interruptible
def reporting(op, *args, **kwargs):
    def traced(*a, **k):
        try:
            result = op(*a, **k)
        except RuntimeError as exc:
            print("op: " + str(exc).splitlines()[0], flush=True)
            raise
        print("op: returned", flush=True)
        return result
    return run_with_flag(traced, *args, **kwargs)
P._interruptible = reporting
n = int(sys.argv[1])
rng = np.random.default_rng(0)
start = rng.uniform(0.0, 100.0, n)
seg = torch.from_numpy(np.stack([start, start + rng.exponential(20.0, n)], 1))
print("started", flush=True)
try:
    P.soft_nms(seg, torch.from_numpy(rng.random(n)), backend="cpp")
except KeyboardInterrupt:
    print("interrupted", flush=True)
    raise
print("finished", flush=True)
"""


def test_soft_nms_stops_on_ctrl_c():
    child = subprocess.Popen([sys.executable, "-c", INTERRUPTED_CHILD, "250000"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "started"
        time.sleep(1.0)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60.0)  # a hang guard, not a timing (BENCHMARKS.md: < 10 ms)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        pytest.fail("Soft-NMS ignored SIGINT for 60 s")
    assert "finished" not in out, "the Soft-NMS ended before the SIGINT: make it larger"
    assert err.rstrip().endswith("KeyboardInterrupt"), err
    assert child.returncode == -signal.SIGINT  # Python's exit status for an uncaught KeyboardInterrupt
    assert "interrupted" in out  # raised out of the soft_nms call itself
    assert "op: batched_soft_nms: cancelled (the cancel flag was set)" in out  # the loop read the flag

def test_cuda_ops_match_reference(cuda_device):
    rng = np.random.default_rng(11)
    seg = random_segments(rng, 500, span=500.0, mean_length=10.0)
    scores, groups = rng.random(500), rng.integers(0, 7, 500)
    for method in METHODS:
        keep, kept = P.batched_soft_nms(torch.from_numpy(seg).to(cuda_device), torch.from_numpy(scores).to(cuda_device),
                                        torch.from_numpy(groups).to(cuda_device), method=method, backend="cpp")
        want_keep, want_kept = ref.batched_soft_nms_reference(seg, scores, groups, method=method)
        np.testing.assert_array_equal(keep.cpu().numpy(), want_keep)
        np.testing.assert_allclose(kept.cpu().numpy(), want_kept, rtol=0, atol=1e-6)
    att, cas, offsets = packed_videos(rng, np.array([40, 300, 7]), 4, torch.float32)
    rows = torch.tensor([[0, 1], [1, 0], [1, 3], [2, 2]])
    vs = torch.rand(4, dtype=torch.float64)
    ids, sc = P.proposals(att.to(cuda_device), cas.to(cuda_device), offsets.to(cuda_device), rows.to(cuda_device),
                          vs.to(cuda_device), backend="cpp")
    want_ids, want_sc = P.proposals(att, cas, offsets, rows, vs, backend="reference")
    assert torch.equal(ids.cpu(), want_ids)
    torch.testing.assert_close(sc.cpu(), want_sc, rtol=0, atol=1e-6)



def test_cuda_pre_nms_topk_and_length_check(cuda_device):
    rng = np.random.default_rng(12)
    seg = random_segments(rng, 800, span=200.0, mean_length=10.0, integer=True)
    scores, groups = np.round(rng.random(800), 2), rng.integers(0, 5, 800)
    for k in (1, 30):
        keep, kept = P.batched_soft_nms(torch.from_numpy(seg).to(cuda_device), torch.from_numpy(scores).to(cuda_device),
                                        torch.from_numpy(groups).to(cuda_device), pre_nms_topk=k, backend="cpp")
        want_keep, want_kept = ref.batched_soft_nms_reference(seg, scores, groups, pre_nms_topk=k)
        np.testing.assert_array_equal(keep.cpu().numpy(), want_keep)
        np.testing.assert_allclose(kept.cpu().numpy(), want_kept, rtol=0, atol=1e-6)
    zeros = (torch.tensor([[0.0, 1.0], [5.0, 6.0]], device=cuda_device), torch.tensor([-0.0, 0.0], device=cuda_device))
    assert P.soft_nms(*zeros, pre_nms_topk=1, backend="cpp")[0].tolist() == [0]  # -0 ties +0: the lower index
    huge = torch.tensor([[-1e308, 1e308]], dtype=torch.float64, device=cuda_device)
    with pytest.raises(ValueError, match=r"end - start overflows"):
        P.soft_nms(huge, torch.ones(1, device=cuda_device), backend="cpp")
