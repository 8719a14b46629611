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

// cas: (T, K) row-major, T >= 1, K >= 2; out: K - 1 scores; buf: reusable scratch.
// One streaming pass over the rows keeps, per class and in time order, the values at
// or above a pivot sampled at about the (k/T + 5%) top quantile (all values for short
// videos, or where fewer than k passed); the k-th largest comes from nth_element on a
// copy of those candidates, and the top k (ties to the earlier snippet) from one more
// pass over them, still in time order.
template <typename scalar_t>
void video_class_scores(const scalar_t* cas, int64_t T, int64_t K, int64_t r, std::vector<double>& buf,
                        double* out) {
  const int64_t k = std::max<int64_t>(1, T / r);
  buf.resize(K * T + T + 2 * K);
  double* candidates = buf.data();  // (K, T): per class, the candidates in time order
  double* scratch = candidates + K * T;
  double* pivot = scratch + T;
  double* gamma = pivot + K;
  constexpr int64_t kSamples = 64;  // sample i sits at row (i * T) >> 6
  const bool filter = T >= kSamples && 4 * k <= T;
  for (int64_t c = 0; c < K; ++c) {
    pivot[c] = -INFINITY;
    if (!filter) continue;
    double sample[kSamples];
    for (int64_t i = 0; i < kSamples; ++i) sample[i] = static_cast<double>(cas[((i * T) >> 6) * K + c]);
    const int64_t rank = std::min<int64_t>(kSamples - 1, (kSamples * k) / T + 3);
    std::nth_element(sample, sample + rank, sample + kSamples, std::greater<double>());
    pivot[c] = sample[rank];
  }
  std::vector<int64_t> kept(K, 0);
  for (int64_t t = 0; t < T; ++t) {  // branch-free, row by row
    for (int64_t c = 0; c < K; ++c) {
      const double v = static_cast<double>(cas[t * K + c]);
      candidates[c * T + kept[c]] = v;
      kept[c] += v >= pivot[c];
    }
  }
  for (int64_t c = 0; c < K; ++c) {
    double* x = candidates + c * T;
    int64_t m = kept[c];
    if (m < k) {  // too few above the pivot: all values
      for (int64_t t = 0; t < T; ++t) x[t] = static_cast<double>(cas[t * K + c]);
      m = T;
    }
    std::copy(x, x + m, scratch);
    std::nth_element(scratch, scratch + (k - 1), scratch + m, std::greater<double>());
    const double kth = scratch[k - 1];
    int64_t ties = k;  // copies of the k-th value taken, earliest first
    for (int64_t j = 0; j + 1 < k; ++j) ties -= scratch[j] > kth;
    int64_t taken = 0;  // the top k, in time order, into scratch
    for (int64_t j = 0; j < m; ++j) {
      const bool tie = x[j] == kth && ties > 0;
      ties -= tie;
      scratch[taken] = x[j];
      taken += x[j] > kth || tie;
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
