"""Benchmark: detection mAP, ours vs the port of the official code, same run.

THUMOS14 test ground truth (212 videos, 3,358 instances, from the Thumos14reduced folder in
../shared/data/thumos14) with 20,000 and 100,000 random predictions (half jittered copies of
ground truth, half uniform over the video), all 7 thresholds, one thread::

    NUMBA_NUM_THREADS=1 .venv/bin/pytest bench/bench_evaluation.py --benchmark-group-by=group

"ours" starts from the results dict (parsing and checks included); "ours_arrays" from
already-loaded GroundTruth/Predictions (the matching and AP alone). "reference" is the port
in himnet_fast/reference/evaluation.py (official semantics, numpy-column loop; fewer rounds);
"reference_literal" the official pandas loop as written (iterrows), at 20,000 only.

First call in a fresh process, cold and warm numba disk cache::

    .venv/bin/python bench/bench_evaluation.py --first-call
"""
from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("HIMNET_FAST_SHARED_DATA", REPO.parent / "shared" / "data"))


def thumos14_test_gt() -> dict:
    """ActivityNet JSON of the THUMOS14 test split (212 videos, 3,358 instances)."""
    from himnet_fast.data.annotations import ground_truth_json, read_annotations

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the data package reports odd public segments
        return ground_truth_json(read_annotations(SHARED / "thumos14"), "test")


def random_predictions(gt: dict, n: int, seed: int = 0) -> dict:
    """n detections: half jittered ground-truth copies (label right 80%), half uniform.

    Returned through a JSON round trip, so the dicts lie in memory in file order as after
    ``json.load`` (built in random order they would cost cache misses no real file has)."""
    rng = np.random.default_rng(seed)
    db = gt["database"]
    videos = list(db)
    anns = [(v, a) for v in videos for a in db[v]["annotations"]]
    classes = sorted({a["label"] for _, a in anns})
    results = {v: [] for v in videos}
    for k in range(n):
        if k % 2 == 0:
            v, a = anns[int(rng.integers(len(anns)))]
            s, e = a["segment"]
            s, e = s + rng.normal(scale=0.3 * (e - s) + 0.1), e + rng.normal(scale=0.3 * (e - s) + 0.1)
            label = a["label"] if rng.random() < 0.8 else classes[int(rng.integers(len(classes)))]
        else:
            v = videos[int(rng.integers(len(videos)))]
            s = float(rng.uniform(0, db[v].get("duration", 300.0)))
            e = s + float(rng.exponential(5.0))
            label = classes[int(rng.integers(len(classes)))]
        results[v].append({"label": label, "score": float(rng.random()), "segment": [float(s), float(max(s, e))]})
    return json.loads(json.dumps({"results": results}))


# ------------------------------------------------------------------------------- pytest-benchmark

try:
    import pytest
except ImportError:  # the --first-call script needs no pytest
    pytest = None

if pytest is not None:
    SIZES = [20_000, 100_000]

    @pytest.fixture(scope="module")
    def gt():
        if not (SHARED / "thumos14").is_dir():
            pytest.skip(f"real annotations not found at {SHARED}")
        return thumos14_test_gt()

    @pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"{n // 1000}k")
    def case(request, gt):
        return request.param, random_predictions(gt, request.param)

    def _ours(gt, results):
        from himnet_fast.evaluation import THUMOS14_TIOUS, detection_map

        return detection_map(gt, results, THUMOS14_TIOUS, "test").mAP

    def test_ours(benchmark, gt, case):
        n, results = case
        benchmark.group = f"evaluation-{n // 1000}k"
        _ours(gt, results)  # compile / load the numba cache outside the timing
        mAP = benchmark(_ours, gt, results)
        assert mAP.shape == (7,) and 0 < mAP[0] < 1

    def test_ours_arrays(benchmark, gt, case):
        from himnet_fast.evaluation import THUMOS14_TIOUS, detection_map, load_ground_truth, load_predictions

        n, results = case
        benchmark.group = f"evaluation-{n // 1000}k"
        g = load_ground_truth(gt, "test")
        p = load_predictions(results, g)
        mAP = benchmark(lambda: detection_map(g, p, THUMOS14_TIOUS).mAP)
        assert np.array_equal(mAP, _ours(gt, results))

    def test_reference(benchmark, gt, case):
        from himnet_fast.evaluation import THUMOS14_TIOUS
        from himnet_fast.reference import evaluation as official

        n, results = case
        benchmark.group = f"evaluation-{n // 1000}k"
        _, mAP, _ = benchmark.pedantic(official.evaluate, (gt, results, THUMOS14_TIOUS, "test"),
                                       rounds=3 if n <= 20_000 else 1, iterations=1)
        assert np.array_equal(mAP, _ours(gt, results))

    def test_reference_literal(benchmark, gt, case):
        """The official loop as written (iterrows): 20k only, one round (it takes seconds)."""
        from himnet_fast.evaluation import THUMOS14_TIOUS
        from himnet_fast.reference import evaluation as official

        n, results = case
        if n > 20_000:
            pytest.skip("the literal official loop takes minutes at 100k predictions")
        benchmark.group = f"evaluation-{n // 1000}k"
        _, mAP, _ = benchmark.pedantic(official.evaluate, (gt, results, THUMOS14_TIOUS, "test", True),
                                       rounds=1, iterations=1)
        assert np.array_equal(mAP, _ours(gt, results))


# ------------------------------------------------------------------------------ first-call timing

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from himnet_fast.evaluation import THUMOS14_TIOUS, detection_map
t1 = time.perf_counter()
gt, results = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
t2 = time.perf_counter()
detection_map(gt, results, THUMOS14_TIOUS, "test")
t3 = time.perf_counter()
detection_map(gt, results, THUMOS14_TIOUS, "test")
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_call_s": t3 - t2, "second_call_s": t4 - t3}))
"""


def first_call(n: int = 20_000) -> None:
    """Time import + first + second call in fresh processes: cold cache, then warm cache."""
    gt = thumos14_test_gt()
    with tempfile.TemporaryDirectory() as tmp:
        gt_path, pred_path = Path(tmp) / "gt.json", Path(tmp) / "pred.json"
        gt_path.write_text(json.dumps(gt))
        pred_path.write_text(json.dumps(random_predictions(gt, n)))
        env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tmp) / "numba_cache"), NUMBA_NUM_THREADS="1")
        for label in ("cold cache", "warm cache", "warm cache"):
            out = subprocess.run([sys.executable, "-c", _CHILD, str(gt_path), str(pred_path)], env=env,
                                 cwd=REPO, capture_output=True, text=True, check=True).stdout
            t = json.loads(out.strip().splitlines()[-1])
            print(f"{label}: import {t['import_s'] * 1e3:.0f} ms, first call {t['first_call_s'] * 1e3:.0f} ms, "
                  f"second call {t['second_call_s'] * 1e3:.1f} ms ({n} predictions)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--first-call", action="store_true", help="time the first call in fresh processes")
    parser.add_argument("-n", type=int, default=20_000, help="number of predictions")
    args = parser.parse_args()
    if args.first_call:
        first_call(args.n)
    else:
        parser.print_help()
