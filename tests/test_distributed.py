"""Multi-process training under torchrun (gloo on CPU): a 2-process step equals one process
stepping on the mean loss of the same two batches, and a job whose worker is killed restarts
(``--max-restarts``) from its last checkpoint to the weights of an uninterrupted job."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from himnet_fast.checkpoint import load_checkpoint
from himnet_fast.config import preset, torch_threads
from himnet_fast.data import load_dataset
from himnet_fast.run_data import synthetic_folder
from himnet_fast.trainer import Trainer

from conftest import TINY_TRAIN

REPO = Path(__file__).resolve().parent.parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _tiny_config(cache: Path):
    cfg = preset("synthetic")
    cfg.data.cache_dir, cfg.data.synth_videos, cfg.data.synth_dim = str(cache), 120, 32
    cfg.data.clip_len, cfg.data.batch_size, cfg.data.num_pairs = 96, 8, 2
    cfg.model.hidden_dim, cfg.model.attention_dim = 32, 16
    cfg.model.dropout = cfg.model.attention_dropout = 0.0  # the same forward on any rank
    cfg.schedule.progress, cfg.threads = False, 1
    return cfg


def test_two_process_step_equals_one_process_step_on_the_same_two_batches(tiny_cache, tmp_path):
    cfg = _tiny_config(tiny_cache)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg.to_dict()))
    data = synthetic_folder(cfg.data)
    done = subprocess.run(TORCHRUN + [str(REPO / "tests" / "distributed_step.py"), str(tmp_path / "cfg.json"),
                                      str(data), str(tmp_path / "two.pt")], env=ENV, timeout=300, capture_output=True,
                          text=True)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    two = torch.load(tmp_path / "two.pt")
    assert two["world_size"] == 2

    def one_process_step(num_batches: int):
        with torch_threads(1):
            trainer = Trainer(cfg, load_dataset(data))
            terms = []
            for _ in range(num_batches):  # batches 0 and 1 of the stream = rank 0's and rank 1's
                _, X, labels = next(trainer.batches)
                A, S, X_hat = trainer.model(X)
                terms.append(trainer.criterion(A, S, X_hat, labels, trainer.k))
            total = sum(t["total"] for t in terms) / num_batches
            trainer.optimizer.zero_grad()
            total.backward()
            trainer.optimizer.step()
        return trainer.model.state_dict(), total.item()

    weights, total = one_process_step(2)
    assert two["terms"]["total"] == pytest.approx(total, rel=1e-6)
    for key, value in weights.items():
        torch.testing.assert_close(two["model"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    # The comparison can fail: a step on rank 0's batch alone gives other weights.
    alone, _ = one_process_step(1)
    assert any(not torch.allclose(alone[k], weights[k], rtol=1e-5, atol=1e-6) for k in weights)


def _last_iteration(log: Path) -> int:
    try:
        lines = log.read_text().splitlines()
        return json.loads(lines[-1])["iteration"] if lines else 0
    except (OSError, ValueError, KeyError):
        return 0


def test_torchrun_restart_after_a_killed_worker_gives_the_uninterrupted_weights(tiny_cache, tmp_path):
    args = TINY_TRAIN + ["--cache-dir", str(tiny_cache), "--iters", "150", "--ckpt-every", "10",
                         "--eval-every", "0", "--timelines", "0"]
    command = TORCHRUN + ["--max-restarts=1", "-m", "himnet_fast.train"] + args
    done = subprocess.run(command + ["--out", str(tmp_path / "straight")], env=ENV, timeout=300, capture_output=True,
                          text=True)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]

    killed = tmp_path / "killed"
    job = subprocess.Popen(command + ["--out", str(killed)], env=ENV, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 200
        while _last_iteration(killed / "train_log.jsonl") < 25:  # past the checkpoints at 10 and 20
            assert job.poll() is None and time.monotonic() < deadline, "the job ended before the kill"
            time.sleep(0.02)
        os.kill(json.loads((killed / "run.json").read_text())["pid"], signal.SIGKILL)  # rank 0, mid-run
        output, _ = job.communicate(timeout=300)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, output[-3000:]
    assert "torchrun restart: resuming from" in output
    straight, resumed = (load_checkpoint(p / "checkpoint.pt") for p in (tmp_path / "straight", killed))
    assert resumed["iteration"] == 150 and resumed["world_size"] == 2 and len(resumed["ranks"]) == 2
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    log = [json.loads(line)["iteration"] for line in (killed / "train_log.jsonl").read_text().splitlines()]
    assert log == list(range(1, 151))
    metrics = json.loads((killed / "metrics.json").read_text())
    assert (metrics["world_size"], metrics["batch_per_rank"]) == (2, 8)


@pytest.mark.parametrize("world_size, code, reached", [("2", 3, False), ("1", 0, True)])
def test_exit_worker_skips_finalization_only_under_torchrun(world_size, code, reached):
    # A torchrun worker ends at exit_worker with its code, its buffered output flushed; a single
    # process goes on (and exits normally).
    script = ("import sys; from himnet_fast.distributed import exit_worker\n"
              "print('buffered', end=''); sys.stderr.write('err')\n"
              f"exit_worker({code}); print(' after', end='')")
    done = subprocess.run([sys.executable, "-c", script], env={**ENV, "WORLD_SIZE": world_size},
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (code, "buffered after" if reached else "buffered", "err")
