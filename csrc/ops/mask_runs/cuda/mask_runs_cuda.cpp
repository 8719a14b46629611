// CUDA binding of mask_runs: two launches (count, fill) around a device-side scan.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../../../binding_utils.h"
#include "mask_runs_kernel.h"

namespace himnet_fast {
namespace {

at::Tensor mask_runs_cuda(const at::Tensor& mask_in, const at::Tensor& lengths_in) {
  check_mask_runs_inputs(mask_in, lengths_in);
  const c10::cuda::CUDAGuard guard(mask_in.device());
  const at::Tensor mask = mask_in.contiguous();
  const at::Tensor lengths = lengths_in.contiguous();
  const int64_t rows = mask.size(0), T = mask.size(1);
  TORCH_CHECK(rows == 0 || (lengths.min().item<int64_t>() >= 0 && lengths.max().item<int64_t>() <= T),
              "mask_runs: every length must lie in [0, T=", T, "]");
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  at::Tensor counts = at::empty({rows}, lengths.options());
  mask_runs_count_cuda(mask.data_ptr<bool>(), lengths.data_ptr<int64_t>(), rows, T,
                       counts.data_ptr<int64_t>(), stream);
  at::Tensor offsets = counts.cumsum(0) - counts;  // exclusive scan
  const int64_t total = rows == 0 ? 0 : counts.sum().item<int64_t>();
  at::Tensor runs = at::empty({total, 3}, lengths.options());
  mask_runs_fill_cuda(mask.data_ptr<bool>(), lengths.data_ptr<int64_t>(), rows, T,
                      offsets.data_ptr<int64_t>(), runs.data_ptr<int64_t>(), stream);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return runs;
}

}  // namespace

TORCH_LIBRARY_IMPL(himnet_fast, CUDA, m) { m.impl("mask_runs", &mask_runs_cuda); }

}  // namespace himnet_fast
