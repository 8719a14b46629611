"""Evaluation: the official ActivityNet detection mAP (exact, numba-fast) and snippet accuracy.

``detection_map(gt, predictions, tious)`` -> :class:`DetectionResult`; CLI:
``python -m himnet_fast.evaluate --gt GT --pred PRED.json``.
"""
from himnet_fast.geometry import segment_iou

from .detection import DetectionResult, detection_map
from .errors import EvaluationInputError, EvaluationWarning
from .io import GroundTruth, Predictions, drop_ambiguous, load_ground_truth, load_predictions, read_ambiguous
from .protocols import ANET_TIOUS, PROTOCOLS, THUMOS14_TIOUS, Protocol, get_protocol
from .snippets import snippet_accuracy, snippet_targets

__all__ = [
    "detection_map", "DetectionResult", "EvaluationInputError", "EvaluationWarning",
    "GroundTruth", "Predictions", "load_ground_truth", "load_predictions", "read_ambiguous", "drop_ambiguous",
    "segment_iou", "THUMOS14_TIOUS", "ANET_TIOUS", "PROTOCOLS", "Protocol", "get_protocol",
    "snippet_accuracy", "snippet_targets",
]
