"""HiMNet (CO2-Net architecture): shapes, determinism, gradients to every parameter, input checks."""
import math
import pytest
import torch

from himnet_fast.model import HiMNet, HiMNetConfig
from himnet_fast.reference.losses import total_loss

C = 4
CFG = HiMNetConfig(feature_dim=16, hidden_dim=12, num_classes=C, attention_dim=6)


def make_model(seed=0, cfg=CFG):
    torch.manual_seed(seed)
    return HiMNet.from_config(cfg)


@pytest.mark.parametrize("B, T", [(1, 1), (2, 5), (3, 16)])
def test_output_shapes_and_ranges(B, T):
    model = make_model()
    A, S, X_hat = model(torch.randn(B, T, CFG.feature_dim))
    assert A.shape == (B, T)
    assert S.shape == (B, T, C + 1)
    assert X_hat.shape == (B, T, CFG.hidden_dim)
    assert bool(((A > 0) & (A < 1)).all())  # mean of two sigmoids


def test_modality_attentions_average_to_a():
    model = make_model().eval()
    X = torch.randn(2, 7, CFG.feature_dim)
    A, S, X_hat, (a_rgb, a_flow) = model(X, modality_attention=True)
    assert a_rgb.shape == a_flow.shape == (2, 7) and not torch.allclose(a_rgb, a_flow)
    torch.testing.assert_close(A, (a_rgb + a_flow) / 2)
    for plain, full in zip(model(X), (A, S, X_hat)):
        torch.testing.assert_close(plain, full, rtol=0, atol=0)


def test_default_sizes_follow_the_paper():
    model = HiMNet()
    assert model.config.feature_dim == 2048 and model.config.hidden_dim == 2048
    assert model.config.num_classes == 20 and model.config.dropout == 0.7
    assert model.classifier[-1].out_channels == 21
    assert model.fusion[0].in_channels == 2048 and model.fusion[0].kernel_size == (1,)
    assert model.rgb_attention.bit_wise[0].in_channels == 1024


def test_eval_mode_is_deterministic_and_train_mode_is_stochastic():
    model = make_model()
    X = torch.randn(2, 7, CFG.feature_dim)
    model.eval()
    first, second = model(X), model(X)
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    model.train()
    torch.manual_seed(1)
    S1 = model(X)[1]
    torch.manual_seed(2)
    S2 = model(X)[1]
    assert not torch.equal(S1, S2)  # dropout is active


def test_batch_items_are_independent():
    model = make_model().eval()
    X = torch.randn(3, 6, CFG.feature_dim)
    A, S, X_hat = model(X)
    A1, S1, X_hat1 = model(X[1:2])
    torch.testing.assert_close(A[1:2], A1)
    torch.testing.assert_close(S[1:2], S1)
    torch.testing.assert_close(X_hat[1:2], X_hat1)


def test_modalities_are_split_in_halves_and_filtered_elementwise():
    # rgb attention takes the first half of the channels (filtered by flow), flow the second
    model = make_model().eval()
    X = torch.randn(1, 5, CFG.feature_dim)
    x = X.transpose(1, 2)
    rgb, flow = x[:, : CFG.feature_dim // 2], x[:, CFG.feature_dim // 2 :]
    a_rgb, rgb_filtered = model.rgb_attention(rgb, flow)
    a_flow, flow_filtered = model.flow_attention(flow, rgb)
    A, _, X_hat = model(X)
    torch.testing.assert_close(A, (0.5 * (a_rgb + a_flow)).squeeze(1))
    torch.testing.assert_close(X_hat.transpose(1, 2), model.fusion(torch.cat([rgb_filtered, flow_filtered], 1)))
    # the bit-wise filter is a sigmoid gate: same sign as the input, smaller magnitude
    for v, filtered in ((rgb, rgb_filtered), (flow, flow_filtered)):
        assert bool((filtered.abs() < v.abs()).all() and (filtered * v >= 0).all())


@pytest.mark.parametrize("mode", ["eval", "train_seeded"])
def test_every_parameter_gets_a_gradient_from_the_total_loss(mode):
    model = make_model()
    model.train(mode != "eval")
    torch.manual_seed(3)
    X = torch.randn(4, 8, CFG.feature_dim)
    labels = torch.tensor([[1.0, 0, 0, 1], [1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0]])
    A, S, X_hat = model(X)
    total_loss(S, A, X_hat, labels, k=2)["total"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    "X, arg",
    [
        (torch.randn(5, CFG.feature_dim), "X"),  # missing batch dim
        (torch.randn(2, 5, CFG.feature_dim + 2), "X"),  # wrong feature dim
        (torch.full((1, 3, CFG.feature_dim), float("nan")), "X"),
        (torch.zeros(1, 3, CFG.feature_dim, dtype=torch.int64), "X"),
        (torch.zeros(1, 0, CFG.feature_dim), "X"),  # no snippet
    ],
)
def test_bad_input_raises(X, arg):
    with pytest.raises(ValueError, match=rf"^{arg}:"):
        make_model()(X)


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        ({"feature_dim": 15}, "feature_dim"),
        ({"num_classes": 0}, "num_classes"),
        ({"dropout": 1.0}, "dropout"),
        ({"hidden_dim": 2.5}, "hidden_dim"),
    ],
)
def test_bad_config_raises(kwargs, arg):
    with pytest.raises(ValueError, match=rf"^{arg}:"):
        HiMNet(**{"feature_dim": 16, "hidden_dim": 8, "num_classes": 3, "attention_dim": 4, **kwargs})


def test_cpu_small_preset():
    cfg = HiMNetConfig.cpu_small(num_classes=7)
    assert (cfg.feature_dim, cfg.hidden_dim, cfg.attention_dim, cfg.num_classes) == (256, 256, 64, 7)
    A, S, X_hat = HiMNet.from_config(cfg).eval()(torch.randn(1, 3, 256))
    assert S.shape == (1, 3, 8) and X_hat.shape == (1, 3, 256)


def test_co2net_gate_filters_each_channel():
    """gate="co2net": filtered = sigmoid(bit_wise * channel) * v with the channel descriptor
    per channel (CO2-Net's BWA module), recomputed here from the module's own layers."""
    torch.manual_seed(0)
    module = HiMNet(feature_dim=12, hidden_dim=8, num_classes=3, attention_dim=4, gate="co2net").rgb_attention.eval()
    v, f = torch.randn(2, 6, 9), torch.randn(2, 6, 9)
    a, filtered = module(v, f)
    channel = module.channel_conv(v.mean(dim=2, keepdim=True))
    torch.testing.assert_close(filtered, torch.sigmoid(module.bit_wise(f) * channel) * v)
    torch.testing.assert_close(a, module.attention(filtered))
    cosine = HiMNet(feature_dim=12, hidden_dim=8, num_classes=3, attention_dim=4, gate="cosine").rgb_attention
    cosine.load_state_dict(module.state_dict())
    assert not torch.allclose(cosine.eval()(v, f)[1], filtered)  # the two readings differ


def test_kaiming_init_as_co2net():
    """init="kaiming": kaiming_uniform_ defaults, |w| <= sqrt(6 / fan_in), zero bias."""
    torch.manual_seed(0)
    model = HiMNet(feature_dim=64, hidden_dim=64, num_classes=5, attention_dim=32, init="kaiming")
    conv = model.fusion[0]
    bound = math.sqrt(6.0 / (conv.in_channels * conv.kernel_size[0]))
    assert 0.9 * bound < conv.weight.abs().max() <= bound and conv.bias.abs().max() == 0
    xavier = HiMNet(feature_dim=64, hidden_dim=64, num_classes=5, attention_dim=32).fusion[0]
    assert xavier.weight.abs().max() <= math.sqrt(6.0 / (64 + 64))  # Xavier's bound, smaller


def test_unknown_gate_or_init_is_rejected():
    with pytest.raises(ValueError, match="gate"):
        HiMNet(feature_dim=8, hidden_dim=8, num_classes=3, attention_dim=4, gate="dot")
    with pytest.raises(ValueError, match="init"):
        HiMNet(feature_dim=8, hidden_dim=8, num_classes=3, attention_dim=4, init="normal")
