// CUDA kernels of proposals on the shared host/device routines of proposals.h.
// Compiled with -fmad=false (see setup.py) so the arithmetic rounds like the CPU backend.
#include "../proposals.h"
#include "proposals_kernel.h"

namespace himnet_fast {
namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t items) { return static_cast<int>(ceil_div(items, kThreads)); }

template <typename scalar_t>
__global__ void prefix_kernel(const scalar_t* cas, int64_t K, const int64_t* offsets,
                              const int64_t* selected, int64_t rows, const int64_t* prefix_start,
                              double* prefix) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (r >= rows) return;
  const int64_t v = selected[2 * r], c = selected[2 * r + 1];
  column_prefix_sums(cas + offsets[v] * K + c, K, offsets[v + 1] - offsets[v], prefix + prefix_start[r]);
}

template <typename scalar_t>
__global__ void runs_kernel(const scalar_t* attention, const int64_t* offsets, const int64_t* selected,
                            const double* video_scores, int64_t rows, const double* thresholds, int64_t H,
                            const double* prefix, const int64_t* prefix_start, double weight,
                            int64_t* counts, const int64_t* out_start, int64_t* ids, double* scores) {
  const int64_t pair = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (pair >= rows * H) return;
  const int64_t r = pair / H, h = pair % H;
  const int64_t v = selected[2 * r], c = selected[2 * r + 1];
  const int64_t T = offsets[v + 1] - offsets[v];
  if (prefix == nullptr) {
    counts[pair] = threshold_proposals(attention + offsets[v], T, thresholds[h], nullptr, weight,
                                       video_scores[r], v, c, nullptr, nullptr);
    return;
  }
  const int64_t o = out_start[pair];
  threshold_proposals(attention + offsets[v], T, thresholds[h], prefix + prefix_start[r], weight,
                      video_scores[r], v, c, ids + 4 * o, scores + o);
}

}  // namespace

template <typename scalar_t>
void proposals_prefix_cuda(const scalar_t* cas, int64_t K, const int64_t* offsets,
                           const int64_t* selected, int64_t rows, const int64_t* prefix_start,
                           double* prefix, cudaStream_t stream) {
  if (rows == 0) return;
  prefix_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(cas, K, offsets, selected, rows, prefix_start,
                                                           prefix);
}

template <typename scalar_t>
void proposals_runs_cuda(const scalar_t* attention, const int64_t* offsets, const int64_t* selected,
                         const double* video_scores, int64_t rows, const double* thresholds, int64_t H,
                         const double* prefix, const int64_t* prefix_start, double weight,
                         int64_t* counts, const int64_t* out_start, int64_t* ids, double* scores,
                         cudaStream_t stream) {
  if (rows * H == 0) return;
  runs_kernel<<<blocks_for(rows * H), kThreads, 0, stream>>>(attention, offsets, selected, video_scores,
                                                             rows, thresholds, H, prefix, prefix_start,
                                                             weight, counts, out_start, ids, scores);
}

#define HF_INSTANTIATE(T)                                                                                 \
  template void proposals_prefix_cuda<T>(const T*, int64_t, const int64_t*, const int64_t*, int64_t,      \
                                         const int64_t*, double*, cudaStream_t);                          \
  template void proposals_runs_cuda<T>(const T*, const int64_t*, const int64_t*, const double*, int64_t, \
                                       const double*, int64_t, const double*, const int64_t*, double,    \
                                       int64_t*, const int64_t*, int64_t*, double*, cudaStream_t);
HF_INSTANTIATE(float)
HF_INSTANTIATE(double)
#undef HF_INSTANTIATE

}  // namespace himnet_fast
