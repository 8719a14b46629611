"""``python -m himnet_fast.train``: the paper's recipe end to end — train, detect, evaluate, report.

    python -m himnet_fast.train [--preset synthetic|thumos14|anet13] [--data-root DIR]
                                [--out DIR] [--iters N] [--seed S] [--device cpu|cuda]
                                [--resume CKPT | --overwrite]
                                [any config field: --lr, --no-cll, --scl-variant ...]
    torchrun --nproc_per_node=N -m himnet_fast.train ...   (himnet_fast.distributed)

With no arguments it runs the ``synthetic`` preset: a THUMOS14-like synthetic set generated
once into a cache, a CPU-sized model, a few minutes on two cores. Outputs in ``--out``
(default ``runs/<preset>``): checkpoint.pt, detections.json (ActivityNet results format),
metrics.json, curves.png, timeline_<video>.png, train_log.jsonl (one line per iteration: loss
terms, lr, seconds). The console ends with a row in the format of the paper's Table 1.

The output folder is claimed before any work (``himnet_fast.outdir``): it must be writable,
one run writes it at a time, and a folder holding another run is refused unless ``--resume``
or ``--overwrite``. Checkpoints keep the previous one and are verified by their SHA-256 on
``--resume`` (``himnet_fast.checkpoint``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from himnet_fast.checkpoint import load_checkpoint, save_checkpoint
from himnet_fast.config import (PRESETS, RunConfig, add_config_arguments, apply_overrides, preset, resolve_device,
                                run_cli, torch_threads)
from himnet_fast.distributed import World, broadcast_object, exit_worker, init_world, rank_device, shutdown
from himnet_fast.inference import evaluate_model, results_json
from himnet_fast.outdir import claim
from himnet_fast.plots import plot_curves, plot_timeline
from himnet_fast.run_data import open_dataset
from himnet_fast.trainer import Trainer


def build_parser(shown: RunConfig) -> argparse.ArgumentParser:
    """The command line; ``shown`` supplies the defaults printed by ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m himnet_fast.train",
        description="Train HiM-Net, detect on the test split, evaluate mAP, write plots and a Table-1 row.")
    parser.add_argument("--preset", choices=PRESETS, default="synthetic",
                        help="recipe to start from (default: synthetic, generated data, CPU-sized)")
    runs = parser.add_mutually_exclusive_group()
    runs.add_argument("--resume", metavar="CKPT",
                      help="continue from a checkpoint (its config, overridden by options given here)")
    runs.add_argument("--overwrite", action="store_true",
                      help="replace the run already in --out (its outputs are deleted first)")
    add_config_arguments(parser, shown)
    return parser


@dataclass
class Invocation:
    """What the command line asks for: the config, the resume state (or None), --overwrite."""

    cfg: RunConfig
    state: Optional[dict] = None
    overwrite: bool = False


def parse_config(argv: Optional[Sequence[str]] = None) -> Invocation:
    """The :class:`Invocation` of a command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", choices=PRESETS, default="synthetic")
    pre.add_argument("--resume")
    known, _ = pre.parse_known_args(argv)
    state = load_checkpoint(known.resume) if known.resume else None
    base = RunConfig.from_dict(state["config"]) if state else preset(known.preset)
    args = build_parser(base).parse_args(argv)
    cfg = apply_overrides(base, vars(args)).validate()
    if state is not None and state["config"].get("threads") != cfg.threads:
        warnings.warn(f"--resume: the checkpoint ran with --threads {state['config'].get('threads')}, this run "
                      f"uses {cfg.threads}: the result will differ slightly from an uninterrupted run",
                      RuntimeWarning, stacklevel=2)
    if state is not None and cfg.optim.iters < int(state["iteration"]):
        raise ValueError(f"--iters: {cfg.optim.iters} is below the checkpoint's iteration {state['iteration']}; "
                         f"give --iters {state['iteration']} or more to continue it")
    return Invocation(cfg, state, args.overwrite)


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


CHECKPOINTS = ("checkpoint.pt", "checkpoint.prev.pt")  # the newest and the one before it


class StepLog:
    """``train_log.jsonl``: one JSON object per iteration (``iteration``, the loss terms, ``lr``,
    ``time_s`` of the step). Lines past ``start`` (left by a run killed after its last
    checkpoint) are dropped first, so a resumed run's log has each iteration once."""

    def __init__(self, path: Path, start: int):
        kept = []
        if path.exists():
            kept = [line for line in path.read_text().splitlines()
                    if line.strip() and _iteration_of(line) <= start]
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        tmp.replace(path)
        self.file = path.open("a")

    def __call__(self, trainer: Trainer, terms: dict, seconds: float) -> None:
        lr = trainer.optimizer.param_groups[0]["lr"]
        self.file.write(json.dumps({"iteration": trainer.iteration, **terms, "lr": lr,
                                    "time_s": round(seconds, 6)}) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _iteration_of(line: str) -> float:
    try:
        return json.loads(line)["iteration"]
    except (ValueError, KeyError, TypeError):  # a line cut by a kill: drop it
        return float("inf")


def _claim_and_load(cfg: RunConfig, resume: Optional[dict], overwrite: bool, world: World,
                    log: Callable[[str], None]):
    """Rank 0 claims ``--out`` and loads (or generates) the data before the other ranks, which
    then learn the outcome: an error to raise, or the checkpoint to resume after a torchrun
    restart. Returns (claim or None, dataset, resume state or None)."""
    out = Path(cfg.out_dir)
    owner, verdict = None, None
    if world.is_main:
        try:
            owner = claim(out, resume=resume is not None, overwrite=overwrite)
            restart_from = None
            if owner.restarted and resume is None and any((out / n).is_file() for n in CHECKPOINTS):
                restart_from = str(out / CHECKPOINTS[0])  # load_checkpoint falls back to the previous one
            dataset = open_dataset(cfg, log)  # every data problem surfaces here, before training
            verdict = ("ok", restart_from)
        except ValueError as exc:
            if owner is not None:
                owner.release()
            broadcast_object(("error", str(exc)), world)
            raise
    verdict = broadcast_object(verdict, world)
    if verdict[0] == "error":
        raise ValueError(verdict[1])
    if not world.is_main:
        dataset = open_dataset(cfg, lambda msg: None)
    if verdict[1] is not None:
        log(f"torchrun restart: resuming from {verdict[1]}")
        resume = load_checkpoint(verdict[1])
    return owner, dataset, resume


def run(cfg: RunConfig, resume: Optional[dict] = None, log: Callable[[str], None] = print,
        world: World = World(), overwrite: bool = False) -> dict:
    """Train (or continue) per ``cfg``, then detect, evaluate and write every output.
    Returns the metrics written to ``metrics.json`` (an empty dict on ranks other than 0)."""
    timer = _Timer()
    out = Path(cfg.out_dir)
    resolve_device(rank_device(cfg.device, world))  # a missing GPU is reported before any work
    if not world.is_main:
        log = lambda msg: None  # noqa: E731  (rank 0 speaks for the job)
    t = time.perf_counter()
    owner, dataset, resume = _claim_and_load(cfg, resume, overwrite, world, log)
    timer.add("data", time.perf_counter() - t)
    step_log = None
    try:
        trainer = Trainer(cfg, dataset, world)
        if resume is not None:
            trainer.load_state_dict(resume)
            log(f"resumed at iteration {trainer.iteration}")
        start = trainer.iteration
        if world.is_main:
            step_log = StepLog(out / "train_log.jsonl", start)
        return _train_and_report(cfg, dataset, trainer, start, step_log, timer, log)
    finally:
        if step_log is not None:
            step_log.close()
        if owner is not None:
            owner.release()


def _train_and_report(cfg: RunConfig, dataset, trainer: Trainer, start: int, step_log, timer: "_Timer",
                      log: Callable[[str], None]) -> dict:
    out = Path(cfg.out_dir)
    world = trainer.world
    ckpt_path = out / CHECKPOINTS[0]
    last = {}

    def evaluate(tr: Trainer) -> dict:
        t0 = time.perf_counter()
        metrics, outputs, detections = evaluate_model(tr.model, dataset, cfg, tr.device)
        last.update(iteration=tr.iteration, metrics=metrics, outputs=outputs, detections=detections)
        timer.add("evaluation", time.perf_counter() - t0)
        return metrics

    def checkpoint(tr: Trainer) -> None:
        t0 = time.perf_counter()
        state = tr.state_dict()  # a collective under torchrun: every rank calls it
        if world.is_main:
            save_checkpoint(state, ckpt_path)
        timer.add("checkpoint", time.perf_counter() - t0)

    log(f"{cfg.preset}: {len(dataset.train_indices)} train / {len(dataset.test_indices)} test videos, "
        f"{len(dataset.classlist)} classes, feature dim {dataset.feature_dim}, device {trainer.device}, "
        f"{cfg.optim.iters} iterations (T={cfg.data.clip_len}, k={trainer.k}"
        + (f", {world.size} processes x batch {cfg.data.batch_size}" if world.active else "") + f") -> {out}")
    t = time.perf_counter()
    trainer.fit(cfg.optim.iters, evaluate=evaluate if world.is_main else None, checkpoint=checkpoint,
                on_step=step_log)
    timer.add("train", time.perf_counter() - t - timer.phases.get("evaluation", 0.0)
              - timer.phases.get("checkpoint", 0.0))
    if trainer.iteration == start:  # nothing trained in this call (e.g. --iters 0)
        if world.is_main:
            evaluate(trainer)
        checkpoint(trainer)
    if not world.is_main:
        return {}

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
        "world_size": world.size,
        "batch_per_rank": cfg.data.batch_size,
        "threads": torch.get_num_threads(),
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
    """Entry point; returns the metrics. Errors in the options or data are ``ValueError``s.
    Under ``torchrun`` each worker joins the process group first (``himnet_fast.distributed``)."""
    call = parse_config(argv)
    world = init_world(call.cfg.device)
    try:
        with torch_threads(call.cfg.threads):
            return run(call.cfg, call.state, world=world, overwrite=call.overwrite)
    finally:
        shutdown(world)


if __name__ == "__main__":
    code = run_cli(main, "python -m himnet_fast.train")
    exit_worker(code)  # under torchrun: no interpreter finalization (see its docstring)
    sys.exit(code)
