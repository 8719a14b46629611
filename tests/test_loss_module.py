"""HiMNetCriterion / LossConfig: composition of Eq. 11, switches, SCL variants, config checks.

The individual terms are verified by hand in test_reference_losses.py; here the module is
compared to those reference terms (its job is to combine them)."""
import math

import pytest
import torch

from himnet_fast.losses import HiMNetCriterion, LossConfig
from himnet_fast.reference import losses as R


def batch(seed=0, B=6, T=7, C=3, D=5):
    g = torch.Generator().manual_seed(seed)
    S = torch.randn(B, T, C + 1, generator=g, dtype=torch.float64, requires_grad=True)
    A = torch.rand(B, T, generator=g, dtype=torch.float64).requires_grad_()
    X = torch.randn(B, T, D, generator=g, dtype=torch.float64, requires_grad=True)
    labels = (torch.rand(B, C, generator=g) < 0.5).double()
    labels[:, 0] = 1.0  # every pair shares class 0, so VCL is active
    return A, S, X, labels


DEFAULT = LossConfig()  # the recipe's readings of the loss (mil_norm, suppression)


def reference_terms(A, S, X, labels, k, alpha=4.0, variant="self"):
    terms = R.himnet_losses_reference(S, A, labels, k, alpha, variant, DEFAULT.mil_norm, DEFAULT.suppression,
                                      DEFAULT.cll_norm)
    return {"mil": terms.mil, "cll": terms.cll, "scl": terms.scl,
            "vcl": R.vcl_loss(S, A, X, labels, suppression=DEFAULT.suppression, grad=DEFAULT.vcl_grad)}


def test_default_config_matches_the_paper():
    cfg = LossConfig()
    assert (cfg.lambda1, cfg.lambda2, cfg.alpha, cfg.delta) == (1.0, 0.01, 4.0, 0.5)
    assert cfg.use_mil and cfg.use_cll and cfg.use_vcl and cfg.use_scl
    assert cfg.scl_variant == "self" and cfg.backend == "auto"
    assert (cfg.mil_norm, cfg.suppression) == ("base", "shifted")  # CO2-Net's, chosen by docs/RESULTS.md
    assert cfg.vcl_grad == "features"  # the paper's VCL on X_hat, chosen by docs/RESULTS.md section 10
    assert cfg.cll_norm == "procl"  # the authors' ProCL code's CLL, chosen by docs/RESULTS.md section 16


def test_criterion_combines_terms_as_eq11():
    A, S, X, labels = batch()
    out = HiMNetCriterion(LossConfig(lambda1=2.0, lambda2=0.5))(A, S, X, labels, 2)
    ref = reference_terms(A, S, X, labels, 2)
    assert set(out) == {"mil", "cll", "vcl", "scl", "norm", "guide", "ml", "mutual", "total"}
    assert out["norm"].item() == out["guide"].item() == out["ml"].item() == out["mutual"].item() == 0.0  # opt-in
    for name in ref:
        torch.testing.assert_close(out[name], ref[name])
    assert ref["vcl"].item() > 0 and ref["scl"].item() > 0  # every term contributes
    torch.testing.assert_close(out["total"], ref["mil"] + ref["cll"] + 2.0 * ref["vcl"] + 0.5 * ref["scl"])
    torch.testing.assert_close(out["total"], R.total_loss(S, A, X, labels, 2, 2.0, 0.5, mil_norm=DEFAULT.mil_norm,
                                                          suppression=DEFAULT.suppression, vcl_grad=DEFAULT.vcl_grad,
                                                          cll_norm=DEFAULT.cll_norm)["total"])


def test_cll_weight_scales_cll_in_the_total():
    A, S, X, labels = batch()
    ref = reference_terms(A, S, X, labels, 2)
    out = HiMNetCriterion(LossConfig(cll_weight=3.0, backend="reference"))(A, S, X, labels, 2)
    assert ref["cll"].item() > 0
    torch.testing.assert_close(out["cll"], ref["cll"])  # the term is reported unweighted
    torch.testing.assert_close(out["total"], ref["mil"] + 3.0 * ref["cll"] + ref["vcl"] + 0.01 * ref["scl"])


def test_procl_cll_norm_repeats_the_paper_norm_at_weight_k_bit_for_bit():
    """docs/RESULTS.md section 16 counts the --cll-weight 21 runs of sections 13-15 as runs of
    cll_norm="procl": the reference total and its gradients must be the same bits."""
    A, S, X, labels = batch()
    K = S.shape[-1]
    results = []
    for cfg in (LossConfig(cll_norm="procl", backend="reference"),
                LossConfig(cll_norm="paper", cll_weight=float(K), backend="reference")):
        S_, A_, X_ = (t.detach().clone().requires_grad_() for t in (S, A, X))
        out = HiMNetCriterion(cfg)(A_, S_, X_, labels, 2)
        out["total"].backward()
        results.append((out["total"], S_.grad, A_.grad, X_.grad, out["cll"]))
    procl, paper = results
    for a, b in zip(procl[:4], paper[:4]):
        assert torch.equal(a, b)
    assert procl[4].item() == (K * paper[4]).item() > 0  # the term is reported in its own reading


@pytest.mark.parametrize("disabled", ["mil", "cll", "vcl", "scl"])
def test_disabled_term_is_zero_and_left_out(disabled):
    A, S, X, labels = batch(1)
    cfg = LossConfig(**{f"use_{disabled}": False}, backend="reference")
    out = HiMNetCriterion(cfg)(A, S, X, labels, 3)
    ref = reference_terms(A, S, X, labels, 3)
    ref[disabled] = torch.zeros((), dtype=torch.float64)
    assert out[disabled].item() == 0.0
    torch.testing.assert_close(out["total"], ref["mil"] + ref["cll"] + ref["vcl"] + 0.01 * ref["scl"])
    out["total"].backward()
    assert S.grad is not None and S.grad.abs().sum() > 0


def test_only_vcl_enabled_still_backpropagates():
    A, S, X, labels = batch(2)
    cfg = LossConfig(use_mil=False, use_cll=False, use_scl=False)
    out = HiMNetCriterion(cfg)(A, S, X, labels, 2)
    torch.testing.assert_close(out["total"], R.vcl_loss(S, A, X, labels, suppression=DEFAULT.suppression,
                                                        grad=DEFAULT.vcl_grad))
    out["total"].backward()
    assert X.grad.abs().sum() > 0


@pytest.mark.parametrize("variant", ["self", "target", "none"])
def test_scl_variants_pass_through(variant):
    A, S, X, labels = batch(3)
    out = HiMNetCriterion(LossConfig(scl_variant=variant, alpha=2.0))(A, S, X, labels, 2)
    torch.testing.assert_close(out["scl"], R.scl_loss(S, A, 2.0, variant))


def test_alpha_zero_equals_no_uncertainty():
    A, S, X, labels = batch(4)
    zero = HiMNetCriterion(LossConfig(alpha=0.0))(A, S, X, labels, 2)["scl"]
    none = HiMNetCriterion(LossConfig(scl_variant="none"))(A, S, X, labels, 2)["scl"]
    self4 = HiMNetCriterion(LossConfig())(A, S, X, labels, 2)["scl"]
    torch.testing.assert_close(zero, none)
    assert self4.item() < none.item()  # U <= 1 down-weights every term


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        ({"lambda1": -1.0}, "lambda1"),
        ({"lambda2": math.inf}, "lambda2"),
        ({"cll_weight": -1.0}, "cll_weight"),
        ({"alpha": -0.1}, "alpha"),
        ({"scl_variant": "both"}, "scl_variant"),
        ({"backend": "cuda"}, "backend"),
        ({"use_vcl": 1}, "use_vcl"),
        ({"num_pairs": -1}, "num_pairs"),
    ],
)
def test_bad_config_raises(kwargs, arg):
    with pytest.raises(ValueError, match=rf"^{arg}:"):
        LossConfig(**kwargs)


def test_bad_input_raises_naming_the_argument():
    A, S, X, labels = batch(5)
    crit = HiMNetCriterion()
    with pytest.raises(ValueError, match=r"^labels:"):
        crit(A, S, X, labels[:, :2], 2)
    with pytest.raises(ValueError, match=r"^X_hat:"):
        crit(A, S, X[:3], labels, 2)
    with pytest.raises(ValueError, match=r"^A:"):
        crit(A[:, :3], S, X, labels, 2)


@pytest.mark.parametrize("flags", [{}, {"use_cll": False}, {"cll_weight": 3.0}])
def test_triton_backend_gives_the_reference_total_and_gradients(flags, kernel_device):
    """The criterion's fused path (grad_weights hint included) against the reference, float32;
    on the CPU this runs the Triton interpreter."""
    A, S, X, labels = (t.detach().float().to(kernel_device) for t in batch(3))
    grads = {}
    for backend in ("reference", "triton"):
        S_, A_, X_ = (t.clone().requires_grad_() for t in (S, A, X))
        out = HiMNetCriterion(LossConfig(lambda2=0.5, backend=backend, **flags))(A_, S_, X_, labels, 3)
        out["total"].backward()
        grads[backend] = (out["total"].detach(), S_.grad, A_.grad, X_.grad)
    for ref, fast in zip(grads["reference"], grads["triton"]):
        torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5)


def test_co2net_attention_terms_are_opt_in_and_weighted():
    """norm_weight / guide_weight / ml_weight add CO2-Net's mean(A), mean |1 - a - b_bg| and
    mean (a - (1 - b_bg))^2 (the value of L_ml) to the total."""
    A, S, X, labels = batch(2)
    base = HiMNetCriterion(LossConfig(backend="reference"))(A, S, X, labels, 2)
    cfg = LossConfig(backend="reference", norm_weight=0.8, guide_weight=0.5, ml_weight=0.3)
    out = HiMNetCriterion(cfg)(A, S, X, labels, 2)
    b_bg = torch.softmax(S, dim=-1)[..., -1]
    torch.testing.assert_close(out["norm"], A.mean())
    torch.testing.assert_close(out["guide"], (1.0 - A - b_bg).abs().mean())
    torch.testing.assert_close(out["ml"], (A - 1.0 + b_bg).pow(2).mean())
    torch.testing.assert_close(out["total"], base["total"] + 0.8 * A.mean() + 0.5 * (1.0 - A - b_bg).abs().mean()
                               + 0.3 * (A - 1.0 + b_bg).pow(2).mean())
    for name in ("guide_weight", "ml_weight", "mutual_weight"):
        with pytest.raises(ValueError, match=name):
            LossConfig(**{name: -1.0})


def test_co2net_modality_mutual_loss_needs_the_modality_attentions():
    A, S, X, labels = batch(2)
    a_rgb = (A + 0.1).clamp(max=1.0)
    a_flow = 2 * A - a_rgb  # A is their mean, as in the model
    criterion = HiMNetCriterion(LossConfig(backend="reference", mutual_weight=1.0))
    out = criterion(A, S, X, labels, 2, (a_rgb, a_flow))
    base = HiMNetCriterion(LossConfig(backend="reference"))(A, S, X, labels, 2)
    torch.testing.assert_close(out["mutual"], (a_rgb - a_flow).pow(2).mean())
    torch.testing.assert_close(out["total"], base["total"] + (a_rgb - a_flow).pow(2).mean())
    with pytest.raises(ValueError, match="modality attentions"):
        criterion(A, S, X, labels, 2)


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_give_float32_terms(kernel_device, backend, dtype):
    """Half A, S, X_hat (issue 13): every term, VCL and CO2-Net's attention terms included, is
    computed in float32 and equals the criterion on the float32-upcast inputs exactly; the
    gradients come back in the input dtype (the float32 gradient, rounded). Both agree with the
    reference criterion on the float32 inputs (for the Triton backend, another implementation).
    With saturated attention the half-precision SCL was NaN before (its clamp to 1 - 1e-6 rounds to 1)."""
    A, S, X, labels = (t.detach().to(kernel_device) for t in batch(6))
    A[:, ::3] = 0.0
    A[:, 1::3] = 1.0
    criterion = HiMNetCriterion(LossConfig(backend=backend, norm_weight=0.8, guide_weight=0.8))
    halves = [t.to(dtype).requires_grad_() for t in (A, S, X)]
    singles = [t.detach().float().requires_grad_() for t in halves]
    out, ref = criterion(*halves, labels, 3), criterion(*singles, labels, 3)
    for name in ref:
        assert out[name].dtype == torch.float32 and torch.isfinite(out[name]), name
        torch.testing.assert_close(out[name], ref[name], rtol=0, atol=0)
    out["total"].backward()
    ref["total"].backward()
    for half, single in zip(halves, singles):
        assert half.grad.dtype == dtype
        torch.testing.assert_close(half.grad, single.grad.to(dtype), rtol=0, atol=0)
    if backend == "reference":
        return  # the comparison below would repeat the one above
    spec_inputs = [t.detach().requires_grad_() for t in singles]
    spec = HiMNetCriterion(LossConfig(backend="reference", norm_weight=0.8, guide_weight=0.8))(*spec_inputs, labels, 3)
    for name in spec:
        torch.testing.assert_close(out[name], spec[name], rtol=1e-5, atol=1e-6)
    spec["total"].backward()
    for half, want in zip(halves, spec_inputs):
        torch.testing.assert_close(half.grad.float(), want.grad.to(dtype).float(), rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("name", ["A", "S", "X_hat"])
def test_extreme_finite_inputs_raise_naming_the_input(name):
    """3e38 (finite in float32) in any input: a ValueError naming it, never a NaN term. Before,
    S gave NaN MIL (top-k sum overflow) and X_hat NaN VCL (dot products overflow, inf / inf)."""
    inputs = dict(zip(("A", "S", "X_hat"), (t.detach().float() for t in batch(7)[:3])))
    labels = batch(7)[3]
    inputs[name] = torch.full_like(inputs[name], 3e38)
    with pytest.raises(ValueError, match=rf"^{name}:"):
        HiMNetCriterion(LossConfig(backend="reference", norm_weight=0.8, guide_weight=0.8))(
            inputs["A"], inputs["S"], inputs["X_hat"], labels, 2)


def test_features_at_the_bound_give_finite_terms():
    """|X_hat| and |S| up to the bound 1e15: every term and gradient finite (VCL's V_bar and cosine
    stay in float32 range)."""
    A, S, X, labels = (t.detach().float() for t in batch(8))
    S, X = (torch.sign(t) * 1e15 for t in (S, X))
    S.requires_grad_()
    X.requires_grad_()
    out = HiMNetCriterion(LossConfig(backend="reference", norm_weight=0.8, guide_weight=0.8))(A, S, X, labels, 2)
    assert all(bool(torch.isfinite(t)) for t in out.values()), out
    out["total"].backward()
    assert bool(torch.isfinite(S.grad).all() and torch.isfinite(X.grad).all())
