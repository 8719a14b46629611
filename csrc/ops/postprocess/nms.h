// 1D (soft-)NMS: the pairwise rule shared by every backend, and the CPU algorithms.
//
// Semantics (himnet_fast.reference.postprocess.soft_nms_reference is the spec):
// repeat { pick the alive segment with the highest current score, ties to the
// lowest index; stop if that score < min_score; keep it; update every other alive
// segment j with the pair rule below }. Methods:
//   hard:     j dies if iou > iou_threshold (scores never change)
//   linear:   score_j = score_j * (1 - iou)            if iou > iou_threshold
//   gaussian: score_j = score_j * exp(-(iou * iou) / sigma)   if iou > 0
// (a gaussian decay with iou = 0 is exp(-0) = 1 exactly, so skipping it is exact).
// IoU: inter = min(e1, e2) - max(s1, s2) + offset; 0 unless inter > 0, else
//   inter / (((e1 - s1 + offset) + (e2 - s2 + offset)) - inter).
// offset = 0 is the continuous IoU, offset = 1 the legacy inclusive "+1" one.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "../../common.h"

namespace himnet_fast {

enum NmsMethod : int64_t { kNmsHard = 0, kNmsLinear = 1, kNmsGaussian = 2 };

struct NmsParams {
  int64_t method = kNmsGaussian;
  double sigma = 0.3;
  double iou_threshold = 0.7;
  double min_score = -INFINITY;
  double offset = 0.0;
};

HF_HOST_DEVICE inline double segment_iou(double s1, double e1, double s2, double e2, double offset) {
  const double inter = ((e1 < e2 ? e1 : e2) - (s1 > s2 ? s1 : s2)) + offset;
  if (!(inter > 0.0)) return 0.0;
  const double uni = ((e1 - s1 + offset) + (e2 - s2 + offset)) - inter;
  return inter / uni;
}

// Applies the kept segment to another alive one whose IoU with it is `iou`:
// updates *score and returns false when the segment is suppressed (hard NMS).
HF_HOST_DEVICE inline bool nms_pair_update(const NmsParams& p, double iou, double* score) {
  if (p.method == kNmsHard) return !(iou > p.iou_threshold);
  if (p.method == kNmsLinear) {
    if (iou > p.iou_threshold) *score = *score * (1.0 - iou);
  } else if (iou > 0.0) {
    *score = *score * exp(-(iou * iou) / p.sigma);
  }
  return true;
}

// Reusable buffers of soft_nms_sweep (one per thread), so that batched calls over
// many small groups allocate once.
struct NmsWorkspace {
  struct Entry {
    double key;
    int64_t pos;
  };
  std::vector<int64_t> order;   // positions -> local index, sorted by (start, index)
  std::vector<double> start, end, score;
  std::vector<double> max_end;  // max-end tree over positions (alive leaves only)
  std::vector<Entry> heap;
  std::vector<int64_t> hits;
  std::vector<uint8_t> dead;
};

// (Soft-)NMS of n segments [starts[i], ends[i]) with scores[i]. Writes the kept
// local indices in selection order to keep[] and their scores at selection to
// kept_scores[] (both must hold n entries); returns how many were kept.
// Work follows the number of overlapping pairs, not n^2: segments sorted by start
// with a max-end tree find the alive overlaps of each kept segment, and a lazy
// max-heap (keys are upper bounds of scores that only drop, refreshed when popped)
// picks the next one; negative scores, which a decay raises, are re-pushed.
int64_t soft_nms_sweep(const double* starts, const double* ends, const double* scores, int64_t n,
                       const NmsParams& params, int64_t* keep, double* kept_scores,
                       NmsWorkspace& ws);

// The same result by the plain O(n^2) loop (argmax scan + update of all alive
// segments per step), as the public C++ implementations do it: the baseline of
// the benchmarks and the oracle of the C++ tests.
int64_t soft_nms_quadratic(const double* starts, const double* ends, const double* scores,
                           int64_t n, const NmsParams& params, int64_t* keep, double* kept_scores);

}  // namespace himnet_fast
