"""The synthetic generator: built-in statistics, determinism, the feature structure that makes
MIL-only models fire on absent partner classes, and the CLI."""
import numpy as np
import pytest

from himnet_fast.data import (Annotations, FeatureModel, load_dataset, segment_snippets, synthesize,
                              write_annotations)
from himnet_fast.data.layouts import THUMOS14
from himnet_fast.data.synth_annotations import (ANET13_STATS, THUMOS14_PAIRS, THUMOS14_STATS, proportional_counts,
                                                synth_annotations)
from himnet_fast.data.synth_features import confusable_pairs, make_components, render_video
from himnet_fast.synthesize import main


def _instances(ann):
    n = np.array([len(s) for s in ann.segments])
    lengths = np.concatenate([s[:, 1] - s[:, 0] for s in ann.segments])
    fg = np.array([(s[:, 1] - s[:, 0]).sum() / d for s, d in zip(ann.segments, ann.durations)])
    return n, lengths, fg


def test_thumos14_statistics():
    ann = synth_annotations(THUMOS14_STATS, seed=0)
    assert len(ann.indices("validation")) == 200 and len(ann.indices("test")) == 212
    assert ann.names[0] == "video_validation_0000001" and ann.num_classes == 20
    n, lengths, fg = _instances(ann)
    classes = ann.video_labels.sum(1)
    assert 0.80 <= (classes == 1).mean() <= 0.95 and classes.max() <= 3  # ~88% single-class
    assert 5 <= np.median(n) <= 12 and n.max() > 60                      # median 8-9, heavy tail
    assert 2.0 <= np.median(lengths) <= 4.5 and lengths.min() >= 0.19   # median 3.2 s
    assert 0.22 <= fg.mean() <= 0.40                                     # ~31% foreground
    assert 120 <= np.median(ann.durations) <= 190
    for seg, dur in zip(ann.segments, ann.durations):
        assert (seg[:, 0] >= 0).all() and (seg[:, 1] <= dur).all() and (seg[:, 1] > seg[:, 0]).all()
    # two-class videos take the confusable partner, as CliffDiving/Diving in THUMOS14
    index = {c: i for i, c in enumerate(ann.classlist)}
    pairs = {frozenset((index[a], index[b])) for a, b in THUMOS14_PAIRS}
    two = [frozenset(np.flatnonzero(row)) for row in ann.video_labels if row.sum() == 2]
    assert len(two) > 20 and np.mean([p in pairs for p in two]) > 0.4


def test_anet13_statistics():
    ann = synth_annotations(ANET13_STATS, videos=600, seed=0)
    assert [len(ann.indices(s)) for s in ("train", "val")] == [403, 197]
    n, _, fg = _instances(ann)
    assert 0.65 <= (n == 1).mean() <= 0.85 and 0.5 <= fg.mean() <= 0.75


@pytest.mark.parametrize("stats, videos", [(THUMOS14_STATS, None), (ANET13_STATS, 1500)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_written_segments_lie_within_their_video(tmp_path, stats, videos, seed):
    """Every segment on disk lies in [0, duration] (rounding to 0.1 s once put the THUMOS14-like
    seed-0 video_validation_0000062 at 154.2-155.4 s in a 155.387 s video)."""
    folder = write_annotations(synth_annotations(stats, videos, seed), tmp_path, style=stats.style)
    segments = np.load(folder / "segments.npy", allow_pickle=True)
    durations = np.load(folder / "duration.npy").reshape(-1)
    names = np.load(folder / "videoname.npy")
    outside = [(names[i], s) for i, (seg, dur) in enumerate(zip(segments, durations))
               for s in seg if not 0 <= s[0] < s[1] <= dur]
    assert sum(map(len, segments)) > len(segments) and not outside, outside[:3]


def test_proportional_counts_by_hand():
    assert proportional_counts([200, 212], 16) == [8, 8]       # 7.77, 8.23 -> remainders .77 > .23
    assert proportional_counts([9032, 4427], 9) == [6, 3]      # 6.04, 2.96
    assert proportional_counts([1000, 1], 2) == [1, 1]         # at least one per split
    with pytest.raises(ValueError, match="need at least 2"):
        proportional_counts([5, 5], 1)


def test_confusable_pairs_by_hand():
    y = np.zeros((6, 6), np.float32)
    y[0:3, [0, 1]] = 1      # classes 0, 1 co-occur three times
    y[3, [2, 3]] = 1        # 2, 3 once
    y[4:6, [1, 2]] = 1      # 1, 2 twice, but 1 is taken by then
    rng = np.random.default_rng(0)
    assert confusable_pairs(y, 0.7, rng).tolist() == [0, 0, 1, 1, -1, -1]  # int(4.2) // 2 = 2 pairs
    full = confusable_pairs(y, 1.0, rng).tolist()
    assert full == [0, 0, 1, 1, 2, 2]  # the third pair from the classes left
    assert confusable_pairs(y, 0.0, rng).tolist() == [-1] * 6


def test_deterministic_by_seed(tmp_path):
    a, b, c = (synthesize(tmp_path / n, dim=16, videos=6, seed=s) for n, s in (("a", 4), ("b", 4), ("c", 5)))
    fa, fb, fc = (np.load(r / THUMOS14.features_file, allow_pickle=True) for r in (a, b, c))
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb))
    assert not all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(fa, fc))
    assert (a / THUMOS14.annotations_dir / "segments.npy").read_bytes() == \
        (b / THUMOS14.annotations_dir / "segments.npy").read_bytes()


def test_all_annotation_files_written(tmp_path):
    root = synthesize(tmp_path, dim=16, videos=4, seed=0)
    names = {p.name for p in (root / THUMOS14.annotations_dir).iterdir()}
    assert names == {"videoname.npy", "subset.npy", "classlist.npy", "segments.npy", "labels.npy",
                     "labels_all.npy", "duration.npy", "original_fps.npy"}
    assert np.load(root / THUMOS14.annotations_dir / "subset.npy")[0] == b"validation"


# ----------------------------------------------------------------- the feature structure

D = 2048  # large, so random components are nearly orthogonal and projections are clean


@pytest.fixture(scope="module")
def structure():
    """Classes A, B (paired: they co-occur in v3), C, D (unpaired); one long instance each."""
    seg = np.array([[100.0, 300.0]])
    short = np.array([[10.0 + 19 * k, 13.2 + 19 * k] for k in range(20)])  # 20 instances of D, 5 snippets
    ann = Annotations(
        names=["vA", "vB", "vC", "vD", "vAB"], subsets=["validation"] * 5, classlist=["A", "B", "C", "D"],
        durations=np.array([400.0, 400.0, 400.0, 400.0, 60.0]),
        segments=[seg, seg, seg, short, np.array([[10.0, 20.0], [30.0, 40.0]])],
        segment_labels=[np.array([0]), np.array([1]), np.array([2]), np.full(20, 3), np.array([0, 1])],
        video_labels=np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [1, 1, 0, 0]], np.float32))
    model = FeatureModel(dim=D, paired_fraction=0.5)
    comps = make_components(ann, model, seed=0)
    feats = [render_video(ann, i, comps, model, seed=0) for i in range(4)]
    action = slice(157, 468)  # well inside [100, 300] s = snippets [156, 469)
    far_bg = np.r_[0:120, 520:625]
    return model, comps, feats, action, far_bg


def _unit(v):
    return v / np.linalg.norm(v)


def test_partner_classes_share_a_stronger_component(structure):
    model, comps, feats, action, bg = structure
    assert comps.pair_of.tolist() == [0, 0, -1, -1]
    u = [_unit(c) for c in comps.unique]
    s = _unit(comps.shared[0])
    # mean action minus mean background, read along the components (the averaged noise has
    # std 1 / sqrt(~130) ~ 0.09 along any one direction)
    d = [x[action].mean(0) - x[bg].mean(0) for x in feats]
    env = model.envelope_floor + (1 - model.envelope_floor) * 2 / np.pi  # mean of the sine envelope
    norm = np.linalg.norm(comps.shared[0])  # (0.7^2 + 1.2^2) / 2 = 0.965 -> 0.982
    for k in (0, 1):  # A and B: the shared part = shared * env * |s_p| = 5 * 0.818 * 0.982 = 4.02
        assert d[k] @ s == pytest.approx(model.shared * env * norm, abs=0.6)
        lo, hi = model.unique[0] * env * norm, model.unique[1] * env * norm  # own part: [0.80, 3.21]
        assert lo - 0.5 < d[k] @ u[k] < hi + 0.5 and d[k] @ u[k] < d[k] @ s  # fainter than shared
        assert abs(d[k] @ u[1 - k]) < 0.5  # nothing of the partner's own component
    assert abs(d[2] @ s) < 0.5  # C is unpaired: no shared part...
    assert d[2] @ u[2] > np.hypot(model.unique[0], model.shared) * env * norm - 0.6  # ...a full own one


def test_background_carries_the_pair_scene(structure):
    model, comps, feats, action, bg = structure
    s = _unit(comps.shared[0])
    # projection of the mean background on the pair component: ~ scene_pair * |s_p| in A's
    # videos, ~ 0 in C's (noise averages to 1/sqrt(225) ~ 0.07)
    assert feats[0][bg].mean(0) @ s == pytest.approx(model.scene_pair * np.linalg.norm(comps.shared[0]), abs=0.3)
    assert abs(feats[2][bg].mean(0) @ s) < 0.3


def test_context_snippets_carry_weak_class_signal(structure):
    model, comps, feats, action, bg = structure
    x = feats[3]  # class D, unpaired: its own component alone, 20 instances 19 s apart
    u = _unit(comps.unique[3])
    start, end = segment_snippets(np.array([[10.0 + 19 * k, 13.2 + 19 * k] for k in range(20)]), len(x))
    context = np.concatenate([np.r_[s - 4:s, e:e + 4] for s, e in zip(start, end)])
    inside = np.concatenate([np.r_[s:e] for s, e in zip(start, end)])
    far = np.setdiff1d(np.arange(len(x)), np.concatenate([context, inside]))
    # ramp 1.5 * (1 - d / 5) for d = 1..4: 1.2, 0.9, 0.6, 0.3 -> mean 0.75, times |u| = 0.982;
    # 160 snippets: noise sd 1 / sqrt(160) = 0.08
    expected = 0.75 * model.context / 1.5 * np.linalg.norm(comps.unique[3])
    assert (x[context] @ u).mean() == pytest.approx(expected, abs=0.25)
    assert abs((x[far] @ u).mean()) < 0.2
    assert (x[inside] @ u).mean() > 3.0


def test_video_style_is_one_look_per_video_and_class():
    """video_style adds, on a class's instances only, ``video_style * envelope * w`` with one
    direction w per (video, class): shared by the instances of a class in a video, new for
    another class or another video. Every other draw is the one of video_style = 0, so features
    away from the instances are equal."""
    seg = np.array([[20.0, 40.0], [100.0, 120.0], [150.0, 170.0]])  # A, A, then B
    ann = Annotations(
        names=["v1", "v2"], subsets=["validation"] * 2, classlist=["A", "B"], durations=np.array([200.0, 200.0]),
        segments=[seg, seg], segment_labels=[np.array([0, 0, 1]), np.array([0, 0, 1])],
        video_labels=np.array([[1, 1], [1, 1]], np.float32))
    plain, styled = FeatureModel(dim=D, paired_fraction=0.0), FeatureModel(dim=D, paired_fraction=0.0, video_style=3.0)
    comps = make_components(ann, plain, seed=0)
    looks = []  # per video: the look at the middle of each instance
    for i in range(2):
        delta = (render_video(ann, i, comps, styled, seed=0) - render_video(ann, i, comps, plain, seed=0)).astype(np.float64)
        start, end = segment_snippets(seg, len(delta))
        inside = np.concatenate([np.r_[a:b] for a, b in zip(start, end)])
        assert not delta[np.setdiff1d(np.arange(len(delta)), inside)].any()  # nothing outside the instances
        looks.append([_unit(delta[(a + b) // 2]) for a, b in zip(start, end)])
        # at an instance's middle the envelope is ~1: |delta| = 3 * |w| = 3 * 0.982
        assert np.linalg.norm(delta[(start[0] + end[0]) // 2]) == pytest.approx(3.0 * 0.982, rel=0.02)
    for v in looks:
        assert v[0] @ v[1] == pytest.approx(1.0, abs=1e-5)  # one look of A within a video
        assert abs(v[0] @ v[2]) < 0.15  # B's look in the same video is another (D = 2048)
    assert abs(looks[0][0] @ looks[1][0]) < 0.15  # independent looks of A across videos


def test_feature_model_rejects_a_negative_video_style():
    with pytest.raises(ValueError, match="video_style: must be a finite number >= 0"):
        FeatureModel(video_style=-1.0)


def test_feature_model_rejects_odd_dim():
    with pytest.raises(ValueError, match="dim: must be an even number"):
        FeatureModel(dim=7)


# --------------------------------------------------------------------------------- errors, CLI

@pytest.mark.parametrize("kw, pattern", [
    ({"like": "kinetics"}, "like: must be one of"),
    ({"layout": "hdf5"}, "layout: must be 'packed' or 'per_video'"),
    ({"videos": 0}, "videos: must be >= 1"),
    ({"dim": 15}, "dim: must be an even number"),
])
def test_synthesize_bad_arguments(tmp_path, kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        synthesize(tmp_path, **kw)


def test_cli_writes_a_loadable_set(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "s"), "--dim", "16", "--videos", "6", "--seed", "2", "--quiet"]) == 0
    assert "wrote" in capsys.readouterr().out
    ds = load_dataset(tmp_path / "s")
    assert len(ds) == 6 and ds.feature_dim == 16


def test_cli_names_a_missing_annotation_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "s"), "--annotations", str(tmp_path / "none"), "--quiet"])
    assert exc.value.code == 2
    assert "none: annotation folder not found" in capsys.readouterr().err


def test_annotation_mode_subsample(tmp_path, shared_data):
    with pytest.warns(Warning):  # the real files' late segments are reported
        root = synthesize(tmp_path, annotations=shared_data / "thumos14", dim=16, videos=10, seed=0)
    ds = load_dataset(root)
    assert len(ds.train_indices) == 5 and len(ds.test_indices) == 5  # first 5 of each split
    assert ds.names[0] == "video_validation_0000051" and ds.names[5] == "video_test_0000004"


def test_rectified_features_are_the_signed_ones_clipped_at_zero():
    """rectified clips each value at 0 (I3D's features are post-ReLU pooled, so >= 0) and draws
    nothing, so every positive value is the one of the signed set and every negative one is 0."""
    ann = Annotations(
        names=["v1"], subsets=["validation"], classlist=["A", "B"], durations=np.array([60.0]),
        segments=[np.array([[10.0, 20.0]])], segment_labels=[np.array([1])], video_labels=np.array([[0, 1]], np.float32))
    signed, rectified = FeatureModel(dim=D), FeatureModel(dim=D, rectified=True)
    comps = make_components(ann, signed, seed=0)
    x = render_video(ann, 0, comps, signed, seed=0)
    r = render_video(ann, 0, comps, rectified, seed=0)
    assert (x < 0).mean() > 0.3  # the signed set has many negative values to clip
    np.testing.assert_array_equal(r, np.where(x > 0, x, 0.0).astype(np.float32))


def test_each_generator_option_has_its_own_cached_set():
    """The synthetic cache key holds every FeatureModel option that DataConfig sets, so a run
    with another option never reads a set generated without it."""
    from dataclasses import replace

    from himnet_fast.config import DataConfig
    from himnet_fast.run_data import synthetic_folder

    base = DataConfig(cache_dir="/nonexistent")
    options = ({}, {"synth_rectified": True}, {"synth_video_style": 2.5}, {"synth_seed": 1})
    folders = [synthetic_folder(replace(base, **option)) for option in options]
    assert len(set(folders)) == len(options), folders
