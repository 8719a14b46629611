// CUDA kernel of batched (soft-)NMS on the pair rule of soft_nms.h. Compiled with
// -fmad=false (see setup.py), and decay_exp is a fixed sequence of IEEE operations, so
// each update rounds as on the CPU.
#include "soft_nms_kernel.h"

namespace himnet_fast {
namespace {

constexpr int kThreads = 256;

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

void soft_nms_groups_cuda(const double* starts, const double* ends, double* scores, uint8_t* alive,
                          const int64_t* group_start, int64_t groups, NmsParams params, int64_t* keep,
                          double* kept_scores, int64_t* counts, cudaStream_t stream) {
  if (groups == 0) return;
  soft_nms_kernel<<<static_cast<unsigned>(groups), kThreads, 0, stream>>>(
      starts, ends, scores, alive, group_start, params, keep, kept_scores, counts);
}

}  // namespace himnet_fast
