"""``python -m himnet_fast.detect``: detections of a trained checkpoint on the test split.

    python -m himnet_fast.detect --checkpoint CKPT [--data-root DIR] --out PRED.json
                                 [--device cpu|cuda] [--reference] [--nms soft|hard] [--evaluate]

Full-length inference per test video, S_hat = S * A, proposals + (Soft-)NMS, segments in
seconds, written in the ActivityNet results format. Without ``--data-root`` the checkpoint's
own data (its feature folder, or its synthetic set) is used. ``--reference`` selects the
reference post-processing instead of the fast backend; ``--evaluate`` also prints mAP.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from himnet_fast.checkpoint import load_checkpoint
from himnet_fast.config import RunConfig, resolve_device, run_cli, torch_threads
from himnet_fast.inference import detect, evaluate, infer_videos, results_json
from himnet_fast.model import trained_model
from himnet_fast.run_data import open_dataset


def build_parser() -> argparse.ArgumentParser:
    """The command line of the detector."""
    p = argparse.ArgumentParser(prog="python -m himnet_fast.detect",
                                description="Detect actions on the test split with a trained HiM-Net checkpoint.")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="checkpoint.pt written by himnet_fast.train")
    p.add_argument("--data-root", metavar="DIR", help="feature folder (default: the checkpoint's data)")
    p.add_argument("--out", required=True, metavar="PRED.json", help="where to write the detections")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default: cpu)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--reference", action="store_true", help="use the reference post-processing backend")
    p.add_argument("--nms", choices=("soft", "hard"), help="override the checkpoint's NMS kind")
    p.add_argument("--evaluate", action="store_true", help="also evaluate mAP against the test ground truth")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bar")
    return p


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Entry point; returns the results JSON (with ``"metrics"`` added when ``--evaluate``)."""
    args = build_parser().parse_args(argv)
    state = load_checkpoint(args.checkpoint)
    cfg = RunConfig.from_dict(state["config"])
    if args.data_root:
        cfg.data.data_root = args.data_root
    if args.nms:
        cfg.detect.nms = args.nms
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads: must be >= 1, got {args.threads}")
    device = resolve_device(args.device)
    with torch_threads(args.threads):
        return _detect(args, state, cfg, device)


def _detect(args, state: dict, cfg: RunConfig, device) -> dict:
    """Open the data, rebuild the model from ``state``, infer, detect, write (and evaluate)."""
    dataset = open_dataset(cfg, log=lambda msg: print(msg, file=sys.stderr))
    model = trained_model(state, cfg, dataset, device)
    indices = list(dataset.test_indices)
    outputs = infer_videos(model, dataset, indices, device, progress=args.progress)
    detections = detect(outputs, cfg.detect, backend="reference" if args.reference else None)
    results = results_json(dataset, outputs, detections)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results))
    n = sum(len(d) for d in detections)
    print(f"{n} detections on {len(outputs)} test videos -> {out}", file=sys.stderr)
    if args.evaluate:
        metrics = evaluate(dataset, cfg.data.dataset, indices, outputs, detections, cfg.detect)
        print(json.dumps(metrics, indent=1))
        results = {**results, "metrics": metrics}
    return results


if __name__ == "__main__":
    sys.exit(run_cli(main, "python -m himnet_fast.detect"))
