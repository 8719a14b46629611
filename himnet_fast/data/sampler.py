"""HiM-Net's training batches: videos in same-class pairs, clips of T snippets.

Batches (paper Sec. 4.1): ``batch_size`` = 10 videos; positions (0, 1), (2, 3), (4, 5)
(``num_pairs`` = 3) are pairs of videos sharing at least one class (the video-level
contrastive loss compares them); the other positions are random training videos. A pair
draws its class uniformly among the classes with two unused videos, then two of those
videos. Videos do not repeat within a batch; only when the training set is too small for
that (fewer than ``batch_size`` videos, or no class with two unused videos left) may a
video appear twice, never twice in one pair.

Clips (:func:`sample_clip`): T = 560 (THUMOS14) / 60 (ActivityNet1.3) snippets by uniform
sampling with random perturbation: the video is cut into T equal bins and one snippet is
drawn uniformly in each. A video shorter than T is stretched: bin j takes snippet
floor(j * T_i / T), so every snippet appears, in order, once or more (as CO2-Net does), and
every batch element has exactly T real snippets: no padding or mask. At test time the
whole video is used (``T=None``).

Determinism: all randomness comes from numpy Generators seeded by ``seed``;
``state_dict()`` / ``load_state_dict()`` resume bit-exactly.
"""
from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .errors import DataFormatError

if TYPE_CHECKING:  # torch is imported on first use, so the generator CLI starts fast
    import torch


def sample_clip(T_i: int, T: Optional[int], rng: Optional[np.random.Generator]) -> np.ndarray:
    """Snippet indices of a training clip.

    Args: T_i the video's length (>= 1); T the clip length (None = the whole video);
    rng the source of the perturbation (None = bin starts, deterministic).
    Returns: (T,) int64 non-decreasing indices in [0, T_i) ((T_i,) arange when T is None).
    """
    if T_i < 1:
        raise ValueError(f"T_i: a video needs at least one snippet, got {T_i}")
    if T is None:
        return np.arange(T_i, dtype=np.int64)
    if T < 1:
        raise ValueError(f"T: must be >= 1 or None, got {T}")
    lo = (np.arange(T, dtype=np.int64) * T_i) // T
    hi = (np.arange(1, T + 1, dtype=np.int64) * T_i) // T
    width = np.maximum(hi - lo, 1)  # 0-width bins (T_i < T) keep their snippet
    if rng is None:
        return lo
    return lo + (rng.random(T) * width).astype(np.int64)


def make_batch(dataset, indices: Sequence[int], T: Optional[int], rng: Optional[np.random.Generator],
               pool: Optional[ThreadPoolExecutor] = None, pin_memory: bool = False
               ) -> Tuple["torch.Tensor", "torch.Tensor"]:
    """Gather a batch.

    Args: dataset a FeatureDataset; indices B video positions; T clip length (None = whole
    videos, which must then have equal length, e.g. B = 1); rng for :func:`sample_clip`;
    pool: threads that copy the B videos' rows in parallel (``np.take`` releases the GIL; the
    clip indices are drawn first, in video order, so the result does not depend on it);
    pin_memory: X in page-locked memory, so that a copy to a GPU can run asynchronously.
    Returns: X (B, T, D) float32 tensor, labels (B, C) float32 tensor (multi-hot).
    """
    indices = [int(i) for i in indices]
    if not indices:
        raise ValueError("indices: empty batch")
    if T is None:
        lengths = {dataset.num_snippets(i) for i in indices}
        if len(lengths) > 1:
            raise ValueError(f"T: None (whole videos) needs equal lengths, got {sorted(lengths)}; "
                             "use batches of one video at test time")
        T = lengths.pop()
        rng = None
    import torch

    X = torch.empty((len(indices), T, dataset.feature_dim), dtype=torch.float32, pin_memory=pin_memory)
    out = X.numpy()
    clips = [sample_clip(dataset.num_snippets(i), T, rng) for i in indices]
    gather = lambda b: dataset.gather(indices[b], clips[b], out[b])  # noqa: E731
    if pool is None or len(indices) == 1:
        for b in range(len(indices)):
            gather(b)
    else:
        list(pool.map(gather, range(len(indices))))  # list(): re-raises a worker's exception
    labels = np.ascontiguousarray(dataset.labels[indices], dtype=np.float32)
    return X, torch.from_numpy(labels)


def _check_labels(labels) -> np.ndarray:
    if hasattr(labels, "detach"):  # a torch tensor
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels: expected (N, C) multi-hot, got shape {labels.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels: must be 0 or 1 (multi-hot)")
    return labels.astype(bool)


class PairBatchSampler:
    """Infinite iterator of batches (lists of video positions) with same-class pairs first.

    Args: labels (N, C) multi-hot of all videos; indices the training videos (positions into
    ``labels``); batch_size; num_pairs (pairs at positions (0,1), (2,3), ...); seed.
    """

    def __init__(self, labels, indices: Sequence[int], batch_size: int = 10, num_pairs: int = 3, seed: int = 0):
        labels = _check_labels(labels)
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(self.indices) == 0:
            raise ValueError("indices: no training videos")
        if self.indices.min() < 0 or self.indices.max() >= len(labels):
            raise ValueError(f"indices: must lie in [0, {len(labels)}) (rows of labels)")
        if batch_size < 1 or num_pairs < 0 or 2 * num_pairs > batch_size:
            raise ValueError(f"batch_size/num_pairs: need 0 <= 2 * num_pairs <= batch_size, got "
                             f"batch_size={batch_size}, num_pairs={num_pairs}")
        self.batch_size, self.num_pairs, self.seed = batch_size, num_pairs, seed
        self._member = labels[self.indices]  # (n, C) bool
        if num_pairs and not (self._member.sum(0) >= 2).any():
            raise ValueError("labels: no class has two training videos, so no same-class pair exists")
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 0xBA7C]))
        self.batches_drawn = 0

    def __iter__(self) -> Iterator[List[int]]:
        return self

    def _pair(self, used: np.ndarray) -> np.ndarray:
        """Two training videos (local rows) sharing a class, avoiding ``used`` where possible."""
        avail = self._member & ~used[:, None]
        counts = avail.sum(0)
        if not (counts >= 2).any():  # too small a set: allow reuse across pairs
            avail, counts = self._member, self._member.sum(0)
        c = self.rng.choice(np.flatnonzero(counts >= 2))
        return self.rng.choice(np.flatnonzero(avail[:, c]), size=2, replace=False)

    def __next__(self) -> List[int]:
        n = len(self.indices)
        used = np.zeros(n, dtype=bool)
        rows = []
        for _ in range(self.num_pairs):
            pair = self._pair(used)
            used[pair] = True
            rows.extend(pair.tolist())
        rest = self.batch_size - len(rows)
        free = np.flatnonzero(~used)
        if len(free) >= rest:
            rows.extend(self.rng.choice(free, size=rest, replace=False).tolist())
        else:
            rows.extend(self.rng.choice(n, size=rest, replace=True).tolist())
        self.batches_drawn += 1
        return self.indices[rows].tolist()

    def state_dict(self) -> dict:
        """Everything needed to resume bit-exactly (plain Python types)."""
        return {"seed": self.seed, "batch_size": self.batch_size, "num_pairs": self.num_pairs,
                "num_videos": len(self.indices), "batches_drawn": self.batches_drawn,
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        """Resume from :meth:`state_dict` (same labels and indices required)."""
        mine = (self.batch_size, self.num_pairs, len(self.indices))
        theirs = (state.get("batch_size"), state.get("num_pairs"), state.get("num_videos"))
        if mine != theirs:
            raise ValueError(f"state: saved for (batch_size, num_pairs, videos) = {theirs}, this sampler has {mine}")
        self.rng.bit_generator.state = state["rng"]
        self.batches_drawn = int(state["batches_drawn"])


class TrainBatches:
    """The training stream a trainer needs: :class:`PairBatchSampler` + clip sampling, one
    ``state_dict`` for both. Yields (indices (B,), X (B, T, D) tensor, labels (B, C) tensor).

    threads: copy the videos of a batch with this many threads (same batches for any value).
    rank, world_size: multi-process training: rank r of N yields batches r, N + r, 2N + r, ... of
    the single-process stream of the same seed (and the state is the stream's position).
    pin_memory: batches in page-locked memory (for an asynchronous copy to a GPU).
    :meth:`prefetch` builds the next batch ahead of time (a GPU trainer calls it while the
    device computes the current step); the stream and :meth:`state_dict` are unchanged by it.
    """

    def __init__(self, dataset, T: int, batch_size: int = 10, num_pairs: int = 3, seed: int = 0,
                 threads: int = 1, pin_memory: bool = False, rank: int = 0, world_size: int = 1):
        if len(dataset.train_indices) == 0:
            raise DataFormatError(dataset.store.describe(0), "no training videos")
        if threads < 1:
            raise ValueError(f"threads: must be >= 1, got {threads}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank: must lie in [0, world_size = {world_size}), got {rank}")
        self.rank, self.world_size = rank, world_size
        self.dataset, self.T, self.pin_memory = dataset, T, pin_memory
        self.sampler = PairBatchSampler(dataset.labels, dataset.train_indices, batch_size, num_pairs, seed)
        self.clip_rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC11B]))
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="gather") if threads > 1 else None
        self._ahead = None  # (state before the batch, the batch) from prefetch(), not yet consumed

    def __iter__(self):
        return self

    def _make(self) -> Tuple[List[int], "torch.Tensor", "torch.Tensor"]:
        # One stream for all ranks: every rank draws the world's batches (indices and clip
        # offsets, in rank order) and gathers the features of its own only.
        for r in range(self.world_size):
            idx = next(self.sampler)
            if r == self.rank:
                batch = idx, *make_batch(self.dataset, idx, self.T, self.clip_rng, self._pool, self.pin_memory)
            else:
                for i in idx:
                    sample_clip(self.dataset.num_snippets(i), self.T, self.clip_rng)
        return batch

    def __next__(self) -> Tuple[List[int], "torch.Tensor", "torch.Tensor"]:
        if self._ahead is not None:
            batch, self._ahead = self._ahead[1], None
            return batch
        return self._make()

    def prefetch(self) -> None:
        """Build the next batch now; the next ``next()`` returns it."""
        if self._ahead is None:
            state = self._state()
            self._ahead = (state, self._make())

    def _state(self) -> dict:
        return copy.deepcopy({"sampler": self.sampler.state_dict(), "clip_rng": self.clip_rng.bit_generator.state})

    def state_dict(self) -> dict:
        """The position of the stream: before a prefetched batch that was not consumed yet."""
        return self._ahead[0] if self._ahead is not None else self._state()

    def load_state_dict(self, state: dict) -> None:
        self._ahead = None
        self.sampler.load_state_dict(state["sampler"])
        self.clip_rng.bit_generator.state = state["clip_rng"]
