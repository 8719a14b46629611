"""Reference of the HiM-Net training losses (paper Eq. 1-11, DESIGN.md section 3).

Plain PyTorch, differentiable, batched over B videos; one function per equation. This is the
executable spec that every fast backend (``himnet_fast.ops.himnet_losses``) is tested against.

Notation: B videos, T snippets, C action classes, K = C + 1 (background is index C),
D the fused-feature dim. ``S`` is the class activation map (B, T, K) of logits, ``A`` the
attention (B, T) in [0, 1], ``labels`` the multi-hot video labels (B, C) in {0, 1}.

Numerics: every log of a softmax probability is taken in log space (``log_softmax``, and
``_log1m_softmax`` for log(1 - b)); this equals the literal formula and stays finite where a
probability rounds to 0 or 1. Only Eq. 9-10 clamp probabilities, to [EPS, 1 - EPS].
The functions compute in their inputs' dtype; the callers that accept float16 / bfloat16
(``ops.himnet_losses``, ``ops.topk_mean``, ``HiMNetCriterion``) upcast them to float32 first,
since 1 - EPS rounds to 1 in half precision. The losses reject |S|, |X_hat| and a
non-probability |A| above MAX_MAGNITUDE (``check_magnitude``); the top-k mean takes any finite S.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from himnet_fast.validation import (
    check_choice,
    check_int,
    check_labels,
    check_number,
    check_range,
    check_shape,
    check_tensor,
)

EPS = 1e-6  # probability clamp of Eq. 9-10 (DESIGN.md)
COS_EPS = 1e-8  # floor of the norm product in the cosine of Eq. 8
# Largest |value| of S, X_hat (and A where it need not be a probability) the losses accept. Beyond
# ~1e38 their terms are not representable in float32 at all (log-probabilities of the order of the
# spread of S); up to 1e15 nothing overflows: log-probabilities (<= 2e15 + log K) summed over 1e23
# terms, S * A, or squared features summed over 1e8 dims (VCL's cosine). Real logits are below 1e3.
MAX_MAGNITUDE = 1e15
SCL_VARIANTS = ("self", "target", "none")
SUPPRESSIONS = ("product", "shifted")
VCL_GRADS = ("base", "features")


class HiMNetLossTerms(NamedTuple):
    """The three terms of the fused op, each a 0-D tensor (mean over videos)."""

    mil: torch.Tensor
    cll: torch.Tensor
    scl: torch.Tensor


# --------------------------------------------------------------------------- input checks


def check_magnitude(name: str, x: torch.Tensor, bound: float = MAX_MAGNITUDE) -> None:
    """Reject NaN, inf and |x| > bound with a ValueError naming ``name``: one reduction (and, on a
    GPU, one host sync), like ``check_tensor``'s finite check, which it replaces."""
    lo, hi = torch.aminmax(x.detach())  # one pass, no |x| temporary of x's size; NaN propagates
    largest = float(torch.maximum(-lo, hi))  # max |x|, compared here in float64, exactly
    if not math.isfinite(largest):
        raise ValueError(f"{name}: contains NaN or inf")
    if largest > bound:
        raise ValueError(f"{name}: |values| must be <= {bound:g}, got max |{name}| = {largest:g}")


def _check_cas(S, bound: float = MAX_MAGNITUDE) -> tuple[int, int, int]:
    """S: (B, T, K), K >= 2, |S| <= bound (math.inf: finite)."""
    check_tensor("S", S, 3, finite=False)
    check_magnitude("S", S, bound)
    B, T, K = S.shape
    if K < 2:
        raise ValueError(f"S: last dim must be C+1 >= 2 (at least one class plus background), got {K}")
    return B, T, K


def _check_attention(A, B: int, T: int, probability: bool) -> None:
    check_tensor("A", A, 2, finite=False)
    check_shape("A", A, (B, T), "(B, T) of S")
    if probability:
        check_range("A", A, 0.0, 1.0)  # also rejects NaN and inf
    else:
        check_magnitude("A", A)


def _check_video_labels(labels, B: int, K: int) -> None:
    check_tensor("labels", labels, 2, dtype_floating=False, finite=False)
    check_labels("labels", labels, (B, K - 1), "(B, C) with C+1 = S.shape[-1]")


def _check_k(k, T: int) -> None:
    check_int("k", k, 1, T)


# --------------------------------------------------------------------------- Eq. 1-3


def topk_k(T: int, r: int) -> int:
    """Eq. 1 top-k size: k = max(1, T // r) (r = 7 on THUMOS14, 10 on ActivityNet1.3)."""
    check_int("T", T, 1)
    check_int("r", r, 1)
    return max(1, T // r)


def topk_mean(S: torch.Tensor, k: int) -> torch.Tensor:
    """Eq. 1: gamma_c = mean of the k largest values of S[:, c] over time.

    S: (B, T, K), k in [1, T] -> gamma: (B, K). Finite for every finite float32 S: the sum is
    taken in float64, where k values near the float32 maximum cannot overflow.
    """
    _, T, _ = _check_cas(S, bound=math.inf)
    _check_k(k, T)
    return S.topk(k, dim=1).values.mean(dim=1, dtype=torch.float64).to(S.dtype)


def video_scores(gamma: torch.Tensor) -> torch.Tensor:
    """Eq. 2: P = softmax of the video-level activation over the K classes.

    gamma: (B, K) -> P: (B, K).
    """
    check_tensor("gamma", gamma, 2)
    return torch.softmax(gamma, dim=-1)


def snippet_softmax(S: torch.Tensor) -> torch.Tensor:
    """Eq. 3: B[:, t] = softmax of S[:, t] over the K classes, per snippet.

    S: (B, T, K) -> (B, T, K).
    """
    _check_cas(S, bound=math.inf)  # max-subtracted: finite for any finite S
    return torch.softmax(S, dim=-1)


def _background_prob(S: torch.Tensor) -> torch.Tensor:
    """b_bg = Eq. 3's background column, for callers that have checked S already (no second
    reduction and host sync). S: (B, T, K) -> (B, T)."""
    return torch.softmax(S, dim=-1)[..., -1]


# --------------------------------------------------------------------------- Eq. 4-6


def _cce_log(Y: torch.Tensor, log_P: torch.Tensor) -> torch.Tensor:
    """Eq. 5 on log-probabilities: (1/K) sum_c -y_c log p_c over the last dim."""
    return -(Y * log_P).sum(dim=-1) / Y.shape[-1]


def cce(Y: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """Eq. 5: L_CCE(Y|P) = (1/K) sum_c -y_c log p_c, the label vector as given (not renormalised).

    Y: (B, K) (any non-negative weights), P: (B, K) probabilities -> (B,).
    """
    check_tensor("Y", Y, 2)
    check_tensor("P", P, 2)
    check_shape("P", P, tuple(Y.shape), "shape of Y")
    # 0 * log 0 would be NaN; a zero weight drops its term, as in the sum it stands for.
    return _cce_log(Y, P.masked_fill(Y == 0, 1.0).log())


MIL_NORMS = ("paper", "base")
CLL_NORMS = ("paper", "procl")
CO2NET_LABEL_EPS = 1e-4  # CO2-Net's topkloss divides the labels by (their sum + 1e-4)


def suppress(S: torch.Tensor, A: torch.Tensor, how: str = "product") -> torch.Tensor:
    """S_hat of Sec. 3.2: the class activations suppressed by the attention, in one of two readings.

    "product": S * A, the paper's text.
    "shifted": CO2-Net's ``_multiply(include_min=True)`` (the base code, DESIGN.md section 3):
               A * (S - m) + m, m the snippet's minimum over the K classes, so a low attention
               pulls every class towards the snippet's lowest logit instead of towards 0. The
               gradient through m goes to the first arg-min class (``torch.min`` over dim).
    S: (B, T, K), A: (B, T) -> (B, T, K).
    """
    check_choice("suppression", how, SUPPRESSIONS)
    a = A.unsqueeze(-1)
    if how == "product":
        return S * a
    m = S.min(dim=-1, keepdim=True).values
    return a * (S - m) + m


def _mil_cce_log(Y: torch.Tensor, log_P: torch.Tensor, norm: str) -> torch.Tensor:
    """One L_CCE of Eq. 4 on log-probabilities, (B, K) -> (B,), in one of two readings:

    "paper": Eq. 5 as written, (1/K) sum_c -y_c log p_c (K = C+1 classes).
    "base":  CO2-Net's ``topkloss`` (the base code, DESIGN.md section 3), the labels normalised
             to sum to one: sum_c -(y_c / (sum_j y_j + 1e-4)) log p_c. With one action class
             this is (C+1)/2 times the paper's value for Y_bar and C+1 times it for Y_hat.
    """
    if norm == "paper":
        return _cce_log(Y, log_P)
    return -(Y * log_P).sum(dim=-1) / (Y.sum(dim=-1) + CO2NET_LABEL_EPS)


def _append_background(labels: torch.Tensor, value: float, like: torch.Tensor) -> torch.Tensor:
    """labels (B, C) -> (B, C+1) with the background entry set to ``value``."""
    labels = labels.to(dtype=like.dtype, device=like.device)
    return F.pad(labels, (0, 1), value=value)


def mil_loss(S: torch.Tensor, A: torch.Tensor, labels: torch.Tensor, k: int, norm: str = "paper",
             suppression: str = "product") -> torch.Tensor:
    """Eq. 4: L_MIL = L_CCE(Y_bar|P) + L_CCE(Y_hat|P_hat), mean over videos.

    P = softmax(topk_mean(S, k)); P_hat the same on S_hat = ``suppress(S, A, suppression)``;
    Y_bar = [labels, 1] (background present), Y_hat = [labels, 0] (background absent).
    norm: "paper" (Eq. 5's 1/(C+1)) or "base" (CO2-Net's label-normalised CE), ``_mil_cce_log``.
    S: (B, T, K), A: (B, T), labels: (B, C), k in [1, T] -> 0-D tensor.
    """
    check_choice("mil_norm", norm, MIL_NORMS)
    B, T, K = _check_cas(S)
    _check_attention(A, B, T, probability=False)
    _check_video_labels(labels, B, K)
    _check_k(k, T)
    log_P = torch.log_softmax(topk_mean(S, k), dim=-1)
    log_P_hat = torch.log_softmax(topk_mean(suppress(S, A, suppression), k), dim=-1)
    Y_bar = _append_background(labels, 1.0, S)
    Y_hat = _append_background(labels, 0.0, S)
    return (_mil_cce_log(Y_bar, log_P, norm) + _mil_cce_log(Y_hat, log_P_hat, norm)).mean()


def _log1m_softmax(S: torch.Tensor) -> torch.Tensor:
    """log(1 - softmax(S)) over the last dim, finite even where a probability rounds to 1.

    Only the arg-max entry can exceed 1/2; there log(1 - b) = logsumexp of the other logits
    minus logsumexp of all. Elsewhere b <= 1/2 and log1p(-b) is accurate.
    """
    log_b = torch.log_softmax(S, dim=-1)
    top = F.one_hot(S.argmax(dim=-1), S.shape[-1]).bool()
    rest = torch.logsumexp(S.masked_fill(top, float("-inf")), dim=-1, keepdim=True)
    at_top = rest - torch.logsumexp(S, dim=-1, keepdim=True)
    # Mask the arg-max before log1p(-exp(.)) so its unused branch has no inf/NaN gradient.
    elsewhere = torch.log1p(-log_b.masked_fill(top, float("-inf")).exp())
    return torch.where(top, at_top.expand_as(S), elsewhere)


def cll_loss(S: torch.Tensor, labels: torch.Tensor, norm: str = "paper") -> torch.Tensor:
    """Eq. 6: L_CLL = (1/T) sum_t L_CCE(1 - Y_bar | 1 - b_t), mean over videos, in one of two readings:

    "paper": Eq. 5 as written, mean over t of (1/K) sum_c -(1 - y_bar_c) log(1 - b_{c,t}).
    "procl": the authors' sibling code, ProCL (Du, Feng et al., arXiv 2206.11011; six of HiM-Net's
             eight authors, CO2-Net's code base), whose ``negative_loss`` (its "CLL") sums over the
             classes: mean over t of sum_c -(1 - y_bar_c) log(1 - b_{c,t}), K times the paper's.
    b from Eq. 3, Y_bar = [labels, 1] (so the background term is always 0).
    S: (B, T, K), labels: (B, C) -> 0-D tensor.
    """
    check_choice("cll_norm", norm, CLL_NORMS)
    B, _, K = _check_cas(S)
    _check_video_labels(labels, B, K)
    complement = 1.0 - _append_background(labels, 1.0, S)  # (B, K)
    per_snippet = _cce_log(complement.unsqueeze(1), _log1m_softmax(S))  # (B, T)
    cll = per_snippet.mean(dim=1).mean()
    # ProCL's sum is taken as K times the paper's mean, so that a "procl" run repeats a "paper" run
    # at --cll-weight K bit for bit (docs/RESULTS.md section 16 reuses sections 13-15 that way).
    return cll * K if norm == "procl" else cll


# --------------------------------------------------------------------------- Eq. 7-8


def vcl_features(S_hat: torch.Tensor, X_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 7: class-specific foreground / background video features.

    mu = softmax of S_hat over TIME per class; V_c = sum_t mu_{t,c} x_hat_t;
    V_bar_c = 1/(T-1) sum_t (1 - mu_{t,c}) x_hat_t.
    T = 1: mu = 1, so the sum in V_bar is exactly 0; we define V_bar = 0 (divide by
    max(T-1, 1)), i.e. a one-snippet video has no background feature.
    S_hat: (B, T, K), X_hat: (B, T, D) -> (V, V_bar), each (B, K, D).
    """
    check_tensor("S_hat", S_hat, 3)
    check_tensor("X_hat", X_hat, 3)
    check_shape("X_hat", X_hat, (S_hat.shape[0], S_hat.shape[1], None), "(B, T, D) with B, T of S_hat")
    return _vcl_features(S_hat, X_hat)


def _vcl_features(S_hat: torch.Tensor, X_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`vcl_features` on inputs already checked (``vcl_loss`` checks S, A and X_hat once:
    each check is a reduction and, on a GPU, a host sync)."""
    T = S_hat.shape[1]
    mu = torch.softmax(S_hat, dim=1)
    V = torch.einsum("btk,btd->bkd", mu, X_hat)
    V_bar = torch.einsum("btk,btd->bkd", 1.0 - mu, X_hat) / max(T - 1, 1)
    return V, V_bar


def _cosine_distance(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """d(u, v) = 1 - cos(u, v) over the last dim; the norm product is floored at COS_EPS,
    so a zero vector (V_bar of a T = 1 video) is at distance 1 from everything."""
    dot = (u * v).sum(dim=-1)
    return 1.0 - dot / (u.norm(dim=-1) * v.norm(dim=-1)).clamp_min(COS_EPS)


def vcl_loss(
    S: torch.Tensor,
    A: torch.Tensor,
    X_hat: torch.Tensor,
    labels: torch.Tensor,
    delta: float = 0.5,
    num_pairs: int = 3,
    suppression: str = "product",
    grad: str = "base",
) -> torch.Tensor:
    """Eq. 8: video-level co-action similarity (triplet) loss over the batch's pairs.

    Pairs are batch positions (0, 1), (2, 3), ... up to ``num_pairs`` pairs (3 in the paper's
    batch of 10), those that exist in B. For a pair (i, j) and a class c they share,
    l_c = 1/2 [d(V_c^i, V_c^j) - d(V_c^i, V_bar_c^j) + delta]_+
        + 1/2 [d(V_c^i, V_c^j) - d(V_c^j, V_bar_c^i) + delta]_+,
    with V, V_bar from Eq. 7 on S_hat = ``suppress(S, A, suppression)`` and d = 1 - cosine. A pair's loss is the mean of
    l_c over its shared classes; the result is the mean over the pairs that share at least
    one class. With no such pair (B < 2, or no shared class) the loss is 0 (kept in the graph,
    so its gradient is 0 rather than missing).
    grad: where the loss's gradient goes, in one of two readings (the value is the same):
      "base":     CO2-Net's ``Contrastive``, plain autograd: to X_hat and, through the temporal
                  weights mu, to S and A.
      "features": mu is a fixed pooling weight (stop-gradient), so VCL trains X_hat only. The
                  paper puts VCL on the fused features ("mined on the fused features X_hat ...
                  to further enhance the discriminate action representation", Sec. 3.4; Fig. 2:
                  "L_VCL for fused features X_hat") and leaves A and B_bg to SCL.
    S: (B, T, K), A: (B, T), X_hat: (B, T, D), labels: (B, C) -> 0-D tensor.
    """
    B, T, K = _check_cas(S)
    _check_attention(A, B, T, probability=False)
    check_tensor("X_hat", X_hat, 3, finite=False)
    check_magnitude("X_hat", X_hat)
    check_shape("X_hat", X_hat, (B, T, None), "(B, T, D) with B, T of S")
    _check_video_labels(labels, B, K)
    check_number("delta", delta)
    check_int("num_pairs", num_pairs, 0)
    check_choice("vcl_grad", grad, VCL_GRADS)

    n = min(num_pairs, B // 2)
    zero = (S.sum() + A.sum() + X_hat.sum()) * 0.0
    if n == 0:
        return zero
    S_hat = suppress(S[: 2 * n], A[: 2 * n], suppression)
    if grad == "features":
        S_hat = S_hat.detach()
    V, V_bar = _vcl_features(S_hat, X_hat[: 2 * n])
    Vi, Vj = V[0::2, :-1], V[1::2, :-1]  # (n, C, D), background dropped
    Vbar_i, Vbar_j = V_bar[0::2, :-1], V_bar[1::2, :-1]
    d_ij = _cosine_distance(Vi, Vj)
    per_class = 0.5 * F.relu(d_ij - _cosine_distance(Vi, Vbar_j) + delta) + 0.5 * F.relu(
        d_ij - _cosine_distance(Vj, Vbar_i) + delta
    )  # (n, C)
    y = labels[: 2 * n].to(dtype=S.dtype, device=S.device)
    shared = y[0::2] * y[1::2]  # (n, C) in {0, 1}
    count = shared.sum(dim=1)
    valid = count > 0
    if not bool(valid.any()):
        return zero
    per_pair = (per_class * shared).sum(dim=1)[valid] / count[valid]
    return per_pair.mean() + zero


# --------------------------------------------------------------------------- Eq. 9-10


def _bernoulli_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p||q) of Bernoulli distributions: p log(p/q) + (1-p) log((1-p)/(1-q))."""
    return p * (p.log() - q.log()) + (1.0 - p) * (torch.log1p(-p) - torch.log1p(-q))


def uncertainty(p: torch.Tensor, q: torch.Tensor, alpha: float = 4.0, variant: str = "self") -> torch.Tensor:
    """Eq. 9: uncertainty weight of prediction p against its pseudo-target q, in (0, 1].

    variant "self":   U(p||q) = exp(-alpha KL(p||q))   (the paper's self-centred weight)
    variant "target": U(q||p) = exp(-alpha KL(q||p))   (target-centred, Table 4)
    variant "none":   1                                 (same as alpha = 0)
    KL is the Bernoulli divergence; p and q are clamped to [EPS, 1 - EPS] first.
    Differentiable; Eq. 10 detaches it. p, q: same shape (any) -> same shape.
    """
    check_tensor("p", p)
    check_tensor("q", q)
    check_shape("q", q, tuple(p.shape), "shape of p")
    check_number("alpha", alpha, 0.0)
    check_choice("variant", variant, SCL_VARIANTS)
    if variant == "none":
        return torch.ones_like(p)
    p = p.clamp(EPS, 1.0 - EPS)
    q = q.clamp(EPS, 1.0 - EPS)
    kl = _bernoulli_kl(p, q) if variant == "self" else _bernoulli_kl(q, p)
    return torch.exp(-alpha * kl)


def _bce(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """BCE(x; y) = -(y log x + (1-y) log(1-x)), x the prediction, y the target."""
    return -(y * x.log() + (1.0 - y) * torch.log1p(-x))


def _scl_branch(pred, pred_ref, target, alpha: float, variant: str) -> torch.Tensor:
    """sum_t U(pred_ref||target) BCE(pred; target) over the last dim; only ``pred`` is trained."""
    weight = uncertainty(pred_ref.detach(), target.detach(), alpha, variant)
    return (weight * _bce(pred, target.detach())).sum(dim=-1)


def scl_terms(
    b: torch.Tensor,
    a: torch.Tensor,
    b_ref: torch.Tensor,
    a_ref: torch.Tensor,
    alpha: float = 4.0,
    variant: str = "self",
) -> torch.Tensor:
    """Eq. 10 per video, with the stop-gradient made explicit:

    sum_t U(b_ref_t||1-a_ref_t) BCE(b_t; 1-a_ref_t) + sum_t U(a_ref_t||1-b_ref_t) BCE(a_t; 1-b_ref_t).

    ``scl_loss`` calls it with b_ref = b, a_ref = a; the references (pseudo-targets and the
    inputs of U) are detached here, so gradients reach b and a only as the BCE predictions.
    Taking them as separate inputs makes that stop-gradient finite-difference checkable.
    Inputs are used as given (``scl_loss`` clamps them to [EPS, 1 - EPS]).
    b, a, b_ref, a_ref: (B, T) in [0, 1] -> (B,).
    """
    for name, x in (("b", b), ("a", a), ("b_ref", b_ref), ("a_ref", a_ref)):
        check_tensor(name, x, 2)
        check_shape(name, x, tuple(b.shape), "(B, T) of b")
        check_range(name, x, 0.0, 1.0)
    check_number("alpha", alpha, 0.0)
    check_choice("variant", variant, SCL_VARIANTS)
    return _scl_branch(b, b_ref, 1.0 - a_ref, alpha, variant) + _scl_branch(a, a_ref, 1.0 - b_ref, alpha, variant)


def scl_loss(S: torch.Tensor, A: torch.Tensor, alpha: float = 4.0, variant: str = "self") -> torch.Tensor:
    """Eq. 10: foreground-background collaborative loss, sum over t, mean over videos.

    L_SCL = sum_t U(b_t||1-a_t) BCE(b_t; 1-a_t) + sum_t U(a_t||1-b_t) BCE(a_t; 1-b_t),
    b_t = snippet_softmax(S)[..., C] (background probability), a_t = A[:, t]. Both are clamped
    to [EPS, 1 - EPS]; the targets (1 - a_t, 1 - b_t) and the weights U are detached, so b is
    trained only through the first sum and a only through the second.
    ``variant`` selects U as in ``uncertainty`` ("self" | "target" | "none").
    S: (B, T, K), A: (B, T) in [0, 1] -> 0-D tensor.
    """
    B, T, _ = _check_cas(S)
    _check_attention(A, B, T, probability=True)
    b = _background_prob(S).clamp(EPS, 1.0 - EPS)
    a = A.clamp(EPS, 1.0 - EPS)
    return scl_terms(b, a, b, a, alpha, variant).mean()


# --------------------------------------------------------------------------- CO2-Net's attention terms


def attention_norm_loss(A: torch.Tensor) -> torch.Tensor:
    """CO2-Net's ``loss_norm`` (not in the paper; opt-in): mean of the attention, pushing it
    towards sparsity. A: (B, T) -> 0-D tensor."""
    check_tensor("A", A, 2, finite=False)
    check_magnitude("A", A)
    return A.mean()


def guide_loss(S: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """CO2-Net's ``loss_guide`` (the paper's L_guide of Table 4; opt-in): mean over snippets of
    |1 - a_t - b_t|, b the background probability (Eq. 3): attention and background disagree.
    S: (B, T, K), A: (B, T) -> 0-D tensor."""
    B, T, _ = _check_cas(S)
    _check_attention(A, B, T, probability=False)
    return (1.0 - A - _background_prob(S)).abs().mean()


def mutual_learning_loss(S: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """The paper's L_ml of Table 4 (opt-in): CO2-Net's ``mutual_loss`` (ref. [8]; UGCT's mutual
    learning has the same form), with its two attentions (RGB, flow) replaced by the attention a
    and the foreground estimate 1 - b of the background branch, as SCL pairs them:

        L_ml = 1/2 mean_{B,T} (a - sg(1 - b))^2 + 1/2 mean_{B,T} ((1 - b) - sg(a))^2,

    b = snippet_softmax(S)[..., C] (Eq. 3's background column), sg = stop-gradient (each side is
    the other's detached target). Its value equals mean (a - (1 - b))^2; the gradient reaches A
    only through the first half, S only through the second (dL/da = (a - (1 - b)) / (B T)).
    Unlike SCL it has no uncertainty weight and no clamping.
    S: (B, T, K), A: (B, T) -> 0-D tensor.
    """
    B, T, _ = _check_cas(S)
    _check_attention(A, B, T, probability=False)
    return _mutual_mse(A, 1.0 - _background_prob(S))


def _mutual_mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1/2 mean (x - sg(y))^2 + 1/2 mean (y - sg(x))^2: each side the other's detached target."""
    return 0.5 * F.mse_loss(x, y.detach()) + 0.5 * F.mse_loss(y, x.detach())


def modality_mutual_loss(a_rgb: torch.Tensor, a_flow: torch.Tensor) -> torch.Tensor:
    """CO2-Net's ``mutual_loss`` between its two modality attentions (opt-in; its weight
    ``alpha4`` = 1 in CO2-Net's options): 1/2 mean (a_rgb - sg(a_flow))^2 + 1/2 mean (a_flow -
    sg(a_rgb))^2, sg the stop-gradient; its value is mean (a_rgb - a_flow)^2 and each attention
    learns toward the other (dL/da_rgb = (a_rgb - a_flow) / (B T)). A = (a_rgb + a_flow) / 2.
    a_rgb, a_flow: (B, T) -> 0-D tensor.
    """
    check_tensor("a_rgb", a_rgb, 2)
    check_shape("a_flow", a_flow, tuple(a_rgb.shape), "(B, T) as a_rgb")
    return _mutual_mse(a_rgb, a_flow)


# --------------------------------------------------------------------------- fused terms, Eq. 11


def himnet_losses_reference(
    S: torch.Tensor,
    A: torch.Tensor,
    labels: torch.Tensor,
    k: int,
    alpha: float = 4.0,
    scl_variant: str = "self",
    mil_norm: str = "paper",
    suppression: str = "product",
    cll_norm: str = "paper",
) -> HiMNetLossTerms:
    """L_MIL (Eq. 4), L_CLL (Eq. 6) and L_SCL (Eq. 10): the terms the fused kernel computes.

    S: (B, T, K), A: (B, T) in [0, 1], labels: (B, C), k in [1, T]; mil_norm, suppression as
    ``mil_loss``, cll_norm as ``cll_loss`` -> HiMNetLossTerms(mil, cll, scl), each a 0-D tensor,
    mean over videos.
    """
    return HiMNetLossTerms(
        mil=mil_loss(S, A, labels, k, mil_norm, suppression),
        cll=cll_loss(S, labels, cll_norm),
        scl=scl_loss(S, A, alpha, scl_variant),
    )


def total_loss(
    S: torch.Tensor,
    A: torch.Tensor,
    X_hat: torch.Tensor,
    labels: torch.Tensor,
    k: int,
    lambda1: float = 1.0,
    lambda2: float = 0.01,
    alpha: float = 4.0,
    delta: float = 0.5,
    scl_variant: str = "self",
    num_pairs: int = 3,
    mil_norm: str = "paper",
    suppression: str = "product",
    vcl_grad: str = "base",
    cll_norm: str = "paper",
) -> dict[str, torch.Tensor]:
    """Eq. 11: L = L_MIL + L_CLL + lambda1 L_VCL + lambda2 L_SCL.

    S: (B, T, K), A: (B, T) in [0, 1], X_hat: (B, T, D), labels: (B, C), k in [1, T]
    -> {"mil", "cll", "vcl", "scl", "total"}, each a 0-D tensor (terms unweighted).
    """
    check_number("lambda1", lambda1)
    check_number("lambda2", lambda2)
    terms = himnet_losses_reference(S, A, labels, k, alpha, scl_variant, mil_norm, suppression, cll_norm)
    vcl = vcl_loss(S, A, X_hat, labels, delta, num_pairs, suppression, vcl_grad)
    total = terms.mil + terms.cll + lambda1 * vcl + lambda2 * terms.scl
    return {"mil": terms.mil, "cll": terms.cll, "vcl": vcl, "scl": terms.scl, "total": total}
