"""Fused HiM-Net losses (kernels/himnet_loss.py) against ``himnet_losses_reference``.

Values of L_MIL, L_CLL, L_SCL and the gradients dS, dA (for random upstream weights on the
three terms) on fresh random inputs of many shapes, every SCL variant, strided and half inputs,
extreme logits and clamped attention. Runs through the Triton interpreter without a GPU and on
CUDA with one (the ``device`` fixture of conftest.py).
"""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from kernel_checks import assert_grads_close, topk_sizes

from himnet_fast import ops
from himnet_fast.reference import losses as R

KERNEL_DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # the kernel_device fixture


def make_inputs(B, T, K, device, dtype=torch.float32, logit_scale=2.0, seed=0):
    """S (B, T, K) logits, A (B, T) in (0, 1), labels (B, K-1) multi-hot with >= 1 positive."""
    g = torch.Generator().manual_seed(seed)
    S = torch.randn(B, T, K, generator=g) * logit_scale
    A = torch.rand(B, T, generator=g)
    labels = (torch.rand(B, K - 1, generator=g) < 0.3).float()
    labels[torch.arange(B), torch.randint(0, K - 1, (B,), generator=g)] = 1.0
    return S.to(device, dtype), A.to(device, dtype), labels.to(device)


def compare(S, A, labels, k, alpha=4.0, variant="self", rtol=1e-5, grad_rtol=1e-4, ref_dtype=None, mil_norm="paper",
            suppression="product", backend="triton", cll_norm="paper"):
    """Fused vs reference: the three terms, then dS and dA for random upstream weights.

    ref_dtype: run the reference on inputs cast to this dtype (e.g. float32 for half inputs).
    backend: the dispatcher's backend under test ("reference": the dispatcher's own handling,
    e.g. its float32 upcast of half inputs, against the reference called directly).
    """
    ref_dtype = ref_dtype or S.dtype
    S_r = S.detach().to(ref_dtype).requires_grad_()
    A_r = A.detach().to(ref_dtype).requires_grad_()
    S_f = S.detach().clone().requires_grad_()
    A_f = A.detach().clone().requires_grad_()
    options = {"alpha": alpha, "scl_variant": variant, "mil_norm": mil_norm, "suppression": suppression,
               "cll_norm": cll_norm}
    expected = R.himnet_losses_reference(S_r, A_r, labels, k, **options)
    actual = ops.himnet_losses(S_f, A_f, labels, k, backend=backend, **options)
    assert isinstance(actual, R.HiMNetLossTerms)
    for name in R.HiMNetLossTerms._fields:
        a, e = getattr(actual, name), getattr(expected, name)
        assert a.shape == () and a.dtype == torch.float32, name
        torch.testing.assert_close(a, e.float(), rtol=rtol, atol=rtol, msg=lambda m: f"L_{name}: {m}")
    weights = torch.rand(3, generator=torch.Generator().manual_seed(1)) + 0.5
    sum(w * t for w, t in zip(weights, expected)).backward()
    sum(w * t for w, t in zip(weights, actual)).backward()
    assert S_f.grad.dtype == S.dtype and A_f.grad.dtype == A.dtype
    S_x = S.detach().double().requires_grad_()
    A_x = A.detach().double().requires_grad_()
    exact = R.himnet_losses_reference(S_x, A_x, labels.double(), k, **options)
    sum(w * t for w, t in zip(weights.double(), exact)).backward()
    assert_grads_close(S_f.grad.to(ref_dtype), S_r.grad, grad_rtol, exact=S_x.grad)
    assert_grads_close(A_f.grad.to(ref_dtype), A_r.grad, grad_rtol, exact=A_x.grad)


# (B, T, K, k, variant): a varied sample of B in 1..12, T in {1, 7, 60, 137, 560},
# K in {2, 21, 201}, k in {1, T, T // 7}, SCL variant in {self, target, none}.
VARIANTS = ("self", "target", "none")
SHAPES = [(1, 1, 2), (3, 7, 21), (12, 7, 2), (2, 60, 201), (6, 60, 21), (1, 137, 201), (4, 137, 2), (2, 560, 21),
          (1, 560, 2)]
CASES = [(B, T, K, k, VARIANTS[(i + j) % 3]) for i, (B, T, K) in enumerate(SHAPES) for j, k in enumerate(topk_sizes(T))]


@pytest.mark.parametrize("B,T,K,k,variant", CASES)
def test_fused_losses_match_reference(device, B, T, K, k, variant):
    S, A, labels = make_inputs(B, T, K, device, seed=B * 7919 + T * 31 + K + k)
    compare(S, A, labels, k, variant=variant)


@pytest.mark.parametrize("B,T,K,k", [(1, 1, 2, 1), (3, 7, 21, 1), (2, 60, 201, 8), (4, 137, 2, 137), (2, 560, 21, 80)])
def test_fused_losses_base_mil_norm(device, B, T, K, k):
    """CO2-Net's label-normalised MIL (mil_norm="base"): values and gradients as the reference."""
    S, A, labels = make_inputs(B, T, K, device, seed=B * 131 + T + K)
    compare(S, A, labels, k, mil_norm="base")


@pytest.mark.parametrize("B,T,K,k,mil_norm", [(1, 1, 2, 1, "paper"), (3, 7, 21, 1, "base"), (2, 60, 201, 8, "paper"),
                                              (4, 137, 2, 137, "base"), (2, 560, 21, 80, "base")])
def test_fused_losses_shifted_suppression(device, B, T, K, k, mil_norm):
    """CO2-Net's shifted S_hat = A * (S - min over classes) + min: values and gradients as the
    reference, with either MIL normalisation."""
    S, A, labels = make_inputs(B, T, K, device, seed=B * 17 + T * 3 + K)
    compare(S, A, labels, k, mil_norm=mil_norm, suppression="shifted")


@pytest.mark.parametrize("B,T,K,k,mil_norm,suppression", [(1, 1, 2, 1, "paper", "product"), (3, 7, 21, 1, "base", "shifted"),
                                                          (2, 60, 201, 8, "base", "shifted"), (4, 137, 2, 137, "paper", "shifted"),
                                                          (5, 33, 17, 4, "base", "product")])
def test_fused_losses_procl_cll_norm(device, B, T, K, k, mil_norm, suppression):
    """ProCL's CLL, the sum over the classes (cll_norm="procl"): values and gradients as the
    reference, with either MIL normalisation and suppression."""
    S, A, labels = make_inputs(B, T, K, device, seed=B * 23 + T * 5 + K)
    compare(S, A, labels, k, mil_norm=mil_norm, suppression=suppression, cll_norm="procl")


def test_fused_losses_shifted_suppression_tied_minimum(device):
    """Rows whose minimum is shared by several classes: the gradient through the minimum goes to
    the first of them in both backends (torch.min's index)."""
    S, A, labels = make_inputs(2, 40, 7, device, seed=21)
    # Every third row: classes 2-4 tie exactly at a new row minimum (low values, far from the
    # top-k of their columns, whose own ties the two backends break differently).
    S[:, ::3, 2:5] = S[:, ::3].amin(dim=-1, keepdim=True) - 1.0
    compare(S, A, labels, 5, suppression="shifted")


@pytest.mark.parametrize("alpha", [0.0, 0.5, 10.0])
def test_fused_losses_alpha(device, alpha):
    S, A, labels = make_inputs(3, 60, 21, device, seed=5)
    compare(S, A, labels, 8, alpha=alpha, variant="self")
    compare(S, A, labels, 8, alpha=alpha, variant="target")


def test_alpha_zero_equals_variant_none(device):
    S, A, labels = make_inputs(2, 60, 21, device, seed=6)
    a = ops.himnet_losses(S, A, labels, 8, alpha=0.0, scl_variant="self", backend="triton")
    b = ops.himnet_losses(S, A, labels, 8, alpha=4.0, scl_variant="none", backend="triton")
    torch.testing.assert_close(a.scl, b.scl)
    assert not torch.allclose(a.scl, ops.himnet_losses(S, A, labels, 8, backend="triton").scl)


def test_fused_losses_extreme_logits(device):
    """Logits far apart: b of the arg-max class rounds to 1, so log(1 - b) needs the stable form."""
    S, A, labels = make_inputs(3, 60, 21, device, logit_scale=60.0, seed=7)
    compare(S, A, labels, 8, variant="self")


def test_fused_losses_clamped_attention(device):
    """A exactly 0 or 1 (clamped to [EPS, 1 - EPS] in Eq. 9-10: no gradient through the clamp)."""
    S, A, labels = make_inputs(2, 137, 21, device, seed=8)
    A[:, ::3] = 0.0
    A[:, 1::3] = 1.0
    compare(S, A, labels, 19, variant="self")
    compare(S, A, labels, 19, variant="target")


def test_fused_losses_strided_inputs_and_bool_labels(device):
    """S as the transpose of a (B, K, T) conv output, A a strided view, bool labels."""
    S, A, labels = make_inputs(4, 60, 21, device, seed=9)
    S = S.transpose(1, 2).contiguous().transpose(1, 2)
    A = torch.stack([A, A], dim=-1)[..., 0]
    assert not S.is_contiguous() and not A.is_contiguous()
    compare(S, A, labels.bool(), 8, variant="target")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fused_losses_half_inputs(device, dtype):
    """Half inputs, S distinct per column (multiples of 1/8, exact in bf16/fp16); compared with
    the float32 reference on the same (upcast) values, so S * A is the same float32 product."""
    B, T, K = 3, 60, 21
    g = torch.Generator().manual_seed(10)
    S = torch.stack([torch.randperm(T, generator=g) for _ in range(B * K)]).reshape(B, K, T).transpose(1, 2)
    S = ((S.float() - T / 2) / 8).contiguous()
    A = torch.rand(B, T, generator=g)
    labels = (torch.rand(B, K - 1, generator=g) < 0.3).float()
    compare(S.to(device, dtype), A.to(device, dtype), labels.to(device), 8, rtol=1e-4, grad_rtol=1e-2,
            ref_dtype=torch.float32)


def test_fused_losses_long_sequence(device):
    """T = 8192 snippets: the select kernel reads each column in chunks; many row tiles."""
    S, A, labels = make_inputs(1, 8192, 2, device, seed=11)
    compare(S, A, labels, 8192 // 7)


def _valid():
    S, A, labels = make_inputs(2, 10, 4, "cpu", seed=12)
    return {"S": S, "A": A, "labels": labels, "k": 2}


@pytest.mark.parametrize(
    "change,match",
    [
        ({"S": torch.randn(10, 4)}, "S"),
        ({"S": torch.randn(2, 10, 1)}, "S"),
        ({"A": torch.rand(2, 9)}, "A"),
        ({"A": torch.rand(2, 10) + 1.0}, "A"),
        ({"A": torch.randint(0, 2, (2, 10))}, "A"),
        ({"labels": torch.ones(2, 4)}, "labels"),
        ({"labels": torch.full((2, 3), 0.5)}, "labels"),
        ({"k": 0}, "k"),
        ({"k": 11}, "k"),
        ({"alpha": -1.0}, "alpha"),
        ({"scl_variant": "both"}, "scl_variant"),
        ({"mil_norm": "co2"}, "mil_norm"),
        ({"cll_norm": "sum"}, "cll_norm"),
        ({"suppression": "min"}, "suppression"),
    ],
)
@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_himnet_losses_rejects_bad_input(change, match, backend):
    kwargs = {**_valid(), **change}
    with pytest.raises(ValueError, match=match):
        ops.himnet_losses(backend=backend, **kwargs)


def test_check_values_false_skips_only_value_checks(kernel_device):
    kwargs = {key: v.to(kernel_device) if torch.is_tensor(v) else v for key, v in _valid().items()}
    kwargs["A"] = kwargs["A"] + 1.0  # out of [0, 1]: a value check
    out = ops.himnet_losses(backend="triton", check_values=False, **kwargs)
    assert all(torch.isfinite(t) for t in out)
    with pytest.raises(ValueError, match="S"):
        ops.himnet_losses(backend="triton", check_values=False,
                          **{**kwargs, "S": torch.randn(2, 10, 1, device=kernel_device)})


def test_auto_backend_uses_reference_on_cpu():
    S, A, labels = make_inputs(2, 10, 4, "cpu", seed=13)
    S.requires_grad_()
    out = ops.himnet_losses(S, A, labels, 2)
    assert "HiMNetLossFunction" not in type(out.mil.grad_fn).__name__


def test_kernels_are_imported_lazily():
    """Importing the ops package (and its loss dispatcher) must not define Triton kernels."""
    code = (
        "import sys, himnet_fast.ops, himnet_fast.ops.losses\n"
        "bad = [m for m in sys.modules if m.startswith('himnet_fast.kernels.')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("upstream", ["announced", "multiple", "other", "one_term"])
def test_gradient_written_in_forward(device, upstream):
    """grad_weights: dS, dA from the forward pass are used as they are (upstream = the announced
    weights), scaled (a multiple of them) or recomputed (anything else) -- always correct."""
    S, A, labels = make_inputs(3, 137, 21, device, seed=14)
    weights = (1.0, 1.0, 0.01)
    upstream_weights = {"announced": weights, "multiple": (2.5, 2.5, 0.025), "other": (0.3, 1.7, 0.2),
                        "one_term": (1.0, 0.0, 0.0)}[upstream]
    grads = {}
    backends = {"fused": {"backend": "triton", "grad_weights": weights}, "reference": {"backend": "reference"}}
    for name, kwargs in backends.items():
        S_x, A_x = S.clone().requires_grad_(), A.clone().requires_grad_()
        terms = ops.himnet_losses(S_x, A_x, labels, 19, **kwargs)
        if name == "fused" and upstream in ("announced", "multiple"):
            S_x.data.neg_()  # behind autograd's back: a backward that re-read S would now be wrong
        sum(w * t for w, t in zip(upstream_weights, terms)).backward()
        grads[name] = (S_x.grad, A_x.grad)
    assert_grads_close(grads["fused"][0], grads["reference"][0])
    assert_grads_close(grads["fused"][1], grads["reference"][1])


def test_gradient_written_in_forward_twice(device):
    """A second backward through the same graph (retain_graph) recomputes into new buffers and
    leaves the first result untouched."""
    S, A, labels = make_inputs(2, 60, 21, device, seed=15)
    S.requires_grad_()
    terms = ops.himnet_losses(S, A, labels, 8, backend="triton", grad_weights=(1.0, 1.0, 0.01))
    loss = terms.mil + terms.cll + 0.01 * terms.scl
    (first,) = torch.autograd.grad(loss, S, retain_graph=True)
    kept = first.clone()
    (second,) = torch.autograd.grad(2.0 * loss, S)
    torch.testing.assert_close(first, kept, rtol=0, atol=0)
    torch.testing.assert_close(second, 2.0 * kept)


@pytest.mark.parametrize("bad", [(1.0, 1.0), (0.0, 0.0, 0.0), (1.0, float("nan"), 1.0), "111"])
def test_grad_weights_rejected(bad):
    with pytest.raises(ValueError, match="grad_weights"):
        ops.himnet_losses(**_valid(), backend="triton", grad_weights=bad)


def test_too_many_classes_for_the_fused_kernel(kernel_device):
    """More classes than one register tile holds: the Triton backend refuses with a reason."""
    from himnet_fast.ops.losses import MAX_FUSED_CLASSES

    S, A, labels = make_inputs(1, 3, MAX_FUSED_CLASSES + 1, kernel_device, seed=16)
    with pytest.raises(ValueError, match="S: C\\+1"):
        ops.himnet_losses(S, A, labels, 1, backend="triton")
    assert torch.isfinite(ops.himnet_losses(S, A, labels, 1, backend="reference").mil)


COMPILE_SCRIPT = r"""
import os, sys
os.environ.pop("TRITON_INTERPRET", None)
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from himnet_fast.kernels import himnet_loss as hl, topk_mean as tm

FLOATS = ("alpha", "inv_B", "inv_k", "w_mil", "w_cll", "w_scl")

def build(kernel, consts, warps, ints=("thr_ptr",)):
    sig = {n: "constexpr" if n in consts else "*i32" if n in ints else "*bf16" if n in ("S_ptr", "dS_ptr")
           else "*fp32" if n.endswith("_ptr") else "fp32" if n in FLOATS else "i32" for n in kernel.arg_names}
    triton.compile(ASTSource(kernel, sig, consts), target=GPUTarget("cuda", 90, 32), options={"num_warps": warps})

for T, K, B in [(560, 21, 10), (9000, 2, 1)]:
    bt, bc, single, w = tm.select_config(T, K, B)
    for has_a in (True, False):
        build(tm._topk_select_kernel, {"HAS_A": has_a, "SHIFTED": has_a and T > 1000, "BLOCK_T": bt, "BLOCK_C": bc,
                                       "SINGLE": single}, w)
build(tm._topk_grad_kernel, {"BLOCK_T": 128, "BLOCK_C": 32}, 4)
bt, bk, w = hl.loss_config(2048, 201)
for mode in range(4):
    build(hl._himnet_loss_kernel, {"VARIANT": mode % 3, "MIL_NORM": mode % 2, "SHIFTED": mode >= 2, "MODE": mode,
                                   "BLOCK_T": bt, "BLOCK_K": bk}, w)
print("compiled")
"""


def test_kernels_compile_for_hopper():
    """The interpreter accepts code the compiler rejects (e.g. non-constexpr globals): compile
    every kernel for sm_90 (PTX and cubin, no GPU needed) in a process without the interpreter."""
    if torch.cuda.is_available():
        pytest.skip("with a GPU the CUDA-parametrized tests compile every kernel for the real device")
    try:
        from triton.backends.compiler import GPUTarget  # noqa: F401
        from triton.compiler import ASTSource  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"this Triton has no ASTSource/GPUTarget compile API: {exc}")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "compiled" in done.stdout, done.stderr[-3000:]


# --------------------------------------------------------------------------- issue 13: no silent NaN

BOUND = 1e15  # reference.losses.MAX_MAGNITUDE, the largest |S| the losses accept
HALF_CASES = [(1, 1, 2, 1, "paper", "product"), (3, 7, 21, 1, "base", "shifted"), (2, 60, 201, 8, "paper", "shifted"),
              (4, 137, 21, 19, "base", "product")]


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("B,T,K,k,mil_norm,suppression", HALF_CASES)
def test_half_inputs_compute_in_float32(device, backend, dtype, B, T, K, k, mil_norm, suppression):
    """float16 / bfloat16 S and A: both backends compute in float32 and return float32 terms equal
    to the float32 reference on the upcast inputs (rtol 1e-5; the reference backend runs exactly
    that computation), gradients in the input dtype (rtol 1e-2, their half rounding).

    Saturated attention (A = 0 or 1) and background probabilities that round to 1 in half
    precision made SCL NaN before: the clamp to 1 - 1e-6 rounds to 1 there, so log(1 - a) = -inf.
    S is distinct per column (multiples of 1/16 below T/16, exact in both half types for
    T <= 256), so the top-k has no ties, which the backends' gradients break differently.
    """
    g = torch.Generator().manual_seed(B * 7 + T + K)
    S = torch.stack([torch.randperm(T, generator=g) for _ in range(B * K)]).reshape(B, K, T).transpose(1, 2)
    S = (S.float() - T / 2) / 8
    A = torch.rand(B, T, generator=g)
    A[:, ::3] = 1.0
    A[:, 1::3] = 0.0
    labels = (torch.rand(B, K - 1, generator=g) < 0.3).float()
    compare(S.to(device, dtype), A.to(device, dtype), labels.to(device), k, rtol=1e-5, grad_rtol=1e-2,
            ref_dtype=torch.float32, mil_norm=mil_norm, suppression=suppression, backend=backend)


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("value", [3e38, -3e38])
def test_logits_beyond_the_bound_raise_value_error(kernel_device, backend, value):
    """S = +-3e38 (finite in float32) raises a ValueError naming S and the bound. The terms of such
    logits are not representable (log-probabilities of the order of the spread of S, 6e38, summed
    over classes); before, the top-k sum overflowed to inf and MIL / CLL came out NaN."""
    assert R.MAX_MAGNITUDE == BOUND
    S, A, labels = make_inputs(2, 10, 4, kernel_device, seed=17)
    one = S.clone()
    one[0, 3, 1] = value
    for bad in (torch.full_like(S, value), one):
        with pytest.raises(ValueError, match=r"^S: .*1e\+15"):
            ops.himnet_losses(bad, A, labels, 3, backend=backend)


@pytest.mark.parametrize("suppression", ["product", "shifted"])
def test_logits_at_the_bound_give_finite_terms(device, suppression):
    """|S| up to the bound, both signs, saturated attention: finite terms and gradients that
    match the reference (nothing in either backend overflows below the bound)."""
    S, A, labels = make_inputs(2, 60, 21, device, seed=18)
    magnitude = 0.5 + 0.5 * torch.rand(S.shape, generator=torch.Generator().manual_seed(19))  # distinct: no ties
    S = torch.sign(S) * BOUND * magnitude.to(device)
    A[:, ::3] = 0.0
    A[:, 1::3] = 1.0
    compare(S.float(), A, labels, 8, suppression=suppression)


def _finite_or_value_error(fn, *inputs):
    """fn(*inputs) -> tensors: either it raises a ValueError, or its outputs and the gradients
    of their sum with respect to the inputs are finite."""
    inputs = [x.clone().requires_grad_() for x in inputs]
    try:
        out = fn(*inputs)
    except ValueError:
        return "error"
    assert all(bool(torch.isfinite(t).all()) for t in out), out
    sum(t.sum() for t in out).backward()
    assert all(bool(torch.isfinite(x.grad).all()) for x in inputs)
    return "finite"


F32_BOUND = float(np.float32(BOUND))  # hypothesis wants float32 bounds exactly representable
F32_MAX = float(np.finfo(np.float32).max)
BOUNDED = st.floats(-F32_BOUND, F32_BOUND, width=32)
HUGE = st.sampled_from([F32_MAX, -F32_MAX, 3e38, -3e38, 1e38, -1e38, F32_BOUND, -F32_BOUND])  # sums overflow
EXTREME = st.one_of(st.floats(width=32, allow_nan=False, allow_infinity=False), HUGE, BOUNDED)


@st.composite
def extreme_inputs(draw):
    """S (B, T, K), A (B, T), labels (B, C), k: S within the bound, of huge values only, or any
    finite float32 value; A in [0, 1] or anywhere."""
    B, T, K = draw(st.integers(1, 2)), draw(st.integers(1, 6)), draw(st.integers(2, 4))
    s_values = draw(st.sampled_from([BOUNDED, HUGE, EXTREME]))
    probability = st.floats(0.0, 1.0, width=32)
    a_values = probability if draw(st.booleans()) else st.one_of(probability, EXTREME)
    S = torch.from_numpy(draw(hnp.arrays(np.float32, (B, T, K), elements=s_values, fill=s_values)))
    A = torch.from_numpy(draw(hnp.arrays(np.float32, (B, T), elements=a_values)))
    labels = torch.from_numpy(draw(hnp.arrays(np.bool_, (B, K - 1)))).float()
    return S, A, labels, draw(st.sampled_from(range(1, T + 1)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(inputs=extreme_inputs(), suppression=st.sampled_from(R.SUPPRESSIONS), mil_norm=st.sampled_from(R.MIL_NORMS),
       variant=st.sampled_from(R.SCL_VARIANTS), cll_norm=st.sampled_from(R.CLL_NORMS))
def test_extreme_finite_inputs_never_give_nan(inputs, suppression, mil_norm, variant, cll_norm):
    """Property: for any finite float32 S and A, both backends return finite values with finite
    gradients or raise a ValueError, never NaN or inf: ``topk_mean`` is always finite,
    ``himnet_losses`` raises exactly when |S| > 1e15 or A is outside [0, 1]."""
    S, A, labels, k = (x.to(KERNEL_DEVICE) if torch.is_tensor(x) else x for x in inputs)
    options = {"suppression": suppression, "mil_norm": mil_norm, "scl_variant": variant, "cll_norm": cll_norm}
    valid = bool((S.abs() <= BOUND).all() and ((A >= 0) & (A <= 1)).all())
    for backend in ("reference", "triton"):
        outcome = _finite_or_value_error(lambda S, A: ops.himnet_losses(S, A, labels, k, backend=backend, **options),
                                         S, A)
        assert outcome == ("finite" if valid else "error")
        assert _finite_or_value_error(lambda S: (ops.topk_mean(S, k, backend=backend),), S) == "finite"
