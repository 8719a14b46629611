"""Detection mAP: hand-computed cases, and bit-equality with the port of the official code on
randomized inputs full of ties (scores, tIoUs), duplicates, overlapping and zero-length
segments, classes without predictions, videos without ground truth and unknown videos."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from himnet_fast.evaluation import ANET_TIOUS, THUMOS14_TIOUS, EvaluationWarning, detection_map, segment_iou
from himnet_fast.evaluation.io import load_ground_truth, load_predictions
from himnet_fast.evaluation.matching import _ambiguous_rows, _iou, match_inputs
from himnet_fast.reference import evaluation as official

LABELS = ["a", "b", "c", "d"]


def _gt(videos):
    """{"database": ...} from {video: [(start, end, label), ...]} (subset test)."""
    return {"database": {v: {"subset": "test", "annotations": [{"segment": [s, e], "label": lab}
                                                               for s, e, lab in anns]}
                         for v, anns in videos.items()}}


def _results(videos):
    """{"results": ...} from {video: [(start, end, label, score), ...]}."""
    return {"results": {v: [{"segment": [s, e], "label": lab, "score": sc} for s, e, lab, sc in dets]
                        for v, dets in videos.items()}}


# ----------------------------------------------------------------------------- hand-computed

def test_ap_hand_computed():
    """One class, GTs [0,10] and [20,30]; predictions by score: [0,10] (TP), [0,10] again
    (FP: locked), [20,25] (tIoU 5/10 = 0.5: TP at 0.5, FP at 0.6).
    At 0.5: precision 1, 1/2, 2/3; recall 1/2, 1/2, 1 -> AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    At 0.6: precision 1, 1/2, 1/3; recall 1/2 throughout -> AP = 1/2 * 1 = 1/2."""
    gt = _gt({"v1": [(0, 10, "a"), (20, 30, "a")]})
    pred = _results({"v1": [(20, 25, "a", 0.7), (0, 10, "a", 0.9), (0, 10, "a", 0.8)]})
    r = detection_map(gt, pred, [0.5, 0.6])
    assert r.classes == ["a"]
    np.testing.assert_allclose(r.ap[:, 0], [5 / 6, 1 / 2], rtol=0, atol=1e-15)
    np.testing.assert_allclose(r.mAP, [5 / 6, 1 / 2], rtol=0, atol=1e-15)
    assert r.average() == pytest.approx((5 / 6 + 1 / 2) / 2)


def test_mean_over_ground_truth_classes_and_wrong_video():
    """Class a: one GT, matched by the only prediction (AP 1). Class b: one GT in v2 and one
    prediction in v1 (no b there: FP) -> AP 0. mAP = 1/2. Classes in first-appearance order."""
    gt = _gt({"v1": [(0, 10, "a")], "v2": [(5, 6, "b")]})
    pred = _results({"v1": [(0, 10, "a", 0.5), (5, 6, "b", 0.9)]})
    r = detection_map(gt, pred, [0.5])
    assert r.classes == ["a", "b"]
    assert r.ap.tolist() == [[1.0, 0.0]]
    assert r.mAP.tolist() == [0.5]
    assert r.num_ground_truth.tolist() == [1, 1] and r.num_predictions.tolist() == [1, 1]


def test_greedy_takes_highest_tiou_unlocked():
    """GTs [0,10] and [5,15]; prediction [2,12] overlaps them by 8/12 = 0.667 and 7/13 = 0.538:
    the first copy takes [0,10]. The second copy (lower score): [0,10] locked, [5,15] at
    0.538 >= 0.5 -> TP at 0.5 (AP 1); at 0.6 a FP (precision 1, 1/2; recall 1/2 -> AP 1/2)."""
    gt = _gt({"v": [(0, 10, "a"), (5, 15, "a")]})
    pred = _results({"v": [(2, 12, "a", 0.9), (2, 12, "a", 0.8)]})
    r = detection_map(gt, pred, [0.5, 0.6])
    assert r.ap[:, 0].tolist() == [1.0, 0.5]


def test_averages_thumos14():
    """avg 0.1:0.5 = mean of the first five mAPs, 0.1:0.7 of all seven (linspace thresholds)."""
    gt = _gt({"v": [(0, 10, "a")]})
    pred = _results({"v": [(0, 6, "a", 1.0)]})  # tIoU 0.6: TP up to 0.6, FP at 0.7
    r = detection_map(gt, pred, protocol="thumos14")
    assert r.mAP.tolist() == [1, 1, 1, 1, 1, 1, 0]
    assert r.average(0.1, 0.5) == 1.0
    assert r.average(0.1, 0.7) == pytest.approx(6 / 7)
    assert set(r.to_json()["averages"]) == {"0.1:0.5", "0.1:0.7"}
    assert "avg 0.1:0.5" in r.table().splitlines()[0]
    with pytest.raises(ValueError, match="no threshold"):
        r.average(0.8, 0.9)


def test_segment_iou_numpy_and_numba_twins_agree_bitwise():
    """The scalar numba _iou equals the official segment_iou (shared with the reference) bit for
    bit, zero-length pairs included (0/0 = NaN in both)."""
    assert official.segment_iou is segment_iou
    rng = np.random.default_rng(1)
    cands = np.sort(rng.integers(0, 6, size=(300, 2)).astype(float) * rng.choice([1, 0.1, 1 / 3], (300, 1)), axis=1)
    for target in np.sort(rng.integers(0, 6, size=(50, 2)).astype(float) / 3, axis=1):
        scalar = np.array([_iou(target[0], target[1], s, e) for s, e in cands])
        assert np.array_equal(scalar, segment_iou(target, cands), equal_nan=True)
    assert np.isnan(segment_iou(np.array([2.0, 2.0]), np.array([[3.0, 3.0]])))[0]


def test_ties_are_sent_to_numpy_ranking():
    """Duplicate GTs give a tie at tIoU 1 (ranked by numpy); a zero-length pair a NaN; a
    prediction with distinct tIoUs is not ranked; ties below the lowest threshold are ignored."""
    gt = load_ground_truth(_gt({"v": [(0, 10, "a"), (0, 10, "a"), (3, 3, "a"), (20, 30, "a"), (40, 50, "a")]}))
    pred = load_predictions(_results({"v": [(0, 10, "a", 4), (3, 3, "a", 3), (20, 25, "a", 2), (60, 70, "a", 1)]}),
                            gt)
    inputs = match_inputs(gt, pred)
    flags = _ambiguous_rows(inputs.order, pred.segments, inputs.gt_segments, inputs.group_start,
                            inputs.group_stop, 0.1)
    assert flags.tolist() == [True, True, False, False]


# --------------------------------------------------------------------------- vs the reference

def _random_case(rng, tie_heavy: bool):
    """Small integer grids so that segments, tIoUs and scores tie often."""
    n_videos = int(rng.integers(1, 7))
    grid = 12 if tie_heavy else 1000
    gt_videos, res_videos = {}, {}
    classes = LABELS[:int(rng.integers(1, 5))]
    for v in range(n_videos):
        n = int(rng.integers(0, 8))  # 0: a video without ground truth
        anns = []
        for _ in range(n):
            s = int(rng.integers(0, grid))
            e = s + int(rng.integers(0 if tie_heavy else 1, grid // 3 + 2))
            anns.append((s / 2, e / 2, classes[int(rng.integers(len(classes)))]))
        if anns and rng.random() < 0.3:
            anns.append(anns[int(rng.integers(len(anns)))])  # duplicate ground truth
        gt_videos[f"vid{v}"] = anns
    if not any(gt_videos.values()):
        gt_videos["vid0"] = [(0.0, 1.0, classes[0])]
    classes = sorted({lab for anns in gt_videos.values() for _, _, lab in anns})  # a label outside is an error
    names = list(gt_videos) + ["unknown0", "unknown1"]
    for name in names:
        if rng.random() < 0.2:
            continue
        dets = []
        for _ in range(int(rng.integers(0, 15))):
            s = int(rng.integers(0, grid))
            e = s + int(rng.integers(0 if tie_heavy else 1, grid // 3 + 2))
            score = float(rng.integers(0, 4)) / 4 if tie_heavy else float(rng.random())
            dets.append((s / 2, e / 2, classes[int(rng.integers(len(classes)))], score))
        if dets and rng.random() < 0.3:
            dets += dets[:int(rng.integers(1, len(dets) + 1))]  # duplicate predictions
        res_videos[name] = dets
    gt = _gt(gt_videos)
    gt["database"]["other"] = {"subset": "train", "annotations": [{"segment": [0, 1], "label": "zz"}]}
    return gt, _results(res_videos)


def _assert_equal_to_official(gt, results, tious):
    ap_ref, map_ref, index = official.evaluate(gt, results, tious, "test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EvaluationWarning)
        r = detection_map(gt, results, tious)
    assert r.classes == list(index)
    assert np.array_equal(r.ap, ap_ref), np.abs(r.ap - ap_ref).max()
    assert np.array_equal(r.mAP, map_ref)


@pytest.mark.parametrize("tie_heavy", [True, False])
def test_equals_official_on_seeded_random_cases(tie_heavy):
    rng = np.random.default_rng(20 + tie_heavy)
    threshold_sets = [THUMOS14_TIOUS, ANET_TIOUS, np.array([0.0, 0.5, 1.0]), np.array([0.3])]
    for case in range(150):
        gt, results = _random_case(rng, tie_heavy)
        _assert_equal_to_official(gt, results, threshold_sets[case % len(threshold_sets)])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), tie_heavy=st.booleans(),
       tious=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6))
def test_equals_official_hypothesis(seed, tie_heavy, tious):
    gt, results = _random_case(np.random.default_rng(seed), tie_heavy)
    _assert_equal_to_official(gt, results, np.array(tious))


def test_many_tied_predictions_and_ground_truths():
    """One video, 40 identical GTs, 200 predictions in 3 score values over 5 segments."""
    rng = np.random.default_rng(5)
    gt = _gt({"v": [(10.0, 20.0, "a")] * 40 + [(15.0, 25.0, "a")] * 10})
    segs = [(10, 20), (15, 25), (12, 22), (10, 25), (0, 5)]
    dets = [(*segs[int(rng.integers(5))], "a", float(rng.integers(3))) for _ in range(200)]
    _assert_equal_to_official(gt, _results({"v": dets}), THUMOS14_TIOUS)


def test_integer_scores_keep_the_official_dtype():
    """All-integer scores make an int64 column in the official pandas table; ties sort as there."""
    gt = _gt({"v": [(0, 10, "a"), (0, 10, "a"), (30, 40, "b")]})
    dets = [(0, 10, "a", 1), (0, 9, "a", 1), (1, 10, "a", 2), (30, 40, "b", 1), (0, 10, "a", 1)] * 5
    results = _results({"v": dets})
    _assert_equal_to_official(gt, results, THUMOS14_TIOUS)
    assert load_predictions(results, load_ground_truth(gt)).score.dtype == np.int64


def test_reference_port_fast_loop_equals_the_literal_official_loop():
    """The port's numpy-column loop equals the official iterrows/get_group loop as written."""
    rng = np.random.default_rng(7)
    for case in range(12):
        gt, results = _random_case(rng, tie_heavy=case % 2 == 0)
        fast = official.evaluate(gt, results, THUMOS14_TIOUS, "test")
        literal = official.evaluate(gt, results, THUMOS14_TIOUS, "test", literal=True)
        assert np.array_equal(fast[0], literal[0]) and list(fast[2]) == list(literal[2])


def test_negative_scores_rank_as_in_the_official_code():
    """The base code's detector keeps negatively scored detections (no score floor); they rank
    below the others, and the mAP equals the official code's."""
    gt = _gt({"v1": [(0, 10, "a"), (20, 30, "a")], "v2": [(5, 15, "b")]})
    pred = _results({"v1": [(0, 10, "a", -0.5), (20, 31, "a", 0.3), (40, 50, "a", -0.1)],
                     "v2": [(5, 14, "b", -2.0), (30, 40, "b", -1.0)]})
    r = detection_map(gt, pred, [0.5, 0.7])
    ap, mAP, _ = official.evaluate(gt, pred, [0.5, 0.7])
    np.testing.assert_allclose(r.mAP, mAP, rtol=0, atol=1e-15)
    # Class a at 0.5: ranks 0.3 (TP), -0.1 (FP), -0.5 (TP): AP = 1/2 * 1 + 1/2 * 2/3.
    assert r.ap[0, 0] == pytest.approx(1 / 2 + 1 / 3)
