"""Feature datasets in their public formats, a synthetic THUMOS-like generator and the
paired batch sampler of HiM-Net.

Modules (one job each):

- :mod:`.annotations`: ground truth in the Thumos14reduced layout and ActivityNet JSON;
- :mod:`.layouts`: file names of the public layouts;
- :mod:`.stores`, :mod:`.datasets`: feature files (packed object .npy, per-video memmaps)
  and ``load_dataset``;
- :mod:`.snippets`: seconds -> snippets, ``snippet_labels``;
- :mod:`.synth_annotations`, :mod:`.synth_features`, :mod:`.synth_writer`: the synthetic
  generator (CLI: ``python -m himnet_fast.synthesize``);
- :mod:`.sampler`: ``PairBatchSampler``, ``sample_clip``, ``make_batch``, ``TrainBatches``.
"""
from .annotations import (Annotations, ground_truth_json, read_annotations, read_ground_truth_json,
                          write_annotations)
from .datasets import FeatureDataset, detect_layout, load_dataset
from .errors import DataFormatError, DataWarning
from .sampler import PairBatchSampler, TrainBatches, make_batch, sample_clip
from .snippets import segment_snippets, snippet_labels, snippets_for_duration
from .synth_features import FeatureModel
from .synth_writer import synthesize

__all__ = [
    "Annotations", "DataFormatError", "DataWarning", "FeatureDataset", "FeatureModel", "PairBatchSampler",
    "TrainBatches", "detect_layout", "ground_truth_json", "load_dataset", "make_batch",
    "read_annotations", "read_ground_truth_json", "sample_clip", "segment_snippets", "snippet_labels",
    "snippets_for_duration", "synthesize", "write_annotations",
]
