"""The output folder of ``python -m himnet_fast.train`` never loses or mixes a run: refusal of
a folder holding another run, a lock against a second writer, writability checked before any
work, checkpoints kept in pairs with checksums, temp files cleaned, the per-iteration log,
``--resume`` past ``--iters`` refused, and the fixed default thread count."""
import json
import os
import warnings

import pytest
import torch

from himnet_fast.checkpoint import CheckpointWarning, load_checkpoint, manifest_path, previous_path
from himnet_fast.config import DEFAULT_THREADS, preset
from himnet_fast.outdir import claim
from himnet_fast.train import main

QUICK = ["--eval-every", "0", "--timelines", "0"]


def _weights(path):
    return load_checkpoint(path)["model"]


def test_a_folder_holding_another_run_is_refused_unless_overwrite(tiny_args, tmp_path):
    out = tmp_path / "run"
    main(tiny_args(out, "--iters", "2", *QUICK))
    first = (out / "metrics.json").read_text()
    with pytest.raises(ValueError, match="holds another run .*--overwrite"):
        main(tiny_args(out, "--iters", "3", *QUICK))
    assert (out / "metrics.json").read_text() == first  # nothing of the first run was touched
    (out / "notes.txt").write_text("mine")
    report = main(tiny_args(out, "--iters", "3", "--overwrite", *QUICK))
    assert report["iterations"] == 3 and json.loads((out / "metrics.json").read_text())["iterations"] == 3
    assert not previous_path(out / "checkpoint.pt").exists()  # the old run's checkpoints are gone
    assert (out / "notes.txt").read_text() == "mine"  # files that are not run outputs are kept


def test_a_second_writer_is_stopped_by_the_lock(tiny_args, tmp_path):
    out = tmp_path / "run"
    holder = claim(out)  # a run in progress
    try:
        with pytest.raises(ValueError, match=f"in use by another run \\(pid {os.getpid()}"):
            main(tiny_args(out, "--iters", "1", *QUICK))
    finally:
        holder.release()
    assert main(tiny_args(out, "--iters", "1", *QUICK))["iterations"] == 1  # free again


@pytest.mark.parametrize("make_out, message", [
    (lambda tmp: tmp / "file.txt", "exists and is not a folder"),
    (lambda tmp: tmp / "readonly" / "run", "cannot write"),
])
def test_an_unwritable_out_fails_before_any_work(tmp_path, make_out, message):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "readonly").mkdir(mode=0o500)
    cache = tmp_path / "cache"
    if os.geteuid() == 0 and "readonly" in str(make_out(tmp_path)):
        out = "/proc/himnet_fast_run"  # root ignores permission bits; /proc refuses everyone
    else:
        out = make_out(tmp_path)
    with pytest.raises(ValueError, match=f"--out: .*{message}"):
        main(["--out", str(out), "--cache-dir", str(cache), "--synth-videos", "40", "--iters", "1", "--no-progress"])
    assert not cache.exists()  # no synthetic set was generated


def test_checkpoints_are_kept_in_pairs_and_a_damaged_one_falls_back(tiny_args, tmp_path):
    common = ["--ckpt-every", "2", *QUICK]
    main(tiny_args(tmp_path / "straight", "--iters", "6", *common))
    run = tmp_path / "run"
    main(tiny_args(run, "--iters", "4", *common))
    newest, previous = run / "checkpoint.pt", previous_path(run / "checkpoint.pt")
    assert load_checkpoint(newest)["iteration"] == 4 and load_checkpoint(previous)["iteration"] == 2
    assert {line.split()[1] for line in manifest_path(newest).read_text().splitlines()} == {
        "checkpoint.pt", "checkpoint.prev.pt"}
    assert manifest_path(previous) == manifest_path(newest)
    # A bit flipped in the newest checkpoint and an orphaned temp file from a killed write.
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    (run / ".checkpoint.pt.x1y2.tmp").write_bytes(b"partial")
    with pytest.warns(CheckpointWarning, match="does not match its checksum.*previous checkpoint"):
        main(["--resume", str(newest), "--iters", "6"])
    assert not list(run.glob(".*.tmp"))
    resumed, straight = _weights(newest), _weights(tmp_path / "straight" / "checkpoint.pt")
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)  # from iteration 2, bit-exact


def test_resume_below_the_checkpoint_iteration_is_an_error(tiny_args, tmp_path):
    main(tiny_args(tmp_path / "run", "--iters", "3", *QUICK))
    with pytest.raises(ValueError, match="--iters: 2 is below the checkpoint's iteration 3"):
        main(["--resume", str(tmp_path / "run" / "checkpoint.pt"), "--iters", "2"])


def test_the_per_iteration_log_has_each_iteration_once_after_a_resume(tiny_args, tmp_path):
    run = tmp_path / "run"
    main(tiny_args(run, "--iters", "4", "--ckpt-every", "2", *QUICK))
    log = run / "train_log.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["iteration"] for e in lines] == [1, 2, 3, 4]
    assert set(lines[0]) >= {"mil", "cll", "vcl", "scl", "total", "lr", "time_s"} and lines[0]["lr"] == 1e-3
    # As after a kill at iteration 4 with the last checkpoint at 2: lines 3, 4 are redone.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointWarning)
        main(["--resume", str(previous_path(run / "checkpoint.pt")), "--iters", "5"])
    assert [json.loads(line)["iteration"] for line in log.read_text().splitlines()] == [1, 2, 3, 4, 5]


def test_the_default_thread_count_is_fixed_recorded_and_checked_on_resume(tiny_args, tmp_path):
    assert preset("synthetic").threads == preset("thumos14").threads == DEFAULT_THREADS == 2
    args = [a for a in tiny_args(tmp_path / "run", "--iters", "2", *QUICK)]
    del args[args.index("--threads"):args.index("--threads") + 2]
    report = main(args)
    assert report["threads"] == DEFAULT_THREADS and report["config"]["threads"] == DEFAULT_THREADS
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["threads"] == DEFAULT_THREADS
    with pytest.warns(RuntimeWarning, match="--threads 2, this run uses 1"):
        main(["--resume", str(tmp_path / "run" / "checkpoint.pt"), "--iters", "3", "--threads", "1"])
