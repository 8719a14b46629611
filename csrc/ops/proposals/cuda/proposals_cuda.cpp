// CUDA kernel of proposals on checked inputs (proposals_op.h): bookkeeping with ATen on
// the device (scans) around the kernels of proposals_kernel.cu.
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <tuple>

#include "../proposals_op.h"
#include "proposals_kernel.h"

namespace himnet_fast {
namespace {

// Exclusive scan of a 1D int64 tensor.
at::Tensor exclusive_scan(const at::Tensor& counts) { return counts.cumsum(0) - counts; }

std::tuple<at::Tensor, at::Tensor> proposals_cuda(const ProposalInputs& in, double weight) {
  const c10::cuda::CUDAGuard guard(in.attention.device());
  const at::Tensor &attention = in.attention, &cas = in.cas, &offsets = in.offsets, &selected = in.selected;
  const at::Tensor &video_scores = in.video_scores, &thresholds = in.thresholds;
  const int64_t videos = in.videos, K = in.K, rows = in.rows, H = in.H;
  const at::Tensor lengths = offsets.slice(0, 1) - offsets.slice(0, 0, videos);
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const at::Tensor prefix_len =
      rows > 0 ? lengths.index_select(0, selected.select(1, 0)) + 1 : at::zeros({0}, offsets.options());
  const at::Tensor prefix_start = exclusive_scan(prefix_len).contiguous();
  const int64_t prefix_total = rows > 0 ? prefix_len.sum().item<int64_t>() : 0;
  at::Tensor prefix = at::empty({prefix_total}, video_scores.options());
  at::Tensor counts = at::empty({rows * H}, offsets.options());
  at::Tensor ids, scores;
  AT_DISPATCH_FLOATING_TYPES(cas.scalar_type(), "proposals_cuda", [&] {
    const scalar_t* att = attention.data_ptr<scalar_t>();
    proposals_prefix_cuda(cas.data_ptr<scalar_t>(), K, offsets.data_ptr<int64_t>(),
                          selected.data_ptr<int64_t>(), rows, prefix_start.data_ptr<int64_t>(),
                          prefix.data_ptr<double>(), stream);
    proposals_runs_cuda(att, offsets.data_ptr<int64_t>(), selected.data_ptr<int64_t>(),
                        video_scores.data_ptr<double>(), rows, thresholds.data_ptr<double>(), H, nullptr,
                        nullptr, weight, counts.data_ptr<int64_t>(), nullptr, nullptr, nullptr, stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const at::Tensor out_start = exclusive_scan(counts).contiguous();
    const int64_t total = rows * H > 0 ? counts.sum().item<int64_t>() : 0;
    ids = at::empty({total, 4}, offsets.options());
    scores = at::empty({total}, video_scores.options());
    proposals_runs_cuda(att, offsets.data_ptr<int64_t>(), selected.data_ptr<int64_t>(),
                        video_scores.data_ptr<double>(), rows, thresholds.data_ptr<double>(), H,
                        prefix.data_ptr<double>(), prefix_start.data_ptr<int64_t>(), weight, nullptr,
                        out_start.data_ptr<int64_t>(), ids.data_ptr<int64_t>(), scores.data_ptr<double>(),
                        stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {ids, scores};
}

}  // namespace

TORCH_LIBRARY_IMPL(himnet_fast, CUDA, m) { m.impl("proposals", &checked_proposals<proposals_cuda>); }

}  // namespace himnet_fast
