"""Synthetic I3D-like snippet features for a given ground truth.

Design (what makes the set hard in the way HiM-Net's complementary labels address):

* Every feature is a sum of unit-norm *components* plus isotropic Gaussian noise of std
  ``noise`` per dimension. Amplitudes are signal-to-noise ratios along a component, so the
  difficulty does not depend on the feature size D (a D=64 CPU preset is as hard as D=2048).
* Each class c has its own component u_c. Classes are grouped in *confusable pairs*
  (classes that co-occur in the ground truth first, e.g. CliffDiving/Diving, then random
  ones up to ``paired_fraction``); a pair p shares a component s_p that is *stronger* than
  either class's own component. Action snippets of a paired class carry
  ``envelope * (a_u * u_c + shared * s_p)``, with a_u drawn per instance in ``unique``, so
  weak instances are told apart from their partner only by a faint u_c.
* Background snippets mix ``num_background`` generic components (weights drifting slowly in
  time), a per-video scene vector, and a weak ``scene_pair`` share of s_p for each class of
  the video (the cricket field is there before the bowler bowls). Context snippets (up to
  ``context_snippets`` either side of an action) carry a decaying ``context`` share of the
  class signal, which blurs boundaries as real context does.
* RGB and flow (the two halves of D) weigh components differently: the scene and background
  are mostly in RGB, motion (the class components) leans to flow.
* Opt-in, ``video_style`` > 0: each (video, class) also draws one direction of its own, added
  as ``video_style * envelope`` on that class's instances in that video (the same actors, venue
  and camera within a video, new ones in the next). Off by default; docs/RESULTS.md section 7
  measures it.
* Opt-in, ``rectified``: every value clipped at 0 after everything else is drawn. I3D's
  features are the average-pooled outputs of ReLU units (its Mixed_5c block), so every
  dimension of a real THUMOS14 feature is >= 0; the default features are signed. Off by
  default; docs/RESULTS.md section 9 measures it.

Failure mode: a MIL-only model, whose loss sees each class only through its top-k pooled
score, learns that s_p means "c or its partner" and never needs to suppress the partner on
the snippets it does not pool, so it fires on the absent partner class over actions and
context of the present one (and over the scene_pair background). The complementary-label
loss penalises absent classes on *every* snippet of the video, which forces the model onto
the faint u_c and off the shared scene. A first check (one seed, D=64, hidden 128, 300
iterations of batch 10 x 320 snippets, Adam 1e-3; HiMNet + the reference losses) on the
THUMOS14-like test split: snippet accuracy 0.73 (MIL) vs 0.83 (MIL+CLL); test snippets
classified as a class absent from the video 12.4% vs 6.6%, as the absent partner 8.6% vs
5.9%. Video-level scores of the absent partner were not lowered by CLL in that check.
The six unpaired THUMOS14-like classes act as a control.

Determinism: the components depend on (seed, D, the classes and their co-occurrence); a
video's features on those components and (seed, its name, its ground truth) only, so a video
renders the same alone or in a set, in any order.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from .annotations import Annotations
from .snippets import segment_snippets, snippets_for_duration


@dataclass
class FeatureModel:
    """Amplitudes (signal-to-noise ratios along unit components) of the synthetic features."""

    dim: int = 2048
    noise: float = 1.0
    unique: Tuple[float, float] = (1.0, 4.0)  # a class's own component, per instance
    shared: float = 5.0                       # the pair's shared component in actions
    scene_pair: float = 2.0                   # the pair component in a video's background
    background: float = 4.0                   # generic background mix
    scene: float = 3.0                        # per-video scene vector
    context: float = 1.5                      # class signal next to actions, decaying
    context_snippets: int = 4
    envelope_floor: float = 0.5               # action strength at the instance edges
    num_background: int = 4
    drift_snippets: int = 16                  # smoothing window of the background drift
    paired_fraction: float = 0.7
    video_style: float = 0.0                  # a video's own look of each of its classes (0: none)
    rectified: bool = False                   # clip at 0, as I3D's post-ReLU pooled features are
    rgb_weights: Tuple[float, float] = (0.7, 1.2)   # (action, scene/background) weight in RGB
    flow_weights: Tuple[float, float] = (1.2, 0.5)  # the same in flow

    def __post_init__(self) -> None:
        if self.dim < 2 or self.dim % 2:
            raise ValueError(f"dim: must be an even number >= 2 (RGB half + flow half), got {self.dim}")
        if not 0.0 <= self.paired_fraction <= 1.0:
            raise ValueError(f"paired_fraction: must lie in [0, 1], got {self.paired_fraction}")
        if not (np.isfinite(self.video_style) and self.video_style >= 0.0):
            raise ValueError(f"video_style: must be a finite number >= 0, got {self.video_style}")


def confusable_pairs(video_labels: np.ndarray, paired_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Pair classes: most co-occurring first, then random partners until ``paired_fraction`` of
    the classes have one.

    Args: video_labels (N, C) multi-hot. Returns: (C,) int64 pair id per class, -1 = unpaired.
    """
    C = video_labels.shape[1]
    co = video_labels.T.astype(np.float64) @ video_labels
    np.fill_diagonal(co, 0)
    pair_of = np.full(C, -1, dtype=np.int64)
    n_pairs, target = 0, int(paired_fraction * C) // 2
    while n_pairs < target:
        free = pair_of < 0
        masked = np.where(free[:, None] & free[None, :], co, 0)
        if masked.max() <= 0:
            break
        a, b = np.unravel_index(int(np.argmax(masked)), masked.shape)
        pair_of[[a, b]] = n_pairs
        n_pairs += 1
    rest = rng.permutation(np.flatnonzero(pair_of < 0))
    for j in range(0, 2 * (target - n_pairs), 2):
        pair_of[rest[j:j + 2]] = n_pairs
        n_pairs += 1
    return pair_of


def _unit_rows(rng: np.random.Generator, n: int, dim: int, weights: Tuple[float, float]) -> np.ndarray:
    """(n, dim) float32 components: unit-norm RGB and flow halves scaled by ``weights`` / sqrt(2)."""
    half = dim // 2
    rows = rng.standard_normal((n, 2, half))
    rows /= np.linalg.norm(rows, axis=2, keepdims=True)
    rows *= np.asarray(weights, dtype=np.float64)[None, :, None] / np.sqrt(2.0)
    return rows.reshape(n, dim).astype(np.float32)


@dataclass
class Components:
    """The shared components of a synthetic set: unique (C, D), pair-shared (P, D), background
    (G, D), and the pair id of each class (C,) (-1 = unpaired)."""

    unique: np.ndarray
    shared: np.ndarray
    background: np.ndarray
    pair_of: np.ndarray


def make_components(annotations: Annotations, model: FeatureModel, seed: int) -> Components:
    """Draw the components for ``annotations`` (pairs from its class co-occurrence)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    C = annotations.num_classes
    pair_of = confusable_pairs(annotations.video_labels, model.paired_fraction, rng)
    P = int(pair_of.max()) + 1
    action = (model.rgb_weights[0], model.flow_weights[0])
    return Components(unique=_unit_rows(rng, C, model.dim, action),
                      shared=_unit_rows(rng, P, model.dim, action),
                      background=_unit_rows(rng, model.num_background, model.dim,
                                            (model.rgb_weights[1], model.flow_weights[1])),
                      pair_of=pair_of)


def _envelope(L: int, floor: float) -> np.ndarray:
    """(L,) action strength over an instance: ``floor`` at the edges, 1 in the middle."""
    return floor + (1.0 - floor) * np.sin(np.pi * (np.arange(L) + 0.5) / L)


def _drift(rng: np.random.Generator, T: int, G: int, window: int) -> np.ndarray:
    """(T, G) background mix: a per-video Dirichlet mix plus smoothed noise, non-negative."""
    base = rng.dirichlet(np.ones(G))
    noise = rng.standard_normal((T + window - 1, G))
    smooth = np.cumsum(noise, axis=0)
    smooth = (smooth[window - 1:] - np.concatenate([np.zeros((1, G)), smooth[:-window]])) / np.sqrt(window)
    return np.maximum(base[None, :] + 0.3 * smooth / np.sqrt(G), 0.0)


def render_video(annotations: Annotations, i: int, comps: Components, model: FeatureModel,
                 seed: int) -> np.ndarray:
    """Features of video ``i``: (T_i, D) float32 with T_i = floor(duration * 25/16) (>= 1)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1, zlib.crc32(annotations.names[i].encode())]))
    T = max(1, snippets_for_duration(annotations.durations[i]))
    G = model.num_background
    classes = np.flatnonzero(annotations.video_labels[i])
    classes = np.union1d(classes, annotations.segment_labels[i]).astype(np.int64)
    pairs = np.unique(comps.pair_of[classes][comps.pair_of[classes] >= 0])
    # columns: the video's classes (unique), their pairs (shared), background, scene
    col_u = {c: j for j, c in enumerate(classes)}
    col_s = {p: len(classes) + j for j, p in enumerate(pairs)}
    g0 = len(classes) + len(pairs)
    W = np.zeros((T, g0 + G + 1), dtype=np.float64)
    W[:, g0:g0 + G] = model.background * _drift(rng, T, G, model.drift_snippets)
    W[:, g0 + G] = model.scene
    for p in pairs:
        W[:, col_s[p]] = model.scene_pair

    fg = np.zeros(T)
    style_env = np.zeros((T, len(classes)))  # (T, classes): where each class's instances are
    start, end = segment_snippets(annotations.segments[i], T)
    a_u = rng.uniform(*model.unique, size=len(start))
    reach = model.context_snippets
    ramp = model.context * (1.0 - np.arange(1, reach + 1) / (reach + 1))  # (reach,) decaying
    for s, e, c, a in zip(start, end, annotations.segment_labels[i], a_u):
        if e <= s:
            continue  # the segment lies past the features' end
        env = _envelope(e - s, model.envelope_floor)
        p = comps.pair_of[c]
        own = a if p >= 0 else np.hypot(a, model.shared)  # unpaired: same total strength
        W[s:e, col_u[c]] += own * env
        style_env[s:e, col_u[c]] = np.maximum(style_env[s:e, col_u[c]], env)
        if p >= 0:
            W[s:e, col_s[p]] += model.shared * env
        fg[s:e] = np.maximum(fg[s:e], env)
        for lo, hi, r in ((max(0, s - reach), s, ramp[:s - max(0, s - reach)][::-1]),
                          (e, min(T, e + reach), ramp[:min(T, e + reach) - e])):
            W[lo:hi, col_u[c]] = np.maximum(W[lo:hi, col_u[c]], r)
            if p >= 0:
                W[lo:hi, col_s[p]] = np.maximum(W[lo:hi, col_s[p]], r + model.scene_pair)
    W[:, g0:g0 + G] *= (1.0 - 0.5 * fg)[:, None]  # the action partly occludes the background

    scene = _unit_rows(rng, 1, model.dim, (model.rgb_weights[1], model.flow_weights[1]))
    basis = np.concatenate([comps.unique[classes],
                            comps.shared[pairs] if len(pairs) else np.zeros((0, model.dim), np.float32),
                            comps.background, scene])
    x = rng.standard_normal((T, model.dim), dtype=np.float32)
    if model.noise != 1.0:
        x *= np.float32(model.noise)
    # einsum, not matmul: OpenBLAS threads spin badly on many small products on a busy machine
    x += np.einsum("tm,md->td", W.astype(np.float32), basis, optimize=False)
    if model.video_style > 0:  # drawn last, so that video_style = 0 leaves every other draw as it was
        style = _unit_rows(rng, len(classes), model.dim, (model.rgb_weights[0], model.flow_weights[0]))
        x += np.einsum("tm,md->td", (model.video_style * style_env).astype(np.float32), style, optimize=False)
    if model.rectified:  # no draw: the rest of the video is the one of rectified = False
        np.maximum(x, 0.0, out=x)
    return x


def iter_features(annotations: Annotations, model: FeatureModel, seed: int,
                  indices: Optional[Sequence[int]] = None, progress: bool = False) -> Iterator[np.ndarray]:
    """Yield the features of the videos at ``indices`` (default all), one video in memory at a
    time: arrays (T_i, D) float32 (see :func:`render_video`)."""
    comps = make_components(annotations, model, seed)
    indices = range(len(annotations)) if indices is None else indices
    for i in tqdm(indices, desc="synthesize features", disable=not progress, unit="video"):
        yield render_video(annotations, int(i), comps, model, seed)
