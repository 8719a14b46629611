// The ATen side of proposals shared by its CPU and CUDA kernels: the input checks
// (proposals_op.cpp holds them and the schema).
#pragma once
#include <ATen/ATen.h>

namespace himnet_fast {

// The inputs of proposals, checked (shapes, dtypes, devices and values) and made contiguous.
struct ProposalInputs {
  at::Tensor attention, cas, offsets, selected, video_scores, thresholds;
  int64_t videos, K, rows, H;
};

ProposalInputs check_proposals_inputs(const at::Tensor& attention, const at::Tensor& cas, const at::Tensor& offsets,
                                      const at::Tensor& selected, const at::Tensor& video_scores,
                                      const at::Tensor& thresholds, double weight);

}  // namespace himnet_fast
