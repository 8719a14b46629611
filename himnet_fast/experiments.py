"""``python -m himnet_fast.experiments``: the paper's ablations (Tables 3-4, Figs. 6-7) as commands.

    python -m himnet_fast.experiments {table3,table4,alpha,kde,all} [--seeds 3] [--seed0 0] [--iters N]
                                      [--jobs 2] [--out runs/experiments] [--rows NAME ...] [-- TRAIN OPTIONS]

Experiments (``EXPERIMENTS``, rows in the paper's order):

- ``table3``: the loss ablation of Table 3, its eight rows, with the paper's figures.
- ``table4``: the SCL ablation of Table 4: SCL with the self-centred U(p||q) (the full method),
  with the target-centred U(q||p) (``--scl-variant target``), without U (``--scl-variant none``),
  and SCL replaced by L_guide or by L_ml (``--no-scl --guide-weight 0.8`` / ``--ml-weight 0.8``:
  0.8 is CO2-Net's weight of L_guide, used for both so that the two alternatives compare like
  for like). The table's figures are lost in our copy of the paper: none are shown.
- ``alpha``: Fig. 6, alpha in 0.5, 1, 2, 4, 6, 8, 10 (``--alpha X``) -> ``alpha.png``.
- ``kde``: Fig. 7, the full method with and without SCL (``--no-scl``); after training, the
  self-centred U(a || 1 - b_bg) on the test split's background snippets
  (``experiment_figures.background_uncertainty``) -> its density in ``kde.png`` and, per seed, the
  mean U and the fraction of snippets with U > 0.5.
- ``all``: the four above.

Each row is ``python -m himnet_fast.train`` with that row's options, once per seed (``--seed0``,
``--seed0`` + 1, ...), each run its own process with one thread, ``--jobs`` at a time. Options
after ``--`` go to every run (e.g. ``-- --synth-seed 5 --lambda1 1``). A run is identified by its
options: the row's flags (in a canonical order), ``--iters`` and the options after ``--``. Rows
with the same options share one run wherever they appear (Full is table3's row 4, table4's first
row, alpha = 4, the default, and kde's "with SCL"), so ``all`` trains each distinct run once.
A run whose folder already holds ``metrics.json`` is not run again (nor is a cached U computed
again), so an interrupted command resumes where it stopped; but if its recorded config differs
from what its options give today (a default changed since), the command stops and names the
setting instead of mixing that run into a table (``check_finished_runs``). ``--rows`` keeps only the named
rows (of every experiment that has them, with ``all``). Outputs in ``--out``:

- ``runs/<flags>-<hash>/``: one folder per distinct options (``<flags>`` the row's flags as a
  slug, ``default`` for none; ``<hash>`` of all the options), with ``flags.json`` (the row's
  flags, ``--iters``, the options after ``--``) and ``seed<S>/``, each run's outputs
  (metrics.json, checkpoint.pt, log.txt, ...; ``u_background.npy`` for the kde rows);
- ``results.json``: per experiment, the rows of the last command that ran it, in table order (a
  command replaces the entries of its experiments, with only the rows it names, and keeps the
  others; finished runs are not rerun, so naming rows again is cheap), each with ``name``, ``flags``,
  ``seeds``, ``folders`` (the runs, relative to ``--out``) and the per-seed lists ``avg`` (mAP
  averaged over tIoU 0.1:0.7, %) and ``acc`` (``snippet_accuracy`` of metrics.json: the argmax of
  S over C+1 against the ground-truth class, %; the only snippet metric runs record, so Table 4
  shows it in place of the paper's foreground/background accuracy), ``paper_avg`` / ``paper_acc``,
  ``grad_norms``, ``curve`` (per evaluation during training: ``iteration`` and the per-seed ``avg``);
  alpha rows add ``alpha``, kde rows the per-seed lists ``u_mean`` and ``u_above_half``;
- ``results.md``: per experiment, a Markdown table of mean ± std with the per-seed values and
  the paper's figures beside them, and the gradient balance: the norm of each weighted loss
  term's gradient on A, on S and on X_hat at the last evaluation (``Trainer.step(diagnose=True)``),
  mean over seeds (``grad_norms`` in results.json); table3 adds issue 12's target verdict
  (``target``) and each term's effect paired by seed, mean ± standard error (``paired_effects``;
  ``target_rate`` counts the n-seed checks of pooled tables that meet the target);
  the kde section adds the U summary; runs evaluated more than once (``-- --eval-every N``) add
  the AVG at each evaluation, per row;
- ``alpha.png``, ``kde.png``: Fig. 6 and Fig. 7 (``experiment_figures``).
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import json
import math
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Hashable, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from himnet_fast.config import RunConfig
from himnet_fast.diagnose import gradient_table
from himnet_fast.experiment_figures import (U_CACHE, cached_background_uncertainty, plot_alpha, plot_kde,
                                            uncertainty_summary)
from himnet_fast.inference import ATTENTION_KEYS
from himnet_fast.losses import LossConfig


@dataclass(frozen=True)
class Row:
    """One row of an ablation table: its name, the train options that make it, the paper's
    figures (AVG mAP 0.1:0.7 and snippet ACC, %, mean over seeds) where the paper gives them, and
    for a row of the alpha sweep its alpha."""

    name: str
    flags: tuple
    paper_avg: Optional[float] = None
    paper_acc: Optional[float] = None
    alpha: Optional[float] = None


ALPHAS = (0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0)  # Fig. 6
DEFAULT_ALPHA = LossConfig().alpha  # 4, the paper's: its row has no flag, so it shares Full's run
KDE_COLORS = {"with SCL": "tab:orange", "without SCL": "tab:green"}  # as the paper's Fig. 7


def alpha_row(alpha: float) -> Row:
    """The Fig. 6 row of ``alpha`` (``--alpha X``; no flag for the default)."""
    return Row(f"alpha={alpha:g}", () if alpha == DEFAULT_ALPHA else ("--alpha", f"{alpha:g}"), alpha=alpha)


# The rows of each experiment in the paper's order (THUMOS14, mean over seeds, where given).
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
    # Table 4's figures are lost in our copy of the paper. L_guide and L_ml replace SCL, both at
    # 0.8, CO2-Net's weight of L_guide, so that the two alternatives compare like for like.
    "table4": [
        Row("SCL, U(p||q) (self)", ()),
        Row("SCL, U(q||p) (target)", ("--scl-variant", "target")),
        Row("SCL, no U", ("--scl-variant", "none")),
        Row("L_guide", ("--no-scl", "--guide-weight", "0.8")),
        Row("L_ml", ("--no-scl", "--ml-weight", "0.8")),
    ],
    "alpha": [alpha_row(a) for a in ALPHAS],
    "kde": [Row("with SCL", ()), Row("without SCL", ("--no-scl",))],
}
AVG_KEY = "avg_0.1_0.7"


def slug(name: str) -> str:
    """A folder name for a row: letters, digits and '-' only."""
    out = "".join(c if c.isalnum() else "-" for c in name.lower())
    return "-".join(part for part in out.split("-") if part)


def canonical(flags: Sequence[str]) -> tuple:
    """``flags`` with each option kept with its values and the options sorted, so that the same
    options in any order give the same tuple (a row never repeats an option)."""
    groups: List[List[str]] = []
    for token in flags:
        if token.startswith("--") or not groups:
            groups.append([token])
        else:
            groups[-1].append(token)
    return tuple(token for group in sorted(groups) for token in group)


@dataclass(frozen=True)
class Run:
    """One training process: ``options`` (the row's canonical ``flags``, then ``--iters``, then the
    options after ``--``) for one seed, its outputs in ``folder``."""

    flags: tuple
    options: tuple
    seed: int
    folder: Path

    def command(self) -> List[str]:
        """The train command; a run stopped before its metrics.json continues from its last
        checkpoint (bit-exact), or starts over where it left outputs but no checkpoint."""
        checkpoint = self.folder / "checkpoint.pt"
        again = ["--resume", str(checkpoint)] if checkpoint.is_file() else ["--overwrite"]
        return [sys.executable, "-m", "himnet_fast.train", *again, "--seed", str(self.seed), "--threads", "1",
                "--out", str(self.folder), "--no-progress", "--timelines", "0", *self.options]

    @property
    def metrics_path(self) -> Path:
        return self.folder / "metrics.json"


Plan = List[Tuple[Row, List[Run]]]  # an experiment's rows, each with its runs (one per seed)


def plan(rows: Sequence[Row], seeds: Sequence[int], out: Path, iters: Optional[int], extra: Sequence[str]) -> Plan:
    """The runs of ``rows``: ``out/runs/<flags>-<hash of all options>/seed<S>``, so rows with the
    same options (in any experiment) get the same folders. Options after ``--`` come last: they win."""
    planned = []
    for row in rows:
        flags = canonical(row.flags)
        options = flags + (("--iters", str(iters)) if iters is not None else ()) + tuple(extra)
        digest = hashlib.sha1(json.dumps(options).encode()).hexdigest()[:8]
        folder = out / "runs" / f"{slug(' '.join(flags)) or 'default'}-{digest}"
        planned.append((row, [Run(flags, options, seed, folder / f"seed{seed}") for seed in seeds]))
    return planned


def execute(run: Run) -> Optional[str]:
    """Run one training process; None on success, else the end of its log."""
    run.folder.mkdir(parents=True, exist_ok=True)
    log = run.folder / "log.txt"
    with open(log, "w") as fh:
        done = subprocess.run(run.command(), stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if done.returncode == 0 and run.metrics_path.is_file():
        return None
    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
    return f"exit status {done.returncode}: " + " | ".join(tail)


@functools.lru_cache(maxsize=None)
def resolved_config(options: tuple) -> Optional[RunConfig]:
    """The config a run's options give today (the seeds of a row share it, so each distinct
    options is parsed once; callers only read it), or None where they do not parse."""
    from himnet_fast.train import parse_config

    try:
        return parse_config(list(options)).cfg
    except (SystemExit, ValueError):
        return None


def synthetic_sets(runs: Sequence[Run]) -> None:
    """Generate, here and once, each synthetic set that ``runs`` read and the cache lacks, so
    that no two training processes generate the same set. Options that do not parse are skipped:
    their runs' own processes report the error."""
    from himnet_fast.run_data import ensure_synthetic

    def log(message: str) -> None:
        tqdm.write(f"experiments: {message}", file=sys.stderr)

    for options in dict.fromkeys(run.options for run in runs):
        cfg = resolved_config(options)
        if cfg is None:
            continue
        if cfg.data.data_root is None:
            ensure_synthetic(cfg.data, log=log)  # returns at once when the set is cached


# The config sections that decide a run's result (schedule and the top level hold the output
# folder, seed, threads, progress bars and evaluation cadence, which the runner sets itself).
RESULT_SECTIONS = ("data", "model", "optim", "loss", "detect")


def changed_settings(run: Run) -> List[str]:
    """The settings in which a finished run's recorded config (its metrics.json, read as a resumed
    checkpoint would be: fields added since take their old behaviour) differs from what its
    options give today, as "section.field: then -> now"; empty when it would train the same."""
    recorded = json.loads(run.metrics_path.read_text()).get("config")
    if recorded is None:  # written before metrics.json recorded its config: nothing to compare
        return []
    current = resolved_config(run.options)
    if current is None:
        return ["its options no longer parse"]
    then = RunConfig.from_dict(recorded).to_dict()
    now = current.to_dict()
    return [f"{section}.{key}: {then[section][key]!r} -> {value!r}"
            for section in RESULT_SECTIONS for key, value in now[section].items() if then[section][key] != value]


def check_finished_runs(runs: Sequence[Run]) -> None:
    """Refuse to reuse finished runs that their options would now train differently (a default
    changed since, e.g. ``--cll-norm`` in docs/RESULTS.md section 16): mixing them into a table
    would report one configuration under the name of another."""
    stale = [(run, diff) for run in runs if run.metrics_path.is_file() for diff in [changed_settings(run)] if diff]
    if stale:
        run, diff = stale[0]
        raise SystemExit(f"experiments: {len(stale)} finished run(s) were trained with other settings than their "
                         f"options give today, e.g. {run.folder}: {'; '.join(diff)}. A default has changed since: "
                         f"pass the old value after -- (e.g. -- --cll-norm paper) or choose another --out.")


def run_all(runs: Sequence[Run], jobs: int) -> Dict[Run, str]:
    """Runs the distinct pending runs (``jobs`` at a time); returns the failures. Writes each run
    folder's ``flags.json`` first, refuses finished runs trained with other settings than their
    options now give (:func:`check_finished_runs`), and generates the synthetic sets the pending
    runs need before starting any (:func:`synthetic_sets`)."""
    runs = list(dict.fromkeys(runs))
    check_finished_runs(runs)
    for run in runs:
        flags_json = run.folder.parent / "flags.json"
        if not flags_json.is_file():
            flags_json.parent.mkdir(parents=True, exist_ok=True)
            flags_json.write_text(json.dumps({"flags": list(run.flags), "options": list(run.options)}, indent=1))
    pending = [r for r in runs if not r.metrics_path.is_file()]
    failures: Dict[Run, str] = {}
    synthetic_sets(pending)
    bar = tqdm(total=len(runs), initial=len(runs) - len(pending), desc="runs", unit="run", dynamic_ncols=True)
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(execute, r): r for r in pending}
            for future in as_completed(futures):
                error = future.result()
                if error:
                    failures[futures[future]] = error
                bar.update(1)
    finally:
        bar.close()
    return failures


def finished(runs: Sequence[Run]) -> List[Run]:
    return [run for run in runs if run.metrics_path.is_file()]


def collect(planned: Plan, out: Path) -> List[dict]:
    """The rows of ``results.json`` for one experiment, from the runs' metrics.json files."""
    table = []
    for row, runs in planned:
        entry = {"name": row.name, "flags": list(row.flags), "seeds": [], "folders": [], "avg": [], "acc": [],
                 "paper_avg": row.paper_avg, "paper_acc": row.paper_acc}
        if row.alpha is not None:
            entry["alpha"] = row.alpha
        norms: Dict[str, Dict[str, List[float]]] = {}
        curve: Dict[int, List[float]] = {}
        for run in finished(runs):
            metrics = json.loads(run.metrics_path.read_text())
            entry["seeds"].append(run.seed)
            entry["folders"].append(run.folder.relative_to(out).as_posix())
            entry["avg"].append(round(float(metrics[AVG_KEY]), 3))
            entry["acc"].append(round(float(metrics["snippet_accuracy"]), 3))
            for key in ATTENTION_KEYS:  # absent in older runs; None without action or background snippets
                if metrics.get(key) is not None:
                    entry.setdefault(key, []).append(round(float(metrics[key]), 4))
            for evaluation in metrics.get("evaluations", []):  # older runs may lack the key
                if AVG_KEY in evaluation:
                    curve.setdefault(int(evaluation["iteration"]), []).append(
                        round(float(evaluation[AVG_KEY]), 3))
            last = (metrics.get("grad_norms") or [{}])[-1]
            for term, by_input in last.items():
                if term != "iteration":
                    for key, value in by_input.items():
                        norms.setdefault(term, {}).setdefault(key, []).append(value)
        entry["grad_norms"] = {term: {key: statistics.mean(v) for key, v in by_input.items()}
                               for term, by_input in norms.items()}
        entry["curve"] = [{"iteration": it, "avg": values} for it, values in sorted(curve.items())]
        table.append(entry)
    return table


def add_uncertainty(table: List[dict], planned: Plan) -> Tuple[Dict[str, np.ndarray], Dict[Run, str]]:
    """Fig. 7's numbers for the kde rows: per seed ``u_mean`` and ``u_above_half`` added to each
    entry of ``table`` (NaN where U could not be computed), from U on the test background snippets
    (computed once per run, cached as ``u_background.npy``). -> (row name -> U of all its seeds,
    failures)."""
    curves: Dict[str, np.ndarray] = {}
    failures: Dict[Run, str] = {}
    done = [(entry, row, finished(runs)) for entry, (row, runs) in zip(table, planned)]
    bar = tqdm(total=sum(len(runs) for *_, runs in done), desc="uncertainty", unit="run", dynamic_ncols=True)
    try:
        for entry, row, runs in done:
            entry["u_mean"], entry["u_above_half"] = [], []
            values = []
            for run in runs:
                try:
                    values.append(cached_background_uncertainty(run.folder))
                except Exception as exc:  # a broken run must not lose the others' results
                    failures[run] = f"{U_CACHE}: {type(exc).__name__}: {exc}"
                    values.append(np.zeros(0))
                summary = uncertainty_summary(values[-1])
                entry["u_mean"].append(round(summary["u_mean"], 4))
                entry["u_above_half"].append(round(summary["u_above_half"], 4))
                bar.update(1)
            curves[row.name] = np.concatenate(values) if values else np.zeros(0)
    finally:
        bar.close()
    return curves, failures


def _mean_std(values: Sequence[float], digits: int = 1) -> str:
    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {std:.{digits}f}"


def _per_seed(values: Sequence[float], digits: int = 1) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


FIGURES = {"alpha": "alpha.png", "kde": "kde.png"}


TARGET_ROWS = ("MIL", "MIL+CLL", "MIL+CLL+VCL", "Full")


def target(table: List[dict]) -> Optional[dict]:
    """Issue 12's target on table3's rows: the means of MIL, MIL+CLL, MIL+CLL+VCL and Full in the
    paper's (increasing) order, and Full above MIL+CLL by more than the larger of those two rows'
    sample stds. None when one of the four rows is missing or has fewer than two seeds."""
    rows = {e["name"]: e["avg"] for e in table}
    if any(len(rows.get(name, [])) < 2 for name in TARGET_ROWS):
        return None
    means = [statistics.mean(rows[name]) for name in TARGET_ROWS]
    in_order = all(lo < hi for lo, hi in zip(means, means[1:]))
    lead = means[3] - means[1]
    larger_std = max(statistics.stdev(rows[name]) for name in ("MIL+CLL", "Full"))
    return {"means": means, "in_order": in_order, "lead": lead, "larger_std": larger_std,
            "met": in_order and lead > larger_std}


def _avg_by_seed(table: List[dict]) -> Dict[str, dict]:
    """Per row name, its AVG per seed key (the row's ``seeds``, else 0, 1, ...)."""
    return {e["name"]: dict(zip(e.get("seeds", range(len(e["avg"]))), e["avg"])) for e in table}


# Each term's effect in table3: (label, the row without it, the row with it)
EFFECTS = (("CLL", "MIL", "MIL+CLL"), ("VCL", "MIL+CLL", "MIL+CLL+VCL"), ("SCL", "MIL+CLL+VCL", "Full"),
           ("Full - MIL+CLL", "MIL+CLL", "Full"))


def paired_effects(table: List[dict]) -> List[dict]:
    """Each term's effect on AVG, paired by seed (the same seed in both rows). Per ``EFFECTS``
    entry whose two rows share at least two seeds: ``label``, ``rows`` (without, with), ``n`` (the
    shared seeds), ``mean`` and ``se`` (its standard error, sd / sqrt(n)) of the per-seed
    differences, and ``positive`` (how many are > 0). A row's ``seeds`` may be any hashable keys
    (e.g. (set, seed) pairs, to pool several tables)."""
    by_seed = _avg_by_seed(table)
    effects = []
    for label, without, with_ in EFFECTS:
        if without not in by_seed or with_ not in by_seed:
            continue
        seeds = sorted(set(by_seed[without]) & set(by_seed[with_]))
        diffs = [by_seed[with_][s] - by_seed[without][s] for s in seeds]
        if len(diffs) >= 2:
            effects.append({"label": label, "rows": (without, with_), "n": len(diffs), "mean": statistics.mean(diffs),
                            "se": statistics.stdev(diffs) / math.sqrt(len(diffs)),
                            "positive": sum(d > 0 for d in diffs)})
    return effects


def target_rate(table: List[dict], n: int = 3, group: Optional[Callable[[Hashable], Hashable]] = None) -> Optional[dict]:
    """How often an ``n``-seed check meets issue 12's ``target``: over every ``n``-subset of the
    seeds the four target rows share (each subset keeps the rows paired by seed), the number of
    subsets (``checks``) and of those that meet it (``met``), and of those whose rows are in order
    (``in_order``). Seeds may be any hashable keys ((set, seed) pairs, to pool several tables).
    ``group`` (a seed key -> its group, e.g. its synthetic set) keeps only the subsets within one
    group, as a real check draws its seeds on one set: the std it compares with then holds no
    set-to-set offset. None when a target row is missing or no subset qualifies."""
    by_seed = _avg_by_seed(table)
    if n < 2 or any(name not in by_seed for name in TARGET_ROWS):
        return None
    shared = sorted(set.intersection(*(set(by_seed[name]) for name in TARGET_ROWS)))
    subsets = [subset for subset in itertools.combinations(shared, n)
               if group is None or len({group(key) for key in subset}) == 1]
    if not subsets:
        return None
    verdicts = [target([{"name": name, "avg": [by_seed[name][s] for s in subset]} for name in TARGET_ROWS])
                for subset in subsets]
    return {"seeds": len(shared), "n": n, "checks": len(verdicts), "met": sum(v["met"] for v in verdicts),
            "in_order": sum(v["in_order"] for v in verdicts)}


def _effects_lines(table: List[dict]) -> List[str]:
    effects = paired_effects(table)
    if not effects:
        return []
    return (["Each term's effect on AVG, paired by seed (mean ± standard error of the per-seed differences):", "",
             "| effect | rows | mean ± se | > 0 in |", "|---|---|---|---|"]
            + [f"| {e['label']} | {' -> '.join(e['rows'])} | {e['mean']:+.2f} ± {e['se']:.2f} | {e['positive']} of {e['n']} |"
               for e in effects]
            + [""])


def _target_line(table: List[dict]) -> List[str]:
    verdict = target(table)
    if verdict is None:
        return []
    means = ", ".join(f"{name} {mean:.2f}" for name, mean in zip(TARGET_ROWS, verdict["means"]))
    return [f"Target (issue 12): **{'met' if verdict['met'] else 'not met'}**. Rows 1-4 "
            f"{'in' if verdict['in_order'] else 'not in'} the paper's order ({means}); Full - MIL+CLL = "
            f"{verdict['lead']:.2f}, the larger std {verdict['larger_std']:.2f}.", ""]


def markdown(results: Dict[str, List[dict]], note: str) -> str:
    """results.md: one section per experiment: a table of mean ± sample std over seeds with the
    per-seed values and the paper's figures, for kde the U summary, the attention metrics (when the
    runs have them) and the gradient balance."""
    lines = ["# Ablation results", "", note, ""]
    for experiment, table in results.items():
        lines += [f"## {experiment}", "",
                  "| row | options | AVG 0.1:0.7 | ACC | AVG per seed | ACC per seed | paper AVG / ACC |",
                  "|---|---|---|---|---|---|---|"]
        for e in table:
            paper = "-" if e["paper_avg"] is None else f"{e['paper_avg']} / {e['paper_acc']}"
            lines.append(f"| {e['name']} | {' '.join(e['flags']) or '(all four losses)'} | {_mean_std(e['avg'])} | "
                         f"{_mean_std(e['acc'])} | {_per_seed(e['avg'])} | {_per_seed(e['acc'])} | {paper} |")
        lines.append("")
        if experiment == "table3":
            lines += _target_line(table) + _effects_lines(table)
        if experiment in FIGURES:
            lines += [f"Figure: `{FIGURES[experiment]}`.", ""]
        if any("u_mean" in e for e in table):
            lines += ["U(a || 1 - b_bg) on the test background snippets (per seed: mean, fraction above 0.5):", "",
                      "| row | mean U | U > 0.5 | mean U per seed | U > 0.5 per seed |", "|---|---|---|---|---|"]
            for e in table:
                lines.append(f"| {e['name']} | {_mean_std(e['u_mean'], 3)} | {_mean_std(e['u_above_half'], 3)} | "
                             f"{_per_seed(e['u_mean'], 3)} | {_per_seed(e['u_above_half'], 3)} |")
            lines.append("")
        if any(key in e for e in table for key in ATTENTION_KEYS):
            lines += ["Attention A on the test snippets (mean ± std over seeds): mean on action and on background "
                      "snippets, share of background above 0.5, AUC of A for action against background:", "",
                      "| row | A on action | A on background | background A > 0.5 | AUC |", "|---|---|---|---|---|"]
            for e in table:
                lines.append(f"| {e['name']} | " + " | ".join(_mean_std(e.get(key, []), 3) for key in ATTENTION_KEYS) + " |")
            lines.append("")
        lines += _curve_table(table)
        gradients = gradient_table([(e["name"], e.get("grad_norms", {})) for e in table],
                                   " at the last evaluation (mean over seeds)")
        if gradients:
            lines += gradients + [""]
    return "\n".join(lines)


def _curve_table(table: List[dict]) -> List[str]:
    """results.md's "AVG over training" table (rows of the experiment as columns, one line per
    evaluation, mean ± std over the seeds evaluated there), when the runs evaluated more than once."""
    curves = {e["name"]: {p["iteration"]: p["avg"] for p in e.get("curve", [])} for e in table}
    iterations = sorted({it for curve in curves.values() for it in curve})
    if len(iterations) < 2:
        return []
    lines = ["AVG 0.1:0.7 at each evaluation during training (mean ± std over seeds; `--eval-every`):", "",
             "| iteration | " + " | ".join(curves) + " |", "|---|" + "---|" * len(curves)]
    for it in iterations:
        lines.append(f"| {it} | " + " | ".join(_mean_std(curve.get(it, [])) for curve in curves.values()) + " |")
    return lines + [""]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m himnet_fast.experiments",
                                     description="The paper's ablations, one training process per row and seed.")
    parser.add_argument("experiment", choices=list(EXPERIMENTS) + ["all"])
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds per row (default 3)")
    parser.add_argument("--seed0", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--iters", type=int, default=None, help="training iterations (default: the preset's)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, one thread each (default 2)")
    parser.add_argument("--out", type=Path, default=Path("runs/experiments"), help="output folder")
    parser.add_argument("--rows", nargs="+", default=None, metavar="NAME",
                        help="only these rows (by name, as in the tables; with all, of every experiment that has them)")
    return parser


def select(names: Sequence[str], wanted: Optional[Sequence[str]]) -> Dict[str, List[Row]]:
    """The rows of the experiments ``names``, only those in ``wanted`` if given (an experiment
    left with none is dropped); a wanted name that none of them has is an error."""
    known = list(dict.fromkeys(r.name for name in names for r in EXPERIMENTS[name]))
    unknown = sorted(set(wanted or ()) - set(known))
    if unknown:
        raise SystemExit(f"experiments: unknown rows {unknown} for {'/'.join(names)}; rows: {known}")
    chosen = {name: [r for r in EXPERIMENTS[name] if not wanted or r.name in wanted] for name in names}
    return {name: rows for name, rows in chosen.items() if rows}


def figures(results: Dict[str, List[dict]], plans: Dict[str, Plan], out: Path) -> Dict[Run, str]:
    """alpha.png and kde.png for the experiments that ran (kde: U added to its rows first);
    returns the runs whose U could not be computed."""
    failures: Dict[Run, str] = {}
    if "alpha" in plans:
        points = [(e["alpha"], e["avg"]) for e in results["alpha"] if e["avg"]]
        if points:
            plot_alpha([a for a, _ in points], [v for _, v in points], out / FIGURES["alpha"], best=DEFAULT_ALPHA)
    if "kde" in plans:
        curves, failures = add_uncertainty(results["kde"], plans["kde"])
        if any(len(u) for u in curves.values()):
            plot_kde(curves, KDE_COLORS, out / FIGURES["kde"])
    return failures


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: List[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    if args.seeds < 1 or args.jobs < 1 or (args.iters is not None and args.iters < 0):
        raise SystemExit("experiments: --seeds and --jobs must be >= 1 and --iters >= 0")
    names = list(EXPERIMENTS) if args.experiment == "all" else [args.experiment]
    seeds = list(range(args.seed0, args.seed0 + args.seeds))
    plans = {name: plan(rows, seeds, args.out, args.iters, extra) for name, rows in select(names, args.rows).items()}
    failed = run_all([run for planned in plans.values() for _, runs in planned for run in runs], args.jobs)
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    results.update({name: collect(planned, args.out) for name, planned in plans.items()})
    args.out.mkdir(parents=True, exist_ok=True)
    failed.update(figures(results, plans, args.out))
    results_path.write_text(json.dumps(results, indent=2))
    note = (f"`python -m himnet_fast.experiments {' '.join(argv)}"
            f"{' -- ' + ' '.join(extra) if extra else ''}`; mean ± sample std over seeds.")
    (args.out / "results.md").write_text(markdown(results, note) + "\n")
    print(markdown({name: results[name] for name in plans}, note))
    for name, planned in plans.items():
        for row, runs in planned:
            for run in runs:
                if run in failed:
                    print(f"FAILED {name} / {row.name} / seed {run.seed}: {failed[run]} "
                          f"(log: {run.folder / 'log.txt'})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
