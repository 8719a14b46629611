"""``python -m himnet_fast.experiments`` end to end on a tiny configuration: the runs, results.json,
results.md, resuming without rerunning, and a failing run reported by name; table4, alpha and kde
(with their figures and the U summary), runs shared across experiments by ``all``; the KDE by hand."""
import json
import math

import numpy as np
import pytest

from himnet_fast.experiment_figures import U_CACHE, gaussian_kde, scott_bandwidth
from himnet_fast.experiments import (EXPERIMENTS, _effects_lines, _target_line, canonical, main, markdown,
                                     paired_effects, target, target_rate)

from conftest import TINY_SET_MODEL as TINY


def test_table3_rows_follow_the_paper():
    rows = EXPERIMENTS["table3"]
    assert [r.name for r in rows] == ["MIL", "MIL+CLL", "MIL+CLL+VCL", "Full", "MIL+CLL+SCL", "MIL+VCL+SCL",
                                      "MIL+VCL", "MIL+SCL"]
    assert [r.paper_avg for r in rows] == [39.3, 43.7, 44.4, 45.1, 43.7, 42.2, 41.7, 42.6]
    assert rows[3].flags == () and set(rows[0].flags) == {"--no-cll", "--no-vcl", "--no-scl"}


def test_runner_end_to_end_and_resume(tmp_path, tiny_cache, capsys):
    out = tmp_path / "exp"
    argv = ["table3", "--seeds", "2", "--seed0", "3", "--iters", "3", "--jobs", "2", "--out", str(out),
            "--rows", "MIL", "Full", "--", *TINY, "--cache-dir", str(tiny_cache), "--eval-every", "2"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())["table3"]
    assert [r["name"] for r in results] == ["MIL", "Full"]
    for row in results:
        assert row["seeds"] == [3, 4] and len(row["avg"]) == len(row["acc"]) == 2
        assert [f.rsplit("/", 1)[1] for f in row["folders"]] == ["seed3", "seed4"]
        for folder, avg in zip(row["folders"], row["avg"]):
            metrics = json.loads((out / folder / "metrics.json").read_text())
            assert avg == round(metrics["avg_0.1_0.7"], 3) and metrics["iterations"] == 3
        # Evaluated at iterations 2 and 3: the curve holds both, the last equal to the final AVG.
        assert [point["iteration"] for point in row["curve"]] == [2, 3] and row["curve"][-1]["avg"] == row["avg"]
        assert all(len(point["avg"]) == 2 for point in row["curve"])
        assert row["attention_auc"] == [round(json.loads((out / f / "metrics.json").read_text())["attention_auc"], 4)
                                        for f in row["folders"]]
    mil_seed3, full_seed3 = (out / results[0]["folders"][0]), (out / results[1]["folders"][0])
    assert mil_seed3.parent.name.startswith("no-cll-no-scl-no-vcl-") and full_seed3.parent.name.startswith("default-")
    assert json.loads((mil_seed3.parent / "flags.json").read_text())["flags"] == ["--no-cll", "--no-scl", "--no-vcl"]
    # The MIL row's runs switched the other losses off; the Full row's did not.
    mil_cfg = json.loads((mil_seed3 / "metrics.json").read_text())["config"]["loss"]
    full_cfg = json.loads((full_seed3 / "metrics.json").read_text())["config"]["loss"]
    assert (mil_cfg["use_cll"], mil_cfg["use_vcl"], mil_cfg["use_scl"]) == (False, False, False)
    assert (full_cfg["use_cll"], full_cfg["use_vcl"], full_cfg["use_scl"]) == (True, True, True)
    table = (out / "results.md").read_text()
    assert "| MIL | --no-cll --no-vcl --no-scl |" in table and "39.3 / 61.7" in table
    # The gradient balance: MIL alone has only the MIL term; Full has all four, each with a norm on S.
    assert set(results[0]["grad_norms"]) == {"mil"}
    assert set(results[1]["grad_norms"]) == {"mil", "cll", "vcl", "scl"}
    assert all(results[1]["grad_norms"][t]["S"] > 0 for t in ("mil", "cll", "scl"))
    assert "Gradient norms of the weighted terms on A / on S / on X_hat" in table
    assert "| A on action | A on background | background A > 0.5 | AUC |" in table
    assert "| iteration | MIL | Full |" in table and "\n| 2 | " in table and "\n| 3 | " in table

    stamp = (mil_seed3 / "metrics.json").stat().st_mtime_ns
    full_avg = json.loads((full_seed3 / "metrics.json").read_text())["avg_0.1_0.7"]
    (full_seed3 / "metrics.json").unlink()  # as if killed after its last checkpoint
    assert main(argv) == 0  # resumed: finished runs are skipped, the unfinished one continues
    assert (mil_seed3 / "metrics.json").stat().st_mtime_ns == stamp
    assert "resumed at iteration 3" in (full_seed3 / "log.txt").read_text()
    assert json.loads((full_seed3 / "metrics.json").read_text())["avg_0.1_0.7"] == full_avg


def test_failed_run_is_named(tmp_path, tiny_cache, capsys):
    argv = ["table3", "--seeds", "1", "--iters", "1", "--jobs", "1", "--out", str(tmp_path / "exp"),
            "--rows", "MIL", "--", *TINY, "--cache-dir", str(tiny_cache), "--lr", "-1"]
    assert main(argv) == 1
    assert "FAILED table3 / MIL / seed 0" in capsys.readouterr().err


def test_runner_refuses_finished_runs_that_a_changed_default_would_train_differently(tmp_path, tiny_cache):
    out = tmp_path / "exp"
    argv = ["table3", "--seeds", "1", "--iters", "1", "--jobs", "1", "--out", str(out),
            "--rows", "MIL+CLL", "--", *TINY, "--cache-dir", str(tiny_cache)]
    assert main(argv) == 0
    (metrics_path,) = out.glob("runs/*/seed0/metrics.json")
    metrics = json.loads(metrics_path.read_text())
    assert metrics["config"]["loss"]["cll_norm"] == "procl"
    assert main(argv) == 0  # the same settings: reused, not retrained
    # As recorded before --cll-norm existed (it then behaved as "paper"), then with another loss setting.
    del metrics["config"]["loss"]["cll_norm"]
    metrics_path.write_text(json.dumps(metrics))
    with pytest.raises(SystemExit, match=r"1 finished run\(s\).*loss\.cll_norm: 'paper' -> 'procl'"):
        main(argv)
    metrics["config"]["loss"].update(cll_norm="procl", lambda2=0.5)
    metrics_path.write_text(json.dumps(metrics))
    with pytest.raises(SystemExit, match=r"loss\.lambda2: 0\.5 -> 0\.01"):
        main(argv)


def test_runner_generates_a_missing_synthetic_set_once_before_its_runs(tmp_path, capsys):
    cache = tmp_path / "cache"  # empty: the set is generated by the runner, then read by both runs
    argv = ["table3", "--seeds", "2", "--iters", "1", "--jobs", "2", "--out", str(tmp_path / "exp"),
            "--rows", "MIL", "--", *TINY, "--synth-videos", "60", "--cache-dir", str(cache)]
    assert main(argv) == 0
    assert [p.name.startswith("synthetic-thumos14-") for p in cache.iterdir()] == [True]
    assert capsys.readouterr().err.count("generating the synthetic thumos14-like set") == 1
    logs = [p.read_text() for p in (tmp_path / "exp" / "runs").glob("*/seed*/log.txt")]
    assert len(logs) == 2 and not any("generating" in log for log in logs)


def _rows(**avg):
    return [{"name": name.replace("_", "+"), "avg": values} for name, values in avg.items()]


def test_target_by_hand():
    # means 2 < 3 < 4 < 6; stds 1 (MIL+CLL) and 1 (Full): Full leads by 3 > 1
    table = _rows(MIL=[1, 2, 3], MIL_CLL=[2, 3, 4], MIL_CLL_VCL=[3, 4, 5], Full=[5, 6, 7])
    met = target(table)
    assert met["in_order"] and met["met"] and met["lead"] == 3.0 and met["larger_std"] == 1.0
    assert "**met**" in _target_line(table)[0]
    # in order (2 < 3 < 4 < 4.6) but the lead 1.6 is below MIL+CLL's std 2
    short = target(_rows(MIL=[1, 2, 3], MIL_CLL=[1, 3, 5], MIL_CLL_VCL=[3, 4, 5], Full=[4.5, 4.6, 4.7]))
    assert short["in_order"] and not short["met"] and short["larger_std"] == 2.0
    # rows 1 and 2 swapped: out of order, so not met however large the lead
    table = _rows(MIL=[2, 3, 4], MIL_CLL=[1, 2, 3], MIL_CLL_VCL=[3, 4, 5], Full=[9, 10, 11])
    swapped = target(table)
    assert not swapped["in_order"] and not swapped["met"]
    assert "not in the paper's order" in _target_line(table)[0]
    # a missing row or a single seed: no verdict
    assert target(_rows(MIL=[1, 2], MIL_CLL=[2, 3], Full=[5, 6])) is None
    assert target(_rows(MIL=[1], MIL_CLL=[2], MIL_CLL_VCL=[3], Full=[5])) is None


def test_paired_effects_by_hand():
    table = [{"name": "MIL", "seeds": [0, 1, 2], "avg": [1.0, 2.0, 3.0]},
             {"name": "MIL+CLL", "seeds": [0, 1, 2], "avg": [2.0, 2.0, 5.0]},  # differences 1, 0, 2
             {"name": "MIL+CLL+VCL", "seeds": [1, 2, 3], "avg": [1.0, 6.0, 9.0]}]  # shares seeds 1, 2: -1, +1
    cll, vcl = paired_effects(table)
    assert (cll["label"], cll["rows"], cll["n"], cll["mean"], cll["positive"]) == ("CLL", ("MIL", "MIL+CLL"), 3, 1.0, 2)
    assert cll["se"] == pytest.approx(1 / math.sqrt(3))
    assert (vcl["n"], vcl["mean"], vcl["se"], vcl["positive"]) == (2, 0.0, 1.0, 1)  # sd sqrt(2), / sqrt(2)
    assert "| CLL | MIL -> MIL+CLL | +1.00 ± 0.58 | 2 of 3 |" in _effects_lines(table)
    rows = [dict(e, flags=[], acc=e["avg"], paper_avg=None, paper_acc=None) for e in table]
    assert "| CLL | MIL -> MIL+CLL | +1.00 ± 0.58 | 2 of 3 |" in markdown({"table3": rows}, "")
    # one shared seed, or a missing row: no entry
    assert paired_effects([table[0], {"name": "MIL+CLL", "seeds": [2, 5], "avg": [4.0, 4.0]}]) == []
    assert paired_effects(table[:1]) == [] and _effects_lines(table[:1]) == []


def test_target_rate_by_hand():
    # four seeds; seed 3 puts MIL+CLL+VCL below MIL+CLL by 9, enough to reverse any mean it joins
    seeds = [0, 1, 2, 3]
    table = [{"name": "MIL", "seeds": seeds, "avg": [1.0, 2.0, 3.0, 2.0]},
             {"name": "MIL+CLL", "seeds": seeds, "avg": [2.0, 3.0, 4.0, 12.0]},
             {"name": "MIL+CLL+VCL", "seeds": seeds, "avg": [3.0, 4.0, 5.0, 3.0]},
             {"name": "Full", "seeds": seeds, "avg": [5.0, 6.0, 7.0, 20.0]}]
    # 4 subsets of 3: {0,1,2} is test_target_by_hand's met table; each of the 3 with seed 3 has
    # MIL+CLL+VCL (mean 3.3-4) below MIL+CLL (5.7-6.3), so out of order
    assert target_rate(table) == {"seeds": 4, "n": 3, "checks": 4, "met": 1, "in_order": 1}
    # pairs: 6 subsets; the 3 without seed 3 are in order; their Full - MIL+CLL lead is 3 and the
    # larger std 0.71 (two seeds one apart), so all 3 are met
    assert target_rate(table, n=2) == {"seeds": 4, "n": 2, "checks": 6, "met": 3, "in_order": 3}
    # (set, seed) keys pool tables; only the seeds all four rows share count
    pooled = [dict(e, seeds=[("a", s) for s in e["seeds"]]) for e in table]
    pooled[0] = dict(pooled[0], seeds=pooled[0]["seeds"][:3] + [("b", 3)])
    assert target_rate(pooled) == {"seeds": 3, "n": 3, "checks": 1, "met": 1, "in_order": 1}
    assert target_rate(pooled[1:]) is None and target_rate(table, n=5) is None and target_rate(table, n=1) is None
    # group: seeds 0-1 on one set, 2-3 on another; of the 6 pairs only {0,1} and {2,3} stay, and
    # {2,3} is out of order (MIL+CLL+VCL 4 < MIL+CLL 8)
    two_sets = [dict(e, seeds=[("a", 0), ("a", 1), ("b", 2), ("b", 3)]) for e in table]
    assert target_rate(two_sets, n=2, group=lambda key: key[0]) == {"seeds": 4, "n": 2, "checks": 2, "met": 1,
                                                                    "in_order": 1}
    assert target_rate(two_sets, n=3, group=lambda key: key[0]) is None  # no set has 3 seeds


def test_unknown_row_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="unknown rows"):
        main(["table3", "--out", str(tmp_path), "--rows", "Everything"])


def test_table4_alpha_kde_rows():
    assert [(r.name, r.flags) for r in EXPERIMENTS["table4"]] == [
        ("SCL, U(p||q) (self)", ()), ("SCL, U(q||p) (target)", ("--scl-variant", "target")),
        ("SCL, no U", ("--scl-variant", "none")), ("L_guide", ("--no-scl", "--guide-weight", "0.8")),
        ("L_ml", ("--no-scl", "--ml-weight", "0.8"))]
    assert all(r.paper_avg is None for r in EXPERIMENTS["table4"])  # lost in our copy of the paper
    alpha = EXPERIMENTS["alpha"]
    assert [r.alpha for r in alpha] == [0.5, 1, 2, 4, 6, 8, 10]
    assert alpha[0].flags == ("--alpha", "0.5") and alpha[3].flags == ()  # alpha = 4 is the default: Full's run
    assert [(r.name, r.flags) for r in EXPERIMENTS["kde"]] == [("with SCL", ()), ("without SCL", ("--no-scl",))]


def test_canonical_flags_ignore_option_order():
    assert canonical(("--no-scl", "--ml-weight", "0.8")) == ("--ml-weight", "0.8", "--no-scl")
    assert canonical(("--ml-weight", "0.8", "--no-scl")) == ("--ml-weight", "0.8", "--no-scl")
    assert canonical(("--no-vcl", "--no-cll")) == ("--no-cll", "--no-vcl")


def test_kde_by_hand():
    g = 1.0 / (0.1 * math.sqrt(2.0 * math.pi))  # N(x; mu, 0.1^2) at x = mu
    np.testing.assert_allclose(gaussian_kde([0.5], [0.5, 0.6, 0.3], bandwidth=0.1),
                               [g, g * math.exp(-0.5), g * math.exp(-2.0)], rtol=1e-12)
    # Two samples: the mean of their kernels.
    np.testing.assert_allclose(gaussian_kde([0.4, 0.6], [0.5], bandwidth=0.1), [g * math.exp(-0.5)], rtol=1e-12)
    # Scott's rule: std (ddof 1) of [0, 1] = sqrt(1/2), times n^(-1/5) = 2^(-1/5).
    assert scott_bandwidth([0.0, 1.0]) == pytest.approx(math.sqrt(0.5) * 2 ** -0.2, rel=1e-12)
    x = np.linspace(0.0, 1.0, 11) ** 2
    grid = np.linspace(0.0, 1.0, 5)
    np.testing.assert_allclose(gaussian_kde(x, grid, chunk=3), gaussian_kde(x, grid), rtol=1e-12)


# One `all` command over a few rows of each experiment: 8 rows, 4 distinct runs.
ALL_ROWS = ["Full", "MIL+CLL+VCL", "SCL, U(p||q) (self)", "L_ml", "alpha=0.5", "alpha=4", "with SCL", "without SCL"]


@pytest.fixture(scope="module")
def all_out(tmp_path_factory, tiny_cache):
    tmp = tmp_path_factory.mktemp("all")
    out = tmp / "exp"
    argv = ["all", "--seeds", "1", "--iters", "2", "--jobs", "2", "--out", str(out), "--rows", *ALL_ROWS,
            "--", *TINY, "--cache-dir", str(tiny_cache)]
    assert main(argv) == 0
    return out, argv, json.loads((out / "results.json").read_text())


def test_all_trains_each_distinct_run_once(all_out):
    out, argv, results = all_out
    assert list(results) == ["table3", "table4", "alpha", "kde"]
    folders = {r["name"]: r["folders"] for table in results.values() for r in table}
    assert all(len(f) == 1 and f[0].endswith("/seed0") for f in folders.values())
    # Full = table4's self row = alpha 4 = kde with SCL; MIL+CLL+VCL = kde without SCL.
    assert folders["Full"] == folders["SCL, U(p||q) (self)"] == folders["alpha=4"] == folders["with SCL"]
    assert folders["MIL+CLL+VCL"] == folders["without SCL"] != folders["Full"]
    assert len({f[0] for f in folders.values()}) == 4
    assert len(list((out / "runs").glob("*/seed0/metrics.json"))) == 4
    flags = json.loads((out / folders["L_ml"][0]).parent.joinpath("flags.json").read_text())
    assert flags["flags"] == ["--ml-weight", "0.8", "--no-scl"]
    extra = argv[argv.index("--") + 1:]
    assert flags["options"] == ["--ml-weight", "0.8", "--no-scl", "--iters", "2", *extra]


def test_table4_runs_the_alternatives(all_out):
    out, _, results = all_out
    table = results["table4"]
    assert [r["name"] for r in table] == ["SCL, U(p||q) (self)", "L_ml"]
    loss = json.loads((out / table[1]["folders"][0] / "metrics.json").read_text())["config"]["loss"]
    assert loss["ml_weight"] == 0.8 and loss["use_scl"] is False and loss["guide_weight"] == 0.0
    assert "ml" in table[1]["grad_norms"] and "scl" not in table[1]["grad_norms"]
    assert "scl" in table[0]["grad_norms"] and "ml" not in table[0]["grad_norms"]
    md = (out / "results.md").read_text()
    assert "## table4" in md and "| L_ml | --no-scl --ml-weight 0.8 |" in md


def test_alpha_sweep_and_its_plot(all_out):
    out, _, results = all_out
    table = results["alpha"]
    assert [(r["name"], r["alpha"]) for r in table] == [("alpha=0.5", 0.5), ("alpha=4", 4.0)]
    loss = json.loads((out / table[0]["folders"][0] / "metrics.json").read_text())["config"]["loss"]
    assert loss["alpha"] == 0.5
    assert (out / "alpha.png").read_bytes()[:4] == b"\x89PNG"
    assert "## alpha" in (out / "results.md").read_text()


def test_kde_uncertainty_on_background_and_resume(all_out):
    out, argv, results = all_out
    table = results["kde"]
    assert [r["name"] for r in table] == ["with SCL", "without SCL"]
    for row in table:
        u = np.load(out / row["folders"][0] / U_CACHE)
        assert len(u) > 0 and np.all(u > 0) and np.all(u <= 1)
        assert row["u_mean"] == [round(float(u.mean()), 4)]
        assert row["u_above_half"] == [round(float((u > 0.5).mean()), 4)]
    assert (out / "kde.png").read_bytes()[:4] == b"\x89PNG"
    assert "U(a || 1 - b_bg) on the test background snippets" in (out / "results.md").read_text()
    # Resumed: no run trains again and no U is recomputed.
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/seed0/*") if p.name in ("metrics.json", U_CACHE)}
    assert len(stamps) == 4 + 2
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
