"""The reference post-processing against hand-computed values (DESIGN.md section 3, "Inference")."""
import math

import numpy as np
import pytest

from himnet_fast.postprocess import DetectionConfig, detect_videos, select_video_classes, to_results_json
from himnet_fast.reference import postprocess as ref


def test_portable_exp_is_exp_to_two_ulp_and_exact_at_zero():
    x = -np.concatenate([np.linspace(0, 745, 20001), np.random.default_rng(0).random(5000) * 4])
    got = ref.portable_exp(x)
    want = np.array([math.exp(v) for v in x])
    normal = want > 2.3e-308
    ulp = np.spacing(want[normal])
    assert np.all(np.abs(got[normal] - want[normal]) <= 2 * ulp)
    assert np.all(np.abs(got[~normal] - want[~normal]) <= 2 * 5e-324)
    assert ref.portable_exp(0.0) == 1.0 and ref.portable_exp(-0.0) == 1.0
    assert ref.portable_exp(-746.0) == 0.0 and ref.portable_exp(-1e300) == 0.0
    assert ref.portable_exp(-math.log(2.0)) == 0.5


def test_video_class_scores_hand_example():
    # T = 20, r = 10 -> k = 2. Class 0 tops at (3, 1) -> 2; class 1 -> 0; background -> ln 2.
    cas = np.zeros((20, 3))
    cas[4, 0], cas[9, 0], cas[0, 0] = 3.0, 1.0, 0.5
    cas[:, 2] = math.log(2.0)
    scores = ref.video_class_scores(cas, r=10)
    z = np.array([math.exp(2.0), 1.0, 2.0])
    np.testing.assert_allclose(scores, (z / z.sum())[:2], rtol=1e-12)
    assert scores.shape == (2,)
    # T = 5 < r: k = 1, the maximum.
    np.testing.assert_allclose(ref.video_class_scores(cas[:5], r=10)[0],
                               math.exp(3.0) / (math.exp(3.0) + 1.0 + 2.0), rtol=1e-12)
    with pytest.raises(ValueError, match="cas must be"):
        ref.video_class_scores(np.zeros((0, 3)))


def test_select_classes_threshold_and_argmax_fallback():
    assert ref.select_classes([0.1, 0.25, 0.2, 0.19]).tolist() == [1, 2]
    assert ref.select_classes([0.1, 0.15, 0.05]).tolist() == [1]
    rows, scores = select_video_classes(np.array([[0.1, 0.25, 0.2, 0.19], [0.1, 0.15, 0.05, 0.0]]), 0.2)
    assert rows.tolist() == [[0, 1], [0, 2], [1, 1]] and scores.tolist() == [0.25, 0.2, 0.15]


def test_video_scores_reference_packs_videos():
    cas = np.random.default_rng(0).normal(size=(30, 4))
    out = ref.video_scores_reference(cas, [0, 10, 30], r=3)
    np.testing.assert_array_equal(out[0], ref.video_class_scores(cas[:10], 3))
    np.testing.assert_array_equal(out[1], ref.video_class_scores(cas[10:], 3))


def test_connected_components():
    assert ref.connected_components([1, 1, 0, 1, 0, 0, 1]) == [(0, 2), (3, 4), (6, 7)]
    assert ref.connected_components([0, 0]) == []
    assert ref.connected_components([1]) == [(0, 1)]
    assert ref.connected_components([]) == []


def test_oic_score_hand_examples():
    x = np.arange(1.0, 9.0)  # T = 8
    P = np.concatenate([[0.0], np.cumsum(x)])
    # [2, 6): L = 4, inner 4.5; o_s = 1, o_e = min(7, floor(5 + 1)) = 6: outer {x1, x6} = {2, 7}.
    assert ref.oic_score(P, 8, 2, 6, 0.2, 0.5) == pytest.approx(0.1, abs=1e-15)
    # [0, 8): both margins empty -> outer 0.
    assert ref.oic_score(P, 8, 0, 8, 0.0, 0.0) == pytest.approx(4.5)
    # [1, 3): o_s = floor(0.5) = 0 -> {x0} = 1; o_e = floor(2.5) = 2 < e: right margin empty.
    assert ref.oic_score(P, 8, 1, 3, 0.0, 0.0) == pytest.approx(1.5)
    # [1, 7): o_s = max(0, floor(-0.5)) = 0 -> {1}; o_e = min(7, floor(7.5)) = 7 -> {8}: outer 4.5.
    assert ref.oic_score(P, 8, 1, 7, 0.0, 0.0) == pytest.approx(0.0, abs=1e-15)
    # [7, 8): o_s = floor(6.75) = 6 -> {7}; o_e = min(7, floor(7.25)) = 7 < e.
    assert ref.oic_score(P, 8, 7, 8, 0.0, 0.0) == pytest.approx(1.0)


def test_proposals_reference_hand_example():
    # Two videos packed: T = 6 and T = 3; K = 2.
    att = np.array([0.9, 0.2, 0.6, 0.7, 0.1, 0.8, 0.95, 0.95, 0.0])
    cas = np.zeros((9, 2))
    cas[:6, 1] = [1, 0, 1, 1, 0, 1]
    cas[6:, 0] = [2, 4, 6]
    ids, scores = ref.proposals_reference(att, cas, [0, 6, 9], [[0, 1], [1, 0]], [1.0, 0.5], [0.5, 0.85], 0.2)
    assert ids.tolist() == [
        [0, 1, 0, 1], [0, 1, 2, 4], [0, 1, 5, 6],  # video 0, theta 0.5
        [0, 1, 0, 1],                               # video 0, theta 0.85
        [1, 0, 0, 2],                               # video 1, theta 0.5
        [1, 0, 0, 2],                               # video 1, theta 0.85
    ]
    # [0,1): outer [1, floor(0.25)] empty -> 1 + 0.2. [2,4): o_s = 1 -> {x1} = 0, o_e = 3 < e -> 1 + 0.2.
    # [5,6): o_s = floor(4.75) = 4 -> {0}; o_e = 5 < e -> 1 + 0.2. Video 1 [0,2): inner 3,
    # o_e = min(2, floor(1.5)) = 1 < e; outer empty -> 3 + 0.1.
    np.testing.assert_allclose(scores, [1.2, 1.2, 1.2, 1.2, 3.1, 3.1], rtol=0, atol=1e-15)
    ids, scores = ref.proposals_reference(att, cas, [0, 6, 9], np.zeros((0, 2)), [], [0.5], 0.2)
    assert ids.shape == (0, 4) and scores.shape == (0,)


def test_segment_iou_hand_values():
    s, e = np.array([2.0, 4.0, 0.0, 20.0, 2.0]), np.array([6.0, 6.0, 4.0, 30.0, 2.0])
    np.testing.assert_array_equal(ref.segment_iou(0.0, 4.0, s, e), [2 / 6, 0.0, 1.0, 0.0, 0.0])
    # Legacy: [0..4] and [4..6] share one of 7 snippets; [0..4] and [2..2] share 1 of 5.
    np.testing.assert_array_equal(ref.segment_iou(0.0, 4.0, s, e, offset=1.0),
                                  [3 / 7, 1 / 7, 1.0, 0.0, 1 / 5])


def test_soft_nms_reference_hand_example():
    seg = [[0, 4], [2, 6], [20, 24]]
    iou = 2.0 / 6.0  # IoU(A, B); C overlaps neither
    keep, kept = ref.soft_nms_reference(seg, [0.9, 0.8, 0.5], sigma=0.3)
    b = 0.8 * ref.portable_exp(-(iou * iou) / 0.3)
    assert b == pytest.approx(0.8 * math.exp(-1 / 2.7), rel=1e-15) and b > 0.5
    assert keep.tolist() == [0, 1, 2] and kept.tolist() == [0.9, b, 0.5]
    # Linear: B decays to 0.8 * (1 - 1/3) = 0.533 < 0.55 only when IoU > threshold.
    keep, kept = ref.soft_nms_reference(seg, [0.9, 0.8, 0.55], method="linear", iou_threshold=0.3)
    assert keep.tolist() == [0, 2, 1] and kept.tolist() == [0.9, 0.55, 0.8 * (1.0 - iou)]
    keep, kept = ref.soft_nms_reference(seg, [0.9, 0.8, 0.55], method="linear", iou_threshold=0.4)
    assert keep.tolist() == [0, 1, 2] and kept.tolist() == [0.9, 0.8, 0.55]
    # Hard NMS drops B; min_score stops at the first pick below it.
    assert ref.soft_nms_reference(seg, [0.9, 0.8, 0.5], method="hard", iou_threshold=0.3)[0].tolist() == [0, 2]
    assert ref.soft_nms_reference(seg, [0.9, 0.8, 0.5], min_score=0.52)[0].tolist() == [0, 1]
    assert ref.soft_nms_reference(seg, [0.9, 0.8, 0.5], min_score=0.6)[0].tolist() == [0]
    # Ties go to the lowest index; offset=1 turns touching segments into overlapping ones (IoU 1/7).
    assert ref.soft_nms_reference(seg, [0.5, 0.5, 0.5])[0].tolist() == [0, 2, 1]
    keep, kept = ref.soft_nms_reference([[0, 4], [4, 6]], [1.0, 1.0], offset=1.0)
    assert kept[1] == ref.portable_exp(-((1 / 7) * (1 / 7)) / 0.3)
    assert ref.soft_nms_reference([[0, 4], [4, 6]], [1.0, 1.0])[1].tolist() == [1.0, 1.0]
    keep, kept = ref.soft_nms_reference(np.zeros((0, 2)), [])
    assert keep.shape == (0,) and kept.shape == (0,)


def test_batched_soft_nms_reference_groups_independently():
    seg = [[0, 4], [2, 6], [0, 4], [2, 6]]
    keep, kept = ref.batched_soft_nms_reference(seg, [0.9, 0.8, 0.7, 0.6], [5, 5, 1, 1], method="hard",
                                                iou_threshold=0.3)
    assert keep.tolist() == [2, 0]  # group 1 first
    assert kept.tolist() == [0.7, 0.9]


def test_soft_nms_reference_pre_nms_topk_keeps_the_best_ties_to_the_lower_index():
    # Disjoint segments: nothing decays, so the picks show which segments survived the cut.
    seg = [[10 * i, 10 * i + 5] for i in range(7)]
    scores = [0.5, 0.9, 0.5, 0.5, 0.7, 0.1, 0.5]
    keep, kept = ref.batched_soft_nms_reference(seg, scores, [0, 0, 0, 0, 1, 1, 1], pre_nms_topk=2)
    assert keep.tolist() == [1, 0, 4, 6] and kept.tolist() == [0.9, 0.5, 0.7, 0.5]
    # The cut comes before the NMS: [2, 6] (0.8) is cut, so it no longer decays [0, 4]'s neighbour.
    seg = [[0, 4], [2, 6], [1, 5]]
    keep, kept = ref.soft_nms_reference(seg, [0.9, 0.8, 0.7], pre_nms_topk=2)
    want = ref.soft_nms_reference([[0, 4], [2, 6]], [0.9, 0.8])
    assert keep.tolist() == want[0].tolist() and kept.tolist() == want[1].tolist()
    assert ref.soft_nms_reference(seg, [0.9, 0.8, 0.7], pre_nms_topk=3)[0].tolist() == \
        ref.soft_nms_reference(seg, [0.9, 0.8, 0.7])[0].tolist()


def _bump_video():
    # One video, T = 40, K = 3 (classes 0, 1 + background). Attention high on [10, 20).
    T = 40
    att = np.full(T, 0.05)
    att[10:20] = 0.95
    cas = np.zeros((T, 3))
    cas[10:20, 0] = 5.0
    return att, cas


def test_detect_videos_reference_hand_example():
    att, cas = _bump_video()
    cfg = DetectionConfig(nms="hard")
    dets = detect_videos([att], [cas], cfg, backend="reference")
    # Class scores: top-4 means (5, 0, 0) -> softmax: class 0 ~ 0.987, class 1 ~ 0.0067: only class 0.
    # Every threshold yields [10, 20) (IoU 1 duplicates, removed by hard NMS): one detection.
    # OIC: L = 10, o_s = floor(7.5) = 7, o_e = floor(21.5) = 21: outer mean 0; inner 5.
    vs = math.exp(5) / (math.exp(5) + 2)
    assert len(dets) == 1 and dets[0].shape == (1, 4)
    np.testing.assert_allclose(dets[0][0], [0, 10 * 0.64, 20 * 0.64, 5 + 0.2 * vs], rtol=1e-12)
    # Soft-NMS keeps the 10 duplicates, decayed by exp(-1/0.3) each time.
    dets = detect_videos([att], [cas], DetectionConfig(), backend="reference")[0]
    assert dets.shape == (10, 4)
    np.testing.assert_allclose(dets[:, 3], (5 + 0.2 * vs) * np.exp(-np.arange(10) / 0.3), rtol=1e-12)
    top = detect_videos([att], [cas], DetectionConfig(max_per_video=3), backend="reference")[0]
    np.testing.assert_array_equal(top, dets[:3])


def test_detection_config_validates():
    with pytest.raises(ValueError, match="nms"):
        DetectionConfig(nms="fast")
    with pytest.raises(ValueError, match="sigma"):
        DetectionConfig(sigma=0)
    with pytest.raises(ValueError, match="offset"):
        DetectionConfig(offset=2)
    with pytest.raises(ValueError, match="thresholds"):
        DetectionConfig(thresholds=[0.5, float("nan")])
    assert DetectionConfig().thresholds == tuple(np.linspace(0.1, 0.9, 10))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="pre_nms_topk"):
            DetectionConfig(pre_nms_topk=bad)
    assert DetectionConfig().pre_nms_topk is None


def test_pre_nms_topk_is_a_train_option():
    import argparse

    from himnet_fast.config import RunConfig, add_config_arguments, apply_overrides

    parser = argparse.ArgumentParser()
    add_config_arguments(parser, RunConfig())
    assert "--pre-nms-topk" in parser.format_help()
    cfg = apply_overrides(RunConfig(), vars(parser.parse_args(["--pre-nms-topk", "50"])))
    assert cfg.detect.pre_nms_topk == 50
    assert apply_overrides(RunConfig(), vars(parser.parse_args([]))).detect.pre_nms_topk is None


def test_detect_videos_rejects_mismatched_inputs():
    att, cas = _bump_video()
    with pytest.raises(ValueError, match="cas\\[0\\] must be"):
        detect_videos([att], [cas[:-1]], backend="reference")
    with pytest.raises(ValueError, match="attention arrays"):
        detect_videos([att, att], [cas], backend="reference")
    assert detect_videos([], [], backend="reference") == []


def test_to_results_json_format():
    det = [np.array([[1, 0.64, 1.28, 0.5]]), np.zeros((0, 4))]
    out = to_results_json([b"video_test_1", "video_test_2"], det, [b"A", b"B"])
    assert out["version"] == "VERSION 1.3" and out["external_data"] == {}
    assert out["results"] == {"video_test_1": [{"label": "B", "score": 0.5, "segment": [0.64, 1.28]}],
                              "video_test_2": []}
    with pytest.raises(ValueError, match="names"):
        to_results_json(["a"], det, ["A"])
