"""``python -m himnet_fast.train``: the paper's recipe end to end — train, detect, evaluate, report.

    python -m himnet_fast.train [--preset synthetic|thumos14|anet13] [--data-root DIR]
                                [--out DIR] [--iters N] [--seed S] [--device cpu|cuda]
                                [--resume CKPT] [any config field: --lr, --no-cll, --scl-variant ...]

With no arguments it runs the ``synthetic`` preset: a THUMOS14-like synthetic set generated
once into a cache, a CPU-sized model, a few minutes on two cores. Outputs in ``--out``
(default ``runs/<preset>``): checkpoint.pt, detections.json (ActivityNet results format),
metrics.json, curves.png, timeline_<video>.png. The console ends with a row in the format of
the paper's Table 1.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from himnet_fast.checkpoint import load_checkpoint, save_checkpoint
from himnet_fast.config import PRESETS, RunConfig, add_config_arguments, apply_overrides, preset, run_cli
from himnet_fast.inference import evaluate_model, results_json
from himnet_fast.plots import plot_curves, plot_timeline
from himnet_fast.run_data import open_dataset
from himnet_fast.trainer import Trainer, resolve_device, torch_threads


def build_parser(shown: RunConfig) -> argparse.ArgumentParser:
    """The command line; ``shown`` supplies the defaults printed by ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m himnet_fast.train",
        description="Train HiM-Net, detect on the test split, evaluate mAP, write plots and a Table-1 row.")
    parser.add_argument("--preset", choices=PRESETS, default="synthetic",
                        help="recipe to start from (default: synthetic, generated data, CPU-sized)")
    parser.add_argument("--resume", metavar="CKPT",
                        help="continue from a checkpoint (its config, overridden by options given here)")
    add_config_arguments(parser, shown)
    return parser


def parse_config(argv: Optional[Sequence[str]] = None) -> tuple[RunConfig, Optional[dict]]:
    """(config, resume state or None) from the command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", choices=PRESETS, default="synthetic")
    pre.add_argument("--resume")
    known, _ = pre.parse_known_args(argv)
    state = load_checkpoint(known.resume) if known.resume else None
    base = RunConfig.from_dict(state["config"]) if state else preset(known.preset)
    args = build_parser(base).parse_args(argv)
    return apply_overrides(base, vars(args)).validate(), state


def table_row(method: str, metrics: dict) -> tuple[str, str]:
    """(header, row) in the format of the paper's Table 1 / Table 2: mAP per tIoU, then the
    averages (``avg_<lo>_<hi>`` keys of ``metrics``), in %."""
    tious = list(metrics["mAP"])
    averages = [k for k in metrics if k.startswith("avg_")]
    header = ["Method"] + [f"mAP@{float(t):g}" for t in tious] + [
        "AVG({}:{})".format(*k[4:].split("_")) for k in averages]
    row = [method] + [f"{metrics['mAP'][t]:.1f}" for t in tious] + [f"{metrics[k]:.1f}" for k in averages]
    return " | ".join(header), " | ".join(row)


class _Timer:
    """Accumulates wall time per phase."""

    def __init__(self):
        self.start = time.perf_counter()
        self.phases: dict[str, float] = {}

    def add(self, phase: str, seconds: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds

    def report(self) -> dict:
        return {**{k: round(v, 2) for k, v in self.phases.items()},
                "total": round(time.perf_counter() - self.start, 2)}


def run(cfg: RunConfig, resume: Optional[dict] = None, log: Callable[[str], None] = print) -> dict:
    """Train (or continue) per ``cfg``, then detect, evaluate and write every output.
    Returns the metrics written to ``metrics.json``."""
    timer = _Timer()
    out = Path(cfg.out_dir)
    resolve_device(cfg.device)  # a missing GPU is reported before any data is generated
    t = time.perf_counter()
    dataset = open_dataset(cfg, log)  # every data problem surfaces here, before training
    timer.add("data", time.perf_counter() - t)
    trainer = Trainer(cfg, dataset)
    if resume is not None:
        trainer.load_state_dict(resume)
        log(f"resumed at iteration {trainer.iteration} from --resume")
    ckpt_path = out / "checkpoint.pt"
    last = {}

    def evaluate(tr: Trainer) -> dict:
        t0 = time.perf_counter()
        metrics, outputs, detections = evaluate_model(tr.model, dataset, cfg, tr.device)
        last.update(iteration=tr.iteration, metrics=metrics, outputs=outputs, detections=detections)
        timer.add("evaluation", time.perf_counter() - t0)
        return metrics

    def checkpoint(tr: Trainer) -> None:
        t0 = time.perf_counter()
        save_checkpoint(tr.state_dict(), ckpt_path)
        timer.add("checkpoint", time.perf_counter() - t0)

    log(f"{cfg.preset}: {len(dataset.train_indices)} train / {len(dataset.test_indices)} test videos, "
        f"{len(dataset.classlist)} classes, feature dim {dataset.feature_dim}, device {trainer.device}, "
        f"{cfg.optim.iters} iterations (T={cfg.data.clip_len}, k={trainer.k}) -> {out}")
    t = time.perf_counter()
    trainer.fit(cfg.optim.iters, evaluate=evaluate, checkpoint=checkpoint)
    timer.add("train", time.perf_counter() - t - timer.phases.get("evaluation", 0.0)
              - timer.phases.get("checkpoint", 0.0))
    if last.get("iteration") != trainer.iteration:  # nothing trained in this call (e.g. --iters 0)
        evaluate(trainer)
        checkpoint(trainer)

    t = time.perf_counter()
    metrics = last["metrics"]
    _write_json(out / "detections.json", results_json(dataset, last["outputs"], last["detections"]))
    plot_curves(trainer.history, trainer.evaluations, out / "curves.png", title=f"HiM-Net, {cfg.preset}")
    _draw_timelines(dataset, cfg, last["outputs"], last["detections"], out)
    timer.add("outputs", time.perf_counter() - t)
    report = {
        "preset": cfg.preset,
        "dataset": cfg.data.dataset,
        "iterations": trainer.iteration,
        **metrics,
        "num_test_videos": len(last["outputs"]),
        "num_detections": int(sum(len(d) for d in last["detections"])),
        "wall_time_s": timer.report(),
        "evaluations": trainer.evaluations,
        "grad_norms": trainer.grad_norms,
        "config": cfg.to_dict(),
    }
    _write_json(out / "metrics.json", report)
    data = f"{cfg.preset}, {Path(cfg.data.data_root).name}" if cfg.data.data_root else cfg.preset
    header, row = table_row(f"HiM-Net ({data}, {'Soft-NMS' if cfg.detect.nms == 'soft' else 'NMS'}, "
                            f"{trainer.iteration} it)", metrics)
    log(f"snippet ACC {metrics['snippet_accuracy']:.1f}% | absent-class video score "
        f"{metrics['absent_video_score']:.3f} | wall time {report['wall_time_s']['total']:.1f} s | outputs in {out}")
    log(header)
    log(row)
    return report


def _draw_timelines(dataset, cfg: RunConfig, outputs, detections, out: Path) -> None:
    """timeline_<video>.png for the first ``cfg.schedule.timelines`` test videos with ground truth."""
    gt = dataset.ground_truth("test")["database"]
    drawn = 0
    for output, dets in zip(outputs, detections):
        if drawn >= cfg.schedule.timelines:
            break
        annotations = gt.get(output.name, {}).get("annotations", [])
        if not annotations:
            continue
        plot_timeline(output, dets, annotations, list(dataset.classlist), out / f"timeline_{output.name}.png")
        drawn += 1


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Entry point; returns the metrics. Errors in the options or data are ``ValueError``s."""
    cfg, state = parse_config(argv)
    with torch_threads(cfg.threads):
        return run(cfg, state)


if __name__ == "__main__":
    sys.exit(run_cli(main, "python -m himnet_fast.train"))
