// CPU binding of mask_runs: unpack tensors, run the shared row routine in parallel.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../../../binding_utils.h"
#include "../mask_runs.h"

namespace himnet_fast {
namespace {

at::Tensor mask_runs_cpu(const at::Tensor& mask_in, const at::Tensor& lengths_in) {
  check_mask_runs_inputs(mask_in, lengths_in);
  const at::Tensor mask = mask_in.contiguous();
  const at::Tensor lengths = lengths_in.contiguous();
  const int64_t rows = mask.size(0), T = mask.size(1);
  const bool* m = mask.data_ptr<bool>();
  const int64_t* len = lengths.data_ptr<int64_t>();
  for (int64_t r = 0; r < rows; ++r) {
    TORCH_CHECK(len[r] >= 0 && len[r] <= T, "mask_runs: lengths[", r, "] = ", len[r],
                " is outside [0, T=", T, "]");
  }
  at::Tensor offsets = at::empty({rows + 1}, lengths.options());
  int64_t* off = offsets.data_ptr<int64_t>();
  off[0] = 0;
  at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) off[r + 1] = mask_runs_row(m + r * T, len[r], r, nullptr);
  });
  for (int64_t r = 0; r < rows; ++r) off[r + 1] += off[r];
  at::Tensor runs = at::empty({off[rows], 3}, lengths.options());
  int64_t* out = runs.data_ptr<int64_t>();
  at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) mask_runs_row(m + r * T, len[r], r, out + 3 * off[r]);
  });
  return runs;
}

}  // namespace

TORCH_LIBRARY_IMPL(himnet_fast, CPU, m) { m.impl("mask_runs", &mask_runs_cpu); }

}  // namespace himnet_fast
