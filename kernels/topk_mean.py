"""Triton top-k mean pooling over time (paper Eq. 1), forward and backward, for any k and T.

For every (video b, class c) column of S (B, T, K) the forward finds the k-th largest value by
a radix select on order-preserving integer keys of the float32 values (MSB first, one count
per bit, stopping early once exactly k values lie at or above the prefix found so far), then
returns gamma[b, c] = mean of the k largest values. It never sorts, works for any k in [1, T],
and reads T in chunks when a column does not fit one register tile.

Ties: when several values equal the k-th largest, the value is exact (ties are equal), and the
gradient 1/k of the positions that tie at the k-th value is shared equally among them:
positions strictly above the k-th value get 1/k, each of the ``n_eq`` tied positions gets
``(k - n_gt) / (n_eq * k)``, everything else 0 (a valid subgradient: the average over every
way of breaking the tie). Without ties this is exactly the gradient of ``topk(...).mean()``.
Ties are equal keys: -0 ranks below +0 (``sortable_key``).

The selection is also used by the fused loss (``kernels/himnet_loss.py``), which selects on S
and on S_hat = S * A (computed in float32) in the same pass.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

INT32_MIN = tl.constexpr(-2147483648)  # key below every finite float; also the sign-bit mask
# Elements of one register tile of the select kernel (per selection), kept across its up to 32
# radix passes: 4096 holds a whole column of T <= 4096 (the SINGLE path). Tiles of 2048 / 4096 /
# 8192 made no difference on an H200 (BENCHMARKS.md). The loss kernel's tile is another
# (``himnet_loss.ROW_TILE_ELEMS``: whole rows of K classes, many more live temporaries).
SELECT_TILE_ELEMS = 4096
GRAD_TILE_ELEMS = 4096  # elements of one tile of the elementwise backward kernel (not tuned)
# About two programs per SM of an H100 (132 SMs); under the Triton interpreter (CPU tests) each
# program costs milliseconds, so there the tile is only ever limited by SELECT_TILE_ELEMS.
MIN_PROGRAMS = 1 if os.environ.get("TRITON_INTERPRET") == "1" else 256


@triton.jit
def sortable_key(x):
    """Signed int32 key with the order of the float32 ``x``: x < y => key(x) < key(y).

    -0 rule: key(-0.0) = -1 sorts just below key(+0.0) = 0, where the C++ ``OrderedKey`` (csrc)
    maps both to one key. For the top-k mean this cannot matter: either rule selects k values that
    differ at most in the signs of some zeros, and their sum is the same. It matters only for the
    gradient when the k-th largest value is a zero: the +0 positions are taken before the -0 ones
    instead of all zeros sharing it as ties (module docstring); both are valid subgradients. Keys
    that agreed would change today's gradients there (S_hat = S * A holds zeros of both signs on
    rows with a = 0), so the rule stays. Finite inputs only.
    """
    bits = x.to(tl.int32, bitcast=True)
    return bits ^ ((bits >> 31) & 0x7FFFFFFF)


@triton.jit
def selection_weight(key, thr, w_eq):
    """Weight (0, w_eq or 1) of each position in the top-k of its column.

    key: (..., BLOCK_C) int32 keys; thr, w_eq: (BLOCK_C,) the column's threshold key (the k
    selected positions have key >= thr; with ties at the k-th value, thr is its key) and the
    share of one position whose key equals thr (see the module docstring; 1 without ties).
    Multiply by 1/k for the gradient.
    """
    return tl.where(key > thr[None, :], 1.0, tl.where(key == thr[None, :], w_eq[None, :], 0.0))


@triton.jit
def suppressed(x, a, m, SHIFTED: tl.constexpr):
    """S_hat (``reference.losses.suppress``) of a (rows, cols) tile x, in float32: x * a, or
    (SHIFTED, CO2-Net's reading) a * (x - m) + m. a, m: (rows,), m the row's minimum over all
    K classes. The select and the loss kernels both call this, so their keys agree bit for bit."""
    if SHIFTED:
        return a[:, None] * (x - m[:, None]) + m[:, None]
    return x * a[:, None]


@triton.jit
def _load_keys(S_ptr, A_ptr, M_ptr, b, t0, cols, cmask, T, stride_sb, stride_st, stride_sk, stride_ab, stride_at,
               HAS_A: tl.constexpr, SHIFTED: tl.constexpr, BLOCK_T: tl.constexpr):
    """One (BLOCK_T, BLOCK_C) chunk: values and keys of S and (when HAS_A) of S_hat (``suppressed``;
    SHIFTED reads the row minima from M, contiguous (B, T) float32).

    Positions past T or past K get the key INT32_MIN, below every finite value's key.
    """
    rows = t0 + tl.arange(0, BLOCK_T)
    mask = (rows < T)[:, None] & cmask[None, :]
    x = tl.load(S_ptr + b * stride_sb + rows[:, None] * stride_st + cols[None, :] * stride_sk,
                mask=mask, other=0.0).to(tl.float32)
    key = tl.where(mask, sortable_key(x), INT32_MIN)
    if HAS_A:
        a = tl.load(A_ptr + b * stride_ab + rows * stride_at, mask=rows < T, other=0.0).to(tl.float32)
        if SHIFTED:
            m = tl.load(M_ptr + b * T + rows, mask=rows < T, other=0.0)
        else:
            m = a  # unused by the product
        xh = suppressed(x, a, m, SHIFTED)
        keyh = tl.where(mask, sortable_key(xh), INT32_MIN)
    else:
        xh = x
        keyh = key
    return mask, x, key, xh, keyh


@triton.jit
def _count_ge(key, cand):
    """Per column, how many keys lie at or above the unsigned-order bit pattern ``cand``.

    key: (BLOCK_T, BLOCK_C) int32 signed-order keys; cand: (BLOCK_C,) int32 bit patterns.
    """
    return tl.sum((key >= (cand ^ INT32_MIN)[None, :]).to(tl.int32), axis=0)


@triton.jit
def _take(c, cand, prefix, cnt, k):
    """Radix step: keep the candidate bit where at least k keys are >= it (per column)."""
    take = c >= k
    return tl.where(take, cand, prefix), tl.where(take, c, cnt)


@triton.jit
def _merge(cnt_ge, cnt_eq, sum_ge, val_eq, x, key, mask, thr):
    """Add one chunk to the per-column final statistics for the threshold key thr:
    how many values are >= / == the threshold, their sum (float64: T values near the float32
    maximum cannot overflow it), and the value equal to it."""
    ge = mask & (key >= thr[None, :])
    eq = mask & (key == thr[None, :])
    return (cnt_ge + tl.sum(ge.to(tl.int32), axis=0),
            cnt_eq + tl.sum(eq.to(tl.int32), axis=0),
            sum_ge + tl.sum(tl.where(ge, x.to(tl.float64), 0.0), axis=0),
            tl.maximum(val_eq, tl.max(tl.where(eq, x, -float("inf")), axis=0)))


@triton.jit
def _store_stats(gamma_ptr, thr_ptr, weq_ptr, offs, cmask, k, thr, cnt_ge, cnt_eq, sum_ge, val_eq):
    """gamma = mean of the k largest; thr = threshold key; w_eq = share of a position at thr.
    In float64, like sum_ge: in float32 the sum of values near the float32 maximum overflowed,
    and inf - inf gave NaN."""
    excess = tl.maximum(cnt_ge - k, 0)  # > 0 only with ties at the k-th value (then val_eq is that value)
    total = sum_ge - excess.to(tl.float64) * tl.where(cnt_eq > 0, val_eq, 0.0).to(tl.float64)
    w_eq = tl.where(cnt_eq > 0, (k - (cnt_ge - cnt_eq)).to(tl.float32) / tl.maximum(cnt_eq, 1).to(tl.float32), 0.0)
    tl.store(gamma_ptr + offs, (total / k).to(tl.float32), mask=cmask)
    tl.store(thr_ptr + offs, thr, mask=cmask)
    tl.store(weq_ptr + offs, w_eq, mask=cmask)


@triton.jit
def _topk_select_kernel(
    S_ptr, A_ptr, M_ptr, gamma_ptr, thr_ptr, weq_ptr,
    B, T, K, k,
    stride_sb, stride_st, stride_sk, stride_ab, stride_at,
    HAS_A: tl.constexpr, SHIFTED: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr,
    SINGLE: tl.constexpr,
):
    """Top-k statistics of BLOCK_C columns of one video; grid (cdiv(K, BLOCK_C), B).

    Writes, per selection j (0: S, 1: S_hat when HAS_A) at [j, b, c] of (NSEL, B, K) outputs:
    gamma (float32 top-k mean), thr (int32 threshold key: exactly k keys are >= it, or, with
    ties at the k-th value, the key of that value), w_eq (float32 share of a position at thr).
    SINGLE: the whole column (T <= BLOCK_T) stays in registers across the radix passes;
    otherwise each pass re-reads T in chunks of BLOCK_T.
    """
    cb = tl.program_id(0)
    b = tl.program_id(1)
    cols = cb * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = cols < K
    prefix = tl.zeros((BLOCK_C,), tl.int32)
    prefix_h = tl.zeros((BLOCK_C,), tl.int32)
    # Count of keys >= prefix; padded columns start "done" (count == k).
    cnt = tl.where(cmask, T, k)
    if HAS_A:
        cnt_h = cnt
    else:
        cnt_h = tl.zeros((BLOCK_C,), tl.int32) + k  # no second selection: always "done"
    bit = tl.full((), INT32_MIN, tl.int32)
    if SINGLE:
        mask, x, key, xh, keyh = _load_keys(S_ptr, A_ptr, M_ptr, b, 0, cols, cmask, T, stride_sb, stride_st, stride_sk,
                                            stride_ab, stride_at, HAS_A, SHIFTED, BLOCK_T)
    while (bit != 0) & (tl.maximum(tl.max(cnt, axis=0), tl.max(cnt_h, axis=0)) > k):
        cand = prefix | bit
        cand_h = prefix_h | bit
        if SINGLE:
            c = _count_ge(key, cand)
            if HAS_A:
                c_h = _count_ge(keyh, cand_h)
        else:
            c = tl.zeros((BLOCK_C,), tl.int32)
            c_h = tl.zeros((BLOCK_C,), tl.int32)
            # A while, not range(0, T, BLOCK_T): Triton 3.6's interpreter turns a runtime scalar
            # into an index with int() of a 1-element array, which numpy >= 2.4 refuses (issue 14).
            t0 = tl.full((), 0, tl.int32)
            while t0 < T:
                mask, x, key, xh, keyh = _load_keys(S_ptr, A_ptr, M_ptr, b, t0, cols, cmask, T, stride_sb, stride_st,
                                                    stride_sk, stride_ab, stride_at, HAS_A, SHIFTED, BLOCK_T)
                c += _count_ge(key, cand)
                if HAS_A:
                    c_h += _count_ge(keyh, cand_h)
                t0 += BLOCK_T
        prefix, cnt = _take(c, cand, prefix, cnt, k)
        if HAS_A:
            prefix_h, cnt_h = _take(c_h, cand_h, prefix_h, cnt_h, k)
        bit = (bit >> 1) & 0x7FFFFFFF
    thr = prefix ^ INT32_MIN
    thr_h = prefix_h ^ INT32_MIN
    offs = b * K + cols
    cnt_ge = tl.zeros((BLOCK_C,), tl.int32)
    cnt_eq = tl.zeros((BLOCK_C,), tl.int32)
    sum_ge = tl.zeros((BLOCK_C,), tl.float64)
    val_eq = tl.full((BLOCK_C,), -float("inf"), tl.float32)
    cnt_ge_h, cnt_eq_h, sum_ge_h, val_eq_h = cnt_ge, cnt_eq, sum_ge, val_eq
    if SINGLE:
        cnt_ge, cnt_eq, sum_ge, val_eq = _merge(cnt_ge, cnt_eq, sum_ge, val_eq, x, key, mask, thr)
        if HAS_A:
            cnt_ge_h, cnt_eq_h, sum_ge_h, val_eq_h = _merge(cnt_ge_h, cnt_eq_h, sum_ge_h, val_eq_h,
                                                            xh, keyh, mask, thr_h)
    else:
        t0 = tl.full((), 0, tl.int32)
        while t0 < T:  # see the radix pass above for why not range()
            mask, x, key, xh, keyh = _load_keys(S_ptr, A_ptr, M_ptr, b, t0, cols, cmask, T, stride_sb, stride_st,
                                                stride_sk, stride_ab, stride_at, HAS_A, SHIFTED, BLOCK_T)
            cnt_ge, cnt_eq, sum_ge, val_eq = _merge(cnt_ge, cnt_eq, sum_ge, val_eq, x, key, mask, thr)
            if HAS_A:
                cnt_ge_h, cnt_eq_h, sum_ge_h, val_eq_h = _merge(cnt_ge_h, cnt_eq_h, sum_ge_h, val_eq_h,
                                                                xh, keyh, mask, thr_h)
            t0 += BLOCK_T
    _store_stats(gamma_ptr, thr_ptr, weq_ptr, offs, cmask, k, thr, cnt_ge, cnt_eq, sum_ge, val_eq)
    if HAS_A:
        _store_stats(gamma_ptr + B * K, thr_ptr + B * K, weq_ptr + B * K, offs, cmask, k, thr_h,
                     cnt_ge_h, cnt_eq_h, sum_ge_h, val_eq_h)


@triton.jit
def _topk_grad_kernel(
    S_ptr, G_ptr, thr_ptr, weq_ptr, dS_ptr,
    T, K, inv_k,
    stride_sb, stride_st, stride_sk, stride_db, stride_dt, stride_dk,
    BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """dS[b, t, c] = G[b, c] / k * weight(t, c) for one (BLOCK_T, BLOCK_C) tile;
    grid (cdiv(K, BLOCK_C), cdiv(T, BLOCK_T), B). G: (B, K) float32 upstream gradient."""
    cb = tl.program_id(0)
    tb = tl.program_id(1)
    b = tl.program_id(2)
    cols = cb * BLOCK_C + tl.arange(0, BLOCK_C)
    rows = tb * BLOCK_T + tl.arange(0, BLOCK_T)
    cmask = cols < K
    mask = (rows < T)[:, None] & cmask[None, :]
    x = tl.load(S_ptr + b * stride_sb + rows[:, None] * stride_st + cols[None, :] * stride_sk,
                mask=mask, other=0.0).to(tl.float32)
    offs = b * K + cols
    thr = tl.load(thr_ptr + offs, mask=cmask, other=0)
    w_eq = tl.load(weq_ptr + offs, mask=cmask, other=0.0)
    g = tl.load(G_ptr + offs, mask=cmask, other=0.0).to(tl.float32) * inv_k
    dS = selection_weight(sortable_key(x), thr, w_eq) * g[None, :]
    tl.store(dS_ptr + b * stride_db + rows[:, None] * stride_dt + cols[None, :] * stride_dk,
             dS.to(dS_ptr.dtype.element_ty), mask=mask)


def select_config(T: int, K: int, B: int = 1) -> tuple[int, int, bool, int]:
    """(BLOCK_T, BLOCK_C, SINGLE, num_warps) of the select kernel for B videos of K columns of
    length T: as many columns per program as one register tile holds, fewer while that would
    leave fewer than MIN_PROGRAMS programs (small batches are latency-bound)."""
    t_pow = triton.next_power_of_2(T)
    single = t_pow <= SELECT_TILE_ELEMS
    block_c = max(1, min(SELECT_TILE_ELEMS // t_pow if single else 8, triton.next_power_of_2(K), 64))
    while block_c > 1 and triton.cdiv(K, block_c) * B < MIN_PROGRAMS:
        block_c //= 2
    block_t = t_pow if single else SELECT_TILE_ELEMS // block_c
    warps = 8 if block_t * block_c >= 2048 else 4
    return block_t, block_c, single, warps


def topk_select(S: torch.Tensor, k: int, A: torch.Tensor | None = None, suppression: str = "product"):
    """Top-k statistics of every column of S (and of S_hat when A is given).

    S: (B, T, K) float (any strides), A: (B, T) or None, 1 <= k <= T; suppression: S_hat =
    S * A ("product") or A * (S - m) + m ("shifted", m = S's minimum over classes per snippet),
    computed in float32 (``suppressed``).
    Returns (gamma, thr, w_eq), each (NSEL, B, K) with NSEL = 2 if A is given (index 1: S_hat)
    else 1: gamma float32 top-k means, thr int32 threshold keys and w_eq float32 gradient
    shares of the positions at the threshold (``selection_weight``).
    """
    B, T, K = S.shape
    nsel = 1 if A is None else 2
    gamma = torch.empty((nsel, B, K), device=S.device, dtype=torch.float32)
    thr = torch.empty((nsel, B, K), device=S.device, dtype=torch.int32)
    w_eq = torch.empty((nsel, B, K), device=S.device, dtype=torch.float32)
    block_t, block_c, single, warps = select_config(T, K, B)
    A_arg = S if A is None else A
    shifted = A is not None and suppression == "shifted"
    # The row minima of the shifted S_hat span all K classes, more than one program's columns.
    M = S.amin(dim=-1).to(torch.float32).contiguous() if shifted else gamma
    a_strides = (0, 0) if A is None else (A.stride(0), A.stride(1))
    grid = (triton.cdiv(K, block_c), B)
    _topk_select_kernel[grid](
        S, A_arg, M, gamma, thr, w_eq, B, T, K, k, S.stride(0), S.stride(1), S.stride(2), *a_strides,
        HAS_A=A is not None, SHIFTED=shifted, BLOCK_T=block_t, BLOCK_C=block_c, SINGLE=single, num_warps=warps,
    )
    return gamma, thr, w_eq


def _grad_config(T: int, K: int) -> tuple[int, int]:
    """(BLOCK_T, BLOCK_C) of the elementwise backward kernel (tiles of at most GRAD_TILE_ELEMS)."""
    block_c = min(triton.next_power_of_2(K), 64)
    block_t = max(1, min(triton.next_power_of_2(T), GRAD_TILE_ELEMS // block_c))
    return block_t, block_c


class TopKMeanFunction(torch.autograd.Function):
    """Eq. 1 top-k mean over time: S (B, T, K), k -> gamma (B, K) float32 (dS in S's dtype).

    Saves S and the per-column (thr, w_eq) statistics; the backward is one kernel that writes
    dS = grad[b, c] / k on the selected positions (shared on ties, module docstring), 0 elsewhere.
    """

    @staticmethod
    def forward(ctx, S: torch.Tensor, k: int) -> torch.Tensor:
        gamma, thr, w_eq = topk_select(S, k)
        ctx.save_for_backward(S, thr[0], w_eq[0])
        ctx.k = k
        return gamma[0]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        S, thr, w_eq = ctx.saved_tensors
        B, T, K = S.shape
        grad = grad.contiguous()
        dS = torch.empty_like(S)
        block_t, block_c = _grad_config(T, K)
        grid = (triton.cdiv(K, block_c), triton.cdiv(T, block_t), B)
        _topk_grad_kernel[grid](
            S, grad, thr, w_eq, dS, T, K, 1.0 / ctx.k,
            S.stride(0), S.stride(1), S.stride(2), dS.stride(0), dS.stride(1), dS.stride(2),
            BLOCK_T=block_t, BLOCK_C=block_c,
        )
        return dS, None


def topk_mean(S: torch.Tensor, k: int) -> torch.Tensor:
    """Differentiable top-k mean over time. S: (B, T, K) float, 1 <= k <= T -> (B, K) float32.

    Inputs are assumed validated by the dispatcher ``himnet_fast.ops.topk_mean``.
    """
    return TopKMeanFunction.apply(S, k)
