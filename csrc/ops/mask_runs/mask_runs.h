// Runs of `true` in 1D boolean masks: the core of connected-component proposals.
// One row is processed by one call, on the host (CPU kernel) or on the device
// (one CUDA thread per row), so both backends share this single definition.
#pragma once
#include "../../common.h"

namespace himnet_fast {

// Writes the half-open runs [start, end) of `true` in mask[0:length] as
// (row_id, start, end) triples into `runs` and returns their number. `runs` may
// be null (count only); otherwise it must hold 3 * (returned number) entries.
HF_HOST_DEVICE inline int64_t mask_runs_row(const bool* mask, int64_t length,
                                            int64_t row_id, int64_t* runs) {
  int64_t count = 0;
  int64_t t = 0;
  while (t < length) {
    if (!mask[t]) {
      ++t;
      continue;
    }
    const int64_t start = t;
    while (t < length && mask[t]) ++t;
    if (runs != nullptr) {
      runs[3 * count] = row_id;
      runs[3 * count + 1] = start;
      runs[3 * count + 2] = t;
    }
    ++count;
  }
  return count;
}

}  // namespace himnet_fast
