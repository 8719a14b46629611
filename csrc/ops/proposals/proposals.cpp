// The CPU helpers of proposals.h: vectorized loops, with AVX-512 / AVX2 clones where
// the CPU has them (the same comparisons in every clone).
#include "proposals.h"

#include <cstring>
#include <type_traits>

namespace himnet_fast {
namespace {

template <typename scalar_t>
__attribute__((always_inline)) inline void levels(const scalar_t* attention, int64_t T, const double* ascending,
                                                  int64_t H, int32_t* level) {
  for (int64_t t = 0; t < T; ++t) level[t] = 0;
  for (int64_t i = 0; i < H; ++i) {
    const double threshold = ascending[i];
    for (int64_t t = 0; t < T; ++t) level[t] += static_cast<double>(attention[t]) > threshold;
  }
}

// An exponent-bits test: all ones for NaN and infinity.
template <typename scalar_t>
__attribute__((always_inline)) inline bool finite(const scalar_t* x, int64_t n) {
  using bits_t = std::conditional_t<sizeof(scalar_t) == 8, uint64_t, uint32_t>;
  constexpr bits_t exponent = static_cast<bits_t>(sizeof(scalar_t) == 8 ? 0x7ff0000000000000ull : 0x7f800000ull);
  bits_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    bits_t b;
    std::memcpy(&b, x + i, sizeof(b));
    bad |= static_cast<bits_t>((b & exponent) == exponent);
  }
  return bad == 0;
}

}  // namespace

HF_SIMD_CLONES
void threshold_levels(const float* attention, int64_t T, const double* ascending, int64_t H, int32_t* level) {
  levels(attention, T, ascending, H, level);
}

HF_SIMD_CLONES
void threshold_levels(const double* attention, int64_t T, const double* ascending, int64_t H, int32_t* level) {
  levels(attention, T, ascending, H, level);
}

HF_SIMD_CLONES
bool all_finite(const float* x, int64_t n) { return finite(x, n); }

HF_SIMD_CLONES
bool all_finite(const double* x, int64_t n) { return finite(x, n); }

}  // namespace himnet_fast
