// Video-level class scores of one video (CPU): softmax over K of the top-k mean
// of S_hat per class (k = max(1, T / r)), background (last column) dropped.
// Arithmetic of himnet_fast.reference.postprocess.video_class_scores, bit for bit:
// the top k of a class are its k largest values, ties to the earlier snippet; they
// are summed in time order, left to right, in double; the softmax uses decay_exp
// (common.h) and a left-to-right sum.
#pragma once
#include <cstdint>
#include <vector>

#include "../../common.h"

namespace himnet_fast {

// Reusable scratch of video_class_scores (one per thread).
struct VideoScoresWorkspace {
  std::vector<int32_t> keys32;  // (K, T) keys of float inputs, class-major
  std::vector<int64_t> keys64;  // (K, T) keys of double inputs
  std::vector<double> values;    // the K top-k means
  std::vector<int64_t> picks;    // snippets of a class reaching its k-th largest value
};

// cas: (T, K) row-major, T >= 1, K >= 2; out: K - 1 scores (video_scores.cpp).
// The values become order-preserving integer keys, transposed class-major; the k-th
// largest key of a class comes from a bisection over key values with vectorized
// counts (stopping early once exactly k keys reach the midpoint); one pass in time
// order then takes the keys above it plus the earliest ties.
// Returns whether every value was finite (the scores are meaningless otherwise).
bool video_class_scores(const float* cas, int64_t T, int64_t K, int64_t r, VideoScoresWorkspace& ws, double* out);
bool video_class_scores(const double* cas, int64_t T, int64_t K, int64_t r, VideoScoresWorkspace& ws, double* out);

}  // namespace himnet_fast
