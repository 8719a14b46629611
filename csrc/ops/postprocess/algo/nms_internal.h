// Helpers shared by the CPU (soft-)NMS algorithms (nms.cpp, nms_pairs.cpp); not a
// public interface.
#pragma once
#include <cstdint>
#include <cstring>

#include "../nms.h"

namespace himnet_fast {
namespace nms_detail {

inline int64_t pow2_at_least(int64_t n) {
  int64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

// ws.order = local indices sorted by (start, index) (nms.cpp).
void sort_by_start(const double* starts, int64_t n, NmsWorkspace& ws);

// soft_nms_sweep without the pair lists: the per-overlap sweep, or for large gaussian
// problems without pruning the length-bucketed one (nms.cpp).
int64_t soft_nms_overlap_sweep(const double* starts, const double* ends, const double* scores, int64_t n,
                               const NmsParams& params, int64_t* keep, double* kept_scores, NmsWorkspace& ws,
                               const int32_t* cancel = nullptr);

// The pair-list algorithm (nms_pairs.cpp): the result of soft_nms_sweep, or -1 (nothing
// written) when the segments have more than max_pairs candidate pairs.
int64_t soft_nms_pairs(const double* starts, const double* ends, const double* scores, int64_t n,
                       const NmsParams& params, int64_t max_pairs, int64_t* keep, double* kept_scores,
                       NmsWorkspace& ws);

// First position of the maximum of x[0..m) (m a multiple of 4, callers pad with -inf;
// 0 when all are -inf). Branch-free: four lanes keep their first maximum, then the
// lowest position wins ties between lanes.
#if defined(__GNUC__) && !defined(__clang__)
typedef double Lanes4 __attribute__((vector_size(32)));
typedef int64_t Positions4 __attribute__((vector_size(32)));
inline int64_t first_argmax(const double* x, int64_t m) {
  Lanes4 best = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
  Positions4 at = {0, 1, 2, 3}, position = {0, 1, 2, 3};
  for (int64_t i = 0; i < m; i += 4, position += 4) {
    Lanes4 v;
    std::memcpy(&v, x + i, sizeof(v));
    const Positions4 better = v > best;
    best = better ? v : best;
    at = better ? position : at;
  }
  int64_t r = at[0];
  double b = best[0];
  for (int l = 1; l < 4; ++l) {
    const bool take = best[l] > b || (best[l] == b && at[l] < r);
    r = take ? at[l] : r;
    b = take ? best[l] : b;
  }
  return r;
}
#else
inline int64_t first_argmax(const double* x, int64_t m) {
  int64_t r = 0;
  for (int64_t i = 1; i < m; ++i) r = x[i] > x[r] ? i : r;
  return r;
}
#endif

}  // namespace nms_detail
}  // namespace himnet_fast
