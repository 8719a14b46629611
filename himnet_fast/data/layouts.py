"""File layouts of the public feature sets (the snippet clock is ``himnet_fast.geometry.SNIPPET_SECONDS``)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PackedLayout:
    """One feature file (object array of (T_i, D) float32) + one annotation folder, as
    W-TALC / CO2-Net distribute THUMOS14 and ActivityNet1.3 ("<root>/<name>-I3D-JOINTFeatures.npy",
    "<root>/<name>-Annotations/")."""

    name: str
    features_file: str
    annotations_dir: str
    train_subset: str
    test_subset: str
    style: str  # string/duration storage of write_annotations

    @property
    def splits(self) -> dict:
        return {"train": self.train_subset, "test": self.test_subset}


THUMOS14 = PackedLayout("thumos14", "Thumos14reduced-I3D-JOINTFeatures.npy", "Thumos14reduced-Annotations",
                        "validation", "test", "thumos14")
ANET13 = PackedLayout("anet13", "ActivityNet1.3-I3D-JOINTFeatures.npy", "ActivityNet1.3-Annotations",
                      "train", "val", "anet13")
PACKED_LAYOUTS = {THUMOS14.name: THUMOS14, ANET13.name: ANET13}


@dataclass(frozen=True)
class PerVideoLayout:
    """BaS-Net / UM layout: "<root>/features/{train,test}/{rgb,flow}/<video>.npy", each (T_i, D/2),
    with the ground truth in "<root>/annotations/" (reduced layout) or "<root>/gt.json"."""

    name: str = "per_video"
    features_dir: str = "features"
    split_dirs: tuple = ("train", "test")
    modalities: tuple = ("rgb", "flow")
    annotations_dir: str = "annotations"
    gt_json: str = "gt.json"


PER_VIDEO = PerVideoLayout()
