// CUDA kernels of proposals and batched (soft-)NMS, built on the shared
// host/device routines of proposals.h and nms.h. Compiled with -fmad=false (see
// setup.py) so the arithmetic rounds like the CPU backend; exp may still differ
// from the host libm's in the last bit.
#include "../proposals.h"
#include "postprocess_kernels.h"

namespace himnet_fast {
namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t items) { return static_cast<int>((items + kThreads - 1) / kThreads); }

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

// Better of two (score, index) candidates: higher score, then lower index; -1 = none.
__device__ bool better(double s1, int64_t i1, double s2, int64_t i2) {
  if (i1 < 0) return false;
  if (i2 < 0) return true;
  return s1 > s2 || (s1 == s2 && i1 < i2);
}

// One block per group: each step a block-wide argmax, then a parallel update.
__global__ void soft_nms_kernel(const double* starts, const double* ends, double* scores, uint8_t* alive,
                                const int64_t* group_start, NmsParams params, int64_t* keep,
                                double* kept_scores, int64_t* counts) {
  __shared__ double best_score[kThreads];
  __shared__ int64_t best_index[kThreads];
  __shared__ int64_t chosen;
  const int64_t begin = group_start[blockIdx.x], n = group_start[blockIdx.x + 1] - begin;
  const double* s = starts + begin;
  const double* e = ends + begin;
  double* sc = scores + begin;
  uint8_t* live = alive + begin;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) live[j] = 1;
  int64_t kept = 0;
  while (true) {
    __syncthreads();
    double bs = 0.0;
    int64_t bi = -1;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      if (live[j] && better(sc[j], j, bs, bi)) {
        bs = sc[j];
        bi = j;
      }
    }
    best_score[threadIdx.x] = bs;
    best_index[threadIdx.x] = bi;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
      if (threadIdx.x < stride) {
        const int o = threadIdx.x + stride;
        if (better(best_score[o], best_index[o], best_score[threadIdx.x], best_index[threadIdx.x])) {
          best_score[threadIdx.x] = best_score[o];
          best_index[threadIdx.x] = best_index[o];
        }
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      const int64_t i = best_index[0];
      chosen = (i < 0 || best_score[0] < params.min_score) ? -1 : i;
      if (chosen >= 0) {
        keep[begin + kept] = begin + chosen;
        kept_scores[begin + kept] = best_score[0];
        live[chosen] = 0;
      }
    }
    __syncthreads();
    const int64_t i = chosen;
    if (i < 0) break;
    ++kept;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      if (!live[j]) continue;
      const double iou = segment_iou(s[i], e[i], s[j], e[j], params.offset);
      double updated = sc[j];
      if (!nms_pair_update(params, iou, &updated)) {
        live[j] = 0;
      } else {
        sc[j] = updated;
      }
    }
  }
  if (threadIdx.x == 0) counts[blockIdx.x] = kept;
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

void soft_nms_groups_cuda(const double* starts, const double* ends, double* scores, uint8_t* alive,
                          const int64_t* group_start, int64_t groups, NmsParams params, int64_t* keep,
                          double* kept_scores, int64_t* counts, cudaStream_t stream) {
  if (groups == 0) return;
  soft_nms_kernel<<<static_cast<unsigned>(groups), kThreads, 0, stream>>>(
      starts, ends, scores, alive, group_start, params, keep, kept_scores, counts);
}

}  // namespace himnet_fast
