// Raw-pointer CUDA launchers for mask_runs (no ATen: nvcc compiles them alone).
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

namespace himnet_fast {

// counts[r] = number of runs in mask[r, 0:lengths[r]]; mask is (rows, T) row-major.
void mask_runs_count_cuda(const bool* mask, const int64_t* lengths, int64_t rows,
                          int64_t T, int64_t* counts, cudaStream_t stream);

// runs[offsets[r] + i] = (r, start_i, end_i); offsets is the exclusive scan of counts.
void mask_runs_fill_cuda(const bool* mask, const int64_t* lengths, int64_t rows,
                         int64_t T, const int64_t* offsets, int64_t* runs,
                         cudaStream_t stream);

}  // namespace himnet_fast
