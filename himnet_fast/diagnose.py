"""``python -m himnet_fast.diagnose``: the gradient balance of trained checkpoints.

    python -m himnet_fast.diagnose CKPT [CKPT ...] [--batches N] [--device cpu|cuda]

For each checkpoint: the L2 norm of each weighted loss term's gradient on the network's outputs
A (B, T), S (B, T, C+1) and X_hat (B, T, hidden) (``Trainer.term_gradient_norms``: which term
drives which output), mean over N training batches. These are the figures the trainer logs at
each evaluation (``grad_norms`` of metrics.json), on N batches instead of one. The batches are
the next N of the checkpoint's own stream, with dropout on as in training; no step is taken and
the checkpoint is not written. Prints one Markdown table, a row per checkpoint.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from himnet_fast.checkpoint import load_checkpoint
from himnet_fast.config import RunConfig, run_cli, torch_threads
from himnet_fast.losses import LOSS_KEYS, NETWORK_OUTPUTS
from himnet_fast.run_data import open_dataset
from himnet_fast.trainer import Trainer

Norms = Dict[str, Dict[str, float]]  # {term: {output: norm}}


def checkpoint_gradient_norms(path: Path, batches: int = 20, device: str = "cpu") -> Tuple[int, Norms]:
    """(the checkpoint's iteration, {term: {output: mean norm over ``batches`` batches}})."""
    if batches < 1:
        raise ValueError(f"--batches: must be >= 1, got {batches}")
    if not Path(path).is_file():
        raise ValueError(f"checkpoint: {path} is not a file")
    state = load_checkpoint(path)
    cfg = RunConfig.from_dict(state["config"])
    cfg.device, cfg.schedule.progress = device, False
    sums: Dict[str, Dict[str, List[float]]] = {}
    with torch_threads(cfg.threads):  # the run's thread count: sums split over threads round differently
        trainer = Trainer(cfg, open_dataset(cfg, log=lambda _: None))
        trainer.load_state_dict(state)
        trainer.model.train()
        for _ in range(batches):
            terms, outputs = trainer.next_batch_losses()
            for term, by_output in trainer.term_gradient_norms(terms, *outputs).items():
                for output, norm in by_output.items():
                    sums.setdefault(term, {}).setdefault(output, []).append(norm)
    return trainer.iteration, {term: {o: statistics.mean(v) for o, v in by_output.items()}
                               for term, by_output in sums.items()}


def gradient_table(rows: Iterable[Tuple[str, Norms]], where: str = "") -> List[str]:
    """Markdown lines: a title (``where`` appended), then one row per (name, norms), a column per
    loss term present in any row, each cell "A / S / X_hat" (the outputs every row has: runs
    logged before X_hat show A / S); [] when no row has a term."""
    rows = list(rows)
    terms = [t for t in LOSS_KEYS if t != "total" and any(t in norms for _, norms in rows)]
    if not terms:
        return []
    outputs = [o for o in NETWORK_OUTPUTS if all(o in by_output for _, norms in rows for by_output in norms.values())]
    lines = [f"Gradient norms of the weighted terms on {' / on '.join(outputs)}{where}:", "",
             "| row | " + " | ".join(terms) + " |", "|---|" + "---|" * len(terms)]
    for name, norms in rows:
        cells = [" / ".join(f"{norms[t][o]:.2e}" for o in outputs) if t in norms else "-" for t in terms]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m himnet_fast.diagnose",
                                     description="Per-term gradient norms on A, S and X_hat of trained checkpoints.")
    parser.add_argument("checkpoints", nargs="+", type=Path, metavar="CKPT")
    parser.add_argument("--batches", type=int, default=20, help="training batches to average over (default: 20)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    args = parser.parse_args(argv)
    rows = []
    for path in args.checkpoints:
        iteration, norms = checkpoint_gradient_norms(path, args.batches, args.device)
        rows.append((f"{path} (iteration {iteration})", norms))
    print("\n".join(gradient_table(rows)))


if __name__ == "__main__":
    raise SystemExit(run_cli(main, "python -m himnet_fast.diagnose"))
