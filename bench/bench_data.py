"""Benchmarks of the data layer: generating, loading and batching synthetic THUMOS14-like sets.

    .venv/bin/pytest bench/bench_data.py --benchmark-group-by=group

Timed: the generator at the CPU preset (412 videos, D=256), loading that set, one training
batch (10 x 560 snippets) from the packed and the per-video layout.

Generation time and peak memory of the full THUMOS14-size set (412 videos, D=2048, ~1.1 GB),
each step in a fresh child process (``ru_maxrss``), written under a temporary folder::

    .venv/bin/python bench/bench_data.py --full [--dim 2048] [--dir /tmp]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from himnet_fast.data import TrainBatches, load_dataset, synthesize

CPU_DIM = 256


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench_data")
    return {layout: synthesize(root / layout, dim=CPU_DIM, seed=0, layout=layout)
            for layout in ("packed", "per_video")}


@pytest.mark.benchmark(group="synthesize THUMOS14-like, 412 videos, D=256")
def test_synthesize_cpu_preset(benchmark, tmp_path):
    out = iter(range(100))
    benchmark.pedantic(lambda: synthesize(tmp_path / str(next(out)), dim=CPU_DIM, seed=0), rounds=3)


@pytest.mark.benchmark(group="load, 412 videos, D=256")
@pytest.mark.parametrize("layout", ["packed", "per_video"])
def test_load(benchmark, sets, layout):
    ds = benchmark(load_dataset, sets[layout])
    assert len(ds) == 412


@pytest.mark.benchmark(group="training batch 10 x 560, D=256")
@pytest.mark.parametrize("layout", ["packed", "per_video"])
def test_batch(benchmark, sets, layout):
    stream = TrainBatches(load_dataset(sets[layout]).validate(progress=False), T=560, seed=0)
    _, X, _ = benchmark(next, stream)
    assert X.shape == (10, 560, CPU_DIM)


_CHILD = """
import json, resource, sys, time
t = time.perf_counter()
if sys.argv[1] == "synthesize":
    from himnet_fast.data import synthesize
    synthesize(sys.argv[2], dim=int(sys.argv[3]), seed=0)
else:
    from himnet_fast.data import load_dataset
    ds = load_dataset(sys.argv[2])
    ds.validate(progress=False)  # touches every feature
print(json.dumps({"seconds": time.perf_counter() - t,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _child(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def full_size(dim: int, parent: str) -> dict:
    """Generate then load a THUMOS14-size set, each in a child process; returns the figures."""
    with tempfile.TemporaryDirectory(dir=parent) as tmp:
        root = str(Path(tmp) / "thumos14")
        gen = _child("synthesize", root, str(dim))
        size = sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file()) / 2**20
        load = _child("load", root)
    return {"dim": dim, "size_mib": round(size, 1), "synthesize": gen, "load_and_validate": load}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="generate and load a THUMOS14-size set")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="parent of the temporary set")
    args = parser.parse_args()
    if not args.full:
        parser.error("nothing to do: pass --full (or run the benchmarks with pytest)")
    print(json.dumps(full_size(args.dim, args.dir), indent=1))
