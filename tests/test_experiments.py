"""``python -m himnet_fast.experiments`` end to end on a tiny configuration: the runs, results.json,
results.md, resuming without rerunning, and a failing run reported by name."""
import json

import pytest

from himnet_fast.experiments import EXPERIMENTS, main, slug

TINY = ["--synth-videos", "120", "--synth-dim", "32", "--hidden-dim", "32", "--attention-dim", "16",
        "--clip-len", "96", "--batch-size", "8", "--num-pairs", "2"]


def test_table3_rows_follow_the_paper():
    rows = EXPERIMENTS["table3"]
    assert [r.name for r in rows] == ["MIL", "MIL+CLL", "MIL+CLL+VCL", "Full", "MIL+CLL+SCL", "MIL+VCL+SCL",
                                      "MIL+VCL", "MIL+SCL"]
    assert [r.paper_avg for r in rows] == [39.3, 43.7, 44.4, 45.1, 43.7, 42.2, 41.7, 42.6]
    assert rows[3].flags == () and set(rows[0].flags) == {"--no-cll", "--no-vcl", "--no-scl"}


def test_runner_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "exp"
    argv = ["table3", "--seeds", "2", "--seed0", "3", "--iters", "3", "--jobs", "2", "--out", str(out),
            "--rows", "MIL", "Full", "--", *TINY, "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())["table3"]
    assert [r["name"] for r in results] == ["MIL", "Full"]
    for row in results:
        assert row["seeds"] == [3, 4] and len(row["avg"]) == len(row["acc"]) == 2
        for seed, avg in zip(row["seeds"], row["avg"]):
            metrics = json.loads((out / "table3" / slug(row["name"]) / f"seed{seed}" / "metrics.json").read_text())
            assert avg == round(metrics["avg_0.1_0.7"], 3) and metrics["iterations"] == 3
    # The MIL row's runs switched the other losses off; the Full row's did not.
    mil_cfg = json.loads((out / "table3" / "mil" / "seed3" / "metrics.json").read_text())["config"]["loss"]
    full_cfg = json.loads((out / "table3" / "full" / "seed3" / "metrics.json").read_text())["config"]["loss"]
    assert (mil_cfg["use_cll"], mil_cfg["use_vcl"], mil_cfg["use_scl"]) == (False, False, False)
    assert (full_cfg["use_cll"], full_cfg["use_vcl"], full_cfg["use_scl"]) == (True, True, True)
    table = (out / "results.md").read_text()
    assert "| MIL | --no-cll --no-vcl --no-scl |" in table and "39.3 / 61.7" in table
    # The gradient balance: MIL alone has only the MIL term; Full has all four, each with a norm on S.
    assert set(results[0]["grad_norms"]) == {"mil"}
    assert set(results[1]["grad_norms"]) == {"mil", "cll", "vcl", "scl"}
    assert all(results[1]["grad_norms"][t]["S"] > 0 for t in ("mil", "cll", "scl"))
    assert "Gradient norms of the weighted terms" in table

    stamp = (out / "table3" / "mil" / "seed3" / "metrics.json").stat().st_mtime_ns
    assert main(argv) == 0  # resumed: every run is finished, nothing runs again
    assert (out / "table3" / "mil" / "seed3" / "metrics.json").stat().st_mtime_ns == stamp


def test_failed_run_is_named(tmp_path, capsys):
    argv = ["table3", "--seeds", "1", "--iters", "1", "--jobs", "1", "--out", str(tmp_path / "exp"),
            "--rows", "MIL", "--", *TINY, "--cache-dir", str(tmp_path / "cache"), "--lr", "-1"]
    assert main(argv) == 1
    assert "FAILED table3 / MIL / seed 0" in capsys.readouterr().err


def test_unknown_row_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="unknown rows"):
        main(["table3", "--out", str(tmp_path), "--rows", "Everything"])
