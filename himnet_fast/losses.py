"""The HiM-Net training objective (Eq. 11) as a module, with per-loss switches for ablations.

MIL, CLL and SCL come from the fused op ``himnet_fast.ops.himnet_losses`` (Triton on CUDA,
the reference on CPU); VCL, which needs the fused features X_hat, from the reference.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from himnet_fast import ops
from himnet_fast.ops._dispatch import BACKENDS
from himnet_fast.ops.losses import upcast
from himnet_fast.reference.losses import (CLL_NORMS, MIL_NORMS, SCL_VARIANTS, SUPPRESSIONS, VCL_GRADS, attention_norm_loss,
                                         guide_loss, modality_mutual_loss, mutual_learning_loss, vcl_loss)
from himnet_fast.validation import check_choice, check_int, check_number

LOSS_KEYS = ("mil", "cll", "vcl", "scl", "norm", "guide", "ml", "mutual", "total")
NETWORK_OUTPUTS = ("A", "S", "X_hat")  # what the criterion takes from the network, in forward order


@dataclass
class LossConfig:
    """Weights and switches of L = L_MIL + L_CLL + lambda1 L_VCL + lambda2 L_SCL (Eq. 11).

    ``scl_variant``: "self" (paper), "target" (target-centred U) or "none" (no uncertainty,
    same as alpha = 0), the SCL rows of Table 4. ``mil_norm``: "paper" (Eq. 5's 1/(C+1)) or
    "base" (CO2-Net's label-normalised cross-entropy; DESIGN.md section 3, issue 12).
    ``suppression``: S_hat of L_MIL and L_VCL, "product" (S * A, the paper's text) or "shifted"
    (CO2-Net's A * (S - min over classes) + min).
    ``vcl_grad``: where L_VCL's gradient goes (``reference.losses.vcl_loss``): "base" (CO2-Net's
    autograd, to X_hat and through the temporal weights to S and A) or "features" (X_hat only:
    the paper's VCL on the fused features).
    ``cll_norm``: L_CLL's normalisation (``reference.losses.cll_loss``), "paper" (Eq. 5's 1/(C+1))
    or "procl" (the sum over the classes of the authors' ProCL code, C+1 times the paper's value).
    ``num_pairs``: leading batch pairs for VCL.
    ``cll_weight``: L_CLL's weight, 1 in Eq. 11 (the default); other values are a diagnostic
    outside the paper (docs/RESULTS.md section 13 measures 21 = C+1 with ``cll_norm="paper"``).
    ``norm_weight``, ``guide_weight``: CO2-Net's extra attention terms, off (0) by default, the
    base code's weights are 0.8 each: L_norm = mean(A) and L_guide = mean |1 - a - b_bg|
    (``reference.losses.attention_norm_loss`` / ``guide_loss``; computed in PyTorch for every
    backend, like VCL).
    ``ml_weight``: the paper's L_ml of Table 4 (CO2-Net's mutual learning between a and
    1 - b_bg, ``reference.losses.mutual_learning_loss``), off (0) by default; computed like
    L_guide. Table 4 trains it at 0.8, L_guide's weight, so the two alternatives to SCL compare
    like for like.
    ``mutual_weight``: CO2-Net's third attention term, the mutual loss between its RGB and flow
    attentions (its weight: 1; ``reference.losses.modality_mutual_loss``), off (0) by default;
    the criterion then needs the model's ``modality_attention`` outputs.
    ``check_values``: also reject NaN/inf or |S| > ``reference.losses.MAX_MAGNITUDE`` in S, A
    outside [0, 1] and non-binary labels at every step (costs host syncs on a GPU; the data layer already rejects NaN features).
    """

    lambda1: float = 1.0
    lambda2: float = 0.01
    cll_weight: float = 1.0
    alpha: float = 4.0
    delta: float = 0.5
    use_mil: bool = True
    use_cll: bool = True
    use_vcl: bool = True
    use_scl: bool = True
    norm_weight: float = 0.0
    guide_weight: float = 0.0
    ml_weight: float = 0.0
    mutual_weight: float = 0.0
    scl_variant: str = "self"
    # CO2-Net's readings: measured better than the paper's literal ones (docs/RESULTS.md).
    mil_norm: str = "base"
    suppression: str = "shifted"
    # The authors' ProCL code's CLL (the sum over classes): measured better than Eq. 5's 1/(C+1)
    # (docs/RESULTS.md section 16).
    cll_norm: str = "procl"
    # The paper's VCL on the fused features: measured better than the base code's (docs/RESULTS.md section 10).
    vcl_grad: str = "features"
    backend: str = "auto"
    num_pairs: int = 3
    check_values: bool = False

    def __post_init__(self):
        check_number("lambda1", self.lambda1, 0.0)
        check_number("lambda2", self.lambda2, 0.0)
        check_number("cll_weight", self.cll_weight, 0.0)
        check_number("alpha", self.alpha, 0.0)
        check_number("delta", self.delta)
        check_number("norm_weight", self.norm_weight, 0.0)
        check_number("guide_weight", self.guide_weight, 0.0)
        check_number("ml_weight", self.ml_weight, 0.0)
        check_number("mutual_weight", self.mutual_weight, 0.0)
        check_choice("scl_variant", self.scl_variant, SCL_VARIANTS)
        check_choice("mil_norm", self.mil_norm, MIL_NORMS)
        check_choice("cll_norm", self.cll_norm, CLL_NORMS)
        check_choice("suppression", self.suppression, SUPPRESSIONS)
        check_choice("vcl_grad", self.vcl_grad, VCL_GRADS)
        check_choice("backend", self.backend, BACKENDS)
        check_int("num_pairs", self.num_pairs, 0)
        for name in ("use_mil", "use_cll", "use_vcl", "use_scl"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected a bool, got {getattr(self, name)!r}")

    def term_weights(self) -> dict[str, float]:
        """The weight of each term in the total (0 for a term switched off), in LOSS_KEYS order."""
        return {"mil": float(self.use_mil), "cll": self.cll_weight * self.use_cll, "vcl": self.lambda1 * self.use_vcl,
                "scl": self.lambda2 * self.use_scl, "norm": self.norm_weight, "guide": self.guide_weight,
                "ml": self.ml_weight, "mutual": self.mutual_weight}


class HiMNetCriterion(nn.Module):
    """Eq. 11 with switches.

    forward(A: (B, T), S: (B, T, C+1), X_hat: (B, T, D), labels: (B, C), k: int)
    -> dict over LOSS_KEYS (the terms and "total"): 0-D tensors; the terms are
    unweighted, a disabled term is reported as 0, and a term of weight 0 is left out of ``total``.
    ``weights``: ``cfg.term_weights()``, built once: for the total, the fused-gradient hint and the
    trainer's gradient diagnostic (``cfg`` is not changed after construction).
    """

    def __init__(self, cfg: LossConfig | None = None):
        super().__init__()
        self.cfg = cfg if cfg is not None else LossConfig()
        self.weights = self.cfg.term_weights()

    def forward(self, A, S, X_hat, labels, k: int, modality_attention=None) -> dict[str, torch.Tensor]:
        """A: (B, T), S: (B, T, C+1), X_hat: (B, T, D), labels: (B, C), k in [1, T] -> dict of 0-D tensors.
        modality_attention: (a_rgb, a_flow), each (B, T) (``HiMNet(X, modality_attention=True)``),
        needed by ``mutual_weight`` only.

        float16 / bfloat16 inputs are computed in float32 (every term: float32; gradients: the
        float32 ones, rounded once to the input dtype). Values no term can represent (|S|,
        |X_hat| above ``reference.losses.MAX_MAGNITUDE``) raise a ValueError where the inputs are
        checked: always in the PyTorch terms (VCL, norm, guide, ml, mutual) and the reference backend, in the
        fused op with ``check_values``.
        """
        cfg = self.cfg
        A, S, X_hat = upcast(A), upcast(S), upcast(X_hat)
        zero = S.new_zeros(())
        out = dict.fromkeys(LOSS_KEYS[:-1], zero)
        weights = self.weights
        if cfg.use_mil or cfg.use_cll or cfg.use_scl:
            # One fused call gives all three terms; disabled ones are dropped, not recomputed.
            # grad_weights tells the fused kernel how Eq. 11 weighs each term, so it can write
            # dS, dA during the forward and make the backward a no-op.
            grad_weights = tuple(weights[name] for name in ("mil", "cll", "scl"))
            terms = ops.himnet_losses(S, A, labels, k, alpha=cfg.alpha, scl_variant=cfg.scl_variant,
                                      mil_norm=cfg.mil_norm, suppression=cfg.suppression, cll_norm=cfg.cll_norm,
                                      backend=cfg.backend,
                                      check_values=cfg.check_values, grad_weights=grad_weights)
            for name in ("mil", "cll", "scl"):
                if getattr(cfg, f"use_{name}"):
                    out[name] = getattr(terms, name)
        if cfg.use_vcl:
            out["vcl"] = vcl_loss(S, A, X_hat, labels, cfg.delta, cfg.num_pairs, cfg.suppression,
                                  cfg.vcl_grad)
        if cfg.norm_weight:
            out["norm"] = attention_norm_loss(A)
        if cfg.guide_weight:
            out["guide"] = guide_loss(S, A)
        if cfg.ml_weight:
            out["ml"] = mutual_learning_loss(S, A)
        if cfg.mutual_weight:
            if modality_attention is None:
                raise ValueError("mutual_weight: needs the modality attentions (a_rgb, a_flow) of "
                                 "HiMNet(X, modality_attention=True)")
            out["mutual"] = modality_mutual_loss(*(upcast(a) for a in modality_attention))
        out["total"] = sum((w * out[name] for name, w in weights.items() if w), zero)
        return out
