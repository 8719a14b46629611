"""The HiM-Net network: the CO2-Net architecture (DESIGN.md section 3, "Network").

Two branches over snippet features X = [RGB | flow] (B, T, feature_dim):
- attention branch: one module per modality with cross-modal bit-wise filtering; the
  attention A is the mean of the two modality attentions (each a sigmoid);
- classification branch: fusion unit on the concatenated filtered features -> X_hat, then
  a classification head -> class activation map S with C+1 classes (background last).

Two readings of the filter, named after their source (``gate``):
- ``"co2net"``: CO2-Net's ``BWA_fusion_dropout_feat_v2``, sigmoid(bit_wise * channel) * v, the
  channel descriptor multiplying each channel of the bit-wise features;
- ``"cosine"``: this project's first reading: one gate per snippet from the cosine of the
  normalised channel descriptor and bit-wise features, sigmoid(bit_wise * cos) * v.
And two initialisations (``init``): ``"kaiming"`` (CO2-Net's ``kaiming_uniform_``, zero bias)
and ``"xavier"`` (Xavier-uniform, zero bias).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from himnet_fast.validation import check_choice, check_int, check_number, check_shape, check_tensor

if TYPE_CHECKING:  # config imports this module
    from himnet_fast.config import RunConfig

GATES = ("co2net", "cosine")
INITS = ("kaiming", "xavier")


@dataclass
class ModelConfig:
    """The network's settings that do not come from the data (the ``model`` section of a run's
    config; the paper's setting is the default); gate and init: the readings of the module docstring."""

    hidden_dim: int = 2048
    attention_dim: int = 512
    dropout: float = 0.7
    attention_dropout: float = 0.5
    gate: str = "cosine"
    init: str = "xavier"


@dataclass
class HiMNetConfig(ModelConfig):
    """All sizes of the network (I3D features by default, 2048 = 1024 RGB + 1024 flow);
    ``cpu_small`` gives a preset that trains quickly on a CPU."""

    feature_dim: int = 2048
    num_classes: int = 20
    negative_slope: float = 0.2

    @classmethod
    def cpu_small(cls, num_classes: int = 20, feature_dim: int = 256) -> "HiMNetConfig":
        """A small preset for CPU runs and tests: hidden 256, attention 64."""
        return cls(feature_dim=feature_dim, hidden_dim=256, num_classes=num_classes, attention_dim=64)

    def __post_init__(self):
        check_int("feature_dim", self.feature_dim, 2)
        if self.feature_dim % 2:
            raise ValueError(f"feature_dim: must be even (RGB half + flow half), got {self.feature_dim}")
        check_int("hidden_dim", self.hidden_dim, 1)
        check_int("num_classes", self.num_classes, 1)
        check_int("attention_dim", self.attention_dim, 1)
        for name in ("dropout", "attention_dropout"):
            p = check_number(name, getattr(self, name), 0.0)
            if p >= 1.0:
                raise ValueError(f"{name}: must be in [0, 1), got {p}")
        check_number("negative_slope", self.negative_slope, 0.0)
        check_choice("gate", self.gate, GATES)
        check_choice("init", self.init, INITS)


def _conv_block(cin: int, cout: int, kernel: int, slope: float, dropout: float) -> nn.Sequential:
    """Conv1d (same padding) + LeakyReLU + Dropout over (B, channels, T)."""
    return nn.Sequential(nn.Conv1d(cin, cout, kernel, padding=kernel // 2), nn.LeakyReLU(slope), nn.Dropout(dropout))


class ModalityAttention(nn.Module):
    """Attention of one modality with cross-modal bit-wise filtering (CO2-Net).

    v: own features (B, n, T), f: the other modality's (B, n, T) ->
    (a (B, 1, T) in (0, 1), filtered (B, n, T)).
    """

    def __init__(self, n: int, attention_dim: int, dropout: float, slope: float, gate: str = "cosine"):
        super().__init__()
        self.gate = gate
        # The filter multiplies by v elementwise, so the embedding width equals n.
        self.channel_conv = _conv_block(n, n, 3, slope, dropout)
        self.bit_wise = _conv_block(n, n, 3, slope, dropout)
        self.attention = nn.Sequential(
            _conv_block(n, attention_dim, 3, slope, dropout),
            nn.Conv1d(attention_dim, attention_dim, 3, padding=1),
            nn.LeakyReLU(slope),
            nn.Conv1d(attention_dim, 1, 1),
            nn.Dropout(dropout),
            nn.Sigmoid(),
        )

    def forward(self, v: torch.Tensor, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """v, f: (B, n, T) -> (a (B, 1, T), filtered (B, n, T))."""
        # Global (temporal-average) channel descriptor of v; on a length-1 input the k=3 conv
        # only uses its centre tap (as in CO2-Net).
        channel = self.channel_conv(v.mean(dim=2, keepdim=True))  # (B, n, 1)
        bit_wise = self.bit_wise(f)  # (B, n, T)
        if self.gate == "co2net":
            filtered = torch.sigmoid(bit_wise * channel) * v
        else:
            cosine = torch.einsum("bno,bnt->bot", F.normalize(channel, dim=1), F.normalize(bit_wise, dim=1))  # (B, 1, T)
            filtered = torch.sigmoid(bit_wise * cosine) * v
        return self.attention(filtered), filtered


class HiMNet(nn.Module):
    """HiM-Net / CO2-Net network.

    forward(X: (B, T, feature_dim)) -> (A: (B, T) in (0, 1), S: (B, T, C+1), X_hat: (B, T, hidden_dim)).
    forward(X, modality_attention=True) adds (a_rgb, a_flow), each (B, T), A their mean (for
    CO2-Net's mutual loss between them).
    gate, init: the readings of the module docstring.
    """

    def __init__(
        self,
        feature_dim: int = 2048,
        hidden_dim: int = 2048,
        num_classes: int = 20,
        dropout: float = 0.7,
        attention_dim: int = 512,
        attention_dropout: float = 0.5,
        negative_slope: float = 0.2,
        gate: str = "cosine",
        init: str = "xavier",
    ):
        super().__init__()
        self.config = HiMNetConfig(hidden_dim=hidden_dim, attention_dim=attention_dim, dropout=dropout,
                                   attention_dropout=attention_dropout, gate=gate, init=init, feature_dim=feature_dim,
                                   num_classes=num_classes, negative_slope=negative_slope)
        n = feature_dim // 2
        slope = negative_slope
        self.rgb_attention = ModalityAttention(n, attention_dim, attention_dropout, slope, gate)
        self.flow_attention = ModalityAttention(n, attention_dim, attention_dropout, slope, gate)
        self.fusion = _conv_block(feature_dim, hidden_dim, 1, slope, dropout)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            _conv_block(hidden_dim, hidden_dim, 3, slope, dropout),
            nn.Conv1d(hidden_dim, num_classes + 1, 1),
        )
        self.apply(_INITIALISERS[init])

    @classmethod
    def from_config(cls, cfg: HiMNetConfig) -> "HiMNet":
        """Build the network from a ``HiMNetConfig``."""
        return cls(**asdict(cfg))

    @property
    def num_classes(self) -> int:
        """C, the number of action classes (S has C+1 columns)."""
        return self.config.num_classes

    def forward(self, X: torch.Tensor, modality_attention: bool = False) -> tuple:
        """X: (B, T, feature_dim) -> (A (B, T), S (B, T, C+1), X_hat (B, T, hidden_dim)), then
        ((a_rgb, a_flow), each (B, T)) when ``modality_attention``."""
        check_tensor("X", X, 3)
        check_shape("X", X, (None, None, self.config.feature_dim), "(B, T, feature_dim)")
        x = X.transpose(1, 2)  # (B, feature_dim, T): Conv1d layout
        n = self.config.feature_dim // 2
        rgb, flow = x[:, :n], x[:, n:]
        a_rgb, rgb_filtered = self.rgb_attention(rgb, flow)
        a_flow, flow_filtered = self.flow_attention(flow, rgb)
        A = 0.5 * (a_rgb + a_flow)
        X_hat = self.fusion(torch.cat([rgb_filtered, flow_filtered], dim=1)).transpose(1, 2)  # (B, T, hidden)
        # S from the returned X_hat (a view): a gradient taken on X_hat then counts the path through S
        S = self.classifier(X_hat.transpose(1, 2))
        outputs = (A.squeeze(1), S.transpose(1, 2), X_hat)
        return outputs + ((a_rgb.squeeze(1), a_flow.squeeze(1)),) if modality_attention else outputs


def _initialiser(weight_init):
    def init(module: nn.Module) -> None:
        if isinstance(module, nn.Conv1d):
            weight_init(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return init


# kaiming_uniform_ with its defaults (a = 0: bound sqrt(6 / fan_in)), as CO2-Net's weights_init.
_INITIALISERS = {"kaiming": _initialiser(nn.init.kaiming_uniform_), "xavier": _initialiser(nn.init.xavier_uniform_)}


def build_model(cfg: RunConfig, feature_dim: int, num_classes: int) -> HiMNet:
    """The network of ``cfg`` (its :class:`ModelConfig`) for ``feature_dim`` features and ``num_classes`` classes."""
    return HiMNet(feature_dim=feature_dim, num_classes=num_classes, **asdict(cfg.model))


def check_checkpoint_data(state: dict, dataset, option: str = "--data-root") -> None:
    """A ``ValueError`` naming ``option`` when ``dataset``'s classes or feature dim differ from those
    the checkpoint ``state`` was trained on."""
    if list(dataset.classlist) != list(state["classlist"]) or dataset.feature_dim != state["feature_dim"]:
        raise ValueError(f"{option}: the data ({len(dataset.classlist)} classes, feature dim "
                         f"{dataset.feature_dim}) does not match the checkpoint ({len(state['classlist'])} classes, "
                         f"feature dim {state['feature_dim']})")


def trained_model(state: dict, cfg: RunConfig, dataset, device) -> HiMNet:
    """The network of a checkpoint ``state`` (``checkpoint.load_checkpoint``) on ``device``, for
    ``dataset`` (checked by :func:`check_checkpoint_data`)."""
    check_checkpoint_data(state, dataset)
    model = build_model(cfg, dataset.feature_dim, len(dataset.classlist)).to(device)
    model.load_state_dict(state["model"])
    return model
