// Input checks shared by the ATen binding layer (CPU and CUDA).
#pragma once
#include <ATen/ATen.h>

namespace himnet_fast {

inline void check_mask_runs_inputs(const at::Tensor& mask, const at::Tensor& lengths) {
  TORCH_CHECK(mask.dim() == 2, "mask_runs: mask must be 2D (rows, T), got ", mask.dim(), "D");
  TORCH_CHECK(mask.scalar_type() == at::kBool, "mask_runs: mask must be bool, got ",
              mask.scalar_type());
  TORCH_CHECK(lengths.dim() == 1 && lengths.size(0) == mask.size(0),
              "mask_runs: lengths must be 1D with one entry per mask row (", mask.size(0),
              "), got shape ", lengths.sizes());
  TORCH_CHECK(lengths.scalar_type() == at::kLong, "mask_runs: lengths must be int64");
  TORCH_CHECK(lengths.device() == mask.device(),
              "mask_runs: mask and lengths must be on the same device");
}

}  // namespace himnet_fast
