"""``python -m himnet_fast.experiments``: the paper's ablation tables as commands.

    python -m himnet_fast.experiments table3 [--seeds 3] [--seed0 0] [--iters N] [--jobs 2]
                                      [--out runs/experiments] [--rows NAME ...] [-- TRAIN OPTIONS]

Each row of an experiment is ``python -m himnet_fast.train`` with that row's loss switches, run
once per seed (``--seed0``, ``--seed0`` + 1, ...), each run its own process with one thread,
``--jobs`` at a time. Options after ``--`` go to every run (e.g. ``-- --synth-seed 5 --lambda1 1``).
A run whose folder already holds ``metrics.json`` is not run again, so an interrupted command
resumes where it stopped. Outputs in ``--out``:

- ``<experiment>/<row>/seed<S>/``: each run's outputs (metrics.json, log.txt, ...);
- ``results.json``: per experiment, the rows in table order, each with ``name``, ``flags``,
  ``seeds`` and the per-seed lists ``avg`` (mAP averaged over tIoU 0.1:0.7, %) and ``acc``
  (snippet accuracy, %);
- ``results.md``: per experiment, a Markdown table of mean ± std with the per-seed values and
  the paper's figures beside them, and the gradient balance: the norm of each weighted loss
  term's gradient on A and on S at the last evaluation (``Trainer.step(diagnose=True)``),
  mean over seeds (``grad_norms`` in results.json).

Experiments: ``table3`` (the loss ablation of Table 3: its eight rows, in the paper's order).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from tqdm import tqdm


@dataclass(frozen=True)
class Row:
    """One row of an ablation table: its name, the train options that make it, and the paper's
    figures (AVG mAP 0.1:0.7 and snippet ACC, %, mean over seeds) where the paper gives them."""

    name: str
    flags: tuple
    paper_avg: Optional[float] = None
    paper_acc: Optional[float] = None


# Table 3 of the paper, rows 1-8 in its order (THUMOS14, mean over seeds).
EXPERIMENTS: Dict[str, List[Row]] = {
    "table3": [
        Row("MIL", ("--no-cll", "--no-vcl", "--no-scl"), 39.3, 61.7),
        Row("MIL+CLL", ("--no-vcl", "--no-scl"), 43.7, 77.8),
        Row("MIL+CLL+VCL", ("--no-scl",), 44.4, 78.6),
        Row("Full", (), 45.1, 78.7),
        Row("MIL+CLL+SCL", ("--no-vcl",), 43.7, 77.7),
        Row("MIL+VCL+SCL", ("--no-cll",), 42.2, 71.5),
        Row("MIL+VCL", ("--no-cll", "--no-scl"), 41.7, 71.4),
        Row("MIL+SCL", ("--no-cll", "--no-vcl"), 42.6, 74.1),
    ],
}
AVG_KEY = "avg_0.1_0.7"


def slug(name: str) -> str:
    """A folder name for a row: letters, digits and '-' only."""
    out = "".join(c if c.isalnum() else "-" for c in name.lower())
    return "-".join(part for part in out.split("-") if part)


@dataclass(frozen=True)
class Run:
    experiment: str
    row: Row
    seed: int
    folder: Path

    def command(self, iters: Optional[int], extra: Sequence[str]) -> List[str]:
        cmd = [sys.executable, "-m", "himnet_fast.train", "--seed", str(self.seed), "--threads", "1",
               "--out", str(self.folder), "--no-progress", "--timelines", "0", *self.row.flags]
        if iters is not None:
            cmd += ["--iters", str(iters)]
        return cmd + list(extra)  # options after "--" come last, so they win

    @property
    def metrics_path(self) -> Path:
        return self.folder / "metrics.json"


def plan(experiment: str, rows: Sequence[Row], seeds: Sequence[int], out: Path) -> List[Run]:
    return [Run(experiment, row, seed, out / experiment / slug(row.name) / f"seed{seed}")
            for row in rows for seed in seeds]


def execute(run: Run, iters: Optional[int], extra: Sequence[str]) -> Optional[str]:
    """Run one training process; None on success, else the end of its log."""
    run.folder.mkdir(parents=True, exist_ok=True)
    log = run.folder / "log.txt"
    with open(log, "w") as fh:
        done = subprocess.run(run.command(iters, extra), stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if done.returncode == 0 and run.metrics_path.is_file():
        return None
    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
    return f"exit status {done.returncode}: " + " | ".join(tail)


def run_all(runs: List[Run], iters: Optional[int], extra: Sequence[str], jobs: int) -> Dict[Run, str]:
    """Runs the pending runs (``jobs`` at a time); returns the failures. The first pending run goes
    alone, so that a synthetic set it must generate is generated once, not by every process."""
    pending = [r for r in runs if not r.metrics_path.is_file()]
    failures: Dict[Run, str] = {}
    bar = tqdm(total=len(runs), initial=len(runs) - len(pending), desc="runs", unit="run", dynamic_ncols=True)
    try:
        if pending:
            first, pending = pending[0], pending[1:]
            error = execute(first, iters, extra)
            if error:
                failures[first] = error
            bar.update(1)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(execute, r, iters, extra): r for r in pending}
            for future in as_completed(futures):
                error = future.result()
                if error:
                    failures[futures[future]] = error
                bar.update(1)
    finally:
        bar.close()
    return failures


def collect(experiment: str, rows: Sequence[Row], runs: List[Run]) -> List[dict]:
    """The rows of ``results.json`` for one experiment, from the runs' metrics.json files."""
    table = []
    for row in rows:
        entry = {"name": row.name, "flags": list(row.flags), "seeds": [], "avg": [], "acc": [],
                 "paper_avg": row.paper_avg, "paper_acc": row.paper_acc}
        norms: Dict[str, Dict[str, List[float]]] = {}
        for run in runs:
            if run.row == row and run.metrics_path.is_file():
                metrics = json.loads(run.metrics_path.read_text())
                entry["seeds"].append(run.seed)
                entry["avg"].append(round(float(metrics[AVG_KEY]), 3))
                entry["acc"].append(round(float(metrics["snippet_accuracy"]), 3))
                last = (metrics.get("grad_norms") or [{}])[-1]
                for term, by_input in last.items():
                    if term != "iteration":
                        for key, value in by_input.items():
                            norms.setdefault(term, {}).setdefault(key, []).append(value)
        entry["grad_norms"] = {term: {key: statistics.mean(v) for key, v in by_input.items()}
                               for term, by_input in norms.items()}
        table.append(entry)
    return table


def _mean_std(values: Sequence[float]) -> str:
    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {std:.1f}"


def markdown(results: Dict[str, List[dict]], note: str) -> str:
    """results.md: one table per experiment (mean ± sample std over seeds, the per-seed values,
    the paper's figures)."""
    lines = ["# Ablation results", "", note, ""]
    for experiment, table in results.items():
        lines += [f"## {experiment}", "",
                  "| row | options | AVG 0.1:0.7 | ACC | AVG per seed | ACC per seed | paper AVG / ACC |",
                  "|---|---|---|---|---|---|---|"]
        for e in table:
            paper = "-" if e["paper_avg"] is None else f"{e['paper_avg']} / {e['paper_acc']}"
            lines.append(f"| {e['name']} | {' '.join(e['flags']) or '(all four losses)'} | {_mean_std(e['avg'])} | "
                         f"{_mean_std(e['acc'])} | {', '.join(f'{v:.1f}' for v in e['avg'])} | "
                         f"{', '.join(f'{v:.1f}' for v in e['acc'])} | {paper} |")
        lines.append("")
        terms = [t for t in ("mil", "cll", "vcl", "scl", "norm", "guide")
                 if any(t in e.get("grad_norms", {}) for e in table)]
        if terms:
            lines += ["Gradient norms of the weighted terms on A / on S at the last evaluation (mean over seeds):", "",
                      "| row | " + " | ".join(terms) + " |", "|---|" + "---|" * len(terms)]
            for e in table:
                g = e.get("grad_norms", {})
                cells = [f"{g[t]['A']:.2e} / {g[t]['S']:.2e}" if t in g else "-" for t in terms]
                lines.append(f"| {e['name']} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m himnet_fast.experiments",
                                     description="The paper's ablation tables, one training process per row and seed.")
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS) + ["all"])
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds per row (default 3)")
    parser.add_argument("--seed0", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--iters", type=int, default=None, help="training iterations (default: the preset's)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, one thread each (default 2)")
    parser.add_argument("--out", type=Path, default=Path("runs/experiments"), help="output folder")
    parser.add_argument("--rows", nargs="+", default=None, metavar="NAME",
                        help="only these rows (by name, as in the table)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: List[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    if args.seeds < 1 or args.jobs < 1 or (args.iters is not None and args.iters < 0):
        raise SystemExit("experiments: --seeds and --jobs must be >= 1 and --iters >= 0")
    names = sorted(EXPERIMENTS) if args.experiment == "all" else [args.experiment]
    seeds = list(range(args.seed0, args.seed0 + args.seeds))
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    failed = {}
    for name in names:
        rows = EXPERIMENTS[name]
        if args.rows:
            unknown = sorted(set(args.rows) - {r.name for r in rows})
            if unknown:
                raise SystemExit(f"experiments: unknown rows {unknown} for {name}; rows: {[r.name for r in rows]}")
            rows = [r for r in rows if r.name in args.rows]
        runs = plan(name, rows, seeds, args.out)
        failed.update(run_all(runs, args.iters, extra, args.jobs))
        results[name] = collect(name, rows, runs)
    args.out.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2))
    note = (f"`python -m himnet_fast.experiments {' '.join(argv)}"
            f"{' -- ' + ' '.join(extra) if extra else ''}`; mean ± sample std over seeds.")
    (args.out / "results.md").write_text(markdown(results, note) + "\n")
    print(markdown({n: results[n] for n in names}, note))
    for run, error in failed.items():
        print(f"FAILED {run.experiment} / {run.row.name} / seed {run.seed}: {error} (log: {run.folder / 'log.txt'})",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
