"""Reference of the evaluator: a plain port of the official ActivityNet detection evaluation.

It follows ``Evaluation/eval_detection.py`` of the ActivityNet repository (class
``ANETdetection`` with ``compute_average_precision_detection``, and ``Evaluation/utils.py``:
``segment_iou``, here ``himnet_fast.geometry.segment_iou``, and ``interpolated_prec_rec``)
step by step, with pandas tables built as the official code builds them, so that row orders
(and with them the tie orders of ``np.argsort``) are the official ones. Differences, none of
which changes a number:

* inputs are the already-parsed JSON dicts instead of file names; no blocked-video
  download (the list is empty, as with ``check_status=False``); no joblib;
* ``compute_average_precision_detection`` reads the score-sorted table through numpy
  columns instead of ``DataFrame.iterrows`` and looks a video's ground truth up in a dict
  of ``groupby`` row positions instead of ``get_group``: same rows, same order, same
  arithmetic, 50x less pandas overhead. ``compute_average_precision_detection_literal``
  keeps the official pandas loop line by line (``evaluate(..., literal=True)``); tests
  check that the two agree, benchmarks time both.

It imports nothing of the fast evaluator (``himnet_fast.evaluation``), which is tested against it.
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np
import pandas as pd

from himnet_fast.geometry import segment_iou


def interpolated_prec_rec(prec: np.ndarray, rec: np.ndarray) -> float:
    """VOC 2011 interpolated average precision of a precision/recall curve."""
    mprec = np.hstack([[0], prec, [0]])
    mrec = np.hstack([[0], rec, [1]])
    for i in range(len(mprec) - 1)[::-1]:
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.where(mrec[1::] != mrec[0:-1])[0] + 1
    return np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx])


def compute_average_precision_detection(ground_truth: pd.DataFrame, prediction: pd.DataFrame,
                                        tiou_thresholds: np.ndarray) -> np.ndarray:
    """AP of one class at each tIoU threshold (official greedy matching, one lock per threshold).

    ground_truth: columns video-id, t-start, t-end (rows of one class, index 0..n-1).
    prediction: columns video-id, t-start, t-end, score (rows of one class, index 0..m-1).
    """
    if prediction.empty:
        return np.zeros(len(tiou_thresholds))
    prediction = _sort_by_score(prediction)
    tp, fp, lock_gt = _flags(tiou_thresholds, len(prediction), len(ground_truth))
    gt_rows_of_video = ground_truth.groupby("video-id").indices  # row positions, table order
    gt_segments = ground_truth[["t-start", "t-end"]].values
    videos = prediction["video-id"].values
    segments = prediction[["t-start", "t-end"]].values
    for idx in range(len(prediction)):
        rows = gt_rows_of_video.get(videos[idx])
        if rows is None:  # no ground truth of this class in the video
            fp[:, idx] = 1
            continue
        tiou_arr = segment_iou(segments[idx], gt_segments[rows])
        _assign(idx, tiou_arr, rows, tiou_thresholds, lock_gt, tp, fp)
    return _average_precisions(tp, fp, float(len(ground_truth)))


def compute_average_precision_detection_literal(ground_truth: pd.DataFrame, prediction: pd.DataFrame,
                                                tiou_thresholds: np.ndarray) -> np.ndarray:
    """The official loop as written (``iterrows``, ``get_group``, the ``index`` column of
    ``reset_index()`` as lock position)."""
    if prediction.empty:
        return np.zeros(len(tiou_thresholds))
    prediction = _sort_by_score(prediction)
    tp, fp, lock_gt = _flags(tiou_thresholds, len(prediction), len(ground_truth))
    ground_truth_gbvn = ground_truth.groupby("video-id")
    for idx, this_pred in prediction.iterrows():
        try:
            ground_truth_videoid = ground_truth_gbvn.get_group(this_pred["video-id"])
        except Exception:
            fp[:, idx] = 1
            continue
        this_gt = ground_truth_videoid.reset_index()
        tiou_arr = segment_iou(this_pred[["t-start", "t-end"]].values, this_gt[["t-start", "t-end"]].values)
        _assign(idx, tiou_arr, this_gt["index"], tiou_thresholds, lock_gt, tp, fp)
    return _average_precisions(tp, fp, float(len(ground_truth)))


def _sort_by_score(prediction: pd.DataFrame) -> pd.DataFrame:
    sort_idx = prediction["score"].values.argsort()[::-1]
    return prediction.loc[sort_idx].reset_index(drop=True)


def _flags(tiou_thresholds, n_pred: int, n_gt: int):
    lock_gt = np.ones((len(tiou_thresholds), n_gt)) * -1
    return np.zeros((len(tiou_thresholds), n_pred)), np.zeros((len(tiou_thresholds), n_pred)), lock_gt


def _assign(idx, tiou_arr, gt_index, tiou_thresholds, lock_gt, tp, fp) -> None:
    """Official inner loops: per threshold, the first unlocked ground truth by descending tIoU."""
    tiou_sorted_idx = tiou_arr.argsort()[::-1]
    for tidx, tiou_thr in enumerate(tiou_thresholds):
        for jdx in tiou_sorted_idx:
            if tiou_arr[jdx] < tiou_thr:
                fp[tidx, idx] = 1
                break
            if lock_gt[tidx, gt_index[jdx]] >= 0:
                continue
            tp[tidx, idx] = 1
            lock_gt[tidx, gt_index[jdx]] = idx
            break
        if fp[tidx, idx] == 0 and tp[tidx, idx] == 0:
            fp[tidx, idx] = 1


def _average_precisions(tp: np.ndarray, fp: np.ndarray, npos: float) -> np.ndarray:
    tp_cumsum = np.cumsum(tp, axis=1).astype(float)
    fp_cumsum = np.cumsum(fp, axis=1).astype(float)
    recall_cumsum = tp_cumsum / npos
    precision_cumsum = tp_cumsum / (tp_cumsum + fp_cumsum)
    return np.array([interpolated_prec_rec(precision_cumsum[tidx, :], recall_cumsum[tidx, :])
                     for tidx in range(len(tp))])


def import_ground_truth(database: dict, subset: str) -> Tuple[pd.DataFrame, Dict[str, int]]:
    """The official ground-truth table and ``activity_index`` (labels in order of first appearance)."""
    activity_index: Dict[str, int] = {}
    video_lst, t_start_lst, t_end_lst, label_lst = [], [], [], []
    for videoid, v in database["database"].items():
        if subset != v["subset"]:
            continue
        for ann in v["annotations"]:
            if ann["label"] not in activity_index:
                activity_index[ann["label"]] = len(activity_index)
            video_lst.append(videoid)
            t_start_lst.append(float(ann["segment"][0]))
            t_end_lst.append(float(ann["segment"][1]))
            label_lst.append(activity_index[ann["label"]])
    table = pd.DataFrame({"video-id": video_lst, "t-start": t_start_lst, "t-end": t_end_lst,
                          "label": label_lst})
    return table, activity_index


def import_prediction(results: dict, activity_index: Dict[str, int]) -> pd.DataFrame:
    """The official prediction table (a label outside the ground truth raises KeyError)."""
    video_lst, t_start_lst, t_end_lst, label_lst, score_lst = [], [], [], [], []
    for videoid, v in results["results"].items():
        for result in v:
            label = activity_index[result["label"]]
            video_lst.append(videoid)
            t_start_lst.append(float(result["segment"][0]))
            t_end_lst.append(float(result["segment"][1]))
            label_lst.append(label)
            score_lst.append(result["score"])
    return pd.DataFrame({"video-id": video_lst, "t-start": t_start_lst, "t-end": t_end_lst,
                         "label": label_lst, "score": score_lst})


def evaluate(ground_truth: dict, results: dict, tiou_thresholds: Sequence[float],
             subset: str = "test", literal: bool = False) -> Tuple[np.ndarray, np.ndarray, Dict[str, int]]:
    """Official ``ANETdetection.evaluate``: returns ap (n_tiou, C), mAP (n_tiou,) and activity_index.

    literal: use the official per-class loop as written (slow) instead of its faster twin."""
    per_class = compute_average_precision_detection_literal if literal else compute_average_precision_detection
    tiou_thresholds = np.asarray(tiou_thresholds, dtype=float)
    gt, activity_index = import_ground_truth(ground_truth, subset)
    pred = import_prediction(results, activity_index)
    ap = np.zeros((len(tiou_thresholds), len(activity_index)))
    gt_by_label = gt.groupby("label")
    pred_by_label = pred.groupby("label") if len(pred) else None
    for label_name, cidx in activity_index.items():
        if pred_by_label is not None and cidx in pred_by_label.groups:
            class_pred = pred_by_label.get_group(cidx).reset_index(drop=True)
        else:
            class_pred = pd.DataFrame()
        ap[:, cidx] = per_class(
            gt_by_label.get_group(cidx).reset_index(drop=True), class_pred, tiou_thresholds)
    return ap, ap.mean(axis=1), activity_index
