// Video-level class scores of one video (CPU): softmax over K of the top-k mean
// of S_hat per class (k = max(1, T / r)), background (last column) dropped.
// Arithmetic of himnet_fast.reference.postprocess.video_class_scores, bit for bit:
// the top k of a class are its k largest values, ties to the earlier snippet; they
// are summed in time order, left to right, in double; the softmax uses decay_exp
// (nms.h) and a left-to-right sum.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "nms.h"

namespace himnet_fast {

// Order-preserving signed integer keys of finite float / double values: a < b iff
// key(a) < key(b), and key(-0) = key(+0) (equal values, equal keys).
template <typename scalar_t>
struct OrderedKey {
  using key_t = std::conditional_t<sizeof(scalar_t) == 8, int64_t, int32_t>;
  using bits_t = std::make_unsigned_t<key_t>;
  static constexpr bits_t kSign = bits_t{1} << (8 * sizeof(bits_t) - 1);
  static key_t of(scalar_t x) {
    x = x + scalar_t(0);  // -0 -> +0
    bits_t bits;
    std::memcpy(&bits, &x, sizeof(bits));
    // Negative values: the magnitude bits reversed below the sign, positive ones as they are.
    bits = (bits & kSign) ? static_cast<bits_t>(bits ^ (kSign - 1)) : bits;
    key_t key;
    std::memcpy(&key, &bits, sizeof(key));
    return key;
  }
  static scalar_t value(key_t key) {
    bits_t bits;
    std::memcpy(&bits, &key, sizeof(bits));
    bits = (bits & kSign) ? static_cast<bits_t>(bits ^ (kSign - 1)) : bits;
    scalar_t x;
    std::memcpy(&x, &bits, sizeof(x));
    return x;
  }
};

// Reusable scratch of video_class_scores (one per thread).
struct VideoScoresWorkspace {
  std::vector<int32_t> keys32;  // (K, T) keys of float inputs, class-major
  std::vector<int64_t> keys64;  // (K, T) keys of double inputs
  std::vector<double> values;    // the K top-k means
  std::vector<int64_t> picks;    // snippets of a class reaching its k-th largest value
};

// cas: (T, K) row-major, T >= 1, K >= 2; out: K - 1 scores (algo/video_scores.cpp).
// The values become order-preserving integer keys, transposed class-major; the k-th
// largest key of a class comes from a bisection over key values with vectorized
// counts (stopping early once exactly k keys reach the midpoint); one pass in time
// order then takes the keys above it plus the earliest ties.
// Returns whether every value was finite (the scores are meaningless otherwise).
bool video_class_scores(const float* cas, int64_t T, int64_t K, int64_t r, VideoScoresWorkspace& ws, double* out);
bool video_class_scores(const double* cas, int64_t T, int64_t K, int64_t r, VideoScoresWorkspace& ws, double* out);

}  // namespace himnet_fast
