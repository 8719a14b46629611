"""Presets, command-line overrides, checkpoint files and plots of the training app
(no dataset or training involved)."""
import argparse
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch

from himnet_fast.checkpoint import (CheckpointWarning, load_checkpoint, rng_state, save_checkpoint, seed_everything,
                                    set_rng_state)
from himnet_fast.config import (OptimConfig, RunConfig, add_config_arguments, apply_overrides, learning_rate, preset,
                                run_cli)
from himnet_fast.train import main, parse_config, table_row


def test_paper_presets_follow_section_4_1():
    t, a = preset("thumos14"), preset("anet13")
    # T = 560 with k = 560 // 7 = 80; T = 60 with k = 60 // 10 = 6 (paper Sec. 4.1).
    assert (t.data.clip_len, t.data.clip_len // t.data.topk_r, t.optim.iters) == (560, 80, 10_000)
    assert (a.data.clip_len, a.data.clip_len // a.data.topk_r, a.optim.iters) == (60, 6, 20_000)
    for cfg in (t, a):
        assert (cfg.optim.lr, cfg.optim.weight_decay) == (3e-5, 1e-3)
        assert (cfg.data.batch_size, cfg.data.num_pairs) == (10, 3)
        assert (cfg.loss.lambda1, cfg.loss.lambda2, cfg.loss.alpha) == (1.0, 0.01, 4.0)
        assert cfg.data.data_root is None and cfg.model.hidden_dim == 2048
    assert t.data.dataset == "thumos14" and a.data.dataset == "anet13"


def test_synthetic_is_the_default_preset_and_cpu_sized():
    call = parse_config([])
    cfg, state = call.cfg, call.state
    assert state is None
    assert cfg.preset == "synthetic" and cfg.device == "cpu" and cfg.data.data_root is None
    assert cfg.model.hidden_dim <= 512 and cfg.data.synth_dim <= 512
    assert cfg.out_dir == "runs/synthetic"


def test_every_field_is_overridable_from_the_command_line():
    cfg = parse_config(["--preset", "thumos14", "--iters", "7", "--lr", "0.5", "--seed", "3", "--no-cll",
                           "--scl-variant", "target", "--hidden-dim", "16", "--data-root", "/x", "--out", "o",
                           "--max-per-video", "none", "--nms", "hard", "--no-progress", "--mil-norm", "base",
                           "--suppression", "shifted", "--vcl-grad", "features", "--cll-norm", "paper"]).cfg
    assert (cfg.optim.iters, cfg.optim.lr, cfg.seed) == (7, 0.5, 3)
    assert cfg.loss.use_cll is False and cfg.loss.use_mil is True and cfg.loss.scl_variant == "target"
    assert cfg.loss.mil_norm == "base" and cfg.loss.suppression == "shifted" and cfg.loss.vcl_grad == "features"
    assert cfg.loss.cll_norm == "paper"
    assert (cfg.model.hidden_dim, cfg.data.data_root, cfg.out_dir) == (16, "/x", "o")
    assert cfg.detect.max_per_video is None and cfg.detect.nms == "hard" and cfg.schedule.progress is False
    # Untouched fields keep the preset's values.
    assert cfg.data.clip_len == 560 and cfg.optim.weight_decay == 1e-3


def test_overrides_only_touch_what_was_typed():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, preset("synthetic"))
    base = preset("anet13")
    cfg = apply_overrides(base, vars(parser.parse_args(["--iters", "5"])))
    assert cfg.optim.iters == 5
    assert cfg.data.clip_len == 60 and cfg.data.dataset == "anet13"  # not the synthetic defaults
    assert base.optim.iters == 20_000  # the base is not modified


@pytest.mark.parametrize("argv, option", [
    (["--lr", "0"], "--lr"),
    (["--scl-variant", "bogus"], "--scl-variant"),
    (["--mil-norm", "co2"], "--mil-norm"),
    (["--suppression", "min"], "--suppression"),
    (["--vcl-grad", "none"], "--vcl-grad"),
    (["--offset", "2"], "offset must be 0 or 1"),
    (["--post-backend", "cuda"], "backend must be"),
    (["--no-mil", "--no-cll", "--no-vcl", "--no-scl"], "--mil/cll/vcl/scl"),
    (["--batch-size", "4", "--num-pairs", "3"], "--num-pairs"),
    (["--device", "tpu"], "--device"),
    (["--dropout", "1.0"], "--dropout"),
    (["--lr-schedule", "step"], "--lr-schedule"),
    (["--lr-final", "0"], "--lr-final"),
    (["--synth-video-style", "-1"], "--synth-video-style"),
    (["--synth-video-style", "nan"], "--synth-video-style"),
    (["--attention-norm", "zscore"], "attention_norm must be one of"),
    (["--preset", "thumos14"], "--data-root: the thumos14 preset trains on real features"),
])
def test_bad_values_raise_one_clear_error(argv, option):
    with pytest.raises(ValueError, match=option):
        parse_config(argv)


def test_learning_rate_schedules_by_hand():
    constant = OptimConfig(iters=5, lr=1e-3)
    assert [learning_rate(constant, step) for step in range(5)] == [1e-3] * 5
    cosine = OptimConfig(iters=5, lr=1e-3, lr_schedule="cosine", lr_final=3e-5)
    # lr_final + (lr - lr_final) (1 + cos(pi step / 4)) / 2: 1e-3, 8.58e-4, 5.15e-4, 1.72e-4, 3e-5
    expected = [1e-3, 3e-5 + 9.7e-4 * (1 + 0.5 ** 0.5) / 2, 5.15e-4, 3e-5 + 9.7e-4 * (1 - 0.5 ** 0.5) / 2, 3e-5]
    assert [learning_rate(cosine, step) for step in range(5)] == pytest.approx(expected, rel=1e-12)
    assert learning_rate(cosine, 7) == pytest.approx(3e-5)  # past the end (a longer resume): the last rate
    assert learning_rate(OptimConfig(iters=1, lr=1e-3, lr_schedule="cosine"), 0) == 1e-3


def test_cli_prints_one_line_error_and_exit_status_2(capsys):
    def main(argv):
        raise ValueError("--lr: must be > 0")
    assert run_cli(main, "prog") == 2
    err = capsys.readouterr().err
    assert err.strip() == "prog: error: --lr: must be > 0"


def test_config_round_trips_through_a_dict():
    cfg = apply_overrides(preset("synthetic"), {"loss.use_vcl": False, "optim.iters": 3})
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown keys"):
        RunConfig.from_dict({**cfg.to_dict(), "extra": 1})


def test_rng_state_round_trips_through_a_checkpoint_file(tmp_path):
    seed_everything(5)
    payload = {"config": {}, "model": {"w": torch.arange(3.0)}, "rng": rng_state(),
               "sampler": {"perm": np.arange(4, dtype=np.int64), "gen": np.random.default_rng(1).bit_generator.state}}
    path = save_checkpoint(payload, tmp_path / "sub" / "c.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    loaded = load_checkpoint(path)
    set_rng_state(loaded["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    assert isinstance(loaded["sampler"]["perm"], np.ndarray) and loaded["sampler"]["perm"].tolist() == [0, 1, 2, 3]
    assert torch.equal(loaded["model"]["w"], torch.arange(3.0))
    # Atomic write: only the final file and its checksum remain in the folder.
    assert sorted(os.listdir(tmp_path / "sub")) == ["c.pt", "c.sha256"]


def test_load_checkpoint_names_bad_files(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"), pytest.warns(CheckpointWarning, match="no checksum file"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(1)}, other)
    with pytest.raises(ValueError, match="not a himnet_fast checkpoint"), pytest.warns(CheckpointWarning):
        load_checkpoint(other)


def test_table_row_has_the_paper_columns():
    metrics = {"mAP": {f"{t / 10:.2f}": 10.0 * t for t in range(1, 8)}, "avg_0.1_0.5": 30.0, "avg_0.1_0.7": 40.0}
    header, row = table_row("HiM-Net", metrics)
    assert header == ("Method | mAP@0.1 | mAP@0.2 | mAP@0.3 | mAP@0.4 | mAP@0.5 | mAP@0.6 | mAP@0.7 | "
                      "AVG(0.1:0.5) | AVG(0.1:0.7)")
    assert row == "HiM-Net | 10.0 | 20.0 | 30.0 | 40.0 | 50.0 | 60.0 | 70.0 | 30.0 | 40.0"


def test_every_loss_term_has_a_curve_colour():
    from himnet_fast.losses import LOSS_KEYS
    from himnet_fast.plots import LOSS_COLORS

    assert set(LOSS_COLORS) == set(LOSS_KEYS)


def test_plots_write_images(tmp_path):
    from himnet_fast.inference import VideoOutput
    from himnet_fast.plots import plot_curves, plot_timeline, smooth

    np.testing.assert_allclose(smooth([1.0, 3.0, 5.0, 7.0], 2), [1.0, 2.0, 4.0, 6.0])
    history = {"iteration": [1, 2, 3], "mil": [1.0, 0.8, 0.6], "cll": [0.0, 0.0, 0.0], "vcl": [0.5, 0.4, 0.3],
               "scl": [2.0, 1.5, 1.0], "total": [1.5, 1.2, 0.9]}
    evals = [{"iteration": 3, "mAP": {"0.10": 20.0, "0.70": 5.0}, "avg_0.1_0.7": 12.0}]
    curves = plot_curves(history, evals, tmp_path / "curves.png")
    T, K = 50, 3
    rng = np.random.default_rng(0)
    cas = rng.normal(size=(T, K)).astype(np.float32)
    att = rng.uniform(size=T).astype(np.float32)
    out = VideoOutput("v1", att, cas, cas * att[:, None])
    dets = np.array([[0, 1.0, 5.0, 0.9], [1, 2.0, 3.0, 0.5]])
    gt = [{"segment": [1.2, 4.8], "label": "a"}]
    timeline = plot_timeline(out, dets, gt, ["a", "b"], tmp_path / "timeline_v1.png")
    for path in (curves, timeline):
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 0  # a real, non-blank picture


def test_train_module_reports_bad_options_in_one_line(tmp_path):
    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-m", "himnet_fast.train", "--lr", "0", "--out", str(tmp_path)],
                          cwd=repo, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "python -m himnet_fast.train: error: --lr: must be > 0, got 0.0"
    assert list(tmp_path.iterdir()) == []  # nothing generated or written


def test_missing_gpu_is_reported_before_any_work(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present, so --device cuda is valid here")
    with pytest.raises(ValueError, match="--device: 'cuda' requested but no CUDA device"):
        main(["--device", "cuda", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])
    assert not (tmp_path / "cache").exists()


def test_detection_options_are_the_detection_config():
    """One dataclass (postprocess.DetectionConfig) is the run's detect section; every field is an
    option, and every preset keeps the base code's detection: no score floor, "+1" IoU."""
    from himnet_fast.postprocess import DetectionConfig

    cfg = parse_config(["--thresholds", "0.2,0.5", "--min-score", "0.1", "--offset", "0",
                           "--post-backend", "reference", "--infer-r", "8", "--seconds-per-snippet", "0.5"]).cfg
    assert isinstance(cfg.detect, DetectionConfig)
    assert cfg.detect.thresholds == (0.2, 0.5) and cfg.detect.min_score == 0.1 and cfg.detect.offset == 0
    assert (cfg.detect.backend, cfg.detect.r, cfg.detect.seconds_per_snippet) == ("reference", 8, 0.5)
    for name in ("synthetic", "thumos14", "anet13"):
        assert preset(name).detect.min_score is None and preset(name).detect.offset == 1, name
    assert RunConfig.from_dict(cfg.to_dict()).detect == cfg.detect


def test_checkpoints_with_the_old_detection_keys_still_load():
    d = preset("synthetic").to_dict()
    d["detect"]["infer_r"] = d["detect"].pop("r")
    d["detect"]["post_backend"] = d["detect"].pop("backend")
    cfg = RunConfig.from_dict(d)
    assert cfg.detect.r == 10 and cfg.detect.backend == "auto"


def test_a_config_saved_before_vcl_grad_resumes_with_the_base_reading():
    # Checkpoints written before the option trained VCL with plain autograd ("base"); the new
    # default ("features") must not change them on --resume. A config that has the key keeps it.
    d = preset("synthetic").to_dict()
    assert d["loss"].pop("vcl_grad") == "features"
    assert RunConfig.from_dict(d).loss.vcl_grad == "base"
    assert RunConfig.from_dict(preset("synthetic").to_dict()).loss.vcl_grad == "features"


def test_a_config_saved_before_cll_norm_resumes_with_the_paper_reading():
    # Checkpoints (and metrics.json configs) written before the option computed Eq. 6 with
    # Eq. 5's 1/(C+1) ("paper"); the new default ("procl") must not change them on --resume.
    d = preset("synthetic").to_dict()
    assert d["loss"].pop("cll_norm") == "procl"
    assert RunConfig.from_dict(d).loss.cll_norm == "paper"
    assert RunConfig.from_dict(preset("synthetic").to_dict()).loss.cll_norm == "procl"
