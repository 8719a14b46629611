"""The paired batch sampler, clip sampling and batch assembly."""
import numpy as np
import pytest
import torch

from himnet_fast.data import PairBatchSampler, TrainBatches, load_dataset, make_batch, sample_clip, synthesize


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return load_dataset(synthesize(tmp_path_factory.mktemp("s"), dim=16, videos=40, seed=5))


def _labels(n=60, c=8, seed=0):
    rng = np.random.default_rng(seed)
    y = np.zeros((n, c), np.float32)
    y[np.arange(n), rng.integers(c, size=n)] = 1
    y[rng.random(n) < 0.15, rng.integers(c)] = 1  # some multi-label videos
    return y


# ------------------------------------------------------------------------------- sampler

def test_pairs_share_a_class_over_1000_batches():
    y = _labels()
    train = np.arange(5, 60)  # a training subset of the rows
    sampler = PairBatchSampler(y, train, batch_size=10, num_pairs=3, seed=1)
    classes_seen = set()
    for _, batch in zip(range(1000), sampler):
        assert len(batch) == 10 and len(set(batch)) == 10  # no repeats within a batch
        assert set(batch) <= set(train.tolist())
        for a, b in ((0, 1), (2, 3), (4, 5)):
            shared = np.flatnonzero(y[batch[a]] * y[batch[b]])
            assert len(shared) >= 1
            classes_seen.update(shared.tolist())
    assert classes_seen == set(range(8))  # every class gets pairs
    assert sampler.batches_drawn == 1000


def test_sampler_deterministic_and_seed_dependent():
    y = _labels()
    s1, s2, s3 = (PairBatchSampler(y, np.arange(60), seed=s) for s in (3, 3, 4))
    first = [next(s1) for _ in range(20)]
    assert first == [next(s2) for _ in range(20)]
    assert first != [next(s3) for _ in range(20)]


def test_sampler_resume_bit_exact():
    y = _labels()
    s = PairBatchSampler(y, np.arange(60), seed=7)
    for _ in range(13):
        next(s)
    state = s.state_dict()
    expected = [next(s) for _ in range(10)]
    resumed = PairBatchSampler(y, np.arange(60), seed=99)  # the state, not the seed, decides
    resumed.load_state_dict(state)
    assert [next(resumed) for _ in range(10)] == expected
    assert resumed.batches_drawn == 23


def test_sampler_state_from_another_configuration_is_rejected():
    y = _labels()
    state = PairBatchSampler(y, np.arange(60), batch_size=10).state_dict()
    with pytest.raises(ValueError, match=r"saved for \(batch_size, num_pairs, videos\) = \(10, 3, 60\)"):
        PairBatchSampler(y, np.arange(60), batch_size=8).load_state_dict(state)


def test_tiny_set_reuses_videos_but_keeps_pairs():
    # 4 videos, class 0 on three of them: three disjoint pairs are impossible
    y = np.array([[1, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    s = PairBatchSampler(y, np.arange(4), batch_size=10, num_pairs=3, seed=0)
    for _ in range(50):
        batch = next(s)
        assert len(batch) == 10
        for a in (0, 2, 4):
            assert batch[a] != batch[a + 1] and (y[batch[a]] * y[batch[a + 1]]).sum() >= 1


@pytest.mark.parametrize("labels, indices, kw, pattern", [
    (np.eye(4), [0, 1, 2, 3], {}, "no class has two training videos"),
    (np.ones(4), [0, 1], {}, r"labels: expected \(N, C\)"),
    (np.full((4, 2), 0.5), [0, 1], {}, "must be 0 or 1"),
    (np.ones((4, 2)), [0, 9], {}, r"indices: must lie in \[0, 4\)"),
    (np.ones((4, 2)), [], {}, "no training videos"),
    (np.ones((4, 2)), [0, 1], {"batch_size": 4, "num_pairs": 3}, "2 \\* num_pairs <= batch_size"),
])
def test_sampler_bad_arguments(labels, indices, kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        PairBatchSampler(labels, indices, **kw)


def test_sampler_accepts_tensor_labels():
    y = torch.from_numpy(_labels())
    batch = next(PairBatchSampler(y, np.arange(60), seed=0))
    assert (y[batch[0]] * y[batch[1]]).sum() >= 1


# ---------------------------------------------------------------------------------- clips

def test_sample_clip_by_hand():
    # T_i = 10, T = 4: bins [0,2) [2,5) [5,7) [7,10); no rng -> bin starts
    assert sample_clip(10, 4, None).tolist() == [0, 2, 5, 7]
    # shorter video: stretched, each snippet once or more, in order: floor(j * 3 / 7)
    assert sample_clip(3, 7, np.random.default_rng(0)).tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert sample_clip(6, 6, np.random.default_rng(0)).tolist() == list(range(6))
    assert sample_clip(5, None, None).tolist() == list(range(5))


def test_sample_clip_stays_in_bins():
    rng = np.random.default_rng(0)
    seen = np.zeros(1000, bool)
    for _ in range(200):
        idx = sample_clip(1000, 56, rng)
        lo = np.arange(56) * 1000 // 56
        hi = np.arange(1, 57) * 1000 // 56
        assert idx.dtype == np.int64 and ((idx >= lo) & (idx < hi)).all()
        seen[idx] = True
    assert seen.mean() > 0.95  # the perturbation reaches the whole video


@pytest.mark.parametrize("T_i, T", [(0, 5), (5, 0)])
def test_sample_clip_bad(T_i, T):
    with pytest.raises(ValueError, match="T_i|T:"):
        sample_clip(T_i, T, None)


def test_make_batch_values(dataset):
    idx = [int(i) for i in dataset.train_indices[:4]]
    X, y = make_batch(dataset, idx, 32, np.random.default_rng(3))
    assert X.shape == (4, 32, 16) and X.dtype == torch.float32
    assert y.shape == (4, 20) and y.dtype == torch.float32
    np.testing.assert_array_equal(y.numpy(), dataset.labels[idx])
    rng = np.random.default_rng(3)  # the same draws, by hand
    for b, i in enumerate(idx):
        clip = sample_clip(dataset.num_snippets(i), 32, rng)
        np.testing.assert_array_equal(X[b].numpy(), dataset.features(i)[clip])


def test_make_batch_whole_video(dataset):
    i = int(dataset.test_indices[0])
    X, _ = make_batch(dataset, [i], None, None)
    np.testing.assert_array_equal(X[0].numpy(), dataset.features(i))
    lengths = [dataset.num_snippets(int(j)) for j in dataset.test_indices]
    a, b = (int(dataset.test_indices[k]) for k in np.unique(lengths, return_index=True)[1][:2])
    with pytest.raises(ValueError, match="needs equal lengths"):
        make_batch(dataset, [a, b], None, None)


def test_train_batches_resume_bit_exact(dataset):
    stream = TrainBatches(dataset, T=24, seed=2)
    for _ in range(3):
        next(stream)
    state = stream.state_dict()
    idx, X, y = next(stream)
    again = TrainBatches(dataset, T=24, seed=0)
    again.load_state_dict(state)
    idx2, X2, y2 = next(again)
    assert idx == idx2 and torch.equal(X, X2) and torch.equal(y, y2)
    assert X.shape == (10, 24, 16)
    for a in (0, 2, 4):
        assert (y[a] * y[a + 1]).sum() >= 1


def test_threads_and_prefetch_leave_the_stream_unchanged(dataset):
    """Threaded copies and prefetch() give the batches of the plain stream, in order, and a
    state_dict taken with a prefetched batch pending resumes at that batch."""
    plain = TrainBatches(dataset, T=24, seed=4)
    want = [next(plain) for _ in range(5)]
    fast = TrainBatches(dataset, T=24, seed=4, threads=3)
    got, states = [], []
    for n in range(5):
        got.append(next(fast))
        fast.prefetch()
        fast.prefetch()  # a second call builds nothing more
        states.append(fast.state_dict())
    for (i1, X1, y1), (i2, X2, y2) in zip(want, got):
        assert i1 == i2 and torch.equal(X1, X2) and torch.equal(y1, y2)
    resumed = TrainBatches(dataset, T=24, seed=0)
    resumed.load_state_dict(states[1])  # taken after batch 1, with batch 2 prefetched
    idx, X, _ = next(resumed)
    assert idx == want[2][0] and torch.equal(X, want[2][1])


def test_train_batches_rejects_zero_threads(dataset):
    with pytest.raises(ValueError, match="threads"):
        TrainBatches(dataset, T=24, threads=0)
