// batched_soft_nms: its schema and input checks (soft_nms_op.h), shared by the CPU and
// CUDA kernels (cpu/, cuda/).
#include "soft_nms_op.h"

#include <torch/library.h>

#include <cmath>

namespace himnet_fast {

void define_soft_nms(torch::Library& m) {
  // (Soft-)NMS of many groups at once: segments (N, 2), scores (N,), groups (N,)
  // int64; method 0 hard, 1 linear, 2 gaussian; offset 0 or 1 (legacy IoU) ->
  // keep (M,) int64 indices ordered by group id then selection, kept scores (M,)
  // float64. pre_nms_topk=k: only the k highest-scored segments of each group (ties at
  // the cut to the lower index) take part. cancel: a (1,) int32 CPU tensor that the CPU
  // loops read while they run; once another thread sets it non-zero they stop with an
  // error (the CUDA kernel does not read it).
  m.def(
      "batched_soft_nms(Tensor segments, Tensor scores, Tensor groups, int method, float sigma, "
      "float iou_threshold, float min_score, float offset, int? pre_nms_topk=None, "
      "Tensor? cancel=None) -> (Tensor, Tensor)");
  // The same by the O(n^2) loop (CPU): the benchmarks' baseline, not a public op.
  m.def(
      "_soft_nms_quadratic(Tensor segments, Tensor scores, Tensor groups, int method, float sigma, "
      "float iou_threshold, float min_score, float offset, int? pre_nms_topk=None, "
      "Tensor? cancel=None) -> (Tensor, Tensor)");
}

namespace {

// Finite segments that end at or after their start with a finite length, finite scores
// (n contiguous float64); the first bad entry is named.
template <typename T>
void check_values(const T* base, int64_t s0, int64_t s1, const double* scores, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double a = static_cast<double>(base[i * s0]), b = static_cast<double>(base[i * s0 + s1]);
    TORCH_CHECK_VALUE(std::isfinite(a) && std::isfinite(b),
                      "batched_soft_nms: segments contain NaN or infinity (segments[", i, "])");
    TORCH_CHECK_VALUE(b >= a, "batched_soft_nms: every segment must end at or after its start (segments[", i, "])");
    TORCH_CHECK_VALUE(std::isfinite(b - a),
                      "batched_soft_nms: segment lengths must be finite (end - start overflows at segments[", i, "])");
    TORCH_CHECK_VALUE(std::isfinite(scores[i]), "batched_soft_nms: scores contain NaN or infinity (scores[", i, "])");
  }
}

}  // namespace

NmsParams check_soft_nms_inputs(const at::Tensor& segments, const at::Tensor& scores, const at::Tensor& groups,
                                int64_t method, double sigma, double iou_threshold, double min_score, double offset,
                                const std::optional<int64_t>& pre_nms_topk, const std::optional<at::Tensor>& cancel) {
  const int64_t N = segments.dim() == 2 ? segments.size(0) : -1;
  TORCH_CHECK_VALUE(segments.dim() == 2 && segments.size(1) == 2, "batched_soft_nms: segments must be (N, 2), got ",
                    segments.sizes());
  TORCH_CHECK_VALUE(scores.dim() == 1 && scores.size(0) == N, "batched_soft_nms: scores must be (N,) with N = ", N,
                    " (one per segment), got ", scores.sizes());
  TORCH_CHECK_VALUE(groups.dim() == 1 && groups.size(0) == N && groups.scalar_type() == at::kLong,
                    "batched_soft_nms: groups must be (N,) int64 with N = ", N, ", got ", groups.sizes(), " ",
                    groups.scalar_type());
  TORCH_CHECK_VALUE(!at::isComplexType(segments.scalar_type()) && segments.scalar_type() != at::kBool &&
                        at::isFloatingType(scores.scalar_type()),
                    "batched_soft_nms: segments must be real numbers, scores floating point");
  TORCH_CHECK_VALUE(scores.device() == segments.device() && groups.device() == segments.device(),
                    "batched_soft_nms: segments, scores and groups must be on the same device");
  TORCH_CHECK_VALUE(method >= 0 && method <= 2, "batched_soft_nms: method must be 0 (hard), 1 (linear) "
                    "or 2 (gaussian), got ", method);
  TORCH_CHECK_VALUE(sigma > 0.0 && std::isfinite(sigma), "batched_soft_nms: sigma must be a positive finite number, got ",
                    sigma);
  TORCH_CHECK_VALUE(iou_threshold >= 0.0 && iou_threshold <= 1.0,
                    "batched_soft_nms: iou_threshold must lie in [0, 1], got ", iou_threshold);
  TORCH_CHECK_VALUE(offset == 0.0 || offset == 1.0,
                    "batched_soft_nms: offset must be 0 (continuous IoU) or 1 (legacy +1 IoU), got ", offset);
  TORCH_CHECK_VALUE(!std::isnan(min_score), "batched_soft_nms: min_score must not be NaN");
  TORCH_CHECK_VALUE(!pre_nms_topk.has_value() || *pre_nms_topk >= 1,
                    "batched_soft_nms: pre_nms_topk must be a positive integer, got ", pre_nms_topk.value_or(0));
  TORCH_CHECK_VALUE(!cancel.has_value() || (cancel->scalar_type() == at::kInt && cancel->numel() == 1 &&
                                            cancel->device().is_cpu()),
                    "batched_soft_nms: cancel must be a (1,) int32 CPU tensor");
  // The values in place on the CPU; from a GPU on host copies (scores, segments: one copy each).
  const at::Tensor host_scores = scores.to(at::kDouble).contiguous().cpu();
  visit_segments(segments.cpu(), [&](const auto* base, int64_t s0, int64_t s1) {
    check_values(base, s0, s1, host_scores.data_ptr<double>(), N);
  });
  NmsParams params;
  params.method = method;
  params.sigma = sigma;
  params.iou_threshold = iou_threshold;
  params.min_score = min_score;
  params.offset = offset;
  return params;
}

}  // namespace himnet_fast
