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


@pytest.fixture
def kernel_device() -> torch.device:
    """Where a single-device Triton test runs: the GPU when there is one, else the CPU through
    the interpreter (set above). Tests parametrized over both use ``device`` instead."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
