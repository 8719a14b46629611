"""``python -m himnet_fast.diagnose``: per-term gradient norms of a checkpoint on A, S and X_hat."""
import json

import pytest

from himnet_fast.diagnose import checkpoint_gradient_norms, gradient_table, main as diagnose
from himnet_fast.train import main as train


def test_one_batch_equals_what_the_trainer_logs_at_the_next_step(tiny_args, tmp_path, capsys):
    # The trainer logs the norms of step 3 on batch 3, with the weights after step 2; the tool on
    # the checkpoint of iteration 2 draws batch 3 with the restored RNG: the same figures.
    train(tiny_args(tmp_path / "three", "--iters", "3", "--eval-every", "3", "--timelines", "0"))
    train(tiny_args(tmp_path / "two", "--iters", "2", "--eval-every", "2", "--timelines", "0"))
    logged = json.loads((tmp_path / "three" / "metrics.json").read_text())["grad_norms"][-1]
    assert logged.pop("iteration") == 3
    iteration, norms = checkpoint_gradient_norms(tmp_path / "two" / "checkpoint.pt", batches=1)
    assert iteration == 2 and norms == logged  # what the logged norms hold: test_train_e2e
    assert set(norms) == {"mil", "cll", "vcl", "scl"}
    capsys.readouterr()
    diagnose([str(tmp_path / "two" / "checkpoint.pt"), "--batches", "2"])
    out = capsys.readouterr().out
    assert "on A / on S / on X_hat:" in out and "checkpoint.pt (iteration 2) |" in out


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="is not a file"):
        checkpoint_gradient_norms(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="--batches"):
        checkpoint_gradient_norms(tmp_path / "missing.pt", batches=0)


def test_table_by_hand():
    full = {"mil": {"A": 0.25, "S": 0.5, "X_hat": 0.125}, "vcl": {"A": 0.0, "S": 0.0, "X_hat": 0.75}}
    old = {"mil": {"A": 0.25, "S": 0.5}}  # logged before X_hat
    lines = gradient_table([("Full", full)], " here")
    assert lines[0] == "Gradient norms of the weighted terms on A / on S / on X_hat here:"
    assert lines[2:] == ["| row | mil | vcl |", "|---|---|---|",
                         "| Full | 2.50e-01 / 5.00e-01 / 1.25e-01 | 0.00e+00 / 0.00e+00 / 7.50e-01 |"]
    mixed = gradient_table([("Full", full), ("MIL", old)])
    assert mixed[0] == "Gradient norms of the weighted terms on A / on S:"
    assert mixed[-2:] == ["| Full | 2.50e-01 / 5.00e-01 | 0.00e+00 / 0.00e+00 |", "| MIL | 2.50e-01 / 5.00e-01 | - |"]
    assert gradient_table([("MIL", {})]) == []
