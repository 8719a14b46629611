// 1D (soft-)NMS: the pairwise rule shared by every backend, and the CPU algorithms.
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
#include <cstring>
#include <utility>
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

// exp(x) by a fixed sequence of IEEE double operations (no libm, no FMA), so that
// numpy (himnet_fast.reference.postprocess.portable_exp), the CPU and the GPU get
// the same bits: x = k ln2 + r with k = round(x / ln2) (by the 1.5 * 2^52 shift
// trick; ln2 split in Cody-Waite hi/lo parts), exp(r) by its degree-13 Taylor
// polynomial in Horner form (|r| <= 0.347: truncation below 1e-17), times 2^(k+54)
// then 2^-54 (both exact unless the result is subnormal, then one rounding).
// Domain x <= 0: within 2 ulp of exp(x) down to -745, 0 below -745.5 (x is clamped
// there, where exp rounds to 0); exactly 1 at x = 0.
// Branch-free, so loops over it vectorize (with -fno-trapping-math, see setup.py).
HF_HOST_DEVICE inline double decay_exp(double x) {
  const double shift = 6755399441055744.0;  // 1.5 * 2^52
  const int64_t shift_bits = 0x4338000000000000LL;
  x = x < -745.5 ? -745.5 : x;  // exp(-745.5) rounds to 0 like the true exp there
  const double t = x * 1.4426950408889634 + shift;
  const double k = t - shift;
  const double r = (x - k * 0.6931471803691238) - k * 1.9082149292705877e-10;
  double p = 1.6059043836821613e-10;
  p = p * r + 2.08767569878681e-09;  // 1/k! (Python's 1/math.factorial(k))
  p = p * r + 2.505210838544172e-08;
  p = p * r + 2.755731922398589e-07;
  p = p * r + 2.7557319223985893e-06;
  p = p * r + 2.48015873015873e-05;
  p = p * r + 0.0001984126984126984;
  p = p * r + 0.001388888888888889;
  p = p * r + 0.008333333333333333;
  p = p * r + 0.041666666666666664;
  p = p * r + 0.16666666666666666;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  int64_t t_bits;
  memcpy(&t_bits, &t, sizeof(t_bits));  // shift_bits + k
  const uint64_t scale_bits = static_cast<uint64_t>(t_bits - shift_bits + 1077) << 52;  // 2^(k + 54)
  double scale;
  memcpy(&scale, &scale_bits, sizeof(scale));
  return (p * scale) * 5.551115123125783e-17;  // 2^-54
}

// Written as selects (no early return) so that loops over it vectorize.
HF_HOST_DEVICE inline double segment_iou(double s1, double e1, double s2, double e2, double offset) {
  const double inter = ((e1 < e2 ? e1 : e2) - (s1 > s2 ? s1 : s2)) + offset;
  const double uni = ((e1 - s1 + offset) + (e2 - s2 + offset)) - inter;
  const double iou = inter / uni;  // may be NaN when inter <= 0: discarded below
  return inter > 0.0 ? iou : 0.0;
}

// Applies the kept segment to another alive one whose IoU with it is `iou`:
// updates *score and returns false when the segment is suppressed (hard NMS).
HF_HOST_DEVICE inline bool nms_pair_update(const NmsParams& p, double iou, double* score) {
  if (p.method == kNmsHard) return !(iou > p.iou_threshold);
  if (p.method == kNmsLinear) {
    if (iou > p.iou_threshold) *score = *score * (1.0 - iou);
  } else if (iou > 0.0) {
    *score = *score * decay_exp(-(iou * iou) / p.sigma);
  }
  return true;
}

// Reusable buffers of soft_nms_sweep (one per thread), so that batched calls over
// many small groups allocate once. Arrays are indexed by position = rank of the
// segment in (start, index) order (the bucketed gaussian sweep: in (length bucket,
// start, index) order).
struct NmsWorkspace {
  std::vector<uint64_t> packed;          // sort buffers (keys; hits holds the indices)
  std::vector<int64_t> order;            // position -> local index
  std::vector<double> start, end, score;  // end and score are -inf once dead
  std::vector<double> block_end;          // tree of the max alive end per block of positions
  std::vector<double> key_score;          // per block: upper bound of its best (score, index)
  std::vector<int64_t> key_index, key_pos;
  std::vector<uint8_t> dirty;             // per block: key may exceed the block's best
  std::vector<int64_t> winner;            // tournament tree over the block keys
  std::vector<int64_t> hits;              // alive positions overlapping the kept segment (and scratch)
  std::vector<double> decay;              // their gaussian decay factors
  std::vector<int64_t> bucket_first;      // gaussian sweep: position bounds of the length buckets
  std::vector<double> bucket_len;         // and each bucket's max length
  std::vector<int64_t> packed_grid;       // and their start grids (cell -> first position)
  std::vector<int32_t> pair_a, pair_b;    // pair lists: the candidate pairs (local indices)
  std::vector<double> pair_geometry;      // their (s1, e1, s2, e2) planes
  std::vector<double> pair_w;             // their update factors
  std::vector<int64_t> adj_first;         // adjacency of each local index: adj[adj_first[i] ..
  std::vector<int32_t> adj;               //   adj_first[i + 1]) with factors adj_w
  std::vector<double> adj_w;
};

// Returned by the CPU algorithms below when *cancel became non-zero: they read it (when
// not null; another thread sets it, e.g. on Ctrl-C) once per selection and then stop,
// leaving keep[] / kept_scores[] partly written. The pair lists of small problems
// (n < 2048, bounded work) do not read it: a caller looping over groups polls between them.
constexpr int64_t kNmsCancelled = -1;

// Whether another thread asked the CPU loops to stop: a relaxed atomic load, as the flag
// is written while they run.
inline bool nms_cancel_requested(const int32_t* cancel) {
  return cancel != nullptr && __atomic_load_n(cancel, __ATOMIC_RELAXED) != 0;
}

// (Soft-)NMS of n segments [starts[i], ends[i]] with scores[i]. Writes the kept
// local indices in selection order to keep[] and their scores at selection to
// kept_scores[] (both must hold n entries); returns how many were kept (or kNmsCancelled).
// The work follows the number of overlapping pairs, not n^2: with segments sorted
// by start, a tree of per-block maximum ends finds the alive segments overlapping
// each kept one, and a lazy tournament over per-block upper bounds of the best
// (score, index) yields the next maximum with the lowest-index tie rule. Small
// problems (n < 2048, at most 64 candidate pairs per segment) list every overlapping
// pair with its update factor first (IoUs do not depend on scores), so a selection
// only walks the kept segment's neighbours. Large gaussian problems without pruning
// (n >= 2048, min_score <= 0) group the segments in length buckets instead, each
// sorted by start: the overlaps of a kept segment in a bucket form one contiguous
// range, decayed in whole vectors (same bits).
// The work is still quadratic when every segment overlaps every other (dense worst
// case, measured in BENCHMARKS.md): each selection decays all the alive ones.
int64_t soft_nms_sweep(const double* starts, const double* ends, const double* scores, int64_t n,
                       const NmsParams& params, int64_t* keep, double* kept_scores,
                       NmsWorkspace& ws, const int32_t* cancel = nullptr);

// The same result by the plain O(n^2) loop (argmax scan + update of all alive
// segments per step), the structure of the public C++ implementations (which also
// evaluate exp for non-overlapping pairs; this loop skips those, so it is faster):
// the baseline of the benchmarks and the oracle of the C++ tests.
int64_t soft_nms_quadratic(const double* starts, const double* ends, const double* scores,
                           int64_t n, const NmsParams& params, int64_t* keep, double* kept_scores,
                           const int32_t* cancel = nullptr);

}  // namespace himnet_fast
