"""Run configuration of ``python -m himnet_fast.train``: dataclasses, presets, command line.

A run is described by one :class:`RunConfig` made of small sections (data, model, optim,
loss, schedule, detection). Three presets fill it:

- ``synthetic`` (the default): a synthetic THUMOS14-like set generated on first use into a
  cache folder, a CPU-sized model, a few hundred iterations; the whole job (generation,
  training, detection, evaluation, plots) takes a few minutes on two CPU cores.
- ``thumos14`` / ``anet13``: the paper's recipe (Sec. 4.1, DESIGN.md section 3) on real
  I3D features given by ``--data-root``.

Every scalar field of every section is a command-line option named after the field
(``--iters``, ``--lr``, ``--hidden-dim``, ``--scl-variant`` ...); booleans come as pairs
(``--cll`` / ``--no-cll``). Option names are unique across sections so that they stay flat;
the loss section is the criterion's own ``losses.LossConfig``, whose ``use_mil`` ... are
spelled ``--mil`` ... and ``backend`` ``--loss-backend`` (its ``num_pairs`` follows the data's).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import sys
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import torch

from himnet_fast.losses import LossConfig
from himnet_fast.model import GATES, INITS, ModelConfig
from himnet_fast.postprocess import DetectionConfig
from himnet_fast.reference.losses import CLL_NORMS, MIL_NORMS, SCL_VARIANTS, SUPPRESSIONS, VCL_GRADS

PRESETS = ("synthetic", "thumos14", "anet13")
# A fixed default, not the core count: float sums split over threads round differently, so a
# run is reproducible on any machine only for a given thread count. 2 = the CI machine's cores.
DEFAULT_THREADS = 2
DATASETS = ("thumos14", "anet13")


@dataclass
class DataConfig:
    """Where the features come from and how training clips are drawn.

    ``data_root=None`` means the synthetic set of the ``synth_*`` fields, generated once into
    ``cache_dir`` (default ``~/.cache/himnet_fast``, or ``$HIMNET_FAST_CACHE``).
    """

    dataset: str = "thumos14"          # annotation layout / tIoU set: thumos14 | anet13
    data_root: Optional[str] = None    # folder of real (or pre-generated) features
    cache_dir: Optional[str] = None    # where the synthetic set is cached
    synth_dim: int = 256               # feature dim of the synthetic set (RGB half | flow half)
    synth_seed: int = 0                # generator seed (part of the cache key)
    synth_videos: Optional[int] = None # number of synthetic videos (None: the benchmark's count)
    synth_video_style: float = 0.0     # FeatureModel.video_style: each video's own look of its classes
    synth_rectified: bool = False      # FeatureModel.rectified: features clipped at 0, as real I3D ones are
    clip_len: int = 560                # T: snippets per training clip (uniform sampling)
    topk_r: int = 7                    # k = max(1, T // r) for Eq. 1 in training
    batch_size: int = 10               # videos per batch
    num_pairs: int = 3                 # same-class pairs at positions (0,1), (2,3), ...


LR_SCHEDULES = ("constant", "cosine")


@dataclass
class OptimConfig:
    """Adam, as in the paper (a constant learning rate). ``lr_schedule="cosine"`` anneals the
    rate from ``lr`` at the first step to ``lr_final`` at the last (:func:`learning_rate`)."""

    iters: int = 10_000
    lr: float = 3e-5
    weight_decay: float = 1e-3
    lr_schedule: str = "constant"      # constant | cosine
    lr_final: float = 3e-5             # the cosine schedule's last rate (the paper's constant one)


def learning_rate(optim: OptimConfig, step: int) -> float:
    """The rate of step ``step`` (0-based) of ``optim.iters``: ``lr`` when constant; with cosine,
    lr_final + (lr - lr_final) * (1 + cos(pi * step / (iters - 1))) / 2, so step 0 takes ``lr`` and
    the last step ``lr_final``. A function of the step alone, so a resumed run follows the same
    schedule (for the same ``--iters``)."""
    if optim.lr_schedule == "constant" or optim.iters <= 1:
        return optim.lr
    progress = min(step, optim.iters - 1) / (optim.iters - 1)
    return optim.lr_final + (optim.lr - optim.lr_final) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class ScheduleConfig:
    """How often to evaluate and checkpoint, and what to draw."""

    eval_every: int = 1000             # 0: only at the end
    ckpt_every: int = 1000             # 0: only at the end
    timelines: int = 3                 # number of test videos drawn as timeline_<video>.png
    progress: bool = True              # tqdm progress bars


@dataclass
class RunConfig:
    """Everything one training run needs; serialised into the checkpoint."""

    preset: str = "synthetic"
    out: Optional[str] = None          # default runs/<preset>
    seed: int = 0
    device: str = "cpu"                # cpu | cuda | cuda:N
    threads: Optional[int] = DEFAULT_THREADS  # CPU threads of torch (None: torch's default,
                                       # the machine's core count, so results depend on it)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    detect: DetectionConfig = field(default_factory=DetectionConfig)

    @property
    def out_dir(self) -> str:
        """The output folder (``runs/<preset>`` unless ``out`` is set)."""
        return self.out if self.out else f"runs/{self.preset}"

    def to_dict(self) -> dict:
        """A plain, JSON-serialisable dict (for checkpoints and metrics.json)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise a ``ValueError``."""
        top = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                continue
            if dataclasses.is_dataclass(_field_type(cls, f.name)):
                top[f.name] = _section_from_dict(_field_type(cls, f.name), d[f.name], f.name)
            else:
                top[f.name] = d[f.name]
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"config: unknown keys {sorted(unknown)}")
        return cls(**top)

    def validate(self) -> "RunConfig":
        """Check value ranges and choices; raises a ``ValueError`` naming the option."""
        _check(self.preset in PRESETS, "preset", f"must be one of {PRESETS}, got {self.preset!r}")
        _check(self.data.dataset in DATASETS, "dataset", f"must be one of {DATASETS}, got {self.data.dataset!r}")
        _check(self.preset == "synthetic" or self.data.data_root is not None, "data-root",
               f"the {self.preset} preset trains on real features: give their folder (the synthetic preset "
               f"needs no files; `python -m himnet_fast.synthesize` writes a {self.preset}-like folder)")
        _check(self.device == "cpu" or self.device.startswith("cuda"), "device",
               f"must be cpu, cuda or cuda:N, got {self.device!r}")
        for name, value, lo in (("clip-len", self.data.clip_len, 1), ("topk-r", self.data.topk_r, 1),
                                ("batch-size", self.data.batch_size, 2), ("num-pairs", self.data.num_pairs, 0),
                                ("synth-dim", self.data.synth_dim, 2), ("hidden-dim", self.model.hidden_dim, 1),
                                ("attention-dim", self.model.attention_dim, 1),
                                ("iters", self.optim.iters, 0), ("eval-every", self.schedule.eval_every, 0),
                                ("ckpt-every", self.schedule.ckpt_every, 0), ("timelines", self.schedule.timelines, 0),
                                ("infer-r", self.detect.r, 1)):
            _check(value >= lo, name, f"must be >= {lo}, got {value}")
        _check(self.threads is None or self.threads >= 1, "threads", f"must be >= 1, got {self.threads}")
        _check(2 * self.data.num_pairs <= self.data.batch_size, "num-pairs",
               f"{self.data.num_pairs} pairs need a batch of at least {2 * self.data.num_pairs}, "
               f"got --batch-size {self.data.batch_size}")
        _check(self.data.synth_dim % 2 == 0, "synth-dim", f"must be even (RGB | flow halves), got {self.data.synth_dim}")
        _check(math.isfinite(self.data.synth_video_style) and self.data.synth_video_style >= 0, "synth-video-style",
               f"must be a finite number >= 0, got {self.data.synth_video_style}")
        for option, p in (("dropout", self.model.dropout), ("attention-dropout", self.model.attention_dropout)):
            _check(0.0 <= p < 1.0, option, f"must lie in [0, 1), got {p}")
        _check(self.optim.lr > 0, "lr", f"must be > 0, got {self.optim.lr}")
        _check(self.optim.weight_decay >= 0, "weight-decay", f"must be >= 0, got {self.optim.weight_decay}")
        _check(self.optim.lr_schedule in LR_SCHEDULES, "lr-schedule",
               f"must be one of {LR_SCHEDULES}, got {self.optim.lr_schedule!r}")
        _check(math.isfinite(self.optim.lr_final) and self.optim.lr_final > 0, "lr-final",
               f"must be a finite number > 0, got {self.optim.lr_final}")
        _check(self.model.gate in GATES, "gate", f"must be one of {GATES}, got {self.model.gate!r}")
        _check(self.model.init in INITS, "init", f"must be one of {INITS}, got {self.model.init!r}")
        loss = self.loss
        _check(loss.scl_variant in SCL_VARIANTS, "scl-variant", f"must be one of {SCL_VARIANTS}, got {loss.scl_variant!r}")
        _check(loss.mil_norm in MIL_NORMS, "mil-norm", f"must be one of {MIL_NORMS}, got {loss.mil_norm!r}")
        _check(loss.cll_norm in CLL_NORMS, "cll-norm", f"must be one of {CLL_NORMS}, got {loss.cll_norm!r}")
        _check(loss.suppression in SUPPRESSIONS, "suppression",
               f"must be one of {SUPPRESSIONS}, got {loss.suppression!r}")
        _check(loss.vcl_grad in VCL_GRADS, "vcl-grad", f"must be one of {VCL_GRADS}, got {loss.vcl_grad!r}")
        _check(loss.use_mil or loss.use_cll or loss.use_vcl or loss.use_scl, "mil/cll/vcl/scl",
               "at least one loss must be switched on")
        LossConfig(**dataclasses.asdict(loss))  # the criterion's own checks (weights, backend)
        _check(self.detect.nms in ("soft", "hard"), "nms", f"must be soft or hard, got {self.detect.nms!r}")
        DetectionConfig(**dataclasses.asdict(self.detect))  # the detection settings' own checks
        return self


def _check(ok: bool, option: str, problem: str) -> None:
    if not ok:
        raise ValueError(f"--{option}: {problem}")


def _field_type(cls, name: str):
    return typing.get_type_hints(cls)[name]


def _section_from_dict(cls, d: dict, section: str):
    renamed = _RENAMED.get(section, {})
    d = {**_ADDED.get(section, {}), **{renamed.get(key, key): value for key, value in d.items()}}
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"config section {section!r}: unknown keys {sorted(unknown)}")
    return cls(**d)


def preset(name: str) -> RunConfig:
    """The :class:`RunConfig` of preset ``name`` (``synthetic`` | ``thumos14`` | ``anet13``)."""
    if name == "thumos14":
        # Paper Sec. 4.1: T = 560, k = 80 (r = 7), 10,000 iterations.
        return RunConfig(preset=name, data=DataConfig(dataset="thumos14", clip_len=560, topk_r=7),
                         optim=OptimConfig(iters=10_000))
    if name == "anet13":
        # Paper Sec. 4.1: T = 60, k = 6 (r = 10), 20,000 iterations.
        return RunConfig(preset=name, data=DataConfig(dataset="anet13", clip_len=60, topk_r=10),
                         optim=OptimConfig(iters=20_000),
                         schedule=ScheduleConfig(eval_every=2000, ckpt_every=2000))
    if name == "synthetic":
        # CPU-sized: small features and network, shorter clips (k = 320 // 7 = 45), a higher
        # learning rate so that a few hundred iterations learn; all four losses of Eq. 11 at the
        # paper's weights (lambda1 = 1, lambda2 = 0.01, alpha = 4), with the loss readings the
        # measured evidence chose (docs/RESULTS.md; LossConfig's defaults).
        return RunConfig(
            preset=name,
            data=DataConfig(dataset="thumos14", synth_dim=256, clip_len=320, topk_r=7),
            model=ModelConfig(hidden_dim=256, attention_dim=64),
            optim=OptimConfig(iters=600, lr=1e-3, weight_decay=1e-3),
            schedule=ScheduleConfig(eval_every=100, ckpt_every=100),
        )
    raise ValueError(f"--preset: must be one of {PRESETS}, got {name!r}")


# ---------------------------------------------------------------- command line

_SECTIONS = ("data", "model", "optim", "loss", "schedule", "detect")
_TOP_LEVEL = ("out", "seed", "device", "threads")
# Option names that differ from the field name; None: not an option.
_OPTION_NAMES = {"loss.use_mil": "mil", "loss.use_cll": "cll", "loss.use_vcl": "vcl", "loss.use_scl": "scl",
                 "loss.backend": "loss_backend", "loss.num_pairs": None,
                 "detect.r": "infer_r", "detect.backend": "post_backend"}
# Fields renamed since older checkpoints were written: section -> {old key: new key}.
_RENAMED = {"detect": {"infer_r": "r", "post_backend": "backend"}}
# Fields added with a default other than the behaviour before them: section -> {key: the old
# behaviour}, so that a config saved before (a checkpoint being resumed) trains as it did.
_ADDED = {"loss": {"vcl_grad": "base", "cll_norm": "paper"}}


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _scalar_type(tp) -> Any:
    """(python type, optional?) of a scalar field annotation."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is typing.Union and type(None) in args:
        inner = next(a for a in args if a is not type(None))
        return inner, True
    return tp, False


def _parse_numbers(text: str) -> tuple:
    """A tuple option: comma-separated numbers ("0.1,0.2,0.3")."""
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _parse_optional(inner):
    def parse(text: str):
        return None if text.lower() in ("none", "") else inner(text)
    parse.__name__ = inner.__name__
    return parse


def _walk(cfg: RunConfig):
    """(dest, field name, type, value) of every overridable scalar field."""
    for name in _TOP_LEVEL:
        yield name, name, _field_type(RunConfig, name), getattr(cfg, name)
    for section in _SECTIONS:
        obj = getattr(cfg, section)
        hints = typing.get_type_hints(type(obj))
        for f in dataclasses.fields(obj):
            dest = f"{section}.{f.name}"
            name = _OPTION_NAMES.get(dest, f.name)
            if name is not None:
                yield dest, name, hints[f.name], getattr(obj, f.name)


def add_config_arguments(parser: argparse.ArgumentParser, shown: RunConfig) -> None:
    """Add one option per scalar config field to ``parser``.

    Options default to ``argparse.SUPPRESS``, so the parsed namespace holds exactly what the
    user typed; :func:`apply_overrides` lays that over a preset or a checkpoint's config.
    ``shown`` supplies the defaults printed by ``--help``.
    """
    groups = {s: parser.add_argument_group(f"{s} options") for s in _SECTIONS}
    for dest, name, tp, value in _walk(shown):
        target = groups[dest.split(".")[0]] if "." in dest else parser
        inner, optional = _scalar_type(tp)
        kwargs = dict(dest=dest, default=argparse.SUPPRESS, help=f"(default: {value})")
        if inner is bool:
            target.add_argument(_option(name), action=argparse.BooleanOptionalAction, **kwargs)
        elif inner is tuple:
            target.add_argument(_option(name), type=_parse_numbers, metavar="X,Y,...", **kwargs)
        else:
            target.add_argument(_option(name), type=_parse_optional(inner) if optional else inner,
                                metavar=name.upper(), **kwargs)


def apply_overrides(cfg: RunConfig, given: dict[str, Any]) -> RunConfig:
    """A copy of ``cfg`` with the config options present in ``given`` (``vars(args)``) set;
    other keys of ``given`` are ignored."""
    out = RunConfig.from_dict(cfg.to_dict())
    for dest, _, _, _ in _walk(out):
        if dest not in given:
            continue
        if "." in dest:
            section, name = dest.split(".")
            setattr(getattr(out, section), name, given[dest])
        else:
            setattr(out, dest, given[dest])
    return out


def run_cli(main: Callable[[Optional[Sequence[str]]], Any], prog: str, argv: Optional[Sequence[str]] = None) -> int:
    """Run an app's ``main(argv)``, printing a ``ValueError`` (bad options or data) or a
    ``FloatingPointError`` (a non-finite loss, e.g. at an extreme learning rate) as one
    ``prog: error: ...`` line with exit status 2 instead of a traceback."""
    try:
        main(argv)
    except (ValueError, FloatingPointError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)``; asking for CUDA where none is present is a ``ValueError``."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device: {name!r} requested but no CUDA device is available (use --device cpu)")
    return device


@contextlib.contextmanager
def torch_threads(n: Optional[int]):
    """Run the block with ``n`` torch CPU threads (``None``: unchanged), then restore."""
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
