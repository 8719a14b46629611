"""Shared fixtures. Triton kernels run through the interpreter when no GPU is present;
the variable must be set before any kernel module is imported."""
import os
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("HIMNET_FAST_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real annotation files (../shared/data); skips where absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real annotation files not found at {SHARED_DATA} (a user's machine without ../shared/data)")
    return SHARED_DATA


@pytest.fixture
def cuda_device() -> torch.device:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device (runs in bench/gpu_check.sh on the GPU machine)")
    return torch.device("cuda")


@pytest.fixture(params=["cpu", "cuda"])
def device(request) -> torch.device:
    """Where the Triton kernels run (tests/test_triton_*.py): the interpreter on the CPU, or a CUDA device."""
    if request.param == "cuda":
        return request.getfixturevalue("cuda_device")
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("Triton on CPU tensors needs TRITON_INTERPRET=1 (conftest sets it only when no GPU is present)")
    return torch.device("cpu")


@pytest.fixture
def kernel_device() -> torch.device:
    """Where a single-device Triton test runs: the GPU when there is one, else the CPU through
    the interpreter (set above). Tests parametrized over both use ``device`` instead."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# A tiny synthetic THUMOS14-like set and model for end-to-end runs of the train CLI: a few
# seconds per run on two cores.
# TINY_SET_MODEL: the set, model and clip; TINY_TRAIN adds the train CLI's run-only flags.
TINY_SET_MODEL = ["--synth-videos", "120", "--synth-dim", "32", "--hidden-dim", "32", "--attention-dim", "16",
                  "--clip-len", "96", "--batch-size", "8", "--num-pairs", "2"]
TINY_TRAIN = TINY_SET_MODEL + ["--timelines", "1", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    """A cache folder holding the tiny synthetic set of ``TINY_TRAIN`` (generated once)."""
    from himnet_fast.config import preset
    from himnet_fast.run_data import ensure_synthetic

    folder = tmp_path_factory.mktemp("cache")
    cfg = preset("synthetic")
    cfg.data.cache_dir, cfg.data.synth_videos, cfg.data.synth_dim = str(folder), 120, 32
    ensure_synthetic(cfg.data, log=lambda msg: None)
    return folder


@pytest.fixture
def tiny_args(tiny_cache):
    """``tiny_args(out, *extra)``: train CLI arguments of a tiny run writing to ``out``."""
    return lambda out, *extra: TINY_TRAIN + ["--cache-dir", str(tiny_cache), "--out", str(out), *extra]
