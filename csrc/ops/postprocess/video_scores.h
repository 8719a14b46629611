// Video-level class scores of one video (CPU): softmax over K of the top-k mean
// of S_hat per class (k = max(1, T / r)), background (last column) dropped.
// Arithmetic of himnet_fast.reference.postprocess.video_class_scores, bit for bit:
// the k largest values of a column summed largest first, left to right, in double;
// the softmax with decay_exp (nms.h) and a left-to-right sum.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "nms.h"

namespace himnet_fast {

// cas: (T, K) row-major, T >= 1, K >= 2; out: K - 1 scores; buf: scratch.
template <typename scalar_t>
void video_class_scores(const scalar_t* cas, int64_t T, int64_t K, int64_t r, std::vector<double>& buf,
                        double* out) {
  const int64_t k = std::max<int64_t>(1, T / r);
  buf.resize(T + K);
  double* column = buf.data();
  double* gamma = buf.data() + T;
  for (int64_t c = 0; c < K; ++c) {
    for (int64_t t = 0; t < T; ++t) column[t] = static_cast<double>(cas[t * K + c]);
    std::partial_sort(column, column + k, column + T, std::greater<double>());
    double acc = column[0];
    for (int64_t j = 1; j < k; ++j) acc = acc + column[j];
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
