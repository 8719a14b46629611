// Raw-pointer CUDA launcher of batched (soft-)NMS (no ATen: nvcc compiles it alone).
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

#include "../soft_nms.h"

namespace himnet_fast {

// One block per group g = [group_start[g], group_start[g+1]) of the grouped arrays.
// scores is updated in place. Writes the kept positions (global, in selection
// order) to keep[group_start[g] + i], their scores to kept_scores[...], and
// counts[g]. alive is scratch (N bytes).
void soft_nms_groups_cuda(const double* starts, const double* ends, double* scores, uint8_t* alive,
                          const int64_t* group_start, int64_t groups, NmsParams params, int64_t* keep,
                          double* kept_scores, int64_t* counts, cudaStream_t stream);

}  // namespace himnet_fast
