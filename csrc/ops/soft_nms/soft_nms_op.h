// The ATen side of batched_soft_nms shared by its CPU and CUDA kernels: the input
// checks (soft_nms_op.cpp holds the schema).
#pragma once
#include <ATen/ATen.h>

#include <cmath>
#include <optional>

#include "soft_nms.h"

namespace himnet_fast {

// Shapes, dtypes, devices and parameters; returns the parameters.
NmsParams check_soft_nms_inputs(const at::Tensor& segments, const at::Tensor& scores, const at::Tensor& groups,
                                int64_t method, double sigma, double iou_threshold, double min_score, double offset,
                                const std::optional<int64_t>& pre_nms_topk, const std::optional<at::Tensor>& cancel);

// Calls fn(base, stride0, stride1) with the segments (N, 2) read in place, as const
// int64_t* (the proposals' snippet indices), float* or double*, any strides; other
// dtypes are converted to float64 first.
template <typename Fn>
void visit_segments(const at::Tensor& segments, Fn fn) {
  const int64_t s0 = segments.stride(0), s1 = segments.stride(1);
  switch (segments.scalar_type()) {
    case at::kLong: return fn(segments.data_ptr<int64_t>(), s0, s1);
    case at::kFloat: return fn(segments.data_ptr<float>(), s0, s1);
    case at::kDouble: return fn(segments.data_ptr<double>(), s0, s1);
    default: visit_segments(segments.to(at::kDouble), fn);
  }
}

// The values: finite segments that end at or after their start with a finite length,
// finite scores (n contiguous float64); the first bad entry is named.
template <typename T>
void check_soft_nms_values(const T* base, int64_t s0, int64_t s1, const double* scores, int64_t n) {
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

}  // namespace himnet_fast
