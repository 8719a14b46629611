// Raw-pointer CUDA launchers of proposals (no ATen: nvcc compiles them alone).
// scalar_t is float or double.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

namespace himnet_fast {

// prefix[prefix_start[r] + t], t <= T_v: prefix sums of cas[:, class] of row r's video
// (one thread per row, left to right in double, as on the CPU).
template <typename scalar_t>
void proposals_prefix_cuda(const scalar_t* cas, int64_t K, const int64_t* offsets,
                           const int64_t* selected, int64_t rows, const int64_t* prefix_start,
                           double* prefix, cudaStream_t stream);

// One thread per (row r, threshold h) pair, pair = r * H + h. With prefix == nullptr
// writes counts[pair]; otherwise writes the pair's proposals at out_start[pair].
template <typename scalar_t>
void proposals_runs_cuda(const scalar_t* attention, const int64_t* offsets, const int64_t* selected,
                         const double* video_scores, int64_t rows, const double* thresholds, int64_t H,
                         const double* prefix, const int64_t* prefix_start, double weight,
                         int64_t* counts, const int64_t* out_start, int64_t* ids, double* scores,
                         cudaStream_t stream);

}  // namespace himnet_fast
