"""One training step per rank under torchrun, for tests/test_distributed.py (not a test itself).

    torchrun --standalone --nproc_per_node=2 tests/distributed_step.py RUN_CONFIG_JSON DATA_DIR OUT_PT

Each rank builds the trainer of the config on the data, takes one step on its own batch of the
shared stream, and rank 0 saves the model's weights and the logged loss terms to OUT_PT.
"""
import json
import sys

import torch

from himnet_fast.config import RunConfig, torch_threads
from himnet_fast.data import load_dataset
from himnet_fast.distributed import exit_worker, init_world, shutdown
from himnet_fast.trainer import Trainer


def main(config_json: str, data_dir: str, out: str) -> None:
    cfg = RunConfig.from_dict(json.loads(open(config_json).read()))
    world = init_world(cfg.device)
    try:
        with torch_threads(1):
            trainer = Trainer(cfg, load_dataset(data_dir), world)
            terms = trainer.step()
        if world.is_main:
            torch.save({"model": trainer.model.state_dict(), "terms": terms, "world_size": world.size}, out)
    finally:
        shutdown(world)


if __name__ == "__main__":
    main(*sys.argv[1:4])
    exit_worker(0)
