"""Inference helpers of the detector: S_hat = S * A on full-length videos, background score,
video scores, absent-class firing, ground-truth class filter (hand-computed expectations)."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from himnet_fast.inference import (VideoOutput, absent_class_firing, attention_separation, gt_classes_only,
                                   infer_videos, ranking_auc)
from himnet_fast.model import HiMNet

LN2 = math.log(2.0)


def test_background_is_the_softmax_of_the_last_class():
    # Row 0: softmax([0, 0, ln 2]) = [1, 1, 2] / 4; row 1: softmax([0, 0, 0]) = 1/3 each.
    cas = np.array([[0.0, 0.0, LN2], [0.0, 0.0, 0.0]], dtype=np.float32)
    out = VideoOutput("v", np.ones(2, np.float32), cas, cas)
    np.testing.assert_allclose(out.background, [0.5, 1 / 3], rtol=1e-6)


def test_video_scores_use_the_top_k_of_s_hat_with_k_from_r():
    # T = 4, r = 2 -> k = 2: top-2 means per class of S_hat = [1.5, 0.5, 0]; softmax of that,
    # background dropped.
    cas_hat = np.array([[2, 0, 0], [1, 1, 0], [0, 0, 0], [-1, 0, 0]], dtype=np.float32)
    out = VideoOutput("v", np.ones(4, np.float32), cas_hat, cas_hat)
    e = np.exp([1.5, 0.5, 0.0])
    np.testing.assert_allclose(out.video_scores(r=2), (e / e.sum())[:-1], rtol=1e-12)


def test_absent_class_firing_takes_the_largest_absent_class():
    # C = 2, the video holds class 0 only. S_hat = [[1,0,0],[0,0,0]], T = 2, r = 10 -> k = 1:
    # video scores softmax([1, 0, 0]) -> class 1: 1 / (e + 2).
    # Snippet probabilities of S = [[1,0,0],[0,0,ln 2]]: class 1 is 1/(e+2) then 1/4 -> max 1/4.
    cas = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, LN2]], dtype=np.float32)
    cas_hat = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    outputs = [VideoOutput("v", np.ones(2, np.float32), cas, cas_hat)]
    got = absent_class_firing(outputs, np.array([[1, 0]]), r=10)
    assert got["absent_video_score"] == pytest.approx(1 / (math.e + 2), rel=1e-12)
    assert got["absent_snippet_prob"] == pytest.approx(0.25, rel=1e-6)
    # A video holding every class has no absent class and is left out of the mean.
    assert absent_class_firing(outputs, np.array([[1, 1]]), r=10) == {"absent_video_score": 0.0,
                                                                      "absent_snippet_prob": 0.0}


def test_ranking_auc_counts_pairs_and_half_ties():
    # pairs (p, n): (0.9, 0.5) 1, (0.9, 0.1) 1, (0.5, 0.5) 1/2, (0.5, 0.1) 1 -> 3.5 / 4
    assert ranking_auc(np.array([0.9, 0.5]), np.array([0.5, 0.1])) == 0.875
    assert ranking_auc(np.array([0.1]), np.array([0.2, 0.3])) == 0.0
    assert math.isnan(ranking_auc(np.array([0.1]), np.zeros(0)))


def test_attention_separation_by_hand():
    # C = 2 (background target 2). Video 1: A = [0.9, 0.6, 0.7], targets [0, 2, 2];
    # video 2: A = [0.4, 0.8], targets [1, 2]. Action A: 0.9, 0.4 (mean 0.65);
    # background A: 0.6, 0.7, 0.8 (mean 0.7, all above 0.5); AUC: 0.9 beats all 3, 0.4 none -> 3/6.
    outputs = [VideoOutput("a", np.array([0.9, 0.6, 0.7], np.float32), np.zeros((3, 3)), np.zeros((3, 3))),
               VideoOutput("b", np.array([0.4, 0.8], np.float32), np.zeros((2, 3)), np.zeros((2, 3)))]
    got = attention_separation(outputs, [np.array([0, 2, 2]), np.array([1, 2])], num_classes=2)
    assert got["attention_fg"] == pytest.approx(0.65, abs=1e-7)
    assert got["attention_bg"] == pytest.approx(0.7, abs=1e-7)
    assert got["attention_bg_above_half"] == 1.0
    assert got["attention_auc"] == 0.5
    no_background = attention_separation(outputs[:1], [np.array([0, 1, 1])], num_classes=2)
    assert no_background == dict.fromkeys(got)  # all None: nothing to compare against


def test_detections_of_classes_without_ground_truth_are_dropped():
    gt = {"database": {"v1": {"subset": "test", "annotations": [{"segment": [0, 1], "label": "a"}]},
                       "v2": {"subset": "test", "annotations": []}}}
    results = {"version": "VERSION 1.3", "external_data": {}, "results": {
        "v1": [{"label": "a", "score": 0.5, "segment": [0, 1]}, {"label": "b", "score": 0.9, "segment": [0, 1]}],
        "v2": [{"label": "b", "score": 0.1, "segment": [2, 3]}]}}
    kept = gt_classes_only(results, gt)
    assert kept["results"] == {"v1": [{"label": "a", "score": 0.5, "segment": [0, 1]}], "v2": []}
    assert kept["version"] == "VERSION 1.3" and len(results["results"]["v1"]) == 2  # input untouched


def test_full_length_inference_multiplies_s_by_a_and_restores_training_mode():
    torch.manual_seed(0)
    model = HiMNet(feature_dim=8, hidden_dim=8, num_classes=3, attention_dim=4)
    model.train()
    rng = np.random.default_rng(0)
    videos = [rng.normal(size=(T, 8)).astype(np.float32) for T in (5, 9)]
    dataset = SimpleNamespace(names=["a", "b"], features=lambda i: videos[i])
    outputs = infer_videos(model, dataset, [1, 0], torch.device("cpu"))
    assert model.training
    assert [o.name for o in outputs] == ["b", "a"] and [len(o.attention) for o in outputs] == [9, 5]
    for o, x in zip(outputs, (videos[1], videos[0])):
        np.testing.assert_allclose(o.cas_hat, o.cas * o.attention[:, None], rtol=1e-6)
        model.eval()
        with torch.no_grad():  # dropout off: the same as one eval-mode forward of the whole video
            A, S, _ = model(torch.from_numpy(x)[None])
        model.train()
        np.testing.assert_allclose(o.attention, A[0].numpy(), rtol=1e-6)
        np.testing.assert_allclose(o.cas, S[0].numpy(), rtol=1e-6)
