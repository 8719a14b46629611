// Helpers shared by the plain C++/CUDA algorithms of every op (no ATen types here).
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__CUDACC__)
#define HF_HOST_DEVICE __host__ __device__
#else
#define HF_HOST_DEVICE
#endif

// AVX-512 / AVX2 clones of a hot CPU function where the CPU has them (GCC on x86-64;
// every clone performs the same IEEE operations, so the same bits). Off under the
// sanitizers and elsewhere.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(__CUDACC__)
#define HF_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define HF_SIMD_CLONES
#endif

namespace himnet_fast {

HF_HOST_DEVICE inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

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

// Order-preserving integer keys of finite float / double values (CPU): a < b iff
// key(a) < key(b) as signed integers, and iff radix(a) < radix(b) as unsigned ones.
// -0 and +0 get the same key (equal values, equal keys). NaNs fall outside the keys of
// -inf and +inf.
template <typename scalar_t>
struct OrderedKey {
  using key_t = std::conditional_t<sizeof(scalar_t) == 8, int64_t, int32_t>;
  using bits_t = std::make_unsigned_t<key_t>;
  static constexpr bits_t kSign = bits_t{1} << (8 * sizeof(bits_t) - 1);
  static key_t of(scalar_t x) {
    x = x + scalar_t(0);  // -0 -> +0
    bits_t bits;
    std::memcpy(&bits, &x, sizeof(bits));
    // Negative values: the magnitude bits reversed below the sign; positive ones as they are.
    bits = (bits & kSign) ? static_cast<bits_t>(bits ^ (kSign - 1)) : bits;
    key_t key;
    std::memcpy(&key, &bits, sizeof(key));
    return key;
  }
  // The same order on unsigned keys (for radix sorts): the sign bit flipped.
  static bits_t radix(scalar_t x) { return static_cast<bits_t>(of(x)) ^ kSign; }
};

}  // namespace himnet_fast
