"""The loss reference (Eq. 1-11) against hand-computed values on tiny inputs.

Expected numbers are written as arithmetic with ``math`` (never by calling the code under
test). Small helpers below (softmax of a list, Bernoulli KL, BCE, cosine distance) are
hand-written scalar maths, independent of the tensor code.
"""
import math

import pytest
import torch

from himnet_fast.reference import losses as R

LN2, LN3 = math.log(2.0), math.log(3.0)


def t64(x):
    return torch.tensor(x, dtype=torch.float64)


def softmax(xs):
    e = [math.exp(x) for x in xs]
    return [v / sum(e) for v in e]


def kl(p, q):
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


def bce(x, y):
    return -(y * math.log(x) + (1 - y) * math.log(1 - x))


def cos_d(u, v):
    dot = sum(a * b for a, b in zip(u, v))
    return 1 - dot / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))


def triplet(Vi, Vj, Vbar_i, Vbar_j, delta=0.5):
    """Eq. 8 for one pair and one class, scalar maths."""
    d = cos_d(Vi, Vj)
    return 0.5 * max(0.0, d - cos_d(Vi, Vbar_j) + delta) + 0.5 * max(0.0, d - cos_d(Vj, Vbar_i) + delta)


def close(actual, expected, tol=1e-12):
    if isinstance(actual, torch.Tensor):
        actual = actual.detach()
    assert float(actual) == pytest.approx(expected, abs=tol, rel=tol)


# --------------------------------------------------------------------------- Eq. 1-3

def test_topk_k_rule():
    assert R.topk_k(560, 7) == 80  # THUMOS14
    assert R.topk_k(60, 10) == 6  # ActivityNet1.3
    assert R.topk_k(5, 7) == 1  # floor 0 -> at least one snippet
    assert R.topk_k(1, 10) == 1


# S[t][c] for T=3, K=3
S_TOPK = [[1.0, 5.0, 2.0], [4.0, 0.0, 3.0], [2.0, 6.0, -1.0]]


@pytest.mark.parametrize(
    "k, expected",
    [
        (1, [4.0, 6.0, 3.0]),
        (2, [(4 + 2) / 2, (6 + 5) / 2, (3 + 2) / 2]),
        (3, [(1 + 4 + 2) / 3, (5 + 0 + 6) / 3, (2 + 3 - 1) / 3]),  # k = T: plain mean
    ],
)
def test_topk_mean_eq1(k, expected):
    gamma = R.topk_mean(t64([S_TOPK]), k)
    assert gamma.shape == (1, 3)
    for got, want in zip(gamma[0].tolist(), expected):
        close(got, want)


def test_video_scores_eq2():
    P = R.video_scores(t64([[0.0, LN2, LN3], [5.0, 5.0, 5.0]]))
    for got, want in zip(P.flatten().tolist(), [1 / 6, 2 / 6, 3 / 6, 1 / 3, 1 / 3, 1 / 3]):
        close(got, want)


def test_snippet_softmax_eq3_is_over_classes_per_snippet():
    # softmax of [0, ln2, ln5] is [1, 2, 5] / 8; a constant shift (t=1) does not change it
    S = t64([[[0.0, LN2, math.log(5)], [7.0, 7 + LN2, 7 + math.log(5)]]])
    B = R.snippet_softmax(S)
    for t in range(2):
        for got, want in zip(B[0, t].tolist(), [1 / 8, 2 / 8, 5 / 8]):
            close(got, want)


# --------------------------------------------------------------------------- Eq. 5, 4, 6

def test_cce_eq5_label_vector_as_given():
    L = R.cce(t64([[1.0, 0.0, 1.0]]), t64([[0.2, 0.3, 0.5]]))
    close(L[0], (-math.log(0.2) - math.log(0.5)) / 3)  # not renormalised by sum(y) = 2


def test_cce_zero_probability_with_zero_label_is_finite():
    P = t64([[0.5, 0.0, 0.5]]).requires_grad_()
    L = R.cce(t64([[1.0, 0.0, 1.0]]), P)
    close(L[0], 2 * LN2 / 3)
    L.sum().backward()
    assert torch.isfinite(P.grad).all()


# S[t][c] (T=3, C=2 so K=3) and A[t] of the MIL / CLL examples
S_MIL = [[1.0, 0.0, 2.0], [3.0, 1.0, 0.0], [0.0, 2.0, 1.0]]
A_MIL = [0.5, 1.0, 0.25]


def test_mil_loss_eq4():
    # gamma (k=2): c0 top2 of [1,3,0] -> 2; c1 of [0,1,2] -> 1.5; c2 of [2,0,1] -> 1.5
    P = softmax([2.0, 1.5, 1.5])
    # S_hat = S * A: rows [0.5,0,1], [3,1,0], [0,0.5,0.25]
    # gamma_hat: c0 (3+0.5)/2 = 1.75, c1 (1+0.5)/2 = 0.75, c2 (1+0.25)/2 = 0.625
    P_hat = softmax([1.75, 0.75, 0.625])
    # labels [1, 0]: Y_bar = [1, 0, 1], Y_hat = [1, 0, 0]
    expected = (-math.log(P[0]) - math.log(P[2])) / 3 + (-math.log(P_hat[0])) / 3
    close(R.mil_loss(t64([S_MIL]), t64([A_MIL]), t64([[1.0, 0.0]]), k=2), expected)


def test_mil_loss_background_only_video_and_batch_mean():
    # second video has no action: Y_bar = [0, 0, 1], Y_hat = 0 -> only -log p_bg / 3
    S = t64([S_MIL, S_MIL])
    A = t64([A_MIL, A_MIL])
    labels = t64([[1.0, 0.0], [0.0, 0.0]])
    P = softmax([2.0, 1.5, 1.5])
    P_hat = softmax([1.75, 0.75, 0.625])
    first = (-math.log(P[0]) - math.log(P[2]) - math.log(P_hat[0])) / 3
    second = -math.log(P[2]) / 3
    close(R.mil_loss(S, A, labels, k=2), (first + second) / 2)


def test_mil_loss_single_snippet():
    # T = 1, k = 1: gamma = S[0], gamma_hat = 0.5 * S[0]
    P = softmax([2.0, -1.0])
    P_hat = softmax([1.0, -0.5])
    expected = (-math.log(P[0]) - math.log(P[1])) / 2 + (-math.log(P_hat[0])) / 2
    close(R.mil_loss(t64([[[2.0, -1.0]]]), t64([[0.5]]), t64([[1.0]]), k=1), expected)


def _cll_video(S_rows, complement):
    """mean over t of (1/K) sum_c -comp_c log(1 - b_ct), scalar maths."""
    total = 0.0
    for row in S_rows:
        b = softmax(row)
        total += sum(-w * math.log(1 - bc) for w, bc in zip(complement, b)) / len(row)
    return total / len(S_rows)


def test_cll_loss_eq6():
    # labels [1, 0]: 1 - Y_bar = [0, 1, 0] -> only class 1 is penalised
    b1 = [math.exp(0) / (math.e + 1 + math.e**2), math.exp(1) / (math.e**3 + math.e + 1),
          math.exp(2) / (1 + math.e**2 + math.e)]
    expected = sum(-math.log(1 - b) / 3 for b in b1) / 3
    close(R.cll_loss(t64([S_MIL]), t64([[1.0, 0.0]])), expected)


def test_cll_loss_background_only_video():
    # labels [0, 0]: 1 - Y_bar = [1, 1, 0]; mean over the two videos
    S = t64([S_MIL, S_MIL])
    first = _cll_video(S_MIL, [0, 1, 0])
    second = _cll_video(S_MIL, [1, 1, 0])
    close(R.cll_loss(S, t64([[1.0, 0.0], [0.0, 0.0]])), (first + second) / 2)


def test_cll_loss_procl_sums_over_the_classes():
    # ProCL's negative_loss: mean over t of sum_c -(1 - y_bar_c) log(1 - b_ct), no 1/(C+1).
    # Labels [0, 0]: 1 - Y_bar = [1, 1, 0], so classes 0 and 1 of every snippet count.
    expected = 0.0
    for row in S_MIL:
        b = softmax(row)
        expected += (-math.log(1 - b[0]) - math.log(1 - b[1])) / len(S_MIL)
    S, labels = t64([S_MIL]), t64([[0.0, 0.0]])
    close(R.cll_loss(S, labels, norm="procl"), expected)
    # K = 3 times the paper's value, bit for bit (what lets a procl run repeat --cll-weight K).
    assert R.cll_loss(S, labels, norm="procl").item() == (3 * R.cll_loss(S, labels)).item()
    close(R.himnet_losses_reference(S, t64([A_MIL]), labels, 2, cll_norm="procl").cll, expected)
    with pytest.raises(ValueError, match="cll_norm"):
        R.cll_loss(S, labels, norm="sum")


def test_cll_loss_stays_finite_where_a_probability_rounds_to_one():
    # b_0 = 1/(1 + 2 e^-100) is 1.0 in float64; 1 - b_0 = 2e^-100 / (1 + 2e^-100)
    S = t64([[[100.0, 0.0, 0.0]]]).requires_grad_()
    L = R.cll_loss(S, t64([[0.0, 1.0]]))  # 1 - Y_bar = [1, 0, 0]
    close(L, -(math.log(2) - 100 - math.log1p(2 * math.exp(-100))) / 3, tol=1e-10)
    L.backward()
    assert torch.isfinite(S.grad).all()


# --------------------------------------------------------------------------- Eq. 7-8

def test_vcl_features_eq7():
    # class 0 logits over time [0, ln2, 0] -> mu = [1/4, 1/2, 1/4]; class 1 [ln3, 0, 0] -> [3/5, 1/5, 1/5]
    S_hat = t64([[[0.0, LN3], [LN2, 0.0], [0.0, 0.0]]])
    X_hat = t64([[[1.0, 0.0], [0.0, 2.0], [4.0, 4.0]]])
    V, V_bar = R.vcl_features(S_hat, X_hat)
    assert V.shape == V_bar.shape == (1, 2, 2)
    expected_V = [[0.25 * 1 + 0.25 * 4, 0.5 * 2 + 0.25 * 4], [0.6 * 1 + 0.2 * 4, 0.2 * 2 + 0.2 * 4]]
    # V_bar = 1/(T-1) sum (1 - mu) x, T - 1 = 2
    expected_V_bar = [[(0.75 * 1 + 0.75 * 4) / 2, (0.5 * 2 + 0.75 * 4) / 2],
                      [(0.4 * 1 + 0.8 * 4) / 2, (0.8 * 2 + 0.8 * 4) / 2]]
    for got, want in zip(V[0].flatten().tolist(), sum(expected_V, [])):
        close(got, want)
    for got, want in zip(V_bar[0].flatten().tolist(), sum(expected_V_bar, [])):
        close(got, want)


def test_vcl_features_single_snippet_background_is_zero():
    V, V_bar = R.vcl_features(t64([[[3.0, -1.0]]]), t64([[[2.0, 5.0, 7.0]]]))
    assert V[0].tolist() == [[2.0, 5.0, 7.0]] * 2  # mu = 1
    assert V_bar.abs().max() == 0  # documented rule: T = 1 has no background feature


# Pair example: B=2, T=2, D=2, A=1. Class-0 logits over time: video 0 [0, ln3] -> mu [1/4, 3/4];
# video 1 [ln3, 0] -> mu [3/4, 1/4]. Class 1 (when used): video 0 [0, 0], video 1 [0, ln3].
X_PAIR = [[[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [1.0, -1.0]]]
V0, VBAR0 = [0.25, 0.75], [0.75, 0.25]  # video 0 class 0; V_bar divides by T - 1 = 1
V1 = [0.75 * 1 + 0.25 * 1, 0.75 * 1 + 0.25 * -1]  # 3/4 x0 + 1/4 x1 = [1, 0.5]
VBAR1 = [0.25 * 1 + 0.75 * 1, 0.25 * 1 + 0.75 * -1]  # 1/4 x0 + 3/4 x1 = [1, -0.5]
L_CLASS0 = triplet(V0, V1, VBAR0, VBAR1)
# class 1: video 0 mu [1/2, 1/2] -> V = V_bar = [1/2, 1/2];
#          video 1 mu [1/4, 3/4] -> V = 1/4 [1, 1] + 3/4 [1, -1] = [1, -1/2], V_bar = [1, 1/2]
L_CLASS1 = triplet([0.5, 0.5], [1.0, -0.5], [0.5, 0.5], [1.0, 0.5])


def _pair_inputs(num_classes):
    cols0 = [[0.0, LN3], [LN3, 0.0]]  # class-0 logits over t, per video
    cols1 = [[0.0, 0.0], [0.0, LN3]]
    S = []
    for v in range(2):
        rows = []
        for t in range(2):
            row = [cols0[v][t]] + ([cols1[v][t]] if num_classes == 2 else []) + [0.0]
            rows.append(row)
        S.append(rows)
    return t64(S), torch.ones(2, 2, dtype=torch.float64), t64(X_PAIR)


def test_vcl_hand_values_are_not_degenerate():
    # the example exercises both an active and an inactive hinge
    assert V1 == [1.0, 0.5]
    assert 0.0 < L_CLASS0 < 0.5 and L_CLASS1 > 0.0 and L_CLASS0 != L_CLASS1


def test_vcl_loss_eq8_one_shared_class():
    S, A, X = _pair_inputs(1)
    # d(V0,V1) = 1 - 0.625 / (sqrt(0.625) sqrt(1.25)); one hinge inactive, one active
    close(R.vcl_loss(S, A, X, t64([[1.0], [1.0]])), L_CLASS0)


def test_vcl_loss_pair_sharing_two_classes_averages_them():
    S, A, X = _pair_inputs(2)
    close(R.vcl_loss(S, A, X, t64([[1.0, 1.0], [1.0, 1.0]])), (L_CLASS0 + L_CLASS1) / 2)
    # only class 0 shared -> class 1 ignored
    close(R.vcl_loss(S, A, X, t64([[1.0, 1.0], [1.0, 0.0]])), L_CLASS0)
    close(R.vcl_loss(S, A, X, t64([[0.0, 1.0], [1.0, 1.0]])), L_CLASS1)


def test_vcl_loss_uses_s_hat():
    # A scales S: with A = 2 on video 0, its class-0 logits become [0, 2 ln3] -> mu [1/10, 9/10]
    S, A, X = _pair_inputs(1)
    A[0] = 2.0
    V0_scaled, VBAR0_scaled = [0.1, 0.9], [0.9, 0.1]
    close(R.vcl_loss(S, A, X, t64([[1.0], [1.0]])), triplet(V0_scaled, V1, VBAR0_scaled, VBAR1))


def test_vcl_loss_mean_over_sharing_pairs_and_pair_positions():
    S, A, X = _pair_inputs(1)
    S4, A4, X4 = torch.cat([S, S]), torch.cat([A, A]), torch.cat([X, X])
    # pair (2, 3) shares nothing -> excluded from the mean
    close(R.vcl_loss(S4, A4, X4, t64([[1.0], [1.0], [1.0], [0.0]])), L_CLASS0)
    # pair (2, 3) with video 3 scaled by A = 2 (see test_vcl_loss_uses_s_hat, roles swapped)
    A4[3] = 2.0
    # video 3 class-0 logits [2 ln3, 0] -> mu [9/10, 1/10]: V = 0.9 x0 + 0.1 x1 = [1, 0.8]
    other = triplet(V0, [1.0, 0.8], VBAR0, [1.0, -0.8])
    close(R.vcl_loss(S4, A4, X4, t64([[1.0]] * 4)), (L_CLASS0 + other) / 2)
    # (1, 2) is not a pair: an odd trailing video and pairs beyond num_pairs are ignored
    close(R.vcl_loss(S4[:3], A4[:3], X4[:3], t64([[1.0]] * 3)), L_CLASS0)
    close(R.vcl_loss(S4, A4, X4, t64([[1.0]] * 4), num_pairs=1), L_CLASS0)


@pytest.mark.parametrize("suppression", ["product", "shifted"])
def test_vcl_grad_features_keeps_the_value_and_trains_x_hat_only(suppression):
    # The pair of test_vcl_loss_uses_s_hat (A = 2 on video 0), where mu depends on A and S.
    S, A, X = _pair_inputs(1)
    A[0] = 2.0
    labels = t64([[1.0], [1.0]])
    grads = {}
    for grad in ("base", "features"):
        s, a, x = (t.clone().requires_grad_() for t in (S, A, X))
        L = R.vcl_loss(s, a, x, labels, suppression=suppression, grad=grad)
        L.backward()
        grads[grad] = (float(L.detach()), s.grad, a.grad, x.grad)
    (L_base, dS_base, dA_base, dX_base), (L_feat, dS_feat, dA_feat, dX_feat) = grads["base"], grads["features"]
    if suppression == "product":  # the hand value of test_vcl_loss_uses_s_hat
        close(L_feat, triplet([0.1, 0.9], V1, [0.9, 0.1], VBAR1))
    assert L_feat == L_base
    # "features": mu is a constant, so S and A get exactly nothing and X_hat what "base" gives it.
    assert dS_feat.abs().max() == 0 and dA_feat.abs().max() == 0
    assert dS_base.abs().max() > 0 and dA_base.abs().max() > 0
    torch.testing.assert_close(dX_feat, dX_base, rtol=0, atol=0)
    assert dX_feat.abs().max() > 0


def test_vcl_grad_rejects_unknown_reading():
    S, A, X = _pair_inputs(1)
    with pytest.raises(ValueError, match="vcl_grad"):
        R.vcl_loss(S, A, X, t64([[1.0], [1.0]]), grad="none")


@pytest.mark.parametrize("case", ["single_video", "no_shared_class", "zero_pairs"])
def test_vcl_loss_without_pairs_is_zero_with_zero_gradient(case):
    S, A, X = _pair_inputs(1)
    labels = t64([[1.0], [1.0]])
    num_pairs = 3
    if case == "single_video":
        S, A, X, labels = S[:1], A[:1], X[:1], labels[:1]
    elif case == "no_shared_class":
        labels = t64([[1.0], [0.0]])
    else:
        num_pairs = 0
    S.requires_grad_()
    L = R.vcl_loss(S, A, X, labels, num_pairs=num_pairs)
    assert float(L.detach()) == 0.0
    L.backward()
    assert S.grad is not None and S.grad.abs().max() == 0


def test_vcl_loss_single_snippet_uses_zero_background():
    # T = 1: V = x_hat_0, V_bar = 0 so d(V, V_bar) = 1; d(V_i, V_j) = 1 - cos([1,0],[-1,1])
    d = 1 + 1 / math.sqrt(2)
    expected = 0.5 * max(0, d - 1 + 0.5) * 2
    assert expected > 0
    S = t64([[[1.0, 0.0]], [[2.0, 0.0]]])
    X = t64([[[1.0, 0.0]], [[-1.0, 1.0]]]).requires_grad_()
    L = R.vcl_loss(S, torch.ones(2, 1, dtype=torch.float64), X, t64([[1.0], [1.0]]))
    close(L, expected)
    L.backward()  # the zero V_bar has no NaN gradient
    assert torch.isfinite(X.grad).all() and X.grad.abs().sum() > 0


# --------------------------------------------------------------------------- Eq. 9-10

def test_uncertainty_eq9_variants():
    p, q = t64([0.8]), t64([0.4])
    close(R.uncertainty(p, q, 4.0, "self"), math.exp(-4 * (0.8 * math.log(0.8 / 0.4) + 0.2 * math.log(0.2 / 0.6))))
    close(R.uncertainty(p, q, 4.0, "target"), math.exp(-4 * (0.4 * math.log(0.4 / 0.8) + 0.6 * math.log(0.6 / 0.2))))
    close(R.uncertainty(p, q, 4.0, "none"), 1.0)
    close(R.uncertainty(p, q, 0.0, "self"), 1.0)  # alpha = 0 degenerates to 1
    close(R.uncertainty(q, q, 4.0, "self"), 1.0)  # consensus -> weight 1
    # clamped: q = 0 is treated as 1e-6, so the weight is tiny but positive
    u = R.uncertainty(t64([0.5]), t64([0.0]), 4.0, "self")
    close(u, math.exp(-4 * (0.5 * math.log(0.5 / 1e-6) + 0.5 * math.log(0.5 / (1 - 1e-6)))))


# SCL example: B=1, T=2, K=2. Background logit ln(b/(1-b)) gives b = [0.2, 0.6]; A = [0.7, 0.1].
B_SCL, A_SCL = [0.2, 0.6], [0.7, 0.1]
S_SCL = [[[0.0, math.log(0.2 / 0.8)], [0.0, math.log(0.6 / 0.4)]]]


def _scl_hand(u_of):
    """sum_t u(b||1-a) BCE(b; 1-a) + sum_t u(a||1-b) BCE(a; 1-b) with weight rule u_of(p, q)."""
    total = 0.0
    for b, a in zip(B_SCL, A_SCL):
        total += u_of(b, 1 - a) * bce(b, 1 - a) + u_of(a, 1 - b) * bce(a, 1 - b)
    return total


def test_scl_loss_eq10_self_target_none():
    S, A = t64(S_SCL), t64([A_SCL])
    self_ = _scl_hand(lambda p, q: math.exp(-4 * kl(p, q)))
    target = _scl_hand(lambda p, q: math.exp(-4 * kl(q, p)))
    plain = _scl_hand(lambda p, q: 1.0)
    close(R.scl_loss(S, A, 4.0, "self"), self_)
    close(R.scl_loss(S, A, 4.0, "target"), target)
    close(R.scl_loss(S, A, 4.0, "none"), plain)
    close(R.scl_loss(S, A, 0.0, "self"), plain)
    # target-centred differs from self-centred by the hand-computed amount
    close(R.scl_loss(S, A, 4.0, "target") - R.scl_loss(S, A, 4.0, "self"), target - self_)
    assert abs(target - self_) > 1e-3


def test_scl_loss_sums_over_time_and_averages_over_videos():
    S = t64([S_SCL[0], S_SCL[0][::-1]])  # second video: snippets reversed, same sum
    A = t64([A_SCL, A_SCL[::-1]])
    S3 = torch.cat([S, t64([[[0.0, 0.0], [0.0, 0.0]]])])  # third video: b = 0.5, a = 0.5
    A3 = torch.cat([A, t64([[0.5, 0.5]])])
    expected_third = 2 * 2 * bce(0.5, 0.5)  # two snippets, two branches, U = 1
    u = lambda p, q: math.exp(-4 * kl(p, q))  # noqa: E731
    close(R.scl_loss(S3, A3), (2 * _scl_hand(u) + expected_third) / 3)


def test_scl_loss_clamps_saturated_probabilities():
    S = t64([[[0.0, 0.0], [0.0, 0.0]]])  # b = 0.5
    L = R.scl_loss(S, t64([[0.0, 1.0]]), 4.0, "none")
    eps = 1e-6
    # a clamped to eps and 1 - eps: targets for b are 1 - eps and eps
    expected = bce(0.5, 1 - eps) + bce(0.5, eps) + bce(eps, 0.5) + bce(1 - eps, 0.5)
    close(L, expected, tol=1e-9)


def test_scl_gradient_flows_only_through_the_predictions():
    """Hand derivation: dL/da_t = U(a_t||1-b_t) dBCE(a; y)/da at y = 1 - b_t (the target 1 - a_t
    of the b branch and both U are constants); dL/dS_{t,bg} = U(b_t||1-a_t) dBCE(b; y)/db b(1-b)
    at y = 1 - a_t, and dL/dS_{t,0} = -dL/dS_{t,bg} (K = 2)."""
    S, A = t64(S_SCL).requires_grad_(), t64([A_SCL]).requires_grad_()
    R.scl_loss(S, A, 4.0, "self").backward()

    def dbce(x, y):
        return -y / x + (1 - y) / (1 - x)

    for t, (b, a) in enumerate(zip(B_SCL, A_SCL)):
        close(A.grad[0, t], math.exp(-4 * kl(a, 1 - b)) * dbce(a, 1 - b), tol=1e-10)
        g_bg = math.exp(-4 * kl(b, 1 - a)) * dbce(b, 1 - a) * b * (1 - b)
        close(S.grad[0, t, 1], g_bg, tol=1e-10)
        close(S.grad[0, t, 0], -g_bg, tol=1e-10)


# --------------------------------------------------------------------------- fused terms, Eq. 11

# Eq. 11 example: B=2, T=2, C=2, A=0.5, labels [1, 0] for both videos, X_hat = X_PAIR.
# Video 0 rows [0,0,0], [2 ln3, 0, 0]; video 1 the rows swapped. S_hat = S/2 gives class-0
# logits over time [0, ln3] and [ln3, 0]: the pair example of Eq. 8.
S_TOT = [[[0.0, 0.0, 0.0], [2 * LN3, 0.0, 0.0]], [[2 * LN3, 0.0, 0.0], [0.0, 0.0, 0.0]]]


def _eq11_hand_terms():
    # MIL, k=1: gamma = [2 ln3, 0, 0] -> P = [9, 1, 1]/11; gamma_hat = [ln3, 0, 0] -> [3, 1, 1]/5
    mil = (-math.log(9 / 11) - math.log(1 / 11)) / 3 + (-math.log(3 / 5)) / 3
    # CLL: 1 - Y_bar = [0, 1, 0]; b_1 = 1/3 at the zero row, 1/11 at the other
    cll = ((-math.log(2 / 3)) / 3 + (-math.log(10 / 11)) / 3) / 2
    vcl = L_CLASS0
    # SCL: a = 0.5, background b = [1/3, 1/11] (both videos, up to order)
    u = lambda p, q: math.exp(-4 * kl(p, q))  # noqa: E731
    scl = sum(u(b, 0.5) * bce(b, 0.5) + u(0.5, 1 - b) * bce(0.5, 1 - b) for b in (1 / 3, 1 / 11))
    return mil, cll, vcl, scl


def _eq11_inputs():
    return t64(S_TOT), torch.full((2, 2), 0.5, dtype=torch.float64), t64(X_PAIR), t64([[1.0, 0.0], [1.0, 0.0]])


def test_himnet_losses_reference_terms():
    S, A, _, labels = _eq11_inputs()
    mil, cll, _, scl = _eq11_hand_terms()
    terms = R.himnet_losses_reference(S, A, labels, k=1)
    assert isinstance(terms, R.HiMNetLossTerms)
    close(terms.mil, mil)
    close(terms.cll, cll)
    close(terms.scl, scl)


@pytest.mark.parametrize("lambda1, lambda2", [(1.0, 0.01), (2.0, 0.5)])
def test_total_loss_eq11(lambda1, lambda2):
    S, A, X, labels = _eq11_inputs()
    mil, cll, vcl, scl = _eq11_hand_terms()
    out = R.total_loss(S, A, X, labels, k=1, lambda1=lambda1, lambda2=lambda2)
    assert set(out) == {"mil", "cll", "vcl", "scl", "total"}
    for name, want in (("mil", mil), ("cll", cll), ("vcl", vcl), ("scl", scl)):
        close(out[name], want)
    close(out["total"], mil + cll + lambda1 * vcl + lambda2 * scl)


# --------------------------------------------------------------------------- gradcheck (float64)

def _random_batch(seed, B=4, T=5, C=3, D=4):
    g = torch.Generator().manual_seed(seed)
    S = torch.randn(B, T, C + 1, generator=g, dtype=torch.float64, requires_grad=True)
    A = (0.1 + 0.8 * torch.rand(B, T, generator=g, dtype=torch.float64)).requires_grad_()
    X = torch.randn(B, T, D, generator=g, dtype=torch.float64, requires_grad=True)
    labels = (torch.rand(B, C, generator=g) < 0.5).double()
    labels[0::2, 0] = labels[1::2, 0] = 1.0  # every pair shares class 0
    labels[0:2, 1] = 1.0  # the first pair shares two classes
    return S, A, X, labels


def test_gradcheck_mil_cll_vcl_total():
    S, A, X, labels = _random_batch(0)
    assert torch.autograd.gradcheck(lambda S, A: R.mil_loss(S, A, labels, 2), (S, A))
    assert torch.autograd.gradcheck(lambda S: R.cll_loss(S, labels), (S,))
    assert torch.autograd.gradcheck(lambda S, A, X: R.vcl_loss(S, A, X, labels, 0.5), (S, A, X))
    # SCL's stop-gradient makes its analytic gradient differ from finite differences on (S, A)
    # by design, so the total is checked with lambda2 = 0 and SCL on its own below.
    assert torch.autograd.gradcheck(lambda S, A, X: R.total_loss(S, A, X, labels, 2, lambda2=0.0)["total"], (S, A, X))


@pytest.mark.parametrize("variant", ["self", "target", "none"])
def test_gradcheck_scl_with_fixed_references(variant):
    S, A, _, _ = _random_batch(1)
    g = torch.Generator().manual_seed(2)
    b_ref = 0.05 + 0.9 * torch.rand(4, 5, generator=g, dtype=torch.float64)
    a_ref = 0.05 + 0.9 * torch.rand(4, 5, generator=g, dtype=torch.float64)
    b = torch.softmax(S, -1)[..., -1].detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda b, a: R.scl_terms(b, a, b_ref, a_ref, 4.0, variant), (b, A))


def test_scl_loss_gradient_equals_fixed_reference_form():
    S, A, _, _ = _random_batch(3)
    R.scl_loss(S, A).backward()
    S2, A2 = S.detach().clone().requires_grad_(), A.detach().clone().requires_grad_()
    b = torch.softmax(S2, -1)[..., -1]
    R.scl_terms(b, A2, b.detach(), A2.detach()).mean().backward()
    torch.testing.assert_close(S.grad, S2.grad)
    torch.testing.assert_close(A.grad, A2.grad)


def test_gradcheck_building_blocks():
    S, _, X, _ = _random_batch(4)
    assert torch.autograd.gradcheck(lambda S: R.topk_mean(S, 2), (S,))
    assert torch.autograd.gradcheck(lambda S, X: R.vcl_features(S, X), (S, X))
    p = (0.1 + 0.8 * torch.rand(6, dtype=torch.float64)).requires_grad_()
    q = (0.1 + 0.8 * torch.rand(6, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda p, q: R.uncertainty(p, q, 4.0, "self"), (p, q))
    Y = torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64)
    P = torch.tensor([[0.2, 0.3, 0.5]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda P: R.cce(Y, P), (P,))


# --------------------------------------------------------------------------- input validation

def _good():
    S, A, X, labels = _random_batch(5)
    return S.detach(), A.detach(), X.detach(), labels


def _nan(x, index=(0, 0)):
    x = x.clone()
    x[index] = float("nan")
    return x


@pytest.mark.parametrize(
    "call, arg",
    [
        (lambda S, A, X, y: R.mil_loss(S[0], A, y, 2), "S"),
        (lambda S, A, X, y: R.mil_loss(S, A[:, :-1], y, 2), "A"),
        (lambda S, A, X, y: R.mil_loss(S, A[:-1], y, 2), "A"),
        (lambda S, A, X, y: R.mil_loss(S, A, y[:, :-1], 2), "labels"),
        (lambda S, A, X, y: R.mil_loss(S, A, y[:-1], 2), "labels"),
        (lambda S, A, X, y: R.mil_loss(S, A, y * 0.5, 2), "labels"),
        (lambda S, A, X, y: R.mil_loss(S, A, y, 0), "k"),
        (lambda S, A, X, y: R.mil_loss(S, A, y, 6), "k"),
        (lambda S, A, X, y: R.mil_loss(_nan(S), A, y, 2), "S"),
        (lambda S, A, X, y: R.mil_loss(S, A, _nan(y), 2), "labels"),
        (lambda S, A, X, y: R.cll_loss(S[..., :1], y), "S"),
        (lambda S, A, X, y: R.cll_loss(S, y[..., None]), "labels"),
        (lambda S, A, X, y: R.vcl_loss(S, A, X[:-1], y), "X_hat"),
        (lambda S, A, X, y: R.vcl_loss(S, A, X[..., 0], y), "X_hat"),
        (lambda S, A, X, y: R.vcl_loss(S, A, _nan(X), y), "X_hat"),
        (lambda S, A, X, y: R.vcl_loss(S, _nan(A), X, y), "A"),
        (lambda S, A, X, y: R.scl_loss(S, A * 2), "A"),
        (lambda S, A, X, y: R.scl_loss(S, A, -1.0), "alpha"),
        (lambda S, A, X, y: R.scl_loss(S, A, 4.0, "bogus"), "variant"),
        (lambda S, A, X, y: R.uncertainty(A, A[:, :-1]), "q"),
        (lambda S, A, X, y: R.topk_mean(S, 1.5), "k"),
        (lambda S, A, X, y: R.topk_k(0, 7), "T"),
        (lambda S, A, X, y: R.cce(y, A), "P"),
        (lambda S, A, X, y: R.video_scores(S), "gamma"),
        (lambda S, A, X, y: R.vcl_features(S, X[:, :-1]), "X_hat"),
        (lambda S, A, X, y: R.total_loss(S, A, X, y, 2, lambda1=float("nan")), "lambda1"),
        (lambda S, A, X, y: R.himnet_losses_reference(S.int(), A, y, 2), "S"),
        # issue 13: values the losses cannot represent, beyond R.MAX_MAGNITUDE = 1e15
        (lambda S, A, X, y: R.cll_loss(S * 1e20, y), "S"),
        (lambda S, A, X, y: R.mil_loss(S, A * 1e20, y, 2), "A"),
        (lambda S, A, X, y: R.vcl_loss(S, A, X * 1e20, y), "X_hat"),
        (lambda S, A, X, y: R.guide_loss(S, A * 1e20), "A"),
        (lambda S, A, X, y: R.attention_norm_loss(A * 1e20), "A"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, arg):
    with pytest.raises(ValueError, match=rf"^{arg}:"):
        call(*_good())


def test_mil_loss_base_normalisation_eq4_as_co2net():
    # The example of test_mil_loss_eq4 with CO2-Net's labels / (sum + 1e-4) instead of 1/(C+1):
    # Y_bar = [1, 0, 1] sums to 2, Y_hat = [1, 0, 0] to 1.
    P = softmax([2.0, 1.5, 1.5])
    P_hat = softmax([1.75, 0.75, 0.625])
    expected = (-math.log(P[0]) - math.log(P[2])) / (2 + 1e-4) + (-math.log(P_hat[0])) / (1 + 1e-4)
    S, A, labels = t64([S_MIL]), t64([A_MIL]), t64([[1.0, 0.0]])
    close(R.mil_loss(S, A, labels, k=2, norm="base"), expected)
    # A background-only video: Y_hat = 0 adds nothing, Y_bar = [0, 0, 1] sums to 1.
    close(R.mil_loss(S, A, t64([[0.0, 0.0]]), k=2, norm="base"), -math.log(P[2]) / (1 + 1e-4))
    close(R.himnet_losses_reference(S, A, labels, 2, mil_norm="base").mil, expected)
    with pytest.raises(ValueError, match="mil_norm"):
        R.mil_loss(S, A, labels, k=2, norm="co2")


def test_suppress_shifted_by_hand_and_its_gradient():
    # One snippet, K = 3: m = -1 (class 2); a = 0.5: S_hat = 0.5 * (S + 1) - 1.
    S = t64([[[2.0, 0.0, -1.0]]]).requires_grad_()
    A = t64([[0.5]]).requires_grad_()
    S_hat = R.suppress(S, A, "shifted")
    torch.testing.assert_close(S_hat.detach(), t64([[[0.5, -0.5, -1.0]]]))
    torch.testing.assert_close(R.suppress(S, A, "product").detach(), t64([[[1.0, 0.0, -0.5]]]))
    # d(sum_c w_c S_hat_c): dS_j = a w_j + (1 - a) sum(w) [j = arg-min]; dA = sum_c w_c (S_c - m)
    w = t64([[[1.0, 2.0, 3.0]]])
    (S_hat * w).sum().backward()
    torch.testing.assert_close(S.grad, t64([[[0.5, 1.0, 1.5 + 0.5 * 6.0]]]))
    torch.testing.assert_close(A.grad, t64([[1.0 * 3.0 + 2.0 * 1.0 + 0.0]]))
    with pytest.raises(ValueError, match="suppression"):
        R.suppress(S, A, "min_t")


def test_mil_loss_shifted_suppression_by_hand():
    # S_MIL rows with their minima m = [0, 0, 0]: the shifted S_hat equals S * A here.
    S, A, labels = t64([S_MIL]), t64([A_MIL]), t64([[1.0, 0.0]])
    close(R.mil_loss(S, A, labels, 2, suppression="shifted"), float(R.mil_loss(S, A, labels, 2)))
    # Shift the logits by +1: S * A changes, the shifted S_hat only moves by +1 (softmax-invariant).
    close(R.mil_loss(S + 1.0, A, labels, 2, suppression="shifted"), float(R.mil_loss(S, A, labels, 2)))
    assert abs(float(R.mil_loss(S + 1.0, A, labels, 2)) - float(R.mil_loss(S, A, labels, 2))) > 1e-3


def test_co2net_attention_terms_by_hand():
    # A = [[0.2, 0.6]]; S rows give b_bg = softmax([0, 0])[1] = 1/2 and softmax([ln 3, 0])[1] = 1/4.
    A = t64([[0.2, 0.6]])
    S = t64([[[0.0, 0.0], [math.log(3.0), 0.0]]])
    close(R.attention_norm_loss(A), 0.4)
    close(R.guide_loss(S, A), (abs(1 - 0.2 - 0.5) + abs(1 - 0.6 - 0.25)) / 2)


def test_mutual_learning_loss_by_hand():
    # Same A and S as above: b_bg = [1/2, 1/4], so 1 - b_bg = [0.5, 0.75] and a - (1 - b_bg) = [-0.3, -0.15].
    A = t64([[0.2, 0.6]]).requires_grad_()
    S = t64([[[0.0, 0.0], [math.log(3.0), 0.0]]]).requires_grad_()
    loss = R.mutual_learning_loss(S, A)
    close(loss, (0.3**2 + 0.15**2) / 2)  # 1/2 MSE + 1/2 MSE of the same pair, N = 2 snippets
    loss.backward()
    # A learns only through the first half: d/da [1/2 mean (a - sg(1 - b))^2] = (a - (1 - b)) / N.
    # Without the stop-gradient on the second half it would be twice as large.
    torch.testing.assert_close(A.grad, t64([[-0.3 / 2, -0.15 / 2]]), rtol=0, atol=1e-12)
    # S only through the second half: dL/db = -((1 - b) - a) / N, db/dS = b * (onehot_bg - softmax(S)).
    dL_db = [-(0.5 - 0.2) / 2, -(0.75 - 0.6) / 2]
    db_dS = [[-0.5 * 0.5, 0.5 * 0.5], [-0.25 * 0.75, 0.25 * 0.75]]
    expected = t64([[[g * d for d in row] for g, row in zip(dL_db, db_dS)]])
    torch.testing.assert_close(S.grad, expected, rtol=0, atol=1e-12)


def test_modality_mutual_loss_by_hand():
    # a_rgb - a_flow = [0.4, -0.2]: value mean (a_rgb - a_flow)^2 = (0.16 + 0.04) / 2 = 0.1.
    a_rgb = t64([[0.6, 0.2]]).requires_grad_()
    a_flow = t64([[0.2, 0.4]]).requires_grad_()
    loss = R.modality_mutual_loss(a_rgb, a_flow)
    close(loss, 0.1)
    loss.backward()
    # Each side learns toward the other's detached value only: d/da_rgb = (a_rgb - a_flow) / N.
    torch.testing.assert_close(a_rgb.grad, t64([[0.4 / 2, -0.2 / 2]]), rtol=0, atol=1e-12)
    torch.testing.assert_close(a_flow.grad, t64([[-0.4 / 2, 0.2 / 2]]), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="a_flow"):
        R.modality_mutual_loss(a_rgb, t64([[0.1, 0.2, 0.3]]))
