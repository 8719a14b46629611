// CPU helpers of the proposals kernel (algo/proposal_levels.cpp): the runs of every
// attention threshold from one pass over per-snippet threshold levels, and the
// finiteness check of the inputs. Same runs as threshold_proposals (proposals.h).
#pragma once
#include <cstdint>

namespace himnet_fast {

// level[t] = number of thresholds in ascending[0..H) (sorted ascending) below
// attention[t], compared in double: snippet t is above thresholds [0, level[t]).
void threshold_levels(const float* attention, int64_t T, const double* ascending, int64_t H, int32_t* level);
void threshold_levels(const double* attention, int64_t T, const double* ascending, int64_t H, int32_t* level);

// True when no entry is NaN or infinite.
bool all_finite(const float* x, int64_t n);
bool all_finite(const double* x, int64_t n);

// Calls on_run(i, start, end) for every maximal run [start, end) of level > i, for
// all i at once, in one pass over the levels: a rise from p to q opens the runs i in
// [p, q), a fall closes them. Runs of one i come in increasing start order.
// open: scratch of (maximum level) entries.
template <typename OnRun>
void for_each_level_run(const int32_t* level, int64_t T, int64_t* open, OnRun on_run) {
  int32_t previous = 0;
  for (int64_t t = 0; t < T; ++t) {
    const int32_t now = level[t];
    if (now == previous) continue;
    for (int32_t i = previous; i < now; ++i) open[i] = t;
    for (int32_t i = now; i < previous; ++i) on_run(i, open[i], t);
    previous = now;
  }
  for (int32_t i = 0; i < previous; ++i) on_run(i, open[i], T);
}

}  // namespace himnet_fast
