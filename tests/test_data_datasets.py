"""Feature datasets: the three layouts, no-copy access, snippet labels, and bad feature files."""
import json
import re
import shutil
import warnings

import numpy as np
import pytest

from himnet_fast.data import (DataFormatError, DataWarning, detect_layout, ground_truth_json, load_dataset,
                              read_annotations, segment_snippets, snippet_labels, snippets_for_duration, synthesize)
from himnet_fast.data.datasets import FEATURE_LIMIT
from himnet_fast.data.layouts import ANET13, PER_VIDEO, THUMOS14

FEATURES = THUMOS14.features_file
ANN = THUMOS14.annotations_dir


@pytest.fixture(scope="module")
def packed_root(tmp_path_factory):
    """A small THUMOS14-like set (16 videos, D=16) written once; tests that spoil it copy it."""
    return synthesize(tmp_path_factory.mktemp("packed"), dim=16, videos=16, seed=3)


def _copy(root, tmp_path):
    return shutil.copytree(root, tmp_path / "set")


# --------------------------------------------------------------------------------- layouts

def test_packed_thumos14(packed_root):
    ds = load_dataset(packed_root)
    assert ds.name == "thumos14" and len(ds) == 16 and ds.feature_dim == 16 and ds.num_classes == 20
    assert ds.split_names == {"train": "validation", "test": "test"}
    assert all(ds.subsets[i] == "validation" for i in ds.train_indices)
    assert all(ds.subsets[i] == "test" for i in ds.test_indices)
    assert len(ds.train_indices) + len(ds.test_indices) == 16
    x = ds.features(0)
    assert x.dtype == np.float32 and x.shape == (ds.num_snippets(0), 16)
    assert x is ds.store.arrays[0]  # the stored array itself: no copy
    assert ds.num_snippets(0) == snippets_for_duration(ds.durations[0])
    assert ds.labels.shape == (16, 20) and ds.labels.dtype == np.float32


def test_ground_truth_round_trip(packed_root):
    """synthetic -> files -> loader -> ActivityNet JSON equals the annotation files' JSON."""
    ds = load_dataset(packed_root)
    ann = read_annotations(packed_root / ANN)
    assert ds.ground_truth("test") == ground_truth_json(ann, "test")
    assert ds.ground_truth("train") == ground_truth_json(ann, "validation")
    assert ds.ground_truth("validation") == ds.ground_truth("train")
    assert json.loads(json.dumps(ds.ground_truth())) == ds.ground_truth()


def test_anet13_layout(tmp_path):
    root = synthesize(tmp_path, like="anet13", dim=16, videos=9, seed=1)
    assert (root / ANET13.features_file).is_file() and detect_layout(root) == "anet13"
    ds = load_dataset(root)
    assert ds.split_names == {"train": "train", "test": "val"}
    assert len(ds.train_indices) == 6 and len(ds.test_indices) == 3  # 9032 : 4427
    assert np.load(root / ANET13.annotations_dir / "duration.npy").shape == (9,)
    assert set(ds.ground_truth("test")["database"]) == {ds.names[i] for i in ds.test_indices}


def test_per_video_layout_matches_packed(tmp_path, packed_root):
    root = synthesize(tmp_path / "pv", dim=16, videos=16, seed=3, layout="per_video")
    assert detect_layout(root) == "per_video"
    pv, packed = load_dataset(root), load_dataset(packed_root)
    assert pv.names == packed.names and pv.feature_dim == 16
    np.testing.assert_array_equal(pv.train_indices, packed.train_indices)
    i = int(pv.test_indices[0])
    assert (root / "features" / "test" / "flow" / f"{pv.names[i]}.npy").is_file()
    rgb, flow = pv.store.maps(i)
    assert isinstance(rgb, np.memmap) and isinstance(flow, np.memmap) and rgb.shape[1] == 8
    np.testing.assert_array_equal(pv.features(i), packed.features(i))  # same seed, same video
    out = np.empty((3, 16), np.float32)
    pv.gather(i, np.array([0, 2, 2]), out)
    np.testing.assert_array_equal(out, packed.features(i)[[0, 2, 2]])
    assert pv.ground_truth("test") == packed.ground_truth("test")


def test_per_video_with_gt_json_drops_unannotated(tmp_path):
    root = synthesize(tmp_path / "pv", dim=16, videos=8, seed=0, layout="per_video")
    ann = read_annotations(root / PER_VIDEO.annotations_dir)
    shutil.rmtree(root / PER_VIDEO.annotations_dir)
    gt = ground_truth_json(ann, None)
    dropped = ann.names[-1]
    del gt["database"][dropped]
    (root / "gt.json").write_text(json.dumps(gt))
    with pytest.warns(DataWarning, match=f"1 videos have features but no ground truth.*{dropped}"):
        ds = load_dataset(root)
    assert len(ds) == 7 and dropped not in ds.names
    assert ds.classlist == sorted({a["label"] for v in gt["database"].values() for a in v["annotations"]})


def test_per_video_reports_annotated_videos_without_features(tmp_path):
    root = synthesize(tmp_path / "pv", dim=16, videos=8, seed=0, layout="per_video")
    ds = load_dataset(root)
    gone = ds.names[int(ds.test_indices[-1])]
    for mod in ("rgb", "flow"):
        (root / "features" / "test" / mod / f"{gone}.npy").unlink()
    with pytest.warns(DataWarning, match=f"1 annotated videos .* have no features .*{gone}"):
        assert len(load_dataset(root)) == 7


def test_real_thumos14_annotations_with_synthetic_features(tmp_path, shared_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # the real files' late segments
        root = synthesize(tmp_path, annotations=shared_data / "thumos14", dim=16, seed=0)
        ds = load_dataset(root)
        real = read_annotations(shared_data / "thumos14")
    assert len(ds) == 412 and len(ds.train_indices) == 200 and len(ds.test_indices) == 212
    assert ds.names == real.names and ds.classlist == real.classlist
    np.testing.assert_allclose(ds.durations, real.durations)
    for i in (0, 205, 411):
        np.testing.assert_allclose(ds.segments[i], real.segments[i])
        assert ds.num_snippets(i) == int(np.floor(real.durations[i] * 25 / 16))
    assert ds.ground_truth("test") == ground_truth_json(real, "test")
    assert sum(len(v["annotations"]) for v in ds.ground_truth("test")["database"].values()) == 3358


def test_detect_layout_errors(tmp_path):
    with pytest.raises(DataFormatError, match="dataset folder not found"):
        detect_layout(tmp_path / "missing")
    with pytest.raises(DataFormatError, match="no known feature layout"):
        detect_layout(tmp_path)
    with pytest.raises(ValueError, match="name: must be one of"):
        load_dataset(tmp_path, name="kinetics")


# ------------------------------------------------------------------------------ snippets

def test_segment_snippets_by_hand():
    # snippet t covers [0.64 t, 0.64 (t+1)); centres 0.32, 0.96, 1.60, 2.24, ...
    seg = np.array([[0.0, 1.0],     # centres 0.32, 0.96 -> [0, 2)
                    [1.0, 1.2],     # no centre inside: midpoint 1.1 s in snippet 1 -> [1, 2)
                    [2.0, 100.0],   # centres from 2.24 (t=3) on, clipped to T=10 -> [3, 10)
                    [50.0, 60.0]])  # past the end -> empty
    start, end = segment_snippets(seg, 10)
    assert start.tolist() == [0, 1, 3, 10] and end.tolist() == [2, 2, 10, 10]


def test_snippet_labels_by_hand():
    class Fake:
        classlist = ["A", "B", "C"]
        segments = [np.array([[0.0, 1.0], [2.0, 3.3], [2.5, 2.9]])]
        segment_labels = [np.array([1, 0, 2])]

        def num_snippets(self, i):
            return 7
    # [0, 1) s -> snippets 0, 1 = B; [2, 3.3) -> 3, 4 = A; [2.5, 2.9) -> centre 2.88 -> 4 = C (later wins)
    assert snippet_labels(Fake(), 0).tolist() == [1, 1, 3, 0, 2, 3, 3]


def test_snippet_labels_match_synthetic_actions(packed_root):
    ds = load_dataset(packed_root)
    i = int(np.argmax([len(s) for s in ds.segments]))
    y = snippet_labels(ds, i)
    assert y.shape == (ds.num_snippets(i),) and y.dtype == np.int64
    assert set(np.unique(y[y < 20])) == set(np.flatnonzero(ds.labels[i]))
    assert 0 < (y < 20).mean() < 1


# ---------------------------------------------------------------------------- bad input

def _spoil_features(root, i, value):
    feats = np.load(root / FEATURES, allow_pickle=True)
    feats[i] = value
    np.save(root / FEATURES, feats, allow_pickle=True)
    return read_annotations(root / ANN).names[i]


@pytest.mark.parametrize("value, pattern", [
    (lambda x: x[:, :12], r"feature dim 12 differs from the dataset's D = 16"),
    (lambda x: x[:0], r"zero-length video"),
    (lambda x: x.astype(np.float64), r"must be float32, got float64"),
    (lambda x: x[0], r"must be 2-D \(T, D\)"),
    (lambda x: "junk", r"entry 2 is a str"),
])
def test_bad_packed_feature_fails_at_load(tmp_path, packed_root, value, pattern):
    root = _copy(packed_root, tmp_path)
    x = np.load(root / FEATURES, allow_pickle=True)[2]
    video = _spoil_features(root, 2, value(x))
    with pytest.raises(DataFormatError, match=pattern) as err:
        load_dataset(root)
    assert FEATURES in str(err.value)
    assert "entry 2" in str(err.value) or f"video {video!r}" in str(err.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf_fails_on_access_and_validate(tmp_path, packed_root, bad):
    root = _copy(packed_root, tmp_path)
    x = np.load(root / FEATURES, allow_pickle=True)[5].copy()
    x[3, 7] = bad
    video = _spoil_features(root, 5, x)
    ds = load_dataset(root)  # loads: finiteness is checked on access
    ds.features(4)
    message = rf"video {video!r}: features contain NaN or inf \(first at snippet 3, dim 7\)"
    with pytest.raises(DataFormatError, match=message):
        ds.features(5)
    with pytest.raises(DataFormatError, match="NaN or inf"):
        load_dataset(root).validate(progress=False)


@pytest.mark.parametrize("edit", [lambda x: x * np.float32(1e30), lambda x: np.where(x == x[3, 7], -2e6, x)])
def test_features_too_large_for_the_network_fail(tmp_path, packed_root, edit):
    """Finite but huge features (a user scaled them by 1e30) overflow the network's float32
    arithmetic: rejected like NaN/inf, naming the video, the place and the bound."""
    root = _copy(packed_root, tmp_path)
    x = np.load(root / FEATURES, allow_pickle=True)[5]
    video = _spoil_features(root, 5, edit(x).astype(np.float32))
    assert np.isfinite(edit(x)).all()
    with pytest.raises(DataFormatError, match=rf"video {video!r}: features reach \|x\| = .* at snippet \d+, dim "
                                              rf"\d+, over the {re.escape(f'{FEATURE_LIMIT:g}')} accepted"):
        load_dataset(root).validate(progress=False)
    _spoil_features(root, 5, np.where(x == x[3, 7], -FEATURE_LIMIT, x).astype(np.float32))
    load_dataset(root).validate(progress=False)  # the bound itself is accepted


def _drop_last_video(root):
    np.save(root / FEATURES, np.load(root / FEATURES, allow_pickle=True)[:-1], allow_pickle=True)


@pytest.mark.parametrize("edit, pattern", [
    (_drop_last_video, r"holds features of 15 videos but the annotations list 16"),
    (lambda root: np.save(root / FEATURES, np.zeros((16, 4, 16), np.float32)), "expected a 1-D object array"),
    (lambda root: (root / ANN / "classlist.npy").unlink(), r"classlist\.npy: file not found"),
    (lambda root: (root / FEATURES).unlink(), rf"{FEATURES}: feature file not found"),
])
def test_bad_packed_file_fails_at_load(tmp_path, packed_root, edit, pattern):
    root = _copy(packed_root, tmp_path)
    edit(root)
    with pytest.raises(DataFormatError, match=pattern):
        load_dataset(root, name="thumos14")


def test_label_absent_from_classlist(tmp_path, packed_root):
    root = _copy(packed_root, tmp_path)
    labels = np.load(root / ANN / "labels.npy", allow_pickle=True)
    labels[1] = ["Juggling"] * len(labels[1])
    np.save(root / ANN / "labels.npy", labels, allow_pickle=True)
    name = read_annotations(packed_root / ANN).names[1]
    message = rf"labels\.npy: video {name!r}: label 'Juggling' is not in the class list"
    with pytest.raises(DataFormatError, match=message):
        load_dataset(root)


def test_segment_beyond_duration(tmp_path, packed_root):
    root = _copy(packed_root, tmp_path)
    seg = np.load(root / ANN / "segments.npy", allow_pickle=True)
    dur = np.load(root / ANN / "duration.npy").reshape(-1)
    seg[0] = [[s, e] for s, e in seg[0][:-1]] + [[dur[0] - 1.0, dur[0] + 30.0]]
    np.save(root / ANN / "segments.npy", seg, allow_pickle=True)
    name = read_annotations(packed_root / ANN).names[0]
    with pytest.warns(DataWarning, match=rf"1 segments end after the video duration in 1 videos \({name}\)"):
        ds = load_dataset(root)
    assert snippet_labels(ds, 0).shape == (ds.num_snippets(0),)  # clipped to the features
    with pytest.raises(DataFormatError, match=rf"segments\.npy: video {name!r}: segments end after the video duration"):
        load_dataset(root, strict=True)


def test_split_missing(tmp_path, packed_root):
    root = _copy(packed_root, tmp_path)
    np.save(root / ANN / "subset.npy", np.array([b"validation"] * 16))
    with pytest.raises(DataFormatError, match=r"subset\.npy: no video of subset 'test'"):
        load_dataset(root)


def test_validate_warns_on_length_far_from_duration(tmp_path, packed_root):
    root = _copy(packed_root, tmp_path)
    x = np.load(root / FEATURES, allow_pickle=True)[1]
    video = _spoil_features(root, 1, np.ascontiguousarray(x[: len(x) // 2]))
    ds = load_dataset(root)
    with pytest.warns(DataWarning, match=rf"1 videos have a snippet count far from duration \* 25/16: {video}"):
        assert ds.validate(progress=False) is ds


def _per_video(tmp_path):
    root = synthesize(tmp_path / "pv", dim=16, videos=8, seed=0, layout="per_video")
    ds = load_dataset(root)
    i = int(ds.train_indices[-1])  # not video 0, whose header is read at load
    return root, ds.names[i], i


def test_per_video_missing_modality_file(tmp_path):
    root, name, _ = _per_video(tmp_path)
    (root / "features" / "train" / "flow" / f"{name}.npy").unlink()
    with pytest.raises(DataFormatError, match=rf"flow/{name}\.npy: video {name!r}: feature file not found"):
        load_dataset(root)


def test_per_video_length_mismatch_and_dim(tmp_path):
    root, name, i = _per_video(tmp_path)
    flow = root / "features" / "train" / "flow" / f"{name}.npy"
    np.save(flow, np.load(flow)[:-1])
    ds = load_dataset(root)  # headers are read on access
    with pytest.raises(DataFormatError, match=rf"video {name!r}: \d+ flow snippets but \d+ RGB snippets"):
        ds.features(i)
    j = int(ds.test_indices[0])
    np.save(root / "features" / "test" / "rgb" / f"{ds.names[j]}.npy", np.zeros((5, 3), np.float32))
    np.save(root / "features" / "test" / "flow" / f"{ds.names[j]}.npy", np.zeros((5, 3), np.float32))
    message = rf"video {ds.names[j]!r}: feature dim 6 differs from the dataset's D = 16"
    with pytest.raises(DataFormatError, match=message):
        load_dataset(root).num_snippets(j)


def test_write_packed_reads_back_with_numpy(tmp_path):
    from himnet_fast.data.stores import write_packed

    arrays = np.empty(3, dtype=object)
    for i, T in enumerate((4, 1, 7)):
        arrays[i] = np.arange(T * 6, dtype=np.float32).reshape(T, 6) + i
    write_packed(tmp_path / "f.npy", arrays)
    back = np.load(tmp_path / "f.npy", allow_pickle=True)
    assert back.dtype == object and back.shape == (3,)
    assert all(np.array_equal(a, b) and b.dtype == np.float32 for a, b in zip(arrays, back))
    with pytest.raises(ValueError, match="arrays: expected a 1-D object array"):
        write_packed(tmp_path / "g.npy", np.zeros((3, 2)))
