"""Training throughput of the thumos14 preset on a GPU: fused (Triton) vs reference losses.

Generates a THUMOS14-size synthetic set at D=2048 on top of the real annotations (when
``$HIMNET_FAST_SHARED_DATA/thumos14`` exists, else from built-in statistics), then times
iterations of the paper's recipe (B=10, T=560, k=80) with each loss backend.

    python bench/gpu_train_speed.py --out DIR [--iters 40] [--warmup 5]

Reports it/s and the projected time of the paper's 10,000 iterations.
Writes DIR/train_speed_table.txt and DIR/train_speed.json.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from himnet_fast.config import preset
from himnet_fast.data import load_dataset, synthesize
from himnet_fast.trainer import Trainer


def iterations_per_second(cfg, dataset, iters: int, warmup: int) -> float:
    trainer = Trainer(cfg, dataset)
    for _ in range(warmup):
        trainer.step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        trainer.step()
    torch.cuda.synchronize()
    return iters / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--iters", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/himnet_fast_synthetic_thumos14_d2048"),
                        help="where the synthetic D=2048 set is generated (kept out of --out: about 1 GB)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_train_speed: needs a CUDA device")
    args.out.mkdir(parents=True, exist_ok=True)
    shared = Path(os.environ.get("HIMNET_FAST_SHARED_DATA", "../shared/data")) / "thumos14"
    root = args.cache
    if not root.exists():
        synthesize(root, like="thumos14", annotations=shared if shared.is_dir() else None, dim=2048, seed=0)
    dataset = load_dataset(root)
    # Each video's features are checked (shape, NaN/inf) once, on first use: a one-time cost of
    # about one pass over the set, paid in the first iterations of a 10,000-iteration run. Paid
    # here before timing, and reported, so that the it/s projects the steady state.
    t0 = time.perf_counter()
    for i in dataset.train_indices:
        dataset.features(int(i))
    check_s = time.perf_counter() - t0
    rows = {}
    for backend in ("reference", "triton"):
        cfg = preset("thumos14")
        cfg.device = "cuda"
        cfg.loss.loss_backend = backend
        cfg.schedule.progress = False
        rows[backend] = iterations_per_second(cfg, dataset, args.iters, args.warmup)
    table = [f"{torch.cuda.get_device_name()}: thumos14 preset (B=10, T=560, C+1=21, D=2048), {args.iters} iterations",
             f"{'loss backend':<14} {'it/s':>8} {'10,000 iterations (paper)':>26}"]
    table += [f"{name:<14} {ips:8.2f} {10_000 / ips / 60:22.2f} min" for name, ips in rows.items()]
    table.append(f"fused / reference: {rows['triton'] / rows['reference']:.2f}x; one-time feature check of "
                 f"{len(dataset.train_indices)} training videos before timing: {check_s:.2f} s")
    text = "\n".join(table)
    print(text)
    (args.out / "train_speed_table.txt").write_text(text + "\n")
    summary = {"device": torch.cuda.get_device_name(), "it_per_s": rows, "feature_check_s": check_s,
               "minutes_for_10000": {name: 10_000 / ips / 60 for name, ips in rows.items()}}
    (args.out / "train_speed.json").write_text(json.dumps(summary, indent=2))

if __name__ == "__main__":
    main()
