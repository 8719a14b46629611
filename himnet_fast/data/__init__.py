"""Feature datasets in their public formats, a synthetic THUMOS-like generator and the
paired batch sampler of HiM-Net.

- :mod:`.annotations`: ground truth in the Thumos14reduced layout and ActivityNet JSON.
"""
from .annotations import (Annotations, ground_truth_json, read_annotations, read_ground_truth_json,
                          write_annotations)
from .errors import DataFormatError, DataWarning

__all__ = ["Annotations", "DataFormatError", "DataWarning", "ground_truth_json", "read_annotations",
           "read_ground_truth_json", "write_annotations"]
