"""Post-processing speed: native ops vs the numpy reference, in the same run.

* the whole THUMOS14 test set (212 videos at their real lengths T_i = floor(duration * 25/16),
  model-like attention / S_hat with bumps over the real ground-truth segments), detect_videos
  with backend "cpp" vs "reference", one thread (torch.set_num_threads(1));
* Soft-NMS alone for N = 1k, 10k, 50k gaussian-decayed segments (starts uniform over
  3,000 s, lengths exponential with mean 20 s): the native sweep vs the native O(N^2) loop
  (the structure of the public C++ implementations) vs the numpy reference;
* per-video latency of detect_videos (native);
* with --dense-growth (script mode only), the dense worst case instead: one group of N = 25k ..
  200k segments, starts uniform over [0, 100] (every segment overlaps nearly every other, so the
  work is quadratic), one run each, and the empirical exponent of the growth.

    .venv/bin/pytest bench/bench_postprocess.py --benchmark-only --benchmark-group-by=group
    .venv/bin/python bench/bench_postprocess.py      # the same figures as one table (and ratios)
    .venv/bin/python bench/bench_postprocess.py --dense-growth

The numpy reference at 50k takes tens of seconds: it runs once (pedantic, rounds=1) and only
with HIMNET_FAST_BENCH_SLOW=1 (the script mode always runs it unless --skip-slow).
Every fast result is checked against the reference before it is timed.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from himnet_fast.ops import postprocess as P
from himnet_fast.postprocess import DetectionConfig, detect_videos, synthetic_video_outputs
from himnet_fast.reference import postprocess as ref

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("HIMNET_FAST_SHARED_DATA", ROOT.parent / "shared" / "data")) / "thumos14"
SOFT_NMS_SIZES = (1_000, 10_000, 50_000)
DENSE_SIZES = (25_000, 50_000, 100_000, 200_000)
DENSE_SPAN = 100.0  # starts over [0, 100] s with lengths ~ Exp(20 s): nearly every pair overlaps


def bench_config() -> DetectionConfig:
    """The detection settings of the figures in BENCHMARKS.md: measured before issue 12 made the
    base code's no score floor and "+1" IoU the defaults (so the recorded workloads stay the same)."""
    return DetectionConfig(min_score=0.0, offset=0)
# The public C++ Soft-NMS (O(N^2), serial) on the same distribution, as given in the task (ms).
PUBLIC_SOFT_NMS_MS = {1_000: 7.4, 10_000: 298.0, 50_000: 9_400.0}


def thumos14_test_inputs(seed: int = 0):
    """(attention list, S_hat list) of the 212 THUMOS14 test videos at their real lengths,
    with bumps over their real ground-truth segments; None when the data is absent."""
    if not DATA.is_dir():
        return None
    load = lambda name: np.load(DATA / name, allow_pickle=True)  # noqa: E731
    subset, duration = load("subset.npy"), load("duration.npy").reshape(-1).astype(np.float64)
    segments, labels = load("segments.npy"), load("labels.npy")
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in load("classlist.npy")]
    index = {c: i for i, c in enumerate(classes)}
    test = np.flatnonzero(subset == b"test")
    lengths = np.floor(duration[test] * 25 / 16).astype(np.int64)
    spans = []
    for v, T in zip(test, lengths):
        video = []
        for (s, e), label in zip(segments[v], labels[v]):
            label = label.decode() if isinstance(label, bytes) else str(label)
            a, b = int(s * 25 / 16), int(np.ceil(e * 25 / 16))
            if a < T and label in index:
                video.append((a, max(a + 1, min(T, b)), index[label]))
        spans.append(video)
    return synthetic_video_outputs(lengths, spans, num_classes=len(classes), seed=seed)


def soft_nms_inputs(n: int, seed: int = 0, span: float = 3000.0):
    """N segments: starts uniform over `span` s, lengths exponential (mean 20 s); scores uniform."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(0.0, span, n)
    seg = np.stack([start, start + rng.exponential(20.0, n)], 1)
    return torch.from_numpy(seg), torch.from_numpy(rng.random(n))


def quadratic_soft_nms(seg, scores):
    """The native O(N^2) loop (same result as the sweep): the private op _soft_nms_quadratic."""
    return torch.ops.himnet_fast._soft_nms_quadratic(seg, scores, torch.zeros(len(scores), dtype=torch.int64), 2, 0.3,
                                                     0.7, float("-inf"), 0.0)


def same_detections(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


# ----------------------------------------------------------------------------- pytest-benchmark


@pytest.fixture(scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def thumos():
    inputs = thumos14_test_inputs()
    if inputs is None:
        pytest.skip(f"THUMOS14 annotations not found at {DATA}")
    return inputs


@pytest.mark.benchmark(group="thumos14-test-212-videos")
@pytest.mark.parametrize("backend", ["cpp", "reference"])
def test_thumos14_postprocess(benchmark, one_thread, thumos, backend):
    att, cas = thumos
    cfg = bench_config()
    if backend == "cpp":
        assert same_detections(detect_videos(att, cas, cfg, backend="cpp"),
                               detect_videos(att, cas, cfg, backend="reference"))
        benchmark(detect_videos, att, cas, cfg, backend="cpp")
    else:
        benchmark.pedantic(detect_videos, args=(att, cas, cfg), kwargs={"backend": "reference"}, rounds=1,
                           iterations=1)


@pytest.mark.benchmark(group="per-video-latency")
def test_per_video_latency(benchmark, one_thread, thumos):
    att, cas = thumos
    v = int(np.argsort([len(a) for a in att])[len(att) // 2])  # the median-length video
    benchmark(detect_videos, [att[v]], [cas[v]], bench_config(), backend="cpp")


@pytest.mark.parametrize("n", SOFT_NMS_SIZES)
@pytest.mark.parametrize("impl", ["sweep", "quadratic", "reference"])
def test_soft_nms(benchmark, one_thread, n, impl):
    benchmark.group = f"soft-nms-{n}"
    seg, scores = soft_nms_inputs(n)
    if impl == "sweep":
        if n <= 10_000:
            want = ref.soft_nms_reference(seg.numpy(), scores.numpy())
            got = P.soft_nms(seg, scores, backend="cpp")
            assert np.array_equal(got[0].numpy(), want[0]) and np.array_equal(got[1].numpy(), want[1])
        benchmark(P.soft_nms, seg, scores, backend="cpp")
    elif impl == "quadratic":
        assert all(torch.equal(a, b) for a, b in zip(quadratic_soft_nms(seg, scores), P.soft_nms(seg, scores)))
        benchmark.pedantic(quadratic_soft_nms, args=(seg, scores), rounds=1 if n > 10_000 else 3, iterations=1)
    else:
        if n > 10_000 and os.environ.get("HIMNET_FAST_BENCH_SLOW") != "1":
            pytest.skip("the numpy reference at 50k takes tens of seconds: set HIMNET_FAST_BENCH_SLOW=1")
        benchmark.pedantic(ref.soft_nms_reference, args=(seg.numpy(), scores.numpy()), rounds=1, iterations=1)


# ----------------------------------------------------------------------------- script mode


def best_of(fn, repeats: int) -> float:
    """Minimum wall time of fn() over repeats, in seconds."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def dense_growth() -> None:
    """Seconds of the native Soft-NMS on DENSE_SIZES dense segments (one run each: the largest
    takes tens of seconds) and the exponent of t ~ n^k, between neighbours and fitted overall."""
    print(f"Dense Soft-NMS (gaussian, sigma 0.3, one group), starts over [0, {DENSE_SPAN:g}] s, lengths ~ Exp(20 s):")
    print(f"  {'N':>7} {'seconds':>8} {'exponent':>8}")
    times = []
    for n in DENSE_SIZES:
        seg, scores = soft_nms_inputs(n, span=DENSE_SPAN)
        times.append(best_of(lambda: P.soft_nms(seg, scores, backend="cpp"), 1))
        k = "" if len(times) < 2 else f"{np.log(times[-1] / times[-2]) / np.log(n / DENSE_SIZES[len(times) - 2]):8.2f}"
        print(f"  {n:>7} {times[-1]:8.2f} {k:>8}", flush=True)
    fit = np.polyfit(np.log(DENSE_SIZES), np.log(times), 1)[0]
    print(f"  least-squares exponent over all sizes: {fit:.2f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-slow", action="store_true", help="skip the 50k numpy reference (tens of seconds)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dense-growth", action="store_true", help="only the dense worst case (about a minute)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.dense_growth:
        print(f"torch {torch.__version__}, {args.threads} thread(s); one run per size")
        dense_growth()
        return 0
    print(f"torch {torch.__version__}, {args.threads} thread(s); times are the best of several runs")
    inputs = thumos14_test_inputs()
    if inputs is not None:
        att, cas = inputs
        cfg = bench_config()
        want = detect_videos(att, cas, cfg, backend="reference")
        assert same_detections(detect_videos(att, cas, cfg, backend="cpp"), want)
        t_ref = best_of(lambda: detect_videos(att, cas, cfg, backend="reference"), 2)
        t_cpp = best_of(lambda: detect_videos(att, cas, cfg, backend="cpp"), 20)
        v = int(np.argsort([len(a) for a in att])[len(att) // 2])
        t_one = best_of(lambda: detect_videos([att[v]], [cas[v]], cfg, backend="cpp"), 200)
        print(f"THUMOS14 test set ({len(att)} videos, {sum(len(a) for a in att)} snippets, "
              f"{sum(len(d) for d in want)} detections):")
        print(f"  reference {t_ref * 1e3:9.1f} ms   native {t_cpp * 1e3:7.2f} ms   speed-up {t_ref / t_cpp:6.0f}x   "
              f"native per video {t_cpp / len(att) * 1e6:.0f} us (amortized), "
              f"one median video ({len(att[v])} snippets) alone {t_one * 1e6:.0f} us")
    else:
        print(f"THUMOS14 annotations not found at {DATA}: skipped")
    print("Soft-NMS (gaussian, sigma 0.3), N segments over 3,000 s, lengths ~ Exp(20 s):")
    print(f"  {'N':>6} {'sweep ms':>9} {'O(N^2) ms':>10} {'numpy ms':>10} {'vs O(N^2)':>9} {'vs public':>9}")
    for n in SOFT_NMS_SIZES:
        seg, scores = soft_nms_inputs(n)
        fast = P.soft_nms(seg, scores, backend="cpp")
        assert all(torch.equal(a, b) for a, b in zip(quadratic_soft_nms(seg, scores), fast))
        t_fast = best_of(lambda: P.soft_nms(seg, scores, backend="cpp"), 30 if n < 50_000 else 5)
        t_quad = best_of(lambda: quadratic_soft_nms(seg, scores), 3 if n <= 10_000 else 1)
        t_np = float("nan")
        if n <= 10_000 or not args.skip_slow:
            t0 = time.perf_counter()
            want = ref.soft_nms_reference(seg.numpy(), scores.numpy())
            t_np = time.perf_counter() - t0
            assert np.array_equal(fast[0].numpy(), want[0]) and np.array_equal(fast[1].numpy(), want[1])
        print(f"  {n:>6} {t_fast * 1e3:9.2f} {t_quad * 1e3:10.1f} {t_np * 1e3:10.0f} {t_quad / t_fast:8.0f}x "
              f"{PUBLIC_SOFT_NMS_MS[n] / (t_fast * 1e3):8.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
