"""The apps' error path (config.run_cli): problems a user can fix print one line, no traceback."""
from himnet_fast.config import run_cli


def test_non_finite_loss_prints_one_line_and_exit_status_2(capsys):
    """The trainer raises FloatingPointError on a non-finite loss (an extreme --lr)."""
    def main(argv):
        raise FloatingPointError("iteration 3: the loss is not finite; lower --lr or check the features")
    assert run_cli(main, "prog") == 2
    err = capsys.readouterr().err
    assert err == "prog: error: iteration 3: the loss is not finite; lower --lr or check the features\n"
