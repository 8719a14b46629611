"""The training loop: model, Adam, the Eq. 11 criterion and the paired batch stream.

Determinism: every random source is owned and checkpointed — the global Python / numpy /
torch generators (initialisation, dropout) and the numpy generators of the batch stream
(``data.TrainBatches``: paired video sampling and clip sampling) — so on the CPU a run
resumed from a checkpoint reproduces the uninterrupted run bit for bit (same weights, same
logged losses), for a fixed thread count (``--threads``; results differ across counts).
Under ``torchrun`` (``himnet_fast.distributed``) every rank's streams are checkpointed, so a
restarted job continues bit-exactly too, for the same number of ranks.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from himnet_fast.checkpoint import rng_state, seed_everything, set_rng_state
from himnet_fast.config import RunConfig, learning_rate, resolve_device
from himnet_fast.distributed import World, average_gradients, broadcast_parameters, gather_objects, rank_device
from himnet_fast.losses import LOSS_KEYS, NETWORK_OUTPUTS, HiMNetCriterion, LossConfig
from himnet_fast.model import build_model, check_checkpoint_data
from himnet_fast.reference.losses import topk_k

EvalFn = Callable[["Trainer"], dict]
CheckpointFn = Callable[["Trainer"], None]
StepFn = Callable[["Trainer", dict, float], None]  # (trainer, loss terms, seconds of the step)


def loss_config(cfg: RunConfig) -> LossConfig:
    """The criterion's ``LossConfig``: the run's, with VCL pairs matching the batch layout."""
    return dataclasses.replace(cfg.loss, num_pairs=cfg.data.num_pairs)


class Trainer:
    """Runs the paper's optimisation for ``cfg`` on ``dataset`` (a ``FeatureDataset``).

    ``history`` logs every iteration's loss terms (``iteration`` and ``losses.LOSS_KEYS``: lists
    of floats; under torchrun the mean over ranks); ``evaluations``
    the periodic evaluation results. ``world``: this process's rank (``distributed.World``).
    """

    def __init__(self, cfg: RunConfig, dataset, world: World = World()):
        from himnet_fast.data import TrainBatches

        self.cfg = cfg
        self.dataset = dataset
        self.world = world
        self.device = resolve_device(rank_device(cfg.device, world))
        seed_everything(cfg.seed)
        self.model = build_model(cfg, dataset.feature_dim, len(dataset.classlist)).to(self.device)
        broadcast_parameters(self.model, world)
        if world.rank > 0:  # same weights, but each rank its own dropout masks
            seed_everything(int(np.random.SeedSequence([cfg.seed, world.rank]).generate_state(1)[0]))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.optim.lr,
                                          weight_decay=cfg.optim.weight_decay)
        self.criterion = HiMNetCriterion(loss_config(cfg))
        # Paired video sampling and clip sampling, with their own seeded numpy streams.
        # On a GPU: page-locked batches (asynchronous copies), built while the device computes
        # the previous step (``step``); the copies of a batch's videos use up to 4 threads.
        on_gpu = self.device.type == "cuda"
        self.batches = TrainBatches(dataset, cfg.data.clip_len, batch_size=cfg.data.batch_size,
                                    num_pairs=cfg.data.num_pairs, seed=cfg.seed,
                                    threads=min(4, torch.get_num_threads()), pin_memory=on_gpu,
                                    rank=world.rank, world_size=world.size)
        self._prefetch = on_gpu
        self.k = topk_k(cfg.data.clip_len, cfg.data.topk_r)
        self.iteration = 0
        self.history: dict[str, list] = {key: [] for key in ("iteration",) + LOSS_KEYS}
        self.evaluations: list[dict] = []
        self.grad_norms: list[dict] = []  # the gradient-balance diagnostic, one entry per evaluation

    # ------------------------------------------------------------------ one step
    def step(self, diagnose: bool = False) -> dict[str, float]:
        """One optimisation step on one batch; returns the (unweighted) loss terms.

        diagnose: also log, in ``grad_norms``, the L2 norm of each weighted loss term's gradient
        on the attention A, on the CAS S and on the fused features X_hat of this batch (which
        term drives the training; X_hat is the only input ``--vcl-grad features`` trains). It
        reuses this step's forward pass and draws no random numbers, so training is unchanged.
        """
        self.model.train()
        terms, outputs = self.next_batch_losses()
        if diagnose:
            self.grad_norms.append({"iteration": self.iteration + 1, **self.term_gradient_norms(terms, *outputs)})
        self.optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        stacked = torch.stack([terms[key].detach() for key in LOSS_KEYS])
        stacked = average_gradients(list(self.model.parameters()), stacked, self.world)
        for group in self.optimizer.param_groups:  # from the step number: a resumed run follows the schedule
            group["lr"] = learning_rate(self.cfg.optim, self.iteration)
        self.optimizer.step()
        self.iteration += 1
        if self._prefetch:  # CPU work of the next batch while the GPU runs this step's kernels
            self.batches.prefetch()
        values = dict(zip(LOSS_KEYS, stacked.tolist()))
        if not np.isfinite(values["total"]):
            raise FloatingPointError(f"iteration {self.iteration}: the loss is not finite ({values}); "
                                     f"lower --lr or check the features")
        self.history["iteration"].append(self.iteration)
        for key in LOSS_KEYS:
            self.history[key].append(values[key])
        return values

    def next_batch_losses(self) -> tuple[dict, tuple]:
        """Draw the next batch of the stream and compute its loss terms (in the model's current
        mode): (terms, (A (B, T), S (B, T, C+1), X_hat (B, T, hidden)))."""
        _, X, labels = next(self.batches)
        X, labels = X.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
        A, S, X_hat, *modalities = self.model(X, modality_attention=bool(self.criterion.cfg.mutual_weight))
        return self.criterion(A, S, X_hat, labels, self.k, *modalities), (A, S, X_hat)

    def term_gradient_norms(self, terms: dict, A: torch.Tensor, S: torch.Tensor, X_hat: torch.Tensor) -> dict:
        """{term: {"A": |d(w L)/dA|, "S": |d(w L)/dS|, "X_hat": |d(w L)/dX_hat|}} for each term in
        the total (weight w != 0). The gradient on X_hat counts every path: directly (VCL) and
        through S = classifier(X_hat) (MIL, CLL, SCL and VCL under ``--vcl-grad base``)."""
        norms = {}
        inputs = dict(zip(NETWORK_OUTPUTS, (A, S, X_hat)))
        for name, w in self.criterion.weights.items():
            if w and terms[name].requires_grad:
                grads = torch.autograd.grad(w * terms[name], tuple(inputs.values()), retain_graph=True,
                                            allow_unused=True)
                norms[name] = {key: 0.0 if g is None else float(g.norm()) for key, g in zip(inputs, grads)}
        return norms

    # ------------------------------------------------------------------ the loop
    def fit(self, until: int, evaluate: Optional[EvalFn] = None, checkpoint: Optional[CheckpointFn] = None,
            on_step: Optional[StepFn] = None) -> None:
        """Train until iteration ``until``. Every ``eval_every`` iterations (and at the end)
        ``evaluate(self)`` runs and its result (a dict with at least ``avg``) is logged; every
        ``ckpt_every`` iterations (and at the end) ``checkpoint(self)`` is called (on every rank:
        it gathers their states); ``on_step(self, terms, seconds)`` after each step."""
        sched = self.cfg.schedule
        bar = tqdm(total=until, initial=self.iteration, desc="train", unit="it",
                   disable=not (sched.progress and self.world.is_main), dynamic_ncols=True)
        try:
            while self.iteration < until:
                evaluating = evaluate is not None and (self.iteration + 1 == until
                                                       or _due(self.iteration + 1, sched.eval_every))
                t0 = time.perf_counter()
                values = self.step(diagnose=evaluating)
                if on_step is not None:
                    on_step(self, values, time.perf_counter() - t0)
                bar.update(1)
                bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()}, refresh=False)
                last = self.iteration == until
                if evaluating:
                    # Evaluation must not consume the training RNG streams.
                    with torch.random.fork_rng(devices=[]):
                        result = evaluate(self)
                    self.evaluations.append({"iteration": self.iteration, **result})
                    bar.write(f"iter {self.iteration}: " + _numbers(result))
                if checkpoint is not None and (last or _due(self.iteration, sched.ckpt_every)):
                    checkpoint(self)
        finally:
            bar.close()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Everything needed to continue bit-exactly (the config included). Under torchrun a
        collective: every rank calls it, and ``ranks`` holds each rank's RNG and stream state."""
        ranks = gather_objects({"rng": rng_state(), "batches": self.batches.state_dict()}, self.world)
        return {
            "config": self.cfg.to_dict(),
            "iteration": self.iteration,
            "world_size": self.world.size,
            "batch_per_rank": self.cfg.data.batch_size,
            "threads": torch.get_num_threads(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ranks": ranks,  # per rank: {"rng", "batches"}
            "history": self.history,
            "evaluations": self.evaluations,
            "grad_norms": self.grad_norms,
            "feature_dim": self.dataset.feature_dim,
            "classlist": list(self.dataset.classlist),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` (e.g. from ``checkpoint.load_checkpoint``)."""
        check_checkpoint_data(state, self.dataset, "--resume")
        saved_world = int(state.get("world_size", 1))
        if saved_world != self.world.size:
            raise ValueError(f"--resume: the checkpoint was written by {saved_world} process(es), this run has "
                             f"{self.world.size}; resume with the same torchrun --nproc_per_node x --nnodes "
                             f"(each rank's batch stream is in the checkpoint)")
        mine = state["ranks"][self.world.rank] if "ranks" in state else state  # older: one rank, top level
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.batches.load_state_dict(mine["batches"])
        set_rng_state(mine["rng"])
        self.iteration = int(state["iteration"])
        self.history = {key: list(values) for key, values in state["history"].items()}
        for key in LOSS_KEYS:  # a term added since the checkpoint was written: 0 so far
            self.history.setdefault(key, [0.0] * len(self.history["iteration"]))
        self.evaluations = list(state["evaluations"])
        self.grad_norms = list(state.get("grad_norms", []))


def _numbers(result: dict) -> str:
    """The scalar entries of an evaluation result, as ``name value`` pairs."""
    return ", ".join(f"{k} {v:.4g}" for k, v in result.items()
                     if isinstance(v, (int, float)) and not isinstance(v, bool))


def _due(iteration: int, every: int) -> bool:
    return every > 0 and iteration % every == 0
