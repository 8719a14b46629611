// Runs of `true` in 1D boolean masks: the core of connected-component proposals.
// One row is processed by one call, on the host (CPU kernel) or on the device
// (one CUDA thread per row), so both backends share this single definition.
#pragma once
#include "../../common.h"

namespace himnet_fast {

// Calls on_run(start, end) for every maximal half-open run [start, end) of
// positions t in [0, length) where is_on(t) holds, left to right, and returns
// the number of runs. The one scanning loop behind mask_runs and proposals.
template <typename IsOn, typename OnRun>
HF_HOST_DEVICE inline int64_t for_each_run(int64_t length, IsOn is_on, OnRun on_run) {
  int64_t count = 0;
  int64_t t = 0;
  while (t < length) {
    if (!is_on(t)) {
      ++t;
      continue;
    }
    const int64_t start = t;
    while (t < length && is_on(t)) ++t;
    on_run(start, t);
    ++count;
  }
  return count;
}

// Writes the half-open runs [start, end) of `true` in mask[0:length] as
// (row_id, start, end) triples into `runs` and returns their number. `runs` may
// be null (count only); otherwise it must hold 3 * (returned number) entries.
HF_HOST_DEVICE inline int64_t mask_runs_row(const bool* mask, int64_t length,
                                            int64_t row_id, int64_t* runs) {
  int64_t written = 0;
  return for_each_run(
      length, [&](int64_t t) { return mask[t]; },
      [&](int64_t start, int64_t end) {
        if (runs == nullptr) return;
        runs[3 * written] = row_id;
        runs[3 * written + 1] = start;
        runs[3 * written + 2] = end;
        ++written;
      });
}

}  // namespace himnet_fast
