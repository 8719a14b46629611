"""Fused HiM-Net loss terms L_MIL (Eq. 4), L_CLL (Eq. 6) and L_SCL (Eq. 10) in Triton.

One loss kernel, ``_himnet_loss_kernel``, grid (row blocks, B videos), one (BLOCK_T, K) tile of S
per program, run by ``himnet_loss_forward`` / ``himnet_loss_backward`` and wrapped by
``HiMNetLossFunction``. Neither the snippet softmax nor S_hat is ever materialised: the forward
first runs ``topk_select`` (kernels/topk_mean.py) for the top-k means gamma of S and gamma_hat of
S_hat (with each column's threshold key and tie share, for the backward); the loss kernel then
recomputes everything else from its tile. Its ``MODE`` is one of:

  FORWARD         loss partials part[b, tb] = (L_MIL of video b in its first row block, its rows'
                  share of L_CLL, of L_SCL) / B; their sum over (b, tb) is the three terms.
  FORWARD_GRAD    the partials and dS, dA for upstream gradients equal to the weights the caller
                  announced (``grad_weights``): the gradient in the forward, as Liger-Kernel's cross
                  entropy, so the loss reads S once for both.
  BACKWARD        dS, dA for the upstream gradients g, read on the device (no host sync).
  BACKWARD_CHECK  the backward after FORWARD_GRAD, with w the announced weights: if g = s w
                  (s = <g, w> / <w, w>, max |g - s w| <= 1e-6 max |g|), the stored dS, dA are scaled
                  by s in place (untouched when s == 1); otherwise recomputed as in BACKWARD.

dL/dS and dL/dA, step by step, for one video and one snippet t (the kernel's names in brackets).
s = S[t, :] (K = C + 1 logits, background last), a = A[t], y_bar = [labels, 1], y_hat = [labels,
0]; g_mil, g_cll, g_scl the upstream gradients of the batch means (already divided by B).

Softmax split at the arg-max (``_split_softmax``): i = argmax s, m = s_i, m2 = max_{j != i} s_j,
f_j = exp(s_j - m2) (f_i = 0), F = sum f [rest], e = exp(m2 - m) [scale], z = 1 + e F; then
p_i = 1 / z, p_j = e f_j / z, and log(1 - p_i) = m2 - m + log F - log z stays finite where p_i
rounds to 1 (elsewhere p_j <= 1/2 and log(1 - p_j) = log1p(-p_j), ``_log1m``).

MIL (``_mil``). gamma_c = mean of the k largest S[:, c], log P = log_softmax(gamma); gamma_hat,
P_hat the same on S_hat. Per video L = -n_bar sum_c y_bar_c log P_c - n_hat sum_c y_hat_c log P_hat_c
with n_bar = n_hat = 1/K (MIL_PAPER, Eq. 5), or n_bar = 1 / (sum y_bar + 1e-4) and n_hat =
1 / (sum y_hat + 1e-4) (MIL_BASE, CO2-Net's label-normalised cross entropy).
 (1) d(-sum_j y_j log P_j)/dgamma_c = P_c sum_j y_j - y_c, so dL/dgamma_c = n_bar (P_c sum y_bar -
     y_bar_c) [d_gam] and dL/dgamma_hat_c = n_hat (P_hat_c sum y_hat - y_hat_c) [d_gam_h].
 (2) dgamma_c/dS[t, c] = w[t, c] / k, w the top-k selection weight of S (``selection_weight``: 1
     above the k-th largest value, the tie share at it, 0 below); w_hat likewise on S_hat.
 (3) dS_c = g_mil / k dL/dgamma_c w[t, c], and dL/dS_hat[t, c] = g_mil / k dL/dgamma_hat_c
     w_hat[t, c] =: h_c [d_hat].
 (4) product (S_hat = a s): dS_c += a h_c, dA = sum_c h_c s_c.
     shifted (CO2-Net, S_hat = a (s - mu) + mu, mu = min_j s_j, whose gradient goes to the first
     arg-min j*, as torch.min): dS_hat_c/ds_j = a [j = c] + (1 - a) [j = j*], dS_hat_c/da = s_c - mu,
     so dS_j += a h_j + (1 - a) [j = j*] sum_c h_c and dA = sum_c h_c (s_c - mu).
CLL (``_cll``). Per video L = (1/T) sum_t n_cll sum_c -v_c log(1 - p_c), v = 1 - y_bar [w_cll]
(the complementary labels: 0 on the video's classes and on the background), n_cll = 1/K (CLL_PAPER,
Eq. 5) or 1 (CLL_PROCL, the authors' ProCL code: the sum over the classes).
 (5) dp_c/ds_j = p_c ([j = c] - p_j), so with r_c = p_c / (1 - p_c):
     d(-log(1 - p_c))/ds_j = r_c ([j = c] - p_j) = p_c [j = c] - r_c p_j [j != c].
 (6) Weighted by v and summed over c: D_j = p_j (v_j / (1 - p_j) - R), R = sum_c v_c r_c.
 (7) r_i = 1 / (e F) is never formed (1 - p_i may round to 0): R = R' + v_i r_i, R' the sum over
     c != i [r_sum], r_i p_j = f_j / (F z) and v_j / (1 - p_j) = v_j (1 + r_j), so
     D_j = p_j (v_j (1 + r_j) - R') - (v_i / z) f_j / F for j != i, D_i = p_i (v_i - R') [d_cll]
     (one formula: f_i = 0).
 (8) dS += g_cll n_cll / T D.
SCL (``_scl``). b = p_C (background), b~ = clamp(b, EPS, 1 - EPS), a~ = clamp(a, EPS, 1 - EPS); L =
sum_t U_b BCE(b~; 1 - a~) + U_a BCE(a~; 1 - b~), U_b = U(b~ || 1 - a~), U_a = U(a~ || 1 - b~) (Eq. 9:
1 for SCL_NONE, exp(-alpha KL(pred || target)) for SCL_SELF, exp(-alpha KL(target || pred)) for
SCL_TARGET); the targets and U are constants for the gradient.
 (9) dBCE(x; y)/dx = (x - y) / (x (1 - x)); clamp passes the gradient for EPS <= x <= 1 - EPS only:
     g_b = [EPS <= b <= 1 - EPS] U_b dBCE(b~; 1 - a~)/db~, g_a the same for a.
(10) db/ds_j = b ([j = C] - p_j), so dS_j += g_scl g_b b ([j = C] - p_j), and dA += g_scl g_a.
dS and dA sum the terms in this order: MIL (3-4), CLL (8), SCL (10).

Numerics follow the reference (``himnet_fast.reference.losses``): float32, the top-k sums in float64.
Top-k ties follow kernels/topk_mean.py (the tied positions share the gradient).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from himnet_fast.kernels.topk_mean import selection_weight, sortable_key, suppressed, topk_select

EPS = tl.constexpr(1e-6)  # the reference's probability clamp (Eq. 9-10)
CO2NET_LABEL_EPS = tl.constexpr(1e-4)  # reference.losses.CO2NET_LABEL_EPS
FORWARD, FORWARD_GRAD, BACKWARD, BACKWARD_CHECK = (tl.constexpr(i) for i in range(4))  # MODE, in this order
SCL_NONE, SCL_SELF, SCL_TARGET = (tl.constexpr(i) for i in range(3))  # VARIANT: U of Eq. 9
MIL_PAPER, MIL_BASE = tl.constexpr(0), tl.constexpr(1)  # MIL_NORM: reference.losses.MIL_NORMS
CLL_PAPER, CLL_PROCL = tl.constexpr(0), tl.constexpr(1)  # CLL_NORM: reference.losses.CLL_NORMS
VARIANT_CODES = {"none": SCL_NONE, "self": SCL_SELF, "target": SCL_TARGET}
MIL_NORM_CODES = {"paper": MIL_PAPER, "base": MIL_BASE}
CLL_NORM_CODES = {"paper": CLL_PAPER, "procl": CLL_PROCL}
# Elements of one (BLOCK_T, BLOCK_K) row tile of the loss kernel: whole rows of K classes, with
# many such float32 temporaries live (topk_mean.SELECT_TILE_ELEMS is the select kernel's, one
# column block). 512 measured fastest on an H200 (fused fwd + bwd at B,T,C+1 = 64,2048,201:
# 1.59 ms vs 2.43 ms at 1024 and 2.53 ms at 2048; BENCHMARKS.md).
ROW_TILE_ELEMS = 512


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
    """One sum of Eq. 10 for one snippet: (U, BCE(pred; target), dBCE/dpred (9)).

    pred, target: clamped probabilities (target only clamped again inside U, as the reference).
    """
    bce = -(target * tl.log(pred) + (1.0 - target) * _log1m(pred))
    q = tl.minimum(tl.maximum(target, EPS), 1.0 - EPS)
    if VARIANT == SCL_NONE:
        u = tl.full(pred.shape, 1.0, tl.float32)
    elif VARIANT == SCL_SELF:
        u = tl.exp(-alpha * _bernoulli_kl(pred, q))
    else:
        u = tl.exp(-alpha * _bernoulli_kl(q, pred))
    return u, bce, (pred - target) / (pred * (1.0 - pred))


@triton.jit
def _split_softmax(s, cols, cmask):
    """The softmax p of each row split at its arg-max i (is_top): m, m2, f, F (rest), z."""
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
    return p, is_top, m, m2, f, rest, z


@triton.jit
def _log_softmax(gamma_ptr, cols, cmask):
    """log P of (1) from one video's K top-k means (0 on padded columns)."""
    gam = tl.load(gamma_ptr + cols, mask=cmask, other=-float("inf"))
    top = tl.max(gam, axis=0)
    return tl.where(cmask, gam - (top + tl.log(tl.sum(tl.exp(gam - top), axis=0))), 0.0)


@triton.jit
def _mil(s, a, y, y_bar, inv_K, gamma_ptr, thr_ptr, weq_ptr, row, sel, c_mil, cols, cmask,
         MIL_NORM: tl.constexpr, SHIFTED: tl.constexpr):
    """L_MIL of the video and dS, dA of its rows for the upstream gradient c_mil * k, (1)-(4).
    gamma, thr, w_eq: (2, B, K) statistics; row: the video's offset in them, sel: S_hat's."""
    if MIL_NORM == MIL_PAPER:
        n_bar = inv_K
        n_hat = inv_K
    else:
        n_bar = 1.0 / (tl.sum(y_bar, axis=0) + CO2NET_LABEL_EPS)
        n_hat = 1.0 / (tl.sum(y, axis=0) + CO2NET_LABEL_EPS)
    log_p = _log_softmax(gamma_ptr + row, cols, cmask)
    log_ph = _log_softmax(gamma_ptr + sel + row, cols, cmask)
    loss = -(tl.sum(y_bar * log_p, axis=0) * n_bar + tl.sum(y * log_ph, axis=0) * n_hat)
    d_gam = tl.where(cmask, (tl.exp(log_p) * tl.sum(y_bar, axis=0) - y_bar) * n_bar, 0.0)
    d_gam_h = tl.where(cmask, (tl.exp(log_ph) * tl.sum(y, axis=0) - y) * n_hat, 0.0)
    thr = tl.load(thr_ptr + row + cols, mask=cmask, other=0)
    w_eq = tl.load(weq_ptr + row + cols, mask=cmask, other=0.0)
    thr_h = tl.load(thr_ptr + sel + row + cols, mask=cmask, other=0)
    w_eq_h = tl.load(weq_ptr + sel + row + cols, mask=cmask, other=0.0)
    w_s = selection_weight(sortable_key(s), thr, w_eq)
    if SHIFTED:
        s_up = tl.where(cmask[None, :], s, float("inf"))
        mu = tl.min(s_up, axis=1)  # the row minimum of the shifted S_hat (exact, as the select's)
    else:
        mu = a  # unused by the product
    d_hat = c_mil * d_gam_h[None, :] * selection_weight(sortable_key(suppressed(s, a, mu, SHIFTED)), thr_h, w_eq_h)
    dS = c_mil * d_gam[None, :] * w_s + d_hat * a[:, None]
    if SHIFTED:
        is_min = cols[None, :] == tl.argmin(s_up, axis=1)[:, None]  # the first arg-min, as torch.min
        dS += tl.where(is_min, ((1.0 - a) * tl.sum(d_hat, axis=1))[:, None], 0.0)
        dA = tl.sum(d_hat * (s - mu[:, None]), axis=1)
    else:
        dA = tl.sum(d_hat * s, axis=1)
    return loss, dS, dA


@triton.jit
def _cll(p, is_top, m, m2, f, rest, z, v):
    """K times L_CLL's term of each row, -sum_c v_c log(1 - p_c), and its D of (5)-(7)."""
    log1m_p = tl.where(is_top, (m2 - m + tl.log(rest) - tl.log(z))[:, None], _log1m(tl.where(is_top, 0.0, p)))
    r = tl.where(is_top, 0.0, p / (1.0 - tl.where(is_top, 0.0, p)))
    r_sum = tl.sum(v[None, :] * r, axis=1)
    v_top = tl.sum(tl.where(is_top, v[None, :], 0.0), axis=1)
    own = v[None, :] * tl.where(is_top, 1.0, 1.0 + r)  # v_j / (1 - p_j) off the arg-max
    d_cll = p * (own - r_sum[:, None]) - (v_top / z)[:, None] * (f / rest[:, None])
    return -tl.sum(v[None, :] * log1m_p, axis=1), d_cll


@triton.jit
def _scl(p, a, is_bg, alpha, g_scl, VARIANT: tl.constexpr):
    """L_SCL of each row and its dS, dA for the upstream gradient g_scl, (9)-(10)."""
    p_bg = tl.sum(tl.where(is_bg[None, :], p, 0.0), axis=1)
    b_c = tl.minimum(tl.maximum(p_bg, EPS), 1.0 - EPS)
    a_c = tl.minimum(tl.maximum(a, EPS), 1.0 - EPS)
    u_b, bce_b, dbce_b = _scl_branch(b_c, 1.0 - a_c, alpha, VARIANT)
    u_a, bce_a, dbce_a = _scl_branch(a_c, 1.0 - b_c, alpha, VARIANT)
    g_b = tl.where((p_bg >= EPS) & (p_bg <= 1.0 - EPS), u_b * dbce_b, 0.0)
    g_a = tl.where((a >= EPS) & (a <= 1.0 - EPS), u_a * dbce_a, 0.0)
    dS = (g_scl * g_b * p_bg)[:, None] * (tl.where(is_bg[None, :], 1.0, 0.0) - p)
    return u_b * bce_b + u_a * bce_a, dS, g_scl * g_a


@triton.jit
def _row_tile(
    S_ptr, A_ptr, Y_ptr, gamma_ptr, thr_ptr, weq_ptr, part_ptr, dS_ptr, dA_ptr,
    b, tb, B, T, K, k, alpha, inv_B, g_mil, g_cll, g_scl,
    stride_sb, stride_st, stride_sk, stride_ab, stride_at, stride_yb, stride_yc,
    stride_db, stride_dt, stride_dk, stride_gb, stride_gt,
    VARIANT: tl.constexpr, MIL_NORM: tl.constexpr, CLL_NORM: tl.constexpr, SHIFTED: tl.constexpr,
    LOSS: tl.constexpr, GRAD: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """Rows [tb * BLOCK_T, +BLOCK_T) of video b: with LOSS, store part[b, tb, :] = (L_MIL (first
    tile only), L_CLL, L_SCL) contributions / B; with GRAD, store dS, dA of the tile for the
    upstream gradients g_mil, g_cll, g_scl (float32 scalars, already divided by B). The term
    helpers return both; the compiler drops what a MODE does not store."""
    inv_K = 1.0 / K
    n_cll = inv_K if CLL_NORM == CLL_PAPER else 1.0
    cols = tl.arange(0, BLOCK_K)
    cmask = cols < K
    is_bg = cols == K - 1
    y = tl.load(Y_ptr + b * stride_yb + cols * stride_yc, mask=cols < K - 1, other=0).to(tl.float32)
    y_bar = tl.where(is_bg, 1.0, y)  # background present (Eq. 4); y itself is Y_hat (background 0)
    w_cll = tl.where(cmask, 1.0 - y_bar, 0.0)  # complementary labels of Eq. 6
    rows = tb * BLOCK_T + tl.arange(0, BLOCK_T)
    rmask = rows < T
    mask = rmask[:, None] & cmask[None, :]
    s = tl.load(S_ptr + b * stride_sb + rows[:, None] * stride_st + cols[None, :] * stride_sk,
                mask=mask, other=0.0).to(tl.float32)
    a = tl.load(A_ptr + b * stride_ab + rows * stride_at, mask=rmask, other=0.5).to(tl.float32)
    p, is_top, m, m2, f, rest, z = _split_softmax(s, cols, cmask)
    mil, dS, dA = _mil(s, a, y, y_bar, inv_K, gamma_ptr, thr_ptr, weq_ptr, b * K, B * K, g_mil / k, cols, cmask,
                       MIL_NORM, SHIFTED)
    cll_rows, d_cll = _cll(p, is_top, m, m2, f, rest, z, w_cll)
    scl_rows, dS_scl, dA_scl = _scl(p, a, is_bg, alpha, g_scl, VARIANT)
    if LOSS:
        out = part_ptr + (b * tl.cdiv(T, BLOCK_T) + tb) * 3
        tl.store(out, tl.where(tb == 0, mil, 0.0) * inv_B)
        tl.store(out + 1, tl.sum(tl.where(rmask, cll_rows * n_cll, 0.0), axis=0) / T * inv_B)
        tl.store(out + 2, tl.sum(tl.where(rmask, scl_rows, 0.0), axis=0) * inv_B)
    if GRAD:
        dS += (g_cll * n_cll / T) * d_cll
        dS += dS_scl
        tl.store(dS_ptr + b * stride_db + rows[:, None] * stride_dt + cols[None, :] * stride_dk,
                 dS.to(dS_ptr.dtype.element_ty), mask=mask)
        tl.store(dA_ptr + b * stride_gb + rows * stride_gt, (dA + dA_scl).to(dA_ptr.dtype.element_ty), mask=rmask)


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
    VARIANT: tl.constexpr, MIL_NORM: tl.constexpr, CLL_NORM: tl.constexpr, SHIFTED: tl.constexpr,
    MODE: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """One (BLOCK_T, K) row tile of video b in one MODE (module docstring); grid (cdiv(T, BLOCK_T), B).
    w_*: the announced weights, g_*_ptr: the upstream gradients; gamma, thr, w_eq from topk_select."""
    tb = tl.program_id(0)
    b = tl.program_id(1)
    if MODE >= BACKWARD:
        g_mil = tl.load(g_mil_ptr).to(tl.float32)
        g_cll = tl.load(g_cll_ptr).to(tl.float32)
        g_scl = tl.load(g_scl_ptr).to(tl.float32)
    else:
        g_mil = w_mil
        g_cll = w_cll
        g_scl = w_scl
    work = True
    if MODE == BACKWARD_CHECK:
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
                  VARIANT, MIL_NORM, CLL_NORM, SHIFTED, MODE <= FORWARD_GRAD, MODE >= FORWARD_GRAD, BLOCK_T, BLOCK_K)


def loss_config(T: int, K: int) -> tuple[int, int, int]:
    """(BLOCK_T, BLOCK_K, num_warps) of the row kernel: a whole row of K classes per tile."""
    block_k = triton.next_power_of_2(K)
    block_t = max(1, min(ROW_TILE_ELEMS // block_k, triton.next_power_of_2(T)))
    warps = 8 if block_t * block_k >= 1024 else 4
    return block_t, block_k, warps


def _launch(mode, S, A, labels, params, stats, part=None, dSA=None, weights=None, grads=None):
    """Run ``_himnet_loss_kernel`` in one MODE; params = (k, alpha, variant, mil_norm, suppression,
    cll_norm); unused pointers get a stand-in, unused weights 0."""
    k, alpha, variant, mil_norm, suppression, cll_norm = params
    B, T, K = S.shape
    gamma, thr, w_eq = stats
    block_t, block_k, warps = loss_config(T, K)
    g_mil, g_cll, g_scl = (g.float() for g in grads) if grads is not None else (gamma, gamma, gamma)
    dS, dA = dSA if dSA is not None else (S, A)
    d_strides = (*dS.stride(), *dA.stride()) if dSA is not None else (0,) * 5
    _himnet_loss_kernel[(triton.cdiv(T, block_t), B)](
        S, A, labels, gamma, thr, w_eq, part if part is not None else gamma,
        g_mil, g_cll, g_scl, dS, dA,
        B, T, K, k, float(alpha), 1.0 / B, *(float(w) for w in weights or (0.0, 0.0, 0.0)),
        *S.stride(), *A.stride(), *labels.stride(), *d_strides,
        VARIANT=VARIANT_CODES[variant].value, MIL_NORM=MIL_NORM_CODES[mil_norm].value,
        CLL_NORM=CLL_NORM_CODES[cll_norm].value,
        SHIFTED=suppression == "shifted", MODE=mode.value, BLOCK_T=block_t, BLOCK_K=block_k, num_warps=warps,
    )


def himnet_loss_forward(S, A, labels, params, grad_weights=None):
    """(terms, stats, dSA): the three 0-D terms, the top-k statistics and, with grad_weights
    (FORWARD_GRAD), (dS, dA) for upstream gradients equal to them (else FORWARD and None)."""
    B, T, K = S.shape
    stats = topk_select(S, params[0], A, params[4])
    part = torch.empty((B, triton.cdiv(T, loss_config(T, K)[0]), 3), device=S.device, dtype=torch.float32)
    dSA = None if grad_weights is None else (torch.empty_like(S), torch.empty_like(A))
    _launch(FORWARD if dSA is None else FORWARD_GRAD, S, A, labels, params, stats, part, dSA, grad_weights)
    return part.sum(dim=(0, 1)).unbind(), stats, dSA


def himnet_loss_backward(S, A, labels, params, stats, grads, precomputed=None, grad_weights=None):
    """(dS, dA) for the upstream gradients grads: BACKWARD, or BACKWARD_CHECK on the (dS, dA)
    ``himnet_loss_forward`` precomputed for grad_weights."""
    dSA = (torch.empty_like(S), torch.empty_like(A)) if precomputed is None else precomputed
    _launch(BACKWARD if precomputed is None else BACKWARD_CHECK, S, A, labels, params, stats, None, dSA,
            grad_weights, grads)
    return dSA


class HiMNetLossFunction(torch.autograd.Function):
    """(S (B, T, K), A (B, T), labels (B, C), k, alpha, variant, grad_weights, mil_norm, suppression,
    cll_norm) -> (L_MIL, L_CLL, L_SCL), 0-D float32 tensors, means over videos. Saves S, A, labels and the
    (2, B, K) top-k statistics; with grad_weights (the loss is the last node of the graph) also the
    (dS, dA) of the forward, from the forward to the first backward (module docstring: MODE).
    """

    @staticmethod
    def forward(ctx, S, A, labels, k: int, alpha: float, variant: str, grad_weights=None, mil_norm: str = "paper",
                suppression: str = "product", cll_norm: str = "paper"):
        ctx.params = (k, alpha, variant, mil_norm, suppression, cll_norm)
        ctx.grad_weights = grad_weights if any(ctx.needs_input_grad[:2]) else None
        terms, stats, ctx.precomputed = himnet_loss_forward(S, A, labels, ctx.params, ctx.grad_weights)
        ctx.save_for_backward(S, A, labels, *stats)
        return terms

    @staticmethod
    def backward(ctx, g_mil, g_cll, g_scl):
        S, A, labels, *stats = ctx.saved_tensors
        # The precomputed buffers serve the first backward only; a second (retain_graph) recomputes.
        precomputed, ctx.precomputed = ctx.precomputed, None
        dS, dA = himnet_loss_backward(S, A, labels, ctx.params, stats, (g_mil, g_cll, g_scl), precomputed,
                                      ctx.grad_weights)
        return dS, dA, None, None, None, None, None, None, None, None


def himnet_losses(S, A, labels, k: int, alpha: float = 4.0, scl_variant: str = "self", grad_weights=None,
                  mil_norm: str = "paper", suppression: str = "product", cll_norm: str = "paper"):
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
    return HiMNetLossFunction.apply(S, A, labels, k, alpha, scl_variant, grad_weights, mil_norm, suppression,
                                    cll_norm)
