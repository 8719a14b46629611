#include "mask_runs_kernel.h"
#include "../mask_runs.h"

namespace himnet_fast {
namespace {

constexpr int kThreads = 256;

__global__ void count_kernel(const bool* mask, const int64_t* lengths, int64_t rows,
                             int64_t T, int64_t* counts) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (r >= rows) return;
  counts[r] = mask_runs_row(mask + r * T, lengths[r], r, nullptr);
}

__global__ void fill_kernel(const bool* mask, const int64_t* lengths, int64_t rows,
                            int64_t T, const int64_t* offsets, int64_t* runs) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (r >= rows) return;
  mask_runs_row(mask + r * T, lengths[r], r, runs + 3 * offsets[r]);
}

int blocks_for(int64_t rows) { return static_cast<int>((rows + kThreads - 1) / kThreads); }

}  // namespace

void mask_runs_count_cuda(const bool* mask, const int64_t* lengths, int64_t rows,
                          int64_t T, int64_t* counts, cudaStream_t stream) {
  if (rows == 0) return;
  count_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(mask, lengths, rows, T, counts);
}

void mask_runs_fill_cuda(const bool* mask, const int64_t* lengths, int64_t rows,
                         int64_t T, const int64_t* offsets, int64_t* runs,
                         cudaStream_t stream) {
  if (rows == 0) return;
  fill_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(mask, lengths, rows, T, offsets, runs);
}

}  // namespace himnet_fast
