"""Ground truth: the real THUMOS14 / ActivityNet1.3 annotation folders, ActivityNet JSON,
write -> read round trips, and bad annotation files."""
import json
import warnings

import numpy as np
import pytest

from himnet_fast.data import (Annotations, DataFormatError, DataWarning, ground_truth_json, read_annotations,
                              read_ground_truth_json, write_annotations)


def _quiet_read(folder, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return read_annotations(folder, **kw)


# ------------------------------------------------------------------------------- real files

def test_thumos14_real_folder(shared_data):
    ann = _quiet_read(shared_data / "thumos14")
    assert len(ann) == 412 and ann.num_classes == 20
    assert len(ann.indices("validation")) == 200 and len(ann.indices("test")) == 212
    assert ann.names[0] == "video_validation_0000051"
    assert ann.classlist[0] == "BaseballPitch" and ann.classlist[-1] == "VolleyballSpiking"
    assert ann.durations.shape == (412,) and ann.durations[0] == pytest.approx(169.794)
    # first video: three Billiards segments, as in segments.npy
    np.testing.assert_allclose(ann.segments[0], [[67.5, 75.9], [85.9, 90.6], [139.3, 148.2]])
    billiards = ann.classlist.index("Billiards")
    assert ann.segment_labels[0].tolist() == [billiards] * 3
    assert ann.video_labels[0].sum() == 1 and ann.video_labels[0, billiards] == 1
    assert sum(len(ann.segments[i]) for i in ann.indices("test")) == 3358
    assert set(np.unique(ann.original_fps)) == {24.0, 25.0, 30.0}


def test_thumos14_real_warns_about_late_segments(shared_data):
    with pytest.warns(DataWarning, match=r"segments\.npy: 30 segments end after the video duration"):
        read_annotations(shared_data / "thumos14")


def test_thumos14_real_strict_names_file_and_video(shared_data):
    with pytest.raises(DataFormatError, match=r"segments\.npy: video 'video_validation_0000364'.*duration"):
        read_annotations(shared_data / "thumos14", strict=True)


def test_thumos14_ground_truth_json(shared_data):
    ann = _quiet_read(shared_data / "thumos14")
    gt = ground_truth_json(ann, "test")
    db = gt["database"]
    assert len(db) == 212 and sum(len(v["annotations"]) for v in db.values()) == 3358
    first = db["video_test_0000004"]
    assert first["subset"] == "test" and first["duration"] > 0
    seg = first["annotations"][0]
    assert isinstance(seg["segment"][0], float) and seg["label"] in ann.classlist
    json.dumps(gt)  # plain Python types only


def test_gt_basnet_json_matches_folder(shared_data):
    ann = _quiet_read(shared_data / "thumos14")
    js = read_ground_truth_json(shared_data / "thumos14" / "gt_basnet.json")
    assert js.classlist == ann.classlist  # sorted labels = THUMOS14 order
    assert "video_test_0000270" not in js.names  # BaS-Net dropped it
    for name in ("video_test_0000004", "video_validation_0000051"):
        i, j = js.index_of(name), ann.index_of(name)
        # same segments (strings "18.6" parsed as numbers) in another order
        a = sorted(zip(js.segments[i].tolist(), js.segment_labels[i].tolist()))
        b = sorted(zip(ann.segments[j].tolist(), ann.segment_labels[j].tolist()))
        assert a == b and len(a) > 0
    assert np.isnan(js.durations).all()  # that file has no durations


def test_anet13_real_folder(shared_data):
    ann = _quiet_read(shared_data / "anet13")
    assert len(ann) == 17999 and ann.num_classes == 200
    assert [len(ann.indices(s)) for s in ("train", "val", "test")] == [9032, 4427, 4540]
    assert ann.names[0] == "v_---9CpRcKoU" and ann.durations.shape == (17999,)
    test = ann.indices("test")
    assert ann.video_labels[test].sum() == 0 and all(len(ann.segments[i]) == 0 for i in test)
    gt = ground_truth_json(ann, "val")
    assert len(gt["database"]) == 4427


# ---------------------------------------------------------------------------- round trips

def _tiny() -> Annotations:
    return Annotations(
        names=["v1", "v2", "v3"], subsets=["validation", "validation", "test"], classlist=["A", "B"],
        durations=np.array([10.0, 20.0, 5.0]),
        segments=[np.array([[1.0, 2.5], [4.0, 6.0]]), np.array([[0.0, 3.0]]), np.zeros((0, 2))],
        segment_labels=[np.array([0, 1]), np.array([1]), np.array([], dtype=np.int64)],
        video_labels=np.array([[1, 1], [0, 1], [0, 0]], dtype=np.float32), original_fps=np.array([30.0, 25.0, 30.0]))


@pytest.mark.parametrize("style", ["thumos14", "anet13"])
def test_write_read_round_trip(tmp_path, style):
    ann = _tiny()
    write_annotations(ann, tmp_path / "a", style=style)
    dur = np.load(tmp_path / "a" / "duration.npy")
    assert dur.shape == ((3, 1) if style == "thumos14" else (3,))
    assert np.load(tmp_path / "a" / "videoname.npy").dtype.kind == ("S" if style == "thumos14" else "U")
    back = read_annotations(tmp_path / "a")
    assert back.names == ann.names and back.subsets == ann.subsets and back.classlist == ann.classlist
    np.testing.assert_array_equal(back.durations, ann.durations)
    for a, b in zip(back.segments, ann.segments):
        np.testing.assert_array_equal(a, b)
    assert [x.tolist() for x in back.segment_labels] == [[0, 1], [1], []]
    np.testing.assert_array_equal(back.video_labels, ann.video_labels)
    assert ground_truth_json(back, None) == ground_truth_json(ann, None)


def test_ground_truth_json_by_hand():
    gt = ground_truth_json(_tiny(), "validation")
    assert gt == {"database": {
        "v1": {"subset": "validation", "duration": 10.0, "annotations": [
            {"segment": [1.0, 2.5], "label": "A"}, {"segment": [4.0, 6.0], "label": "B"}]},
        "v2": {"subset": "validation", "duration": 20.0, "annotations": [{"segment": [0.0, 3.0], "label": "B"}]},
    }}


def test_json_round_trip(tmp_path):
    ann = _tiny()
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(ground_truth_json(ann, None)))
    back = read_ground_truth_json(path, classlist=["A", "B"])
    assert ground_truth_json(back, None) == ground_truth_json(ann, None)


def test_unknown_subset_is_named():
    with pytest.raises(ValueError, match="'train'.*splits present"):
        _tiny().indices("train")


# ------------------------------------------------------------------------------ bad files

def _write_then(tmp_path, edit):
    """Write the tiny annotations, then let ``edit(folder)`` spoil one file."""
    folder = write_annotations(_tiny(), tmp_path / "ann")
    edit(folder)
    return folder


def _set_object(folder, name, index, value):
    arr = np.load(folder / name, allow_pickle=True)
    arr[index] = value
    np.save(folder / name, arr, allow_pickle=True)


@pytest.mark.parametrize("edit, pattern", [
    (lambda f: (f / "labels.npy").unlink(), r"labels\.npy: file not found"),
    (lambda f: _set_object(f, "labels.npy", 0, ["A", "Zebra"]), r"labels\.npy: video 'v1': label 'Zebra' is not in"),
    (lambda f: _set_object(f, "labels_all.npy", 1, ["Zebra"]), r"labels_all\.npy: video 'v2': label 'Zebra'"),
    (lambda f: _set_object(f, "labels.npy", 0, ["A"]), r"labels\.npy: video 'v1': 1 segment labels for 2 segments"),
    (lambda f: _set_object(f, "segments.npy", 1, [[0.0, float("nan")]]), r"segments\.npy: video 'v2'.*NaN"),
    (lambda f: _set_object(f, "segments.npy", 1, [[-1.0, 2.0]]), r"segments\.npy: video 'v2'.*before 0"),
    (lambda f: _set_object(f, "segments.npy", 1, [[3.0, 2.0]]), r"segments\.npy: video 'v2'.*ends before it starts"),
    (lambda f: _set_object(f, "segments.npy", 1, [[1.0, 2.0, 3.0]]), r"segments\.npy: video 'v2'.*\[start, end\]"),
    (lambda f: np.save(f / "duration.npy", np.array([[10.0], [0.0], [5.0]])), r"duration\.npy: video 'v2'.*positive"),
    (lambda f: np.save(f / "subset.npy", np.array([b"test"] * 2)), r"subset\.npy: has shape \(2,\).*3 videos"),
    (lambda f: (f / "segments.npy").write_bytes(b"junk"), r"segments\.npy: cannot be read"),
])
def test_bad_annotation_file(tmp_path, edit, pattern):
    folder = _write_then(tmp_path, edit)
    with pytest.raises(DataFormatError, match=pattern):
        read_annotations(folder)


def test_segment_past_duration_warns_or_fails(tmp_path):
    folder = _write_then(tmp_path, lambda f: _set_object(f, "segments.npy", 2, [[4.0, 9.0]]))
    _set_object(folder, "labels.npy", 2, ["A"])
    with pytest.warns(DataWarning, match=r"1 segments end after the video duration in 1 videos \(v3\)"):
        ann = read_annotations(folder)
    np.testing.assert_array_equal(ann.segments[2], [[4.0, 9.0]])  # kept as given
    with pytest.raises(DataFormatError, match=r"video 'v3'.*\[4\.0, 9\.0\] vs duration 5\.000"):
        read_annotations(folder, strict=True)
    ann = read_annotations(folder, tolerance=5.0)  # within tolerance: no warning
    assert len(ann.segments[2]) == 1


def test_zero_length_segment_strict(tmp_path):
    folder = _write_then(tmp_path, lambda f: _set_object(f, "segments.npy", 1, [[2.0, 2.0]]))
    with pytest.warns(DataWarning, match="zero-length"):
        read_annotations(folder)
    with pytest.raises(DataFormatError, match=r"video 'v2'.*zero-length"):
        read_annotations(folder, strict=True)


def test_missing_folder_and_bad_json(tmp_path):
    with pytest.raises(DataFormatError, match="annotation folder not found"):
        read_annotations(tmp_path / "nope")
    bad = tmp_path / "gt.json"
    bad.write_text('{"results": {}}')
    with pytest.raises(DataFormatError, match=r"gt\.json: not an ActivityNet ground-truth JSON"):
        read_ground_truth_json(bad)
    bad.write_text(json.dumps({"database": {"v": {"annotations": [{"segment": [1, 2], "label": "X"}]}}}))
    with pytest.raises(DataFormatError, match=r"video 'v': label 'X' is not in the class list"):
        read_ground_truth_json(bad, classlist=["A"])
