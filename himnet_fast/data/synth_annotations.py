"""Synthetic ground truth drawn from built-in statistics of THUMOS14 and ActivityNet1.3, so the
synthetic generator runs with no files at all.

Figures measured on the public annotation files (``../shared/data``; 412 THUMOS14 videos of
the validation+test splits, 13,459 ActivityNet1.3 train+val videos):

=========================  ==========================  =============================
statistic                  THUMOS14                    ActivityNet1.3
=========================  ==========================  =============================
videos per split           200 validation / 212 test   9,032 train / 4,427 val
duration median/mean       155 s / 213 s (9-1673 s)    115 s / 118 s (1-755 s)
classes per video          87% one, 12% two, rest 3    99.9% one
instances per video        median 8, mean 15, max 218  75% one, 13% two, mean 1.5
instance length            median 3.0 s, mean 4.3 s    median 33% of the video
foreground time            29% of each video           65% of each video
=========================  ==========================  =============================

THUMOS14-like videos get their instance count from the foreground fraction and a
per-class instance length (so long videos have many short instances, as in THUMOS14);
ActivityNet-like videos get a count first and split the foreground time among them.
Videos with two classes take a "confusable partner" (see :data:`THUMOS14_PAIRS`), as in the
real data where CliffDiving/Diving and CricketBowling/CricketShot co-occur.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .annotations import Annotations

THUMOS14_CLASSES = (
    "BaseballPitch", "BasketballDunk", "Billiards", "CleanAndJerk", "CliffDiving", "CricketBowling",
    "CricketShot", "Diving", "FrisbeeCatch", "GolfSwing", "HammerThrow", "HighJump", "JavelinThrow",
    "LongJump", "PoleVault", "Shotput", "SoccerPenalty", "TennisSwing", "ThrowDiscus",
    "VolleyballSpiking",
)
# Classes that look alike (shared scene or motion); the generator makes their features share
# components and lets them co-occur in multi-class videos.
THUMOS14_PAIRS = (
    ("CliffDiving", "Diving"), ("CricketBowling", "CricketShot"), ("HammerThrow", "ThrowDiscus"),
    ("HighJump", "LongJump"), ("JavelinThrow", "PoleVault"), ("BasketballDunk", "VolleyballSpiking"),
    ("GolfSwing", "TennisSwing"),
)


@dataclass(frozen=True)
class AnnotationStats:
    """Distributions of a benchmark's ground truth (seconds unless stated)."""

    classlist: Tuple[str, ...]
    pairs: Tuple[Tuple[str, str], ...]
    splits: Tuple[Tuple[str, str, int], ...]       # (subset name, video-name prefix, count)
    duration_median: float
    duration_mean: float
    duration_range: Tuple[float, float]
    classes_per_video: Tuple[float, ...]           # P(1 class), P(2), P(3)
    foreground_mean: float
    foreground_concentration: float                # Beta(m*k, (1-m)*k)
    instance_mode: str                             # "by_length" (THUMOS14) | "by_count" (ActivityNet)
    instance_median: float = 3.6                   # by_length: lognormal instance length (the
                                                   # per-class scales bring the median to ~3 s)
    instance_mean: float = 4.3
    instance_range: Tuple[float, float] = (0.2, 118.0)
    class_length_spread: float = 0.5               # by_length: sd of log per-class length scale
    count_probs: Tuple[float, ...] = (1.0,)        # by_count: P(1 instance), P(2), ...
    fps_values: Tuple[float, ...] = (30.0,)
    fps_probs: Tuple[float, ...] = (1.0,)
    style: str = "thumos14"                        # how write_annotations stores strings

    @property
    def num_videos(self) -> int:
        return sum(n for _, _, n in self.splits)


THUMOS14_STATS = AnnotationStats(
    classlist=THUMOS14_CLASSES, pairs=THUMOS14_PAIRS,
    splits=(("validation", "video_validation_", 200), ("test", "video_test_", 212)),
    duration_median=155.0, duration_mean=213.0, duration_range=(9.0, 1673.0),
    classes_per_video=(0.87, 0.12, 0.01), foreground_mean=0.29, foreground_concentration=4.0,
    instance_mode="by_length", fps_values=(24.0, 25.0, 30.0), fps_probs=(0.005, 0.027, 0.968),
)

_ANET_CLASSES = tuple(f"activity_{c:03d}" for c in range(200))
ANET13_STATS = AnnotationStats(
    classlist=_ANET_CLASSES, pairs=tuple((_ANET_CLASSES[c], _ANET_CLASSES[c + 1]) for c in range(0, 120, 2)),
    splits=(("train", "v_synth_train_", 9032), ("val", "v_synth_val_", 4427)),
    duration_median=115.0, duration_mean=118.0, duration_range=(1.5, 755.0),
    classes_per_video=(0.999, 0.001), foreground_mean=0.65, foreground_concentration=3.0,
    instance_mode="by_count", count_probs=(0.75, 0.13, 0.05, 0.03, 0.02, 0.02),
    style="anet13",
)

BUILTIN_STATS = {"thumos14": THUMOS14_STATS, "anet13": ANET13_STATS}


def _lognormal(rng: np.random.Generator, median: float, mean: float, size) -> np.ndarray:
    """Lognormal draws with the given median and mean (mean > median)."""
    sigma = np.sqrt(2.0 * np.log(max(mean / median, 1.0 + 1e-9)))
    return median * np.exp(sigma * rng.standard_normal(size))


def proportional_counts(counts: Sequence[int], total: int) -> List[int]:
    """Spread ``total`` over groups in proportion to ``counts`` by largest remainders, at least
    one each (e.g. 9 over 9032 : 4427 -> 6 : 3)."""
    counts = np.asarray(counts, dtype=np.float64)
    if total < len(counts):
        raise ValueError(f"videos: need at least {len(counts)} (one per split), got {total}")
    exact = total * counts / counts.sum()
    out = np.floor(exact).astype(int)
    order = np.argsort(-(exact - out), kind="stable")
    out[order[: total - out.sum()]] += 1
    while (out < 1).any():  # take from the largest group
        out[np.argmax(out)] -= 1
        out[np.argmin(out)] += 1
    return out.tolist()


def _video_classes(rng: np.random.Generator, stats: AnnotationStats, partner: np.ndarray) -> np.ndarray:
    """The classes of one video: a uniform primary class, then its partner (or a random class)."""
    num = len(stats.classlist)
    k = 1 + int(rng.choice(len(stats.classes_per_video), p=np.asarray(stats.classes_per_video)
                           / np.sum(stats.classes_per_video)))
    classes = [int(rng.integers(num))]
    while len(classes) < k:
        p = partner[classes[0]]
        c = p if p >= 0 and p not in classes else int(rng.integers(num))
        if c not in classes:
            classes.append(c)
    return np.asarray(classes, dtype=np.int64)


def _instance_lengths(rng, stats: AnnotationStats, duration: float, foreground: float,
                      class_scale: float) -> np.ndarray:
    if stats.instance_mode == "by_length":
        mean_len = stats.instance_mean * class_scale
        n = max(1, int(round(foreground * duration / mean_len * rng.uniform(0.7, 1.3))))
        lengths = _lognormal(rng, stats.instance_median * class_scale, mean_len, n)
        lengths = np.clip(lengths, *stats.instance_range)
    elif stats.instance_mode == "by_count":
        n = 1 + int(rng.choice(len(stats.count_probs), p=np.asarray(stats.count_probs) / sum(stats.count_probs)))
        lengths = foreground * duration * rng.dirichlet(np.full(n, 2.0))
    else:
        raise ValueError(f"instance_mode: must be 'by_length' or 'by_count', got {stats.instance_mode!r}")
    budget = 0.95 * duration  # leave room for gaps
    if lengths.sum() > budget:
        lengths *= budget / lengths.sum()
    return np.maximum(lengths, min(stats.instance_range[0], duration / (4 * len(lengths))))


def _place(rng: np.random.Generator, lengths: np.ndarray, duration: float) -> np.ndarray:
    """(n, 2) non-overlapping segments of ``lengths`` in random order with Dirichlet gaps,
    rounded to 0.1 s as in the THUMOS14 files."""
    lengths = rng.permutation(lengths)
    gaps = (duration - lengths.sum()) * rng.dirichlet(np.ones(len(lengths) + 1))
    starts = np.cumsum(gaps[:-1]) + np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    seg = np.stack([starts, starts + lengths], axis=1)
    rounded = np.round(seg, 1)
    ok = rounded[:, 1] > rounded[:, 0]
    return np.where(ok[:, None], rounded, seg)


def synth_annotations(stats: AnnotationStats = THUMOS14_STATS, videos: Optional[int] = None,
                      seed: int = 0) -> Annotations:
    """Draw a ground truth following ``stats``.

    Args:
        stats: the benchmark statistics (:data:`THUMOS14_STATS`, :data:`ANET13_STATS`).
        videos: total number of videos (split in the benchmark's proportions); None = the
            benchmark's counts.
        seed: the draws depend on it only.
    Returns: :class:`Annotations` with segments in seconds and durations (N,).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EA]))
    classlist = list(stats.classlist)
    index = {c: i for i, c in enumerate(classlist)}
    partner = np.full(len(classlist), -1, dtype=np.int64)
    for a, b in stats.pairs:
        partner[index[a]], partner[index[b]] = index[b], index[a]
    class_scale = np.exp(stats.class_length_spread * rng.standard_normal(len(classlist)))
    m, k = stats.foreground_mean, stats.foreground_concentration

    names, subsets, durations, segments, seg_labels = [], [], [], [], []
    counts = [n for _, _, n in stats.splits]
    if videos is not None:
        counts = proportional_counts(counts, videos)
    for (subset, prefix, _), count in zip(stats.splits, counts):
        for j in range(count):
            dur = float(np.clip(_lognormal(rng, stats.duration_median, stats.duration_mean, ()),
                                *stats.duration_range))
            classes = _video_classes(rng, stats, partner)
            fg = float(np.clip(rng.beta(m * k, (1 - m) * k), 0.02, 0.9))
            lengths = _instance_lengths(rng, stats, dur, fg, float(class_scale[classes].mean()))
            n = len(lengths)
            # every class of the video gets at least one instance (when there are enough)
            labels = np.concatenate([classes[:n], rng.choice(classes, size=max(0, n - len(classes)))])
            seg = _place(rng, lengths, dur)
            dur = round(dur, 3)  # as stored
            # Rounding to 0.1 s (and the duration to 1 ms) can carry an end past the video
            # (154.2-155.36 s -> 155.4 s in a 155.387 s video): clip to the stored duration.
            seg = np.clip(seg, 0.0, dur)
            order = np.argsort(seg[:, 0], kind="stable")
            names.append(f"{prefix}{j + 1:07d}")
            subsets.append(subset)
            durations.append(dur)
            segments.append(seg[order])
            seg_labels.append(rng.permutation(labels)[order].astype(np.int64))
    video_labels = np.zeros((len(names), len(classlist)), dtype=np.float32)
    for i, ids in enumerate(seg_labels):
        video_labels[i, ids] = 1.0
    fps = rng.choice(np.asarray(stats.fps_values), size=len(names), p=np.asarray(stats.fps_probs))
    return Annotations(names, subsets, classlist, np.asarray(durations, dtype=np.float64), segments,
                       seg_labels, video_labels, fps.astype(np.float64), source="<synthetic>")
