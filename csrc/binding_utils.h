// Input checks shared by the ATen binding layer (CPU and CUDA).
#pragma once
#include <ATen/ATen.h>

#include <cmath>
#include <optional>

#include "ops/postprocess/nms.h"

namespace himnet_fast {

// Shape/dtype/device checks of proposals (value checks happen per device).
inline void check_proposals_inputs(const at::Tensor& attention, const at::Tensor& cas,
                                   const at::Tensor& offsets, const at::Tensor& selected,
                                   const at::Tensor& video_scores, const at::Tensor& thresholds) {
  TORCH_CHECK_VALUE(attention.dim() == 1, "proposals: attention must be 1D (sum T,), got ",
                    attention.sizes());
  TORCH_CHECK_VALUE(cas.dim() == 2 && cas.size(0) == attention.size(0),
                    "proposals: cas must be 2D (sum T, K) with one row per attention entry (",
                    attention.size(0), "), got ", cas.sizes());
  TORCH_CHECK_VALUE(attention.scalar_type() == cas.scalar_type() &&
                        (cas.scalar_type() == at::kFloat || cas.scalar_type() == at::kDouble),
                    "proposals: attention and cas must share a dtype, float32 or float64");
  TORCH_CHECK_VALUE(offsets.dim() == 1 && offsets.size(0) >= 1 && offsets.scalar_type() == at::kLong,
                    "proposals: offsets must be 1D int64 (V+1,)");
  TORCH_CHECK_VALUE(selected.dim() == 2 && selected.size(1) == 2 && selected.scalar_type() == at::kLong,
                    "proposals: selected must be (R, 2) int64 rows (video, class)");
  TORCH_CHECK_VALUE(video_scores.dim() == 1 && video_scores.size(0) == selected.size(0) &&
                        video_scores.scalar_type() == at::kDouble,
                    "proposals: video_scores must be (R,) float64, one per selected row");
  TORCH_CHECK_VALUE(thresholds.dim() == 1 && thresholds.scalar_type() == at::kDouble,
                    "proposals: thresholds must be 1D float64");
  for (const at::Tensor* t : {&cas, &offsets, &selected, &video_scores, &thresholds}) {
    TORCH_CHECK_VALUE(t->device() == attention.device(),
                      "proposals: every input must be on the same device as attention");
  }
}

// The inputs of proposals, checked (shapes, dtypes, devices) and made contiguous.
struct ProposalInputs {
  at::Tensor attention, cas, offsets, selected, video_scores, thresholds;
  int64_t videos, K, rows, H;
};

inline ProposalInputs contiguous_proposal_inputs(const at::Tensor& attention, const at::Tensor& cas,
                                                 const at::Tensor& offsets, const at::Tensor& selected,
                                                 const at::Tensor& video_scores, const at::Tensor& thresholds) {
  check_proposals_inputs(attention, cas, offsets, selected, video_scores, thresholds);
  return {attention.contiguous(), cas.contiguous(), offsets.contiguous(), selected.contiguous(),
          video_scores.contiguous(), thresholds.contiguous(), offsets.size(0) - 1, cas.size(1),
          selected.size(0), thresholds.size(0)};
}

// Shape/dtype/device checks of batched_soft_nms (value checks of the tensors happen
// per device); returns the checked parameters.
inline NmsParams check_soft_nms_inputs(const at::Tensor& segments, const at::Tensor& scores,
                                       const at::Tensor& groups, int64_t method, double sigma,
                                       double iou_threshold, double min_score, double offset,
                                       const std::optional<int64_t>& pre_nms_topk,
                                       const std::optional<at::Tensor>& cancel) {
  TORCH_CHECK_VALUE(segments.dim() == 2 && segments.size(1) == 2,
                    "batched_soft_nms: segments must be (N, 2), got ", segments.sizes());
  TORCH_CHECK_VALUE(scores.dim() == 1 && scores.size(0) == segments.size(0),
                    "batched_soft_nms: scores must be (N,) with N = ", segments.size(0), ", got ",
                    scores.sizes());
  TORCH_CHECK_VALUE(groups.dim() == 1 && groups.size(0) == segments.size(0) &&
                        groups.scalar_type() == at::kLong,
                    "batched_soft_nms: groups must be (N,) int64 with N = ", segments.size(0));
  TORCH_CHECK_VALUE((at::isFloatingType(segments.scalar_type()) || segments.scalar_type() == at::kLong) &&
                        at::isFloatingType(scores.scalar_type()),
                    "batched_soft_nms: segments must be floating point or int64, scores floating point");
  TORCH_CHECK_VALUE(scores.device() == segments.device() && groups.device() == segments.device(),
                    "batched_soft_nms: segments, scores and groups must be on the same device");
  TORCH_CHECK_VALUE(method >= 0 && method <= 2, "batched_soft_nms: method must be 0 (hard), 1 (linear) "
                    "or 2 (gaussian), got ", method);
  TORCH_CHECK_VALUE(sigma > 0.0, "batched_soft_nms: sigma must be > 0, got ", sigma);
  TORCH_CHECK_VALUE(iou_threshold >= 0.0 && iou_threshold <= 1.0,
                    "batched_soft_nms: iou_threshold must lie in [0, 1], got ", iou_threshold);
  TORCH_CHECK_VALUE(offset == 0.0 || offset == 1.0, "batched_soft_nms: offset must be 0 or 1, got ",
                    offset);
  TORCH_CHECK_VALUE(!std::isnan(min_score), "batched_soft_nms: min_score must not be NaN");
  TORCH_CHECK_VALUE(!pre_nms_topk.has_value() || *pre_nms_topk >= 1,
                    "batched_soft_nms: pre_nms_topk must be a positive integer, got ", pre_nms_topk.value_or(0));
  TORCH_CHECK_VALUE(!cancel.has_value() || (cancel->scalar_type() == at::kInt && cancel->numel() == 1 &&
                                            cancel->device().is_cpu()),
                    "batched_soft_nms: cancel must be a (1,) int32 CPU tensor");
  NmsParams params;
  params.method = method;
  params.sigma = sigma;
  params.iou_threshold = iou_threshold;
  params.min_score = min_score;
  params.offset = offset;
  return params;
}

}  // namespace himnet_fast
