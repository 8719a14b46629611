// Shared helpers for the plain C++/CUDA algorithms (no ATen types here).
#pragma once
#include <cstdint>

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
