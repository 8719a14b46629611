"""Detection mAP on the real annotation files, bit-equal to the port of the official code."""
import json
import warnings

import numpy as np
import pytest

from himnet_fast.evaluation import (ANET_TIOUS, THUMOS14_TIOUS, EvaluationWarning, detection_map, drop_ambiguous,
                                    load_ground_truth, load_predictions, read_ambiguous)
from himnet_fast.reference import evaluation as official


def _evaluate_quietly(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown videos / empty classes (EvaluationWarning), DataWarning
        return detection_map(*args, **kwargs)


def _predictions_near(gt: dict, subset: str, n: int, seed: int) -> dict:
    """n detections: 70% jittered copies of ground truth (label sometimes wrong), 30% random,
    scores rounded to 2 decimals (ties), some on a video outside the subset."""
    rng = np.random.default_rng(seed)
    db = gt["database"]
    videos = [v for v, e in db.items() if e["subset"] == subset]
    anns = [(v, a) for v in videos for a in db[v]["annotations"]]
    classes = sorted({a["label"] for _, a in anns})
    results = {}
    for k in range(n):
        if rng.random() < 0.7:
            v, a = anns[int(rng.integers(len(anns)))]
            s, e = float(a["segment"][0]), float(a["segment"][1])
            jitter = rng.normal(scale=0.3 * (e - s) + 0.1, size=2)
            s, e = s + jitter[0], e + jitter[1]
            label = a["label"] if rng.random() < 0.85 else classes[int(rng.integers(len(classes)))]
        else:
            v = videos[int(rng.integers(len(videos)))] if rng.random() < 0.99 else "not_a_test_video"
            s = float(rng.uniform(0, 200))
            e = s + float(rng.exponential(5))
            label = classes[int(rng.integers(len(classes)))]
        results.setdefault(v, []).append({"label": label, "score": round(float(rng.random()), 2),
                                          "segment": [s, max(s, e)]})
    return {"results": results}


def _assert_official(gt, results, tious, subset, **kwargs):
    ap_ref, map_ref, index = official.evaluate(gt, results, tious, subset)
    r = _evaluate_quietly(gt, results, tious, subset, **kwargs)
    assert r.classes == list(index)
    assert np.array_equal(r.ap, ap_ref), np.abs(r.ap - ap_ref).max()
    assert np.array_equal(r.mAP, map_ref)
    return r


def test_thumos14_gt_basnet_random_predictions(shared_data):
    path = shared_data / "thumos14" / "gt_basnet.json"
    gt = json.loads(path.read_text())
    for seed, n in [(0, 3000), (1, 500)]:
        results = _predictions_near(gt, "test", n, seed)
        r = _assert_official(gt, results, THUMOS14_TIOUS, "test")
        assert len(r.classes) == 20 and r.num_ground_truth.sum() > 3000
        assert 0 < r.mAP[0] < 1 and np.all(np.diff(r.mAP) <= 0)
    assert np.array_equal(detection_map(path, results, THUMOS14_TIOUS).ap, r.ap)  # path input, same numbers


def test_thumos14_annotation_folder_as_ground_truth(shared_data):
    """The Thumos14reduced folder (212 test videos, 3358 instances) as GT equals the official
    evaluation of the JSON the data package writes from it."""
    from himnet_fast.data.annotations import ground_truth_json, read_annotations

    folder = shared_data / "thumos14"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gt = ground_truth_json(read_annotations(folder), "test")
    assert len(gt["database"]) == 212
    results = _predictions_near(gt, "test", 2000, 3)
    ap_ref, _, _ = official.evaluate(gt, results, THUMOS14_TIOUS, "test")
    r = _evaluate_quietly(folder, results, THUMOS14_TIOUS, "test")
    assert r.num_ground_truth.sum() == 3358
    assert np.array_equal(r.ap, ap_ref)


def test_thumos14_ambiguous_removal_equals_filtered_file(shared_data):
    """Dropping predictions that overlap Ambiguous_test.txt equals the official evaluation of a
    results file without them (filter written here: intersection > 0 with a segment of the video)."""
    path = shared_data / "thumos14" / "gt_basnet.json"
    gt = json.loads(path.read_text())
    ambiguous = read_ambiguous(shared_data / "thumos14" / "Ambiguous_test.txt")
    assert sum(len(s) for s in ambiguous.values()) == 99
    results = _predictions_near(gt, "test", 3000, 4)
    for video, segs in ambiguous.items():  # make sure some predictions hit them
        results["results"].setdefault(video, []).extend(
            {"label": "HighJump", "score": 0.5, "segment": [float(s) - 0.5, float(e)]} for s, e in segs)

    def overlaps(video, seg):
        return any(min(seg[1], e) - max(seg[0], s) > 0 for s, e in ambiguous.get(video, []))

    kept = {v: [d for d in dets if not overlaps(v, d["segment"])] for v, dets in results["results"].items()}
    n_dropped = sum(map(len, results["results"].values())) - sum(map(len, kept.values()))
    assert n_dropped > 99
    ap_ref, _, _ = official.evaluate(gt, {"results": kept}, THUMOS14_TIOUS, "test")
    r = _evaluate_quietly(path, results, THUMOS14_TIOUS, "test", ambiguous=shared_data / "thumos14" /
                          "Ambiguous_test.txt")
    assert r.counts["dropped_ambiguous"] == n_dropped
    assert np.array_equal(r.ap, ap_ref)


def _anet_validation_gt(shared_data) -> dict:
    """ActivityNet1.3 validation ground truth from anet13/*.npy, ids without the ``v_`` prefix
    (as in the official JSON and the sample prediction file)."""
    folder = shared_data / "anet13"
    names = np.load(folder / "videoname.npy", allow_pickle=True)
    subsets = np.load(folder / "subset.npy", allow_pickle=True)
    segments = np.load(folder / "segments.npy", allow_pickle=True)
    labels = np.load(folder / "labels.npy", allow_pickle=True)
    database = {}
    for name, subset, segs, labs in zip(names, subsets, segments, labels):
        if subset == "val":
            database[str(name)[2:]] = {"subset": "validation", "annotations": [
                {"segment": [float(s), float(e)], "label": str(lab)} for (s, e), lab in zip(segs, labs)]}
    return {"database": database}


def test_activitynet_sample_prediction(shared_data):
    """The real submission (4926 videos, every score 1.0: all ties) against 4427 validation
    videos; predictions on the other 499 count as false positives, as official."""
    gt = _anet_validation_gt(shared_data)
    pred_path = shared_data / "activitynet-eval" / "sample_detection_prediction.json"
    results = json.loads(pred_path.read_text())
    r = _assert_official(gt, results, ANET_TIOUS, "validation")
    assert len(r.classes) == 200 and len(gt["database"]) == 4427
    assert r.counts["unknown_video_predictions"] > 0
    assert np.all(np.diff(r.mAP) <= 0) and 0.5 < r.mAP[-1] <= r.mAP[0] < 1  # ground-truth-like, plus FPs
    with pytest.warns(EvaluationWarning, match="499 videos without ground truth"):
        detection_map(gt, pred_path, ANET_TIOUS, "validation")


def test_activitynet_skip_unknown_videos(shared_data):
    """unknown_videos="skip" equals the official evaluation of the file without those videos."""
    gt = _anet_validation_gt(shared_data)
    results = json.loads((shared_data / "activitynet-eval" / "sample_detection_prediction.json").read_text())
    known = {"results": {v: d for v, d in results["results"].items() if v in gt["database"]}}
    ap_ref, _, _ = official.evaluate(gt, known, ANET_TIOUS, "validation")
    r = _evaluate_quietly(gt, results, ANET_TIOUS, "validation", unknown_videos="skip")
    assert np.array_equal(r.ap, ap_ref)
    assert r.counts["unknown_video_predictions"] == 818  # 499 videos
    assert r.num_predictions.sum() == sum(map(len, known["results"].values()))
    gt_loaded = load_ground_truth(gt, "validation")
    with pytest.raises(ValueError, match="without ground truth"):
        load_predictions(results, gt_loaded, unknown_videos="error")
    assert len(drop_ambiguous(load_predictions(known, gt_loaded), {})) == sum(map(len, known["results"].values()))
