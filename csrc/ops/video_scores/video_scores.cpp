// Video-level class scores (video_scores.h): the CPU selection kernels.
#include "video_scores.h"

#include <algorithm>
#include <limits>
#include <type_traits>

namespace himnet_fast {
namespace {

// Number of keys >= x (vectorizes; counted in the key width).
template <typename key_t>
__attribute__((always_inline)) inline int64_t count_at_least(const key_t* u, int64_t T, key_t x) {
  key_t n = 0;
  for (int64_t t = 0; t < T; ++t) n += u[t] >= x;
  return n;
}

template <typename scalar_t>
__attribute__((always_inline)) inline bool class_scores(const scalar_t* cas, int64_t T, int64_t K, int64_t r, VideoScoresWorkspace& ws,
                         double* out) {
  using Key = OrderedKey<scalar_t>;
  using key_t = typename Key::key_t;
  const int64_t k = std::max<int64_t>(1, T / r);
  std::vector<key_t>& key_buffer = [&]() -> std::vector<key_t>& {
    if constexpr (sizeof(key_t) == 8) {
      return ws.keys64;
    } else {
      return ws.keys32;
    }
  }();
  key_buffer.resize(K * T);
  ws.values.resize(K);
  ws.picks.resize(T);
  int64_t* picks = ws.picks.data();
  key_t* keys = key_buffer.data();
  double* gamma = ws.values.data();
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t c = 0; c < K; ++c) keys[c * T + t] = Key::of(cas[t * K + c]);
  }
  // Keys of finite values lie strictly between those of -inf and +inf (NaNs outside).
  const key_t below = Key::of(-std::numeric_limits<scalar_t>::infinity());
  const key_t above = Key::of(std::numeric_limits<scalar_t>::infinity());
  bool finite = true;
  for (int64_t c = 0; c < K; ++c) {
    const key_t* u = keys + c * T;
    key_t lo = u[0], hi = u[0];  // then: count(>= lo) >= k > count(> hi)
    for (int64_t t = 1; t < T; ++t) {
      lo = u[t] < lo ? u[t] : lo;
      hi = u[t] > hi ? u[t] : hi;
    }
    finite = finite && below < lo && hi < above;
    // The top k are the keys > kth plus the earliest `ties` keys == kth.
    key_t kth = hi;
    int64_t ties = -1;
    if (count_at_least(u, T, hi) < k) {
      // Invariant: count(>= lo) >= k and count(>= hi) < k.
      using ukey_t = std::make_unsigned_t<key_t>;  // hi - lo may exceed the signed range
      while (static_cast<ukey_t>(static_cast<ukey_t>(hi) - static_cast<ukey_t>(lo)) > 1) {
        const ukey_t span = static_cast<ukey_t>(hi) - static_cast<ukey_t>(lo);
        const key_t mid = static_cast<key_t>(static_cast<ukey_t>(lo) + span / 2);
        const int64_t n = count_at_least(u, T, mid);
        if (n == k) {  // the top k are exactly the keys >= mid
          kth = mid;
          ties = k;
          break;
        }
        if (n > k) {
          lo = mid;
        } else {
          hi = mid;
        }
      }
      if (ties < 0) kth = lo;
    }
    if (ties < 0) ties = k - count_at_least(u, T, static_cast<key_t>(kth + 1));  // no overflow: finite
    // The candidates (key >= kth, about k of T) in time order, by a branch-free filter;
    // then summed as taken, left to right (the first one as it is).
    int64_t m = 0;
    for (int64_t t = 0; t < T; ++t) {
      picks[m] = t;
      m += u[t] >= kth;
    }
    double acc = 0.0;
    bool first = true;
    for (int64_t j = 0; j < m; ++j) {
      const int64_t t = picks[j];
      if (u[t] == kth) {
        if (ties == 0) continue;
        --ties;
      }
      const double x = static_cast<double>(cas[t * K + c]);  // the value itself (-0 kept)
      acc = first ? x : acc + x;
      first = false;
    }
    gamma[c] = acc / static_cast<double>(k);
  }
  double best = gamma[0];
  for (int64_t c = 1; c < K; ++c) best = gamma[c] > best ? gamma[c] : best;
  for (int64_t c = 0; c < K; ++c) gamma[c] = decay_exp(gamma[c] - best);
  double total = gamma[0];
  for (int64_t c = 1; c < K; ++c) total = total + gamma[c];
  for (int64_t c = 0; c + 1 < K; ++c) out[c] = gamma[c] / total;
  return finite;
}

}  // namespace

HF_SIMD_CLONES
bool video_class_scores(const float* cas, int64_t T, int64_t K, int64_t r, VideoScoresWorkspace& ws, double* out) {
  return class_scores(cas, T, K, r, ws, out);
}

HF_SIMD_CLONES
bool video_class_scores(const double* cas, int64_t T, int64_t K, int64_t r, VideoScoresWorkspace& ws,
                        double* out) {
  return class_scores(cas, T, K, r, ws, out);
}

}  // namespace himnet_fast
