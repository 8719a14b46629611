"""Evaluator input checks (clear errors naming file, video and key), warnings, the CLI and
snippet accuracy."""
import copy
import json
import subprocess
import sys

import numpy as np
import pytest

from himnet_fast.evaluate import main, parse_tious
from himnet_fast.evaluation import (THUMOS14_TIOUS, EvaluationInputError, EvaluationWarning, detection_map,
                                    read_ambiguous, snippet_accuracy, snippet_targets)

GT = {"database": {
    "v1": {"subset": "test", "annotations": [{"segment": [0, 10], "label": "a"}, {"segment": ["20", "30"], "label": "b"}]},
    "v2": {"subset": "test", "annotations": [{"segment": [5, 8], "label": "a"}]},
    "t1": {"subset": "train", "annotations": [{"segment": [1, 2], "label": "c"}]},
}}
PRED = {"results": {
    "v1": [{"label": "a", "score": 0.9, "segment": [0, 9]}, {"label": "b", "score": 0.5, "segment": [21, 30]}],
    "v2": [{"label": "a", "score": 0.7, "segment": [5, 8]}],
}}


def _edit(doc, path, value):
    """Copy of ``doc`` with ``doc[path[0]][path[1]]... = value`` (value None deletes)."""
    doc = copy.deepcopy(doc)
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


def test_valid_input_and_string_segments():
    """GT segments may be numeric strings (gt_basnet.json), as official float() reads them."""
    r = detection_map(GT, PRED, [0.5])
    assert r.classes == ["a", "b"] and r.ap.tolist() == [[1.0, 1.0]]


@pytest.mark.parametrize("path, value, match", [
    (["database"], None, "'database'"),
    (["database", "v1", "subset"], None, "video 'v1', key 'subset'"),
    (["database", "v1", "annotations"], None, "video 'v1', key 'annotations'"),
    (["database", "v1", "annotations", 0, "label"], None, "key 'annotations\\[0\\]'"),
    (["database", "v1", "annotations", 0, "segment"], [10, 0], "video 'v1'.*ends before it starts"),
    (["database", "v1", "annotations", 0, "segment"], [0, "x"], "video 'v1'.*must be finite numbers"),
    (["database", "v1", "annotations", 0, "segment"], [0, float("nan")], "finite numbers, got \\[0, nan\\]"),
    (["database", "v2", "annotations", 0, "segment"], [1], "video 'v2'.*\\[start, end\\]"),
    # wrong shapes are not read as data: "19" is not [1, 9], nor a dict its keys
    (["database", "v2", "annotations", 0, "segment"], "19", "video 'v2', key 'annotations\\[0\\].segment'.*"
                                                            "\\[start, end\\], got '19'"),
    (["database", "v2", "annotations", 0, "segment"], {"1": 0, "9": 0}, "annotations\\[0\\].segment'.*\\[start, end"),
    (["database", "v2", "annotations", 0, "segment"], [True, 8], "'annotations\\[0\\].segment'.*finite numbers"),
    pytest.param(["database", "v2", "annotations", 0, "segment"], [0, 10**400],
                 "'annotations\\[0\\].segment'.*finite numbers", id="segment-10**400"),
    (["database"], {"v1": {"subset": "train", "annotations": []}}, "no video of subset 'test'"),
    (["database"], {"v1": {"subset": "test", "annotations": []}}, "no ground-truth instance"),
])
def test_bad_ground_truth(path, value, match):
    with pytest.raises(EvaluationInputError, match=match):
        detection_map(_edit(GT, path, value), PRED, [0.5])


@pytest.mark.parametrize("path, value, match", [
    (["results"], None, "'results'"),
    (["results"], [], "must map video ids"),
    (["results", "v2"], {"label": "a"}, "video 'v2'.*list of detections"),
    (["results", "v1", 1, "score"], None, "video 'v1', key '\\[1\\]'.*'score'"),
    (["results", "v1", 1, "score"], float("nan"), "video 'v1', key '\\[1\\].score'.*finite"),
    (["results", "v1", 1, "score"], "0.5", "score must be a finite number, got '0.5'"),
    (["results", "v1", 1, "score"], True, "key '\\[1\\].score'.*finite number, got True"),
    (["results", "v1", 1, "score"], [0.5], "key '\\[1\\].score'.*finite number, got \\[0.5\\]"),
    pytest.param(["results", "v1", 1, "score"], 10**400, "key '\\[1\\].score'.*finite number", id="score-10**400"),
    (["results", "v1", 0, "label"], "c", "label 'c' is not a ground-truth class"),
    (["results", "v1", 0, "segment"], [9, 0], "video 'v1', key '\\[0\\].segment'.*ends before"),
    (["results", "v1", 0, "segment"], [[0, 9]], "\\[start, end\\]"),
    (["results", "v1", 0, "segment"], [0, float("inf")], "finite numbers"),
    (["results", "v1", 0, "segment"], "19", "key '\\[0\\].segment'.*\\[start, end\\], got '19'"),
    (["results", "v1", 0, "segment"], {"0": 1, "9": 2}, "key '\\[0\\].segment'.*\\[start, end\\]"),
    (["results", "v1", 0, "segment"], ["0", "9"], "key '\\[0\\].segment'.*finite numbers"),  # strings: GT only
    (["results", "v1", 0, "segment"], [0, False], "key '\\[0\\].segment'.*finite numbers"),
])
def test_bad_predictions(path, value, match):
    with pytest.raises(EvaluationInputError, match=match):
        detection_map(GT, _edit(PRED, path, value), [0.5])


def test_every_score_a_one_element_list_is_named():
    """All scores wrapped as [s] made one (n, 1) array that failed later with a broadcast error."""
    pred = copy.deepcopy(PRED)
    for dets in pred["results"].values():
        for d in dets:
            d["score"] = [d["score"]]
    with pytest.raises(EvaluationInputError, match="video 'v1', key '\\[0\\].score'.*got \\[0.9\\]"):
        detection_map(GT, pred, [0.5])


def test_huge_numbers_are_numbers():
    """Integers beyond int64 (10**30) are finite numbers: read as float64, no traceback."""
    pred = copy.deepcopy(PRED)
    pred["results"]["v1"][0]["score"] = 10**30
    pred["results"]["v1"][1]["segment"] = [21, 10**30]  # tIoU ~0 with [20, 30]: a false positive
    r = detection_map(GT, pred, [0.5])
    assert r.ap.tolist() == [[1.0, 0.0]]


def test_bad_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"results": {"v1": [')
    with pytest.raises(EvaluationInputError, match="bad.json: malformed JSON"):
        detection_map(GT, bad, [0.5])
    with pytest.raises(EvaluationInputError, match="missing.json: ground-truth file not found"):
        detection_map(tmp_path / "missing.json", PRED, [0.5])


@pytest.mark.parametrize("tious", [[], [0.5, 1.5], [float("nan")], [[0.5]]])
def test_bad_thresholds(tious):
    with pytest.raises(ValueError, match="tious"):
        detection_map(GT, PRED, tious)


def test_bad_options():
    with pytest.raises(ValueError, match="unknown_videos"):
        detection_map(GT, PRED, [0.5], unknown_videos="ignore")
    with pytest.raises(ValueError, match="protocol"):
        detection_map(GT, PRED, protocol="voc")
    with pytest.raises(ValueError, match="give the thresholds"):
        detection_map(GT, PRED)


def test_empty_predictions_give_zero_with_warning():
    with pytest.warns(EvaluationWarning, match="no predictions to evaluate"):
        r = detection_map(GT, {"results": {}}, THUMOS14_TIOUS)
    assert r.ap.shape == (7, 2) and not r.mAP.any()


def test_unknown_videos_policies():
    """A prediction on the train video t1: a false positive by default (AP of a drops from 1 to
    precision 1/2 at recall 1/2, then 2/3 at 1 -> 1/2 + 1/2 * 2/3 = 5/6), dropped with skip."""
    pred = copy.deepcopy(PRED)
    pred["results"]["t1"] = [{"label": "a", "score": 0.8, "segment": [0, 9]}]
    with pytest.warns(EvaluationWarning, match="1 predictions on 1 videos.*false positives"):
        r = detection_map(GT, pred, [0.5])
    assert r.ap[0].tolist() == pytest.approx([5 / 6, 1.0], abs=1e-15)
    assert r.counts["unknown_video_predictions"] == 1
    with pytest.warns(EvaluationWarning, match="skipped"):
        assert detection_map(GT, pred, [0.5], unknown_videos="skip").ap.tolist() == [[1.0, 1.0]]
    with pytest.raises(EvaluationInputError, match="without ground truth in subset 'test'.*t1"):
        detection_map(GT, pred, [0.5], unknown_videos="error")


def test_class_without_predictions_warns():
    pred = {"results": {"v1": PRED["results"]["v1"][:1]}}
    with pytest.warns(EvaluationWarning, match="no predictions for 1 of 2 classes.*'b'"):
        r = detection_map(GT, pred, [0.5])
    assert r.ap[0, 1] == 0.0


def test_ambiguous_file_and_rule(tmp_path):
    """Intersection > 0 drops a prediction; touching at an end point (intersection 0) keeps it."""
    amb = tmp_path / "Ambiguous_test.txt"
    amb.write_text("v1  9.0 12.5\nv9  0 1\n\n")
    assert {k: v.tolist() for k, v in read_ambiguous(amb).items()} == {"v1": [[9.0, 12.5]], "v9": [[0.0, 1.0]]}
    pred = copy.deepcopy(PRED)
    pred["results"]["v1"].append({"label": "a", "score": 0.95, "segment": [12, 13]})  # overlaps: dropped
    r = detection_map(GT, pred, [0.5], ambiguous=amb)  # [0, 9] touches 9.0: kept
    assert r.counts["dropped_ambiguous"] == 1 and r.ap.tolist() == [[1.0, 1.0]]
    (tmp_path / "bad.txt").write_text("v1 3\n")
    with pytest.raises(EvaluationInputError, match="bad.txt: line 1: expected 'video start end'"):
        read_ambiguous(tmp_path / "bad.txt")


def test_result_json_and_table():
    r = detection_map(GT, PRED, [0.5, 0.7], protocol="thumos14")
    doc = r.to_json()
    assert json.loads(json.dumps(doc)) == doc
    assert doc["mAP"] == {"0.50": 1.0, "0.70": 1.0} and doc["ap"]["b"]["0.70"] == 1.0
    assert doc["num_ground_truth"] == {"a": 2, "b": 1}
    lines = r.table().splitlines()
    assert lines[-1].split()[:3] == ["mAP", "100.00", "100.00"] and len(lines) == 4
    outside = detection_map(GT, PRED, [0.3], protocol="anet13")  # its 0.5:0.95 average has no threshold
    assert outside.to_json()["averages"] == {} and "avg" not in outside.table()


# ----------------------------------------------------------------------------------------- CLI

def _write(tmp_path):
    gt, pred = tmp_path / "gt.json", tmp_path / "pred.json"
    gt.write_text(json.dumps(GT))
    pred.write_text(json.dumps(PRED))
    return str(gt), str(pred)


def test_cli_json_and_table(tmp_path, capsys):
    gt, pred = _write(tmp_path)
    out = tmp_path / "out.json"
    assert main(["--gt", gt, "--pred", pred, "--tiou", "0.1:0.7:0.1", "--json", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed["tious"] == THUMOS14_TIOUS.tolist()
    assert printed["averages"] == {"0.1:0.5": 1.0, "0.1:0.7": 1.0}
    assert main(["--gt", gt, "--pred", pred, "--protocol", "anet13"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[1:3] == ["0.50", "0.55"]


def test_cli_options_reach_the_evaluator(tmp_path, capsys):
    """--drop-ambiguous removes the [0, 9] hit of a (AP of a: 1 -> 1/2), --subset all adds the
    train class c (no predictions: AP 0), --unknown-videos error rejects a stray video."""
    gt, pred = _write(tmp_path)
    (tmp_path / "amb.txt").write_text("v1 1 2\n")
    argv = ["--gt", gt, "--pred", pred, "--tiou", "0.5", "--json"]
    with pytest.warns(EvaluationWarning, match="no predictions for 1 of 3 classes"):
        assert main(argv + ["--drop-ambiguous", str(tmp_path / "amb.txt"), "--subset", "all"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ap"] == {"a": {"0.50": 0.5}, "b": {"0.50": 1.0}, "c": {"0.50": 0.0}}
    assert doc["counts"]["dropped_ambiguous"] == 1
    stray = copy.deepcopy(PRED)
    stray["results"]["zz"] = [{"label": "a", "score": 0.1, "segment": [0, 1]}]
    (tmp_path / "stray.json").write_text(json.dumps(stray))
    assert main(["--gt", gt, "--pred", str(tmp_path / "stray.json"), "--unknown-videos", "error"]) == 2
    assert "'zz'" in capsys.readouterr().err


def test_cli_bad_input_exit_code(tmp_path, capsys):
    gt, _ = _write(tmp_path)
    (tmp_path / "bad.json").write_text("{")
    assert main(["--gt", gt, "--pred", str(tmp_path / "bad.json")]) == 2
    assert "bad.json: malformed JSON" in capsys.readouterr().err


def test_parse_tious():
    assert np.array_equal(parse_tious("0.1:0.7:0.1"), THUMOS14_TIOUS)
    assert parse_tious("0.5,0.75").tolist() == [0.5, 0.75]
    with pytest.raises(Exception, match="--tiou"):
        parse_tious("0.5:0.1:0.1")


def test_cli_module_runs(tmp_path):
    gt, pred = _write(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "himnet_fast.evaluate", "--gt", gt, "--pred", pred, "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["average_mAP"] == 1.0


# ------------------------------------------------------------------------------ snippet accuracy

def test_snippet_targets_hand_computed():
    """16/25 = 0.64 s snippets, centres 0.32, 0.96, 1.60, 2.24, 2.88: [1.0, 2.0) holds 1.60 only;
    [2.2, 3.0) of class b holds 2.24 and 2.88; background = C = 3."""
    anns = [{"segment": [1.0, 2.0], "label": "a"}, {"segment": [2.2, 3.0], "label": "b"}]
    assert snippet_targets(anns, 5, {"a": 0, "b": 1}, 3).tolist() == [3, 3, 0, 1, 1]
    later_wins = anns + [{"segment": [0.0, 3.0], "label": "a"}]
    assert snippet_targets(later_wins, 5, {"a": 0, "b": 1}, 3).tolist() == [0, 0, 0, 0, 0]
    # [1.0, 1.2) holds no centre: it takes the snippet of its midpoint 1.1 s, floor(1.1 / 0.64) = 1.
    assert snippet_targets([{"segment": [1.0, 1.2], "label": "b"}], 5, {"a": 0, "b": 1}, 3).tolist() == [3, 1, 3, 3, 3]
    with pytest.raises(ValueError, match="label 'z'"):
        snippet_targets([{"segment": [0, 1], "label": "z"}], 5, {"a": 0}, 1)


def test_snippet_accuracy_hand_computed():
    """Pooled over videos: (2 + 1) correct of (3 + 1) snippets = 0.75."""
    assert snippet_accuracy([np.array([0, 1, 2]), np.array([3])], [np.array([0, 1, 1]), np.array([3])]) == 0.75
    with pytest.raises(ValueError, match="pred_labels\\[0\\]"):
        snippet_accuracy([np.array([0, 1])], [np.array([0])])
    with pytest.raises(ValueError, match="no snippets"):
        snippet_accuracy([], [])


def test_unknown_videos_hint_at_the_v_prefix():
    gt = {"database": {"v_abc": {"subset": "validation", "annotations": [{"segment": [0, 1], "label": "a"}]}}}
    pred = {"results": {"abc": [{"label": "a", "score": 1.0, "segment": [0, 1]}]}}
    with pytest.warns(EvaluationWarning, match="differ by a 'v_' prefix"):
        r = detection_map(gt, pred, [0.5], "validation")
    assert r.mAP.tolist() == [0.0]
