// Video-level class scores of one video (CPU): softmax over K of the top-k mean
// of S_hat per class (k = max(1, T / r)), background (last column) dropped.
// Arithmetic of himnet_fast.reference.postprocess.video_class_scores, bit for bit:
// the top k of a class are its k largest values, ties to the earlier snippet; they
// are summed in time order, left to right, in double; the softmax uses decay_exp
// (nms.h) and a left-to-right sum.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "nms.h"

namespace himnet_fast {

// The k-th largest value of x[0..T), 1 <= k <= T. A sampled pivot first keeps,
// branch-free, the values above about the (k/T + 10%) top quantile; nth_element then
// runs on those (or on all values if fewer than k passed). v: scratch of T entries.
inline double kth_largest(const double* x, int64_t T, int64_t k, double* v) {
  int64_t m = 0;
  if (T >= 64 && 4 * k <= T) {
    constexpr int64_t kSamples = 64;
    double sample[kSamples];
    for (int64_t i = 0; i < kSamples; ++i) sample[i] = x[(i * T) / kSamples];
    const int64_t rank = std::min<int64_t>(kSamples - 1, (kSamples * k) / T + kSamples / 10);
    std::nth_element(sample, sample + rank, sample + kSamples, std::greater<double>());
    const double pivot = sample[rank];
    for (int64_t t = 0; t < T; ++t) {
      v[m] = x[t];
      m += x[t] >= pivot;
    }
  }
  if (m < k) {  // no filter, or too few above the pivot
    std::copy(x, x + T, v);
    m = T;
  }
  std::nth_element(v, v + (k - 1), v + m, std::greater<double>());
  return v[k - 1];
}

// cas: (T, K) row-major, T >= 1, K >= 2; out: K - 1 scores; buf: reusable scratch.
template <typename scalar_t>
void video_class_scores(const scalar_t* cas, int64_t T, int64_t K, int64_t r, std::vector<double>& buf,
                        double* out) {
  const int64_t k = std::max<int64_t>(1, T / r);
  buf.resize(K * T + T + K);
  double* columns = buf.data();  // (K, T): one contiguous column per class
  double* scratch = columns + K * T;
  double* gamma = scratch + T;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t c = 0; c < K; ++c) columns[c * T + t] = static_cast<double>(cas[t * K + c]);
  }
  for (int64_t c = 0; c < K; ++c) {
    const double* x = columns + c * T;
    const double kth = kth_largest(x, T, k, scratch);
    int64_t above = 0;
    for (int64_t t = 0; t < T; ++t) above += x[t] > kth;
    int64_t ties = k - above;  // copies of the k-th value taken, earliest first
    int64_t m = 0;             // the top k, in time order, into scratch
    for (int64_t t = 0; t < T; ++t) {
      const bool tie = x[t] == kth && ties > 0;
      ties -= tie;
      scratch[m] = x[t];
      m += x[t] > kth || tie;
    }
    double acc = scratch[0];
    for (int64_t j = 1; j < k; ++j) acc = acc + scratch[j];
    gamma[c] = acc / static_cast<double>(k);
  }
  double top = gamma[0];
  for (int64_t c = 1; c < K; ++c) top = gamma[c] > top ? gamma[c] : top;
  for (int64_t c = 0; c < K; ++c) gamma[c] = decay_exp(gamma[c] - top);
  double total = gamma[0];
  for (int64_t c = 1; c < K; ++c) total = total + gamma[c];
  for (int64_t c = 0; c + 1 < K; ++c) out[c] = gamma[c] / total;
}

}  // namespace himnet_fast
