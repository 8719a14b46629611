"""Inference, detection and evaluation of a trained network on a dataset split.

- :func:`infer_videos`: full-length forward pass per video (``model.eval()``, no grad) ->
  attention A, raw class activations S and S_hat = S * A (DESIGN.md: literally).
- :func:`detect`: ``himnet_fast.postprocess.detect_videos`` on (A, S_hat) -> per video rows
  (class, start_s, end_s, score).
- :func:`evaluate`: mAP per tIoU (official ActivityNet algorithm), snippet accuracy, how the
  attention separates action from background snippets (:func:`attention_separation`), and how
  strongly the network fires on classes absent from a video.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from himnet_fast.config import RunConfig
from himnet_fast.data.snippets import snippet_labels
from himnet_fast.evaluation import snippet_accuracy
from himnet_fast.ops import postprocess as ops
from himnet_fast.postprocess import DetectionConfig

# attention_separation's metrics (in metrics.json and the experiments' results)
ATTENTION_KEYS = ("attention_fg", "attention_bg", "attention_bg_above_half", "attention_auc")


@dataclass
class VideoOutput:
    """Network outputs of one video: ``attention`` (T,), ``cas`` = S (T, C+1) and
    ``cas_hat`` = S_hat = S * A (T, C+1), all float32 numpy arrays."""

    name: str
    attention: np.ndarray
    cas: np.ndarray
    cas_hat: np.ndarray

    @property
    def snippet_probs(self) -> np.ndarray:
        """Softmax over the C+1 classes of S: (T, C+1)."""
        p = np.exp(self.cas - self.cas.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    @property
    def background(self) -> np.ndarray:
        """B_bg: the background column of :attr:`snippet_probs`, (T,)."""
        return self.snippet_probs[:, -1]

    def video_scores(self, r: int) -> np.ndarray:
        """Eq. 2 at inference, as the detector computes it (``ops.video_scores``): softmax over C+1
        of the top-k mean of S_hat, k = max(1, T // r), background dropped: (C,) float64."""
        return ops.video_scores(self.cas_hat, [0, len(self.cas_hat)], r)[0].numpy()


@torch.no_grad()
def infer_videos(model: torch.nn.Module, dataset, indices: Sequence[int], device: torch.device,
                 progress: bool = False) -> list[VideoOutput]:
    """Run ``model`` on the full length of every video in ``indices``, one at a time (no
    padding, so top-k and the convolutions see exactly the video)."""
    was_training = model.training
    model.eval()
    outputs = []
    try:
        for i in tqdm(indices, desc="infer", unit="video", disable=not progress, leave=False):
            X = torch.as_tensor(np.asarray(dataset.features(int(i)), dtype=np.float32))[None].to(device)
            A, S, _ = model(X)
            S_hat = S * A.unsqueeze(-1)
            outputs.append(VideoOutput(dataset.names[int(i)], A[0].float().cpu().numpy(),
                                       S[0].float().cpu().numpy(), S_hat[0].float().cpu().numpy()))
    finally:
        model.train(was_training)
    return outputs


def detect(outputs: Sequence[VideoOutput], settings: DetectionConfig, backend: Optional[str] = None) -> list[np.ndarray]:
    """Detections of every video: (n_i, 4) rows (class, start_s, end_s, score)."""
    from himnet_fast.postprocess import detect_videos

    return detect_videos([o.attention for o in outputs], [o.cas_hat for o in outputs], settings, backend=backend)


def results_json(dataset, outputs: Sequence[VideoOutput], detections: Sequence[np.ndarray]) -> dict:
    """Detections in the ActivityNet results format."""
    from himnet_fast.postprocess import to_results_json

    return to_results_json([o.name for o in outputs], list(detections), list(dataset.classlist))


def absent_class_firing(outputs: Sequence[VideoOutput], labels: np.ndarray, r: int) -> dict:
    """How strongly the network fires on classes a video does not contain.

    ``labels``: (N, C) multi-hot of the same videos. Returns means over videos (with at
    least one absent class) of the largest video score (Eq. 2) and of the largest snippet
    probability (softmax over C+1 of S) among the absent classes.
    """
    video_max, snippet_max = [], []
    if not len(outputs):
        return {"absent_video_score": 0.0, "absent_snippet_prob": 0.0}
    # All videos in one packed call (each video's scores are computed on their own, as per video).
    offsets = np.concatenate([[0], np.cumsum([len(out.cas_hat) for out in outputs])])
    scores = ops.video_scores(np.concatenate([out.cas_hat for out in outputs]), offsets, r).numpy()
    for out, y, video_score in zip(outputs, labels, scores):
        absent = ~np.asarray(y, dtype=bool)
        if not absent.any():
            continue
        video_max.append(float(video_score[absent].max()))
        snippet_max.append(float(out.snippet_probs[:, :-1][:, absent].max()))
    return {"absent_video_score": float(np.mean(video_max)) if video_max else 0.0,
            "absent_snippet_prob": float(np.mean(snippet_max)) if snippet_max else 0.0}


def ranking_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(p > n) + P(p = n) / 2 for p drawn from ``positive`` and n from ``negative`` (the area
    under the ROC curve; ties count half); NaN when either is empty. O((P + N) log N)."""
    if not len(positive) or not len(negative):
        return float("nan")
    negative = np.sort(np.asarray(negative, dtype=np.float64))
    positive = np.asarray(positive, dtype=np.float64)
    below = np.searchsorted(negative, positive, side="left")
    tied = np.searchsorted(negative, positive, side="right") - below
    return float((below.sum() + 0.5 * tied.sum()) / (len(positive) * len(negative)))


def attention_separation(outputs: Sequence[VideoOutput], targets: Sequence[np.ndarray], num_classes: int) -> dict:
    """How the attention A separates the ground-truth action snippets from the background ones,
    over all the videos' snippets: ``attention_fg`` / ``attention_bg`` (mean A on each),
    ``attention_bg_above_half`` (share of background snippets with A > 0.5, the middle of the base
    code's proposal thresholds) and ``attention_auc`` (:func:`ranking_auc` of A, action against
    background: 1 = every action snippet above every background one, 0.5 = chance), the keys of
    ``ATTENTION_KEYS``. ``targets``: per video (T_i,) class ids, ``num_classes`` = background. All
    four are None when the videos have no action snippet or no background one."""
    a = np.concatenate([out.attention for out in outputs]).astype(np.float64) if outputs else np.zeros(0)
    t = np.concatenate(targets) if outputs else np.zeros(0, dtype=np.int64)
    fg, bg = a[t != num_classes], a[t == num_classes]
    if not len(fg) or not len(bg):  # None, not NaN: metrics.json stays valid JSON
        return dict.fromkeys(ATTENTION_KEYS)
    return dict(zip(ATTENTION_KEYS, (float(fg.mean()), float(bg.mean()), float((bg > 0.5).mean()),
                                     ranking_auc(fg, bg))))


def gt_classes_only(results: dict, gt: dict) -> dict:
    """``results`` without the detections of classes that have no ground-truth instance.

    mAP averages AP over the ground-truth classes only, so such detections never count; the
    official evaluator (and ours) rejects their labels, which a small test split can lack.
    """
    present = {a["label"] for video in gt["database"].values() for a in video.get("annotations", [])}
    kept = {name: [d for d in dets if d["label"] in present] for name, dets in results["results"].items()}
    return {**results, "results": kept}


def evaluate(dataset, dataset_name: str, indices: Sequence[int], outputs: Sequence[VideoOutput],
             detections: Sequence[np.ndarray], settings: DetectionConfig) -> dict:
    """Metrics of one evaluation on the benchmark protocol ``dataset_name`` (``evaluation.PROTOCOLS``:
    its thresholds and the averaged ranges of the paper's Tables 1 and 2): ``mAP`` (tIoU -> %),
    ``avg`` (the last range, %), ``avg_<lo>_<hi>`` per range, ``snippet_accuracy`` (%; snippet
    classes by ``data.snippet_labels``), the attention metrics ``ATTENTION_KEYS``
    (:func:`attention_separation`), ``classes_without_detections`` (ground-truth classes never
    predicted), absent-class firing (:func:`absent_class_firing`)."""
    from himnet_fast.evaluation import EvaluationWarning, detection_map

    gt = dataset.ground_truth("test")
    with warnings.catch_warnings():
        # "no predictions for some classes" is expected early in training; it is counted below.
        warnings.simplefilter("ignore", EvaluationWarning)
        # The ground truth holds the test split only, whatever its subset is called ("test", "val").
        result = detection_map(gt, gt_classes_only(results_json(dataset, outputs, detections), gt), subset=None,
                               protocol=dataset_name)
    metrics = {"mAP": {f"{t:.2f}": 100.0 * float(m) for t, m in zip(result.tious, result.mAP)}}
    for lo, hi in result.averages:
        metrics[f"avg_{lo:g}_{hi:g}"] = 100.0 * float(result.average(lo, hi))
    metrics["avg"] = metrics[f"avg_{lo:g}_{hi:g}"]
    targets = [snippet_labels(dataset, int(i)) for i in indices]
    metrics["snippet_accuracy"] = 100.0 * float(snippet_accuracy([out.cas.argmax(axis=1) for out in outputs], targets))
    metrics.update(attention_separation(outputs, targets, len(dataset.classlist)))
    metrics["classes_without_detections"] = int((np.asarray(result.num_predictions) == 0).sum())
    metrics.update(absent_class_firing(outputs, dataset.labels[np.asarray(indices)], settings.r))
    return metrics


def evaluate_model(model: torch.nn.Module, dataset, cfg: RunConfig, device: torch.device,
                   progress: bool = False) -> tuple[dict, list[VideoOutput], list[np.ndarray]]:
    """Infer, detect and evaluate ``model`` on the test split: (metrics, outputs, detections)."""
    indices = list(dataset.test_indices)
    outputs = infer_videos(model, dataset, indices, device, progress=progress)
    detections = detect(outputs, cfg.detect)
    return evaluate(dataset, cfg.data.dataset, indices, outputs, detections, cfg.detect), outputs, detections
