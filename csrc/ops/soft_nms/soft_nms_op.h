// The ATen side of batched_soft_nms shared by its CPU and CUDA kernels: the op's
// signature with its input checks (soft_nms_op.cpp), around a kernel per device.
#pragma once
#include <ATen/ATen.h>

#include <optional>
#include <tuple>

#include "soft_nms.h"

namespace himnet_fast {

// Shapes, dtypes, devices, parameters and values (CUDA inputs' values on a host copy);
// returns the parameters.
NmsParams check_soft_nms_inputs(const at::Tensor& segments, const at::Tensor& scores, const at::Tensor& groups,
                                int64_t method, double sigma, double iou_threshold, double min_score, double offset,
                                const std::optional<int64_t>& pre_nms_topk, const std::optional<at::Tensor>& cancel);

// A device's kernel: checked inputs; cancel is null or the flag the CPU loops read.
using SoftNmsKernel = std::tuple<at::Tensor, at::Tensor> (*)(const at::Tensor& segments, const at::Tensor& scores,
                                                             const at::Tensor& groups, const NmsParams& params,
                                                             std::optional<int64_t> pre_nms_topk,
                                                             const int32_t* cancel);

// The op as each device registers it: the checks, then the device's kernel.
template <SoftNmsKernel kernel>
std::tuple<at::Tensor, at::Tensor> checked_soft_nms(const at::Tensor& segments, const at::Tensor& scores,
                                                    const at::Tensor& groups, int64_t method, double sigma,
                                                    double iou_threshold, double min_score, double offset,
                                                    std::optional<int64_t> pre_nms_topk,
                                                    const std::optional<at::Tensor>& cancel) {
  const NmsParams params = check_soft_nms_inputs(segments, scores, groups, method, sigma, iou_threshold, min_score,
                                                 offset, pre_nms_topk, cancel);
  return kernel(segments, scores, groups, params, pre_nms_topk, cancel ? cancel->data_ptr<int32_t>() : nullptr);
}

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

}  // namespace himnet_fast
