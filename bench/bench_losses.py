"""Benchmark: fused Triton losses vs the PyTorch reference (eager and torch.compile), fwd + bwd.

Each group holds the implementations of one shape so pytest-benchmark shows their ratio::

    .venv/bin/pytest bench/bench_losses.py --benchmark-only --benchmark-group-by=group

Groups ``losses B,T,K``: L_MIL + L_CLL + 0.01 L_SCL and its backward (dS, dA) at the THUMOS14
training shape (10, 560, 21), the ActivityNet1.3 shape (10, 60, 201) and a large (64, 2048, 201).
Groups ``topk B,T,K``: Eq. 1 top-k mean + backward vs ``torch.topk(...).values.mean`` + backward.

"fused" calls the Triton backend (``check_values=False``: no host syncs; the backward recomputes),
"fused_fwdgrad" the same with ``grad_weights`` = the Eq. 11 weights (the forward writes dS, dA,
the backward only checks the upstream gradients on the device); "eager" the reference
``himnet_losses_reference`` (which validates its inputs, a few host syncs on a GPU);
"compile" ``torch.compile`` of that reference (its checks cause graph breaks).
On a machine without a GPU the Triton cases skip (interpreter timings mean nothing), and so do
the compiled ones and the large shape (minutes per round on 2 cores); the reference runs.
The GPU acceptance figures come from bench/gpu_losses_report.py.
"""
from __future__ import annotations

import functools

import pytest
import torch

from himnet_fast import ops
from himnet_fast.reference import losses as R

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
SHAPES = {"thumos14": (10, 560, 21), "anet13": (10, 60, 201), "large": (64, 2048, 201)}
IMPLS = ("fused", "fused_fwdgrad", "eager", "compile")
EQ11_WEIGHTS = (1.0, 1.0, 0.01)  # upstream weights of (L_MIL, L_CLL, L_SCL) in Eq. 11


def make_inputs(B: int, T: int, K: int, device=DEVICE, seed: int = 0):
    """Leaf tensors S (B, T, K), A (B, T) with grad, labels (B, K-1) multi-hot, k = T // 7."""
    g = torch.Generator().manual_seed(seed)
    S = (torch.randn(B, T, K, generator=g) * 2).to(device).requires_grad_()
    A = torch.rand(B, T, generator=g).to(device).requires_grad_()
    labels = (torch.rand(B, K - 1, generator=g) < 0.1).float().to(device)
    return S, A, labels, max(1, T // 7)


@functools.lru_cache(maxsize=None)
def compiled_reference():
    return torch.compile(R.himnet_losses_reference)


def loss_fn(impl: str):
    """(S, A, labels, k) -> HiMNetLossTerms for one implementation."""
    if impl == "fused":
        return functools.partial(ops.himnet_losses, backend="triton", check_values=False)
    if impl == "fused_fwdgrad":
        return functools.partial(ops.himnet_losses, backend="triton", check_values=False, grad_weights=EQ11_WEIGHTS)
    if impl == "eager":
        return R.himnet_losses_reference
    return compiled_reference()


def fwd_bwd(fn, S, A, labels, k):
    """One training step of the loss: forward, weighted sum (Eq. 11 weights), backward."""
    S.grad = None
    A.grad = None
    terms = fn(S, A, labels, k)
    sum(w * t for w, t in zip(EQ11_WEIGHTS, terms)).backward()
    if CUDA:
        torch.cuda.synchronize()


def torch_topk_mean(S: torch.Tensor, k: int) -> torch.Tensor:
    """The plain PyTorch path (what the reference computes, without its input checks)."""
    return S.topk(k, dim=1).values.mean(dim=1)


def topk_fwd_bwd(fn, S, k):
    S.grad = None
    fn(S, k).sum().backward()
    if CUDA:
        torch.cuda.synchronize()


def _skip_reason(impl: str, shape: str) -> str | None:
    if CUDA:
        return None
    if impl.startswith("fused"):
        return ("Triton on CPU runs only in the interpreter, whose timings mean nothing "
                "(GPU: bench/gpu_losses_report.py)")
    if impl == "compile":
        return "torch.compile of the reference is a GPU comparison (inductor's CPU build takes minutes here)"
    if shape == "large":
        return "the large shape is a GPU acceptance shape (minutes per round of the reference on 2 CPU cores)"
    return None


def _prepare(benchmark, kind: str, shape: str, impl: str):
    """Skip where this case is not measured here; name the group; fresh inputs for the shape."""
    reason = _skip_reason(impl, shape)
    if reason:
        pytest.skip(reason)
    B, T, K = SHAPES[shape]
    benchmark.group = f"{kind} {shape} B,T,K={B},{T},{K}"
    return make_inputs(B, T, K)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_losses_fwd_bwd(benchmark, shape, impl):
    S, A, labels, k = _prepare(benchmark, "losses", shape, impl)
    fn = loss_fn(impl)
    fwd_bwd(fn, S, A, labels, k)  # warm-up (Triton JIT / inductor compile)
    benchmark(fwd_bwd, fn, S, A, labels, k)
    assert S.grad is not None and torch.isfinite(S.grad).all()


@pytest.mark.parametrize("impl", ("fused", "torch_topk"))
@pytest.mark.parametrize("shape", list(SHAPES))
def test_topk_fwd_bwd(benchmark, shape, impl):
    S, _, _, k = _prepare(benchmark, "topk", shape, "fused" if impl == "fused" else "eager")
    fn = functools.partial(ops.topk_mean, backend="triton", check_values=False) if impl == "fused" else torch_topk_mean
    topk_fwd_bwd(fn, S, k)
    benchmark(topk_fwd_bwd, fn, S, k)
    assert S.grad is not None and torch.isfinite(S.grad).all()
