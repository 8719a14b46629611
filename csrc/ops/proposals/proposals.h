// Connected-component proposals with outer-inner-contrast (OIC) scores, one
// (selected row, threshold) pair per call: shared by the CPU kernel and the CUDA
// kernel (one thread per pair), so both backends run the same arithmetic.
//
// A selected row is (video v, class c, video score w_c). Its video spans snippets
// [0, T) of the packed inputs: attention a (T,) and the class column x = cas[:, c].
// Proposals of threshold theta = runs [s, e) of {t : a_t > theta} (compared in
// double). Score (double, as in himnet_fast.reference.postprocess):
//   P = prefix sums of x in double, left to right (P[0] = 0, P[t+1] = P[t] + x_t)
//   L = e - s, inner = (P[e] - P[s]) / L
//   o_s = max(0, floor(s - L/4)), o_e = min(T - 1, floor(e - 1 + L/4))
//   n_out = (s - o_s) + (o_e + 1 - e)
//   outer = ((P[s] - P[o_s]) + (P[o_e + 1] - P[e])) / n_out, or 0 when n_out = 0
//   score = (inner - outer) + weight * w_c
#pragma once
#include "../../common.h"

namespace himnet_fast {

// Calls on_run(start, end) for every maximal half-open run [start, end) of positions
// t in [0, length) where is_on(t) holds, left to right, and returns the number of runs.
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

// prefix[0..length] of column x[t * stride], t < length, accumulated in double.
template <typename scalar_t>
HF_HOST_DEVICE inline void column_prefix_sums(const scalar_t* x, int64_t stride, int64_t length,
                                              double* prefix) {
  double acc = 0.0;
  prefix[0] = 0.0;
  for (int64_t t = 0; t < length; ++t) {
    acc = acc + static_cast<double>(x[t * stride]);
    prefix[t + 1] = acc;
  }
}

// OIC score of the proposal [s, e), 0 <= s < e <= length, from the prefix sums.
HF_HOST_DEVICE inline double oic_score(const double* prefix, int64_t length, int64_t s, int64_t e,
                                       double weight, double video_score) {
  const int64_t L = e - s;
  const double inner = (prefix[e] - prefix[s]) / static_cast<double>(L);
  // floor(s - L/4) and floor(e - 1 + L/4) in integers: 4s - L may be negative (clamped to 0).
  const int64_t left = 4 * s - L;
  const int64_t os = left > 0 ? left / 4 : 0;
  const int64_t oe_raw = (4 * (e - 1) + L) / 4;
  const int64_t oe = oe_raw < length - 1 ? oe_raw : length - 1;
  const int64_t n_outer = (s - os) + (oe + 1 - e);
  double outer = 0.0;
  if (n_outer > 0) {
    outer = ((prefix[s] - prefix[os]) + (prefix[oe + 1] - prefix[e])) / static_cast<double>(n_outer);
  }
  return (inner - outer) + weight * video_score;
}

// Proposals of one (row, threshold) pair. With prefix == nullptr only counts them;
// otherwise writes (video, class, start, end) into ids[4 * i ...] and the OIC score
// into scores[i] for each run i, and returns their number.
template <typename scalar_t>
HF_HOST_DEVICE inline int64_t threshold_proposals(const scalar_t* attention, int64_t length,
                                                  double threshold, const double* prefix,
                                                  double weight, double video_score, int64_t video,
                                                  int64_t cls, int64_t* ids, double* scores) {
  int64_t written = 0;
  return for_each_run(
      length, [&](int64_t t) { return static_cast<double>(attention[t]) > threshold; },
      [&](int64_t s, int64_t e) {
        if (prefix == nullptr) return;
        ids[4 * written] = video;
        ids[4 * written + 1] = cls;
        ids[4 * written + 2] = s;
        ids[4 * written + 3] = e;
        scores[written] = oic_score(prefix, length, s, e, weight, video_score);
        ++written;
      });
}

// CPU helpers (proposals.cpp): the runs of every threshold from one pass over
// per-snippet threshold levels (the same runs as threshold_proposals), and the
// finiteness check of the inputs.

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
