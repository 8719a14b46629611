"""The apps' error path (config.run_cli): problems a user can fix print one line, no traceback."""
import torch

from himnet_fast import train
from himnet_fast.config import run_cli
from himnet_fast.losses import HiMNetCriterion


def test_non_finite_loss_prints_one_line_and_exit_status_2(tmp_path, tiny_args, capsys, monkeypatch):
    """A training loss that turns NaN (here forced from the first step) stops the trainer with one
    ``error:`` line naming the iteration, exit status 2."""
    forward = HiMNetCriterion.forward

    def nan_total(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        out["total"] = out["total"] * torch.tensor(float("nan"))
        return out

    monkeypatch.setattr(HiMNetCriterion, "forward", nan_total)
    assert run_cli(train.main, "prog", tiny_args(tmp_path / "run", "--iters", "3")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("prog: error: iteration 1: the loss is not finite"), err
    assert err[0].endswith("lower --lr or check the features"), err
