"""``python -m himnet_fast.detect``: detections of a trained checkpoint, reproducible from the
checkpoint alone, identical between post-processing backends, with clear errors."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from himnet_fast.checkpoint import load_checkpoint, save_checkpoint
from himnet_fast.detect import main as detect
from himnet_fast.train import main as train

REPO = Path(__file__).resolve().parent.parent
TINY = ["--synth-videos", "80", "--synth-dim", "32", "--hidden-dim", "32", "--attention-dim", "16",
        "--clip-len", "64", "--batch-size", "8", "--num-pairs", "2", "--timelines", "0", "--no-progress",
        "--no-vcl", "--no-scl", "--lr", "3e-3", "--threads", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The output folder of a tiny training run (checkpoint, detections, metrics)."""
    base = tmp_path_factory.mktemp("detect")
    train(TINY + ["--iters", "40", "--cache-dir", str(base / "cache"), "--out", str(base / "run")])
    return base / "run"


def _by_video(results: dict) -> dict:
    return {v: sorted((d["label"], d["segment"][0], d["segment"][1], d["score"]) for d in dets)
            for v, dets in results["results"].items()}


def test_detect_reproduces_the_training_runs_detections(trained, tmp_path):
    out = tmp_path / "pred.json"
    # The same thread count as the training run's final inference, so the same bits.
    results = detect(["--checkpoint", str(trained / "checkpoint.pt"), "--out", str(out), "--no-progress",
                      "--evaluate", "--threads", "1"])
    written = json.loads(out.read_text())
    assert written["version"] == "VERSION 1.3" and set(written) >= {"results", "external_data"}
    assert _by_video(written) == _by_video(json.loads((trained / "detections.json").read_text()))
    metrics = json.loads((trained / "metrics.json").read_text())
    assert results["metrics"]["mAP"] == metrics["mAP"]
    assert sum(len(v) for v in written["results"].values()) == metrics["num_detections"] > 0


def test_reference_post_processing_gives_the_same_detections(trained, tmp_path):
    fast = detect(["--checkpoint", str(trained / "checkpoint.pt"), "--out", str(tmp_path / "a.json"),
                   "--no-progress"])
    ref = detect(["--checkpoint", str(trained / "checkpoint.pt"), "--out", str(tmp_path / "b.json"),
                  "--no-progress", "--reference"])
    a, b = _by_video(fast), _by_video(ref)
    assert a.keys() == b.keys()
    for video in a:
        assert [d[:1] for d in a[video]] == [d[:1] for d in b[video]], video
        np.testing.assert_allclose([d[1:] for d in a[video]], [d[1:] for d in b[video]], rtol=1e-6, atol=1e-6)


def test_hard_nms_override_changes_the_output(trained, tmp_path):
    soft = detect(["--checkpoint", str(trained / "checkpoint.pt"), "--out", str(tmp_path / "s.json"),
                   "--no-progress"])
    hard = detect(["--checkpoint", str(trained / "checkpoint.pt"), "--out", str(tmp_path / "h.json"),
                   "--no-progress", "--nms", "hard"])
    count = lambda r: sum(len(v) for v in r["results"].values())  # noqa: E731
    assert count(hard) < count(soft)  # hard NMS removes overlaps that soft NMS only rescores


def test_data_that_does_not_match_the_checkpoint_is_refused(trained, tmp_path):
    state = load_checkpoint(trained / "checkpoint.pt")
    state["feature_dim"] = 64
    state["model"] = {k: torch.zeros(1) for k in state["model"]}
    save_checkpoint(state, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="does not match the checkpoint"):
        detect(["--checkpoint", str(tmp_path / "other.pt"), "--out", str(tmp_path / "p.json"), "--no-progress"])
    assert not (tmp_path / "p.json").exists()


def test_command_line_errors_are_one_line_with_status_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "himnet_fast.detect", "--checkpoint", str(tmp_path / "none.pt"),
                           "--out", str(tmp_path / "p.json")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("python -m himnet_fast.detect: error: checkpoint: "
                                                            "file not found")
