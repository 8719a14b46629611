// The ATen side of proposals shared by its CPU and CUDA kernels: the op's signature
// with its input checks (proposals_op.cpp), around a kernel per device.
#pragma once
#include <ATen/ATen.h>

#include <tuple>

namespace himnet_fast {

// The inputs of proposals, checked (shapes, dtypes, devices and values) and made contiguous.
struct ProposalInputs {
  at::Tensor attention, cas, offsets, selected, video_scores, thresholds;
  int64_t videos, K, rows, H;
};

ProposalInputs check_proposals_inputs(const at::Tensor& attention, const at::Tensor& cas, const at::Tensor& offsets,
                                      const at::Tensor& selected, const at::Tensor& video_scores,
                                      const at::Tensor& thresholds, double weight);

// A device's kernel: checked inputs.
using ProposalsKernel = std::tuple<at::Tensor, at::Tensor> (*)(const ProposalInputs& in, double weight);

// The op as each device registers it: the checks, then the device's kernel.
template <ProposalsKernel kernel>
std::tuple<at::Tensor, at::Tensor> checked_proposals(const at::Tensor& attention, const at::Tensor& cas,
                                                     const at::Tensor& offsets, const at::Tensor& selected,
                                                     const at::Tensor& video_scores, const at::Tensor& thresholds,
                                                     double weight) {
  return kernel(check_proposals_inputs(attention, cas, offsets, selected, video_scores, thresholds, weight), weight);
}

}  // namespace himnet_fast
