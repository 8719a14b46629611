"""Fused HiM-Net loss terms L_MIL (Eq. 4), L_CLL (Eq. 6) and L_SCL (Eq. 10) in Triton.

Two kernels forward, one backward, none of which materialises B (the snippet softmax) or S_hat:

1. ``topk_select`` (kernels/topk_mean.py), grid (column blocks, B): the top-k means gamma of S
   and gamma_hat of S_hat (S * A, or CO2-Net's shifted A * (S - m) + m: ``suppressed``), plus the
   key of each column's k-th value (for the backward).
2. ``_himnet_loss_kernel``, grid (row blocks, B), one (BLOCK_T, C+1) tile of S per program:
   the snippet softmax, L_CLL and L_SCL of its rows; the first row block of a video adds its
   L_MIL from gamma / gamma_hat. The forward writes per-program partial sums (already divided
   by B); their sum is the three terms. The backward runs the same kernel in a gradient mode:
   it recomputes the tile's softmax and writes dS and dA for the three upstream gradients.
   Optionally (``grad_weights``) the forward writes dS and dA too and the backward only checks
   the upstream gradients on the device (``HiMNetLossFunction``).

Numerics follow the reference (``himnet_fast.reference.losses``): everything in float32;
log(1 - b) of the arg-max class is taken as logsumexp(others) - logsumexp(all), elsewhere as
log1p(-b); Eq. 9-10 clamp b and a to [EPS, 1 - EPS] (gradient 0 outside, as ``clamp``);
the SCL targets and the weights U are constants for the gradient.
Top-k ties follow kernels/topk_mean.py (the tied positions share the gradient).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from himnet_fast.kernels.topk_mean import selection_weight, sortable_key, suppressed, topk_select

EPS = tl.constexpr(1e-6)  # the reference's probability clamp (Eq. 9-10)
VARIANT_CODES = {"none": 0, "self": 1, "target": 2}
MIL_NORM_CODES = {"paper": 0, "base": 1}  # reference.losses.MIL_NORMS
CO2NET_LABEL_EPS = tl.constexpr(1e-4)  # reference.losses.CO2NET_LABEL_EPS
# Elements of one (BLOCK_T, BLOCK_K) tile. 512 measured fastest on an H200 (fused fwd + bwd at
# B,T,C+1 = 64,2048,201: 1.59 ms vs 2.43 ms at 1024 and 2.53 ms at 2048; BENCHMARKS.md).
TILE_ELEMS = 512


@triton.jit
def _log1m(x):
    """log(1 - x) for x in [0, 1), accurate for small x (log1p(-x) via Goldberg's identity)."""
    u = 1.0 - x
    d = tl.where(u == 1.0, 1.0, u - 1.0)
    return tl.where(u == 1.0, -x, tl.log(u) * (-x) / d)


@triton.jit
def _bernoulli_kl(p, q):
    """KL(p||q) = p log(p/q) + (1-p) log((1-p)/(1-q)); p, q in [EPS, 1 - EPS]."""
    return p * (tl.log(p) - tl.log(q)) + (1.0 - p) * (_log1m(p) - _log1m(q))


@triton.jit
def _scl_branch(pred, target, alpha, VARIANT: tl.constexpr):
    """One sum of Eq. 10 for one snippet: (U, BCE(pred; target), dBCE/dpred).

    pred, target: clamped probabilities (target only clamped again inside U, as the reference).
    VARIANT 0: U = 1; 1: U(pred||target) = exp(-alpha KL(pred||target)); 2: exp(-alpha KL(target||pred)).
    """
    bce = -(target * tl.log(pred) + (1.0 - target) * _log1m(pred))
    q = tl.minimum(tl.maximum(target, EPS), 1.0 - EPS)
    if VARIANT == 0:
        u = tl.full(pred.shape, 1.0, tl.float32)
    elif VARIANT == 1:
        u = tl.exp(-alpha * _bernoulli_kl(pred, q))
    else:
        u = tl.exp(-alpha * _bernoulli_kl(q, pred))
    return u, bce, (pred - target) / (pred * (1.0 - pred))


@triton.jit
def _row_tile(
    S_ptr, A_ptr, Y_ptr, gamma_ptr, thr_ptr, weq_ptr, part_ptr, dS_ptr, dA_ptr,
    b, tb, B, T, K, k, alpha, inv_B, g_mil, g_cll, g_scl,
    stride_sb, stride_st, stride_sk, stride_ab, stride_at, stride_yb, stride_yc,
    stride_db, stride_dt, stride_dk, stride_gb, stride_gt,
    VARIANT: tl.constexpr, MIL_NORM: tl.constexpr, SHIFTED: tl.constexpr, LOSS: tl.constexpr, GRAD: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """Rows [tb * BLOCK_T, +BLOCK_T) of video b: with LOSS, store part[b, tb, :] = (L_MIL (first
    tile only), L_CLL, L_SCL) contributions / B; with GRAD, store dS, dA of the tile for the
    upstream gradients g_mil, g_cll, g_scl (float32 scalars, already divided by B)."""
    inv_K = 1.0 / K
    cols = tl.arange(0, BLOCK_K)
    cmask = cols < K
    is_bg = cols == K - 1
    y = tl.load(Y_ptr + b * stride_yb + cols * stride_yc, mask=cols < K - 1, other=0).to(tl.float32)
    y_bar = tl.where(is_bg, 1.0, y)  # background present (Eq. 4); y itself is Y_hat (background 0)
    w_cll = tl.where(cmask, 1.0 - y_bar, 0.0)  # complementary labels of Eq. 6
    # The two L_CCE of Eq. 4 weigh -y_c log p_c by n_bar (Y_bar) and n_hat (Y_hat): 1/(C+1) as
    # written (MIL_NORM 0), or CO2-Net's labels normalised to sum to one (1).
    if MIL_NORM == 0:
        n_bar = inv_K
        n_hat = inv_K
    else:
        n_bar = 1.0 / (tl.sum(y_bar, axis=0) + CO2NET_LABEL_EPS)
        n_hat = 1.0 / (tl.sum(y, axis=0) + CO2NET_LABEL_EPS)

    rows = tb * BLOCK_T + tl.arange(0, BLOCK_T)
    rmask = rows < T
    mask = rmask[:, None] & cmask[None, :]
    s = tl.load(S_ptr + b * stride_sb + rows[:, None] * stride_st + cols[None, :] * stride_sk,
                mask=mask, other=0.0).to(tl.float32)
    a = tl.load(A_ptr + b * stride_ab + rows * stride_at, mask=rmask, other=0.5).to(tl.float32)

    # Snippet softmax (Eq. 3) split at the arg-max class a*: f = exp(s - m2) over the other
    # classes (m2 their max), so log(1 - b_a*) = m2 + log(sum f) - logsumexp(s) stays exact.
    s_m = tl.where(cmask[None, :], s, -float("inf"))
    m = tl.max(s_m, axis=1)
    is_top = cols[None, :] == tl.argmax(s_m, axis=1)[:, None]
    s_rest = tl.where(is_top, -float("inf"), s_m)
    m2 = tl.max(s_rest, axis=1)
    f = tl.exp(s_rest - m2[:, None])
    rest = tl.sum(f, axis=1)
    scale = tl.exp(m2 - m)
    z = 1.0 + scale * rest
    p = tl.where(is_top, 1.0, f * scale[:, None]) / z[:, None]

    # Eq. 9-10 on the background probability b and the attention a.
    p_bg = tl.sum(tl.where(is_bg[None, :], p, 0.0), axis=1)
    b_c = tl.minimum(tl.maximum(p_bg, EPS), 1.0 - EPS)
    a_c = tl.minimum(tl.maximum(a, EPS), 1.0 - EPS)
    u_b, bce_b, dbce_b = _scl_branch(b_c, 1.0 - a_c, alpha, VARIANT)
    u_a, bce_a, dbce_a = _scl_branch(a_c, 1.0 - b_c, alpha, VARIANT)

    # Eq. 1-2, 4-5 of this video from its top-k means.
    sel = B * K
    gam = tl.load(gamma_ptr + b * K + cols, mask=cmask, other=-float("inf"))
    gam_h = tl.load(gamma_ptr + sel + b * K + cols, mask=cmask, other=-float("inf"))
    log_p = gam - (tl.max(gam, axis=0) + tl.log(tl.sum(tl.exp(gam - tl.max(gam, axis=0)), axis=0)))
    log_ph = gam_h - (tl.max(gam_h, axis=0) + tl.log(tl.sum(tl.exp(gam_h - tl.max(gam_h, axis=0)), axis=0)))
    log_p = tl.where(cmask, log_p, 0.0)
    log_ph = tl.where(cmask, log_ph, 0.0)

    if LOSS:
        log1m_p = tl.where(is_top, (m2 - m + tl.log(rest) - tl.log(z))[:, None], _log1m(tl.where(is_top, 0.0, p)))
        cll_rows = -tl.sum(w_cll[None, :] * log1m_p, axis=1) * inv_K
        cll = tl.sum(tl.where(rmask, cll_rows, 0.0), axis=0) / T
        scl = tl.sum(tl.where(rmask, u_b * bce_b + u_a * bce_a, 0.0), axis=0)
        mil = -(tl.sum(y_bar * log_p, axis=0) * n_bar + tl.sum(y * log_ph, axis=0) * n_hat)
        mil = tl.where(tb == 0, mil, 0.0)
        out = part_ptr + (b * tl.cdiv(T, BLOCK_T) + tb) * 3
        tl.store(out, mil * inv_B)
        tl.store(out + 1, cll * inv_B)
        tl.store(out + 2, scl * inv_B)
    if GRAD:
        # MIL: d/dgamma of n sum -y log softmax(gamma) = (P sum(y) - y) n, spread as 1/k
        # over each column's top-k positions (of S, and of S_hat for gamma_hat).
        d_gam = tl.where(cmask, (tl.exp(log_p) * tl.sum(y_bar, axis=0) - y_bar) * n_bar, 0.0)
        d_gam_h = tl.where(cmask, (tl.exp(log_ph) * tl.sum(y, axis=0) - y) * n_hat, 0.0)
        thr = tl.load(thr_ptr + b * K + cols, mask=cmask, other=0)
        w_eq = tl.load(weq_ptr + b * K + cols, mask=cmask, other=0.0)
        thr_h = tl.load(thr_ptr + sel + b * K + cols, mask=cmask, other=0)
        w_eq_h = tl.load(weq_ptr + sel + b * K + cols, mask=cmask, other=0.0)
        c_mil = g_mil / k
        w_s = selection_weight(sortable_key(s), thr, w_eq)
        if SHIFTED:
            s_up = tl.where(cmask[None, :], s, float("inf"))
            m = tl.min(s_up, axis=1)  # the row minimum of the shifted S_hat (exact, as the select's)
        else:
            m = a  # unused by the product
        w_h = selection_weight(sortable_key(suppressed(s, a, m, SHIFTED)), thr_h, w_eq_h)
        d_hat = c_mil * d_gam_h[None, :] * w_h  # dL/dS_hat
        dS = c_mil * d_gam[None, :] * w_s + d_hat * a[:, None]
        if SHIFTED:
            # S_hat = a (s - m) + m: dS_hat_c/ds_j = a [j = c] + (1 - a) [j = arg-min] (the first
            # arg-min, as torch.min), dS_hat_c/da = s_c - m.
            is_min = cols[None, :] == tl.argmin(s_up, axis=1)[:, None]
            dS += tl.where(is_min, ((1.0 - a) * tl.sum(d_hat, axis=1))[:, None], 0.0)
            dA = tl.sum(d_hat * (s - m[:, None]), axis=1)
        else:
            dA = tl.sum(d_hat * s, axis=1)
        # CLL: d(-log(1 - b_c))/dS_j = b_j [j = c] - r_c b_j [j != c], r_c = b_c / (1 - b_c);
        # for the arg-max class r_c b_j = b_c f_j / sum(f) (no division by a tiny 1 - b_c).
        r = tl.where(is_top, 0.0, p / (1.0 - tl.where(is_top, 0.0, p)))
        r_sum = tl.sum(w_cll[None, :] * r, axis=1)
        w_top = tl.sum(tl.where(is_top, w_cll[None, :], 0.0), axis=1)
        own = w_cll[None, :] * tl.where(is_top, 1.0, 1.0 + r)  # w_j / (1 - b_j) off the arg-max
        d_cll = p * (own - r_sum[:, None]) - (w_top / z)[:, None] * (f / rest[:, None])
        dS += (g_cll * inv_K / T) * d_cll
        # SCL: b is trained through the first sum (softmax backward of column C), a through
        # the second; clamp passes the gradient only inside [EPS, 1 - EPS].
        g_b = tl.where((p_bg >= EPS) & (p_bg <= 1.0 - EPS), u_b * dbce_b, 0.0)
        g_a = tl.where((a >= EPS) & (a <= 1.0 - EPS), u_a * dbce_a, 0.0)
        dS += (g_scl * g_b * p_bg)[:, None] * (tl.where(is_bg[None, :], 1.0, 0.0) - p)
        dA += g_scl * g_a
        tl.store(dS_ptr + b * stride_db + rows[:, None] * stride_dt + cols[None, :] * stride_dk,
                 dS.to(dS_ptr.dtype.element_ty), mask=mask)
        tl.store(dA_ptr + b * stride_gb + rows * stride_gt, dA.to(dA_ptr.dtype.element_ty), mask=rmask)


@triton.jit
def _scale_tile(dS_ptr, dA_ptr, b, tb, T, K, factor,
                stride_db, stride_dt, stride_dk, stride_gb, stride_gt, BLOCK_T: tl.constexpr, BLOCK_K: tl.constexpr):
    """dS, dA of the tile *= factor, in place."""
    rows = tb * BLOCK_T + tl.arange(0, BLOCK_T)
    cols = tl.arange(0, BLOCK_K)
    mask = (rows < T)[:, None] & (cols < K)[None, :]
    ptrs = dS_ptr + b * stride_db + rows[:, None] * stride_dt + cols[None, :] * stride_dk
    tl.store(ptrs, (tl.load(ptrs, mask=mask, other=0.0).to(tl.float32) * factor).to(dS_ptr.dtype.element_ty), mask=mask)
    a_ptrs = dA_ptr + b * stride_gb + rows * stride_gt
    tl.store(a_ptrs, (tl.load(a_ptrs, mask=rows < T, other=0.0).to(tl.float32) * factor).to(dA_ptr.dtype.element_ty),
             mask=rows < T)


@triton.jit
def _himnet_loss_kernel(
    S_ptr, A_ptr, Y_ptr, gamma_ptr, thr_ptr, weq_ptr, part_ptr,
    g_mil_ptr, g_cll_ptr, g_scl_ptr, dS_ptr, dA_ptr,
    B, T, K, k, alpha, inv_B, w_mil, w_cll, w_scl,
    stride_sb, stride_st, stride_sk, stride_ab, stride_at, stride_yb, stride_yc,
    stride_db, stride_dt, stride_dk, stride_gb, stride_gt,
    VARIANT: tl.constexpr, MIL_NORM: tl.constexpr, SHIFTED: tl.constexpr, MODE: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """One (BLOCK_T, K) row tile of video b; grid (cdiv(T, BLOCK_T), B).

    MODE 0 (forward): loss partials part[b, tb, :] (their sum is the three terms).
    MODE 1 (forward with gradient): partials, and dS, dA for the upstream weights (w_mil,
        w_cll, w_scl), the weights the caller announced for the terms.
    MODE 2 (backward): dS, dA for the upstream gradients read from g_*_ptr (no host sync).
    MODE 3 (backward after MODE 1): if the upstream gradients are s * (w_mil, w_cll, w_scl)
        (relative tolerance 1e-6) the stored dS, dA are scaled by s in place (nothing is
        touched when s == 1); otherwise dS, dA are recomputed as in MODE 2.
    gamma, thr, w_eq: (2, B, K) from topk_select (index 0: S, 1: S_hat).
    """
    tb = tl.program_id(0)
    b = tl.program_id(1)
    if MODE >= 2:
        g_mil = tl.load(g_mil_ptr).to(tl.float32)
        g_cll = tl.load(g_cll_ptr).to(tl.float32)
        g_scl = tl.load(g_scl_ptr).to(tl.float32)
    else:
        g_mil = w_mil
        g_cll = w_cll
        g_scl = w_scl
    work = True
    if MODE == 3:
        # Least-squares factor of g on w, then a check that g is that multiple of w.
        factor = (g_mil * w_mil + g_cll * w_cll + g_scl * w_scl) / (w_mil * w_mil + w_cll * w_cll + w_scl * w_scl)
        err = tl.maximum(tl.maximum(tl.abs(g_mil - factor * w_mil), tl.abs(g_cll - factor * w_cll)),
                         tl.abs(g_scl - factor * w_scl))
        bound = 1e-6 * tl.maximum(tl.maximum(tl.abs(g_mil), tl.abs(g_cll)), tl.abs(g_scl))
        work = err > bound
        if (err <= bound) & (factor != 1.0):
            _scale_tile(dS_ptr, dA_ptr, b, tb, T, K, factor,
                        stride_db, stride_dt, stride_dk, stride_gb, stride_gt, BLOCK_T, BLOCK_K)
    if work:
        _row_tile(S_ptr, A_ptr, Y_ptr, gamma_ptr, thr_ptr, weq_ptr, part_ptr, dS_ptr, dA_ptr,
                  b, tb, B, T, K, k, alpha, inv_B, g_mil * inv_B, g_cll * inv_B, g_scl * inv_B,
                  stride_sb, stride_st, stride_sk, stride_ab, stride_at, stride_yb, stride_yc,
                  stride_db, stride_dt, stride_dk, stride_gb, stride_gt,
                  VARIANT, MIL_NORM, SHIFTED, MODE <= 1, MODE >= 1, BLOCK_T, BLOCK_K)


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def loss_config(T: int, K: int) -> tuple[int, int, int]:
    """(BLOCK_T, BLOCK_K, num_warps) of the row kernel: a whole row of K classes per tile."""
    block_k = _next_pow2(K)
    block_t = max(1, min(TILE_ELEMS // block_k, _next_pow2(T)))
    warps = 8 if block_t * block_k >= 1024 else 4
    return block_t, block_k, warps


def _launch(mode, S, A, labels, k, alpha, variant, mil_norm, suppression, stats, part=None, grads=None,
            dS=None, dA=None, weights=(0.0, 0.0, 0.0)):
    """Run ``_himnet_loss_kernel`` in one MODE (see its docstring); unused pointers get a stand-in."""
    B, T, K = S.shape
    gamma, thr, w_eq = stats
    block_t, block_k, warps = loss_config(T, K)
    g_mil, g_cll, g_scl = (g.float() for g in grads) if grads is not None else (gamma, gamma, gamma)
    if dS is None:
        dS, dA, d_strides = S, A, (0,) * 5
    else:
        d_strides = (*dS.stride(), *dA.stride())
    grid = (triton.cdiv(T, block_t), B)
    _himnet_loss_kernel[grid](
        S, A, labels, gamma, thr, w_eq, part if part is not None else gamma,
        g_mil, g_cll, g_scl, dS, dA,
        B, T, K, k, float(alpha), 1.0 / B, *(float(w) for w in weights),
        *S.stride(), *A.stride(), *labels.stride(), *d_strides,
        VARIANT=VARIANT_CODES[variant], MIL_NORM=MIL_NORM_CODES[mil_norm],
        SHIFTED=suppression == "shifted", MODE=mode, BLOCK_T=block_t, BLOCK_K=block_k, num_warps=warps,
    )


class HiMNetLossFunction(torch.autograd.Function):
    """(S (B, T, K), A (B, T), labels (B, C), k, alpha, variant, grad_weights) -> (L_MIL, L_CLL, L_SCL).

    Each output is a 0-D float32 tensor, the mean over videos. Saves S, A, labels and the
    (2, B, K) top-k statistics (a few KiB); nothing of size (B, T, K) beyond S itself.

    grad_weights None: the forward computes the terms only; the backward recomputes the tile
    softmax and writes dS, dA in one kernel (reads S once, writes dS once).
    grad_weights (w_mil, w_cll, w_scl): the loss is the last node of the graph, so the forward
    also writes dS, dA for the upstream gradients (w_mil, w_cll, w_scl) in the same pass over S.
    The backward then costs one launch that does nothing when the gradients are exactly those
    weights, scales dS, dA in place when they are a multiple s of them, and recomputes
    otherwise (decided on the device, no host sync). The precomputed dS, dA live from the
    forward to the backward (one extra (B, T, K) buffer in that window).
    """

    @staticmethod
    def forward(ctx, S, A, labels, k: int, alpha: float, variant: str, grad_weights=None, mil_norm: str = "paper",
                suppression: str = "product"):
        B, T, K = S.shape
        stats = topk_select(S, k, A, suppression)
        part = torch.empty((B, triton.cdiv(T, loss_config(T, K)[0]), 3), device=S.device, dtype=torch.float32)
        ctx.params = (k, alpha, variant, mil_norm, suppression)
        ctx.grad_weights = grad_weights
        ctx.precomputed = None
        if grad_weights is None or not any(ctx.needs_input_grad[:2]):
            _launch(0, S, A, labels, *ctx.params, stats, part=part)
        else:
            dS, dA = torch.empty_like(S), torch.empty_like(A)
            _launch(1, S, A, labels, *ctx.params, stats, part=part, dS=dS, dA=dA, weights=grad_weights)
            ctx.precomputed = (dS, dA)
        ctx.save_for_backward(S, A, labels, *stats)
        return part.sum(dim=(0, 1)).unbind()

    @staticmethod
    def backward(ctx, g_mil, g_cll, g_scl):
        S, A, labels, *stats = ctx.saved_tensors
        grads = (g_mil, g_cll, g_scl)
        if ctx.precomputed is not None:  # first backward after a forward with gradient
            dS, dA = ctx.precomputed
            ctx.precomputed = None  # a second backward (retain_graph) recomputes into new buffers
            _launch(3, S, A, labels, *ctx.params, stats, grads=grads, dS=dS, dA=dA, weights=ctx.grad_weights)
        else:
            dS, dA = torch.empty_like(S), torch.empty_like(A)
            _launch(2, S, A, labels, *ctx.params, stats, grads=grads, dS=dS, dA=dA)
        return dS, dA, None, None, None, None, None, None, None


def himnet_losses(S, A, labels, k: int, alpha: float = 4.0, scl_variant: str = "self", grad_weights=None,
                  mil_norm: str = "paper", suppression: str = "product"):
    """Fused (L_MIL, L_CLL, L_SCL) of a batch: S (B, T, K), A (B, T), labels (B, C), 1 <= k <= T.

    grad_weights: None, or the weights (w_mil, w_cll, w_scl) the caller will give the terms in
    its loss (e.g. (1, 1, lambda2) for Eq. 11), so the forward writes the gradient too
    (``HiMNetLossFunction``). Inputs are assumed validated by ``himnet_fast.ops.himnet_losses``;
    returns a tuple of three 0-D float32 tensors (the dispatcher wraps them in ``HiMNetLossTerms``).
    """
    if labels.dtype == torch.bool:
        labels = labels.to(torch.float32)
    if grad_weights is not None:
        grad_weights = tuple(float(w) for w in grad_weights)
    return HiMNetLossFunction.apply(S, A, labels, k, alpha, scl_variant, grad_weights, mil_norm, suppression)
