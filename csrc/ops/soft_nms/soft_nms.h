// 1D (soft-)NMS: the pairwise rule shared by every backend, and the CPU algorithms
// (soft_nms.cpp; plain C++, no ATen).
//
// Semantics (himnet_fast.reference.postprocess.soft_nms_reference is the spec):
// repeat { pick the alive segment with the highest current score, ties to the
// lowest index; stop if that score < min_score; keep it; update every other alive
// segment j with the pair rule below }. Methods:
//   hard:     j dies if iou > iou_threshold (scores never change)
//   linear:   score_j = score_j * (1 - iou)            if iou > iou_threshold
//   gaussian: score_j = score_j * decay_exp(-(iou * iou) / sigma)   if iou > 0
// (decay_exp(-0) = 1 exactly, so skipping iou = 0 or not gives the same bits).
// IoU: inter = min(e1, e2) - max(s1, s2) + offset; 0 unless inter > 0, else
//   inter / (((e1 - s1 + offset) + (e2 - s2 + offset)) - inter).
// offset = 0 is the continuous IoU, offset = 1 the legacy inclusive "+1" one.
#pragma once
#include <cmath>
#include <cstdint>
#include <memory>

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

// Written as selects (no early return) so that loops over it vectorize.
HF_HOST_DEVICE inline double segment_iou(double s1, double e1, double s2, double e2, double offset) {
  const double inter = ((e1 < e2 ? e1 : e2) - (s1 > s2 ? s1 : s2)) + offset;
  const double uni = ((e1 - s1 + offset) + (e2 - s2 + offset)) - inter;
  const double iou = inter / uni;  // may be NaN when inter <= 0: discarded below
  return inter > 0.0 ? iou : 0.0;
}

// The gaussian update factor of a pair (exactly 1 when iou = 0).
HF_HOST_DEVICE inline double gaussian_decay(double iou, double sigma) { return decay_exp(-(iou * iou) / sigma); }

// Applies the kept segment to another alive one whose IoU with it is `iou`:
// updates *score and returns false when the segment is suppressed (hard NMS).
HF_HOST_DEVICE inline bool nms_pair_update(const NmsParams& p, double iou, double* score) {
  if (p.method == kNmsHard) return !(iou > p.iou_threshold);
  if (p.method == kNmsLinear) {
    if (iou > p.iou_threshold) *score = *score * (1.0 - iou);
  } else if (iou > 0.0) {
    *score = *score * gaussian_decay(iou, p.sigma);
  }
  return true;
}

// Returned by soft_nms when *cancel became non-zero: it reads the flag (when not null;
// another thread sets it, e.g. on Ctrl-C) once per selection and then stops, leaving
// keep[] / kept_scores[] partly written.
constexpr int64_t kNmsCancelled = -1;

// Whether another thread asked the CPU loops to stop: a relaxed atomic load, as the flag
// is written while they run.
inline bool nms_cancel_requested(const int32_t* cancel) {
  return cancel != nullptr && __atomic_load_n(cancel, __ATOMIC_RELAXED) != 0;
}

// Reusable buffers of soft_nms (one per thread, so that batched calls over many small
// groups allocate once). Named buffers, each with one meaning, shared by the algorithms where
// they mean the same (order, start, end, score, the tournament); private to soft_nms.cpp.
struct SoftNmsWorkspace {
  struct Buffers;
  std::unique_ptr<Buffers> buffers;
  SoftNmsWorkspace();
  ~SoftNmsWorkspace();
};

// The exact algorithms of soft_nms (same result, bit for bit). kAuto picks by size and
// method (see the dispatcher at the top of soft_nms.cpp); the others force one, for the
// tests and the benchmarks' O(n^2) baseline (kLengthBuckets: gaussian only).
enum class SoftNmsAlgorithm { kAuto, kPairLists, kOverlapSweep, kLengthBuckets, kQuadratic };

// (Soft-)NMS of n segments [starts[i], ends[i]] with scores[i]. Writes the kept
// local indices in selection order to keep[] and their scores at selection to
// kept_scores[] (both must hold n entries); returns how many were kept (or kNmsCancelled).
int64_t soft_nms(const double* starts, const double* ends, const double* scores, int64_t n,
                 const NmsParams& params, int64_t* keep, double* kept_scores, SoftNmsWorkspace& ws,
                 const int32_t* cancel = nullptr, SoftNmsAlgorithm algorithm = SoftNmsAlgorithm::kAuto);

}  // namespace himnet_fast
